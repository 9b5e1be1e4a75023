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
//!   the cell ([`send_child`], [`local_child`], the only places that make either), is
//!   not `Clone`, keeps its `Arc` to itself, polls through `&mut self` and drops the
//!   future once, in its `Drop` (the stage says it was dropped, so a destructor that
//!   panics is not run twice). Everybody else holds the cell as a [`HandleCell`], through
//!   which only the output is reachable.
//! * **Pinning.** The future lives in the `Arc`'s allocation, which never moves, and is
//!   dropped in place there before the allocation can be freed (by the owner's `Drop`,
//!   or never, if the owner is leaked: then the future is leaked too).
//! * **Lifetimes.** A handle holds the cell with the future's type forgotten
//!   ([`Cell::for_handle`]): the trait object's bound, `'env`, becomes `'static`. The
//!   cell's own destructor never drops the future (`ManuallyDrop`), so a handle that
//!   frees the cell after `'env` has ended touches only the output, whose `T` its type
//!   still names, and the memory.
//! * **Forgetting.** Soundness does not depend on a destructor running (rule I3 of the
//!   book): an owner forgotten with its nursery's future never polls nor drops the future
//!   again, and a handle that outlives it sees a child that never ended (`is_finished` is
//!   false, a `join` waits) and gives up only its own reference. Nothing the children
//!   borrow is reached after `'env`: the one lifetime changed is that of a type that is
//!   never used to reach the future.
//! * **Threads.** The cell is `Sync` for a `Send` future and a `Send` output: the handle
//!   shares only the output (a mutex and an atomic waker), and the owner moves access to
//!   the future between threads only by moving itself. A handle is `Send` and `Sync` for
//!   a `Send` output, as an `Arc<Mutex<T>>` is; it never reaches the future, which need
//!   not be `Send` (a local nursery's).

use std::cell::UnsafeCell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;

use crate::error::JoinError;

/// What a child shares with its handle: how it ended.
pub(super) struct Output<T> {
    slot: Mutex<Slot<T>>,
    /// The task of the handle's `join`, woken when the slot is filled.
    pub(super) waker: AtomicWaker,
}

/// How a child ended, as its handle takes it.
pub(super) enum Slot<T> {
    Running,
    Done(Result<T, JoinError>),
    Taken,
}

impl<T> Output<T> {
    fn new() -> Output<T> {
        Output {
            slot: Mutex::new(Slot::Running),
            waker: AtomicWaker::new(),
        }
    }

    /// The slot, locked.
    pub(super) fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        // No user code runs under this lock.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The child ended with `result`, unless it had ended already.
    fn put(&self, result: Result<T, JoinError>) {
        let mut slot = self.lock();
        if let Slot::Running = *slot {
            *slot = Slot::Done(result);
            drop(slot);
            self.waker.wake();
        }
    }

    /// Whether the child has ended.
    pub(super) fn is_finished(&self) -> bool {
        !matches!(*self.lock(), Slot::Running)
    }
}

/// A child's future and what its handle reads, in one allocation: the group owns the
/// future (through [`Owner`]), the handle reads the output, and the allocation lives
/// while either holds it. `F` is last so that the handle can name the cell without it
/// ([`Erased`]).
pub(super) struct Cell<T, F: ?Sized> {
    out: Output<T>,
    /// What the owner knows of the future ([`RUNNING`], [`RETURNED`], [`DROPPED`]),
    /// touched by the owner alone.
    stage: UnsafeCell<u8>,
    /// Dropped in place by the owner (never by the cell's own destructor: the handle may
    /// free the cell after the future's borrows have ended).
    fut: UnsafeCell<ManuallyDrop<F>>,
}

/// The future may be polled.
const RUNNING: u8 = 0;
/// The future returned, and its output says how: nothing to tell when it is dropped.
const RETURNED: u8 = 1;
/// The future has been dropped (or is being dropped).
const DROPPED: u8 = 2;

// SAFETY: the handle reaches only `out` (a mutex and an atomic waker, shared as they are
// when `T: Send`); `stage` and `fut` are reached by the cell's one `Owner` alone, through
// `&mut Owner`, so the future is never touched from two threads at once and moves to
// another thread only with the owner (hence `F: Send`, not `Sync`).
unsafe impl<T: Send, F: ?Sized + Send> Sync for Cell<T, F> {}

/// The cell with its future's type forgotten: what a handle holds. Any type is one.
pub(super) trait Erased {}

impl<F: ?Sized> Erased for F {}

/// A cell as a handle holds it: the future's type, and the lifetime of what it borrows,
/// forgotten. Only the output is reachable through it.
pub(super) struct HandleCell<T>(Arc<Cell<T, dyn Erased>>);

// SAFETY: a handle's cell reaches only the output (a mutex and an atomic waker over a
// `T`), never the future, whose type it forgets; freeing the cell on another thread
// drops only the output. So it is `Send` and `Sync` as an `Arc<Mutex<T>>` is.
unsafe impl<T: Send> Send for HandleCell<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Send> Sync for HandleCell<T> {}

impl<T> HandleCell<T> {
    /// What the handle reads.
    pub(super) fn output(&self) -> &Output<T> {
        &self.0.out
    }
}

/// A cell for `fut`, as its owner (a child of a `nursery`) and its handle hold it.
pub(super) fn send_child<'env, T, E, F>(
    fut: F,
) -> (Owner<dyn Run<E> + Send + Sync + 'env>, HandleCell<T>)
where
    F: Future<Output = Result<T, E>> + Send + 'env,
    T: Send + 'env,
{
    let cell = Cell::new(fut);
    let handle = Cell::for_handle(&cell);
    (Owner(cell), handle)
}

/// A cell for `fut`, as its owner (a child of a `local_nursery`) and its handle hold it.
pub(super) fn local_child<'env, T, E, F>(fut: F) -> (Owner<dyn Run<E> + 'env>, HandleCell<T>)
where
    F: Future<Output = Result<T, E>> + 'env,
    T: 'env,
{
    let cell = Cell::new(fut);
    let handle = Cell::for_handle(&cell);
    (Owner(cell), handle)
}

impl<T, F> Cell<T, F> {
    /// A cell for `fut`.
    fn new(fut: F) -> Arc<Self> {
        Arc::new(Cell {
            out: Output::new(),
            stage: UnsafeCell::new(RUNNING),
            fut: UnsafeCell::new(ManuallyDrop::new(fut)),
        })
    }

    /// The cell as its handle holds it.
    fn for_handle<'env>(this: &Arc<Self>) -> HandleCell<T>
    where
        F: 'env,
    {
        let cell: Arc<Cell<T, dyn Erased + 'env>> = this.clone();
        // SAFETY: only the bound on the trait object changes (the same pointer and
        // vtable). Through a handle's cell nothing reaches the future, the one part that
        // borrows for `'env` besides `T` (which the handle's type keeps): the owner drops
        // the future in place before the nursery ends, and the cell's destructor does
        // not drop it (`ManuallyDrop`), so a handle that frees the cell later touches
        // only its output and its memory.
        HandleCell(unsafe {
            std::mem::transmute::<Arc<Cell<T, dyn Erased + 'env>>, Arc<Cell<T, dyn Erased>>>(cell)
        })
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

/// Marks the output as panicked if a poll unwinds.
struct PanicMark<'a, T>(&'a Output<T>);

impl<T> Drop for PanicMark<'_, T> {
    fn drop(&mut self) {
        self.0.put(Err(JoinError::panicked()));
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
        // The handle learns of the end before the future's destructors run: the child is
        // finished once it is being dropped.
        if !returned && has_handle {
            self.out.put(Err(JoinError::cancelled()));
        }
        // SAFETY: the owner's exclusive access; the future has not been dropped
        // (`stage`), and nothing reads it after this.
        unsafe { ManuallyDrop::drop(&mut *self.fut.get()) };
    }
}

impl<T, E, F> Run<E> for Cell<T, F>
where
    F: Future<Output = Result<T, E>>,
{
    unsafe fn poll_run(&self, cx: &mut Context<'_>, has_handle: bool) -> Poll<Result<(), E>> {
        // SAFETY: the owner's exclusive access (the caller's contract).
        let stage = unsafe { &mut *self.stage.get() };
        assert!(
            *stage == RUNNING,
            "hatchery: internal error: an inline child polled after it returned"
        );
        // SAFETY: as above; and the future is pinned: it lives in the cell's allocation,
        // which never moves, and is dropped there (`drop_run`) before it is freed.
        let fut = unsafe { Pin::new_unchecked(&mut **self.fut.get()) };
        let mark = PanicMark(&self.out);
        let poll = fut.poll(cx);
        std::mem::forget(mark);
        match poll {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(v)) => {
                *stage = RETURNED;
                if has_handle {
                    self.out.put(Ok(v));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => {
                *stage = RETURNED;
                if has_handle {
                    self.out.put(Err(JoinError::failed()));
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
