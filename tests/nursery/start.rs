//! `Nursery::start` (N6, S): the started value, errors before and after `started`, tasks
//! that never start, and whose cancellation applies before `started`; on both kinds of
//! nursery. On the spawning one only: `start_with_handle` (which only it has), and a
//! started task that runs with nobody polling its `start` (a spawned task does; a polled
//! child, before `started`, is polled by its `start`).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hatchery::testing::elapsed;
use hatchery::{
    checkpoint, current_effective_deadline, move_on_after, nursery, shield, sleep, CancelScope,
    Deadline, NurseryError, StartError,
};
use hatchery_tests::{
    catch_panic, each_kind, kinds, secs, until, Counter, Kind, Log, PanicOnDrop, TestError, HOUR,
};

each_kind!(n6_start_returns_started_value, virtual_time);
/// N6: `start` returns the value passed to `started`; the task then keeps running as a
/// child of the nursery, which waits for it.
async fn n6_start_returns_started_value<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let log2 = log.clone();
            let port = n
                .start(|status| async move {
                    sleep(secs(2)).await;
                    status.started(8080u16);
                    until(|| log2.contains("start returned")).await;
                    sleep(secs(5)).await;
                    log2.push("served");
                    Ok(())
                })
                .await
                .unwrap();
            log.push("start returned");
            Ok::<_, TestError>(port)
        }
    })
    .await;
    assert_eq!(r, Ok(8080));
    assert_eq!(log.events(), ["start returned", "served"]);
    assert_eq!(elapsed(), secs(7));
}

each_kind!(n6_error_before_started_goes_to_start, virtual_time);
/// N6: an error before `started` comes out of `start` as `StartError::Failed` and does
/// not fail (or cancel) the nursery.
async fn n6_error_before_started_goes_to_start<K: Kind>() {
    let r = K::nursery(|n| async move {
        let e = n
            .start(|_status: hatchery::TaskStatus<u8>| async {
                sleep(secs(1)).await;
                Err::<(), _>(TestError("bind failed"))
            })
            .await
            .unwrap_err();
        assert!(matches!(e, StartError::Failed(TestError("bind failed"))));
        assert_eq!(
            e.to_string(),
            "task failed before it started: test error bind failed"
        );
        assert_eq!(e.into_inner(), Some(TestError("bind failed")));
        assert!(!n.is_cancelled());
        sleep(secs(1)).await;
        Ok::<_, TestError>("nursery fine")
    })
    .await;
    assert_eq!(r, Ok("nursery fine"));
    assert_eq!(elapsed(), secs(2));
}

each_kind!(n6_s5_finished_without_started_is_not_started, virtual_time);
/// N6: a task that finishes without calling `started` (or drops its token) makes
/// `start` fail with `NotStarted`; the nursery is unaffected.
async fn n6_s5_finished_without_started_is_not_started<K: Kind>() {
    let r = K::nursery(|n| async move {
        let e = n
            .start(|_status: hatchery::TaskStatus<u8>| async {
                sleep(secs(1)).await;
                Ok::<_, TestError>(())
            })
            .await
            .unwrap_err();
        assert!(matches!(e, StartError::NotStarted));
        let e = n
            .start(|status: hatchery::TaskStatus<u8>| async move {
                drop(status);
                checkpoint().await;
                Ok::<_, TestError>(())
            })
            .await
            .unwrap_err();
        assert!(matches!(e, StartError::NotStarted));
        assert_eq!(e.into_inner(), None);
        Ok::<_, TestError>(1)
    })
    .await;
    assert_eq!(r, Ok(1));
    assert_eq!(elapsed(), secs(1));
}

each_kind!(
    s1_start_on_a_closed_nursery_never_calls_the_closure,
    virtual_time
);
/// S1: `start` on a nursery that has finished fails with `Closed` without calling its
/// closure (trio's `start` fails before it calls the function): nothing of the task is
/// made, and nothing it would have done happens. (A polled `start` called it, when
/// `start` was written twice; `polled.rs` has the same with a closure that borrows.)
async fn s1_start_on_a_closed_nursery_never_calls_the_closure<K: Kind>() {
    let mut saved = None;
    K::nursery(|n| {
        saved = Some(n.clone());
        async { Ok::<_, TestError>(()) }
    })
    .await
    .unwrap();
    let n = saved.unwrap();
    assert!(n.is_closed());
    let called = Counter::new();
    let start = n.start(|status: hatchery::TaskStatus<u16>| {
        called.incr();
        async move {
            status.started(8080);
            Ok(())
        }
    });
    assert_eq!(called.get(), 0, "not called by `start`");
    assert!(matches!(start.await, Err(StartError::Closed)));
    assert_eq!(called.get(), 0, "nor by its first poll");
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n6_s4_error_after_started_fails_nursery, virtual_time);
/// N6: after `started`, an error of the task goes to the nursery and fails it.
async fn n6_s4_error_after_started_fails_nursery<K: Kind>() {
    let r = K::nursery(|n| async move {
        let v = n
            .start(|status| async move {
                status.started(3);
                sleep(secs(2)).await;
                Err::<(), _>(TestError("after started"))
            })
            .await
            .unwrap();
        assert_eq!(v, 3);
        sleep(HOUR).await;
        Ok(())
    })
    .await;
    assert_eq!(
        r,
        Err(NurseryError::Failed(vec![TestError("after started")]))
    );
    assert_eq!(elapsed(), secs(2));
}

each_kind!(n6_s2_pending_start_keeps_nursery_open, virtual_time);
/// N6: a pending `start` (in a child, after the body has returned) keeps the nursery
/// open until the started task, and the child that called `start`, are done.
async fn n6_s2_pending_start_keeps_nursery_open<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let n2 = n.clone();
            n.spawn(async move {
                let log2 = log.clone();
                let v = n2
                    .start(|status| async move {
                        sleep(secs(10)).await;
                        status.started(7);
                        until(|| log2.contains("start returned in child")).await;
                        sleep(secs(5)).await;
                        log2.push("started task done");
                        Ok(())
                    })
                    .await
                    .unwrap();
                assert_eq!(v, 7);
                log.push("start returned in child");
                Ok::<_, TestError>(())
            });
            Ok(())
        }
    })
    .await;
    log.push("nursery returned");
    assert_eq!(r, Ok(()));
    assert_eq!(
        log.events(),
        [
            "start returned in child",
            "started task done",
            "nursery returned"
        ]
    );
    assert_eq!(elapsed(), secs(15));
}

each_kind!(
    n6_s6_before_started_cancelled_by_callers_scope,
    virtual_time
);
/// N6: before `started`, the task runs under the caller's cancellation: a timeout
/// around `start` cancels the task; the nursery is neither failed nor cancelled.
async fn n6_s6_before_started_cancelled_by_callers_scope<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let out = move_on_after(
                secs(10),
                n.start(|status| {
                    let log = log.clone();
                    async move {
                        let _guard = log.on_drop("starting task dropped");
                        sleep(HOUR).await;
                        status.started(());
                        Ok::<_, TestError>(())
                    }
                }),
            )
            .await;
            assert!(out.is_none());
            assert!(!n.is_cancelled());
            log.push("caller continued");
            Ok(())
        }
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(log.events(), ["starting task dropped", "caller continued"]);
    assert_eq!(elapsed(), secs(10));
}

each_kind!(n6_start_in_cancelled_scope);
/// N6: a caller's scope cancelled before `start` is polled: the task runs to its first
/// suspension point and is cancelled; `start` never returns, the scope does.
async fn n6_start_in_cancelled_scope<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let scope = CancelScope::new();
            let handle = scope.handle();
            handle.cancel();
            let out = scope
                .run(async {
                    let v = n
                        .start(|status| {
                            let log = log.clone();
                            async move {
                                log.push("task first poll");
                                checkpoint().await;
                                status.started(1);
                                log.push("unreachable: started");
                                Ok::<_, TestError>(())
                            }
                        })
                        .await;
                    log.push("unreachable: start returned");
                    v
                })
                .await;
            assert!(out.is_none());
            assert!(handle.cancelled_caught());
            Ok(())
        }
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(log.events(), ["task first poll"]);
}

each_kind!(
    n6_after_started_callers_scope_no_longer_applies,
    virtual_time
);
/// N6: after `started`, the caller's scope no longer applies: cancelling it leaves the
/// task running in the nursery.
async fn n6_after_started_callers_scope_no_longer_applies<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let scope = CancelScope::new();
            let handle = scope.handle();
            let out = scope
                .run(async {
                    let v = n
                        .start(|status| {
                            let log = log.clone();
                            async move {
                                status.started(1);
                                sleep(secs(10)).await;
                                log.push("task finished its work");
                                Ok::<_, TestError>(())
                            }
                        })
                        .await
                        .unwrap();
                    handle.cancel();
                    sleep(HOUR).await;
                    v
                })
                .await;
            assert_eq!(out, None);
            Ok(())
        }
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(log.events(), ["task finished its work"]);
    assert_eq!(elapsed(), secs(10));
}

each_kind!(n6_started_task_cancelled_with_nursery, virtual_time);
/// N6: a started task is cancelled with its nursery like any child.
async fn n6_started_task_cancelled_with_nursery<K: Kind>() {
    let dropped = Counter::new();
    let r = K::nursery(|n| {
        let dropped = dropped.clone();
        async move {
            let guard = dropped.guard();
            n.start(|status| async move {
                let _guard = guard;
                status.started(());
                sleep(HOUR).await;
                Ok::<_, TestError>(())
            })
            .await
            .unwrap();
            n.cancel();
            sleep(HOUR).await;
            Ok(())
        }
    })
    .await;
    assert!(r.unwrap_err().is_cancelled());
    assert_eq!(dropped.get(), 1);
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n6_panic_before_started_resumed_from_start);
/// N6: a panic before `started` is resumed from `start`.
async fn n6_panic_before_started_resumed_from_start<K: Kind>() {
    let r = K::nursery(|n| async move {
        let p = catch_panic(n.start::<u8, (), _, _>(|_status| async {
            checkpoint().await;
            panic!("start boom");
        }))
        .await;
        assert_eq!(p.unwrap_err(), "start boom");
        Ok::<_, TestError>("nursery fine")
    })
    .await;
    assert_eq!(r, Ok("nursery fine"));
}

each_kind!(n6_start_while_sibling_fails, virtual_time);
/// N6: `start` while the nursery is failing: the task starts under the caller; an
/// error elsewhere cancels the nursery, and with it the caller (the body) and the
/// starting task.
async fn n6_start_while_sibling_fails<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let in_start = Counter::new();
            let c = in_start.clone();
            n.spawn(async move {
                until(|| c.get() == 1).await;
                Err::<(), _>(TestError("sibling"))
            });
            let r = n
                .start(|status: hatchery::TaskStatus<()>| {
                    let log = log.clone();
                    async move {
                        let _guard = log.on_drop("starting task dropped");
                        in_start.incr();
                        sleep(HOUR).await;
                        status.started(());
                        Ok(())
                    }
                })
                .await;
            log.push("unreachable: start returned");
            r.map_err(|_| TestError("start"))
        }
    })
    .await;
    assert_eq!(r, Err(NurseryError::Failed(vec![TestError("sibling")])));
    assert_eq!(log.events(), ["starting task dropped"]);
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n6_starting_task_with_shield, virtual_time);
/// N6: shielded work inside a starting task: the caller's cancellation waits for it.
async fn n6_starting_task_with_shield<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let out = move_on_after(
                secs(5),
                n.start(|status: hatchery::TaskStatus<()>| {
                    let log = log.clone();
                    async move {
                        shield(async {
                            sleep(secs(15)).await;
                            log.push("shielded setup done");
                        })
                        .await;
                        checkpoint().await;
                        status.started(());
                        log.push("unreachable");
                        Ok::<_, TestError>(())
                    }
                }),
            )
            .await;
            log.push("timeout returned");
            assert!(out.is_none());
            Ok(())
        }
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(log.events(), ["shielded setup done", "timeout returned"]);
    assert_eq!(elapsed(), secs(15));
}

each_kind!(n6_effective_deadline_moves_with_the_task);
/// N6 with C7: before `started` the task sees the caller's deadlines; after `started`
/// it sees the nursery's (rule S4: at the call, on both kinds; a polled child, still
/// polled by its `start` until its next suspension, too).
async fn n6_effective_deadline_moves_with_the_task<K: Kind>() {
    use hatchery::{current_effective_deadline, move_on_at, now, Deadline};
    let caller_deadline = now() + HOUR;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let r = K::nursery(|n| {
        let seen = seen.clone();
        async move {
            let out = move_on_at(
                caller_deadline,
                n.start(|status| async move {
                    seen.lock().unwrap().push(current_effective_deadline());
                    checkpoint().await;
                    status.started(());
                    seen.lock().unwrap().push(current_effective_deadline());
                    checkpoint().await;
                    seen.lock().unwrap().push(current_effective_deadline());
                    Ok::<_, TestError>(())
                }),
            )
            .await;
            assert_eq!(out, Some(Ok(())));
            Ok(())
        }
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(
        *seen.lock().unwrap(),
        [
            Deadline::At(caller_deadline),
            Deadline::Never,
            Deadline::Never
        ]
    );
}

each_kind!(n6_started_then_immediate_error, virtual_time);
/// N6: a task that calls `started` and fails right away: the error goes to the
/// nursery, never to `start`.
async fn n6_started_then_immediate_error<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let v = n
                .start(|status| async move {
                    status.started(1);
                    Err::<(), _>(TestError("right after started"))
                })
                .await;
            // `start` may or may not get to return before the failure cancels the
            // body; if it does, it returns the value.
            assert_eq!(v.ok(), Some(1));
            log.push("start returned");
            sleep(HOUR).await;
            Ok(())
        }
    })
    .await;
    assert_eq!(
        r,
        Err(NurseryError::Failed(vec![TestError("right after started")]))
    );
    assert!(log.len() <= 1);
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n6_panic_after_started_goes_to_nursery, virtual_time);
/// N6, N3: a panic after `started` goes to the nursery, which resumes it.
async fn n6_panic_after_started_goes_to_nursery<K: Kind>() {
    let r = catch_panic(K::nursery(|n| async move {
        n.start::<(), (), _, _>(|status| async move {
            status.started(());
            checkpoint().await;
            panic!("after started");
        })
        .await
        .unwrap();
        sleep(HOUR).await;
        Ok::<_, TestError>(())
    }))
    .await;
    assert_eq!(r.unwrap_err(), "after started");
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n6_started_task_value_dropped_by_the_task, virtual_time);
/// N1, N3, N6: a started task has no handle, so its final value is dropped when it
/// finishes, before `nursery` returns; a panic in that drop is the task's panic, which
/// the nursery resumes.
async fn n6_started_task_value_dropped_by_the_task<K: Kind>() {
    let r = catch_panic(K::nursery(|n: kinds::Nursery<K, TestError>| async move {
        n.start(|status| async move {
            status.started(());
            sleep(secs(1)).await;
            Ok(PanicOnDrop("started value drop boom"))
        })
        .await
        .unwrap();
        Ok(())
    }))
    .await;
    assert_eq!(r.unwrap_err(), "started value drop boom");
    assert_eq!(elapsed(), secs(1));
}

each_kind!(
    n6_s6_started_after_the_callers_cancellation_is_ignored,
    virtual_time
);
/// N6: a task that calls `started` in a shield after its caller's scope was cancelled is
/// not moved into the nursery (as in trio): the call is ignored, the task is cancelled
/// at its next checkpoint, and `start` never returns (the caller's scope catches).
async fn n6_s6_started_after_the_callers_cancellation_is_ignored<K: Kind>() {
    let log = Log::new();
    let value_dropped = Counter::new();
    K::nursery(|n| {
        let log = log.clone();
        let value_dropped = value_dropped.clone();
        async move {
            let out = move_on_after(
                secs(5),
                n.start(|status| {
                    let log = log.clone();
                    async move {
                        shield(async {
                            sleep(secs(10)).await; // the caller's timeout passes meanwhile
                            status.started(value_dropped.guard());
                            log.push("started called");
                        })
                        .await;
                        sleep(secs(10)).await;
                        log.push("ran on in the nursery");
                        Ok::<_, TestError>(())
                    }
                }),
            )
            .await;
            assert!(out.is_none());
            assert_eq!(elapsed(), secs(10));
            assert!(!n.is_cancelled());
            Ok::<_, TestError>(())
        }
    })
    .await
    .unwrap();
    assert_eq!(log.events(), ["started called"]);
    assert_eq!(value_dropped.get(), 1);
}

each_kind!(
    n6_s6_started_when_the_caller_is_the_cancelled_nursery_is_ignored,
    virtual_time
);
/// S6 where the caller's scope is the nursery itself (`start` awaited in the nursery's
/// body, after the nursery was cancelled): `started`, called in the task's first poll in
/// a shield, is ignored; `start` does not return the value. (The task is under the
/// nursery already: "moving" it there must not skip the check. A first version of the
/// polled kind's move at the call did, on both kinds, and `start` returned `Ok`; the race
/// stress test found it.)
async fn n6_s6_started_when_the_caller_is_the_cancelled_nursery_is_ignored<K: Kind>() {
    let returned = Arc::new(Mutex::new(None));
    let value_dropped = Counter::new();
    let r = K::nursery(|n: kinds::Nursery<K, TestError>| {
        let returned = returned.clone();
        let value_dropped = value_dropped.clone();
        async move {
            n.inner().cancel();
            let out = n
                .start(|status| async move {
                    shield(async { status.started(value_dropped.guard()) }).await;
                    checkpoint().await;
                    Ok::<_, TestError>(())
                })
                .await;
            *returned.lock().unwrap() = Some(out.is_ok());
            Ok(())
        }
    })
    .await;
    // Cancelled by its own `cancel`: the nursery reports it.
    assert!(matches!(r, Err(NurseryError::Cancelled)), "{r:?}");
    assert_eq!(
        *returned.lock().unwrap(),
        None,
        "start returned in a cancelled nursery"
    );
    assert_eq!(value_dropped.get(), 1);
}

each_kind!(n6_unstarted_value_drop_panic_is_not_lost, virtual_time);
/// N3/N6: the value of a task that returns before calling `started` panics when dropped:
/// that panic is a panic of the task and must not be lost.
async fn n6_unstarted_value_drop_panic_is_not_lost<K: Kind>() {
    let r = catch_panic(K::nursery(|n: kinds::Nursery<K, TestError>| async move {
        let r = n
            .start(|_status: hatchery::TaskStatus<()>| async move {
                Ok(PanicOnDrop("unstarted value drop boom"))
            })
            .await;
        assert!(matches!(r, Err(StartError::NotStarted)));
        Ok(())
    }))
    .await;
    // Before the fix the nursery returned Ok(()): the panic went to the executor.
    assert_eq!(r.unwrap_err(), "unstarted value drop boom");
}

each_kind!(n6_unstarted_value_dropped_before_nursery_returns);
/// N1/N6: the value of a task that returns before calling `started` is dropped before
/// `nursery` returns. (Real time: the destructor blocks its thread on purpose.)
async fn n6_unstarted_value_dropped_before_nursery_returns<K: Kind>() {
    struct SlowDrop(Counter);
    impl Drop for SlowDrop {
        fn drop(&mut self) {
            std::thread::sleep(std::time::Duration::from_millis(50));
            self.0.incr();
        }
    }
    let dropped = Counter::new();
    let d = dropped.clone();
    K::nursery(|n: kinds::Nursery<K, TestError>| async move {
        let r = n
            .start(|_status: hatchery::TaskStatus<()>| async move { Ok(SlowDrop(d)) })
            .await;
        assert!(matches!(r, Err(StartError::NotStarted)));
        Ok(())
    })
    .await
    .unwrap();
    // Before the fix, on tokio_multi: 0, the value was still being dropped on a worker.
    assert_eq!(dropped.get(), 1, "the task's value outlived the nursery");
}

each_kind!(w8_start_polled_after_completion_panics);
/// A `Start` polled again after it returned panics, instead of staying pending for good.
async fn w8_start_polled_after_completion_panics<K: Kind>() {
    let r = K::nursery(|n: kinds::Nursery<K, TestError>| async move {
        let mut start = n.start(|status: hatchery::TaskStatus<u8>| async move {
            status.started(5);
            Ok(())
        });
        assert_eq!((&mut start).await.unwrap(), 5);
        let again = catch_panic(start).await;
        assert!(again
            .unwrap_err()
            .contains("`Start` polled after completion"));
        Ok(())
    })
    .await;
    assert_eq!(r, Ok(()));
}

each_kind!(n6_started_in_f_task_is_cancelled_by_nursery, virtual_time);
/// N6: a task that called `started` in `start`'s closure, before its first poll,
/// belongs to the nursery: `n.cancel()` reaches it (it did not, and the nursery waited
/// for it).
async fn n6_started_in_f_task_is_cancelled_by_nursery<K: Kind>() {
    let r = K::nursery(|n| async move {
        let n2 = n.clone();
        n.spawn(async move {
            n2.start(|status| {
                status.started(());
                async {
                    sleep(HOUR).await;
                    Ok::<_, TestError>(())
                }
            })
            .await
            .unwrap();
            Ok(())
        })
        .join()
        .await
        .unwrap();
        n.cancel();
        Ok(())
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(
        elapsed(),
        Duration::ZERO,
        "n.cancel() did not reach the started task"
    );
}

each_kind!(n6_started_in_f_task_outlives_callers_scope, virtual_time);
/// N6: the caller's scope, cancelled after `start` returned, does not cancel a task that
/// called `started` in `start`'s closure (it did).
async fn n6_started_in_f_task_outlives_callers_scope<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let scope = CancelScope::new();
            let h = scope.handle();
            let log2 = log.clone();
            scope
                .run(async {
                    n.start(|status| {
                        status.started(());
                        async move {
                            sleep(secs(5)).await;
                            log2.push("served");
                            Ok::<_, TestError>(())
                        }
                    })
                    .await
                    .unwrap();
                    h.cancel();
                    sleep(HOUR).await;
                })
                .await;
            Ok(())
        }
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(
        log.events(),
        ["served"],
        "the caller's scope cancelled the started task"
    );
}

each_kind!(n6_started_in_f_in_cancelled_scope_is_ignored, virtual_time);
/// N6: in an already-cancelled caller scope, a `started` called in `start`'s closure is
/// ignored and `start` does not return (it returned `Ok`; on the polled nursery, a child
/// that ended in its `start`'s first poll had its value returned, until `start` was
/// written once).
async fn n6_started_in_f_in_cancelled_scope_is_ignored<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let scope = CancelScope::new();
            scope.handle().cancel();
            let out = scope
                .run(async {
                    let r = n
                        .start(|status| {
                            status.started(());
                            async { Ok::<_, TestError>(()) }
                        })
                        .await;
                    log.push(if r.is_ok() {
                        "start returned Ok"
                    } else {
                        "start returned Err"
                    });
                })
                .await;
            Ok(out)
        }
    })
    .await;
    assert_eq!(r, Ok(None));
    assert!(log.is_empty(), "{:?}", log.events());
}

each_kind!(
    n6_started_in_f_from_the_body_is_cancelled_by_nursery,
    virtual_time
);
/// `started` in `f`, with `start` called from the nursery's own body: `Nursery::cancel`
/// reaches the started task at once.
async fn n6_started_in_f_from_the_body_is_cancelled_by_nursery<K: Kind>() {
    let r = K::nursery(|n| async move {
        n.start(|status| {
            status.started(());
            async {
                sleep(HOUR).await;
                Ok::<_, TestError>(())
            }
        })
        .await
        .unwrap();
        n.cancel();
        Ok(())
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n6_start_error_alternate_display_shows_the_cause_chain);
/// N6: `StartError`'s `{:#}` passes the flag on to the task's error, as `NurseryError`'s
/// does, so anyhow's cause chain shows (`{}` shows only the outermost context).
async fn n6_start_error_alternate_display_shows_the_cause_chain<K: Kind>() {
    use anyhow::Context;
    let e = K::nursery(|n| async move {
        let e = n
            .start(|_status: hatchery::TaskStatus<u16>| async move {
                Err::<(), _>(anyhow::anyhow!("address in use")).context("binding port 8080")
            })
            .await
            .unwrap_err();
        Ok::<_, anyhow::Error>(e)
    })
    .await
    .unwrap();
    assert_eq!(
        format!("{e:#}"),
        "task failed before it started: binding port 8080: address in use"
    );
    assert_eq!(
        format!("{e}"),
        "task failed before it started: binding port 8080"
    );
}

each_kind!(
    a_start_awaited_again_after_its_timeout_reports_not_started,
    virtual_time
);
/// A `Start` lent to a timeout that cancelled its task before `started`, awaited again
/// outside that scope, reports `NotStarted` (found by an audit: it stayed pending for
/// good, as its state was consumed by the cancelled poll; a polled `start` did too
/// until `start` was written once: this test checks both kinds).
async fn a_start_awaited_again_after_its_timeout_reports_not_started<K: Kind>() {
    let r = K::nursery(|n| async move {
        let mut start = n.start(|status: hatchery::TaskStatus<u32>| async move {
            sleep(HOUR).await;
            status.started(1);
            Ok::<_, TestError>(())
        });
        let first = move_on_after(secs(1), &mut start).await;
        assert!(first.is_none());
        // Bounded, so that the test cannot hang.
        let again = move_on_after(secs(10), start).await;
        Ok(again.map(|r| matches!(r, Err(StartError::NotStarted))))
    })
    .await;
    assert_eq!(r, Ok(Some(true)));
    assert_eq!(elapsed(), secs(1));
}

/// A value handed to `started` after its `Start` was dropped from outside (as by a
/// `select!`) is dropped with the `Start`'s end, where a panic in its drop is not lost
/// (found by an audit: it was kept until the task ended, then dropped outside the task's
/// panic handling, and the executor swallowed the panic).
#[hatchery::test(virtual_time)]
async fn a_started_value_nobody_takes_does_not_lose_its_drop_panic() {
    struct PanicOnDrop(&'static str);
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("{}", self.0);
        }
    }
    let r = catch_panic(nursery(|n: hatchery::Nursery<TestError>| async move {
        let mut start = n.start(|status| async move {
            sleep(secs(1)).await;
            status.started(PanicOnDrop("started value drop"));
            sleep(secs(1)).await;
            Ok(())
        });
        // The first poll spawns the task; it calls `started` at 1 s.
        assert!(futures_lite::future::poll_once(&mut start).await.is_none());
        sleep(Duration::from_millis(1500)).await;
        let dropped = catch_panic(async move { drop(start) }).await;
        assert_eq!(dropped.unwrap_err(), "started value drop");
        Ok(())
    }))
    .await;
    assert_eq!(r, Ok(Ok(())));
}

/// The error of a task whose `start` was dropped from outside before `started` has
/// nobody to go to (C8) and is dropped; a panic in that drop is the task's, and reaches
/// the nursery (it escaped into the executor, which swallowed it).
#[hatchery::test(virtual_time)]
async fn an_abandoned_start_errors_drop_panic_reaches_the_nursery() {
    #[derive(Debug)]
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("error drop");
        }
    }
    let r = catch_panic(nursery(|n: hatchery::Nursery<PanicOnDrop>| async move {
        let mut start = n.start(|_status: hatchery::TaskStatus<()>| async move {
            // Shielded: it outlives the cancellation of its abandoned `start`.
            shield(sleep(secs(1))).await;
            Err::<(), _>(PanicOnDrop)
        });
        assert!(futures_lite::future::poll_once(&mut start).await.is_none());
        drop(start);
        Ok(())
    }))
    .await;
    assert_eq!(r.map(|r| r.is_ok()).unwrap_err(), "error drop");
}

each_kind!(
    started_in_first_poll_into_cancelled_nursery_sees_cancelled,
    virtual_time
);
/// A task that calls `started()` in its first poll, from a caller that is not cancelled
/// (shielded), into a nursery that is: it sees the cancellation at once, as a task
/// spawned into a cancelled nursery does (from the deadline model: it saw `Never` until
/// it first suspended).
async fn started_in_first_poll_into_cancelled_nursery_sees_cancelled<K: Kind>() {
    let seen = Arc::new(Mutex::new(None));
    let scope = CancelScope::new();
    let handle = scope.handle();
    let s2 = seen.clone();
    let out = scope
        .run(K::nursery(|n| async move {
            // The nursery (inside the scope) is cancelled from here on. The caller is
            // shielded, so `started` is honoured: the task moves into the cancelled
            // nursery, and the `start` returns.
            handle.cancel();
            let r = shield(n.start(move |status| async move {
                status.started(());
                *s2.lock().unwrap() = Some(current_effective_deadline());
                checkpoint().await; // cancelled here (correctly)
                Ok::<(), TestError>(())
            }))
            .await;
            assert!(r.is_ok());
            checkpoint().await;
            Ok::<(), TestError>(())
        }))
        .await;
    assert_eq!(out, None);
    assert_eq!(
        *seen.lock().unwrap(),
        Some(Deadline::Cancelled),
        "a task moved into a cancelled nursery must see the cancellation at once"
    );
}

each_kind!(join_completes_after_started_into_cancelled, virtual_time);
/// The same window: `join` of a finished sibling must not complete once the task is in a
/// cancelled nursery (H5), although its caller is shielded.
async fn join_completes_after_started_into_cancelled<K: Kind>() {
    let joined = Arc::new(Mutex::new(None));
    let j2 = joined.clone();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run(K::nursery(|n| async move {
            let h = n.spawn(async { Ok::<u32, TestError>(5) });
            until(|| h.is_finished()).await;
            handle.cancel();
            let r = shield(n.start(move |status| async move {
                status.started(());
                let v = h.join().await; // must never complete: the nursery is cancelled
                *j2.lock().unwrap() = Some(v.is_ok());
                checkpoint().await;
                Ok::<(), TestError>(())
            }))
            .await;
            assert!(r.is_ok());
            checkpoint().await;
            Ok::<(), TestError>(())
        }))
        .await;
    assert_eq!(out, None);
    assert_eq!(
        *joined.lock().unwrap(),
        None,
        "join completed in a cancelled scope"
    );
}

/// A `start` whose task calls `started(1)` after an hour.
fn start_in_an_hour<K: Kind>(
    n: &kinds::Nursery<K, TestError>,
) -> impl Future<Output = Result<u32, hatchery::StartError<TestError>>> + Unpin {
    n.start(|status: hatchery::TaskStatus<u32>| async move {
        sleep(HOUR).await;
        status.started(1);
        Ok(())
    })
}

/// Polls `start` first in an inner scope, where it loses a race to a 1 s sleep: the
/// inner scope ends normally, and `start` is kept, its task not started.
async fn lose_a_race_in_an_inner_scope<F: Future + Unpin>(start: &mut F) {
    let inner = CancelScope::new()
        .run(futures_lite::future::or(
            async {
                let _ = start.await;
            },
            sleep(secs(1)),
        ))
        .await;
    assert!(inner.is_some(), "the inner scope ended normally");
}

each_kind!(
    s7_a_kept_start_is_cancelled_with_the_scope_that_awaits_it,
    virtual_time
);
/// A `start` kept past the inner scope of its first poll, awaited in an enclosing
/// scope that is cancelled: the task has not called `started`, so the cancellation
/// reaches it, and the scope ends at once.
async fn s7_a_kept_start_is_cancelled_with_the_scope_that_awaits_it<K: Kind>() {
    let r = K::nursery(|n| async move {
        let outer = CancelScope::new();
        let handle = outer.handle();
        let out = outer
            .run(async {
                let mut start = start_in_an_hour(&n);
                lose_a_race_in_an_inner_scope(&mut start).await;
                futures_lite::future::or(
                    async {
                        let _ = (&mut start).await;
                    },
                    async {
                        sleep(secs(1)).await;
                        handle.cancel(); // at 2 s
                        std::future::pending::<()>().await;
                    },
                )
                .await;
            })
            .await;
        Ok::<_, TestError>((out.is_none(), elapsed()))
    })
    .await;
    assert_eq!(r, Ok((true, secs(2))));
}

each_kind!(
    a_kept_start_is_cancelled_by_the_deadline_of_the_scope_that_awaits_it,
    virtual_time
);
/// The same with a deadline on the enclosing scope: the task must not stall on a
/// deadline whose cancellation cannot reach it (it did, and nothing around it could end).
async fn a_kept_start_is_cancelled_by_the_deadline_of_the_scope_that_awaits_it<K: Kind>() {
    let r = K::nursery(|n| async move {
        let outer = CancelScope::new().with_timeout(secs(10));
        let out = outer
            .run(async {
                let mut start = start_in_an_hour(&n);
                lose_a_race_in_an_inner_scope(&mut start).await;
                start.await
            })
            .await;
        Ok::<_, TestError>((out.is_none(), elapsed()))
    })
    .await;
    assert_eq!(r, Ok((true, secs(10))));
}

each_kind!(
    a_kept_start_repolled_in_an_already_cancelled_scope_is_cancelled,
    virtual_time
);
/// A kept `start` awaited again in a scope cancelled while the start was not polled (and
/// out of reach: the scope of its first poll had finished) takes that cancellation, and
/// the scope ends at once.
async fn a_kept_start_repolled_in_an_already_cancelled_scope_is_cancelled<K: Kind>() {
    let r = K::nursery(|n| async move {
        let outer = CancelScope::new();
        let handle = outer.handle();
        let out = outer
            .run(async {
                let mut start = start_in_an_hour(&n);
                lose_a_race_in_an_inner_scope(&mut start).await;
                handle.cancel(); // at 1 s, before the start is polled again
                let _ = (&mut start).await;
                unreachable!("the cancelled scope ends the work")
            })
            .await;
        Ok::<_, TestError>((out.is_none(), elapsed()))
    })
    .await;
    assert_eq!(r, Ok((true, secs(1))));
}

/// A `start` first polled inside hatchery can be awaited by a plain thread afterwards.
#[hatchery::test]
async fn a_kept_start_can_be_awaited_outside_hatchery() {
    let r = nursery(|n| async move {
        let go = Arc::new(hatchery::sync::Event::new());
        let go2 = go.clone();
        let mut start = n.start(|status: hatchery::TaskStatus<u32>| async move {
            go2.wait().await;
            status.started(7);
            Ok::<_, TestError>(())
        });
        // First poll inside hatchery: the task is spawned, and waits for `go`.
        assert!(futures_lite::future::poll_once(&mut start).await.is_none());
        go.set();
        let t = std::thread::spawn(move || futures_lite::future::block_on(start));
        let v = match hatchery::run_blocking(move || t.join()).await {
            Ok(r) => r.unwrap(),
            Err(p) => panic!(
                "awaiting the start outside hatchery panicked: {}",
                hatchery_tests::panic_message(&*p)
            ),
        };
        Ok::<_, TestError>(v)
    })
    .await;
    assert_eq!(r, Ok(7));
}

/// `start_with_handle` keeps both values: the one passed to `started` comes out of it,
/// and the task's own final value out of its handle, which `start` drops.
#[hatchery::test(virtual_time)]
async fn n6_start_with_handle_hands_back_the_final_value() {
    let r = nursery(|n| async move {
        let (port, server) = n
            .start_with_handle(|status| async move {
                sleep(secs(1)).await;
                status.started(8080u16);
                sleep(secs(2)).await;
                Ok::<_, TestError>(3u32) // served three requests
            })
            .await
            .unwrap();
        assert_eq!(elapsed(), secs(1));
        assert_eq!(port, 8080);
        assert!(!server.is_finished());
        Ok::<_, TestError>(server.join().await.unwrap())
    })
    .await;
    assert_eq!(r, Ok(3));
    assert_eq!(elapsed(), secs(3));
}

/// The handle of a started task is a task handle like a spawned one's: `cancel` cancels
/// that task alone (not a failure), and a failure after `started` goes to the nursery
/// (the handle reports it failed).
#[hatchery::test(virtual_time)]
async fn n6_start_with_handle_cancel_and_failure() {
    let r = nursery(|n| async move {
        let ((), h) = n
            .start_with_handle(|status| async move {
                status.started(());
                sleep(HOUR).await;
                Ok::<_, TestError>(1)
            })
            .await
            .unwrap();
        h.cancel();
        assert!(h.join().await.unwrap_err().is_cancelled());
        Ok::<_, TestError>("body")
    })
    .await;
    assert_eq!(r, Ok("body"));

    let r = nursery(|n| async move {
        let ((), h) = n
            .start_with_handle(|status| async move {
                status.started(());
                sleep(secs(1)).await;
                Err::<u8, _>(TestError("after started"))
            })
            .await
            .unwrap();
        let joined = move_on_after(HOUR, h.join()).await;
        assert!(joined.is_none(), "the body is cancelled by the failure");
        Ok::<_, TestError>(())
    })
    .await;
    assert_eq!(r.unwrap_err().into_errors(), [TestError("after started")]);
}

/// Before `started`, as `start`: an error comes out of `start_with_handle` (no handle is
/// made), and a task that returns without starting gives `NotStarted`; in both cases the
/// task's value, if any, is dropped with the task.
#[hatchery::test(virtual_time)]
async fn n6_start_with_handle_before_started() {
    let dropped = Counter::new();
    let d = dropped.clone();
    nursery(|n| async move {
        let r = n
            .start_with_handle(|_status: hatchery::TaskStatus<()>| async move {
                Err::<u8, _>(TestError("cannot bind"))
            })
            .await;
        assert!(matches!(
            r,
            Err(StartError::Failed(TestError("cannot bind")))
        ));
        let d2 = d.clone();
        let r = n
            .start_with_handle(|_status: hatchery::TaskStatus<()>| async move {
                Ok::<_, TestError>(d2.guard())
            })
            .await;
        assert!(matches!(r, Err(StartError::NotStarted)));
        assert_eq!(d.get(), 1);
        Ok::<_, TestError>(())
    })
    .await
    .unwrap();
    assert_eq!(dropped.get(), 1);
}

/// A dropped handle does not cancel the task, and the task's value is dropped once it
/// finishes (nobody can take it); a handle dropped after the task finished drops it
/// then.
#[hatchery::test(virtual_time)]
async fn n6_start_with_handle_dropped_handle() {
    let dropped = Counter::new();
    let d = dropped.clone();
    nursery(|n| async move {
        let d2 = d.clone();
        let ((), h) = n
            .start_with_handle(|status| async move {
                status.started(());
                sleep(secs(1)).await;
                Ok::<_, TestError>(d2.guard())
            })
            .await
            .unwrap();
        drop(h);
        sleep(secs(2)).await;
        assert_eq!(d.get(), 1, "finished, and its value dropped");
        let d3 = d.clone();
        let ((), h) = n
            .start_with_handle(|status| async move {
                status.started(());
                Ok::<_, TestError>(d3.guard())
            })
            .await
            .unwrap();
        sleep(secs(1)).await;
        assert!(h.is_finished());
        assert_eq!(d.get(), 1, "kept for the handle");
        drop(h);
        assert_eq!(d.get(), 2);
        Ok::<_, TestError>(())
    })
    .await
    .unwrap();
}
