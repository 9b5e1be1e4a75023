//! Foreign droppers (C8): a hatchery future dropped from outside hatchery (a `select`-like
//! race, a poll-once, `tokio::time::timeout`) cancels everything inside at once; children
//! are cancelled without being awaited. What a drop leaves behind is checked on both kinds
//! of nursery; that a spawned child (or a started task) runs on after the drop, to its next
//! suspension point, on the spawning one: a polled nursery's children go with it at once
//! (I3, tests/nursery/polled.rs).

use std::future::Future;
use std::time::Duration;

use futures_lite::future;
use hatchery::testing::elapsed;
use hatchery::{
    checkpoint, move_on_after, nursery, shield, sleep, CancelScope, Nursery, TaskStatus,
};
use hatchery_tests::{
    catch_panic, each_kind, eventually, is_tokio, kinds, ms, secs, until, Counter, Kind, Log,
    TestError, HOUR,
};

/// Generous bound for "soon after" the drop (on real time; under virtual time
/// [`eventually`] lets no time pass at all).
const SOON: Duration = Duration::from_secs(5);

/// A nursery with `count` children that each count their start, then park forever (half
/// on a hatchery sleep, half on a foreign pending future), logging if they ever resume.
fn parked_nursery<K: Kind>(
    count: usize,
    started: &Counter,
    dropped: &Counter,
    log: &Log,
) -> impl Future<Output = Result<(), hatchery::NurseryError<TestError>>> {
    let (started, dropped, log) = (started.clone(), dropped.clone(), log.clone());
    K::nursery(move |n: kinds::Nursery<K, TestError>| async move {
        for i in 0..count {
            let (started, guard, log) = (started.clone(), dropped.guard(), log.clone());
            n.spawn(async move {
                let _guard = guard;
                started.incr();
                if i % 2 == 0 {
                    sleep(HOUR).await;
                } else {
                    std::future::pending::<()>().await;
                }
                log.push("unreachable: child resumed");
                Ok(())
            });
        }
        sleep(HOUR).await;
        log.push("unreachable: body resumed");
        Ok(())
    })
}

each_kind!(c8_race_drops_nursery, virtual_time);
/// C8: a nursery future dropped by a race (`futures_lite::future::or`) cancels its
/// children promptly; none resumes past its suspension point.
async fn c8_race_drops_nursery<K: Kind>() {
    let (started, dropped, log) = (Counter::new(), Counter::new(), Log::new());
    let nursery_fut = parked_nursery::<K>(8, &started, &dropped, &log);
    let winner = future::or(async { nursery_fut.await.map(|_| "nursery") }, async {
        until(|| started.get() == 8).await;
        Ok("race")
    })
    .await;
    assert_eq!(winner, Ok("race"));
    assert!(
        eventually(SOON, || dropped.get() == 8).await,
        "dropped {}",
        dropped.get()
    );
    assert!(log.is_empty(), "{log:?}");
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(c8_poll_once_then_drop, virtual_time);
/// C8: `poll_once` then drop: children spawned in that single poll (not yet polled
/// themselves) still get their first poll, then are cancelled.
async fn c8_poll_once_then_drop<K: Kind>() {
    let (started, dropped, log) = (Counter::new(), Counter::new(), Log::new());
    let out = future::poll_once(parked_nursery::<K>(6, &started, &dropped, &log)).await;
    assert!(out.is_none());
    assert!(
        eventually(SOON, || dropped.get() == 6).await,
        "dropped {}",
        dropped.get()
    );
    assert_eq!(started.get(), 6);
    assert!(log.is_empty(), "{log:?}");
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(c8_dropping_enclosing_scope, virtual_time);
/// C8: dropping a scope (`move_on_after`) that holds a nursery cancels the children too.
async fn c8_dropping_enclosing_scope<K: Kind>() {
    let (started, dropped, log) = (Counter::new(), Counter::new(), Log::new());
    let scoped = move_on_after(HOUR, parked_nursery::<K>(4, &started, &dropped, &log));
    let winner = future::or(async { scoped.await.map(|_| "scope") }, async {
        until(|| started.get() == 4).await;
        Some("race")
    })
    .await;
    assert_eq!(winner, Some("race"));
    assert!(eventually(SOON, || dropped.get() == 4).await);
    assert!(log.is_empty(), "{log:?}");
    assert_eq!(elapsed(), Duration::ZERO);
}

/// C8: children are not awaited: the drop returns while a child is still inside a
/// shield; the child finishes the shield, then stops at its next suspension point.
#[hatchery::test(virtual_time)]
async fn c8_f1_children_not_awaited() {
    let log = Log::new();
    let gate = Counter::new();
    let in_shield = Counter::new();
    let nursery_fut = nursery({
        let (log, gate, in_shield) = (log.clone(), gate.clone(), in_shield.clone());
        move |n: Nursery<TestError>| async move {
            n.spawn(async move {
                shield(async {
                    in_shield.incr();
                    until(|| gate.get() == 1).await;
                    log.push("shielded cleanup done");
                })
                .await;
                log.push("after shield");
                checkpoint().await;
                log.push("unreachable");
                Ok(())
            });
            sleep(HOUR).await;
            Ok(())
        }
    });
    future::or(async { nursery_fut.await.ok() }, async {
        until(|| in_shield.get() == 1).await;
        None
    })
    .await;
    // The drop did not wait for the shielded child.
    assert!(log.is_empty());
    gate.incr();
    assert!(eventually(SOON, || log.len() == 2).await);
    sleep(secs(5)).await;
    assert_eq!(log.events(), ["shielded cleanup done", "after shield"]);
    assert_eq!(elapsed(), secs(5));
}

/// C8: a `start` future dropped from outside before the task called `started`
/// cancels that task; the nursery carries on.
#[hatchery::test(virtual_time)]
async fn c8_f3_dropping_start_cancels_unstarted_task() {
    let log = Log::new();
    let r = nursery(|n| {
        let log = log.clone();
        async move {
            let started = Counter::new();
            let s = started.clone();
            let guard_log = log.clone();
            let start = n.start(move |status: TaskStatus<()>| async move {
                let _guard = guard_log.on_drop("starting task dropped");
                s.incr();
                sleep(HOUR).await;
                status.started(());
                Ok::<_, TestError>(())
            });
            let out = future::or(async { start.await.ok().map(|_| "start") }, async {
                until(|| started.get() == 1).await;
                None
            })
            .await;
            assert_eq!(out, None);
            let l = log.clone();
            assert!(eventually(SOON, move || l.contains("starting task dropped")).await);
            Ok(())
        }
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(log.events(), ["starting task dropped"]);
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(c8_state_is_clean_after_drop, virtual_time);
/// C8: after a foreign drop, hatchery in the same task keeps working: scopes around
/// the dropped future can still be cancelled and return (no leftover state holds them
/// open).
async fn c8_state_is_clean_after_drop<K: Kind>() {
    let (started, dropped, log) = (Counter::new(), Counter::new(), Log::new());
    let scope = CancelScope::new();
    let handle = scope.handle();
    let bounded = future::or(
        async {
            scope
                .run(async {
                    let _ = future::or(
                        async { parked_nursery::<K>(3, &started, &dropped, &log).await.ok() },
                        async {
                            until(|| started.get() == 3).await;
                            None
                        },
                    )
                    .await;
                    handle.cancel();
                    sleep(HOUR).await;
                    "unreachable"
                })
                .await
        },
        async {
            // A foreign bound so that a leak fails the test instead of hanging it.
            sleep(SOON).await;
            Some("bounded: the scope did not return")
        },
    )
    .await;
    assert_eq!(bounded, None);
    assert!(handle.cancelled_caught());
    assert!(eventually(SOON, || dropped.get() == 3).await);
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(c8_tokio_timeout_drops_nursery);
/// C8: `tokio::time::timeout` around a nursery (tokio backends only; on smol the same
/// is checked with a race). Real time: virtual time does not drive tokio's timer.
async fn c8_tokio_timeout_drops_nursery<K: Kind>() {
    let (started, dropped, log) = (Counter::new(), Counter::new(), Log::new());
    let fut = parked_nursery::<K>(8, &started, &dropped, &log);
    if is_tokio() {
        let r = tokio::time::timeout(ms(20), fut).await;
        assert!(r.is_err(), "the timeout elapsed");
    } else {
        let r = future::or(async { fut.await.ok() }, async {
            sleep(ms(20)).await;
            None
        })
        .await;
        assert!(r.is_none());
    }
    assert!(
        eventually(SOON, || dropped.get() == 8).await,
        "dropped {}",
        dropped.get()
    );
    assert_eq!(started.get(), 8);
    assert!(log.is_empty(), "{log:?}");
}

/// C8 with C6: a shield protects against hatchery cancellation, not against a foreign
/// owner dropping it: dropping the future drops the shielded work at once.
#[hatchery::test(virtual_time)]
async fn c8_f4_p6_foreign_drop_drops_shielded_work() {
    let log = Log::new();
    let entered = Counter::new();
    let fut = CancelScope::new().run(shield({
        let (log, entered) = (log.clone(), entered.clone());
        async move {
            let _guard = log.on_drop("shielded work dropped");
            entered.incr();
            sleep(HOUR).await;
            log.push("unreachable");
        }
    }));
    let out = future::or(async { fut.await.map(|_| "scope") }, async {
        until(|| entered.get() == 1).await;
        Some("race")
    })
    .await;
    assert_eq!(out, Some("race"));
    assert_eq!(log.events(), ["shielded work dropped"]);
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(c8_dropped_nursery_refuses_spawns, virtual_time);
/// C8/N5: a nursery dropped from outside is closed: spawning into it through a clone
/// that outlived it fails clearly, instead of running a task nobody waits for.
async fn c8_dropped_nursery_refuses_spawns<K: Kind>() {
    let saved = std::sync::Arc::new(std::sync::Mutex::new(None));
    let s = saved.clone();
    let mut fut = Box::pin(K::nursery(move |n: kinds::Nursery<K, TestError>| {
        *s.lock().unwrap() = Some(n);
        async {
            sleep(HOUR).await;
            Ok(())
        }
    }));
    assert!(future::poll_once(fut.as_mut()).await.is_none());
    let n = saved.lock().unwrap().take().unwrap();
    assert!(!n.is_closed());
    drop(fut); // a foreign dropper (C8)
    assert!(n.is_closed());
    let ran = Counter::new();
    let r = n.try_spawn({
        let ran = ran.clone();
        async move {
            ran.incr();
            Err::<(), _>(TestError("lost"))
        }
    });
    assert!(r.is_err(), "spawned into a dropped nursery");
    sleep(secs(1)).await;
    assert_eq!(ran.get(), 0);
}

/// C8: an error of a task whose `start` was dropped from outside before `started` is
/// dropped with it (nobody is left to report it to): it does not fail the nursery.
#[hatchery::test(virtual_time)]
async fn c8_f3_dropped_start_error_is_not_reported_to_the_nursery() {
    let r = nursery(|n| async move {
        let running = Counter::new();
        let r2 = running.clone();
        let start = n.start(move |_status: TaskStatus<()>| async move {
            r2.incr();
            shield(sleep(secs(5))).await; // busy when `start` is dropped
            Err::<(), _>(TestError("after drop"))
        });
        // A foreign dropper: `or` drops `start` once the task is running.
        let out = future::or(async { start.await.ok().map(|()| "started") }, async {
            until(|| running.get() == 1).await;
            None
        })
        .await;
        assert_eq!(out, None);
        sleep(secs(10)).await; // the body goes on with other work
        Ok(())
    })
    .await;
    assert_eq!(r, Ok(()));
}

/// The same for a panic: the nursery does not resume it.
#[hatchery::test(virtual_time)]
async fn c8_dropped_start_panic_is_not_resumed_by_the_nursery() {
    let r = catch_panic(nursery(|n| async move {
        let running = Counter::new();
        let r2 = running.clone();
        let start = n.start(move |_status: TaskStatus<()>| async move {
            r2.incr();
            shield(sleep(secs(5))).await;
            if true {
                panic!("after drop");
            }
            Ok::<(), TestError>(())
        });
        let out = future::or(async { start.await.ok().map(|()| "started") }, async {
            until(|| running.get() == 1).await;
            None
        })
        .await;
        assert_eq!(out, None);
        sleep(secs(10)).await;
        Ok(())
    }))
    .await;
    assert_eq!(r, Ok(Ok(())));
}

/// C8 with a child in its first poll: the nursery is dropped from outside (here by the
/// child itself, which gives the order a child on another worker can have) before the
/// child first suspends. The child links into the dropped nursery at that suspension,
/// and must inherit its cancellation there, not run on as an orphan.
#[hatchery::test(virtual_time)]
async fn c8_drop_during_a_childs_first_poll_cancels_it() {
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    type Kept = Pin<Box<dyn Future<Output = Result<(), hatchery::NurseryError<TestError>>> + Send>>;
    let slot: Arc<Mutex<Option<Kept>>> = Arc::default();
    let log = Log::new();
    let (s, l) = (slot.clone(), log.clone());
    let fut: Kept = Box::pin(nursery(move |n: Nursery<TestError>| async move {
        n.spawn(async move {
            // The foreign dropper, while this child runs its first poll.
            let kept = s.lock().unwrap().take();
            drop(kept);
            sleep(secs(1)).await;
            l.push("child resumed after the C8 drop");
            Ok(())
        });
        sleep(HOUR).await;
        Ok(())
    }));
    *slot.lock().unwrap() = Some(fut);
    // Poll the nursery once (it opens and spawns its child), then let go of it.
    future::poll_fn(|cx| {
        if let Some(f) = slot.lock().unwrap().as_mut() {
            let _ = f.as_mut().poll(cx);
        }
        std::task::Poll::Ready(())
    })
    .await;
    until(|| slot.lock().unwrap().is_none()).await;
    sleep(secs(10)).await;
    assert!(log.is_empty(), "{:?}", log.events());
}

/// F5: leaf waits and scopes with no nursery inside (`sleep`, a primitive's wait,
/// `move_on_after`, `fail_after`, `shield`, `CancelScope::run`) may lose any select and
/// be dropped: nothing of them stays behind (no deadline, no hold on the scopes around),
/// so a cancellation of the enclosing scope afterwards ends it at its next suspension.
#[hatchery::test(virtual_time)]
async fn f5_scopes_without_a_nursery_may_lose_any_select() {
    async fn lost<F: Future>(loser: F) -> &'static str {
        loser.await;
        "lost"
    }
    let sem = hatchery::sync::Semaphore::new(0);
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run(async {
            let won = || async {
                sleep(secs(1)).await;
                "won"
            };
            let r = [
                future::or(async { lost(sleep(HOUR)).await }, won()).await,
                future::or(async { lost(sem.acquire()).await }, won()).await,
                future::or(
                    async { lost(move_on_after(HOUR, sleep(HOUR))).await },
                    won(),
                )
                .await,
                future::or(
                    async { lost(hatchery::fail_after(HOUR, sleep(HOUR))).await },
                    won(),
                )
                .await,
                future::or(async { lost(shield(sleep(HOUR))).await }, won()).await,
                future::or(
                    async { lost(CancelScope::new().run(sleep(HOUR))).await },
                    won(),
                )
                .await,
            ];
            assert_eq!(r, ["won"; 6]);
            assert_eq!(
                hatchery::current_effective_deadline(),
                hatchery::Deadline::Never
            );
            handle.cancel();
            sleep(HOUR).await
        })
        .await;
    assert_eq!((out, elapsed()), (None, secs(6)));
}
