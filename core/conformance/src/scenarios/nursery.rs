//! Nurseries (N) and `start` (S), on both kinds of nursery: each scenario is generic
//! over the [`Kind`] it opens, and [`tests!`](crate::tests) runs it on both
//! ([`Spawning`](crate::Spawning), [`Polling`](crate::Polling)), as the rules are the same.

use hatchery::testing::elapsed;
use hatchery::{move_on_after, shield, sleep, NurseryError, StartError, TaskStatus};

use crate::kinds::{Kind, Nursery};
use crate::support::{catch_panic, secs, Counter, Log, Oops, HOUR};

/// N1: a nursery returns only once its body and every task have finished, tasks spawned
/// by tasks included.
pub async fn n1_a_nursery_waits_for_all<K: Kind>() {
    let done = Counter::new();
    let d = done.clone();
    let out = K::nursery(|n: Nursery<K, Oops>| async move {
        for i in 1..=3u64 {
            let (d, n2) = (d.clone(), n.clone());
            n.spawn(async move {
                sleep(secs(i)).await;
                n2.spawn(async move {
                    sleep(secs(i)).await;
                    d.incr();
                    Ok(())
                });
                Ok(())
            });
        }
        Ok("body done")
    })
    .await;
    assert_eq!(out, Ok("body done"));
    assert_eq!(done.get(), 3);
    assert_eq!(elapsed(), secs(6));
}

/// N2: the first error cancels the body and the other tasks; every error is reported,
/// in the order they happened, those returned while being cancelled included.
pub async fn n2_first_error_cancels_the_rest<K: Kind>() {
    let log = Log::new();
    let l = log.clone();
    let out = K::nursery(|n: Nursery<K, Oops>| async move {
        n.spawn(async {
            sleep(secs(1)).await;
            Err::<(), _>(Oops("first"))
        });
        n.spawn(async {
            sleep(HOUR).await;
            Ok(())
        });
        n.spawn(async {
            // Cancelled at 1 s in a shield, which runs on to 2 s; then it fails before
            // its next suspension.
            shield(sleep(secs(2))).await;
            Err::<(), _>(Oops("second"))
        });
        let _dropped = l.on_drop("body dropped");
        sleep(HOUR).await;
        Ok(())
    })
    .await;
    assert_eq!(
        out.unwrap_err().into_errors(),
        [Oops("first"), Oops("second")]
    );
    assert_eq!(log.events(), ["body dropped"]);
    assert_eq!(elapsed(), secs(2));
}

/// N3: a panic in a task cancels the rest; it is resumed in the caller of `nursery`
/// once every task has finished (a shielded cleanup here).
pub async fn n3_panics_resume_after_all_finished<K: Kind>() {
    let log = Log::new();
    let l = log.clone();
    let out = catch_panic(K::nursery(|n: Nursery<K, Oops>| async move {
        n.spawn::<(), _>(async {
            sleep(secs(1)).await;
            panic!("boom")
        });
        n.spawn(async move {
            hatchery::finally(sleep(HOUR), async move {
                sleep(secs(2)).await;
                l.push("cleanup finished");
            })
            .await;
            Ok(())
        });
        sleep(HOUR).await;
        Ok(())
    }))
    .await;
    assert_eq!(out.unwrap_err(), "boom");
    assert_eq!(log.events(), ["cleanup finished"]);
    assert_eq!(elapsed(), secs(3));
}

/// N4: cancellation is not an error. A nursery's own `cancel` that ends its body before
/// it produced its value gives `Cancelled`; after it, the value. An enclosing scope's
/// cancellation gives nothing from the nursery: the scope returns.
pub async fn n4_cancellation_is_not_an_error<K: Kind>() {
    let out = K::nursery(|n: Nursery<K, Oops>| async move {
        n.spawn(async {
            sleep(HOUR).await;
            Ok(())
        });
        n.cancel();
        sleep(secs(1)).await;
        Ok(1)
    })
    .await;
    assert!(matches!(out, Err(NurseryError::Cancelled)));
    let out = K::nursery(|n: Nursery<K, Oops>| async move {
        n.cancel();
        Ok(2) // no suspension since `cancel`
    })
    .await;
    assert_eq!(out, Ok(2));
    let out = move_on_after(
        secs(1),
        K::nursery(|n: Nursery<K, Oops>| async move {
            n.spawn(async {
                sleep(HOUR).await;
                Ok(())
            });
            Ok(3)
        }),
    )
    .await;
    assert_eq!(out, None);
    assert_eq!(elapsed(), secs(1));
}

/// N5: spawning into a finished nursery fails clearly (`try_spawn`'s error, `spawn`'s
/// panic), never silently; a task spawned into a cancelled nursery still gets its first
/// poll.
pub async fn n5_spawning_after_close_fails_clearly<K: Kind>() {
    let mut saved = None;
    K::nursery(|n: Nursery<K, Oops>| {
        saved = Some(n);
        async { Ok(()) }
    })
    .await
    .unwrap();
    let closed = saved.unwrap();
    let refused = closed.try_spawn(async { Ok(()) });
    assert!(refused.is_err());
    assert!(!refused.unwrap_err().to_string().is_empty());
    let panic = catch_panic(async { closed.spawn(async { Ok(()) }) }).await;
    assert!(panic.unwrap_err().contains("try_spawn"));

    let log = Log::new();
    let l = log.clone();
    K::nursery(|n: Nursery<K, Oops>| async move {
        n.cancel();
        n.spawn(async move {
            l.push("first poll");
            sleep(HOUR).await;
            l.push("not reached");
            Ok(())
        });
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(log.events(), ["first poll"]);
}

/// N6: `start` returns the value passed to `started`; the task then runs on as a task of
/// the nursery, which waits for it.
pub async fn n6_start_waits_until_ready<K: Kind>() {
    let log = Log::new();
    let l = log.clone();
    let out = K::nursery(|n: Nursery<K, Oops>| async move {
        let port = n
            .start(|status| async move {
                sleep(secs(1)).await;
                status.started(8080u16);
                sleep(secs(2)).await;
                l.push("served");
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(elapsed(), secs(1));
        Ok(port)
    })
    .await;
    assert_eq!(out, Ok(8080));
    assert_eq!(log.events(), ["served"]);
    assert_eq!(elapsed(), secs(3));
}

/// N7 (H5-H8): a handle joins its task's value; cancelling one task is not a failure of
/// the nursery; dropping a handle does not cancel its task; `is_finished`.
pub async fn n7_task_handles<K: Kind>() {
    let done = Counter::new();
    let d = done.clone();
    let out = K::nursery(|n: Nursery<K, Oops>| async move {
        let value = n.spawn(async {
            sleep(secs(1)).await;
            Ok(6 * 7)
        });
        let doomed = n.spawn(async {
            sleep(HOUR).await;
            Ok(0)
        });
        drop(n.spawn(async move {
            sleep(secs(2)).await;
            d.incr();
            Ok(0)
        }));
        doomed.cancel();
        assert!(doomed.join().await.unwrap_err().is_cancelled());
        assert!(!value.is_finished());
        Ok(value.join().await.unwrap())
    })
    .await;
    assert_eq!(out, Ok(42));
    assert_eq!(
        done.get(),
        1,
        "the task whose handle was dropped ran to its end"
    );
    assert_eq!(elapsed(), secs(2));
}

/// S3: before `started`, the task is its caller's: its error comes out of `start`, and
/// the nursery does not fail; a task that ends without `started` gives `NotStarted`.
pub async fn s3_an_error_before_started_comes_out_of_start<K: Kind>() {
    let out = K::nursery(|n: Nursery<K, Oops>| async move {
        let r = n
            .start(|_status: TaskStatus<u16>| async {
                sleep(secs(1)).await;
                Err::<(), _>(Oops("cannot bind"))
            })
            .await;
        assert!(matches!(r, Err(StartError::Failed(Oops("cannot bind")))));
        let r = n.start(|_status: TaskStatus<u16>| async { Ok(()) }).await;
        assert!(matches!(r, Err(StartError::NotStarted)));
        Ok("the nursery did not fail")
    })
    .await;
    assert_eq!(out, Ok("the nursery did not fail"));
}
