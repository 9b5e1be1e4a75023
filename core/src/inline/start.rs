//! [`Nursery::start`](crate::Nursery::start) for inline nurseries: how an inline child
//! runs before it has started. `start` polls it itself, in the caller's task and under the
//! caller's cancellation, until it calls [`TaskStatus::started`]; that call moves it into
//! the nursery's scope (rule S4), and the nursery takes over its polling at its next
//! suspension point (rule N6). The handshake, the future and its rules are the spawning nursery's
//! (`nursery::start`): this is only the kind's part of it.

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::cell;
use super::engine::{ChildWaker, Shared};
use super::{LocalChild, SendChild};
use crate::context::{self, Ctx};
use crate::group::Panic;
use crate::node::Node;
use crate::nursery::{EndTo, Hand, InlineSlot, Starts};
use crate::task::{End, Label};
use crate::TaskStatus;

/// An inline child's start: the handshake, kept to itself (the child is polled by the
/// start, in its task), the slot its [`TaskStatus`] writes to, and the child until the
/// nursery takes it over.
#[allow(unreachable_pub, missing_debug_implementations)]
pub struct InlineRun<V, E, C> {
    hand: Hand<V, E>,
    slot: Arc<InlineSlot<V>>,
    shared: Arc<Shared<E, C>>,
    /// The child, from its launch until it has ended or the nursery has taken it.
    running: Option<Running<C>>,
    /// Where `start` was called: the child's site (its span's, its failure's).
    site: &'static Location<'static>,
}

/// A child that `start` polls.
struct Running<C> {
    child: C,
    own: Arc<Node<ChildWaker>>,
    /// Its node, as installed while it is polled (moved into the context and back).
    node: Option<Arc<Node>>,
    /// Polled at least once: a child is cancelled only at a suspension point (rule N5).
    polled: bool,
}

impl<V, E, C> InlineRun<V, E, C> {
    /// The value `started` handed over since the last look, into the handshake. The
    /// token moved the child into the nursery's scope at the call (unless the caller's
    /// was cancelled, and then left no value); a value left before the child existed
    /// moves it now. (While `start` polls the child, the handshake waits: nothing else
    /// can have ended it.)
    fn take_started(&mut self) {
        if let Some((value, moved)) = self.slot.take() {
            let nursery = (!moved).then_some(&self.shared.node);
            drop(self.hand.started(value, nursery));
        }
    }

    /// The child leaves: it is dropped (cancelled, with `rt_waker`: at a suspension point,
    /// in its context), leaves the tree and gives back its place in the group. What its
    /// destructor did, if there was a child.
    fn release(&mut self, rt_waker: Option<&Waker>) -> Option<std::thread::Result<()>> {
        let Running {
            child,
            own,
            mut node,
            ..
        } = self.running.take()?;
        let drop_child = || catch_unwind(AssertUnwindSafe(|| drop(child)));
        let dropped = match rt_waker {
            Some(w) => context::drop_cancelled(&mut node, &self.shared.rt, w, drop_child),
            None => drop_child(),
        };
        own.detach();
        own.finish();
        own.register(Waker::noop());
        self.shared.unreserve();
        Some(dropped)
    }

    /// The child has ended (`end`; cancelled: at a suspension point, dropped in its
    /// context): it is released, and its end goes where the handshake says (a panic of
    /// its destructor is its own).
    fn end(&mut self, mut end: End<E>, rt_waker: &Waker) {
        let cancelled = matches!(end, End::Cancelled);
        let Some(dropped) = self.release(cancelled.then_some(rt_waker)) else {
            return;
        };
        if let Err(p) = dropped {
            if !matches!(end, End::Panicked(_)) {
                end = End::Panicked(p);
            }
        }
        match self.hand.end(end) {
            EndTo::Start => {}
            EndTo::Nobody(end) => drop(end),
            // Started, then ended: the nursery's, as a child's end is.
            EndTo::Nursery(End::Failed(e)) => self.shared.fail(e, Some(self.site)),
            EndTo::Nursery(End::Panicked(p)) => self.shared.panicked(p, Some(self.site)),
            EndTo::Nursery(End::Value(()) | End::Cancelled) => {}
        }
    }

    /// The child has started: the nursery takes it over.
    fn hand_over(&mut self) {
        if let Some(Running { child, own, .. }) = self.running.take() {
            self.shared.fill(child, own, self.site);
        }
    }
}

impl<V, E, C> Drop for InlineRun<V, E, C> {
    fn drop(&mut self) {
        // A child that started (its value handed over or not) keeps running in the
        // nursery; one that had not is dropped with the start (C8), and its end goes
        // nowhere.
        self.take_started();
        let left = self.hand.abandon(self.running.is_some());
        if self.hand.has_started() {
            self.hand_over();
        } else if let Some(Err(p)) = self.release(None) {
            drop(left);
            resume_unwind(p);
        }
        drop(left);
    }
}

/// The start of a child of `$child`, written once for both inline kinds, which differ only
/// in the bound `$send` on the child's future, its value and the start's (`Send`, or
/// none), and in the owner's type (`cell::$owner` makes it).
macro_rules! inline_starts {
    ($child:ident, $owner:ident, $($send:ident)?) => {
        #[allow(private_interfaces, private_bounds)]
        impl<'env, Fut, V, T, E> Starts<Fut, V, T, E> for $child<'env, E>
        where
            Fut: Future<Output = Result<T, E>> + $($send +)? 'env,
            T: $($send +)? 'env,
            V: $($send)?,
        {
            /// A start's own part: the handshake, and the token's slot.
            fn prepare(
                shared: &Arc<Shared<E, Self>>,
                _: bool,
            ) -> (InlineRun<V, E, Self>, TaskStatus<V>) {
                let slot = InlineSlot::new();
                let status = TaskStatus::inline(slot.clone());
                let run = InlineRun {
                    hand: Hand::new(),
                    slot,
                    shared: shared.clone(),
                    running: None,
                    site: Location::caller(),
                };
                (run, status)
            }

            fn admit(shared: &Arc<Shared<E, Self>>) -> bool {
                shared.reserve()
            }

            fn launch(
                run: &mut InlineRun<V, E, Self>,
                _: &Arc<Shared<E, Self>>,
                fut: Fut,
                caller: &Ctx,
                site: &'static Location<'static>,
            ) {
                // The child's own value is dropped when it returns, as a started task's is.
                let fut = async move { fut.await.map(drop) };
                // Under the caller's scope, which must reach it through its list (a movable
                // root is not walked through).
                let own = Arc::new(Node::task_root(&caller.node, run.shared.waker_ext(true)));
                let node: Arc<Node> = own.clone();
                node.link();
                drop(run.hand.child_made(node.clone(), &run.shared.node));
                run.slot.child_made(node.clone(), run.shared.node.clone());
                run.site = site;
                run.running = Some(Running {
                    child: $child(cell::$owner(fut, Label::at(site))),
                    own,
                    node: Some(node),
                    polled: false,
                });
            }

            /// Polls the child once in its own context (unless it was cancelled at a
            /// suspension point), then hands it to the nursery if it has started, or ends it.
            fn drive(
                run: &mut InlineRun<V, E, Self>,
                _: &Arc<Shared<E, Self>>,
                cx: &mut Context<'_>,
            ) {
                let Some(r) = run.running.as_mut() else {
                    return;
                };
                let polled = if r.polled && r.own.should_drop() {
                    None
                } else {
                    r.polled = true;
                    let (child, slot) = (&mut r.child, &mut r.node);
                    let rt = &run.shared.rt;
                    Some(catch_unwind(AssertUnwindSafe(|| {
                        context::enter_with(slot, rt, cx.waker(), || Pin::new(child).poll(cx))
                    })))
                };
                run.take_started();
                let end = match polled {
                    Some(Ok(Poll::Pending)) => {
                        let own = &run.running.as_ref().expect("a running child").own;
                        own.register(cx.waker());
                        if run.hand.has_started() {
                            run.hand_over();
                            return;
                        }
                        if !own.should_drop() {
                            return;
                        }
                        // Cancelled during this poll: dropped at this suspension point.
                        End::Cancelled
                    }
                    None => End::Cancelled,
                    Some(Ok(Poll::Ready(Ok(())))) => End::Value(()),
                    Some(Ok(Poll::Ready(Err(e)))) => End::Failed(e),
                    Some(Err(p)) => End::Panicked(p as Panic),
                };
                run.end(end, cx.waker());
            }

            fn with_hand<R>(
                run: &mut InlineRun<V, E, Self>,
                f: impl FnOnce(&mut Hand<V, E>) -> R,
            ) -> R {
                f(&mut run.hand)
            }
        }
    };
}

inline_starts!(SendChild, send_owner, Send);
inline_starts!(LocalChild, local_owner,);
