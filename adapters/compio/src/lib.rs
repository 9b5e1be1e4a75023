//! Runs [hatchery] structured concurrency on [compio]'s thread-per-core runtime.
//!
//! compio runs one runtime per thread, its tasks never leaving that thread. [`run_local`]
//! (or its alias [`run`]) makes one on the calling thread and binds both faces of
//! hatchery's seam to it: the children of a plain nursery, which are `Send`, and those of
//! a [`Local`](hatchery::Local) nursery, which need not be, are compio tasks on that
//! thread. A thread-per-core server calls `run_local` once per thread (see the
//! repository's `per_core` example).
//!
//! - **Spawning** from the runtime's thread is compio's `spawn`. From any other thread
//!   (blocking work that calls back with [`hatchery::from_thread`], a portal), the task
//!   goes through a queue that a compio task on the runtime's thread drains.
//! - **Timers** are compio's own, which are `!Send` while hatchery's [`Sleep`] must be
//!   `Send + Sync`: each is made lazily on the thread that polls it, and kept in a
//!   thread-checked wrapper. hatchery polls a task's timer on the thread the task runs
//!   on, which on compio is the runtime's thread. (Polled on a thread with no compio
//!   runtime, a timer panics: it has no clock to wait on there.)
//! - **Blocking work** ([`hatchery::run_blocking`]) runs on a compio blocking thread
//!   pool (its `AsyncifyPool`), or on a thread of its own when that pool is full: never
//!   does the runtime's thread wait for a free one.
//! - **Sockets** ([`hatchery::net`], Unix): each wait for readiness is compio's one-shot
//!   poll operation (`PollOnce`), submitted to the driver of the thread that waits. On
//!   Linux the driver is io_uring where the kernel offers it (the `io-uring` feature, on
//!   by default), else `epoll` through compio's polling driver. A socket may move to
//!   another compio thread (it then waits on that thread's driver); a wait it left armed
//!   on the first thread cannot be cancelled from there, and is leaked, with the driver
//!   it holds. Used on a thread with no compio runtime (after its runtime has ended), a
//!   socket's wait fails with an error that says so. Windows has no reactor here yet:
//!   opening a socket fails with hatchery's "no reactor" error.
//!
//! Tested on Linux (6.18), where io_uring is there: the whole conformance kit passes on
//! the io_uring driver (the default) and on the polling driver (forced through
//! [`run_local_on`]), and so does every example of the repository, on the default
//! driver. `--no-default-features` builds the polling driver alone.
//!
//! **Tests**: `#[hatchery::test(backends(compio))]` runs a test on `run_local` (with
//! `hatchery-compio` among the test crate's dependencies), beside `tokio_local`,
//! `smol_local` and `sim` if it lists them.
//!
//! ```
//! use std::time::Duration;
//!
//! let out = hatchery_compio::run(hatchery::nursery(|n| async move {
//!     let h = n.spawn(async { Ok::<_, std::io::Error>(6 * 7) });
//!     hatchery::sleep(Duration::from_millis(1)).await;
//!     Ok(h.join().await?)
//! }));
//! assert_eq!(out.unwrap(), 42);
//! ```
//!
//! [compio]: https://docs.rs/compio

#![forbid(unsafe_code)]

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::mem;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use compio_driver::AsyncifyPool;
use compio_runtime::Runtime as Compio;
use compio_send_wrapper::SendWrapper;
use hatchery::rt::{LocalRuntime, LocalTask, Reactor, Runtime, Sleep, Task};

#[cfg(unix)]
mod reactor;

thread_local! {
    /// The address of the [`Shared`] whose compio runtime this thread is running, 0 if
    /// none: a spawn from elsewhere goes through the queue.
    static ACTIVE: Cell<usize> = const { Cell::new(0) };
}

/// Runs `fut` as the root of a hatchery task tree on a new compio runtime on the
/// calling thread, and returns its output.
///
/// Both faces of the seam are bound to that runtime: every task of the tree, `Send` or
/// [`Local`](hatchery::Local), is a compio task on this thread. When `run_local`
/// returns, every task has finished or been dropped (cancelled); blocking work that a
/// cancelled [`run_blocking`](hatchery::run_blocking) left running is not waited for.
///
/// # Panics
///
/// If `fut` panics (after its nurseries have finished, as always), with its payload. If
/// compio's runtime cannot be built.
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
/// hatchery_compio::run_local(Local::nursery(|n: Nursery<std::io::Error, Local>| async move {
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
    let compio = Compio::new().expect("hatchery_compio: cannot build a compio runtime");
    run_local_on(&compio, fut)
}

/// Like [`run_local`], on a compio runtime built by the caller (its driver, its thread
/// affinity: `compio_runtime::RuntimeBuilder`), which must have been built on this
/// thread. The runtime's other tasks, if any, run meanwhile. Tasks of the tree that were
/// cancelled but not awaited (a nursery dropped from outside) are still the runtime's
/// when this returns: they are dropped with it.
///
/// # Panics
///
/// As [`run_local`].
///
/// # Examples
///
/// ```
/// // compio's polling driver (epoll on Linux), even where io_uring is there.
/// let mut proactor = compio_driver::ProactorBuilder::new();
/// proactor.driver_type(compio_driver::DriverType::Poll);
/// let compio = compio_runtime::RuntimeBuilder::new().with_proactor(proactor).build().unwrap();
/// let port = hatchery_compio::run_local_on(&compio, async {
///     let listener = hatchery::net::TcpListener::bind("127.0.0.1:0").await?;
///     Ok::<_, std::io::Error>(listener.local_addr()?.port())
/// });
/// assert_ne!(port.unwrap(), 0);
/// ```
pub fn run_local_on<F: Future>(compio: &compio_runtime::Runtime, fut: F) -> F::Output {
    let shared = Arc::new(Shared::default());
    let runtime = Arc::new(CompioRuntime {
        shared: shared.clone(),
    });
    let entered = hatchery::rt::enter_local(Rc::new(CompioLocal));
    let root = hatchery::rt::enter_root(runtime, fut);
    let running = Running::new(shared.clone());
    let drainer = compio.spawn(drain(shared));
    let out = compio.block_on(when_woken(root));
    drop((running, drainer, entered));
    out
}

/// `fut`, polled only when it was woken (and at first). compio's `block_on` polls its
/// future at every turn of its loop, after any operation of any task completes, woken or
/// not: the root's body would try its socket again each time (a server's `accept`
/// loop tried accepting about 17 times per connection).
fn when_woken<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let woken = Arc::new(Woken {
        woken: AtomicBool::new(true),
        runtime: Mutex::new(None),
    });
    let waker = Waker::from(woken.clone());
    let mut fut = Box::pin(fut);
    poll_fn(move |cx| {
        {
            let mut runtime = woken.runtime.lock().unwrap_or_else(PoisonError::into_inner);
            if !runtime.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *runtime = Some(cx.waker().clone());
            }
        }
        if !woken.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        fut.as_mut().poll(&mut Context::from_waker(&waker))
    })
}

/// The root's waker: notes the wake, then wakes the runtime's loop (from any thread).
struct Woken {
    woken: AtomicBool,
    runtime: Mutex<Option<Waker>>,
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let runtime = self.runtime.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = &*runtime {
            w.wake_by_ref();
        }
    }
}

/// This thread runs a runtime's tasks while it lives: [`Runtime::spawn`] spawns them on
/// compio directly. Once dropped (also if the root panics), the thread runs the runtime it
/// ran before, if nested, and a spawn from another thread drops its task (a cancelled
/// child), as are those still queued.
struct Running {
    shared: Arc<Shared>,
    outer: usize,
}

impl Running {
    fn new(shared: Arc<Shared>) -> Running {
        let outer = ACTIVE.with(|a| a.replace(Arc::as_ptr(&shared) as usize));
        Running { shared, outer }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = ACTIVE.try_with(|a| a.set(self.outer));
        let queued = {
            let mut inbox = self.shared.lock();
            inbox.closed = true;
            mem::take(&mut inbox.tasks)
        };
        drop(queued); // after the lock: dropping a task may spawn
    }
}

/// [`run_local`] under the name the other adapters give their entry point: compio runs
/// one runtime per thread, so this is that one thread's runtime.
///
/// # Panics
///
/// As [`run_local`].
///
/// # Examples
///
/// ```
/// let here = std::thread::current().id();
/// let there = hatchery_compio::run(hatchery::nursery(|n| async move {
///     let h = n.spawn(async { Ok::<_, std::io::Error>(std::thread::current().id()) });
///     Ok(h.join().await?)
/// }));
/// assert_eq!(there.unwrap(), here); // the child ran on the calling thread
/// ```
pub fn run<F: Future>(fut: F) -> F::Output {
    run_local(fut)
}

/// The local face of compio ([`hatchery::rt::LocalRuntime`]): spawns a
/// [`Local`](hatchery::Local) nursery's children on the compio runtime running on the
/// calling thread. [`run_local`] installs one; install it yourself (with
/// [`hatchery::rt::enter_local`]) where you run a compio runtime of your own. With no
/// compio runtime running on the thread, a spawn drops the task (a cancelled child).
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use hatchery::{Local, Nursery};
/// use hatchery_compio::CompioLocal;
///
/// // By hand, for a compio runtime on this thread (here `run`'s, which installs one of
/// // its own as well).
/// let _entered = hatchery::rt::enter_local(Rc::new(CompioLocal));
/// let text = Rc::new("not Send".to_string());
/// let len = hatchery_compio::run(Local::nursery(|n: Nursery<(), Local>| async move {
///     let t = text.clone();
///     Ok(n.spawn(async move { Ok(t.len()) }).join().await.unwrap())
/// }));
/// assert_eq!(len, Ok(8));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CompioLocal;

impl LocalRuntime for CompioLocal {
    fn spawn_local(&self, task: LocalTask) {
        // No runtime: `Err(task)` is dropped here.
        let _ = Compio::try_with_current(|rt| rt.spawn(task).detach());
    }
}

/// The Send face: tasks go to one compio runtime, by its thread.
#[derive(Debug)]
struct CompioRuntime {
    shared: Arc<Shared>,
}

/// What other threads share with a runtime's thread: the tasks they spawned.
#[derive(Debug, Default)]
struct Shared {
    inbox: Mutex<Inbox>,
}

#[derive(Debug, Default)]
struct Inbox {
    tasks: Vec<Task>,
    /// The task that drains `tasks`, waiting.
    waker: Option<Waker>,
    /// The runtime has ended: tasks are dropped, not queued.
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Spawns on the runtime's thread what other threads queued, for as long as it runs.
async fn drain(shared: Arc<Shared>) {
    poll_fn(|cx| loop {
        let tasks = {
            let mut inbox = shared.lock();
            if inbox.tasks.is_empty() {
                inbox.waker = Some(cx.waker().clone());
                return Poll::<()>::Pending;
            }
            mem::take(&mut inbox.tasks)
        };
        for task in tasks {
            compio_runtime::spawn(task).detach();
        }
    })
    .await
}

impl Runtime for CompioRuntime {
    fn spawn(&self, task: Task) {
        if ACTIVE.with(Cell::get) == Arc::as_ptr(&self.shared) as usize {
            compio_runtime::spawn(task).detach();
            return;
        }
        let mut inbox = self.shared.lock();
        if inbox.closed {
            drop(inbox);
            drop(task); // after the lock: dropping a task may spawn
            return;
        }
        inbox.tasks.push(task);
        let waker = inbox.waker.take();
        drop(inbox);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(CompioSleep {
            deadline,
            timer: None,
            fired: false,
            waker: None,
        })
    }

    /// compio's blocking thread pool (one for the process, of up to 256 threads), from
    /// any thread; when all its threads are busy, a thread of its own. Not compio's
    /// `spawn_blocking`: with its runtime's pool full, that makes the runtime's thread
    /// wait for a free one, and blocking work that calls back into the runtime
    /// ([`hatchery::from_thread`]) would then wait for good.
    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        static POOL: OnceLock<AsyncifyPool> = OnceLock::new();
        let pool = POOL.get_or_init(|| AsyncifyPool::new(256, Duration::from_secs(60)));
        if let Err(full) = pool.dispatch(work) {
            std::thread::spawn(full.into_inner());
        }
    }

    /// `"compio"`.
    fn name(&self) -> &'static str {
        "compio"
    }

    #[cfg(unix)]
    fn reactor(&self) -> Option<&dyn Reactor> {
        Some(&reactor::CompioReactor)
    }

    #[cfg(not(unix))]
    fn reactor(&self) -> Option<&dyn Reactor> {
        None
    }
}

/// A compio timer behind hatchery's [`Sleep`]. compio's timers are `!Send`: one is made
/// on the thread that polls it, in a [`SendWrapper`] (which lets only that thread touch
/// it). hatchery polls a task's timer on the thread the task runs on, which on compio is
/// always the runtime's; should a timer be polled on another compio thread all the same,
/// a new one is made there, and one made elsewhere is leaked (forgotten), not dropped on
/// the wrong thread.
struct CompioSleep {
    deadline: Instant,
    timer: Option<SendWrapper<Pin<Box<dyn Future<Output = ()>>>>>,
    fired: bool,
    /// The last poll's waker, for [`Sleep::reset`] to arm the new timer with.
    waker: Option<Waker>,
}

impl CompioSleep {
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.fired {
            return Poll::Ready(());
        }
        let timer = match &mut self.timer {
            Some(timer) if timer.valid() => timer,
            other => {
                mem::forget(other.take());
                if Compio::try_with_current(|_| ()).is_err() {
                    panic!("hatchery_compio: a timer polled on a thread with no compio runtime");
                }
                let timer: Pin<Box<dyn Future<Output = ()>>> =
                    Box::pin(compio_runtime::time::sleep_until(self.deadline));
                other.insert(SendWrapper::new(timer))
            }
        };
        let timer = timer.get_mut().expect("made on this thread");
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.fired = true;
        self.timer = None;
        Poll::Ready(())
    }
}

impl Future for CompioSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match &this.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => this.waker = Some(cx.waker().clone()),
        }
        this.poll_timer(cx)
    }
}

impl Sleep for CompioSleep {
    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        let this = self.get_mut();
        this.deadline = deadline;
        this.fired = false;
        if let Some(timer) = this.timer.take() {
            if timer.valid() {
                drop(timer);
            } else {
                mem::forget(timer);
            }
        }
        // Armed again with the last waker, as if polled (on a compio thread; else at the
        // next poll): a reset wakes no one early.
        let on_compio = Compio::try_with_current(|_| ()).is_ok();
        if let (Some(waker), true) = (this.waker.clone(), on_compio)
            && this.poll_timer(&mut Context::from_waker(&waker)).is_ready()
        {
            waker.wake();
        }
    }
}

impl Drop for CompioSleep {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take()
            && !timer.valid()
        {
            mem::forget(timer);
        }
    }
}
