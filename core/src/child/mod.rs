//! Children of a group, of every kind: the one cell that holds a child ([`cell`]), the one
//! driver that polls and ends it (here), and the handle that waits for its value
//! ([`handle`]).
//!
//! A child is one allocation: its cancel node, its output for its handle, and its future,
//! which its owner polls through [`Run`](crate::seam::Run). What differs between the kinds
//! is only who owns the child and so schedules it: the executor, for a task spawned
//! through the seam ([`spawn`]); its group's task, for a child the group polls itself
//! ([`spawn_polled`]), which queues itself there when woken (`group::Ready`). The driver
//! is the same for both:
//!
//! 1. a child is polled in its own context (its node the current one), its panic caught;
//!    its first poll is never cut (rule N5), and in it the child takes on its parent's
//!    cancellation (node invariant 5);
//! 2. when it suspends, it registers its waker in its node and joins its parent's child
//!    list, so that a cancellation from anywhere finds and wakes it;
//! 3. cancelled while suspended (its node cancelled in effect, nothing held inside), it
//!    is not polled again: its future is dropped there, in its context (rule C1; its
//!    destructors may read the clock or spawn);
//! 4. when it ends, its future is dropped, then its end goes to its group in the one
//!    order the rules need ([`Group::child_ended`]): an error or panic recorded and the
//!    group cancelled, then the value handed to the handle (so that a join that takes a
//!    failure sees the cancellation: rule H3), then the child counted out (so that by the
//!    time the group sees no child, every child future has been dropped and every handle
//!    has its result, N1).
//!
//! A child started with `start` reports to its `start` until it has started ([`Route`]),
//! and its parent link moves when it does.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use pin_project_lite::pin_project;

#[allow(unsafe_code)]
mod cell;
mod handle;
#[cfg(all(test, target_pointer_width = "64", not(feature = "tracing")))]
mod sizes;

pub(crate) use self::cell::{Label, Named, Output, PartRef};
pub use self::handle::{Join, TaskHandle};

use self::cell::{Body, Own, Sched};
use crate::context;
use crate::diagnostics;
use crate::error::JoinError;
use crate::group::{drop_caught, Exit, Group};
use crate::node::{MovableLink, Node};
use crate::seam::{LocalRuntime, Runtime};
use crate::timer::TimerSlot;
use crate::trace;
use crate::values::{self, WithContext};

/// The largest future, in bytes, that a child keeps in its own allocation (beside its
/// node and its result); a larger one gets an allocation of its own, whose future is
/// dropped when the child ends, and whose memory goes then too (if a handle keeps the
/// child), or with the child's allocation, on the group's thread ([`Apart`]). A handle
/// kept after its child has ended then holds the child's value and a few words, never
/// more than this much of the future's room: the nurseries chapter, "What a child costs,
/// and for how long". (tokio boxes a future above 16 KiB, for the stack's sake; this
/// bound is for the heap's.)
pub(crate) const IN_PLACE_MAX: usize = 256;

/// How a child ended, as the driver hands it on (its value stays for its handle).
pub(crate) type End<E> = Exit<E>;

/// Where a `start`ed child reports its end before it has called `started`.
pub(crate) trait Route<E> {
    /// Takes the end if the child has not started yet; gives it back otherwise.
    fn end(&self, end: End<E>) -> Option<End<E>>;

    /// Whether the child's value goes to a handle: it has started, and its `start` made
    /// one (`start_with_handle`). Otherwise nobody takes it.
    fn wants_value(&self) -> bool;
}

/// Where a child reports how it ended, besides its handle and its group: nowhere for a
/// spawned child (no room taken in its allocation), its `start` call for a started one.
pub(crate) trait RouteSlot<E> {
    /// Whether `started` may move the child, so that its parent link is movable.
    const STARTED: bool;

    /// Where the child keeps its parent link if `started` may move it: a [`MovableLink`]
    /// for a started child, nothing for a spawned one.
    type Link: Default;

    fn movable_link(link: &Self::Link) -> Option<&MovableLink>;

    /// Hands the end to the route, which it lets go of (it may be the last reference);
    /// gives the end back if the route does not take it (or there is none).
    fn end(&mut self, end: End<E>) -> Option<End<E>>;

    /// Whether a started child's value goes to a handle (see [`Route::wants_value`]).
    fn wants_value(&self) -> bool;
}

impl<E> RouteSlot<E> for () {
    const STARTED: bool = false;

    type Link = ();

    fn movable_link((): &()) -> Option<&MovableLink> {
        None
    }

    fn end(&mut self, end: End<E>) -> Option<End<E>> {
        Some(end)
    }

    fn wants_value(&self) -> bool {
        false
    }
}

impl<E, R: ?Sized + Route<E>> RouteSlot<E> for Option<Arc<R>> {
    const STARTED: bool = true;

    type Link = MovableLink;

    fn movable_link(link: &MovableLink) -> Option<&MovableLink> {
        Some(link)
    }

    fn end(&mut self, end: End<E>) -> Option<End<E>> {
        match self.take() {
            Some(route) => route.end(end),
            None => Some(end),
        }
    }

    fn wants_value(&self) -> bool {
        self.as_ref().is_some_and(|route| route.wants_value())
    }
}

/// The shared part of a child (besides its node): its output, its movable link if it
/// was started, its span. `K`, `P` and `R` name the run state that goes with it, `D` how
/// the `tracing` feature tells of its error.
pub(crate) struct ChildBody<K, T, E, R: RouteSlot<E>, D> {
    output: Output<T>,
    link: R::Link,
    /// Entered around every poll (`tracing` feature; nothing without it).
    span: trace::Span,
    _run: Marks<K, E, R, D>,
}

/// What a [`ChildBody`] is generic over without holding it (invariant in `E`, as its
/// group is).
type Marks<K, E, R, D> = PhantomData<fn() -> (K, Arc<Group<E>>, R, D)>;

/// A child's shared part and its run state, made together ([`parts`]).
type Parts<K, T, E, R, D> = (ChildBody<K, T, E, R, D>, RunState<K, E, R>);

/// How the `tracing` feature tells of a child's error: by its `Display` where the error
/// type is `'static` ([`Shown`], a task of the executor's), by its type's name where it
/// may borrow ([`Unshown`], a polled child's).
pub(crate) trait Describe<E> {
    fn failed(error: &E);

    /// The child's span (`tracing` feature): a task's, or a polled child's.
    fn span(parent: &trace::Parent, label: &Label) -> trace::Span;
}

/// See [`Describe`].
pub(crate) struct Shown;

/// See [`Describe`].
pub(crate) struct Unshown;

impl<E: 'static> Describe<E> for Shown {
    #[inline(always)]
    fn failed(error: &E) {
        trace::failed(error, true);
    }

    #[inline(always)]
    fn span(parent: &trace::Parent, label: &Label) -> trace::Span {
        trace::Span::task(parent, label.name_str(), label.site())
    }
}

impl<E> Describe<E> for Unshown {
    #[inline(always)]
    fn failed(_: &E) {
        trace::failed_borrowed::<E>(true);
    }

    #[inline(always)]
    fn span(parent: &trace::Parent, label: &Label) -> trace::Span {
        trace::Span::child(parent, label.site())
    }
}

/// How a child's run state keeps its future: in place (`Option<F>`), or apart, in a box
/// of its own ([`Apart`], for a future larger than [`IN_PLACE_MAX`]).
pub(crate) trait Kept {
    /// What the future returns.
    type Output;

    /// Polls the future.
    fn poll_kept(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output>;

    /// Drops the future (its destructors run now, in the child's context), keeping the
    /// memory a box of its own took: that goes with the child's allocation, on the
    /// group's thread (`Graves`), unless [`release`](Kept::release) frees it first.
    fn end(self: Pin<&mut Self>);

    /// Frees the memory that [`end`](Kept::end) kept, for a child whose handle keeps the
    /// allocation after its end.
    fn release(self: Pin<&mut Self>);
}

impl<F: Future> Kept for Option<F> {
    type Output = F::Output;

    #[inline(always)]
    fn poll_kept(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.as_pin_mut().expect("child future present").poll(cx)
    }

    #[inline]
    fn end(mut self: Pin<&mut Self>) {
        self.set(None);
    }

    #[inline(always)]
    fn release(self: Pin<&mut Self>) {}
}

/// A future kept in a box of its own, whose memory outlives the future until the box is
/// released: a child that ends on another thread than its group's does not free it
/// there (freed at the child's end, into the arena of the thread that allocated it, the
/// box made a spawn and join of a 1 KiB future about 1.6x as slow on tokio's
/// multi-thread runtime).
pub(crate) struct Apart<F>(Option<Pin<Box<Option<F>>>>);

impl<F: Future> Kept for Apart<F> {
    type Output = F::Output;

    #[inline]
    fn poll_kept(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let boxed = self.get_mut().0.as_mut().expect("child future present");
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
    /// What only the child's owner touches.
    #[project = RunStateProj]
    pub(crate) struct RunState<K, E, R> {
        // The future, in place or apart (see `Kept`).
        #[pin]
        fut: K,
        // (The child's node, installed as the current one while it is polled, is this
        // very allocation: its owner's reference, lent for each poll, `Own`.)
        // Taken when the child finishes: `None` means done.
        group: Option<Arc<Group<E>>>,
        route: R,
        // The deadlines of the scopes and sleeps a task polls (see `crate::timer`),
        // dropped when it finishes: a task of the executor owns its own; a polled child
        // runs in its group's task, whose deadlines are its own.
        timers: TimerSlot,
    }
}

/// `$make` with the child's body and run state (`$body`, `$state`) made of `$fut` by
/// [`parts`] (described by `$d`): the future in place, or apart in a box of its own if it
/// is large (see [`Apart`]); where context values are set, in a [`WithContext`] with
/// them: a child of every kind runs with the values in effect where it was spawned (rule
/// V1), and costs nothing more where none is.
macro_rules! in_parts {
    ($d:ty, $group:expr, $fut:ident, $route:ident, $label:ident => |$body:ident, $state:ident| $make:expr) => {
        match values::current() {
            None => in_parts!(@sized $d, $group, $fut, $route, $label => |$body, $state| $make),
            Some(values) => {
                let $fut = WithContext::inherit(values, $fut);
                in_parts!(@sized $d, $group, $fut, $route, $label => |$body, $state| $make)
            }
        }
    };
    (@sized $d:ty, $group:expr, $fut:ident, $route:ident, $label:ident => |$body:ident, $state:ident| $make:expr) => {
        if apart(&$fut) {
            let kept = Apart(Some(Box::pin(Some($fut))));
            let ($body, $state) = parts::<_, _, _, _, $d>($group, kept, $route, $label);
            $make
        } else {
            let ($body, $state) = parts::<_, _, _, _, $d>($group, Some($fut), $route, $label);
            $make
        }
    };
}

/// Whether a future of `F`'s size goes in a box of its own (see [`Apart`]).
#[inline(always)]
fn apart<F>(_: &F) -> bool {
    const { std::mem::size_of::<F>() > IN_PLACE_MAX }
}

/// Spawns `fut` as a task of the executor, child of `group` (the group or subgroup that
/// counted it in with `admit`), cancelled through `node` (the group's node, or the
/// caller's for a child that has not `started` yet). `built`, if any, gets the child's
/// node before it can run (no lock may be held across the spawn: the executor may run or
/// drop the task in it). Returns the child as its handle holds it.
#[inline]
pub(crate) fn spawn<F, T, E, R>(
    group: &Arc<Group<E>>,
    node: &Arc<Node>,
    fut: F,
    route: R,
    label: Label,
    built: Option<impl FnOnce(Arc<Node>)>,
) -> PartRef<Output<T>>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    R: RouteSlot<E> + Send,
{
    let rt = &group.rt;
    in_parts!(Shown, group, fut, route, label => |body, state| {
        cell::spawn(rt, node, body, state, built)
    })
}

/// Spawns `fut` as a task of `local`, this thread's local executor (as [`spawn`] does on
/// the runtime), which need not be `Send`: it is polled and dropped on this thread only.
#[inline]
pub(crate) fn spawn_local<F, T, E, R>(
    local: &dyn LocalRuntime,
    group: &Arc<Group<E>>,
    node: &Arc<Node>,
    fut: F,
    route: R,
    label: Label,
    built: Option<impl FnOnce(Arc<Node>)>,
) -> PartRef<Output<T>>
where
    F: Future<Output = Result<T, E>> + 'static,
    T: 'static,
    E: 'static,
    R: RouteSlot<E>,
{
    in_parts!(Shown, group, fut, route, label => |body, state| {
        cell::spawn_local(local, node, body, state, built)
    })
}

/// Makes `fut` a child of `group` (as [`spawn`]) that the group polls in its own task:
/// the child goes into the group's queue, and may borrow and need not be `Send`: the
/// group that owns it keeps it on its thread and within `'env` (see `kind::polled`).
#[inline]
pub(crate) fn spawn_polled<F, T, E, R>(
    group: &Arc<Group<E>>,
    node: &Arc<Node>,
    fut: F,
    route: R,
    label: Label,
    built: Option<impl FnOnce(Arc<Node>)>,
) -> PartRef<Output<T>>
where
    F: Future<Output = Result<T, E>>,
    R: RouteSlot<E>,
{
    let ready = group
        .ready
        .as_ref()
        .expect("hatchery: internal error: a polled child of a group that polls none");
    let (part, raw) = in_parts!(Unshown, group, fut, route, label => |body, state| {
        cell::polled(node, body, ready, state, built)
    });
    ready.push(raw);
    part
}

/// A child's shared part and run state.
#[inline(always)]
fn parts<K, T, E, R, D>(
    group: &Arc<Group<E>>,
    fut: K,
    route: R,
    label: Label,
) -> Parts<K, T, E, R, D>
where
    K: Kept<Output = Result<T, E>>,
    R: RouteSlot<E>,
    D: Describe<E>,
{
    // Frees what children finished on other threads left, and makes this the group's
    // thread (see `Graves::bury`).
    group.graves.reap(context::thread_mark());
    let span = D::span(&group.trace, &label);
    let body = ChildBody {
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
    (body, state)
}

impl<K, T, E, R, D> Body for ChildBody<K, T, E, R, D>
where
    K: Kept<Output = Result<T, E>>,
    R: RouteSlot<E>,
    D: Describe<E>,
{
    type State = RunState<K, E, R>;
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
    fn poll<S: Sched>(
        &self,
        node: &Node,
        own: &mut Own,
        first: bool,
        waker: &Waker,
        state: Pin<&mut RunState<K, E, R>>,
        sched: &S,
    ) -> Poll<()> {
        let _entered = self.span.enter();
        let mut this = state.project();
        let Some(group) = this.group.as_ref() else {
            return Poll::Ready(());
        };
        let (end, value) = if !first && node.should_drop() {
            // Cancelled before this last poll: the hold warnings may have watched it.
            diagnostics::unwatch(node);
            (End::Cancelled, None)
        } else {
            if first {
                if R::STARTED {
                    // A started child joins its parent's child list now: a walk up from
                    // inside it stops at its root (`started` may move it: node invariants
                    // 6 and 7), so the parent's cancellation must find it through the
                    // list, also during this poll.
                    own.get().link();
                } else {
                    // The parent is the group's node, and stays so (node invariant 6).
                    let outer = group.node.is_cancelled();
                    node.inherit(outer);
                    // One walk up the tree in this poll, not one more in a sleep first
                    // polled in the root's context (a cancellation after this check is
                    // found by the link after the poll, node invariant 5).
                    if !outer && !node.is_marked() {
                        context::mark_checked(node);
                    }
                }
            }
            let was_cancelled = node.is_marked();
            let fut = this.fut.as_mut();
            let rt = &group.rt;
            let polled = catch_unwind(AssertUnwindSafe(|| {
                let mut cx = Context::from_waker(waker);
                let poll = || fut.poll_kept(&mut cx);
                match S::SPAWNED {
                    true => context::enter_task(own.slot(), rt, waker, this.timers, poll),
                    false => context::enter_with(own.slot(), rt, waker, poll),
                }
            }));
            let ended = match polled {
                Ok(Poll::Pending) if sched.requeued() => {
                    // A polled child woken again meanwhile is polled again soon: it waits
                    // nowhere, and sees a cancellation then, through its parent (node
                    // invariant 7).
                    if !node.should_drop() {
                        return Poll::Pending;
                    }
                    (End::Cancelled, None)
                }
                Ok(Poll::Pending) => {
                    // Registering only now is enough: a cancellation from here on wakes
                    // us, and one that came earlier is seen by `should_drop` below. A
                    // child joins its parent's child list when it first waits (or earlier:
                    // a started one when its first poll begins, a spawned one when it
                    // opens a nursery or polls a `start`).
                    match first {
                        true => node.register_first(waker),
                        false => node.register(waker),
                    }
                    own.get().link();
                    if !node.should_drop() {
                        if node.is_marked() {
                            // Cancelled, but held: warn of a holder kept unpolled.
                            warn_held(own, rt, waker);
                        }
                        if !was_cancelled && node.is_marked() {
                            // Cancelled during this poll, perhaps before our waker was
                            // registered, with something inside that must finish first:
                            // poll again, so that the scopes in it see the cancellation.
                            waker.wake_by_ref();
                        }
                        return Poll::Pending;
                    }
                    (End::Cancelled, None)
                }
                Ok(Poll::Ready(out)) => Exit::of(Ok(out)),
                Err(p) => (End::Panicked(p), None),
            };
            if was_cancelled {
                // Cancelled before this last poll: the hold warnings may have watched it.
                diagnostics::unwatch(node);
            }
            ended
        };
        self.finish::<S>(node, own, this, end, value, waker);
        Poll::Ready(())
    }

    fn abort<S: Sched>(&self, node: &Node, own: &mut Own, state: Pin<&mut Self::State>) {
        // The owner dropped the child before it finished (an executor shutting down, a
        // group dropped from outside): it counts as cancelled, so its group is not left
        // waiting for it, and takes on its parent's cancellation first if it never ran
        // (so that its cancel reason says why it ended).
        let _entered = self.span.enter();
        let this = state.project();
        if let Some(group) = this.group.as_ref() {
            if node.never_linked() && !R::STARTED {
                node.inherit(group.node.is_cancelled());
            }
            let waker = Waker::from(Arc::new(NoWake));
            self.finish::<S>(node, own, this, End::Cancelled, None, &waker);
        }
    }
}

impl<K, T, E, R, D> ChildBody<K, T, E, R, D>
where
    K: Kept<Output = Result<T, E>>,
    R: RouteSlot<E>,
    D: Describe<E>,
{
    /// Ends the child: drops its future, then hands its end to its `start` or its group,
    /// and its value to its handle, in the order of the module docs (step 4).
    fn finish<S: Sched>(
        &self,
        node: &Node,
        own: &mut Own,
        mut this: RunStateProj<'_, K, E, R>,
        mut end: End<E>,
        mut value: Option<T>,
        waker: &Waker,
    ) {
        let group = this.group.take().expect("hatchery: child finished twice");
        let mut fut = this.fut.as_mut();
        let drop_fut = AssertUnwindSafe(move || fut.as_mut().end());
        let dropped = match end {
            // Cancelled at a suspension point: the future's locals are dropped now, as
            // part of the child, in its context (a `Drop` may read the clock or spawn).
            // A future that returned or panicked has dropped them already.
            End::Cancelled => {
                context::drop_cancelled(own.slot(), &group.rt, waker, || catch_unwind(drop_fut))
            }
            _ => catch_unwind(drop_fut),
        };
        end.or_panicked(dropped);
        // Its deadlines (and its executor timer) go with the future, not with the
        // allocation, which a handle may keep.
        drop(std::mem::take(this.timers));
        match &end {
            End::Done => {}
            End::Failed(e) => D::failed(e),
            End::Panicked(p) => trace::panicked(&**p, true),
            End::Cancelled => trace::cancelled(node, None),
        }
        // A started child's value goes to a handle only if it has started and its
        // `start` made one (read before the route takes the end).
        let handled = R::STARTED && this.route.wants_value();
        if R::STARTED && !handled {
            // Nobody takes the value: drop it with the future, so that a panic in its
            // destructor is the child's, and goes where its end goes (to `start`'s caller
            // if it ended before `started`).
            end.or_panicked(value.take().map_or(Ok(()), drop_caught));
        }
        // The route drops what nobody takes any more: a panic in that drop is the child's
        // too. (The route goes inside, as it may be the last reference.)
        let route = &mut *this.route;
        let end = catch_unwind(AssertUnwindSafe(move || route.end(end)))
            .unwrap_or_else(|p| Some(End::Panicked(p)));
        // Out of the parent's list before a failure cancels the group: the child that
        // failed is not cancelled by its own failure (its cancel reason stays none).
        if R::STARTED || node.is_linked() {
            node.detach();
        }
        let (exit, result) = match end {
            Some(End::Done) => (End::Done, value.take().ok_or_else(JoinError::cancelled)),
            Some(End::Failed(e)) => (End::Failed(e), Err(JoinError::failed())),
            Some(End::Panicked(p)) => (End::Panicked(p), Err(JoinError::panicked())),
            Some(End::Cancelled) => (End::Cancelled, Err(JoinError::cancelled())),
            // Ended before `started`: it was `start`'s, whose caller had the end.
            None => (End::Done, Err(JoinError::cancelled())),
        };
        // A started child has a handle only if its `start` made one. A spawned one whose
        // handle is gone is held only by its owner (whose reference `own` is, lent), and
        // no handle can appear later. Either way nobody could read the result, so it is
        // dropped here, without a lock.
        let watched = match R::STARTED {
            true => handled,
            false => Arc::strong_count(own.get()) > 1,
        };
        let label = self.output.label();
        group.child_ended(
            exit,
            Some(label),
            || {
                let unwanted = if watched {
                    // The handle keeps the allocation: a future's box goes now, not with it.
                    this.fut.as_mut().release();
                    self.output.put(node, result)
                } else {
                    if !S::SPAWNED {
                        // A polled child's node keeps its own waker (itself): let it go.
                        node.forget_waker();
                    }
                    Some(result)
                };
                // The value's destructor may panic: a panic of the child like any other. A
                // value returned by a future whose own drop then panicked goes now too.
                unwanted
                    .map_or(Ok(()), drop_caught)
                    .and(value.map_or(Ok(()), drop_caught))
            },
            || {
                // A scope future first polled in this child and kept elsewhere no longer
                // follows the child's cancellation (node invariant 9).
                node.finish();
                // Held by its owner alone, which lets go right after: its reference will be
                // the last, so have the group's thread free the allocation if this is another.
                if Arc::strong_count(own.get()) == 1 {
                    group.graves.bury(|| own.get().clone());
                }
            },
        );
    }
}

/// The waker of a child whose owner dropped it: nothing polls it any more.
struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// A cancelled child still held: the hold warnings (`diagnostics`) check its holders, in
/// the child's context, as the scopes' warnings do. Out of line: the driver's normal path
/// does not pay for it.
#[cold]
#[inline(never)]
fn warn_held(own: &mut Own, rt: &Arc<dyn Runtime>, waker: &Waker) {
    let node = own.get().clone();
    let mut cx = Context::from_waker(waker);
    context::enter_with(own.slot(), rt, waker, || {
        diagnostics::held(&node, &**rt, &mut cx)
    });
}
