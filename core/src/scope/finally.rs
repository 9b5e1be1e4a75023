//! Async cleanup that cancellation cannot cut: [`finally`] and [`finally_with`].

use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::engine::{Outcome, Scoped};
use super::{CancelScope, Shield};
use crate::context;
use crate::diagnostics::{Held, HolderKind};

/// Runs `work`, then `cleanup`, and makes sure `cleanup` runs to its end even when `work`
/// is cancelled: Python's `try: ... finally:` with a shielded `finally` block.
///
/// * If `work` finishes, `cleanup` runs (shielded), then its value is returned.
/// * If an enclosing scope is cancelled, `work` is dropped at its suspension point,
///   `cleanup` runs to its end, shielded from that cancellation, and then the cancellation
///   continues: this future never completes and the cancelled scope returns.
///
/// Give the cleanup its own limit with [`move_on_after`](crate::move_on_after) inside it if it might hang.
/// `cleanup` does not run if `work` panics (only `Drop` runs then).
///
/// # Cancel safety
///
/// Dropping the future from outside hatchery drops `work` and `cleanup` without running
/// the cleanup. Cancellation of an enclosing scope is handled as described above. It
/// holds the scopes of its first poll until its cleanup is done: one kept without being
/// polled keeps a cancelled enclosing scope from ending its body until it is polled
/// again or dropped. Like a scope, it belongs to the scope of its first poll: moved into
/// another (passed by value to a timeout, sent to another task), it follows only the
/// first one's cancellation, and the new one, once cancelled, drops it as from outside
/// hatchery.
///
/// # Panics
///
/// When polled outside a hatchery runtime. When kept past the scope it was first polled
/// in (see [`CancelScope::run`]) and awaited after that scope, cancelled while it ran,
/// has finished: its cleanup has run, and it has no value to return. When polled after
/// it returned.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::time::Duration;
/// use hatchery::{finally, move_on_after, sleep};
///
/// # hatchery_smol::run(async {
/// let closed = AtomicBool::new(false);
/// let out = move_on_after(Duration::from_millis(5), finally(
///     sleep(Duration::from_secs(3600)), // the work: cancelled after 5 ms
///     async {
///         sleep(Duration::from_millis(10)).await; // async cleanup, e.g. `conn.close()`
///         closed.store(true, Ordering::SeqCst);
///     },
/// ))
/// .await;
/// assert_eq!(out, None);
/// assert!(closed.load(Ordering::SeqCst));
/// # });
/// ```
///
/// The cleanup does not learn how the work ended. For a cleanup that depends on it
/// (Python's `except Cancelled:`, a rollback unless the work committed), let the work
/// say so through a flag both futures share (an `AtomicBool`, so that the `finally` can
/// run in a spawned task, which must be `Send`; in the root future a `Cell` does too).
/// Both futures exist at once, so they cannot both borrow one resource mutably: for
/// work on a resource that the cleanup then closes, use [`finally_with`].
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
/// use std::time::Duration;
/// use hatchery::{finally, move_on_after, sleep};
///
/// # hatchery_smol::run(async {
/// let committed = AtomicBool::new(false);
/// let rolled_back = AtomicBool::new(false);
/// let out = move_on_after(Duration::from_millis(5), finally(
///     async {
///         sleep(Duration::from_secs(3600)).await; // cancelled before it commits
///         committed.store(true, SeqCst);
///     },
///     async {
///         if !committed.load(SeqCst) {
///             sleep(Duration::from_millis(1)).await; // e.g. `tx.rollback().await`
///             rolled_back.store(true, SeqCst);
///         }
///     },
/// ))
/// .await;
/// assert_eq!(out, None);
/// assert!(rolled_back.load(SeqCst));
/// # });
/// ```
#[track_caller]
pub fn finally<W: IntoFuture, C: IntoFuture<Output = ()>>(
    work: W,
    cleanup: C,
) -> Finally<W::IntoFuture, C::IntoFuture> {
    Finally {
        work: Scoped::new(CancelScope::new(), work.into_future()),
        // Not `shield`, which the hold warnings would watch as a holder of its own: the
        // `finally` is the holder they name, and it counts the cleanup's polls as its own
        // and follows where the cleanup's shield holds.
        cleanup: Shield {
            scoped: Scoped::new(CancelScope::new().with_shield(true), cleanup.into_future()),
        },
        value: None,
        phase: Phase::Work,
        orphaned: false,
        hold: None,
        site: Location::caller(),
    }
}

/// Where a [`Finally`] is: the work, then the cleanup, then done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The work runs (or has not started).
    Work,
    /// The work is over, finished or dropped; the shielded cleanup runs.
    Cleanup,
    /// The cleanup is done: its value is returned when there is one (or, cancelled, the
    /// future waits to be dropped).
    Cleaned,
    /// The value has been returned.
    Returned,
}

/// [`finally`] for work on a resource that the cleanup then takes: runs
/// `work(&mut resource)`, then `cleanup(resource)`, and makes sure the cleanup runs to its
/// end even when the work is cancelled (Python's `async with session:`, or
/// `try: await s.execute() finally: await s.close()` with a `close` that takes `self`).
///
/// `finally(s.execute(..), s.close())` cannot be written for a resource whose methods
/// take `&mut self` (the two futures would borrow it at once) or whose `close` takes it
/// by value. Here the resource is lent to the work, then handed to the cleanup, which
/// gets it back whether the work finished, was cancelled at a suspension point, or
/// never started. Otherwise everything is as for [`finally`]: the cleanup is shielded
/// (give it its own limit with [`move_on_after`](crate::move_on_after) inside), and does not run if the work
/// panics (the resource is dropped then). Its future is an `async fn`'s, which has no
/// name: box it to keep it in a struct.
///
/// # Cancel safety
///
/// As for [`finally`]: if an enclosing scope is cancelled, the work is dropped at its
/// suspension point, the cleanup runs to its end with the resource, and then this future
/// never completes (the cancelled scope returns). Dropping the future from outside
/// hatchery drops the work and the resource without running the cleanup.
///
/// # Panics
///
/// As for [`finally`].
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
/// use std::time::Duration;
/// use hatchery::{finally_with, move_on_after, sleep};
///
/// static CLOSED: AtomicBool = AtomicBool::new(false);
///
/// struct Session {
///     rows: u32,
/// }
///
/// impl Session {
///     async fn execute(&mut self, _sql: &str) -> u32 {
///         sleep(Duration::from_secs(3600)).await; // a slow query
///         self.rows += 1;
///         self.rows
///     }
///     async fn close(self) {
///         sleep(Duration::from_millis(1)).await; // say goodbye to the server
///         CLOSED.store(true, SeqCst);
///     }
/// }
///
/// # hatchery_smol::run(async {
/// let out = move_on_after(
///     Duration::from_millis(5),
///     finally_with(
///         Session { rows: 0 },
///         async |s: &mut Session| s.execute("UPDATE ...").await,
///         async |s: Session| s.close().await, // runs, shielded, after the timeout
///     ),
/// )
/// .await;
/// assert_eq!(out, None);
/// assert!(CLOSED.load(SeqCst));
/// # });
/// ```
pub async fn finally_with<R, T, W, C>(resource: R, work: W, cleanup: C) -> T
where
    W: AsyncFnOnce(&mut R) -> T,
    C: AsyncFnOnce(R),
{
    // Taken by the work for its duration, and put back even when the work is dropped
    // (cancelled) or unwinds; the two never run at once.
    let slot = std::sync::Mutex::new(Some(resource));
    struct Lent<'a, R>(&'a std::sync::Mutex<Option<R>>, Option<R>);
    impl<R> Drop for Lent<'_, R> {
        fn drop(&mut self) {
            if let Some(r) = self.1.take() {
                *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            }
        }
    }
    let take = || slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    finally(
        async {
            let mut lent = Lent(&slot, take());
            let resource = lent.1.as_mut().expect("the resource is lent once");
            work(resource).await
        },
        async {
            if let Some(resource) = take() {
                cleanup(resource).await;
            }
        },
    )
    .await
}

pin_project! {
    /// Future returned by [`finally`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use hatchery::finally;
    /// use hatchery::futures::Finally;
    ///
    /// # hatchery_smol::run(async {
    /// let steps = RefCell::new(Vec::new());
    /// let fut: Finally<_, _> = finally(
    ///     async {
    ///         steps.borrow_mut().push("work");
    ///         42
    ///     },
    ///     async { steps.borrow_mut().push("cleanup") },
    /// );
    /// assert!(steps.borrow().is_empty()); // nothing runs until it is polled
    /// assert_eq!(fut.await, 42);
    /// assert_eq!(*steps.borrow(), ["work", "cleanup"]);
    /// # });
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct Finally<W: Future, C> {
        #[pin]
        work: Scoped<W>,
        #[pin]
        cleanup: Shield<C>,
        // The work's value, from when it finished until it is returned.
        value: Option<W::Output>,
        phase: Phase,
        // The work was cancelled by a scope that has finished since (see `orphaned`).
        orphaned: bool,
        // Held from the first poll until the cleanup is done, so that a cancelled
        // enclosing scope lets this future notice the cancellation and clean up.
        hold: Option<Held>,
        // Where `finally` was called, for the hold warnings (`diagnostics`).
        site: &'static Location<'static>,
    }
}

impl<W: Future, C: Future<Output = ()>> Future for Finally<W, C> {
    type Output = W::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<W::Output> {
        let mut this = self.project();
        assert!(
            *this.phase != Phase::Returned,
            "hatchery: `finally` future polled after completion"
        );
        if this.hold.is_none() && !this.work.is_entered() {
            let node = &context::current().node;
            *this.hold = Some(Held::new(node, HolderKind::Finally, this.site));
        }
        if *this.phase == Phase::Work {
            let work = this.work.as_mut();
            match Held::poll(this.hold, || work.poll_scoped(cx)) {
                Poll::Ready(Outcome::Done(v)) => *this.value = Some(v),
                // Nothing else can cancel this scope than the scope (finished since) that
                // a kept `finally` was first polled in.
                Poll::Ready(Outcome::Caught(_)) => *this.orphaned = true,
                Poll::Pending if this.work.stalled() => {}
                Poll::Pending => return Poll::Pending,
            }
            // The work is over (finished or dropped). Start the cleanup in this same poll:
            // entering the shield holds the enclosing scopes until it is done.
            *this.phase = Phase::Cleanup;
        }
        if *this.phase == Phase::Cleanup {
            if let Some(held) = this.hold.as_ref().filter(|h| h.is_watched()) {
                // The cleanup's shield holds the scope it is polled in (rule K5): the hold
                // warnings (`diagnostics`) watch this `finally` there.
                held.watch_from(&context::current().node);
            }
            let cleanup = this.cleanup.as_mut();
            if Held::poll(this.hold, || cleanup.poll(cx)).is_pending() {
                return Poll::Pending;
            }
            *this.phase = Phase::Cleaned;
            this.hold.take();
        }
        match this.value.take() {
            Some(v) => {
                *this.phase = Phase::Returned;
                Poll::Ready(v)
            }
            // Cancelled from outside: now that the cleanup is done, the enclosing
            // cancelled scope ends the work. Unless it has finished since: kept past the
            // scope it was first polled in, this `finally` has no value to return.
            None if *this.orphaned || this.work.orphaned() => panic!(
                "hatchery: a `finally` future was cancelled by the scope it was first polled \
                 in, which has finished since, and it has no value to return (its cleanup \
                 ran): await a `finally` in the scope where it started, or drop it"
            ),
            None => Poll::Pending,
        }
    }
}

/// Terminated once it has returned the work's value.
impl<W: Future, C: Future<Output = ()>> futures_core::future::FusedFuture for Finally<W, C> {
    fn is_terminated(&self) -> bool {
        self.phase == Phase::Returned
    }
}

impl<W: Future, C> fmt::Debug for Finally<W, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finally")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}
