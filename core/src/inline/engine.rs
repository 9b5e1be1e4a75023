//! The engine of inline nurseries: the state a nursery shares with its handles and wakers
//! ([`Shared`]), and the children it owns and polls ([`Group`]), in rounds that poll only
//! the children that were woken.
//!
//! # How it works
//!
//! A child is a future (`C`: a spawned child's cell, a combinator's boxed future) with
//! a node of its own: a task root under the nursery's node, as a spawned task's is, so
//! that holds inside it (a shield, a `finally`, a nursery) count on the child only and
//! never keep its siblings from being dropped, and its cancellation (its handle's
//! `cancel`) is its own. The node's allocation is also the child's waker
//! ([`ChildWaker`]): waking it puts the child's key in the ready queue ([`Ready`], which
//! the nursery's node carries, so that a child's node reaches it through its parent
//! link) and wakes the task that polls the nursery.
//! A child woken on the thread that runs its group's round (by its own poll or a
//! sibling's: most wake-ups) queues itself in a thread-local list instead, with no lock
//! and no read-modify-write ([`LOCAL`]).
//!
//! [`spawn`](Shared::push) puts a new child in the shared inbox; the nursery's poll moves
//! it into the [`Group`], which the nursery future owns, and which no lock guards. A
//! round takes the keys of the woken children out of the ready queue (one lock, the two
//! vectors swapped so that neither allocates again), polls each child where it lies,
//! with its node installed as the innermost scope and its own waker, and ends those that
//! finished. A round costs in proportion to the children woken, not to the children
//! alive: 100,000 children cost no more per wake-up than ten.
//!
//! A child is cancelled in effect when its own node's flag is set or its nursery's is
//! (the nursery's node is in its parent's list, so its flag follows its ancestors'):
//! the round reads the nursery's once, and a child's poll reads the child's own, with no
//! walk up the tree. A child's node keeps the child's waker only while something inside
//! the child holds, or once the node is marked: the release of a hold on a marked node
//! is the one wake-up that must come through the node. A cancellation of the node
//! itself is its handle's, which wakes the child ([`cancel_child`]), or reaches it from
//! the nursery, whose own wake-up makes the round sweep its children.
//!
//! # Invariants
//!
//! 1. **Owned, not shared.** The group (and so the nursery future) owns every child
//!    future once it is placed, and the inbox owns it before: wakers and handles reach
//!    a child's node and output only, never its future. A nursery future that is
//!    forgotten (`mem::forget`) leaves its children unpolled for good, and nothing can
//!    poll them or reach what they borrow: no `unsafe`, no lifetime is extended.
//! 2. **Dropped in order.** A child's future is dropped when it finishes, or when it is
//!    cancelled (its node, rule C1) at a suspension point, or with the group. Each is
//!    dropped before the group reports its end, so every borrow a child holds is
//!    released before the nursery returns.
//! 3. **Queued once.** A child is polled from a key only if its `queued` flag was set
//!    (by its waker, by the sweep, or from birth), and the round clears the flag as it
//!    polls: a stale key (its child finished and the slot went to another) polls nobody
//!    twice.
//! 4. **The cycle is broken.** A child's node that keeps the child's waker keeps itself
//!    (the waker is the node): the end of the child takes the waker out.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use atomic_waker::AtomicWaker;
use futures_task::{waker_ref, ArcWake};
use slab::Slab;

use crate::context::{self, Ctx, Row};
use crate::group::{drop_caught, Closed, Exit, Failures, GroupState, Kind, Panic, Record};
use crate::node::{Detail, Node, Reason};
use crate::reason::race_won;
use crate::rt::Runtime;
use crate::trace;

/// The wakers of a group's children push their keys here. It is what the nursery's
/// node carries (its `ext`), so that a child's waker, whose node's parent is the
/// nursery's, finds it through that link and keeps no reference of its own.
pub(crate) struct Ready {
    keys: Mutex<Vec<u32>>,
    /// The task that polls the nursery future.
    waker: AtomicWaker,
}

impl crate::node::Tag for Ready {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl Ready {
    fn keys(&self) -> MutexGuard<'_, Vec<u32>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, key: u32) {
        let mut keys = self.keys();
        let first = keys.is_empty();
        keys.push(key);
        drop(keys);
        // Woken once per batch, by whoever found the queue empty: the round that takes
        // the batch takes every key pushed after it too.
        if first {
            self.waker.wake();
        }
    }
}

/// The key of a child that is not in the group yet.
const UNPLACED: u32 = u32::MAX;

/// What a child's node carries: its waker's state.
pub(crate) struct ChildWaker {
    /// Its key in the group, once placed there.
    key: AtomicU32,
    /// In the ready queue, or about to be polled (as a new child) already.
    queued: AtomicBool,
    /// The parent link of a child that `start` may move (boxed, the rare case: 8 bytes
    /// in every inline child's node, where the link in place would take 24).
    link: Option<Box<crate::node::MovableLink>>,
}

impl crate::node::Tag for ChildWaker {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn movable_link(&self) -> Option<&crate::node::MovableLink> {
        self.link.as_deref()
    }

    fn label(&self) -> Option<crate::node::Labelled<'_>> {
        Some(crate::node::Labelled::unplaced(crate::node::Kind::Inline))
    }
}

thread_local! {
    /// The group whose round this thread is running, if any, and the keys of its
    /// children woken on this thread during the round (see [`Group::round`]): most
    /// wake-ups of a child come from its own poll or a sibling's, and need no lock.
    static LOCAL: Local = const {
        Local {
            group: Cell::new(0),
            keys: RefCell::new(Vec::new()),
        }
    };
}

struct Local {
    /// The group's nursery node, by address; zero outside a round.
    group: Cell<usize>,
    keys: RefCell<Vec<u32>>,
}

impl ArcWake for Node<ChildWaker> {
    fn wake_by_ref(this: &Arc<Self>) {
        let w = &this.ext;
        // Placed (a child is born queued): its key is set, and its parent is the
        // nursery's node (a started child's since `started` moved it there, before the
        // group first polled it).
        if let Some(parent) = this.fixed_parent() {
            let local = LOCAL.try_with(|l| {
                if l.group.get() != node_addr(parent) {
                    return false;
                }
                // Woken in its group's round, on the thread running it: queued with no
                // lock, and no read-modify-write (a wake-up racing from another thread
                // may queue the child twice, and the round polls it once: invariant 3).
                if !w.queued.load(Ordering::Acquire) {
                    w.queued.store(true, Ordering::Release);
                    l.keys.borrow_mut().push(w.key.load(Ordering::Acquire));
                }
                true
            });
            if local == Ok(true) {
                return;
            }
        }
        queue(this, w);
    }
}

/// Queues the child whose node is `node` in its nursery's ready queue, unless it is
/// queued already. Placed (a child is born queued): its key is set.
fn queue<X: ?Sized + crate::node::Tag>(node: &Node<X>, w: &ChildWaker) {
    if !w.queued.swap(true, Ordering::AcqRel) {
        let key = w.key.load(Ordering::Acquire);
        if let Some(parent) = node.fixed_parent() {
            push_to(parent, key);
        } else if let Some(parent) = node.parent() {
            push_to(&parent, key);
        }
    }
}

/// A node's address, as [`Local::group`] keeps it.
#[inline]
fn node_addr(node: &Node) -> usize {
    (node as *const Node).cast::<u8>() as usize
}

/// A group's round in [`LOCAL`], and what it replaced there (an enclosing group's round
/// on this thread), put back when it leaves, also on unwind.
struct LocalRound {
    outer: Option<(usize, Vec<u32>)>,
}

impl LocalRound {
    /// Makes the group whose node is `node` the one whose children queue themselves in
    /// [`LOCAL`], with `keys` (an empty vector, kept for its capacity) to queue in.
    #[inline]
    fn enter(node: &Node, keys: Vec<u32>) -> LocalRound {
        let outer = LOCAL.with(|l| {
            let group = l.group.replace(node_addr(node));
            (group, std::mem::replace(&mut *l.keys.borrow_mut(), keys))
        });
        LocalRound { outer: Some(outer) }
    }

    /// Puts back what the round replaced; returns the keys its children queued.
    #[inline]
    fn leave(&mut self) -> Vec<u32> {
        let (group, keys) = self.outer.take().expect("a round leaves once");
        LOCAL
            .try_with(|l| {
                l.group.set(group);
                std::mem::replace(&mut *l.keys.borrow_mut(), keys)
            })
            .unwrap_or_default()
    }
}

impl Drop for LocalRound {
    fn drop(&mut self) {
        // Only when the round unwinds: the keys queued are lost with the group.
        if self.outer.is_some() {
            drop(self.leave());
        }
    }
}

/// Cancels the child whose node is `node` (through its handle), and wakes it, so that
/// the group drops it at its suspension point: a child's node keeps its waker only while
/// something inside holds (see [`poll_child`]).
pub(crate) fn cancel_child(node: &Arc<Node>, detail: Detail) {
    node.cancel_with(Reason::Explicit, detail);
    if let Some(w) = node.ext_ref::<ChildWaker>() {
        queue(node, w);
    }
}

/// Pushes `key` to the ready queue that the nursery's node `parent` carries.
#[inline]
fn push_to(parent: &Node, key: u32) {
    let ready = parent.ext_ref::<Ready>();
    debug_assert!(
        ready.is_some(),
        "hatchery: internal error: a child outside its group"
    );
    if let Some(ready) = ready {
        ready.push(key);
    }
}

/// A child spawned (or handed over by `start`) and not in the group yet.
pub(crate) struct New<C> {
    fut: C,
    own: Arc<Node<ChildWaker>>,
    /// Polled before (by `start`): cancelled at its next suspension point.
    polled: bool,
    /// Where it was spawned.
    site: &'static Location<'static>,
    span: trace::Span,
}

/// What the nursery shares with its handles, its `start`s and the wakers of its
/// children: the inbox of new children and the record of errors and panics. `C` is the
/// stored child (a spawned child's cell, a combinator's boxed future), whose type says
/// what children may borrow. Public only in name, as the state that the sealed trait of
/// `SendChild` and `LocalChild` names.
#[allow(unreachable_pub, missing_debug_implementations)]
pub struct Shared<E, C> {
    pub(crate) node: Arc<Node>,
    /// The same node, as the ready queue's owner.
    group: Arc<Node<Ready>>,
    pub(crate) rt: Arc<dyn Runtime>,
    inbox: Mutex<Inbox<E, C>>,
    /// What the children's spans are children of (`tracing` feature), and where the
    /// nursery was opened: the site of a child spawned by hatchery itself.
    trace: trace::Parent,
    at: &'static Location<'static>,
}

struct Inbox<E, C> {
    new: Vec<New<C>>,
    closed: bool,
    /// Pending `start` calls: they keep the group open.
    starting: usize,
    /// What the body and the children failed with (rules N2, N3).
    record: Record<E>,
}

impl<E, C> Shared<E, C> {
    fn lock(&self) -> MutexGuard<'_, Inbox<E, C>> {
        // No user code runs under this lock (futures are moved, and dropped outside it).
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node of a new child (its waker too), under the nursery's.
    pub(crate) fn child_node(&self) -> Arc<Node<ChildWaker>> {
        Arc::new(Node::task_root(&self.node, self.waker_ext(false)))
    }

    /// Adds a child whose node is `own` ([`child_node`](Self::child_node)), spawned at
    /// `site` (`None`: by hatchery, for the nursery's caller), unless the group has
    /// closed (then the future comes back).
    // Inlined into spawn: left to LLVM, it stopped inlining it with changes elsewhere
    // (+1.4% instructions in inline_spawn_join/tokio-ct).
    #[inline]
    pub(crate) fn push(
        &self,
        fut: C,
        own: Arc<Node<ChildWaker>>,
        site: Option<&'static Location<'static>>,
    ) -> Result<(), C> {
        let site = site.unwrap_or(self.at);
        // Made before the lock: a subscriber's code runs here.
        let span = trace::Span::child(&self.trace, site);
        let mut inbox = self.lock();
        if inbox.closed {
            drop(inbox);
            return Err(fut);
        }
        let first = inbox.new.is_empty();
        inbox.new.push(New {
            fut,
            own,
            polled: false,
            site,
            span,
        });
        drop(inbox);
        // The task that polls the nursery takes the inbox at its next round; spawned
        // from elsewhere than its poll (a handle sent to another task), it may be parked.
        // Woken once per batch: whoever found the inbox empty.
        if first {
            self.group.ext.waker.wake();
        }
        Ok(())
    }

    /// The waker state of a new child, with a parent link of its own if `start` may
    /// move it.
    pub(crate) fn waker_ext(&self, movable: bool) -> ChildWaker {
        ChildWaker {
            key: AtomicU32::new(UNPLACED),
            queued: AtomicBool::new(true),
            link: movable.then(Box::default),
        }
    }

    /// Counts a pending `start` (which keeps the group open), unless the group has
    /// closed.
    pub(crate) fn reserve(&self) -> bool {
        let mut inbox = self.lock();
        if inbox.closed {
            return false;
        }
        inbox.starting += 1;
        true
    }

    /// Hands a started child, whose node `own` is under the nursery already, to the
    /// group, in place of its [`reserve`](Self::reserve).
    pub(crate) fn fill(&self, fut: C, own: Arc<Node<ChildWaker>>, at: &'static Location<'static>) {
        // Made before the lock: a subscriber's code runs here.
        let span = trace::Span::child(&self.trace, at);
        let mut inbox = self.lock();
        inbox.starting -= 1;
        inbox.new.push(New {
            fut,
            own,
            polled: true,
            site: at,
            span,
        });
        drop(inbox);
        self.group.ext.waker.wake();
    }

    /// Gives back a [`reserve`](Self::reserve) whose `start` ended without `started`.
    pub(crate) fn unreserve(&self) {
        self.lock().starting -= 1;
        // The nursery may be waiting for this `start` alone to close.
        self.group.ext.waker.wake();
    }

    /// Records a failure (of the body, `child` `None`, or of the child spawned there)
    /// and cancels the group.
    pub(crate) fn fail(&self, error: E, child: Option<&'static Location<'static>>) {
        self.lock().record.errors.push(error);
        self.node.cancel_with(Reason::Failure, failed(child, false));
    }

    /// Records a panic (of the body, `child` `None`, or of the child spawned there) and
    /// cancels the group.
    pub(crate) fn panicked(&self, panic: Panic, child: Option<&'static Location<'static>>) {
        self.lock().record.panicked(panic);
        self.node.cancel_with(Reason::Failure, failed(child, true));
    }

    /// Registers the task that polls the group.
    pub(crate) fn register(&self, waker: &Waker) {
        self.group.ext.waker.register(waker);
    }
}

impl<E, C> Failures<E> for Shared<E, C> {
    fn body_failed(&self, error: E) {
        self.fail(error, None);
    }

    fn body_panicked(&self, panic: Panic) {
        trace::panicked(&*panic, false);
        self.panicked(panic, None);
    }
}

#[allow(private_interfaces)]
impl<E, C> GroupState for Shared<E, C> {
    fn node(&self) -> &Arc<Node> {
        &self.node
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn opened_at(&self) -> &'static Location<'static> {
        self.at
    }

    fn name(&self) -> Option<&str> {
        None
    }
}

/// The group engine's kind for futures polled by the group's own task: a group's
/// poll runs rounds of the children that were woken, and the group closes once none is
/// left (nor a pending `start`).
#[allow(private_interfaces)]
impl<E, C, O> Kind<E> for Group<C, O>
where
    C: std::future::Future<Output = Result<O, E>> + Unpin,
{
    type Shared = Shared<E, C>;
    type Output = Vec<O>;

    fn open(
        &mut self,
        parent: &Ctx,
        site: &trace::Sited,
        _name: Option<std::borrow::Cow<'static, str>>,
    ) -> Arc<Shared<E, C>> {
        // Linked into the parent's list: an enclosing cancellation must reach the
        // children (which do not suspend the parent's runner) through the wake-up of
        // this node.
        let ready = Ready {
            keys: Mutex::new(Vec::new()),
            waker: AtomicWaker::new(),
        };
        let group = Node::attach(Node::with_ext(false, false, ready), &parent.node);
        Arc::new(Shared {
            node: group.clone(),
            group,
            rt: parent.rt.clone(),
            inbox: Mutex::new(Inbox {
                new: Vec::new(),
                closed: false,
                starting: 0,
                record: Record::default(),
            }),
            trace: site.parent(),
            at: site.at(),
        })
    }

    #[inline]
    fn node(shared: &Shared<E, C>) -> &Arc<Node> {
        &shared.node
    }

    #[inline]
    fn runtime(shared: &Shared<E, C>) -> &Arc<dyn Runtime> {
        &shared.rt
    }

    #[inline]
    fn run(&mut self, shared: &Shared<E, C>, cx: &mut Context<'_>, body: bool) {
        if !body {
            // The body's poll registered it; the group's cancellation still has to reach
            // the children (the sweep) while they drain.
            shared.node.register(cx.waker());
        }
        shared.register(cx.waker());
        // The children: those woken, the new ones, and all of them once when the
        // nursery is cancelled.
        self.rounds(shared, cx);
    }

    fn close(&mut self, shared: &Shared<E, C>, _: &mut Context<'_>) -> Option<Closed<E, Vec<O>>> {
        self.try_close(shared)
    }

    fn abort(&mut self, shared: &Shared<E, C>) -> Option<Panic> {
        Group::abort(self, shared)
    }

    // It owns its children: none runs on after it.
    const FINISH_WHEN_DROPPED: bool = true;
}

/// What a cancellation by the failure (or panic) of the child spawned at `child` (or
/// of the body: `None`) says.
pub(crate) fn failed(child: Option<&'static Location<'static>>, panicked: bool) -> Detail {
    Detail::Failed {
        task: child,
        name: None,
        panicked,
    }
}

/// A child in the group.
struct Child<C> {
    fut: C,
    own: Arc<Node<ChildWaker>>,
    /// Its node, as installed while it is polled (moved into the context and back).
    node: Option<Arc<Node>>,
    /// Polled at least once: a child is cancelled only at a suspension point (rule N5).
    polled: bool,
    /// Its waker is registered in its node (invariant 4).
    registered: bool,
    /// Where it was spawned (or started; for a combinator's future, where the
    /// combinator was called): what a cancellation by its failure names.
    site: &'static Location<'static>,
    /// Entered around its polls and its drop (`tracing` feature).
    span: trace::Span,
}

/// The children of an inline nursery, owned by its future: polled without a lock. `O`
/// is what a child returns to the group (its value goes to its handle otherwise, and `O`
/// is `()`).
#[allow(unreachable_pub, missing_debug_implementations)]
pub struct Group<C, O> {
    children: Slab<Child<C>>,
    /// The keys of the round being run, swapped with the ready queue's.
    keys: Vec<u32>,
    /// The keys of children woken on this thread during the last round, for the next.
    local: Vec<u32>,
    /// New children, swapped with the inbox's.
    new: Vec<New<C>>,
    outputs: Vec<O>,
    child_cancelled: bool,
    /// The group's cancellation was swept through the children already.
    swept: bool,
    /// An output that stops the group: the first one cancels the rest (`race`).
    stop: Option<fn(&O) -> bool>,
}

/// Rounds of children polled in one poll of the nursery before it yields to the
/// executor, if children keep waking each other (a group must not starve its task's
/// neighbours, as `FuturesUnordered` yields too).
const ROUNDS: usize = 32;

impl<C, O> Group<C, O> {
    pub(crate) fn new(stop: Option<fn(&O) -> bool>) -> Self {
        Group {
            children: Slab::new(),
            keys: Vec::new(),
            local: Vec::new(),
            new: Vec::new(),
            outputs: Vec::new(),
            child_cancelled: false,
            swept: false,
            stop,
        }
    }

    /// Polls the children that were woken (and the new ones), for up to [`ROUNDS`]
    /// rounds; if work is left, the caller's task is woken to come back.
    fn rounds<E>(&mut self, shared: &Shared<E, C>, cx: &mut Context<'_>)
    where
        C: std::future::Future<Output = Result<O, E>> + Unpin,
    {
        for _ in 0..ROUNDS {
            if !self.round(shared) {
                return;
            }
        }
        // Children keep waking each other: let the executor run others first.
        cx.waker().wake_by_ref();
    }

    /// One round: sweeps a new cancellation of the group through its children, places
    /// the new ones, then polls each woken child once. Whether any child was polled or
    /// dropped.
    fn round<E>(&mut self, shared: &Shared<E, C>) -> bool
    where
        C: std::future::Future<Output = Result<O, E>> + Unpin,
    {
        debug_assert!(self.keys.is_empty() && self.new.is_empty());
        std::mem::swap(&mut *shared.group.ext.keys(), &mut self.keys);
        if !self.local.is_empty() {
            self.keys.append(&mut self.local);
        }
        {
            let mut inbox = shared.lock();
            if !inbox.new.is_empty() {
                std::mem::swap(&mut inbox.new, &mut self.new);
            }
        }
        let mut any = false;
        // The nursery's cancellation, read once a round (its node is in its parent's
        // list, so its own flag follows its ancestors'), and again after a child that
        // may have cancelled it: what a child's own flag does not say of it.
        let mut group_cancelled = shared.node.is_cancelled();
        if !self.swept && group_cancelled {
            self.swept = true;
            any = self.sweep(shared);
        }
        for New {
            fut,
            own,
            polled,
            site,
            span,
        } in self.new.drain(..)
        {
            let entry = self.children.vacant_entry();
            let key = u32::try_from(entry.key())
                .ok()
                .filter(|&k| k != UNPLACED)
                .expect("hatchery: more than 4 billion children in one inline nursery");
            own.ext.key.store(key, Ordering::Release);
            let node: Arc<Node> = own.clone();
            entry.insert(Child {
                fut,
                own,
                node: Some(node),
                polled,
                registered: false,
                site,
                span,
            });
            self.keys.push(key);
        }
        if self.keys.is_empty() {
            return any;
        }
        let mut keys = std::mem::take(&mut self.keys);
        // Children woken on this thread during the round queue themselves here, with
        // no lock (see `LOCAL`); an inner group's round keeps its own meanwhile.
        let mut local = LocalRound::enter(&shared.node, std::mem::take(&mut self.local));
        context::with_row(&shared.rt, |children| {
            for key in keys.drain(..) {
                let Some(child) = self.children.get_mut(key as usize) else {
                    continue;
                };
                // Invariant 3.
                if !child.own.ext.queued.swap(false, Ordering::AcqRel) {
                    continue;
                }
                if let Some(exit) = poll_child(child, children, group_cancelled) {
                    let child = self.children.remove(key as usize);
                    self.finish(shared, child, exit);
                    group_cancelled |= shared.node.is_marked();
                }
            }
        });
        self.local = local.leave();
        // Kept for the next round, with its capacity.
        self.keys = keys;
        true
    }

    /// Drops a finished or cancelled child's future (invariant 2) and records its end,
    /// cancelling the group on a failure, a panic or a stopping output.
    fn finish<E>(&mut self, shared: &Shared<E, C>, child: Child<C>, exit: Exit<O, E>) {
        {
            let _entered = child.span.enter();
            match &exit {
                Exit::Value(_) => {}
                Exit::Failed(_) => trace::failed_borrowed::<E>(true),
                Exit::Panicked(p) => trace::panicked(&**p, true),
                Exit::Cancelled => trace::cancelled(&*child.own, None),
            }
        }
        let site = Some(child.site);
        match (
            end(child, matches!(exit, Exit::Cancelled), &shared.rt),
            exit,
        ) {
            (Err(p), _) | (Ok(()), Exit::Panicked(p)) => shared.panicked(p, site),
            (Ok(()), Exit::Value(o)) => {
                if self.stop.is_some_and(|stop| stop(&o)) {
                    shared
                        .node
                        .cancel_with(Reason::Nursery, race_won(shared.at));
                }
                self.outputs.push(o);
            }
            (Ok(()), Exit::Failed(e)) => shared.fail(e, site),
            (Ok(()), Exit::Cancelled) => self.child_cancelled = true,
        }
    }

    /// The group's cancellation reached its children: each one's flag is brought up to
    /// date (so that a hold released later wakes it), those polled already and holding
    /// nothing are dropped, the others are queued to see it. Whether any was dropped.
    fn sweep<E>(&mut self, shared: &Shared<E, C>) -> bool {
        let mut gone = Vec::new();
        for (key, child) in self.children.iter() {
            let droppable = child.own.refresh_should_drop();
            if child.polled && droppable {
                gone.push(key);
            } else if child.polled && !child.own.ext.queued.swap(true, Ordering::AcqRel) {
                self.keys.push(key as u32);
            }
        }
        let any = !gone.is_empty();
        for key in gone {
            let child = self.children.remove(key);
            self.finish(shared, child, Exit::Cancelled);
        }
        any
    }

    /// Closes the group if no child is left (nor a pending `start`): its record then
    /// goes to the caller.
    pub(crate) fn try_close<E>(&mut self, shared: &Shared<E, C>) -> Option<Closed<E, Vec<O>>> {
        if !self.children.is_empty() {
            return None;
        }
        let mut inbox = shared.lock();
        if inbox.closed || !inbox.new.is_empty() || inbox.starting != 0 {
            return None;
        }
        inbox.closed = true;
        Some(Closed {
            record: inbox.record.take(),
            outputs: std::mem::take(&mut self.outputs),
            child_cancelled: self.child_cancelled,
        })
    }

    /// Closes the group and drops every child at once, each in its own context: the
    /// nursery future is dropped from outside hatchery (C8). The first panic of their
    /// destructors is returned.
    pub(crate) fn abort<E>(&mut self, shared: &Shared<E, C>) -> Option<Panic> {
        let new = {
            let mut inbox = shared.lock();
            inbox.closed = true;
            std::mem::take(&mut inbox.new)
        };
        let mut first = None;
        for (_, child) in std::mem::take(&mut self.children) {
            if let Err(p) = end(child, false, &shared.rt) {
                first.get_or_insert(p);
            }
        }
        for New { fut, own, .. } in new.into_iter().chain(self.new.drain(..)) {
            if let Err(p) = drop_caught(fut) {
                first.get_or_insert(p);
            }
            if own.is_linked() {
                own.detach();
            }
            own.finish();
        }
        first
    }
}

/// Polls one child in its own context: `None` if it is still running. `group_cancelled`
/// says whether its nursery is: a child is cancelled in effect if its own flag is set or
/// its nursery is (its node is a task root under the nursery's, and the nursery's node
/// is in its parent's list), which spares a walk up the tree per poll.
fn poll_child<C, O, E>(
    child: &mut Child<C>,
    children: &Row<'_>,
    group_cancelled: bool,
) -> Option<Exit<O, E>>
where
    C: std::future::Future<Output = Result<O, E>> + Unpin,
{
    let own = &child.own;
    let should_drop = || (group_cancelled || own.is_marked()) && !own.has_holds();
    if child.polled && should_drop() {
        return Some(Exit::Cancelled);
    }
    child.polled = true;
    let _entered = child.span.enter();
    let was_marked = own.is_marked();
    let fut = &mut child.fut;
    // The node is the waker: made here by reference, with no reference count (one is
    // taken only where it is kept, as by its registration below).
    let waker = waker_ref(own);
    let waker: &Waker = &waker;
    let mut cx = Context::from_waker(waker);
    let polled = catch_unwind(AssertUnwindSafe(|| {
        children.poll(&mut child.node, waker, || Pin::new(fut).poll(&mut cx))
    }));
    match polled {
        Ok(Poll::Pending) => {
            // The node keeps the child's waker only while something inside holds, or once
            // it is marked (and then on every suspension: a cancellation takes the waker
            // out): the release of a hold that takes a marked node to none wakes its
            // runner. A cancellation of the node itself is the handle's, which wakes the
            // child ([`cancel_child`]), or the group's, which reaches it through the
            // group's own wake-up (the sweep). A cancellation from here on wakes the child,
            // and one that came earlier is seen just below.
            if own.is_marked() || own.has_holds() {
                own.register(waker);
                child.registered = true;
            }
            if should_drop() {
                return Some(Exit::Cancelled);
            }
            if !was_marked && own.is_marked() {
                // Cancelled during this poll with something inside that must finish
                // first: poll again, so that the scopes in it see the cancellation.
                waker.wake_by_ref();
            }
            None
        }
        Ok(Poll::Ready(Ok(o))) => Some(Exit::Value(o)),
        Ok(Poll::Ready(Err(e))) => Some(Exit::Failed(e)),
        Err(p) => Some(Exit::Panicked(p)),
    }
}

/// Drops a child's future (in its own context if it was cancelled at a suspension point,
/// so that its destructors can read the clock or spawn) and takes its node out of the
/// tree. The panic of its destructor, if any.
fn end<C>(child: Child<C>, cancelled: bool, rt: &Arc<dyn Runtime>) -> Result<(), Panic> {
    let Child {
        fut,
        own,
        mut node,
        registered,
        span,
        ..
    } = child;
    // Its destructors run in its span.
    let _entered = span.enter();
    let waker = waker_ref(&own);
    let dropped = match cancelled {
        true => context::drop_cancelled(&mut node, rt, &waker, || drop_caught(fut)),
        false => drop_caught(fut),
    };
    if own.is_linked() {
        own.detach();
    }
    own.finish();
    if registered {
        // Invariant 4.
        own.forget_waker();
    }
    dropped
}
