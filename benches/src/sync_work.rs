//! The synchronization workloads: channel throughput, many tasks waiting on one stream
//! and uncontended locking (the semaphore fan-out is in `fanout.rs`), each with hatchery
//! (`memory_stream`, `sync::Lock`), with raw smol (async-channel, async-lock) and with raw
//! tokio (`tokio::sync`).

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_executor::Executor;
use hatchery::Nursery;

use crate::work::yield_once;

/// Buffer size of the channel workload.
const CAPACITY: usize = 128;

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

// ----- many waiters on one stream: `n` tasks wait at once, each with its own clone -----

/// Counts the waiting tasks that have started (each counts itself just before it waits).
fn started() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// Yields until `n` tasks have started, then a few more times so that the last of them
/// has reached its wait.
async fn all_started(started: &AtomicUsize, n: usize) {
    while started.load(Ordering::Acquire) < n {
        yield_once().await;
    }
    for _ in 0..4 {
        yield_once().await;
    }
}

/// `n` tasks, each with its own clone of the receive handle, wait in `recv` on an
/// unbounded memory stream; a driver task sends `n` items once all have started, one for
/// each. Each receiving task drops its clone as it finishes, while the others still wait.
pub(crate) async fn hatchery_recv_waiters(n: usize) -> Duration {
    let start = Instant::now();
    let (tx, rx) = hatchery::memory_stream_unbounded::<usize>();
    let count = started();
    hatchery::nursery(|nursery: Nursery<Infallible>| async move {
        for _ in 0..n {
            let (rx, count) = (rx.clone(), count.clone());
            nursery.spawn(async move {
                count.fetch_add(1, Ordering::Release);
                black_box(rx.recv().await.expect("stream ended"));
                Ok(())
            });
        }
        drop(rx);
        nursery.spawn(async move {
            all_started(&count, n).await;
            for i in 0..n {
                tx.try_send(i).expect("receivers gone");
            }
            Ok(())
        });
        Ok(())
    })
    .await
    .expect("nursery failed");
    start.elapsed()
}

/// The same through `async_channel::unbounded` (tokio has no channel with several
/// receivers), on tokio's tasks.
pub(crate) async fn tokio_recv_waiters(n: usize) -> Duration {
    let start = Instant::now();
    let (tx, rx) = async_channel::unbounded::<usize>();
    let count = started();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (rx, count) = (rx.clone(), count.clone());
        set.spawn(async move {
            count.fetch_add(1, Ordering::Release);
            black_box(rx.recv().await.expect("channel closed"));
        });
    }
    drop(rx);
    set.spawn(async move {
        all_started(&count, n).await;
        for i in 0..n {
            tx.try_send(i).expect("receivers gone");
        }
    });
    while let Some(res) = set.join_next().await {
        res.expect("task failed");
    }
    start.elapsed()
}

/// The same through `async_channel::unbounded` on the smol executor.
pub(crate) async fn smol_recv_waiters(ex: &Executor<'static>, n: usize) -> Duration {
    let start = Instant::now();
    let (tx, rx) = async_channel::unbounded::<usize>();
    let count = started();
    let mut tasks: Vec<_> = (0..n)
        .map(|_| {
            let (rx, count) = (rx.clone(), count.clone());
            ex.spawn(async move {
                count.fetch_add(1, Ordering::Release);
                black_box(rx.recv().await.expect("channel closed"));
            })
        })
        .collect();
    drop(rx);
    tasks.push(ex.spawn(async move {
        all_started(&count, n).await;
        for i in 0..n {
            tx.try_send(i).expect("receivers gone");
        }
    }));
    for t in tasks {
        t.await;
    }
    start.elapsed()
}

/// `n` tasks, each with its own clone of the send handle, wait in `send` on a full
/// `memory_stream(1)`; a driver task receives the `n + 1` items once all have started.
/// Each sending task drops its clone as it finishes, while the others still wait.
pub(crate) async fn hatchery_send_waiters(n: usize) -> Duration {
    let start = Instant::now();
    let (tx, rx) = hatchery::memory_stream::<usize>(1);
    tx.try_send(0).expect("room for one");
    let count = started();
    hatchery::nursery(|nursery: Nursery<Infallible>| async move {
        for i in 0..n {
            let (tx, count) = (tx.clone(), count.clone());
            nursery.spawn(async move {
                count.fetch_add(1, Ordering::Release);
                tx.send(i).await.expect("receiver gone");
                Ok(())
            });
        }
        drop(tx);
        nursery.spawn(async move {
            all_started(&count, n).await;
            for _ in 0..=n {
                black_box(rx.recv().await.expect("stream ended"));
            }
            Ok(())
        });
        Ok(())
    })
    .await
    .expect("nursery failed");
    start.elapsed()
}

/// The same through `tokio::sync::mpsc::channel(1)`.
pub(crate) async fn tokio_send_waiters(n: usize) -> Duration {
    let start = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<usize>(1);
    tx.try_send(0).expect("room for one");
    let count = started();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (tx, count) = (tx.clone(), count.clone());
        set.spawn(async move {
            count.fetch_add(1, Ordering::Release);
            tx.send(i).await.expect("receiver gone");
        });
    }
    drop(tx);
    set.spawn(async move {
        all_started(&count, n).await;
        for _ in 0..=n {
            black_box(rx.recv().await.expect("channel closed"));
        }
    });
    while let Some(res) = set.join_next().await {
        res.expect("task failed");
    }
    start.elapsed()
}

/// The same through `async_channel::bounded(1)` on the smol executor.
pub(crate) async fn smol_send_waiters(ex: &Executor<'static>, n: usize) -> Duration {
    let start = Instant::now();
    let (tx, rx) = async_channel::bounded::<usize>(1);
    tx.try_send(0).expect("room for one");
    let count = started();
    let mut tasks: Vec<_> = (0..n)
        .map(|i| {
            let (tx, count) = (tx.clone(), count.clone());
            ex.spawn(async move {
                count.fetch_add(1, Ordering::Release);
                tx.send(i).await.expect("receiver gone");
            })
        })
        .collect();
    drop(tx);
    tasks.push(ex.spawn(async move {
        all_started(&count, n).await;
        for _ in 0..=n {
            black_box(rx.recv().await.expect("channel closed"));
        }
    }));
    for t in tasks {
        t.await;
    }
    start.elapsed()
}

/// `n` tasks wait in `send` on a full `memory_stream(1)`, as in the send-waiters
/// workload; meanwhile a driver task makes `n` clones of its send handle and drops each
/// (every worker that drops its clone). Only the clones are timed, in the driver; then
/// it receives the items and the waiting tasks finish.
pub(crate) async fn hatchery_clone_drops(n: usize) -> Duration {
    let (tx, rx) = hatchery::memory_stream::<usize>(1);
    tx.try_send(0).expect("room for one");
    let count = started();
    hatchery::nursery(|nursery: Nursery<Infallible>| async move {
        for i in 0..n {
            let (tx, count) = (tx.clone(), count.clone());
            nursery.spawn(async move {
                count.fetch_add(1, Ordering::Release);
                tx.send(i).await.expect("receiver gone");
                Ok(())
            });
        }
        let driver = nursery.spawn(async move {
            all_started(&count, n).await;
            let start = Instant::now();
            for _ in 0..n {
                drop(black_box(tx.clone()));
            }
            let elapsed = start.elapsed();
            drop(tx);
            for _ in 0..=n {
                black_box(rx.recv().await.expect("stream ended"));
            }
            Ok(elapsed)
        });
        Ok(driver.join().await.expect("driver failed"))
    })
    .await
    .expect("nursery failed")
}

/// The same with `tokio::sync::mpsc::channel(1)`.
pub(crate) async fn tokio_clone_drops(n: usize) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<usize>(1);
    tx.try_send(0).expect("room for one");
    let count = started();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (tx, count) = (tx.clone(), count.clone());
        set.spawn(async move {
            count.fetch_add(1, Ordering::Release);
            tx.send(i).await.expect("receiver gone");
        });
    }
    let driver = tokio::spawn(async move {
        all_started(&count, n).await;
        let start = Instant::now();
        for _ in 0..n {
            drop(black_box(tx.clone()));
        }
        let elapsed = start.elapsed();
        drop(tx);
        for _ in 0..=n {
            black_box(rx.recv().await.expect("channel closed"));
        }
        elapsed
    });
    while let Some(res) = set.join_next().await {
        res.expect("task failed");
    }
    driver.await.expect("driver failed")
}

/// The same with `async_channel::bounded(1)` on the smol executor.
pub(crate) async fn smol_clone_drops(ex: &Executor<'static>, n: usize) -> Duration {
    let (tx, rx) = async_channel::bounded::<usize>(1);
    tx.try_send(0).expect("room for one");
    let count = started();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (tx, count) = (tx.clone(), count.clone());
            ex.spawn(async move {
                count.fetch_add(1, Ordering::Release);
                tx.send(i).await.expect("receiver gone");
            })
        })
        .collect();
    let driver = ex.spawn(async move {
        all_started(&count, n).await;
        let start = Instant::now();
        for _ in 0..n {
            drop(black_box(tx.clone()));
        }
        let elapsed = start.elapsed();
        drop(tx);
        for _ in 0..=n {
            black_box(rx.recv().await.expect("channel closed"));
        }
        elapsed
    });
    for t in tasks {
        t.await;
    }
    driver.await
}
