//! `to_thread::run_sync`: work on a thread under a capacity limiter, and what a
//! cancellation of its caller does (the `to_thread` module's table); `run_blocking`, the
//! same without a limiter, abandoned on cancellation (rule W6).
//!
//! Most tests here wait for plain OS threads, which hatchery cannot see, so they run on
//! real time; they assert orders of events, never durations.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future::zip;
use hatchery::sync::{CapacityLimiter, Event};
use hatchery::testing::elapsed;
use hatchery::{move_on_after, nursery, run_blocking, to_thread, CancelScope};
use hatchery_tests::{catch_panic, eventually, until, Counter, Log};

/// Counts the threads that run at once, and the most that ever did.
#[derive(Default)]
struct Peak {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Peak {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts `n` calls that block until `release` is set, each limited by `limit` (the
/// default limiter if `None`); returns once every call has returned, with their sum.
async fn blocked_calls(
    n: u64,
    limit: Option<Arc<CapacityLimiter>>,
    peak: Arc<Peak>,
    release: Arc<Event>,
) -> u64 {
    nursery(|s| async move {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (peak, release, limit) = (peak.clone(), release.clone(), limit.clone());
                s.spawn(async move {
                    let call = to_thread::run_sync(move || {
                        peak.enter();
                        release.wait_blocking();
                        peak.leave();
                        i
                    });
                    Ok::<_, anyhow::Error>(match &limit {
                        Some(l) => call.limiter(l).await,
                        None => call.await,
                    })
                })
            })
            .collect();
        let mut sum = 0;
        for h in handles {
            sum += h.join().await?;
        }
        Ok(sum)
    })
    .await
    .unwrap()
}

/// Runs `n` calls that block until released, limited by `limit` (the default limiter if
/// `None`); once `cap` threads run, waits until `at_cap` holds, checks that no more
/// threads start, and lets them all go. Returns the most threads that ran at once.
async fn capped(
    n: u64,
    limit: Option<Arc<CapacityLimiter>>,
    cap: usize,
    mut at_cap: impl FnMut() -> bool,
) -> usize {
    let (peak, release) = (Arc::new(Peak::default()), Arc::new(Event::new()));
    let running = || peak.now.load(Ordering::SeqCst);
    let (sum, ()) = zip(
        blocked_calls(n, limit, peak.clone(), release.clone()),
        async {
            until(|| running() == cap).await;
            // The calls beyond the cap are waiting for a token by now, or soon: each was
            // spawned before the cap was reached, but on a multi-thread runtime one may
            // still be on its way to the limiter.
            until(&mut at_cap).await;
            // Give one more thread every chance to start, if it could.
            assert!(!eventually(Duration::from_millis(50), || running() > cap).await);
            release.set();
        },
    )
    .await;
    assert_eq!(sum, (0..n).sum::<u64>());
    peak.max.load(Ordering::SeqCst)
}

/// The default limiter has 40 tokens: 60 calls at once run 40 threads, and the other 20
/// wait for tokens; every call returns in the end, and every token comes back.
#[hatchery::test]
async fn t1_the_default_limiter_caps_threads_at_its_total() {
    let limiter = to_thread::default_limiter();
    assert_eq!(limiter.total_tokens(), 40);
    let peak = capped(60, None, 40, || limiter.statistics().tasks_waiting == 20).await;
    assert_eq!(peak, 40);
    assert_eq!(limiter.borrowed_tokens(), 0);
}

/// The default limiter's total can be changed for the run (anyio's
/// `current_default_thread_limiter().total_tokens = n`); it is one limiter, in every task
/// of the run.
#[hatchery::test]
async fn the_default_limiter_is_settable_and_shared_by_the_run() {
    to_thread::default_limiter().set_total_tokens(3);
    let from_a_task = nursery(|n| async move {
        let h = n.spawn(async { Ok::<_, anyhow::Error>(to_thread::default_limiter()) });
        Ok::<_, anyhow::Error>(h.join().await?)
    })
    .await
    .unwrap();
    assert!(Arc::ptr_eq(&from_a_task, &to_thread::default_limiter()));
    assert_eq!(capped(8, None, 3, || true).await, 3);
}

/// Each run has a default limiter of its own: a test run inside this one starts with 40
/// tokens, whatever this run set.
#[hatchery::test]
async fn each_run_has_its_own_default_limiter() {
    let ours = to_thread::default_limiter();
    ours.set_total_tokens(2);
    let inner = hatchery::testing::virtual_time(async { to_thread::default_limiter() }).await;
    assert!(!Arc::ptr_eq(&ours, &inner));
    assert_eq!(inner.total_tokens(), 40);
    assert_eq!(to_thread::default_limiter().total_tokens(), 2);
}

/// A limiter given for the call caps it instead of the default one, which it leaves
/// alone.
#[hatchery::test]
async fn a_given_limiter_replaces_the_default() {
    let limiter = Arc::new(CapacityLimiter::new(2));
    let peak = capped(6, Some(limiter.clone()), 2, || {
        assert_eq!(to_thread::default_limiter().borrowed_tokens(), 0);
        limiter.borrowed_tokens() == 2
    })
    .await;
    assert_eq!(peak, 2);
    assert_eq!(limiter.borrowed_tokens(), 0);
}

/// With `abandon_on_cancel`, a cancelled scope ends at once while the thread still runs;
/// the thread keeps its token until it is done, then gives it back, and its value is
/// dropped.
#[hatchery::test]
async fn t3_abandon_on_cancel_returns_at_once_and_the_token_comes_back_later() {
    let limiter = Arc::new(CapacityLimiter::new(1));
    let (release, running) = (Arc::new(Event::new()), Arc::new(Event::new()));
    let (dropped, log) = (Counter::new(), Log::new());
    let scope = CancelScope::new();
    let handle = scope.handle();
    let (r, run, l, d) = (
        release.clone(),
        running.clone(),
        log.clone(),
        dropped.clone(),
    );
    let out = scope
        .run(async {
            let call = to_thread::run_sync(move || {
                run.set();
                r.wait_blocking();
                l.push("thread done");
                d.guard()
            })
            .limiter(&limiter)
            .abandon_on_cancel(true);
            zip(call, async {
                running.wait().await;
                handle.cancel();
            })
            .await
        })
        .await;
    log.push("scope returned");
    assert!(out.is_none());
    assert!(handle.cancelled_caught());
    // The thread still runs, and holds its token.
    assert_eq!(limiter.borrowed_tokens(), 1);
    assert_eq!(dropped.get(), 0);
    release.set();
    until(|| limiter.borrowed_tokens() == 0).await;
    until(|| dropped.get() == 1).await; // its value, dropped when it came
    assert_eq!(log.events(), ["scope returned", "thread done"]);
}

/// Without `abandon_on_cancel`, a cancelled scope waits for its thread to end (as for a
/// shield), then catches the cancellation; the thread's value is dropped.
#[hatchery::test]
async fn t2_a_cancelled_caller_waits_for_its_thread() {
    let (release, running) = (Arc::new(Event::new()), Arc::new(Event::new()));
    let (dropped, log) = (Counter::new(), Log::new());
    let scope = CancelScope::new();
    let handle = scope.handle();
    let (r, run, l, d) = (
        release.clone(),
        running.clone(),
        log.clone(),
        dropped.clone(),
    );
    let waiter = async {
        let out = scope
            .run(to_thread::run_sync(move || {
                run.set();
                r.wait_blocking();
                l.push("thread done");
                d.guard()
            }))
            .await;
        log.push("scope returned");
        out
    };
    let canceller = async {
        running.wait().await;
        handle.cancel();
        // The scope is cancelled, and still waits.
        assert!(!eventually(Duration::from_millis(50), || !log.events().is_empty()).await);
        release.set();
    };
    let (out, ()) = zip(waiter, canceller).await;
    assert!(out.is_none());
    assert!(handle.cancelled_caught());
    assert_eq!(log.events(), ["thread done", "scope returned"]);
    assert_eq!(dropped.get(), 1);
    assert_eq!(to_thread::default_limiter().borrowed_tokens(), 0);
}

/// Shielded, the call returns its value to a cancelled caller, which then stops at its
/// next suspension point (rule C6).
#[hatchery::test]
async fn t2_a_shielded_call_returns_its_value_to_a_cancelled_caller() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let got = Log::new();
    let out = scope
        .run(async {
            let v = hatchery::shield(to_thread::run_sync(move || {
                handle.cancel();
                7
            }))
            .await;
            assert_eq!(v, 7);
            got.push("value");
            hatchery::checkpoint().await;
            got.push("not reached");
        })
        .await;
    assert!(out.is_none());
    assert_eq!(got.events(), ["value"]);
}

/// A scope cancelled before the first poll starts no thread and takes no token.
#[hatchery::test]
async fn t1_a_cancelled_scope_starts_nothing() {
    let ran = Counter::new();
    let r = ran.clone();
    let scope = CancelScope::new();
    scope.handle().cancel();
    let out = scope.run(to_thread::run_sync(move || r.incr())).await;
    assert!(out.is_none());
    // Nothing was handed to a thread: give one every chance to run.
    assert!(!eventually(Duration::from_millis(20), || ran.get() > 0).await);
    assert_eq!(to_thread::default_limiter().borrowed_tokens(), 0);
}

/// Cancelled while waiting for a token, a call takes none and starts nothing.
#[hatchery::test]
async fn cancelled_while_waiting_for_a_token() {
    let limiter = CapacityLimiter::new(1);
    let held = limiter.try_acquire().unwrap();
    let ran = Counter::new();
    let r = ran.clone();
    let out = move_on_after(
        Duration::from_millis(10),
        to_thread::run_sync(move || r.incr()).limiter(&limiter),
    )
    .await;
    assert!(out.is_none());
    assert_eq!(limiter.statistics().tasks_waiting, 0);
    drop(held);
    assert_eq!(limiter.borrowed_tokens(), 0);
    assert!(!eventually(Duration::from_millis(20), || ran.get() > 0).await);
}

/// A panic on the thread is resumed in the caller; the token comes back.
#[hatchery::test]
async fn a_panic_on_the_thread_resumes_in_the_caller() {
    let limiter = CapacityLimiter::new(1);
    let err = catch_panic(to_thread::run_sync(|| panic!("boom on a thread")).limiter(&limiter))
        .await
        .unwrap_err();
    assert_eq!(err, "boom on a thread");
    assert_eq!(limiter.borrowed_tokens(), 0);
}

/// A cancelled caller that waits for its thread still gets the thread's panic.
#[hatchery::test]
async fn a_panic_reaches_a_cancelled_caller_that_waited() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let err = catch_panic(scope.run(to_thread::run_sync(move || {
        handle.cancel();
        panic!("after the cancel")
    })))
    .await
    .unwrap_err();
    assert_eq!(err, "after the cancel");
}

/// `run_blocking` is the same work without a limiter, abandoned on cancellation (rule
/// W6): a cancelled scope does not wait.
#[hatchery::test]
async fn t3_run_blocking_abandons_and_takes_no_token() {
    let release = Arc::new(Event::new());
    let r = release.clone();
    let started = Arc::new(Event::new());
    let s = started.clone();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run(zip(
            run_blocking(move || {
                s.set();
                r.wait_blocking();
            }),
            async {
                started.wait().await;
                assert_eq!(to_thread::default_limiter().borrowed_tokens(), 0);
                handle.cancel();
            },
        ))
        .await;
    assert!(out.is_none());
    release.set();
}

/// A thread counts as busy under virtual time: the clock stands still while it runs, so
/// a timeout around it does not fire, however long it takes in real time.
#[hatchery::test(virtual_time)]
async fn t6_a_thread_counts_as_busy_under_virtual_time() {
    let out = move_on_after(
        Duration::from_secs(1),
        to_thread::run_sync(|| std::thread::sleep(Duration::from_millis(30))),
    )
    .await;
    assert_eq!(out, Some(()));
    assert_eq!(elapsed(), Duration::ZERO);
}

/// Polled after it returned, it panics rather than start the work again.
#[hatchery::test]
async fn polled_after_completion_panics() {
    let mut call = Box::pin(to_thread::run_sync(|| 1));
    assert_eq!(call.as_mut().await, 1);
    let err = catch_panic(call.as_mut()).await.unwrap_err();
    assert!(err.contains("polled after completion"), "{err}");
}

/// The builder methods only make sense before the thread starts: afterwards they panic
/// rather than be ignored.
#[hatchery::test]
async fn builders_after_the_first_poll_panic() {
    let limiter = CapacityLimiter::new(1);
    let release = Arc::new(Event::new());
    for abandon in [false, true] {
        let r = release.clone();
        let mut call = to_thread::run_sync(move || r.wait_blocking());
        assert_eq!(futures_lite::future::poll_once(&mut call).await, None);
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match abandon {
            false => drop(call.limiter(&limiter)),
            true => drop(call.abandon_on_cancel(true)),
        }))
        .unwrap_err();
        assert!(hatchery_tests::panic_message(&*err).contains("after the first poll"));
    }
    release.set();
}
