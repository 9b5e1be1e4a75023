//! Time and checkpoints: `sleep`, `sleep_until`, `now`, `checkpoint`,
//! `current_effective_deadline`, and `run_blocking`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;

use crate::rt;

/// The current time on the runtime's clock.
///
/// Deadlines, timeouts and sleeps are all measured on this clock; use it instead of
/// `Instant::now()` so that code also works on a virtual clock.
///
/// # Panics
///
/// Outside a hatchery runtime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// # hatchery_smol::run(async {
/// let start = hatchery::now();
/// hatchery::sleep(Duration::from_millis(5)).await;
/// assert!(hatchery::now() - start >= Duration::from_millis(5));
/// # });
/// ```
pub fn now() -> Instant {
    rt::with_current(|c| c.expect(rt::NO_RUNTIME).rt.now())
}

/// Waits until `duration` has passed (counted from the first poll).
///
/// `Duration::MAX` sleeps forever. `Duration::ZERO` still suspends once, as
/// [`checkpoint`] does (trio's `sleep(0)`), so a loop of zero sleeps lets other tasks
/// and cancellation in on every runtime.
///
/// # Cancel safety
///
/// Cancel safe: dropping it just stops waiting. If the enclosing scope is cancelled, the
/// sleep never completes and the scope drops it; the code after it does not run. That
/// includes a scope whose deadline came before the sleep's end, or with it, when the
/// clock moved past both at once (a thread kept busy, `testing::advance`, a virtual
/// clock's jump): `move_on_after(d, sleep(d))` is `None`, as in trio.
///
/// # Panics
///
/// When first polled outside a hatchery runtime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::testing::{elapsed, virtual_time};
/// use hatchery::{move_on_after, sleep};
///
/// # hatchery_smol::run(virtual_time(async {
/// sleep(Duration::from_secs(60)).await; // a virtual minute: no real wait
/// assert_eq!(elapsed(), Duration::from_secs(60));
/// // A deadline that comes with the sleep's end wins the tie.
/// let d = Duration::from_secs(1);
/// assert_eq!(move_on_after(d, sleep(d)).await, None);
/// # }));
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        start: Start::After(duration),
        timer: None,
    }
}

/// Waits until `deadline` on the runtime's clock.
///
/// Any instant is valid, however far ahead. A deadline that has passed still suspends
/// once, as [`checkpoint`] does.
///
/// # Cancel safety
///
/// As for [`sleep`].
///
/// # Panics
///
/// When first polled outside a hatchery runtime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// # hatchery_smol::run(async {
/// let at = hatchery::now() + Duration::from_millis(2);
/// hatchery::sleep_until(at).await;
/// assert!(hatchery::now() >= at);
/// # });
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        start: Start::At(deadline),
        timer: None,
    }
}

enum Start {
    After(Duration),
    At(Instant),
    Forever,
    /// Waiting for this deadline: the timer is armed for it.
    Armed(Instant),
    /// Waiting for this deadline, further away than the runtime's timer horizon: the
    /// timer is armed for a step towards it, and the runtime's clock says when it is
    /// reached (the sleep may be polled outside hatchery by then).
    Stepped(Instant, Arc<dyn rt::Runtime>),
    /// The deadline had passed at the first poll, which yielded once (a checkpoint); or
    /// it came when an enclosing deadline did, which cancelled the scope instead.
    Passed,
}

impl fmt::Debug for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Start::After(d) => f.debug_tuple("After").field(d).finish(),
            Start::At(i) => f.debug_tuple("At").field(i).finish(),
            Start::Forever => f.write_str("Forever"),
            Start::Armed(i) => f.debug_tuple("Armed").field(i).finish(),
            Start::Stepped(i, _) => f.debug_tuple("Stepped").field(i).finish(),
            Start::Passed => f.write_str("Passed"),
        }
    }
}

/// Future returned by [`sleep`] and [`sleep_until`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::futures::Sleep;
/// use hatchery::sleep;
/// use hatchery::testing::{elapsed, virtual_time};
///
/// hatchery_smol::run(virtual_time(async {
///     let nap: Sleep = sleep(Duration::from_secs(10));
///     sleep(Duration::from_secs(60)).await;
///     nap.await; // counted from its first poll, not from its creation
///     assert_eq!(elapsed(), Duration::from_secs(70));
/// }));
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    start: Start,
    /// When the sleep goes, its timer is left for the next sleep or scope of its runtime
    /// in the same task poll.
    timer: Option<rt::RtTimer>,
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.release();
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if rt::current_cancelled() {
            if let Start::After(d) = self.start {
                // Counted from the first poll all the same: a sleep kept past a cancelled
                // scope may be awaited later.
                if let Some(now) = rt::with_current(|c| c.map(|c| c.rt.now())) {
                    self.start = now.checked_add(d).map_or(Start::Forever, Start::At);
                }
            }
            return Poll::Pending;
        }
        match self.start {
            Start::Armed(_) | Start::Stepped(..) => {}
            Start::Forever => return Poll::Pending,
            Start::Passed => return Poll::Ready(()),
            Start::After(_) | Start::At(_) => {
                let this = &mut *self;
                this.start = rt::with_current(|c| {
                    let c = c.expect(rt::NO_RUNTIME);
                    let rt = &**c.rt;
                    let now = rt.now();
                    let deadline = match this.start {
                        Start::After(d) => now.checked_add(d),
                        Start::At(i) => Some(i),
                        _ => unreachable!(),
                    };
                    match deadline {
                        None => Start::Forever,
                        // A sleep that is due at once still suspends once, as trio's
                        // `sleep(0)`: a loop of them is a loop of checkpoints (a timer
                        // may be ready at once, and smol has no budget that yields).
                        Some(d) if d <= now => Start::Passed,
                        Some(d) => {
                            let at = rt::wake_at(rt, d, now);
                            this.timer = Some(rt::timer_at(rt, at));
                            if at < d {
                                Start::Stepped(d, c.rt.clone())
                            } else {
                                Start::Armed(d)
                            }
                        }
                    }
                });
                match this.start {
                    Start::Passed => {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    Start::Forever => return Poll::Pending,
                    _ => {}
                }
            }
        }
        let this = &mut *self;
        let timer = this.timer.as_mut().expect("an armed sleep has its timer");
        let deadline = loop {
            if timer.sleep().poll(cx).is_pending() {
                return Poll::Pending;
            }
            match &this.start {
                Start::Armed(deadline) => break *deadline,
                Start::Stepped(deadline, rt) => {
                    // A step of the wait is over: on to the next, or done.
                    let now = rt.now();
                    if now >= *deadline {
                        break *deadline;
                    }
                    timer.sleep().reset(rt::wake_at(&**rt, *deadline, now));
                }
                _ => unreachable!("an armed sleep"),
            }
        };
        // The clock may have moved past an enclosing scope's deadline and ours at once
        // (a thread kept busy, `testing::advance`, both on one instant of a virtual
        // clock): if that deadline came first, or with ours, the scope was cancelled by
        // the time we were due, whichever timer is polled first.
        if rt::cancel_deadlines_before(deadline) {
            // Our time has come all the same: polled again where no scope is cancelled (a
            // sleep kept past that scope), we are done, without the spent timer (which
            // some executors never complete twice).
            this.start = Start::Passed;
            if let Some(timer) = this.timer.take() {
                timer.release();
            }
            return Poll::Pending;
        }
        Poll::Ready(())
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

/// A suspension point: lets other tasks run, and lets a cancelled scope stop here.
///
/// Code that never suspends is never interrupted; call `checkpoint().await` in long CPU
/// loops so that cancellation (and the rest of the executor) gets a chance.
///
/// # Cancel safety
///
/// Cancel safe. If the enclosing scope is cancelled, it never completes and the scope
/// drops it.
///
/// # Panics
///
/// Never; outside a hatchery runtime it only yields.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{checkpoint, move_on_after};
///
/// # hatchery_smol::run(async {
/// let mut spins = 0u64;
/// let out = move_on_after(Duration::from_millis(5), async {
///     loop {
///         spins += 1; // CPU work
///         checkpoint().await;
///     }
/// })
/// .await;
/// assert_eq!(out, None);
/// assert!(spins > 0);
/// # });
/// ```
pub fn checkpoint() -> Checkpoint {
    Checkpoint { yielded: false }
}

/// Future returned by [`checkpoint`].
///
/// # Examples
///
/// ```
/// use futures_lite::future::poll_once;
/// use hatchery::futures::Checkpoint;
///
/// # hatchery_smol::run(async {
/// let mut cp: Checkpoint = hatchery::checkpoint();
/// assert_eq!(poll_once(&mut cp).await, None); // the first poll yields to the executor...
/// assert_eq!(poll_once(&mut cp).await, Some(())); // ...the next one completes
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Checkpoint {
    yielded: bool,
}

impl Future for Checkpoint {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if rt::current_cancelled() {
            return Poll::Pending;
        }
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The deadline that applies to the current code: see [`current_effective_deadline`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{checkpoint, current_effective_deadline, move_on_after, CancelScope, Deadline};
///
/// # hatchery_smol::run(async {
/// assert_eq!(current_effective_deadline(), Deadline::Never);
/// move_on_after(Duration::from_secs(10), async {
///     assert!(matches!(current_effective_deadline(), Deadline::At(_)));
/// })
/// .await;
/// let scope = CancelScope::new();
/// let handle = scope.handle();
/// scope
///     .run(async {
///         handle.cancel();
///         assert_eq!(current_effective_deadline(), Deadline::Cancelled);
///         checkpoint().await; // the work ends here
///     })
///     .await;
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Deadline {
    /// An enclosing scope has already been cancelled: the next suspension point ends
    /// the work.
    Cancelled,
    /// The earliest deadline of the enclosing scopes.
    At(Instant),
    /// No enclosing scope has a deadline.
    Never,
}

impl Deadline {
    /// The instant to pass to an I/O call: `Cancelled` becomes `now`, `Never` is `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use hatchery::Deadline;
    ///
    /// let now = Instant::now();
    /// let at = now + Duration::from_secs(1);
    /// assert_eq!(Deadline::At(at).instant(now), Some(at));
    /// assert_eq!(Deadline::Cancelled.instant(now), Some(now)); // due at once
    /// assert_eq!(Deadline::Never.instant(now), None);
    /// ```
    pub fn instant(self, now: Instant) -> Option<Instant> {
        match self {
            Deadline::Cancelled => Some(now),
            Deadline::At(i) => Some(i),
            Deadline::Never => None,
        }
    }

    /// Time left until the deadline, as of `now`: zero if passed or cancelled, `None` if
    /// there is no deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use hatchery::Deadline;
    /// let now = Instant::now();
    /// assert_eq!(Deadline::Never.remaining(now), None);
    /// assert_eq!(Deadline::Cancelled.remaining(now), Some(Duration::ZERO));
    /// assert_eq!(Deadline::At(now + Duration::from_secs(2)).remaining(now), Some(Duration::from_secs(2)));
    /// ```
    pub fn remaining(self, now: Instant) -> Option<Duration> {
        self.instant(now).map(|i| i.saturating_duration_since(now))
    }

    /// Whether an enclosing scope is already cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::{checkpoint, current_effective_deadline, CancelScope};
    ///
    /// # hatchery_smol::run(async {
    /// assert!(!current_effective_deadline().is_cancelled());
    /// let scope = CancelScope::new();
    /// scope.handle().cancel(); // before entry: the body runs to its first suspension point
    /// scope
    ///     .run(async {
    ///         // Don't start work that cannot finish.
    ///         assert!(current_effective_deadline().is_cancelled());
    ///         checkpoint().await;
    ///     })
    ///     .await;
    /// # });
    /// ```
    pub fn is_cancelled(self) -> bool {
        self == Deadline::Cancelled
    }
}

/// The earliest deadline of the enclosing cancel scopes, up to the nearest shield, or
/// [`Deadline::Cancelled`] if one of them is already cancelled.
///
/// Libraries pass this to the I/O they do, so that a whole call tree honours the
/// deadline set by its caller. Inside a nursery's child task, the scopes around the
/// nursery count too.
///
/// # Panics
///
/// Outside a hatchery runtime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::testing::virtual_time;
/// use hatchery::{current_effective_deadline, move_on_after, now, CancelScope, Deadline};
///
/// # hatchery_smol::run(virtual_time(async {
/// assert_eq!(current_effective_deadline(), Deadline::Never);
/// let start = now();
/// move_on_after(Duration::from_secs(10), async {
///     move_on_after(Duration::from_secs(60), async {
///         // The earliest of the two, the outer one:
///         let d = current_effective_deadline();
///         assert_eq!(d, Deadline::At(start + Duration::from_secs(10)));
///         assert_eq!(d.remaining(now()), Some(Duration::from_secs(10)));
///         // Up to the nearest shield: the deadlines outside it do not count inside.
///         let shielded = CancelScope::new().with_shield(true);
///         let inside = shielded.run(async { current_effective_deadline() }).await;
///         assert_eq!(inside, Some(Deadline::Never));
///     })
///     .await;
/// })
/// .await;
/// # }));
/// ```
pub fn current_effective_deadline() -> Deadline {
    rt::with_current(|c| {
        let node = &c.expect(rt::NO_RUNTIME).node;
        if node.is_cancelled() {
            return Deadline::Cancelled;
        }
        match node.effective_deadline() {
            Some(d) => Deadline::At(d),
            None => Deadline::Never,
        }
    })
}

/// Runs the blocking function `f` on the runtime's blocking thread pool and waits for its
/// result.
///
/// Like any future, it does nothing until it is polled: `f` is handed to the pool at the
/// first poll (anyio's `to_thread.run_sync` starts nothing before it is awaited either),
/// and not at all if the enclosing scope is cancelled by then.
///
/// `f` runs on a plain thread, outside hatchery: hatchery's functions that need a run
/// ([`now`](crate::now), the scopes, [`testing::elapsed`](crate::testing::elapsed), ...)
/// panic there as they do outside any runtime. Read what it needs before, and reach back
/// with the blocking forms of the [`sync`](crate::sync) primitives
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
///
/// To bound how many threads run at once (anyio's `limiter=`), move a token of a
/// [`CapacityLimiter`](crate::sync::CapacityLimiter) into `f`. It returns when the
/// thread is done, not when the waiter stops waiting, so a cancelled wait does not let
/// more threads through than the limit:
///
/// ```
/// use std::sync::Arc;
/// use hatchery::{nursery, run_blocking, sync::CapacityLimiter};
///
/// # hatchery_smol::run(async {
/// let limiter = Arc::new(CapacityLimiter::new(2));
/// nursery(|n| async move {
///     for i in 0..8u64 {
///         let limiter = limiter.clone();
///         n.spawn(async move {
///             let token = limiter.acquire().await;
///             let l = limiter.clone();
///             let square = run_blocking(move || {
///                 let _token = token; // held for as long as the thread works
///                 assert!(l.borrowed_tokens() <= 2);
///                 i * i
///             })
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
pub fn run_blocking<T, F>(f: F) -> RunBlocking<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let shared = Arc::new(BlockingShared {
        result: Mutex::new(None),
        waker: AtomicWaker::new(),
    });
    let mut job = BlockingJob {
        f: Some(f),
        shared: shared.clone(),
    };
    let job: Box<dyn FnOnce() + Send> = Box::new(move || {
        let f = job.f.take().expect("blocking work runs once");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        job.shared.finish(BlockingResult::Ran(r));
    });
    RunBlocking {
        shared,
        job: Mutex::new(Some(job)),
        done: false,
    }
}

/// How blocking work ended.
enum BlockingResult<T> {
    /// It ran: its value, or its panic.
    Ran(std::thread::Result<T>),
    /// The runtime dropped it without running it.
    Dropped,
}

struct BlockingShared<T> {
    result: Mutex<Option<BlockingResult<T>>>,
    waker: AtomicWaker,
}

impl<T> BlockingShared<T> {
    fn finish(&self, result: BlockingResult<T>) {
        *self.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        self.waker.wake();
    }
}

/// The work handed to the pool. A runtime may drop it without running it (tokio does once
/// it has shut down): the waiter then gets a panic instead of waiting for good.
struct BlockingJob<T, F> {
    f: Option<F>,
    shared: Arc<BlockingShared<T>>,
}

impl<T, F> Drop for BlockingJob<T, F> {
    fn drop(&mut self) {
        if self.f.take().is_some() {
            self.shared.finish(BlockingResult::Dropped);
        }
    }
}

/// Future returned by [`run_blocking`].
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
#[must_use = "futures do nothing unless polled"]
pub struct RunBlocking<T> {
    shared: Arc<BlockingShared<T>>,
    /// The work, until the first poll hands it to the pool. (In a `Mutex` only to keep
    /// the future `Sync`: it is reached through `&mut self`, never locked.)
    job: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// It has returned (or panicked with) the result.
    done: bool,
}

impl<T> Future for RunBlocking<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        assert!(
            !self.done,
            "hatchery: `RunBlocking` polled after completion"
        );
        if rt::current_cancelled() {
            return Poll::Pending;
        }
        let job = self.job.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(job) = job {
            // Called outside the context's borrow: a runtime that runs the work inline
            // (against its contract) then still works, if slowly.
            let runtime = rt::with_current(|c| c.expect(rt::NO_RUNTIME).rt.clone());
            runtime.spawn_blocking(job);
        }
        self.shared.waker.register(cx.waker());
        let taken = self
            .shared
            .result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if taken.is_some() {
            self.done = true;
        }
        match taken {
            Some(BlockingResult::Ran(Ok(v))) => Poll::Ready(v),
            // The work's own panic, already reported by the hook where it happened.
            Some(BlockingResult::Ran(Err(p))) => std::panic::resume_unwind(p),
            // A new panic, which the hook shows.
            Some(BlockingResult::Dropped) => panic!(
                "hatchery: the runtime dropped the work of `run_blocking` without running it \
                 (has it shut down?)"
            ),
            None => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for RunBlocking<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunBlocking").finish_non_exhaustive()
    }
}
