//! The one future of a group: [`GroupFuture`], which opens the group, drives its body,
//! lets its kind of children run, and ends it, for the spawning nursery, the inline
//! nursery and the inline combinators alike. What differs between them is a [`Kind`] of
//! children.

use std::borrow::Cow;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::{decide, make_body, poll_body, Body, Failures, Panic, Phase, Record, Seen};
use crate::context::{self, Ctx};
use crate::diagnostics::{self, Held, HolderKind};
use crate::error::NurseryError;
use crate::node::{Node, Reason};
use crate::rt::Runtime;
use crate::trace;

/// A kind of children: how a group stores and runs them. The group's future
/// ([`GroupFuture`]) owns a value of the kind (the children it polls itself, if any), and
/// shares [`Shared`](Kind::Shared) with its handles, its children and their wakers.
///
/// | kind | children | `run` | `close` |
/// |---|---|---|---|
/// | `nursery::Tasks` | tasks of the executor, which run and end on their own | nothing | once the count of live tasks is zero |
/// | `inline::engine::Group` | futures the group's task polls | a round of the woken ones | once none is left |
///
/// Public only in name, for the sealed trait that names it (`nursery::Children`):
/// nothing outside the crate can reach it.
#[allow(unreachable_pub, private_interfaces)]
pub trait Kind<E> {
    /// What the group shares with its handles, its children and their wakers.
    type Shared: Failures<E>;

    /// What closing the group hands back besides its record: the outputs of children
    /// that return them to the group (an inline combinator's), or nothing.
    type Output;

    /// Opens the group under `parent` (the kind's own part, `self`, which the group's
    /// future owns, was made with the future): its node (attached to `parent`'s),
    /// called `name` if it has one, at `site`, and its shared state.
    fn open(
        &mut self,
        parent: &Ctx,
        site: &trace::Sited,
        name: Option<Cow<'static, str>>,
    ) -> Arc<Self::Shared>;

    /// The group's node.
    fn node(shared: &Self::Shared) -> &Arc<Node>;

    /// The runtime the group runs on.
    fn runtime(shared: &Self::Shared) -> &Arc<dyn Runtime>;

    /// Lets the children that can make progress run, in the group's poll (`body`: the
    /// body is still running, and its poll has registered the group's waker in its
    /// node). Nothing for children that run on their own.
    #[inline]
    fn run(&mut self, _shared: &Self::Shared, _cx: &mut Context<'_>, _body: bool) {}

    /// Closes the group if no child is left, handing back what it recorded; otherwise
    /// makes sure that the group's task is woken when the last one ends.
    fn close(
        &mut self,
        shared: &Self::Shared,
        cx: &mut Context<'_>,
    ) -> Option<Closed<E, Self::Output>>;

    /// The group's future is dropped before it finished, or after (rule C8): no child may
    /// be admitted from now on. Called before the body is dropped (whose destructor may
    /// try to spawn).
    #[inline]
    fn shut(&mut self, _shared: &Self::Shared) {}

    /// The group's future is dropped: what the kind owns goes (the children it polls,
    /// each dropped in its own context). Called after the body is dropped. The first
    /// panic of their destructors, if any.
    fn abort(&mut self, shared: &Self::Shared) -> Option<Panic>;

    /// Whether the group's node is finished when its future is dropped (rule K1). Not
    /// when children that run on their own may still link under it.
    const FINISH_WHEN_DROPPED: bool;
}

/// How a group ended: the body's value and what the children returned to the group, or
/// every error (or its own cancellation).
pub(crate) type Ended<T, O, E> = Result<(T, O), NurseryError<E>>;

/// What a group hands its future once it has closed (no child left, none admitted).
pub(crate) struct Closed<E, O> {
    /// The errors and the first panic of the body and the children (rules N2, N3).
    pub(crate) record: Record<E>,
    /// What the children returned to the group (see [`Kind::Output`]).
    pub(crate) outputs: O,
    /// A child ended cancelled: then a body that returned in the group's first poll did
    /// not run to its end without interruption (see [`decide`]).
    pub(crate) child_cancelled: bool,
}

pin_project! {
    /// The future of a group, whatever its kind of children: a nursery's of either kind,
    /// and an inline combinator's. Its output is the body's value and what the children
    /// returned to the group.
    pub(crate) struct GroupFuture<K: Kind<E>, Fut, T, E> {
        #[pin]
        body: Option<Fut>,
        state: Option<Open<K::Shared, T>>,
        // The kind's own part: the children the group polls itself, if any.
        kind: K,
        // Where the group was opened, for the hold warnings and the task tree; with the
        // `tracing` feature, also its span, entered around every poll.
        site: trace::Sited,
        // The name `nursery_named` gave, until the group opens.
        name: Option<Cow<'static, str>>,
    }

    impl<K: Kind<E>, Fut, T, E> PinnedDrop for GroupFuture<K, Fut, T, E> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            let Some(mut open) = this.state.take() else {
                return;
            };
            let node = K::node(&open.shared).clone();
            if !open.phase.finished() {
                // Dropped from outside before it finished (C8): cancel everything now.
                // Children that run on their own stop at their next suspension point;
                // nobody waits for them.
                node.cancel(Reason::Dropped);
            }
            // Nobody will wait for a child admitted from now on.
            this.kind.shut(&open.shared);
            // The body's destructor may panic: leave the tree in order first.
            let body = catch_unwind(AssertUnwindSafe(|| this.body.set(None)));
            let children = this.kind.abort(&open.shared);
            open.hold.take();
            node.detach();
            if K::FINISH_WHEN_DROPPED {
                node.finish();
            }
            if let Err(p) = body {
                resume_unwind(p);
            }
            if let Some(p) = children {
                resume_unwind(p);
            }
        }
    }
}

/// The state of a group between its first poll and its end.
struct Open<S, T> {
    shared: Arc<S>,
    /// The group's node, installed as the current one while the body is polled.
    node: Option<Arc<Node>>,
    /// Keeps enclosing scopes of this task from dropping the group while it drains.
    hold: Option<Held>,
    /// The body's value, once it has produced one.
    value: Option<T>,
    /// Where it is in its life.
    phase: Phase,
}

impl<K: Kind<E>, Fut, T, E> GroupFuture<K, Fut, T, E> {
    /// The future of a group of `kind` opened at `site`, called `name` if it has one.
    pub(crate) fn new(kind: K, site: trace::Sited, name: Option<Cow<'static, str>>) -> Self {
        GroupFuture {
            body: None,
            state: None,
            kind,
            site,
            name,
        }
    }

    /// Whether the group has returned its output (or resumed a panic).
    pub(crate) fn is_terminated(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|open| open.phase == Phase::Returned)
    }
}

impl<K, Fut, T, E> GroupFuture<K, Fut, T, E>
where
    K: Kind<E>,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    /// Polls the group; `make` builds the body at the first poll, given the group's
    /// shared state (a panic in it is the body's, rule N3); `describe` tells the
    /// `tracing` feature of an error the body returns.
    ///
    /// Rules: N1 (it returns once the body and every child have finished), N2-N4 and C3
    /// (how it ends: [`decide`]), C1 (the body dropped at a suspension point once the
    /// group is cancelled: [`poll_body`]), N5 (the body's first poll is never cut), C8
    /// (dropped from outside: everything cancelled at once), K2 (kept past the scope that
    /// cancelled it: [`Phase::poll_ended`]).
    pub(crate) fn poll_group(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        make: impl FnOnce(&Arc<K::Shared>) -> Fut,
        describe: fn(&E),
    ) -> Poll<Ended<T, K::Output, E>> {
        let mut this = self.project();
        let _entered = this.site.entry(this.name.as_deref());
        let mut first = false;
        if this.state.is_none() {
            let parent = context::current();
            let shared = this.kind.open(&parent, this.site, this.name.take());
            let node = K::node(&shared).clone();
            let hold = Held::new(&parent.node, HolderKind::Nursery, this.site.at());
            let phase = make_body(this.body.as_mut(), || make(&shared), &*shared);
            *this.state = Some(Open {
                shared,
                node: Some(node),
                hold: Some(hold),
                value: None,
                phase,
            });
            first = true;
        }
        let open = this.state.as_mut().expect("group state");
        if let Some(hold) = &open.hold {
            hold.polled();
        }
        let shared = open.shared.clone();
        let (node, rt) = (K::node(&shared), K::runtime(&shared));
        // Stalled under a cancelled enclosing scope, which drops us. Unless we were kept
        // past it, and it has finished since (see `Node::finish`): then nothing is left
        // to catch the cancellation, and we return it ourselves.
        if let Some(ended) = open.phase.poll_ended(node, rt.now()) {
            return ended;
        }
        let body = open.phase == Phase::Body;
        if body {
            node.register(cx.waker());
            let body = Body {
                fut: this.body.as_mut(),
                value: &mut open.value,
                slot: &mut open.node,
            };
            if poll_body(body, first, node, rt, cx, &*shared, describe) {
                open.phase = Phase::Draining;
            }
        }
        this.kind.run(&shared, cx, body);
        if open.phase == Phase::Body {
            if node.is_marked() {
                // Cancelled, but held: warn of a holder kept unpolled (cold).
                diagnostics::held(node, &**rt, cx);
            }
            return Poll::Pending;
        }
        // The body is gone: nothing holds the node any more.
        diagnostics::unwatch(node);
        let Some(closed) = this.kind.close(&shared, cx) else {
            return Poll::Pending;
        };
        let value = open.value.take();
        let seen = Seen::close(node, rt.now(), true);
        // Release the hold last, just before handing control back to enclosing scopes.
        open.hold.take();
        // A group that produced its value in its first poll never suspended: like code
        // that never suspends, cancellation does not interrupt it (C1). Unless a child was
        // cancelled: children can start, be cancelled at their first suspension and
        // finish before that first poll ends, and the value must not pass for the work of
        // children that were cut short (combinators build theirs from their children's
        // outputs).
        let uninterrupted = first && !closed.child_cancelled;
        let decision = decide(Some(node), closed.record, value, seen, uninterrupted);
        open.phase = decision.phase();
        let outputs = closed.outputs;
        decision.into_poll().map_ok(|v| (v, outputs))
    }
}
