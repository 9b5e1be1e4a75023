//! Where hatchery's tasks use `unsafe` (as `inline::cell` does for an inline child, and
//! two functions of `signal` for a signal handler): the slot that keeps a task's future
//! in the same allocation as its scope-tree node and its result.
//!
//! A spawned task is one `Arc<Node<Cell<B>>>`: the node (shared with the parent's child
//! list and with the [`TaskHandle`](crate::TaskHandle)), the task's shared body `B` (its
//! result), and its run state (the future, the runner's bookkeeping). The executor holds
//! the only [`RawTask`] for it, the seam's reference to the allocation as a [`Run`]
//! object, and polls the future in place. Without this, the future would need a second
//! heap allocation (a `Box` inside the executor's task) next to the shared node, which
//! costs measurably on every spawn: the floor of rule E2 is the executor's task plus one
//! allocation of ours (the book's `docs/src/performance.md` has the numbers), and rule E4
//! allows `unsafe` for such a measured need only. (A future larger than
//! [`IN_PLACE_MAX`](super::IN_PLACE_MAX) is boxed first, by
//! [`spawn_cell`](super::spawn_cell), and the box is what the state keeps: its room goes
//! when the task ends, not with a kept handle.)
//!
//! # Why this is sound
//!
//! * **Exclusive access.** The run state is reached only through the [`Run`] methods of
//!   the allocation, and only its [`RawTask`] calls them. [`spawn`] makes the allocation
//!   and, for it, one `Arc<dyn Run>`, which it moves into one `RawTask`; the seam's
//!   `RawTask` is not `Clone`, never lets its `Arc` out, and calls [`Run::poll_run`]
//!   through `&mut self` and [`Run::drop_run`] once, in its `Drop`. So accesses never
//!   overlap, on any thread. Nothing else can reach the state: [`Cell`] is private to this
//!   module, and everybody else holding the allocation (handles, the tree, the executor's
//!   [`Keeper`](crate::rt::Keep)) holds it as another trait object (`Node`,
//!   `dyn Part<_>`, `dyn Keep`), which reaches the node and the body, never the run
//!   state.
//! * **Pinning.** The run state lives inside the `Arc`'s allocation, which never moves,
//!   and it is dropped in place when the allocation is freed. So the state may be
//!   handed out as `Pin<&mut State>`.
//! * **Threads.** `Cell<B>` is `Sync` because the body is `Sync` and the state `Send`:
//!   sharing the cell lets the owner of the `RawTask` touch the state from its own
//!   thread, which moves access to it between threads, and the last `Arc` may drop it on
//!   any thread.
//!
//! The runner installs the task's node as the current one for each of its polls (the
//! thread's context holds an `Arc<Node>` for it, `crate::context`). That `Arc` is not a
//! reference of its own, kept in the run state (16 bytes of every child, and a cycle to
//! break when the task ends): it is the [`RawTask`]'s, lent for the call ([`Own`]).
//!
//! * **Made from the `RawTask`'s `Arc`.** [`Run::poll_run`] and [`Run::drop_run`] get a
//!   [`Lend`], which only the `RawTask` makes, of the `Arc<dyn Run>` it holds and calls
//!   through: its address ([`Arc::as_ptr`], which keeps the provenance of the whole
//!   allocation, counts included) is that of this `Node<Cell<B, K>>` (checked), so
//!   `Arc::from_raw` of it is an `Arc` of this allocation, made without a count of its
//!   own. The `RawTask` is borrowed for the whole call, so its count keeps the
//!   allocation alive while the lent `Arc` exists.
//! * **Given back, never dropped.** The lent `Arc` stays in [`Own`], which the call owns
//!   on its stack, or in the thread's context while the call has installed it there:
//!   the context's contract is that a runner's poll ([`context::enter_task`],
//!   [`context::enter_with`], [`context::drop_cancelled`]) swaps the node into the
//!   thread-local and back into the runner's slot when the poll returns or unwinds, and
//!   that everything installed inside it is swapped back in turn (scopes, deferred
//!   nodes, a row's children), so what comes back is what went in. Code in the task
//!   reads it (`&Arc<Node>`) or clones it, and a clone is a counted reference like any
//!   other. When the call ends, `Own`'s `Drop` forgets the `Arc` in its slot. Debug
//!   builds check that it is an `Arc` of this allocation first (any will do: the counts
//!   balance, the one forgotten standing for the one lent), so every poll of the test
//!   suite checks the context's contract; release builds, where this is every poll's
//!   cost, rely on it.
//! * **The count tells who else holds the task.** Without a reference of its own, the
//!   runner's finish reads a strong count of 1 as "the `RawTask` alone" (no handle, and
//!   nothing kept of the task's context); to have the nursery's thread free the
//!   allocation ([`Graves`](super::Graves)), it clones the lent `Arc`, a counted one.
//!
//! [`context::enter_task`]: crate::context::enter_task
//! [`context::enter_with`]: crate::context::enter_with
//! [`context::drop_cancelled`]: crate::context::drop_cancelled
//!
//! What a task, a nursery or a scope is called ([`Label`]) is one word here too: a
//! tagged pointer, either the `&'static Location` where it was made or a box holding
//! the location and the name; the [`label`] module's docs say why that is sound.
//!
//! The cell also keeps the executor's handle to the task ([`KeepSlot`], filled through
//! [`Task::spawn_with`](crate::rt::Task::spawn_with)), so that the executor's allocation
//! is freed where hatchery frees its own, usually on the nursery's thread, which
//! allocated both. The handle comes type-erased through the seam's [`Handoff`] (whose
//! only implementation, for `Option<H>`, reports `H`'s layout, the address of the value
//! and `ptr::drop_in_place::<H>`), into one word-sized slot:
//!
//! * **One writer.** Whoever first claims the slot through its node's bits
//!   ([`KeepBits::claim`]: one read-modify-write of the task root's byte) moves the value
//!   in (copies its bytes, then has the `Handoff` forget it), then publishes it
//!   ([`KeepBits::kept`], release). A loser leaves the value in its `Handoff`, whose
//!   owner drops it. So the value is written once, by one thread.
//! * **Read only in the node's drop.** Nothing reads the value through `&KeepSlot`; the
//!   node's drop has exclusive access, after every `Arc` to the cell is gone, and drops
//!   the value only if it finds it published (`Tag::drop_kept`). The writer holds an
//!   `Arc` while it writes, so the write happens before the drop (the `Arc`'s release
//!   and acquire). A slot claimed and never filled (impossible: the writer fills it
//!   right after its claim) would read as empty.
//! * **Layout.** The seam boxes a value that does not fit the slot (size or alignment)
//!   first; the box does. The slot checks the layout again before it writes.
//! * **The destructor.** One type of handle is kept in place per process, the first
//!   kept's ([`IN_PLACE`], set once: a `tokio::task::JoinHandle<()>` in practice, the one
//!   adapter that keeps handles), its destructor noted there once; a handle of another
//!   type goes into a box with its own ([`Boxed`]), whose pointer the slot keeps, and the
//!   node's bits say which (`KEPT` or `KEPT_BOXED`). So the slot is one
//!   word (8 bytes of every child on tokio's multi-thread runtime, where a destructor's
//!   word beside the value took 16), and a handle of a rarer type costs a box. The
//!   destructor is `ptr::drop_in_place::<H>` for the `H` whose bytes were moved in, called
//!   with their address as `*mut u8`: raw pointers to sized types are ABI-compatible, so
//!   this is the call `drop_in_place::<H>(slot as *mut H)`.

use std::any::TypeId;
use std::cell::UnsafeCell;
use std::mem::{align_of, size_of, MaybeUninit};
use std::pin::Pin;
use std::ptr;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use crate::node::{Detail, KeepBits, Kind, Labelled, MovableLink, Node, Reason, Tag};
use crate::rt::{Handoff, Keep, Lend, RawTask, Run, Runtime, Task};
use crate::timer::runtime_id;

pub(crate) use self::label::{Label, Named};
pub(super) use self::slot_sync::ValueCell;

mod label;
#[cfg(all(test, hatchery_loom))]
mod loom;
#[cfg(all(test, not(hatchery_loom)))]
mod tests;

/// For the slot's tests and loom model: a task's node with its slot, as its allocation
/// has them (the slot in the ext).
#[cfg(test)]
struct Kept(KeepSlot);

#[cfg(test)]
impl Kept {
    /// A task's root with an empty slot, to be put in an `Arc` (the standard one, or
    /// loom's).
    fn root() -> Node<Kept> {
        Node::with_ext(false, true, Kept(KeepSlot::default()))
    }
}

#[cfg(test)]
impl Tag for Kept {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn drop_kept(&mut self, boxed: bool) {
        self.0.drop_kept(boxed);
    }
}

/// What a [`KeepSlot`] is made of: the standard cell, or loom's under `--cfg
/// hatchery_loom`, whose model of the slot's claim (`raw/loom.rs`) checks every
/// interleaving of two writers and the drop.
#[cfg(not(all(test, hatchery_loom)))]
mod slot_sync {
    /// The slot's value (and a task's result slot, `task::handle`): an `UnsafeCell`,
    /// reached as loom's is.
    pub(in crate::task) struct ValueCell<T>(std::cell::UnsafeCell<T>);

    impl<T> ValueCell<T> {
        pub(in crate::task) fn new(value: T) -> ValueCell<T> {
            ValueCell(std::cell::UnsafeCell::new(value))
        }

        pub(in crate::task) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(all(test, hatchery_loom))]
mod slot_sync {
    pub(in crate::task) use loom::cell::UnsafeCell as ValueCell;
}

/// A task's allocation, besides its node: the body (shared), the run state (the
/// `RawTask`'s alone), and where the executor's handle is kept (`K`: a [`KeepSlot`], or
/// nothing for a runtime that keeps none, see [`spawn`]). See the [module docs](self).
pub(crate) struct Cell<B: Body, K> {
    body: B,
    state: UnsafeCell<B::State>,
    keep: K,
}

// SAFETY: `&Cell<B, K>` gives shared access to `body` (hence `B: Sync`) and to `keep`
// (`K: Sync`, by `Keeping`), and none to `state` but through `Run`, which only the unique
// `RawTask` calls (module docs), possibly from another thread than the one that made it,
// hence `B::State: Send` (required by `Body`).
unsafe impl<B: Body, K: Keeping> Sync for Cell<B, K> {}

impl<B: Body, K> Cell<B, K> {
    /// # Safety
    ///
    /// The caller has exclusive access to the state: it is the unique `RawTask`.
    // Exclusive access is this unsafe function's contract, not `&self`'s.
    #[allow(clippy::mut_from_ref)]
    unsafe fn state(&self) -> Pin<&mut B::State> {
        // SAFETY: exclusive by the caller's contract; the state never moves (module docs).
        unsafe { Pin::new_unchecked(&mut *self.state.get()) }
    }
}

/// The shared part of a task: what the executor polls, given exclusive, pinned access to
/// the run state.
pub(crate) trait Body: Send + Sync + 'static {
    /// What only the runner touches.
    type State: Send;

    /// What a handle of the task reaches of the body (its result).
    type Part: Send + Sync + 'static;

    fn part(&self) -> &Self::Part;

    /// What the task is called (for the task tree).
    fn label(&self) -> &Label;

    /// The task's parent link if `start` may move it (see [`Tag::movable_link`]).
    fn movable_link(&self) -> Option<&MovableLink>;

    /// Polls the task. `node` is the node this body lives in, and `own` the same
    /// allocation as an `Arc`, lent for the call (see [`Own`]).
    fn poll(
        &self,
        node: &Node,
        own: &mut Own,
        state: Pin<&mut Self::State>,
        cx: &mut Context<'_>,
    ) -> Poll<()>;

    /// The executor dropped the task before it finished: not called once the runner's
    /// end has marked the node finished ([`Node::finish`]).
    fn abort(&self, node: &Node, own: &mut Own, state: Pin<&mut Self::State>);
}

/// A task's own allocation as an `Arc<Node>`, lent by its [`RawTask`] for one call of the
/// runner: to install as the current node of the task's context ([`slot`](Own::slot)),
/// to read ([`get`](Own::get)), or to clone. Never dropped: forgotten when the call ends
/// (see the [module docs](self)).
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
    fn lend<B: Body, K: Keeping>(lend: Lend<'_>, this: &Node<Cell<B, K>>) -> Own {
        let at = lend.as_ptr();
        assert!(
            ptr::eq(at, ptr::from_ref(this).cast::<()>()),
            "hatchery: internal error: a task's runner called with another's reference"
        );
        // SAFETY: `at` is the address of the `RawTask`'s `Arc<dyn Run>` (`Lend::as_ptr`,
        // with the provenance of its whole allocation), which is `this`, a
        // `Node<Cell<B, K>>` (checked above): `Arc::from_raw` of it is an `Arc` of the
        // allocation. It is made without a count, and is forgotten, never dropped
        // (`Own`'s `Drop`), while the `RawTask`'s count, borrowed for the whole call,
        // keeps the allocation alive (module docs).
        let node: Arc<Node<Cell<B, K>>> = unsafe { Arc::from_raw(at.cast::<Node<Cell<B, K>>>()) };
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
            .expect("hatchery: internal error: the task's node is lent out")
    }
}

impl Drop for Own {
    #[inline(always)]
    fn drop(&mut self) {
        // The context's contract (module docs), checked in debug builds, where every poll
        // of the test suite checks it. (Any `Arc` of the allocation would stand for the
        // one lent: the counts balance.)
        #[cfg(debug_assertions)]
        assert!(
            self.node
                .as_ref()
                .is_some_and(|node| ptr::eq(Arc::as_ptr(node).cast::<()>(), self.at)),
            "hatchery: internal error: a task's context did not give back its node"
        );
        std::mem::forget(self.node.take());
    }
}

/// A child as its handle holds it: the part `P` of it that the handle reads (its output),
/// and its node. Implemented here for a task's allocation, and by `inline::cell` for an
/// inline child's, so that one handle type serves both.
///
/// # Safety
///
/// An implementor is `Send` and `Sync` whenever `P` is: a handle reaches nothing of it
/// but `P` and the node (which is both), and dropping the last reference drops nothing
/// that is not (an inline child's future, which need not be `Send`, is dropped by its
/// owner, never through this). [`PartRef`] relies on it. And [`node`](Part::node) is
/// the node of the child whose part [`part`](Part::part) is, always the same one: its
/// lock guards the result slot in the part (`task::handle`'s invariant 4).
pub(crate) unsafe trait Part<P> {
    /// What the handle reads.
    fn part(&self) -> &P;

    /// The child's node.
    fn node(&self) -> &Node;

    /// What the handle reads and the child's node, in one call.
    #[inline]
    fn with_node(&self) -> (&P, &Node) {
        (self.part(), self.node())
    }

    /// Cancels the child from its handle, with `detail`, and makes sure it sees it.
    fn cancel(&self, detail: Detail) {
        self.node().cancel_with(Reason::Explicit, detail);
    }
}

// SAFETY: the allocation is `Send` and `Sync` (`Cell<B, K>` is, for the bounds of `Body`
// and `Keeping`), whatever the part.
unsafe impl<B: Body, K: Keeping> Part<B::Part> for Node<Cell<B, K>> {
    fn part(&self) -> &B::Part {
        self.ext.body.part()
    }

    fn node(&self) -> &Node {
        self
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
    /// The reference to `child`.
    pub(crate) fn new(child: Arc<dyn Part<P>>) -> PartRef<P> {
        PartRef(child)
    }
}

impl<P> std::ops::Deref for PartRef<P> {
    type Target = dyn Part<P>;

    fn deref(&self) -> &(dyn Part<P> + 'static) {
        &*self.0
    }
}

/// Allocates a task root node under `parent` carrying `body` and `state`, makes the one
/// [`RawTask`] for it and spawns it on `rt`; `built`, if any, is given the allocation as
/// a node before the task can run. Only a task whose body has a movable link
/// ([`Body::movable_link`]) can change its parent later.
/// Returns the allocation as a handle holds it.
///
/// The allocation has a [`KeepSlot`] for the executor's handle only where `rt` keeps its
/// handles ([`Task::spawn_with`](crate::rt::Task::spawn_with)): 8 bytes that every child
/// would otherwise carry unused on one thread and on smol. Whether it does is learned
/// from the spawns themselves, per thread: a thread's first spawn on a runtime, and the
/// first after one on another runtime, has the slot and tells ([`Keeps`]). A handle
/// offered to a task without the slot is dropped at once, as one offered to a
/// [`Task::from_future`](crate::rt::Task::from_future) is: the executor's task is then
/// freed where it finishes.
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

/// [`spawn`] with the slot `K`; returns, besides, whether the runtime handed a handle
/// over to keep while it spawned.
#[inline]
fn spawn_as<B: Body, K: Keeping>(
    rt: &Arc<dyn Runtime>,
    parent: &Arc<Node>,
    body: B,
    state: B::State,
    built: Option<impl FnOnce(Arc<Node>)>,
) -> (PartRef<B::Part>, bool) {
    let cell = Arc::new(Node::task_root(
        parent,
        Cell {
            body,
            state: UnsafeCell::new(state),
            keep: K::default(),
        },
    ));
    if let Some(built) = built {
        built(cell.clone());
    }
    // The one `Arc<dyn Run>` of this allocation (module docs).
    rt.spawn(Task::raw(RawTask::new(cell.clone())));
    // `spawn_with` keeps the handle before the executor's `spawn` returns, on this thread.
    let kept = cell.keep_bits().is_kept();
    let part: Arc<dyn Part<B::Part>> = cell;
    (PartRef::new(part), kept)
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

/// Where a task's allocation keeps the executor's handle to it: a [`KeepSlot`], or
/// nothing ([`NoKeep`]).
trait Keeping: Default + Send + Sync + 'static {
    /// Whether this keeps a handle at all.
    const SLOT: bool;

    /// Moves the value out of `handle` to keep it, if this keeps one and none is kept yet
    /// (`bits`, its node's, say); leaves it there otherwise (for its owner to drop).
    fn put(&self, bits: KeepBits<'_>, handle: &mut dyn Handoff);

    /// Drops the value kept (in a box of its own if `boxed`), its node having said there
    /// is one (`Tag::drop_kept`).
    fn drop_kept(&mut self, boxed: bool);
}

/// No room for the executor's handle: a handle offered is left to its owner, who drops
/// it at once.
#[derive(Default)]
pub(crate) struct NoKeep;

impl Keeping for NoKeep {
    const SLOT: bool = false;

    fn put(&self, _: KeepBits<'_>, _: &mut dyn Handoff) {}

    fn drop_kept(&mut self, _: bool) {}
}

impl<B: Body, K: Keeping> Tag for Cell<B, K> {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn label(&self) -> Option<Labelled<'_>> {
        Some(self.body.label().labelled(Kind::Task))
    }

    fn movable_link(&self) -> Option<&MovableLink> {
        self.body.movable_link()
    }

    fn drop_kept(&mut self, boxed: bool) {
        self.keep.drop_kept(boxed);
    }
}

impl<B: Body, K: Keeping> Run for Node<Cell<B, K>> {
    #[inline]
    fn poll_run(&self, lend: Lend<'_>, cx: &mut Context<'_>) -> Poll<()> {
        let mut own = Own::lend(lend, self);
        // SAFETY: our caller is the unique `RawTask` of this allocation (module docs),
        // borrowed mutably for the whole call.
        let state = unsafe { self.ext.state() };
        self.ext.body.poll(self, &mut own, state, cx)
    }

    #[inline]
    fn drop_run(&self, lend: Lend<'_>) {
        // A task that has finished has nothing left to abort: its runner's end marks the
        // node finished as its last step on the task's state (`Node::finish`, which
        // nothing else calls on a task's root), after it took the future and the group.
        // Read with acquire: the executor drops its task after the poll that ended it,
        // on that thread or after handing the task over.
        if self.is_finished() {
            return;
        }
        let mut own = Own::lend(lend, self);
        // SAFETY: as in `poll_run`.
        let state = unsafe { self.ext.state() };
        self.ext.body.abort(self, &mut own, state)
    }

    fn keeper(self: Arc<Self>) -> Option<Arc<dyn Keep>> {
        // A task without the slot keeps nothing: no reference made for it.
        K::SLOT.then_some(self as Arc<dyn Keep>)
    }
}

impl<B: Body, K: Keeping> Keep for Node<Cell<B, K>> {
    fn keep(&self, handle: &mut dyn Handoff) {
        self.ext.keep.put(self.keep_bits(), handle);
    }
}

/// The storage of a kept value: one word (a `Box` fits).
type Slot = MaybeUninit<usize>;

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
    value: Slot,
}

impl Drop for Boxed {
    fn drop(&mut self) {
        // SAFETY: `value` holds the bytes of a value moved in by `KeepSlot::put`, whose
        // destructor `drop` is (`Handoff`'s, as for the value in place: module docs); it
        // is dropped once, here, with the box.
        unsafe { (self.drop)(self.value.as_mut_ptr().cast::<u8>()) }
    }
}

/// The slot of a task's allocation that keeps the executor's handle to it (see the
/// [module docs](self)): the handle's word alone, or a box's pointer. Whether it holds one
/// is in the task's node ([`KeepBits`]), and the destructor of a handle in place is the
/// one type's ([`IN_PLACE`]).
pub(crate) struct KeepSlot {
    value: ValueCell<Slot>,
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

impl Keeping for KeepSlot {
    const SLOT: bool = true;

    /// Moves the value out of `handle` if the slot is empty (in place if it is of the one
    /// type kept so, in a box otherwise); leaves it there otherwise.
    fn put(&self, bits: KeepBits<'_>, handle: &mut dyn Handoff) {
        let layout = handle.layout();
        // The seam boxes what does not fit.
        assert!(layout.size() <= size_of::<Slot>() && layout.align() <= align_of::<Slot>());
        let Some(src) = handle.as_ptr() else {
            return;
        };
        // SAFETY: `Handoff::drop_fn` is the address of `ptr::drop_in_place::<H>` for the
        // value's type, which takes `*mut H`, ABI-compatible with `*mut u8` (module docs).
        let drop = unsafe { std::mem::transmute::<*const (), DropFn>(handle.drop_fn()) };
        let (id, _) = *IN_PLACE.get_or_init(|| (handle.type_id(), drop));
        let in_place = id == handle.type_id();
        if !bits.claim() {
            return;
        }
        let copy = |to: *mut u8| {
            // SAFETY: `src` is the address of a live value of `layout` (`Handoff`'s one
            // implementation, `Option<H>`, reports its `H`), which fits `to`, a slot's word
            // (asserted above); the claim made this the one writer, and nobody reads the
            // value before the node's drop (module docs). The value is forgotten where it
            // was right after, so it is moved, not copied.
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
                // published after `put` wrote it): made by `Box::into_raw`, taken back once.
                drop(unsafe { Box::from_raw(value.cast::<*mut Boxed>().read()) });
                return;
            }
            let (_, drop) = *IN_PLACE
                .get()
                .expect("a value kept in place has its type's destructor");
            // SAFETY: the node said the slot holds a value in place (`KEPT`, published
            // after the value was moved in: `put`), which `put` kept in place only if its
            // type was `IN_PLACE`'s, set once and never changed: `drop` is that type's
            // `ptr::drop_in_place` (module docs). We have exclusive access (the node's
            // drop), and the value is not used again.
            unsafe { drop(value.cast::<u8>()) }
        });
    }
}
