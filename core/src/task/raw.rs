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

use std::cell::UnsafeCell;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::node::Node;

/// A task's allocation, besides its node: the body (shared) and the run state (the
/// `RawTask`'s alone). See the [module docs](self).
pub(crate) struct Cell<B: Body> {
    body: B,
    state: UnsafeCell<B::State>,
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
}

/// The executor's reference to a task: the only way to reach its run state.
pub(crate) struct RawTask {
    cell: Arc<Node<dyn Erased>>,
}

impl RawTask {
    /// Allocates a task root node under `parent` carrying `body` and `state`, and makes
    /// the one `RawTask` for it; `init` finishes setting up the state, given the
    /// allocation. Only a `movable` task can change its parent later.
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
            },
            movable,
        ));
        // SAFETY: the allocation is new and no `RawTask` for it exists yet.
        init(&cell, unsafe { cell.ext.state() });
        (RawTask { cell: cell.clone() }, cell)
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
