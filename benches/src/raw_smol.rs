//! The raw smol side of the `spawn_handles` row: a module of its own, with no other of
//! the benchmark's, so that the sketches in `src/bin` time the same code.

use std::hint::black_box;
use std::time::{Duration, Instant};

use async_executor::{Executor, Task};

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
