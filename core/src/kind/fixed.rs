//! The combinators' fast path ([`Fixed`]): a fixed set of futures, few enough to poll
//! them all on every wake-up, polled in place, in the caller's scope until they need a
//! node of their own.
//!
//! # How it works
//!
//! `join`, `try_join`, `race` and `race_ok` (and their tuple forms, `join!` and
//! `try_join!`) know their futures when they are called and never spawn more, so they
//! need no inbox, no ready queue and no per-future waker: like `futures::join!`, [`Fixed`]
//! keeps its futures inside itself (a tuple's all of them, a collection's first two, the
//! rest boxed: [`Slots`]), and polls every one still running, in order, with the caller's
//! waker, on every poll.
//!
//! The futures share one node, the *group*'s, which does what a nursery's does: the
//! first error (`try_join`), panic or winner (`race`, `race_ok`) cancels it, and with it
//! every scope, shield and nursery inside the futures; an enclosing cancellation reaches
//! it as it reaches a scope (it is a scope node under the caller's). But a future that
//! never asks for its hatchery context (a computation, a foreign future, a hatchery wait,
//! which only reads whether its scope is cancelled) keeps nothing of it, and nothing in
//! it can need cancelling but the future itself. So the group is *armed*: it defers its
//! node ([`Deferred`], which the context offers any runner): the futures run in the
//! caller's scope, and the group's node is made
//! the first time one of them asks for its context (to enter a scope, open a nursery,
//! take a hold, read the clock), before the access, so that what it keeps is the
//! group's. From then on every poll runs the futures in the group's node. The node is
//! also made when the group cancels itself, before another future is polled (one not
//! polled yet gets its first poll in the cancelled group, rule N5). A group that never
//! needs its node, as a join of computations or of foreign I/O, costs what
//! `futures::join!` costs, plus its bookkeeping. (The figure: 90 instructions per
//! two-future join over `futures::join!` in the same task, on tokio-ct by callgrind,
//! where making the node at every join would add a node's entry, install and finish.)
//!
//! Most polls are the fast path ([`Fast`]): no node made yet, nothing cancelled, no
//! error or panic, in a caller's scope that is not cancelled. Each future is polled and
//! its value kept, with the thread-local work of arming the group (a load and a store of
//! a thread-local with no destructor, and one read of the caller's node) and nothing
//! else; the first thing that is not a plain pending future or a value (a future that
//! asks for its context, an error, a panic, a winner) hands that future's outcome to the
//! general pass ([`Polling`]), which polls the rest as below. The general path of a poll
//! is out of line.
//!
//! What a future holds (a shield, a nursery, a `finally`) counts on the group's node
//! and up through the caller's scopes, as it would inside a scope: so a cancelled
//! caller's scope waits for it, and the group needs no hold of its own. Which future
//! holds is told by counting: the group's holds before and after each future's poll
//! ([`Node::hold_count`]). When the group is cancelled, every future that has been
//! polled and holds nothing is dropped at once, where it stands; one that holds is
//! polled on, and sees the cancellation, until it holds nothing. (A future run without
//! the group's node holds nothing: a hold is taken through the context.)
//!
//! What a combinator makes of a future's output is its mode ([`Takes`], written once for
//! every kind of children in `combinators/mode.rs`): a value to keep (`join`, `race`), a
//! `Result` whose error fails the group (`try_join`), an output that ends the group
//! (`race`: any, `race_ok`: an `Ok`). Modes are types, so that the polls of a tuple's
//! futures, each of its own type, are inlined with no call through a pointer.
//!
//! A collection's outputs come back in input order, as its slots are (`join`,
//! `try_join`: no index, no sort, `Outputs::InOrder`, worth 336 instructions per
//! `Polled::join` of two on tokio-ct by callgrind); for a mode that stops, in the order
//! they completed (the first is a race's winner), which the slots record as their
//! futures finish.
//!
//! # Invariants
//!
//! 1. **Owned in place.** Every future lives inside the `Fixed` future (a tuple's, a
//!    collection's first two) or in a box it owns: none is reachable from anywhere else,
//!    so a forgotten `Fixed` never polls them again, and no lifetime is extended.
//! 2. **Dropped before the end.** A future is dropped when it finishes or when it is
//!    cancelled at a suspension point, and every one of them before `Fixed` returns.
//! 3. **Kept means the group's.** A future that keeps anything of its context (a
//!    scope's parent link, a hold) keeps the group's node: the node is made before the
//!    first such access ([`Deferred`]), and installed for every poll after it.
//! 4. **Counted holds only err towards waiting.** A future's count is the change of the
//!    group's holds across its own polls. A hold taken in one future's poll and released
//!    in another's (a shield future handed between them) leaves the first with a
//!    count above zero: it then counts as holding only while the group has any hold at
//!    all, so at worst it is dropped when the last hold goes, never kept for good.
//! 5. **Success means every value.** A group of a mode that never stops early (`join`,
//!    `try_join`) returns `Ok` only when every future finished with a value: any
//!    cancellation, error or panic ends it otherwise. So a tuple's outputs are all there.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;

use super::mode::{Order, Outputs, Takes, MAX};
use crate::context::{self, Deferred, ResolveOnUnwind};
use crate::error::NurseryError;
use crate::group::{
    decide, failed, poll_stalled, race_won_by, Decision, Exit, Panic, Record, Seen,
};
use crate::node::{Due, Node, Reason};

pin_project! {
    /// One future of a group, and what became of it. (Its variants' fields are
    /// documented in comments: `pin_project!` takes no attribute on them.)
    #[allow(missing_docs)]
    #[project = SlotProj]
    #[project_replace = SlotOwn]
    pub enum Slot<F, V> {
        /// The future runs.
        Running {
            // The future.
            #[pin]
            fut: F,
            // Polled once at least: cancelled only at a suspension point (rule N5).
            polled: bool,
            // The change of the group's holds across this future's polls (invariant 4).
            holds: i32,
        },
        /// It finished with this value.
        Done { value: V },
        /// It was dropped: finished with an error or a panic, cancelled, or its value
        /// taken.
        Gone,
    }
}

impl<F, V> Slot<F, V> {
    pub(crate) fn new(fut: F) -> Self {
        Slot::Running {
            fut,
            polled: false,
            holds: 0,
        }
    }

    /// Its value, if it finished with one; the slot is empty after.
    pub(crate) fn take(self: Pin<&mut Self>) -> Option<V> {
        match self.project_replace(Slot::Gone) {
            SlotOwn::Done { value } => Some(value),
            _ => None,
        }
    }

    /// Its value, which a group that returns `Ok` has (invariant 5).
    pub(crate) fn value(self: Pin<&mut Self>) -> V {
        match self.take() {
            Some(value) => value,
            None => unreachable!("hatchery: internal error: a joined future without its value"),
        }
    }

    /// Drops its future, if it still has one; the panic of that drop, if any.
    pub(crate) fn drop_future(mut self: Pin<&mut Self>) -> Option<Panic> {
        // Through the projection: a shared reference to the whole slot would cover the
        // future, an async body that may hold references into itself.
        if !matches!(self.as_mut().project(), SlotProj::Running { .. }) {
            return None;
        }
        let mut slot = self;
        catch_unwind(AssertUnwindSafe(|| slot.set(Slot::Gone))).err()
    }
}

/// The futures of a group, as it stores them: a tuple's in place, a collection's first
/// two in place and the rest boxed.
pub trait Slots {
    /// The error that fails the group (its mode's).
    type Error;
    /// What the group returns when it succeeds.
    type Outputs;

    /// Polls every future still running, in order, in the pass `p` (the general one or
    /// the fast one).
    fn poll_each<P: Pass<Self::Error>>(self: Pin<&mut Self>, p: &mut P);

    /// Drops every future still there; the first panic of their destructors.
    fn drop_all(self: Pin<&mut Self>) -> Option<Panic>;

    /// The outputs, once every future is gone.
    fn outputs(self: Pin<&mut Self>) -> Self::Outputs;
}

pin_project! {
    /// A collection's futures ([`Slots`]): the first two in place (a join of two allocates
    /// nothing for them), the rest boxed, at most [`MAX`] in all.
    pub(crate) struct VecSlots<F: Future, M: Takes<F::Output>> {
        #[pin]
        first: Slot<F, M::Value>,
        #[pin]
        second: Slot<F, M::Value>,
        rest: Vec<Pin<Box<Slot<F, M::Value>>>>,
        // The slots in the order their futures finished with a value, for a mode that
        // stops (see `Order`).
        order: M::Order,
    }
}

impl<F: Future, M: Takes<F::Output>> VecSlots<F, M> {
    /// The slots of `first`, `second` and `rest` (none after a missing one).
    #[inline]
    pub(crate) fn new(first: Option<F>, second: Option<F>, rest: Vec<F>) -> Self {
        debug_assert!(rest.len() + 2 <= MAX);
        let slot = |f: Option<F>| f.map_or(Slot::Gone, Slot::new);
        VecSlots {
            first: slot(first),
            second: slot(second),
            rest: match rest.is_empty() {
                true => Vec::new(),
                false => rest.into_iter().map(|f| Box::pin(Slot::new(f))).collect(),
            },
            order: Default::default(),
        }
    }
}

/// Polls the future of the slot at `index` in the pass `p`; for a mode that stops,
/// records the slot in `order` if it finished with a value.
#[inline(always)]
fn poll_slot<F, M, P>(
    p: &mut P,
    mut slot: Pin<&mut Slot<F, M::Value>>,
    index: usize,
    order: &mut M::Order,
) where
    F: Future,
    M: Takes<F::Output>,
    P: Pass<M::Error>,
{
    if !M::STOPS {
        p.poll::<F, M>(slot);
        return;
    }
    let running = matches!(slot.as_mut().project(), SlotProj::Running { .. });
    p.poll::<F, M>(slot.as_mut());
    if running && matches!(slot.as_mut().project(), SlotProj::Done { .. }) {
        order.push(index as u8);
    }
}

impl<F: Future, M: Takes<F::Output>> Slots for VecSlots<F, M> {
    type Error = M::Error;
    type Outputs = Outputs<M::Value>;

    #[inline(always)]
    fn poll_each<P: Pass<M::Error>>(self: Pin<&mut Self>, p: &mut P) {
        let this = self.project();
        poll_slot::<F, M, P>(p, this.first, 0, this.order);
        poll_slot::<F, M, P>(p, this.second, 1, this.order);
        for (i, slot) in this.rest.iter_mut().enumerate() {
            poll_slot::<F, M, P>(p, slot.as_mut(), 2 + i, this.order);
        }
    }

    fn drop_all(self: Pin<&mut Self>) -> Option<Panic> {
        let this = self.project();
        let mut first = this.first.drop_future();
        first = first.or(this.second.drop_future());
        for slot in this.rest.iter_mut() {
            first = first.or(slot.as_mut().drop_future());
        }
        first
    }

    fn outputs(self: Pin<&mut Self>) -> Outputs<M::Value> {
        let mut this = self.project();
        if !M::STOPS {
            let mut outputs = Vec::with_capacity(2 + this.rest.len());
            outputs.extend(this.first.take());
            outputs.extend(this.second.take());
            for slot in this.rest.iter_mut() {
                outputs.extend(slot.as_mut().take());
            }
            return Outputs::InOrder(outputs);
        }
        let mut outputs = Vec::with_capacity(this.order.slots().len());
        for &i in this.order.slots() {
            let i = usize::from(i);
            let slot = match i {
                0 => this.first.as_mut(),
                1 => this.second.as_mut(),
                _ => this.rest[i - 2].as_mut(),
            };
            outputs.extend(slot.take().map(|v| (i, v)));
        }
        Outputs::Completed(outputs)
    }
}

/// A pass over a group's futures, polling one at a time: the general pass or the fast
/// one (the module docs say when each runs).
pub trait Pass<E> {
    /// Polls the future in `slot`, if it still runs.
    fn poll<F: Future, M: Takes<F::Output, Error = E>>(
        &mut self,
        slot: Pin<&mut Slot<F, M::Value>>,
    );
}

/// What a group of slots `S` returns: its outputs, or every error.
type Ended<S> = Result<<S as Slots>::Outputs, NurseryError<<S as Slots>::Error>>;

/// The group while it runs.
struct Run<E> {
    /// The group's node, once made.
    group: Option<Group>,
    /// Errors and a panic, rare: boxed, to keep the future small.
    trouble: Option<Box<Trouble<E>>>,
    /// A future was dropped cancelled.
    cancelled: bool,
    /// The caller's scope was cancelled when the last poll began.
    caller_cancelled: bool,
}

impl<E> Run<E> {
    fn new() -> Self {
        Run {
            group: None,
            trouble: None,
            cancelled: false,
            caller_cancelled: false,
        }
    }

    /// Nothing has happened yet: no node, no error or panic, no future dropped. Its polls
    /// take the fast path (see [`Fast`]) while the caller's scope is not cancelled.
    #[inline]
    fn is_simple(&self) -> bool {
        self.group.is_none() && self.trouble.is_none() && !self.cancelled
    }
}

enum State<E> {
    Fresh,
    Running(Run<E>),
    /// Every future is gone, under a cancelled enclosing scope, which ends the work and
    /// drops us (or, kept past it, this returns as cancelled when polled again).
    Stalled(Arc<Node>),
    Done,
}

/// The group's node.
struct Group {
    /// Moved into the context while the futures are polled.
    slot: Arc<Node>,
    /// The same node, read while the other is in the context.
    node: Arc<Node>,
    /// Its waker was registered: it is not let go of for reuse.
    registered: bool,
}

impl Group {
    fn new(node: Arc<Node>) -> Group {
        Group {
            slot: node.clone(),
            node,
            registered: false,
        }
    }
}

/// What went wrong in a group, boxed: most groups never fail, and a `Fixed` stays small.
type Trouble<E> = Record<E>;

pin_project! {
    /// A fixed set of futures ([`Slots`]), run concurrently in the caller's task (see the
    /// [module docs](self)). Returns their outputs, or every error.
    pub struct Fixed<S: Slots> {
        #[pin]
        slots: S,
        state: State<S::Error>,
        // Where the combinator was called: what a cancellation of the group names.
        at: &'static Location<'static>,
    }

    impl<S: Slots> PinnedDrop for Fixed<S> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Most groups end `Done`: nothing to do then.
            let State::Running(run) = this.state else {
                return;
            };
            // Dropped from outside before it finished (C8): everything inside is
            // cancelled, and the futures, which it owns, are dropped now.
            if let Some(group) = &run.group {
                group.node.cancel(Reason::Dropped);
            }
            let panic = this.slots.drop_all();
            if let Some(group) = &run.group {
                group.node.detach();
                group.node.finish();
            }
            if let Some(p) = panic {
                resume_unwind(p);
            }
        }
    }
}

impl<S: Slots> fmt::Debug for Fixed<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixed").finish_non_exhaustive()
    }
}

impl<F, V> fmt::Debug for Slot<F, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self {
            Slot::Running { .. } => "Running",
            Slot::Done { .. } => "Done",
            Slot::Gone => "Gone",
        };
        f.debug_tuple("Slot").field(&state).finish()
    }
}

impl<S: Slots> Fixed<S> {
    /// The group of `slots`, for a combinator called at `at`.
    pub(crate) fn new(slots: S, at: &'static Location<'static>) -> Self {
        Fixed {
            slots,
            state: State::Fresh,
            at,
        }
    }
}

/// One poll of the futures of a group.
pub(super) struct Polling<'a, E> {
    waker: &'a Waker,
    /// The group's node, once made: until then the group is armed, its futures run in
    /// the caller's scope.
    group: Option<Arc<Node>>,
    /// The group is cancelled (by itself, or an enclosing scope).
    cancelled: bool,
    at: &'static Location<'static>,
    trouble: &'a mut Option<Box<Trouble<E>>>,
    dropped: &'a mut bool,
    /// A future is still running.
    running: bool,
    /// A future that holds is still running.
    holding: bool,
}

/// Whether a future whose count is `holds` holds something (invariant 4).
#[inline]
fn holds(holds: i32, group: Option<&Arc<Node>>) -> bool {
    holds > 0 && group.is_some_and(|g| g.has_holds())
}

impl<E> Pass<E> for Polling<'_, E> {
    /// Polls one future, or drops it if the group is cancelled and it holds nothing.
    #[inline(always)]
    fn poll<F: Future, M: Takes<F::Output, Error = E>>(
        &mut self,
        mut slot: Pin<&mut Slot<F, M::Value>>,
    ) {
        let SlotProj::Running {
            fut,
            polled,
            holds: count,
        } = slot.as_mut().project()
        else {
            return;
        };
        if *polled && self.cancelled && !holds(*count, self.group.as_ref()) {
            self.drop_cancelled(slot);
            return;
        }
        let before = self.group.as_ref().map_or(0, |g| g.hold_count());
        let mut cx = Context::from_waker(self.waker);
        let out = catch_unwind(AssertUnwindSafe(|| fut.poll(&mut cx)));
        *polled = true;
        self.after::<F, M>(slot, out, before);
    }
}

impl<E> Polling<'_, E> {
    /// What follows a future's poll, whose outcome is `out`, the group's holds having
    /// been `before` when it began (see [`poll`](Self::poll)).
    #[inline(always)]
    fn after<F: Future, M: Takes<F::Output, Error = E>>(
        &mut self,
        mut slot: Pin<&mut Slot<F, M::Value>>,
        out: std::thread::Result<Poll<F::Output>>,
        before: u32,
    ) {
        if self.group.is_none() && context::deferred_made() {
            // It asked for its context: the group's node is made, and current.
            self.group = Some(context::make_deferred());
        }
        let mut holding = false;
        if let Some(group) = &self.group {
            if let SlotProj::Running { holds: count, .. } = slot.as_mut().project() {
                // Counted from zero if the node was made in this poll.
                let now = group.hold_count();
                *count = count.wrapping_add(now.wrapping_sub(before) as i32);
                holding = holds(*count, Some(group));
            }
            // A cancellation that reached the node in this poll (from a linked ancestor,
            // or from inside).
            self.cancelled |= group.is_marked();
        }
        match out {
            Ok(Poll::Pending) => {
                if self.cancelled && !holding {
                    // Cancelled (by a sibling, in this poll, or from outside) where it
                    // stands, holding nothing: dropped at once.
                    self.drop_cancelled(slot);
                } else {
                    self.running = true;
                    self.holding |= holding;
                }
            }
            Ok(Poll::Ready(out)) => {
                let panic = slot.as_mut().drop_future();
                self.ready::<F, M>(slot, M::split(out), panic);
            }
            Err(p) => {
                self.panicked(p);
                self.drop_done(slot);
            }
        }
    }

    /// A future returned `split` (its output made a value or an error), its drop having
    /// panicked with `panic`, if so: the panic and the error cancel the group, as does a
    /// value that ends it (`race`); a value is kept.
    #[inline(always)]
    fn ready<F: Future, M: Takes<F::Output, Error = E>>(
        &mut self,
        mut slot: Pin<&mut Slot<F, M::Value>>,
        split: Result<M::Value, E>,
        panic: Option<Panic>,
    ) {
        if let Some(p) = panic {
            self.panicked(p);
        }
        match split {
            Ok(value) => {
                if M::stops(&value) {
                    let at = self.at;
                    self.cancel(|group| race_won_by(group, at));
                }
                slot.set(Slot::Done { value });
            }
            Err(e) => self.failed(Exit::Failed(e)),
        }
    }

    /// The group cancels itself (`how`): its node is made first if it was not, so that
    /// the futures polled from now on (a first poll, rule N5) see the cancellation.
    #[cold]
    fn cancel(&mut self, how: impl FnOnce(&Node)) {
        let group = self.group.get_or_insert_with(context::make_deferred);
        how(group);
        self.cancelled = true;
    }

    /// A future failed or panicked: recorded, and the group cancelled, as every group's
    /// child is ([`Record::note`], [`failed`]).
    #[cold]
    fn failed(&mut self, exit: Exit<E>) {
        if let Some(panicked) = self.trouble.get_or_insert_default().note(exit) {
            let at = self.at;
            self.cancel(|group| failed(group, panicked, None, Some(at)));
        }
    }

    #[cold]
    fn panicked(&mut self, p: Panic) {
        self.failed(Exit::Panicked(p));
    }

    /// Drops a future that finished (or panicked).
    #[inline]
    fn drop_done<F, V>(&mut self, slot: Pin<&mut Slot<F, V>>) {
        if let Some(p) = slot.drop_future() {
            self.panicked(p);
        }
    }

    /// Drops a cancelled future where it stands, as cancelled code (rule R5).
    #[cold]
    fn drop_cancelled<F, V>(&mut self, mut slot: Pin<&mut Slot<F, V>>) {
        *self.dropped = true;
        let dropped = catch_unwind(AssertUnwindSafe(|| {
            context::drop_cancelled_body(|| slot.set(Slot::Gone))
        }));
        if let Err(p) = dropped {
            self.panicked(p);
        }
    }
}

/// A pass over a group's futures in the common case, the fast path of [`Fixed`]'s poll:
/// the group is armed in the caller's scope, which is not cancelled, and nothing has
/// happened yet in it (no node made, no future dropped, no error, no panic). Each
/// future is polled, then a value is kept and a pending future left as it is, with no
/// more bookkeeping than that. Anything else (a future that asked for its context, an
/// error, a panic, a value that ends the group) hands that future's outcome to the
/// general pass ([`Polling`]), made then, which polls the rest.
pub(super) struct Fast<'a, E> {
    waker: &'a Waker,
    at: &'static Location<'static>,
    /// A future is still running.
    running: bool,
    /// What the general pass needs, until it is made.
    trouble: Option<&'a mut Option<Box<Trouble<E>>>>,
    dropped: Option<&'a mut bool>,
    /// The general pass, once something happened.
    slow: Option<Polling<'a, E>>,
}

impl<E> Pass<E> for Fast<'_, E> {
    /// Polls one future.
    #[inline(always)]
    fn poll<F: Future, M: Takes<F::Output, Error = E>>(
        &mut self,
        mut slot: Pin<&mut Slot<F, M::Value>>,
    ) {
        if let Some(p) = &mut self.slow {
            p.poll::<F, M>(slot);
            return;
        }
        let SlotProj::Running { fut, polled, .. } = slot.as_mut().project() else {
            return;
        };
        let mut cx = Context::from_waker(self.waker);
        let out = catch_unwind(AssertUnwindSafe(|| fut.poll(&mut cx)));
        *polled = true;
        if !context::deferred_made() {
            match out {
                Ok(Poll::Pending) => {
                    self.running = true;
                    return;
                }
                Ok(Poll::Ready(out)) => {
                    let panic = slot.as_mut().drop_future();
                    match M::split(out) {
                        Ok(value) if panic.is_none() && !M::stops(&value) => {
                            slot.set(Slot::Done { value });
                        }
                        split => self.slow().ready::<F, M>(slot, split, panic),
                    }
                    return;
                }
                Err(p) => {
                    let slow = self.slow();
                    slow.panicked(p);
                    slow.drop_done(slot);
                    return;
                }
            }
        }
        // It asked for its context: the group's node is made, its holds counted from
        // zero.
        self.slow().after::<F, M>(slot, out, 0);
    }
}

impl<'a, E> Fast<'a, E> {
    /// The general pass, made now if it was not.
    #[cold]
    fn slow(&mut self) -> &mut Polling<'a, E> {
        let waker = self.waker;
        let (at, running) = (self.at, self.running);
        let trouble = self.trouble.take();
        let dropped = self.dropped.take();
        self.slow.get_or_insert_with(|| Polling {
            waker,
            group: None,
            cancelled: false,
            at,
            trouble: trouble.expect("a fast pass gone slow once"),
            dropped: dropped.expect("a fast pass gone slow once"),
            running,
            holding: false,
        })
    }
}

/// Polls every future until the group's state settles: a cancellation during a pass (an
/// error, a panic, a winner, or from outside) drops the futures polled before it in a
/// second pass, not at the next poll, so that the group ends in this poll unless a
/// future holds. The group holds nothing of its own: an enclosing scope cancelled before
/// the next poll would drop it with the errors it has not returned yet (rule G3 says a
/// `try_join` returns them). One that holds is polled again, and sees the cancellation.
#[inline(always)]
fn poll_settled<S: Slots>(mut slots: Pin<&mut S>, p: &mut Polling<'_, S::Error>) {
    loop {
        let was_cancelled = p.cancelled;
        slots.as_mut().poll_each(p);
        if was_cancelled || !p.cancelled || !p.running {
            return;
        }
        p.running = false;
        p.holding = false;
    }
}

impl<S: Slots> Future for Fixed<S> {
    type Output = Result<S::Outputs, NurseryError<S::Error>>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(done) = self.as_mut().poll_fast(cx) {
            return done;
        }
        self.poll_general(cx)
    }
}

impl<S: Slots> Fixed<S> {
    /// The general path of a poll (see [`Fixed::poll_fast`] for the common one): a group
    /// whose node was made, that failed or dropped a future, or whose caller's scope is
    /// cancelled. Out of line, so that the fast path's frame is small.
    #[inline(never)]
    fn poll_general(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended<S>> {
        let this = self.as_mut().project();
        let fresh = matches!(this.state, State::Fresh);
        match this.state {
            State::Fresh => *this.state = State::Running(Run::new()),
            State::Running(_) => {}
            State::Stalled(node) => {
                // Kept past the scope that cancelled us, which has finished since:
                // nothing else will catch it, and we return it ourselves (rule K2).
                let stalled = poll_stalled(node, context::now());
                if stalled.is_ready() {
                    *this.state = State::Done;
                }
                return stalled;
            }
            State::Done => panic!("hatchery: combinator polled after completion"),
        }
        let State::Running(run) = &mut *this.state else {
            unreachable!()
        };
        let mut slots = this.slots;
        let waker = cx.waker();
        // `cancelled` is set below, once each branch knows whether the group is.
        let mut p = Polling {
            waker,
            group: run.group.as_ref().map(|group| group.node.clone()),
            cancelled: false,
            at: this.at,
            trouble: &mut run.trouble,
            dropped: &mut run.cancelled,
            running: false,
            holding: false,
        };
        let (running, holding, was_cancelled) = match &mut run.group {
            Some(group) => {
                let node = &group.node;
                let was_cancelled = match node.is_linked() {
                    true => node.is_cancelled(),
                    // The caller's cancellation does not reach us through its child list
                    // (node invariant 7): we learn of it here, in one walk up the tree.
                    false => node.refresh_cancelled(),
                };
                p.cancelled = was_cancelled;
                let ((), by_parent) = context::enter_node(&mut group.slot, waker, || {
                    poll_settled(slots.as_mut(), &mut p)
                });
                let (running, holding) = (p.running, p.holding);
                if running {
                    // Who wakes us when an enclosing scope is cancelled, as for a scope:
                    // polled by the caller's own runner, its wake-up reaches us; polled
                    // through a combinator with wakers of its own, the caller's scope
                    // must find us in its child list.
                    if !by_parent {
                        node.link_scope();
                    }
                    if node.is_linked() {
                        node.register(waker);
                        group.registered = true;
                    }
                }
                // Its clone of the node goes now, before the group may end: `end` lets the
                // node go for reuse only if nothing else holds it.
                drop(p);
                (running, holding, was_cancelled)
            }
            None => {
                let (mut armed, was_cancelled) = Deferred::defer();
                let unwind = ResolveOnUnwind(&mut armed);
                p.cancelled = was_cancelled;
                poll_settled(slots.as_mut(), &mut p);
                let (running, holding) = (p.running, p.holding);
                let made = unwind.0.resolve();
                std::mem::forget(unwind);
                run.caller_cancelled = was_cancelled;
                return self.finish_poll(cx, fresh, running, holding, was_cancelled, made);
            }
        };
        self.finish_poll(cx, fresh, running, holding, was_cancelled, None)
    }
}

impl<S: Slots> Fixed<S> {
    /// The fast path (see [`Fast`]): a fresh group, or one running with nothing happened
    /// yet, in a caller's scope that is not cancelled. `None` if it does not apply: the
    /// general path polls instead.
    #[inline(always)]
    fn poll_fast(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Option<Poll<Ended<S>>> {
        let this = self.as_mut().project();
        let fresh = match this.state {
            State::Fresh => true,
            State::Running(run) if run.is_simple() => false,
            _ => return None,
        };
        let (mut armed, caller_cancelled) = Deferred::defer();
        if caller_cancelled {
            let made = armed.resolve();
            debug_assert!(made.is_none());
            return None;
        }
        if fresh {
            // Replacing `Fresh`, which holds nothing to drop.
            std::mem::forget(std::mem::replace(this.state, State::Running(Run::new())));
        }
        let State::Running(run) = this.state else {
            unreachable!()
        };
        let unwind = ResolveOnUnwind(&mut armed);
        let waker = cx.waker();
        let mut f = Fast {
            waker,
            at: this.at,
            running: false,
            trouble: Some(&mut run.trouble),
            dropped: Some(&mut run.cancelled),
            slow: None,
        };
        let mut slots = this.slots;
        slots.as_mut().poll_each(&mut f);
        let (simple, running, holding) = match f.slow.take() {
            None => (true, f.running, false),
            Some(p) => slow_pass_end(slots.as_mut(), p),
        };
        // Nothing left in it to drop.
        std::mem::forget(f);
        let made = unwind.0.resolve();
        std::mem::forget(unwind);
        if simple && made.is_none() {
            if running {
                return Some(Poll::Pending);
            }
            // Every future finished with a value, nothing cancelled. (A simple run holds
            // nothing to drop.)
            std::mem::forget(std::mem::replace(this.state, State::Done));
            return Some(Poll::Ready(Ok(slots.outputs())));
        }
        if let State::Running(run) = this.state {
            run.caller_cancelled = false;
        }
        // Something happened: as the general path ends its poll.
        Some(self.finish_poll(cx, fresh, running, holding, false, made))
    }

    /// Ends a poll of the group's futures, which left `running` and `holding` (as
    /// [`Polling`] says them) with the caller's scope cancelled or not when it began
    /// (`was_cancelled`), and the group's node `made` if it was made in this poll: links
    /// that node, or wakes the caller if a future holds in a group cancelled in this
    /// poll, or ends the group.
    #[inline(never)]
    fn finish_poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        fresh: bool,
        running: bool,
        holding: bool,
        was_cancelled: bool,
        made: Option<Arc<Node>>,
    ) -> Poll<Ended<S>> {
        let this = self.as_mut().project();
        let State::Running(run) = this.state else {
            unreachable!()
        };
        if let Some(node) = made {
            run.group = Some(made_group(node, running, cx.waker()));
        }
        if running {
            let cancelled = run
                .group
                .as_ref()
                .map_or(was_cancelled, |g| g.node.is_cancelled());
            if holding && !was_cancelled && cancelled {
                // Cancelled during this poll while a future holds: the scopes in it that
                // were polled before learn of it when polled again.
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        self.end(fresh)
    }
}

/// Ends a fast pass that went slow: if the group was cancelled during the pass, the
/// futures polled before are dropped now (see [`poll_settled`]). Returns that the pass
/// was not simple, and whether a future still runs and whether one that holds does.
#[cold]
fn slow_pass_end<S: Slots>(slots: Pin<&mut S>, mut p: Polling<'_, S::Error>) -> (bool, bool, bool) {
    if p.cancelled && p.running {
        p.running = false;
        p.holding = false;
        poll_settled(slots, &mut p);
    }
    (false, p.running, p.holding)
}

/// The group's node, made during a poll of its futures, linked as a scope's is if a
/// future still runs.
#[cold]
fn made_group(node: Arc<Node>, running: bool, waker: &Waker) -> Group {
    let mut group = Group::new(node);
    // Linked as in the poll's other branch, the node being new.
    if running && !context::polled_by_parent(&group.node, waker) {
        group.node.link_scope();
        if group.node.is_linked() {
            group.node.register(waker);
            group.registered = true;
        }
    }
    group
}

impl<S: Slots> Fixed<S> {
    /// Every future is gone: the group ends as a nursery does.
    fn end(self: Pin<&mut Self>, fresh: bool) -> Poll<Result<S::Outputs, NurseryError<S::Error>>> {
        let this = self.project();
        let State::Running(run) = std::mem::replace(this.state, State::Done) else {
            unreachable!()
        };
        let Run {
            group,
            trouble,
            cancelled,
            caller_cancelled,
        } = run;
        let record = trouble.map_or_else(Record::default, |t| *t);
        // Finished in its first poll, nothing of it cancelled: it never suspended, and
        // cancellation does not interrupt it (C1).
        let uninterrupted = fresh && !cancelled;
        let Some(group) = group else {
            // No node: the futures ran in the caller's scope, and any cancellation of
            // theirs was the caller's.
            let seen = Seen {
                marked: false,
                outer: cancelled || (!fresh && caller_cancelled),
                reason: None,
            };
            return match decide(None, record, Some(()), seen, uninterrupted) {
                Decision::Stall => {
                    // A node to tell, if we are kept and polled again later, whether
                    // the enclosing scope has finished since.
                    let node = context::with_current(|c| {
                        Node::entered(c.expect(context::NO_RUNTIME).node, false, Due::Never)
                    });
                    node.finish();
                    *this.state = State::Stalled(node);
                    Poll::Pending
                }
                decision => decision.into_poll().map_ok(|()| this.slots.outputs()),
            };
        };
        let Group {
            slot,
            node,
            registered,
        } = group;
        drop(slot);
        // Unless nothing was cancelled at all: then nothing is caught, and the outputs
        // are complete.
        let seen = Seen::close(&node, context::now(), cancelled);
        match decide(Some(&node), record, Some(()), seen, uninterrupted) {
            Decision::Stall => {
                // The node tells, if we are kept and polled again later, whether the
                // enclosing scope has finished since.
                *this.state = State::Stalled(node);
                Poll::Pending
            }
            Decision::Return(Ok(())) => {
                let outputs = this.slots.outputs();
                if !registered {
                    // For the next scope entered here in this task poll (a loop of joins).
                    context::recycle_node(node);
                }
                Poll::Ready(Ok(outputs))
            }
            decision => decision.into_poll().map_ok(|()| unreachable!()),
        }
    }
}
