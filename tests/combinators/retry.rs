//! `retry`: attempts, backoff delays, the retry predicate, the elapsed-time limit, and
//! cancellation (the waits are hatchery sleeps); `HatcherySleeper` with backon's own API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hatchery::backon::{ConstantBuilder, ExponentialBuilder, Retryable};
use hatchery::testing::virtual_time;
use hatchery::{move_on_after, retry, sleep, Backoff, HatcherySleeper};
use hatchery_tests::{ms, Counter, TestError, HOUR};

/// An operation that fails `failures` times, then succeeds; counts its attempts.
fn flaky(
    attempts: &Counter,
    failures: usize,
) -> impl FnMut() -> std::future::Ready<Result<usize, TestError>> {
    let attempts = attempts.clone();
    move || {
        let n = attempts.incr();
        std::future::ready(if n <= failures {
            Err(TestError("busy"))
        } else {
            Ok(n)
        })
    }
}

fn fast() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(ms(1))
        .with_max_delay(ms(4))
        .without_max_times()
}

/// Retries until the operation succeeds.
#[hatchery::test]
async fn succeeds_after_failures() {
    let attempts = Counter::new();
    let r = retry(flaky(&attempts, 2)).backoff(fast()).await;
    assert_eq!(r, Ok(3));
    assert_eq!(attempts.get(), 3);
}

/// A first success makes no retry.
#[hatchery::test]
async fn first_success_is_returned() {
    let attempts = Counter::new();
    assert_eq!(retry(flaky(&attempts, 0)).await, Ok(1));
    assert_eq!(attempts.get(), 1);
}

/// After `max_attempts` attempts (the first included) the last error is returned.
#[hatchery::test]
async fn stops_after_max_attempts() {
    let attempts = Counter::new();
    let r = retry(flaky(&attempts, 100))
        .backoff(fast())
        .max_attempts(4)
        .await;
    assert_eq!(r, Err(TestError("busy")));
    assert_eq!(attempts.get(), 4);
    let attempts = Counter::new();
    let r = retry(flaky(&attempts, 100)).max_attempts(1).await;
    assert_eq!(r, Err(TestError("busy")));
    assert_eq!(attempts.get(), 1);
}

/// The policy's own limit applies too (backon's `max_times` counts retries).
#[hatchery::test]
async fn the_policy_can_stop_first() {
    let attempts = Counter::new();
    let policy = ExponentialBuilder::new()
        .with_min_delay(ms(1))
        .with_max_times(1);
    let r = retry(flaky(&attempts, 100))
        .backoff(policy)
        .max_attempts(10)
        .await;
    assert!(r.is_err());
    assert_eq!(attempts.get(), 2);
}

/// Errors the predicate rejects are returned at once.
#[hatchery::test]
async fn errors_not_retryable_are_returned_at_once() {
    let attempts = Counter::new();
    let r = retry(flaky(&attempts, 100))
        .backoff(fast())
        .max_attempts(5)
        .when(|e: &TestError| e.0 != "busy")
        .await;
    assert_eq!(r, Err(TestError("busy")));
    assert_eq!(attempts.get(), 1);
}

/// The delays follow the policy (exponential, capped) and `notify` sees each one.
#[hatchery::test]
async fn delays_follow_the_policy() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let attempts = Counter::new();
    let log = seen.clone();
    let r = retry(flaky(&attempts, 4))
        .backoff(fast())
        .max_attempts(10)
        .notify(move |e: &TestError, d: Duration| log.lock().unwrap().push((e.0, d.as_micros())))
        .await;
    assert_eq!(r, Ok(5));
    let seen = seen.lock().unwrap().clone();
    // backon computes in f32 seconds: compare in whole microseconds.
    assert_eq!(
        seen,
        [
            ("busy", 1000),
            ("busy", 2000),
            ("busy", 4000),
            ("busy", 4000)
        ]
    );
}

/// With jitter, every delay is at least the base delay and less
/// than twice it.
#[hatchery::test]
async fn jitter_stays_within_bounds() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let attempts = Counter::new();
    let log = seen.clone();
    let r = retry(flaky(&attempts, 100))
        .backoff(
            ExponentialBuilder::new()
                .with_min_delay(ms(2))
                .with_jitter()
                .without_max_times(),
        )
        .max_attempts(3)
        .notify(move |_: &TestError, d: Duration| log.lock().unwrap().push(d.as_micros()))
        .await;
    assert!(r.is_err());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!((2000..=4000).contains(&seen[0]), "{seen:?}");
    assert!((4000..=8000).contains(&seen[1]), "{seen:?}");
}

/// `max_elapsed`: no wait is started that would end after the limit.
#[hatchery::test]
async fn stops_at_max_elapsed() {
    let attempts = Counter::new();
    let r = retry(flaky(&attempts, usize::MAX))
        .backoff(
            ConstantBuilder::new()
                .with_delay(ms(20))
                .without_max_times(),
        )
        .max_attempts(usize::MAX)
        .max_elapsed(ms(50))
        .await;
    assert!(r.is_err());
    // Attempts at about 0, 20 and 40 ms at most; the next wait would end after 50 ms.
    assert!(
        (1..=3).contains(&attempts.get()),
        "{} attempts",
        attempts.get()
    );
}

/// On a virtual clock, hour-long backoffs take no real time and the waits are exact:
/// 1 h + 2 h + 4 h before the fourth attempt succeeds.
#[hatchery::test]
async fn backoff_on_virtual_time() {
    virtual_time(async {
        let attempts = Counter::new();
        let t0 = hatchery::now();
        let policy = ExponentialBuilder::new()
            .with_min_delay(HOUR)
            .with_max_delay(HOUR * 100)
            .without_max_times();
        let r = retry(flaky(&attempts, 3))
            .backoff(policy)
            .max_attempts(5)
            .await;
        assert_eq!(r, Ok(4));
        assert_eq!((hatchery::now() - t0).as_secs(), 7 * 3600);
    })
    .await;
}

/// On a virtual clock `max_elapsed` is exact: with 20-minute waits and a 50-minute
/// limit, attempts start at 0, 20 and 40 minutes, and the next wait is not started.
#[hatchery::test]
async fn max_elapsed_on_virtual_time() {
    virtual_time(async {
        let attempts = Counter::new();
        let t0 = hatchery::now();
        let r = retry(flaky(&attempts, usize::MAX))
            .backoff(
                ConstantBuilder::new()
                    .with_delay(HOUR / 3)
                    .without_max_times(),
            )
            .max_attempts(usize::MAX)
            .max_elapsed(HOUR * 5 / 6)
            .await;
        assert!(r.is_err());
        assert_eq!(attempts.get(), 3);
        assert_eq!((hatchery::now() - t0).as_secs(), 40 * 60);
    })
    .await;
}

/// The waits are hatchery sleeps: a cancelled scope stops the retrying, and no attempt
/// starts after it returns.
#[hatchery::test]
async fn cancellation_stops_retrying() {
    let attempts = Counter::new();
    let r = move_on_after(
        ms(20),
        retry(flaky(&attempts, usize::MAX))
            .backoff(ConstantBuilder::new().with_delay(ms(2)).without_max_times())
            .max_attempts(usize::MAX),
    )
    .await;
    assert_eq!(r, None);
    let after = attempts.get();
    assert!(after >= 1);
    sleep(ms(10)).await;
    assert_eq!(
        attempts.get(),
        after,
        "an attempt ran after the scope returned"
    );
}

/// A running attempt is dropped when the scope is cancelled.
#[hatchery::test]
async fn cancellation_drops_the_running_attempt() {
    let dropped = Counter::new();
    let r = move_on_after(
        ms(5),
        retry(|| {
            let guard = dropped.guard();
            async move {
                let _guard = guard;
                sleep(HOUR).await;
                Ok::<u8, TestError>(0)
            }
        }),
    )
    .await;
    assert_eq!(r, None);
    assert_eq!(dropped.get(), 1);
}

/// backon's own API with `HatcherySleeper`: its backoff waits are hatchery sleeps, so
/// an hour-long backoff ends with the enclosing scope.
#[hatchery::test]
async fn backon_with_hatchery_sleeper() {
    let attempts = Counter::new();
    let r = flaky(&attempts, 1)
        .retry(ExponentialBuilder::new().with_min_delay(ms(1)))
        .sleep(HatcherySleeper)
        .await;
    assert_eq!(r, Ok(2));
    let attempts = Counter::new();
    let r = move_on_after(
        ms(10),
        flaky(&attempts, 100)
            .retry(ConstantBuilder::new().with_delay(HOUR))
            .sleep(HatcherySleeper),
    )
    .await;
    assert_eq!(r, None);
    assert_eq!(attempts.get(), 1);
}

/// Zero attempts would return nothing: a clear panic.
#[test]
#[should_panic(expected = "at least one attempt")]
fn zero_attempts_panics() {
    drop(retry(|| async { Ok::<u8, TestError>(0) }).max_attempts(0));
}

/// The default delays grow from about 100 ms and stop growing at 10 s, jitter on top: no
/// delay is over 20 s, and the last ones, at the cap, are at least 10 s.
#[hatchery::test(virtual_time)]
async fn default_delays_are_capped() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let r = retry(|| std::future::ready(Err::<(), _>(TestError("busy"))))
        .max_attempts(12)
        .notify(move |_: &TestError, d: Duration| log.lock().unwrap().push(d))
        .await;
    assert!(r.is_err());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 11);
    assert!(seen[0] >= ms(100) && seen[0] <= ms(200), "{seen:?}");
    assert!(
        seen.iter().all(|d| *d <= Duration::from_secs(20)),
        "{seen:?}"
    );
    assert!(
        seen[8..].iter().all(|d| *d >= Duration::from_secs(10)),
        "{seen:?}"
    );
}

/// The default policy without jitter waits exactly 100, 200 and 400 ms on a virtual
/// clock, to the nanosecond: its delays are whole nanoseconds (backon's
/// `ExponentialBuilder`, computing in `f32`, waits 700.000009 ms in all).
#[hatchery::test(virtual_time)]
async fn default_backoff_is_exact() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let r = retry(|| std::future::ready(Err::<(), _>(TestError("busy"))))
        .backoff(Backoff::new().without_jitter())
        .max_attempts(4)
        .notify(move |_: &TestError, d: Duration| log.lock().unwrap().push(d))
        .await;
    assert!(r.is_err());
    assert_eq!(*seen.lock().unwrap(), [ms(100), ms(200), ms(400)]);
    assert_eq!(hatchery::testing::elapsed(), ms(700));
}

/// A factor of 1.5 and a cap: exact delays too, and the cap holds from the first delay
/// that would pass it.
#[hatchery::test(virtual_time)]
async fn fractional_factor_is_exact() {
    let start = hatchery::now();
    let r = retry(|| std::future::ready(Err::<(), _>(TestError("busy"))))
        .backoff(
            Backoff::new()
                .with_min_delay(ms(40))
                .with_factor(1.5)
                .with_max_delay(ms(100))
                .without_jitter(),
        )
        .max_attempts(6)
        .await;
    assert!(r.is_err());
    // 40 + 60 + 90 + 100 + 100
    assert_eq!(hatchery::now() - start, ms(390));
}

/// Seeded jitter: the same delays on every run, each between the delay and twice it, and
/// the clock moves by exactly their sum.
#[hatchery::test(virtual_time)]
async fn seeded_jitter_is_repeatable_and_exact() {
    let run = || async {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let start = hatchery::now();
        let _ = retry(|| std::future::ready(Err::<(), _>(TestError("busy"))))
            .backoff(Backoff::new().with_jitter_seed(99))
            .max_attempts(5)
            .notify(move |_: &TestError, d: Duration| log.lock().unwrap().push(d))
            .await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(hatchery::now() - start, seen.iter().sum::<Duration>());
        seen
    };
    let first = run().await;
    assert_eq!(run().await, first);
    for (d, base) in first.iter().zip([100, 200, 400, 800]) {
        assert!(*d >= ms(base) && *d <= ms(2 * base), "{first:?}");
    }
}

/// A retry polled again after it returned panics, instead of starting over with another
/// attempt.
#[hatchery::test]
async fn retry_polled_after_completion_panics() {
    let attempts = Counter::new();
    let mut r = std::pin::pin!(retry(flaky(&attempts, 0)));
    assert_eq!((&mut r).await, Ok(1));
    let e = hatchery_tests::catch_panic(r).await.unwrap_err();
    assert!(e.contains("`Retry` polled after completion"), "{e}");
    assert_eq!(attempts.get(), 1, "no second attempt");
}
