//! Shields (C6): protected cleanup inside cancelled work, the shield's own deadline and
//! scopes, nurseries opened inside a shield, and where cancellation lands afterwards.

use hatchery::{
    checkpoint, current_effective_deadline, move_on_after, now, nursery, shield, sleep,
    CancelScope, Deadline,
};
use hatchery_tests::{backend_test, ms, until, Counter, Log, TestError, HOUR};

backend_test! {
    /// C6: the outer deadline passes while shielded cleanup sleeps: the cleanup completes
    /// every step, the cancellation lands at the first suspension point after the shield,
    /// and the outer scope returns `None` only then.
    async fn c6_cleanup_completes_after_outer_deadline() {
        let log = Log::new();
        let scope = CancelScope::new().with_timeout(ms(5));
        let handle = scope.handle();
        let out = scope
            .run({
                let log = log.clone();
                async move {
                    log.push("work");
                    shield(async {
                        sleep(ms(20)).await;
                        log.push("cleanup step 1");
                        sleep(ms(5)).await;
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
            ["work", "cleanup step 1", "cleanup step 2", "after shield, same poll", "scope returned"]
        );
        assert!(handle.cancelled_caught());
    }

    /// C6 with C4: the deadline is already in the past when the scope is entered, and the
    /// first suspension point is inside a shield: the shielded async cleanup still runs to
    /// completion, and sees no deadline.
    async fn c6_shield_at_first_suspension_under_past_deadline() {
        let log = Log::new();
        let scope = CancelScope::new().with_deadline(now());
        let out = scope
            .run({
                let log = log.clone();
                async move {
                    shield(async {
                        assert_eq!(current_effective_deadline(), Deadline::Never);
                        sleep(ms(10)).await;
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
    }

    /// C6: a shield entered after the scope was cancelled explicitly still does async
    /// work; the cancellation lands right after it.
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
                        sleep(ms(5)).await;
                        log.push("cleanup");
                        41
                    })
                    .await;
                    log.push("got value");
                    sleep(ms(1)).await;
                    log.push("unreachable");
                    v + 1
                }
            })
            .await;
        assert_eq!(out, None);
        assert_eq!(log.events(), ["cleanup", "got value"]);
    }

    /// C6: inside a shield within cancelled work, the shield's own `move_on_after` still
    /// times out normally, and a shielded scope's own deadline and `cancel` still work.
    async fn c6_scopes_inside_shield_still_work() {
        let log = Log::new();
        let outer = CancelScope::new();
        let outer_handle = outer.handle();
        let out = outer
            .run({
                let (log, outer_handle) = (log.clone(), outer_handle.clone());
                async move {
                    outer_handle.cancel();
                    shield(async {
                        let r = move_on_after(ms(5), sleep(HOUR)).await;
                        assert_eq!(r, None);
                        log.push("inner timeout inside shield");
                    })
                    .await;

                    let own = CancelScope::new().with_shield(true).with_timeout(ms(5));
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
                            sleep(ms(1)).await;
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
            ["inner timeout inside shield", "shield's own deadline", "shield's own cancel"]
        );
        assert!(outer_handle.cancelled_caught());
    }

    /// C6: a nursery opened inside a shield is protected: its children finish their sleeps
    /// while the enclosing scope is cancelled, and the nursery returns their values.
    async fn c6_nursery_inside_shield_is_protected() {
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
                                        sleep(ms(2 * i)).await;
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
        assert_eq!(log.count("child slept"), 3);
        assert_eq!(log.events().last(), Some(&"nursery returned"));
        assert!(!log.contains("unreachable"));
    }

    /// C6: a nursery opened *outside* a shield is not protected, even when a task is
    /// spawned into it from inside the shield: the task runs to its first suspension point
    /// and is cancelled there.
    async fn c6_nursery_outside_shield_is_not_protected() {
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
            ["child first poll", "child dropped", "shield done", "after shield"]
        );
    }

    /// C6: a shield in a nursery child protects that child's cleanup when the nursery is
    /// cancelled; the nursery waits for it (N1).
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
                            sleep(ms(10)).await;
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
            ["child cleanup", "child cleanup", "child cleanup", "nursery returned"]
        );
    }

    /// C6: with nothing cancelled, a shield is transparent: it returns its value and inner
    /// deadlines behave as usual.
    async fn c6_shield_without_cancellation_is_transparent() {
        assert_eq!(shield(async { sleep(ms(1)).await; 3 }).await, 3);
        let v = move_on_after(HOUR, shield(async { move_on_after(ms(1), sleep(HOUR)).await })).await;
        assert_eq!(v, Some(None));
        let unshielded = CancelScope::new().with_shield(false);
        assert!(!unshielded.handle().is_shielded());
    }

    /// C6: shields nest: an inner shield inside an outer shield inside cancelled work.
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
                            sleep(ms(2)).await;
                            log.push("inner shield");
                        })
                        .await;
                        sleep(ms(2)).await;
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
    }
}

backend_test! {
    /// C4 with C6: moving the enclosing scope's deadline into the past while its body is
    /// inside a shield cancels the scope only once the shield has ended.
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
                        sleep(ms(5)).await;
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
    }
}
