//! The semaphore fan-out workload (the `semaphore` and `limiter` rows): `TASKS` tasks
//! share a semaphore of `PERMITS` permits, each acquiring one, yielding once holding it
//! and releasing it, `n` acquisitions in all; in hatchery's nursery, in tokio tasks and
//! in `async-executor` tasks, with any semaphore ([`Permits`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_executor::Executor;
use hatchery::Nursery;

use super::yield_once::yield_once;

/// Tasks in the fan-out workload, and the permits they share.
const TASKS: usize = 64;
const PERMITS: usize = 8;

/// A semaphore of the fan-out workload: made with [`PERMITS`] permits, held across one
/// yield at a time.
pub(crate) trait Permits: Send + Sync + 'static {
    fn make() -> Self;
    /// Acquires a permit, yields once holding it, and releases it.
    fn hold_once(&self) -> impl std::future::Future<Output = ()> + Send + '_;
}

/// hatchery's FIFO-fair semaphore.
impl Permits for hatchery::sync::Semaphore {
    fn make() -> Self {
        hatchery::sync::Semaphore::new(PERMITS)
    }

    async fn hold_once(&self) {
        let _permit = self.acquire().await;
        yield_once().await;
    }
}

/// hatchery's capacity limiter (a FIFO-fair semaphore whose tokens know their borrower).
impl Permits for hatchery::sync::CapacityLimiter {
    fn make() -> Self {
        hatchery::sync::CapacityLimiter::new(PERMITS)
    }

    async fn hold_once(&self) {
        let _token = self.acquire().await;
        yield_once().await;
    }
}

/// smol's semaphore: not fair (a released permit goes to whoever asks first, which
/// lets a task that releases and acquires again in one poll keep it).
impl Permits for async_lock::Semaphore {
    fn make() -> Self {
        async_lock::Semaphore::new(PERMITS)
    }

    async fn hold_once(&self) {
        let _permit = self.acquire().await;
        yield_once().await;
    }
}

/// tokio's semaphore: FIFO-fair like hatchery's, and usable on any executor (it needs
/// no tokio runtime): the fair reference on every backend.
impl Permits for tokio::sync::Semaphore {
    fn make() -> Self {
        tokio::sync::Semaphore::new(PERMITS)
    }

    async fn hold_once(&self) {
        let _permit = self.acquire().await.expect("closed");
        yield_once().await;
    }
}

/// `TASKS` children of a nursery share an `S`; `n` acquisitions in all.
pub(crate) async fn hatchery_semaphore<S: Permits>(n: usize) -> Duration {
    let start = Instant::now();
    let sem = Arc::new(S::make());
    hatchery::nursery(|nursery: Nursery<Infallible>| async move {
        for _ in 0..TASKS {
            let sem = sem.clone();
            nursery.spawn(async move {
                for _ in 0..n / TASKS {
                    sem.hold_once().await;
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

/// The same with `tokio::spawn`ed tasks in a `JoinSet`.
pub(crate) async fn tokio_semaphore<S: Permits>(n: usize) -> Duration {
    let start = Instant::now();
    let sem = Arc::new(S::make());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let sem = sem.clone();
        set.spawn(async move {
            for _ in 0..n / TASKS {
                sem.hold_once().await;
            }
        });
    }
    while let Some(res) = set.join_next().await {
        res.expect("task failed");
    }
    start.elapsed()
}

/// The same with tasks on the smol executor, awaited in order.
pub(crate) async fn smol_semaphore<S: Permits>(ex: &Executor<'static>, n: usize) -> Duration {
    let start = Instant::now();
    let sem = Arc::new(S::make());
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let sem = sem.clone();
            ex.spawn(async move {
                for _ in 0..n / TASKS {
                    sem.hold_once().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
    start.elapsed()
}
