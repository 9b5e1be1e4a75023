//! The synchronization workloads: channel throughput, semaphore fan-out and uncontended
//! locking, each with hatchery (`memory_stream`, `sync::Semaphore`, `sync::Lock`), with
//! raw smol (async-channel, async-lock) and with raw tokio (`tokio::sync`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_executor::Executor;
use hatchery::Nursery;

use crate::work::yield_once;

/// Buffer size of the channel workload.
const CAPACITY: usize = 128;
/// Tasks in the fan-out workload, and the permits they share.
const TASKS: usize = 64;
const PERMITS: usize = 8;

// ----- channel throughput: one producer task, the consumer in the caller -----

/// `n` messages through a bounded memory stream, producer spawned into a nursery.
pub(crate) async fn hatchery_channel(n: usize) -> Duration {
    let start = Instant::now();
    let (tx, rx) = hatchery::memory_stream::<usize>(CAPACITY);
    let sum = hatchery::nursery(|nursery: Nursery<Infallible>| async move {
        nursery.spawn(async move {
            for i in 0..n {
                tx.send(i).await.expect("receiver gone");
            }
            Ok(())
        });
        let mut sum = 0usize;
        while let Ok(v) = rx.recv().await {
            sum = sum.wrapping_add(v);
        }
        Ok(sum)
    })
    .await
    .expect("nursery failed");
    std::hint::black_box(sum);
    start.elapsed()
}

/// The same through `tokio::sync::mpsc`.
pub(crate) async fn tokio_channel(n: usize) -> Duration {
    let start = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<usize>(CAPACITY);
    let producer = tokio::spawn(async move {
        for i in 0..n {
            tx.send(i).await.expect("receiver gone");
        }
    });
    let mut sum = 0usize;
    while let Some(v) = rx.recv().await {
        sum = sum.wrapping_add(v);
    }
    producer.await.expect("producer failed");
    std::hint::black_box(sum);
    start.elapsed()
}

/// The same through `async_channel::bounded`.
pub(crate) async fn smol_channel(ex: &Executor<'static>, n: usize) -> Duration {
    let start = Instant::now();
    let (tx, rx) = async_channel::bounded::<usize>(CAPACITY);
    let producer = ex.spawn(async move {
        for i in 0..n {
            tx.send(i).await.expect("receiver gone");
        }
    });
    let mut sum = 0usize;
    while let Ok(v) = rx.recv().await {
        sum = sum.wrapping_add(v);
    }
    producer.await;
    std::hint::black_box(sum);
    start.elapsed()
}

// ----- semaphore fan-out: TASKS tasks, PERMITS permits, `n` acquisitions in all -----

/// Each task acquires a permit, yields once holding it, and releases it.
pub(crate) async fn hatchery_semaphore(n: usize) -> Duration {
    let start = Instant::now();
    let sem = Arc::new(hatchery::sync::Semaphore::new(PERMITS));
    hatchery::nursery(|nursery: Nursery<Infallible>| async move {
        for _ in 0..TASKS {
            let sem = sem.clone();
            nursery.spawn(async move {
                for _ in 0..n / TASKS {
                    let _permit = sem.acquire().await;
                    yield_once().await;
                }
                Ok(())
            });
        }
        Ok(())
    })
    .await
    .expect("nursery failed");
    start.elapsed()
}

/// The same with `tokio::sync::Semaphore` (fair too) and `tokio::spawn`.
pub(crate) async fn tokio_semaphore(n: usize) -> Duration {
    let start = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(PERMITS));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let sem = sem.clone();
        set.spawn(async move {
            for _ in 0..n / TASKS {
                let _permit = sem.acquire().await.expect("closed");
                yield_once().await;
            }
        });
    }
    while let Some(res) = set.join_next().await {
        res.expect("task failed");
    }
    start.elapsed()
}

/// The same with `async_lock::Semaphore` on the smol executor.
pub(crate) async fn smol_semaphore(ex: &Executor<'static>, n: usize) -> Duration {
    let start = Instant::now();
    let sem = Arc::new(async_lock::Semaphore::new(PERMITS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let sem = sem.clone();
            ex.spawn(async move {
                for _ in 0..n / TASKS {
                    let _permit = sem.acquire().await;
                    yield_once().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
    start.elapsed()
}

/// The same with `tokio::sync::Semaphore` (FIFO-fair, like hatchery's) on the smol
/// executor: the fair reference for the smol rows.
pub(crate) async fn smol_fair_semaphore(ex: &Executor<'static>, n: usize) -> Duration {
    let start = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(PERMITS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let sem = sem.clone();
            ex.spawn(async move {
                for _ in 0..n / TASKS {
                    let _permit = sem.acquire().await.expect("closed");
                    yield_once().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
    start.elapsed()
}

// ----- lock: `n` lock/unlock pairs, in one task (uncontended) or spread over TASKS -----

/// `n` uncontended lock/unlock pairs of a `sync::Lock`, in the caller.
pub(crate) async fn hatchery_lock(n: usize) -> Duration {
    let start = Instant::now();
    let lock = hatchery::sync::Lock::new(0usize);
    for _ in 0..n {
        *lock.lock().await += 1;
    }
    assert_eq!(*lock.try_lock().expect("lock is free"), n);
    start.elapsed()
}

/// The same with `tokio::sync::Mutex`.
pub(crate) async fn tokio_lock(n: usize) -> Duration {
    let start = Instant::now();
    let lock = tokio::sync::Mutex::new(0usize);
    for _ in 0..n {
        *lock.lock().await += 1;
    }
    assert_eq!(lock.into_inner(), n);
    start.elapsed()
}

/// The same with `async_lock::Mutex`.
pub(crate) async fn smol_lock(n: usize) -> Duration {
    let start = Instant::now();
    let lock = async_lock::Mutex::new(0usize);
    for _ in 0..n {
        *lock.lock().await += 1;
    }
    assert_eq!(lock.into_inner(), n);
    start.elapsed()
}
