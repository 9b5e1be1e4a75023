//! `Nursery::subgroup`: tasks of a nursery cancelled and awaited apart from its body and
//! its other tasks, so that a body can stop its background tasks, await its cleanup and
//! keep its value. Everything else about the tasks is the nursery's (N1-N5).

use std::time::Duration;

use hatchery::testing::elapsed;
use hatchery::{move_on_after, nursery, sleep, Nursery, NurseryError};
use hatchery_tests::{ms, secs, Counter, Log, TestError, HOUR};

/// A task that runs until it is cancelled, logging its end.
async fn forever(log: Log) -> Result<(), TestError> {
    let _end = log.on_drop("helper dropped");
    sleep(HOUR).await;
    log.push("helper finished");
    Ok(())
}

/// The shape the subgroup exists for: stop the background tasks, wait for them, await a
/// cleanup in the body, and return the body's value. (With `Nursery::cancel` the cleanup
/// would be cancelled, and the value lost: the last test.)
#[hatchery::test(virtual_time)]
async fn cancel_then_cleanup_keeps_the_value() {
    let log = Log::new();
    let l = log.clone();
    let out = nursery(|n: Nursery<TestError>| async move {
        let background = n.subgroup();
        background.spawn(forever(l.clone()));
        background.spawn(forever(l.clone()));
        sleep(secs(2)).await; // the work
        background.cancel();
        background.wait().await;
        assert_eq!(l.count("helper dropped"), 2);
        sleep(secs(1)).await; // the cleanup: not cancelled
        l.push("cleaned up");
        Ok(7)
    })
    .await;
    assert_eq!(out.unwrap(), 7);
    assert_eq!(
        log.events(),
        ["helper dropped", "helper dropped", "cleaned up"]
    );
    assert_eq!(elapsed(), secs(3));
}

/// A subgroup's cancellation reaches its tasks only: a task spawned into the nursery
/// itself, and one in another subgroup, run on to their end.
#[hatchery::test(virtual_time)]
async fn cancel_spares_the_other_tasks() {
    let out = nursery(|n: Nursery<TestError>| async move {
        let a = n.subgroup();
        let b = n.subgroup();
        let in_a = a.spawn(async {
            sleep(HOUR).await;
            Ok(1)
        });
        let in_b = b.spawn(async {
            sleep(secs(5)).await;
            Ok(2)
        });
        let plain = n.spawn(async {
            sleep(secs(5)).await;
            Ok(3)
        });
        a.cancel();
        assert!(a.is_cancelled() && !b.is_cancelled() && !n.is_cancelled());
        assert!(in_a.join().await.unwrap_err().is_cancelled());
        Ok(in_b.join().await.unwrap() + plain.join().await.unwrap())
    })
    .await;
    assert_eq!(out.unwrap(), 5);
    assert_eq!(elapsed(), secs(5));
}

/// `wait` waits for a cancelled task's shielded cleanup, and for every task, however it
/// ended; with none left it returns at once. Not an error: the nursery does not fail.
#[hatchery::test(virtual_time)]
async fn wait_waits_for_shielded_cleanup() {
    let log = Log::new();
    let l = log.clone();
    nursery(|n: Nursery<TestError>| async move {
        let group = n.subgroup();
        group.wait().await; // empty
        let l2 = l.clone();
        group.spawn(async move {
            let _cleanup = hatchery::finally(sleep(HOUR), async {
                sleep(secs(3)).await;
                l2.push("cleanup done");
            })
            .await;
            Ok(())
        });
        group.spawn(async { Ok(()) });
        sleep(secs(1)).await;
        group.cancel();
        group.wait().await;
        l.push("waited");
        assert!(group.is_empty());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(log.events(), ["cleanup done", "waited"]);
    assert_eq!(elapsed(), secs(4));
}

/// Level-triggered, as every scope (C2, N5): a task spawned into a cancelled subgroup
/// runs to its first suspension point, then is cancelled; `wait` includes it.
#[hatchery::test(virtual_time)]
async fn spawning_into_a_cancelled_subgroup() {
    let log = Log::new();
    let l = log.clone();
    nursery(|n: Nursery<TestError>| async move {
        let group = n.subgroup();
        group.cancel();
        let l2 = l.clone();
        let h = group.spawn(async move {
            l2.push("first poll");
            sleep(HOUR).await;
            l2.push("not reached");
            Ok(())
        });
        group.wait().await;
        assert!(h.join().await.unwrap_err().is_cancelled());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(log.events(), ["first poll"]);
    assert_eq!(elapsed(), Duration::ZERO);
}

/// A subgroup's tasks are the nursery's in every other way: an error of one fails the
/// nursery, cancelling the body (waiting in `wait` or not) and the other tasks, and the
/// error is reported (N2).
#[hatchery::test(virtual_time)]
async fn a_failing_task_fails_the_nursery() {
    let log = Log::new();
    let l = log.clone();
    let out = nursery(|n: Nursery<TestError>| async move {
        let group = n.subgroup();
        group.spawn(async {
            sleep(secs(1)).await;
            Err::<(), _>(TestError("boom"))
        });
        n.spawn(forever(l.clone()));
        let _body = l.on_drop("body dropped");
        group.spawn(forever(l.clone()));
        sleep(HOUR).await;
        Ok(())
    })
    .await;
    assert_eq!(out.unwrap_err().into_errors(), [TestError("boom")]);
    assert_eq!(log.count("helper dropped"), 2);
    assert!(log.contains("body dropped"));
    assert_eq!(elapsed(), secs(1));
}

/// The nursery's own cancellation, and an enclosing scope's, reach the subgroup's tasks
/// (C2), and the nursery waits for them (N1); a subgroup made after the nursery was
/// cancelled is cancelled too.
#[hatchery::test(virtual_time)]
async fn the_nursery_cancellation_reaches_it() {
    let log = Log::new();
    let l = log.clone();
    let out = move_on_after(
        secs(2),
        nursery(|n: Nursery<TestError>| async move {
            n.subgroup().spawn(forever(l.clone()));
            sleep(HOUR).await;
            Ok(())
        }),
    )
    .await;
    assert!(out.is_none());
    assert_eq!(log.count("helper dropped"), 1);

    let l = log.clone();
    let out = nursery(|n: Nursery<TestError>| async move {
        n.subgroup().spawn(forever(l.clone()));
        n.cancel();
        let late = n.subgroup();
        assert!(late.is_cancelled());
        Ok(())
    })
    .await;
    assert_eq!(out.unwrap(), ());
    assert_eq!(log.count("helper dropped"), 2);
    assert_eq!(elapsed(), secs(2));
}

/// `wait` is a hatchery wait: in a cancelled scope it never completes (W1), even with
/// no task left, and the scope drops it.
#[hatchery::test]
async fn wait_in_a_cancelled_scope_never_completes() {
    let log = Log::new();
    let l = log.clone();
    nursery(|n: Nursery<TestError>| async move {
        let group = n.subgroup();
        let scope = hatchery::CancelScope::new();
        let handle = scope.handle();
        let r = scope
            .run(async {
                handle.cancel();
                group.wait().await; // nothing to wait for, but cancelled
                l.push("not reached");
            })
            .await;
        assert!(r.is_none());
        group.wait().await; // outside the cancelled scope: at once
        Ok(())
    })
    .await
    .unwrap();
    assert!(log.is_empty());
}

/// A subgroup of a nursery that has finished takes no task, as the nursery does (N5).
#[hatchery::test]
async fn a_closed_nursery_subgroup_refuses_tasks() {
    let mut saved = None;
    nursery(|n: Nursery<TestError>| {
        saved = Some(n.subgroup());
        async { Ok(()) }
    })
    .await
    .unwrap();
    let group = saved.unwrap();
    let dropped = Counter::new();
    let guard = dropped.guard();
    let r = group.try_spawn(async move {
        drop(guard);
        Ok::<_, TestError>(())
    });
    assert!(r.is_err());
    assert_eq!(dropped.get(), 1, "the future is dropped unpolled");
    let p = hatchery_tests::catch_panic(async { group.spawn(async { Ok(()) }) }).await;
    assert!(p.unwrap_err().contains("Subgroup::try_spawn"));
}

/// The contrast: `Nursery::cancel` followed by an `.await` in the body cancels the body
/// too, and its value is lost (N4). This is what a subgroup avoids.
#[hatchery::test(virtual_time)]
async fn nursery_cancel_then_await_loses_the_value() {
    let log = Log::new();
    let l = log.clone();
    let out = nursery(|n: Nursery<TestError>| async move {
        n.spawn(forever(l.clone()));
        n.cancel();
        sleep(ms(1)).await; // the cleanup: cancelled here
        l.push("not reached");
        Ok(7)
    })
    .await;
    assert!(matches!(out, Err(NurseryError::Cancelled)));
    assert_eq!(log.events(), ["helper dropped"]);
}

/// Many tasks across threads: `wait` returns only once every one has finished, however
/// they race with it.
#[hatchery::test]
async fn wait_sees_every_task_finish() {
    for _ in 0..50 {
        let done = Counter::new();
        let d = done.clone();
        nursery(|n: Nursery<TestError>| async move {
            let group = n.subgroup();
            for _ in 0..20 {
                let d = d.clone();
                group.spawn(async move {
                    hatchery::checkpoint().await;
                    d.incr();
                    Ok(())
                });
            }
            group.wait().await;
            assert_eq!(d.get(), 20);
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(done.get(), 20);
    }
}
