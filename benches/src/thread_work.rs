//! The thread workloads: a round trip to a blocking thread, a call back from such a
//! thread into the runtime, and a call through a blocking portal from a plain thread,
//! each with hatchery (`to_thread::run_sync`, `run_blocking`, `from_thread::run`,
//! `BlockingPortal::call`), with raw tokio (`spawn_blocking`, `Handle::block_on`) and
//! with raw smol (`blocking::unblock`, `async_io::block_on`).
//!
//! Each workload makes its round trips one after the other (latency, not throughput),
//! timed inside the task that the harness spawns on the executor
//! ([`Backend::raw`](crate::backend::Backend::raw),
//! [`Backend::hatchery`](crate::backend::Backend::hatchery)), or, for the calls back, on
//! the blocking thread that such a task started.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_executor::Executor;
use hatchery::{from_thread, run_blocking, to_thread};

// ----- a round trip to a blocking thread -----

/// `n` round trips through `to_thread::run_sync` (with the run's default limiter) or,
/// without `limited`, through `run_blocking`.
pub(crate) async fn hatchery_to_thread(n: usize, limited: bool) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        let v = if limited {
            to_thread::run_sync(move || black_box(i)).await
        } else {
            run_blocking(move || black_box(i)).await
        };
        black_box(v);
    }
    start.elapsed()
}

/// `n` round trips through `tokio::task::spawn_blocking`.
pub(crate) async fn tokio_to_thread(n: usize) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        let v = tokio::task::spawn_blocking(move || black_box(i))
            .await
            .expect("blocking task failed");
        black_box(v);
    }
    start.elapsed()
}

/// `n` round trips through `blocking::unblock`.
pub(crate) async fn smol_to_thread(n: usize) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        black_box(blocking::unblock(move || black_box(i)).await);
    }
    start.elapsed()
}

// ----- a call back from a blocking thread -----

/// `n` calls of `from_thread::run` from a `to_thread` thread, each an `async` block
/// that returns at once; timed on that thread.
pub(crate) async fn hatchery_from_thread(n: usize) -> Duration {
    to_thread::run_sync(move || {
        let start = Instant::now();
        for i in 0..n {
            let v = from_thread::run(async move { black_box(i) }).expect("call failed");
            black_box(v);
        }
        start.elapsed()
    })
    .await
}

/// `n` calls of tokio's `Handle::block_on` from a `spawn_blocking` thread (which polls
/// the future on that thread).
pub(crate) async fn tokio_block_on(n: usize) -> Duration {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        for i in 0..n {
            black_box(handle.block_on(async move { black_box(i) }));
        }
        start.elapsed()
    })
    .await
    .expect("blocking task failed")
}

/// `n` calls of `async_io::block_on` from a `blocking::unblock` thread.
pub(crate) async fn smol_block_on(n: usize) -> Duration {
    blocking::unblock(move || {
        let start = Instant::now();
        for i in 0..n {
            black_box(async_io::block_on(async move { black_box(i) }));
        }
        start.elapsed()
    })
    .await
}

/// The like-for-like raw form of a call back: the blocking thread sends each job to the
/// task that started it, which runs it and answers (`tokio::sync::mpsc` there, a
/// `oneshot` back, waited on with `blocking_recv`).
pub(crate) async fn tokio_task_round_trip(n: usize) -> Duration {
    type Job = (usize, tokio::sync::oneshot::Sender<usize>);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
    let thread = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        for i in 0..n {
            let (reply, answer) = tokio::sync::oneshot::channel();
            tx.send((i, reply)).expect("task gone");
            black_box(answer.blocking_recv().expect("no answer"));
        }
        start.elapsed()
    });
    while let Some((i, reply)) = rx.recv().await {
        let _ = reply.send(async move { black_box(i) }.await);
    }
    thread.await.expect("blocking task failed")
}

/// The same with async-channel, both ways.
pub(crate) async fn smol_task_round_trip(n: usize) -> Duration {
    type Job = (usize, async_channel::Sender<usize>);
    let (tx, rx) = async_channel::unbounded::<Job>();
    let thread = blocking::unblock(move || {
        let start = Instant::now();
        for i in 0..n {
            let (reply, answer) = async_channel::bounded(1);
            tx.send_blocking((i, reply)).expect("task gone");
            black_box(answer.recv_blocking().expect("no answer"));
        }
        start.elapsed()
    });
    while let Ok((i, reply)) = rx.recv().await {
        let _ = reply.send(async move { black_box(i) }.await).await;
    }
    thread.await
}

// ----- a call through a blocking portal from a plain thread -----

/// `n` calls of `BlockingPortal::call` from a plain thread, each an `async` block that
/// returns at once (a task of the portal per call); timed on that thread.
pub(crate) async fn hatchery_portal(n: usize) -> Duration {
    hatchery::from_thread::blocking_portal(|portal| async move {
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            for i in 0..n {
                black_box(
                    portal
                        .call(async move { black_box(i) })
                        .expect("call failed"),
                );
            }
            start.elapsed()
        });
        run_blocking(move || thread.join().expect("thread panicked")).await
    })
    .await
}

/// The raw form on tokio: a plain thread spawns a task with the runtime's handle and
/// blocks on its `JoinHandle` (`futures_lite::future::block_on`).
pub(crate) async fn tokio_portal(n: usize) -> Duration {
    let handle = tokio::runtime::Handle::current();
    let thread = std::thread::spawn(move || {
        let start = Instant::now();
        for i in 0..n {
            let task = handle.spawn(async move { black_box(i) });
            black_box(futures_lite::future::block_on(task).expect("task failed"));
        }
        start.elapsed()
    });
    tokio::task::spawn_blocking(move || thread.join().expect("thread panicked"))
        .await
        .expect("blocking task failed")
}

/// The raw form on smol: a plain thread spawns a task on the executor and blocks on it.
pub(crate) async fn smol_portal(ex: Arc<Executor<'static>>, n: usize) -> Duration {
    let thread = std::thread::spawn(move || {
        let start = Instant::now();
        for i in 0..n {
            let task = ex.spawn(async move { black_box(i) });
            black_box(futures_lite::future::block_on(task));
        }
        start.elapsed()
    });
    blocking::unblock(move || thread.join().expect("thread panicked")).await
}
