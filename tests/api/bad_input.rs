//! Bad input, and what each gets: the table "Bad input" in docs/src/decisions.md, one
//! test (or more) per row. Every outcome is a defined result or a panic whose message
//! says what to do; never a hang, never a silent wrong answer.

use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe, UnwindSafe};
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_lite::future::block_on;
use futures_lite::{stream, StreamExt};
use hatchery::sync::{CapacityLimiter, Event, LimiterError, Lock, Semaphore, TrySendError};
use hatchery::testing::elapsed;
use hatchery::{
    as_completed, batches, checkpoint, current_effective_deadline, fail_after, fail_at, join, map,
    map_stream, memory_stream, move_on_after, move_on_at, now, nursery, race, race_ok, retry,
    service, settle, sleep, sleep_until, try_join, CancelScope, Nursery, NurseryError, StartError,
    TaskHandle, TaskStatus,
};
use hatchery_tests::{catch_panic, ms, panic_message, secs, TestError, HOUR};

/// The panic message of `f`, which must panic.
fn panic_of<R>(f: impl FnOnce() -> R + UnwindSafe) -> String {
    match catch_unwind(f) {
        Ok(_) => panic!("expected a panic"),
        Err(p) => panic_message(&*p),
    }
}

/// An instant a hundred years from now.
fn far_future() -> Instant {
    now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// An instant far in the past: up to about 34 years before `now()`, as far back as the
/// clock reaches (a monotonic clock may start at boot).
fn far_past() -> Instant {
    let now = now();
    let mut back = Duration::from_secs(1 << 30);
    loop {
        if let Some(t) = now.checked_sub(back) {
            return t;
        }
        back /= 2;
    }
}

// ---------------------------------------------------------------- durations and instants

/// `sleep(Duration::ZERO)` suspends once (a checkpoint) and takes no time; in a cancelled
/// scope it does not complete.
#[hatchery::test(virtual_time)]
async fn d9_a_zero_sleep_is_a_checkpoint() {
    sleep(Duration::ZERO).await;
    assert_eq!(elapsed(), Duration::ZERO);
    let scope = CancelScope::new();
    scope.handle().cancel();
    assert_eq!(scope.run(sleep(Duration::ZERO)).await, None);
}

/// `sleep(Duration::MAX)` sleeps forever (no overflow, no panic) until its scope is
/// cancelled.
#[hatchery::test(virtual_time)]
async fn a_max_sleep_sleeps_until_cancelled() {
    assert_eq!(move_on_after(HOUR, sleep(Duration::MAX)).await, None);
    assert_eq!(elapsed(), HOUR);
}

/// `sleep_until` an instant far in the past is a checkpoint; far in the future, a wait
/// that only a cancellation ends.
#[hatchery::test(virtual_time)]
async fn sleep_until_far_instants() {
    sleep_until(far_past()).await;
    assert_eq!(elapsed(), Duration::ZERO);
    assert_eq!(move_on_after(HOUR, sleep_until(far_future())).await, None);
    assert_eq!(elapsed(), HOUR);
}

/// A zero timeout cancels at the first suspension: work that suspends is cut there, work
/// that never suspends completes. The same for every timeout form.
#[hatchery::test(virtual_time)]
async fn zero_timeouts_cancel_at_the_first_suspension() {
    assert_eq!(move_on_after(Duration::ZERO, sleep(secs(1))).await, None);
    assert_eq!(move_on_after(Duration::ZERO, async { 5 }).await, Some(5));
    assert!(fail_after(Duration::ZERO, sleep(secs(1))).await.is_err());
    assert_eq!(fail_after(Duration::ZERO, async { 5 }).await.ok(), Some(5));
    let scope = CancelScope::new().with_timeout(Duration::ZERO);
    assert_eq!(scope.run(checkpoint()).await, None);
    assert_eq!(elapsed(), Duration::ZERO);
}

/// `Duration::MAX` as a timeout means no deadline, in every form.
#[hatchery::test(virtual_time)]
async fn max_timeouts_mean_no_deadline() {
    assert_eq!(move_on_after(Duration::MAX, sleep(HOUR)).await, Some(()));
    assert!(fail_after(Duration::MAX, sleep(HOUR)).await.is_ok());
    let scope = CancelScope::new().with_timeout(Duration::MAX);
    let h = scope.handle();
    let inside = scope
        .run(async {
            sleep(HOUR).await;
            (h.deadline(), current_effective_deadline().instant(now()))
        })
        .await;
    assert_eq!(inside, Some((None, None)));
    assert_eq!(elapsed(), 2 * HOUR + HOUR);
}

/// A deadline far in the past cancels at the first suspension; one far in the future
/// never fires (and is kept as given).
#[hatchery::test(virtual_time)]
async fn far_deadlines() {
    let past = far_past();
    assert_eq!(move_on_at(past, sleep(secs(1))).await, None);
    assert!(fail_at(past, sleep(secs(1))).await.is_err());
    let scope = CancelScope::new().with_deadline(past);
    assert_eq!(scope.run(checkpoint()).await, None);
    assert_eq!(elapsed(), Duration::ZERO);

    let future = far_future();
    assert_eq!(move_on_at(future, sleep(HOUR)).await, Some(()));
    assert!(fail_at(future, sleep(HOUR)).await.is_ok());
    let scope = CancelScope::new();
    let h = scope.handle();
    let out = scope
        .run(async {
            h.set_deadline(future);
            sleep(HOUR).await;
            h.deadline()
        })
        .await;
    assert_eq!(out, Some(Some(future)));
}

/// `batches`: a zero `max_wait` cuts a batch as soon as the source waits; `Duration::MAX`
/// cuts by size only.
#[hatchery::test(virtual_time)]
async fn batches_with_zero_and_max_waits() {
    let slow = || {
        stream::unfold(0u32, |i| async move {
            sleep(secs(1)).await;
            (i < 4).then_some((i, i + 1))
        })
    };
    let out: Vec<Vec<u32>> = batches(Box::pin(slow()), 3, Duration::ZERO).collect().await;
    assert_eq!(out, [vec![0], vec![1], vec![2], vec![3]]);
    let out: Vec<Vec<u32>> = batches(Box::pin(slow()), 3, Duration::MAX).collect().await;
    assert_eq!(out, [vec![0, 1, 2], vec![3]]);
}

/// `service` with a zero grace cancels the work left when the body returns, at once;
/// with `Duration::MAX`, it waits for the work however long it takes.
#[hatchery::test(virtual_time)]
async fn service_with_zero_and_max_grace() {
    let report = service(Duration::ZERO, |svc| async move {
        svc.spawn(async {
            sleep(HOUR).await;
            Ok::<_, TestError>(())
        });
        Ok::<_, TestError>(())
    })
    .await;
    assert_eq!((report.completed, report.cancelled), (0, 1));
    assert_eq!(elapsed(), Duration::ZERO);
    let report = service(Duration::MAX, |svc| async move {
        svc.spawn(async {
            sleep(HOUR).await;
            Ok::<_, TestError>(())
        });
        Ok::<_, TestError>(())
    })
    .await;
    assert_eq!((report.completed, report.cancelled), (1, 0));
    assert_eq!(elapsed(), HOUR);
}

/// `retry(..).max_elapsed(Duration::ZERO)` makes one attempt (no delay fits in zero
/// time); `Duration::MAX` is no limit.
#[hatchery::test(virtual_time)]
async fn retry_with_zero_and_max_elapsed() {
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let failing = || {
        attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::future::ready(Err::<(), _>(TestError("busy")))
    };
    assert!(retry(failing)
        .max_attempts(5)
        .max_elapsed(Duration::ZERO)
        .await
        .is_err());
    assert_eq!(attempts.swap(0, std::sync::atomic::Ordering::SeqCst), 1);
    assert!(retry(failing)
        .max_attempts(5)
        .max_elapsed(Duration::MAX)
        .await
        .is_err());
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 5);
}

// ---------------------------------------------------------------- capacities

/// `memory_stream(0)` is a rendezvous: `try_send` finds no room until a receiver waits,
/// and a `send` completes when a receiver takes the item.
#[hatchery::test]
async fn a_zero_capacity_stream_is_a_rendezvous() {
    let (tx, rx) = memory_stream::<u32>(0);
    assert!(matches!(tx.try_send(1), Err(TrySendError::Full(1))));
    assert_eq!(tx.statistics().max_buffer_size, Some(0));
    let (sent, got) = hatchery::join!(async move { tx.send(2).await.map_err(drop) }, async move {
        rx.recv().await
    });
    assert!(sent.is_ok());
    assert_eq!(got, Ok(2));
}

/// `memory_stream(usize::MAX)` is the unbounded stream: no maximum, sends never wait.
#[hatchery::test]
async fn a_max_capacity_stream_is_unbounded() {
    let (tx, rx) = memory_stream::<u32>(usize::MAX);
    assert_eq!(tx.statistics().max_buffer_size, None);
    for i in 0..10_000 {
        tx.try_send(i).unwrap();
    }
    assert_eq!(rx.try_recv(), Ok(0));
}

/// A semaphore of zero permits is valid: acquires wait until `add_permits`.
#[hatchery::test(virtual_time)]
async fn a_semaphore_of_zero_permits_waits_for_add_permits() {
    let sem = Semaphore::new(0);
    assert!(sem.try_acquire().is_none());
    assert!(move_on_after(HOUR, sem.acquire()).await.is_none());
    sem.add_permits(1);
    drop(sem.acquire().await);
    assert_eq!(sem.available_permits(), 1);
}

/// Past `Semaphore::MAX_PERMITS` (`usize::MAX - 1`), `new` and `add_permits` panic and
/// say why.
#[test]
fn e5_a_semaphore_past_max_permits_panics() {
    let msg = panic_of(|| Semaphore::new(usize::MAX));
    assert!(msg.contains("at most Semaphore::MAX_PERMITS"), "{msg}");
    let sem = Semaphore::new(Semaphore::MAX_PERMITS);
    let msg = panic_of(AssertUnwindSafe(|| sem.add_permits(1)));
    assert!(msg.contains("would pass Semaphore::MAX_PERMITS"), "{msg}");
}

/// A limiter needs at least one token: `new(0)` and `set_total_tokens(0)` panic and say
/// so (anyio raises `ValueError` for both).
#[test]
fn a_limiter_of_zero_tokens_panics() {
    let msg = panic_of(|| CapacityLimiter::new(0));
    assert!(msg.contains("needs at least one token (got 0)"), "{msg}");
    let limiter = CapacityLimiter::new(1);
    let msg = panic_of(AssertUnwindSafe(|| limiter.set_total_tokens(0)));
    assert!(msg.contains("needs at least one token (got 0)"), "{msg}");
    assert_eq!(limiter.total_tokens(), 1);
}

/// Shrunk below what is borrowed, a limiter takes no token back: new borrowers wait
/// until enough come back. `usize::MAX` tokens is valid.
#[hatchery::test(virtual_time)]
async fn a_limiter_shrunk_below_its_borrowers_waits() {
    let limiter = CapacityLimiter::new(2);
    let (a, b) = (limiter.acquire().await, limiter.acquire().await);
    limiter.set_total_tokens(1);
    assert_eq!(limiter.available_tokens(), 0);
    drop(a);
    assert!(move_on_after(HOUR, limiter.acquire()).await.is_none());
    drop(b);
    drop(limiter.acquire().await);
    let huge = CapacityLimiter::new(usize::MAX);
    let tokens: Vec<_> = (0..100).map(|_| huge.try_acquire().unwrap()).collect();
    assert_eq!(huge.available_tokens(), usize::MAX - 100);
    drop(tokens);
}

// ---------------------------------------------------------------- combinators

/// `map(0, ..)` and `map_stream(0, ..)` panic at the call, naming the limit.
#[test]
fn map_with_a_zero_limit_panics() {
    let msg = panic_of(|| drop(map(0, 0..1, |i| async move { i })));
    assert_eq!(msg, "hatchery: `map` needs a limit of at least 1");
    let msg = panic_of(|| drop(map_stream(0, stream::iter(0..1), |i| async move { i })));
    assert_eq!(msg, "hatchery: `map` needs a limit of at least 1");
}

/// `retry(..).max_attempts(0)` panics at the call; `batches(s, 0, ..)` too.
#[test]
fn zero_attempts_and_zero_batch_sizes_panic() {
    let msg = panic_of(|| drop(retry(|| async { Ok::<u8, TestError>(0) }).max_attempts(0)));
    assert_eq!(msg, "hatchery: `retry` needs at least one attempt");
    let msg = panic_of(|| drop(batches(stream::iter([1]), 0, HOUR)));
    assert_eq!(msg, "hatchery: `batches` needs a max_size of at least 1");
}

/// Empty `join`, `try_join`, `settle`, `map` and `as_completed` have nothing to wait for:
/// empty outputs, at once.
#[hatchery::test(virtual_time)]
async fn empty_joins_return_nothing_at_once() {
    type F = std::future::Ready<Result<u32, TestError>>;
    assert!(join(Vec::<F>::new()).await.is_empty());
    assert!(try_join(Vec::<F>::new()).await.unwrap().is_empty());
    assert!(settle(Vec::<F>::new()).await.is_empty());
    assert!(map(3, Vec::<u32>::new(), |i| async move { i })
        .join()
        .await
        .is_empty());
    let n = as_completed(Vec::<F>::new(), |s| s.count()).await;
    assert_eq!(n, 0);
    assert_eq!(elapsed(), Duration::ZERO);
}

/// Empty `race` and `race_ok` have no winner: they panic at the call, naming themselves.
/// (`join!`, `try_join!` and `race!` without futures do not compile.)
#[test]
fn e5_empty_races_panic_at_the_call() {
    type F = std::future::Ready<Result<u32, TestError>>;
    let msg = panic_of(|| drop(race(Vec::<F>::new())));
    assert_eq!(msg, "hatchery: `race` needs at least one future");
    let msg = panic_of(|| drop(race_ok(Vec::<F>::new())));
    assert_eq!(msg, "hatchery: `race_ok` needs at least one future");
}

// ---------------------------------------------------------------- outside a runtime

/// Outside a runtime, what needs one (the clock, scopes, nurseries, the combinators that
/// open one) panics with the message that says how to get one; the primitives, their
/// `_blocking` forms and scope handles work anywhere. (`tests/api/runtime.rs` covers `now`,
/// `sleep`, `move_on_after`, `nursery`, `CancelScope::run`, `run_blocking`.)
#[test]
fn outside_a_runtime() {
    let no_runtime = |what: &str, msg: String| {
        assert!(
            msg.starts_with("hatchery: no runtime in this context"),
            "{what}: {msg}"
        );
    };
    no_runtime("join", panic_of(|| block_on(join([std::future::ready(1)]))));
    no_runtime("race", panic_of(|| block_on(race([std::future::ready(1)]))));
    no_runtime(
        "map",
        panic_of(|| block_on(map(1, 0..1, |i| async move { i }).join())),
    );
    no_runtime(
        "as_completed",
        panic_of(|| block_on(as_completed([std::future::ready(1)], |_| async {}))),
    );
    no_runtime(
        "produce",
        panic_of(|| {
            block_on(hatchery::produce(
                0,
                |_tx| async { Ok::<(), TestError>(()) },
                |_items: hatchery::futures::Items<u8, _>| async { Ok(()) },
            ))
        }),
    );
    no_runtime(
        "try_join",
        panic_of(|| block_on(try_join([std::future::ready(Ok::<u8, TestError>(1))]))),
    );
    no_runtime(
        "settle",
        panic_of(|| block_on(settle([std::future::ready(Ok::<u8, TestError>(1))]))),
    );
    no_runtime(
        "race_ok",
        panic_of(|| block_on(race_ok([std::future::ready(Ok::<u8, TestError>(1))]))),
    );
    no_runtime(
        "service",
        panic_of(|| {
            block_on(service(HOUR, |_svc: hatchery::Service<TestError>| async {
                Ok::<_, TestError>(())
            }))
        }),
    );
    no_runtime("shield", panic_of(|| block_on(hatchery::shield(async {}))));
    no_runtime(
        "finally",
        panic_of(|| block_on(hatchery::finally(async {}, async {}))),
    );
    no_runtime(
        "fail_after",
        panic_of(|| block_on(fail_after(HOUR, async {}))),
    );
    no_runtime(
        "sleep_until",
        panic_of(|| block_on(sleep_until(Instant::now()))),
    );
    no_runtime(
        "batches with an item",
        panic_of(|| block_on(batches(stream::iter([1]), 2, HOUR).next())),
    );
    no_runtime(
        "retry with a delay",
        panic_of(|| {
            block_on(retry(|| std::future::ready(Err::<(), _>(TestError("busy")))).max_attempts(2))
        }),
    );
    // Work anywhere: the primitives (async or blocking), a retry that needs no delay,
    // scope handles.
    let event = Event::new();
    event.set();
    block_on(event.wait());
    let lock = Lock::new(1);
    *block_on(lock.lock()) += 1;
    assert_eq!(*lock.lock_blocking(), 2);
    let sem = Semaphore::new(1);
    drop(block_on(sem.acquire()));
    let (tx, rx) = memory_stream(1);
    block_on(tx.send(3)).unwrap();
    assert_eq!(block_on(rx.recv()), Ok(3));
    assert_eq!(
        block_on(retry(|| std::future::ready(Ok::<_, TestError>(4)))),
        Ok(4)
    );
    let scope = CancelScope::new();
    scope.handle().cancel();
    assert!(scope.handle().cancel_called());
    // A checkpoint outside a runtime only yields.
    block_on(checkpoint());
    // The testing helpers outside a test run say what they need.
    let msg = panic_of(hatchery::testing::elapsed);
    assert!(msg.contains("needs a test run under"), "{msg}");
}

// ---------------------------------------------------------------- handles past their end

/// A `CancelHandle` used after its scope ended: `cancel` and `set_deadline` have no
/// effect and do not panic; the handle reports what happened in the scope.
#[hatchery::test]
async fn a_cancel_handle_after_its_scope_ended() {
    let scope = CancelScope::new();
    let h = scope.handle();
    assert_eq!(scope.run(async { 1 }).await, Some(1));
    h.cancel();
    h.set_deadline(now());
    assert!(!h.cancelled_caught());
    // In another scope, the old handle reaches nothing.
    assert_eq!(CancelScope::new().run(checkpoint()).await, Some(()));
}

/// A `Nursery` kept past its end: it is closed; `try_spawn` and `start` give an error,
/// `spawn` panics saying to use `try_spawn`; `cancel` has no effect. Nothing it is
/// handed runs.
#[hatchery::test]
async fn a_nursery_smuggled_out_of_its_nursery() {
    let mut kept: Option<Nursery<TestError>> = None;
    nursery(|n| {
        kept = Some(n.clone());
        async { Ok(()) }
    })
    .await
    .unwrap();
    let n = kept.unwrap();
    assert!(n.is_closed());
    let err = n.try_spawn(async { Ok::<_, TestError>(()) }).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot spawn into a closed nursery (it has finished, or its future was dropped)"
    );
    let msg = catch_panic(async { n.spawn(async { Ok::<_, TestError>(()) }) })
        .await
        .unwrap_err();
    assert!(
        msg.contains("cannot spawn into a closed nursery") && msg.contains("try_spawn"),
        "{msg}"
    );
    let started = n
        .start(|status: TaskStatus<u32>| async move {
            status.started(1);
            Ok::<_, TestError>(())
        })
        .await;
    assert!(matches!(started, Err(StartError::Closed)), "{started:?}");
    n.cancel();
}

/// A `TaskHandle` kept past its nursery: the task has finished, and `join` is ready at
/// once with its value; `cancel` has no effect. A `Join` polled again after it returned
/// panics with a message (a handle is joined once: `join` takes it by value).
#[hatchery::test]
async fn a_task_handle_after_its_nursery_ended() {
    let mut kept: Option<TaskHandle<u32>> = None;
    nursery(|n| {
        kept = Some(n.spawn(async { Ok::<_, TestError>(7) }));
        async { Ok::<_, TestError>(()) }
    })
    .await
    .unwrap();
    let h = kept.unwrap();
    assert!(h.is_finished());
    h.cancel();
    let mut join = pin!(h.join());
    let first = poll_fn(|cx| Poll::Ready(join.as_mut().poll(cx))).await;
    assert!(matches!(first, Poll::Ready(Ok(7))), "{first:?}");
    let msg = catch_panic(poll_fn(|cx| Poll::Ready(join.as_mut().poll(cx).is_ready())))
        .await
        .unwrap_err();
    assert!(msg.contains("after its result was taken"), "{msg}");
}

/// A nursery whose body fails keeps every error, and a `TaskHandle` of a failed task
/// joined after the nursery reports how it ended, not a value.
#[hatchery::test]
async fn a_task_handle_of_a_failed_task_after_its_nursery_ended() {
    let mut kept: Option<TaskHandle<u32>> = None;
    let r = nursery(|n| {
        kept = Some(n.spawn(async { Err::<u32, _>(TestError("boom")) }));
        async { Ok::<_, TestError>(()) }
    })
    .await;
    assert!(matches!(r, Err(NurseryError::Failed(ref e)) if e.len() == 1));
    let err = kept.unwrap().join().await.unwrap_err();
    assert!(err.is_failed());
}

/// Far instants on the backends' real timers: a deadline a hundred years ahead arms a
/// timer that never fires (no overflow, no panic), `Duration::MAX` arms none, and one far
/// in the past fires at once.
#[hatchery::test]
async fn far_instants_on_real_timers() {
    let start = Instant::now();
    assert_eq!(move_on_after(ms(5), sleep_until(far_future())).await, None);
    assert_eq!(move_on_after(ms(5), sleep(Duration::MAX)).await, None);
    assert_eq!(move_on_at(far_future(), sleep(ms(5))).await, Some(()));
    assert_eq!(move_on_at(far_past(), sleep(HOUR)).await, None);
    assert!(start.elapsed() < secs(60));
}

/// A `TaskHandle` kept past its nursery can be joined anywhere, even on a plain thread
/// outside any runtime: the value is there.
#[hatchery::test]
async fn a_task_handle_joined_outside_a_runtime() {
    let mut kept: Option<TaskHandle<u32>> = None;
    nursery(|n| {
        kept = Some(n.spawn(async { Ok::<_, TestError>(7) }));
        async { Ok::<_, TestError>(()) }
    })
    .await
    .unwrap();
    let h = kept.unwrap();
    let got = std::thread::spawn(move || block_on(h.join()))
        .join()
        .unwrap();
    assert_eq!(got.ok(), Some(7));
}

/// A borrower that borrows twice from a limiter gets `AlreadyBorrowing`, one that
/// releases what it does not hold gets `NotBorrowing`: errors, not a wait or a panic.
#[hatchery::test]
async fn a_limiter_borrower_misused() {
    let limiter = CapacityLimiter::new(2);
    limiter.acquire_on_behalf_of(1).await.unwrap();
    assert_eq!(
        limiter.acquire_on_behalf_of(1).await,
        Err(LimiterError::AlreadyBorrowing)
    );
    assert_eq!(
        limiter.try_acquire_on_behalf_of(1),
        Err(LimiterError::AlreadyBorrowing)
    );
    assert_eq!(
        limiter.release_on_behalf_of(2),
        Err(LimiterError::NotBorrowing)
    );
    limiter.release_on_behalf_of(1).unwrap();
    assert_eq!(limiter.available_tokens(), 2);
}

/// A `Lock` taken again by the task that holds it waits for itself, as with every async
/// mutex (tokio's, async-lock's): a deadlock that only a cancellation ends. Nothing can
/// tell it from a guard handed to another task, so it is documented, not detected.
#[hatchery::test(virtual_time)]
async fn a_lock_taken_twice_by_one_task_waits_for_itself() {
    let lock = Lock::new(0);
    let _held = lock.lock().await;
    assert!(move_on_after(HOUR, lock.lock()).await.is_none());
    assert_eq!(elapsed(), HOUR);
}

/// A hatchery future polled again after it returned panics and says so (the scopes, a
/// nursery, `run_blocking`, `start`, the waits of the primitives, `retry`; the
/// combinators' `async` futures with Rust's own message), except the waits that have
/// nothing left to hand out, which are ready again: `sleep`, `checkpoint`,
/// `Event::wait`.
#[hatchery::test]
async fn w8_futures_polled_after_they_returned() {
    async fn again<F: Future + Unpin>(mut f: F) -> Result<bool, String> {
        (&mut f).await;
        catch_panic(poll_fn(|cx| {
            Poll::Ready(std::pin::Pin::new(&mut f).poll(cx).is_ready())
        }))
        .await
    }
    let after = "polled after completion";
    assert_eq!(again(sleep(Duration::ZERO)).await, Ok(true));
    assert_eq!(again(checkpoint()).await, Ok(true));
    let event = Event::new();
    event.set();
    assert_eq!(again(event.wait()).await, Ok(true));
    for r in [
        again(Box::pin(move_on_after(HOUR, async {}))).await,
        again(Box::pin(fail_after(HOUR, async {}))).await,
        again(Box::pin(hatchery::shield(async {}))).await,
        again(Box::pin(nursery(|_n| async { Ok::<_, TestError>(()) }))).await,
        again(Box::pin(hatchery::run_blocking(|| 1))).await,
        again(Box::pin(retry(|| async { Ok::<_, TestError>(1) }))).await,
        again(Box::pin(Semaphore::new(1).acquire_owned())).await,
    ] {
        assert!(r.as_ref().is_err_and(|m| m.contains(after)), "{r:?}");
    }
    for r in [
        again(Box::pin(join([async { 1 }]))).await,
        again(Box::pin(race([async { 1 }]))).await,
    ] {
        assert_eq!(r, Err("`async fn` resumed after completion".to_string()));
    }
}

/// `finally` polled again after it returned panics like the other scope futures
/// ("polled after completion"), rather than wait forever, silently, in the branch meant
/// for a `finally` cancelled from outside (which waits to be dropped).
#[hatchery::test(virtual_time)]
async fn finally_polled_after_it_returned_panics() {
    let mut f = Box::pin(hatchery::finally(async { 1 }, async {}));
    assert_eq!((&mut f).await, 1);
    let again = move_on_after(
        HOUR,
        catch_panic(poll_fn(|cx| f.as_mut().poll(cx).map(drop))),
    )
    .await;
    assert!(
        again.as_ref().is_some_and(|r| r
            .as_ref()
            .is_err_and(|m| m.contains("polled after completion"))),
        "{again:?}"
    );
}

/// A `Service` kept past its end refuses work: `try_spawn` gives `ServiceClosed`,
/// `spawn` panics saying to use `try_spawn`.
#[hatchery::test]
async fn a_service_smuggled_out_of_its_service() {
    let mut kept = None;
    let report = service(Duration::ZERO, |svc| {
        kept = Some(svc.clone());
        async { Ok::<_, TestError>(()) }
    })
    .await;
    assert!(report.is_clean());
    let svc = kept.unwrap();
    assert!(svc.is_shutting_down());
    let err = svc.try_spawn(async { Ok(()) }).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the service is shutting down and accepts no new work"
    );
    let msg = catch_panic(async { svc.spawn(async { Ok(()) }) })
        .await
        .unwrap_err();
    assert!(msg.contains("Service::try_spawn"), "{msg}");
}

/// A `TaskStatus` smuggled out of its task, which then returns without calling
/// `started`: `start` fails with `NotStarted` when the task ends (it does not wait for
/// the token), and `started` called later is ignored.
#[hatchery::test(virtual_time)]
async fn a_task_status_smuggled_out_of_its_task() {
    let kept = std::sync::Arc::new(std::sync::Mutex::new(None::<TaskStatus<u32>>));
    let k = kept.clone();
    let out = nursery(|n| async move {
        let r = move_on_after(
            HOUR,
            n.start(move |status: TaskStatus<u32>| async move {
                *k.lock().unwrap() = Some(status);
                Ok::<_, TestError>(())
            }),
        )
        .await;
        Ok::<_, TestError>(r)
    })
    .await
    .unwrap();
    assert!(matches!(out, Some(Err(StartError::NotStarted))), "{out:?}");
    let status = kept.lock().unwrap().take().unwrap();
    status.started(1);
}

/// A task that joins its own handle panics and says so, rather than wait for itself
/// forever, silently (asyncio raises "Task cannot await on itself"): the task being
/// polled is the one joined.
#[hatchery::test(virtual_time)]
async fn a_task_that_joins_itself_panics() {
    let slot = std::sync::Arc::new(std::sync::Mutex::new(None::<TaskHandle<()>>));
    let s = slot.clone();
    let r = catch_panic(nursery(|n| async move {
        let ready = std::sync::Arc::new(Event::new());
        let go = ready.clone();
        let h = n.spawn(async move {
            go.wait().await;
            let me = s.lock().unwrap().take().unwrap();
            // Bounded here so that the test ends either way.
            move_on_after(HOUR, me.join()).await;
            Ok::<_, TestError>(())
        });
        *slot.lock().unwrap() = Some(h);
        ready.set();
        Ok(())
    }))
    .await;
    assert!(elapsed() < HOUR, "the task waited an hour for itself");
    let msg = r.unwrap_err();
    assert!(msg.contains("itself"), "{msg}");
}

/// `hatchery_tokio::run` called from a task on tokio panics with tokio's own message.
#[test]
fn a_tokio_runtime_started_inside_tokio_panics() {
    let msg = panic_of(|| hatchery_tokio::run(async { hatchery_tokio::run(async { 1 }) }));
    assert!(
        msg.contains("Cannot start a runtime from within a runtime"),
        "{msg}"
    );
}
