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
use hatchery::rt::{self, Runtime, Sleep, Task};
use hatchery_conformance::{assert_released, prepare, root_runtime, SCENARIOS};
use hatchery_smol::SmolRuntime;

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
