//! The handles of a child, of any kind: [`TaskHandle`] and its [`Join`] future, and the
//! protocol of the result they share with the child ([`Output`], whose slot is in the
//! child's cell).
//!
//! # The result slot
//!
//! The result and the waker of a join that waits for it share one lock, and it is the
//! lock of the child's node: a join takes the result or leaves its waker in one locked
//! step, and the child's end puts the result and takes the waker in one. (A separate
//! `AtomicWaker` took 24 bytes of every child, whether a handle was kept or not, and two
//! more atomic operations per waiting join; a mutex of the slot's own, 8.)
//!
//! A handle that goes before it took the result, and the child's end, agree on who drops
//! the result without that lock, through two bits of the child's node (in the byte of
//! its `caught` flag, which a child does not use: no room taken). The code that relies on
//! one of these invariants cites it (`// Handle invariant 1:`); the loom model
//! `handle/loom.rs` beside this file checks them:
//!
//! 1. **The second drops the result.** A handle that goes before it took the result sets
//!    the node's `HANDLE_GONE` bit ([`Node::let_go_handle`]); a child that has put its
//!    result in the slot sets `RESULT_PUT` ([`Node::result_put`]): one read-modify-write
//!    each, of the same byte, so one comes second and sees the other's bit. The second
//!    drops the result: the handle takes it out of the slot (under the lock: the child
//!    put it there before its bit, release and acquire), or the child takes it back. The
//!    first leaves it alone. So a handle dropped before its child ends takes no lock (and
//!    a child whose handle is gone by its end, which its driver tells from the reference
//!    count, puts nothing), and every result is dropped once: by the child if the handle
//!    went first (a panic there is the child's), by the handle otherwise.
//! 2. **A join's waker goes with the join.** Only a [`Join`] leaves a waker in the slot
//!    (a [`TaskHandle`] never polls), and one that goes before it returned takes its
//!    waker out under the lock, then lets go as a handle does (invariant 1): a result the
//!    child put meanwhile stays for whichever of them comes second.
//! 3. **The node's lock guards the slot.** The slot has no lock of its own: every method
//!    that reaches it is given the child's node and holds that node's lock meanwhile
//!    ([`Output::with_slot`]), and is given that node only. A handle gets it with the
//!    output from its [`Part`](super::cell::Part) (`with_node`, whose contract pairs
//!    them), the driver passes the child's own node (the allocation the output is part
//!    of). Under the lock only the slot is touched: a waker or a result that leaves it is
//!    dropped or woken after (the node's deadlock safety 3).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::cell::{Output, PartRef, Slot};
use crate::context;
use crate::error::JoinError;
use crate::node::Node;
use crate::reason::{said, CancelReason};

#[cfg(all(test, hatchery_loom))]
mod loom;

/// What a join found in the slot, under the lock.
enum Look<T> {
    /// The result, taken.
    Done(Result<T, JoinError>),
    /// Its waker is there already.
    Same,
    /// Another waker was there, which the clone replaced (to be dropped after the lock).
    Replaced(Waker),
    /// Another waker is there, and the join's must be cloned (outside the lock) first.
    Clone,
}

impl<T> Output<T> {
    /// Runs `f` on the slot, under the lock of `node`, the child's (handle invariant 3).
    #[inline]
    fn slot<R>(&self, node: &Node, f: impl FnOnce(&mut Slot<T>) -> R) -> R {
        self.with_slot(node, false, f).0
    }

    /// The result, once the task has finished; else leaves `waker` to be woken when it
    /// does, and returns `None` (with the waker it replaced, to drop outside the lock).
    /// (A `Join` lets go of the task once it has the result, so nothing takes twice; it
    /// would read as a cancellation.)
    ///
    /// The waker is cloned outside the lock (a clone is the executor's code, or anyone's:
    /// deadlock safety of the book's rules, nothing foreign under a lock), then the slot
    /// is looked at again: the task may have finished meanwhile.
    fn take_or_wait(
        &self,
        node: &Node,
        waker: &Waker,
    ) -> Result<Result<T, JoinError>, Option<Waker>> {
        let mut clone = None;
        loop {
            let look = self.slot(node, |slot| match std::mem::replace(slot, Slot::taken()) {
                Slot::Done(result) => Look::Done(result),
                Slot::Open(old) if old.will_wake(waker) => {
                    *slot = Slot::Open(old);
                    Look::Same
                }
                Slot::Open(old) => match clone.take() {
                    Some(new) => {
                        *slot = Slot::Open(new);
                        Look::Replaced(old)
                    }
                    None => {
                        *slot = Slot::Open(old);
                        Look::Clone
                    }
                },
            });
            match look {
                Look::Done(result) => return Ok(result),
                Look::Same => return Err(clone),
                Look::Replaced(old) => return Err(Some(old)),
                Look::Clone => clone = Some(waker.clone()),
            }
        }
    }

    /// Puts back a result that [`take_or_wait`](Output::take_or_wait) took but that the
    /// handle could not return yet.
    fn restore(&self, node: &Node, result: Result<T, JoinError>) {
        // (What it replaces is the error a take leaves, which holds nothing of the user's.)
        self.slot(node, |slot| *slot = Slot::Done(result));
    }

    /// The task, whose node is `node` (`None`: a child without one, and so without a
    /// handle), finished with `result`: keeps it for the handle and wakes its join, or
    /// hands it back to be dropped (outside the lock) if the handle is gone.
    pub(crate) fn put(
        &self,
        node: &Node,
        result: Result<T, JoinError>,
    ) -> Option<Result<T, JoinError>> {
        // The task's own waker goes too, in the same locked step: a handle kept after the
        // task has ended keeps the node, and would keep the executor's task with it.
        let (before, runner) = self.with_slot(node, true, |slot| {
            std::mem::replace(slot, Slot::Done(result))
        });
        drop(runner);
        // Handle invariant 1: put, then the bit; a handle that went meanwhile left the
        // result to us. (Its waker is not woken: the join is gone.)
        if node.result_put() {
            drop(before);
            return self.take_done(node);
        }
        // (A no-op waker where no join waits.)
        if let Slot::Open(waker) = before {
            waker.wake();
        }
        None
    }

    /// The result in the slot, taken out (`None` if none is there).
    fn take_done(&self, node: &Node) -> Option<Result<T, JoinError>> {
        // (The handle's or the task's end came second, after the result was put: the
        // slot holds it. Whatever it holds is dropped after the lock.)
        let before = self.slot(node, |slot| std::mem::replace(slot, Slot::taken()));
        match before {
            Slot::Done(result) => Some(result),
            Slot::Open(_) => None,
        }
    }

    /// The handle of the task whose node is `node` is gone: hands back the result to be
    /// dropped (outside the lock) if the task has put it; a task still running will drop
    /// its own. Takes no lock then (handle invariant 1).
    #[inline]
    fn abandon(&self, node: &Node) -> Option<Result<T, JoinError>> {
        node.let_go_handle().then(|| self.take_done(node)).flatten()
    }

    /// [`abandon`](Output::abandon) for a join, which may have left its waker in the
    /// slot: taken out first, under the lock, and dropped after it (handle invariant 2).
    fn abandon_join(&self, node: &Node) -> Option<Result<T, JoinError>> {
        let waker = self.slot(node, |slot| match slot {
            Slot::Open(waker) => Some(std::mem::replace(waker, Waker::noop().clone())),
            Slot::Done(_) => None,
        });
        drop(waker);
        self.abandon(node)
    }
}

/// A handle to a child of a nursery: wait for its value, cancel just that child, or ask
/// whether it has finished (rule N7).
///
/// The same type for every kind of nursery: a task spawned with
/// [`Nursery::spawn`](crate::Nursery::spawn) (a task of the executor), and a child of an
/// polled nursery ([`Polled::nursery`](crate::Polled::nursery), polled by the nursery's
/// own task), with the same methods and the same meaning. Below, "the
/// task" is either.
///
/// Dropping the handle does not cancel the task; it keeps running as part of its
/// nursery. Its value is dropped with the handle if the task has finished, or else as
/// soon as the task finishes (a panic in that drop is then a panic of the task).
///
/// A handle is `Send` and `Sync` when its value is, whichever kind of nursery made it:
/// it reaches the task's value and its cancellation only, never its future (a polled
/// child's future need not be `Send`).
///
/// A handle kept after its task has ended holds the task's value and a fixed size
/// besides (145 to 320 bytes in all for a `u64`, by runtime and kind of nursery), never
/// a large future: a future of more than 256 bytes is kept apart from the task's node
/// and freed when the task ends. See the nurseries chapter of the book, "What a child
/// costs, and for how long".
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use hatchery::{nursery, sleep, TaskHandle};
///
/// # hatchery_smol::run(async {
/// let done = Arc::new(AtomicBool::new(false));
/// let d = done.clone();
/// nursery(|n| async move {
///     let h: TaskHandle<()> = n.spawn(async move {
///         sleep(Duration::from_millis(5)).await;
///         d.store(true, Ordering::SeqCst);
///         Ok::<_, std::io::Error>(())
///     });
///     drop(h); // the task keeps running as part of the nursery
///     Ok(())
/// })
/// .await
/// .unwrap();
/// assert!(done.load(Ordering::SeqCst));
/// # });
/// ```
pub struct TaskHandle<T> {
    cell: HandleCell<T>,
}

/// What a handle (or its `Join`) holds of its child: a spawned task's allocation, or an
/// polled child's cell. When it goes before the result was taken, the result is dropped:
/// here if the child has finished, by the child otherwise (the `Drop` of `TaskHandle` and
/// of `Join`, [`let_go_join`](HandleCell::let_go_join)).
struct HandleCell<T>(Option<PartRef<Output<T>>>);

impl<T> TaskHandle<T> {
    /// The handle of the child `cell` (a task's allocation, or a polled child's).
    pub(crate) fn new(cell: PartRef<Output<T>>) -> TaskHandle<T> {
        TaskHandle {
            cell: HandleCell(Some(cell)),
        }
    }
}

impl<T> HandleCell<T> {
    fn get(&self) -> &PartRef<Output<T>> {
        self.0
            .as_ref()
            .expect("hatchery: task handle used after its result was taken")
    }

    /// Moves the reference out, leaving nothing to abandon.
    fn take(&mut self) -> HandleCell<T> {
        HandleCell(self.0.take())
    }

    /// Whether the child `cell` has put its result.
    fn finished(cell: &PartRef<Output<T>>) -> bool {
        let (output, node) = cell.with_node();
        output.slot(node, |slot| matches!(slot, Slot::Done(_)))
    }

    /// Lets go of the task before its result was taken (then the reference goes), as a
    /// join (which may have left its waker in the slot).
    #[inline(never)]
    fn let_go_join(cell: &PartRef<Output<T>>) {
        let (output, node) = cell.with_node();
        drop(output.abandon_join(node));
    }
}

impl<T> Drop for TaskHandle<T> {
    #[inline]
    fn drop(&mut self) {
        // Lets go of the task before its result was taken, as a handle (which never left
        // a waker, unlike a join: `let_go_join`).
        if let Some(cell) = &self.cell.0 {
            let (output, node) = cell.with_node();
            // Dropped outside the slot's lock: it may run user code.
            drop(output.abandon(node));
        }
    }
}

impl<T> Drop for Join<T> {
    #[inline]
    fn drop(&mut self) {
        if let Some(cell) = &self.cell.0 {
            HandleCell::let_go_join(cell);
        }
    }
}

impl<T> TaskHandle<T> {
    /// Waits for the task and returns its value.
    ///
    /// # Errors
    ///
    /// A [`JoinError`] if the task did not produce a value: it was cancelled, it failed
    /// (its error went to the nursery, which reports it), or it panicked (the nursery
    /// resumes the panic).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if the future is dropped after the task finished, the value is
    /// lost (the task itself is not affected). If the enclosing scope is cancelled, this
    /// never completes and the scope drops it. In particular, when a sibling fails, the
    /// nursery is cancelled before the failed task's handle is completed, so code waiting
    /// inside the same nursery is cancelled rather than handed a `JoinError`.
    ///
    /// A [`Join`] that is not dropped loses nothing: it takes the value only in the poll
    /// that returns it. To wait with a deadline and then cancel the task, lend it to the
    /// scope (`move_on_after(t, &mut join)`) and keep it; see [`Join::cancel`].
    ///
    /// # Panics
    ///
    /// When polled after it returned (outside a cancelled scope). When awaited in the task
    /// it joins (a task that joins its own handle would wait for itself forever; asyncio
    /// raises there too).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|n| async move {
    ///     let h = n.spawn(async { Ok::<_, std::io::Error>(6 * 7) });
    ///     assert_eq!(h.join().await.unwrap(), 42);
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn join(mut self) -> Join<T> {
        Join {
            cell: self.cell.take(),
        }
    }

    /// Cancels this task only. Its handle then reports [`JoinError::is_cancelled`]; this
    /// is not a failure of the nursery. No effect if the task has finished. (A task that
    /// still returns after the cancellation, from a shielded part, gives its value or
    /// error as usual.)
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{nursery, sleep};
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|n| async move {
    ///     let h = n.spawn(async { sleep(Duration::from_secs(3600)).await; Ok::<_, std::io::Error>(()) });
    ///     h.cancel();
    ///     assert!(h.join().await.unwrap_err().is_cancelled());
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn cancel(&self) {
        let detail = said(Location::caller(), None);
        self.cell.get().cancel(detail);
    }

    /// [`cancel`](TaskHandle::cancel), with a message that the task's
    /// [`cancel_reason`](TaskHandle::cancel_reason) carries. If the task was cancelled
    /// already, the first reason stays and the message is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{nursery, sleep, CancelReason};
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|n| async move {
    ///     let h = n.spawn(async { sleep(Duration::from_secs(3600)).await; Ok::<_, std::io::Error>(()) });
    ///     h.cancel_with("stale");
    ///     let reason = h.cancel_reason().unwrap();
    ///     assert!(matches!(reason, CancelReason::Explicit { .. }));
    ///     assert_eq!(reason.message(), Some("stale"));
    ///     assert!(h.join().await.unwrap_err().is_cancelled());
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn cancel_with(&self, message: impl Into<Cow<'static, str>>) {
        let detail = said(Location::caller(), Some(message.into()));
        self.cell.get().cancel(detail);
    }

    /// Why the task was cancelled, if it was: by its handle
    /// ([`CancelReason::Explicit`]), or by its nursery's cancellation
    /// ([`CancelReason::Outer`], with the nursery's reason: a sibling's failure naming
    /// where that sibling was spawned, the nursery's own `cancel`, or the reason of an
    /// enclosing scope). Readable after the task has finished. A task that failed itself
    /// was not cancelled: `None`, also once its failure has cancelled the nursery.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{nursery, sleep, CancelReason};
    ///
    /// # hatchery_smol::run(async {
    /// let mut kept = None;
    /// let r = nursery(|n| async {
    ///     let n = n; // moved into the body
    ///     kept = Some(n.spawn(async { sleep(Duration::from_secs(3600)).await; Ok(()) }));
    ///     n.spawn(async { Err::<(), _>("boom") });
    ///     Ok(())
    /// })
    /// .await;
    /// assert!(r.is_err());
    /// let reason = kept.unwrap().cancel_reason().unwrap();
    /// assert!(matches!(reason.origin(), CancelReason::Failure { task: Some(_), .. }));
    /// assert!(reason.to_string().contains("failed"));
    /// # });
    /// ```
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        CancelReason::of(self.cell.get().node())
    }

    /// The name the task was given by [`spawn_named`](crate::Nursery::spawn_named), if
    /// any (a polled child has none).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|n| async move {
    ///     let h = n.spawn_named("fetcher", async { Ok::<_, std::io::Error>(()) });
    ///     assert_eq!(h.name(), Some("fetcher"));
    ///     assert_eq!(n.spawn(async { Ok(()) }).name(), None);
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.cell.get().part().label().name_str()
    }

    /// Where the task was spawned: the call of [`spawn`](crate::Nursery::spawn) (or
    /// `try_spawn`, `spawn_named`, or a polled nursery's `spawn` or `try_spawn`) that
    /// made it.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|n| async move {
    ///     let h = n.spawn(async { Ok::<_, std::io::Error>(()) });
    ///     assert_eq!((h.spawned_at().file(), h.spawned_at().line()), (file!(), line!() - 1));
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn spawned_at(&self) -> &'static Location<'static> {
        self.cell.get().part().label().site()
    }

    /// Whether the task has finished (its future has been dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    /// # hatchery_smol::run(async {
    /// let mut handle = None;
    /// nursery(|n| {
    ///     handle = Some(n.spawn(async { Ok::<_, std::io::Error>(()) }));
    ///     async { Ok(()) }
    /// }).await.unwrap();
    /// assert!(handle.unwrap().is_finished()); // the nursery waited for it
    /// # });
    /// ```
    pub fn is_finished(&self) -> bool {
        HandleCell::finished(self.cell.get())
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("name", &self.name())
            .field("spawned_at", &format_args!("{}", self.spawned_at()))
            .field("finished", &self.is_finished())
            .field("cancel_reason", &self.cancel_reason())
            .finish()
    }
}

/// Future returned by [`TaskHandle::join`].
///
/// # Examples
///
/// ```
/// use hatchery::futures::Join;
/// use hatchery::nursery;
///
/// # hatchery_smol::run(async {
/// nursery(|n| async move {
///     let h = n.spawn(async { Ok::<_, std::io::Error>("done") });
///     let join: Join<&str> = h.join();
///     assert_eq!(join.await.unwrap(), "done");
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Join<T> {
    cell: HandleCell<T>,
}

impl<T> Join<T> {
    /// Cancels the task being joined, as [`TaskHandle::cancel`] does. The join then
    /// completes with [`JoinError::is_cancelled`], unless the task had already finished,
    /// or still returns (its value or its error) from a shielded part, as described
    /// there. No effect once the join has returned.
    ///
    /// This is how to give up waiting *and* stop the task, as Python's
    /// `asyncio.wait_for(task, t)` does: wait on `&mut join` in a scope with a
    /// deadline, then cancel and await what is left.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{move_on_after, nursery, sleep};
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|n| async move {
    ///     let h = n.spawn(async {
    ///         sleep(Duration::from_secs(3600)).await;
    ///         Ok::<_, std::io::Error>("slow")
    ///     });
    ///     let mut join = h.join();
    ///     // `&mut join`: the timeout stops the waiting, the join stays ours.
    ///     if move_on_after(Duration::from_millis(10), &mut join).await.is_none() {
    ///         join.cancel();
    ///         assert!(join.await.unwrap_err().is_cancelled());
    ///     }
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn cancel(&self) {
        if let Some(cell) = &self.cell.0 {
            cell.cancel(said(Location::caller(), None));
        }
    }

    /// Whether the task has finished (its future has been dropped). `true` once the
    /// join has returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|n| async move {
    ///     let mut join = n.spawn(async { Ok::<_, std::io::Error>(1) }).join();
    ///     assert_eq!((&mut join).await.unwrap(), 1);
    ///     assert!(join.is_finished());
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.cell.0.as_ref().is_none_or(HandleCell::finished)
    }
}

impl<T> Future for Join<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if context::current_cancelled() {
            return Poll::Pending;
        }
        let (output, node) = self.cell.get().with_node();
        let result = match output.take_or_wait(node, cx.waker()) {
            Ok(result) => result,
            Err(replaced) => {
                drop(replaced);
                // Awaited inside the child itself, or inside a nursery it opened: it would
                // wait for itself.
                let at = (node as *const Node).cast::<()>();
                if context::with_current(|c| c.is_some_and(|c| c.node.is_under(at))) {
                    panic!(
                        "hatchery: a task joins its own handle (awaited inside the task, or \
                         inside a nursery it opened): it would wait for itself forever"
                    );
                }
                return Poll::Pending;
            }
        };
        // A task that failed or panicked cancelled its nursery before it put its result,
        // so a join that took the failure sees the cancellation now, even if it came after
        // the check above (from another thread): it must not hand a sibling's failure to
        // code the failure cancelled. The result goes back for a later join.
        if matches!(&result, Err(e) if !e.is_cancelled()) && context::current_cancelled() {
            output.restore(node, result);
            return Poll::Pending;
        }
        // The result taken, lets go of the task (nothing to abandon).
        self.cell.0 = None;
        Poll::Ready(result)
    }
}

/// Terminated once it has returned the task's result (it then lets go of the task).
impl<T> futures_core::future::FusedFuture for Join<T> {
    fn is_terminated(&self) -> bool {
        self.cell.0.is_none()
    }
}

impl<T> fmt::Debug for Join<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join")
            .field("finished", &self.is_finished())
            .finish()
    }
}
