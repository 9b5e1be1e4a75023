//! [`Subgroup`]: tasks of a nursery that can be cancelled and awaited apart from its body
//! and its other tasks.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use event_listener::{Event, EventListener};

use super::{spawn, Nursery, Shared};
use crate::context;
use crate::error::SpawnError;
use crate::node::{Node, Reason};
use crate::reason::said;
use crate::rt::Runtime;
use crate::task::{Graves, Group, Label, Panic, TaskHandle};
use crate::trace;

/// A group of tasks inside a nursery, that can be cancelled and awaited apart from the
/// body and the nursery's other tasks ([`Nursery::subgroup`]).
///
/// The tasks are the nursery's children in every other way: the nursery waits for them
/// (N1), an error or a panic of one
/// fails the whole nursery, body included, and the nursery's cancellation (its own, a
/// failure, an enclosing scope's) reaches them. What the subgroup adds is a scope of its
/// own between the nursery and its tasks:
///
/// * [`cancel`](Subgroup::cancel) cancels the subgroup's tasks (those spawned into it
///   later too, at their first suspension), and nothing else: the body goes on;
/// * [`wait`](Subgroup::wait) waits until every task spawned into it has finished.
///
/// That is the shape of "stop the background tasks, then finish the body": a client's
/// heartbeat in a subgroup, cancelled and awaited before the body closes the connection
/// and returns its value. ([`Nursery::cancel`] followed by an `.await` in the body cannot
/// do it: it cancels the body too, whose value is then lost.) trio writes it as a nursery
/// nested in the body, cancelled once the work is done; that form works here too (see
/// the nurseries chapter of the book), and the subgroup spares the nesting when the
/// background tasks and the work share state.
///
/// Clones share the group. A subgroup of a nursery that has finished takes no task:
/// spawning fails as it does on the nursery.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use hatchery::{nursery, sleep};
///
/// async fn heartbeat(beats: Arc<AtomicUsize>) -> std::io::Result<()> {
///     loop {
///         sleep(Duration::from_secs(1)).await;
///         beats.fetch_add(1, Ordering::SeqCst); // a ping on the connection
///     }
/// }
///
/// # hatchery_smol::run(hatchery::testing::virtual_time(async {
/// let beats = Arc::new(AtomicUsize::new(0));
/// let closed = Arc::new(AtomicBool::new(false));
/// let (b, c) = (beats.clone(), closed.clone());
/// let answer = nursery(|n| async move {
///     let background = n.subgroup();
///     background.spawn(heartbeat(b));
///     sleep(Duration::from_millis(3500)).await; // the work
///     background.cancel();
///     background.wait().await; // the heartbeat is gone: nothing uses the connection
///     sleep(Duration::from_millis(10)).await; // a graceful close, awaited in the body
///     c.store(true, Ordering::SeqCst);
///     Ok::<_, std::io::Error>(42) // the body's value is kept
/// })
/// .await
/// .unwrap();
/// assert_eq!((answer, beats.load(Ordering::SeqCst)), (42, 3));
/// assert!(closed.load(Ordering::SeqCst));
/// # }));
/// ```
pub struct Subgroup<E> {
    inner: Arc<SubShared<E>>,
}

/// What a subgroup's handles and tasks share.
struct SubShared<E> {
    nursery: Arc<Shared<E>>,
    /// The subgroup's scope: a child of the nursery's node, the parent of its tasks.
    node: Arc<Node>,
    /// Tasks spawned into the subgroup that have not finished.
    live: AtomicUsize,
    /// Notified when `live` drops to zero.
    idle: Event,
}

impl<E> Clone for Subgroup<E> {
    fn clone(&self) -> Self {
        Subgroup {
            inner: self.inner.clone(),
        }
    }
}

impl<E> fmt::Debug for Subgroup<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subgroup")
            .field("tasks", &self.inner.live.load(Ordering::Acquire))
            .field("cancelled", &self.inner.node.is_cancelled())
            .finish()
    }
}

impl<E: Send + 'static> spawn::Admit for SubShared<E> {
    const TYPE: &'static str = "Subgroup";

    /// Counts the task in the nursery, and in the subgroup (whose `wait` waits for it).
    fn admit(&self) -> Result<(), SpawnError> {
        self.nursery.add_child()?;
        self.live.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

impl<E: Send + 'static> Group for SubShared<E> {
    type Error = E;

    fn runtime(&self) -> &Arc<dyn Runtime> {
        self.nursery.runtime()
    }

    fn node(&self) -> &Arc<Node> {
        &self.node
    }

    fn trace_parent(&self) -> trace::Parent {
        self.nursery.trace_parent()
    }

    fn graves(&self) -> &Graves {
        &self.nursery.graves
    }

    fn fail(&self, error: E, task: Option<&Label>) {
        self.nursery.fail(error, task);
    }

    fn panicked(&self, panic: Panic, task: Option<&Label>) {
        self.nursery.panicked(panic, task);
    }

    fn note_cancelled_child(&self) {
        self.nursery.note_cancelled_child();
    }

    fn child_done(&self) {
        // The subgroup's count first: by the time the nursery hears of the last of its
        // children, every `wait` has been told.
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            crate::sync::notify_listeners(&self.idle);
        }
        self.nursery.child_done();
    }
}

impl<E: Send + 'static> Nursery<E> {
    /// A new, empty [`Subgroup`] of this nursery: tasks spawned into it can be cancelled
    /// ([`Subgroup::cancel`]) and awaited ([`Subgroup::wait`]) apart from the body and
    /// the nursery's other tasks.
    ///
    /// A subgroup made after the nursery was cancelled is cancelled too (its tasks stop at
    /// their first suspension, as the nursery's would).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{nursery, sleep};
    ///
    /// # hatchery_smol::run(async {
    /// let out = nursery(|n| async move {
    ///     let helpers = n.subgroup();
    ///     let h = helpers.spawn(async { sleep(Duration::from_secs(3600)).await; Ok(()) });
    ///     let work = n.spawn(async { Ok(6 * 7) });
    ///     let v = work.join().await?;
    ///     helpers.cancel(); // the helper stops; the body and `work` do not
    ///     helpers.wait().await;
    ///     assert!(h.join().await.unwrap_err().is_cancelled());
    ///     Ok::<_, anyhow::Error>(v)
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(out, 42);
    /// # });
    /// ```
    pub fn subgroup(&self) -> Subgroup<E> {
        // A child of the nursery's node, as a nursery opened in the body would be: the
        // nursery's cancellation reaches it through the list, wherever its tasks run.
        let node = Node::attached(false, &self.shared.node);
        Subgroup {
            inner: Arc::new(SubShared {
                nursery: self.shared.clone(),
                node,
                live: AtomicUsize::new(0),
                idle: Event::new(),
            }),
        }
    }
}

impl<E: Send + 'static> Subgroup<E> {
    /// Spawns `fut` as a task of the nursery, in this subgroup, and returns a handle to
    /// its value. As [`Nursery::spawn`], but [`cancel`](Subgroup::cancel) reaches it.
    ///
    /// A task spawned into a cancelled subgroup runs until its first suspension point,
    /// then is cancelled (N5).
    ///
    /// # Panics
    ///
    /// If the nursery has already finished: use [`try_spawn`](Subgroup::try_spawn) to get
    /// an error instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// let out = nursery(|n| async move {
    ///     let group = n.subgroup();
    ///     let h = group.spawn(async { Ok(2) });
    ///     Ok::<_, std::io::Error>(h.join().await.unwrap() * 21)
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(out, 42);
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn<T, F>(&self, fut: F) -> TaskHandle<T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        spawn::spawn(&self.inner, fut, None)
    }

    /// Like [`spawn`](Subgroup::spawn), but returns [`SpawnError`] instead of panicking if
    /// the nursery has already finished. The future is dropped unpolled in that case.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] if the nursery is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// let mut saved = None;
    /// nursery(|n| {
    ///     saved = Some(n.subgroup());
    ///     async { Ok::<_, std::io::Error>(()) }
    /// })
    /// .await
    /// .unwrap();
    /// assert!(saved.unwrap().try_spawn(async { Ok(()) }).is_err());
    /// # });
    /// ```
    #[track_caller]
    pub fn try_spawn<T, F>(&self, fut: F) -> Result<TaskHandle<T>, SpawnError>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        spawn::try_spawn_at(&self.inner, fut, None, Location::caller())
    }

    /// Cancels the subgroup's tasks, those spawned into it from now on too (at their
    /// first suspension), and nothing else: the nursery's body and its other tasks go on.
    /// Not an error: the nursery does not fail. Idempotent.
    ///
    /// It does not wait for them: [`wait`](Subgroup::wait) does.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{nursery, sleep};
    ///
    /// # hatchery_smol::run(async {
    /// let out = nursery(|n| async move {
    ///     let group = n.subgroup();
    ///     group.spawn(async { sleep(Duration::from_secs(3600)).await; Ok(()) });
    ///     group.cancel();
    ///     sleep(Duration::from_millis(1)).await; // the body is not cancelled
    ///     Ok::<_, std::io::Error>("done")
    /// })
    /// .await;
    /// assert_eq!(out.unwrap(), "done");
    /// # });
    /// ```
    #[track_caller]
    pub fn cancel(&self) {
        let detail = said(Location::caller(), None);
        self.inner.node.cancel_with(Reason::Nursery, detail);
    }

    /// Whether the subgroup has been cancelled: by [`cancel`](Subgroup::cancel), or by
    /// its nursery's cancellation.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|n| async move {
    ///     let group = n.subgroup();
    ///     assert!(!group.is_cancelled());
    ///     n.cancel();
    ///     assert!(group.is_cancelled()); // the nursery's cancellation reaches it
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn is_cancelled(&self) -> bool {
        let node = &self.inner.node;
        node.is_cancelled() || node.reason().is_some()
    }

    /// How many tasks of the subgroup have not finished yet (a snapshot: tasks may
    /// finish, and be spawned, meanwhile).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{nursery, sleep};
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|n| async move {
    ///     let group = n.subgroup();
    ///     group.spawn(async { sleep(Duration::from_secs(3600)).await; Ok(()) });
    ///     assert_eq!(group.len(), 1);
    ///     group.cancel();
    ///     group.wait().await;
    ///     assert_eq!(group.len(), 0);
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn len(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Whether every task of the subgroup has finished (none is left).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|n| async move {
    ///     let group = n.subgroup();
    ///     assert!(group.is_empty());
    ///     group.spawn(async { Ok(()) });
    ///     group.wait().await;
    ///     assert!(group.is_empty());
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until every task spawned into the subgroup has finished (their futures
    /// dropped), whether they returned, failed, panicked or were cancelled; at once if
    /// none is left. Their values go to their handles, their errors and panics to the
    /// nursery, as always.
    ///
    /// A task spawned while this waits is waited for too.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches the count of tasks. If the enclosing scope is
    /// cancelled while it waits, it never completes, and the scope drops it (a failure of
    /// a subgroup task cancels the nursery, body included: a body waiting here is then
    /// cancelled, not woken).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// let done = Arc::new(AtomicUsize::new(0));
    /// let d = done.clone();
    /// nursery(|n| async move {
    ///     let group = n.subgroup();
    ///     for _ in 0..10 {
    ///         let d = d.clone();
    ///         group.spawn(async move { d.fetch_add(1, Ordering::SeqCst); Ok(()) });
    ///     }
    ///     group.wait().await;
    ///     assert_eq!(d.load(Ordering::SeqCst), 10);
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn wait(&self) -> SubgroupWait<E> {
        SubgroupWait {
            group: self.clone(),
            listener: None,
        }
    }
}

/// Future returned by [`Subgroup::wait`].
///
/// # Examples
///
/// ```
/// use hatchery::futures::SubgroupWait;
/// use hatchery::nursery;
///
/// # hatchery_smol::run(async {
/// nursery(|n| async move {
///     let group = n.subgroup();
///     group.spawn(async { Ok(()) });
///     let idle: SubgroupWait<std::io::Error> = group.wait();
///     idle.await;
///     Ok::<_, std::io::Error>(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct SubgroupWait<E> {
    group: Subgroup<E>,
    listener: Option<EventListener>,
}

impl<E> Unpin for SubgroupWait<E> {}

impl<E> Future for SubgroupWait<E> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A hatchery wait: never completes in a cancelled scope (W1).
        if context::current_cancelled() {
            return Poll::Pending;
        }
        let this = &mut *self;
        let shared = &this.group.inner;
        loop {
            if shared.live.load(Ordering::Acquire) == 0 {
                this.listener = None;
                return Poll::Ready(());
            }
            // A listener made before the count is read again: a notification between
            // the two is not missed.
            match &mut this.listener {
                None => this.listener = Some(shared.idle.listen()),
                Some(l) => {
                    if Pin::new(l).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.listener = None;
                }
            }
        }
    }
}

impl<E> fmt::Debug for SubgroupWait<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubgroupWait")
            .field("group", &self.group)
            .finish()
    }
}
