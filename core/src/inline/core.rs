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
                if !open.finished {
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
    body_done: bool,
    finished: bool,
    returned: bool,
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
            let made = catch_unwind(AssertUnwindSafe(|| make(&shared)));
            let body_done = match made {
                Ok(body) => {
                    this.body.set(Some(body));
                    false
                }
                Err(panic) => {
                    shared.panicked(panic, None);
                    true
                }
            };
            *this.state = Some(Open {
                shared,
                group: Group::new(*this.stop),
                node: Some(node),
                hold: Some(hold),
                value: None,
                body_done,
                finished: false,
                returned: false,
            });
            first = true;
        }
        let open = this.state.as_mut().expect("nursery state");
        if open.finished {
            assert!(
                !open.returned,
                "hatchery: nursery future polled after completion"
            );
            // Stalled under a cancelled enclosing scope, which drops us; kept past it
            // (rule K), nothing else catches, and we return it ourselves.
            if !open.shared.node.outer_cancelled(open.shared.rt.now()) {
                open.returned = true;
                open.shared.node.set_caught();
                return Poll::Ready(Err(NurseryError::Cancelled));
            }
            return Poll::Pending;
        }
        let shared = open.shared.clone();
        let node = &shared.node;
        node.register(cx.waker());
        shared.register(cx.waker());

        if !open.body_done {
            if !first && node.should_drop() {
                trace::cancelled(node, None);
                let dropped = catch_unwind(AssertUnwindSafe(|| {
                    context::drop_cancelled_body(|| this.body.set(None))
                }));
                if let Err(panic) = dropped {
                    shared.panicked(panic, None);
                }
                open.body_done = true;
            } else if let Some(body) = this.body.as_mut().as_pin_mut() {
                let slot = &mut open.node;
                let polled = catch_unwind(AssertUnwindSafe(|| {
                    context::enter_with(slot, &shared.rt, cx.waker(), || body.poll(cx))
                }));
                let ended = match polled {
                    Ok(Poll::Pending) => {
                        let cancelled = node.should_drop();
                        if cancelled {
                            trace::cancelled(node, None);
                        }
                        cancelled
                    }
                    Ok(Poll::Ready(Ok(v))) => {
                        open.value = Some(v);
                        true
                    }
                    Ok(Poll::Ready(Err(e))) => {
                        trace::failed_borrowed::<E>(false);
                        shared.fail(e, None);
                        true
                    }
                    Err(panic) => {
                        trace::panicked(&*panic, false);
                        shared.panicked(panic, None);
                        true
                    }
                };
                if ended {
                    let dropped = catch_unwind(AssertUnwindSafe(|| {
                        context::drop_cancelled_body(|| this.body.set(None))
                    }));
                    if let Err(panic) = dropped {
                        shared.panicked(panic, None);
                    }
                    open.body_done = true;
                }
            }
        }

        // The children: those woken, the new ones, and all of them once when the
        // nursery is cancelled.
        open.group.run(&shared, cx);

        if !open.body_done {
            return Poll::Pending;
        }
        let Some(record) = open.group.try_close(&shared) else {
            return Poll::Pending;
        };
        open.finished = true;
        let value = open.value.take();
        // As the spawning nursery ends (`nursery::NurseryFuture`): our flag first, then
        // the walk up.
        let marked = node.is_marked();
        let outer = node.outer_cancelled(shared.rt.now());
        let reason = node.reason();
        node.detach_unless_kept();
        node.finish();
        open.hold.take();
        if let Some(panic) = record.panic {
            open.returned = true;
            resume_unwind(panic);
        }
        if !record.errors.is_empty() {
            open.returned = true;
            return Poll::Ready(Err(NurseryError::Failed(record.errors)));
        }
        // Finished in its first poll, nothing of it cancelled: it never suspended, and
        // cancellation does not interrupt it (C1).
        let uninterrupted = first && !record.child_cancelled;
        let orphan = !outer && reason.is_none() && marked;
        if (outer || orphan) && !(uninterrupted && value.is_some()) {
            if orphan {
                drop(value);
                open.returned = true;
                node.set_caught();
                return Poll::Ready(Err(NurseryError::Cancelled));
            }
            // Cancelled from outside: the enclosing cancelled scope ends the work here
            // and drops us (N4).
            return Poll::Pending;
        }
        open.returned = true;
        if let Some(v) = value {
            return Poll::Ready(Ok((v, record.outputs)));
        }
        node.set_caught();
        Poll::Ready(Err(NurseryError::Cancelled))
    }
}
