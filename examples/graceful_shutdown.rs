//! A small service that shuts down cleanly: a listener started with `Nursery::start`
//! (the service waits until it reports its address), three workers, and a shutdown (the
//! `CancelHandle` of the scope around the service) triggered by Ctrl-C or SIGTERM
//! (`hatchery::signal`, on every backend), after a number of jobs, or by a safety timeout. A shutdown stops each worker where it waits for
//! its next job: a job already taken is processed and written out inside `shield` (with a
//! `move_on_after` budget), so the shutdown waits for it instead of cutting it in half.
//! Each worker then closes its connection in a `finally` cleanup, which runs (shielded,
//! with a budget of its own) after the shutdown has stopped the work.
//!
//! ```text
//! cargo run --example graceful_shutdown -- --backend tokio   # or tokio-current, smol
//! ```
//!
//! It shuts itself down after 6 jobs (about 100 ms; jobs already taken are finished
//! too, so 6 to 8 may be reported), or after 1 s. Run it with
//! `-- --jobs 1000` (the safety timeout is then a minute) and press Ctrl-C to shut it down
//! yourself.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hatchery::signal::{Signal, Signals};
use hatchery::{
    current_effective_deadline, finally, move_on_after, now, nursery, shield, sleep, CancelHandle,
    CancelScope, TaskStatus,
};

const MS: Duration = Duration::from_millis(1);
/// The service shuts itself down when this many jobs are done (unless `--jobs N`).
const JOBS: u32 = 6;

/// Prints a line with the time since the service started.
fn log(t0: Instant, msg: impl std::fmt::Display) {
    println!("[{:>3} ms] {msg}", t0.elapsed().as_millis());
}

/// Says what a worker was doing when it was dropped: how cancellation looks from inside
/// (the future is dropped at the `.await` where it was waiting).
struct Doing(Instant, String);

impl Drop for Doing {
    fn drop(&mut self) {
        log(self.0, format_args!("{}: cancelled", self.1));
    }
}

struct Stats {
    /// The number of jobs after which the service shuts itself down.
    jobs: u32,
    next_job: AtomicU32,
    done: AtomicU32,
    written: AtomicU32,
    /// Connections whose cleanup ran (closed, or dropped after the close timed out).
    closed: AtomicU32,
    /// What triggered the shutdown, if anything did before the safety timeout.
    trigger: Mutex<Option<String>>,
}

impl Stats {
    /// Records the first trigger and shuts the service down.
    fn shut_down(&self, shutdown: &CancelHandle, why: String) {
        self.trigger.lock().unwrap().get_or_insert(why);
        shutdown.cancel();
    }
}

/// Shuts the service down on the first Ctrl-C (SIGINT) or SIGTERM. From the moment
/// `signals` was created they are ours (not the default "exit at once"); the watcher is
/// cancelled with the rest of the service, and dropping `signals` gives them back.
async fn on_signal(
    mut signals: Signals,
    stats: Arc<Stats>,
    shutdown: CancelHandle,
    t0: Instant,
) -> anyhow::Result<()> {
    let signal = signals.recv().await?;
    log(t0, format_args!("service: got {signal}: SHUTDOWN"));
    stats.shut_down(&shutdown, signal.to_string());
    Ok(())
}

/// Binds, reports its address through `ready`, then serves until cancelled.
async fn listener(ready: TaskStatus<&'static str>, t0: Instant) -> anyhow::Result<()> {
    log(t0, "listener: binding...");
    sleep(MS * 5).await;
    ready.started("127.0.0.1:8080"); // `start` returns this to the service
    let _doing = Doing(t0, "listener: serving".into());
    loop {
        sleep(MS * 40).await;
        log(t0, "listener: accepted a connection");
    }
}

/// Writes a finished job's result out.
async fn write(_job: u32) {
    sleep(MS * 10).await;
}

/// Closes a worker's connection politely; worker 3's peer is slow to answer.
async fn close(id: u32) {
    sleep(MS * if id == 3 { 200 } else { 10 }).await;
}

/// Takes jobs until cancelled, then closes its connection.
async fn worker(
    id: u32,
    stats: Arc<Stats>,
    shutdown: CancelHandle,
    t0: Instant,
) -> anyhow::Result<()> {
    sleep(MS).await; // connect
    let serve = async {
        let mut doing = Doing(t0, String::new());
        loop {
            // Waiting for the next job is where a shutdown stops a worker.
            doing.1 = format!("worker {id}: waiting for a job");
            sleep(MS).await; // wait for the next job (a queue's `recv().await` in real code)
            let job = stats.next_job.fetch_add(1, Ordering::Relaxed);
            // A job taken is finished and written out: `shield` keeps it going if the
            // shutdown lands meanwhile, and its own 100 ms budget still applies inside,
            // so a stuck job cannot hold the shutdown up.
            doing.1 = format!("worker {id}: on job {job}");
            let finished = shield(move_on_after(MS * 100, async {
                sleep(MS * (10 + 5 * id)).await; // process it
                let done = stats.done.fetch_add(1, Ordering::Relaxed) + 1;
                log(t0, format_args!("worker {id}: job {job} done, writing it"));
                if done == stats.jobs {
                    log(
                        t0,
                        format_args!("worker {id}: that makes {done} jobs: SHUTDOWN"),
                    );
                    stats.shut_down(&shutdown, format!("{done} jobs done"));
                }
                write(job).await;
                stats.written.fetch_add(1, Ordering::Relaxed);
            }))
            .await;
            let note = match finished {
                None => " over its budget: abandoned",
                Some(()) if current_effective_deadline().is_cancelled() => {
                    " written (shutting down: this worker stops at its next .await)"
                }
                Some(()) => " written",
            };
            log(t0, format_args!("worker {id}: job {job}{note}"));
        }
    };
    // `finally` runs the cleanup when `serve` ends, also when it is cancelled, and shields
    // it from that cancellation. The cleanup gets its own 30 ms budget.
    finally(serve, async {
        stats.closed.fetch_add(1, Ordering::Relaxed);
        match move_on_after(MS * 30, close(id)).await {
            Some(()) => log(t0, format_args!("worker {id}: connection closed")),
            None => log(
                t0,
                format_args!("worker {id}: close timed out after 30 ms, connection dropped"),
            ),
        }
    })
    .await
}

/// How the service ended.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))] // printed as it happens; returned for the test
struct Ended {
    /// What shut it down (`None`: the safety timeout).
    trigger: Option<String>,
    /// The service scope caught the cancellation (`cancelled_caught`).
    caught: bool,
    done: u32,
    written: u32,
    closed: u32,
    /// On hatchery's clock.
    took: Duration,
}

/// Runs the service until `jobs` jobs are done, a signal comes, or `safety` has passed.
async fn service(jobs: u32, safety: Duration) -> anyhow::Result<Ended> {
    let (t0, start) = (Instant::now(), now());
    let stats = Arc::new(Stats {
        jobs,
        next_job: AtomicU32::new(0),
        done: AtomicU32::new(0),
        written: AtomicU32::new(0),
        closed: AtomicU32::new(0),
        trigger: Mutex::new(None),
    });
    // The service runs in a scope: cancelling it is the shutdown. The timeout is a safety
    // net in case nothing else shuts it down.
    let scope = CancelScope::new().with_timeout(safety);
    let shutdown = scope.handle();
    let signal = shutdown.clone();
    let stats2 = stats.clone();
    // Registered before the service starts, not in the watcher task: a signal that comes
    // before that task first runs must not kill the process.
    let signals = Signals::new([Signal::INT, Signal::TERM])?;
    let out = scope
        .run(nursery(|n| async move {
            n.spawn(on_signal(signals, stats2.clone(), shutdown.clone(), t0));
            let addr = n.start(|ready| listener(ready, t0)).await?;
            log(
                t0,
                format_args!("service: listener ready on {addr}; starting workers"),
            );
            for id in 1..=3 {
                n.spawn(worker(id, stats2.clone(), shutdown.clone(), t0));
            }
            Ok::<_, anyhow::Error>(())
        }))
        .await;

    // `None`: the scope caught its own cancellation. Either way, the nursery inside has
    // waited for the listener and every worker, jobs in hand and cleanups included.
    if let Some(r) = out {
        r?;
    }
    let trigger = stats.trigger.lock().unwrap().take();
    log(
        t0,
        format_args!(
            "service: stopped (shut down by: {}; caught by the service scope: {})",
            trigger.as_deref().unwrap_or("the safety timeout"),
            signal.cancelled_caught()
        ),
    );
    let ended = Ended {
        trigger,
        caught: signal.cancelled_caught(),
        done: stats.done.load(Ordering::Relaxed),
        written: stats.written.load(Ordering::Relaxed),
        closed: stats.closed.load(Ordering::Relaxed),
        took: now() - start,
    };
    println!(
        "jobs finished: {}, written: {}; connections cleaned up: {}",
        ended.done, ended.written, ended.closed
    );
    Ok(ended)
}

fn main() -> anyhow::Result<()> {
    let args = examples::Args::parse(&["--jobs"]);
    let (jobs, safety) = match args.get("--jobs") {
        Some(n) => {
            let jobs = n
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| anyhow::anyhow!("--jobs takes a number of jobs, at least 1"))?;
            (jobs, Duration::from_secs(60))
        }
        None => (JOBS, Duration::from_secs(1)),
    };
    args.run(service(jobs, safety)).map(drop)
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;
    use std::time::Duration;

    use hatchery::signal::{Signal, Signals};
    use hatchery::sync::Lock;

    const MS: Duration = Duration::from_millis(1);

    /// Held by each test while its service handles SIGINT and SIGTERM: signals belong
    /// to the process, and the tests (each backend a test) run at once.
    static SIGNALS: LazyLock<Lock<()>> = LazyLock::new(|| Lock::new(()));

    /// Shut down by the sixth job: the jobs in hand are finished and written (7 in all),
    /// every worker's cleanup runs, and the service ends when worker 3's slow close gives
    /// up, 30 ms after its last write.
    #[hatchery::test(virtual_time)]
    async fn runs() {
        let _serial = SIGNALS.lock().await;
        let e = super::service(6, Duration::from_secs(1)).await.unwrap();
        assert_eq!(e.trigger.as_deref(), Some("6 jobs done"));
        assert!(e.caught);
        assert_eq!((e.done, e.written, e.closed), (7, 7, 3));
        assert_eq!(e.took, MS * 108);
        assert_eq!(hatchery::testing::elapsed(), e.took);
    }

    /// Nothing shuts it down: the safety timeout does, at 1 s, with the same care.
    #[hatchery::test(virtual_time)]
    async fn safety_timeout() {
        let _serial = SIGNALS.lock().await;
        let e = super::service(1000, Duration::from_secs(1)).await.unwrap();
        assert_eq!(e.trigger, None);
        assert!(e.caught);
        assert_eq!((e.done, e.written, e.closed), (100, 100, 3));
        assert_eq!(e.took, MS * 1044);
    }

    /// SIGTERM shuts it down, as `kill` or a service manager would, with the same care.
    /// On real time: the signal comes through the runtime's reactor. A stream of SIGTERM
    /// held around the service keeps a SIGTERM raised before the service handles it (or
    /// after) from ending the test binary; the raises repeat until the service stops.
    #[hatchery::test]
    async fn sigterm() {
        let _serial = SIGNALS.lock().await;
        let _guard = Signals::new([Signal::TERM]).unwrap();
        let e = hatchery::race!(super::service(1000, Duration::from_secs(60)), async {
            loop {
                hatchery::sleep(MS * 20).await;
                signal_hook::low_level::raise(Signal::TERM.as_raw()).unwrap();
            }
        })
        .unwrap();
        assert_eq!(e.trigger.as_deref(), Some("SIGTERM"));
        assert!(e.caught);
        assert_eq!(e.closed, 3);
        assert_eq!(e.done, e.written);
        assert!(e.took < Duration::from_secs(60));
    }
}
