//! Runs [hatchery] structured concurrency on the [tokio] runtime.
//!
//! Call [`run`] from `main` to build a multi-threaded runtime and run your root future in
//! it; [`run_current_thread`] uses a single-threaded runtime instead, and [`run_local`]
//! one with a `LocalSet`, for [`Local`](hatchery::Local) children that need not be
//! `Send` (built with `--cfg tokio_unstable`, `run_local_runtime` runs them on tokio's
//! `LocalRuntime`). In an application
//! that already runs tokio (`#[tokio::main]`), wrap the root future once with [`enter`].
//!
//! ```
//! use std::time::Duration;
//!
//! fn main() -> anyhow::Result<()> {
//!     hatchery_tokio::run(async {
//!         let out = hatchery::move_on_after(Duration::from_millis(5), std::future::pending::<()>()).await;
//!         assert_eq!(out, None);
//!         Ok(())
//!     })
//! }
//! ```
//!
//! Time goes through tokio's clock (`tokio::time`), so a paused tokio clock
//! (`tokio::time::pause`) applies to hatchery's deadlines too.
//!
//! I/O goes through tokio's reactor: [`hatchery::net`]'s sockets are registered with it
//! as `tokio::net`'s are (`tokio::io::unix::AsyncFd`), on Unix. On Windows tokio offers
//! no readiness API for sockets, so [`TokioRuntime`] has no reactor there, and opening a
//! socket fails with an error that says so: use `hatchery-smol`, or a runtime that wraps
//! `TokioRuntime` and returns `hatchery_smol::AsyncIoReactor` as its reactor.

#![forbid(unsafe_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use hatchery::from_thread::PortalRuntime;
use hatchery::futures::Enter;
use hatchery::rt::{Reactor, Runtime, Sleep, Task};
use tokio::runtime::RuntimeFlavor;

#[cfg(unix)]
mod reactor;

/// The [`Runtime`] implementation for a tokio runtime, identified by its handle.
///
/// Its [`now`](Runtime::now) is tokio's `Instant::now()`: with a paused clock
/// (`tokio::time::pause`, tokio's `test-util` feature), that is the clock of the tokio
/// runtime the calling thread is in, which for hatchery's own calls (from tasks and roots
/// that the runtime polls) is this one. Reading it from elsewhere, or polling a root bound
/// to a paused runtime outside it, reads another clock. Entering the runtime on every
/// read would cost every timeout on the hot path, for a case only tests can make.
///
/// [`run`], [`run_with`] and [`enter`] make one for you; use it directly to bind
/// hatchery with [`hatchery::rt::enter`] or [`hatchery::rt::enter_root`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use hatchery::rt::{self, Runtime};
/// use hatchery_tokio::TokioRuntime;
///
/// let tokio_rt = tokio::runtime::Builder::new_multi_thread()
///     .enable_all()
///     .build()
///     .unwrap();
/// let runtime: Arc<dyn Runtime> = Arc::new(TokioRuntime::new(tokio_rt.handle().clone()));
/// // What `run_with` does: a root of its own, its children spawned on `tokio_rt`.
/// let out = tokio_rt.block_on(rt::enter_root(runtime, hatchery::nursery(|n| async move {
///     let h = n.spawn(async { Ok::<_, std::io::Error>(6 * 7) });
///     Ok(h.join().await?)
/// })));
/// assert_eq!(out.unwrap(), 42);
/// ```
#[derive(Debug, Clone)]
pub struct TokioRuntime {
    handle: tokio::runtime::Handle,
    /// Whether tasks may finish on another thread than the one that spawned them.
    multi_thread: bool,
}

impl TokioRuntime {
    /// Binds hatchery to the runtime behind `handle`.
    ///
    /// The runtime must have tokio's timers enabled (`enable_time`, or `enable_all`):
    /// without them, the first hatchery timer panics, with tokio's message that says so.
    /// Likewise its I/O (`enable_io`) for [`hatchery::net`]'s sockets: without it, the
    /// first socket opened panics, with tokio's message.
    /// On a current-thread runtime, the nurseries' children run only while a thread is
    /// in its `block_on` (as in the example); a nursery waits for them meanwhile.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use hatchery::rt;
    /// use hatchery_tokio::TokioRuntime;
    ///
    /// let tokio_rt = tokio::runtime::Builder::new_current_thread()
    ///     .enable_time() // hatchery's deadlines use tokio's timers
    ///     .build()
    ///     .unwrap();
    /// let runtime = Arc::new(TokioRuntime::new(tokio_rt.handle().clone()));
    /// let out = tokio_rt.block_on(rt::enter_root(
    ///     runtime,
    ///     hatchery::move_on_after(Duration::from_millis(1), std::future::pending::<()>()),
    /// ));
    /// assert_eq!(out, None);
    /// ```
    pub fn new(handle: tokio::runtime::Handle) -> Self {
        let multi_thread = !matches!(handle.runtime_flavor(), RuntimeFlavor::CurrentThread);
        TokioRuntime {
            handle,
            multi_thread,
        }
    }

    /// Binds hatchery to the tokio runtime this is called from.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use hatchery::rt;
    /// use hatchery_tokio::TokioRuntime;
    ///
    /// # let mut builder = tokio::runtime::Builder::new_current_thread();
    /// # let tokio_rt = builder.enable_all().build().unwrap();
    /// # tokio_rt.block_on(async {
    /// // In a task of a running tokio runtime (what `hatchery_tokio::enter` does):
    /// let runtime = Arc::new(TokioRuntime::current());
    /// let out = rt::enter(runtime, hatchery::run_blocking(|| 2 + 2)).await;
    /// assert_eq!(out, 4);
    /// # });
    /// ```
    pub fn current() -> Self {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => TokioRuntime::new(handle),
            Err(_) => panic!(
                "hatchery_tokio: no tokio runtime here (on this thread); call \
                 `hatchery_tokio::enter` inside `#[tokio::main]` or a tokio task, or use \
                 `hatchery_tokio::run` to build one. (Code that already runs on hatchery, \
                 on another executor, needs no `enter`.)"
            ),
        }
    }
}

impl Runtime for TokioRuntime {
    fn spawn(&self, task: Task) {
        if self.multi_thread {
            // The `JoinHandle` is kept with hatchery's state of the task, so that tokio's
            // task is freed where hatchery frees its own: usually on the thread that
            // allocated both (see `Task::spawn_with`).
            task.spawn_with(|task| self.handle.spawn(task));
        } else {
            // On one thread nothing is freed across threads: detach at once.
            drop(self.handle.spawn(task));
        }
    }

    fn now(&self) -> Instant {
        // Polls run inside the runtime's context, so a paused clock is honoured.
        tokio::time::Instant::now().into_std()
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        let _guard = self.handle.enter();
        Box::pin(TokioSleep {
            inner: tokio::time::sleep_until(deadline.into()),
        })
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        drop(self.handle.spawn_blocking(work));
    }

    fn budget_spent(&self) -> bool {
        !tokio::task::coop::has_budget_remaining()
    }

    /// `"tokio"`, for both flavors (`Handle::runtime_flavor` tells them apart).
    fn name(&self) -> &'static str {
        "tokio"
    }

    /// tokio's reactor on Unix (see [`reactor`](Runtime::reactor)); none on Windows.
    fn reactor(&self) -> Option<&dyn Reactor> {
        #[cfg(unix)]
        return Some(self);
        #[cfg(not(unix))]
        return None;
    }
}

pin_project_lite::pin_project! {
    /// A tokio timer behind hatchery's [`Sleep`] trait.
    struct TokioSleep {
        #[pin]
        inner: tokio::time::Sleep,
    }
}

impl Future for TokioSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Once the budget is spent, without it: a scope polls its timer after its body, so
        // a body that spends the budget in every poll (draining a busy channel) would
        // keep the deadline from ever being seen (tokio's own `timeout` does the same).
        let inner = self.project().inner;
        if tokio::task::coop::has_budget_remaining() {
            inner.poll(cx)
        } else {
            std::pin::pin!(tokio::task::unconstrained(inner)).poll(cx)
        }
    }
}

impl Sleep for TokioSleep {
    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        self.project().inner.reset(deadline.into());
    }
}

/// Builds a multi-threaded tokio runtime (one worker per core), runs `fut` in it as the
/// root of a hatchery task tree, and returns its output.
///
/// When `run` returns, every task of the tree has finished: nurseries wait for their
/// children. The exception is a nursery the root dropped from outside (C8): its children
/// were cancelled but not awaited, and are dropped as the runtime shuts down, on its
/// threads, possibly just after `run` has returned. Blocking work that a cancelled
/// [`run_blocking`](hatchery::run_blocking) left running is not waited for either.
///
/// Called from hatchery code on another executor (a sync function that runs its async
/// code this way), `fut` is still a root of its own ([`hatchery::rt::enter_root`]): the
/// calling task is blocked meanwhile, so its scope's cancellation does not reach `fut`.
///
/// # Panics
///
/// If `fut` panics (after its nurseries have finished, as always), with its payload.
/// Inside a tokio runtime, with tokio's "Cannot start a runtime from within a runtime":
/// use [`enter`] there.
///
/// # Examples
///
/// ```
/// use hatchery::nursery;
///
/// // The children run on the runtime's worker threads; `run` returns once both are done.
/// let sum = hatchery_tokio::run(nursery(|n| async move {
///     let a = n.spawn(async { Ok::<_, std::io::Error>((1..=10u64).sum::<u64>()) });
///     let b = n.spawn(async { Ok((11..=20u64).sum::<u64>()) });
///     Ok(a.join().await? + b.join().await?)
/// }));
/// assert_eq!(sum.unwrap(), 210);
/// ```
pub fn run<F: Future>(fut: F) -> F::Output {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    run_with(builder, fut)
}

/// Like [`run`], on a single-threaded (current-thread) tokio runtime: every task runs on
/// the calling thread.
///
/// # Panics
///
/// As [`run`]: if `fut` panics, with its payload, and inside a tokio runtime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{move_on_after, sleep};
///
/// // Every task and timer runs on the calling thread.
/// let out = hatchery_tokio::run_current_thread(move_on_after(
///     Duration::from_millis(5),
///     sleep(Duration::from_secs(3600)),
/// ));
/// assert_eq!(out, None); // gave up after 5 ms
/// ```
pub fn run_current_thread<F: Future>(fut: F) -> F::Output {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    run_with(builder, fut)
}

/// Like [`run_current_thread`], with a tokio `LocalSet` on the calling thread as its
/// local runtime: the children of a [`Local`](hatchery::Local) nursery are its tasks,
/// and need not be `Send`. For a `LocalSet` you run yourself, install [`TokioLocal`]
/// with [`hatchery::rt::enter_local`].
///
/// # Panics
///
/// As [`run`].
///
/// # Examples
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use hatchery::{Local, Nursery};
///
/// let hits = Rc::new(Cell::new(0)); // per-thread state, no lock
/// let h = hits.clone();
/// hatchery_tokio::run_local(Local::nursery(|n: Nursery<std::io::Error, Local>| async move {
///     for _ in 0..3 {
///         let h = h.clone();
///         n.spawn(async move { h.set(h.get() + 1); Ok(()) });
///     }
///     Ok(())
/// }))
/// .unwrap();
/// assert_eq!(hits.get(), 3);
/// ```
pub fn run_local<F: Future>(fut: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("hatchery_tokio: cannot build a tokio runtime: {e}"));
    let runtime = Arc::new(TokioRuntime::new(rt.handle().clone()));
    let local = tokio::task::LocalSet::new();
    let entered = hatchery::rt::enter_local(std::rc::Rc::new(TokioLocal));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        local.block_on(&rt, hatchery::rt::enter_root(runtime, fut))
    }));
    // As `run_with`: what is left is dropped, not waited for.
    drop((local, entered));
    rt.shutdown_background();
    out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Like [`run_local`], on tokio's `LocalRuntime` instead of a current-thread runtime with
/// a `LocalSet`: the children of a [`Local`](hatchery::Local) nursery are tasks of the
/// runtime itself (`tokio::task::spawn_local` without a `LocalSet`). tokio offers
/// `LocalRuntime` only when built with `--cfg tokio_unstable`, and so does this function.
///
/// # Panics
///
/// As [`run`].
///
/// # Examples
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use hatchery::{Local, Nursery};
///
/// let seen = Rc::new(RefCell::new(Vec::new())); // per-thread state, no lock
/// let s = seen.clone();
/// hatchery_tokio::run_local_runtime(Local::nursery(|n: Nursery<(), Local>| async move {
///     for i in 0..3 {
///         let s = s.clone();
///         n.spawn(async move { s.borrow_mut().push(i); Ok(()) });
///     }
///     Ok(())
/// }))
/// .unwrap();
/// assert_eq!(seen.borrow().len(), 3);
/// ```
#[cfg(tokio_unstable)]
pub fn run_local_runtime<F: Future>(fut: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build_local(tokio::runtime::LocalOptions::default())
        .unwrap_or_else(|e| panic!("hatchery_tokio: cannot build a tokio runtime: {e}"));
    let runtime = Arc::new(TokioRuntime::new(rt.handle().clone()));
    let entered = hatchery::rt::enter_local(std::rc::Rc::new(TokioLocal));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(hatchery::rt::enter_root(runtime, fut))
    }));
    // As `run_with`: what is left is dropped, not waited for.
    drop(entered);
    rt.shutdown_background();
    out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The local face of tokio ([`hatchery::rt::LocalRuntime`]): spawns a
/// [`Local`](hatchery::Local) nursery's children with `tokio::task::spawn_local`, on the
/// `LocalSet` that runs the spawning code (or, built with `--cfg tokio_unstable`, the
/// `LocalRuntime` that does: `run_local_runtime`). [`run_local`] installs it; install it
/// yourself for a `LocalSet` you run.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use hatchery::{Local, Nursery};
/// use hatchery_tokio::TokioLocal;
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// let local = tokio::task::LocalSet::new();
/// let _entered = hatchery::rt::enter_local(Rc::new(TokioLocal));
/// let text = Rc::new("not Send".to_string());
/// let len = local.block_on(&rt, async {
///     // `enter` inside the runtime: it binds the tokio runtime it runs on.
///     let work = Local::nursery(|n: Nursery<(), Local>| async move {
///         let t = text.clone();
///         Ok(n.spawn(async move { Ok(t.len()) }).join().await.unwrap())
///     });
///     hatchery_tokio::enter(work).await
/// });
/// assert_eq!(len, Ok(8));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioLocal;

impl hatchery::rt::LocalRuntime for TokioLocal {
    fn spawn_local(&self, task: hatchery::rt::LocalTask) {
        drop(tokio::task::spawn_local(task));
    }
}

/// Like [`run`], on a runtime built from your own tokio `builder` (remember
/// `enable_time`, or `enable_all`).
///
/// # Panics
///
/// If the runtime cannot be built. A runtime built without tokio's timers (no
/// `enable_time`) fails at the first hatchery timer, with tokio's panic that says so.
/// As [`run`]: if `fut` panics, with its payload, and inside a tokio runtime, with
/// tokio's "Cannot start a runtime from within a runtime".
///
/// # Examples
///
/// ```
/// let mut builder = tokio::runtime::Builder::new_multi_thread();
/// builder.worker_threads(2).thread_name("worker").enable_all();
/// let name = hatchery_tokio::run_with(builder, hatchery::nursery(|n| async move {
///     let h = n.spawn(async {
///         Ok::<_, std::io::Error>(std::thread::current().name().map(String::from))
///     });
///     Ok(h.join().await?)
/// }));
/// assert_eq!(name.unwrap().as_deref(), Some("worker")); // children run on the workers
/// ```
pub fn run_with<F: Future>(mut builder: tokio::runtime::Builder, fut: F) -> F::Output {
    let rt = builder
        .build()
        .unwrap_or_else(|e| panic!("hatchery_tokio: cannot build a tokio runtime: {e}"));
    let runtime = Arc::new(TokioRuntime::new(rt.handle().clone()));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(hatchery::rt::enter_root(runtime, fut))
    }));
    // Every hatchery task has finished by now, except children of a nursery the root
    // dropped from outside, which the shutdown drops, and blocking work whose waiter was
    // cancelled (`hatchery::run_blocking`): don't wait for that, not even to resume a
    // panic.
    rt.shutdown_background();
    out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Makes `fut` a hatchery root inside a tokio runtime that is already running: the one
/// line to add to a `#[tokio::main]` application.
///
/// Inside hatchery code already, it makes no new root: `fut` runs in the enclosing scope,
/// with this runtime (see [`hatchery::rt::enter`]). So do not block on it there
/// (`block_in_place(|| handle.block_on(enter(fut)))`): once that scope is cancelled, `fut`
/// stops for good, and the scope cannot drop it while its own task is blocked. From sync
/// code in a hatchery task, block on another thread instead:
/// `run_blocking(move || handle.block_on(hatchery_tokio::enter(fut)))`.
///
/// # Cancel safety
///
/// As a root (awaited in plain tokio code), nothing inside hatchery can cancel `fut`;
/// wrap it in a [`CancelScope`](hatchery::CancelScope) for a cancellable root. Dropping
/// the returned future, which is what `tokio::select!`, `tokio::time::timeout` and
/// `JoinHandle::abort` do, drops `fut` from outside hatchery (C8): everything in it is
/// cancelled at once, and the children of its nurseries are cancelled **without being
/// awaited**. Each stops at its next suspension point, possibly after the drop has
/// returned, and their errors and panics are not reported. Put the timeout inside:
/// `enter(move_on_after(t, app()))`, not `timeout(t, enter(app()))`.
///
/// Inside hatchery code already, it is `fut` itself, in the enclosing scope: a
/// cancellation of that scope cancels `fut` as it does the code around it, and this
/// future completes only if `fut` does (see [`hatchery::rt::enter`]).
///
/// # Panics
///
/// When called outside a tokio runtime: it finds the runtime when called, not when
/// polled. With a runtime of your own, call it inside: `rt.block_on(async {
/// hatchery_tokio::enter(app()).await })`, not `rt.block_on(hatchery_tokio::enter(app()))`.
///
/// # Examples
///
/// ```
/// # fn main() {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(tokio_main());
/// # }
/// // #[tokio::main]
/// async fn tokio_main() {
///     let out = hatchery_tokio::enter(hatchery::nursery(|n| async move {
///         let h = n.spawn(async { Ok::<_, std::io::Error>(7) });
///         h.join().await.map_err(std::io::Error::other)
///     }))
///     .await;
///     assert_eq!(out.unwrap(), 7);
/// }
/// ```
pub fn enter<F: Future>(fut: F) -> Enter<F> {
    hatchery::rt::enter(Arc::new(TokioRuntime::current()), fut)
}

/// Starts a [`BlockingPortal`](hatchery::from_thread::BlockingPortal) with a runtime of
/// its own ([`run`]'s) on a background thread, for sync code to call async code through
/// (anyio's `start_blocking_portal`). The semantics are
/// [`hatchery::from_thread::start_blocking_portal`]'s: this passes it [`run`].
///
/// The returned [`PortalRuntime`] owns the thread: its `stop` (or its drop) cancels what
/// runs in the portal and waits for the runtime to end. Clones of its `portal()` go to
/// any thread.
///
/// # Panics
///
/// If the thread cannot be spawned, or [`run`] panics before the portal serves.
///
/// # Examples
///
/// ```
/// // Sync code, with no runtime of its own:
/// let rt = hatchery_tokio::start_blocking_portal();
/// let portal = rt.portal().clone();
/// let worker = std::thread::spawn(move || {
///     portal.call(async {
///         hatchery::sleep(std::time::Duration::from_millis(1)).await;
///         "slept on the portal's runtime"
///     })
/// });
/// assert_eq!(worker.join().unwrap(), Ok("slept on the portal's runtime"));
/// rt.stop();
/// ```
pub fn start_blocking_portal() -> PortalRuntime {
    hatchery::from_thread::start_blocking_portal(run)
}
