//! The combinators' fast path ([`Fixed`]): a fixed set of futures, few enough to poll
//! them all on every wake-up, polled in place, in the caller's scope until they need a
//! node of their own.
//!
//! # How it works
//!
//! `join`, `try_join`, `race` and `race_ok` know their futures when they are called and
//! never spawn more, so they need no inbox, no ready queue and no per-future waker: like
//! `futures::join!`, [`Fixed`] keeps the first two futures inside itself (the rest
//! boxed), and polls every one still running, in order, with the caller's waker, on
//! every poll.
//!
//! The futures share one node, the *group*'s, which does what a nursery's does: the
//! first error (`try_join`), panic or winner (`race`, `race_ok`) cancels it, and with it
//! every scope, shield and nursery inside the futures; an enclosing cancellation reaches
//! it as it reaches a scope (it is a scope node under the caller's). But a future that
//! never asks for its hatchery context (a computation, a foreign future, a hatchery wait,
//! which only reads whether its scope is cancelled) keeps nothing of it, and nothing in
//! it can need cancelling but the future itself. So the group is *armed*
//! ([`ArmedGroup`]): the futures run in the caller's scope, and the group's node is made
//! the first time one of them asks for its context (to enter a scope, open a nursery,
//! take a hold, read the clock), before the access, so that what it keeps is the
//! group's. From then on every poll runs the futures in the group's node. The node is
//! also made when the group cancels itself, before another future is polled (one not
//! polled yet gets its first poll in the cancelled group, rule N5). A group that never
//! needs its node, as a join of computations or of foreign I/O, costs what
//! `futures::join!` costs, plus its bookkeeping.
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
//! # Invariants
//!
//! 1. **Owned in place.** Every future lives inside the `Fixed` future (the first two)
//!    or in a box it owns: none is reachable from anywhere else, so a forgotten `Fixed`
//!    never polls them again, and no lifetime is extended.
//! 2. **Dropped before the end.** A future is dropped when it finishes or when it is
//!    cancelled at a suspension point, and every one of them before `Fixed` returns.
//! 3. **Kept means the group's.** A future that keeps anything of its context (a
//!    scope's parent link, a hold) keeps the group's node: the node is made before the
//!    first such access ([`ArmedGroup`]), and installed for every poll after it.
//! 4. **Counted holds only err towards waiting.** A future's count is the change of the
//!    group's holds across its own polls. A hold taken in one future's poll and released
//!    in another's (a shield future handed between them) leaves the first with a
//!    count above zero: it then counts as holding only while the group has any hold at
//!    all, so at worst it is dropped when the last hold goes, never kept for good.

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;

use super::engine::failed;
use crate::context::{self, ArmedGroup};
use crate::error::NurseryError;
use crate::node::{Detail, Node, Reason};
use crate::reason::race_won;
use crate::task::Panic;

/// How many futures [`Fixed`] takes: more are run by an inline nursery's engine, whose
/// per-future wakers poll only the futures that were woken.
pub(crate) const MAX: usize = 32;

pin_project! {
    /// One future of a [`Fixed`] group and what became of it.
    struct Slot<F: Future, O> {
        // `None` once it finished or was dropped.
        #[pin]
        fut: Option<F>,
        out: Option<O>,
        // Polled once at least: cancelled only at a suspension point (rule N5).
        polled: bool,
        // The change of the group's holds across this future's polls (invariant 4).
        holds: i32,
    }
}

impl<F: Future, O> Slot<F, O> {
    fn new(fut: Option<F>) -> Self {
        Slot {
            fut,
            out: None,
            polled: false,
            holds: 0,
        }
    }
}

pin_project! {
    /// A fixed set of at most [`MAX`] futures, run concurrently in the caller's task (see
    /// the [module docs](self)). `split` turns a future's output into a value or an
    /// error (an error cancels the rest); `stop` says which value ends the group
    /// (`race`). Returns the values in input order, or every error.
    pub(crate) struct Fixed<F: Future, O, E> {
        #[pin]
        first: Slot<F, O>,
        #[pin]
        second: Slot<F, O>,
        rest: Vec<Pin<Box<Slot<F, O>>>>,
        split: fn(F::Output) -> Result<O, E>,
        stop: Option<fn(&O) -> bool>,
        state: State<E>,
        // Where the combinator was called: what a cancellation of the group names.
        at: &'static Location<'static>,
    }

    impl<F: Future, O, E> PinnedDrop for Fixed<F, O, E> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let State::Running(run) = std::mem::replace(this.state, State::Done) else {
                return;
            };
            // Dropped from outside before it finished (C8): everything inside is
            // cancelled, and the futures, which it owns, are dropped now.
            if let Some(group) = &run.group {
                group.node.cancel(Reason::Dropped);
            }
            let mut first_panic = None;
            let mut drop_slot = |slot: Pin<&mut Slot<F, O>>| {
                let mut fut = slot.project().fut;
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| fut.set(None))) {
                    first_panic.get_or_insert(p);
                }
            };
            drop_slot(this.first);
            drop_slot(this.second);
            for slot in this.rest.iter_mut() {
                drop_slot(slot.as_mut());
            }
            if let Some(group) = &run.group {
                group.node.detach();
                group.node.finish();
            }
            if let Some(p) = first_panic {
                resume_unwind(p);
            }
        }
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

struct Trouble<E> {
    errors: Vec<E>,
    panic: Option<Panic>,
}

impl<E> Default for Trouble<E> {
    fn default() -> Self {
        Trouble {
            errors: Vec::new(),
            panic: None,
        }
    }
}

impl<F: Future, O, E> Fixed<F, O, E> {
    /// The group of `first`, `second` and `rest`, at most [`MAX`] futures in all (none
    /// after a missing one).
    pub(crate) fn new(
        first: Option<F>,
        second: Option<F>,
        rest: Vec<F>,
        split: fn(F::Output) -> Result<O, E>,
        stop: Option<fn(&O) -> bool>,
        at: &'static Location<'static>,
    ) -> Self {
        debug_assert!(rest.len() + 2 <= MAX);
        Fixed {
            first: Slot::new(first),
            second: Slot::new(second),
            rest: rest
                .into_iter()
                .map(|f| Box::pin(Slot::new(Some(f))))
                .collect(),
            split,
            stop,
            state: State::Fresh,
            at,
        }
    }
}

/// One poll of the futures of a group.
struct Polling<'a, O, E, T> {
    waker: &'a Waker,
    /// Armed: the futures run in the caller's scope until the group's node is made.
    armed: Option<&'a ArmedGroup<'a>>,
    /// The group's node, once made.
    group: Option<Arc<Node>>,
    /// The group is cancelled (by itself, or an enclosing scope).
    cancelled: bool,
    split: fn(T) -> Result<O, E>,
    stop: Option<fn(&O) -> bool>,
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

impl<O, E, T> Polling<'_, O, E, T> {
    /// Polls one future, or drops it if the group is cancelled and it holds nothing.
    #[inline(always)]
    fn poll<F: Future<Output = T>>(&mut self, slot: Pin<&mut Slot<F, O>>) {
        let mut s = slot.project();
        let Some(fut) = s.fut.as_mut().as_pin_mut() else {
            return;
        };
        if *s.polled && self.cancelled && !holds(*s.holds, self.group.as_ref()) {
            self.drop_cancelled(s.fut);
            return;
        }
        let before = self.group.as_ref().map_or(0, |g| g.hold_count());
        let mut cx = Context::from_waker(self.waker);
        let polled = catch_unwind(AssertUnwindSafe(|| fut.poll(&mut cx)));
        *s.polled = true;
        if self.group.is_none() && self.armed.is_some_and(|a| a.is_made()) {
            // It asked for its context: the group's node is made, and current.
            self.group = self.armed.map(ArmedGroup::make);
        }
        if let Some(group) = &self.group {
            // Counted from zero if the node was made in this poll.
            let now = group.hold_count();
            *s.holds = s.holds.wrapping_add(now.wrapping_sub(before) as i32);
            // A cancellation that reached the node in this poll (from a linked ancestor,
            // or from inside).
            self.cancelled |= group.is_marked();
        }
        match polled {
            Ok(Poll::Pending) => {
                if self.cancelled && !holds(*s.holds, self.group.as_ref()) {
                    // Cancelled (by a sibling, in this poll, or from outside) where it
                    // stands, holding nothing: dropped at once.
                    self.drop_cancelled(s.fut);
                } else {
                    self.running = true;
                    self.holding |= holds(*s.holds, self.group.as_ref());
                }
            }
            Ok(Poll::Ready(out)) => {
                self.drop_done(s.fut);
                match (self.split)(out) {
                    Ok(o) => {
                        if self.stop.is_some_and(|stop| stop(&o)) {
                            self.cancel(Reason::Nursery, race_won(self.at));
                        }
                        *s.out = Some(o);
                    }
                    Err(e) => {
                        self.trouble.get_or_insert_default().errors.push(e);
                        self.cancel(Reason::Failure, failed(Some(self.at), false));
                    }
                }
            }
            Err(p) => {
                self.panicked(p);
                self.drop_done(s.fut);
            }
        }
    }

    /// The group cancels itself: its node is made first if it was not, so that the
    /// futures polled from now on (a first poll, rule N5) see the cancellation.
    fn cancel(&mut self, reason: Reason, detail: Detail) {
        if self.group.is_none() {
            self.group = self.armed.map(ArmedGroup::make);
        }
        if let Some(group) = &self.group {
            group.cancel_with(reason, detail);
        }
        self.cancelled = true;
    }

    fn panicked(&mut self, p: Panic) {
        let trouble = self.trouble.get_or_insert_default();
        if trouble.panic.is_none() {
            trouble.panic = Some(p);
        }
        self.cancel(Reason::Failure, failed(Some(self.at), true));
    }

    /// Drops a future that finished (or panicked).
    fn drop_done<F>(&mut self, fut: Pin<&mut Option<F>>) {
        let mut fut = fut;
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| fut.set(None))) {
            self.panicked(p);
        }
    }

    /// Drops a cancelled future where it stands, as cancelled code (rule R5).
    fn drop_cancelled<F>(&mut self, fut: Pin<&mut Option<F>>) {
        let mut fut = fut;
        *self.dropped = true;
        let dropped = catch_unwind(AssertUnwindSafe(|| {
            context::drop_cancelled_body(|| fut.set(None))
        }));
        if let Err(p) = dropped {
            self.panicked(p);
        }
    }
}

impl<F: Future, O, E> Future for Fixed<F, O, E> {
    type Output = Result<Vec<O>, NurseryError<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.as_mut().project();
        let fresh = matches!(this.state, State::Fresh);
        match this.state {
            State::Fresh => {
                *this.state = State::Running(Run {
                    group: None,
                    trouble: None,
                    cancelled: false,
                    caller_cancelled: false,
                })
            }
            State::Running(_) => {}
            State::Stalled(node) => {
                // Kept past the scope that cancelled us, which has finished since:
                // nothing else will catch it, and we return it ourselves (rule K2).
                if !node.outer_cancelled(context::now()) {
                    node.set_caught();
                    *this.state = State::Done;
                    return Poll::Ready(Err(NurseryError::Cancelled));
                }
                return Poll::Pending;
            }
            State::Done => panic!("hatchery: combinator polled after completion"),
        }
        let State::Running(run) = &mut *this.state else {
            unreachable!()
        };
        let (mut first, mut second, rest) = (this.first, this.second, &mut *this.rest);
        let waker = cx.waker();
        let mut poll_all = |p: &mut Polling<'_, O, E, F::Output>| loop {
            let was_cancelled = p.cancelled;
            p.poll(first.as_mut());
            p.poll(second.as_mut());
            for slot in rest.iter_mut() {
                p.poll(slot.as_mut());
            }
            if was_cancelled || !p.cancelled || !p.running {
                break;
            }
            // Cancelled during this pass (an error, a panic, a winner, or from outside):
            // the futures polled before it are dropped now, not at the next poll, so
            // that the group ends in this poll unless a future holds. The group holds
            // nothing of its own: an enclosing scope cancelled before the next poll
            // would drop it with the errors it has not returned yet (rule G3 says a
            // `try_join` returns them). One that holds is polled again, and sees the
            // cancellation.
            p.running = false;
            p.holding = false;
        };
        let (running, holding, was_cancelled) = match &mut run.group {
            Some(group) => {
                let node = &group.node;
                if !node.is_linked() {
                    // The caller's cancellation does not reach us through its child list
                    // (node invariant 7): we learn of it here.
                    node.refresh();
                }
                let was_cancelled = node.is_cancelled();
                let mut p = Polling {
                    waker,
                    armed: None,
                    group: Some(node.clone()),
                    cancelled: was_cancelled,
                    split: *this.split,
                    stop: *this.stop,
                    at: this.at,
                    trouble: &mut run.trouble,
                    dropped: &mut run.cancelled,
                    running: false,
                    holding: false,
                };
                let ((), by_parent) =
                    context::enter_node(&mut group.slot, waker, || poll_all(&mut p));
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
                (running, holding, was_cancelled)
            }
            None => {
                let (trouble, dropped) = (&mut run.trouble, &mut run.cancelled);
                let ((running, holding, was_cancelled), made) =
                    context::with_armed_group(|armed, was_cancelled| {
                        let mut p = Polling {
                            waker,
                            armed: Some(armed),
                            group: None,
                            cancelled: was_cancelled,
                            split: *this.split,
                            stop: *this.stop,
                            at: this.at,
                            trouble,
                            dropped,
                            running: false,
                            holding: false,
                        };
                        poll_all(&mut p);
                        (p.running, p.holding, was_cancelled)
                    });
                run.caller_cancelled = was_cancelled;
                if let Some(node) = made {
                    let mut group = Group::new(node);
                    // Linked as in the branch above, the node being new.
                    if running && !context::polled_by_parent(&group.node, waker) {
                        group.node.link_scope();
                        if group.node.is_linked() {
                            group.node.register(waker);
                            group.registered = true;
                        }
                    }
                    run.group = Some(group);
                }
                (running, holding, was_cancelled)
            }
        };
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

impl<F: Future, O, E> Fixed<F, O, E> {
    /// Every future is gone: the group ends as a nursery does.
    fn end(self: Pin<&mut Self>, fresh: bool) -> Poll<Result<Vec<O>, NurseryError<E>>> {
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
        let node = group.map(|g| {
            drop(g.slot);
            (g.node, g.registered)
        });
        // As the spawning nursery ends: our flag first, then the walk up (unless nothing
        // was cancelled at all: then nothing is caught, and the outputs are complete).
        let marked = node.as_ref().is_some_and(|(n, _)| n.is_marked());
        let outer = match &node {
            Some((n, _)) if marked || cancelled || n.is_cancelled() => {
                n.outer_cancelled(context::now())
            }
            Some(_) => false,
            // No node: the futures ran in the caller's scope, and any cancellation of
            // theirs was the caller's.
            None => cancelled || (!fresh && caller_cancelled),
        };
        let reason = node.as_ref().and_then(|(n, _)| n.reason());
        if let Some((n, _)) = &node {
            n.detach_unless_kept();
            n.finish();
        }
        if let Some(trouble) = trouble {
            let Trouble { errors, panic } = *trouble;
            if let Some(p) = panic {
                resume_unwind(p);
            }
            if !errors.is_empty() {
                return Poll::Ready(Err(NurseryError::Failed(errors)));
            }
        }
        // Finished in its first poll, nothing of it cancelled: it never suspended, and
        // cancellation does not interrupt it (C1).
        let uninterrupted = fresh && !cancelled;
        let orphan = !outer && reason.is_none() && marked;
        if (outer || orphan) && !uninterrupted {
            if orphan {
                if let Some((n, _)) = &node {
                    n.set_caught();
                }
                return Poll::Ready(Err(NurseryError::Cancelled));
            }
            // Cancelled from outside: the enclosing cancelled scope ends the work here
            // and drops us (N4). A node to tell, if we are kept and polled again later,
            // whether that scope has finished since.
            let node = match node {
                Some((n, _)) => n,
                None => {
                    let n = context::with_current(|c| {
                        Node::entered(c.expect(context::NO_RUNTIME).node, false, None)
                    });
                    n.finish();
                    n
                }
            };
            *this.state = State::Stalled(node);
            return Poll::Pending;
        }
        let mut outputs = Vec::with_capacity(2 + this.rest.len());
        outputs.extend(this.first.project().out.take());
        outputs.extend(this.second.project().out.take());
        for slot in this.rest.iter_mut() {
            outputs.extend(slot.as_mut().project().out.take());
        }
        if let Some((n, false)) = node {
            // For the next scope entered here in this task poll (a loop of joins).
            context::recycle_node(n);
        }
        Poll::Ready(Ok(outputs))
    }
}
