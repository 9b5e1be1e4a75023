//! `finally(work, cleanup)`: shielded async cleanup that runs whether the work finished
//! or was cancelled (C6 applied to Python's `try: ... finally:`).

use std::time::Duration;

use hatchery::{finally, move_on_after, nursery, sleep, CancelScope};
use hatchery_tests::{backend_test, ms, Log, TestError};

backend_test! {
    /// Work that finishes: the cleanup runs after it, then the value comes out.
    async fn cleanup_after_finished_work() {
        let log = Log::new();
        let out = finally(
            async {
                log.push("work");
                checkpoint_twice().await;
                7
            },
            async {
                sleep(ms(1)).await;
                log.push("cleanup");
            },
        )
        .await;
        assert_eq!(out, 7);
        assert_eq!(log.events(), ["work", "cleanup"]);
    }

    /// Work cancelled by an enclosing scope: the cleanup does async work to its end, then
    /// the enclosing scope catches the cancellation.
    async fn cleanup_after_outer_cancel() {
        let log = Log::new();
        let scope = CancelScope::new().with_timeout(ms(5));
        let handle = scope.handle();
        let out = scope
            .run(async {
                finally(
                    async {
                        log.push("work started");
                        sleep(Duration::from_secs(3600)).await;
                        log.push("work finished");
                    },
                    async {
                        log.push("cleanup started");
                        sleep(ms(20)).await; // the outer deadline has long passed
                        log.push("cleanup finished");
                    },
                )
                .await;
                log.push("after finally"); // never: the cancellation continues
            })
            .await;
        assert_eq!(out, None);
        assert!(handle.cancelled_caught());
        assert_eq!(log.events(), ["work started", "cleanup started", "cleanup finished"]);
    }

    /// A cleanup can limit itself with its own scope, which still works inside the shield.
    async fn cleanup_own_timeout_works() {
        let log = Log::new();
        let out = move_on_after(ms(5), async {
            finally(sleep(Duration::from_secs(3600)), async {
                let r = move_on_after(ms(10), sleep(Duration::from_secs(3600))).await;
                log.push(if r.is_none() { "cleanup timed out" } else { "cleanup done" });
            })
            .await;
        })
        .await;
        assert_eq!(out, None);
        assert_eq!(log.events(), ["cleanup timed out"]);
    }

    /// In a nursery child: the nursery's cancellation waits for the child's cleanup (N1).
    async fn cleanup_in_cancelled_nursery_child() {
        let log = Log::new();
        let l = log.clone();
        let r = nursery(|n| async move {
            n.spawn(async move {
                finally(sleep(Duration::from_secs(3600)), async move {
                    sleep(ms(10)).await;
                    l.push("child cleanup finished");
                })
                .await;
                Ok::<_, TestError>(())
            });
            sleep(ms(2)).await;
            n.cancel();
            sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .await;
        log.push("nursery returned");
        assert!(r.unwrap_err().is_cancelled());
        assert_eq!(log.events(), ["child cleanup finished", "nursery returned"]);
    }

    /// A failing sibling cancels the work; the cleanup still runs and the error is reported.
    async fn cleanup_when_sibling_fails() {
        let log = Log::new();
        let l = log.clone();
        let r = nursery(|n| async move {
            n.spawn(async move {
                finally(sleep(Duration::from_secs(3600)), async move {
                    sleep(ms(5)).await;
                    l.push("cleanup finished");
                })
                .await;
                Ok(())
            });
            sleep(ms(2)).await;
            Err::<(), _>(TestError("boom"))
        })
        .await;
        assert_eq!(r.unwrap_err().into_errors(), [TestError("boom")]);
        assert_eq!(log.events(), ["cleanup finished"]);
    }
}

async fn checkpoint_twice() {
    hatchery::checkpoint().await;
    hatchery::checkpoint().await;
}
