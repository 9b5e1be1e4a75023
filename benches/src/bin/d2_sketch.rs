//! A lower bound for designs D2, D4, D6 and D7 of the performance chapter ("the
//! single-thread rows, counted"), on smol-ct: what a child costs when its state lives in the
//! executor's own task (D2: one allocation per child, the executor's) and it has no node
//! of its own (D4: its waker and cancel flag in an entry of its nursery's list).
//!
//! This is not hatchery. Each child here does the least such a design would have to do:
//! it is admitted into its nursery's list (under the nursery's lock, with the live
//! count), its context installed around each poll as one word in a thread-local (as D5
//! proposes), its cancellation read before each poll (the nursery's flag, and its own
//! entry's only once some child was cancelled on its own), its waker left in its entry
//! when it suspends, and its end taken out of the list with the last one waking the
//! nursery. The first sketches' children have no error routing, no panic capture, no
//! label: whatever a hatchery child does beyond this is extra; the full child ([`Full`])
//! has those too. No child here has a deadline queue or a task tree (D4's list is its
//! tree). The sides, in one process, alternated, each timed inside a task spawned on an
//! `async-executor` run by this one thread (the benchmark's smol-ct):
//!
//! * `raw`: 100,000 tasks spawned into a `Vec<Task<()>>` and awaited in order (the
//!   benchmark's `spawn_join` raw side);
//! * `sketch`: 100,000 children spawned into the sketch's nursery, their executor tasks
//!   detached, and the nursery waited for (`spawn_join`, each handle dropped);
//! * `handles`: the same with each child's executor task kept and awaited in order, then
//!   the nursery (`spawn_handles`: the handle as the executor's own, which D2 allows);
//! * `lazy` and `lazy_handles`: the two rows again with design D6, a nursery whose
//!   children enter its list only when they suspend ([`LazyNursery`]): a child that ends
//!   in its first poll is admitted and let go with one atomic operation each on the
//!   nursery's count, and takes no lock. Its child is an `async` block around a
//!   `poll_fn` ([`Roomy`]: 72 bytes beside an empty future);
//! * `compact`, `compact_handles`, and `compact_waker`, `compact_waker_handles`: the same
//!   with design D7, a child that is a future of its own holding the nursery's pointer,
//!   its id and slot, and its future, nothing else ([`Compact`]: 24 bytes beside an
//!   empty future, or 40 with a copy of the waker it left in the list);
//! * `raw_values`: the benchmark's `spawn_handles` raw side (tasks returning their index,
//!   awaited in order and summed);
//! * `full`, `full_handles`, `full_bare_handles`, `full_waker_handles`: D7 with what a
//!   hatchery child does beyond it ([`Full`]): its label (where it was spawned), its
//!   future's `Result` (an error kept and the nursery cancelled), its panic caught (kept
//!   the same way), its value the executor task's output, joined through a handle that
//!   can cancel it alone ([`FullHandle`]: the task, the nursery's pointer and the id);
//!   `full` is the benchmark's `spawn_join` (children returning `Ok(())`, handles
//!   dropped), `full_handles` its `spawn_handles` (`Ok(index)`, joined and summed,
//!   against `raw_values`), `full_bare_handles` the same with the executor's bare task
//!   as the handle (it cannot cancel its child alone), `full_waker_handles` with the
//!   waker's copy.
//!
//! The nurseries ([`LockedNursery`], the first sketch's, and [`LazyNursery`] in each
//! shape) can cancel a child alone and all of their children, and each is checked to
//! before anything is timed ([`check_cancel`]): a child cancelled alone ends and its
//! siblings go on; children parked before the nursery's cancel and one spawned after it
//! all end, and the nursery's wait with them. The full child is checked further
//! ([`check_full`]): cancelled through its handle, failing with an error, and panicking.
//!
//! `memory` counts the bytes (with the benchmark's counting allocator) and the resident
//! set that 100,000 parked children hold, raw tasks against full children, and the bytes
//! of one `spawn_handles` child's allocation and handle.
//!
//! ```sh
//! cargo run --release -p hatchery-benches --bin d2_sketch
//! # one side, `reps` runs, for callgrind (a child's count: the difference of 3 and 1 runs)
//! cargo run --release -p hatchery-benches --bin d2_sketch -- full_handles 3
//! # a parked child's bytes, raw and full; a spawn_handles child's allocation and handle
//! cargo run --release -p hatchery-benches --bin d2_sketch -- memory
//! ```

use std::any::Any;
use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_executor::{Executor, Task};
use futures_lite::future::yield_now;
use futures_util::task::AtomicWaker;
use futures_util::FutureExt;
use hatchery_bench_alloc::Counting;

#[path = "../raw_smol.rs"]
mod raw_smol;
#[path = "../rss.rs"]
mod rss;

use rss::rss;

#[global_allocator]
static ALLOCATOR: Counting = Counting::new();

/// Children parked for the memory count.
const PARKED: usize = 100_000;

/// Children per run.
const CHILDREN: usize = 100_000;
/// Timed runs per side (after one warm-up each); the median is printed.
const RUNS: usize = 7;

thread_local! {
    /// The context of the child being polled, one word (D5).
    static CONTEXT: Cell<usize> = const { Cell::new(0) };
}

/// What the sides ask of a sketched nursery.
trait Group: Default + Send + Sync + 'static {
    /// Spawns `fut` as a child: its id (to cancel it alone) and the executor's task, its
    /// handle.
    fn spawn<F>(self: &Arc<Self>, ex: &Executor<'static>, fut: F) -> (u32, Task<()>)
    where
        F: Future<Output = ()> + Send + 'static;
    /// Waits until every child has ended.
    fn wait(&self) -> impl Future<Output = ()> + Send + '_;
    /// Cancels every child, those spawned later too.
    fn cancel(&self);
    /// Cancels the child `id` alone (an id that [`spawn`](Group::spawn) gave a child
    /// still alive: the locked nursery's ids are its slots, which a later child reuses).
    fn cancel_one(&self, id: u32);
    /// The children alive.
    fn live(&self) -> usize;
}

/// Installs a child's context (one word), runs `f`, and puts back the one around it.
#[inline]
fn with_context<R>(context: usize, f: impl FnOnce() -> R) -> R {
    let prev = CONTEXT.with(|c| c.replace(context));
    let out = f();
    CONTEXT.with(|c| c.set(prev));
    out
}

/// A free slot of `entries`, or a new one, holding `entry`.
#[inline(always)]
fn insert<T>(entries: &mut Vec<Option<T>>, free: &mut Vec<u32>, entry: T) -> u32 {
    match free.pop() {
        Some(slot) => {
            entries[slot as usize] = Some(entry);
            slot
        }
        None => {
            entries.push(Some(entry));
            u32::try_from(entries.len() - 1).expect("too many children")
        }
    }
}

// ----- D2 and D4: every child in its nursery's locked list -----

/// A child's entry in its nursery's list (D4): its waker and its own cancel flag.
struct Entry {
    waker: Option<Waker>,
    cancelled: bool,
}

/// The nursery's list and count, under its lock.
#[derive(Default)]
struct List {
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    live: usize,
    /// The nursery's waker, while it waits for its children.
    parent: Option<Waker>,
}

impl List {
    /// Whether the child in `slot` was cancelled alone.
    fn cancelled(&self, slot: u32) -> bool {
        self.entries[slot as usize]
            .as_ref()
            .is_some_and(|e| e.cancelled)
    }
}

/// D2 and D4: a nursery whose every child has an entry in its list from its spawn to its
/// end, taken and let go under the list's lock. A child's id is its slot in the list.
#[derive(Default)]
struct LockedNursery {
    /// The whole nursery is cancelled.
    cancelled: AtomicBool,
    /// Some child was cancelled on its own: its entry says which.
    some_cancelled: AtomicBool,
    list: Mutex<List>,
}

impl LockedNursery {
    fn list(&self) -> MutexGuard<'_, List> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the child in `slot` is cancelled.
    fn is_cancelled(&self, slot: u32) -> bool {
        self.cancelled.load(Ordering::Acquire)
            || (self.some_cancelled.load(Ordering::Acquire) && self.list().cancelled(slot))
    }

    /// A child's poll: its context installed, its cancellation read, its future polled,
    /// and then its waker left in its entry (and its cancellation read again, which may
    /// have come before the waker was there), or its end recorded.
    fn poll_child<F: Future<Output = ()>>(
        &self,
        slot: u32,
        fut: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let context = std::ptr::from_ref(self) as usize + slot as usize;
        let poll = with_context(context, || {
            if self.is_cancelled(slot) {
                Poll::Ready(())
            } else {
                fut.poll(cx)
            }
        });
        if poll.is_pending() {
            let cancelled = {
                let mut list = self.list();
                if let Some(entry) = list.entries[slot as usize].as_mut() {
                    if !entry
                        .waker
                        .as_ref()
                        .is_some_and(|w| w.will_wake(cx.waker()))
                    {
                        entry.waker = Some(cx.waker().clone());
                    }
                }
                self.cancelled.load(Ordering::Acquire) || list.cancelled(slot)
            };
            if cancelled {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        let (entry, wake) = {
            let mut list = self.list();
            let entry = list.entries[slot as usize].take();
            list.free.push(slot);
            list.live -= 1;
            let wake = if list.live == 0 {
                list.parent.take()
            } else {
                None
            };
            (entry, wake)
        };
        // Wakers dropped and woken outside the lock.
        drop(entry);
        if let Some(waker) = wake {
            waker.wake();
        }
        Poll::Ready(())
    }
}

impl Group for LockedNursery {
    fn spawn<F>(self: &Arc<Self>, ex: &Executor<'static>, fut: F) -> (u32, Task<()>)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let slot = {
            let mut list = self.list();
            list.live += 1;
            let List { entries, free, .. } = &mut *list;
            let entry = Entry {
                waker: None,
                cancelled: false,
            };
            insert(entries, free, entry)
        };
        let nursery = self.clone();
        let task = ex.spawn(async move {
            let mut fut = std::pin::pin!(fut);
            std::future::poll_fn(|cx| nursery.poll_child(slot, fut.as_mut(), cx)).await;
        });
        (slot, task)
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            let mut list = self.list();
            if list.live == 0 {
                return Poll::Ready(());
            }
            list.parent = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }

    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        let wakers: Vec<Waker> = self
            .list()
            .entries
            .iter()
            .flatten()
            .filter_map(|e| e.waker.clone())
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }

    fn cancel_one(&self, id: u32) {
        let waker = {
            let mut list = self.list();
            let Some(entry) = list.entries[id as usize].as_mut() else {
                return;
            };
            entry.cancelled = true;
            let waker = entry.waker.clone();
            self.some_cancelled.store(true, Ordering::Release);
            waker
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn live(&self) -> usize {
        self.list().live
    }
}

// ----- D6: a child in its nursery's list only while it waits -----

/// The live children of a [`LazyNursery`]: the low half of its count.
const LIVE: u64 = u32::MAX as u64;
/// One child admitted: one more alive (low half), and one more admitted so far (high
/// half, whose value before is the child's id).
const ADMIT: u64 = 1 + (1 << 32);

/// D6: a nursery whose children enter its list only when they suspend. Admitting a child
/// and ending one that never suspended is one atomic operation each on the count; the
/// list, under its lock, holds only the children that wait (to be woken when the
/// nursery is cancelled), and the requests to cancel a child alone. `S` is the shape of
/// a child's executor task ([`Shape`]).
#[derive(Default)]
struct LazyNursery<S> {
    /// The whole nursery is cancelled.
    cancelled: AtomicBool,
    /// Some child was cancelled on its own: the list's requests say which.
    some_cancelled: AtomicBool,
    /// Low half: children alive; high half: children admitted so far.
    count: AtomicU64,
    /// The nursery's waker, while it waits for its children.
    parent: AtomicWaker,
    parked: Mutex<Parked>,
    /// The children that failed (returned an error or panicked), where each was spawned.
    failures: Mutex<Vec<Failure>>,
    shape: PhantomData<S>,
}

/// A child's failure, as a nursery of the full shape ([`Full`]) keeps it: where the child
/// was spawned (its label), and its error or its panic's payload.
type Failure = (&'static Location<'static>, Box<dyn Any + Send>);

/// The children of a [`LazyNursery`] that have suspended (their id and waker), and the
/// cancel requests.
#[derive(Default)]
struct Parked {
    entries: Vec<Option<(u32, Waker)>>,
    free: Vec<u32>,
    /// Ids of the children cancelled on their own.
    cancel: Vec<u32>,
}

/// What a child of a [`LazyNursery`] keeps in its own task: its id, its entry in the
/// list once it has suspended, and what it remembers of the waker it left there (`W`).
struct LazyChild<W> {
    id: u32,
    /// Its entry in the list, or [`NO_SLOT`] before it first suspends.
    slot: u32,
    waker: W,
}

impl<W: Default> LazyChild<W> {
    /// Child `id`, not yet in the list, remembering no waker.
    fn new(id: u32) -> LazyChild<W> {
        LazyChild {
            id,
            slot: NO_SLOT,
            waker: W::default(),
        }
    }
}

/// A [`LazyChild`]'s slot before it has one.
const NO_SLOT: u32 = u32::MAX;
/// A [`LazyChild`]'s slot once it has ended.
const ENDED: u32 = u32::MAX - 1;

/// How a child tells that the waker it left in its nursery's list is the one it is polled
/// with again: by a copy of its own (`Option<Waker>`: 16 bytes of its task, and no lock
/// when it is the same), or not at all (`()`: the entry's waker compared under the lock).
trait Remembered: Default + Send + 'static {
    /// Whether `waker` is the one remembered; if not, remembers it (if it can).
    fn same_or_keep(&mut self, waker: &Waker) -> bool;
}

impl Remembered for Option<Waker> {
    fn same_or_keep(&mut self, waker: &Waker) -> bool {
        if self.as_ref().is_some_and(|w| w.will_wake(waker)) {
            return true;
        }
        *self = Some(waker.clone());
        false
    }
}

impl Remembered for () {
    fn same_or_keep(&mut self, _: &Waker) -> bool {
        false
    }
}

/// The shape of a [`LazyNursery`]'s child as its executor task holds it.
trait Shape: Default + Send + Sync + Sized + 'static {
    /// The child's future (what the executor's task allocates room for).
    fn child<F>(
        nursery: Arc<LazyNursery<Self>>,
        id: u32,
        fut: F,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future<Output = ()> + Send + 'static;
}

/// The first D6 sketch's shape: an `async` block around a `poll_fn` that borrows the
/// child and its pinned future (three pointers), the child with a copy of its waker.
#[derive(Default)]
struct Roomy;

impl Shape for Roomy {
    fn child<F>(
        nursery: Arc<LazyNursery<Self>>,
        id: u32,
        fut: F,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut child = LazyChild::<Option<Waker>>::new(id);
        async move {
            let mut fut = std::pin::pin!(fut);
            std::future::poll_fn(|cx| {
                nursery
                    .poll_child(&mut child, cx, |cx| fut.as_mut().poll(cx))
                    .map(drop)
            })
            .await;
        }
    }
}

/// Design D7, a compact child: a future of its own holding the nursery's pointer, the
/// child (id and slot, and what it remembers of its waker: `W`) and the child's future,
/// nothing else.
#[derive(Default)]
struct Compact<W>(PhantomData<W>);

pin_project_lite::pin_project! {
    /// A child of design D7 as its executor task holds it: a [`Compact`] one, whose
    /// label `L` is `()`, or a [`Full`] one, whose label is where it was spawned.
    /// Dropped unfinished (its executor gone, or its task cancelled by the executor), it
    /// ends as if it had been cancelled.
    struct ChildTask<S, W, L, F> {
        nursery: Arc<LazyNursery<S>>,
        child: LazyChild<W>,
        label: L,
        #[pin]
        fut: F,
    }

    impl<S, W, L, F> PinnedDrop for ChildTask<S, W, L, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if this.child.slot != ENDED {
                this.nursery.end(this.child);
            }
        }
    }
}

impl<S, W: Remembered, F: Future<Output = ()>> Future for ChildTask<S, W, (), F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let fut = this.fut;
        this.nursery
            .poll_child(this.child, cx, |cx| fut.poll(cx))
            .map(drop)
    }
}

impl<W: Remembered + Sync> Shape for Compact<W> {
    fn child<F>(
        nursery: Arc<LazyNursery<Self>>,
        id: u32,
        fut: F,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future<Output = ()> + Send + 'static,
    {
        ChildTask {
            nursery,
            child: LazyChild::<W>::new(id),
            label: (),
            fut,
        }
    }
}

/// Design D7 with what a hatchery child does beyond the rest of the sketch: a compact
/// child that also keeps its label (where it was spawned: one word), whose future
/// returns a `Result`, its error kept and its nursery cancelled, whose panic is caught
/// and kept the same way, and whose value is its executor task's output (the handle the
/// executor's own, as D2 allows): `None` if it was cancelled or failed.
#[derive(Default)]
struct Full<W>(PhantomData<W>);

impl<S, W, T, E, F> Future for ChildTask<S, W, &'static Location<'static>, F>
where
    W: Remembered,
    E: Send + 'static,
    F: Future<Output = Result<T, E>>,
{
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.project();
        let (nursery, site, mut fut) = (&**this.nursery, *this.label, this.fut);
        nursery
            .poll_child(this.child, cx, |cx| {
                match panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
                    Ok(Poll::Pending) => Poll::Pending,
                    Ok(Poll::Ready(Ok(value))) => Poll::Ready(Some(value)),
                    Ok(Poll::Ready(Err(error))) => {
                        nursery.fail(site, Box::new(error));
                        Poll::Ready(None)
                    }
                    Err(payload) => {
                        nursery.fail(site, payload);
                        Poll::Ready(None)
                    }
                }
            })
            .map(Option::flatten)
    }
}

/// A [`Full`] child's handle, holding what a hatchery `TaskHandle` would under D2: the
/// executor's task (whose output is the child's value) and what cancelling the child
/// alone takes (its nursery and its id). Dropped, it lets the child run on.
struct FullHandle<W, T> {
    /// `None` once joined.
    task: Option<Task<Option<T>>>,
    nursery: Arc<LazyNursery<Full<W>>>,
    id: u32,
}

impl<W: Remembered + Sync, T> FullHandle<W, T> {
    /// Cancels the child alone.
    fn cancel(&self) {
        self.nursery.cancel_one(self.id);
    }

    /// The child's value, or `None` if it was cancelled or failed.
    async fn join(mut self) -> Option<T> {
        self.task.take().expect("a handle is joined once").await
    }
}

impl<W, T> Drop for FullHandle<W, T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<W: Remembered + Sync> LazyNursery<Full<W>> {
    /// Spawns `fut` as a child: its value, or `None` if it was cancelled or failed, is
    /// the executor task's output, joined through the handle.
    #[track_caller]
    fn spawn_full<T, E, F>(self: &Arc<Self>, ex: &Executor<'static>, fut: F) -> FullHandle<W, T>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let id = self.admit();
        FullHandle {
            task: Some(ex.spawn(self.full_child(id, fut))),
            nursery: self.clone(),
            id,
        }
    }

    /// The future of child `id`, spawned where the caller was.
    #[track_caller]
    fn full_child<F>(
        self: &Arc<Self>,
        id: u32,
        fut: F,
    ) -> ChildTask<Full<W>, W, &'static Location<'static>, F> {
        ChildTask {
            nursery: self.clone(),
            child: LazyChild::new(id),
            label: Location::caller(),
            fut,
        }
    }
}

impl<W: Remembered + Sync> Shape for Full<W> {
    fn child<F>(
        nursery: Arc<LazyNursery<Self>>,
        id: u32,
        fut: F,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future<Output = ()> + Send + 'static,
    {
        nursery
            .full_child(id, fut.map(Ok::<(), Infallible>))
            .map(drop)
    }
}

impl<S> LazyNursery<S> {
    /// Admits a child: one more alive, and its id (the children admitted before it).
    fn admit(&self) -> u32 {
        let before = self.count.fetch_add(ADMIT, Ordering::Relaxed);
        (before >> 32) as u32
    }

    fn parked(&self) -> MutexGuard<'_, Parked> {
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_cancelled<W>(&self, child: &LazyChild<W>) -> bool {
        self.cancelled.load(Ordering::Acquire)
            || (self.some_cancelled.load(Ordering::Acquire)
                && self.parked().cancel.contains(&child.id))
    }

    /// A child's poll: its context installed, its cancellation read, its future polled
    /// (by `poll`); if it suspends, its waker left in the list (only when it changed) and
    /// its cancellation read again (a cancellation that came before the entry was in
    /// found no waker to wake); if it ends, its entry (if any) taken out and the count let
    /// down, the last one waking the nursery. Ends with `None` if it was cancelled.
    fn poll_child<W: Remembered, T>(
        &self,
        child: &mut LazyChild<W>,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<Option<T>> {
        let context = std::ptr::from_ref(self) as usize + child.id as usize;
        let poll = with_context(context, || {
            if self.is_cancelled(child) {
                Poll::Ready(None)
            } else {
                poll(cx).map(Some)
            }
        });
        if poll.is_pending() {
            if child.waker.same_or_keep(cx.waker()) {
                return Poll::Pending;
            }
            {
                let mut parked = self.parked();
                if child.slot == NO_SLOT {
                    let Parked { entries, free, .. } = &mut *parked;
                    child.slot = insert(entries, free, (child.id, cx.waker().clone()));
                } else {
                    let (_, waker) = parked.entries[child.slot as usize]
                        .as_mut()
                        .expect("a child's entry stays in the list until it ends");
                    if waker.will_wake(cx.waker()) {
                        return Poll::Pending;
                    }
                    waker.clone_from(cx.waker());
                }
            }
            if self.is_cancelled(child) {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        self.end(child);
        poll
    }

    /// A child's end: its entry (if any) taken out and the count let down, the last one
    /// waking the nursery; its slot [`ENDED`] after.
    fn end<W>(&self, child: &mut LazyChild<W>) {
        let slot = std::mem::replace(&mut child.slot, ENDED);
        if slot != NO_SLOT {
            let entry = {
                let mut parked = self.parked();
                parked.free.push(slot);
                parked.entries[slot as usize].take()
            };
            drop(entry);
        }
        if self.count.fetch_sub(1, Ordering::AcqRel) & LIVE == 1 {
            self.parent.wake();
        }
    }

    /// A child spawned at `site` failed with `payload`: kept, and the nursery cancelled.
    fn fail(&self, site: &'static Location<'static>, payload: Box<dyn Any + Send>) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((site, payload));
        self.cancel_all();
    }

    /// Cancels every child, those spawned later too.
    fn cancel_all(&self) {
        self.cancelled.store(true, Ordering::Release);
        let wakers: Vec<Waker> = self
            .parked()
            .entries
            .iter()
            .flatten()
            .map(|(_, waker)| waker.clone())
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }
}

impl<S: Shape> Group for LazyNursery<S> {
    fn spawn<F>(self: &Arc<Self>, ex: &Executor<'static>, fut: F) -> (u32, Task<()>)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let id = self.admit();
        (id, ex.spawn(S::child(self.clone(), id, fut)))
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.live() == 0 {
                return Poll::Ready(());
            }
            self.parent.register(cx.waker());
            if self.live() == 0 {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await;
    }

    fn cancel(&self) {
        self.cancel_all();
    }

    fn cancel_one(&self, id: u32) {
        let waker = {
            let mut parked = self.parked();
            parked.cancel.push(id);
            self.some_cancelled.store(true, Ordering::Release);
            parked
                .entries
                .iter()
                .flatten()
                .find(|(child, _)| *child == id)
                .map(|(_, waker)| waker.clone())
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn live(&self) -> usize {
        (self.count.load(Ordering::Acquire) & LIVE) as usize
    }
}

// ----- the sides -----

/// The benchmark's `spawn_join` raw side: empty tasks, kept, awaited in order (the
/// benchmark's own code).
async fn raw(ex: Arc<Executor<'static>>) -> Duration {
    raw_smol::smol_spawn_join(&ex, CHILDREN, || async {}).await
}

/// `spawn_join`: the children's executor tasks detached, the nursery waited for.
async fn dropped<N: Group>(ex: Arc<Executor<'static>>) -> Duration {
    let start = Instant::now();
    let nursery = Arc::new(N::default());
    for _ in 0..CHILDREN {
        nursery.spawn(&ex, async {}).1.detach();
    }
    nursery.wait().await;
    start.elapsed()
}

/// `spawn_handles`: each child's executor task kept and awaited in order, then the
/// nursery.
async fn kept<N: Group>(ex: Arc<Executor<'static>>) -> Duration {
    let start = Instant::now();
    let nursery = Arc::new(N::default());
    let tasks: Vec<Task<()>> = (0..CHILDREN)
        .map(|_| nursery.spawn(&ex, async {}).1)
        .collect();
    for task in tasks {
        task.await;
    }
    nursery.wait().await;
    start.elapsed()
}

/// The benchmark's `spawn_handles` raw side: tasks returning their index, kept, awaited in
/// order and summed (the benchmark's own code).
async fn raw_values(ex: Arc<Executor<'static>>) -> Duration {
    raw_smol::smol_spawn_handles(&ex, CHILDREN).await
}

/// The benchmark's `spawn_join` with the full child ([`Full`]): children returning
/// `Ok(())`, their handles dropped, the nursery waited for.
async fn full_dropped<W: Remembered + Sync>(ex: Arc<Executor<'static>>) -> Duration {
    let start = Instant::now();
    let nursery = Arc::new(LazyNursery::<Full<W>>::default());
    for _ in 0..CHILDREN {
        drop(nursery.spawn_full(&ex, async { Ok::<(), Infallible>(()) }));
    }
    nursery.wait().await;
    start.elapsed()
}

/// The benchmark's `spawn_handles` with the full child ([`Full`]): children returning
/// `Ok(index)`, kept, awaited in order and summed, then the nursery.
async fn full_kept<W: Remembered + Sync>(ex: Arc<Executor<'static>>) -> Duration {
    let start = Instant::now();
    let nursery = Arc::new(LazyNursery::<Full<W>>::default());
    let handles: Vec<FullHandle<W, usize>> = (0..CHILDREN)
        .map(|i| nursery.spawn_full(&ex, async move { Ok::<usize, Infallible>(i) }))
        .collect();
    let mut sum = 0;
    for handle in handles {
        sum += handle.join().await.expect("no child is cancelled");
    }
    nursery.wait().await;
    black_box(sum);
    start.elapsed()
}

/// [`full_kept`] with each handle the executor's bare task (no nursery, no id: it cannot
/// cancel its child alone), to tell what a hatchery handle's two words cost.
async fn full_kept_bare(ex: Arc<Executor<'static>>) -> Duration {
    let start = Instant::now();
    let nursery = Arc::new(LazyNursery::<Full<()>>::default());
    let tasks: Vec<Task<Option<usize>>> = (0..CHILDREN)
        .map(|i| {
            ex.spawn(nursery.full_child(nursery.admit(), async move { Ok::<usize, Infallible>(i) }))
        })
        .collect();
    let mut sum = 0;
    for task in tasks {
        sum += task.await.expect("no child is cancelled");
    }
    nursery.wait().await;
    black_box(sum);
    start.elapsed()
}

/// A side: its name, the raw side it is compared with, and how it is spawned.
type Side = (
    &'static str,
    &'static str,
    fn(&Arc<Executor<'static>>) -> Task<Duration>,
);

/// The sides, in the order they are run and printed.
const SIDES: [Side; 14] = [
    ("raw", "raw", |ex| ex.spawn(raw(ex.clone()))),
    ("sketch", "raw", |ex| {
        ex.spawn(dropped::<LockedNursery>(ex.clone()))
    }),
    ("handles", "raw", |ex| {
        ex.spawn(kept::<LockedNursery>(ex.clone()))
    }),
    ("lazy", "raw", |ex| {
        ex.spawn(dropped::<LazyNursery<Roomy>>(ex.clone()))
    }),
    ("lazy_handles", "raw", |ex| {
        ex.spawn(kept::<LazyNursery<Roomy>>(ex.clone()))
    }),
    ("compact", "raw", |ex| {
        ex.spawn(dropped::<LazyNursery<Compact<()>>>(ex.clone()))
    }),
    ("compact_handles", "raw", |ex| {
        ex.spawn(kept::<LazyNursery<Compact<()>>>(ex.clone()))
    }),
    ("compact_waker", "raw", |ex| {
        ex.spawn(dropped::<LazyNursery<Compact<Option<Waker>>>>(ex.clone()))
    }),
    ("compact_waker_handles", "raw", |ex| {
        ex.spawn(kept::<LazyNursery<Compact<Option<Waker>>>>(ex.clone()))
    }),
    ("raw_values", "raw_values", |ex| {
        ex.spawn(raw_values(ex.clone()))
    }),
    ("full", "raw", |ex| ex.spawn(full_dropped::<()>(ex.clone()))),
    ("full_handles", "raw_values", |ex| {
        ex.spawn(full_kept::<()>(ex.clone()))
    }),
    ("full_bare_handles", "raw_values", |ex| {
        ex.spawn(full_kept_bare(ex.clone()))
    }),
    ("full_waker_handles", "raw_values", |ex| {
        ex.spawn(full_kept::<Option<Waker>>(ex.clone()))
    }),
];

/// One run of `side`, in a task spawned on `ex`: ns a child.
fn run(ex: &Arc<Executor<'static>>, side: &str) -> f64 {
    let Some((_, _, spawn)) = SIDES.iter().find(|(name, ..)| *name == side) else {
        let names: Vec<&str> = SIDES.iter().map(|(name, ..)| *name).collect();
        panic!("d2_sketch: no side {side:?} ({})", names.join(", "));
    };
    let took = async_io::block_on(ex.run(spawn(ex)));
    // Read, so that the children's writes of their context are kept.
    black_box(CONTEXT.with(Cell::get));
    took.as_secs_f64() * 1e9 / CHILDREN as f64
}

/// The bytes of a child's future of shape `S` (with an empty future of its own), which
/// its executor task holds.
fn child_size<S: Shape>() -> usize {
    std::mem::size_of_val(&S::child(Arc::default(), 0, async {}))
}

/// The bytes of a [`Full`] child's future (with an empty future of its own, returning
/// `Ok(())`).
fn full_size<W: Remembered + Sync>() -> usize {
    let nursery = Arc::<LazyNursery<Full<W>>>::default();
    std::mem::size_of_val(&nursery.full_child(0, async { Ok::<(), Infallible>(()) }))
}

fn main() {
    let ex = Arc::new(Executor::new());
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [side, reps] = args.as_slice() {
        let reps: usize = reps.parse().expect("d2_sketch: reps is a number");
        for _ in 0..reps {
            black_box(run(&ex, side));
        }
        return;
    }
    if args == ["memory"] {
        check_full(&ex);
        // The raw side's children stay parked until the process ends.
        let raw = memory(&ex, |ex, polled| {
            ex.spawn(park(polled, Ok::<(), Infallible>(()))).detach();
        });
        let nursery = Arc::new(LazyNursery::<Full<()>>::default());
        let n = nursery.clone();
        let full = memory(&ex, move |ex, polled| {
            drop(n.spawn_full(ex, park(polled, Ok::<(), Infallible>(()))));
        });
        // The full side's children end when their nursery is cancelled.
        nursery.cancel_all();
        let e = ex.clone();
        async_io::block_on(ex.run(e.spawn(async move { nursery.wait().await })));
        println!(
            "smol-ct, {PARKED} children parked in pending(), a child: raw {:.0} bytes \
             ({:.0} resident), full {:.0} bytes ({:.0} resident): +{:.0} bytes",
            raw.0,
            raw.1,
            full.0,
            full.1,
            full.0 - raw.0,
        );
        let [raw, full] = spawned_bytes(&ex);
        println!(
            "a spawn_handles child's allocation: raw {raw} bytes, full {full} bytes; its \
             handle: raw {} bytes, full {} bytes",
            std::mem::size_of::<Task<usize>>(),
            std::mem::size_of::<FullHandle<(), usize>>(),
        );
        return;
    }
    assert!(args.is_empty(), "usage: d2_sketch [SIDE REPS | memory]");
    check_cancel::<LockedNursery>(&ex);
    check_cancel::<LazyNursery<Roomy>>(&ex);
    check_cancel::<LazyNursery<Compact<()>>>(&ex);
    check_cancel::<LazyNursery<Compact<Option<Waker>>>>(&ex);
    check_cancel::<LazyNursery<Full<()>>>(&ex);
    check_full(&ex);
    let mut times: Vec<Vec<f64>> = vec![vec![]; SIDES.len()];
    for (side, ..) in SIDES {
        run(&ex, side);
    }
    for _ in 0..RUNS {
        for ((side, ..), times) in SIDES.iter().zip(&mut times) {
            times.push(run(&ex, side));
        }
    }
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect();
    let median_of = |name: &str| medians[SIDES.iter().position(|(n, ..)| *n == name).unwrap()];
    let cells: Vec<String> = SIDES
        .iter()
        .zip(&medians)
        .map(|((side, against, _), ns)| {
            format!("{side} {ns:.0} ns ({:.2}x)", ns / median_of(against))
        })
        .collect();
    println!(
        "smol-ct, {CHILDREN} children, median of {RUNS} runs, a child: {}; a child's \
         future, empty: lazy {} bytes, compact {} bytes, compact_waker {} bytes, full {} \
         bytes, full_waker {} bytes",
        cells.join(", "),
        child_size::<Roomy>(),
        child_size::<Compact<()>>(),
        child_size::<Compact<Option<Waker>>>(),
        full_size::<()>(),
        full_size::<Option<Waker>>(),
    );
}

/// Yields until `done` holds, at most 1,000 times; whether it held. (The children run on
/// this thread between two yields of the task that checks.)
async fn settle(done: impl Fn() -> bool) -> bool {
    for _ in 0..1_000 {
        if done() {
            return true;
        }
        yield_now().await;
    }
    done()
}

/// A nursery's cancellation works: a child cancelled alone ends while its siblings wait
/// on; the nursery's cancel ends those, which had suspended, and a child spawned after it
/// at its first poll; and the nursery's wait ends with them.
fn check_cancel<N: Group>(ex: &Arc<Executor<'static>>) {
    let nursery = Arc::new(N::default());
    let n = nursery.clone();
    let e = ex.clone();
    let task = ex.spawn(async move {
        let ids: Vec<u32> = (0..3)
            .map(|_| {
                let (id, task) = n.spawn(&e, std::future::pending());
                task.detach();
                id
            })
            .collect();
        // Let the three suspend.
        assert!(!settle(|| n.live() < 3).await, "a child ended uncancelled");
        n.cancel_one(ids[1]);
        assert!(
            settle(|| n.live() == 2).await,
            "a child cancelled alone did not end"
        );
        assert!(
            !settle(|| n.live() < 2).await,
            "cancelling one child ended another"
        );
        n.cancel();
        // One more after the cancel: ends at its first poll.
        n.spawn(&e, std::future::pending()).1.detach();
        assert!(
            settle(|| n.live() == 0).await,
            "the nursery's cancel left a child"
        );
        n.wait().await;
    });
    async_io::block_on(ex.run(task));
    assert_eq!(nursery.live(), 0);
}

/// A [`Full`] child cancelled through its handle ends alone and joins with `None`, and a
/// sibling's value is joined; children dropped unfinished with their executor end; a
/// child that fails cancels its nursery, and its failure is
/// kept with where it was spawned: one that returns an error, and one that panics (its
/// payload caught, the executor's thread going on), each with a sibling parked to be
/// cancelled.
fn check_full(ex: &Arc<Executor<'static>>) {
    let nursery = Arc::new(LazyNursery::<Full<()>>::default());
    let e = ex.clone();
    let joined = ex.spawn(async move {
        let parked = nursery.spawn_full(&e, async {
            std::future::pending::<()>().await;
            Ok::<u8, Infallible>(1)
        });
        let valued = nursery.spawn_full(&e, async {
            yield_now().await;
            Ok::<u8, Infallible>(2)
        });
        assert!(
            !settle(|| nursery.live() < 1).await,
            "a child ended uncancelled"
        );
        parked.cancel();
        assert!(
            settle(|| nursery.live() == 0).await,
            "a child cancelled through its handle did not end"
        );
        (parked.join().await, valued.join().await)
    });
    assert_eq!(async_io::block_on(ex.run(joined)), (None, Some(2)));
    // Children whose executor goes away, one parked and one never polled, end with it.
    let gone = Arc::new(Executor::new());
    let nursery = Arc::new(LazyNursery::<Full<()>>::default());
    drop(nursery.spawn_full(&gone, async {
        std::future::pending::<()>().await;
        Ok::<(), Infallible>(())
    }));
    assert!(gone.try_tick(), "the parked child was not polled");
    drop(nursery.spawn_full(&gone, async { Ok::<(), Infallible>(()) }));
    assert_eq!(nursery.live(), 2);
    drop(gone);
    assert_eq!(nursery.live(), 0, "a child dropped unfinished did not end");

    // The child's panic is expected: not printed (any other panic is).
    let hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"the child's panic") {
            hook(info);
        }
    }));
    for panics in [false, true] {
        let nursery = Arc::new(LazyNursery::<Full<()>>::default());
        let n = nursery.clone();
        let e = ex.clone();
        let sites = ex.spawn(async move {
            let parked = n.spawn_full(&e, async {
                std::future::pending::<()>().await;
                Ok::<(), &str>(())
            });
            assert!(!settle(|| n.live() < 1).await, "a child ended uncancelled");
            let failing = n.spawn_full(&e, fail(panics));
            let line = line!();
            assert!(
                settle(|| n.live() == 0).await,
                "a child's failure did not cancel its sibling"
            );
            n.wait().await;
            assert_eq!(
                parked.join().await,
                None,
                "the parked sibling was not cancelled"
            );
            assert_eq!(failing.join().await, None, "a failed child gave a value");
            line
        });
        let line = async_io::block_on(ex.run(sites));
        let failures = std::mem::take(&mut *nursery.failures.lock().unwrap());
        assert_eq!(failures.len(), 1, "one failure, kept once");
        let (spawned, payload) = &failures[0];
        assert_eq!(spawned.file(), file!());
        assert_eq!(
            spawned.line() + 1,
            line,
            "the failure's site is the child's spawn"
        );
        let expected = if panics {
            "the child's panic"
        } else {
            "the child's error"
        };
        assert_eq!(payload.downcast_ref::<&str>(), Some(&expected));
    }
}

/// A child that yields once and fails: panics, or returns an error.
async fn fail(panics: bool) -> Result<(), &'static str> {
    yield_now().await;
    assert!(!panics, "the child's panic");
    Err("the child's error")
}

/// A child that counts its first poll in `polled` and never ends (until cancelled).
async fn park<T>(polled: Arc<AtomicUsize>, never: T) -> T {
    polled.fetch_add(1, Ordering::Relaxed);
    std::future::pending::<()>().await;
    never
}

/// Bytes allocated and resident-set growth per child, while [`PARKED`] children spawned
/// by `spawn` (in a task on `ex`) are parked, each having counted its first poll.
fn memory(
    ex: &Arc<Executor<'static>>,
    spawn: impl Fn(&Executor<'static>, Arc<AtomicUsize>) + Send + 'static,
) -> (f64, f64) {
    let polled = Arc::new(AtomicUsize::new(0));
    let e = ex.clone();
    let p = polled.clone();
    let task = ex.spawn(async move {
        let rss_before = rss();
        ALLOCATOR.start();
        for _ in 0..PARKED {
            spawn(&e, p.clone());
        }
        while p.load(Ordering::Relaxed) < PARKED {
            yield_now().await;
        }
        let bytes = ALLOCATOR.stop();
        (bytes as f64, rss() - rss_before)
    });
    let (bytes, grown) = async_io::block_on(ex.run(task));
    assert_eq!(polled.load(Ordering::Relaxed), PARKED);
    (bytes / PARKED as f64, grown / PARKED as f64)
}

/// The bytes allocated to spawn one `spawn_handles` child (returning its index), a raw
/// task and a full child: what each executor task's allocation takes (the full side's
/// nursery made before the count).
fn spawned_bytes(ex: &Arc<Executor<'static>>) -> [isize; 2] {
    let e = ex.clone();
    let task = ex.spawn(async move {
        let nursery = Arc::new(LazyNursery::<Full<()>>::default());
        ALLOCATOR.start();
        let raw = e.spawn(async move { 7_usize });
        let raw_bytes = ALLOCATOR.stop();
        ALLOCATOR.start();
        let full = nursery.spawn_full(&e, async move { Ok::<usize, Infallible>(7) });
        let full_bytes = ALLOCATOR.stop();
        assert_eq!((raw.await, full.join().await), (7, Some(7)));
        [raw_bytes, full_bytes]
    });
    async_io::block_on(ex.run(task))
}
