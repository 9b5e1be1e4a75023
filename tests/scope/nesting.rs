//! Nested cancel scopes: the outermost cancelled scope below the nearest shield is the
//! one that returns; inner ones never do (C3).

use std::time::Duration;

use hatchery::testing::{advance, elapsed};
use hatchery::{checkpoint, fail_after, now, sleep, CancelScope};
use hatchery_tests::{secs, Log, HOUR};

/// C3, C4: the inner deadline fires first: the inner scope catches it and returns
/// `None`; the outer scope carries on and returns its value.
#[hatchery::test(virtual_time)]
async fn c3_inner_deadline_first_inner_catches() {
    let log = Log::new();
    let outer = CancelScope::new().with_timeout(HOUR);
    let outer_handle = outer.handle();
    let inner = CancelScope::new().with_timeout(secs(10));
    let inner_handle = inner.handle();
    let out = outer
        .run({
            let log = log.clone();
            async move {
                let r = inner
                    .run(async {
                        sleep(HOUR).await;
                        log.push("unreachable");
                    })
                    .await;
                assert_eq!(r, None);
                log.push("inner returned");
                // The outer scope is not cancelled: its waits still work.
                sleep(secs(1)).await;
                log.push("outer continued");
                "outer value"
            }
        })
        .await;
    assert_eq!(out, Some("outer value"));
    assert_eq!(log.events(), ["inner returned", "outer continued"]);
    assert!(inner_handle.cancel_called() && inner_handle.cancelled_caught());
    assert!(!outer_handle.cancel_called() && !outer_handle.cancelled_caught());
    assert_eq!(elapsed(), secs(11));
}

/// C3, C4: the outer deadline fires first: the outer scope returns `None`, the inner
/// scope never returns, and reports neither `cancelled_caught` nor `cancel_called`
/// (an inherited cancellation does not count as its own).
#[hatchery::test(virtual_time)]
async fn c3_outer_deadline_first_outer_catches() {
    let log = Log::new();
    let outer = CancelScope::new().with_timeout(secs(10));
    let outer_handle = outer.handle();
    let inner = CancelScope::new().with_timeout(HOUR);
    let inner_handle = inner.handle();
    let out = outer
        .run({
            let log = log.clone();
            async move {
                let _guard = log.on_drop("outer body dropped");
                inner
                    .run(async {
                        let _guard = log.on_drop("inner body dropped");
                        sleep(HOUR).await;
                        log.push("unreachable: inner body");
                    })
                    .await;
                log.push("unreachable: inner returned");
            }
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["inner body dropped", "outer body dropped"]);
    assert!(outer_handle.cancel_called() && outer_handle.cancelled_caught());
    assert!(!inner_handle.cancelled_caught());
    assert!(!inner_handle.cancel_called());
    assert_eq!(elapsed(), secs(10));
}

/// C3: both scopes cancelled explicitly: the outer one catches; the inner one keeps a
/// sticky `cancel_called` but does not catch.
#[hatchery::test]
async fn c3_both_cancelled_outer_catches() {
    let log = Log::new();
    let outer = CancelScope::new();
    let outer_handle = outer.handle();
    let inner = CancelScope::new();
    let inner_handle = inner.handle();
    let out = outer
        .run({
            let (log, outer_handle, inner_handle) =
                (log.clone(), outer_handle.clone(), inner_handle.clone());
            async move {
                inner
                    .run(async {
                        inner_handle.cancel();
                        outer_handle.cancel();
                        checkpoint().await;
                    })
                    .await;
                log.push("unreachable: inner returned");
            }
        })
        .await;
    assert_eq!(out, None);
    assert!(log.is_empty());
    assert!(outer_handle.cancelled_caught());
    assert!(inner_handle.cancel_called());
    assert!(!inner_handle.cancelled_caught());
}

/// C3: three levels, the middle one cancelled: the middle scope returns `None`, the
/// innermost never returns, the outermost is unaffected.
#[hatchery::test(virtual_time)]
async fn c3_middle_scope_cancelled() {
    let log = Log::new();
    let (outer, middle, inner) = (CancelScope::new(), CancelScope::new(), CancelScope::new());
    let (ho, hm, hi) = (outer.handle(), middle.handle(), inner.handle());
    let out = outer
        .run({
            let (log, hm) = (log.clone(), hm.clone());
            async move {
                let r = middle
                    .run(async {
                        inner
                            .run(async {
                                hm.cancel();
                                sleep(HOUR).await;
                            })
                            .await;
                        log.push("unreachable: inner returned");
                    })
                    .await;
                assert_eq!(r, None);
                log.push("middle returned");
                checkpoint().await;
                7
            }
        })
        .await;
    assert_eq!(out, Some(7));
    assert_eq!(log.events(), ["middle returned"]);
    assert!(!ho.cancel_called() && !ho.cancelled_caught());
    assert!(hm.cancel_called() && hm.cancelled_caught());
    assert!(!hi.cancel_called() && !hi.cancelled_caught());
    assert_eq!(elapsed(), Duration::ZERO);
}

/// C3: an inner scope cancelled explicitly returns `None`, and its cancellation does
/// not leak into the enclosing scope.
#[hatchery::test(virtual_time)]
async fn c3_inner_cancel_does_not_leak_outward() {
    let outer = CancelScope::new();
    let outer_handle = outer.handle();
    let out = outer
        .run(async {
            let inner = CancelScope::new();
            let h = inner.handle();
            let r = inner
                .run(async move {
                    h.cancel();
                    sleep(HOUR).await;
                })
                .await;
            assert_eq!(r, None);
            sleep(secs(2)).await;
            assert!(!hatchery::current_effective_deadline().is_cancelled());
            1
        })
        .await;
    assert_eq!(out, Some(1));
    assert!(!outer_handle.cancel_called());
    assert_eq!(elapsed(), secs(2));
}

/// C3, C4: the outer deadline is earlier, and both deadlines have passed by the time
/// the task looks at its timers (time moved past both while the body ran): the outer
/// scope is the cancelled one that must catch; the inner must not return.
#[hatchery::test(virtual_time)]
async fn c3_d8_outer_deadline_passed_first_while_blocked() {
    let log = Log::new();
    let start = now();
    let outer = CancelScope::new().with_deadline(start + secs(10));
    let outer_handle = outer.handle();
    let inner = CancelScope::new().with_deadline(start + secs(20));
    let inner_handle = inner.handle();
    let out = outer
        .run({
            let log = log.clone();
            async move {
                inner
                    .run(async {
                        // Time moves past both deadlines without a suspension point.
                        advance(secs(40));
                        sleep(HOUR).await;
                    })
                    .await;
                log.push("unreachable: inner returned");
                sleep(HOUR).await;
            }
        })
        .await;
    assert_eq!(out, None);
    assert!(outer_handle.cancelled_caught());
    assert!(
        !inner_handle.cancelled_caught(),
        "the inner scope caught an outer cancellation"
    );
    assert!(log.is_empty(), "{log:?}");
    assert_eq!(elapsed(), secs(40));
}

/// C5 with C3: a `fail_after` inside a scope whose earlier deadline already passed must
/// let the outer cancellation through instead of reporting its own timeout.
#[hatchery::test(virtual_time)]
async fn c5_fail_after_inside_passed_outer_deadline() {
    let log = Log::new();
    let start = now();
    let out = hatchery::move_on_at(start + secs(10), {
        let log = log.clone();
        async move {
            let r = fail_after(secs(20), async {
                advance(secs(40));
                sleep(HOUR).await;
            })
            .await;
            log.push("unreachable: fail_after returned");
            r
        }
    })
    .await;
    assert_eq!(out, None);
    assert!(log.is_empty(), "{log:?}");
    assert_eq!(elapsed(), secs(40));
}

/// C3: deep nesting of scopes that all finish: every level returns its value.
#[hatchery::test(virtual_time)]
async fn c3_deep_nesting_all_finish() {
    let mut fut: std::pin::Pin<Box<dyn std::future::Future<Output = u32>>> = Box::pin(async {
        sleep(secs(1)).await;
        0
    });
    for _ in 0..50 {
        let inner = fut;
        fut = Box::pin(async move {
            CancelScope::new()
                .with_timeout(Duration::from_secs(60))
                .run(inner)
                .await
                .map_or(1000, |v| v + 1)
        });
    }
    assert_eq!(fut.await, 50);
    assert_eq!(elapsed(), secs(1));
}
