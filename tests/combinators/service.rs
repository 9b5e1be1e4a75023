//! `service`: background work that does not disturb its siblings when it fails, and a
//! graceful shutdown (stop accepting, drain within the grace period, cancel the rest, report)
//! after which no task is left running.

use std::sync::{Arc, Mutex};

use hatchery::testing::virtual_time;
use hatchery::{finally, move_on_after, service, shield, sleep, Service};
use hatchery_tests::{catch_panic, ms, secs, until, Counter, Log, TestError, HOUR};

/// Background work that panics.
async fn boom() -> Result<(), TestError> {
    sleep(ms(2)).await;
    panic!("task panicked")
}

/// When the body returns, the running work is drained; errors are reported, in order,
/// and do not cancel the other tasks.
#[hatchery::test]
async fn drains_when_the_body_returns() {
    let report = service(HOUR, |svc| async move {
        svc.spawn(async { Err::<(), _>(TestError("first")) });
        svc.spawn(async {
            sleep(ms(10)).await;
            Ok(())
        });
        svc.spawn(async {
            sleep(ms(30)).await;
            Err(TestError("later"))
        });
        Ok::<_, TestError>("done")
    })
    .await;
    assert_eq!(report.value, Some("done"));
    assert_eq!(report.errors, [TestError("first"), TestError("later")]);
    assert_eq!((report.completed, report.cancelled), (3, 0));
    assert!(!report.is_clean());
    assert_eq!(report.into_result().unwrap_err().errors().len(), 2);
}

/// Work still running at the end of the grace period is cancelled and awaited: its
/// async cleanup has finished when `service` returns.
#[hatchery::test]
async fn the_grace_period_ends_with_cancellation() {
    let log = Log::new();
    let dropped = Counter::new();
    let report = service(ms(20), |svc| {
        let (log, dropped) = (log.clone(), dropped.clone());
        async move {
            for _ in 0..3 {
                let (log, guard) = (log.clone(), dropped.guard());
                svc.spawn(async move {
                    let _guard = guard;
                    finally(sleep(HOUR), async move {
                        sleep(ms(5)).await;
                        log.push("cleaned up");
                    })
                    .await;
                    Ok::<_, TestError>(())
                });
            }
            // Finishes at its first poll, long before the grace period ends, however
            // slowly the machine runs.
            svc.spawn(async { Ok(()) });
            Ok(())
        }
    })
    .await;
    assert_eq!(report.value, Some(()));
    assert_eq!((report.completed, report.cancelled), (1, 3));
    assert!(report.errors.is_empty());
    assert_eq!(report.into_result(), Ok(Some(())));
    assert_eq!(dropped.get(), 3);
    assert_eq!(log.count("cleaned up"), 3);
}

/// On a virtual clock the grace period is exact: the drain ends when the last task
/// finishes, or at the end of the grace period, whichever comes first.
#[hatchery::test]
async fn grace_period_on_virtual_time() {
    virtual_time(async {
        let t0 = hatchery::now();
        let report = service(HOUR, |svc| async move {
            svc.spawn(async {
                sleep(HOUR / 2).await;
                Ok::<_, TestError>(())
            });
            Ok(())
        })
        .await;
        assert_eq!((report.completed, report.cancelled), (1, 0));
        assert_eq!((hatchery::now() - t0).as_secs(), 1800);

        let t0 = hatchery::now();
        let report = service(HOUR, |svc| async move {
            svc.spawn(async {
                sleep(HOUR * 2).await;
                Ok::<_, TestError>(())
            });
            Ok(())
        })
        .await;
        assert_eq!((report.completed, report.cancelled), (0, 1));
        assert_eq!((hatchery::now() - t0).as_secs(), 3600);
    })
    .await;
}

/// `shutdown` cancels the body and stops accepting work from outside; tasks of the
/// service may still hand off follow-up work while they drain.
#[hatchery::test]
async fn shutdown_stops_accepting_but_drains_follow_ups() {
    let log = Log::new();
    let report = service(HOUR, |svc: Service<TestError>| {
        let log = log.clone();
        async move {
            let _guard = log.on_drop("body dropped");
            let inner = svc.clone();
            let log2 = log.clone();
            svc.spawn(async move {
                until(|| inner.is_shutting_down()).await;
                sleep(ms(5)).await;
                // A task of the service hands off follow-up work during the drain.
                let log3 = log2.clone();
                inner
                    .try_spawn(async move {
                        sleep(ms(5)).await;
                        log3.push("follow-up done");
                        Ok::<_, TestError>(())
                    })
                    .expect("follow-up work is accepted while draining");
                Ok(())
            });
            assert!(!svc.is_shutting_down());
            svc.shutdown();
            assert!(svc.is_shutting_down());
            assert!(
                svc.try_spawn(async { Ok(()) }).is_err(),
                "outside work accepted"
            );
            sleep(HOUR).await;
            Ok(())
        }
    })
    .await;
    assert_eq!(report.value, None);
    assert!(log.contains("body dropped"));
    assert!(log.contains("follow-up done"));
    assert_eq!((report.completed, report.cancelled), (2, 0));
}

/// A failing body begins the shutdown like a return; its error is reported after the
/// ones that happened before it.
#[hatchery::test]
async fn a_failing_body_is_reported_and_work_drained() {
    let report = service(HOUR, |svc| async move {
        svc.spawn(async { Err::<(), _>(TestError("task")) });
        until(|| svc.running() == 0).await;
        svc.spawn(async {
            sleep(ms(5)).await;
            Ok(())
        });
        Err::<(), _>(TestError("body"))
    })
    .await;
    assert_eq!(report.value, None);
    assert_eq!(report.errors, [TestError("task"), TestError("body")]);
    assert_eq!((report.completed, report.cancelled), (2, 0));
}

/// No background work: the service returns once the body does.
#[hatchery::test]
async fn empty_and_single() {
    let report = service(HOUR, |_svc| async { Ok::<_, TestError>(1) }).await;
    assert_eq!(report.value, Some(1));
    assert!(report.is_clean());
    assert_eq!((report.completed, report.cancelled), (0, 0));
    let report = service(ms(0), |svc| async move {
        svc.spawn(async { Ok::<_, TestError>(()) });
        Ok(())
    })
    .await;
    assert_eq!(report.completed + report.cancelled, 1);
}

/// After the service has returned, nothing can be spawned into it.
#[hatchery::test]
async fn spawning_after_the_end_fails() {
    let mut saved = None;
    let report = service(HOUR, |svc: Service<TestError>| {
        saved = Some(svc);
        async { Ok(()) }
    })
    .await;
    assert!(report.is_clean());
    let svc = saved.unwrap();
    assert!(svc.try_spawn(async { Ok(()) }).is_err());
    assert_eq!(svc.running(), 0);
}

/// A caller cancelled midway (not a graceful shutdown) leaks nothing: the body and every
/// task are dropped by the time the enclosing scope returns.
#[hatchery::test]
async fn caller_cancelled_midway_leaks_nothing() {
    let dropped = Counter::new();
    let out = move_on_after(
        ms(10),
        service(HOUR, |svc| {
            let dropped = dropped.clone();
            async move {
                let _guard = dropped.guard();
                for _ in 0..3 {
                    let guard = dropped.guard();
                    svc.spawn(async move {
                        let _guard = guard;
                        sleep(HOUR).await;
                        Ok::<_, TestError>(())
                    });
                }
                sleep(HOUR).await;
                Ok(())
            }
        }),
    )
    .await;
    assert!(out.is_none());
    assert_eq!(dropped.get(), 4);
}

/// A panic in background work cancels everything and is resumed once all stopped.
#[hatchery::test]
async fn a_panic_is_resumed_after_everything_stopped() {
    let dropped = Counter::new();
    let r = catch_panic(service(HOUR, |svc| {
        let guard = dropped.guard();
        async move {
            svc.spawn(async move {
                let _guard = guard;
                sleep(HOUR).await;
                Ok::<_, TestError>(())
            });
            svc.spawn(boom());
            sleep(HOUR).await;
            Ok(())
        }
    }))
    .await;
    assert_eq!(r.unwrap_err(), "task panicked");
    assert_eq!(dropped.get(), 1);
}

/// A service that an enclosing scope cancelled is closed: a handle kept past it says so
/// and refuses work (without counting the refusal as a cancelled task).
#[hatchery::test(virtual_time)]
async fn a_service_cancelled_from_outside_is_closed() {
    let slot: Arc<Mutex<Option<Service<TestError>>>> = Arc::default();
    let s2 = slot.clone();
    let r = move_on_after(
        secs(1),
        service(HOUR, move |svc| async move {
            *s2.lock().unwrap() = Some(svc.clone());
            sleep(HOUR).await;
            Ok(())
        }),
    )
    .await;
    assert!(r.is_none());
    let svc = slot.lock().unwrap().take().unwrap();
    assert!(svc.is_shutting_down(), "{svc:?}");
    assert!(svc.try_spawn(async { Ok(()) }).is_err());
    assert_eq!(svc.running(), 0);
    let dbg = format!("{svc:?}");
    assert!(
        dbg.contains("cancelled: 0"),
        "a refused spawn counted: {dbg}"
    );
}

/// A service cancelled from outside is shutting down (and refuses work) even while its
/// body is still finishing a shielded section.
#[hatchery::test(virtual_time)]
async fn cancelled_from_outside_while_the_body_is_shielded_refuses_work() {
    let seen = Arc::new(Mutex::new(None));
    let s2 = seen.clone();
    let r = move_on_after(
        secs(1),
        service(HOUR, move |svc| async move {
            shield(async {
                sleep(secs(2)).await; // the outer scope is cancelled at 1 s
                let accepted = svc.try_spawn(async { Ok::<_, TestError>(()) }).is_ok();
                *s2.lock().unwrap() = Some((svc.is_shutting_down(), accepted));
            })
            .await;
            Ok::<_, TestError>(())
        }),
    )
    .await;
    assert!(r.is_none());
    assert_eq!(*seen.lock().unwrap(), Some((true, false)));
}

/// An enclosing cancellation does not turn `spawn` into a panic (found by an audit): a
/// service entered under a deadline that has passed still runs its body to its first
/// suspension, and work it spawns there is dropped unpolled (`try_spawn` refuses it). (It
/// panicked "the service is shutting down", although nobody had shut it down.)
#[hatchery::test(virtual_time)]
async fn spawn_under_an_enclosing_cancellation_does_not_panic() {
    let ran = Counter::new();
    let r = ran.clone();
    let out = catch_panic(move_on_after(
        std::time::Duration::ZERO,
        service(HOUR, move |svc: Service<TestError>| async move {
            svc.spawn(async move {
                r.incr();
                sleep(secs(1)).await;
                r.incr();
                Ok(())
            });
            assert!(svc.try_spawn(async { Ok(()) }).is_err());
            assert_eq!(svc.running(), 0);
            sleep(secs(1)).await;
            Ok(())
        }),
    ))
    .await;
    assert_eq!(out, Ok(None));
    assert_eq!(ran.get(), 0, "the refused work ran");
}

/// A service started in a nursery that a sibling's error has already cancelled: its
/// spawned work is cancelled, and the nursery reports the sibling's error (it reported
/// the service's panic, which won over the error).
#[hatchery::test(virtual_time)]
async fn a_service_in_a_failing_nursery_reports_the_sibling_error() {
    let r = catch_panic(hatchery::nursery(|n| async move {
        n.spawn(async { Err::<(), _>(TestError("sibling")) });
        let n2 = n.clone();
        // The service's task is spawned once the sibling's error has cancelled the
        // nursery.
        shield(until(move || n2.is_cancelled())).await;
        n.spawn(async {
            service(HOUR, |svc: Service<TestError>| async move {
                svc.spawn(async {
                    sleep(secs(1)).await;
                    Ok(())
                });
                sleep(HOUR).await;
                Ok(())
            })
            .await;
            Ok(())
        });
        Ok(())
    }))
    .await;
    let e = r
        .expect("a panic instead of the sibling's error")
        .unwrap_err();
    assert_eq!(e.errors(), [TestError("sibling")]);
}

/// A task's shielded cleanup that hands on follow-up work after an enclosing scope has
/// cancelled the service (and so ended it) does not panic either: the work is dropped
/// (found by a review; the service's end by cancellation counted as a shutdown).
#[hatchery::test(virtual_time)]
async fn a_shielded_follow_up_after_an_enclosing_cancellation_does_not_panic() {
    let refused = Arc::new(Mutex::new(None));
    let r = refused.clone();
    let out = catch_panic(move_on_after(
        secs(1),
        service(HOUR, move |svc: Service<TestError>| async move {
            let s = svc.clone();
            svc.spawn(async move {
                // Cleanup that the cancellation cannot cut, which hands on a follow-up.
                shield(async move {
                    sleep(secs(2)).await;
                    *r.lock().unwrap() = Some(s.try_spawn(async { Ok(()) }).is_err());
                    s.spawn(async { Ok(()) });
                })
                .await;
                Ok(())
            });
            sleep(HOUR).await;
            Ok(())
        }),
    ))
    .await;
    assert_eq!(out, Ok(None));
    assert_eq!(*refused.lock().unwrap(), Some(true));
}

/// A service whose body returns at once in a scope cancelled already (its `try_spawn` is
/// refused there) finishes in its first poll, never suspending, and returns its report,
/// as a nursery that never suspended does (documented on `service`).
#[hatchery::test]
async fn a_service_that_finishes_in_its_first_poll_in_a_cancelled_scope_returns() {
    let scope = hatchery::CancelScope::new();
    let h = scope.handle();
    let out = scope
        .run(async move {
            h.cancel();
            service(HOUR, |svc: Service<TestError>| async move {
                Ok::<_, TestError>(svc.try_spawn(async { Ok(()) }).is_err())
            })
            .await
        })
        .await;
    let report = out.expect("returned in its first poll");
    assert_eq!(report.value, Some(true), "try_spawn was refused");
    assert_eq!((report.completed, report.cancelled), (0, 0));
}
