//! Shared support for hatchery's conformance tests: one test body, every backend.
//!
//! [`backend_test!`] turns each `async fn name() { .. }` into a module `name` with one
//! `#[test]` per backend:
//!
//! * `name::tokio_current`: tokio's current-thread runtime
//!   ([`hatchery_tokio::run_current_thread`]);
//! * `name::tokio_multi`: tokio's multi-thread runtime with two workers
//!   ([`hatchery_tokio::run_with`]);
//! * `name::smol`: smol's executor on two threads ([`hatchery_smol::run_with_threads`]).
//!
//! The helpers record what happened so that tests assert outcomes, not just termination:
//! [`Log`] records the order of events, [`Counter`] and [`DropGuard`] count drops.
//! Every test also runs under a [watchdog](WATCHDOG) so that a hang fails the test with a
//! message instead of stalling the suite.
//!
//! ```
//! use hatchery_tests::{backend_test, Log};
//!
//! backend_test! {
//!     /// Checks nothing much.
//!     async fn example() {
//!         let log = Log::new();
//!         log.push("a");
//!         hatchery::checkpoint().await;
//!         log.push("b");
//!         assert_eq!(log.events(), ["a", "b"]);
//!     }
//! }
//! # fn main() {}
//! ```

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::FutureExt;

/// How long one test may run before the watchdog fails it, unless the environment
/// variable `HATCHERY_TEST_WATCHDOG_SECS` says otherwise.
pub const WATCHDOG: Duration = Duration::from_secs(60);

fn watchdog_limit() -> Duration {
    std::env::var("HATCHERY_TEST_WATCHDOG_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(WATCHDOG, Duration::from_secs)
}

/// How long [`until`] and [`eventually`] wait for a condition before giving up.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Defines one `#[test]` per backend for each `async fn name() { body }` it is given.
///
/// Each function becomes a module `name` holding `tokio_current`, `tokio_multi` and
/// `smol`, each of which runs `body` as the root future of that backend. Attributes on
/// the function (doc comments, `#[ignore = ".."]`, `#[should_panic]`) are copied onto all
/// three tests. Items of the enclosing module are visible in the body.
#[macro_export]
macro_rules! backend_test {
    ($( $(#[$meta:meta])* async fn $name:ident() $body:block )*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$meta])*
            #[test]
            fn tokio_current() {
                $crate::Backend::TokioCurrent.run(async move $body)
            }

            $(#[$meta])*
            #[test]
            fn tokio_multi() {
                $crate::Backend::TokioMulti.run(async move $body)
            }

            $(#[$meta])*
            #[test]
            fn smol() {
                $crate::Backend::Smol.run(async move $body)
            }
        }
    )*};
}

/// The backends every conformance test runs on.
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

thread_local! {
    static BACKEND: Cell<Option<Backend>> = const { Cell::new(None) };
}

impl Backend {
    /// Every backend, in the order of the generated tests.
    pub const ALL: [Backend; 3] = [Backend::TokioCurrent, Backend::TokioMulti, Backend::Smol];

    /// The backend running the current test's root future.
    ///
    /// # Panics
    ///
    /// Outside [`Backend::run`], or in a spawned task (only the root future knows).
    pub fn current() -> Backend {
        BACKEND
            .with(Cell::get)
            .expect("Backend::current() is only known in a test's root future")
    }

    /// Whether spawned tasks can run in parallel with each other and with the root.
    pub fn is_multi_thread(self) -> bool {
        self != Backend::TokioCurrent
    }

    /// Whether this backend is tokio (so tokio's own utilities work in it).
    pub fn is_tokio(self) -> bool {
        matches!(self, Backend::TokioCurrent | Backend::TokioMulti)
    }

    /// Runs `fut` as the root future of this backend and returns its output.
    ///
    /// The run fails with a panic if `fut` has not finished within [`WATCHDOG`].
    pub fn run<F: Future>(self, fut: F) -> F::Output {
        struct Reset(Option<Backend>);
        impl Drop for Reset {
            fn drop(&mut self) {
                BACKEND.with(|b| b.set(self.0));
            }
        }
        let _reset = Reset(BACKEND.with(|b| b.replace(Some(self))));
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

/// Waits, with short hatchery sleeps, until `cond` holds.
///
/// This is a suspension point like any hatchery wait: in a cancelled scope it never
/// returns.
///
/// # Panics
///
/// If `cond` still does not hold after [`PATIENCE`] (wall-clock time).
pub async fn until(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < PATIENCE,
            "condition not reached within {PATIENCE:?}"
        );
        hatchery::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits, with short hatchery sleeps, until `cond` holds or `limit` (wall-clock time) has
/// passed; returns whether it held. For bounded "soon after" assertions.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
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

/// Awaits `fut`, catching a panic that escapes it; the panic's message is the error.
pub async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, String> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|p| panic_message(&*p))
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
