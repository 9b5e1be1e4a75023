//! The engine every scope future runs on ([`Scoped`]): entering a scope, polling its body
//! as the innermost scope, watching its deadline with a timer, and dropping the body when
//! the scope is cancelled.
//!
//! # States
//!
//! A scope future is in one [`State`] at a time. An entered one also knows how its node
//! is woken ([`Waking`]): `Alone` (no handle, not linked: only its timer and the runner
//! above wake it, and its node can be reused when it is done), `Registered` (no handle,
//! but its node keeps a waker: not reused) or `Handled` (a handle exists: its waker is
//! registered whenever the body suspends, and its node is not reused).
//!
//! | from | when | to |
//! |---|---|---|
//! | `Fresh` | first poll: entered (its node made, reused or set up with the handle's, its deadline set; cancelled at once if that has passed, rule D4) | `Running(Alone)`, or `Running(Handled)` with a handle |
//! | `Fresh` | first poll of a scope with a timeout and nothing else, by its task's runner: entered with its node deferred ([`poll_deferred`]; `Limit::Deferred`), made when the body asks for its context, or when anything but a pending body comes | `Running(Alone)` |
//! | `Running(Alone)` | the body suspends while the node is linked; or the scope is cancelled while something inside must finish first (a hold) | `Running(Registered)` (`Handled` stays `Handled`, and registers its waker on every such poll) |
//! | `Running(_)` | the body returns its value | `Done` |
//! | `Running(_)` | cancelled and nothing inside holds it: the body is dropped, and no enclosing scope is cancelled, so this one catches (C3) | `Done` |
//! | `Running(w)` | the same, but an enclosing scope is cancelled too, and catches instead | `Stalled(w)` |
//! | `Stalled(_)` | polled again after that enclosing scope has finished (a future kept past it, rules K): nothing else will catch, so this one does (while that scope still runs, it stays `Stalled` until dropped) | `Done` |
//! | `Done` | polled again | panics |

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use super::{CancelScope, EnteredOn};
use crate::context;
use crate::diagnostics;
use crate::node::{deadline_word, word_after, word_deadline, Due, Hold, Node, Reason};
use crate::timer::Reg;
use crate::trace;

/// Where a scope future is in its life; see the [module docs](self) for the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Built, not polled yet: the scope is entered at the first poll.
    Fresh,
    /// Entered: the body runs with the scope as the innermost one.
    Running(Waking),
    /// Cancelled by an enclosing scope, which catches: the body has been dropped, and
    /// this future stays pending until that scope drops it (or, kept past that scope,
    /// returns as cancelled itself once it has finished).
    Stalled(Waking),
    /// Returned its output: the body's value, or a cancellation it caught.
    Done,
}

/// How an entered scope's node is woken when it is cancelled from elsewhere, which also
/// decides whether the node can be reused when the scope is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waking {
    /// No handle, not linked: only its own deadline and its ancestors, whose runner polls
    /// it, can cancel it, and its timer or that runner wakes the task. Its node's waker
    /// is not registered, so the node can be reused ([`context::recycle_node`]).
    Alone,
    /// No handle, but its node's waker has been registered (it was linked into its
    /// parent's child list, or waited for a hold while cancelled): the node keeps the
    /// waker, and is not reused.
    Registered,
    /// A handle exists: the scope can be cancelled from anywhere, so its waker is
    /// registered whenever the body suspends (a wake-up takes it out, and the next
    /// suspension puts it back). Its node is not reused either.
    Handled,
}

impl State {
    /// How the node of an entered scope is woken.
    fn waking(self) -> Waking {
        match self {
            State::Running(w) | State::Stalled(w) => w,
            State::Fresh | State::Done => {
                unreachable!("hatchery: internal error: scope not running")
            }
        }
    }

    /// Registers the node's waker.
    fn register(&mut self, node: &Node, waker: &Waker) {
        node.register(waker);
        if let State::Running(w @ Waking::Alone) = self {
            *w = Waking::Registered;
        }
    }
}

/// How a scope's body ended.
pub(crate) enum Outcome<T> {
    /// The body finished with a value.
    Done(T),
    /// This scope was cancelled and caught it; `reason` says why.
    Caught(Reason),
}

pin_project! {
    /// The engine shared by every scope future: its body, and the rest ([`Core`]), which
    /// does not depend on the body's type.
    pub(crate) struct Scoped<F> {
        #[pin]
        body: Option<F>,
        core: Core,
        // Entered around every poll (`tracing` feature; nothing without it).
        span: trace::Span,
    }

    impl<F> PinnedDrop for Scoped<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            // Drop the body (and any hold inside it) before leaving the tree. A done scope
            // has left it already (its body, hold, timer and node are gone): no call.
            this.body.set(None);
            let core = this.core;
            if core.state != State::Done {
                core.leave();
            } else {
                let gone = core.node.is_none() && core.hold.is_none() && !core.timer.is_armed();
                debug_assert!(gone, "hatchery: internal error: a done scope still in the tree");
            }
        }
    }
}

/// A scope future's state besides its body. Its methods are not generic, and those that
/// run before or after the body's poll are not inlined into it, while the poll itself
/// ([`Scoped::poll_scoped`]) is inlined into the caller's and polls the body in that very
/// frame (a guard, not a closure, puts the context back on unwind): no frame of the scope
/// stays on the stack while the body is polled, which recursive code with a scope per
/// level feels at every level. (Measured by the benches' `stack` row, release: 288 bytes
/// per level of `move_on_after`, as for `tokio::time::timeout`, from 416 with the body
/// polled in a closure inside the context's; 144 since, and 272 with the deferred poll,
/// [`poll_deferred`], inlined too; the future itself is 120 bytes around a boxed body,
/// against tokio's 128.)
struct Core {
    // Before entry, the node a handle made, if any; from entry until the scope is done,
    // always set; taken when the scope is done (see `context::recycle_node`).
    node: Option<Arc<Node>>,
    hold: Option<Hold>,
    // How the scope is woken at its deadline: an entry in the deadlines of the task that
    // polls it, or a timer of its own where it is polled with another waker (see
    // `crate::timer`). Entering and leaving a scope whose deadline does not fire then
    // touches no executor timer: the task's one timer stays armed.
    timer: Reg,
    limit: Limit,
    // The shield the node gets on entry, if it is made then.
    shield: bool,
    state: State,
}

/// A scope's deadline before entry, and the clock reading of the entry after.
enum Limit {
    None,
    /// A deadline the node gets on entry, if it is made then (`with_deadline`).
    At(Instant),
    /// A timeout, counted from the entry (`with_timeout`).
    After(Duration),
    /// The clock reading taken on entry, for the deadline's first registration (it saves
    /// reading the clock again).
    Entered(Instant),
    /// The same as its word (`node::deadline_word`), where the deadline was counted from
    /// it as a word too (`node::word_after`): the registration compares the two words,
    /// and makes no instant (`Reg::poll_word`).
    EnteredWord(i64),
    /// Entered with its node deferred (see [`poll_deferred`]): the deadline's word, and
    /// the scope's parent, the node current at its first poll.
    Deferred(i64, Arc<Node>),
}

impl Limit {
    /// The clock reading taken on entry, if it is kept (as an instant or as its word).
    fn entry_reading(&self) -> Option<Instant> {
        match *self {
            Limit::Entered(now) => Some(now),
            Limit::EnteredWord(now) => Some(word_deadline(now)),
            Limit::None | Limit::At(_) | Limit::After(_) | Limit::Deferred(..) => None,
        }
    }
}

impl<F: Future> Scoped<F> {
    /// With the `tracing` feature, the scope's span records where the future was built,
    /// its caller's caller: the constructors that call this one pass on their caller's
    /// location (`#[track_caller]` with the feature on; without it, they are exactly
    /// what they were). The span itself is made at the first poll.
    #[cfg_attr(feature = "tracing", track_caller)]
    pub(crate) fn new(scope: CancelScope, body: F) -> Self {
        let node = scope.node.into_inner().map(|node| node as Arc<Node>);
        // A node made by a handle holds the shield and the deadline itself, and the
        // handle may have changed them since. (Never a deadline and a timeout at once.)
        let limit = match (scope.timeout, scope.deadline) {
            (Some(timeout), _) => Limit::After(timeout),
            (None, Some(deadline)) if node.is_none() => Limit::At(deadline),
            _ => Limit::None,
        };
        Scoped {
            body: Some(body),
            core: Core::new(node, limit, scope.shield.is_some()),
            span: trace::Span::scope(scope.shield.is_some(), scope.timeout),
        }
    }

    /// A scope with a timeout and nothing else, as `new` makes it of
    /// `CancelScope::new().with_timeout(timeout)` (no node before entry, no shield), without
    /// building that scope first: `move_on_after` and `fail_after`, which a loop may call
    /// for every operation (the scope's `OnceLock` and its checks were about 60
    /// instructions of each).
    #[cfg_attr(feature = "tracing", track_caller)]
    #[inline]
    pub(crate) fn after(timeout: Duration, body: F) -> Self {
        Scoped {
            body: Some(body),
            core: Core::new(None, Limit::After(timeout), false),
            span: trace::Span::scope(false, Some(timeout)),
        }
    }

    /// Whether the scope has been entered (first polled).
    pub(crate) fn is_entered(&self) -> bool {
        self.core.state != State::Fresh
    }

    /// Whether the scope future has returned (its body's value, or the cancellation it
    /// caught).
    pub(crate) fn is_done(&self) -> bool {
        self.core.state == State::Done
    }

    /// Whether the body was dropped because an enclosing scope was cancelled (this scope
    /// then never completes; the enclosing one ends the work).
    pub(crate) fn stalled(&self) -> bool {
        matches!(self.core.state, State::Stalled(_))
    }

    /// Stalled, but the enclosing scope that cancelled it has finished since (a scope
    /// future kept past the scope it was first polled in): nothing will drop it.
    pub(crate) fn orphaned(&self) -> bool {
        self.stalled() && !self.core.node().outer_cancelled(context::now())
    }

    #[inline(always)]
    pub(crate) fn poll_scoped(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Outcome<F::Output>> {
        let mut this = self.project();
        let core = this.core;
        // A scope named by `CancelScope::with_name` has a node made by then, whose tag
        // carries the name.
        let _entered = this.span.entry(|| {
            core.node
                .as_ref()
                .and_then(|node| node.ext_ref::<EnteredOn>())
                .and_then(EnteredOn::name)
        });
        match core.state {
            State::Fresh => {
                if let Some(poll) = poll_deferred(this.body.as_mut(), core, cx) {
                    return poll;
                }
                core.enter();
            }
            State::Done => panic!("hatchery: scope future polled after completion"),
            State::Running(_) | State::Stalled(_) => {
                if matches!(core.limit, Limit::Deferred(..)) {
                    if let Some(poll) = poll_deferred(this.body.as_mut(), core, cx) {
                        return poll;
                    }
                }
                if core.cancelled_while_suspended() {
                    // Cancelled while suspended: drop the body where it stands.
                    context::disarm(&mut core.timer);
                    return finish_cancelled(this.body, core);
                }
            }
        }
        let body = this.body.as_mut().as_pin_mut().expect("body present");
        // The body runs with this scope as the innermost one, polled in this frame: the
        // code around it is out of line, and no closure stays on the stack (see `Core`).
        let was_cancelled = core.enter_body();
        let polling = Polling(core);
        let poll = body.poll(cx);
        let by_parent = polling.0.leave_body(cx.waker());
        std::mem::forget(polling);
        after_body(this.body, core, poll, by_parent, was_cancelled, cx)
    }
}

/// What an entered scope does once its body has been polled: done with its value, or
/// pending (see [`Core::after_pending`]: whether the scope was polled by its parent's
/// runner, and whether it was cancelled before the poll).
#[inline(always)]
fn after_body<F: Future>(
    mut body: Pin<&mut Option<F>>,
    core: &mut Core,
    poll: Poll<F::Output>,
    by_parent: bool,
    was_cancelled: bool,
    cx: &mut Context<'_>,
) -> Poll<Outcome<F::Output>> {
    match poll {
        Poll::Ready(v) => {
            body.set(None);
            core.done();
            Poll::Ready(Outcome::Done(v))
        }
        // Dropped if it is cancelled and nothing inside holds it.
        Poll::Pending => {
            if core.after_pending(by_parent, was_cancelled, cx) {
                finish_cancelled(body, core)
            } else {
                Poll::Pending
            }
        }
    }
}

/// Set while a scope's body is polled: if the poll unwinds, puts back the scope that was
/// the innermost one, and lets go of the hold (a future whose panic was caught and that
/// is kept rather than dropped must not hold the scopes around it). Forgotten when the
/// poll returns.
struct Polling<'a>(&'a mut Core);

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        self.0.left_on_unwind();
    }
}

impl Core {
    /// A scope not entered yet: its node if a handle made one, its deadline and its
    /// shield, as the node gets them on entry.
    #[inline]
    fn new(node: Option<Arc<Node>>, limit: Limit, shield: bool) -> Core {
        Core {
            node,
            hold: None,
            timer: Reg::Idle,
            limit,
            shield,
            state: State::Fresh,
        }
    }

    fn node(&self) -> &Arc<Node> {
        self.node.as_ref().expect("node of an entered scope")
    }

    /// Enters the scope, at its first poll: its node is made, reused or set up with the
    /// handle's, and its deadline set; cancelled at once if that has passed (rule D4).
    #[inline(never)]
    fn enter(&mut self) {
        let made_by_handle = self.node.is_some();
        let (slot, hold, limit) = (&mut self.node, &mut self.hold, &mut self.limit);
        let mut waking = Waking::Alone;
        let shield = self.shield;
        let (mut deadline, timeout) = match std::mem::replace(limit, Limit::None) {
            Limit::At(deadline) => (Some(deadline), None),
            Limit::After(timeout) => (None, Some(timeout)),
            Limit::None | Limit::Entered(_) | Limit::EnteredWord(_) | Limit::Deferred(..) => {
                (None, None)
            }
        };
        // The deadline as the node takes it: the instant's, or its word counted from the
        // entry's reading (a timeout of more than zero without a handle, the common case).
        let mut due = Due::from(deadline);
        context::with_current(|parent| {
            let parent = parent.expect(context::NO_RUNTIME);
            if let Some(timeout) = timeout {
                // Only if no deadline was set through a handle since `with_timeout`.
                if !slot.as_ref().is_some_and(|node| node.deadline_was_set()) {
                    let now = parent.rt.now();
                    let words = (slot.is_none() && !timeout.is_zero())
                        .then(|| deadline_word(now))
                        .flatten()
                        .and_then(|now| Some((now, word_after(now, timeout)?)));
                    if let Some((now, word)) = words {
                        *limit = Limit::EnteredWord(now);
                        due = Due::Word(word);
                    } else {
                        *limit = Limit::Entered(now);
                        // `None` on overflow: a timeout too large to represent is no
                        // deadline.
                        deadline = now.checked_add(timeout);
                        due = Due::from(deadline);
                    }
                }
            }
            let node = match slot.take() {
                // A handle made the node: it is set up through the handle's rules.
                Some(mut node) => {
                    if !Node::enter(&mut node, parent.node, deadline) {
                        waking = Waking::Handled;
                        // The handle's `set_deadline` reads this runtime's clock.
                        if let Some(on) = node.ext_ref::<EnteredOn>() {
                            let _ = on.0.set(parent.rt.clone());
                        }
                    }
                    // A named scope joins the tree that `diagnostics::tree` walks.
                    EnteredOn::entered(&node, &**parent.rt);
                    node
                }
                // Nobody else has seen this scope: it takes a finished scope's node if
                // one under the same parent is at hand, or a new one.
                None => match parent.take_spare_node() {
                    Some(node) => {
                        node.reenter(shield, due);
                        node
                    }
                    None => Node::entered(parent.node, shield, due),
                },
            };
            if node.is_shield() {
                *hold = Some(Hold::new(parent.node));
                // Watched for the hold warnings (`diagnostics`): a node made by
                // `Scoped::new` or a handle carries its shield's site.
                if made_by_handle {
                    if let Some(site) = EnteredOn::site_of(&node) {
                        site.hold(parent.node);
                    }
                }
            }
            *slot = Some(node);
        });
        self.state = State::Running(waking);
        // A deadline passed already: cancelled on entry, as a scope cancelled before it is
        // entered is (trio's rule), so the body sees it from its first line, and stops at
        // its first suspension point. (A timeout of more than zero, counted from the clock
        // just read, has not passed: no check.)
        if made_by_handle || deadline.is_some() && timeout.is_none_or(|t| t.is_zero()) {
            let node = self.node();
            if waking == Waking::Handled {
                // Pairs with the fence of `CancelHandle::set_deadline`: either it finds the
                // runtime set above, or we find the deadline it set below.
                fence(Ordering::SeqCst);
            }
            cancel_if_passed(node, made_by_handle, deadline, self.limit.entry_reading());
        }
    }

    /// A deferred scope's node, made now (see [`poll_deferred`]): under the parent kept
    /// from its first poll, with its deadline, as its entry would have made it.
    #[cold]
    #[inline(never)]
    fn materialize(&mut self) {
        if let Limit::Deferred(word, parent) = &self.limit {
            self.node = Some(Node::entered(parent, false, Due::Word(*word)));
            self.limit = Limit::None;
        }
    }

    /// A deferred scope's node, made while its body was polled (see [`poll_deferred`]):
    /// the scope goes on as an entered one, with `now`, the entry's reading, if this was
    /// its first poll.
    #[cold]
    #[inline(never)]
    fn adopt(&mut self, node: Arc<Node>, now: Option<i64>) {
        self.node = Some(node);
        self.limit = now.map_or(Limit::None, Limit::EnteredWord);
    }

    /// Installs the scope as the innermost one for its body's poll; returns whether it
    /// was cancelled before (see [`Core::after_pending`]).
    #[inline]
    fn enter_body(&mut self) -> bool {
        let node = self.node.as_mut().expect("node of an entered scope");
        let was_cancelled = node.is_marked();
        context::node_entered(node);
        was_cancelled
    }

    /// Puts back the scope that was the innermost one after the body's poll; returns
    /// whether the scope was polled by its parent's runner (see [`context::node_left`]).
    #[inline]
    fn leave_body(&mut self, waker: &Waker) -> bool {
        context::node_left(self.node.as_mut().expect("node of an entered scope"), waker)
    }

    /// The body's poll unwound: the same, and the hold goes.
    #[cold]
    #[inline(never)]
    fn left_on_unwind(&mut self) {
        if let Some(node) = self.node.as_mut() {
            context::node_left_on_unwind(node);
        }
        self.hold.take();
    }

    /// Before the body of an entered scope is polled again: whether it is cancelled, and
    /// nothing inside holds it (then the body is dropped instead).
    #[inline]
    fn cancelled_while_suspended(&mut self) -> bool {
        if self.hold.is_some() {
            self.follow_hold();
        }
        let node = self.node();
        if node.is_linked() {
            return node.should_drop();
        }
        // Our parent's cancellation does not reach us through its child list (node
        // invariant 7): the flag catches up with the ancestors', one walk up the tree.
        node.refresh_should_drop()
    }

    /// A shield kept and polled under another scope (or task) than before holds that one
    /// now: its cancellation must wait for us, as the first one's did, and the first
    /// one's no longer does.
    #[cold]
    #[inline(never)]
    fn follow_hold(&mut self) {
        let Some(hold) = self.hold.as_ref() else {
            return;
        };
        let moved =
            context::with_current(|c| c.filter(|c| !hold.is_on(c.node)).map(|c| c.node.clone()));
        // A shield watched by the hold warnings (`diagnostics`): what it holds, and its
        // polls.
        let site = self.node.as_ref().and_then(EnteredOn::site_of);
        if let Some(node) = moved {
            drop(self.hold.replace(Hold::new(&node)));
            if let Some(site) = site {
                site.hold(&node);
            }
        }
        if let Some(site) = site {
            site.polled();
        }
    }

    /// The body returned its value: the scope is done.
    #[inline(never)]
    fn done(&mut self) {
        self.hold.take();
        let waking = self.state.waking();
        self.state = State::Done;
        let node = self.node.as_ref().expect("node of an entered scope");
        node.detach_unless_kept();
        node.finish();
        context::disarm(&mut self.timer);
        recycle(&mut self.node, waking);
    }

    /// The body is pending: makes sure the scope is woken when it is cancelled (its
    /// parent's cancellation, a handle's, its deadline), and says whether it is already,
    /// with nothing inside holding it (then the body is dropped).
    #[inline(never)]
    fn after_pending(
        &mut self,
        by_parent: bool,
        was_cancelled: bool,
        cx: &mut Context<'_>,
    ) -> bool {
        let node = self.node.as_ref().expect("node of an entered scope");
        // Who wakes us when an enclosing scope is cancelled: polled by our parent's own
        // runner, its wake-up reaches us and we `refresh` on the next poll; polled through
        // a combinator with other wakers (or moved to another task), the parent must find
        // us in its child list.
        if !by_parent {
            node.link_scope();
        }
        let linked = node.is_linked();
        // Registering only now is enough: a cancellation from here on wakes us, and one
        // that came earlier is seen below. Without a handle and a link, only our deadline
        // cancels us (here, or from a scope inside that finds it passed), and the task's
        // deadlines (or our own timer) wake the task for it.
        if linked || self.state.waking() == Waking::Handled {
            self.state.register(node, cx.waker());
        }
        let cancelled = node.is_cancelled_here() || {
            self.watch_deadline(cx);
            self.node().is_marked()
        };
        let node = self.node.as_ref().expect("node of an entered scope");
        if cancelled {
            // Its deadline no longer matters (and a virtual clock must not jump to it,
            // rule D11). Watched again if polled after all (a kept scope future whose
            // cancelled ancestor has finished).
            context::disarm(&mut self.timer);
            if !node.has_holds() {
                return true;
            }
            // Something inside must finish first. Its hold may go elsewhere (a kept
            // shield polled from now on in another scope or task), which then wakes us:
            // register on every such poll (a wake-up takes the waker out).
            self.state.register(node, cx.waker());
            if !node.has_holds() {
                return true;
            }
            // Still held: warn of a holder kept without being polled (`diagnostics`).
            diagnostics::held(node, &*context::current().rt, cx);
        }
        if !was_cancelled && node.is_marked() {
            // Cancelled during this poll (by our deadline, or a `cancel` while no waker was
            // registered), but something inside must finish first (a shielded cleanup, a
            // nursery draining its children). Scopes in the body that are not linked learn
            // of it only when polled: poll again.
            cx.waker().wake_by_ref();
        }
        false
    }

    /// The body has been dropped, cancelled: returns the reason if this scope catches the
    /// cancellation, or `None` if an enclosing scope will (this one then stays pending).
    ///
    /// A scope future kept past the scope it was first polled in (see [`Node::finish`])
    /// may have been reached by that scope's cancellation, which nothing can catch any
    /// more: it returns as cancelled itself, with that scope's reason.
    #[inline(never)]
    fn catch(&mut self) -> Option<Reason> {
        self.hold.take();
        let node = self.node.as_ref().expect("node of an entered scope");
        let own = node.reason();
        // Cancelled itself, or by a finished ancestor (whose reason then counts).
        if !node.outer_cancelled(context::now()) {
            let reason = own.unwrap_or_else(|| node.orphan_reason());
            node.set_caught();
            trace::cancelled(node, Some(true));
            let waking = self.state.waking();
            self.state = State::Done;
            node.detach();
            node.finish();
            recycle(&mut self.node, waking);
            Some(reason)
        } else {
            // An outer scope was cancelled: it is the one that returns, and it drops us.
            trace::cancelled(node, Some(false));
            self.state = State::Stalled(self.state.waking());
            None
        }
    }

    /// Checks the node's deadline: cancels the node if it has passed, otherwise makes sure
    /// the task is woken when it does.
    #[inline]
    fn watch_deadline(&mut self, cx: &mut Context<'_>) {
        let node = self.node.as_ref().expect("node of an entered scope");
        let word = match node.deadline_word() {
            Some(word) => Some(word),
            // No deadline, or one without a word (centuries away).
            None if node.deadline().is_none() => return context::disarm(&mut self.timer),
            None => None,
        };
        // The entry's reading, for a timeout (a deadline it finds passed has passed). One
        // that passed since (a body that blocked its thread) is seen when the task's timer
        // is armed, after this poll.
        let now = std::mem::replace(&mut self.limit, Limit::None);
        let timer = &mut self.timer;
        let deadline = || node.deadline().expect("a deadline");
        let (poll, released) = context::with_here(cx.waker(), true, |here| match (word, now) {
            // Both as words (a timeout counted from the entry's reading as a word).
            (Some(word), Limit::EnteredWord(now)) => timer.poll_word(word, now, here, cx),
            (_, now) => timer.poll::<false>(word, deadline, here, now.entry_reading(), cx),
        });
        released.release();
        if poll.is_ready() {
            node.cancel(Reason::Deadline);
        }
    }

    /// Leaves the tree as the scope future goes (its body is gone).
    fn leave(&mut self) {
        context::disarm(&mut self.timer);
        self.hold.take();
        if let Some(node) = &self.node {
            // Dropped by a cancelled enclosing scope before it saw the cancellation (not
            // in that scope's list): its flag keeps that it was reached, for its cancel
            // reason.
            node.refresh();
            node.detach_unless_kept();
            node.finish();
        }
    }
}

/// Polls a scope with its node deferred, if it can be: a scope with a timeout (of more
/// than zero), no handle and no shield (`move_on_after`, `fail_after`), polled with the
/// waker of its runner, in the scope it was first polled in, which is not cancelled
/// (`context::Deferred::defer_scope`). Its body runs in that scope, its parent's, and
/// its deadline goes into the task's deadlines as it would with a node ([`Reg`] needs
/// none); its node is made only if the body asks for its context (to enter a scope, open
/// a nursery, take a hold, read the clock or the effective deadline, a sleep that fires:
/// rules D6 to D8), with the deadline, and the scope then goes on as an entered one.
/// A body that asks for nothing keeps nothing of its context, so nothing inside it can
/// need cancelling but the body itself: a loop of timeouts around such bodies makes and
/// installs no node at all (the book's performance chapter, `move_on_after`).
///
/// Anything but a body that is pending with nothing else to do takes the entered path,
/// with the node made then, under the parent kept from the first poll
/// ([`Core::materialize`]), as entering would have made it: the deadline found passed,
/// the parent found cancelled, a poll with another waker or in another scope (a scope
/// future kept past the scope it was first polled in, rules K). `None` where the scope
/// is not deferred (then a fresh one is entered as usual, and a deferred one has its node
/// now).
#[inline(always)]
fn poll_deferred<F: Future>(
    mut body: Pin<&mut Option<F>>,
    core: &mut Core,
    cx: &mut Context<'_>,
) -> Option<Poll<Outcome<F::Output>>> {
    // The entry's reading and the deadline, as words, on the first poll.
    let mut entry = None;
    let deferral = match &core.limit {
        Limit::After(timeout) if core.node.is_none() && !core.shield && !timeout.is_zero() => {
            let timeout = *timeout;
            context::Deferred::defer_scope(cx.waker(), None, |rt| {
                let now = deadline_word(rt.now())?;
                let word = word_after(now, timeout)?;
                entry = Some((now, word));
                Some(word)
            })
        }
        Limit::Deferred(word, parent) => {
            let word = *word;
            context::Deferred::defer_scope(cx.waker(), Some(parent), |_| Some(word))
        }
        _ => return None,
    };
    let Some(mut deferral) = deferral else {
        core.materialize();
        return None;
    };
    if let (Some(parent), Some((_, word))) = (deferral.caller.take(), entry) {
        core.limit = Limit::Deferred(word, parent);
        core.state = State::Running(Waking::Alone);
    }
    let poll = {
        let unwind = context::ResolveScopeOnUnwind(&mut deferral);
        let poll = body.as_mut().as_pin_mut().expect("body present").poll(cx);
        std::mem::forget(unwind);
        poll
    };
    if let Some(node) = deferral.resolve() {
        // The body asked for its context: its node is made, with the deadline.
        core.adopt(node, entry.map(|(now, _)| now));
        // Polled by its parent's runner (checked by the deferral), and not marked before
        // this poll (it did not exist).
        return Some(after_body(body, core, poll, true, false, cx));
    }
    if let Poll::Ready(v) = poll {
        body.set(None);
        context::disarm(&mut core.timer);
        core.limit = Limit::None;
        core.state = State::Done;
        return Some(Poll::Ready(Outcome::Done(v)));
    }
    let Limit::Deferred(word, _) = core.limit else {
        unreachable!("hatchery: internal error: a deferred scope without its deadline")
    };
    // Pending: the deadline watched (the task woken when it passes), unless the parent
    // was cancelled during the poll (then nothing is registered).
    let timer = &mut core.timer;
    let watched = context::with_here_unless_cancelled_here(cx.waker(), |here| match entry {
        Some((now, _)) => timer.poll_word(word, now, here, cx),
        None => timer.poll::<false>(Some(word), || word_deadline(word), here, None, cx),
    });
    // The deadline has passed, or the parent is cancelled: as an entered scope.
    if let Some((poll, released)) = watched {
        released.release();
        if poll.is_pending() {
            return Some(Poll::Pending);
        }
        core.materialize();
        core.node().cancel(Reason::Deadline);
    } else {
        core.materialize();
    }
    Some(after_body(body, core, Poll::Pending, true, false, cx))
}

/// Cancels a scope being entered whose deadline has passed already (see
/// [`Core::enter`]). Out of line: most scopes have a timeout, which cannot have passed.
#[cold]
#[inline(never)]
fn cancel_if_passed(
    node: &Arc<Node>,
    made_by_handle: bool,
    deadline: Option<Instant>,
    entry_now: Option<Instant>,
) {
    let deadline = if made_by_handle {
        node.deadline()
    } else {
        deadline
    };
    // A reading of our own is not kept for the timer's first arming, which comes after
    // the body's first poll: a deadline that passes meanwhile must be found passed then.
    if deadline.is_some_and(|d| d <= entry_now.unwrap_or_else(|| context::current().rt.now())) {
        node.cancel(Reason::Deadline);
    }
}

/// Lets a done scope's node go: for the next scope entered under the same parent in this
/// task poll, if nothing else holds it and its waker was never registered
/// ([`context::recycle_node`]).
fn recycle(slot: &mut Option<Arc<Node>>, waking: Waking) {
    if let Some(node) = slot.take() {
        if waking == Waking::Alone {
            context::recycle_node(node);
        }
    }
}

/// Drops a cancelled body. Returns `Ready(Caught)` if this scope catches the cancellation,
/// or stays pending if an enclosing scope will (see [`Core::catch`]).
fn finish_cancelled<F, T>(mut body: Pin<&mut Option<F>>, core: &mut Core) -> Poll<Outcome<T>> {
    // Cancelled by an ancestor whose cancellation has not reached our own flag (we are not
    // in its child list): set it, so that if we are kept and polled after that ancestor
    // has finished (whose flag then no longer reaches us, node invariant 9), we still know
    // we were cancelled.
    let node = core.node();
    diagnostics::unwatch(node);
    node.refresh();
    context::drop_cancelled_body(|| body.set(None));
    match core.catch() {
        Some(reason) => Poll::Ready(Outcome::Caught(reason)),
        None => Poll::Pending,
    }
}
