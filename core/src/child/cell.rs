//! The one child cell, and the one place of `unsafe` for children: a child of any kind
//! is one allocation, `Arc<Node<Cell<B, S>>>`, holding its cancel node, the part its
//! handle reads (its output, its label), what its kind keeps there (`S`, [`Sched`]), and
//! its run state (its future, then nothing), which only its owner reaches.
//!
//! The owner is the one [`RawTask`] made for the allocation: a spawned child's is held by
//! the executor (a local child's by the thread's local executor, in a `LocalTask`), a
//! polled child's by its group, which polls it in its own task; either
//! way the driver (`child::run`) polls and ends the child, and the kinds differ only in
//! who holds the `RawTask` and in what `S` keeps (the executor's handle to the task,
//! [`KeepSlot`]; or where to queue the child when it is woken, [`Queued`]). This is
//! async-task's shape: one raw task behind `spawn`, `spawn_local` and `spawn_unchecked`,
//! the bounds on the future a matter of the constructor ([`spawn`], [`spawn_local`],
//! [`polled`]).
//!
//! # Why this is sound
//!
//! * **Exclusive access.** The run state is reached only through the [`Run`] methods of
//!   the allocation, and only its [`RawTask`] calls them. [`spawn`] and [`polled`] make
//!   the allocation and, for it, one `Arc<dyn Run>`, which they move into one `RawTask`;
//!   the seam's `RawTask` is not `Clone`, never lets its `Arc` out, and calls
//!   [`Run::poll_run`] through `&mut self` and [`Run::drop_run`] once, in its `Drop`. So
//!   accesses never overlap, on any thread. Everybody else holding the allocation
//!   (handles, the tree, wakers, the executor's [`Keeper`](crate::rt::Keep)) holds it as
//!   another trait object (`Node`, `dyn Part<_>`, `dyn Keep`), which reaches the node,
//!   the body's shared part and `S`, never the run state.
//! * **Pinning.** The run state lives inside the `Arc`'s allocation, which never moves,
//!   and it is dropped in place when the allocation is freed. So the state may be
//!   handed out as `Pin<&mut State>`.
//! * **The future ends before its owner's reference goes.** The driver drops a child's
//!   future when the child ends, and the owner's `drop_run` ends a child that had not
//!   ended (rule C8); so when the last reference frees the allocation, the run state's
//!   future is gone already, or was never dropped because its owner was leaked (then
//!   neither is the allocation: the leaked `Arc` keeps it).
//! * **Borrowed children (`polled`).** A polled child's future and value may borrow for
//!   `'env`, and the allocation is erased to `'static` trait objects (its node to the
//!   tree, `dyn Run` to its group, `dyn Part` to its handle): only the bound on the trait
//!   object changes (the same pointer and vtable). Nothing reaches the future after
//!   `'env`: its owner, the group, ends it before the group ends, and never if the group
//!   is leaked (previous point). A value reaches the output only for a handle, which
//!   names `T` and so lives within `'env`, and leaves it to that handle or is dropped by
//!   the child when the handle is gone (handle invariant 1); a leaked handle leaks the
//!   allocation. So a reference that outlives `'env` (a scope node inside the child,
//!   kept elsewhere, holds the child's node as its parent) frees an allocation whose
//!   future and value are gone: nothing of `'env` is touched.
//! * **Threads.** The cell is `Send` and `Sync` whatever its future and value: a shared
//!   reference reaches the output (a `T` only under the node's lock, and only for a
//!   handle, which is `Send` when `T` is: `PartRef`), the label, `S` (atomics, a keep
//!   slot written once) and the node; the run state only through the owner, whose
//!   `RawTask` moves between threads only when the constructor allowed it: [`spawn`]
//!   takes `Send` futures and values, [`spawn_local`] hands its `RawTask` to the local
//!   executor inside a `LocalTask`, which is not `Send` (so polled and dropped on the
//!   thread that spawned it), [`polled`] hands its `RawTask` to a group whose
//!   future is `Send` only when its kind of children is (`kind::polled`). The last
//!   reference may free the allocation on any thread: by then no future or value is left
//!   in it (previous points).
//!
//! The driver installs the child's node as the current one for each of its polls (the
//! thread's context holds an `Arc<Node>` for it, `crate::context`). That `Arc` is not a
//! reference of its own, kept in the run state (16 bytes of every child, and a cycle to
//! break when the child ends): it is the [`RawTask`]'s, lent for the call ([`Own`]).
//!
//! * **Made from the `RawTask`'s `Arc`.** [`Run::poll_run`] and [`Run::drop_run`] get a
//!   [`Lend`], which only the `RawTask` makes, of the `Arc<dyn Run>` it holds and calls
//!   through: its address ([`Arc::as_ptr`], which keeps the provenance of the whole
//!   allocation, counts included) is that of this `Node<Cell<B, S>>` (checked), so
//!   `Arc::from_raw` of it is an `Arc` of this allocation, made without a count of its
//!   own. The `RawTask` is borrowed for the whole call, so its count keeps the allocation
//!   alive while the lent `Arc` exists.
//! * **Given back, never dropped.** The lent `Arc` stays in [`Own`], which the call owns
//!   on its stack, or in the thread's context while the call has installed it there:
//!   the context's contract is that a runner's poll swaps the node into the thread-local
//!   and back when the poll returns or unwinds, and that everything installed inside it
//!   is swapped back in turn, so what comes back is what went in. Code in the child
//!   reads it or clones it, and a clone is a counted reference like any other. When the
//!   call ends, `Own`'s `Drop` forgets the `Arc` in its slot (debug builds check it is of
//!   this allocation first: the counts balance).
//! * **The count tells who else holds the child.** Without a reference of its own, the
//!   driver's end reads a strong count of 1 as "the `RawTask` alone".
//!
//! Three more small pieces of the cell live here for the same reason, each with its
//! argument beside it: the slot that keeps the executor's handle to a spawned task
//! ([`KeepSlot`]), the output's result slot guarded by the child's node's lock
//! ([`Output::with_slot`]), and the one-word label ([`Label`]).

use std::any::TypeId;
use std::borrow::Cow;
use std::cell::UnsafeCell;
use std::mem::{align_of, size_of, MaybeUninit};
use std::panic::Location;
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Instant;

use crate::error::JoinError;
use crate::group::{Ready, Who, UNPLACED};
use crate::node::sync::{AtomicBool, AtomicU32, Ordering};
use crate::node::{Detail, KeepBits, Kind, Labelled, MovableLink, Node, Reason, Tag};
use crate::seam::{Handoff, Keep, Lend, LocalRuntime, LocalTask, RawTask, Run, Runtime, Task};
use crate::timer::runtime_id;

pub(super) use self::slot_sync::ValueCell;

#[cfg(all(test, hatchery_loom))]
mod loom;
#[cfg(all(test, not(hatchery_loom)))]
mod tests;

/// For the slot's tests and loom model: a child's node with its slot, as its allocation
/// has them (the slot in the ext).
#[cfg(test)]
struct Kept(KeepSlot);

#[cfg(test)]
impl Kept {
    /// A child's root with an empty slot, to be put in an `Arc` (the standard one, or
    /// loom's).
    fn root() -> Node<Kept> {
        Node::with_ext(false, true, Kept(KeepSlot::default()))
    }
}

#[cfg(test)]
impl Tag for Kept {
    fn drop_kept(&mut self, boxed: bool) {
        self.0.drop_kept(boxed);
    }
}

/// A child's allocation, besides its node: the shared part of the child `B` (its output,
/// its label, its parent link if `start` may move it), what its kind keeps `S`, and its
/// run state (the `RawTask`'s alone). See the [module docs](self).
pub(crate) struct Cell<B: Body, S> {
    body: B,
    sched: S,
    state: UnsafeCell<B::State>,
}

// SAFETY: `&Cell` gives shared access to `body` and `sched`, and none to `state` but
// through `Run`, which only the unique `RawTask` calls; what `body` shares of a value is
// the output's, reached under the node's lock by a handle that is `Send` only for a
// `Send` value. The constructors confine what is not `Send` to its thread (module docs).
unsafe impl<B: Body, S> Send for Cell<B, S> {}
// SAFETY: as for `Send`.
unsafe impl<B: Body, S> Sync for Cell<B, S> {}

/// The driver's part of a child: what the owner polls, given exclusive, pinned access to
/// the run state (`child::run` implements it, once for every kind).
pub(crate) trait Body {
    /// What only the owner touches.
    type State;

    /// What a handle of the child reaches of the body (its output).
    type Part;

    fn part(&self) -> &Self::Part;

    /// What the child is called (for the task tree and its failure's cancel reason).
    fn label(&self) -> &Label;

    /// The child's parent link if `start` may move it (see [`Tag::movable_link`]).
    fn movable_link(&self) -> Option<&MovableLink>;

    /// Polls the child of kind `S` (whose part of the cell is `sched`), for the `first`
    /// time or not, with `waker` (the executor's, or its own). `node` is the node this
    /// body lives in, and `own` the same allocation as an `Arc`, lent for the call (see
    /// [`Own`]).
    fn poll<S: Sched>(
        &self,
        node: &Node,
        own: &mut Own,
        first: bool,
        waker: &Waker,
        state: Pin<&mut Self::State>,
        sched: &S,
    ) -> Poll<()>;

    /// The owner let go of the child before it finished (an executor that shut down, a
    /// group dropped from outside): not called once the driver's end has marked the node
    /// finished ([`Node::finish`]).
    fn abort<S: Sched>(&self, node: &Node, own: &mut Own, state: Pin<&mut Self::State>);
}

/// What a kind keeps in its children's cells, and how it runs them: what is written
/// once for each kind of children ([`NoKeep`] and [`KeepSlot`] for tasks of the
/// executor, [`Queued`] for children a group polls).
pub(crate) trait Sched: Send + Sync + Sized {
    /// Whether the executor polls the child: its waker is the executor's, and it owns
    /// its task's deadlines (`crate::timer`). Otherwise its group's task polls it, with a
    /// waker of its own ([`Sched::waker`]).
    const SPAWNED: bool;

    /// Whether it keeps the executor's handle to the task ([`KeepSlot`]).
    const KEEPS: bool = false;

    /// The executor's handle to the task, moved in to be kept, if this keeps one and none
    /// is kept yet (`bits`, its node's, say); left there otherwise (for its owner to drop).
    fn keep(&self, _bits: KeepBits<'_>, _handle: &mut dyn Handoff) {}

    /// Drops the value kept (in a box of its own if `boxed`), its node having said there
    /// is one (`Tag::drop_kept`).
    fn drop_kept(&mut self, _boxed: bool) {}

    /// A polled child was woken: queue it with its group.
    fn wake(&self) {}

    /// The child, whose node is `node`, is about to be polled: `None` if it is not to be
    /// (a polled child not queued: a stale key), else whether this is its first poll.
    #[inline(always)]
    fn polling(&self, node: &Node) -> Option<bool> {
        // A task is linked into its parent's list within its first poll (when it first
        // suspends, or earlier): one that never was has not been polled.
        Some(node.never_linked())
    }

    /// A polled child that suspends was woken again meanwhile (its own poll, or a
    /// sibling's, queued it): it is polled again soon, so it need not wait in its
    /// parent's list nor keep its waker in its node. Never for a task of the executor.
    #[inline(always)]
    fn requeued(&self) -> bool {
        false
    }
}

/// A child's own allocation as an `Arc<Node>`, lent by its [`RawTask`] for one call of
/// the driver: to install as the current node of the child's context
/// ([`slot`](Own::slot)), to read ([`get`](Own::get)), or to clone. Never dropped:
/// forgotten when the call ends (see the [module docs](self)).
pub(crate) struct Own {
    /// The lent `Arc`; `None` only while the context holds it (during a poll).
    node: Option<Arc<Node>>,

    /// The allocation's address, to check what comes back (debug builds).
    #[cfg(debug_assertions)]
    at: *const (),
}

impl Own {
    /// The `Arc` of `this`, lent from the `RawTask` whose `lend` this is.
    ///
    /// # Panics
    ///
    /// If `lend` is not of `this` allocation.
    #[inline(always)]
    fn lend<B: Body, S: Sched>(lend: Lend<'_>, this: &Node<Cell<B, S>>) -> Own {
        let at = lend.as_ptr();
        assert!(
            ptr::eq(at, ptr::from_ref(this).cast::<()>()),
            "hatchery: internal error: a child lent another's allocation"
        );
        // SAFETY: `at` is `Arc::as_ptr` of the `RawTask`'s `Arc<dyn Run>`, which is an
        // `Arc<Node<Cell<B, S>>>` of this very allocation (checked): an `Arc` of it
        // without a count of its own, which `Own` never drops. The `RawTask` is borrowed
        // for the call, so its count keeps the allocation alive (module docs).
        let node = unsafe { erase(Arc::from_raw(at.cast::<Node<Cell<B, S>>>())) };
        Own {
            node: Some(node),
            #[cfg(debug_assertions)]
            at,
        }
    }

    /// Where the lent `Arc` is, for the context to swap it in and back out.
    #[inline(always)]
    pub(crate) fn slot(&mut self) -> &mut Option<Arc<Node>> {
        &mut self.node
    }

    /// The lent `Arc` (outside the context's poll, where it is here).
    #[inline(always)]
    pub(crate) fn get(&self) -> &Arc<Node> {
        self.node
            .as_ref()
            .expect("hatchery: internal error: the child's node is lent out")
    }
}

impl Drop for Own {
    #[inline(always)]
    fn drop(&mut self) {
        // The context's contract (module docs), checked in debug builds, where every poll
        // of the test suite checks it.
        #[cfg(debug_assertions)]
        assert!(
            self.node
                .as_ref()
                .is_some_and(|node| ptr::eq(Arc::as_ptr(node).cast::<()>(), self.at)),
            "hatchery: internal error: a child's context did not give back its node"
        );
        std::mem::forget(self.node.take());
    }
}

/// The allocation of a child as the tree sees it: `Arc<Node>`, its ext erased to `dyn
/// Tag + 'static` (module docs: a polled child's borrows are not reached through it).
#[inline(always)]
fn erase<B: Body, S: Sched>(cell: Arc<Node<Cell<B, S>>>) -> Arc<Node> {
    let node: Arc<Node<dyn Tag + '_>> = cell;
    // SAFETY: only the bound on the trait object changes (the same pointer and vtable);
    // nothing of `'env` is reached through a node (module docs, "borrowed children").
    unsafe { std::mem::transmute::<Arc<Node<dyn Tag + '_>>, Arc<Node>>(node) }
}

/// The allocation as its owner holds it: `dyn Run + 'static` (as for [`erase`]).
#[inline(always)]
fn owner<B: Body, S: Sched>(cell: Arc<Node<Cell<B, S>>>) -> RawTask {
    let run: Arc<dyn Run + '_> = cell;
    // SAFETY: as for `erase`: the owner ends the future before 'env ends (module docs).
    RawTask::new(unsafe { std::mem::transmute::<Arc<dyn Run + '_>, Arc<dyn Run>>(run) })
}

/// A child as its handle holds it: the part `P` of it that the handle reads (its output),
/// and its node.
///
/// # Safety
///
/// An implementor is `Send` and `Sync` whenever `P` is: a handle reaches nothing of it
/// but `P` and the node, and dropping the last reference drops nothing that is not (a
/// child's future is dropped by its owner, never through this). [`PartRef`] relies on it.
pub(crate) unsafe trait Part<P> {
    /// What the handle reads.
    fn part(&self) -> &P;

    /// The child's node.
    fn node(&self) -> &Node;

    /// What the handle reads and the child's node, in one call. `node` is the node of
    /// the child whose part `part` is, always the same one: its lock guards the result
    /// slot in the part (handle invariant 4).
    #[inline]
    fn with_node(&self) -> (&P, &Node) {
        (self.part(), self.node())
    }

    /// Cancels the child from its handle, with `detail`, and makes sure it sees it (a
    /// polled child that waits is woken by its node's registered waker, as a task is).
    fn cancel(&self, detail: Detail) {
        self.node().cancel_with(Reason::Explicit, detail);
    }
}

// SAFETY: the cell is `Send` and `Sync` (its run state is reached by its owner alone), and
// a handle reaches only the part and the node.
unsafe impl<B: Body, S: Sched> Part<B::Part> for Node<Cell<B, S>> {
    fn part(&self) -> &B::Part {
        self.ext.body.part()
    }

    fn node(&self) -> &Node {
        node_of(self)
    }
}

/// A child's node as the tree sees it (as [`erase`] does for an `Arc`).
#[inline(always)]
fn node_of<B: Body, S: Sched>(cell: &Node<Cell<B, S>>) -> &Node {
    let node: &Node<dyn Tag + '_> = cell;
    // SAFETY: only the bound on the trait object changes, as in `erase`.
    unsafe { std::mem::transmute::<&Node<dyn Tag + '_>, &Node>(node) }
}

/// The waker of a polled child: its node, an `Arc` of this allocation counted as any
/// other (`Arc::increment_strong_count` for a clone, a `drop` of the `Arc` for a waker
/// dropped), woken through its `Tag::wake`, which queues the child with its group. Its
/// data is the allocation's address (as `Arc::into_raw` gives it).
impl<B: Body, S: Sched> Node<Cell<B, S>> {
    const VTABLE: RawWakerVTable = RawWakerVTable::new(
        Self::clone_raw,
        Self::wake_raw,
        Self::wake_by_ref_raw,
        Self::drop_raw,
    );

    // The four functions' contract: `ptr` is the data of a waker made of this
    // allocation, whose count that waker holds (or, for the one made by reference in
    // `poll_run`, the `RawTask` holds for the call).
    unsafe fn clone_raw(ptr: *const ()) -> RawWaker {
        // SAFETY: the contract above: a count is held, and another is taken.
        unsafe { Arc::increment_strong_count(ptr.cast::<Self>()) };
        RawWaker::new(ptr, &Self::VTABLE)
    }

    unsafe fn wake_raw(ptr: *const ()) {
        // SAFETY: the waker's own count, given back as the `Arc` it stands for.
        let this = unsafe { Arc::from_raw(ptr.cast::<Self>()) };
        this.ext.wake();
    }

    unsafe fn wake_by_ref_raw(ptr: *const ()) {
        // SAFETY: a count is held for as long as the waker lives.
        unsafe { (*ptr.cast::<Self>()).ext.wake() };
    }

    unsafe fn drop_raw(ptr: *const ()) {
        // SAFETY: the waker's own count, given back as the `Arc` it stands for.
        drop(unsafe { Arc::from_raw(ptr.cast::<Self>()) });
    }
}

/// A reference to a child, as its handle keeps it: `Send` and `Sync` when its part is,
/// whichever kind of child it is.
pub(crate) struct PartRef<P>(Arc<dyn Part<P>>);

// SAFETY: `Part`'s contract: its implementors are `Send` and `Sync` whenever `P` is.
unsafe impl<P: Send + Sync> Send for PartRef<P> {}
// SAFETY: as for `Send`.
unsafe impl<P: Send + Sync> Sync for PartRef<P> {}

impl<P> PartRef<P> {
    /// The handle's reference to `cell`, erased as [`erase`] does.
    fn of<B: Body<Part = P>, S: Sched>(cell: Arc<Node<Cell<B, S>>>) -> PartRef<P> {
        let part: Arc<dyn Part<P> + '_> = cell;
        // SAFETY: as for `erase`; a handle names `T`, and so lives within `'env`.
        PartRef(unsafe { std::mem::transmute::<Arc<dyn Part<P> + '_>, Arc<dyn Part<P>>>(part) })
    }
}

impl<P> std::ops::Deref for PartRef<P> {
    type Target = dyn Part<P>;

    fn deref(&self) -> &(dyn Part<P> + 'static) {
        &*self.0
    }
}

/// Spawns a child on `rt`, the executor: allocates its cell under `parent` (as [`make`]
/// does) and hands its [`RawTask`] to the executor. The cell has a [`KeepSlot`] for the
/// executor's handle only where `rt` keeps its handles ([`Task::spawn_with`]): 8 bytes
/// that every child would otherwise carry unused on one thread and on smol. Whether it
/// does is learned from the spawns themselves, per thread: a thread's first spawn on a
/// runtime, and the first after one on another runtime, has the slot and tells
/// ([`Keeps`]). A handle offered to a task without the slot is dropped at once, as one
/// offered to a [`Task::from_future`](crate::rt::Task::from_future) is: the executor's
/// task is then freed where it finishes.
#[inline]
pub(crate) fn spawn<B: Body>(
    rt: &Arc<dyn Runtime>,
    parent: &Arc<Node>,
    body: B,
    state: B::State,
    built: Option<impl FnOnce(Arc<Node>)>,
) -> PartRef<B::Part> {
    let id = runtime_id(&**rt);
    match Keeps::of(id) {
        Some(false) => spawn_as::<B, NoKeep>(rt, parent, body, state, built).0,
        keeps => {
            let (part, kept) = spawn_as::<B, KeepSlot>(rt, parent, body, state, built);
            if keeps.is_none() {
                Keeps::learn(id, kept);
            }
            part
        }
    }
}

/// [`spawn`] with the slot `S`; returns, besides, whether the runtime handed a handle
/// over to keep while it spawned.
#[inline]
fn spawn_as<B: Body, S: Sched + Default>(
    rt: &Arc<dyn Runtime>,
    parent: &Arc<Node>,
    body: B,
    state: B::State,
    built: Option<impl FnOnce(Arc<Node>)>,
) -> (PartRef<B::Part>, bool) {
    let cell = alloc(parent, body, S::default(), state, built);
    rt.spawn(Task::raw(owner(cell.clone())));
    // `spawn_with` keeps the handle before the executor's `spawn` returns, on this thread.
    let kept = cell.keep_bits().is_kept();
    (PartRef::of(cell), kept)
}

/// A child that is a task of this thread's local executor, `local` (it need not be
/// `Send`): its cell under `parent` (as [`spawn`] allocates it), whose owner goes to the
/// executor as a [`LocalTask`], polled and dropped on this thread only. It keeps no
/// executor handle.
#[inline]
pub(crate) fn spawn_local<B: Body>(
    local: &dyn LocalRuntime,
    parent: &Arc<Node>,
    body: B,
    state: B::State,
    built: Option<impl FnOnce(Arc<Node>)>,
) -> PartRef<B::Part> {
    let cell = alloc(parent, body, NoKeep, state, built);
    local.spawn_local(LocalTask::raw(owner(cell.clone())));
    PartRef::of(cell)
}

/// A child of a group that polls it itself ([`Queued`] in `ready`, its group's queue):
/// its cell under `parent` (as [`spawn`] allocates it) and its owner, for the group's
/// inbox.
#[inline]
pub(crate) fn polled<B: Body>(
    parent: &Arc<Node>,
    body: B,
    ready: &Arc<Ready>,
    state: B::State,
    built: Option<impl FnOnce(Arc<Node>)>,
) -> (PartRef<B::Part>, RawTask) {
    let cell = alloc(parent, body, Queued::new(ready), state, built);
    (PartRef::of(cell.clone()), owner(cell))
}

/// Allocates a child's cell under `parent`; `built`, if any, is given the allocation as
/// a node before anyone can run the child. Only a child whose body has a movable link
/// ([`Body::movable_link`]) can change its parent later.
#[inline(always)]
fn alloc<B: Body, S: Sched>(
    parent: &Arc<Node>,
    body: B,
    sched: S,
    state: B::State,
    built: Option<impl FnOnce(Arc<Node>)>,
) -> Arc<Node<Cell<B, S>>> {
    let cell = Arc::new(Node::task_root(
        parent,
        Cell {
            body,
            sched,
            state: UnsafeCell::new(state),
        },
    ));
    if let Some(built) = built {
        built(erase(cell.clone()));
    }
    cell
}

/// Whether the runtime last spawned on, on this thread, keeps the executor's handles to
/// its tasks (see [`spawn`]).
struct Keeps;

thread_local! {
    /// The runtime's identity ([`runtime_id`]) and whether it keeps handles; zero: none.
    static KEEPS: std::cell::Cell<(usize, bool)> = const { std::cell::Cell::new((0, true)) };
}

impl Keeps {
    /// Whether the runtime `id` keeps handles, if this thread has learned it.
    #[inline]
    fn of(id: usize) -> Option<bool> {
        KEEPS
            .try_with(|k| {
                let (known, keeps) = k.get();
                (known == id).then_some(keeps)
            })
            .ok()
            .flatten()
    }

    #[cold]
    fn learn(id: usize, keeps: bool) {
        let _ = KEEPS.try_with(|k| k.set((id, keeps)));
    }
}

impl<B: Body, S: Sched> Tag for Cell<B, S> {
    fn label(&self) -> Option<Labelled<'_>> {
        let kind = if S::SPAWNED { Kind::Task } else { Kind::Polled };
        Some(self.body.label().labelled(kind))
    }

    fn movable_link(&self) -> Option<&MovableLink> {
        self.body.movable_link()
    }

    fn drop_kept(&mut self, boxed: bool) {
        self.sched.drop_kept(boxed);
    }

    fn wake(&self) {
        self.sched.wake();
    }
}

impl<B: Body, S: Sched> Run for Node<Cell<B, S>> {
    #[inline]
    fn poll_run(&self, lend: Lend<'_>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(first) = self.ext.sched.polling(node_of(self)) else {
            return Poll::Pending;
        };
        let mut own = Own::lend(lend, self);
        // SAFETY: our caller is the unique `RawTask` of this allocation (module docs),
        // borrowed mutably for the whole call.
        let state = unsafe { Pin::new_unchecked(&mut *self.ext.state.get()) };
        let (body, sched) = (&self.ext.body, &self.ext.sched);
        if S::SPAWNED {
            return body.poll(node_of(self), &mut own, first, cx.waker(), state, sched);
        }
        // A polled child's waker is its node, made here by reference, with no count (one
        // is taken only where it is kept, as by its registration). Its data is the lent
        // address, whose provenance covers the whole allocation, counts included (not
        // `self`'s, which covers the node alone: a clone's count would be out of its
        // reach).
        let ptr = lend.as_ptr();
        // SAFETY: the waker's data is this allocation, whose `RawTask` keeps it alive for
        // the call; the vtable is this cell's, which counts and frees it as an `Arc`.
        let waker = std::mem::ManuallyDrop::new(unsafe {
            Waker::from_raw(RawWaker::new(ptr, &Self::VTABLE))
        });
        body.poll(node_of(self), &mut own, first, &waker, state, sched)
    }

    #[inline]
    fn drop_run(&self, lend: Lend<'_>) {
        // A child that has finished has nothing left to abort: the driver's end marks the
        // node finished as its last step on the child's state (`Node::finish`, which
        // nothing else calls on a child's root), after it took the future and the group.
        // Read with acquire: the owner drops its task after the poll that ended it, on
        // that thread or after handing the task over.
        if self.is_finished() {
            return;
        }
        let mut own = Own::lend(lend, self);
        // SAFETY: as in `poll_run`.
        let state = unsafe { Pin::new_unchecked(&mut *self.ext.state.get()) };
        self.ext.body.abort::<S>(node_of(self), &mut own, state)
    }

    fn keeper(self: Arc<Self>) -> Option<Arc<dyn Keep>> {
        // A child without the slot keeps nothing: no reference made for it.
        if !S::KEEPS {
            return None;
        }
        let keep: Arc<dyn Keep + '_> = self;
        // SAFETY: only spawned children, `'static`, have a keep slot.
        Some(unsafe { std::mem::transmute::<Arc<dyn Keep + '_>, Arc<dyn Keep>>(keep) })
    }
}

impl<B: Body, S: Sched> Keep for Node<Cell<B, S>> {
    fn keep(&self, handle: &mut dyn Handoff) {
        self.ext.sched.keep(self.keep_bits(), handle);
    }
}

/// A spawned child without room for the executor's handle: a handle offered is left to
/// its owner, who drops it at once.
#[derive(Default)]
pub(crate) struct NoKeep;

impl Sched for NoKeep {
    const SPAWNED: bool = true;
}

/// The storage of a kept value: one word (a `Box` fits).
type Word = MaybeUninit<usize>;

/// A value's destructor: `ptr::drop_in_place` of its type, called with its address.
type DropFn = unsafe fn(*mut u8);

/// The one type of handle kept in place in this process, and its destructor: the type of
/// the first handle kept (a `tokio::task::JoinHandle<()>`, from the one adapter that keeps
/// handles). A handle of another type is kept in a box with its destructor ([`Boxed`]).
/// Set once, never changed.
static IN_PLACE: OnceLock<(TypeId, DropFn)> = OnceLock::new();

/// A handle of another type than the one kept in place ([`IN_PLACE`]), in a box of its
/// own with its destructor: the slot keeps the box's pointer.
struct Boxed {
    drop: DropFn,
    value: Word,
}

impl Drop for Boxed {
    fn drop(&mut self) {
        // SAFETY: `value` holds the bytes of a value moved in by `KeepSlot::keep`, whose
        // destructor `drop` is (`Handoff`'s, as for the value in place); it is dropped
        // once, here, with the box.
        unsafe { (self.drop)(self.value.as_mut_ptr().cast::<u8>()) }
    }
}

/// The slot of a spawned child's cell that keeps the executor's handle to it, so that
/// the executor's allocation is freed where hatchery frees its own, usually on the
/// nursery's thread, which allocated both. The handle comes type-erased through the
/// seam's [`Handoff`] (whose only implementation, for `Option<H>`, reports `H`'s layout,
/// the address of the value and `ptr::drop_in_place::<H>`), into one word:
///
/// * **One writer.** Whoever first claims the slot through its node's bits
///   ([`KeepBits::claim`]: one read-modify-write of the child root's byte) moves the
///   value in (copies its bytes, then has the `Handoff` forget it), then publishes it
///   ([`KeepBits::kept`], release). A loser leaves the value in its `Handoff`, whose
///   owner drops it. So the value is written once, by one thread.
/// * **Read only in the node's drop.** Nothing reads the value through `&KeepSlot`; the
///   node's drop has exclusive access, after every `Arc` to the cell is gone, and drops
///   the value only if it finds it published (`Tag::drop_kept`). The writer holds an
///   `Arc` while it writes, so the write happens before the drop.
/// * **Layout.** The seam boxes a value that does not fit the slot; the box does. The
///   slot checks the layout again before it writes.
/// * **The destructor.** One type of handle is kept in place per process, the first
///   kept's ([`IN_PLACE`], set once), its destructor noted there once; a handle of
///   another type goes into a box with its own ([`Boxed`]), whose pointer the slot keeps,
///   and the node's bits say which (`KEPT` or `KEPT_BOXED`). The destructor is
///   `ptr::drop_in_place::<H>` for the `H` whose bytes were moved in, called with their
///   address as `*mut u8`: raw pointers to sized types are ABI-compatible, so this is
///   the call `drop_in_place::<H>(slot as *mut H)`.
pub(crate) struct KeepSlot {
    value: ValueCell<Word>,
}

// SAFETY: `&KeepSlot` lets one thread write the value once (the claim of its node's bits
// picks it) and nobody read it. (The value is `Send`, by the bound of `Handoff`'s
// implementation, and is dropped, with exclusive access, wherever the allocation goes.)
unsafe impl Sync for KeepSlot {}

impl Default for KeepSlot {
    fn default() -> KeepSlot {
        KeepSlot {
            value: ValueCell::new(MaybeUninit::uninit()),
        }
    }
}

impl Sched for KeepSlot {
    const SPAWNED: bool = true;
    const KEEPS: bool = true;

    /// Moves the value out of `handle` if the slot is empty (in place if it is of the one
    /// type kept so, in a box otherwise); leaves it there otherwise.
    fn keep(&self, bits: KeepBits<'_>, handle: &mut dyn Handoff) {
        let layout = handle.layout();
        // The seam boxes what does not fit.
        assert!(layout.size() <= size_of::<Word>() && layout.align() <= align_of::<Word>());
        let Some(src) = handle.as_ptr() else {
            return;
        };
        // SAFETY: `Handoff::drop_fn` is the address of `ptr::drop_in_place::<H>` for the
        // value's type, which takes `*mut H`, ABI-compatible with `*mut u8`.
        let drop = unsafe { std::mem::transmute::<*const (), DropFn>(handle.drop_fn()) };
        let (id, _) = *IN_PLACE.get_or_init(|| (handle.type_id(), drop));
        let in_place = id == handle.type_id();
        if !bits.claim() {
            return;
        }
        let copy = |to: *mut u8| {
            // SAFETY: `src` is the address of a live value of `layout`, which fits `to`, a
            // slot's word (asserted above); the claim made this the one writer, and
            // nobody reads the value before the node's drop. The value is forgotten where
            // it was right after, so it is moved, not copied.
            unsafe { ptr::copy_nonoverlapping(src.cast_const(), to, layout.size()) }
        };
        if in_place {
            self.value.with_mut(|value| copy(value.cast::<u8>()));
        } else {
            let mut boxed = Box::new(Boxed {
                drop,
                value: MaybeUninit::uninit(),
            });
            copy(boxed.value.as_mut_ptr().cast::<u8>());
            let at = Box::into_raw(boxed);
            // SAFETY: as above: the one writer, read by nobody before the node's drop. The
            // pointer is written as a pointer (a word, as the slot is), keeping its
            // provenance.
            self.value
                .with_mut(|value| unsafe { value.cast::<*mut Boxed>().write(at) });
        }
        handle.forget();
        bits.kept(!in_place);
    }

    fn drop_kept(&mut self, boxed: bool) {
        self.value.with_mut(|value| {
            if boxed {
                // SAFETY: the node said the slot holds a box's pointer (`KEPT_BOXED`,
                // published after `keep` wrote it): made by `Box::into_raw`, taken once.
                drop(unsafe { Box::from_raw(value.cast::<*mut Boxed>().read()) });
                return;
            }
            let (_, drop) = *IN_PLACE
                .get()
                .expect("a value kept in place has its type's destructor");
            // SAFETY: the node said the slot holds a value in place (`KEPT`, published
            // after the value was moved in), which `keep` kept in place only if its type
            // was `IN_PLACE`'s, set once and never changed: `drop` is that type's
            // `ptr::drop_in_place`. We have exclusive access (the node's drop).
            unsafe { drop(value.cast::<u8>()) }
        });
    }
}

/// What a polled child keeps: its key in its group, whether it is queued there, and the
/// group's queue ([`Ready`]), where its waker (its node) puts its key.
pub(crate) struct Queued {
    key: AtomicU32,
    /// In the ready queue, or about to be polled (as a new child) already.
    queued: AtomicBool,
    ready: Arc<Ready>,
}

impl Queued {
    /// A new child of the group whose queue is `ready`: born queued (its group polls it
    /// once it places it).
    pub(crate) fn new(ready: &Arc<Ready>) -> Queued {
        Queued {
            key: AtomicU32::new(UNPLACED),
            queued: AtomicBool::new(true),
            ready: ready.clone(),
        }
    }
}

impl Sched for Queued {
    const SPAWNED: bool = false;

    #[inline]
    fn wake(&self) {
        self.ready.wake(&self.key, &self.queued);
    }

    #[inline]
    fn polling(&self, _: &Node) -> Option<bool> {
        self.ready.polling(&self.key, &self.queued)
    }

    #[inline]
    fn requeued(&self) -> bool {
        self.queued.load(Ordering::Acquire)
    }
}

/// What a child shares with its handle: how it ended, and what it is called. The result
/// slot's protocol is `child::handle`'s ([`Output`]'s invariants there); the slot is
/// reached only through [`with_slot`](Output::with_slot), under the child's node's lock.
pub(crate) struct Output<T> {
    /// Guarded by the child's node's lock (handle invariant 4).
    result: ValueCell<Slot<T>>,
    label: Label,
}

// SAFETY: as a `Mutex<Slot<T>>` beside the label is: the slot is reached only under the
// lock of the child's node (handle invariant 4), so sharing an output shares a `T` only as
// a mutex would (`T: Send`).
unsafe impl<T: Send> Sync for Output<T> {}

impl<T> Output<T> {
    /// The output of a child that is still running, called `label`.
    pub(crate) fn new(label: Label) -> Output<T> {
        Output {
            result: ValueCell::new(Slot::running()),
            label,
        }
    }

    /// What the child is called.
    pub(crate) fn label(&self) -> &Label {
        &self.label
    }

    /// Runs `f` on the slot, under the lock of `node`, the child's (handle invariant 4);
    /// for the child's end (`ending`), takes out the waker the child registered last on
    /// its node in the same locked step, to be dropped after the lock.
    #[inline]
    pub(super) fn with_slot<R>(
        &self,
        node: &Node,
        ending: bool,
        f: impl FnOnce(&mut Slot<T>) -> R,
    ) -> (R, Option<Waker>) {
        let reach = || {
            self.result.with_mut(|slot| {
                // SAFETY: handle invariant 4: the lock of the child's node is held, and no
                // other reference to the slot lives outside `f`.
                f(unsafe { &mut *slot })
            })
        };
        match ending {
            true => node.with_lock_ending(reach),
            false => (node.with_lock(reach), None),
        }
    }
}

/// What a [`ValueCell`] is made of: the standard cell, or loom's under `--cfg
/// hatchery_loom`, whose models of the slots check every interleaving.
#[cfg(not(all(test, hatchery_loom)))]
mod slot_sync {
    /// A slot's value: an `UnsafeCell`, reached as loom's is.
    pub(crate) struct ValueCell<T>(std::cell::UnsafeCell<T>);

    impl<T> ValueCell<T> {
        pub(crate) fn new(value: T) -> ValueCell<T> {
            ValueCell(std::cell::UnsafeCell::new(value))
        }

        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(all(test, hatchery_loom))]
mod slot_sync {
    pub(crate) use loom::cell::UnsafeCell as ValueCell;
}

/// What a child, a nursery or a scope is called: where it was made (`#[track_caller]`),
/// and the name it was given, if any, in one word. Every child's allocation holds one,
/// and names are rare (`spawn_named`), so an unnamed label is the `&'static Location`
/// alone (8 bytes, where a location and a boxed name beside it took 16), and a named one
/// a box holding both.
///
/// The word is a pointer, told apart by its lowest bit (a tagged pointer, with the
/// provenance of what it points to: tagged and untagged with `map_addr`):
///
/// * **Clear: a location.** The `&'static Location<'static>` the label was made with, as
///   a pointer. A `Location` is aligned to more than one byte (checked at compile time
///   below), so the bit of a real one is clear. It is read back as the shared reference
///   it was, for `'static`.
/// * **Set: a box.** The pointer of a `Box<Named>` ([`Box::into_raw`]) with the bit set; a
///   `Named` is aligned to 8, so the bit was clear before. Cleared, it is the box's
///   pointer again. The label owns the box: nothing else has its pointer, it is read
///   only through `&self`, and `Drop`, with exclusive access, gives it back once.
/// * **Threads.** A label is a `&'static Location` or an owned `Box<Named>`, both `Send`
///   and `Sync`, read only through `&self`: so is the label.
pub(crate) struct Label {
    /// A `&'static Location` (lowest bit clear), or a `Box<Named>` (bit set).
    word: NonNull<()>,
}

/// A name, and when the named work began on its runtime's clock (only named work reads
/// the clock for it).
pub(crate) struct Named {
    pub(crate) name: Cow<'static, str>,
    pub(crate) since: Instant,
    /// Where the named work was made: set by [`Label::new`].
    site: &'static Location<'static>,
}

/// The tag bit of a boxed [`Named`].
const NAMED: usize = 1;

// The tag bit is free in the pointers of both.
const _: () = assert!(align_of::<Location<'static>>() > NAMED);
const _: () = assert!(align_of::<Named>() > NAMED);

// SAFETY: a label is a `&'static Location` or an owned `Box<Named>`, both `Send` and
// `Sync`, and reaches it only through `&self`.
unsafe impl Send for Label {}
// SAFETY: as for `Send`.
unsafe impl Sync for Label {}

impl Named {
    /// The name `name` of work that began at `since`.
    pub(crate) fn new(name: Cow<'static, str>, since: Instant) -> Named {
        Named {
            name,
            since,
            // A placeholder until the label is made.
            site: Location::caller(),
        }
    }
}

impl Label {
    /// Made at `site`, called `name` if given.
    #[inline]
    pub(crate) fn new(site: &'static Location<'static>, name: Option<Box<Named>>) -> Label {
        match name {
            None => Label {
                word: NonNull::from(site).cast::<()>(),
            },
            Some(named) => Label::named(site, named),
        }
    }

    #[cold]
    fn named(site: &'static Location<'static>, mut named: Box<Named>) -> Label {
        named.site = site;
        let boxed = NonNull::from(Box::leak(named)).cast::<()>();
        Label {
            word: boxed.map_addr(|a| a | NAMED),
        }
    }

    /// The name and the rest, if the label has a name.
    #[inline]
    fn named_ref(&self) -> Option<&Named> {
        let word = self.word.as_ptr();
        let boxed = (word.addr() & NAMED != 0).then(|| word.map_addr(|a| a & !NAMED));
        // SAFETY: with the bit set, the word is the pointer of the label's own
        // `Box<Named>`, tagged; untagged, it is that pointer, to a `Named` that lives as
        // long as the label and is never written while it does.
        boxed.map(|boxed| unsafe { &*boxed.cast::<Named>() })
    }

    /// Where the child, nursery or scope was made.
    #[inline]
    pub(crate) fn site(&self) -> &'static Location<'static> {
        match self.named_ref() {
            Some(named) => named.site,
            // SAFETY: with the bit clear, the word is the `&'static Location` the label
            // was made with.
            None => unsafe { self.word.cast::<Location<'static>>().as_ref() },
        }
    }

    /// The name, borrowed.
    pub(crate) fn name_str(&self) -> Option<&str> {
        self.named_ref().map(|n| &*n.name)
    }

    /// This label, as a node of `kind` says it.
    pub(crate) fn labelled(&self, kind: Kind) -> Labelled<'_> {
        let named = self.named_ref();
        Labelled {
            kind,
            site: Some(self.site()),
            name: named.map(|n| &*n.name),
            since: named.map(|n| n.since),
        }
    }
}

impl Who for Label {
    fn site(&self) -> &'static Location<'static> {
        Label::site(self)
    }

    fn name(&self) -> Option<Cow<'static, str>> {
        self.named_ref().map(|n| n.name.clone())
    }
}

impl Drop for Label {
    fn drop(&mut self) {
        if self.word.as_ptr().addr() & NAMED != 0 {
            let boxed = self.word.as_ptr().map_addr(|a| a & !NAMED).cast::<Named>();
            // SAFETY: the pointer of the label's own box, untagged, given back once,
            // here, with exclusive access; the label is not used again.
            drop(unsafe { Box::from_raw(boxed) });
        }
    }
}

impl std::fmt::Debug for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Label")
            .field("site", &self.site())
            .field("name", &self.name_str())
            .finish()
    }
}

/// A task's result, as its handle sees it.
///
/// Two variants, so that the waker's niche is the tag: 16 bytes for `Slot<()>` where four
/// variants (running, waiting, done, taken) took 24. A task that runs with no join
/// waiting holds a no-op waker ([`Slot::running`]); a result that was taken leaves the
/// error a join that came again would read ([`Slot::taken`]: nothing takes twice, see
/// [`Output::take_or_wait`]).
pub(crate) enum Slot<T> {
    /// Running: the waker of a join that waits for it, or a no-op one.
    Open(Waker),
    /// Finished with this result.
    Done(Result<T, JoinError>),
}

impl<T> Slot<T> {
    /// Running, no join waiting.
    fn running() -> Slot<T> {
        Slot::Open(Waker::noop().clone())
    }

    /// What is left once the result was taken.
    pub(super) fn taken() -> Slot<T> {
        Slot::Done(Err(JoinError::cancelled()))
    }
}
