//! `retry`: exponential backoff with jitter on hatchery's clock, with backon's policies.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use pin_project_lite::pin_project;

use super::Backoff;
use crate::time::{now, sleep, Sleep};

/// A [`backon::Sleeper`] that sleeps with [`hatchery::sleep`](crate::sleep).
///
/// Use it with backon's own retry API (`.sleep(HatcherySleeper)`) so that its backoff
/// sleeps run on the runtime's clock (a virtual clock in tests) and respect cancel scopes:
/// in a cancelled scope the sleep never completes and the scope drops the whole retry.
/// [`retry`] uses it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::backon::{ExponentialBuilder, Retryable};
/// use hatchery::HatcherySleeper;
///
/// # hatchery_smol::run(async {
/// let mut calls = 0;
/// let v = (|| { calls += 1; let n = calls; async move { if n < 3 { Err("busy") } else { Ok(n) } } })
///     .retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(1)))
///     .sleep(HatcherySleeper)
///     .await;
/// assert_eq!(v, Ok(3));
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HatcherySleeper;

impl backon::Sleeper for HatcherySleeper {
    type Sleep = Sleep;

    fn sleep(&self, dur: Duration) -> Sleep {
        sleep(dur)
    }
}

/// Calls `f` and awaits the future it returns; if that fails, waits (exponential backoff
/// with jitter) and tries again, until it succeeds or a limit is reached.
///
/// The defaults: at most **3 attempts**; delays of 100 ms, 200 ms, 400 ms ... up to
/// 10 s, each with up to 100% random jitter added (so that clients that failed together
/// do not retry together), so at most 20 s each ([`Backoff::new`]); every error is
/// retried; no limit on the elapsed time. (The jitter is random: for exact timings in a
/// virtual-time test, give [`backoff`](Retry::backoff) `Backoff::new().without_jitter()`,
/// or a seed: `with_jitter_seed`. [`Backoff`] computes its delays in whole nanoseconds,
/// so they add up exactly.)
/// Change them with the builder methods:
///
/// * [`max_attempts`](Retry::max_attempts): attempts in total, the first included;
/// * [`max_elapsed`](Retry::max_elapsed): no retry starts later than this after the first
///   attempt started;
/// * [`when`](Retry::when): which errors are worth retrying;
/// * [`backoff`](Retry::backoff): [`Backoff`] with other settings, or any
///   [backon](crate::backon) policy (`ConstantBuilder`, `FibonacciBuilder`, an iterator
///   of durations);
/// * [`notify`](Retry::notify): a callback before each wait, to log the error.
///
/// Attempts run one after the other in the caller's task (nothing is spawned). The waits
/// are [`hatchery::sleep`](crate::sleep)s on the runtime's clock, so they honour cancel
/// scopes and a virtual clock. An attempt is not cut short by `max_elapsed`: give each
/// attempt its own timeout with [`fail_after`](crate::fail_after) inside `f`.
///
/// # Why backon, and why this loop
///
/// The delays come from backon's policies ([`Backoff`] is one: an exponential policy in
/// exact integer arithmetic, where backon's `ExponentialBuilder` computes in `f32`), and
/// [`HatcherySleeper`] plugs hatchery's clock into backon's own `Retryable` API. The loop itself is hatchery's (about 50 lines)
/// rather than backon's `Retry` future, because `max_elapsed` must be measured from the
/// start of the first attempt on hatchery's clock, and backon's hooks only run after an
/// attempt has failed; counting attempts here also makes `max_attempts` mean the same for
/// every policy.
///
/// # Errors
///
/// The error of the last attempt, returned at once when no retry follows it: `when`
/// returns false for it (a final error is not retried); it was attempt `max_attempts`;
/// the backoff policy has no more delays; or the next delay would start the retry more
/// than `max_elapsed` after the first attempt started.
///
/// # Cancel safety
///
/// Dropping the future drops the running attempt or the wait; no further attempt is made.
/// If the enclosing scope is cancelled, the running attempt is dropped at its suspension
/// point (or the wait never completes) and the scope returns: no more attempts start.
///
/// # Panics
///
/// When it needs the clock outside a hatchery runtime: at its first poll if
/// `max_elapsed` is set, otherwise before its first wait between attempts. When polled
/// after it returned (it does not start over).
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use hatchery::{retry, Backoff};
///
/// #[derive(Debug, PartialEq)]
/// enum Error { Busy, NotFound }
///
/// static CALLS: AtomicU32 = AtomicU32::new(0);
///
/// async fn flaky() -> Result<&'static str, Error> {
///     if CALLS.fetch_add(1, Ordering::SeqCst) < 2 { Err(Error::Busy) } else { Ok("hello") }
/// }
///
/// # hatchery_smol::run(async {
/// let v = retry(flaky)
///     .max_attempts(5)
///     .max_elapsed(Duration::from_secs(2))
///     .when(|e| *e == Error::Busy) // NotFound is final
///     .backoff(Backoff::new().with_min_delay(Duration::from_millis(1)))
///     .await;
/// assert_eq!(v, Ok("hello"));
/// assert_eq!(CALLS.load(Ordering::SeqCst), 3);
///
/// let gone = retry(|| async { Err::<(), _>(Error::NotFound) }).when(|e| *e == Error::Busy).await;
/// assert_eq!(gone, Err(Error::NotFound)); // not retried
/// # });
/// ```
#[allow(clippy::type_complexity)] // the defaults of the builder methods
pub fn retry<F, Fut, T, E>(f: F) -> Retry<F, Fut, Backoff, fn(&E) -> bool, fn(&E, Duration)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    Retry::configured(f, Some(Backoff::new()), |_| true, |_, _| {})
}

pin_project! {
    /// Future returned by [`retry`]; its methods configure it before it is awaited.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    /// use hatchery::backon::ConstantBuilder;
    /// use hatchery::futures::Retry;
    /// use hatchery::retry;
    ///
    /// # hatchery_smol::run(async {
    /// let calls = AtomicU32::new(0);
    /// let fut: Retry<_, _, _, _, _> = retry(|| {
    ///     let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
    ///     async move { if n < 2 { Err("busy") } else { Ok(n) } }
    /// })
    /// .backoff(ConstantBuilder::new().with_delay(Duration::from_millis(1)));
    /// assert_eq!(calls.load(Ordering::SeqCst), 0); // nothing is tried before it is awaited
    /// assert_eq!(fut.await, Ok(2));
    /// # });
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct Retry<F, Fut, B: BackoffBuilder, P, N> {
        f: F,
        builder: Option<B>,
        backoff: Option<B::Backoff>,
        when: P,
        notify: N,
        max_attempts: usize,
        max_elapsed: Option<Duration>,
        attempts: usize,
        give_up_at: Option<Instant>,
        #[pin]
        attempt: Option<Fut>,
        wait: Option<Sleep>,
    }
}

impl<F, Fut, B: BackoffBuilder, P, N> Retry<F, Fut, B, P, N> {
    /// A retry with these settings and the default limits, not started: what [`retry`]
    /// and the setters make.
    fn configured(f: F, builder: Option<B>, when: P, notify: N) -> Self {
        Retry {
            f,
            builder,
            backoff: None,
            when,
            notify,
            max_attempts: 3,
            max_elapsed: None,
            attempts: 0,
            give_up_at: None,
            attempt: None,
            wait: None,
        }
    }

    /// This retry with the policy, predicate and callback that `with` makes of its own,
    /// its limits kept: what the setters that change a type make.
    fn rebuild<B2: BackoffBuilder, P2, N2>(
        self,
        with: impl FnOnce(Option<B>, P, N) -> (Option<B2>, P2, N2),
    ) -> Retry<F, Fut, B2, P2, N2> {
        let (builder, when, notify) = with(self.builder, self.when, self.notify);
        Retry {
            max_attempts: self.max_attempts,
            max_elapsed: self.max_elapsed,
            ..Retry::configured(self.f, builder, when, notify)
        }
    }

    /// The number of attempts in total, the first included (3 by default). `1` means no
    /// retry.
    ///
    /// # Panics
    ///
    /// If `n` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{backon::ConstantBuilder, retry};
    ///
    /// # hatchery_smol::run(async {
    /// let mut attempts = 0;
    /// let r = retry(|| { attempts += 1; async { Err::<(), _>("down") } })
    ///     .backoff(ConstantBuilder::new().with_delay(Duration::from_millis(1)).without_max_times())
    ///     .max_attempts(4)
    ///     .await;
    /// assert_eq!((r, attempts), (Err("down"), 4)); // the first attempt and 3 retries
    /// # });
    /// ```
    #[track_caller]
    pub fn max_attempts(mut self, n: usize) -> Self {
        assert!(n > 0, "hatchery: `retry` needs at least one attempt");
        self.max_attempts = n;
        self
    }

    /// Gives up once `limit` has passed since the first attempt started, on the runtime's
    /// clock: a wait that would end later is not started, and the last error is returned.
    /// A running attempt is not interrupted. No limit by default.
    ///
    /// An enclosing timeout does not count here: one that passes during an attempt or a
    /// wait cancels the retry, and its caller gets the timeout, not the last error. If
    /// the last error matters, set `max_elapsed` a little below that timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{backon::ConstantBuilder, retry};
    ///
    /// # hatchery_smol::run(async {
    /// let mut attempts = 0;
    /// let r = retry(|| { attempts += 1; async { Err::<(), _>("busy") } })
    ///     .backoff(ConstantBuilder::new().with_delay(Duration::from_millis(30)).without_max_times())
    ///     .max_attempts(usize::MAX)
    ///     .max_elapsed(Duration::from_millis(10)) // the first wait would end too late
    ///     .await;
    /// assert_eq!((r, attempts), (Err("busy"), 1));
    /// # });
    /// ```
    pub fn max_elapsed(mut self, limit: Duration) -> Self {
        self.max_elapsed = Some(limit);
        self
    }

    /// Retries only the errors for which `retryable` returns true; any other error is
    /// returned at once. Every error is retried by default.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use hatchery::retry;
    ///
    /// # hatchery_smol::run(async {
    /// let mut attempts = 0;
    /// let r = retry(|| { attempts += 1; async { Err::<(), _>(ErrorKind::NotFound) } })
    ///     .when(|e| *e == ErrorKind::TimedOut) // only timeouts are worth another try
    ///     .await;
    /// assert_eq!((r, attempts), (Err(ErrorKind::NotFound), 1));
    /// # });
    /// ```
    pub fn when<P2, T, E>(self, retryable: P2) -> Retry<F, Fut, B, P2, N>
    where
        Fut: Future<Output = Result<T, E>>,
        P2: FnMut(&E) -> bool,
    {
        self.rebuild(|builder, _, notify| (builder, retryable, notify))
    }

    /// Calls `notify(&error, delay)` after a failed attempt, before waiting `delay` for
    /// the next one: for logging and metrics.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{backon::ConstantBuilder, retry};
    ///
    /// # hatchery_smol::run(async {
    /// let mut waits = Vec::new();
    /// let r = retry(|| async { Err::<(), _>("busy") })
    ///     .backoff(ConstantBuilder::new().with_delay(Duration::from_millis(1)))
    ///     .notify(|e, delay| waits.push(format!("{e}; retrying in {delay:?}")))
    ///     .await;
    /// assert_eq!(r, Err("busy"));
    /// assert_eq!(waits, ["busy; retrying in 1ms", "busy; retrying in 1ms"]); // 3 attempts
    /// # });
    /// ```
    pub fn notify<N2, T, E>(self, notify: N2) -> Retry<F, Fut, B, P, N2>
    where
        Fut: Future<Output = Result<T, E>>,
        N2: FnMut(&E, Duration),
    {
        self.rebuild(|builder, when, _| (builder, when, notify))
    }

    /// Uses `policy` for the delays between attempts: [`Backoff`] with other settings
    /// (`Backoff::new().with_min_delay(..)`), or any backon
    /// [`BackoffBuilder`](backon::BackoffBuilder).
    ///
    /// The policy's own limits apply too: the attempts stop when the policy runs out of
    /// delays (backon's builders stop after `max_times` retries, 3 unless changed; call
    /// `without_max_times()` to let [`max_attempts`](Retry::max_attempts) alone decide;
    /// [`Backoff`] never runs out). backon's `ExponentialBuilder` computes its delays in
    /// `f32`, a few nanoseconds off (100 ms doubled is 200.000003 ms); [`Backoff`]'s are
    /// exact.
    ///
    /// A delay is slept as the policy gives it. A policy whose delays grow without bound
    /// (`without_max_delay()` over many attempts; a NaN or negative factor, which backon
    /// turns into the longest delay) reaches `Duration::MAX`, a sleep that never ends: keep
    /// a `with_max_delay`, or bound the whole retry with
    /// [`max_elapsed`](Retry::max_elapsed) or a deadline. (Some of backon's own
    /// arithmetic, jitter on a `ConstantBuilder` and `with_total_delay`'s sum, panics on
    /// overflow instead, with delays near `Duration::MAX`.)
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{backon::ConstantBuilder, retry};
    ///
    /// # hatchery_smol::run(async {
    /// let mut waits = Vec::new();
    /// let r = retry(|| async { Err::<(), _>("busy") })
    ///     .backoff(ConstantBuilder::new().with_delay(Duration::from_millis(2)).with_max_times(1))
    ///     .max_attempts(10)
    ///     .notify(|_, delay| waits.push(delay))
    ///     .await;
    /// assert_eq!(r, Err("busy"));
    /// assert_eq!(waits, [Duration::from_millis(2)]); // the policy allowed one retry only
    /// # });
    /// ```
    pub fn backoff<B2: BackoffBuilder>(self, policy: B2) -> Retry<F, Fut, B2, P, N> {
        self.rebuild(|_, when, notify| (Some(policy), when, notify))
    }
}

/// Terminated once it has returned (its policy is then dropped).
impl<F, Fut, B: BackoffBuilder, P, N> futures_core::future::FusedFuture for Retry<F, Fut, B, P, N>
where
    Self: Future,
{
    fn is_terminated(&self) -> bool {
        self.builder.is_none() && self.backoff.is_none()
    }
}

impl<F, Fut, T, E, B, P, N> Future for Retry<F, Fut, B, P, N>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    B: BackoffBuilder,
    P: FnMut(&E) -> bool,
    N: FnMut(&E, Duration),
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, E>> {
        let mut this = self.project();
        // The policy is built at the first attempt and dropped at the end: with neither,
        // the retry has finished.
        assert!(
            this.builder.is_some() || this.backoff.is_some(),
            "`Retry` polled after completion"
        );
        let out = loop {
            if let Some(wait) = this.wait {
                ready!(Pin::new(wait).poll(cx));
                *this.wait = None;
            }
            if this.attempt.is_none() {
                if let Some(builder) = this.builder.take() {
                    // The first attempt: start the clocks.
                    *this.backoff = Some(builder.build());
                    if let Some(limit) = *this.max_elapsed {
                        *this.give_up_at = now().checked_add(limit);
                    }
                }
                *this.attempts += 1;
                this.attempt.set(Some((this.f)()));
            }
            let fut = this.attempt.as_mut().as_pin_mut().expect("attempt present");
            let err = match ready!(fut.poll(cx)) {
                Ok(v) => break Ok(v),
                Err(e) => e,
            };
            this.attempt.set(None);
            if *this.attempts >= *this.max_attempts || !(this.when)(&err) {
                break Err(err);
            }
            let Some(delay) = this.backoff.as_mut().and_then(Iterator::next) else {
                break Err(err);
            };
            let late = |give_up_at| now().checked_add(delay).is_none_or(|t| t > give_up_at);
            if this.give_up_at.is_some_and(late) {
                break Err(err);
            }
            (this.notify)(&err, delay);
            *this.wait = Some(sleep(delay));
        };
        this.attempt.set(None);
        *this.backoff = None;
        Poll::Ready(out)
    }
}

impl<F, Fut, B: BackoffBuilder, P, N> fmt::Debug for Retry<F, Fut, B, P, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("attempts", &self.attempts)
            .field("max_attempts", &self.max_attempts)
            .field("max_elapsed", &self.max_elapsed)
            .finish_non_exhaustive()
    }
}
