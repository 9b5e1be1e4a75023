//! The runtime seam: the few things hatchery needs from an executor.
//!
//! hatchery itself never names an executor. An adapter crate implements [`Runtime`] for
//! one (`hatchery-tokio`, `hatchery-smol`) and hands it to [`enter`], which installs it
//! for everything the wrapped future does: every scope, nursery and task inside finds the
//! runtime through the task context that hatchery sets while it polls them.
//!
//! # Binding a third-party executor
//!
//! Implement [`Runtime`] (spawn, a clock, timers and blocking work) and wrap your root
//! future with [`enter`] (an `async` entry point, for code already running on your
//! executor) or [`enter_root`] (a blocking `run`). The adapter below runs hatchery on
//! plain threads: every task gets a thread with a tiny `block_on`, and timers are threads
//! that sleep. It is slow but complete, and shows the whole contract.
//!
//! What the contract asks beyond the signatures:
//!
//! * [`spawn`](Runtime::spawn) runs the task in the background: never poll it inside
//!   `spawn` (children must run while their spawner goes on, rule N8), and on a
//!   multi-threaded executor let tasks run in parallel.
//! * [`spawn_blocking`](Runtime::spawn_blocking) runs the work on another thread, never
//!   inline.
//! * Threads that poll hatchery tasks keep a clone of the last runtime they polled for,
//!   until they poll for another one or end. So a runtime must not own its executor's
//!   threads: hold a handle that does not (tokio's `Handle`, a `Weak`), or let go of the
//!   executor when your `run` returns, or the threads keep the runtime and the runtime
//!   keeps the threads.
//! * Two methods have defaults: [`timer_horizon`](Runtime::timer_horizon) (a year) and
//!   [`budget_spent`](Runtime::budget_spent) (`false`). Override them if your timers
//!   reach less far, or your executor has a cooperative budget; a runtime that wraps
//!   another must forward them (see [`Runtime`]'s example).
//!
//! ```
//! use std::future::Future;
//! use std::pin::Pin;
//! use std::sync::{Arc, Condvar, Mutex};
//! use std::task::{Context, Poll, Wake, Waker};
//! use std::time::{Duration, Instant};
//!
//! use hatchery::rt::{self, Runtime, Sleep, Task};
//!
//! /// Runs a future to completion on the current thread.
//! fn block_on<F: Future>(fut: F) -> F::Output {
//!     struct Unpark(Mutex<bool>, Condvar);
//!     impl Wake for Unpark {
//!         fn wake(self: Arc<Self>) {
//!             *self.0.lock().unwrap() = true;
//!             self.1.notify_one();
//!         }
//!     }
//!     let unpark = Arc::new(Unpark(Mutex::new(false), Condvar::new()));
//!     let waker = Waker::from(unpark.clone());
//!     let mut fut = std::pin::pin!(fut);
//!     loop {
//!         if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
//!             return v;
//!         }
//!         let mut woken = unpark.0.lock().unwrap();
//!         while !*woken {
//!             woken = unpark.1.wait(woken).unwrap();
//!         }
//!         *woken = false;
//!     }
//! }
//!
//! /// A timer: a thread that sleeps, then wakes whoever polled last.
//! struct ThreadSleep {
//!     deadline: Instant,
//!     waker: Arc<Mutex<Option<Waker>>>,
//!     armed: bool,
//! }
//!
//! impl Future for ThreadSleep {
//!     type Output = ();
//!     fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
//!         if Instant::now() >= self.deadline {
//!             return Poll::Ready(());
//!         }
//!         *self.waker.lock().unwrap() = Some(cx.waker().clone());
//!         if !self.armed {
//!             self.armed = true;
//!             let (deadline, waker) = (self.deadline, self.waker.clone());
//!             std::thread::spawn(move || {
//!                 std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
//!                 if let Some(w) = waker.lock().unwrap().take() {
//!                     w.wake();
//!                 }
//!             });
//!         }
//!         Poll::Pending
//!     }
//! }
//!
//! impl Sleep for ThreadSleep {
//!     fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
//!         *self = ThreadSleep { deadline, waker: Arc::default(), armed: false };
//!     }
//! }
//!
//! #[derive(Debug)]
//! struct Threads;
//!
//! impl Runtime for Threads {
//!     fn spawn(&self, task: Task) {
//!         std::thread::spawn(move || block_on(task));
//!     }
//!     fn now(&self) -> Instant {
//!         Instant::now()
//!     }
//!     fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
//!         Box::pin(ThreadSleep { deadline, waker: Arc::default(), armed: false })
//!     }
//!     fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
//!         std::thread::spawn(work);
//!     }
//! }
//!
//! // The application's `run`: the whole adapter is the code above plus these lines.
//! // `enter_root`, not `enter`: a sync library may call `run` from hatchery code, and
//! // nested in the caller's scope, it would block for good once that scope is cancelled.
//! fn run<F: Future>(fut: F) -> F::Output {
//!     block_on(rt::enter_root(Arc::new(Threads), fut))
//! }
//!
//! let sum = run(hatchery::nursery(|n| async move {
//!     let a = n.spawn(async { hatchery::sleep(Duration::from_millis(5)).await; Ok::<_, std::io::Error>(1) });
//!     let b = n.spawn(async { Ok(2) });
//!     Ok(a.join().await? + b.join().await?)
//! }));
//! assert_eq!(sum.unwrap(), 3);
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use crate::node::Node;
use crate::task::{Keeper, RawTask};

/// An executor and clock that hatchery can run on.
///
/// This is the whole seam between hatchery's semantics and an executor. All methods may
/// be called from any thread, including threads the executor does not own. See the
/// [module docs](self) for a complete adapter.
///
/// # Examples
///
/// A runtime that wraps another one, here to count the tasks hatchery spawns. It forwards
/// every method, the two with defaults too: without `budget_spent`, a test run on it
/// would take a task that tokio's budget holds back for blocked.
///
/// ```
/// use std::pin::Pin;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::{Duration, Instant};
/// use hatchery::rt::{self, Runtime, Sleep, Task};
/// use hatchery_tokio::TokioRuntime;
///
/// struct Counting {
///     inner: TokioRuntime,
///     spawned: AtomicUsize,
/// }
///
/// impl Runtime for Counting {
///     fn spawn(&self, task: Task) {
///         self.spawned.fetch_add(1, Ordering::Relaxed);
///         self.inner.spawn(task);
///     }
///     fn now(&self) -> Instant {
///         self.inner.now()
///     }
///     fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
///         self.inner.sleep_until(deadline)
///     }
///     fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
///         self.inner.spawn_blocking(work);
///     }
///     fn timer_horizon(&self) -> Duration {
///         self.inner.timer_horizon()
///     }
///     fn budget_spent(&self) -> bool {
///         self.inner.budget_spent()
///     }
/// }
///
/// # hatchery_tokio::run(async {
/// let counting = Arc::new(Counting { inner: TokioRuntime::current(), spawned: AtomicUsize::new(0) });
/// let sum = rt::enter(counting.clone(), hatchery::nursery(|n| async move {
///     let a = n.spawn(async { Ok::<_, std::io::Error>(1) });
///     let b = n.spawn(async { Ok(2) });
///     Ok(a.join().await? + b.join().await?)
/// }))
/// .await;
/// assert_eq!(sum.unwrap(), 3);
/// assert_eq!(counting.spawned.load(Ordering::Relaxed), 2);
/// # });
/// ```
pub trait Runtime: Send + Sync + 'static {
    /// Spawns `task` to run to completion in the background.
    ///
    /// hatchery tracks completion itself (the task reports back when it finishes), so the
    /// executor only needs to poll it until it returns `Ready`, or drop it (an executor
    /// shutting down may drop unfinished tasks: they then count as cancelled). On a
    /// multi-threaded executor tasks should be able to run in parallel.
    ///
    /// Never poll `task` inside `spawn`: a child runs while its spawner goes on (rule N8),
    /// and hatchery may hold its own state while it spawns.
    ///
    /// [`Task`] is a plain `Future<Output = ()> + Send + 'static`, a few words in size:
    /// spawn it as it is, without boxing it again.
    ///
    /// On a multi-threaded executor, consider spawning through [`Task::spawn_with`], so
    /// that the executor's task is freed on the thread that allocated it (measure it:
    /// see there).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::rt::{Runtime, Task};
    /// use hatchery_tokio::TokioRuntime;
    ///
    /// # hatchery_tokio::run(async {
    /// let (tx, rx) = hatchery::memory_stream(1);
    /// TokioRuntime::current().spawn(Task::from_future(async move {
    ///     tx.try_send("ran in the background").unwrap();
    /// }));
    /// assert_eq!(rx.recv().await, Ok("ran in the background"));
    /// # });
    /// ```
    fn spawn(&self, task: Task);

    /// The current time on this runtime's clock.
    ///
    /// All hatchery deadlines are measured on this clock, so a runtime with a virtual
    /// clock makes every timeout, sleep and deadline virtual. It must never go back, as
    /// `Instant::now` never does.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::rt::Runtime;
    /// use hatchery_tokio::TokioRuntime;
    ///
    /// # hatchery_tokio::run(async {
    /// let rt = TokioRuntime::current();
    /// let before = rt.now();
    /// let seen = hatchery::now(); // hatchery reads the clock of the runtime it runs on
    /// assert!(before <= seen && seen <= rt.now());
    /// # });
    /// ```
    fn now(&self) -> Instant;

    /// A timer that completes once [`now`](Runtime::now) has reached `deadline`.
    ///
    /// Dropping the timer before it completes must cancel it and let go of what it holds:
    /// hatchery drops timers all the time (every scope or sleep that ends before its
    /// deadline drops one). Like every method here, it may be called from any thread, and
    /// the timer may be polled, [`reset`](Sleep::reset) and dropped on another thread than
    /// the one that made it. The deadlines of hatchery's scopes and sleeps are asked for
    /// at most [`timer_horizon`](Runtime::timer_horizon) ahead.
    ///
    /// # Cancel safety
    ///
    /// This is a raw timer of the executor, for hatchery and adapters, not a hatchery
    /// wait: it does not look at cancel scopes. Awaited in a scope that is cancelled, it
    /// is dropped at its suspension point like any foreign future, and dropping it
    /// cancels it. Code that waits should use [`sleep_until`](crate::sleep_until), which
    /// follows the rules of hatchery's waits.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::rt::Runtime;
    /// use hatchery_tokio::TokioRuntime;
    ///
    /// # hatchery_tokio::run(async {
    /// let rt = TokioRuntime::current();
    /// let deadline = rt.now() + Duration::from_millis(5);
    /// rt.sleep_until(deadline).await;
    /// assert!(rt.now() >= deadline);
    /// # });
    /// ```
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>>;

    /// Runs `work` on a thread where blocking is allowed, not inline: the caller is an
    /// async task, which `work` may block on.
    ///
    /// A runtime that cannot run it (one that has shut down) may drop it instead:
    /// [`run_blocking`](crate::run_blocking) then panics in its caller rather than wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::rt::Runtime;
    /// use hatchery_tokio::TokioRuntime;
    ///
    /// # hatchery_tokio::run(async {
    /// let (tx, rx) = hatchery::memory_stream(0);
    /// TokioRuntime::current().spawn_blocking(Box::new(move || {
    ///     // Blocking is fine on this thread.
    ///     tx.send_blocking((1..=5u32).product::<u32>()).unwrap();
    /// }));
    /// assert_eq!(rx.recv().await, Ok(120));
    /// # });
    /// ```
    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>);

    /// The longest wait to arm one timer of this runtime for. hatchery arms longer waits
    /// in steps of this length, checking the clock after each, so no executor sees an
    /// absurd deadline (tokio, for one, caps a timer at about 2.2 years, and fails on
    /// the last representable `Instant`).
    ///
    /// The default is one year. A runtime whose timers take any instant returns
    /// `Duration::MAX`: a virtual clock does, so that it jumps to a far deadline at once.
    /// A horizon under a millisecond is taken as one millisecond (zero would re-arm a
    /// timer that is always due, for good).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::rt::Runtime;
    /// use hatchery_tokio::TokioRuntime;
    ///
    /// # hatchery_tokio::run(async {
    /// assert_eq!(
    ///     TokioRuntime::current().timer_horizon(),
    ///     Duration::from_secs(365 * 24 * 60 * 60)
    /// );
    /// # });
    /// ```
    fn timer_horizon(&self) -> Duration {
        DEFAULT_TIMER_HORIZON
    }

    /// Whether the task being polled has spent this executor's cooperative budget, if it
    /// has one (tokio's coop: a task that has used many resources in one go gets
    /// `Pending` from the next, and is woken only after its poll, from a list the
    /// scheduler drains later).
    ///
    /// Test runs ([`testing::virtual_time`](crate::testing::virtual_time) and the
    /// others) ask after each poll that returns `Pending`: they count a task that returns
    /// `Pending` without having been woken as blocked, and move the virtual clock once all
    /// are, so a task held back by its budget is woken again at once and stays counted
    /// busy. Outside test runs hatchery never calls it. The default, `false`, is right for
    /// an executor without such a budget.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::rt::Runtime;
    /// use hatchery_tokio::TokioRuntime;
    ///
    /// # hatchery_tokio::run(async {
    /// assert!(!TokioRuntime::current().budget_spent()); // nothing used yet
    /// # });
    /// ```
    fn budget_spent(&self) -> bool {
        false
    }
}

/// See [`Runtime::timer_horizon`].
const DEFAULT_TIMER_HORIZON: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The shortest [`Runtime::timer_horizon`] used.
const MIN_TIMER_HORIZON: Duration = Duration::from_millis(1);

/// When a timer for `deadline` should wake: at `deadline`, or [`Runtime::timer_horizon`]
/// from `now` if that is earlier (the caller then checks the clock and re-arms).
pub(crate) fn wake_at(rt: &dyn Runtime, deadline: Instant, now: Instant) -> Instant {
    now.checked_add(rt.timer_horizon().max(MIN_TIMER_HORIZON))
        .map_or(deadline, |cap| deadline.min(cap))
}

/// A hatchery task, handed to [`Runtime::spawn`]: a future to poll to completion.
///
/// A task spawned into a nursery keeps its future, its result and its place in the scope
/// tree in a single allocation; `Task` is the executor's reference to it. Wrappers of a
/// runtime (instrumentation, a test clock) can wrap a `Task` in their own future and
/// turn that back into a `Task` with [`Task::from_future`].
///
/// Dropping a `Task` before it has finished drops its future where it stands. An
/// executor may do so (one that shuts down drops its unfinished tasks; see
/// [`Runtime::spawn`]): a task of a nursery then counts as cancelled. Its handle's
/// [`join`](crate::TaskHandle::join) returns a cancelled [`JoinError`](crate::JoinError),
/// its nursery stops waiting for it, and a [`start`](crate::Nursery::start) that waits
/// for it fails with [`NotStarted`](crate::StartError::NotStarted).
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use hatchery::rt::Task;
///
/// let steps = Arc::new(AtomicUsize::new(0));
/// let s = steps.clone();
/// let task = Task::from_future(async move { s.fetch_add(1, Ordering::SeqCst); });
/// // A wrapper's own future around the task, made a `Task` again:
/// let s = steps.clone();
/// let wrapped = Task::from_future(async move {
///     task.await;
///     s.fetch_add(10, Ordering::SeqCst); // after the task has finished
/// });
/// futures_lite::future::block_on(wrapped); // what an executor does with it
/// assert_eq!(steps.load(Ordering::SeqCst), 11);
/// ```
pub struct Task {
    inner: TaskInner,
}

enum TaskInner {
    Raw(RawTask),
    /// A future; one made by [`Task::wrap`] also knows where to keep its executor's
    /// handle (with the task it wraps). One box either way, so that a `Task` stays three
    /// words: it lives in every executor task.
    Boxed(Pin<Box<dyn BoxedTask>>),
}

/// The future of a [`TaskInner::Boxed`] task.
trait BoxedTask: Future<Output = ()> + Send {
    /// Where to keep the executor's handle to this task, if anywhere (taken once).
    fn take_keeper(self: Pin<&mut Self>) -> Option<Keeper>;
}

pin_project! {
    /// The future of a task made by [`Task::from_future`] (nothing to keep a handle
    /// with) or [`Task::wrap`] (keeps it with the task it wraps).
    struct Held<F> {
        #[pin]
        fut: F,
        keeper: Option<Keeper>,
    }
}

impl<F: Future<Output = ()>> Future for Held<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().fut.poll(cx)
    }
}

impl<F: Future<Output = ()> + Send> BoxedTask for Held<F> {
    fn take_keeper(self: Pin<&mut Self>) -> Option<Keeper> {
        self.project().keeper.take()
    }
}

impl Task {
    pub(crate) fn raw(raw: RawTask) -> Task {
        Task {
            inner: TaskInner::Raw(raw),
        }
    }

    /// A task that polls `fut` (boxing it).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use hatchery::rt::Task;
    ///
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let r = ran.clone();
    /// let task = Task::from_future(async move { r.store(true, Ordering::SeqCst) });
    /// assert!(!ran.load(Ordering::SeqCst)); // nothing runs until it is polled
    /// futures_lite::future::block_on(task); // a plain future: any executor can poll it
    /// assert!(ran.load(Ordering::SeqCst));
    /// ```
    pub fn from_future<F: Future<Output = ()> + Send + 'static>(fut: F) -> Task {
        Task {
            inner: TaskInner::Boxed(Box::pin(Held { fut, keeper: None })),
        }
    }

    /// A task that polls `wrap(self)`, a future that drives this task (a runtime that
    /// watches every task, as the test runs' does). A handle given to
    /// [`spawn_with`](Task::spawn_with) is still kept with this task's state.
    pub(crate) fn wrap<F>(mut self, wrap: impl FnOnce(Task) -> F) -> Task
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let keeper = self.take_keeper();
        Task {
            inner: TaskInner::Boxed(Box::pin(Held {
                fut: wrap(self),
                keeper,
            })),
        }
    }

    /// Where to keep the executor's handle to this task, if anywhere.
    fn take_keeper(&mut self) -> Option<Keeper> {
        match &mut self.inner {
            TaskInner::Raw(raw) => Some(raw.keeper()),
            TaskInner::Boxed(fut) => fut.as_mut().take_keeper(),
        }
    }

    /// Spawns this task with `spawn`, the executor's own spawn function, and keeps the
    /// handle that it returns for as long as hatchery keeps its own state of the task:
    /// the handle is dropped, after the task has finished, where that state goes.
    ///
    /// An adapter of a multi-threaded executor may call this in [`Runtime::spawn`], so
    /// that the executor's allocation is freed where it was allocated. A child usually
    /// finishes on another thread than the one that spawned it; hatchery frees its own
    /// state of the child on the spawning thread (the nursery's), and with it the
    /// executor's handle, whose drop then frees the executor's task there too. Freed on
    /// the finishing thread instead, memory goes back to the allocator across threads
    /// (glibc takes the allocating thread's arena lock), which costs measurably on every
    /// spawn. A single-threaded runtime gains nothing from it, and whether a
    /// multi-threaded one does is worth measuring: it made tokio's multi-thread runtime
    /// a third faster at spawning and joining, but async-executor slower, since it moves
    /// the freeing onto the spawning thread (so `hatchery-smol` does not use it).
    ///
    /// Dropping the handle must let the task run on, and must not panic: hand over a
    /// detaching handle (a `tokio::task::JoinHandle` is one; wrap an `async_task::Task`
    /// in a type that detaches it on drop). A task made by [`Task::from_future`] has no
    /// state of hatchery's, and its handle is dropped at once. Only the first handle
    /// given for a task is kept; another is dropped at once.
    ///
    /// # Examples
    ///
    /// A thread per task; dropping a `std::thread::JoinHandle` detaches its thread.
    ///
    /// ```
    /// use std::pin::Pin;
    /// use std::sync::Arc;
    /// use std::time::Instant;
    /// use futures_lite::future::block_on;
    /// use hatchery::rt::{Runtime, Sleep, Task};
    ///
    /// struct ThreadPerTask;
    ///
    /// impl Runtime for ThreadPerTask {
    ///     fn spawn(&self, task: Task) {
    ///         task.spawn_with(|task| std::thread::spawn(move || block_on(task)));
    ///     }
    ///     fn now(&self) -> Instant {
    ///         Instant::now()
    ///     }
    ///     fn sleep_until(&self, _deadline: Instant) -> Pin<Box<dyn Sleep>> {
    ///         unimplemented!("no timers here")
    ///     }
    ///     fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
    ///         std::thread::spawn(work);
    ///     }
    /// }
    ///
    /// let out = block_on(hatchery::rt::enter(
    ///     Arc::new(ThreadPerTask),
    ///     hatchery::nursery(|n| async move {
    ///         let child = n.spawn(async { Ok::<_, std::io::Error>(6 * 7) });
    ///         Ok(child.join().await.unwrap())
    ///     }),
    /// ));
    /// assert_eq!(out.unwrap(), 42);
    /// ```
    pub fn spawn_with<H: Send + 'static>(mut self, spawn: impl FnOnce(Task) -> H) {
        let keeper = self.take_keeper();
        let handle = spawn(self);
        match keeper {
            Some(keeper) => keeper.keep(handle),
            None => drop(handle),
        }
    }
}

impl Future for Task {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.get_mut().inner {
            TaskInner::Raw(raw) => raw.poll(cx),
            TaskInner::Boxed(fut) => fut.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").finish_non_exhaustive()
    }
}

/// A timer future made by [`Runtime::sleep_until`].
///
/// hatchery never polls a timer again after it completed, unless it was
/// [`reset`](Sleep::reset) first (executors differ there: tokio's completes again,
/// async-io's stays pending).
///
/// # Cancel safety
///
/// As for [`Runtime::sleep_until`]: a raw timer of the seam, not a hatchery wait. A
/// cancelled scope drops it like any foreign future. Code that waits should use
/// [`sleep`](crate::sleep) or [`sleep_until`](crate::sleep_until).
///
/// # Examples
///
/// One timer, awaited and re-armed again and again (as a scope does when its deadline
/// moves):
///
/// ```
/// use std::time::Duration;
/// use hatchery::rt::Runtime;
/// use hatchery_tokio::TokioRuntime;
///
/// # hatchery_tokio::run(async {
/// let rt = TokioRuntime::current();
/// let start = rt.now();
/// let mut timer = rt.sleep_until(start + Duration::from_millis(2));
/// for tick in 1..=3u32 {
///     timer.as_mut().await;
///     assert!(rt.now() >= start + Duration::from_millis(2) * tick);
///     timer.as_mut().reset(start + Duration::from_millis(2) * (tick + 1));
/// }
/// # });
/// ```
pub trait Sleep: Future<Output = ()> + Send + Sync {
    /// Moves the timer to a new deadline (earlier or later), as if it were new.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::rt::Runtime;
    /// use hatchery_tokio::TokioRuntime;
    ///
    /// # hatchery_tokio::run(async {
    /// let rt = TokioRuntime::current();
    /// let start = rt.now();
    /// let mut timer = rt.sleep_until(start + Duration::from_secs(3600));
    /// timer.as_mut().reset(start + Duration::from_millis(5)); // much sooner
    /// timer.await;
    /// let waited = rt.now() - start;
    /// assert!(waited >= Duration::from_millis(5) && waited < Duration::from_secs(3600));
    /// # });
    /// ```
    fn reset(self: Pin<&mut Self>, deadline: Instant);
}

/// What every hatchery future finds while it is polled: the runtime and the innermost
/// cancel scope (an owned copy, see [`current`]).
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) rt: Arc<dyn Runtime>,
    pub(crate) node: Arc<Node>,
}

/// The current context, borrowed from the thread-local (see [`with_current`]).
#[derive(Clone, Copy)]
pub(crate) struct CtxRef<'a> {
    pub(crate) rt: &'a Arc<dyn Runtime>,
    pub(crate) node: &'a Arc<Node>,
    spare_node: &'a Cell<Option<Arc<Node>>>,
}

impl CtxRef<'_> {
    /// The node a scope let go of during the current task poll ([`recycle_node`]), if
    /// its parent is the current node: a new scope entered here can take it.
    pub(crate) fn take_spare_node(&self) -> Option<Arc<Node>> {
        let spare = self.spare_node.take()?;
        if spare.is_child_of(self.node) {
            Some(spare)
        } else {
            self.spare_node.set(Some(spare));
            None
        }
    }
}

/// What the current thread is polling.
struct Current {
    slots: RefCell<Slots>,
    /// A timer that a scope or a sleep let go of during the current task poll, for the
    /// next one of the same runtime in that poll to re-arm (`Sleep::reset`) instead of
    /// making a new one. It is dropped when the poll ends, so that no timer outlives its
    /// owner across a suspension (a virtual clock would see it). A `Cell`: scopes reach
    /// it while the slots are borrowed.
    spare: Cell<Option<RtTimer>>,
    /// A done scope's node that nothing else holds, let go of during the current task
    /// poll, for the next scope entered under the same parent in that poll (see
    /// [`recycle_node`]). Dropped when the poll ends, like `spare`, so that it keeps its
    /// parent alive no longer than the poll.
    spare_node: Cell<Option<Arc<Node>>>,
    /// The waker of the runner that installed the node (a task, a nursery, [`enter`]), by
    /// address only: a scope polled with this very waker, from its parent's body, is
    /// polled whenever its parent is (see [`enter_node`]).
    waker: Cell<*const Waker>,
    /// While cancelled code is dropped (a task's future, [`drop_cancelled`]; a scope's
    /// or a nursery's body, [`drop_cancelled_body`]), the node of the context it is
    /// dropped in, by address: a hatchery wait under it would never complete once that
    /// node is cancelled.
    dropping: Cell<*const ()>,
}

struct Slots {
    /// The innermost scope of the task being polled; `None` outside hatchery.
    node: Option<Arc<Node>>,
    /// The runtime of the task being polled, valid while `node` is set.
    ///
    /// It stays behind after the poll (it is only read while `node` is set): a thread
    /// polls the tasks of one runtime, and keeping the handle saves every task poll a
    /// reference count on a line that every thread shares. A poll for another runtime
    /// swaps its own in and puts the old one back; [`Enter`] clears it when it goes.
    rt: Option<Arc<dyn Runtime>>,
}

/// A timer of a runtime, with that runtime's identity (its address), so that one a
/// scope or a sleep lets go of can be re-armed by the next one of the same runtime in
/// the same task poll ([`timer_at`], [`RtTimer::release`]).
pub(crate) struct RtTimer {
    rt: usize,
    sleep: Pin<Box<dyn Sleep>>,
}

impl RtTimer {
    pub(crate) fn sleep(&mut self) -> Pin<&mut dyn Sleep> {
        self.sleep.as_mut()
    }

    /// Leaves the timer for the next one armed during the current task poll (see
    /// [`Current::spare`]). Outside a poll, or if a timer is kept already, it is dropped.
    pub(crate) fn release(self) {
        let id = self.rt;
        let mut timer = Some(self);
        let _ = CURRENT.try_with(|c| {
            // Only a timer of the runtime being polled for, which the poll holds: the
            // address of a runtime that may go meanwhile (a nested test run's, dropped
            // in this poll) could be a new runtime's by the next `timer_at`.
            let ours = c.slots.try_borrow().is_ok_and(|s| {
                s.node.is_some() && s.rt.as_ref().is_some_and(|rt| runtime_id(&**rt) == id)
            });
            if ours {
                let kept = c.spare.take().or_else(|| timer.take());
                c.spare.set(kept);
            }
        });
        // Outside the thread-local: dropping a timer runs the executor's code.
        drop(timer);
    }
}

/// Lets go of a done scope's node: if nothing else holds it
/// ([`Node::recyclable`](crate::node::Node::recyclable)) and a task is being polled, it is
/// kept for the next scope entered under the same parent in this poll
/// ([`CtxRef::take_spare_node`]); a loop of timeouts then reuses one node, with no
/// allocation and no reference counts. The caller must know that the node's waker was
/// never registered.
pub(crate) fn recycle_node(node: Arc<Node>) {
    if !node.recyclable() {
        return;
    }
    let mut node = Some(node);
    let mut old = None;
    let _ = CURRENT.try_with(|c| {
        if c.slots.try_borrow().is_ok_and(|s| s.node.is_some()) {
            old = c.spare_node.replace(node.take());
        }
    });
    // Outside the thread-local: a node's last reference may drop its parent's.
    drop(old);
    drop(node);
}

/// An identity of the calling thread, cheaper to read than `std::thread::current().id()`:
/// the address of its thread-local context (unique among running threads). Zero while
/// the thread's locals are being destroyed.
pub(crate) fn thread_key() -> usize {
    CURRENT
        .try_with(|c| c as *const Current as usize)
        .unwrap_or(0)
}

thread_local! {
    static CURRENT: Current = const {
        Current {
            slots: RefCell::new(Slots { node: None, rt: None }),
            spare: Cell::new(None),
            spare_node: Cell::new(None),
            waker: Cell::new(std::ptr::null()),
            dropping: Cell::new(std::ptr::null()),
        }
    };
}

pub(crate) const NO_RUNTIME: &str = "hatchery: no runtime in this context. \
Run your code inside `hatchery_tokio::run(..)` or `hatchery_smol::run(..)`, or, in an \
application that already runs an executor, wrap the future once with \
`hatchery_tokio::enter(..)` or `hatchery_smol::enter(..)`. Futures spawned directly on \
the executor (`tokio::spawn`, `smol::spawn`) are outside hatchery: spawn them into a \
nursery instead.";

/// The current context; panics with instructions if there is none.
pub(crate) fn current() -> Ctx {
    try_current().expect(NO_RUNTIME)
}

pub(crate) fn try_current() -> Option<Ctx> {
    with_current(|c| {
        c.map(|c| Ctx {
            rt: c.rt.clone(),
            node: c.node.clone(),
        })
    })
}

/// Calls `f` with the current context, if any, without cloning it.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<CtxRef<'_>>) -> R) -> R {
    CURRENT.with(|c| {
        let slots = c.slots.borrow();
        f(match (&slots.node, &slots.rt) {
            (Some(node), Some(rt)) => Some(CtxRef {
                rt,
                node,
                spare_node: &c.spare_node,
            }),
            _ => None,
        })
    })
}

/// Whether the innermost scope of the current task is cancelled. Every hatchery wait
/// asks this first, and stays pending if so.
pub(crate) fn current_cancelled() -> bool {
    CURRENT.with(|c| {
        let slots = c.slots.borrow();
        let cancelled = slots.node.as_ref().is_some_and(|n| n.is_cancelled());
        if cancelled && !c.dropping.get().is_null() {
            let inside = slots
                .node
                .as_ref()
                .is_some_and(|n| n.cancelled_from(c.dropping.get()));
            drop(slots);
            if inside {
                panic!(
                    "hatchery: a hatchery wait polled in a `Drop` that runs as cancelled code \
                     is dropped (a cancelled task's future, or a cancelled scope's body): it \
                     can never complete (the code around it is cancelled), and blocking on it \
                     would hang the thread. Spawn async cleanup into a nursery instead \
                     (`Nursery::try_spawn`), or use `finally`"
                );
            }
        }
        cancelled
    })
}

/// Cancels the scopes around the code being polled whose deadline is not later than
/// `deadline`, which has just passed (up to the nearest shield, across nurseries; see
/// [`Node::cancel_deadlines_before`]). Whether one was.
#[cold]
pub(crate) fn cancel_deadlines_before(deadline: Instant) -> bool {
    let node = with_current(|c| c.map(|c| c.node.clone()));
    node.is_some_and(|node| node.cancel_deadlines_before(deadline))
}

/// Drops a cancelled task's future with `drop`, in the task's context (`slot` holds its
/// node), so that a `Drop` in it can read the clock or spawn; a hatchery wait polled
/// there, unless inside a shield, panics rather than stay pending for good (see
/// [`current_cancelled`]). Without a thread-local context any more (the thread is
/// exiting), just drops it.
pub(crate) fn drop_cancelled<R>(
    slot: &mut Option<Arc<Node>>,
    rt: &Arc<dyn Runtime>,
    waker: &Waker,
    drop: impl FnOnce() -> R,
) -> R {
    if thread_key() == 0 {
        return drop();
    }
    let node = slot
        .as_ref()
        .map_or(std::ptr::null(), |n| Arc::as_ptr(n).cast::<()>());
    enter_with(slot, rt, waker, || {
        CURRENT.with(|c| {
            let _reset = ResetDropping(&c.dropping, c.dropping.replace(node));
            drop()
        })
    })
}

/// Drops the body of a cancelled scope or nursery with `drop`, in the current context
/// (the scope's parent): a hatchery wait polled in a `Drop` there panics, as in
/// [`drop_cancelled`], if that context is cancelled too, rather than stay pending for
/// good; one that can complete (the scope cancelled itself) works.
pub(crate) fn drop_cancelled_body<R>(drop: impl FnOnce() -> R) -> R {
    if thread_key() == 0 {
        return drop();
    }
    CURRENT.with(|c| {
        let node = c
            .slots
            .borrow()
            .node
            .as_ref()
            .map_or(std::ptr::null(), |n| Arc::as_ptr(n).cast::<()>());
        let _reset = ResetDropping(&c.dropping, c.dropping.replace(node));
        drop()
    })
}

/// Puts back the `dropping` marker of the code around (see [`Current::dropping`]).
struct ResetDropping<'a>(&'a Cell<*const ()>, *const ());

impl Drop for ResetDropping<'_> {
    fn drop(&mut self) {
        self.0.set(self.1);
    }
}

/// Polls `f` with `node` (taken out of `slot`) as the current node and `rt` as the
/// runtime, moving the node into the thread-local and back (no reference counts change
/// when the thread last polled for the same runtime), and restoring the previous context
/// even on panic.
pub(crate) fn enter_with<R>(
    slot: &mut Option<Arc<Node>>,
    rt: &Arc<dyn Runtime>,
    waker: &Waker,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore<'a> {
        current: &'a Current,
        slot: &'a mut Option<Arc<Node>>,
        prev: Option<Arc<Node>>,
        /// The other runtime that was installed before, to put back.
        prev_rt: Option<Arc<dyn Runtime>>,
        prev_waker: *const Waker,
    }
    impl Drop for Restore<'_> {
        #[inline]
        fn drop(&mut self) {
            let c = self.current;
            c.waker.set(self.prev_waker);
            let mut slots = c.slots.borrow_mut();
            *self.slot = std::mem::replace(&mut slots.node, self.prev.take());
            if let Some(rt) = self.prev_rt.take() {
                // Dropped outside the borrow: it may be the last handle to a runtime.
                let ours = slots.rt.replace(rt);
                drop(slots);
                drop(ours);
            } else {
                drop(slots);
            }
            // The poll is over: no spare timer or node survives it.
            drop(c.spare.take());
            drop(c.spare_node.take());
        }
    }
    // One thread-local access for the whole poll: the restore uses the same reference.
    CURRENT.with(|current| {
        let mut slots = current.slots.borrow_mut();
        let (prev_rt, stale) = match &slots.rt {
            Some(cur) if same_runtime(cur, rt) => (None, None),
            // Inside a poll for another runtime: its handle is put back afterwards.
            _ if slots.node.is_some() => (install(&mut slots.rt, rt), None),
            // No poll in progress: the thread keeps ours from now on (the last runtime it
            // polled for), and lets go of the one it kept before.
            _ => (None, install(&mut slots.rt, rt)),
        };
        let prev = std::mem::replace(&mut slots.node, slot.take());
        drop(slots);
        // Outside the borrow: it may be the last handle to a runtime.
        drop(stale);
        let _restore = Restore {
            current,
            slot,
            prev,
            prev_rt,
            prev_waker: current.waker.replace(waker),
        };
        f()
    })
}

/// Polls `f` with `rt` as the runtime of the current context, whose scope stays the
/// current one (an [`enter`] nested in a hatchery context), and puts the runtime back
/// afterwards, even on panic.
fn with_runtime<R>(rt: &Arc<dyn Runtime>, f: impl FnOnce() -> R) -> R {
    struct Restore<'a> {
        current: &'a Current,
        prev: Option<Arc<dyn Runtime>>,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            if let Some(prev) = self.prev.take() {
                let ours = self.current.slots.borrow_mut().rt.replace(prev);
                // A spare timer is of the runtime polled for: ours goes with it. Both
                // dropped outside the borrow: a timer runs the executor's code, and this
                // may be the last handle to a runtime.
                drop(self.current.spare.take());
                drop(ours);
            }
        }
    }
    CURRENT.with(|current| {
        let prev = {
            let mut slots = current.slots.borrow_mut();
            match &slots.rt {
                Some(cur) if same_runtime(cur, rt) => None,
                _ => install(&mut slots.rt, rt),
            }
        };
        let _restore = Restore { current, prev };
        f()
    })
}

/// Installs `rt` as the thread's runtime, returning the one it replaces.
#[cold]
fn install(slot: &mut Option<Arc<dyn Runtime>>, rt: &Arc<dyn Runtime>) -> Option<Arc<dyn Runtime>> {
    slot.replace(rt.clone())
}

/// Identifies a runtime by its address, for matching a spare timer with the runtime
/// that made it.
fn runtime_id(rt: &dyn Runtime) -> usize {
    (rt as *const dyn Runtime).cast::<u8>() as usize
}

/// A timer of `rt` for `deadline`: the spare one of this task poll, re-armed, if there
/// is one for `rt`, or a new one.
pub(crate) fn timer_at(rt: &dyn Runtime, deadline: Instant) -> RtTimer {
    let id = runtime_id(rt);
    let spare = CURRENT.with(|c| match c.spare.take() {
        Some(spare) if spare.rt == id => Some(spare),
        other => {
            c.spare.set(other);
            None
        }
    });
    match spare {
        Some(mut timer) => {
            timer.sleep().reset(deadline);
            timer
        }
        None => RtTimer {
            rt: id,
            sleep: rt.sleep_until(deadline),
        },
    }
}

#[inline]
fn same_runtime(a: &Arc<dyn Runtime>, b: &Arc<dyn Runtime>) -> bool {
    // By address only: two vtables for one type may differ between codegen units.
    std::ptr::eq(Arc::as_ptr(a).cast::<u8>(), Arc::as_ptr(b).cast::<u8>())
}

/// The runtime for an [`enter`] nested in a hatchery context, if not `rt` itself: inside
/// a test run ([`testing`](crate::testing)), `rt`'s executor under the run's clock and
/// task tracking, which the test would otherwise lose there.
#[cold]
fn nested_runtime(rt: &Arc<dyn Runtime>) -> Option<Arc<dyn Runtime>> {
    let current = with_current(|c| c.map(|c| c.rt.clone()))?;
    match same_runtime(&current, rt) {
        true => None,
        false => crate::testing::in_test_run(&current, rt),
    }
}

/// Lets go of the runtime handle the thread keeps after polling, if it is `rt`'s and
/// nothing is being polled (called when a root made by [`enter`] goes).
fn forget_runtime(rt: &Arc<dyn Runtime>) {
    let kept = CURRENT.try_with(|c| {
        let mut slots = c.slots.try_borrow_mut().ok()?;
        match &slots.rt {
            Some(cur) if slots.node.is_none() && same_runtime(cur, rt) => slots.rt.take(),
            _ => None,
        }
    });
    drop(kept);
}

/// Polls `f` with `node` as the innermost scope of the current context, swapping it in
/// and back out (no reference counts change), even on panic.
///
/// Also returns whether the scope is polled directly by its parent's body, with the
/// waker of the runner that polls the parent (`waker` is the scope's): then that
/// runner's wake-up reaches the scope, and the scope need not be in its parent's child
/// list. The waker is compared by address: a combinator that polls its futures with
/// wakers of its own hands them other `Waker` values (a false "no" only costs a link).
///
/// # Panics
///
/// Outside a hatchery context.
pub(crate) fn enter_node<R>(
    node: &mut Arc<Node>,
    waker: &Waker,
    f: impl FnOnce() -> R,
) -> (R, bool) {
    struct Restore<'a> {
        current: &'a Current,
        node: &'a mut Arc<Node>,
    }
    impl Drop for Restore<'_> {
        #[inline]
        fn drop(&mut self) {
            swap_node(self.current, self.node);
        }
    }
    // One thread-local access for the whole poll.
    CURRENT.with(|current| {
        swap_node(current, node);
        let restore = Restore { current, node };
        let out = f();
        drop(restore);
        let by_parent = std::ptr::eq(current.waker.get(), waker)
            && node.fixed_parent().is_some_and(|parent| {
                current.slots.borrow().node.as_ref().is_some_and(|caller| {
                    std::ptr::eq(
                        Arc::as_ptr(caller).cast::<u8>(),
                        Arc::as_ptr(parent).cast::<u8>(),
                    )
                })
            });
        (out, by_parent)
    })
}

#[inline]
fn swap_node(current: &Current, node: &mut Arc<Node>) {
    let mut slots = current.slots.borrow_mut();
    let installed = slots.node.as_mut().expect(NO_RUNTIME);
    std::mem::swap(installed, node);
}

/// Installs `runtime` for everything `fut` does, making `fut` the root of a hatchery
/// task tree.
///
/// Adapters call this in their `run` and `enter` functions; call it yourself only when
/// binding a new executor (see the [module docs](self)).
///
/// The root scope cannot be cancelled; wrap `fut` in a [`CancelScope`](crate::CancelScope)
/// for that.
///
/// Polled inside a hatchery context already (`hatchery_tokio::enter` in a library called
/// from hatchery code, say), `fut` is not a new root: it runs in the enclosing scope,
/// under its cancellation, deadlines and shields, as any code there does, and only the
/// runtime changes (the one its nurseries spawn children on, and whose clock and timers
/// it uses; in a [test run](crate::testing)'s code, `fut` stays on the run's clock, and
/// its tasks count as the run's). A root of its own would be cut loose: dropped, not cancelled, by an enclosing
/// scope (C8). "Inside" means polled on a thread where hatchery code is being polled:
/// an executor blocked on from hatchery code (`block_in_place` and `Handle::block_on`,
/// a `LocalSet` driven there) polls `fut` inside the blocked task's scope, and once that
/// scope is cancelled (or its deadline passes), `fut` stops for good. Block with
/// [`enter_root`], or on another thread ([`run_blocking`](crate::run_blocking)). A root
/// (first polled outside hatchery) stays one, wherever it is polled later.
///
/// # Cancel safety
///
/// As a root (outside hatchery), nothing can cancel `fut`; dropping this future drops
/// `fut` from outside (C8): everything in it is cancelled at once, and its nurseries'
/// children are aborted without being waited for. Inside a hatchery context, it is
/// `fut` itself, in the enclosing scope: if that scope is cancelled while it waits,
/// `fut` is cancelled as the code around it is, and this future completes only if `fut`
/// does.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use hatchery::rt;
/// use hatchery_tokio::TokioRuntime;
///
/// # hatchery_tokio::run(async {
/// // In a task of a running tokio runtime (what `hatchery_tokio::enter` does):
/// let runtime = Arc::new(TokioRuntime::current());
/// let out = rt::enter(runtime, hatchery::nursery(|n| async move {
///     let h = n.spawn(async { Ok::<_, std::io::Error>(6 * 7) });
///     Ok(h.join().await?)
/// }))
/// .await;
/// assert_eq!(out.unwrap(), 42);
/// # });
/// ```
pub fn enter<F: Future>(runtime: Arc<dyn Runtime>, fut: F) -> Enter<F> {
    Enter {
        fut,
        rt: runtime,
        node: None,
        nest: true,
        fitted: false,
    }
}

/// [`enter`], always as a root of its own, even when polled inside a hatchery context.
///
/// For an adapter's blocking `run` function: a sync function that runs async code on an
/// executor of its own (`hatchery_smol::run_current_thread`, say) may be called from
/// hatchery code, and then blocks the task that called it. Nested in that task's scope,
/// as [`enter`] would be, the code would stop for good once the scope is cancelled (a
/// cancelled scope's waits never complete, and the scope cannot drop code its own task
/// is blocked on). As a root it runs to its end. hatchery's test runs use it too: their
/// clock is their own, and the enclosing deadlines cannot be compared with it.
///
/// # Cancel safety
///
/// As a root, nothing can cancel `fut`. Dropping this future drops `fut` from outside
/// (C8): everything in it is cancelled at once, and its nurseries' children are
/// cancelled without being awaited. That includes being awaited in hatchery code whose
/// scope is then cancelled: that scope does not cancel `fut` in order, it drops this
/// future at its suspension point, like any foreign future, so `fut`'s
/// [`finally`](crate::finally) cleanups do not run. Wrap `fut` in a
/// [`CancelScope`](crate::CancelScope) of its own if it must be stoppable.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use futures_lite::future::block_on;
/// use hatchery::{rt, CancelScope};
/// use hatchery_tokio::TokioRuntime;
///
/// # hatchery_tokio::run(async {
/// let runtime: Arc<dyn rt::Runtime> = Arc::new(TokioRuntime::current());
/// let scope = CancelScope::new();
/// scope.handle().cancel();
/// let out = scope
///     .run(async move {
///         // A blocking call in a cancelled scope, before its next suspension: the
///         // root's code does not see that cancellation.
///         block_on(rt::enter_root(runtime, async {
///             hatchery::checkpoint().await;
///             7
///         }))
///     })
///     .await;
/// assert_eq!(out, Some(7));
/// # });
/// ```
pub fn enter_root<F: Future>(runtime: Arc<dyn Runtime>, fut: F) -> Enter<F> {
    Enter {
        fut,
        rt: runtime,
        node: None,
        nest: false,
        fitted: false,
    }
}

pin_project! {
    /// Future returned by [`enter`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use hatchery::futures::Enter;
    /// use hatchery::rt;
    ///
    /// # hatchery_tokio::run(async {
    /// let runtime = Arc::new(hatchery_tokio::TokioRuntime::current());
    /// // Runs on the runtime's blocking threads once awaited.
    /// let root: Enter<_> = rt::enter(runtime, hatchery::run_blocking(|| 2 + 2));
    /// assert_eq!(root.await, 4);
    /// # });
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct Enter<F> {
        #[pin]
        fut: F,
        rt: Arc<dyn Runtime>,
        // The root's node, made at its first poll as a root (a nested one needs none).
        node: Option<Arc<Node>>,
        // Inside a hatchery context, runs in the enclosing scope rather than as a root.
        nest: bool,
        // Nested: `rt` has been fitted to the enclosing context (see `nested_runtime`).
        fitted: bool,
    }

    impl<F> PinnedDrop for Enter<F> {
        fn drop(this: Pin<&mut Self>) {
            // The root is gone: this thread need not keep its runtime alive.
            forget_runtime(this.project().rt);
        }
    }
}

impl<F: Future> Future for Enter<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let fut = this.fut;
        // Decided at the first poll: a root stays one (its scopes are under its node).
        if *this.nest && this.node.is_none() && with_current(|c| c.is_some()) {
            if !*this.fitted {
                *this.fitted = true;
                if let Some(rt) = nested_runtime(this.rt) {
                    *this.rt = rt;
                }
            }
            return with_runtime(this.rt, || fut.poll(cx));
        }
        if this.node.is_none() {
            *this.node = Some(Node::new(false, true));
        }
        enter_with(this.node, this.rt, cx.waker(), || fut.poll(cx))
    }
}

impl<F> fmt::Debug for Enter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enter").finish_non_exhaustive()
    }
}

/// Whether the current thread is inside a hatchery context (a runtime is bound).
///
/// # Examples
///
/// ```
/// assert!(!hatchery::rt::is_entered());
/// hatchery_smol::run(async { assert!(hatchery::rt::is_entered()) });
/// ```
pub fn is_entered() -> bool {
    with_current(|c| c.is_some())
}
