//! The future of an inline nursery ([`Core`]): opening it, polling its body and its
//! children, and ending it under the rules of the spawning nursery (N1-N7).

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::engine::{Group, Ready, Shared};
use crate::context;
use crate::error::NurseryError;
use crate::group::{decide, make_body, poll_body, Body, Phase, Seen};
use crate::node::{Hold, Node, Reason};
use crate::trace;

pin_project! {
    /// An inline nursery's future, whatever its children: the engine of
    /// [`NurseryFuture`](super::NurseryFuture) and of the inline combinators. `O` is what
    /// a child returns to the group (`()` when its value goes to a handle).
    pub(crate) struct Core<'env, Fut, T, E, C, O> {
        #[pin]
        body: Option<Fut>,
        state: Option<Open<'env, T, E, C, O>>,
        stop: Option<fn(&O) -> bool>,
        // Where it was opened, and its span (`tracing` feature), entered around every
        // poll.
        site: trace::Sited,
    }

    impl<'env, Fut, T, E, C, O> PinnedDrop for Core<'env, Fut, T, E, C, O> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if let Some(mut open) = this.state.take() {
                if !open.phase.finished() {
                    // Dropped from outside before it finished (C8): everything is
                    // cancelled, and the children, which it owns, are dropped now.
                    open.shared.node.cancel(Reason::Dropped);
                }
                let body = catch_unwind(AssertUnwindSafe(|| this.body.set(None)));
                let children = open.group.abort(&open.shared);
                open.hold.take();
                open.shared.node.detach();
                open.shared.node.finish();
                if let Err(p) = body {
                    resume_unwind(p);
                }
                if let Some(p) = children {
                    resume_unwind(p);
                }
            }
        }
    }
}

/// How an inline nursery ended: the body's value and what the children returned to it.
pub(crate) type Ended<T, E, O> = Result<(T, Vec<O>), NurseryError<E>>;

/// The state of an inline nursery between its first poll and its end.
struct Open<'env, T, E, C, O> {
    shared: Arc<Shared<'env, E, C>>,
    /// The children, which only this future reaches.
    group: Group<C, O>,
    /// The nursery's node, installed as the current one while the body is polled.
    node: Option<Arc<Node>>,
    /// Keeps the enclosing scopes of this task from dropping the nursery while its
    /// children run (their holds stop at their own nodes).
    hold: Option<Hold>,
    value: Option<T>,
    /// Where it is in its life.
    phase: Phase,
}

impl<'env, Fut, T, E, C, O> Core<'env, Fut, T, E, C, O>
where
    Fut: Future<Output = Result<T, E>>,
    C: Future<Output = Result<O, E>> + Unpin,
{
    /// The nursery opened at `at` (the caller of `inline::nursery`, or of a combinator).
    pub(crate) fn new(stop: Option<fn(&O) -> bool>, at: &'static Location<'static>) -> Self {
        Core {
            body: None,
            state: None,
            stop,
            site: trace::Sited::inline(at),
        }
    }

    /// Polls the nursery; `make` builds the body on the first poll.
    pub(crate) fn poll_core(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        make: impl FnOnce(&Arc<Shared<'env, E, C>>) -> Fut,
    ) -> Poll<Ended<T, E, O>> {
        let mut this = self.project();
        let _entered = this.site.entry(None);
        let mut first = false;
        if this.state.is_none() {
            let parent = context::current();
            let group = Ready::node();
            let node: Arc<Node> = group.clone();
            // Linked into the parent's list: an enclosing cancellation must reach the
            // children (which do not suspend the parent's runner) through the wake-up of
            // this node.
            node.attach(&parent.node);
            let shared = Arc::new(Shared::new(
                group,
                parent.rt,
                this.site.parent(),
                this.site.at(),
            ));
            let hold = Hold::new(&parent.node);
            let phase = make_body(this.body.as_mut(), || make(&shared), &*shared);
            *this.state = Some(Open {
                shared,
                group: Group::new(*this.stop),
                node: Some(node),
                hold: Some(hold),
                value: None,
                phase,
            });
            first = true;
        }
        let open = this.state.as_mut().expect("nursery state");
        if let Some(ended) = open
            .phase
            .poll_ended(&open.shared.node, open.shared.rt.now())
        {
            return ended;
        }
        let shared = open.shared.clone();
        let node = &shared.node;
        node.register(cx.waker());
        shared.register(cx.waker());

        if open.phase == Phase::Body {
            let body = Body {
                fut: this.body.as_mut(),
                value: &mut open.value,
                slot: &mut open.node,
            };
            if poll_body(body, first, node, &shared.rt, cx, &*shared) {
                open.phase = Phase::Draining;
            }
        }

        // The children: those woken, the new ones, and all of them once when the
        // nursery is cancelled.
        open.group.run(&shared, cx);

        if open.phase == Phase::Body {
            return Poll::Pending;
        }
        let Some(closed) = open.group.try_close(&shared) else {
            return Poll::Pending;
        };
        let value = open.value.take();
        let seen = Seen::close(node, shared.rt.now(), true);
        open.hold.take();
        // Finished in its first poll, nothing of it cancelled: it never suspended, and
        // cancellation does not interrupt it (C1).
        let uninterrupted = first && !closed.child_cancelled;
        let decision = decide(Some(node), closed.record, value, seen, uninterrupted);
        open.phase = decision.phase();
        decision.into_poll().map_ok(|v| (v, closed.outputs))
    }
}
