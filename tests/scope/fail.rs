//! `fail_after`, `fail_at` and `CancelScope::fail` (C5): only the scope's own deadline is
//! an error; an explicit cancel is not; an outer cancellation passes through.

use hatchery::testing::{advance, elapsed};
use hatchery::{checkpoint, fail_after, fail_at, move_on_after, now, sleep, CancelScope, Elapsed};
use hatchery_tests::{secs, Log, HOUR};

/// C5: the scope's own deadline gives `Err(Elapsed)`; a body that finishes first gives
/// `Ok(value)`.
#[hatchery::test(virtual_time)]
async fn c5_own_deadline_is_elapsed() {
    let log = Log::new();
    let r = fail_after(secs(10), async {
        let _guard = log.on_drop("body dropped");
        sleep(HOUR).await;
        log.push("unreachable");
    })
    .await;
    assert!(matches!(r, Err(Elapsed { .. })));
    assert_eq!(log.events(), ["body dropped"]);
    assert_eq!(r.unwrap_err().to_string(), "deadline elapsed");

    assert_eq!(
        fail_after(HOUR, async {
            sleep(secs(1)).await;
            7
        })
        .await,
        Ok(7)
    );
    assert!(fail_at(now() + secs(5), sleep(HOUR)).await.is_err());
    assert_eq!(
        fail_at(now() + HOUR, async {
            checkpoint().await;
            8
        })
        .await,
        Ok(8)
    );
    assert_eq!(elapsed(), secs(16));
}

/// C5 with C4: a zero timeout lets the body run to its first suspension, then fails.
#[hatchery::test]
async fn c5_zero_timeout_fails_at_first_suspension() {
    let log = Log::new();
    let r = fail_after(std::time::Duration::ZERO, async {
        log.push("first poll");
        checkpoint().await;
        log.push("unreachable");
    })
    .await;
    assert!(r.is_err());
    assert_eq!(log.events(), ["first poll"]);
}

/// C5: an outer cancellation passes through `fail_after`: the outer scope returns
/// `None`, `fail_after` never returns.
#[hatchery::test(virtual_time)]
async fn c5_outer_cancellation_passes_through() {
    let log = Log::new();
    let out = move_on_after(secs(10), async {
        let r = fail_after(HOUR, sleep(HOUR)).await;
        log.push("unreachable: fail_after returned");
        r
    })
    .await;
    assert_eq!(out, None);
    assert!(log.is_empty());

    // The same with an explicit cancel of the outer scope.
    let outer = CancelScope::new();
    let handle = outer.handle();
    let out = outer
        .run(async {
            handle.cancel();
            let r = fail_after(HOUR, sleep(HOUR)).await;
            log.push("unreachable: fail_after returned");
            r
        })
        .await;
    assert_eq!(out, None);
    assert!(log.is_empty());
    assert_eq!(elapsed(), secs(10));
}

/// C5: `CancelScope::fail`: deadline gives `Err(Elapsed)`, explicit cancel gives
/// `Ok(None)`, a finished body gives `Ok(Some(value))`.
#[hatchery::test(virtual_time)]
async fn c5_cancel_scope_fail_outcomes() {
    let scope = CancelScope::new().with_timeout(secs(5));
    let handle = scope.handle();
    assert!(scope.fail(sleep(HOUR)).await.is_err());
    assert!(handle.cancelled_caught());

    let scope = CancelScope::new().with_timeout(HOUR);
    let handle = scope.handle();
    let inner = handle.clone();
    let r = scope
        .fail(async move {
            sleep(secs(1)).await;
            inner.cancel();
            sleep(HOUR).await;
        })
        .await;
    assert_eq!(r, Ok(None));
    assert!(handle.cancel_called() && handle.cancelled_caught());

    // Cancelled before entry: explicit, so not an error either.
    let scope = CancelScope::new().with_timeout(HOUR);
    scope.handle().cancel();
    assert_eq!(scope.fail(sleep(HOUR)).await, Ok(None));

    let scope = CancelScope::new().with_timeout(HOUR);
    assert_eq!(
        scope
            .fail(async {
                sleep(secs(1)).await;
                9
            })
            .await,
        Ok(Some(9))
    );
    assert_eq!(elapsed(), secs(7));
}

/// C5: cancelled explicitly first, then the deadline passes too: the first reason
/// (explicit) decides, so not an error.
#[hatchery::test(virtual_time)]
async fn c5_explicit_cancel_then_deadline_is_not_an_error() {
    let scope = CancelScope::new().with_timeout(secs(5));
    let handle = scope.handle();
    let inner = handle.clone();
    let r = scope
        .fail(async move {
            inner.cancel();
            advance(secs(10)); // the deadline passes too, before the next suspension
            sleep(HOUR).await;
        })
        .await;
    assert_eq!(r, Ok(None));
    assert_eq!(elapsed(), secs(10));
}

/// C5 with C3: an inner `fail_after` timing out is caught by it; the enclosing scope
/// carries on with the error as a value.
#[hatchery::test(virtual_time)]
async fn c5_inner_timeout_inside_longer_outer() {
    let out = move_on_after(HOUR, async {
        let r = fail_after(secs(5), sleep(HOUR)).await;
        sleep(secs(1)).await;
        r
    })
    .await;
    assert!(matches!(out, Some(Err(Elapsed { .. }))));
    assert_eq!(elapsed(), secs(6));
}

/// C5: `Elapsed` converts with `?` into `anyhow::Error` and boxed errors.
#[hatchery::test(virtual_time)]
async fn c5_elapsed_converts_with_question_mark() {
    async fn any() -> anyhow::Result<()> {
        fail_after(secs(1), sleep(HOUR)).await?;
        Ok(())
    }
    async fn boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        fail_after(secs(1), sleep(HOUR)).await?;
        Ok(())
    }
    let e = any().await.unwrap_err();
    assert!(e.downcast_ref::<Elapsed>().is_some());
    let e = boxed().await.unwrap_err();
    assert!(e.downcast_ref::<Elapsed>().is_some());
    assert_eq!(elapsed(), secs(2));
}

/// `Elapsed` converts into an `io::Error` of kind `TimedOut` that can be downcast back,
/// so `fail_after(..).await?` works in `io::Result` code.
#[hatchery::test(virtual_time)]
async fn elapsed_converts_into_io_error() {
    async fn load() -> std::io::Result<u32> {
        fail_after(secs(1), sleep(HOUR)).await?;
        Ok(1)
    }
    let err = load().await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(err.get_ref().is_some_and(|e| e.is::<Elapsed>()));
    assert_eq!(elapsed(), secs(1));
}
