//! Back from a thread into the runtime: [`run`] and [`run_sync`] from a thread that
//! [`to_thread::run_sync`](crate::to_thread::run_sync) started, [`check_cancelled`]
//! there, and blocking portals ([`BlockingPortal`]) for any thread (anyio's
//! `from_thread`).
//!
//! # Calls from a worker thread
//!
//! A closure running under `to_thread::run_sync` is sync code on a plain thread. To await
//! something it calls [`run`], which runs the future on the runtime and blocks the thread
//! until it returns. The future runs in the task that waits for the thread, inline in its
//! poll: in that caller's scopes, so its deadlines and cancellation apply, and
//! [`current_effective_deadline`](crate::current_effective_deadline), nurseries and
//! every hatchery function work as they do there.
//!
//! ```
//! use std::time::Duration;
//! use hatchery::{from_thread, to_thread};
//!
//! # hatchery_smol::run(async {
//! let (tx, rx) = hatchery::memory_stream(16);
//! let sent = to_thread::run_sync(move || {
//!     for line in ["a", "b", "c"] {
//!         // Blocking work, then an async call in the caller's scope.
//!         std::thread::sleep(Duration::from_millis(1));
//!         let tx = tx.clone();
//!         from_thread::run(async move { tx.send(line).await }).unwrap().unwrap();
//!     }
//!     3
//! })
//! .await;
//! assert_eq!(sent, 3);
//! assert_eq!(rx.try_recv(), Ok("a"));
//! # });
//! ```
//!
//! # Cancellation
//!
//! When the caller's scope is cancelled, a call in flight is cancelled as the code around
//! the caller is (at its next suspension point, after what it shields), and [`run`]
//! returns [`FromThreadError::Cancelled`]; so does every later call, and
//! [`check_cancelled`], which a long computation can poll to stop early. By default the
//! caller's scope waits for the thread to end (see
//! [`to_thread`](crate::to_thread#cancellation)), so a thread that checks ends the wait
//! sooner.
//!
//! # Portals
//!
//! A thread that no runtime started (a callback of a C library, a sync framework's
//! worker) reaches async code through a [`BlockingPortal`]: a handle, `Clone`, `Send` and
//! `Sync`, that runs futures on a runtime for any thread and blocks it until they return.
//! Open one in async code with [`blocking_portal`], and hand it to the threads; or start
//! one with a runtime of its own on a background thread from sync code, with an
//! adapter's `start_blocking_portal` (`hatchery_tokio::start_blocking_portal()`,
//! `hatchery_smol::start_blocking_portal()`, both built on [`start_blocking_portal`]).
//!
//! # Coming from anyio and tokio
//!
//! | anyio, tokio | hatchery |
//! |---|---|
//! | `anyio.from_thread.run(f, *args)` | `from_thread::run(f(args))` |
//! | `anyio.from_thread.run_sync(f, *args)` | `from_thread::run_sync(move \|\| f(args))` |
//! | `anyio.from_thread.check_cancelled()` | `from_thread::check_cancelled()?` |
//! | `async with BlockingPortal() as portal:` | `blocking_portal(\|portal\| async move { .. }).await` |
//! | `with start_blocking_portal() as portal:` | `let rt = hatchery_tokio::start_blocking_portal(); let portal = rt.portal();` (`rt.stop()` or its drop at the end) |
//! | `portal.call(f, *args)` | `portal.call(f(args))?` |
//! | `portal.start_task_soon(f, *args)` | `portal.spawn(f(args))?`, a [`PortalTask`] to `join` or `cancel` |
//! | `portal.stop(cancel_remaining=True)` | `portal.stop()` |
//! | `tokio::runtime::Handle::block_on(fut)` from a blocking thread | `from_thread::run(fut)` (in the caller's scope), or `portal.call(fut)` |

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::{block_on, current_caller, in_async_code, Call, Caller, Failed, Reply, ReplySender};
use crate::scope::CancelScope;
use crate::values::WithContext;

pub use super::portal::{
    blocking_portal, start_blocking_portal, BlockingPortal, PortalError, PortalRuntime, PortalTask,
    ServePortal,
};

/// Runs `fut` on the runtime, in the scope of the task that started this thread with
/// [`to_thread::run_sync`](crate::to_thread::run_sync), and blocks this thread until it
/// returns its output (anyio's `from_thread.run`).
///
/// The future is polled by the waiting task, inline: it runs under that task's cancel
/// scopes and deadlines, and sees its runtime, clock and effective deadline. Nurseries
/// opened in it spawn on that runtime.
///
/// # Cancel safety
///
/// This is a blocking call, not a future. If the caller's scope is cancelled while `fut`
/// runs, `fut` is cancelled as the code around the caller is: dropped at its next
/// suspension point (once what it shields has finished), and `run` returns
/// [`FromThreadError::Cancelled`]. A call made once the scope is cancelled runs `fut` up
/// to its first suspension point, like a task spawned into a cancelled nursery (rule
/// C2), then returns the same error.
///
/// # Panics
///
/// A panic in `fut` is resumed on this thread (and from there, if not caught, in the
/// caller of `run_sync`).
///
/// # Errors
///
/// * [`FromThreadError::Cancelled`]: the caller's scope was cancelled (before or during
///   the call), or the caller stopped waiting for this thread (with
///   [`abandon_on_cancel`](crate::futures::RunSync::abandon_on_cancel), or dropped).
/// * [`FromThreadError::InAsyncCode`]: called from async code inside hatchery, where it
///   would block an executor thread.
/// * [`FromThreadError::NotAWorkerThread`]: called from a thread that `to_thread` did not
///   start (use a [`BlockingPortal`] there).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{from_thread, to_thread};
///
/// # hatchery_smol::run(async {
/// let waited = to_thread::run_sync(|| {
///     // hatchery's async functions, from a plain thread:
///     from_thread::run(async {
///         let start = hatchery::now();
///         hatchery::sleep(Duration::from_millis(2)).await;
///         hatchery::now() - start
///     })
/// })
/// .await
/// .unwrap();
/// assert!(waited >= Duration::from_millis(2));
///
/// // Not from a thread that hatchery did not start, nor from async code:
/// let plain = std::thread::spawn(|| from_thread::run(async {})).join().unwrap();
/// assert_eq!(plain, Err(from_thread::FromThreadError::NotAWorkerThread));
/// assert_eq!(from_thread::run(async {}), Err(from_thread::FromThreadError::InAsyncCode));
/// # });
/// ```
pub fn run<F>(fut: F) -> Result<F::Output, FromThreadError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    call(|sender| {
        // A scope of its own: when the caller's is cancelled, this one drops `fut` (and so
        // the sender, which replies `Cancelled`) once nothing inside holds it, and stays
        // pending; the waiting task then lets go of it.
        let scope = CancelScope::new().run(async move { sender.send(fut.await) });
        async move {
            let _ = scope.await;
        }
    })
}

/// Runs the sync closure `f` on the runtime, in the task that started this thread with
/// [`to_thread::run_sync`](crate::to_thread::run_sync), and blocks this thread until it
/// returns (anyio's `from_thread.run_sync`).
///
/// `f` runs inline in that task's poll, in its context: it can use what needs a runtime
/// without awaiting (the clock, [`current_effective_deadline`](crate::current_effective_deadline),
/// [`Nursery::try_spawn`](crate::Nursery::try_spawn), the `try_` methods of the
/// [`sync`](crate::sync) primitives). Keep it short: it holds up that task.
///
/// # Cancel safety
///
/// This is a blocking call, not a future. Sync code is not interrupted: `f` runs even if
/// the caller's scope is cancelled by then (rule C1), as long as the caller still
/// waits for this thread.
///
/// # Panics
///
/// A panic in `f` is resumed on this thread.
///
/// # Errors
///
/// As [`run`]: [`FromThreadError::Cancelled`] if the caller no longer waits for this
/// thread (abandoned, or dropped), and the errors for the wrong thread.
///
/// # Examples
///
/// ```
/// use hatchery::{from_thread, to_thread, Deadline};
///
/// # hatchery_smol::run(async {
/// let deadline = to_thread::run_sync(|| {
///     from_thread::run_sync(hatchery::current_effective_deadline).unwrap()
/// })
/// .await;
/// assert_eq!(deadline, Deadline::Never); // the caller's
/// # });
/// ```
pub fn run_sync<F, T>(f: F) -> Result<T, FromThreadError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    call(|sender| async move { sender.send(f()) })
}

/// Whether the task that started this thread with
/// [`to_thread::run_sync`](crate::to_thread::run_sync) has been cancelled: `Ok(())` if
/// not (anyio's `from_thread.check_cancelled`).
///
/// Blocking work that takes long can call it between steps and return early: a cancelled
/// caller waits for its thread to end.
///
/// # Errors
///
/// [`FromThreadError::Cancelled`] if the caller's scope is cancelled or the caller no
/// longer waits for this thread; [`FromThreadError::InAsyncCode`] or
/// [`FromThreadError::NotAWorkerThread`] as for [`run`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{from_thread, to_thread, CancelScope};
///
/// # hatchery_smol::run(async {
/// let scope = CancelScope::new();
/// let handle = scope.handle();
/// let out = scope
///     .run(to_thread::run_sync(move || {
///         assert_eq!(from_thread::check_cancelled(), Ok(()));
///         handle.cancel();
///         from_thread::check_cancelled()
///     }))
///     .await;
/// assert_eq!(out, None); // the scope waited for the thread, then caught
/// # });
/// ```
pub fn check_cancelled() -> Result<(), FromThreadError> {
    if worker()?.link().is_cancelled() {
        Err(FromThreadError::Cancelled)
    } else {
        Ok(())
    }
}

/// The link of the `to_thread` work this thread runs, or why there is none.
fn worker() -> Result<Arc<dyn Caller>, FromThreadError> {
    if in_async_code() {
        return Err(FromThreadError::InAsyncCode);
    }
    current_caller().ok_or(FromThreadError::NotAWorkerThread)
}

/// Submits the future `make` builds around the reply's sender to the waiting task of this
/// thread, and blocks until the reply is filled.
fn call<T, Fut>(make: impl FnOnce(ReplySender<T>) -> Fut) -> Result<T, FromThreadError>
where
    T: Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let caller = worker()?;
    let reply = Arc::new(Reply::new());
    let call = Call {
        // Run with this thread's context values (rule V3).
        fut: Box::pin(WithContext::here(make(ReplySender(reply.clone())))),
        reply: reply.clone(),
    };
    // A closed link gives the call back, dropped here, outside its lock.
    if caller.link().submit(call).is_err() {
        return Err(FromThreadError::Cancelled);
    }
    match block_on(reply.wait()) {
        Ok(v) => Ok(v),
        Err(Failed::Cancelled) => Err(FromThreadError::Cancelled),
        Err(Failed::Panicked(p)) => std::panic::resume_unwind(p),
    }
}

/// Why a call back into the runtime ([`run`], [`run_sync`], [`check_cancelled`]) failed.
///
/// # Examples
///
/// ```
/// use hatchery::from_thread::{self, FromThreadError};
///
/// let err = from_thread::check_cancelled().unwrap_err();
/// assert_eq!(err, FromThreadError::NotAWorkerThread);
/// assert_eq!(
///     err.to_string(),
///     "not on a thread started by `to_thread::run_sync` (use a `BlockingPortal`)"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FromThreadError {
    /// The scope of the task that started this thread was cancelled, or that task no
    /// longer waits for the thread.
    Cancelled,
    /// Called from async code inside hatchery, where blocking would hold up an executor
    /// thread: `.await` the future instead.
    InAsyncCode,
    /// Called from a thread that [`to_thread::run_sync`](crate::to_thread::run_sync)
    /// (or [`run_blocking`](crate::run_blocking)) did not start: there is no waiting
    /// task to run the call. A [`BlockingPortal`] serves any thread.
    NotAWorkerThread,
}

impl fmt::Display for FromThreadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FromThreadError::Cancelled => "the task that started this thread was cancelled",
            FromThreadError::InAsyncCode => {
                "called from async code, where it would block an executor thread (use `.await`)"
            }
            FromThreadError::NotAWorkerThread => {
                "not on a thread started by `to_thread::run_sync` (use a `BlockingPortal`)"
            }
        })
    }
}

impl std::error::Error for FromThreadError {}
