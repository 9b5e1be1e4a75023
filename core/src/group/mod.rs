//! The group: what a nursery, an inline nursery and a fixed group (the combinators'
//! `join!`, `try_join!`, `race`, `race_ok` over futures kept in place) have in common,
//! written once.
//!
//! A group runs a body and children. It records every error in the order it happened
//! and the first panic ([`Record`], rules N2 and N3), cancels the rest on the first
//! failure, waits until every child has finished (N1), and then decides how it ends
//! ([`decide`], rules N2-N4, C1, C3 and K2). What differs between the three is how
//! children are stored and run (tasks of the executor, futures the group's own task
//! polls, slots in place), which the three kinds keep to themselves:
//!
//! | kind | where | children |
//! |---|---|---|
//! | spawning nursery | `nursery` (`task::run` runs its tasks) | tasks of the executor |
//! | inline nursery, inline combinators | `inline::engine` | futures polled by the group's task |
//! | fixed group | `inline::fixed` | futures in slots of the combinator's own future |
//!
//! The first two are one future, [`GroupFuture`], over a [`Kind`] of children (how they
//! are admitted, run, closed and aborted); the fixed groups, whose futures live in place,
//! use the record and the decision directly. How a child ended is an [`Exit`], whichever
//! the kind.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::context;
use crate::error::NurseryError;
use crate::node::{Node, Reason};
use crate::rt::Runtime;
use crate::trace;

mod future;

pub(crate) use self::future::{Closed, GroupFuture, Kind};

/// What a nursery's handle reads of the state its group shares, whatever the kind of
/// children. Public only in name, as the bound of the sealed trait that names the state
/// (`nursery::Children`): nothing outside the crate can reach it.
#[allow(unreachable_pub, private_interfaces)]
pub trait GroupState {
    /// The group's node.
    fn node(&self) -> &Arc<Node>;

    /// Whether the group has closed: it has finished (or its future was dropped), and
    /// admits no child.
    fn is_closed(&self) -> bool;

    /// Where the group was opened.
    fn opened_at(&self) -> &'static std::panic::Location<'static>;

    /// The name the group was given, if any.
    fn name(&self) -> Option<&str>;

    /// How many children are alive, where the group counts them (its `Debug` says).
    fn live(&self) -> Option<usize> {
        None
    }
}

/// A panic's payload, as `catch_unwind` gives it.
pub(crate) type Panic = Box<dyn Any + Send + 'static>;

/// Drops `x`, catching a panic in its destructor: a child's future or value, whose
/// destructor's panic is the child's.
#[inline]
pub(crate) fn drop_caught<X>(x: X) -> Result<(), Panic> {
    catch_unwind(AssertUnwindSafe(|| drop(x)))
}

/// How a child of a group ended. `O` is what it hands to the group: nothing (`()`) when
/// its value goes to a handle, or to nobody.
pub(crate) enum Exit<O, E> {
    /// Finished with a value.
    Value(O),
    /// Returned an error: the group is cancelled and the error recorded (N2).
    Failed(E),
    /// Panicked: the group is cancelled and the first panic resumed at its end (N3).
    Panicked(Panic),
    /// Was cancelled at a suspension point (C1), which is not a failure (N4).
    Cancelled,
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
    /// Keeps `panic` if it is the first (N3: the first panic to reach the group wins).
    pub(crate) fn panicked(&mut self, panic: Panic) {
        self.panic.get_or_insert(panic);
    }

    /// Takes what was recorded, leaving the record empty.
    pub(crate) fn take(&mut self) -> Record<E> {
        std::mem::take(self)
    }
}

/// Where a group's future is in its life.
///
/// Transitions: `Body` → `Draining` when the body has ended (its value, error or panic
/// recorded, or cancelled: [`poll_body`]); `Draining` → `Returned` or `Stalled` when
/// every child has finished too ([`decide`]); `Stalled` → `Returned` when the group,
/// kept past the enclosing scope that cancelled it, is polled after that scope has
/// finished ([`poll_stalled`]). A group dropped in `Body` or `Draining` was dropped from
/// outside hatchery (C8).
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

/// Makes a group's body with `make` (in the group's first poll) and keeps it in `fut`.
/// A panic in `make` is the body's (N3): the children it spawned are waited for.
pub(crate) fn make_body<Fut, E>(
    mut fut: Pin<&mut Option<Fut>>,
    make: impl FnOnce() -> Fut,
    failures: &impl Failures<E>,
) -> Phase {
    match catch_unwind(AssertUnwindSafe(make)) {
        Ok(body) => {
            fut.set(Some(body));
            Phase::Body
        }
        Err(panic) => {
            failures.body_panicked(panic);
            Phase::Draining
        }
    }
}

/// Where a group records how its body ended (its children's ends take their own ways
/// there, by kind). Public only in name, as [`Kind::Shared`]'s bound.
#[allow(unreachable_pub, private_interfaces)]
pub trait Failures<E> {
    /// The body returned `error`: record it and cancel the group (N2).
    fn body_failed(&self, error: E);

    /// The body panicked (in its poll or its destructor): record it and cancel the group
    /// (N3).
    fn body_panicked(&self, panic: Panic);
}

/// The body of a group, as its future polls it: `None` once it has ended.
pub(crate) struct Body<'a, Fut, T> {
    /// The body's future, dropped in place when it ends.
    pub(crate) fut: Pin<&'a mut Option<Fut>>,
    /// Where the body's value goes.
    pub(crate) value: &'a mut Option<T>,
    /// The group's node, installed as the current one while the body is polled (moved
    /// into the context and back).
    pub(crate) slot: &'a mut Option<Arc<Node>>,
}

/// Polls a group's body once, in the group's node, and drops it where it ends: with
/// its value, its error or its panic recorded, or cancelled at a suspension point (C1;
/// never in the group's `first` poll, where the body has not suspended yet, rule N5).
/// The body's destructor runs in its context (R5), and a panic in it is the body's (N3).
/// `describe` tells the `tracing` feature of the body's error (what it can say of `E`
/// depends on its bounds, which the caller knows). Returns whether the body has ended;
/// the caller then waits for the children.
pub(crate) fn poll_body<Fut, T, E>(
    body: Body<'_, Fut, T>,
    first: bool,
    node: &Node,
    rt: &Arc<dyn Runtime>,
    cx: &mut Context<'_>,
    failures: &impl Failures<E>,
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
    if first || !node.should_drop() {
        let Some(polling) = fut.as_mut().as_pin_mut() else {
            return true;
        };
        let polled = catch_unwind(AssertUnwindSafe(|| {
            context::enter_with(slot, rt, cx.waker(), || polling.poll(cx))
        }));
        match polled {
            Ok(Poll::Pending) if !node.should_drop() => return false,
            Ok(Poll::Pending) => trace::cancelled(node, None),
            Ok(Poll::Ready(Ok(v))) => *value = Some(v),
            Ok(Poll::Ready(Err(e))) => {
                describe(&e);
                failures.body_failed(e);
            }
            Err(panic) => failures.body_panicked(panic),
        }
    } else {
        trace::cancelled(node, None);
    }
    // Dropped (a no-op if it finished) before the group waits for its children.
    let dropped = catch_unwind(AssertUnwindSafe(|| {
        context::drop_cancelled_body(|| fut.set(None))
    }));
    if let Err(panic) = dropped {
        failures.body_panicked(panic);
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
