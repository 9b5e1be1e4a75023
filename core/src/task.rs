//! Tasks of a nursery: the runner that polls them, `TaskHandle`, and `start`.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;
use pin_project_lite::pin_project;

use crate::error::{JoinError, StartError};
use crate::node::{self, Hold, Node};
use crate::nursery::{Nursery, Panic, Shared};
use crate::rt::{self, Task};

/// How a task ended, minus its value.
pub(crate) enum End<E> {
    Value,
    Failed(E),
    Panicked(Panic),
    Cancelled,
}

/// Where a `start`ed task reports its end before it has called `started`.
pub(crate) trait Route<E>: Send + Sync {
    /// Takes the end if the task has not started yet; gives it back otherwise.
    fn end(&self, end: End<E>) -> Option<End<E>>;
}

#[allow(unsafe_code)]
mod raw;

use raw::{Body, Cell, Erased};
pub(crate) use raw::{Keeper, RawTask};

/// What a task shares with its [`TaskHandle`]: how it ended.
struct Output<T> {
    result: Mutex<Slot<T>>,
    waker: AtomicWaker,
}

impl<T> Output<T> {
    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        // No user code runs under this lock.
        self.result.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_finished(&self) -> bool {
        !matches!(*self.lock(), Slot::Running | Slot::Abandoned)
    }

    /// The result, once the task has finished. (A `Join` lets go of the task once it has
    /// the result, so nothing takes twice; it would read as a cancellation.)
    fn try_take(&self) -> Option<Result<T, JoinError>> {
        let mut slot = self.lock();
        match std::mem::replace(&mut *slot, Slot::Taken) {
            running @ (Slot::Running | Slot::Abandoned) => {
                *slot = running;
                None
            }
            Slot::Done(result) => Some(result),
            Slot::Taken => Some(Err(JoinError::cancelled())),
        }
    }

    /// Puts back a result that [`try_take`](Output::try_take) took but that the handle
    /// could not return yet.
    fn restore(&self, result: Result<T, JoinError>) {
        *self.lock() = Slot::Done(result);
    }

    /// The task finished with `result`: keeps it for the handle, or hands it back to be
    /// dropped (outside the lock) if the handle is gone.
    fn put(&self, result: Result<T, JoinError>) -> Option<Result<T, JoinError>> {
        let mut slot = self.lock();
        if let Slot::Abandoned = *slot {
            return Some(result);
        }
        *slot = Slot::Done(result);
        None
    }

    /// The handle is gone: hands back the result to be dropped (outside the lock) if the
    /// task has finished; a task still running will drop its own.
    fn abandon(&self) -> Option<Result<T, JoinError>> {
        let mut slot = self.lock();
        match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Running => {
                *slot = Slot::Abandoned;
                None
            }
            Slot::Done(result) => Some(result),
            Slot::Abandoned | Slot::Taken => None,
        }
    }
}

/// A task's result, as its handle sees it.
enum Slot<T> {
    Running,
    /// Running, and its handle is gone.
    Abandoned,
    Done(Result<T, JoinError>),
    Taken,
}

/// Where a task reports how it ended, besides its handle and its nursery: nowhere for a
/// spawned task (no room taken in its allocation), its `start` call for a started one.
pub(crate) trait RouteSlot<E>: Send + 'static {
    /// Whether `started` may move the task, so that its parent link must be read under
    /// its lock.
    const STARTED: bool;

    fn take(&mut self) -> Option<Arc<dyn Route<E>>>;
}

impl<E> RouteSlot<E> for () {
    const STARTED: bool = false;

    fn take(&mut self) -> Option<Arc<dyn Route<E>>> {
        None
    }
}

impl<E: 'static> RouteSlot<E> for Option<Arc<dyn Route<E>>> {
    const STARTED: bool = true;

    fn take(&mut self) -> Option<Arc<dyn Route<E>>> {
        Option::take(self)
    }
}

/// A handle's view of a task's allocation.
trait HasOutput<T>: Send + Sync {
    fn output(&self) -> &Output<T>;
}

/// The shared part of a task (besides its node): its output. `F`, `E` and `R` name the
/// run state that goes with it.
pub(crate) struct TaskBody<F, T, E, R> {
    output: Output<T>,
    _run: PhantomData<RunTypes<F, E, R>>,
}

/// Names the run state's types without owning them (and without affecting auto traits).
type RunTypes<F, E, R> = fn() -> (F, E, R);

pin_project! {
    /// What only the runner (the executor's [`RawTask`]) touches.
    #[project = RunStateProj]
    pub(crate) struct RunState<F, E, R> {
        #[pin]
        fut: Option<F>,
        // The task's node, to install as the current one while it is polled: this very
        // allocation, a reference cycle broken when the task finishes.
        own: Option<Arc<Node>>,
        // Taken when the task finishes: `None` means done.
        nursery: Option<Arc<Shared<E>>>,
        route: R,
    }
}

type TaskCell<F, T, E, R> = Node<Cell<TaskBody<F, T, E, R>>>;

/// Spawns `fut` as a child of `nursery`, cancelled through `parent` (the nursery's node,
/// or the caller's for a task that has not `started` yet). The caller has already counted
/// the child with `add_child`. `built` sees the task's node before it is spawned (no lock
/// may be held across the spawn: the executor may run or drop the task in it). Returns
/// the task's allocation.
fn spawn_cell<F, T, E, R>(
    nursery: &Arc<Shared<E>>,
    parent: &Arc<Node>,
    fut: F,
    route: R,
    built: impl FnOnce(&Arc<TaskCell<F, T, E, R>>),
) -> Arc<TaskCell<F, T, E, R>>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    R: RouteSlot<E>,
{
    // Frees what children finished on other threads left, and makes this the nursery's
    // thread (see `Shared::bury`).
    nursery.reap(rt::thread_key());
    let body = TaskBody {
        output: Output {
            result: Mutex::new(Slot::Running),
            waker: AtomicWaker::new(),
        },
        _run: PhantomData,
    };
    let state = RunState {
        fut: Some(fut),
        own: None,
        nursery: Some(nursery.clone()),
        route,
    };
    let (raw, cell) = RawTask::new(parent, R::STARTED, body, state, |cell, state| {
        let node: Arc<Node> = cell.clone();
        *state.project().own = Some(node);
    });
    built(&cell);
    nursery.rt.spawn(Task::raw(raw));
    cell
}

/// Spawns a task whose handle the caller wants (see [`spawn_cell`]).
pub(crate) fn spawn<F, T, E>(nursery: &Arc<Shared<E>>, fut: F) -> TaskHandle<T>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    TaskHandle {
        cell: HandleCell(Some(spawn_cell(nursery, &nursery.node, fut, (), |_| {}))),
    }
}

impl<F, T, E, R> HasOutput<T> for Cell<TaskBody<F, T, E, R>>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    R: RouteSlot<E>,
{
    fn output(&self) -> &Output<T> {
        &self.body().output
    }
}

impl<F, T, E, R> Body for TaskBody<F, T, E, R>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    R: RouteSlot<E>,
{
    type State = RunState<F, E, R>;

    #[inline]
    fn poll(
        &self,
        node: &Node<dyn Erased>,
        state: Pin<&mut RunState<F, E, R>>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let mut this = state.project();
        if this.nursery.is_none() {
            return Poll::Ready(());
        }
        // A task is linked into its parent's child list when it first suspends (or earlier:
        // a started task when its first poll begins, a spawned one when it opens a nursery
        // or polls a `start`), always within its first poll: one that never was is in it.
        let first = node.never_linked();
        let (end, value) = if !first && node.should_drop() {
            (End::Cancelled, None)
        } else {
            if first {
                if R::STARTED {
                    // A started task joins its parent's child list now, not when it first
                    // suspends: a walk up from inside it stops at its root (`started` may
                    // move it), so the parent's cancellation must find it through the
                    // list, also during this poll.
                    this.own.as_ref().expect("task context").link();
                } else {
                    // Spawned: the parent is the nursery's node, and stays so.
                    let nursery = this.nursery.as_ref();
                    node.inherit(nursery.is_some_and(|n| n.node.is_cancelled()));
                }
            }
            let was_cancelled = node.is_marked();
            let fut = this.fut.as_mut().as_pin_mut().expect("task future present");
            let own = &mut *this.own;
            let rt = &this.nursery.as_ref().expect("task running").rt;
            match catch_unwind(AssertUnwindSafe(|| {
                rt::enter_with(own, rt, cx.waker(), || fut.poll(cx))
            })) {
                Ok(Poll::Pending) => {
                    // Registering only now is enough: a cancellation from here on wakes
                    // us, and one that came earlier is seen by `should_drop` below.
                    node.register(cx.waker());
                    this.own.as_ref().expect("task context").link();
                    if !node.should_drop() {
                        if !was_cancelled && node.is_marked() {
                            // Cancelled during this poll, perhaps before our waker was
                            // registered, with something inside that must finish first:
                            // poll again, so that the scopes in it see the cancellation.
                            cx.waker().wake_by_ref();
                        }
                        return Poll::Pending;
                    }
                    (End::Cancelled, None)
                }
                Ok(Poll::Ready(Ok(v))) => (End::Value, Some(v)),
                Ok(Poll::Ready(Err(e))) => (End::Failed(e), None),
                Err(p) => (End::Panicked(p), None),
            }
        };
        self.finish(node, this, end, value, cx.waker());
        Poll::Ready(())
    }

    fn abort(&self, node: &Node<dyn Erased>, state: Pin<&mut RunState<F, E, R>>) {
        // The executor dropped the task before it finished (e.g. at shutdown): it counts
        // as cancelled, so the nursery is not left waiting for it.
        let this = state.project();
        if this.nursery.is_some() {
            let waker = Waker::from(Arc::new(NoWake));
            self.finish(node, this, End::Cancelled, None, &waker);
        }
    }
}

impl<F, T, E, R> TaskBody<F, T, E, R>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    R: RouteSlot<E>,
{
    /// Drops the task's future, then reports its end: errors and panics to the nursery
    /// (or to `start`), the value to the handle, and finally the child count, so that by
    /// the time the nursery sees zero children every child future has been dropped and
    /// every handle has its result.
    fn finish(
        &self,
        node: &Node<dyn Erased>,
        mut this: RunStateProj<'_, F, E, R>,
        mut end: End<E>,
        mut value: Option<T>,
        waker: &Waker,
    ) {
        let mut fut = this.fut.as_mut();
        let drop_fut = AssertUnwindSafe(move || fut.set(None));
        let dropped = match end {
            // Cancelled at a suspension point: the future's locals are dropped now, as
            // part of the task, in its context (a `Drop` may read the clock or spawn).
            // A future that returned or panicked has dropped them already.
            End::Cancelled => {
                let rt = &this.nursery.as_ref().expect("task running").rt;
                rt::drop_cancelled(this.own, rt, waker, || catch_unwind(drop_fut))
            }
            _ => catch_unwind(drop_fut),
        };
        if let Err(p) = dropped {
            if !matches!(end, End::Panicked(_)) {
                end = End::Panicked(p);
            }
        }
        if R::STARTED {
            // Nobody takes a started task's value: drop it with the future, so that a
            // panic in its destructor is the task's, and goes where its end goes (to
            // `start`'s caller if it ended before `started`).
            if let Some(v) = value.take() {
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| drop(v))) {
                    if !matches!(end, End::Panicked(_)) {
                        end = End::Panicked(p);
                    }
                }
            }
        }
        let end = match this.route.take() {
            // The route drops what nobody takes any more (an abandoned `start`'s end, a
            // value `started` handed to a `start` dropped since): a panic in that drop is
            // the task's too. (The route goes inside, as it may be the last reference.)
            Some(route) => catch_unwind(AssertUnwindSafe(move || route.end(end)))
                .unwrap_or_else(|p| Some(End::Panicked(p))),
            None => Some(end),
        };
        let nursery = this.nursery.take().expect("hatchery: task finished twice");
        let result = match end {
            Some(End::Value) => match value.take() {
                Some(v) => Ok(v),
                None => Err(JoinError::cancelled()),
            },
            Some(End::Failed(e)) => {
                nursery.fail(e);
                Err(JoinError::failed())
            }
            Some(End::Panicked(p)) => {
                nursery.panicked(p);
                Err(JoinError::panicked())
            }
            Some(End::Cancelled) => {
                nursery.note_cancelled_child();
                Err(JoinError::cancelled())
            }
            // Ended before `started`: it was `start`'s, whose caller had the end.
            None => Err(JoinError::cancelled()),
        };
        // A started task has no handle. A spawned one whose handle is gone is held only
        // by the runner and its own context, and no handle can appear later. Either way
        // nobody could read the result, so it is dropped here, without a lock.
        let watched = !R::STARTED
            && this
                .own
                .as_ref()
                .is_none_or(|own| Arc::strong_count(own) > 2);
        let unwanted = if watched {
            let output = &self.output;
            let unwanted = output.put(result);
            output.waker.wake();
            unwanted
        } else {
            Some(result)
        };
        if let Some(result) = unwanted {
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| drop(result))) {
                // The value's destructor panicked: a panic of the task like any other.
                nursery.panicked(p);
            }
        }
        // A value returned by a future whose own drop then panicked: the panic won, and
        // the value goes now, before the nursery hears that this child is done.
        if let Some(v) = value {
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| drop(v))) {
                nursery.panicked(p);
            }
        }
        // A spawned task that never suspended is in no child list, and nothing else
        // moves it: it keeps its parent link until its allocation goes.
        if R::STARTED || node.is_linked() {
            node.detach();
        }
        // A scope future first polled in this task and kept elsewhere no longer follows
        // the task's cancellation (see `Node::finish`).
        node.finish();
        // Break the cycle through the context (its node is this allocation).
        let own = match this.own.take() {
            // Held by the runner besides, which lets go right after, and by no handle:
            // ours will be the last, so have the nursery's thread free it if this is
            // another.
            Some(own) if Arc::strong_count(&own) == 2 => nursery.bury(own),
            own => own,
        };
        nursery.child_done();
        drop(own);
    }
}

/// The waker of a task the executor dropped: nothing polls it any more.
struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// A handle to a task spawned with [`Nursery::spawn`]: wait for its value, cancel just
/// that task, or ask whether it has finished.
///
/// Dropping the handle does not cancel the task; it keeps running as part of its
/// nursery. Its value is dropped with the handle if the task has finished, or else as
/// soon as the task finishes (a panic in that drop is then a panic of the task).
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

/// What a handle (or its `Join`) holds of its task. When it goes before the result was
/// taken, the result is dropped: here if the task has finished, by the task otherwise.
struct HandleCell<T>(Option<Arc<Node<dyn HasOutput<T>>>>);

impl<T> HandleCell<T> {
    fn get(&self) -> &Arc<Node<dyn HasOutput<T>>> {
        self.0
            .as_ref()
            .expect("hatchery: task handle used after its result was taken")
    }

    /// Moves the reference out, leaving nothing to abandon.
    fn take(&mut self) -> HandleCell<T> {
        HandleCell(self.0.take())
    }

    /// Lets go of the task after its result was taken.
    fn release(&mut self) {
        self.0 = None;
    }
}

impl<T> Drop for HandleCell<T> {
    fn drop(&mut self) {
        if let Some(cell) = &self.0 {
            // Dropped outside the slot's lock: it may run user code.
            drop(cell.ext.output().abandon());
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
    /// When polled after it returned (outside a cancelled scope).
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
    pub fn cancel(&self) {
        self.cell.get().cancel(node::EXPLICIT);
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
        self.cell.get().ext.output().is_finished()
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("finished", &self.is_finished())
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
    pub fn cancel(&self) {
        if let Some(cell) = &self.cell.0 {
            cell.cancel(node::EXPLICIT);
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
        self.cell
            .0
            .as_ref()
            .is_none_or(|c| c.ext.output().is_finished())
    }
}

impl<T> Future for Join<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if rt::current_cancelled() {
            return Poll::Pending;
        }
        let output = self.cell.get().ext.output();
        let result = match output.try_take() {
            Some(result) => result,
            None => {
                output.waker.register(cx.waker());
                match output.try_take() {
                    Some(result) => result,
                    None => return Poll::Pending,
                }
            }
        };
        // A task that failed or panicked cancelled its nursery before it put its result,
        // so a join that took the failure sees the cancellation now, even if it came after
        // the check above (from another thread): it must not hand a sibling's failure to
        // code the failure cancelled. The result goes back for a later join.
        if matches!(&result, Err(e) if !e.is_cancelled()) && rt::current_cancelled() {
            output.restore(result);
            return Poll::Pending;
        }
        self.cell.release();
        Poll::Ready(result)
    }
}

impl<T> fmt::Debug for Join<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join")
            .field("finished", &self.is_finished())
            .finish()
    }
}

// ----- start -----

/// The token a task started with [`Nursery::start`] uses to say it is ready.
///
/// Call [`started`](TaskStatus::started) once the task is ready (a server is listening,
/// a connection is open): `start` then returns the value, and the task continues as a
/// child of the nursery. Dropping the token without calling it is allowed; `start` then
/// fails with [`StartError::NotStarted`] when the task finishes.
///
/// # Examples
///
/// ```
/// use hatchery::{nursery, StartError, TaskStatus};
///
/// # hatchery_smol::run(async {
/// nursery(|n| async move {
///     let r = n
///         .start(|status: TaskStatus<u16>| async move {
///             drop(status); // gave up before it was ready
///             Ok::<_, std::io::Error>(())
///         })
///         .await;
///     assert!(matches!(r, Err(StartError::NotStarted)));
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
pub struct TaskStatus<V> {
    sink: Arc<dyn StartSink<V>>,
}

trait StartSink<V>: Send + Sync {
    fn started(&self, value: V);
}

impl<V> TaskStatus<V> {
    /// Hands `value` to the caller of [`Nursery::start`] and moves this task into the
    /// nursery. From now on an error or panic of the task goes to the nursery.
    ///
    /// If the caller's scope is cancelled already (the task is then running in a shield
    /// or has not reached a checkpoint yet), this does nothing, as in trio: `value` is
    /// dropped, the task stays under the caller's cancellation, and `start` never
    /// returns. Calling it after the caller dropped `start` does nothing either.
    ///
    /// It may also be called before the task first runs, in `start`'s closure itself
    /// (`n.start(|status| { status.started(port); serve(listener) })`): the task then
    /// belongs to the nursery from its start, and the caller's scope is checked when
    /// `start` is first polled.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    /// # hatchery_smol::run(async {
    /// nursery(|n| async move {
    ///     let v = n.start(|status| async move {
    ///         status.started("ready");
    ///         Ok(())
    ///     }).await?;
    ///     assert_eq!(v, "ready");
    ///     Ok::<_, anyhow::Error>(())
    /// }).await.unwrap();
    /// # });
    /// ```
    pub fn started(self, value: V) {
        self.sink.started(value);
    }
}

impl<V> fmt::Debug for TaskStatus<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskStatus").finish_non_exhaustive()
    }
}

enum StartState<V, E> {
    Waiting,
    Started(V),
    Failed(E),
    Panicked(Panic),
    NotStarted,
    /// The value has been handed out: the task belongs to the nursery.
    Over,
    /// `Start` was dropped from outside before the task started (C8): the task is
    /// cancelled under the caller's scope, and an error or panic of it goes nowhere.
    Abandoned,
}

struct StartShared<V, E> {
    state: Mutex<StartStateFull<V, E>>,
    waker: AtomicWaker,
    nursery_node: Arc<Node>,
}

struct StartStateFull<V, E> {
    state: StartState<V, E>,
    child: Option<Arc<Node>>,
}

impl<V, E> StartShared<V, E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, StartStateFull<V, E>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<V: Send, E: Send> StartSink<V> for StartShared<V, E> {
    fn started(&self, value: V) {
        let mut s = self.lock();
        if let StartState::Waiting = s.state {
            if let Some(child) = &s.child {
                if !child.reparent(&self.nursery_node) {
                    // The caller is cancelled: the task stays under its cancellation
                    // and `start` never returns. The value is dropped, outside the lock.
                    drop(s);
                    drop(value);
                    return;
                }
            }
            s.state = StartState::Started(value);
            drop(s);
            self.waker.wake();
        }
    }
}

impl<V: Send, E: Send> Route<E> for StartShared<V, E> {
    fn end(&self, end: End<E>) -> Option<End<E>> {
        let mut s = self.lock();
        match s.state {
            StartState::Waiting => {}
            StartState::Abandoned => {
                // Nobody is left to report it to (C8); dropped outside the lock.
                drop(s);
                drop(end);
                return None;
            }
            _ => return Some(end),
        }
        s.state = match end {
            End::Value | End::Cancelled => StartState::NotStarted,
            End::Failed(e) => StartState::Failed(e),
            End::Panicked(p) => StartState::Panicked(p),
        };
        drop(s);
        self.waker.wake();
        None
    }
}

impl<E: Send + 'static> Nursery<E> {
    /// Starts a task and waits until it signals that it is ready, returning the value it
    /// passes to [`TaskStatus::started`] (trio's `nursery.start`).
    ///
    /// `f` receives the [`TaskStatus`] token and returns the task's future. Until the task
    /// calls `started`, it runs under the *caller's* cancellation, and an error or panic
    /// it produces comes out of `start` instead of failing the nursery. After `started`, it
    /// is an ordinary child of the nursery. A pending `start` keeps the nursery open.
    ///
    /// # Errors
    ///
    /// * [`StartError::Failed`] with the task's error if it failed before `started`;
    /// * [`StartError::NotStarted`] if it ended without calling `started`: it returned,
    ///   or was cancelled, by the executor or by the scope of an earlier poll of a kept
    ///   `start` (a timeout it was lent to, say). A cancellation of the scope that awaits
    ///   `start` makes `start` itself never return;
    /// * [`StartError::Closed`] if the nursery has already finished.
    ///
    /// # Cancel safety
    ///
    /// If the enclosing scope is cancelled while `start` waits, the task (still under the
    /// caller's cancellation) is cancelled too, `start` waits for it to stop, and then the
    /// scope ends the work: `start` never returns, even if the task calls `started` in a
    /// shielded part after the cancellation (that call is ignored), unless the task then
    /// fails or panics: its error comes out of `start` (`StartError::Failed`), and its
    /// panic is resumed there, as from a nursery that fails while cancelled. If the task
    /// had called `started` before, it keeps running in the nursery, and `start` returns
    /// its value when next polled, even in a scope cancelled since: the value is handed
    /// over, not lost. Dropping the future from outside hatchery cancels a task that has
    /// not started yet, without waiting for it; an error or panic of that task before
    /// `started` is then dropped with it (C8: nobody is left to report it to). A `start`
    /// polled once and then kept without being polled again (the loser of a `select` that
    /// is not dropped) holds on to the caller's scopes: a cancelled one cannot end its
    /// body until the `start` is polled again or dropped. Drop what you do not poll. A
    /// kept `start` awaited again under another scope (after the scope of its first poll
    /// has ended, say) takes its task, if not started yet and not cancelled there, along:
    /// the task runs under the cancellation of that scope from then on.
    ///
    /// # Panics
    ///
    /// When first polled outside a hatchery runtime. A panic of the task before `started`
    /// is resumed here. When polled after it returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{nursery, sleep};
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|n| async move {
    ///     let port = n
    ///         .start(|ready| async move {
    ///             sleep(Duration::from_millis(1)).await; // bind a socket...
    ///             ready.started(8080u16);
    ///             sleep(Duration::from_millis(1)).await; // ...then serve
    ///             Ok(())
    ///         })
    ///         .await?;
    ///     assert_eq!(port, 8080);
    ///     Ok::<_, anyhow::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn start<V, T, F, Fut>(&self, f: F) -> Start<Fut, V, E>
    where
        F: FnOnce(TaskStatus<V>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        V: Send + 'static,
    {
        let shared = Arc::new(StartShared {
            state: Mutex::new(StartStateFull {
                state: StartState::Waiting,
                child: None,
            }),
            waker: AtomicWaker::new(),
            nursery_node: self.shared.node.clone(),
        });
        let fut = f(TaskStatus {
            sink: shared.clone(),
        });
        Start {
            fut: Some(fut),
            nursery: self.clone(),
            shared,
            hold: None,
            done: false,
        }
    }
}

/// Future returned by [`Nursery::start`].
///
/// # Examples
///
/// ```
/// use hatchery::futures::Start;
/// use hatchery::nursery;
///
/// # hatchery_smol::run(async {
/// nursery(|n| async move {
///     // An error before `started` comes out of `start`; the nursery does not fail.
///     let start: Start<_, (), &str> = n.start(|_status| async { Err::<(), _>("cannot bind") });
///     assert_eq!(start.await.unwrap_err().into_inner(), Some("cannot bind"));
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Start<Fut, V, E> {
    fut: Option<Fut>,
    nursery: Nursery<E>,
    shared: Arc<StartShared<V, E>>,
    hold: Option<Hold>,
    /// It has returned `Ready`.
    done: bool,
}

impl<Fut, V, E> Unpin for Start<Fut, V, E> {}

impl<Fut, V, E> fmt::Debug for Start<Fut, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Start").finish_non_exhaustive()
    }
}

impl<Fut, T, V, E> Future for Start<Fut, V, E>
where
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    V: Send + 'static,
    E: Send + 'static,
{
    type Output = Result<V, StartError<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        assert!(!this.done, "`Start` polled after completion");
        if let Some(fut) = this.fut.take() {
            let caller = rt::current();
            if this.nursery.shared.add_child().is_err() {
                this.done = true;
                return Poll::Ready(Err(StartError::Closed));
            }
            // The task runs elsewhere under the caller's scopes: those between here and
            // the caller's task root join their parents' lists, as for a nursery, so that
            // an enclosing cancellation finds the task without waiting for the caller to
            // poll them again.
            caller.node.link_ancestors();
            this.hold = Some(Hold::new(&caller.node));
            let route: Arc<dyn Route<E>> = this.shared.clone();
            // The child node is in place before the task can run and call `started`.
            let start = &this.shared;
            spawn_cell(
                &this.nursery.shared,
                &caller.node,
                fut,
                Some(route),
                |cell| {
                    let node: Arc<Node> = cell.clone();
                    let mut s = start.lock();
                    // `started` was called before this first poll (in `f` itself, or by
                    // a thread `f` handed the token to): move the task now, as `started`
                    // does once the task exists. In a cancelled caller the call is
                    // ignored, as a late `started` is.
                    if matches!(s.state, StartState::Started(_))
                        && !node.reparent(&start.nursery_node)
                    {
                        let ignored = std::mem::replace(&mut s.state, StartState::Waiting);
                        s.child = Some(node);
                        drop(s);
                        drop(ignored);
                        return;
                    }
                    s.child = Some(node);
                },
            );
        } else if this.hold.is_some() {
            // Kept past the scope of its last poll and awaited in another (the loser of a
            // race, awaited again): a task that has not started runs under the
            // cancellation of whoever awaits it, so it moves under this caller's scope,
            // and so does the hold.
            let old = rt::with_current(|c| {
                // Awaited outside hatchery (a plain thread's `block_on`): nothing to
                // follow.
                let node = c?.node;
                if this.hold.as_ref().is_none_or(|hold| hold.is_on(node)) {
                    return None;
                }
                let s = this.shared.lock();
                let (StartState::Waiting, Some(child)) = (&s.state, &s.child) else {
                    return None;
                };
                // Awaited inside the task itself (or below it): it cannot move under
                // itself.
                if node.is_within(child) {
                    return None;
                }
                node.link_ancestors();
                // Refused if the task or its old scope is cancelled: then it is, or now
                // takes that cancellation, and ends.
                child.reparent(node);
                drop(s);
                this.hold.replace(Hold::new(node))
            });
            drop(old);
        }
        this.shared.waker.register(cx.waker());
        let mut s = this.shared.lock();
        let state = std::mem::replace(&mut s.state, StartState::Over);
        let out = match state {
            StartState::Waiting => {
                s.state = StartState::Waiting;
                return Poll::Pending;
            }
            StartState::Over | StartState::Abandoned => return Poll::Pending,
            StartState::Started(v) => Ok(v),
            StartState::Failed(e) => Err(StartError::Failed(e)),
            StartState::Panicked(p) => {
                drop(s);
                this.hold.take();
                this.done = true;
                resume_unwind(p);
            }
            StartState::NotStarted => {
                if rt::current_cancelled() {
                    // The caller's scope cancelled the task: let that scope end the work.
                    // (Kept: awaited again outside that scope, this reports it.)
                    s.state = StartState::NotStarted;
                    drop(s);
                    this.hold.take();
                    return Poll::Pending;
                }
                Err(StartError::NotStarted)
            }
        };
        drop(s);
        this.hold.take();
        this.done = true;
        Poll::Ready(out)
    }
}

impl<Fut, V, E> Drop for Start<Fut, V, E> {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        match s.state {
            // Dropped from outside while the task has not started: cancel it.
            StartState::Waiting if self.hold.is_some() => {
                s.state = StartState::Abandoned;
                if let Some(child) = &s.child {
                    child.cancel(node::EXPLICIT);
                }
            }
            // An end nobody took (a value `started` handed over, an error, a panic): it
            // is dropped here, by whoever dropped the `Start`, not kept for as long as
            // the task runs (and then dropped where a panic in its drop is lost).
            StartState::Started(_) | StartState::Failed(_) | StartState::Panicked(_) => {
                let unclaimed = std::mem::replace(&mut s.state, StartState::Over);
                drop(s);
                drop(unclaimed);
            }
            _ => {}
        }
    }
}
