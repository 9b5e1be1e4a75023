//! `finally(work, cleanup)`: shielded async cleanup that runs whether the work finished
//! or was cancelled (C6 applied to Python's `try: ... finally:`).

use hatchery::testing::elapsed;
use hatchery::{finally, move_on_after, nursery, sleep, CancelScope};
use hatchery_tests::{secs, Log, TestError, HOUR};

/// Work that finishes: the cleanup runs after it, then the value comes out.
#[hatchery::test(virtual_time)]
async fn cleanup_after_finished_work() {
    let log = Log::new();
    let out = finally(
        async {
            log.push("work");
            checkpoint_twice().await;
            7
        },
        async {
            sleep(secs(1)).await;
            log.push("cleanup");
        },
    )
    .await;
    assert_eq!(out, 7);
    assert_eq!(log.events(), ["work", "cleanup"]);
    assert_eq!(elapsed(), secs(1));
}

/// Work cancelled by an enclosing scope: the cleanup does async work to its end, then
/// the enclosing scope catches the cancellation.
#[hatchery::test(virtual_time)]
async fn cleanup_after_outer_cancel() {
    let log = Log::new();
    let scope = CancelScope::new().with_timeout(secs(5));
    let handle = scope.handle();
    let out = scope
        .run(async {
            finally(
                async {
                    log.push("work started");
                    sleep(HOUR).await;
                    log.push("work finished");
                },
                async {
                    log.push("cleanup started");
                    sleep(secs(20)).await; // the outer deadline has long passed
                    log.push("cleanup finished");
                },
            )
            .await;
            log.push("after finally"); // never: the cancellation continues
        })
        .await;
    assert_eq!(out, None);
    assert!(handle.cancelled_caught());
    assert_eq!(
        log.events(),
        ["work started", "cleanup started", "cleanup finished"]
    );
    assert_eq!(elapsed(), secs(25));
}

/// A cleanup can limit itself with its own scope, which still works inside the shield.
#[hatchery::test(virtual_time)]
async fn cleanup_own_timeout_works() {
    let log = Log::new();
    let out = move_on_after(secs(5), async {
        finally(sleep(HOUR), async {
            let r = move_on_after(secs(10), sleep(HOUR)).await;
            log.push(if r.is_none() {
                "cleanup timed out"
            } else {
                "cleanup done"
            });
        })
        .await;
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["cleanup timed out"]);
    assert_eq!(elapsed(), secs(15));
}

/// In a nursery child: the nursery's cancellation waits for the child's cleanup (N1).
#[hatchery::test(virtual_time)]
async fn cleanup_in_cancelled_nursery_child() {
    let log = Log::new();
    let l = log.clone();
    let r = nursery(|n| async move {
        n.spawn(async move {
            finally(sleep(HOUR), async move {
                sleep(secs(10)).await;
                l.push("child cleanup finished");
            })
            .await;
            Ok::<_, TestError>(())
        });
        sleep(secs(2)).await;
        n.cancel();
        sleep(HOUR).await;
        Ok(())
    })
    .await;
    log.push("nursery returned");
    assert!(r.unwrap_err().is_cancelled());
    assert_eq!(log.events(), ["child cleanup finished", "nursery returned"]);
    assert_eq!(elapsed(), secs(12));
}

/// A failing sibling cancels the work; the cleanup still runs and the error is reported.
#[hatchery::test(virtual_time)]
async fn cleanup_when_sibling_fails() {
    let log = Log::new();
    let l = log.clone();
    let r = nursery(|n| async move {
        n.spawn(async move {
            finally(sleep(HOUR), async move {
                sleep(secs(5)).await;
                l.push("cleanup finished");
            })
            .await;
            Ok(())
        });
        sleep(secs(2)).await;
        Err::<(), _>(TestError("boom"))
    })
    .await;
    assert_eq!(r.unwrap_err().into_errors(), [TestError("boom")]);
    assert_eq!(log.events(), ["cleanup finished"]);
    assert_eq!(elapsed(), secs(7));
}

async fn checkpoint_twice() {
    hatchery::checkpoint().await;
    hatchery::checkpoint().await;
}
