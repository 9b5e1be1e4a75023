//! The runner: what the executor polls for a task of a nursery, and how a task reports
//! its end (to its handle, to its nursery or, before it has started, to its `start`).

use std::future::Future;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use pin_project_lite::pin_project;

use super::graves::Graves;
use super::handle::{Output, TaskHandle};
use super::raw::{self, Body, Label, Own, PartRef};
use crate::context;
use crate::diagnostics;
use crate::error::JoinError;
pub(crate) use crate::group::Panic;
use crate::group::{drop_caught, Exit};
use crate::node::{MovableLink, Node};
use crate::rt::Runtime;
use crate::timer::TimerSlot;
use crate::trace;

/// How a task ended, minus its value (which stays in the task's cell for its handle).
pub(crate) type End<E> = Exit<(), E>;

/// Where a `start`ed task reports its end before it has called `started`.
pub(crate) trait Route<E>: Send + Sync {
    /// Takes the end if the task has not started yet; gives it back otherwise.
    fn end(&self, end: End<E>) -> Option<End<E>>;

    /// Whether the task's value goes to a handle: it has started, and its `start` made
    /// one (`start_with_handle`). Otherwise nobody takes it.
    fn wants_value(&self) -> bool;
}

/// The group a task belongs to, its nursery: where the task reports how it ended. The
/// nursery implements it, so that this layer does not name the nursery.
pub(crate) trait Group: Send + Sync + 'static {
    /// The error type of the group's tasks.
    type Error: Send + 'static;

    /// The runtime the group's tasks run on.
    fn runtime(&self) -> &Arc<dyn Runtime>;

    /// The group's node: the parent of the tasks spawned into it.
    fn node(&self) -> &Arc<Node>;

    /// The span the spans of the group's tasks are children of (`tracing` feature).
    fn trace_parent(&self) -> trace::Parent;

    /// Where the allocations of the group's tasks that finished on another thread wait
    /// for the group's thread to free them.
    fn graves(&self) -> &Graves;

    /// A task failed with `error`: the group records it, and is cancelled. `task` names
    /// the task (`None`: the group's body), for the cancel reason.
    fn fail(&self, error: Self::Error, task: Option<&Label>);

    /// A task panicked: the group records the panic, and is cancelled (`task` as in
    /// [`fail`](Group::fail)).
    fn panicked(&self, panic: Panic, task: Option<&Label>);

    /// A task ended cancelled (before [`child_done`](Group::child_done)).
    fn note_cancelled_child(&self);

    /// A task has finished: its future is dropped, its end reported.
    fn child_done(&self);
}

/// Where a task reports how it ended, besides its handle and its nursery: nowhere for a
/// spawned task (no room taken in its allocation), its `start` call for a started one.
pub(crate) trait RouteSlot<E>: Send + 'static {
    /// Whether `started` may move the task, so that its parent link must be read under
    /// its lock.
    const STARTED: bool;

    /// Where the task keeps its parent link if `started` may move it (in the body,
    /// which the node reaches through `&self`): a [`MovableLink`] for a started task,
    /// nothing for a spawned one.
    type Link: Default + Send + Sync + 'static;

    fn movable_link(link: &Self::Link) -> Option<&MovableLink>;

    fn take(&mut self) -> Option<Arc<dyn Route<E>>>;

    /// Whether a started task's value goes to a handle (see [`Route::wants_value`]).
    fn wants_value(&self) -> bool;
}

impl<E> RouteSlot<E> for () {
    const STARTED: bool = false;

    type Link = ();

    fn movable_link((): &()) -> Option<&MovableLink> {
        None
    }

    fn take(&mut self) -> Option<Arc<dyn Route<E>>> {
        None
    }

    fn wants_value(&self) -> bool {
        false
    }
}

impl<E: 'static> RouteSlot<E> for Option<Arc<dyn Route<E>>> {
    const STARTED: bool = true;

    type Link = MovableLink;

    fn movable_link(link: &MovableLink) -> Option<&MovableLink> {
        Some(link)
    }

    fn take(&mut self) -> Option<Arc<dyn Route<E>>> {
        Option::take(self)
    }

    fn wants_value(&self) -> bool {
        self.as_ref().is_some_and(|route| route.wants_value())
    }
}

/// The shared part of a task (besides its node): its output. `K`, `G` and `R` name the
/// run state that goes with it.
pub(crate) struct TaskBody<K, T, G, R: RouteSlot<G::Error>>
where
    G: Group,
{
    output: Output<T>,
    /// The parent link of a started task (nothing for a spawned one).
    link: R::Link,
    /// Entered around every poll (`tracing` feature; nothing without it). Here, where
    /// the runner reads it through `&self`, rather than in the run state it hands on.
    span: trace::Span,
    _run: PhantomData<RunTypes<K, G, R>>,
}

/// Names the run state's types without owning them (and without affecting auto traits).
type RunTypes<K, G, R> = fn() -> (K, G, R);

/// How a task's run state keeps its future: in place (`Option<F>`), or apart, in a box of
/// its own ([`Apart`], for a future larger than [`IN_PLACE_MAX`](super::IN_PLACE_MAX)).
pub(crate) trait Kept: Send + 'static {
    /// What the future returns.
    type Output;

    /// Polls the future.
    ///
    /// # Panics
    ///
    /// Once [`end`](Kept::end) has dropped it.
    fn poll_kept(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output>;

    /// Drops the future (its destructors run now, in the task's context), keeping the
    /// memory a box of its own took: that goes with the task's allocation, on the
    /// nursery's thread (`Graves`), unless [`release`](Kept::release) frees it first.
    fn end(self: Pin<&mut Self>);

    /// Frees the memory that [`end`](Kept::end) kept, for a task whose handle keeps the
    /// allocation after its end.
    fn release(self: Pin<&mut Self>);
}

impl<F: Future + Send + 'static> Kept for Option<F> {
    type Output = F::Output;

    #[inline(always)]
    fn poll_kept(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.as_pin_mut().expect("task future present").poll(cx)
    }

    #[inline]
    fn end(mut self: Pin<&mut Self>) {
        self.set(None);
    }

    #[inline(always)]
    fn release(self: Pin<&mut Self>) {}
}

/// A future kept in a box of its own, whose memory outlives the future until the box is
/// released: a task that ends on another thread than its nursery's does not free it
/// there (freed at the task's end, into the arena of the thread that allocated it, the
/// box made the benchmark's `spawn_join_1k`, a spawn and join of a 1 KiB future, about
/// 1.6x as slow on tokio's multi-thread runtime).
pub(crate) struct Apart<F>(Option<Pin<Box<Option<F>>>>);

impl<F> Apart<F> {
    fn new(fut: F) -> Apart<F> {
        Apart(Some(Box::pin(Some(fut))))
    }
}

impl<F: Future + Send + 'static> Kept for Apart<F> {
    type Output = F::Output;

    #[inline]
    fn poll_kept(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let boxed = self.get_mut().0.as_mut().expect("task future present");
        boxed.as_mut().poll_kept(cx)
    }

    fn end(self: Pin<&mut Self>) {
        if let Some(boxed) = self.get_mut().0.as_mut() {
            boxed.set(None);
        }
    }

    fn release(self: Pin<&mut Self>) {
        self.get_mut().0 = None;
    }
}

pin_project! {
    /// What only the runner (the executor's [`RawTask`]) touches.
    #[project = RunStateProj]
    pub(crate) struct RunState<K, G, R> {
        // The future, in place or apart (see `Kept`).
        #[pin]
        fut: K,
        // (The task's node, installed as the current one while it is polled, is this
        // very allocation: the executor's reference to it, lent for each poll, `Own`.)
        // Taken when the task finishes: `None` means done.
        group: Option<Arc<G>>,
        route: R,
        // The deadlines of the scopes and sleeps the task polls (see `crate::timer`),
        // dropped when it finishes.
        timers: TimerSlot,
    }
}

/// Spawns `fut` as a child of `group`, cancelled through `parent` (the group's node,
/// or the caller's for a task that has not `started` yet). The caller has already counted
/// the child with `add_child`. `built`, if any, gets the task's node before it is spawned
/// (no lock may be held across the spawn: the executor may run or drop the task in it).
/// Returns the task's allocation, which holds the future in place, or boxed if it is
/// larger than [`IN_PLACE_MAX`](super::IN_PLACE_MAX) (so that a handle kept after the
/// task has ended does not keep the future's room).
pub(crate) fn spawn_cell<F, T, G, R>(
    group: &Arc<G>,
    parent: &Arc<Node>,
    fut: F,
    route: R,
    label: Label,
    built: Option<impl FnOnce(Arc<Node>)>,
) -> PartRef<Output<T>>
where
    F: Future<Output = Result<T, G::Error>> + Send + 'static,
    T: Send + 'static,
    G: Group,
    R: RouteSlot<G::Error>,
{
    if const { super::apart::<F>() } {
        spawn_in_cell(group, parent, Apart::new(fut), route, label, built)
    } else {
        spawn_in_cell(group, parent, Some(fut), route, label, built)
    }
}

/// [`spawn_cell`], with the future kept as `fut` keeps it.
fn spawn_in_cell<K, T, G, R>(
    group: &Arc<G>,
    parent: &Arc<Node>,
    fut: K,
    route: R,
    label: Label,
    built: Option<impl FnOnce(Arc<Node>)>,
) -> PartRef<Output<T>>
where
    K: Kept<Output = Result<T, G::Error>>,
    T: Send + 'static,
    G: Group,
    R: RouteSlot<G::Error>,
{
    // Frees what children finished on other threads left, and makes this the group's
    // thread (see `Graves::bury`).
    group.graves().reap(context::thread_mark());
    let span = trace::Span::task(&group.trace_parent(), label.name_str(), label.site());
    let body = TaskBody {
        output: Output::new(label),
        link: R::Link::default(),
        span,
        _run: PhantomData,
    };
    let state = RunState {
        fut,
        group: Some(group.clone()),
        route,
        timers: TimerSlot::default(),
    };
    raw::spawn(group.runtime(), parent, body, state, built)
}

/// The handle of a task that [`spawn_cell`] made.
pub(crate) fn handle_of<T>(cell: PartRef<Output<T>>) -> TaskHandle<T> {
    TaskHandle::new(cell)
}

/// Spawns a task whose handle the caller wants (see [`spawn_cell`]), called `label`.
pub(crate) fn spawn<F, T, G>(group: &Arc<G>, fut: F, label: Label) -> TaskHandle<T>
where
    F: Future<Output = Result<T, G::Error>> + Send + 'static,
    T: Send + 'static,
    G: Group,
{
    let built = None::<fn(Arc<Node>)>;
    TaskHandle::new(spawn_cell(group, group.node(), fut, (), label, built))
}

impl<K, T, G, R> Body for TaskBody<K, T, G, R>
where
    K: Kept<Output = Result<T, G::Error>>,
    T: Send + 'static,
    G: Group,
    R: RouteSlot<G::Error>,
{
    type State = RunState<K, G, R>;
    type Part = Output<T>;

    fn part(&self) -> &Output<T> {
        &self.output
    }

    fn label(&self) -> &Label {
        self.output.label()
    }

    fn movable_link(&self) -> Option<&MovableLink> {
        R::movable_link(&self.link)
    }

    #[inline]
    fn poll(
        &self,
        node: &Node,
        own: &mut Own,
        state: Pin<&mut RunState<K, G, R>>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let _entered = self.span.enter();
        let mut this = state.project();
        if this.group.is_none() {
            return Poll::Ready(());
        }
        // A task is linked into its parent's child list when it first suspends (or earlier:
        // a started task when its first poll begins, a spawned one when it opens a nursery
        // or polls a `start`), always within its first poll: one that never was is in it.
        let first = node.never_linked();
        let (end, value) = if !first && node.should_drop() {
            // Cancelled before this last poll: the hold warnings may have watched it.
            diagnostics::unwatch(node);
            (End::Cancelled, None)
        } else {
            if first {
                if R::STARTED {
                    // A started task joins its parent's child list now, not when it first
                    // suspends: a walk up from inside it stops at its root (`started` may
                    // move it: node invariants 6 and 7), so the parent's cancellation must
                    // find it through the list, also during this poll.
                    own.get().link();
                } else {
                    // Spawned: the parent is the nursery's node, and stays so (node
                    // invariant 6).
                    let group = this.group.as_ref();
                    let outer = group.is_some_and(|g| g.node().is_cancelled());
                    node.inherit(outer);
                    // One walk up the tree in this poll, not one more in a sleep first
                    // polled in the root's context: that sleep is pending whatever it
                    // finds, and a cancellation that comes after this check (from another
                    // thread, or from the task's own code) is found by the link after the
                    // poll (node invariant 5) and `should_drop`, as one that comes after
                    // the sleep's own check would be.
                    if !outer && !node.is_marked() {
                        context::mark_checked(node);
                    }
                }
            }
            let was_cancelled = node.is_marked();
            let fut = this.fut.as_mut();
            let slot = own.slot();
            let timers = &mut *this.timers;
            let rt = this.group.as_ref().expect("task running").runtime();
            let ended = match catch_unwind(AssertUnwindSafe(|| {
                context::enter_task(slot, rt, cx.waker(), timers, || fut.poll_kept(cx))
            })) {
                Ok(Poll::Pending) => {
                    // Registering only now is enough: a cancellation from here on wakes
                    // us, and one that came earlier is seen by `should_drop` below. At
                    // the first suspension no waker was registered before.
                    match first {
                        true => node.register_first(cx.waker()),
                        false => node.register(cx.waker()),
                    }
                    own.get().link();
                    if !node.should_drop() {
                        if node.is_marked() {
                            // Cancelled, but held: warn of a holder kept unpolled.
                            warn_held(own, rt, cx);
                        }
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
                Ok(Poll::Ready(Ok(v))) => (End::Value(()), Some(v)),
                Ok(Poll::Ready(Err(e))) => (End::Failed(e), None),
                Err(p) => (End::Panicked(p), None),
            };
            if was_cancelled {
                // Cancelled before this last poll: the hold warnings may have watched it
                // (only a task cancelled before a poll that suspends is). Checked on that
                // flag, not for every task, which would cost the spawn path.
                diagnostics::unwatch(node);
            }
            ended
        };
        self.finish(node, own, this, end, value, cx.waker());
        Poll::Ready(())
    }

    fn abort(&self, node: &Node, own: &mut Own, state: Pin<&mut RunState<K, G, R>>) {
        // The executor dropped the task before it finished (e.g. at shutdown): it counts
        // as cancelled, so the nursery is not left waiting for it.
        let _entered = self.span.enter();
        let this = state.project();
        if this.group.is_some() {
            let waker = Waker::from(Arc::new(NoWake));
            self.finish(node, own, this, End::Cancelled, None, &waker);
        }
    }
}

impl<K, T, G, R> TaskBody<K, T, G, R>
where
    K: Kept<Output = Result<T, G::Error>>,
    T: Send + 'static,
    G: Group,
    R: RouteSlot<G::Error>,
{
    /// Drops the task's future, then reports its end: errors and panics to the nursery
    /// (or to `start`), the value to the handle, and finally the child count, so that by
    /// the time the nursery sees zero children every child future has been dropped and
    /// every handle has its result.
    fn finish(
        &self,
        node: &Node,
        own: &mut Own,
        mut this: RunStateProj<'_, K, G, R>,
        mut end: End<G::Error>,
        mut value: Option<T>,
        waker: &Waker,
    ) {
        let mut fut = this.fut.as_mut();
        let drop_fut = AssertUnwindSafe(move || fut.as_mut().end());
        let dropped = match end {
            // Cancelled at a suspension point: the future's locals are dropped now, as
            // part of the task, in its context (a `Drop` may read the clock or spawn).
            // A future that returned or panicked has dropped them already.
            End::Cancelled => {
                let rt = this.group.as_ref().expect("task running").runtime();
                context::drop_cancelled(own.slot(), rt, waker, || catch_unwind(drop_fut))
            }
            _ => catch_unwind(drop_fut),
        };
        if let Err(p) = dropped {
            if !matches!(end, End::Panicked(_)) {
                end = End::Panicked(p);
            }
        }
        // Its deadlines (and its executor timer) go with the future, not with the
        // allocation, which a handle may keep.
        drop(std::mem::take(this.timers));
        trace_end(node, &end);
        // A started task's value goes to a handle only if it has started and its
        // `start` made one (read before the route takes the end).
        let handled = R::STARTED && this.route.wants_value();
        if R::STARTED && !handled {
            // Nobody takes the value: drop it with the future, so that a panic in its
            // destructor is the task's, and goes where its end goes (to `start`'s caller
            // if it ended before `started`).
            if let Err(p) = value.take().map_or(Ok(()), drop_caught) {
                if !matches!(end, End::Panicked(_)) {
                    end = End::Panicked(p);
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
        let group = this.group.take().expect("hatchery: task finished twice");
        // Out of the parent's list before a failure cancels the nursery: the task that
        // failed is not cancelled by its own failure (its cancel reason stays none).
        // A spawned task that never suspended is in no child list, and nothing else
        // moves it: it keeps its parent link until its allocation goes.
        if R::STARTED || node.is_linked() {
            node.detach();
        }
        let result = match end {
            Some(End::Value(())) => value.take().ok_or_else(JoinError::cancelled),
            Some(End::Failed(e)) => {
                group.fail(e, Some(self.output.label()));
                Err(JoinError::failed())
            }
            Some(End::Panicked(p)) => {
                group.panicked(p, Some(self.output.label()));
                Err(JoinError::panicked())
            }
            Some(End::Cancelled) => {
                group.note_cancelled_child();
                Err(JoinError::cancelled())
            }
            // Ended before `started`: it was `start`'s, whose caller had the end.
            None => Err(JoinError::cancelled()),
        };
        // A started task has a handle only if its `start` made one (and the handle's
        // own slot tells whether it is gone: its `start` holds the task too). A spawned
        // one whose handle is gone is held only by the runner (whose reference `own` is,
        // lent), and no handle can appear later. Either way nobody could read the
        // result, so it is dropped here, without a lock.
        let watched = match R::STARTED {
            true => handled,
            false => Arc::strong_count(own.get()) > 1,
        };
        let unwanted = if watched {
            // The handle keeps the allocation: a future's box goes now, not with it.
            this.fut.as_mut().release();
            self.output.put(Some(node), result)
        } else {
            Some(result)
        };
        if let Err(p) = unwanted.map_or(Ok(()), drop_caught) {
            // The value's destructor panicked: a panic of the task like any other.
            group.panicked(p, Some(self.output.label()));
        }
        // A value returned by a future whose own drop then panicked: the panic won, and
        // the value goes now, before the nursery hears that this child is done.
        if let Err(p) = value.map_or(Ok(()), drop_caught) {
            group.panicked(p, Some(self.output.label()));
        }
        // A scope future first polled in this task and kept elsewhere no longer follows
        // the task's cancellation (node invariant 9).
        node.finish();
        // Held by the runner alone, which lets go right after: its reference will be the
        // last, so have the nursery's thread free the allocation if this is another.
        if Arc::strong_count(own.get()) == 1 {
            group.graves().bury(|| own.get().clone());
        }
        group.child_done();
    }
}

/// The `tracing` event of a task's end, in its span (nothing without the feature).
#[inline(always)]
fn trace_end<E: 'static>(node: &Node, end: &End<E>) {
    match end {
        End::Value(()) => {}
        End::Failed(e) => trace::failed(e, true),
        End::Panicked(p) => trace::panicked(&**p, true),
        End::Cancelled => trace::cancelled(node, None),
    }
}

/// The waker of a task the executor dropped: nothing polls it any more.
struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// A cancelled task root still held: the hold warnings (`diagnostics`) check its holders,
/// in the task's context, as the scopes' warnings do. Out of line: the runner's normal
/// path does not pay for it.
#[cold]
#[inline(never)]
fn warn_held(own: &mut Own, rt: &Arc<dyn Runtime>, cx: &mut Context<'_>) {
    let node = own.get().clone();
    let waker = cx.waker().clone();
    context::enter_with(own.slot(), rt, &waker, || {
        diagnostics::held(&node, &**rt, cx)
    });
}
