//! The one place where an inline nursery uses `unsafe`: the cell that keeps an inline
//! child's future in the same allocation as the output its handle reads.
//!
//! An inline child is its cancel node (also its waker, `'static`) and this cell, shared
//! by the group, which owns and polls the future, and by the child's handle, which reads
//! how it ended. In safe Rust the output needs an allocation of its own: the future is
//! pinned and owned by the group, the output shared with the handle, and both may borrow
//! for `'env`. One allocation for both is the floor of `FuturesUnordered`, which makes two
//! per future (the box and its task) where an inline child made three; rule E4 of the
//! book allows `unsafe` for such a measured need only, and `docs/src/performance.md`
//! (*The inline rows*) has the measurement.
//!
//! # Why this is sound
//!
//! * **Exclusive access.** The future and its stage are reached only through the [`Run`]
//!   and [`DropRun`] methods, and only an [`Owner`] calls them: the owner is made with
//!   the cell ([`send_child`], [`local_child`], [`send_owner`], [`local_owner`], the
//!   only places that make either), is not `Clone`, keeps its `Arc` to itself, polls
//!   through `&mut self` and drops the future once, in its `Drop` (the stage says it was
//!   dropped, so a destructor that panics is not run twice). Everybody else holds the
//!   cell as a [`View`] (the handle's [`Part`], a `repr(transparent)` wrapper), through
//!   which only the output and the child's node are reachable.
//! * **Pinning.** The future lives in the `Arc`'s allocation, which never moves, and is
//!   dropped in place there before the allocation can be freed (by the owner's `Drop`,
//!   or never, if the owner is leaked: then the future is leaked too).
//! * **Lifetimes.** A handle holds the cell with the future's type forgotten
//!   ([`Cell::for_handle`]: a `dyn Part`, the same trait object as a spawned task's
//!   handle holds, so that one `TaskHandle` serves both): the trait object's bound,
//!   `'env`, becomes `'static`. The cell's own destructor never drops the future
//!   (`ManuallyDrop`), so a handle that frees the cell after `'env` has ended touches only
//!   the output, whose `T` its type still names, the node (`'static`), and the memory.
//! * **Forgetting.** Soundness does not depend on a destructor running (rule I3 of the
//!   book): an owner forgotten with its nursery's future never polls nor drops the future
//!   again, and a handle that outlives it sees a child that never ended (`is_finished` is
//!   false, a `join` waits) and gives up only its own reference. Nothing the children
//!   borrow is reached after `'env`: the one lifetime changed is that of a type that is
//!   never used to reach the future.
//! * **Threads.** The cell is `Sync` for a `Send` future and a `Send` output: the handle
//!   shares only the output (a mutex and an atomic waker) and the node, and the owner
//!   moves access to the future between threads only by moving itself. A view is `Send`
//!   and `Sync` for a `Send` output, as an `Arc<Mutex<T>>` is (the contract of `Part`,
//!   on which the handle's `Send` rests); it never reaches the future, which need not be
//!   `Send` (a local nursery's).

use std::cell::UnsafeCell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::JoinError;
use crate::node::{Detail, Node};
use crate::task::{self, Label, Output, Part, PartRef};

/// A child's future and what its handle reads, in one allocation: the group owns the
/// future (through [`Owner`]), the handle reads the output (through a [`View`]), and the
/// allocation lives while either holds it.
pub(super) struct Cell<T, F: ?Sized> {
    /// How the child ended, for its handle (the handles of spawned tasks read the same).
    out: Output<T>,
    /// The child's node, which its handle cancels (`None`: a child without a handle, made
    /// before its node, which `start` makes at its first poll).
    node: Option<Arc<Node>>,
    /// What the owner knows of the future ([`RUNNING`], [`RETURNED`], [`DROPPED`]),
    /// touched by the owner alone.
    stage: UnsafeCell<u8>,
    /// Dropped in place by the owner (never by the cell's own destructor: the handle may
    /// free the cell after the future's borrows have ended).
    fut: UnsafeCell<ManuallyDrop<F>>,
}

/// The future may be polled.
const RUNNING: u8 = 0;
/// The future returned or panicked, and its output says how: nothing to tell when it is
/// dropped.
const RETURNED: u8 = 1;
/// The future has been dropped (or is being dropped).
const DROPPED: u8 = 2;

// SAFETY: the handle reaches only `out` (a mutex and an atomic waker, shared as they are
// when `T: Send`) and `node`; `stage` and `fut` are reached by the cell's one `Owner`
// alone, through `&mut Owner`, so the future is never touched from two threads at once
// and moves to another thread only with the owner (hence `F: Send`, not `Sync`).
unsafe impl<T: Send, F: ?Sized + Send> Sync for Cell<T, F> {}

/// A cell as its handle sees it: the output and the node, never the future.
#[repr(transparent)]
struct View<T, F: ?Sized>(Cell<T, F>);

// SAFETY: through a view only the output (a mutex and an atomic waker over a `T`) and the
// node are reached, never the future; and the view's last reference frees the cell
// without dropping the future (`ManuallyDrop`: the owner drops it in place, on its own
// thread, or never if it is forgotten, and then its reference is never given up, so the
// view's is not the last). So it is `Send` and `Sync` as an `Arc<Mutex<T>>` is, whether
// or not the future is.
unsafe impl<T: Send, F: ?Sized> Send for View<T, F> {}
// SAFETY: as for `Send`.
unsafe impl<T: Send, F: ?Sized> Sync for View<T, F> {}

// SAFETY: a view is `Send` and `Sync` when `Output<T>` is (when `T: Send`), above.
unsafe impl<T, F: ?Sized> Part<Output<T>> for View<T, F> {
    fn part(&self) -> &Output<T> {
        &self.0.out
    }

    fn node(&self) -> &Node {
        self.0.node()
    }

    fn cancel(&self, detail: Detail) {
        super::engine::cancel_child(self.0.node(), detail);
    }
}

/// The constructors of a kind's cells, `$child` (with a handle) and `$owner` (without),
/// written once for both kinds, which differ only in the bound `$send` on the future and
/// its value and `$send + $sync` on the owner's type (`Send + Sync`, or none).
macro_rules! constructors {
    ($child:ident, $owner:ident, $($send:ident + $sync:ident)?) => {
        /// A cell for `fut`, whose node is `node`, as its owner (a child of a `nursery`
        /// or a `local_nursery`) and its handle hold it: the future in the cell, or boxed
        /// if it is larger than [`IN_PLACE_MAX`](task::IN_PLACE_MAX) (so that a handle
        /// kept after the child has ended does not keep the future's room).
        pub(super) fn $child<'env, T, E, F>(
            fut: F,
            node: Arc<Node>,
            label: Label,
        ) -> (Owner<dyn Run<E> $(+ $send + $sync)? + 'env>, PartRef<Output<T>>)
        where
            F: Future<Output = Result<T, E>> $(+ $send)? + 'env,
            T: $($send +)? 'env,
        {
            if const { task::apart::<F>() } {
                let cell = Cell::new(Box::pin(fut), Some(node), label);
                let handle = Cell::for_handle(&cell);
                (Owner(cell), handle)
            } else {
                let cell = Cell::new(fut, Some(node), label);
                let handle = Cell::for_handle(&cell);
                (Owner(cell), handle)
            }
        }

        /// A cell for `fut` with no handle, as its owner holds it: the child of a
        /// `start`, whose node is made later.
        pub(super) fn $owner<'env, E, F>(
            fut: F,
            label: Label,
        ) -> Owner<dyn Run<E> $(+ $send + $sync)? + 'env>
        where
            F: Future<Output = Result<(), E>> $(+ $send)? + 'env,
        {
            Owner(Cell::new(fut, None, label))
        }
    };
}

constructors!(send_child, send_owner, Send + Sync);
constructors!(local_child, local_owner,);

impl<T, F: ?Sized> Cell<T, F> {
    /// The child's node (a view is made only for a cell that has one).
    fn node(&self) -> &Arc<Node> {
        self.node
            .as_ref()
            .expect("hatchery: internal error: an inline child's handle without its node")
    }
}

impl<T, F> Cell<T, F> {
    /// A cell for `fut`.
    fn new(fut: F, node: Option<Arc<Node>>, label: Label) -> Arc<Self> {
        Arc::new(Cell {
            out: Output::new(label),
            node,
            stage: UnsafeCell::new(RUNNING),
            fut: UnsafeCell::new(ManuallyDrop::new(fut)),
        })
    }

    /// The cell as its handle holds it: a [`View`], with the future's type, and the
    /// lifetime of what it borrows, forgotten.
    fn for_handle<'env>(this: &Arc<Self>) -> PartRef<Output<T>>
    where
        F: 'env,
        T: 'env,
    {
        // SAFETY: `View` is `repr(transparent)` over the cell, so the allocation is laid
        // out as an `Arc<View<T, F>>`'s; the reference count taken by the clone goes with
        // the new `Arc`.
        let view: Arc<View<T, F>> =
            unsafe { Arc::from_raw(Arc::into_raw(this.clone()).cast::<View<T, F>>()) };
        let view: Arc<dyn Part<Output<T>> + 'env> = view;
        // SAFETY: only the bound on the trait object changes (the same pointer and
        // vtable). Through a view nothing reaches the future, the one part that borrows
        // for `'env` besides `T` (which the handle's type keeps): the owner drops the
        // future in place before the nursery ends, and the cell's destructor does not drop
        // it (`ManuallyDrop`), so a handle that frees the cell later touches only its
        // output, its node and its memory.
        PartRef::new(unsafe {
            std::mem::transmute::<Arc<dyn Part<Output<T>> + 'env>, Arc<dyn Part<Output<T>>>>(view)
        })
    }

    /// Tells the handle how the child ended, if a handle is left: a result it let go of
    /// is dropped here, outside the output's lock.
    fn put(&self, result: Result<T, JoinError>) {
        drop(self.out.put(self.node.as_deref(), result));
    }
}

/// Dropping a cell's future, whatever its error type: what the owner's destructor calls.
pub(super) trait DropRun {
    /// Drops the future in place, once, and tells the handle (if `has_handle`) that the
    /// child was cancelled if it had not returned.
    ///
    /// # Safety
    ///
    /// Only the cell's [`Owner`] calls it, with exclusive access.
    unsafe fn drop_run(&self, has_handle: bool);
}

/// What the group does with a cell, its future's type forgotten (`R` of [`Owner`]).
pub(super) trait Run<E>: DropRun {
    /// Polls the future and hands its value to the handle if there is one
    /// (`has_handle`: else the value is dropped where it is, with no lock).
    ///
    /// # Safety
    ///
    /// As [`DropRun::drop_run`].
    unsafe fn poll_run(&self, cx: &mut Context<'_>, has_handle: bool) -> Poll<Result<(), E>>;
}

/// Marks the output as panicked if a poll, or the drop of a future that had not
/// returned, unwinds, and the future as ended (the stage given): its drop then leaves
/// the output alone (it would say "cancelled" over the panic, rule H5).
struct PanicMark<'a, T, F: ?Sized>(&'a Cell<T, F>, u8);

impl<T, F: ?Sized> Drop for PanicMark<'_, T, F> {
    fn drop(&mut self) {
        // SAFETY: a mark is made only in `poll_run` and `drop_run`, under the owner's
        // exclusive access, and no reference to the stage is alive while they unwind.
        unsafe { *self.0.stage.get() = self.1 };
        drop(
            self.0
                .out
                .put(self.0.node.as_deref(), Err(JoinError::panicked())),
        );
    }
}

impl<T, F> DropRun for Cell<T, F> {
    unsafe fn drop_run(&self, has_handle: bool) {
        // SAFETY: the owner's exclusive access (the caller's contract).
        let stage = unsafe { &mut *self.stage.get() };
        if *stage == DROPPED {
            return;
        }
        let returned = *stage == RETURNED;
        // Set first: a destructor that panics is not run again.
        *stage = DROPPED;
        // The handle of a child that had not returned learns of its end once its future's
        // destructors have run, as a spawned task's does: cancelled, or panicked if one
        // of them panics (rule H5).
        let mark = (!returned && has_handle).then(|| PanicMark(self, DROPPED));
        // SAFETY: the owner's exclusive access; the future has not been dropped
        // (`stage`), and nothing reads it after this.
        unsafe { ManuallyDrop::drop(&mut *self.fut.get()) };
        if let Some(mark) = mark {
            std::mem::forget(mark);
            drop(
                self.out
                    .put(self.node.as_deref(), Err(JoinError::cancelled())),
            );
        }
    }
}

impl<T, E, F> Run<E> for Cell<T, F>
where
    F: Future<Output = Result<T, E>>,
{
    unsafe fn poll_run(&self, cx: &mut Context<'_>, has_handle: bool) -> Poll<Result<(), E>> {
        // SAFETY: the owner's exclusive access (the caller's contract).
        let running = unsafe { *self.stage.get() } == RUNNING;
        assert!(
            running,
            "hatchery: internal error: an inline child polled after it returned"
        );
        // SAFETY: as above; and the future is pinned: it lives in the cell's allocation,
        // which never moves, and is dropped there (`drop_run`) before it is freed.
        let fut = unsafe { Pin::new_unchecked(&mut **self.fut.get()) };
        let mark = PanicMark(self, RETURNED);
        let poll = fut.poll(cx);
        std::mem::forget(mark);
        // SAFETY: as above (taken after the poll: the mark writes the stage if it unwinds).
        let stage = unsafe { &mut *self.stage.get() };
        match poll {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(v)) => {
                *stage = RETURNED;
                if has_handle {
                    self.put(Ok(v));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => {
                *stage = RETURNED;
                if has_handle {
                    self.put(Err(JoinError::failed()));
                }
                Poll::Ready(Err(e))
            }
        }
    }
}

/// The group's hold on a child's [`Cell`]: the one party that polls its future, and
/// that drops it when it is dropped itself, even if a handle keeps the cell. Made only
/// with the cell ([`send_child`], [`local_child`]), and not `Clone`: there is one.
pub(super) struct Owner<R: ?Sized + DropRun>(Arc<R>);

impl<R: ?Sized + DropRun> Owner<R> {
    /// Whether the child's handle (or its `join` future) still holds the cell. A handle
    /// is made only with the child, so none appears later; one may go at any time,
    /// and then its output is dropped with the cell.
    #[inline]
    fn has_handle(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }

    /// Polls the child's future.
    #[inline]
    pub(super) fn poll<E>(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>>
    where
        R: Run<E>,
    {
        let has_handle = self.has_handle();
        // SAFETY: the owner is the one party that reaches the future (made with the cell,
        // not `Clone`), and it is borrowed mutably.
        unsafe { self.0.poll_run(cx, has_handle) }
    }
}

impl<R: ?Sized + DropRun> Drop for Owner<R> {
    fn drop(&mut self) {
        let has_handle = self.has_handle();
        // SAFETY: as in `poll`.
        unsafe { self.0.drop_run(has_handle) }
    }
}
