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
//!   nursery's count, and takes no lock. Its cancellation is checked before the run
//!   ([`check_lazy_cancel`]): children parked before and after the nursery's cancel all
//!   end, and the nursery's wait with them.
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
use futures_util::task::AtomicWaker;

/// Children per run.
const CHILDREN: usize = 100_000;
/// Timed runs per side (after one warm-up each); the median is printed.
const RUNS: usize = 7;

thread_local! {
    /// The context of the child being polled, one word (D5).
    static CONTEXT: Cell<usize> = const { Cell::new(0) };
}

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

#[derive(Default)]
struct Nursery {
    /// The whole nursery is cancelled.
    cancelled: AtomicBool,
    /// Some child was cancelled on its own: its entry says which. (Nothing in this sketch
    /// cancels a child alone; the flag is read, as a child would read it, for its cost.)
    some_cancelled: AtomicBool,
    list: Mutex<List>,
}

impl Nursery {
    fn list(&self) -> MutexGuard<'_, List> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a child: its entry, and the count.
    fn admit(&self) -> u32 {
        let mut list = self.list();
        list.live += 1;
        let entry = Some(Entry {
            waker: None,
            cancelled: false,
        });
        match list.free.pop() {
            Some(slot) => {
                list.entries[slot as usize] = entry;
                slot
            }
            None => {
                list.entries.push(entry);
                u32::try_from(list.entries.len() - 1).expect("too many children")
            }
        }
    }

    /// Whether the child in `slot` is cancelled.
    fn is_cancelled(&self, slot: u32) -> bool {
        self.cancelled.load(Ordering::Acquire)
            || (self.some_cancelled.load(Ordering::Acquire)
                && self.list().entries[slot as usize]
                    .as_ref()
                    .is_some_and(|e| e.cancelled))
    }
}

/// A child's poll: its context installed, its cancellation read, its future polled, and
/// then its waker left in its entry, or its end recorded.
fn poll_child<F: Future<Output = ()>>(
    nursery: &Nursery,
    slot: u32,
    fut: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let prev = CONTEXT.with(|c| c.replace(std::ptr::from_ref(nursery) as usize + slot as usize));
    let poll = if nursery.is_cancelled(slot) {
        Poll::Ready(())
    } else {
        fut.poll(cx)
    };
    CONTEXT.with(|c| c.set(prev));
    if poll.is_pending() {
        let mut list = nursery.list();
        if let Some(entry) = list.entries[slot as usize].as_mut() {
            if !entry
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                entry.waker = Some(cx.waker().clone());
            }
        }
        return Poll::Pending;
    }
    let (entry, wake) = {
        let mut list = nursery.list();
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

/// Spawns `fut` as a child of `nursery`; the executor's task is its handle.
fn spawn_child<F>(ex: &Executor<'static>, nursery: &Arc<Nursery>, fut: F) -> Task<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let slot = nursery.admit();
    let nursery = nursery.clone();
    ex.spawn(async move {
        let mut fut = std::pin::pin!(fut);
        std::future::poll_fn(|cx| poll_child(&nursery, slot, fut.as_mut(), cx)).await;
    })
}

/// Waits until every child of the nursery has ended.
async fn wait_all(nursery: &Nursery) {
    std::future::poll_fn(|cx| {
        let mut list = nursery.list();
        if list.live == 0 {
            return Poll::Ready(());
        }
        list.parent = Some(cx.waker().clone());
        Poll::Pending
    })
    .await;
}

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
    /// Some child was cancelled on its own: the list's requests say which. (Nothing in
    /// this sketch cancels a child alone; the flag is read, as a child would read it, for
    /// its cost.)
    some_cancelled: AtomicBool,
    /// Low half: children alive; high half: children admitted so far.
    count: AtomicU64,
    /// The nursery's waker, while it waits for its children.
    parent: AtomicWaker,
    parked: Mutex<Parked>,
}

/// The children of a [`LazyNursery`] that have suspended, and the cancel requests.
#[derive(Default)]
struct Parked {
    entries: Vec<Option<Waker>>,
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

    /// Admits a child: one atomic operation.
    fn admit(&self) -> LazyChild {
        let before = self.count.fetch_add(ADMIT, Ordering::Relaxed);
        LazyChild {
            id: (before >> 32) as u32,
            slot: None,
            waker: None,
        }
    }

    fn is_cancelled(&self, child: &LazyChild) -> bool {
        self.cancelled.load(Ordering::Acquire)
            || (self.some_cancelled.load(Ordering::Acquire)
                && self.parked().cancel.contains(&child.id))
    }

    /// Cancels every child: the flag, then a wake for each that waits. (A child that
    /// suspends meanwhile reads the flag again once its entry is in.)
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        let wakers: Vec<Waker> = self.parked().entries.iter().flatten().cloned().collect();
        for waker in wakers {
            waker.wake();
        }
    }
}

/// A child's poll in a [`LazyNursery`]: its context installed, its cancellation read, its
/// future polled; if it suspends, its waker left in the list (taken only when it
/// changed); if it ends, its entry (if any) taken out and the count let down, the last
/// one waking the nursery.
fn poll_lazy_child<F: Future<Output = ()>>(
    nursery: &LazyNursery,
    child: &mut LazyChild,
    fut: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let prev =
        CONTEXT.with(|c| c.replace(std::ptr::from_ref(nursery) as usize + child.id as usize));
    let poll = if nursery.is_cancelled(child) {
        Poll::Ready(())
    } else {
        fut.poll(cx)
    };
    CONTEXT.with(|c| c.set(prev));
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
            let mut parked = nursery.parked();
            let waker = Some(cx.waker().clone());
            match child.slot {
                Some(slot) => parked.entries[slot as usize] = waker,
                None => {
                    let slot = match parked.free.pop() {
                        Some(slot) => {
                            parked.entries[slot as usize] = waker;
                            slot
                        }
                        None => {
                            parked.entries.push(waker);
                            u32::try_from(parked.entries.len() - 1).expect("too many children")
                        }
                    };
                    child.slot = Some(slot);
                }
            }
        }
        // A cancellation that came before the entry was in found no waker to wake.
        if nursery.is_cancelled(child) {
            cx.waker().wake_by_ref();
        }
        return Poll::Pending;
    }
    if let Some(slot) = child.slot.take() {
        let waker = {
            let mut parked = nursery.parked();
            parked.free.push(slot);
            parked.entries[slot as usize].take()
        };
        drop(waker);
    }
    if nursery.count.fetch_sub(1, Ordering::AcqRel) & LIVE == 1 {
        nursery.parent.wake();
    }
    Poll::Ready(())
}

/// Spawns `fut` as a child of a [`LazyNursery`]; the executor's task is its handle.
fn spawn_lazy<F>(ex: &Executor<'static>, nursery: &Arc<LazyNursery>, fut: F) -> Task<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let mut child = nursery.admit();
    let nursery = nursery.clone();
    ex.spawn(async move {
        let mut fut = std::pin::pin!(fut);
        std::future::poll_fn(|cx| poll_lazy_child(&nursery, &mut child, fut.as_mut(), cx)).await;
    })
}

/// Waits until every child of a [`LazyNursery`] has ended.
async fn wait_lazy(nursery: &LazyNursery) {
    std::future::poll_fn(|cx| {
        if nursery.count.load(Ordering::Acquire) & LIVE == 0 {
            return Poll::Ready(());
        }
        nursery.parent.register(cx.waker());
        if nursery.count.load(Ordering::Acquire) & LIVE == 0 {
            return Poll::Ready(());
        }
        Poll::Pending
    })
    .await;
}

async fn raw(ex: Arc<Executor<'static>>) -> Duration {
    let start = Instant::now();
    let tasks: Vec<Task<()>> = (0..CHILDREN).map(|_| ex.spawn(async {})).collect();
    for task in tasks {
        task.await;
    }
    start.elapsed()
}

async fn sketch(ex: Arc<Executor<'static>>) -> Duration {
    let start = Instant::now();
    let nursery = Arc::new(Nursery::default());
    for _ in 0..CHILDREN {
        spawn_child(&ex, &nursery, async {}).detach();
    }
    wait_all(&nursery).await;
    start.elapsed()
}

async fn handles(ex: Arc<Executor<'static>>) -> Duration {
    let start = Instant::now();
    let nursery = Arc::new(Nursery::default());
    let tasks: Vec<Task<()>> = (0..CHILDREN)
        .map(|_| spawn_child(&ex, &nursery, async {}))
        .collect();
    for task in tasks {
        task.await;
    }
    wait_all(&nursery).await;
    start.elapsed()
}

async fn lazy(ex: Arc<Executor<'static>>) -> Duration {
    let start = Instant::now();
    let nursery = Arc::new(LazyNursery::default());
    for _ in 0..CHILDREN {
        spawn_lazy(&ex, &nursery, async {}).detach();
    }
    wait_lazy(&nursery).await;
    start.elapsed()
}

async fn lazy_handles(ex: Arc<Executor<'static>>) -> Duration {
    let start = Instant::now();
    let nursery = Arc::new(LazyNursery::default());
    let tasks: Vec<Task<()>> = (0..CHILDREN)
        .map(|_| spawn_lazy(&ex, &nursery, async {}))
        .collect();
    for task in tasks {
        task.await;
    }
    wait_lazy(&nursery).await;
    start.elapsed()
}

/// One run of `side`, in a task spawned on `ex`: ns a child.
fn run(ex: &Arc<Executor<'static>>, side: &str) -> f64 {
    let task = match side {
        "raw" => ex.spawn(raw(ex.clone())),
        "sketch" => ex.spawn(sketch(ex.clone())),
        "handles" => ex.spawn(handles(ex.clone())),
        "lazy" => ex.spawn(lazy(ex.clone())),
        "lazy_handles" => ex.spawn(lazy_handles(ex.clone())),
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
    check_lazy_cancel(&ex);
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

/// The lazy list's cancellation works: children parked for good, some before and some
/// after the cancel, all end, and the nursery's wait ends with them.
fn check_lazy_cancel(ex: &Arc<Executor<'static>>) {
    let nursery = Arc::new(LazyNursery::default());
    let ex2 = ex.clone();
    let n = nursery.clone();
    let task = ex.spawn(async move {
        for _ in 0..3 {
            spawn_lazy(&ex2, &n, std::future::pending()).detach();
        }
        // Let the three suspend, with their entries in the list.
        futures_lite::future::yield_now().await;
        n.cancel();
        // One more after the cancel: ends at its first poll.
        spawn_lazy(&ex2, &n, std::future::pending()).detach();
        wait_lazy(&n).await;
    });
    async_io::block_on(ex.run(task));
    assert_eq!(nursery.count.load(Ordering::Acquire) & LIVE, 0);
    assert!(nursery.parked().entries.iter().all(Option::is_none));
}
