//! The process workload: spawn `true` and wait for its exit status, `n` times in a row.
//! Written with `hatchery::process` (the same code on every backend), with
//! `tokio::process` on the tokio backends, and with async-process on the smol ones; each
//! side's `Command::status`, the timed code in a spawned task. Each run is timed twice:
//! by the clock, and by the CPU time of the benchmark's process ([`cpu_time`]).

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use hatchery::nursery;

/// The program: exits at once, successfully.
const PROGRAM: &str = "true";

/// The CPU time (user and system) of every thread of this process so far, not of its
/// children: `CLOCK_PROCESS_CPUTIME_ID`.
pub(crate) fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// `work`'s wall-clock time and the process's CPU time while it ran.
pub(crate) async fn timed(work: impl Future<Output = ()>) -> (Duration, Duration) {
    let (start, cpu) = (Instant::now(), cpu_time());
    work.await;
    (start.elapsed(), cpu_time() - cpu)
}

pub(crate) async fn hatchery_spawn_wait(n: usize) -> (Duration, Duration) {
    nursery(|tasks| async move {
        let timed = tasks.spawn(async move {
            let times = timed(async move {
                for _ in 0..n {
                    let status = hatchery::process::Command::new(PROGRAM)
                        .status()
                        .await
                        .expect("cannot run true");
                    assert!(status.success());
                }
            });
            Ok::<_, io::Error>(times.await)
        });
        Ok::<_, io::Error>(timed.join().await?)
    })
    .await
    .expect("the workload failed")
}

pub(crate) async fn tokio_spawn_wait(n: usize) {
    for _ in 0..n {
        let status = tokio::process::Command::new(PROGRAM)
            .status()
            .await
            .expect("cannot run true");
        assert!(status.success());
    }
}

pub(crate) async fn smol_spawn_wait(n: usize) {
    for _ in 0..n {
        let status = async_process::Command::new(PROGRAM)
            .status()
            .await
            .expect("cannot run true");
        assert!(status.success());
    }
}
