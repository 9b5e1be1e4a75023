//! The polled (borrowing) nursery's rows: spawn-and-join of N polled children against
//! `FuturesUnordered` of boxed futures (raw) and futures-concurrency's `FutureGroup`
//! (reference, shown beside), and a two-way `join!(Polled: ..)` against `futures::join!` (raw)
//! and futures-concurrency's `Join` for a tuple (reference), with its floor: `futures::join!`
//! in a hatchery task against a raw one. Every side is timed inside
//! the task the harness spawns on the backend's executor (never as the `block_on` root),
//! the hatchery side under `hatchery::rt::enter` in that task.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_concurrency::future::{FutureGroup, Join as _};
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::backend::Backend;
use crate::work::yield_once;
use crate::{count, report, time_row, time_row_ref, Config, Row};

/// A polled nursery spawns `n` children that yield once, and returns once all have.
async fn polled_spawn_join(n: usize) -> Duration {
    let start = Instant::now();
    hatchery::Polled::nursery(|nursery| async move {
        for _ in 0..n {
            drop(nursery.spawn(async {
                yield_once().await;
                Ok::<_, Infallible>(())
            }));
        }
        Ok(())
    })
    .await
    .expect("nursery failed");
    start.elapsed()
}

/// `FuturesUnordered` of `n` boxed futures that yield once, drained.
async fn unordered_spawn_join(n: usize) -> Duration {
    let start = Instant::now();
    let mut set: FuturesUnordered<Pin<Box<dyn Future<Output = ()> + Send>>> =
        FuturesUnordered::new();
    for _ in 0..n {
        set.push(Box::pin(async {
            yield_once().await;
        }));
    }
    while set.next().await.is_some() {}
    start.elapsed()
}

/// futures-concurrency's `FutureGroup` of `n` boxed futures that yield once, drained.
async fn group_spawn_join(n: usize) -> Duration {
    let start = Instant::now();
    let mut group: FutureGroup<Pin<Box<dyn Future<Output = ()> + Send>>> = FutureGroup::new();
    for _ in 0..n {
        group.insert(Box::pin(async {
            yield_once().await;
        }));
    }
    while group.next().await.is_some() {}
    start.elapsed()
}

/// A step of a join: yields once, returns `i`.
async fn step(i: usize) -> usize {
    yield_once().await;
    i
}

/// `iters` two-way joins of futures that yield once, with `join!(Polled: ..)`.
async fn polled_join2(iters: usize) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        let out = hatchery::join!(Polled: step(i), step(i + 1));
        std::hint::black_box(out);
    }
    start.elapsed()
}

/// The same with `Polled::join` of an array, which returns a `Vec`.
async fn polled_join2_vec(iters: usize) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        let out = hatchery::Polled::join([step(i), step(i + 1)]).await;
        std::hint::black_box(out);
    }
    start.elapsed()
}

/// The same with `futures::join!`.
async fn raw_join2(iters: usize) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        let out = futures_util::join!(step(i), step(i + 1));
        std::hint::black_box(out);
    }
    start.elapsed()
}

/// The same with futures-concurrency's `Join` for a tuple.
async fn concurrency_join2(iters: usize) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        let out = (step(i), step(i + 1)).join().await;
        std::hint::black_box(out);
    }
    start.elapsed()
}

/// The rows of this file. Their targets are judged against the raw side (futures-util);
/// futures-concurrency's is the reference, shown beside it.
pub(crate) fn run(cfg: &Config, b: &Backend, rows: &mut Vec<Row>) {
    let n = cfg.children;
    if cfg.wants("polled_spawn_join", b.name) {
        let raw = || b.raw(|| unordered_spawn_join(n), |_| unordered_spawn_join(n));
        let reference = || b.raw(|| group_spawn_join(n), |_| group_spawn_join(n));
        let hatchery = || b.hatchery(polled_spawn_join(n));
        let workload = format!("polled_spawn_join {}", count(n));
        rows.push(time_row_ref(cfg, &workload, b, n, raw, reference, hatchery));
        report(rows);
    }
    let iters = cfg.children;
    if cfg.wants("polled_join2", b.name) {
        let raw = || b.raw(|| raw_join2(iters), |_| raw_join2(iters));
        let reference = || b.raw(|| concurrency_join2(iters), |_| concurrency_join2(iters));
        let hatchery = || b.hatchery(polled_join2(iters));
        let workload = format!("polled_join2 x{}", count(iters));
        rows.push(time_row_ref(
            cfg, &workload, b, iters, raw, reference, hatchery,
        ));
        report(rows);
    }
    if cfg.wants("polled_join2_vec", b.name) {
        let raw = || b.raw(|| raw_join2(iters), |_| raw_join2(iters));
        let reference = || b.raw(|| concurrency_join2(iters), |_| concurrency_join2(iters));
        let hatchery = || b.hatchery(polled_join2_vec(iters));
        let workload = format!("polled_join2_vec x{}", count(iters));
        rows.push(time_row_ref(
            cfg, &workload, b, iters, raw, reference, hatchery,
        ));
        report(rows);
    }
    // The floor under `polled_join2`, as `yield` is under `move_on_after`: the same
    // `futures::join!` on both sides, in a hatchery task against a raw one. What is left
    // is a hatchery task's per-poll cost (two polls per join), which every hatchery
    // combinator pays in addition to its own.
    if cfg.wants("join2_in_task", b.name) {
        let raw = || b.raw(|| raw_join2(iters), |_| raw_join2(iters));
        let hatchery = || b.hatchery(raw_join2(iters));
        let workload = format!("join2_in_task x{}", count(iters));
        rows.push(time_row(cfg, &workload, b, iters, raw, hatchery));
        report(rows);
    }
}
