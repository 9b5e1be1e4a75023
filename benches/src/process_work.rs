//! The process workload: spawn `true` and wait for its exit status, `n` times in a row.
//! Written with `hatchery::process` (the same code on every backend), with
//! `tokio::process` on the tokio backends, and with async-process on the smol ones; each
//! side's `Command::status`, the timed code in a spawned task.

use std::io;
use std::time::{Duration, Instant};

use hatchery::nursery;

/// The program: exits at once, successfully.
const PROGRAM: &str = "true";

pub(crate) async fn hatchery_spawn_wait(n: usize) -> Duration {
    nursery(|tasks| async move {
        let timed = tasks.spawn(async move {
            let start = Instant::now();
            for _ in 0..n {
                let status = hatchery::process::Command::new(PROGRAM).status().await?;
                assert!(status.success());
            }
            Ok::<_, io::Error>(start.elapsed())
        });
        Ok::<_, io::Error>(timed.join().await?)
    })
    .await
    .expect("the workload failed")
}

pub(crate) async fn tokio_spawn_wait(n: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let status = tokio::process::Command::new(PROGRAM)
            .status()
            .await
            .expect("cannot run true");
        assert!(status.success());
    }
    start.elapsed()
}

pub(crate) async fn smol_spawn_wait(n: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let status = async_process::Command::new(PROGRAM)
            .status()
            .await
            .expect("cannot run true");
        assert!(status.success());
    }
    start.elapsed()
}
