//! The process workload: spawn `true` and wait for its exit status, `n` times in a row.
//! Written with `hatchery::process` (the same code on every backend), with
//! `tokio::process` on the tokio backends, and with async-process on the smol ones; on
//! each side `Command::spawn`, then the child's wait (what each side's `status()` does:
//! hatchery's adds only the termination policy of rule X12 around the wait), the timed
//! code in a spawned task. Each run is timed three ways ([`Times`]).

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use hatchery::nursery;

/// The program: exits at once, successfully.
const PROGRAM: &str = "true";

/// What one run took.
pub(crate) struct Times {
    /// By the clock.
    pub(crate) wall: Duration,
    /// The CPU time of this process meanwhile ([`cpu_time`]).
    pub(crate) cpu: Duration,
    /// By the clock, inside the `spawn` calls (the rest is the waits).
    pub(crate) spawning: Duration,
}

/// The CPU time (user and system) of every thread of this process so far, not of its
/// children: `CLOCK_PROCESS_CPUTIME_ID`.
pub(crate) fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Runs `n` times: `spawn`, timed, then `wait`.
async fn run<C, W>(n: usize, mut spawn: impl FnMut() -> C, mut wait: impl FnMut(C) -> W) -> Times
where
    W: Future<Output = std::process::ExitStatus>,
{
    let (start, cpu) = (Instant::now(), cpu_time());
    let mut spawning = Duration::ZERO;
    for _ in 0..n {
        let before = Instant::now();
        let child = spawn();
        spawning += before.elapsed();
        assert!(wait(child).await.success());
    }
    Times {
        wall: start.elapsed(),
        cpu: cpu_time() - cpu,
        spawning,
    }
}

pub(crate) async fn hatchery_spawn_wait(n: usize) -> Times {
    nursery(|tasks| async move {
        let timed = tasks.spawn(async move {
            let times = run(
                n,
                || {
                    hatchery::process::Command::new(PROGRAM)
                        .spawn()
                        .expect("cannot run true")
                },
                |mut child| async move { child.wait().await.expect("cannot wait") },
            );
            Ok::<_, io::Error>(times.await)
        });
        Ok::<_, io::Error>(timed.join().await?)
    })
    .await
    .expect("the workload failed")
}

pub(crate) async fn tokio_spawn_wait(n: usize) -> Times {
    run(
        n,
        || {
            tokio::process::Command::new(PROGRAM)
                .spawn()
                .expect("cannot run true")
        },
        |mut child| async move { child.wait().await.expect("cannot wait") },
    )
    .await
}

pub(crate) async fn smol_spawn_wait(n: usize) -> Times {
    run(
        n,
        || {
            async_process::Command::new(PROGRAM)
                .spawn()
                .expect("cannot run true")
        },
        |mut child| async move { child.status().await.expect("cannot wait") },
    )
    .await
}
