//! The kit catches broken bindings: each runtime below breaks one part of the seam's
//! contract, and the scenario that checks that part fails on it (and passes on the same
//! runtime unbroken).

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use async_executor::Executor;
use futures_lite::future::block_on;
use hatchery::rt::{self, Reactor, Runtime, Sleep, Task};
use hatchery_conformance::{assert_released, prepare, root_runtime, SCENARIOS};
use hatchery_smol::{AsyncIoReactor, SmolRuntime};

/// What a [`Broken`] runtime gets wrong.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// `spawn` polls the task once, inside `spawn`, before the executor gets it.
    PollsInline,
    /// Timers fire at once, whatever their deadline.
    EarlyTimers,
    /// `spawn_blocking` runs the work inline, on the calling thread.
    BlockingInline,
    /// The reactor waits for tokio's read or write readiness only, which an event that
    /// carries only an error is not.
    #[cfg(unix)]
    ErrorsUnseen,
}

/// smol's runtime, with one fault.
struct Broken {
    inner: SmolRuntime,
    fault: Fault,
}

impl Runtime for Broken {
    fn spawn(&self, task: Task) {
        if self.fault == Fault::PollsInline {
            let mut task = Box::pin(task);
            let _ = task.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            self.inner.spawn(Task::from_future(task));
        } else {
            self.inner.spawn(task);
        }
    }
    fn now(&self) -> Instant {
        self.inner.now()
    }
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        match self.fault {
            Fault::EarlyTimers => self.inner.sleep_until(Instant::now()),
            _ => self.inner.sleep_until(deadline),
        }
    }
    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        match self.fault {
            Fault::BlockingInline => work(),
            _ => self.inner.spawn_blocking(work),
        }
    }
    fn reactor(&self) -> Option<&dyn Reactor> {
        match self.fault {
            #[cfg(unix)]
            Fault::ErrorsUnseen => Some(errors_unseen::reactor()),
            _ => Some(&AsyncIoReactor),
        }
    }
}

/// A reactor on tokio's `AsyncFd` that waits with `poll_read_ready` and
/// `poll_write_ready` alone (as `hatchery-tokio` did before rule R6): their readiness
/// never includes tokio's error readiness, so an event that carries only an error (an
/// ICMP answer to a UDP socket) ends no wait.
#[cfg(unix)]
mod errors_unseen {
    use std::io;
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
    use std::sync::OnceLock;
    use std::task::{Context, Poll};

    use hatchery::rt::{Reactor, Readiness, Registration};
    use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

    pub(super) struct ErrorsUnseen(tokio::runtime::Runtime);

    /// One, with a tokio runtime whose thread drives its reactor, for the whole test.
    pub(super) fn reactor() -> &'static ErrorsUnseen {
        static REACTOR: OnceLock<ErrorsUnseen> = OnceLock::new();
        REACTOR.get_or_init(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_io()
                .build()
                .unwrap();
            ErrorsUnseen(rt)
        })
    }

    impl Reactor for ErrorsUnseen {
        fn register(&self, socket: OwnedFd) -> io::Result<Box<dyn Registration>> {
            let _guard = self.0.enter();
            #[allow(deprecated)] // as in hatchery-tokio: an `OwnedFd` keeps its descriptor
            Ok(Box::new(Fd(AsyncFd::new(socket)?)))
        }
    }

    struct Fd(AsyncFd<OwnedFd>);

    impl AsFd for Fd {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.0.get_ref().as_fd()
        }
    }

    impl Readiness for Fd {
        type Ready<'a> = AsyncFdReadyGuard<'a, OwnedFd>;

        fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Ready<'_>>> {
            self.0.poll_read_ready(cx)
        }
        fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Ready<'_>>> {
            self.0.poll_write_ready(cx)
        }
        fn clear_ready(&self, mut ready: Self::Ready<'_>) {
            ready.clear_ready();
        }
    }
}

/// Runs `fut` as a root on a one-thread smol executor, through a [`Broken`] runtime.
fn run_broken<F: Future>(fault: Fault, fut: F) -> F::Output {
    let ex = Arc::new(Executor::new());
    let runtime = Arc::new(Broken {
        inner: SmolRuntime::new(&ex),
        fault,
    });
    block_on(ex.run(rt::enter_root(runtime, fut)))
}

/// Whether the scenario named `name` passes on a runtime with `fault`.
fn passes(name: &str, fault: Fault) -> bool {
    let scenario = SCENARIOS.iter().find(|s| s.name == name).unwrap();
    catch_unwind(AssertUnwindSafe(|| run_broken(fault, prepare(scenario)))).is_ok()
}

#[test]
fn a_spawn_that_polls_inline_fails_n8() {
    assert!(passes("n8_spawn_never_polls_inline", Fault::None));
    assert!(!passes("n8_spawn_never_polls_inline", Fault::PollsInline));
}

#[test]
fn timers_that_fire_early_fail_d1() {
    assert!(passes(
        "d1_the_runtime_clock_drives_sleeps_and_timeouts",
        Fault::None
    ));
    assert!(!passes(
        "d1_the_runtime_clock_drives_sleeps_and_timeouts",
        Fault::EarlyTimers
    ));
}

#[test]
fn blocking_work_run_inline_fails_w6() {
    assert!(passes(
        "w6_run_blocking_runs_on_another_thread",
        Fault::None
    ));
    assert!(!passes(
        "w6_run_blocking_runs_on_another_thread",
        Fault::BlockingInline
    ));
}

/// The scenario fails on its bound (5 s) rather than hanging.
#[cfg(unix)]
#[test]
fn a_reactor_that_misses_error_events_fails_r6() {
    let name = "r6_an_error_event_ends_a_waiting_receive";
    assert!(passes(name, Fault::None));
    assert!(!passes(name, Fault::ErrorsUnseen));
    // The resets come with a hang-up, which tokio's readiness includes.
    assert!(passes(
        "r6_a_reset_ends_a_waiting_read",
        Fault::ErrorsUnseen
    ));
}

/// A runtime that owns its executor, and threads that run it: the threads keep the
/// runtime (they keep the last one they polled for), the runtime keeps the executor they
/// run, and `run` leaks both. (Its threads are left blocked for the rest of the test
/// process, on purpose.)
struct OwnsItsThreads {
    executor: Arc<Executor<'static>>,
}

impl Runtime for OwnsItsThreads {
    fn spawn(&self, task: Task) {
        self.executor.spawn(task).detach();
    }
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        let ex = Arc::new(Executor::new());
        SmolRuntime::new(&ex).sleep_until(deadline)
    }
    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        std::thread::spawn(work);
    }
}

#[test]
fn a_runtime_that_owns_its_threads_is_never_released() {
    let executor = Arc::new(Executor::new());
    for _ in 0..2 {
        let ex = executor.clone();
        std::thread::spawn(move || block_on(ex.run(std::future::pending::<()>())));
    }
    let runtime = Arc::new(OwnsItsThreads { executor });
    // The root is polled here, but its task only by the executor's threads (this thread
    // does not run the executor), which then keep the runtime.
    let weak = block_on(rt::enter_root(runtime, root_runtime()));
    let kept = catch_unwind(AssertUnwindSafe(|| {
        assert_released(weak, Duration::from_millis(200))
    }));
    let message = kept.unwrap_err();
    let message = message.downcast_ref::<String>().unwrap();
    assert!(message.contains("owns its executor's threads"), "{message}");

    // Unbroken: the same run on smol's runtime, which holds its executor weakly.
    let weak = run_broken(Fault::None, root_runtime());
    assert_released(weak, Duration::from_secs(10));
}
