//! The runtime seam, the ground floor of the crate: the few things hatchery needs from
//! an executor ([`Runtime`], [`Sleep`]) and the task it hands it ([`Task`]).
//!
//! It imports nothing else of the crate. The task layer above reaches the executor's
//! [`Task`] through the traits defined here ([`Run`], [`Keep`], [`Handoff`]), so that a
//! spawned task is one allocation of that layer's, which the `Task` points to. The public
//! module `hatchery::rt` (in `lib.rs`) adds the entry points of the ambient context
//! (`enter`, `enter_root`, `is_entered`).

use std::alloc::Layout;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use super::files::FileSystem;
use super::network::Network;
use super::reactor::Reactor;

/// An executor and clock that hatchery can run on.
///
/// This is the whole seam between hatchery's semantics and an executor. hatchery itself
/// never names an executor: an adapter crate implements `Runtime` for one
/// (`hatchery-tokio`, `hatchery-smol`) and hands it to [`enter`](crate::rt::enter), which
/// installs it for everything the wrapped future does: every scope, nursery and task
/// inside finds the runtime through the task context that hatchery sets while it polls
/// them. All methods may be called from any thread, including threads the executor does
/// not own.
///
/// To bind a third-party executor, implement `Runtime` (spawn, a clock, timers and
/// blocking work) and wrap your root future with [`enter`](crate::rt::enter) (an `async`
/// entry point, for code already running on your executor) or
/// [`enter_root`](crate::rt::enter_root) (a blocking `run`). The first example below runs
/// hatchery on plain threads: every task gets a thread with a tiny `block_on`, and timers
/// are threads that sleep. It is slow but complete, and shows the whole contract.
///
/// What the contract asks beyond the signatures:
///
/// * [`spawn`](Runtime::spawn) runs the task in the background: never poll it inside
///   `spawn` (children must run while their spawner goes on, rule N8), and on a
///   multi-threaded executor let tasks run in parallel.
/// * [`spawn_blocking`](Runtime::spawn_blocking) runs the work on another thread, never
///   inline.
/// * Threads that poll hatchery tasks keep a clone of the last runtime they polled for,
///   until they poll for another one or end. So a runtime must not own its executor's
///   threads: hold a handle that does not (tokio's `Handle`, a `Weak`), or let go of the
///   executor when your `run` returns, or the threads keep the runtime and the runtime
///   keeps the threads (the book's runtimes chapter shows the leak and a pool runtime
///   that avoids it).
/// * Four methods have defaults: [`timer_horizon`](Runtime::timer_horizon) (a year),
///   [`budget_spent`](Runtime::budget_spent) (`false`), [`nested`](Runtime::nested)
///   (the runtime asked for) and [`name`](Runtime::name) (the type's name). Override
///   them if your timers reach less far, your executor has a cooperative budget, your
///   runtime keeps a clock or a watch that code nested in it must stay under, or to
///   name your executor; a runtime that wraps another must forward them (see the second
///   example).
/// * A fifth, [`reactor`](Runtime::reactor) (none by default), gives
///   [`net`](crate::net)'s sockets a reactor; without one, opening a socket fails with a
///   clear error. `hatchery_smol::AsyncIoReactor` serves any executor: the
///   [`Reactor`] docs add it to a runtime like the one below, and open sockets on it.
/// * A sixth, [`network`](Runtime::network) (none by default: the system's), gives a
///   runtime a network of its own, which `net`'s TCP and UDP sockets then talk to
///   instead of the system's (the simulator's network of named hosts; see [`Network`]).
/// * A seventh, [`file_system`](Runtime::file_system) (none by default: the system's),
///   gives it a file system of its own for [`fs`](crate::fs) (the simulator's disk per
///   host; see [`FileSystem`]).
///
/// The crate `hatchery-conformance` checks a binding: `hatchery_conformance::tests!(run)`
/// in a test file runs its scenarios through your `run`. The first example below passes
/// it (hatchery's CI runs it there).
///
/// # Examples
///
/// The whole adapter on plain threads:
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::sync::{Arc, Condvar, Mutex};
/// use std::task::{Context, Poll, Wake, Waker};
/// use std::time::{Duration, Instant};
///
/// use hatchery::rt::{self, Runtime, Sleep, Task};
///
/// /// Runs a future to completion on the current thread.
/// fn block_on<F: Future>(fut: F) -> F::Output {
///     struct Unpark(Mutex<bool>, Condvar);
///     impl Wake for Unpark {
///         fn wake(self: Arc<Self>) {
///             *self.0.lock().unwrap() = true;
///             self.1.notify_one();
///         }
///     }
///     let unpark = Arc::new(Unpark(Mutex::new(false), Condvar::new()));
///     let waker = Waker::from(unpark.clone());
///     let mut fut = std::pin::pin!(fut);
///     loop {
///         if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
///             return v;
///         }
///         let mut woken = unpark.0.lock().unwrap();
///         while !*woken {
///             woken = unpark.1.wait(woken).unwrap();
///         }
///         *woken = false;
///     }
/// }
///
/// /// A timer: a thread that sleeps, then wakes whoever polled last.
/// struct ThreadSleep {
///     deadline: Instant,
///     waker: Arc<Mutex<Option<Waker>>>,
///     armed: bool,
/// }
///
/// impl Future for ThreadSleep {
///     type Output = ();
///     fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
///         if Instant::now() >= self.deadline {
///             return Poll::Ready(());
///         }
///         *self.waker.lock().unwrap() = Some(cx.waker().clone());
///         if !self.armed {
///             self.armed = true;
///             let (deadline, waker) = (self.deadline, self.waker.clone());
///             std::thread::spawn(move || {
///                 std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
///                 if let Some(w) = waker.lock().unwrap().take() {
///                     w.wake();
///                 }
///             });
///         }
///         Poll::Pending
///     }
/// }
///
/// impl Sleep for ThreadSleep {
///     fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
///         *self = ThreadSleep { deadline, waker: Arc::default(), armed: false };
///     }
/// }
///
/// #[derive(Debug)]
/// struct Threads;
///
/// impl Runtime for Threads {
///     fn spawn(&self, task: Task) {
///         std::thread::spawn(move || block_on(task));
///     }
///     fn now(&self) -> Instant {
///         Instant::now()
///     }
///     fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
///         Box::pin(ThreadSleep { deadline, waker: Arc::default(), armed: false })
///     }
///     fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
///         std::thread::spawn(work);
///     }
/// }
///
/// // The application's `run`: the whole adapter is the code above plus these lines.
/// // `enter_root`, not `enter`: a sync library may call `run` from hatchery code, and
/// // nested in the caller's scope, it would block for good once that scope is cancelled.
/// fn run<F: Future>(fut: F) -> F::Output {
///     block_on(rt::enter_root(Arc::new(Threads), fut))
/// }
///
/// let sum = run(hatchery::nursery(|n| async move {
///     let a = n.spawn(async { hatchery::sleep(Duration::from_millis(5)).await; Ok::<_, std::io::Error>(1) });
///     let b = n.spawn(async { Ok(2) });
///     Ok(a.join().await? + b.join().await?)
/// }));
/// assert_eq!(sum.unwrap(), 3);
/// ```
///
/// A runtime that wraps another one, here to count the tasks hatchery spawns. It forwards
/// every method, those with defaults too: a default left in place would hide the wrapped
/// runtime's own (without `budget_spent`, a test run on it would take a task that
/// tokio's budget holds back for blocked, and without `reactor` it could open no socket).
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
///     fn nested(&self, inner: Arc<dyn Runtime>) -> Arc<dyn Runtime> {
///         self.inner.nested(inner)
///     }
///     fn name(&self) -> &'static str {
///         self.inner.name()
///     }
///     fn reactor(&self) -> Option<&dyn rt::Reactor> {
///         self.inner.reactor()
///     }
///     fn network(&self) -> Option<&dyn rt::Network> {
///         self.inner.network()
///     }
///     fn file_system(&self) -> Option<&dyn rt::FileSystem> {
///         self.inner.file_system()
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

    /// The runtime for code that binds `inner` with [`enter`](crate::rt::enter) while it
    /// runs on this one: a library that wraps its work in `hatchery_tokio::enter`, say,
    /// called from hatchery code on this runtime. Such code runs in the enclosing scope
    /// (see [`enter`](crate::rt::enter)) on the runtime returned here.
    ///
    /// The default returns `inner`: the code spawns on the executor it asked for and reads
    /// its clock. A runtime that watches every task or keeps a clock of its own returns
    /// `inner` under the same watch and clock, so that the nested code does not escape
    /// them: a [test run](crate::testing)'s runtime returns `inner`'s executor on the run's
    /// (virtual) clock, with its tasks counted as the run's. A runtime that wraps another
    /// forwards the call (see the second example of [`Runtime`]).
    ///
    /// hatchery calls it when an `enter` of another runtime than the current one is first
    /// polled inside a hatchery context, never outside one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use hatchery::rt::Runtime;
    /// use hatchery_tokio::TokioRuntime;
    ///
    /// # hatchery_tokio::run(async {
    /// let inner: Arc<dyn Runtime> = Arc::new(TokioRuntime::current());
    /// let nested = TokioRuntime::current().nested(inner.clone());
    /// assert!(std::ptr::addr_eq(Arc::as_ptr(&nested), Arc::as_ptr(&inner)));
    /// # });
    /// ```
    fn nested(&self, inner: Arc<dyn Runtime>) -> Arc<dyn Runtime> {
        inner
    }

    /// A short name of the executor behind this runtime, for code that wants to know what
    /// it runs on ([`rt::current`](crate::rt::current)): `"tokio"` for `hatchery-tokio`
    /// (either flavor: ask tokio's `Handle::runtime_flavor` for which), `"smol"` for
    /// `hatchery-smol`.
    ///
    /// The default is the implementing type's name (`std::any::type_name`), so a third
    /// party's runtime is told apart without overriding it; override it with the name of
    /// your executor. A runtime that wraps another forwards it, as test runs do (inside
    /// one, this is the backend's name).
    ///
    /// hatchery itself never reads it: no semantics depend on the name.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::rt::Runtime;
    /// use hatchery_tokio::TokioRuntime;
    ///
    /// # hatchery_tokio::run(async {
    /// assert_eq!(TokioRuntime::current().name(), "tokio");
    /// // What a library sees, inside a test run too:
    /// assert_eq!(hatchery::rt::current().unwrap().name(), "tokio");
    /// # });
    /// ```
    fn name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }

    /// This runtime's I/O reactor, if it has one: what [`hatchery::net`](crate::net)'s
    /// sockets are registered with (see [`Reactor`]).
    ///
    /// The default, `None`, is a runtime without I/O: everything else works, and
    /// opening a socket fails with an error of kind
    /// [`Unsupported`](std::io::ErrorKind::Unsupported) that says what is missing. A
    /// binding without a reactor of its own can return `hatchery_smol::AsyncIoReactor`
    /// (see [`Reactor`]). A runtime that wraps another forwards it.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::rt::Runtime;
    /// use hatchery_tokio::TokioRuntime;
    ///
    /// # hatchery_tokio::run(async {
    /// assert!(TokioRuntime::current().reactor().is_some()); // tokio's own
    /// # });
    /// ```
    fn reactor(&self) -> Option<&dyn Reactor> {
        None
    }

    /// This runtime's own network, if it has one: what [`hatchery::net`](crate::net)'s
    /// TCP and UDP sockets talk to instead of the system's (see [`Network`]).
    ///
    /// The default, `None`, is the system's network, through the
    /// [`reactor`](Runtime::reactor). `hatchery-sim` returns its simulated network of
    /// named hosts. A runtime that wraps another forwards it.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::rt::Runtime;
    ///
    /// # hatchery_tokio::run(async {
    /// assert!(hatchery::rt::current().unwrap().network().is_none()); // the system's
    /// # });
    /// hatchery_sim::Sim::new(0).run(async {
    ///     assert!(hatchery::rt::current().unwrap().network().is_some()); // simulated
    /// });
    /// ```
    fn network(&self) -> Option<&dyn Network> {
        None
    }

    /// This runtime's own file system, if it has one: what [`hatchery::fs`](crate::fs)
    /// works on instead of the system's (see [`FileSystem`]).
    ///
    /// The default, `None`, is the system's files, on the runtime's blocking threads.
    /// `hatchery-sim` returns a simulated disk per host. A runtime that wraps another
    /// forwards it.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::rt::Runtime;
    ///
    /// # hatchery_tokio::run(async {
    /// assert!(hatchery::rt::current().unwrap().file_system().is_none()); // the system's
    /// # });
    /// hatchery_sim::Sim::new(0).run(async {
    ///     assert!(hatchery::rt::current().unwrap().file_system().is_some()); // simulated
    /// });
    /// ```
    fn file_system(&self) -> Option<&dyn FileSystem> {
        None
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
    /// A task of a nursery: the task layer's allocation, run through its [`Run`] object;
    /// or a future ([`Boxed`]). One `Arc<dyn Run>` either way, so that a `Task` is two
    /// words: it lives in every executor task (on smol, every child's executor task is 8
    /// bytes smaller than with an enum of the two).
    raw: RawTask,
}

/// A task of the task layer as the seam runs it, without naming it: the layer's
/// allocation (its node, its result and its future, in one), coerced to this trait.
///
/// The task layer polls the future in place, through a shared reference, which is sound
/// only if one caller at a time does: that caller is the allocation's [`RawTask`], the
/// one `Arc<dyn Run>` the task layer makes for it (see `child::cell`).
pub(crate) trait Run: Send + Sync {
    /// Polls the task. Only the allocation's [`RawTask`] calls this, with its [`Lend`].
    fn poll_run(&self, lend: Lend<'_>, cx: &mut Context<'_>) -> Poll<()>;

    /// The executor dropped the task, finished or not. Only the allocation's
    /// [`RawTask`] calls this, once, as it goes, with its [`Lend`].
    fn drop_run(&self, lend: Lend<'_>);

    /// Where to keep the executor's handle to this task: the allocation as a [`Keep`] (a
    /// reference that can keep the executor's handle, and nothing else), or `None` if it
    /// keeps none. Only the allocation's [`RawTask`] calls this.
    fn keeper(self: Arc<Self>) -> Option<Arc<dyn Keep>>;
}

/// The [`RawTask`]'s own reference to the allocation a [`Run`] method is called on, for
/// the length of that call: only a `RawTask` makes one, of the `Arc` it holds and
/// through which it calls, so the task layer can lend that reference to the task's
/// context for the call rather than keep a second one (see `child::cell`).
#[derive(Clone, Copy)]
pub(crate) struct Lend<'a> {
    /// The allocation's address, as [`Arc::as_ptr`] of the `RawTask`'s `Arc` gives it.
    at: *const (),
    /// Borrowed from the `RawTask`'s `Arc` for the call.
    _arc: PhantomData<&'a Arc<dyn Run>>,
}

impl<'a> Lend<'a> {
    /// The lend of `arc`, the `RawTask`'s own. (The address is the one the call through
    /// `arc` computes anyway, so making this costs nothing more.)
    #[inline(always)]
    fn of(arc: &'a Arc<dyn Run>) -> Lend<'a> {
        Lend {
            at: Arc::as_ptr(arc).cast::<()>(),
            _arc: PhantomData,
        }
    }

    /// The allocation's address, as the `Arc` it was lent from gives it
    /// ([`Arc::as_ptr`]): with the provenance of the whole allocation, counts included.
    #[inline(always)]
    pub(crate) fn as_ptr(self) -> *const () {
        self.at
    }
}

/// Where a task keeps the executor's handle to it ([`Task::spawn_with`]), until its
/// allocation goes.
pub(crate) trait Keep: Send + Sync {
    /// Moves the value out of `handle` to keep it, if nothing is kept yet; else leaves it
    /// there (for the caller to drop).
    fn keep(&self, handle: &mut dyn Handoff);
}

/// An executor's handle on its way into a task's allocation ([`Keep::keep`]): a value of
/// at most a word, seen through its parts, so that the task layer can move it without
/// naming its type. Implemented for `Option<H>` only, here (the trait is sealed): the
/// task layer's `unsafe` code relies on what it reports.
pub(crate) trait Handoff: sealed::Sealed {
    /// The value's layout: at most the size and alignment of a `usize`.
    fn layout(&self) -> Layout;

    /// Where the value is; `None` once it has been moved out.
    fn as_ptr(&mut self) -> Option<*mut u8>;

    /// The value's destructor, `ptr::drop_in_place` of its type, as an address.
    fn drop_fn(&self) -> *const ();

    /// The value's type.
    fn type_id(&self) -> std::any::TypeId;

    /// Forgets the value, whose bytes have been moved out.
    fn forget(&mut self);
}

mod sealed {
    /// Only the seam implements [`Handoff`](super::Handoff).
    pub(crate) trait Sealed {}

    impl<H> Sealed for Option<H> {}
}

impl<H: Send + 'static> Handoff for Option<H> {
    fn layout(&self) -> Layout {
        Layout::new::<H>()
    }

    fn as_ptr(&mut self) -> Option<*mut u8> {
        self.as_mut().map(|h| std::ptr::from_mut(h).cast::<u8>())
    }

    fn drop_fn(&self) -> *const () {
        let drop: unsafe fn(*mut H) = std::ptr::drop_in_place::<H>;
        drop as *const ()
    }

    fn type_id(&self) -> std::any::TypeId {
        std::any::TypeId::of::<H>()
    }

    fn forget(&mut self) {
        std::mem::forget(self.take());
    }
}

/// The executor's reference to a task of the task layer, and the one caller of its
/// [`Run`] methods: the task layer makes one for each allocation ([`RawTask::new`]), and
/// it is neither `Clone` nor lets its `Arc` out, so the task's future is polled and
/// dropped by whoever holds it, one at a time.
pub(crate) struct RawTask(Arc<dyn Run>);

impl RawTask {
    /// The executor's reference to `run`, the allocation of a new task. The task layer
    /// calls this once for each allocation it makes, with the one `Arc<dyn Run>` of it.
    pub(crate) fn new(run: Arc<dyn Run>) -> RawTask {
        RawTask(run)
    }

    /// Polls the task (its owner's one way to: the executor's, or a group's that polls
    /// its children itself).
    #[inline]
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.poll_run(Lend::of(&self.0), cx)
    }

    /// Something to keep the executor's handle with, once this has been spawned.
    fn keeper(&self) -> Option<Keeper> {
        Arc::clone(&self.0).keeper().map(Keeper)
    }
}

impl Drop for RawTask {
    fn drop(&mut self) {
        self.0.drop_run(Lend::of(&self.0));
    }
}

/// Keeps an executor's handle with a task's allocation (see [`Task::spawn_with`]).
pub(crate) struct Keeper(Arc<dyn Keep>);

impl Keeper {
    /// Keeps `handle` with the task, to be dropped with its allocation, on whichever
    /// thread lets go of it last. Only the first handle is kept: a later one is dropped
    /// here.
    fn keep<H: Send + 'static>(self, handle: H) {
        // In the allocation's word as it is if it fits (a `tokio::task::JoinHandle` does);
        // boxed first otherwise.
        if size_of::<H>() <= size_of::<usize>() && align_of::<H>() <= align_of::<usize>() {
            self.0.keep(&mut Some(handle));
        } else {
            self.0.keep(&mut Some(Box::new(handle)));
        }
    }
}

/// The future of a [`Boxed`] task.
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

/// A task made of a future ([`Task::from_future`], [`Task::wrap`]), run through the same
/// [`Run`] object as a task of the task layer. The lock is never contended (only the
/// task's [`RawTask`] polls it), and lets this be polled through `&self` without
/// `unsafe`; such tasks are the rare ones (a runtime that wraps every task, as the test
/// runs' does, pays this box and its lock).
struct Boxed {
    /// `None` once dropped.
    fut: Mutex<Option<Pin<Box<dyn BoxedTask>>>>,
}

impl Boxed {
    fn lock(&self) -> MutexGuard<'_, Option<Pin<Box<dyn BoxedTask>>>> {
        // A poll that panicked leaves the future as it was: the executor drops it next.
        self.fut.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Run for Boxed {
    fn poll_run(&self, _: Lend<'_>, cx: &mut Context<'_>) -> Poll<()> {
        match self.lock().as_mut() {
            Some(fut) => fut.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }

    fn drop_run(&self, _: Lend<'_>) {
        // Dropped outside the lock: its `Drop` is foreign code.
        let fut = self.lock().take();
        drop(fut);
    }

    fn keeper(self: Arc<Self>) -> Option<Arc<dyn Keep>> {
        let keeper = self.lock().as_mut()?.as_mut().take_keeper();
        keeper.map(|k| k.0)
    }
}

impl Task {
    pub(crate) fn raw(raw: RawTask) -> Task {
        Task { raw }
    }

    fn boxed<F: Future<Output = ()> + Send + 'static>(fut: Held<F>) -> Task {
        let boxed = Boxed {
            fut: Mutex::new(Some(Box::pin(fut))),
        };
        Task::raw(RawTask::new(Arc::new(boxed)))
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
        Task::boxed(Held { fut, keeper: None })
    }

    /// A task that polls `wrap(self)`, a future that drives this task (a runtime that
    /// watches every task, as the test runs' does). A handle given to
    /// [`spawn_with`](Task::spawn_with) is still kept with this task's state.
    pub(crate) fn wrap<F>(self, wrap: impl FnOnce(Task) -> F) -> Task
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let keeper = self.raw.keeper();
        Task::boxed(Held {
            fut: wrap(self),
            keeper,
        })
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
    pub fn spawn_with<H: Send + 'static>(self, spawn: impl FnOnce(Task) -> H) {
        let keeper = self.raw.keeper();
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
        self.get_mut().raw.poll(cx)
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
