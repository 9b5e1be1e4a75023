//! The raw smol sides of the `spawn_join` and `spawn_handles` rows.

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use async_executor::{Executor, Task};

/// `n` tasks spawned on the executor, each `child()`, kept in a `Vec<Task>` and awaited
/// in order.
pub(crate) async fn smol_spawn_join<F>(
    ex: &Executor<'static>,
    n: usize,
    mut child: impl FnMut() -> F,
) -> Duration
where
    F: Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let tasks: Vec<Task<()>> = (0..n).map(|_| ex.spawn(child())).collect();
    for task in tasks {
        task.await;
    }
    start.elapsed()
}

/// `n` smol tasks returning their index, awaited in order.
pub(crate) async fn smol_spawn_handles(ex: &Executor<'static>, n: usize) -> Duration {
    let start = Instant::now();
    let tasks: Vec<Task<usize>> = (0..n).map(|i| ex.spawn(async move { i })).collect();
    let mut sum = 0;
    for task in tasks {
        sum += task.await;
    }
    black_box(sum);
    start.elapsed()
}
