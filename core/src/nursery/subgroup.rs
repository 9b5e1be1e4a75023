//! [`Subgroup`]: tasks of a nursery that can be cancelled and awaited apart from its body
//! and its other tasks.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use event_listener::EventListener;

use super::{refused, Accepts, Children, Nursery, Spawned};
use crate::child::TaskHandle;
use crate::context;
use crate::error::SpawnError;
use crate::group::Group;
use crate::reason::said;

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
pub struct Subgroup<E, C: Children = Spawned> {
    group: Arc<Group<E>>,
    _kind: PhantomData<C>,
}

impl<E, C: Children> Clone for Subgroup<E, C> {
    fn clone(&self) -> Self {
        Subgroup {
            group: self.group.clone(),
            _kind: PhantomData,
        }
    }
}

impl<E, C: Children> fmt::Debug for Subgroup<E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subgroup")
            .field("tasks", &self.group.live())
            .field("cancelled", &self.group.node.is_cancelled())
            .finish()
    }
}

impl<E, C: Children> Nursery<E, C> {
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
    pub fn subgroup(&self) -> Subgroup<E, C> {
        Subgroup {
            group: self.group.sub(),
            _kind: PhantomData,
        }
    }
}

impl<E, C: Children> Subgroup<E, C> {
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
        C: Accepts<F, T, E>,
    {
        match C::try_spawn(&self.group, fut, Location::caller(), None) {
            Ok(h) => h,
            Err(e) => refused(e, "Subgroup"),
        }
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
        C: Accepts<F, T, E>,
    {
        C::try_spawn(&self.group, fut, Location::caller(), None)
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
        self.group.cancel(said(Location::caller(), None));
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
        self.group.is_cancelled()
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
        self.group.live()
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
    pub fn wait(&self) -> SubgroupWait<E, C> {
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
pub struct SubgroupWait<E, C: Children = Spawned> {
    group: Subgroup<E, C>,
    listener: Option<EventListener>,
}

impl<E, C: Children> Unpin for SubgroupWait<E, C> {}

impl<E, C: Children> Future for SubgroupWait<E, C> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A hatchery wait: never completes in a cancelled scope (W1).
        if context::current_cancelled() {
            return Poll::Pending;
        }
        let this = &mut *self;
        let group = &this.group.group;
        loop {
            if group.live() == 0 {
                this.listener = None;
                return Poll::Ready(());
            }
            // A listener made before the count is read again: a notification between
            // the two is not missed.
            match &mut this.listener {
                None => this.listener = Some(group.idle.listen()),
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

impl<E, C: Children> fmt::Debug for SubgroupWait<E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubgroupWait")
            .field("group", &self.group)
            .finish()
    }
}
