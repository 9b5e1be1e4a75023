//! Work on a thread: [`run_sync`] runs a blocking closure on the runtime's blocking
//! threads, under a [`CapacityLimiter`], and waits for its result (anyio's
//! `to_thread.run_sync`, asyncio's `to_thread`).
//!
//! A blocking call (a file hash, a C library, a synchronous client) stalls the executor
//! thread it runs on, and every task waiting for that thread. Send it to a thread:
//!
//! ```
//! # hatchery_smol::run(async {
//! use hatchery::to_thread;
//!
//! let digest = to_thread::run_sync(|| {
//!     // CPU-heavy or blocking work
//!     (0..1_000_000u64).fold(0u64, |h, i| h.wrapping_mul(31).wrapping_add(i))
//! })
//! .await;
//! # assert_ne!(digest, 0);
//! # });
//! ```
//!
//! # Limits
//!
//! Each call takes a token of a [`CapacityLimiter`] before its thread starts, and gives
//! it back when the closure has returned (not when the caller stops waiting: an
//! abandoned thread still holds its token). By default that is the runtime's own
//! limiter, [`default_limiter`], of 40 tokens (anyio's default), whose total can be
//! changed; [`RunSync::limiter`] picks another one for a call.
//!
//! # Cancellation
//!
//! A thread cannot be interrupted. What a cancellation of the enclosing scope does
//! depends on when it comes, and on [`RunSync::abandon_on_cancel`]:
//!
//! | cancelled | default | `abandon_on_cancel(true)` |
//! |---|---|---|
//! | before the first poll, or while waiting for a token | nothing runs; the scope ends (it took no token) | the same |
//! | while the thread runs | the scope waits for the thread, as for a [`shield`](crate::shield); then it ends, and the closure's value is dropped | the scope ends at once; the thread runs on, its value is dropped when it comes and its token returned then |
//!
//! The thread can see the cancellation with [`from_thread::check_cancelled`] and return
//! early: anyio's cooperative cancellation of threads. To use the value even when the
//! caller is cancelled, wrap the call in [`shield`](crate::shield): it then returns it,
//! and the cancellation lands at the next suspension point (rule C6).
//!
//! # Back into the runtime
//!
//! The closure runs on a plain thread, outside hatchery: hatchery's async functions
//! cannot be awaited there. [`from_thread::run`] runs async code back on the runtime,
//! in the waiting caller's scope, and blocks the thread until it returns;
//! [`from_thread::run_sync`] does so for a sync closure.
//!
//! # Coming from anyio, asyncio and tokio
//!
//! | anyio, asyncio, tokio | hatchery |
//! |---|---|
//! | `await anyio.to_thread.run_sync(f)` | `to_thread::run_sync(f).await` |
//! | `to_thread.run_sync(f, abandon_on_cancel=True)` | `to_thread::run_sync(f).abandon_on_cancel(true).await` |
//! | `to_thread.run_sync(f, limiter=l)` | `to_thread::run_sync(f).limiter(&l).await` |
//! | `to_thread.current_default_thread_limiter()` | [`to_thread::default_limiter()`](default_limiter) |
//! | `await asyncio.to_thread(f)`, `loop.run_in_executor(None, f)` | `to_thread::run_sync(f).abandon_on_cancel(true).await` (asyncio never waits for a cancelled thread; its pool's size is the limit), or [`run_blocking(f)`](crate::run_blocking) |
//! | `tokio::task::spawn_blocking(f).await` | [`run_blocking(f)`](crate::run_blocking)`.await`: no limiter (tokio's pool has its own cap), abandoned on cancellation |
//!
//! [`run_blocking`](crate::run_blocking) is the same future without a limiter, abandoned
//! on cancellation: tokio's `spawn_blocking`, awaited.
//!
//! # Testing
//!
//! Under [virtual time](crate::testing), a thread counts as busy while it runs: the
//! clock stands still until it is done. While it waits in a call back into the runtime
//! ([`from_thread`]), it counts as idle, so that the clock can move for the async code
//! it waits for.
//!
//! [`from_thread::check_cancelled`]: crate::from_thread::check_cancelled
//! [`from_thread::run`]: crate::from_thread::run
//! [`from_thread::run_sync`]: crate::from_thread::run_sync
//! [`from_thread`]: crate::from_thread

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use super::{limiter, lock, Call, Caller, Link, OnCaller};
use crate::context;
use crate::node::Hold;
use crate::sync::{CapacityLimiter, CapacityToken, LimiterAcquireOwned};
use crate::values::{self, Installed};

/// Runs the blocking closure `f` on one of the runtime's blocking threads, under the
/// runtime's [`default_limiter`], and waits for its result.
///
/// Nothing happens until the future is first polled (in a cancelled scope, nothing at
/// all): it then waits for a token of the limiter, and hands `f` to the runtime's
/// blocking pool ([`Runtime::spawn_blocking`](crate::rt::Runtime::spawn_blocking)) with
/// the token, which returns when `f` has. [`RunSync::limiter`] takes another limiter,
/// and [`RunSync::abandon_on_cancel`] changes what a cancellation does.
///
/// `f` runs on a plain thread, outside hatchery: hatchery's functions that need a run
/// panic there as they do outside any runtime. It reaches back into the runtime with
/// [`from_thread`](crate::from_thread), and can ask whether its caller has been
/// cancelled ([`from_thread::check_cancelled`](crate::from_thread::check_cancelled)).
/// It sees the [context values](crate::ContextKey) of the task that sent it, and so do
/// its calls back (rule V3).
///
/// # Cancel safety
///
/// Before the thread has started (the first poll, the wait for a token), dropping the
/// future or cancelling its scope starts nothing and takes no token. Once `f` runs it
/// cannot be stopped: if the future is dropped, `f` runs on in the background, its
/// value is dropped when it comes and its token returned then. If the enclosing scope
/// is cancelled while the thread runs, the scope waits for the thread (as a shield
/// would, rule C6), then ends without the value; with
/// [`abandon_on_cancel(true)`](RunSync::abandon_on_cancel) it ends at once, as if the
/// future were dropped.
///
/// # Panics
///
/// When first polled outside a hatchery runtime. A panic in `f` is resumed in the
/// caller, as long as it waits (also when its scope was cancelled meanwhile). If the
/// runtime drops `f` without running it (tokio's blocking pool does once its runtime
/// has shut down), the caller panics with a message that says so. When polled after it
/// returned.
///
/// # Examples
///
/// ```
/// use hatchery::to_thread;
///
/// # hatchery_smol::run(async {
/// let n = to_thread::run_sync(|| (1..=10u64).product::<u64>()).await;
/// assert_eq!(n, 3_628_800);
/// # });
/// ```
///
/// A cancelled caller waits for its thread, which may notice and stop early:
///
/// ```
/// use std::time::Duration;
/// use hatchery::{from_thread, move_on_after, to_thread};
///
/// # hatchery_smol::run(async {
/// let out = move_on_after(
///     Duration::from_millis(10),
///     to_thread::run_sync(|| {
///         // Blocking work in steps, checking for cancellation between them.
///         while from_thread::check_cancelled().is_ok() {
///             std::thread::sleep(Duration::from_millis(1));
///         }
///         "stopped early"
///     }),
/// )
/// .await;
/// assert_eq!(out, None); // the scope waited for the thread, then caught its cancellation
/// # });
/// ```
pub fn run_sync<T, F>(f: F) -> RunSync<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    RunSync::new(f, Limit::Default, false, Made::RunSync)
}

/// Runs the blocking function `f` on the runtime's blocking thread pool and waits for its
/// result: tokio's `spawn_blocking`, awaited.
///
/// It is [`to_thread::run_sync(f)`](crate::to_thread::run_sync) without a limiter (the
/// runtime's pool has its own cap) and abandoned on cancellation
/// ([`abandon_on_cancel(true)`](RunSync::abandon_on_cancel)): a cancelled scope ends at
/// once, and the thread runs on (rule W6). Use `to_thread::run_sync` for anyio's
/// semantics (a default limit of 40 threads, a cancelled caller that waits for its
/// thread); see [`to_thread`](crate::to_thread) for the mapping.
///
/// Like any future, it does nothing until it is polled: `f` is handed to the pool at the
/// first poll, and not at all if the enclosing scope is cancelled by then.
///
/// `f` runs on a plain thread, outside hatchery: hatchery's functions that need a run
/// ([`now`](crate::now), the scopes, [`testing::elapsed`](crate::testing::elapsed), ...)
/// panic there as they do outside any runtime. Read what it needs before, and reach back
/// with [`from_thread`](crate::from_thread) or the blocking forms of the
/// [`sync`](crate::sync) primitives
/// ([`SendStream::send_blocking`](crate::SendStream::send_blocking),
/// [`Event::wait_blocking`](crate::sync::Event::wait_blocking), ...).
///
/// # Cancel safety
///
/// A running thread cannot be interrupted: if this future is dropped, or the enclosing
/// scope is cancelled while it waits, `f` keeps running to its end in the background and
/// its result is dropped. The scope does not wait for it.
///
/// # Panics
///
/// When first polled outside a hatchery runtime. A panic in `f` is resumed in the
/// caller. If the runtime drops `f` without running it (tokio's blocking pool does once
/// its runtime has shut down), the caller panics with a message that says so. When
/// polled after it returned.
///
/// # Examples
///
/// ```
/// # hatchery_smol::run(async {
/// let n = hatchery::run_blocking(|| (1..=10u64).product::<u64>()).await;
/// assert_eq!(n, 3_628_800);
/// # });
/// ```
pub fn run_blocking<T, F>(f: F) -> RunBlocking<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    RunSync::new(f, Limit::Unlimited, true, Made::RunBlocking)
}

/// Future returned by [`run_blocking`](crate::run_blocking): a [`RunSync`] without a
/// limiter, abandoned on cancellation.
///
/// # Examples
///
/// ```
/// use hatchery::futures::RunBlocking;
///
/// # hatchery_smol::run(async {
/// let job: RunBlocking<std::thread::ThreadId> = hatchery::run_blocking(|| std::thread::current().id());
/// // It ran on a blocking thread, not on the one that awaits it.
/// assert_ne!(job.await, std::thread::current().id());
/// # });
/// ```
pub type RunBlocking<T> = RunSync<T>;

/// The runtime's default thread limiter, made on first use with 40 tokens (anyio's
/// `current_default_thread_limiter()`): what [`run_sync`] takes its tokens from unless
/// given another limiter.
///
/// Each runtime binding has its own: a `hatchery_tokio::run` or `hatchery_smol::run`,
/// each `enter` of an adapter, and each [test run](crate::testing). Change its total
/// with [`CapacityLimiter::set_total_tokens`]; the change holds for the whole run.
///
/// # Panics
///
/// Outside a hatchery runtime.
///
/// # Examples
///
/// ```
/// use hatchery::to_thread;
///
/// # hatchery_smol::run(async {
/// let limiter = to_thread::default_limiter();
/// assert_eq!(limiter.total_tokens(), 40);
/// limiter.set_total_tokens(4); // at most 4 threads of this run at once from now on
/// assert_eq!(to_thread::default_limiter().total_tokens(), 4);
/// # });
/// ```
pub fn default_limiter() -> Arc<CapacityLimiter> {
    let rt = context::with_current(|c| c.expect(context::NO_RUNTIME).rt.clone());
    limiter::default_of(&rt, limiter::Kind::Threads)
}

/// Where a call takes its token from.
enum Limit {
    /// The runtime's default limiter, looked up at the first poll.
    Default,
    /// A limiter given for the call.
    Given(LimiterAcquireOwned),
    /// None ([`run_blocking`]).
    Unlimited,
}

enum State {
    /// Not polled yet.
    Fresh(Limit),
    /// Waiting for a token.
    Acquiring(LimiterAcquireOwned),
    /// The thread runs; the hold keeps the caller's scope from ending meanwhile
    /// (not with `abandon_on_cancel`).
    Running { _hold: Option<Hold> },
    /// Returned (or resumed a panic).
    Done,
    /// The thread finished while the caller's scope was cancelled: its value was
    /// dropped, and this stays pending until the scope drops it.
    Caught,
}

/// Which function made a [`RunSync`], for the messages of its panics; its `Debug` is the
/// future's name.
#[derive(Clone, Copy, Debug)]
enum Made {
    RunSync,
    RunBlocking,
}

impl Made {
    fn function(self) -> &'static str {
        match self {
            Made::RunSync => "to_thread::run_sync",
            Made::RunBlocking => "run_blocking",
        }
    }
}

/// How the work ended.
enum Outcome<T> {
    /// It ran: its value, or its panic.
    Ran(std::thread::Result<T>),
    /// The runtime dropped it without running it.
    Dropped,
}

struct Slot<T> {
    token: Option<CapacityToken>,
    outcome: Option<Outcome<T>>,
}

/// What the waiting future and its thread share.
struct Shared<T> {
    link: Link,
    slot: Mutex<Slot<T>>,
}

impl<T: Send> Caller for Shared<T> {
    fn link(&self) -> &Link {
        &self.link
    }
}

impl<T> Shared<T> {
    /// The thread is done: its token goes back first, so that a caller that sees the
    /// outcome sees the token returned; no more calls come from it.
    fn finish(&self, outcome: Outcome<T>) {
        let token = lock(&self.slot).token.take();
        drop(token);
        lock(&self.slot).outcome = Some(outcome);
        self.link.close();
        self.link.waker.wake();
    }
}

/// The work handed to the pool. A runtime may drop it without running it (tokio does once
/// it has shut down): the waiter then gets a panic instead of waiting for good.
struct Job<T, F> {
    f: Option<F>,
    shared: Arc<Shared<T>>,
}

impl<T, F> Drop for Job<T, F> {
    fn drop(&mut self) {
        if self.f.take().is_some() {
            self.shared.finish(Outcome::Dropped);
        }
    }
}

/// Future returned by [`run_sync`] (and, as [`RunBlocking`], by
/// [`run_blocking`](crate::run_blocking)).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use hatchery::futures::RunSync;
/// use hatchery::sync::CapacityLimiter;
/// use hatchery::to_thread;
///
/// # hatchery_smol::run(async {
/// let limiter = CapacityLimiter::new(1);
/// let job: RunSync<u32> = to_thread::run_sync(|| 6 * 7).limiter(&limiter);
/// assert_eq!(job.await, 42);
/// assert_eq!(limiter.borrowed_tokens(), 0); // the token came back with the thread
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct RunSync<T> {
    shared: Arc<Shared<T>>,
    /// The work, until the thread starts. (In a `Mutex` only to keep the future `Sync`:
    /// it is reached through `&mut self`, never locked.)
    job: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    abandon: bool,
    state: State,
    /// The function that made it, for the messages of its panics.
    made: Made,
    /// Calls back from the thread being polled ([`from_thread`](crate::from_thread)); in
    /// a `Mutex` only to keep the future `Sync`, like `job`.
    calls: Mutex<Vec<Call>>,
}

impl<T: Send + 'static> RunSync<T> {
    fn new<F>(f: F, limit: Limit, abandon: bool, made: Made) -> RunSync<T>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let shared = Arc::new(Shared {
            link: Link::default(),
            slot: Mutex::new(Slot {
                token: None,
                outcome: None,
            }),
        });
        let mut job = Job {
            f: Some(f),
            shared: shared.clone(),
        };
        let job: Box<dyn FnOnce() + Send> = Box::new(move || {
            let f = job.f.take().expect("blocking work runs once");
            let caller = OnCaller::set(job.shared.clone());
            let mut values = job.shared.link.values.get().cloned();
            let installed = Installed::new(&mut values);
            let r = catch_unwind(AssertUnwindSafe(f));
            drop((installed, caller));
            job.shared.finish(Outcome::Ran(r));
        });
        RunSync {
            shared,
            job: Mutex::new(Some(job)),
            abandon,
            state: State::Fresh(limit),
            made,
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Takes the token from `limiter` instead of the runtime's
    /// [`default_limiter`] (anyio's `limiter=`).
    ///
    /// The future does not borrow `limiter`: it can be spawned, and the limiter dropped
    /// before it (the token keeps what it needs).
    ///
    /// # Panics
    ///
    /// When called after the first poll.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use hatchery::sync::CapacityLimiter;
    /// use hatchery::{nursery, to_thread};
    ///
    /// # hatchery_smol::run(async {
    /// // At most two threads at once for these downloads, whatever the others do.
    /// let limiter = Arc::new(CapacityLimiter::new(2));
    /// nursery(|n| async move {
    ///     for i in 0..8u64 {
    ///         let l = limiter.clone();
    ///         n.spawn(async move {
    ///             let check = l.clone();
    ///             let square = to_thread::run_sync(move || {
    ///                 assert!(check.borrowed_tokens() <= 2);
    ///                 i * i
    ///             })
    ///             .limiter(&l)
    ///             .await;
    ///             Ok::<_, std::io::Error>(square)
    ///         });
    ///     }
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn limiter(mut self, limiter: &CapacityLimiter) -> RunSync<T> {
        match &mut self.state {
            State::Fresh(limit) => *limit = Limit::Given(limiter.acquire_owned()),
            _ => panic!("hatchery: `RunSync::limiter` called after the first poll"),
        }
        self
    }

    /// Whether a cancellation of the enclosing scope stops the wait while the thread
    /// runs (anyio's `abandon_on_cancel`; `false` by default).
    ///
    /// With `true`, a cancelled scope ends at once, leaving the thread running: its value
    /// is dropped when it comes, its token returned then, and a panic in it is not
    /// resumed anywhere (the panic hook has reported it on its thread). With `false`, the
    /// scope waits for the thread first.
    ///
    /// # Panics
    ///
    /// When called after the first poll.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use hatchery::sync::Event;
    /// use hatchery::{move_on_after, to_thread};
    ///
    /// # hatchery_smol::run(async {
    /// let release = Arc::new(Event::new());
    /// let r = release.clone();
    /// let out = move_on_after(
    ///     Duration::from_millis(5),
    ///     to_thread::run_sync(move || r.wait_blocking()).abandon_on_cancel(true),
    /// )
    /// .await;
    /// assert_eq!(out, None); // gave up at once; the thread still waits
    /// release.set(); // lets it end
    /// # });
    /// ```
    pub fn abandon_on_cancel(mut self, abandon: bool) -> RunSync<T> {
        assert!(
            matches!(self.state, State::Fresh(_)),
            "hatchery: `RunSync::abandon_on_cancel` called after the first poll"
        );
        self.abandon = abandon;
        self
    }

    /// Hands the work to the pool, with `token`, in the current context.
    fn start(&mut self, token: Option<CapacityToken>) {
        let (rt, node) = context::with_current(|c| {
            let c = c.expect(context::NO_RUNTIME);
            (c.rt.clone(), c.node.clone())
        });
        let _ = self.shared.link.node.set(node.clone());
        if let Some(values) = values::current() {
            let _ = self.shared.link.values.set(values);
        }
        lock(&self.shared.slot).token = token;
        let hold = (!self.abandon).then(|| Hold::new(&node));
        self.state = State::Running { _hold: hold };
        let job = self.job.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        // Called outside the context's borrow: a runtime that runs the work inline
        // (against its contract) then still works, if slowly.
        rt.spawn_blocking(job.expect("blocking work is handed over once"));
    }

    /// Polls the calls back from the thread, in the caller's context.
    fn poll_calls(&mut self, cx: &mut Context<'_>) {
        let calls = self.calls.get_mut().unwrap_or_else(|e| e.into_inner());
        calls.append(&mut lock(&self.shared.link.calls).queue);
        calls.retain_mut(|call| call.poll(cx));
    }
}

impl<T: Send + 'static> Future for RunSync<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Fresh(_) if context::current_cancelled() => return Poll::Pending,
                State::Fresh(_) => match std::mem::replace(&mut this.state, State::Done) {
                    State::Fresh(Limit::Default) => {
                        this.state = State::Acquiring(default_limiter().acquire_owned())
                    }
                    State::Fresh(Limit::Given(acquire)) => this.state = State::Acquiring(acquire),
                    State::Fresh(Limit::Unlimited) => this.start(None),
                    _ => unreachable!(),
                },
                State::Acquiring(acquire) => match Pin::new(acquire).poll(cx) {
                    // The wait checks for cancellation itself, and takes nothing then.
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(token) => this.start(Some(token)),
                },
                State::Running { .. } => {
                    this.shared.link.waker.register(cx.waker());
                    this.poll_calls(cx);
                    let Some(outcome) = lock(&this.shared.slot).outcome.take() else {
                        // Held: a cancelled scope waits. Abandoning: it drops us.
                        return Poll::Pending;
                    };
                    // Releasing the hold wakes a cancelled scope's runner, which drops
                    // us after this poll.
                    this.state = State::Done;
                    let value = match outcome {
                        Outcome::Ran(Ok(v)) => v,
                        // The work's own panic, already reported by the hook where it
                        // happened.
                        Outcome::Ran(Err(p)) => std::panic::resume_unwind(p),
                        // A new panic, which the hook shows.
                        Outcome::Dropped => panic!(
                            "hatchery: the runtime dropped the work of `{}` without running \
                             it (has it shut down?)",
                            this.made.function()
                        ),
                    };
                    if context::current_cancelled() {
                        // A hatchery wait does not complete in a cancelled scope (W1):
                        // the value is dropped, and the scope catches.
                        this.state = State::Caught;
                        drop(value);
                        return Poll::Pending;
                    }
                    return Poll::Ready(value);
                }
                State::Caught => return Poll::Pending,
                State::Done => panic!("hatchery: `{:?}` polled after completion", this.made),
            }
        }
    }
}

/// Terminated once it has returned the work's value (or resumed its panic).
impl<T: Send + 'static> futures_core::future::FusedFuture for RunSync<T> {
    fn is_terminated(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

impl<T> Drop for RunSync<T> {
    fn drop(&mut self) {
        // The thread's calls back fail from now on; those queued reply `Cancelled`. The
        // ones being polled are dropped with `calls`, and reply so too.
        self.shared.link.close();
    }
}

impl<T> fmt::Debug for RunSync<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Fresh(_) => "fresh",
            State::Acquiring(_) => "waiting for a token",
            State::Running { .. } => "running",
            State::Done => "done",
            State::Caught => "cancelled",
        };
        f.debug_struct("RunSync")
            .field("state", &state)
            .field("abandon_on_cancel", &self.abandon)
            .finish_non_exhaustive()
    }
}
