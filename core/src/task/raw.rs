//! The one place where hatchery uses `unsafe`: the slot that keeps a task's future in
//! the same allocation as its scope-tree node and its result.
//!
//! A spawned task is one `Arc<Node<Cell<B>>>`: the node (shared with the parent's child
//! list and with the [`TaskHandle`](crate::TaskHandle)), the task's shared body `B` (its
//! result), and its run state (the future, the runner's bookkeeping). The executor
//! holds the only [`RawTask`] for it and polls the future in place. Without this, the future
//! would need a second heap allocation (a `Box` inside the executor's task) next to the
//! shared node, which costs measurably on every spawn (DESIGN.md §6).
//!
//! # Why this is sound
//!
//! * **Exclusive access.** The run state is reachable only through a `RawTask`, and
//!   [`RawTask::new`] makes exactly one for each allocation it makes (it allocates the
//!   node itself). `RawTask` is not `Clone`, and every access goes through
//!   `&mut RawTask`, so accesses never overlap, on any thread. The state is a private
//!   field of [`Cell`], so everybody else holding the `Arc` (handles, the tree) can reach
//!   the node and the body, never the run state.
//! * **Pinning.** The run state lives inside the `Arc`'s allocation, which never moves,
//!   and it is dropped in place when the allocation is freed. So the state may be
//!   handed out as `Pin<&mut State>`.
//! * **Threads.** `Cell<B>` is `Sync` because the body is `Sync` and the state `Send`:
//!   sharing the cell lets the owner of the `RawTask` touch the state from its own
//!   thread, which moves access to it between threads, and the last `Arc` may drop it on
//!   any thread.
//!
//! The cell also keeps the executor's handle to the task ([`Keep`], filled by
//! [`Task::spawn_with`](crate::rt::Task::spawn_with)), so that the executor's allocation
//! is freed where hatchery frees its own, usually on the nursery's thread, which
//! allocated both. The handle is type-erased into one pointer-sized slot:
//!
//! * **One writer.** Whoever wins the compare-exchange of the slot's vtable pointer from
//!   null to [`claimed`] writes the value, then publishes its vtable (release). A loser
//!   keeps its handle and drops it. So the value is written once, by one thread.
//! * **Read only in `Drop`.** Nothing reads the value through `&Keep`; `Drop` has
//!   exclusive access, after every `Arc` to the cell is gone. The writer holds one while
//!   it writes, so the write happens before the drop (the `Arc`'s release and acquire),
//!   and a vtable still [`claimed`] there is impossible (treated as empty).
//! * **Layout.** A value that does not fit the slot (size or alignment) is boxed first;
//!   the box does.

use std::cell::UnsafeCell;
use std::mem::{align_of, size_of, MaybeUninit};
use std::pin::Pin;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::node::Node;

/// A task's allocation, besides its node: the body (shared) and the run state (the
/// `RawTask`'s alone). See the [module docs](self).
pub(crate) struct Cell<B: Body> {
    body: B,
    state: UnsafeCell<B::State>,
    keep: Keep,
}

// SAFETY: `&Cell<B>` gives shared access to `body` (hence `B: Sync`) and none to `state`;
// only the unique `RawTask` reaches `state` (module docs), possibly from another thread
// than the one that made it, hence `B::State: Send` (required by `Body`).
unsafe impl<B: Body> Sync for Cell<B> {}

impl<B: Body> Cell<B> {
    /// The shared part of the task.
    pub(crate) fn body(&self) -> &B {
        &self.body
    }

    /// # Safety
    ///
    /// The caller has exclusive access to the state: it is the unique `RawTask`, or it
    /// made the allocation and no `RawTask` exists yet.
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
    type State: Send;

    /// Polls the task. `node` is the node this body lives in.
    fn poll(
        &self,
        node: &Node<dyn Erased>,
        state: Pin<&mut Self::State>,
        cx: &mut Context<'_>,
    ) -> Poll<()>;

    /// The executor dropped the task (finished or not).
    fn abort(&self, node: &Node<dyn Erased>, state: Pin<&mut Self::State>);
}

/// A [`Cell`] with its types erased, so that [`RawTask`] needs no type parameters.
pub(crate) trait Erased: Send + Sync + 'static {
    /// # Safety
    ///
    /// Only the unique `RawTask` of this node may call this (module docs).
    unsafe fn poll_erased(&self, node: &Node<dyn Erased>, cx: &mut Context<'_>) -> Poll<()>;

    /// # Safety
    ///
    /// As for `poll_erased`.
    unsafe fn abort_erased(&self, node: &Node<dyn Erased>);

    /// Where the executor's handle to the task is kept.
    fn keep(&self) -> &Keep;
}

impl<B: Body> Erased for Cell<B> {
    unsafe fn poll_erased(&self, node: &Node<dyn Erased>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: our caller is the unique `RawTask`.
        self.body.poll(node, unsafe { self.state() }, cx)
    }

    unsafe fn abort_erased(&self, node: &Node<dyn Erased>) {
        // SAFETY: as in `poll_erased`.
        self.body.abort(node, unsafe { self.state() })
    }

    fn keep(&self) -> &Keep {
        &self.keep
    }
}

/// The executor's reference to a task: the only way to reach its run state.
pub(crate) struct RawTask {
    cell: Arc<Node<dyn Erased>>,
}

impl RawTask {
    /// Allocates a task root node under `parent` carrying `body` and `state`, and makes
    /// the one `RawTask` for it; `init` finishes setting up the state, given the
    /// allocation. Only a `movable` task can change its parent later.
    #[inline]
    pub(crate) fn new<B: Body>(
        parent: &Arc<Node>,
        movable: bool,
        body: B,
        state: B::State,
        init: impl FnOnce(&Arc<Node<Cell<B>>>, Pin<&mut B::State>),
    ) -> (RawTask, Arc<Node<Cell<B>>>) {
        let cell = Arc::new(Node::task_root(
            parent,
            Cell {
                body,
                state: UnsafeCell::new(state),
                keep: Keep::new(),
            },
            movable,
        ));
        // SAFETY: the allocation is new and no `RawTask` for it exists yet.
        init(&cell, unsafe { cell.ext.state() });
        (RawTask { cell: cell.clone() }, cell)
    }

    /// Something to keep the executor's handle with, once this has been spawned.
    pub(crate) fn keeper(&self) -> Keeper {
        Keeper(self.cell.clone())
    }

    #[inline]
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: `self` is the unique `RawTask` of this cell (`new` makes one per
        // allocation; not `Clone`), borrowed mutably for the whole call.
        unsafe { self.cell.ext.poll_erased(&self.cell, cx) }
    }
}

impl Drop for RawTask {
    fn drop(&mut self) {
        // SAFETY: as in `poll`.
        unsafe { self.cell.ext.abort_erased(&self.cell) }
    }
}

/// Keeps a value in a task's allocation until the allocation goes (see
/// [`RawTask::keeper`]).
pub(crate) struct Keeper(Arc<Node<dyn Erased>>);

impl Keeper {
    /// Keeps `value` with the task, to be dropped with its allocation, on whichever
    /// thread lets go of it last. Only the first value is kept: a later one is dropped
    /// here.
    pub(crate) fn keep<H: Send + 'static>(self, value: H) {
        if size_of::<H>() <= size_of::<Slot>() && align_of::<H>() <= align_of::<Slot>() {
            self.0.ext.keep().put(value);
        } else {
            self.0.ext.keep().put(Box::new(value));
        }
    }
}

/// The storage of a kept value: one word (a `Box` fits).
type Slot = MaybeUninit<usize>;

/// Drops the value of type `H` a slot holds.
struct KeepVtable {
    drop: unsafe fn(*mut Slot),
}

/// How to drop an `H` kept in a slot.
struct VtableOf<H>(std::marker::PhantomData<H>);

impl<H> VtableOf<H> {
    const VTABLE: KeepVtable = KeepVtable {
        drop: drop_slot::<H>,
    };
}

/// # Safety
///
/// `slot` holds an initialized `H`, dropped here and not used again.
unsafe fn drop_slot<H>(slot: *mut Slot) {
    // SAFETY: by the caller's contract.
    unsafe { ptr::drop_in_place(slot.cast::<H>()) }
}

/// The vtable pointer of a slot being written: an address no vtable has.
fn claimed() -> *mut KeepVtable {
    ptr::NonNull::dangling().as_ptr()
}

/// The slot of a task's allocation that keeps the executor's handle to it (see the
/// [module docs](self)).
pub(crate) struct Keep {
    /// Null when empty, [`claimed`] while being written, then the value's vtable.
    vtable: AtomicPtr<KeepVtable>,
    value: UnsafeCell<Slot>,
}

// SAFETY: `&Keep` lets one thread write the value once (the compare-exchange picks it)
// and nobody read it. (`Keep` is `Send` through its fields; the value it hides is too,
// by the bound on `put`, and is dropped, with exclusive access, wherever the allocation
// goes.)
unsafe impl Sync for Keep {}

impl Keep {
    fn new() -> Keep {
        Keep {
            vtable: AtomicPtr::new(ptr::null_mut()),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Keeps `value` if the slot is empty; drops it otherwise. `H` fits the slot.
    fn put<H: Send + 'static>(&self, value: H) {
        // Known at compile time; `keep` boxes what does not fit.
        assert!(size_of::<H>() <= size_of::<Slot>() && align_of::<H>() <= align_of::<Slot>());
        if self
            .vtable
            .compare_exchange(
                ptr::null_mut(),
                claimed(),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return;
        }
        // SAFETY: the compare-exchange made this the one writer, and nobody reads the
        // value before `Drop` (module docs); `H` fits the slot (asserted above).
        unsafe { self.value.get().cast::<H>().write(value) };
        let vtable: &'static KeepVtable = &VtableOf::<H>::VTABLE;
        self.vtable
            .store(ptr::from_ref(vtable).cast_mut(), Ordering::Release);
    }
}

impl Drop for Keep {
    fn drop(&mut self) {
        let vtable = *self.vtable.get_mut();
        if vtable.is_null() || vtable == claimed() {
            return;
        }
        // SAFETY: a vtable other than null and `claimed()` was published after its value
        // was written (`put`), as the vtable of that value's type; we have exclusive
        // access, and the value is not used again.
        unsafe { ((*vtable).drop)(self.value.get()) }
    }
}
