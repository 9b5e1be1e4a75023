//! Runs [hatchery] structured concurrency on smol's executor
//! ([`async_executor`]) with [`async_io`] timers.
//!
//! Call [`run`] from `main`: it runs your root future on the calling thread and one
//! executor thread per further core, so spawned tasks run in parallel.
//! [`run_current_thread`] keeps everything on the calling thread. In an application that
//! already runs a smol executor, wrap the root future once with [`enter`].
//!
//! I/O goes through async-io's reactor: [`hatchery::net`]'s sockets are registered with
//! it as `async-net`'s are (`async_io::Async`). That reactor, [`AsyncIoReactor`], works
//! on any executor: a runtime binding of your own can use it too.
//!
//! ```
//! use std::time::Duration;
//!
//! fn main() -> anyhow::Result<()> {
//!     hatchery_smol::run(async {
//!         let out = hatchery::move_on_after(Duration::from_millis(5), std::future::pending::<()>()).await;
//!         assert_eq!(out, None);
//!         Ok(())
//!     })
//! }
//! ```

#![forbid(unsafe_code)]

use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak as RcWeak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use async_executor::{Executor, LocalExecutor};
use async_io::Timer;
use event_listener::Event;
use hatchery::from_thread::PortalRuntime;
use hatchery::futures::Enter;
use hatchery::rt::{Reactor, Runtime, Sleep, Task};

mod reactor;

pub use reactor::AsyncIoReactor;

/// The [`Runtime`] implementation for a smol executor.
///
/// It does not keep the executor alive: hatchery's tasks hold their runtime, and the
/// executor holds the tasks, so a strong reference would be a cycle that kept a dropped
/// executor and every task left in it (their futures never dropped) alive for good.
/// Once the application has dropped the executor, its tasks are dropped with it, and a
/// task spawned after that is dropped at once, which hatchery counts as cancelled.
///
/// [`run`], [`run_with_threads`] and [`enter`] make one for you; use it directly to bind
/// hatchery with [`hatchery::rt::enter`] or [`hatchery::rt::enter_root`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use hatchery::rt::{self, Runtime};
/// use hatchery_smol::SmolRuntime;
///
/// let ex = Arc::new(async_executor::Executor::new());
/// let runtime: Arc<dyn Runtime> = Arc::new(SmolRuntime::new(&ex));
/// // A root of its own, its children spawned on `ex`, which `ex.run` runs meanwhile.
/// let root = rt::enter_root(runtime, hatchery::nursery(|n| async move {
///     let h = n.spawn(async { Ok::<_, std::io::Error>(6 * 7) });
///     Ok(h.join().await?)
/// }));
/// let out = async_io::block_on(ex.run(root));
/// assert_eq!(out.unwrap(), 42);
/// ```
#[derive(Debug, Clone)]
pub struct SmolRuntime {
    executor: Weak<Executor<'static>>,
}

impl SmolRuntime {
    /// Binds hatchery to `executor`: tasks are spawned on it, so something must run it
    /// (`executor.run(..)` on one or more threads), and keep it (see [`SmolRuntime`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use hatchery::rt;
    /// use hatchery_smol::SmolRuntime;
    ///
    /// let ex = Arc::new(async_executor::Executor::new());
    /// let runtime = Arc::new(SmolRuntime::new(&ex));
    /// // `ex.run` polls the root and runs the tasks it spawns.
    /// let root = rt::enter_root(runtime, hatchery::run_blocking(|| 2 + 2));
    /// let out = async_io::block_on(ex.run(root));
    /// assert_eq!(out, 4);
    /// ```
    pub fn new(executor: &Arc<Executor<'static>>) -> Self {
        SmolRuntime {
            executor: Arc::downgrade(executor),
        }
    }
}

impl Runtime for SmolRuntime {
    fn spawn(&self, task: Task) {
        // Detached at once, not kept with `Task::spawn_with` as on tokio's multi-thread
        // runtime: on smol's executor keeping the handle is slower (the benchmark's
        // spawn_join and spawn_handles rows).
        if let Some(executor) = self.executor.upgrade() {
            executor.spawn(task).detach();
        }
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(SmolSleep {
            timer: Timer::at(deadline),
        })
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        blocking::unblock(work).detach();
    }

    /// `"smol"`.
    fn name(&self) -> &'static str {
        "smol"
    }

    /// async-io's reactor, [`AsyncIoReactor`].
    fn reactor(&self) -> Option<&dyn Reactor> {
        Some(&AsyncIoReactor)
    }
}

/// An `async-io` timer behind hatchery's [`Sleep`] trait.
struct SmolSleep {
    timer: Timer,
}

impl Future for SmolSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.timer).poll(cx).map(drop)
    }
}

impl Sleep for SmolSleep {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.timer.set_at(deadline);
    }
}

/// Runs `fut` as the root of a hatchery task tree on a new executor with one thread per
/// core (the calling thread included), and returns its output.
///
/// When `run` returns, every task of the tree has finished (nurseries wait for their
/// children) or been dropped: the children of a nursery the root dropped from outside
/// (C8), cancelled but not awaited, are dropped with the executor before `run` returns.
/// Blocking work that a cancelled [`run_blocking`](hatchery::run_blocking) left running
/// is not waited for.
///
/// Called from hatchery code (a sync function that runs its async code this way), `fut`
/// is still a root of its own ([`hatchery::rt::enter_root`]): the calling task is
/// blocked meanwhile, so its scope's cancellation does not reach `fut`.
///
/// # Panics
///
/// If `fut` panics (after its nurseries have finished, as always), with its payload.
///
/// # Examples
///
/// ```
/// use hatchery::nursery;
///
/// // The children may run on any executor thread; `run` returns once both are done.
/// let sum = hatchery_smol::run(nursery(|n| async move {
///     let a = n.spawn(async { Ok::<_, std::io::Error>((1..=10u64).sum::<u64>()) });
///     let b = n.spawn(async { Ok((11..=20u64).sum::<u64>()) });
///     Ok(a.join().await? + b.join().await?)
/// }));
/// assert_eq!(sum.unwrap(), 210);
/// ```
pub fn run<F: Future>(fut: F) -> F::Output {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    run_with_threads(threads, fut)
}

/// Like [`run`], with every task on the calling thread.
///
/// # Panics
///
/// If `fut` panics (after its nurseries have finished, as always), with its payload.
///
/// # Examples
///
/// ```
/// let here = std::thread::current().id();
/// let there = hatchery_smol::run_current_thread(hatchery::nursery(|n| async move {
///     let h = n.spawn(async { Ok::<_, std::io::Error>(std::thread::current().id()) });
///     Ok(h.join().await?)
/// }));
/// assert_eq!(there.unwrap(), here); // the child ran on the calling thread
/// ```
pub fn run_current_thread<F: Future>(fut: F) -> F::Output {
    run_with_threads(1, fut)
}

/// Like [`run_current_thread`], with a smol `LocalExecutor` on the calling thread as its
/// local runtime: the children of a [`Local`](hatchery::Local) nursery are its tasks,
/// and need not be `Send`. For a `LocalExecutor` you run yourself, install a
/// [`SmolLocal`] with [`hatchery::rt::enter_local`].
///
/// # Panics
///
/// As [`run_current_thread`].
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
/// hatchery_smol::run_local(Local::nursery(|n: Nursery<std::io::Error, Local>| async move {
///     for i in 0..3 {
///         let s = s.clone();
///         n.spawn(async move { s.borrow_mut().push(i); Ok(()) });
///     }
///     Ok(())
/// }))
/// .unwrap();
/// assert_eq!(seen.borrow().len(), 3);
/// ```
pub fn run_local<F: Future>(fut: F) -> F::Output {
    let executor = Arc::new(Executor::new());
    let local = Rc::new(LocalExecutor::new());
    let entered = enter_local(&local);
    let runtime = Arc::new(SmolRuntime::new(&executor));
    let root = hatchery::rt::enter_root(runtime, fut);
    let out = async_io::block_on(executor.run(local.run(root)));
    drop((local, entered));
    out
}

/// Makes `executor` this thread's local runtime until the returned guard is dropped:
/// the children of every [`Local`](hatchery::Local) nursery spawned on this thread
/// meanwhile are its tasks. For a `LocalExecutor` you run yourself (on this thread, with
/// `executor.run(..)`), inside a runtime of your choice; [`run_local`] makes one, and
/// runs it, for you. It is `hatchery::rt::enter_local(Rc::new(SmolLocal::new(executor)))`.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use hatchery::{Local, Nursery};
///
/// let local = Rc::new(async_executor::LocalExecutor::new());
/// let _entered = hatchery_smol::enter_local(&local);
/// let text = Rc::new("not Send".to_string());
/// let len = hatchery_smol::run_current_thread(local.run(Local::nursery(
///     |n: Nursery<(), Local>| async move {
///         let t = text.clone();
///         Ok(n.spawn(async move { Ok(t.len()) }).join().await.unwrap())
///     },
/// )));
/// assert_eq!(len, Ok(8));
/// ```
pub fn enter_local(executor: &Rc<LocalExecutor<'static>>) -> hatchery::rt::LocalEntered {
    hatchery::rt::enter_local(Rc::new(SmolLocal::new(executor)))
}

/// The local face of smol ([`hatchery::rt::LocalRuntime`]): spawns a
/// [`Local`](hatchery::Local) nursery's children on a `LocalExecutor`. [`run_local`]
/// installs one, [`enter_local`] one for a `LocalExecutor` you run; or install it
/// yourself, with [`hatchery::rt::enter_local`], beside a face of your own.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use hatchery::rt::LocalRuntime;
/// use hatchery_smol::SmolLocal;
///
/// let local = Rc::new(async_executor::LocalExecutor::new());
/// let face: Rc<dyn LocalRuntime> = Rc::new(SmolLocal::new(&local));
/// let _entered = hatchery::rt::enter_local(face); // what `enter_local(&local)` does
/// ```
#[derive(Debug)]
pub struct SmolLocal {
    executor: RcWeak<LocalExecutor<'static>>,
}

impl SmolLocal {
    /// The local face of `executor`, which must be run on this thread
    /// (`executor.run(..)`) while its tasks are to make progress. It holds the executor
    /// weakly: once the executor is gone, a spawn drops the task (a cancelled child).
    pub fn new(executor: &Rc<LocalExecutor<'static>>) -> SmolLocal {
        SmolLocal {
            executor: Rc::downgrade(executor),
        }
    }
}

impl hatchery::rt::LocalRuntime for SmolLocal {
    fn spawn_local(&self, task: hatchery::rt::LocalTask) {
        if let Some(executor) = self.executor.upgrade() {
            executor.spawn(task).detach();
        }
    }
}

/// Like [`run`], with `threads` executor threads in all (the calling thread counts as
/// one; `0` is taken as `1`).
///
/// # Panics
///
/// If `fut` panics (after its nurseries have finished, as always), with its payload; the
/// executor threads are stopped and joined first. If an executor thread cannot be
/// spawned.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{map, sleep};
///
/// // Two executor threads; at most 4 of the inputs in flight at a time.
/// let lens = hatchery_smol::run_with_threads(2, map(4, ["a", "bb", "ccc"], |s| async move {
///     sleep(Duration::from_millis(1)).await;
///     s.len()
/// }).join());
/// assert_eq!(lens, [1, 2, 3]);
/// ```
pub fn run_with_threads<F: Future>(threads: usize, fut: F) -> F::Output {
    let executor = Arc::new(Executor::new());
    // Stop the workers even if the root future panics, or a worker cannot be spawned.
    struct StopOnDrop(Arc<Stop>, Vec<std::thread::JoinHandle<()>>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.stop();
            for w in self.1.drain(..) {
                let _ = w.join();
            }
        }
    }
    let mut workers = StopOnDrop(Arc::new(Stop::default()), Vec::new());
    for i in 1..threads.max(1) {
        let (executor, stop) = (executor.clone(), workers.0.clone());
        let worker = std::thread::Builder::new()
            .name(format!("hatchery-smol-{i}"))
            .spawn(move || async_io::block_on(executor.run(stop.wait())))
            .expect("hatchery_smol: cannot spawn an executor thread");
        workers.1.push(worker);
    }
    let runtime = Arc::new(SmolRuntime::new(&executor));
    async_io::block_on(executor.run(hatchery::rt::enter_root(runtime, fut)))
}

/// Makes `fut` a hatchery root whose tasks are spawned on `executor`: the one line to add
/// to an application that already runs a smol executor.
///
/// `executor` must be running (`executor.run(..)` on this thread or others, as in the
/// example): the nurseries' children are spawned on it, and on an executor that nobody
/// runs they never start, so a nursery waits for them for good. (On smol's global
/// executor, which has no handle, make one for hatchery and run it where you await:
/// `ex.run(enter(&ex, fut)).await`.)
///
/// Inside hatchery code already, it makes no new root: `fut` runs in the enclosing scope,
/// with this runtime (see [`hatchery::rt::enter`]). So do not block on it there
/// (`block_on(executor.run(enter(..)))` in a hatchery task): once that scope is
/// cancelled, `fut` stops for good, and the scope cannot drop it while its own task is
/// blocked. Use [`run_current_thread`], which is always a root, or block on another
/// thread ([`run_blocking`](hatchery::run_blocking)).
///
/// # Cancel safety
///
/// As a root (awaited outside hatchery), nothing inside hatchery can cancel `fut`; wrap
/// it in a [`CancelScope`](hatchery::CancelScope) for a cancellable root. Dropping the
/// returned future (a `select`, a foreign timeout, a dropped smol `Task`) drops `fut`
/// from outside hatchery (C8): everything in it is cancelled at once, and the children
/// of its nurseries are cancelled **without being awaited**. Each stops at its next
/// suspension point, possibly after the drop has returned, and their errors and panics
/// are not reported. Put a timeout inside, with hatchery's own:
/// `enter(&ex, move_on_after(t, app()))`.
///
/// Inside hatchery code already, it is `fut` itself, in the enclosing scope: a
/// cancellation of that scope cancels `fut` as it does the code around it, and this
/// future completes only if `fut` does (see [`hatchery::rt::enter`]).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
///
/// let ex = Arc::new(async_executor::Executor::new());
/// let out = async_io::block_on(ex.run(hatchery_smol::enter(&ex, hatchery::nursery(|n| async move {
///     let h = n.spawn(async { Ok::<_, std::io::Error>(7) });
///     Ok(h.join().await.unwrap())
/// }))));
/// assert_eq!(out.unwrap(), 7);
/// ```
pub fn enter<F: Future>(executor: &Arc<Executor<'static>>, fut: F) -> Enter<F> {
    hatchery::rt::enter(Arc::new(SmolRuntime::new(executor)), fut)
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
/// let rt = hatchery_smol::start_blocking_portal();
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

/// Tells worker threads to stop.
#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    event: Event,
}

impl Stop {
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    async fn wait(&self) {
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            let listener = self.event.listen();
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            listener.await;
        }
    }
}
