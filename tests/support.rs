//! Shared support for hatchery's conformance tests: one test body, every backend.
//!
//! Tests are `async fn`s marked [`#[hatchery::test]`](hatchery::test), which turns each
//! one into a module `name` with one `#[test]` per backend:
//!
//! * `name::tokio_current`: tokio's current-thread runtime;
//! * `name::tokio_multi`: tokio's multi-thread runtime (one worker per core);
//! * `name::smol`: smol's executor on one thread per core.
//!
//! Tests of timeouts and deadlines use `#[hatchery::test(virtual_time)]`: the clock jumps
//! to the next deadline whenever every task is blocked, so they take no real time and
//! can assert exact elapsed times ([`hatchery::testing::elapsed`]). Tests that wait for
//! plain OS threads or tokio's own timers stay on real time (the plain attribute): hatchery
//! cannot see those, and virtual time would jump while they work.
//!
//! The helpers record what happened so that tests assert outcomes, not just termination:
//! [`Log`] records the order of events, [`Counter`] and [`DropGuard`] count drops;
//! [`until`] waits for a condition (on real or virtual time); [`backend`] and friends say
//! which backend runs the test.
//!
//! A test of a rule that holds for both kinds of nursery, the spawning one and the polled
//! one (N1-N7, S), is written once, generic over the [`Kind`] it opens, and run on each by
//! [`each_kind!`]: `name::spawning::smol`, `name::polling::smol`, ... So is a test of a
//! rule of the combinators (G2-G5), generic over the kind's [`Combinators`].
//!
//! There is no watchdog around `#[hatchery::test]`: CI runs the suite under `timeout`.
//! Under virtual time most hangs do not even happen: a sleep that should have been
//! cancelled ends after its virtual hour, and the test fails on the wrong outcome.
//!
//! ```
//! use std::time::Duration;
//!
//! use hatchery::testing::elapsed;
//! use hatchery_tests::{secs, Log};
//!
//! /// Checks nothing much, on every backend, in no real time.
//! #[hatchery::test(virtual_time)]
//! async fn example() {
//!     let log = Log::new();
//!     log.push("a");
//!     hatchery::sleep(secs(90)).await;
//!     log.push("b");
//!     assert_eq!(log.events(), ["a", "b"]);
//!     assert_eq!(elapsed(), Duration::from_secs(90));
//! }
//! # fn main() {
//! #     hatchery_smol::run(hatchery::testing::virtual_time(example::body()));
//! # }
//! ```

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures_lite::FutureExt;

pub use hatchery_conformance::kinds::{self, Kind, Polling, Spawning};

pub use crate::combinators::Combinators;

#[path = "support/combinators.rs"]
mod combinators;
#[path = "support/each_kind.rs"]
mod each_kind;
#[path = "support/hook.rs"]
pub mod hook;
#[path = "support/seeded.rs"]
pub mod seeded;
#[path = "support/trees.rs"]
pub mod trees;

/// The backend running the current `#[hatchery::test]`: `"tokio_current"`,
/// `"tokio_multi"` or `"smol"` (see [`hatchery::testing::backend`]).
///
/// # Panics
///
/// Outside a `#[hatchery::test]` (in a plain OS thread, for example: read it in the test
/// body first).
pub fn backend() -> &'static str {
    hatchery::testing::backend().expect("backend() is only known inside a #[hatchery::test]")
}

/// Whether spawned tasks can run in parallel with each other and with the test body: every
/// backend but tokio's current-thread runtime.
///
/// # Panics
///
/// As [`backend`].
pub fn is_multi_thread() -> bool {
    backend() != "tokio_current"
}

/// Whether the backend is tokio (so tokio's own utilities, like its timers, work).
///
/// # Panics
///
/// As [`backend`].
pub fn is_tokio() -> bool {
    backend().starts_with("tokio")
}

/// How long [`until`] and [`eventually`] wait (in wall-clock time) for a condition on
/// real time before giving up.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Under virtual time, [`until`] and [`eventually`] give up once they have seen every
/// task blocked this many times with their condition still false, and for at least
/// [`SETTLE_PATIENCE`].
const ROUNDS: usize = 1000;

/// See [`ROUNDS`]. A floor in wall-clock time, so that a thread that is slow to count a
/// task it has just woken is not mistaken for "nothing will ever happen".
const SETTLE_PATIENCE: Duration = Duration::from_secs(1);

/// A backend to run a root future on by hand, for tests that run many roots per `#[test]`
/// (randomized trees). Tests of one scenario use `#[hatchery::test]` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// tokio's current-thread runtime: every task on the test's thread.
    TokioCurrent,
    /// tokio's multi-thread runtime with two worker threads; the root future runs on the
    /// test's thread, every spawned task on a worker.
    TokioMulti,
    /// smol's executor on two threads (the test's thread and one more).
    Smol,
}

/// How long one [`Backend::run`] may take before its watchdog fails it, unless the
/// environment variable `HATCHERY_TEST_WATCHDOG_SECS` says otherwise.
pub const WATCHDOG: Duration = Duration::from_secs(60);

fn watchdog_limit() -> Duration {
    std::env::var("HATCHERY_TEST_WATCHDOG_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(WATCHDOG, Duration::from_secs)
}

impl Backend {
    /// Runs `fut` as the root future of this backend and returns its output.
    ///
    /// The run fails with a panic if `fut` has not finished within [`WATCHDOG`].
    pub fn run<F: Future>(self, fut: F) -> F::Output {
        let limit = watchdog_limit();
        let watchdog = Watchdog::new(limit);
        let fut = fut.or(async move {
            watchdog.await;
            panic!("test did not finish within {limit:?} (watchdog): something hangs");
        });
        match self {
            Backend::TokioCurrent => hatchery_tokio::run_current_thread(fut),
            Backend::TokioMulti => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(2).enable_all();
                hatchery_tokio::run_with(builder, fut)
            }
            Backend::Smol => hatchery_smol::run_with_threads(2, fut),
        }
    }
}

/// A timer on its own thread, independent of any runtime (and so of anything that
/// could hang in one). The thread ends when the future is dropped.
///
/// When `limit` passes, the future completes (and the test panics). If the test still
/// has not finished [`GRACE`] later, something blocks its thread synchronously; the
/// watchdog then ends the whole test process so that the suite fails instead of hanging.
struct Watchdog {
    shared: Arc<Mutex<(bool, Option<Waker>)>>,
    _stop: mpsc::Sender<()>,
}

/// How long the watchdog waits, after its limit, before ending the process.
const GRACE: Duration = Duration::from_secs(10);

impl Watchdog {
    fn new(limit: Duration) -> Watchdog {
        let shared = Arc::new(Mutex::new((false, None::<Waker>)));
        let (stop, stopped) = mpsc::channel::<()>();
        let remote = shared.clone();
        let test = std::thread::current()
            .name()
            .unwrap_or("<unnamed>")
            .to_string();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(limit) {
                let waker = {
                    let mut s = remote.lock().unwrap_or_else(|e| e.into_inner());
                    s.0 = true;
                    s.1.take()
                };
                if let Some(w) = waker {
                    w.wake();
                }
                if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(GRACE) {
                    // Not `eprintln!`: the test harness would capture it, and it is lost
                    // when the process exits.
                    let _ = writeln!(
                        std::io::stderr(),
                        "watchdog: test `{test}` still blocked {GRACE:?} after its limit; \
                         ending the process"
                    );
                    std::process::exit(102);
                }
            }
        });
        Watchdog {
            shared,
            _stop: stop,
        }
    }
}

impl Future for Watchdog {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 {
            return Poll::Ready(());
        }
        s.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// An ordered record of events, shared between tasks and threads.
///
/// Cheap to clone; every clone appends to the same list.
#[derive(Clone, Default)]
pub struct Log {
    events: Arc<Mutex<Vec<&'static str>>>,
}

impl Log {
    /// An empty log.
    pub fn new() -> Log {
        Log::default()
    }

    /// Appends `event`.
    pub fn push(&self, event: &'static str) {
        self.lock().push(event);
    }

    /// A copy of the events so far, in order.
    pub fn events(&self) -> Vec<&'static str> {
        self.lock().clone()
    }

    /// How many times `event` was recorded.
    pub fn count(&self, event: &str) -> usize {
        self.lock().iter().filter(|e| **e == event).count()
    }

    /// Whether `event` was recorded.
    pub fn contains(&self, event: &str) -> bool {
        self.count(event) > 0
    }

    /// The number of events so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// A guard that records `event` when it is dropped: put it in a future to see when
    /// (and whether) that future is dropped.
    pub fn on_drop(&self, event: &'static str) -> DropGuard {
        DropGuard {
            counter: None,
            log: Some((self.clone(), event)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<&'static str>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.lock().iter()).finish()
    }
}

/// A shared counter, for example of drops ([`Counter::guard`]) or of started tasks.
///
/// Cheap to clone; every clone counts into the same number.
#[derive(Clone, Default)]
pub struct Counter {
    n: Arc<AtomicUsize>,
}

impl Counter {
    /// A counter at zero.
    pub fn new() -> Counter {
        Counter::default()
    }

    /// Adds one and returns the new value.
    pub fn incr(&self) -> usize {
        self.n.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The current value.
    pub fn get(&self) -> usize {
        self.n.load(Ordering::SeqCst)
    }

    /// A guard that adds one to this counter when it is dropped.
    pub fn guard(&self) -> DropGuard {
        DropGuard {
            counter: Some(self.clone()),
            log: None,
        }
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counter({})", self.get())
    }
}

/// Counts or logs its own drop: made by [`Counter::guard`] and [`Log::on_drop`].
pub struct DropGuard {
    counter: Option<Counter>,
    log: Option<(Log, &'static str)>,
}

impl DropGuard {
    /// Also records `event` in `log` when dropped.
    pub fn and_log(mut self, log: &Log, event: &'static str) -> DropGuard {
        self.log = Some((log.clone(), event));
        self
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(c) = &self.counter {
            c.incr();
        }
        if let Some((log, event)) = &self.log {
            log.push(event);
        }
    }
}

impl fmt::Debug for DropGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropGuard")
            .field("counter", &self.counter)
            .field("log", &self.log.as_ref().map(|(_, e)| e))
            .finish()
    }
}

/// Waits until `cond` holds.
///
/// On real time it checks after short hatchery sleeps. Under virtual time it lets no time
/// pass: it waits until every other task is blocked
/// ([`wait_all_tasks_blocked`](hatchery::testing::wait_all_tasks_blocked)) and checks
/// again, so the condition must follow from the progress of hatchery tasks alone (not
/// from a timer or an OS thread). To wait for a time, sleep until it.
///
/// This is a suspension point like any hatchery wait: in a cancelled scope it never
/// returns.
///
/// # Panics
///
/// If `cond` still does not hold after [`PATIENCE`] (wall-clock time) on real time, or
/// once every task is blocked, time after time, under virtual time.
pub async fn until(mut cond: impl FnMut() -> bool) {
    if hatchery::testing::is_virtual_time() {
        assert!(
            settle(&mut cond).await,
            "condition not reached while every task was blocked (under virtual time, `until` \
             lets no time pass: sleep until the instant instead)"
        );
        return;
    }
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < PATIENCE,
            "condition not reached within {PATIENCE:?}"
        );
        hatchery::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until `cond` holds or `limit` (wall-clock time) has passed; returns whether it
/// held. For bounded "soon after" assertions.
///
/// Under virtual time, like [`until`], it lets no time pass (and ignores `limit`): it
/// returns whether `cond` holds once every other task is blocked.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    if hatchery::testing::is_virtual_time() {
        return settle(&mut cond).await;
    }
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= limit {
            return cond();
        }
        hatchery::sleep(Duration::from_millis(1)).await;
    }
}

/// Under virtual time: lets every other task run until blocked, again and again, until
/// `cond` holds. Gives up (returns `false`) after [`ROUNDS`] rounds and
/// [`SETTLE_PATIENCE`] without it: then nothing but a change of time could help, and time
/// stands still while anyone waits here.
async fn settle(cond: &mut impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    let mut rounds = 0;
    while !cond() {
        if rounds >= ROUNDS && start.elapsed() >= SETTLE_PATIENCE {
            return false;
        }
        rounds += 1;
        hatchery::testing::wait_all_tasks_blocked().await;
        // Threads outside hatchery (a plain thread about to wake a task) are not
        // counted: every task may be blocked while one of them is about to change
        // that. Let them go on before the next round.
        std::thread::yield_now();
    }
    true
}

/// Awaits `fut`, catching a panic that escapes it; the panic's message is the error.
pub async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, String> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|p| panic_message(&*p))
}

/// A value whose destructor panics with the given message: for the rules of a panic in
/// a drop (N3, H5).
///
/// ```should_panic
/// drop(hatchery_tests::PanicOnDrop("boom"));
/// ```
#[derive(Debug)]
pub struct PanicOnDrop(pub &'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

/// The message of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

/// A test error type with `Debug`, `Display` and `Error`, comparable in assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestError(pub &'static str);

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "test error {}", self.0)
    }
}

impl std::error::Error for TestError {}

/// An hour: "forever" for a test, but a real, representable duration.
pub const HOUR: Duration = Duration::from_secs(3600);

/// Shorthand for `Duration::from_millis(ms)`.
pub fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Shorthand for `Duration::from_secs(secs)`: the unit of virtual-time tests.
pub fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// The latest instant after `from` that `Instant` can represent, to the nanosecond: the
/// farthest future a caller can build without overflowing.
pub fn latest_instant(from: Instant) -> Instant {
    let mut at = from;
    for k in (0..64).rev() {
        if let Some(later) = at.checked_add(Duration::from_secs(1 << k)) {
            at = later;
        }
    }
    for k in (0..30).rev() {
        if let Some(later) = at.checked_add(Duration::from_nanos(1 << k)) {
            at = later;
        }
    }
    at
}

/// A waker that records that it was woken, for futures polled by hand (model tests):
/// `Waker::from(flag.clone())`, then `flag.0.load(..)`.
#[derive(Debug)]
pub struct Flag(pub AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// An executor that has shut down: it drops every task and all blocking work it is
/// given, inside `spawn` and `spawn_blocking`.
#[derive(Debug)]
pub struct ShutDown;

impl hatchery::rt::Runtime for ShutDown {
    fn spawn(&self, task: hatchery::rt::Task) {
        drop(task);
    }
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep_until(&self, _: Instant) -> Pin<Box<dyn hatchery::rt::Sleep>> {
        unreachable!("no timer is used")
    }
    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        drop(work);
    }
}

/// Runs `scenario` in a child process of this test binary, for what would end the whole
/// binary when it fails (a stack overflow, an abort), and asserts that the child exits
/// cleanly. `test` is the test's full name (as `--exact` takes it); `env` names the
/// variable that tells the child it is the child, where `scenario` runs.
pub fn in_child_process(test: &str, env: &str, scenario: impl FnOnce()) {
    if std::env::var_os(env).is_some() {
        scenario();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env, "1")
        .output()
        .expect("run the child process");
    assert!(
        out.status.success(),
        "the child process did not exit cleanly: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // A name that matches no test would pass without running anything.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 passed"),
        "the child ran no test:\n{stdout}"
    );
}
