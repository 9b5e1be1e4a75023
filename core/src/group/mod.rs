//! The group: what a nursery, a subgroup and the combinators (`join`, `race`, `map` and
//! the rest) have in common, written once, whatever kind of children they run.
//!
//! A group runs a body and children. It records every error in the order it happened
//! and the first panic ([`Record`], rules N2 and N3), cancels the rest on the first
//! failure or a won race, counts its live children and wakes its owner when the last
//! one ends ([`Group::child_ended`], rule N1), and then decides how it ends ([`decide`],
//! rules N2-N4, C1, C3 and K2). Every kind of children reports here: a child's driver
//! (`child`) hands its end to [`Group::child_ended`], and the group's future (`kind`)
//! closes the group and calls [`decide`]. Kept in place for a few futures (`kind::fixed`),
//! a group keeps its [`Record`] beside its futures, and records and decides through the
//! same functions.
//!
//! # The state
//!
//! [`Group`] is shared by the group's future, its handles and its children. Its
//! lifecycle is one word ([`Group::state`]): the count of live children and the `CLOSED`
//! bit.
//!
//! * **Open**: `CLOSED` clear. [`Group::admit`] counts a child in (rule N5: spawning works
//!   while the group is open, from anywhere); [`Group::child_ended`] counts it out and
//!   wakes the group's owner when the count reaches zero.
//! * **Closed**: `CLOSED` set, by [`Group::close`] once the body has ended and the count
//!   is zero (at most once: the exchange from zero), or by [`Group::shut`] when the
//!   group's future is dropped (rule C8). No child is admitted from then on, so a
//!   group that closed with no child left never has one again (N5: spawning into a
//!   finished nursery fails, and a task is never silently dropped).

use std::any::Any;
use std::borrow::Cow;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use atomic_waker::AtomicWaker;

use crate::context::{self, Ctx};
use crate::error::{NurseryError, SpawnError};
use crate::node::{self, Detail, Labelled, Node, Reason, Tag};
use crate::reason::race_won;
use crate::seam::Runtime;
use crate::trace;

/// A panic's payload, as `catch_unwind` gives it.
pub(crate) type Panic = Box<dyn Any + Send + 'static>;

/// Drops `x`, catching a panic in its destructor: a child's future or value, whose
/// destructor's panic is the child's.
#[inline]
pub(crate) fn drop_caught<X>(x: X) -> Result<(), Panic> {
    catch_unwind(AssertUnwindSafe(|| drop(x)))
}

/// How a child of a group (or its body) ended. Its value, if any, went to its handle, or
/// to the combinator that runs it.
pub(crate) enum Exit<E> {
    /// Finished with a value.
    Done,
    /// Returned an error: the group is cancelled and the error recorded (N2).
    Failed(E),
    /// Panicked: the group is cancelled and the first panic resumed at its end (N3).
    Panicked(Panic),
    /// Was cancelled at a suspension point (C1), which is not a failure (N4).
    Cancelled,
}

impl<E> Exit<E> {
    /// The exit of a future that returned `out`, or panicked.
    #[inline]
    pub(crate) fn of<T>(out: std::thread::Result<Result<T, E>>) -> (Exit<E>, Option<T>) {
        match out {
            Ok(Ok(v)) => (Exit::Done, Some(v)),
            Ok(Err(e)) => (Exit::Failed(e), None),
            Err(p) => (Exit::Panicked(p), None),
        }
    }

    /// The panic of a destructor that ran after this exit wins over it (unless it is a
    /// panic already: the first stays).
    #[inline]
    pub(crate) fn or_panicked(&mut self, dropped: Result<(), Panic>) {
        if let Err(p) = dropped {
            if !matches!(self, Exit::Panicked(_)) {
                *self = Exit::Panicked(p);
            }
        }
    }
}

/// What names a child whose failure cancels its group ([`Detail::Failed`]): where it was
/// spawned and its name (`child::Label`).
pub(crate) trait Who {
    /// Where it was spawned.
    fn site(&self) -> &'static Location<'static>;
    /// Its name, if it has one.
    fn name(&self) -> Option<Cow<'static, str>>;
}

/// What a group records of its body and children: every error, in the order they
/// happened (N2), and the first panic (N3).
pub(crate) struct Record<E> {
    pub(crate) errors: Vec<E>,
    pub(crate) panic: Option<Panic>,
}

impl<E> Default for Record<E> {
    fn default() -> Self {
        Record {
            errors: Vec::new(),
            panic: None,
        }
    }
}

impl<E> Record<E> {
    /// Records how a child or the body ended: an error in order (N2), the first panic
    /// (N3: the first to reach the group wins). Returns whether that was a failure, and
    /// a panic: the group is then to be cancelled, after the record's lock is released
    /// ([`failed`]).
    #[inline]
    pub(crate) fn note(&mut self, exit: Exit<E>) -> Option<bool> {
        match exit {
            Exit::Done | Exit::Cancelled => None,
            Exit::Failed(e) => {
                self.errors.push(e);
                Some(false)
            }
            Exit::Panicked(p) => {
                self.panic.get_or_insert(p);
                Some(true)
            }
        }
    }
}

/// Cancels the group whose node is `node` after a failure that [`Record::note`]
/// recorded: of the child `who` (`None`: of the body, or of a combinator's future whose
/// place is all it knows, `site`).
#[cold]
pub(crate) fn failed(
    node: &Node,
    panicked: bool,
    who: Option<&dyn Who>,
    site: Option<&'static Location<'static>>,
) {
    let detail = Detail::Failed {
        task: who.map(Who::site).or(site),
        name: who.and_then(Who::name),
        panicked,
    };
    node.cancel_with(Reason::Failure, detail);
}

/// Cancels the group whose node is `node`: the race called at `at` was won, and the rest
/// stop (for `race`, `race_ok`, `race!`, on every kind).
#[cold]
pub(crate) fn race_won_by(node: &Node, at: &'static Location<'static>) {
    node.cancel_with(Reason::Nursery, race_won(at));
}

/// What a group's node carries: what the group is called, for the task tree and
/// `Nursery::name`.
pub(crate) struct GroupTag {
    at: &'static Location<'static>,
    named: Option<Box<(Cow<'static, str>, Instant)>>,
}

impl Tag for GroupTag {
    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }

    fn label(&self) -> Option<Labelled<'_>> {
        Some(Labelled {
            kind: node::Kind::Nursery,
            site: Some(self.at),
            name: self.named.as_ref().map(|n| &*n.0),
            since: self.named.as_ref().map(|n| n.1),
        })
    }
}

impl GroupTag {
    /// Where the group was opened.
    pub(crate) fn at(&self) -> &'static Location<'static> {
        self.at
    }

    /// The name it was given, if any.
    pub(crate) fn name(&self) -> Option<&str> {
        self.named.as_ref().map(|n| &*n.0)
    }
}

/// The `CLOSED` bit of [`Group::state`].
const CLOSED: usize = 1;
/// One live child in [`Group::state`].
const ONE: usize = 2;

/// The state a group shares with its future, its handles and its children (see the
/// [module docs](self)). Public only in name, as what a nursery's handle holds.
#[allow(unreachable_pub, missing_debug_implementations)]
pub struct Group<E> {
    /// The group's node: the parent of its children's, cancelled by its failures.
    pub(crate) node: Arc<Node>,
    pub(crate) rt: Arc<dyn Runtime>,
    /// `CLOSED`, plus the number of live children times `ONE`.
    state: AtomicUsize,
    record: Mutex<Record<E>>,
    /// A child ended cancelled: then a body that returned in the group's first poll did
    /// not run to its end without interruption (see [`decide`]).
    child_cancelled: AtomicBool,
    /// The task that polls the group's future, woken when the last child ends.
    pub(crate) waker: AtomicWaker,
    /// What a polled group's children share with it (`kind::polled`): none for tasks of
    /// the executor.
    pub(crate) ready: Option<Arc<Ready>>,
    /// Allocations of finished children let go of on another thread than the group's,
    /// for the group's thread to free.
    pub(crate) graves: Graves,
    /// The group's span, its children's spans' parent (`tracing` feature).
    pub(crate) trace: trace::Parent,
    /// The group a subgroup belongs to, which records its children's failures and counts
    /// them too (`Nursery::subgroup`); `None` for a group of its own.
    up: Option<Arc<Group<E>>>,
    /// A subgroup's waiters, told when its last child ends.
    pub(crate) idle: event_listener::Event,
}

impl<E> Group<E> {
    /// Opens a group under `parent`, at `site`, called `name` if it has one; `ready` for
    /// a group whose children it polls itself.
    pub(crate) fn open(
        parent: &Ctx,
        site: &trace::Sited,
        name: Option<Cow<'static, str>>,
        ready: Option<Arc<Ready>>,
    ) -> Arc<Group<E>> {
        let named = name.map(|name| Box::new((name, parent.rt.now())));
        let tag = GroupTag {
            at: site.at(),
            named,
        };
        // In its parent's list: an enclosing cancellation reaches the children through
        // it, wherever they run.
        let node: Arc<Node> = Node::attach(Node::with_ext(false, false, tag), &parent.node);
        Group::new(node, parent.rt.clone(), ready, site.parent(), None)
    }

    /// A subgroup of this group: children of the group under a node of their own (a child
    /// of the group's, so that the group's cancellation reaches it wherever its children
    /// run), which it counts apart so that they can be awaited and cancelled apart, and
    /// whose failures are the group's.
    pub(crate) fn sub(self: &Arc<Self>) -> Arc<Group<E>> {
        let node = Node::attached(false, &self.node);
        let (ready, trace) = (self.ready.clone(), self.trace.clone());
        Group::new(node, self.rt.clone(), ready, trace, Some(self.clone()))
    }

    /// A new group under `node`, open, with no child, nothing recorded.
    fn new(
        node: Arc<Node>,
        rt: Arc<dyn Runtime>,
        ready: Option<Arc<Ready>>,
        trace: trace::Parent,
        up: Option<Arc<Group<E>>>,
    ) -> Arc<Group<E>> {
        Arc::new(Group {
            node,
            rt,
            state: AtomicUsize::new(0),
            record: Mutex::new(Record::default()),
            child_cancelled: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            ready,
            graves: Graves::new(),
            trace,
            up,
            idle: event_listener::Event::new(),
        })
    }

    fn record(&self) -> MutexGuard<'_, Record<E>> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the group's node says it is called.
    pub(crate) fn tag(&self) -> &GroupTag {
        self.node
            .ext_ref::<GroupTag>()
            .expect("hatchery: internal error: a group's node without its tag")
    }

    /// Cancels the group on its handle's word (`Nursery::cancel`, `Subgroup::cancel`),
    /// `detail` saying where and why.
    pub(crate) fn cancel(&self, detail: Detail) {
        self.node.cancel_with(Reason::Nursery, detail);
    }

    /// Whether the group was cancelled: a `cancel` after it finished is recorded too,
    /// with nothing left to mark.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.node.is_cancelled() || self.node.reason().is_some()
    }

    /// Counts a new child in, unless the group has closed (rule N5); a subgroup's in its
    /// group too.
    #[inline]
    pub(crate) fn admit(&self) -> Result<(), SpawnError> {
        if let Some(up) = &self.up {
            up.admit()?;
        }
        let open = |cur| (cur & CLOSED == 0).then_some(cur + ONE);
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, open)
            .map(drop)
            .map_err(|_| SpawnError(()))
    }

    /// The one place a child's end reaches its group, in the order the rules need (its
    /// future dropped already):
    ///
    /// 1. an error or a panic is recorded and the group cancelled (N2, N3; the child
    ///    named by `who`), a cancellation noted;
    /// 2. `hand_over` gives the child's result to its handle (a join that takes a failure
    ///    sees the cancellation, rule H3) and drops what nobody takes; a panic there is
    ///    the child's, recorded as in 1;
    /// 3. `last` is the child's last step (its node finished, a subgroup told);
    /// 4. the child is counted out, and the group's owner woken if it was the last (N1).
    #[inline]
    pub(crate) fn child_ended(
        &self,
        exit: Exit<E>,
        who: Option<&dyn Who>,
        hand_over: impl FnOnce() -> Result<(), Panic>,
        last: impl FnOnce(),
    ) {
        match exit {
            Exit::Done => {}
            Exit::Cancelled => self.note_cancelled(),
            exit => self.fail(exit, who),
        }
        if let Err(p) = hand_over() {
            self.fail(Exit::Panicked(p), who);
        }
        last();
        self.count_out();
    }

    /// Records a failure of the body (`who` `None`) or a child, and cancels the group (a
    /// subgroup's children's, its group).
    #[cold]
    pub(crate) fn fail(&self, exit: Exit<E>, who: Option<&dyn Who>) {
        if let Some(up) = &self.up {
            return up.fail(exit, who);
        }
        let failure = self.record().note(exit);
        if let Some(panicked) = failure {
            failed(&self.node, panicked, who, None);
        }
    }

    /// A child ended cancelled (see [`decide`]'s `uninterrupted`).
    fn note_cancelled(&self) {
        match &self.up {
            Some(up) => up.note_cancelled(),
            None if !self.child_cancelled.load(Ordering::Relaxed) => {
                self.child_cancelled.store(true, Ordering::Relaxed);
            }
            None => {}
        }
    }

    /// Counts a child out: the last wakes the group's owner (a subgroup's waiters, then
    /// its group: by the time the group hears of the last of them, every wait was told).
    #[inline]
    fn count_out(&self) {
        if self.state.fetch_sub(ONE, Ordering::AcqRel) == ONE {
            self.waker.wake();
            if self.up.is_some() {
                crate::sync::notify_listeners(&self.idle);
            }
        }
        if let Some(up) = &self.up {
            up.count_out();
        }
    }

    /// Closes the group if no child is left (at most once), handing back what it
    /// recorded; otherwise the last child wakes `waker`.
    pub(crate) fn close(&self, waker: &Waker) -> Option<Closed<E>> {
        self.waker.register(waker);
        self.state
            .compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        // Every child has finished and no more can come. Free what children finishing on
        // other threads left (the exchange acquired their writes).
        self.graves.reap(context::thread_mark());
        Some(Closed {
            record: std::mem::take(&mut *self.record()),
            child_cancelled: self.child_cancelled.load(Ordering::Relaxed),
        })
    }

    /// The group's future is dropped (C8): nothing is admitted from now on, and nobody
    /// waits for the children still running.
    pub(crate) fn shut(&self) {
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
    }

    /// The first panic recorded, taken: what a group dropped from outside resumes of the
    /// children it ended (C8).
    pub(crate) fn take_panic(&self) -> Option<Panic> {
        self.record().panic.take()
    }

    /// Whether the group has closed: it has finished, or its future was dropped.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// How many children are alive.
    pub(crate) fn live(&self) -> usize {
        self.state.load(Ordering::Acquire) / ONE
    }
}

/// What a group hands its future once it has closed: the errors and the first panic of
/// the body and the children (rules N2, N3), and whether a child ended cancelled.
pub(crate) struct Closed<E> {
    pub(crate) record: Record<E>,
    pub(crate) child_cancelled: bool,
}

/// Where a group's future is in its life.
///
/// Transitions: `Body` → `Draining` when the body has ended (its value, error or panic
/// recorded, or cancelled: [`poll_body`]); `Draining` → `Returned` or `Stalled` when
/// every child has finished too ([`decide`]); `Stalled` → `Returned` when the group,
/// kept past the enclosing scope that cancelled it, is polled after that scope has
/// finished ([`poll_stalled`], rule K2). A group dropped in `Body` or `Draining` was
/// dropped from outside hatchery (C8).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Phase {
    /// The body runs (and the children with it).
    Body,
    /// The body has ended; the group waits for its children.
    Draining,
    /// Ended under an enclosing cancellation, which ends the work (N4).
    Stalled,
    /// Returned its output, or resumed a panic: polling again is a bug of the caller.
    Returned,
}

impl Phase {
    /// The group has ended: every child and the body have finished.
    pub(crate) fn finished(self) -> bool {
        matches!(self, Phase::Stalled | Phase::Returned)
    }

    /// A poll of a group that has ended: a panic if it returned, else [`poll_stalled`];
    /// `None` while it runs.
    pub(crate) fn poll_ended<T, E>(
        &mut self,
        node: &Node,
        now: Instant,
    ) -> Option<Poll<Result<T, NurseryError<E>>>> {
        match self {
            Phase::Body | Phase::Draining => None,
            Phase::Returned => panic!("hatchery: nursery future polled after completion"),
            Phase::Stalled => {
                let stalled = poll_stalled(node, now);
                if stalled.is_ready() {
                    *self = Phase::Returned;
                }
                Some(stalled)
            }
        }
    }
}

/// The body of a group, as its future polls it.
pub(crate) struct Body<'a, Fut, T> {
    /// The body's future, dropped in place when it ends.
    pub(crate) fut: Pin<&'a mut Option<Fut>>,
    /// Where the body's value goes.
    pub(crate) value: &'a mut Option<T>,
    /// The group's node, installed as the current one while the body is polled (moved
    /// into the context and back).
    pub(crate) slot: &'a mut Option<Arc<Node>>,
}

/// Polls a group's body once, in the group's node, and drops it where it ends: with its
/// value, its error or its panic recorded, or cancelled at a suspension point (C1; never
/// in the group's `first` poll, where the body has not suspended yet, rule N5). The
/// body's destructor runs in its context (R5), and a panic in it is the body's (N3).
/// `describe` tells the `tracing` feature of the body's error. Returns whether the body
/// has ended; the caller then waits for the children.
pub(crate) fn poll_body<Fut, T, E>(
    body: Body<'_, Fut, T>,
    first: bool,
    group: &Group<E>,
    cx: &mut Context<'_>,
    describe: fn(&E),
) -> bool
where
    Fut: Future<Output = Result<T, E>>,
{
    let Body {
        mut fut,
        value,
        slot,
    } = body;
    let node = &group.node;
    let mut exit = Exit::Cancelled;
    if first || !node.should_drop() {
        let Some(polling) = fut.as_mut().as_pin_mut() else {
            return true;
        };
        let polled = catch_unwind(AssertUnwindSafe(|| {
            context::enter_with(slot, &group.rt, cx.waker(), || polling.poll(cx))
        }));
        match polled {
            Ok(Poll::Pending) if !node.should_drop() => return false,
            Ok(Poll::Pending) => {}
            Ok(Poll::Ready(out)) => {
                let (ended, v) = Exit::of(Ok(out));
                if let Exit::Failed(e) = &ended {
                    describe(e);
                }
                (exit, *value) = (ended, v);
            }
            Err(p) => exit = Exit::Panicked(p),
        }
    }
    if let Exit::Cancelled = exit {
        trace::cancelled(&**node, None);
    }
    // Dropped (a no-op if it finished) before the group waits for its children.
    let dropped = catch_unwind(AssertUnwindSafe(|| {
        context::drop_cancelled_body(|| fut.set(None))
    }));
    exit.or_panicked(dropped);
    if let Exit::Panicked(p) = &exit {
        trace::panicked(&**p, false);
    }
    if !matches!(exit, Exit::Done | Exit::Cancelled) {
        group.fail(exit, None);
    }
    true
}

/// How a group's node was cancelled, read as the group ends (see [`Seen::close`]).
#[derive(Clone, Copy)]
pub(crate) struct Seen {
    /// The node's own flag: cancelled itself, or reached by an ancestor's cancellation.
    pub(crate) marked: bool,
    /// An enclosing scope is cancelled (C3): this group's own cancellation, if any, is
    /// not its to catch.
    pub(crate) outer: bool,
    /// Why the node was cancelled itself, if it was.
    pub(crate) reason: Option<Reason>,
}

impl Seen {
    /// Reads how `node` was cancelled and lets the node go (it leaves its parent's list
    /// unless a future kept past it still needs it there, and is finished: rule K1).
    ///
    /// The node's own flag is read first: an ancestor's cancellation sets its own flag
    /// before ours, so one that marked us by now is seen by the walk up if that
    /// ancestor still runs. (Read after the walk, a cancellation landing in between
    /// would pass for an orphan's: see [`decide`].) The walk up is skipped when neither
    /// the node nor the caller (`maybe`) saw a cancellation: then none can be caught.
    pub(crate) fn close(node: &Node, now: Instant, maybe: bool) -> Seen {
        let marked = node.is_marked();
        let outer = (maybe || marked || node.is_cancelled()) && node.outer_cancelled(now);
        let reason = node.reason();
        node.detach_unless_kept();
        node.finish();
        Seen {
            marked,
            outer,
            reason,
        }
    }
}

/// What a group does once its body and every child have finished.
pub(crate) enum Decision<T, E> {
    /// Returns this: the body's value, every error, or `Cancelled`.
    Return(Result<T, NurseryError<E>>),
    /// Resumes the first panic (N3), which wins over errors.
    Resume(Panic),
    /// Stays pending: an enclosing cancelled scope ends the work and drops the group (N4,
    /// C3), as trio raises `Cancelled` out of a nursery. If the group is kept and polled
    /// again after that scope finished, [`poll_stalled`] returns the cancellation.
    Stall,
}

/// The one end-of-group decision: how a group ends, from what it recorded, the body's
/// `value` (if the body produced one), how its node was cancelled (`seen`), and whether
/// it ran to its end without interruption (`uninterrupted`: it finished in its very
/// first poll and nothing of it was cancelled). `node` is the group's node, if it made
/// one (it is marked as having caught its cancellation when the group returns
/// `Cancelled`).
///
/// In order:
/// 1. the first panic is resumed (N3);
/// 2. errors are returned, every one, in order (N2), even under an enclosing
///    cancellation (N4);
/// 3. under an enclosing cancellation (N4, C3), the group stalls and the enclosing scope
///    catches, unless it never suspended and has its value (C1): then it returns it;
/// 4. marked by an ancestor that no running scope stands for (a group kept past the
///    scope it was first polled in, which cancelled it and has finished since: rule K2),
///    the group returns `Cancelled` itself, having nothing left to catch it;
/// 5. otherwise the body's value, or `Cancelled` if the group's own cancellation ended
///    the body before it produced one (N4).
pub(crate) fn decide<T, E>(
    node: Option<&Node>,
    record: Record<E>,
    value: Option<T>,
    seen: Seen,
    uninterrupted: bool,
) -> Decision<T, E> {
    if let Some(panic) = record.panic {
        return Decision::Resume(panic);
    }
    if !record.errors.is_empty() {
        return Decision::Return(Err(NurseryError::Failed(record.errors)));
    }
    let orphan = !seen.outer && seen.reason.is_none() && seen.marked;
    if (seen.outer || orphan) && !(uninterrupted && value.is_some()) {
        if !orphan {
            return Decision::Stall;
        }
        drop(value);
    } else if let Some(v) = value {
        return Decision::Return(Ok(v));
    } else {
        // Cancelled itself (a failure always records an error), or, kept past the scope
        // it was first polled in, by that finished scope (K2).
        debug_assert!(
            matches!(seen.reason, Some(Reason::Nursery) | None),
            "a failure always records an error"
        );
    }
    if let Some(node) = node {
        node.set_caught();
    }
    Decision::Return(Err(NurseryError::Cancelled))
}

impl<T, E> Decision<T, E> {
    /// The decision as a poll's result: a panic is resumed here.
    pub(crate) fn into_poll(self) -> Poll<Result<T, NurseryError<E>>> {
        match self {
            Decision::Return(r) => Poll::Ready(r),
            Decision::Resume(panic) => resume_unwind(panic),
            Decision::Stall => Poll::Pending,
        }
    }

    /// The group's phase once it has made this decision.
    pub(crate) fn phase(&self) -> Phase {
        match self {
            Decision::Stall => Phase::Stalled,
            Decision::Return(_) | Decision::Resume(_) => Phase::Returned,
        }
    }
}

/// A poll of a group that stalled under an enclosing cancellation ([`Decision::Stall`]):
/// pending while that scope is cancelled (it drops us); once it has finished (the group
/// was kept past it, rule K2), nothing is left to catch the cancellation, and the group
/// returns it itself.
pub(crate) fn poll_stalled<T, E>(node: &Node, now: Instant) -> Poll<Result<T, NurseryError<E>>> {
    if node.outer_cancelled(now) {
        return Poll::Pending;
    }
    node.set_caught();
    Poll::Ready(Err(NurseryError::Cancelled))
}

mod graves;
mod ready;

pub(crate) use self::graves::Graves;
pub(crate) use self::ready::{Queue, Ready, Round, UNPLACED};
