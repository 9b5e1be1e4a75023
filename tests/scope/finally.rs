//! `finally(work, cleanup)`: shielded async cleanup that runs whether the work finished
//! or was cancelled (C6 applied to Python's `try: ... finally:`).

use hatchery::testing::elapsed;
use hatchery::{finally, finally_with, move_on_after, nursery, sleep, CancelScope};
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

/// A resource with `&mut self` methods and a `close` that takes it, for `finally_with`.
struct Session {
    log: Log,
    rows: u32,
}

impl Session {
    fn new(log: &Log, rows: u32) -> Session {
        Session {
            log: log.clone(),
            rows,
        }
    }

    async fn execute(&mut self, secs_taken: u64) -> u32 {
        self.log.push("execute");
        sleep(secs(secs_taken)).await;
        self.rows += 1;
        self.rows
    }

    async fn close(self) {
        sleep(secs(1)).await;
        self.log.push("closed");
    }
}

/// The work borrows the resource mutably, the cleanup takes it: after the work's value.
#[hatchery::test(virtual_time)]
async fn finally_with_lends_then_hands_over_the_resource() {
    let log = Log::new();
    let session = Session::new(&log, 41);
    let out = finally_with(
        session,
        async |s: &mut Session| s.execute(2).await,
        async |s: Session| {
            assert_eq!(s.rows, 42, "the cleanup sees what the work did");
            s.close().await
        },
    )
    .await;
    assert_eq!(out, 42);
    assert_eq!(log.events(), ["execute", "closed"]);
    assert_eq!(elapsed(), secs(3));
}

/// Cancelled at its suspension point, the work gives the resource back, and the cleanup
/// runs to its end, shielded; then the cancellation goes on.
#[hatchery::test(virtual_time)]
async fn finally_with_cleans_up_a_cancelled_work() {
    let log = Log::new();
    let session = Session::new(&log, 0);
    let out = move_on_after(
        secs(5),
        finally_with(
            session,
            async |s: &mut Session| s.execute(3600).await,
            async |s: Session| s.close().await,
        ),
    )
    .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["execute", "closed"]);
    assert_eq!(elapsed(), secs(6));
}

/// In a scope cancelled before it starts, the work runs to its first suspension point,
/// as `finally`'s does, and the cleanup still gets the resource.
#[hatchery::test(virtual_time)]
async fn finally_with_in_a_cancelled_scope_still_cleans_up() {
    let log = Log::new();
    let session = Session::new(&log, 0);
    let scope = CancelScope::new();
    scope.handle().cancel();
    let out = scope
        .run(finally_with(
            session,
            async |s: &mut Session| s.execute(1).await,
            async |s: Session| s.close().await,
        ))
        .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["execute", "closed"]);
}

/// It runs in a spawned task (its future is `Send` when the resource and the closures'
/// futures are), and a cancelled nursery waits for its cleanup.
#[hatchery::test(virtual_time)]
async fn finally_with_in_a_spawned_task() {
    let log = Log::new();
    let l = log.clone();
    let r = nursery(|n: hatchery::Nursery<TestError>| async move {
        n.spawn(async move {
            let session = Session::new(&l, 0);
            finally_with(
                session,
                async |s: &mut Session| s.execute(3600).await,
                async |s: Session| s.close().await,
            )
            .await;
            Ok(())
        });
        sleep(secs(1)).await;
        n.cancel();
        Ok(())
    })
    .await;
    assert!(r.is_ok(), "the body had produced its value");
    assert_eq!(log.events(), ["execute", "closed"]);
    assert_eq!(elapsed(), secs(2));
}

/// A `finally` whose cleanup panicked, its panic caught and the future kept rather than
/// dropped, no longer holds the enclosing scope: that scope's cancellation ends the work
/// at its next suspension point. The same for a panic of the work.
#[hatchery::test(virtual_time)]
async fn a_kept_finally_that_panicked_does_not_hold_the_cancelled_scope() {
    use futures_lite::FutureExt;
    use std::panic::AssertUnwindSafe;

    let out = move_on_after(secs(1), async {
        let mut kept = std::pin::pin!(AssertUnwindSafe(finally(sleep(HOUR), async {
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
    assert_eq!(elapsed(), secs(3));

    let out = move_on_after(secs(1), async {
        let mut kept = std::pin::pin!(AssertUnwindSafe(finally(
            async {
                hatchery::shield(sleep(secs(2))).await;
                panic!("work failed");
            },
            async {}
        ))
        .catch_unwind());
        assert!(kept.as_mut().await.is_err());
        sleep(HOUR).await;
        "unreachable"
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(elapsed(), secs(5));
}
