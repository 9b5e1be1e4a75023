//! The one place where hatchery uses `unsafe`: the slot that keeps a task's future in
//! the same allocation as its scope-tree node and its result.
//!
//! A spawned task is one `Arc<Node<B>>`: the node (shared with the parent's child list
//! and with the [`TaskHandle`](crate::TaskHandle)) and the task body `B`, whose run state
//! (the future, the runner's bookkeeping) sits in a [`RunSlot`]. The executor holds the
//! only [`RawTask`] for it and polls the future in place. Without this, the future
//! would need a second heap allocation (a `Box` inside the executor's task) next to the
//! shared node, which costs measurably on every spawn (DESIGN.md §6).
//!
//! # Why this is sound
//!
//! * **Exclusive access.** The run state is reachable only through a `RawTask`, and
//!   [`RawTask::new`] makes exactly one for each allocation it makes (it allocates the
//!   node itself). `RawTask` is not `Clone`, and every access goes through
//!   `&mut RawTask`, so accesses never overlap, on any thread. Everybody else holding the `Arc` (handles, the tree) can
//!   reach the node and the result, never the run state.
//! * **Pinning.** The run state lives inside the `Arc`'s allocation, which never moves,
//!   and it is dropped in place when the allocation is freed. So the state may be
//!   handed out as `Pin<&mut State>`.
//! * **Threads.** `RunSlot<S>` is `Sync` only when `S: Send`: sharing the slot lets the
//!   owner of the `RawTask` touch `S` from its own thread, which moves access to `S`
//!   between threads, and the last `Arc` may drop `S` on any thread.

use std::cell::UnsafeCell;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::node::Node;

/// A task's run state, inside its node's allocation. See the [module docs](self).
pub(crate) struct RunSlot<S> {
    state: UnsafeCell<S>,
}

// SAFETY: `&RunSlot<S>` gives no access to `S`; only the unique `RawTask` reaches it
// (module docs), possibly from another thread than the one that made the slot, hence
// `S: Send`.
unsafe impl<S: Send> Sync for RunSlot<S> {}

impl<S> RunSlot<S> {
    pub(crate) fn new(state: S) -> RunSlot<S> {
        RunSlot {
            state: UnsafeCell::new(state),
        }
    }
}

/// The body of a task: what the executor polls, with exclusive, pinned access to the
/// run state.
pub(crate) trait Body: Send + Sync + 'static {
    type State: Send;

    /// The slot holding the run state.
    fn slot(&self) -> &RunSlot<Self::State>;

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

/// A [`Body`] with its state type erased, so that [`RawTask`] needs no type parameters.
pub(crate) trait Erased: Send + Sync + 'static {
    /// # Safety
    ///
    /// Only the unique `RawTask` of this node may call this (module docs).
    unsafe fn poll_erased(&self, node: &Node<dyn Erased>, cx: &mut Context<'_>) -> Poll<()>;

    /// # Safety
    ///
    /// As for `poll_erased`.
    unsafe fn abort_erased(&self, node: &Node<dyn Erased>);
}

impl<B: Body> Erased for B {
    unsafe fn poll_erased(&self, node: &Node<dyn Erased>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: our caller is the unique `RawTask` (exclusive access), and the state
        // never moves (module docs).
        let state = unsafe { Pin::new_unchecked(&mut *self.slot().state.get()) };
        self.poll(node, state, cx)
    }

    unsafe fn abort_erased(&self, node: &Node<dyn Erased>) {
        // SAFETY: as in `poll_erased`.
        let state = unsafe { Pin::new_unchecked(&mut *self.slot().state.get()) };
        self.abort(node, state)
    }
}

/// The executor's reference to a task: the only way to reach its run state.
pub(crate) struct RawTask {
    cell: Arc<Node<dyn Erased>>,
}

impl RawTask {
    /// Allocates `node` and makes the `RawTask` for it; `init` finishes setting up the
    /// run state, given the allocation.
    pub(crate) fn new<B: Body>(
        node: Node<B>,
        init: impl FnOnce(&Arc<Node<B>>, Pin<&mut B::State>),
    ) -> (RawTask, Arc<Node<B>>) {
        let cell = Arc::new(node);
        // SAFETY: the allocation is new and no `RawTask` for it exists yet, so this is
        // the only access; the state never moves (module docs).
        init(&cell, unsafe {
            Pin::new_unchecked(&mut *cell.ext.slot().state.get())
        });
        (RawTask { cell: cell.clone() }, cell)
    }

    #[inline]
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: `self` is the unique `RawTask` of this cell (`new` claims it once; not
        // `Clone`), borrowed mutably for the whole call.
        unsafe { self.cell.ext.poll_erased(&self.cell, cx) }
    }
}

impl Drop for RawTask {
    fn drop(&mut self) {
        // SAFETY: as in `poll`.
        unsafe { self.cell.ext.abort_erased(&self.cell) }
    }
}
