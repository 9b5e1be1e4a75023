//! The blocking work of `hatchery::fs`: [`Job`]s on the runtime's blocking pool under
//! the file limiter, awaited at once by the path operations ([`run`]) and kept in
//! flight between polls by a [`File`](super::File) or a [`ReadDir`](super::ReadDir).
//!
//! # Invariants
//!
//! 1. **A job holds its scope.** A job started from a hatchery task holds the scope it
//!    was started in (a [`Hold`], as `to_thread::run_sync` does) until its work has
//!    returned: a cancelled scope waits for it (rule X2), whether or not anyone polls the
//!    job. The hold is dropped on the worker thread, after the result is stored, so
//!    that a job whose future was dropped from outside does not keep the scope for good.
//! 2. **A token per job.** A job runs with a token of the file limiter, taken before
//!    its work is handed to the pool and returned when the work has returned (rule X1).
//! 3. **Threads bounded by the limiter.** A job's work runs on the runtime binding's file
//!    pool (`thread::pool`), whose threads take one job after another and number at
//!    most the limiter's tokens; only a dropped file's last write (which takes no token)
//!    gets a thread of its own.
//! 4. **The runtime of the code that polls.** An operation starts its work on the
//!    runtime of the code that polls it, whichever opened the file; outside any hatchery
//!    runtime, an operation that must start a system call panics with the message that
//!    says what to do (one that the buffer serves needs none).
//! 5. **The runtime's own file system.** On a runtime with a file system of its own
//!    (`Runtime::file_system`), a job's work runs where that file system says
//!    (`FileSystem::spawn`) and works on it ([`Sys::Runtime`]), under the same token and
//!    hold (invariants 1 and 2, kept until the result is handed over); elsewhere on the
//!    pool, on the system's files ([`Sys::System`]).

use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;

use crate::context;
use crate::node::Hold;
use crate::seam::{FileSystem, FsDone, FsWork, Runtime};
use crate::sync::{CapacityToken, LimiterAcquireOwned};
use crate::thread::limiter::{self, Kind, Limits};

/// The runtime of the code being polled, if any, with its file limiter and pool.
pub(super) fn current_ctx() -> Option<(Arc<dyn Runtime>, Arc<Limits>)> {
    let rt = context::with_current(|c| c.map(|c| c.rt.clone()))?;
    let limits = limiter::limits_of(&rt, Kind::Files);
    Some((rt, limits))
}

/// The panic of a file operation that must start a system call outside any hatchery
/// runtime (invariant 4).
pub(super) fn no_runtime() -> ! {
    panic!(
        "hatchery::fs: a file operation must start a system call, and no hatchery runtime \
         runs the code that polls it (a `File` runs its system calls on the runtime of the \
         code that uses it, whichever opened it). {}",
        context::NO_RUNTIME
    )
}

/// The file system a job's work runs on (invariant 5).
#[derive(Clone, Copy)]
pub(super) enum Sys<'a> {
    /// The operating system's, on a worker thread.
    System,
    /// The runtime's own, where it runs the work; and the runtime's name.
    Runtime(&'a dyn FileSystem, &'static str),
}

/// What a runtime's own file system does not have: `what` ("symlinks", "permissions").
pub(super) fn unsupported(what: &str, runtime: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "hatchery::fs: the runtime (`{runtime}`) has a file system of its own, which has no \
             {what}"
        ),
    )
}

/// Runs the path operation `f` on a worker thread under the file limiter, or on the
/// runtime's own file system (invariant 5): rules X1 and X2 (a checkpoint first; then a
/// cancelled scope waits for the call, as for `to_thread::run_sync`, and drops its
/// value, rule W1).
///
/// # Panics
///
/// When polled outside a hatchery runtime.
pub(super) async fn run<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce(Sys<'_>) -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let mut worker = Worker::current();
    let mut f = Some(f);
    let mut job: Option<Job<io::Result<T>>> = None;
    let mut caught = false;
    std::future::poll_fn(move |cx| {
        if caught {
            return Poll::Pending; // the scope drops us
        }
        let job = match &mut job {
            Some(job) => job,
            None => {
                if context::current_cancelled() {
                    return Poll::Pending; // X1: nothing started
                }
                let token = std::task::ready!(worker.poll_token(cx));
                let f = f.take().expect("started once");
                job.insert(worker.start(token, f))
            }
        };
        // The job holds the scope until its call has returned (invariant 1).
        let r = std::task::ready!(job.poll(cx)).and_then(|r| r);
        if context::current_cancelled() {
            // A hatchery wait does not complete in a cancelled scope (W1): the value
            // (an opened file: X3) is dropped here.
            caught = true;
            drop(r);
            return Poll::Pending;
        }
        Poll::Ready(r)
    })
    .await
}

/// A path's error with the path and what was done to it: the system's kind, and the
/// system's error as its source.
#[derive(Debug)]
struct PathError {
    op: &'static str,
    path: Box<Path>,
    source: io::Error,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`: {}", self.op, self.path.display(), self.source)
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// `e`, of the same kind, with a message that names `op` and `path` (rule X9).
pub(super) fn with_path(e: io::Error, op: &'static str, path: &Path) -> io::Error {
    io::Error::new(
        e.kind(),
        PathError {
            op,
            path: path.into(),
            source: e,
        },
    )
}

/// What a [`Job`]'s work left.
enum Slot<T> {
    Running,
    Done(std::thread::Result<T>),
    /// The runtime dropped the work without running it (it has shut down).
    Dropped,
    Taken,
}

struct Shared<T> {
    slot: Mutex<Slot<T>>,
    waker: AtomicWaker,
}

impl<T> Shared<T> {
    fn finish(&self, slot: Slot<T>) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = slot;
        self.waker.wake();
    }
}

/// Blocking work in flight, started by [`Worker::poll_start`].
pub(super) struct Job<T> {
    shared: Arc<Shared<T>>,
}

/// The work handed to the pool: fills the slot when it has run, or with `Dropped` if
/// the runtime drops it unrun.
struct Work<T, F> {
    f: Option<F>,
    token: Option<CapacityToken>,
    hold: Option<Hold>,
    shared: Arc<Shared<T>>,
}

impl<T, F> Drop for Work<T, F> {
    fn drop(&mut self) {
        if self.f.take().is_some() {
            self.token.take();
            self.shared.finish(Slot::Dropped);
        }
        // Invariant 1: after the result is stored.
        self.hold.take();
    }
}

/// Where a job's work runs (invariants 3 and 5).
pub(super) enum Place<'a> {
    /// The runtime binding's file pool.
    Pool(&'a Limits),
    /// A thread of its own (a dropped file's last write).
    Thread,
    /// The runtime's own file system.
    Own(&'a dyn FileSystem),
}

/// Why a job came to nothing.
pub(super) fn runtime_gone() -> io::Error {
    io::Error::other(
        "hatchery::fs: the runtime dropped a file operation without running it (has it shut down?)",
    )
}

impl<T: Send + 'static> Job<T> {
    /// Hands `f` to `rt`'s file pool, a thread of its own or the runtime's own file
    /// system, as `place` says, with what it keeps until it has run (invariants 2, 3
    /// and 5).
    pub(super) fn spawn_with<F>(
        rt: &dyn Runtime,
        place: Place<'_>,
        token: Option<CapacityToken>,
        hold: Option<Hold>,
        f: F,
    ) -> Job<T>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot::Running),
            waker: AtomicWaker::new(),
        });
        let mut work = Work {
            f: Some(f),
            token,
            hold,
            shared: shared.clone(),
        };
        if let Place::Own(fs) = place {
            // Invariant 5: the calls now, the result when the file system drops `done`.
            fs.spawn(FsWork::new(move || {
                let f = work.f.take().expect("a job runs once");
                let r = catch_unwind(AssertUnwindSafe(f));
                FsDone::new(move || {
                    work.token.take();
                    work.shared.finish(Slot::Done(r));
                })
            }));
            return Job { shared };
        }
        let run = Box::new(move || {
            let f = work.f.take().expect("a job runs once");
            let r = catch_unwind(AssertUnwindSafe(f));
            // Invariant 2: the token goes back when the work has returned.
            work.token.take();
            work.shared.finish(Slot::Done(r));
            // `work`'s drop releases the hold (invariant 1).
        });
        match place {
            Place::Pool(limits) => limits.pool.submit(rt, limits.limiter.total_tokens(), run),
            _ => rt.spawn_blocking(run),
        }
        Job { shared }
    }

    /// The work's value once it has returned (a panic of it is resumed here). It does
    /// not check for cancellation: its callers do.
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        self.shared.waker.register(cx.waker());
        let mut slot = self.shared.slot.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Running => {
                *slot = Slot::Running;
                Poll::Pending
            }
            Slot::Done(Ok(v)) => Poll::Ready(Ok(v)),
            Slot::Done(Err(panic)) => {
                drop(slot);
                std::panic::resume_unwind(panic)
            }
            Slot::Dropped => Poll::Ready(Err(runtime_gone())),
            Slot::Taken => panic!("hatchery: internal error: a file job polled after it returned"),
        }
    }
}

/// What a [`File`](super::File) or [`ReadDir`](super::ReadDir) needs to start jobs: its
/// runtime and file limiter, looked up at its first job, and a wait for a token that
/// outlives a dropped operation (the next one takes it over).
#[derive(Default)]
pub(super) struct Worker {
    ctx: Option<(Arc<dyn Runtime>, Arc<Limits>)>,
    acquire: Option<Pin<Box<LimiterAcquireOwned>>>,
}

impl Worker {
    /// A worker of the runtime of the code being polled, if any.
    pub(super) fn current() -> Worker {
        let ctx = current_ctx();
        Worker { ctx, acquire: None }
    }

    /// A token of the file limiter (invariant 2); `Pending` while waiting for one, and
    /// in a cancelled scope (a wait left pending is taken over by the next call).
    ///
    /// # Panics
    ///
    /// Outside a hatchery runtime (invariant 4).
    pub(super) fn poll_token(&mut self, cx: &mut Context<'_>) -> Poll<CapacityToken> {
        self.ctx();
        if self.acquire.is_none() {
            let limiter = &self.ctx.as_ref().expect("looked up above").1.limiter;
            if let Some(token) = limiter.try_acquire() {
                return Poll::Ready(token);
            }
            self.acquire = Some(Box::pin(limiter.acquire_owned()));
        }
        let acquire = self.acquire.as_mut().expect("made above if none");
        // A hatchery wait: pending in a cancelled scope, taking nothing.
        let token = std::task::ready!(acquire.as_mut().poll(cx));
        self.acquire = None;
        Poll::Ready(token)
    }

    /// Hands `f` to the pool, or to the runtime's own file system (invariant 5), with
    /// `token`, holding the current scope (invariants 1 to 3).
    pub(super) fn start<T, F>(&mut self, token: CapacityToken, f: F) -> Job<T>
    where
        T: Send + 'static,
        F: FnOnce(Sys<'_>) -> T + Send + 'static,
    {
        let hold = context::with_current(|c| c.map(|c| Hold::new(c.node)));
        let (rt, limits) = self.ctx();
        match rt.file_system() {
            Some(fs) => {
                let runtime = rt.clone();
                let f = move || {
                    let fs = runtime
                        .file_system()
                        .expect("the runtime's own file system");
                    f(Sys::Runtime(fs, runtime.name()))
                };
                Job::spawn_with(&**rt, Place::Own(fs), Some(token), hold, f)
            }
            None => Job::spawn_with(&**rt, Place::Pool(limits), Some(token), hold, || {
                f(Sys::System)
            }),
        }
    }

    /// The runtime of the code being polled and its file limits, looked up again if it
    /// is not the one of the last operation (invariant 4): a wait for a token of another
    /// runtime's limiter is dropped.
    ///
    /// # Panics
    ///
    /// Outside a hatchery runtime.
    fn ctx(&mut self) -> &(Arc<dyn Runtime>, Arc<Limits>) {
        let same = context::with_current(|c| {
            let c = c?;
            Some(
                self.ctx
                    .as_ref()
                    .is_some_and(|(rt, _)| std::ptr::addr_eq(Arc::as_ptr(rt), Arc::as_ptr(c.rt))),
            )
        });
        match same {
            None => no_runtime(),
            Some(true) => {}
            Some(false) => {
                self.acquire = None;
                self.ctx = Some(current_ctx().expect("a runtime, looked at above"));
            }
        }
        self.ctx.as_ref().expect("set above")
    }
}
