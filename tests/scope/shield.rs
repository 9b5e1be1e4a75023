//! Shields (C6): protected cleanup inside cancelled work, the shield's own deadline and
//! scopes, nurseries opened inside a shield, and where cancellation lands afterwards.

use std::time::Duration;

use hatchery::testing::elapsed;
use hatchery::{
    checkpoint, current_effective_deadline, move_on_after, now, nursery, shield, sleep,
    CancelScope, Deadline,
};
use hatchery_tests::{secs, until, Counter, Log, TestError, HOUR};

/// C6: the outer deadline passes while shielded cleanup sleeps: the cleanup completes
/// every step, the cancellation lands at the first suspension point after the shield,
/// and the outer scope returns `None` only then.
#[hatchery::test(virtual_time)]
async fn c6_p1_p3_cleanup_completes_after_outer_deadline() {
    let log = Log::new();
    let scope = CancelScope::new().with_timeout(secs(5));
    let handle = scope.handle();
    let out = scope
        .run({
            let log = log.clone();
            async move {
                log.push("work");
                shield(async {
                    sleep(secs(20)).await;
                    log.push("cleanup step 1");
                    sleep(secs(5)).await;
                    log.push("cleanup step 2");
                })
                .await;
                log.push("after shield, same poll");
                sleep(HOUR).await;
                log.push("unreachable");
            }
        })
        .await;
    log.push("scope returned");
    assert_eq!(out, None);
    assert_eq!(
        log.events(),
        [
            "work",
            "cleanup step 1",
            "cleanup step 2",
            "after shield, same poll",
            "scope returned"
        ]
    );
    assert!(handle.cancelled_caught());
    assert_eq!(elapsed(), secs(25));
}

/// C6 with C4: the deadline is already in the past when the scope is entered, and the
/// first suspension point is inside a shield: the shielded async cleanup still runs to
/// completion, and sees no deadline.
#[hatchery::test(virtual_time)]
async fn c6_shield_at_first_suspension_under_past_deadline() {
    let log = Log::new();
    let scope = CancelScope::new().with_deadline(now());
    let out = scope
        .run({
            let log = log.clone();
            async move {
                shield(async {
                    assert_eq!(current_effective_deadline(), Deadline::Never);
                    sleep(secs(10)).await;
                    checkpoint().await;
                    log.push("cleanup done");
                })
                .await;
                assert_eq!(current_effective_deadline(), Deadline::Cancelled);
                checkpoint().await;
                log.push("unreachable");
            }
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["cleanup done"]);
    assert_eq!(elapsed(), secs(10));
}

/// C6: a shield entered after the scope was cancelled explicitly still does async
/// work; the cancellation lands right after it.
#[hatchery::test(virtual_time)]
async fn c6_shield_entered_after_cancel() {
    let log = Log::new();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run({
            let (log, handle) = (log.clone(), handle.clone());
            async move {
                handle.cancel();
                let v = shield(async {
                    sleep(secs(5)).await;
                    log.push("cleanup");
                    41
                })
                .await;
                log.push("got value");
                sleep(secs(1)).await;
                log.push("unreachable");
                v + 1
            }
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["cleanup", "got value"]);
    assert_eq!(elapsed(), secs(5));
}

/// C6: inside a shield within cancelled work, the shield's own `move_on_after` still
/// times out normally, and a shielded scope's own deadline and `cancel` still work.
#[hatchery::test(virtual_time)]
async fn c6_p2_scopes_inside_shield_still_work() {
    let log = Log::new();
    let outer = CancelScope::new();
    let outer_handle = outer.handle();
    let out = outer
        .run({
            let (log, outer_handle) = (log.clone(), outer_handle.clone());
            async move {
                outer_handle.cancel();
                shield(async {
                    let r = move_on_after(secs(5), sleep(HOUR)).await;
                    assert_eq!(r, None);
                    log.push("inner timeout inside shield");
                })
                .await;

                let own = CancelScope::new().with_shield(true).with_timeout(secs(5));
                let own_handle = own.handle();
                assert!(own_handle.is_shielded());
                assert_eq!(own.run(sleep(HOUR)).await, None);
                assert!(own_handle.cancelled_caught());
                log.push("shield's own deadline");

                let own = CancelScope::new().with_shield(true);
                let own_handle = own.handle();
                let h = own_handle.clone();
                let r = own
                    .run(async move {
                        sleep(secs(1)).await;
                        h.cancel();
                        sleep(HOUR).await;
                    })
                    .await;
                assert_eq!(r, None);
                assert!(own_handle.cancelled_caught());
                log.push("shield's own cancel");
                checkpoint().await;
                log.push("unreachable");
            }
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(
        log.events(),
        [
            "inner timeout inside shield",
            "shield's own deadline",
            "shield's own cancel"
        ]
    );
    assert!(outer_handle.cancelled_caught());
    assert_eq!(elapsed(), secs(11));
}

/// C6: a nursery opened inside a shield is protected: its children finish their sleeps
/// while the enclosing scope is cancelled, and the nursery returns their values.
#[hatchery::test(virtual_time)]
async fn c6_p2_nursery_inside_shield_is_protected() {
    let log = Log::new();
    let outer = CancelScope::new();
    let handle = outer.handle();
    let out = outer
        .run({
            let (log, handle) = (log.clone(), handle.clone());
            async move {
                handle.cancel();
                let r = shield(nursery(|n| {
                    let log = log.clone();
                    async move {
                        let hs: Vec<_> = (1..=3u64)
                            .map(|i| {
                                let log = log.clone();
                                n.spawn(async move {
                                    assert_eq!(current_effective_deadline(), Deadline::Never);
                                    sleep(secs(2 * i)).await;
                                    log.push("child slept");
                                    Ok::<_, TestError>(i)
                                })
                            })
                            .collect();
                        let mut sum = 0;
                        for h in hs {
                            sum += h.join().await.unwrap();
                        }
                        Ok(sum)
                    }
                }))
                .await;
                log.push("nursery returned");
                assert_eq!(r, Ok(6));
                checkpoint().await;
                log.push("unreachable");
            }
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(
        log.events(),
        [
            "child slept",
            "child slept",
            "child slept",
            "nursery returned"
        ]
    );
    assert_eq!(elapsed(), secs(6));
}

/// C6: a nursery opened *outside* a shield is not protected, even when a task is
/// spawned into it from inside the shield: the task runs to its first suspension point
/// and is cancelled there.
#[hatchery::test(virtual_time)]
async fn c6_p2_nursery_outside_shield_is_not_protected() {
    let log = Log::new();
    let outer = CancelScope::new();
    let handle = outer.handle();
    let out = outer
        .run({
            let (log, handle) = (log.clone(), handle.clone());
            async move {
                let r = nursery(|n| {
                    let log = log.clone();
                    async move {
                        handle.cancel();
                        let done = shield({
                            let log = log.clone();
                            async move {
                                let child = n.spawn({
                                    let log = log.clone();
                                    async move {
                                        let _guard = log.on_drop("child dropped");
                                        log.push("child first poll");
                                        sleep(HOUR).await;
                                        log.push("unreachable: child");
                                        Ok::<_, TestError>(())
                                    }
                                });
                                until(|| child.is_finished()).await;
                                log.push("shield done");
                            }
                        })
                        .await;
                        log.push("after shield");
                        checkpoint().await;
                        log.push("unreachable: body");
                        Ok::<_, TestError>(done)
                    }
                })
                .await;
                log.push("unreachable: nursery returned");
                r
            }
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(
        log.events(),
        [
            "child first poll",
            "child dropped",
            "shield done",
            "after shield"
        ]
    );
    assert_eq!(elapsed(), Duration::ZERO);
}

/// C6: a shield in a nursery child protects that child's cleanup when the nursery is
/// cancelled; the nursery waits for it (N1).
#[hatchery::test(virtual_time)]
async fn c6_shield_in_child_protects_cleanup() {
    let log = Log::new();
    let in_shield = Counter::new();
    let r = nursery(|n| {
        let (log, in_shield) = (log.clone(), in_shield.clone());
        async move {
            for _ in 0..3 {
                let (log, in_shield) = (log.clone(), in_shield.clone());
                n.spawn(async move {
                    shield(async {
                        in_shield.incr();
                        sleep(secs(10)).await;
                        log.push("child cleanup");
                    })
                    .await;
                    checkpoint().await;
                    log.push("unreachable");
                    Ok::<_, TestError>(())
                });
            }
            until(|| in_shield.get() == 3).await;
            n.cancel();
            sleep(HOUR).await;
            Ok(())
        }
    })
    .await;
    log.push("nursery returned");
    assert!(r.unwrap_err().is_cancelled());
    assert_eq!(
        log.events(),
        [
            "child cleanup",
            "child cleanup",
            "child cleanup",
            "nursery returned"
        ]
    );
    assert_eq!(elapsed(), secs(10));
}

/// C6: with nothing cancelled, a shield is transparent: it returns its value and inner
/// deadlines behave as usual.
#[hatchery::test(virtual_time)]
async fn c6_shield_without_cancellation_is_transparent() {
    assert_eq!(
        shield(async {
            sleep(secs(1)).await;
            3
        })
        .await,
        3
    );
    let v = move_on_after(
        HOUR,
        shield(async { move_on_after(secs(1), sleep(HOUR)).await }),
    )
    .await;
    assert_eq!(v, Some(None));
    let unshielded = CancelScope::new().with_shield(false);
    assert!(!unshielded.handle().is_shielded());
    assert_eq!(elapsed(), secs(2));
}

/// C6: shields nest: an inner shield inside an outer shield inside cancelled work.
#[hatchery::test(virtual_time)]
async fn c6_nested_shields() {
    let log = Log::new();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run({
            let (log, handle) = (log.clone(), handle.clone());
            async move {
                handle.cancel();
                shield(async {
                    shield(async {
                        sleep(secs(2)).await;
                        log.push("inner shield");
                    })
                    .await;
                    sleep(secs(2)).await;
                    log.push("outer shield");
                })
                .await;
                checkpoint().await;
                log.push("unreachable");
            }
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["inner shield", "outer shield"]);
    assert_eq!(elapsed(), secs(4));
}

/// C4 with C6: moving the enclosing scope's deadline into the past while its body is
/// inside a shield cancels the scope only once the shield has ended.
#[hatchery::test(virtual_time)]
async fn c6_deadline_moved_earlier_during_shield() {
    let log = Log::new();
    let scope = CancelScope::new().with_timeout(HOUR);
    let handle = scope.handle();
    let out = scope
        .run({
            let (log, handle) = (log.clone(), handle.clone());
            async move {
                shield(async {
                    handle.set_deadline(now());
                    sleep(secs(5)).await;
                    log.push("shield finished");
                })
                .await;
                sleep(HOUR).await;
                log.push("unreachable");
            }
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["shield finished"]);
    assert!(handle.cancelled_caught());
    assert_eq!(elapsed(), secs(5));
}

/// A shield whose body panicked, its panic caught and the future kept rather than
/// dropped, no longer holds the enclosing scope: that scope's cancellation ends the work
/// at its next suspension point (it hung before, the scope unable to drop its body).
#[hatchery::test(virtual_time)]
async fn a_kept_shield_that_panicked_does_not_hold_the_cancelled_scope() {
    use futures_lite::FutureExt;
    use std::panic::AssertUnwindSafe;

    let out = move_on_after(secs(1), async {
        let mut kept = std::pin::pin!(AssertUnwindSafe(shield(async {
            sleep(secs(2)).await;
            panic!("cleanup failed");
        }))
        .catch_unwind());
        assert!(kept.as_mut().await.is_err());
        sleep(HOUR).await; // the deadline has passed: cancelled here
        "unreachable"
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(elapsed(), secs(2));
}
