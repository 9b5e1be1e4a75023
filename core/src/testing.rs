//! Deterministic testing: virtual time with auto-advance, and knowing when every task is
//! blocked.
//!
//! Tests of timeouts and retries should not sleep for real. Run a test under
//! [`virtual_time`] (or write it with
#![cfg_attr(
    feature = "macros",
    doc = "[`#[hatchery::test(virtual_time)]`](crate::test))"
)]
#![cfg_attr(
    not(feature = "macros"),
    doc = "`#[hatchery::test(virtual_time)]`, with the `macros` feature)"
)]
//! and hatchery's clock becomes virtual:
//!
//! * time stands still while any hatchery task can run;
//! * when every task is blocked, the clock jumps straight to the next deadline (a sleep,
//!   a scope's deadline, a retry's backoff) and wakes whoever waits for it
//!   ("autojump", like trio's `MockClock(autojump_threshold=0)`);
//! * [`advance`] moves it by hand.
//!
//! So `move_on_after(1 hour)` around a future that never finishes returns at once, and
//! [`elapsed`] reports exactly one hour. This works on every backend, multi-threaded ones
//! included: hatchery counts its tasks itself rather than relying on the executor.
//! Blocking work started with [`to_thread::run_sync`](crate::to_thread::run_sync) or
//! [`run_blocking`](crate::run_blocking) counts as busy, for as long as it runs: so time
//! stands still while it waits, too (on a stream's `send_blocking`, say), except in a
//! call back into the runtime ([`from_thread`](crate::from_thread), a portal's `call`),
//! where it counts as idle. Work on a thread that waits for a hatchery task in another
//! way, a task which waits for the clock, never ends under virtual time; call back with
//! `from_thread`, or give such a test real time.
//!
//! [`wait_all_tasks_blocked`] waits until every other task is blocked, for tests of
//! interleavings ("the worker is now waiting on the channel; send").
//!
//! A virtual-time run in which every task is blocked and the clock cannot move (no timer
//! is set; under [`manual_time`], always) is deadlocked, unless something outside
//! hatchery wakes a task. If that lasts 10 seconds of real time, the run panics and says
//! so, rather than hanging; see [`TestRun::with_deadlock_timeout`].
//!
//! # A test run inside another
//!
//! A [`virtual_time`], [`manual_time`] or [`tracked`] future awaited inside another
//! hatchery run is a run of its own: its clock starts at the enclosing run's `now` and
//! moves by itself (the enclosing clock does not move with it); its tasks and its scope
//! tree are its own. The enclosing scopes do not cancel it: if one of them is cancelled,
//! the inner run is dropped, as if from outside hatchery (see the cancel safety of
//! [`nursery`](crate::nursery())), and its `finally` cleanups do not run. (Unlike
//! [`rt::enter`](crate::rt::enter), which runs in the enclosing scope: the enclosing
//! deadlines are on another clock than the run's.)
//!
//! # Caveat: real I/O
//!
//! hatchery only sees its own tasks and timers. A task waiting for a socket, a pipe or a
//! thread outside hatchery looks blocked, so virtual time may jump while the I/O is in
//! flight (and a timeout around it may fire "early"). Use virtual time for code whose
//! waiting is all hatchery's (timers, hatchery tasks, in-process channels), or give real
//! I/O real time. Likewise, `tokio::task::yield_now` looks blocked (tokio wakes the task
//! only after the poll): yield with [`checkpoint`](crate::checkpoint) instead. (A task
//! that tokio's cooperative budget holds back the same way counts as busy: it is woken
//! again at once, see [`Runtime::budget_spent`].)
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use hatchery::testing::{elapsed, virtual_time};
//! use hatchery::{move_on_after, sleep};
//!
//! hatchery_smol::run(virtual_time(async {
//!     let wall = std::time::Instant::now();
//!     let out = move_on_after(Duration::from_secs(3600), std::future::pending::<()>()).await;
//!     assert_eq!(out, None);
//!     assert_eq!(elapsed(), Duration::from_secs(3600));
//!     sleep(Duration::from_secs(60)).await;
//!     assert_eq!(elapsed(), Duration::from_secs(3660));
//!     assert!(wall.elapsed() < Duration::from_secs(5));
//! }));
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use crate::context::{self, Enter};
use crate::seam::{self, Busy, LocalRuntime, LocalTask, Runtime, Sleep, Task};

/// The clock and task bookkeeping shared by everything inside one [`virtual_time`] (or
/// [`tracked`]) run.
struct Clock {
    base: Arc<dyn Runtime>,
    /// The backend's name, when run by `#[hatchery::test]`.
    backend: Option<&'static str>,
    /// Virtual time (else the base runtime's clock, with tracking only).
    virtual_time: bool,
    /// The base runtime's clock is virtual: a `tracked` run inside a virtual-time run.
    virtual_base: bool,
    autojump: bool,
    start: Instant,
    state: Mutex<State>,
    /// The run this one runs inside, if its base runtime is one of that run's.
    parent: Option<Arc<Clock>>,
    /// This run's runtimes: its own, and those of adapters' `enter`s inside it (see
    /// [`Runtime::nested`]). They tell this run's code from that of another root (an
    /// adapter's blocking `run`) polled in one of its tasks, where `CLOCK` is set too.
    runtimes: Mutex<Vec<Weak<TrackedRuntime>>>,
}

struct State {
    now: Instant,
    /// Tasks that are running or ready to run, plus blocking work in flight.
    busy: usize,
    timers: BTreeMap<(Instant, u64), Waker>,
    next_timer: u64,
    /// `wait_all_tasks_blocked` callers, woken (before any time jump) when `busy` is 0.
    idle_waiters: Vec<(Waker, Arc<AtomicBool>)>,
    /// Counts every time something becomes busy: a stall (see [`Clock::stalled`]) is the
    /// same stall for as long as this does not move.
    activity: u64,
    /// The test run's own waker, while it watches for deadlocks: woken when the run
    /// stalls.
    stall_waker: Option<Waker>,
}

// The count, and the seam's view of it, for the threads that run the run's blocking work.
impl Busy for Clock {
    fn busy(&self) {
        let mut s = self.lock();
        s.busy += 1;
        s.activity = s.activity.wrapping_add(1);
    }

    /// One busy thing is now blocked (or done). If nothing is busy any more, wake the
    /// `wait_all_tasks_blocked` callers, or else jump to the next deadline.
    fn unbusy(&self) {
        let wake: Vec<Waker> = {
            let mut s = self.lock();
            s.busy -= 1;
            if s.busy != 0 {
                return;
            }
            let wake: Vec<Waker> = if !s.idle_waiters.is_empty() {
                s.idle_waiters
                    .drain(..)
                    .map(|(w, fired)| {
                        fired.store(true, Ordering::Release);
                        w
                    })
                    .collect()
            } else {
                match s.timers.keys().next() {
                    Some(&(first, _)) if self.virtual_time && self.autojump => {
                        s.now = s.now.max(first);
                        due(&mut s)
                    }
                    _ => Vec::new(),
                }
            };
            if wake.is_empty() {
                // Tell the test run, which watches for deadlocks.
                let stall = self.stalled(&s).then(|| s.stall_waker.take()).flatten();
                drop(s);
                if let Some(w) = stall {
                    w.wake();
                }
                return;
            }
            // Stay busy until every one of them is woken (and so counted busy itself):
            // otherwise the first to run could find everything blocked again and move
            // the clock before the others have run.
            s.busy += 1;
            wake
        };
        wake.into_iter().for_each(Waker::wake);
        self.unbusy();
    }
}

impl Clock {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `rt` is one of this run's runtimes.
    fn owns(&self, rt: &Arc<dyn Runtime>) -> bool {
        let rt = Arc::as_ptr(rt).cast::<u8>();
        let runtimes = self.runtimes.lock().unwrap_or_else(|e| e.into_inner());
        // A `Weak` keeps its allocation: no other runtime can be at that address.
        runtimes.iter().any(|w| w.as_ptr().cast::<u8>() == rt)
    }

    /// A runtime of this run on the executor `base`, recorded as one of its runtimes.
    fn runtime(self: &Arc<Self>, base: Arc<dyn Runtime>) -> Arc<TrackedRuntime> {
        let rt = Arc::new(TrackedRuntime {
            clock: self.clone(),
            base,
        });
        let mut runtimes = self.runtimes.lock().unwrap_or_else(|e| e.into_inner());
        runtimes.retain(|w| w.strong_count() > 0);
        runtimes.push(Arc::downgrade(&rt));
        rt
    }

    /// Nothing in the run can move any more, unless something outside hatchery wakes a
    /// task: every task is blocked, nobody waits for that, and the virtual clock cannot
    /// jump (no timer is set, or only [`advance`] moves it).
    fn stalled(&self, s: &State) -> bool {
        self.virtual_time
            && s.busy == 0
            && s.idle_waiters.is_empty()
            && (!self.autojump || s.timers.is_empty())
    }

    fn now(&self) -> Instant {
        if self.virtual_time {
            self.lock().now
        } else {
            self.base.now()
        }
    }

    fn advance(&self, by: Duration) {
        let wake = {
            let mut s = self.lock();
            s.now = s.now.checked_add(by).unwrap_or_else(|| {
                panic!(
                    "hatchery: virtual time overflow: advancing the clock by {by:?} passes \
                         the latest instant `Instant` can hold; advance by less"
                )
            });
            due(&mut s)
        };
        wake.into_iter().for_each(Waker::wake);
    }
}

/// Removes and returns the wakers of every timer that is due.
fn due(s: &mut State) -> Vec<Waker> {
    let now = s.now;
    let later = s.timers.split_off(&(now, u64::MAX));
    std::mem::replace(&mut s.timers, later)
        .into_values()
        .collect()
}

thread_local! {
    static CLOCK: RefCell<Option<Arc<Clock>>> = const { RefCell::new(None) };
}

fn current_clock(what: &str) -> Arc<Clock> {
    run_clock().unwrap_or_else(|| panic!("hatchery: `{what}` needs a test run under `hatchery::testing::virtual_time` or `tracked` (or `#[hatchery::test]`)"))
}

/// The runtime inside a tracked run: the base runtime, with every task wrapped so that
/// the clock knows when all of them are blocked, and (with virtual time) virtual timers.
struct TrackedRuntime {
    clock: Arc<Clock>,
    /// The executor: the run's base runtime, or the one of an adapter's `enter` inside
    /// the run (see [`Runtime::nested`]).
    base: Arc<dyn Runtime>,
}

/// The test run of the code being polled, if any.
///
/// `CLOCK` is set for a whole task poll of a run, so a separate root that the task runs
/// on its thread (an adapter's blocking `run`, which is not part of the run) sees it
/// too: the run counts only if it owns the runtime of the code being polled.
fn run_clock() -> Option<Arc<Clock>> {
    context::with_current(|c| c.and_then(|c| run_of(c.rt)))
}

/// The test run that `rt` (the runtime of the code being polled) belongs to, if any.
fn run_of(rt: &Arc<dyn Runtime>) -> Option<Arc<Clock>> {
    let mut clock = CLOCK.with(|c| c.borrow().clone());
    while let Some(c) = clock {
        if c.owns(rt) {
            return Some(c);
        }
        clock = c.parent.clone();
    }
    None
}

/// `executor` under `clock`'s run, and the runs it runs inside.
fn tracked_runtime(clock: &Arc<Clock>, executor: &Arc<dyn Runtime>) -> Arc<TrackedRuntime> {
    clock.runtime(match &clock.parent {
        Some(parent) => tracked_runtime(parent, executor),
        None => executor.clone(),
    })
}

impl Runtime for TrackedRuntime {
    fn spawn(&self, task: Task) {
        self.clock.busy();
        // Wrapped, not made anew: the base runtime may still keep its handle with the
        // task (`Task::spawn_with`), as it does outside test runs.
        let clock = self.clock.clone();
        let base = self.base.clone();
        self.base
            .spawn(task.wrap(|task| Tracked::new(clock, base, task)));
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        if self.clock.virtual_time {
            Box::pin(VirtualSleep {
                clock: self.clock.clone(),
                deadline,
                key: None,
            })
        } else {
            self.base.sleep_until(deadline)
        }
    }

    fn timer_horizon(&self) -> Duration {
        if self.clock.virtual_time {
            // A virtual timer takes any instant: the clock jumps to a far deadline at
            // once instead of a year at a time.
            Duration::MAX
        } else {
            self.base.timer_horizon()
        }
    }

    fn budget_spent(&self) -> bool {
        self.base.budget_spent()
    }

    fn name(&self) -> &'static str {
        self.base.name()
    }

    /// An [`rt::enter`] of `inner` in this run's code: `inner`'s executor under the run's
    /// clock and tracking (and those of the runs it runs inside). A library that wraps
    /// itself in `hatchery_tokio::enter` keeps to the test's virtual clock, and its tasks
    /// count.
    fn nested(&self, inner: Arc<dyn Runtime>) -> Arc<dyn Runtime> {
        tracked_runtime(&self.clock, &inner)
    }

    fn reactor(&self) -> Option<&dyn seam::Reactor> {
        self.base.reactor()
    }

    fn network(&self) -> Option<&dyn seam::Network> {
        self.base.network()
    }

    fn file_system(&self) -> Option<&dyn seam::FileSystem> {
        self.base.file_system()
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        struct Done(Arc<Clock>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.unbusy();
            }
        }
        self.clock.busy();
        let done = Done(self.clock.clone());
        self.base.spawn_blocking(Box::new(move || {
            let _on = seam::OnBlockingThread::set(done.0.clone());
            let _done = done;
            work();
        }));
    }
}

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
const NOTIFIED: u8 = 3;
const DONE: u8 = 4;

/// A task's waker: counts the task busy when it is woken from idle, then wakes it for
/// real through the executor's waker.
struct TaskWaker {
    clock: Arc<Clock>,
    state: AtomicU8,
    inner: Mutex<Option<Waker>>,
}

impl TaskWaker {
    /// Makes the task's wake-ups reach `waker` (the executor's).
    fn set_waker(&self, waker: &Waker) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *inner = Some(waker.clone());
        }
    }

    /// Moves the task from idle to `to`; `Err` with its state if it was not idle. It is
    /// counted busy *before* it is seen as `to`, so that no thread can find "everything
    /// blocked" in between (and the count given back if the move fails).
    fn leave_idle(&self, to: u8) -> Result<u8, u8> {
        self.clock.busy();
        let moved = self
            .state
            .compare_exchange(IDLE, to, Ordering::AcqRel, Ordering::Acquire);
        if moved.is_err() {
            self.clock.unbusy();
        }
        moved
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let moved = match state {
                IDLE => self.leave_idle(SCHEDULED),
                RUNNING => self.state.compare_exchange(
                    RUNNING,
                    NOTIFIED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ),
                _ => break,
            };
            state = match moved {
                Ok(_) => break,
                Err(actual) => actual,
            };
        }
        if let Some(w) = &*self.inner.lock().unwrap_or_else(|e| e.into_inner()) {
            w.wake_by_ref();
        }
    }
}

/// A run's view of the thread's local runtime: its tasks counted by the run's clock, as
/// [`TrackedRuntime`] counts those of the runtime.
struct TrackedLocal {
    clock: Arc<Clock>,
    base: Arc<dyn Runtime>,
    local: Rc<dyn LocalRuntime>,
}

impl LocalRuntime for TrackedLocal {
    fn spawn_local(&self, task: LocalTask) {
        self.clock.busy();
        let tracked = Tracked::new(self.clock.clone(), self.base.clone(), task);
        self.local.spawn_local(LocalTask::from_future(tracked));
    }
}

pin_project! {
    /// A task (or the root future) whose busy/blocked state the clock tracks.
    struct Tracked<F> {
        #[pin]
        fut: F,
        // The executor polling it, for `budget_spent`.
        base: Arc<dyn Runtime>,
        // After `fut`: fields drop in order, so a task dropped unfinished counts busy
        // until its future's drop (which may wake its nursery) is over.
        waker: TrackedWaker,
    }
}

/// The waker state of a [`Tracked`] task; dropping it ends a task that did not finish.
struct TrackedWaker(Arc<TaskWaker>);

impl Drop for TrackedWaker {
    fn drop(&mut self) {
        // Dropped before finishing (e.g. at executor shutdown) while counted busy.
        let state = self.0.state.swap(DONE, Ordering::AcqRel);
        if matches!(state, SCHEDULED | RUNNING | NOTIFIED) {
            self.0.clock.unbusy();
        }
    }
}

impl<F> Tracked<F> {
    /// The caller has already counted the task busy.
    fn new(clock: Arc<Clock>, base: Arc<dyn Runtime>, fut: F) -> Self {
        Tracked {
            fut,
            base,
            waker: TrackedWaker(Arc::new(TaskWaker {
                clock,
                state: AtomicU8::new(SCHEDULED),
                inner: Mutex::new(None),
            })),
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let task = &this.waker.0;
        task.set_waker(cx.waker());
        // Woken from idle without going through our waker (the executor polled us on
        // its own): count it busy for the poll (first, so the task is never running
        // uncounted), unless the waker did meanwhile.
        if task.state.load(Ordering::Acquire) == IDLE {
            let _ = task.leave_idle(RUNNING);
        }
        let _ =
            task.state
                .compare_exchange(SCHEDULED, RUNNING, Ordering::AcqRel, Ordering::Acquire);
        let waker = Waker::from(task.clone());
        let mut tcx = Context::from_waker(&waker);
        let prev = CLOCK.with(|c| c.replace(Some(task.clock.clone())));
        struct Restore(Option<Arc<Clock>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let prev = self.0.take();
                CLOCK.with(|c| *c.borrow_mut() = prev);
            }
        }
        let _restore = Restore(prev);
        // Spent already (a run blocked on from a task that spent it): this poll cannot
        // have been held back by it, and the budget will not come back for it.
        let spent_before = this.base.budget_spent();
        // On a virtual clock, a task's timer is re-armed exactly for its earliest
        // deadline, so that the clock never jumps to an instant nobody waits for (D11).
        let exact = task.clock.virtual_time || task.clock.virtual_base;
        let poll = context::with_exact_timers(exact, || this.fut.poll(&mut tcx));
        if poll.is_pending() && !spent_before && this.base.budget_spent() {
            // Held back by the executor's budget, which wakes the task only after this
            // poll: it can run, so it stays busy, and is polled again (see
            // `Runtime::budget_spent`).
            waker.wake_by_ref();
        }
        match poll {
            Poll::Ready(v) => {
                if task.state.swap(DONE, Ordering::AcqRel) != DONE {
                    task.clock.unbusy();
                }
                Poll::Ready(v)
            }
            Poll::Pending => {
                match task.state.compare_exchange(
                    RUNNING,
                    IDLE,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => task.clock.unbusy(),
                    // Woken while running: it stays busy and will be polled again.
                    Err(_) => task.state.store(SCHEDULED, Ordering::Release),
                }
                Poll::Pending
            }
        }
    }
}

/// A timer on the virtual clock.
struct VirtualSleep {
    clock: Arc<Clock>,
    deadline: Instant,
    key: Option<(Instant, u64)>,
}

impl Future for VirtualSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut s = this.clock.lock();
        if s.now >= this.deadline {
            if let Some(key) = this.key.take() {
                s.timers.remove(&key);
            }
            return Poll::Ready(());
        }
        let key = *this.key.get_or_insert_with(|| {
            s.next_timer += 1;
            (this.deadline, s.next_timer)
        });
        s.timers.insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Sleep for VirtualSleep {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        let this = &mut *self;
        if let Some(key) = this.key.take() {
            this.clock.lock().timers.remove(&key);
        }
        this.deadline = deadline;
        // Re-armed by code that a run whose virtual clock is not ours polls: ours is gone,
        // and its runtime's address is the new run's (a timer can outlive the run that
        // made it, in a future polled there and kept elsewhere). Move to the clock of the
        // run being polled.
        CLOCK.with(|c| {
            if let Some(current) = &*c.borrow() {
                if current.virtual_time && !Arc::ptr_eq(current, &this.clock) {
                    this.clock = current.clone();
                }
            }
        });
    }
}

impl Drop for VirtualSleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.clock.lock().timers.remove(&key);
        }
    }
}

/// Runs `fut` with a virtual clock that jumps to the next deadline whenever every
/// hatchery task is blocked. See the [module docs](self).
///
/// Call it inside a runtime (`hatchery_smol::run(virtual_time(fut))`); everything `fut`
/// does uses the virtual clock. The virtual clock starts at the base runtime's `now`.
///
/// # Cancel safety
///
/// Dropping it drops `fut` (C8: the nurseries inside cancel their children without
/// awaiting them; see the cancel safety of [`nursery`](crate::nursery())). Awaited
/// inside another hatchery run, it is a root of its own: a cancelled enclosing scope
/// does not cancel it but *drops* it, with the same consequences, and its
/// [`finally`](crate::finally) cleanups do not run (see
/// [A test run inside another](self#a-test-run-inside-another)).
///
/// # Panics
///
/// When first polled outside a hatchery runtime. When the run stays deadlocked for its
/// deadlock timeout (see [`TestRun::with_deadlock_timeout`]). When polled after it
/// returned.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::testing::{elapsed, virtual_time};
/// hatchery_tokio::run(virtual_time(async {
///     hatchery::sleep(Duration::from_secs(86_400)).await; // a day, at once
///     assert_eq!(elapsed(), Duration::from_secs(86_400));
/// }));
/// ```
pub fn virtual_time<F: IntoFuture>(fut: F) -> TestRun<F::IntoFuture> {
    TestRun::new(fut.into_future(), true, true)
}

/// Like [`virtual_time`], but time moves only when you call [`advance`].
///
/// # Cancel safety
///
/// As for [`virtual_time`]: dropping it drops `fut` (C8), and so does a cancelled
/// enclosing scope, without running its [`finally`](crate::finally) cleanups.
///
/// # Panics
///
/// When first polled outside a hatchery runtime. When the run stays deadlocked for its
/// deadlock timeout (see [`TestRun::with_deadlock_timeout`]): under `manual_time`, when
/// every task is blocked and nobody calls [`advance`]. When polled after it returned.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::testing::{advance, manual_time, wait_all_tasks_blocked};
/// use hatchery::{nursery, sleep};
///
/// hatchery_smol::run(manual_time(async {
///     nursery(|n| async move {
///         let h = n.spawn(async { sleep(Duration::from_secs(10)).await; Ok::<_, std::io::Error>("woke") });
///         wait_all_tasks_blocked().await; // the child is asleep
///         assert!(!h.is_finished());
///         advance(Duration::from_secs(10));
///         assert_eq!(h.join().await.unwrap(), "woke");
///         Ok(())
///     })
///     .await
///     .unwrap();
/// }));
/// ```
pub fn manual_time<F: IntoFuture>(fut: F) -> TestRun<F::IntoFuture> {
    TestRun::new(fut.into_future(), true, false)
}

/// Runs `fut` on real time, but keeps track of hatchery's tasks so that
/// [`wait_all_tasks_blocked`] works. (Inside another test run, "real time" is the
/// enclosing run's clock: virtual, if that one is, and [`is_virtual_time`] says so.)
///
/// # Cancel safety
///
/// As for [`virtual_time`]: dropping it drops `fut` (C8), and so does a cancelled
/// enclosing scope, without running its [`finally`](crate::finally) cleanups.
///
/// # Panics
///
/// When first polled outside a hatchery runtime. When polled after it returned.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use hatchery::testing::{tracked, wait_all_tasks_blocked};
/// use hatchery::{nursery, sync::Event};
///
/// hatchery_smol::run(tracked(async {
///     let (go, ready) = (Arc::new(Event::new()), Arc::new(AtomicUsize::new(0)));
///     nursery(|n| async move {
///         for _ in 0..3 {
///             let (go, ready) = (go.clone(), ready.clone());
///             n.spawn(async move {
///                 ready.fetch_add(1, Ordering::SeqCst);
///                 go.wait().await;
///                 Ok::<_, std::io::Error>(())
///             });
///         }
///         // On real time, without a sleep: returns once all three wait for `go`.
///         wait_all_tasks_blocked().await;
///         assert_eq!(ready.load(Ordering::SeqCst), 3);
///         go.set();
///         Ok(())
///     })
///     .await
///     .unwrap();
/// }));
/// ```
pub fn tracked<F: IntoFuture>(fut: F) -> TestRun<F::IntoFuture> {
    TestRun::new(fut.into_future(), false, false)
}

pin_project! {
    /// Future returned by [`virtual_time`], [`manual_time`] and [`tracked`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::testing::{elapsed, virtual_time, TestRun};
    ///
    /// let run: TestRun<_> = virtual_time(async {
    ///     hatchery::sleep(Duration::from_secs(60)).await;
    ///     elapsed()
    /// });
    /// // A runtime polls it: the test run starts on its clock.
    /// assert_eq!(hatchery_smol::run(run), Duration::from_secs(60));
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct TestRun<F> {
        #[pin]
        root: Option<Tracked<Enter<F>>>,
        pending: Option<(F, bool, bool)>,
        backend: Option<&'static str>,
        deadlock_timeout: Option<Duration>,
        watch: Option<Watch>,
        // The thread and depth of the run's view of the thread's local runtime, if it has
        // one (`TrackedLocal`): uninstalled when the run goes.
        local: Option<(usize, usize)>,
    }

    impl<F> PinnedDrop for TestRun<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            this.root.set(None);
            if let Some((thread, depth)) = this.local.take() {
                if thread == context::thread_key() {
                    seam::pop_local(depth);
                }
            }
        }
    }
}

/// How long a virtual-time run may stall (see [`TestRun::with_deadlock_timeout`]) before
/// it panics, by default.
const DEADLOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// A virtual-time run's deadlock watch: a real-time timer armed while the run stalls.
struct Watch {
    clock: Arc<Clock>,
    timeout: Duration,
    timer: Option<Armed>,
}

/// The deadlock watch's timer, for one stall.
struct Armed {
    /// The stall (the clock's `activity` then).
    activity: u64,
    /// When that stall is a deadlock.
    deadline: Instant,
    timer: Pin<Box<dyn Sleep>>,
}

impl Watch {
    /// Panics if the run has stalled for the whole timeout; else makes sure that `cx` is
    /// woken when it stalls, or has stalled long enough.
    fn check(&mut self, cx: &mut Context<'_>) {
        let stall = {
            let mut s = self.clock.lock();
            if !s
                .stall_waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                s.stall_waker = Some(cx.waker().clone());
            }
            self.clock.stalled(&s).then_some(s.activity)
        };
        let Some(activity) = stall else {
            self.timer = None;
            return;
        };
        let base = &self.clock.base;
        if !matches!(&self.timer, Some(armed) if armed.activity == activity) {
            let now = base.now();
            // A timeout too far to be an instant never fires.
            self.timer = now.checked_add(self.timeout).map(|deadline| Armed {
                activity,
                deadline,
                timer: base.sleep_until(seam::wake_at(&**base, deadline, now)),
            });
        }
        if let Some(Armed {
            deadline, timer, ..
        }) = &mut self.timer
        {
            // Woken at the runtime's timer horizon at the latest: re-armed until due.
            while timer.as_mut().poll(cx).is_ready() {
                let now = base.now();
                if now >= *deadline {
                    break;
                }
                timer.as_mut().reset(seam::wake_at(&**base, *deadline, now));
            }
            if base.now() >= *deadline {
                let moves = match self.clock.autojump {
                    true => "no timer is set, so virtual time cannot move either",
                    false => "under `manual_time` only they could `advance` the clock",
                };
                panic!(
                    "hatchery: deadlock in a virtual-time test run: every task has been \
                     blocked for {:?} of real time, and {moves}. Something waits for what \
                     never comes (a lock or permit never released, a channel nobody sends \
                     on, an event never set, a task joining itself), or for a thread or \
                     real I/O outside hatchery, which virtual time does not see: then give \
                     the run longer (`TestRun::with_deadlock_timeout`) or real time",
                    self.timeout
                );
            }
        }
    }
}

impl<F: Future> TestRun<F> {
    fn new(fut: F, virtual_time: bool, autojump: bool) -> Self {
        TestRun {
            root: None,
            pending: Some((fut, virtual_time, autojump)),
            backend: None,
            deadlock_timeout: Some(DEADLOCK_TIMEOUT),
            watch: None,
            local: None,
        }
    }

    /// Names the backend this run is on, for [`backend`] (`#[hatchery::test]` does this).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::testing::{backend, tracked};
    ///
    /// let named = hatchery_smol::run(tracked(async { backend() }).with_backend_name("smol"));
    /// assert_eq!(named, Some("smol"));
    /// assert_eq!(hatchery_smol::run(tracked(async { backend() })), None);
    /// ```
    pub fn with_backend_name(mut self, name: &'static str) -> Self {
        self.backend = Some(name);
        self
    }

    /// Sets how long a run on a virtual clock may stall before it panics: 10 seconds of
    /// real time by default, `None` to wait for ever. (No effect on [`tracked`] runs, or
    /// on a run inside another virtual-time run, which the enclosing run watches.)
    ///
    /// A run stalls when every task is blocked, nobody waits in
    /// [`wait_all_tasks_blocked`], and the virtual clock cannot move: no timer is set
    /// (under [`virtual_time`]), or only [`advance`] moves it (under [`manual_time`]).
    /// Then nothing in hatchery can ever wake a task: the test is deadlocked, unless a
    /// thread or real I/O outside hatchery (which virtual time does not see) wakes one.
    /// A stall ends when any task is woken, and the next one gets the whole timeout again.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::testing::virtual_time;
    ///
    /// let (tx, rx) = hatchery::memory_stream::<u32>(1);
    /// // A plain thread sends after a while; no timer is set meanwhile.
    /// let sender = std::thread::spawn(move || {
    ///     std::thread::sleep(Duration::from_millis(50));
    ///     tx.send_blocking(7).unwrap();
    /// });
    /// let run = virtual_time(async move { rx.recv().await.unwrap() })
    ///     .with_deadlock_timeout(Some(Duration::from_secs(60)));
    /// assert_eq!(hatchery_smol::run(run), 7);
    /// sender.join().unwrap();
    /// ```
    ///
    /// A deadlock fails the test:
    ///
    /// ```should_panic
    /// use std::time::Duration;
    /// use hatchery::testing::virtual_time;
    ///
    /// let (_tx, rx) = hatchery::memory_stream::<u32>(1);
    /// let run = virtual_time(async move { rx.recv().await }) // nobody ever sends
    ///     .with_deadlock_timeout(Some(Duration::from_millis(100)));
    /// hatchery_smol::run(run); // panics: "deadlock in a virtual-time test run"
    /// ```
    pub fn with_deadlock_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.deadlock_timeout = timeout;
        self
    }
}

impl<F: Future> Future for TestRun<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        if let Some((fut, virtual_time, autojump)) = this.pending.take() {
            let base = context::current().rt;
            let start = base.now();
            // A run inside another takes on its backend's name, and knows whether its
            // base clock is the enclosing run's virtual one.
            let parent = run_of(&base);
            // The default hold warnings stay off on a virtual clock (their timer would
            // move it): they ask here.
            crate::diagnostics::set_virtual_probe(is_virtual_time);
            let clock = Arc::new(Clock {
                base,
                backend: this
                    .backend
                    .or_else(|| parent.as_ref().and_then(|c| c.backend)),
                virtual_base: parent
                    .as_ref()
                    .is_some_and(|c| c.virtual_time || c.virtual_base),
                parent,
                runtimes: Mutex::new(Vec::new()),
                virtual_time,
                autojump,
                start,
                state: Mutex::new(State {
                    now: start,
                    busy: 1, // the root
                    timers: BTreeMap::new(),
                    next_timer: 0,
                    idle_waiters: Vec::new(),
                    activity: 0,
                    stall_waker: None,
                }),
            });
            // An enclosing virtual-time run sees this one blocked, and watches itself.
            if virtual_time && !clock.virtual_base {
                *this.watch = this.deadlock_timeout.map(|timeout| Watch {
                    clock: clock.clone(),
                    timeout,
                    timer: None,
                });
            }
            let base = clock.base.clone();
            let runtime = clock.runtime(base.clone());
            if let Some(local) = seam::try_local() {
                let tracked = Rc::new(TrackedLocal {
                    clock: clock.clone(),
                    base: base.clone(),
                    local,
                });
                *this.local = Some((context::thread_key(), seam::push_local(tracked)));
            }
            this.root.set(Some(Tracked::new(
                clock,
                base,
                context::enter_root(runtime, fut),
            )));
        }
        let mut root = this
            .root
            .as_mut()
            .as_pin_mut()
            .expect("hatchery: test run polled after completion");
        // A root not woken (by the deadlock watch's wake-up, or a spurious one) is not
        // polled: that would count it busy, and end the stall it is polled for. Its next
        // wake-up must reach this poll's waker all the same, so that is set first: a
        // wake-up racing the check then reaches it, or the check sees the root woken.
        // (Through the projection: a reference to the whole `Tracked` would cover the
        // future too, whose own borrows Miri then sees clash.)
        let task = &root.as_mut().project().waker.0;
        task.set_waker(cx.waker());
        if task.state.load(Ordering::Acquire) != IDLE {
            let out = root.as_mut().poll(cx);
            if out.is_ready() {
                this.root.set(None);
                *this.watch = None;
                return out;
            }
        }
        if let Some(watch) = this.watch {
            watch.check(cx);
        }
        Poll::Pending
    }
}

impl<F> fmt::Debug for TestRun<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestRun").finish_non_exhaustive()
    }
}

/// Moves the virtual clock forward by `by` and wakes every timer that is now due.
///
/// # Panics
///
/// Outside a [`virtual_time`] or [`manual_time`] run: also in a [`tracked`] run nested
/// in one (its time is virtual, but the clock is the enclosing run's; advance it there).
/// If the clock would pass the latest instant `Instant` can hold (`Duration::MAX`, say).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::testing::{advance, elapsed, manual_time};
///
/// hatchery_smol::run(manual_time(async {
///     advance(Duration::from_secs(5));
///     assert_eq!(elapsed(), Duration::from_secs(5));
/// }));
/// ```
pub fn advance(by: Duration) {
    let clock = current_clock("advance");
    assert!(clock.virtual_time, "hatchery: `advance` needs virtual time");
    clock.advance(by);
}

/// How much time has passed on the run's clock since the run started: virtual time under
/// [`virtual_time`] and [`manual_time`], real time under [`tracked`].
///
/// # Panics
///
/// Outside a test run.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::testing::{elapsed, virtual_time};
///
/// hatchery_smol::run(virtual_time(async {
///     hatchery::sleep(Duration::from_millis(1500)).await;
///     assert_eq!(elapsed(), Duration::from_millis(1500));
/// }));
/// ```
pub fn elapsed() -> Duration {
    let clock = current_clock("elapsed");
    clock.now().saturating_duration_since(clock.start)
}

/// The name of the backend running the current `#[hatchery::test]`: `"tokio_current"`,
/// `"tokio_multi"`, `"smol"` or `"sim"` (the simulator, `hatchery-sim`), or the name of a backend of your own
/// (`backends(mine = path::to::run)`: `"mine"`); `None` outside one.
///
/// # Examples
///
/// ```
/// #[hatchery::test(backends(smol))]
/// async fn knows_its_backend() {
///     assert_eq!(hatchery::testing::backend(), Some("smol"));
/// }
/// # fn main() {
/// #     use hatchery::testing::tracked;
/// #     hatchery_smol::run(tracked(knows_its_backend::body()).with_backend_name("smol"));
/// # }
/// ```
pub fn backend() -> Option<&'static str> {
    run_clock().and_then(|c| c.backend)
}

/// Whether the current code runs on a virtual clock.
///
/// # Examples
///
/// ```
/// use hatchery::testing::{is_virtual_time, tracked, virtual_time};
/// hatchery_smol::run(virtual_time(async { assert!(is_virtual_time()) }));
/// hatchery_smol::run(tracked(async { assert!(!is_virtual_time()) }));
/// ```
pub fn is_virtual_time() -> bool {
    run_clock().is_some_and(|c| c.virtual_time || c.virtual_base)
}

/// Waits until every other hatchery task (and all blocking work) of the run is blocked,
/// then returns. Under virtual time, this happens before the clock would jump.
///
/// Several tasks waiting at once are released together (trio releases one at a time):
/// each then runs while the others may too. Have one task wait, and the rest wait for
/// it.
///
/// # Cancel safety
///
/// Cancel safe. If the enclosing scope is cancelled while it waits, it never completes
/// and the scope drops it.
///
/// # Panics
///
/// Outside a test run ([`virtual_time`], [`manual_time`], [`tracked`] or
/// `#[hatchery::test]`).
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use hatchery::testing::{virtual_time, wait_all_tasks_blocked};
///
/// hatchery_smol::run(virtual_time(async {
///     let reached = Arc::new(AtomicBool::new(false));
///     let r = reached.clone();
///     hatchery::nursery(|n| async move {
///         n.spawn(async move {
///             r.store(true, Ordering::SeqCst);
///             hatchery::sleep(Duration::from_secs(1)).await;
///             Ok::<_, std::io::Error>(())
///         });
///         wait_all_tasks_blocked().await;
///         assert!(reached.load(Ordering::SeqCst)); // the child ran up to its sleep
///         Ok(())
///     })
///     .await
///     .unwrap();
/// }));
/// ```
pub fn wait_all_tasks_blocked() -> WaitAllTasksBlocked {
    WaitAllTasksBlocked { waiting: None }
}

/// Future returned by [`wait_all_tasks_blocked`].
///
/// # Examples
///
/// ```
/// use hatchery::nursery;
/// use hatchery::testing::{tracked, wait_all_tasks_blocked, WaitAllTasksBlocked};
///
/// hatchery_smol::run(tracked(async {
///     let (tx, rx) = hatchery::memory_stream::<u32>(0);
///     nursery(|n| async move {
///         let worker = n.spawn(async move { rx.recv().await });
///         let idle: WaitAllTasksBlocked = wait_all_tasks_blocked();
///         idle.await; // the worker now waits on the channel
///         assert_eq!(tx.statistics().tasks_waiting_receive, 1);
///         tx.send(5).await.unwrap();
///         assert_eq!(worker.join().await.unwrap(), 5);
///         Ok(())
///     })
///     .await
///     .unwrap();
/// }));
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct WaitAllTasksBlocked {
    /// Once registered: the clock it waits on, and its flag there.
    waiting: Option<(Arc<Clock>, Arc<AtomicBool>)>,
}

impl Future for WaitAllTasksBlocked {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if context::current_cancelled() {
            return Poll::Pending;
        }
        if let Some((_, fired)) = &self.waiting {
            if fired.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
        }
        let (clock, fired) = self
            .waiting
            .get_or_insert_with(|| {
                let clock = current_clock("wait_all_tasks_blocked");
                (clock, Arc::new(AtomicBool::new(false)))
            })
            .clone();
        let mut s = clock.lock();
        // Released meanwhile (under this lock): don't leave a stale entry behind.
        if fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        s.idle_waiters.retain(|(_, f)| !Arc::ptr_eq(f, &fired));
        s.idle_waiters.push((cx.waker().clone(), fired));
        Poll::Pending
    }
}

impl fmt::Debug for WaitAllTasksBlocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitAllTasksBlocked")
            .field("waiting", &self.waiting.is_some())
            .finish()
    }
}

impl Drop for WaitAllTasksBlocked {
    fn drop(&mut self) {
        // A wait dropped before it fired leaves the clock's list: it would take the next
        // moment all tasks are blocked (a wake-up of nobody, and no jump of the clock).
        if let Some((clock, fired)) = self.waiting.take() {
            if !fired.load(Ordering::Acquire) {
                let mut s = clock.lock();
                s.idle_waiters.retain(|(_, f)| !Arc::ptr_eq(f, &fired));
            }
        }
    }
}
