//! Blocking portals: sync code on any thread runs futures on a hatchery runtime.
//!
//! A portal serves its calls in a nursery of its own (the *serving nursery*), each call
//! a task of it, spawned from the calling thread (a nursery takes spawns from any
//! thread). Stopping the portal cancels that nursery; a portal opened with
//! [`blocking_portal`] stops taking calls when its body returns, and waits for those in
//! flight.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use super::{block_on, catch_panic, in_async_code, lock, Panic};
use crate::child::TaskHandle;
use crate::nursery::{nursery, Nursery, TaskStatus};
use crate::sync::Event;
use crate::values::{self, Installed, Values, WithContext};

/// Where a portal is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
enum Phase {
    /// Its serving nursery is not open yet (a background portal's runtime starts).
    #[default]
    Starting,
    /// It takes calls.
    Serving,
    /// It takes no more calls: stopped, or its serving nursery has gone.
    Stopped,
}

/// What a portal's handles and its serving nursery share.
#[derive(Default)]
struct Shared {
    /// The serving nursery, once open.
    calls: OnceLock<Nursery<Infallible>>,
    phase: Mutex<Phase>,
    /// Signalled when the phase leaves `Starting`.
    started: Condvar,
    /// Stopped: no new calls (read without the lock on the fast path).
    stopped: AtomicBool,
    /// Ends the serving nursery's body.
    close: Event,
    /// The context values where the portal serves, for the tasks of threads that have
    /// none (rule V3).
    values: OnceLock<Values>,
}

impl Shared {
    fn set_phase(&self, phase: Phase) {
        let mut p = lock(&self.phase);
        // Stopped is final.
        if *p != Phase::Stopped {
            *p = phase;
        }
        drop(p);
        self.started.notify_all();
    }

    /// No new calls; with `cancel`, everything running in the portal is cancelled, else
    /// it runs to its end.
    fn stop(&self, cancel: bool) {
        self.stopped.store(true, Ordering::SeqCst);
        self.set_phase(Phase::Stopped);
        self.close.set();
        if let Some(calls) = self.calls.get().filter(|_| cancel) {
            calls.cancel();
        }
    }

    /// Waits until the portal serves (or has stopped); whether it serves.
    fn wait_started(&self) -> bool {
        let mut p = lock(&self.phase);
        while *p == Phase::Starting {
            p = self.started.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        *p == Phase::Serving
    }
}

/// Stops the portal when its serving nursery goes, however it goes (cancelled from
/// outside, or a runtime that dropped it).
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop(true);
    }
}

/// Opens the serving nursery, reports it through `ready`, and serves until the portal
/// stops.
async fn serve(shared: Arc<Shared>, ready: Option<TaskStatus<()>>) {
    let _stop = StopOnDrop(shared.clone());
    // Cancelled by `stop`, the nursery returns its own cancellation: nothing to report.
    let _ = nursery(|calls: Nursery<Infallible>| async move {
        let _ = shared.calls.set(calls.clone());
        if let Some(values) = values::current() {
            let _ = shared.values.set(values);
        }
        if shared.stopped.load(Ordering::SeqCst) {
            // Stopped before it started.
            calls.cancel();
        }
        shared.set_phase(Phase::Serving);
        if let Some(ready) = ready {
            ready.started(());
        }
        shared.close.wait().await;
        Ok(())
    })
    .await;
}

/// A handle that sync code on any thread uses to run futures on a hatchery runtime and
/// get their results (anyio's `BlockingPortal`): [`call`](BlockingPortal::call) blocks
/// until a future returns, [`spawn`](BlockingPortal::spawn) starts one as a task of the
/// portal, and [`stop`](BlockingPortal::stop) cancels what runs in it.
///
/// Cheap to clone, `Send` and `Sync`: hand clones to as many threads as need it. Get one
/// from [`blocking_portal`] in async code, or from an adapter's `start_blocking_portal`
/// (a runtime of its own on a background thread, see [`start_blocking_portal`]).
///
/// Every call runs as a task of the portal's own nursery: in parallel with the others,
/// under the portal's scope (the scope `blocking_portal` was called in, or the
/// background runtime's root). A panic in one is resumed in the thread that waits for
/// it, and does not stop the portal.
///
/// # Examples
///
/// ```
/// use hatchery::from_thread::blocking_portal;
///
/// # hatchery_smol::run(async {
/// let sum = blocking_portal(|portal| async move {
///     // Plain threads, started by a sync library say, call async code through it.
///     let threads: Vec<_> = (0..4u64)
///         .map(|i| {
///             let portal = portal.clone();
///             std::thread::spawn(move || {
///                 portal.call(async move {
///                     hatchery::checkpoint().await;
///                     i * 10
///                 })
///             })
///         })
///         .collect();
///     // The body waits for them off the executor thread.
///     hatchery::run_blocking(move || threads.into_iter().map(|t| t.join().unwrap().unwrap()).sum::<u64>())
///         .await
/// })
/// .await;
/// assert_eq!(sum, 60);
/// # });
/// ```
#[derive(Clone)]
pub struct BlockingPortal {
    shared: Arc<Shared>,
}

impl BlockingPortal {
    /// Runs `fut` as a task of the portal and blocks this thread until it returns its
    /// output (anyio's `portal.call`).
    ///
    /// # Cancel safety
    ///
    /// This is a blocking call, not a future. If the portal stops meanwhile
    /// ([`stop`](BlockingPortal::stop), or the scope around it is cancelled), `fut` is
    /// cancelled at its next suspension point and this returns
    /// [`PortalError::Stopped`].
    ///
    /// # Panics
    ///
    /// A panic in `fut` is resumed here (the portal goes on).
    ///
    /// # Errors
    ///
    /// * [`PortalError::Stopped`]: the portal had stopped, or stopped before `fut`
    ///   returned.
    /// * [`PortalError::InAsyncCode`]: called from async code inside hatchery (a task of
    ///   the portal's own runtime, say), where blocking would hold up an executor thread,
    ///   or wait for itself: `.await` the future there instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::from_thread::blocking_portal;
    ///
    /// # hatchery_smol::run(async {
    /// blocking_portal(|portal| async move {
    ///     let slept = hatchery::run_blocking(move || {
    ///         portal.call(async {
    ///             hatchery::sleep(Duration::from_millis(1)).await;
    ///             "slept"
    ///         })
    ///     })
    ///     .await;
    ///     assert_eq!(slept, Ok("slept"));
    /// })
    /// .await;
    /// # });
    /// ```
    pub fn call<F>(&self, fut: F) -> Result<F::Output, PortalError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if in_async_code() {
            return Err(PortalError::InAsyncCode);
        }
        self.spawn(fut)?.wait()
    }

    /// Starts `fut` as a task of the portal and returns at once, with a [`PortalTask`]
    /// to wait for its output or cancel it (anyio's `portal.start_task_soon`).
    ///
    /// Unlike [`call`](BlockingPortal::call), this does not block: async code may call
    /// it too. The task sees the calling thread's [context values](crate::ContextKey),
    /// or, where it has none, those where the portal serves (rule V3).
    ///
    /// # Errors
    ///
    /// [`PortalError::Stopped`] if the portal has stopped (`fut` is dropped unpolled).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::from_thread::{blocking_portal, PortalError};
    ///
    /// # hatchery_smol::run(async {
    /// blocking_portal(|portal| async move {
    ///     let forever = portal.spawn(hatchery::sleep(Duration::from_secs(3600))).unwrap();
    ///     let quick = portal.spawn(async { 7 }).unwrap();
    ///     forever.cancel(); // just that task
    ///     let (a, b) = hatchery::run_blocking(move || (forever.join(), quick.join())).await;
    ///     assert_eq!(a, Err(PortalError::Cancelled));
    ///     assert_eq!(b, Ok(7));
    /// })
    /// .await;
    /// # });
    /// ```
    pub fn spawn<F>(&self, fut: F) -> Result<PortalTask<F::Output>, PortalError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if self.shared.stopped.load(Ordering::SeqCst) || !self.shared.wait_started() {
            return Err(PortalError::Stopped);
        }
        let calls = self
            .shared
            .calls
            .get()
            .expect("a serving portal has its nursery");
        if calls.is_cancelled() {
            // Stopping: `stop`, or the scope around the portal is cancelled.
            return Err(PortalError::Stopped);
        }
        // The task runs with the calling thread's values, or the portal's (rule V3).
        let mut values = values::current().or_else(|| self.shared.values.get().cloned());
        let installed = Installed::new(&mut values);
        // The task returns its panic rather than panicking: one call's panic must not
        // cancel the others (rule N3 would).
        let spawned = calls.try_spawn(async move { Ok(catch_panic(fut).await) });
        drop(installed);
        match spawned {
            Ok(handle) => Ok(PortalTask {
                handle,
                cancelled: AtomicBool::new(false),
            }),
            Err(_) => Err(PortalError::Stopped),
        }
    }

    /// Stops the portal: it takes no more calls, and every task running in it is
    /// cancelled (anyio's `portal.stop(cancel_remaining=True)`). Returns at once; the
    /// calls waiting for those tasks return [`PortalError::Stopped`] once they have
    /// ended. Idempotent, and callable from any thread or task.
    ///
    /// A portal opened with [`blocking_portal`] stops taking calls when its body returns
    /// (waiting for those in flight): call `stop` at the end of the body to cancel them
    /// instead. A background portal ([`PortalRuntime`]) stops with
    /// [`PortalRuntime::stop`], which also waits for its runtime to end.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::from_thread::{blocking_portal, PortalError};
    ///
    /// # hatchery_smol::run(async {
    /// blocking_portal(|portal| async move {
    ///     portal.stop();
    ///     assert!(portal.is_stopped());
    ///     let late = hatchery::run_blocking(move || portal.call(async { 1 })).await;
    ///     assert_eq!(late, Err(PortalError::Stopped));
    /// })
    /// .await;
    /// # });
    /// ```
    pub fn stop(&self) {
        self.shared.stop(true);
    }

    /// Whether the portal has stopped taking calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::from_thread::blocking_portal;
    ///
    /// # hatchery_smol::run(async {
    /// let kept = blocking_portal(|portal| async move {
    ///     assert!(!portal.is_stopped());
    ///     portal
    /// })
    /// .await;
    /// assert!(kept.is_stopped()); // once its body has returned
    /// # });
    /// ```
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for BlockingPortal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingPortal")
            .field("phase", &*lock(&self.shared.phase))
            .finish()
    }
}

/// A task started in a portal with [`BlockingPortal::spawn`]: wait for its output with
/// [`join`](PortalTask::join), or [`cancel`](PortalTask::cancel) it. Dropping it does not
/// cancel the task (rule N7).
///
/// # Examples
///
/// ```
/// use hatchery::from_thread::{blocking_portal, PortalTask};
///
/// # hatchery_smol::run(async {
/// blocking_portal(|portal| async move {
///     let task: PortalTask<u32> = portal.spawn(async { 6 * 7 }).unwrap();
///     assert_eq!(hatchery::run_blocking(move || task.join()).await, Ok(42));
/// })
/// .await;
/// # });
/// ```
pub struct PortalTask<T> {
    handle: TaskHandle<Result<T, Panic>>,
    /// This handle's `cancel` was called.
    cancelled: AtomicBool,
}

impl<T> PortalTask<T> {
    /// Blocks this thread until the task returns, and returns its output.
    ///
    /// # Panics
    ///
    /// A panic in the task is resumed here.
    ///
    /// # Errors
    ///
    /// * [`PortalError::Cancelled`]: this handle's [`cancel`](PortalTask::cancel) ended
    ///   the task before it returned.
    /// * [`PortalError::Stopped`]: the portal stopped before the task returned.
    /// * [`PortalError::InAsyncCode`]: called from async code inside hatchery.
    ///
    /// # Examples
    ///
    /// See [`PortalTask`].
    pub fn join(self) -> Result<T, PortalError> {
        if in_async_code() {
            return Err(PortalError::InAsyncCode);
        }
        self.wait()
    }

    /// [`join`](PortalTask::join), the caller checked the thread.
    fn wait(self) -> Result<T, PortalError> {
        match block_on(self.handle.join()) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) if self.cancelled.load(Ordering::SeqCst) => Err(PortalError::Cancelled),
            Err(_) => Err(PortalError::Stopped),
        }
    }

    /// Cancels the task (not the portal): it stops at its next suspension point, and
    /// [`join`](PortalTask::join) returns [`PortalError::Cancelled`] unless it had
    /// returned already. Callable from any thread or task.
    ///
    /// # Examples
    ///
    /// See [`BlockingPortal::spawn`].
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.handle.cancel();
    }

    /// Whether the task has finished (returned, panicked, or been cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::from_thread::blocking_portal;
    ///
    /// # hatchery_smol::run(async {
    /// blocking_portal(|portal| async move {
    ///     let task = portal.spawn(async {}).unwrap();
    ///     while !task.is_finished() {
    ///         hatchery::checkpoint().await;
    ///     }
    /// })
    /// .await;
    /// # });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

impl<T> fmt::Debug for PortalTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortalTask")
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

/// Opens a [`BlockingPortal`] for the duration of `body`, in the current scope, and
/// returns `body`'s output (anyio's `async with BlockingPortal() as portal`).
///
/// Hand the portal to threads; their calls run as tasks of the portal, under the scope
/// that `blocking_portal` runs in. When `body` returns, the portal stops taking calls
/// and waits for those in flight and the tasks it runs (as a nursery waits for its
/// children, rule N1); to cancel them instead, call [`BlockingPortal::stop`] at the end
/// of `body`.
///
/// # Cancel safety
///
/// If the enclosing scope is cancelled, `body` and every task of the portal are
/// cancelled and awaited, the portal stops, and the calls in flight return
/// [`PortalError::Stopped`]. Dropping the future from outside hatchery drops `body` and
/// cancels the portal's tasks without waiting for them (rule C8).
///
/// # Panics
///
/// When first polled outside a hatchery runtime. A panic in `body` is resumed once the
/// portal's tasks have finished (rule N3); a panic in a call is resumed in the thread
/// that made it.
///
/// # Examples
///
/// ```
/// use hatchery::from_thread::blocking_portal;
///
/// # hatchery_smol::run(async {
/// let answer = blocking_portal(|portal| async move {
///     // A sync callback, called on a thread of a library's own:
///     let callback = move |x: u32| portal.call(async move { x * 2 }).unwrap();
///     hatchery::run_blocking(move || callback(21)).await
/// })
/// .await;
/// assert_eq!(answer, 42);
/// # });
/// ```
pub async fn blocking_portal<F, Fut>(body: F) -> Fut::Output
where
    F: FnOnce(BlockingPortal) -> Fut,
    Fut: Future,
{
    let shared = Arc::new(Shared::default());
    let portal = BlockingPortal {
        shared: shared.clone(),
    };
    let out = nursery(|n: Nursery<Infallible>| async move {
        let serving = shared.clone();
        n.start(|ready| async move {
            serve(serving, Some(ready)).await;
            Ok(())
        })
        .await
        .unwrap_or_else(|_| unreachable!("hatchery: internal error: a portal that never served"));
        let out = body(portal).await;
        // No more calls; those in flight run to their end.
        shared.stop(false);
        Ok(out)
    })
    .await;
    // Never cancelled by hand, and no task of it returns an error.
    out.unwrap_or_else(|_| unreachable!("hatchery: internal error: a portal's nursery failed"))
}

/// The future that serves a background portal, for the runtime of
/// [`start_blocking_portal`] to run as its root: it returns once the portal has stopped
/// and its tasks have finished.
///
/// # Cancel safety
///
/// Dropped before it returns, it drops the portal's nursery from outside (rule C8): the
/// portal stops, its tasks are cancelled without being awaited, and the calls waiting for
/// them return [`PortalError::Stopped`]. A runtime runs it as a root, which no scope
/// cancels; [`BlockingPortal::stop`] is the way to end it.
///
/// # Examples
///
/// See [`start_blocking_portal`].
#[must_use = "futures do nothing unless polled"]
pub struct ServePortal {
    fut: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Future for ServePortal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.fut.as_mut().poll(cx)
    }
}

impl fmt::Debug for ServePortal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServePortal").finish_non_exhaustive()
    }
}

/// Starts a [`BlockingPortal`] with a runtime of its own on a new background thread, for
/// sync code (anyio's `start_blocking_portal`); the adapters' `start_blocking_portal`
/// functions call this with their `run`.
///
/// `run` is called on the new thread with the future that serves the portal, and must
/// run it to completion as the root of a hatchery runtime (an adapter's `run` does).
/// This returns once the portal serves, with a [`PortalRuntime`], which owns the thread:
/// [`PortalRuntime::stop`] (or dropping it) stops the portal and waits for the runtime
/// to end. The portal's handles ([`PortalRuntime::portal`]) can be cloned and handed to
/// any thread.
///
/// # Panics
///
/// If the thread cannot be spawned; if `run` panics before the portal serves (a runtime
/// that cannot be built, say), with its panic; if `run` returns without running the
/// portal.
///
/// # Examples
///
/// ```
/// use hatchery::from_thread::start_blocking_portal;
///
/// // In sync code (`hatchery_smol::start_blocking_portal()` is this line):
/// let rt = start_blocking_portal(|serve| hatchery_smol::run(serve));
/// let portal = rt.portal().clone();
/// let n = portal.call(async { hatchery::checkpoint().await; 6 * 7 }).unwrap();
/// assert_eq!(n, 42);
/// rt.stop(); // cancels what still runs, and waits for the runtime to end
/// assert!(portal.call(async {}).is_err());
/// ```
pub fn start_blocking_portal<R>(run: R) -> PortalRuntime
where
    R: FnOnce(ServePortal) + Send + 'static,
{
    let shared = Arc::new(Shared::default());
    let serve = ServePortal {
        fut: Box::pin(WithContext::here(serve(shared.clone(), None))),
    };
    // Stops the portal if `run` never polled the future (or dropped it, or panicked):
    // the starter, and callers, are not left waiting.
    let unserved = StopOnDrop(shared.clone());
    let thread = std::thread::Builder::new()
        .name("hatchery-portal".to_owned())
        .spawn(move || {
            let _unserved = unserved;
            run(serve);
        })
        .unwrap_or_else(|e| panic!("hatchery: cannot spawn a blocking portal's thread: {e}"));
    if !shared.wait_started() {
        match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!(
                "hatchery: the runtime given to `start_blocking_portal` returned without \
                 running the portal"
            ),
        }
    }
    PortalRuntime {
        portal: BlockingPortal { shared },
        thread: Some(thread),
    }
}

/// A [`BlockingPortal`] with a runtime of its own on a background thread, made by
/// [`start_blocking_portal`] (and the adapters' `start_blocking_portal`).
///
/// It owns the thread: [`stop`](PortalRuntime::stop) stops the portal (cancelling what
/// runs in it) and waits for the runtime to end; dropping it does the same.
///
/// # Examples
///
/// ```
/// use hatchery::from_thread::{start_blocking_portal, PortalRuntime};
///
/// let rt: PortalRuntime = start_blocking_portal(|serve| hatchery_tokio::run(serve));
/// assert_eq!(rt.portal().call(async { 1 + 1 }), Ok(2));
/// drop(rt); // stops it, and waits for its runtime to end
/// ```
pub struct PortalRuntime {
    portal: BlockingPortal,
    thread: Option<JoinHandle<()>>,
}

impl PortalRuntime {
    /// The portal, to call through or to clone for other threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = hatchery::from_thread::start_blocking_portal(|serve| hatchery_smol::run(serve));
    /// let portal = rt.portal().clone();
    /// let worker = std::thread::spawn(move || portal.call(async { "from a thread" }));
    /// assert_eq!(worker.join().unwrap(), Ok("from a thread"));
    /// ```
    pub fn portal(&self) -> &BlockingPortal {
        &self.portal
    }

    /// Stops the portal (see [`BlockingPortal::stop`]) and waits for its runtime to end:
    /// when this returns, every task of the portal has finished.
    ///
    /// # Panics
    ///
    /// If the runtime's thread panicked, with its panic. Called from async code inside
    /// hatchery it would block an executor thread, so it does not wait there: the portal
    /// stops, and its thread ends by itself.
    ///
    /// # Examples
    ///
    /// See [`start_blocking_portal`].
    pub fn stop(mut self) {
        if let Err(panic) = self.end() {
            std::panic::resume_unwind(panic);
        }
    }

    /// Stops the portal, and joins its thread unless that would block async code or wait
    /// for itself.
    fn end(&mut self) -> std::thread::Result<()> {
        self.portal.stop();
        match self.thread.take() {
            Some(t) if t.thread().id() != std::thread::current().id() && !in_async_code() => {
                t.join()
            }
            _ => Ok(()),
        }
    }
}

impl Drop for PortalRuntime {
    fn drop(&mut self) {
        // A panic of the runtime is not resumed in a drop.
        let _ = self.end();
    }
}

impl fmt::Debug for PortalRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortalRuntime")
            .field("portal", &self.portal)
            .finish_non_exhaustive()
    }
}

/// Why a [`BlockingPortal`] call failed.
///
/// # Examples
///
/// ```
/// use hatchery::from_thread::PortalError;
///
/// assert_eq!(PortalError::Stopped.to_string(), "the blocking portal has stopped");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PortalError {
    /// The portal has stopped (or stopped before the call's task returned, which it
    /// cancelled).
    Stopped,
    /// The task was cancelled through its [`PortalTask::cancel`].
    Cancelled,
    /// A blocking call from async code inside hatchery, where it would hold up an
    /// executor thread (or wait for itself, on the portal's own runtime): `.await` there
    /// instead.
    InAsyncCode,
}

impl fmt::Display for PortalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortalError::Stopped => "the blocking portal has stopped",
            PortalError::Cancelled => "the portal's task was cancelled",
            PortalError::InAsyncCode => {
                "a blocking portal call from async code, where it would block an executor \
                 thread (use `.await`)"
            }
        })
    }
}

impl std::error::Error for PortalError {}
