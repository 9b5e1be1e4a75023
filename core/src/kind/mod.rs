//! Kinds of children, and the one future of a group that runs a body and children of a
//! kind ([`GroupFuture`]): a nursery of any kind, and a combinator's group.
//!
//! A kind says only how a child is scheduled ([`Kind`]):
//!
//! | kind | a child is | polled by | `run` | `abort` (C8) |
//! |---|---|---|---|---|
//! | spawned | a task of the executor | the executor | nothing | nothing: children stop at their next suspension point |
//! | polled | owned by the group | the group's own task, in rounds of the woken children ([`polled`]) | a few rounds | drops every child at once |
//!
//! Everything else is the group's (`group`) and the child's (`child`): the same state,
//! the same driver, the same end. A few futures known at once (`join`, `race`, the tuple
//! macros) may also be kept in place, in slots of the combinator's own future, polled all
//! on every wake-up with no allocation ([`fixed`]): the polled kind's storage for a small
//! fixed set, which records and decides through the group's functions.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::context;
use crate::diagnostics::{self, Held, HolderKind};
use crate::error::NurseryError;
use crate::group::{decide, poll_body, Body, Exit, Group, Phase, Ready, Seen};
use crate::node::{Node, Reason};
use crate::seam::current_local;
use crate::trace;

pub(crate) mod fixed;
pub(crate) mod mode;
pub(crate) mod polled;
pub(crate) mod tuple;

/// A kind of children: how a group's children are scheduled. The group's future owns a
/// value of the kind (the children it polls itself, if any).
#[allow(unreachable_pub, private_interfaces)]
pub trait Kind {
    /// The queue a group of this kind polls its children from: `None` for tasks of the
    /// executor.
    fn ready(&self) -> Option<Arc<Ready>> {
        None
    }

    /// Lets the children that can make progress run, in the group's poll. Nothing for
    /// children that run on their own.
    #[inline]
    fn run<E>(&mut self, _group: &Group<E>, _cx: &mut Context<'_>) {}

    /// The group's future is dropped before it finished, or after (rule C8): what the
    /// kind owns goes (every child it polls, each ended in its own context). Called after
    /// the body is dropped.
    fn abort<E>(&mut self, _group: &Group<E>) {}

    /// Whether the group's node is finished when its future is dropped (rule K1). Not
    /// when children that run on their own may still link under it.
    const FINISH_WHEN_DROPPED: bool;
}

/// The children of a nursery opened with [`nursery`](crate::nursery): tasks of the
/// executor, `Send + 'static`, which run in parallel on a multi-threaded runtime (rule
/// N8). The default kind of [`Nursery`](crate::Nursery). See
/// [`Children`](crate::Children).
///
/// # Examples
///
/// ```
/// use hatchery::{nursery, Nursery, Spawned};
///
/// fn takes(_: &Nursery<std::io::Error, Spawned>) {}
///
/// # hatchery_smol::run(async {
/// nursery(|n: Nursery<std::io::Error>| async move { takes(&n); Ok(()) }).await.unwrap();
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Spawned;

impl Kind for Spawned {
    // After a drop from outside, children may still run (and link in their first poll):
    // the node stays cancelled for them.
    const FINISH_WHEN_DROPPED: bool = false;
}

/// The children of a nursery opened with [`Local::nursery`]: tasks of the thread's local
/// executor (tokio's `LocalSet`, smol's `LocalExecutor`, a compio runtime, installed by
/// an adapter's `run_local` or [`enter_local`](crate::rt::enter_local); the simulator,
/// `hatchery-sim`, is its own in every run), which need not be `Send` (`Rc`, `RefCell`)
/// and run concurrently on that one thread. Everything else is a
/// spawning nursery's: the same rules, handles, names, `start`, subgroups and task
/// tree. Neither the nursery's future nor its handle is `Send`. See
/// [`Children`](crate::Children).
///
/// # Examples
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use hatchery::{Local, Nursery};
///
/// # hatchery_smol::run_local(async {
/// let log = Rc::new(RefCell::new(Vec::new())); // per-thread state: no lock
/// Local::nursery(|n: Nursery<std::io::Error, Local>| async move {
///     for i in 0..3 {
///         let log = log.clone();
///         n.spawn(async move {
///             log.borrow_mut().push(i);
///             Ok(())
///         });
///     }
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Local(PhantomData<*const ()>);

#[allow(private_interfaces)]
impl Kind for Local {
    /// No queue: children are tasks. Asked as the group opens, which is where a thread
    /// without a local runtime is told what to do (a panic), before any child is.
    fn ready(&self) -> Option<Arc<Ready>> {
        current_local();
        None
    }

    // As for `Spawned`: children run on their own.
    const FINISH_WHEN_DROPPED: bool = false;
}

/// How a group ended: the body's value, or every error (or its own cancellation).
pub(crate) type Ended<T, E> = Result<T, NurseryError<E>>;

pin_project! {
    /// The future of a group, whatever its kind of children: a nursery's, and a
    /// combinator's. Its output is the body's value.
    pub(crate) struct GroupFuture<K: Kind, Fut, T, E> {
        #[pin]
        body: Option<Fut>,
        state: Option<Open<E, T>>,
        // The kind's own part: the children the group polls itself, if any.
        kind: K,
        // Where the group was opened, for the hold warnings and the task tree; with the
        // `tracing` feature, also its span, entered around every poll.
        site: trace::Sited,
        // The name `named` gave, until the group opens.
        name: Option<Cow<'static, str>>,
    }

    impl<K: Kind, Fut, T, E> PinnedDrop for GroupFuture<K, Fut, T, E> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            let Some(mut open) = this.state.take() else {
                return;
            };
            let group = open.group.clone();
            let node = &group.node;
            if !open.phase.finished() {
                // Dropped from outside before it finished (C8): cancel everything now.
                // Children that run on their own stop at their next suspension point;
                // nobody waits for them.
                node.cancel(Reason::Dropped);
            }
            // Nobody will wait for a child admitted from now on.
            group.shut();
            // The body's destructor may panic: leave the tree in order first.
            let body = catch_unwind(AssertUnwindSafe(|| this.body.set(None)));
            // What the children failed with is reported to nobody (C8); a panic of the
            // destructors of those it ends now is resumed here.
            drop(group.take_panic());
            this.kind.abort(&group);
            open.hold.take();
            node.detach();
            if K::FINISH_WHEN_DROPPED {
                node.finish();
            }
            if let Err(p) = body {
                resume_unwind(p);
            }
            if let Some(p) = group.take_panic() {
                resume_unwind(p);
            }
        }
    }
}

/// The state of a group between its first poll and its end.
struct Open<E, T> {
    group: Arc<Group<E>>,
    /// The group's node, installed as the current one while the body is polled.
    node: Option<Arc<Node>>,
    /// Keeps enclosing scopes of this task from dropping the group while it drains.
    hold: Option<Held>,
    /// The body's value, once it has produced one.
    value: Option<T>,
    /// Where it is in its life.
    phase: Phase,
}

impl<K: Kind, Fut, T, E> GroupFuture<K, Fut, T, E> {
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

    /// Gives the group a name, before it opens (unpinned: it was never polled).
    pub(crate) fn name(&mut self, name: Cow<'static, str>) {
        self.name = Some(name);
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
    K: Kind,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    /// Polls the group; `make` builds the body at the first poll, given the group (a
    /// panic in it is the body's, rule N3); `describe` tells the `tracing` feature of an
    /// error the body returns.
    ///
    /// Rules: N1 (it returns once the body and every child have finished), N2-N4 and C3
    /// (how it ends: [`decide`]), C1 (the body dropped at a suspension point once the
    /// group is cancelled: [`poll_body`]), N5 (the body's first poll is never cut), C8
    /// (dropped from outside: everything cancelled at once), K2 (kept past the scope that
    /// cancelled it: [`Phase::poll_ended`]).
    pub(crate) fn poll_group(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        make: impl FnOnce(&Arc<Group<E>>) -> Fut,
        describe: fn(&E),
    ) -> Poll<Ended<T, E>> {
        let mut this = self.project();
        let _entered = this.site.entry(this.name.as_deref());
        let mut first = false;
        if this.state.is_none() {
            let parent = context::current();
            let group = Group::open(&parent, this.site, this.name.take(), this.kind.ready());
            let hold = Held::new(&parent.node, HolderKind::Nursery, this.site.at());
            let phase = match catch_unwind(AssertUnwindSafe(|| make(&group))) {
                Ok(body) => {
                    this.body.set(Some(body));
                    Phase::Body
                }
                Err(panic) => {
                    group.fail(Exit::Panicked(panic), None);
                    Phase::Draining
                }
            };
            *this.state = Some(Open {
                node: Some(group.node.clone()),
                group,
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
        let group = open.group.clone();
        let node = &group.node;
        // Stalled under a cancelled enclosing scope, which drops us. Unless we were kept
        // past it, and it has finished since (see `Node::finish`): then nothing is left
        // to catch the cancellation, and we return it ourselves.
        if let Some(ended) = open.phase.poll_ended(node, group.rt.now()) {
            return ended;
        }
        if open.phase == Phase::Body {
            node.register(cx.waker());
            let body = Body {
                fut: this.body.as_mut(),
                value: &mut open.value,
                slot: &mut open.node,
            };
            if poll_body(body, first, &group, cx, describe) {
                open.phase = Phase::Draining;
            }
        } else {
            // The group's cancellation still has to wake it while the children drain.
            node.register(cx.waker());
        }
        this.kind.run(&group, cx);
        if open.phase == Phase::Body {
            if node.is_marked() {
                // Cancelled, but held: warn of a holder kept unpolled (cold).
                diagnostics::held(node, &*group.rt, cx);
            }
            return Poll::Pending;
        }
        // The body is gone: nothing holds the node any more.
        diagnostics::unwatch(node);
        let Some(closed) = group.close(cx.waker()) else {
            return Poll::Pending;
        };
        let value = open.value.take();
        let seen = Seen::close(node, group.rt.now(), true);
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
        decision.into_poll()
    }
}
