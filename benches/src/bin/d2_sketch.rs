//! A lower bound for designs D2, D4 and D6 of the performance chapter ("the
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
//! nursery. It has no error routing, no panic capture, no label, no deadline queue, no
//! task tree: whatever a hatchery child does beyond this is extra. The sides, in one
//! process, alternated, each timed inside a task spawned on an `async-executor` run by
//! this one thread (the benchmark's smol-ct):
//!
//! * `raw`: 100,000 tasks spawned into a `Vec<Task<()>>` and awaited in order (the
//!   benchmark's `spawn_join` and `spawn_handles` raw side);
//! * `sketch`: 100,000 children spawned into the sketch's nursery, their executor tasks
//!   detached, and the nursery waited for (`spawn_join`, each handle dropped);
//! * `handles`: the same with each child's executor task kept and awaited in order, then
//!   the nursery (`spawn_handles`: the handle as the executor's own, which D2 allows);
//! * `lazy` and `lazy_handles`: the two rows again with design D6, a nursery whose
//!   children enter its list only when they suspend ([`LazyNursery`]): a child that ends
//!   in its first poll is admitted and let go with one atomic operation each on the
//!   nursery's count, and takes no lock.
//!
//! Both nurseries ([`LockedNursery`], the first sketch's, and [`LazyNursery`]) can
//! cancel a child alone and all of their children, and each is checked to before anything
//! is timed ([`check_cancel`]): a child cancelled alone ends and its siblings go on;
//! children parked before the nursery's cancel and one spawned after it all end, and the
//! nursery's wait with them.
//!
//! ```sh
//! cargo run --release -p hatchery-benches --bin d2_sketch
//! # one side, `reps` runs, for callgrind (a child's count: the difference of 3 and 1 runs)
//! cargo run --release -p hatchery-benches --bin d2_sketch -- lazy 3
//! ```

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_executor::{Executor, Task};
use futures_lite::future::yield_now;
use futures_util::task::AtomicWaker;

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
    /// Cancels the child `id` alone.
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
/// nursery is cancelled), and the requests to cancel a child alone.
#[derive(Default)]
struct LazyNursery {
    /// The whole nursery is cancelled.
    cancelled: AtomicBool,
    /// Some child was cancelled on its own: the list's requests say which.
    some_cancelled: AtomicBool,
    /// Low half: children alive; high half: children admitted so far.
    count: AtomicU64,
    /// The nursery's waker, while it waits for its children.
    parent: AtomicWaker,
    parked: Mutex<Parked>,
}

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
/// list once it has suspended, and the waker it left there.
struct LazyChild {
    id: u32,
    slot: Option<u32>,
    waker: Option<Waker>,
}

impl LazyNursery {
    fn parked(&self) -> MutexGuard<'_, Parked> {
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_cancelled(&self, child: &LazyChild) -> bool {
        self.cancelled.load(Ordering::Acquire)
            || (self.some_cancelled.load(Ordering::Acquire)
                && self.parked().cancel.contains(&child.id))
    }

    /// A child's poll: its context installed, its cancellation read, its future polled;
    /// if it suspends, its waker left in the list (only when it changed) and its
    /// cancellation read again (a cancellation that came before the entry was in found
    /// no waker to wake); if it ends, its entry (if any) taken out and the count let down,
    /// the last one waking the nursery.
    fn poll_child<F: Future<Output = ()>>(
        &self,
        child: &mut LazyChild,
        fut: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let context = std::ptr::from_ref(self) as usize + child.id as usize;
        let poll = with_context(context, || {
            if self.is_cancelled(child) {
                Poll::Ready(())
            } else {
                fut.poll(cx)
            }
        });
        if poll.is_pending() {
            if child
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                return Poll::Pending;
            }
            child.waker = Some(cx.waker().clone());
            {
                let mut parked = self.parked();
                let entry = (child.id, cx.waker().clone());
                match child.slot {
                    Some(slot) => parked.entries[slot as usize] = Some(entry),
                    None => {
                        let Parked { entries, free, .. } = &mut *parked;
                        child.slot = Some(insert(entries, free, entry));
                    }
                }
            }
            if self.is_cancelled(child) {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        if let Some(slot) = child.slot.take() {
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
        Poll::Ready(())
    }
}

impl Group for LazyNursery {
    fn spawn<F>(self: &Arc<Self>, ex: &Executor<'static>, fut: F) -> (u32, Task<()>)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let before = self.count.fetch_add(ADMIT, Ordering::Relaxed);
        let id = (before >> 32) as u32;
        let mut child = LazyChild {
            id,
            slot: None,
            waker: None,
        };
        let nursery = self.clone();
        let task = ex.spawn(async move {
            let mut fut = std::pin::pin!(fut);
            std::future::poll_fn(|cx| nursery.poll_child(&mut child, fut.as_mut(), cx)).await;
        });
        (id, task)
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

async fn raw(ex: Arc<Executor<'static>>) -> Duration {
    let start = Instant::now();
    let tasks: Vec<Task<()>> = (0..CHILDREN).map(|_| ex.spawn(async {})).collect();
    for task in tasks {
        task.await;
    }
    start.elapsed()
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

/// One run of `side`, in a task spawned on `ex`: ns a child.
fn run(ex: &Arc<Executor<'static>>, side: &str) -> f64 {
    let e = ex.clone();
    let task = match side {
        "raw" => ex.spawn(raw(e)),
        "sketch" => ex.spawn(dropped::<LockedNursery>(e)),
        "handles" => ex.spawn(kept::<LockedNursery>(e)),
        "lazy" => ex.spawn(dropped::<LazyNursery>(e)),
        "lazy_handles" => ex.spawn(kept::<LazyNursery>(e)),
        other => panic!("d2_sketch: no side {other:?} (raw, sketch, handles, lazy, lazy_handles)"),
    };
    let took = async_io::block_on(ex.run(task));
    // Read, so that the children's writes of their context are kept.
    black_box(CONTEXT.with(Cell::get));
    took.as_secs_f64() * 1e9 / CHILDREN as f64
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
    assert!(args.is_empty(), "usage: d2_sketch [SIDE REPS]");
    check_cancel::<LockedNursery>(&ex);
    check_cancel::<LazyNursery>(&ex);
    let sides = ["raw", "sketch", "handles", "lazy", "lazy_handles"];
    let mut times = [vec![], vec![], vec![], vec![], vec![]];
    for side in sides {
        run(&ex, side);
    }
    for _ in 0..RUNS {
        for (side, times) in sides.iter().zip(&mut times) {
            times.push(run(&ex, side));
        }
    }
    let median = |t: &mut Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let [raw, sketch, handles, lazy, lazy_handles] = times.each_mut().map(median);
    println!(
        "smol-ct, {CHILDREN} children, median of {RUNS} runs: raw {raw:.0} ns a child, \
         sketch {sketch:.0} ns ({:.2}x), sketch with handles {handles:.0} ns ({:.2}x), \
         lazy list {lazy:.0} ns ({:.2}x), lazy list with handles {lazy_handles:.0} ns \
         ({:.2}x)",
        sketch / raw,
        handles / raw,
        lazy / raw,
        lazy_handles / raw,
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
