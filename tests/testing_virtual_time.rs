//! Virtual time (`#[hatchery::test(virtual_time)]`): the clock jumps to the next deadline
//! whenever every task is blocked, on every backend, multi-threaded ones included.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hatchery::testing::{advance, elapsed, is_virtual_time, wait_all_tasks_blocked};
use hatchery::{fail_after, move_on_after, nursery, run_blocking, sleep, CancelScope};
use hatchery_tests::{Log, TestError, HOUR};

/// An hour-long timeout around a future that never finishes: no real waiting, exactly
/// one virtual hour.
#[hatchery::test(virtual_time)]
async fn an_hour_in_no_time() {
    let wall = Instant::now();
    let start = hatchery::now();
    let out = move_on_after(HOUR, std::future::pending::<()>()).await;
    assert_eq!(out, None);
    assert_eq!(hatchery::now() - start, HOUR);
    assert_eq!(elapsed(), HOUR);
    assert!(is_virtual_time());
    // Generous: the point is "not an hour"; typically a few milliseconds.
    assert!(
        wall.elapsed() < Duration::from_secs(5),
        "took {:?}",
        wall.elapsed()
    );
}

/// Children on other threads sleep in parallel: time advances to each deadline in turn,
/// and the nursery ends at the longest one.
#[hatchery::test(virtual_time)]
async fn parallel_sleeps_end_at_the_longest() {
    let log = Log::new();
    let l = log.clone();
    nursery(|n| async move {
        for (secs, name) in [(30, "30s"), (10, "10s"), (20, "20s")] {
            let l = l.clone();
            n.spawn(async move {
                sleep(Duration::from_secs(secs)).await;
                l.push(name);
                Ok::<_, TestError>(())
            });
        }
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(log.events(), ["10s", "20s", "30s"]);
    assert_eq!(elapsed(), Duration::from_secs(30));
}

/// Deadlines, `fail_after` and moved deadlines all run on the virtual clock.
#[hatchery::test(virtual_time)]
async fn deadlines_are_virtual() {
    let r = fail_after(Duration::from_secs(90), sleep(HOUR)).await;
    assert!(r.is_err());
    assert_eq!(elapsed(), Duration::from_secs(90));

    let scope = CancelScope::new().with_timeout(Duration::from_secs(10));
    let handle = scope.handle();
    let out = scope
        .run(async {
            sleep(Duration::from_secs(5)).await;
            handle.set_deadline(hatchery::now() + Duration::from_secs(100)); // postpone
            sleep(Duration::from_secs(50)).await;
            "done"
        })
        .await;
    assert_eq!(out, Some("done"));
    assert_eq!(elapsed(), Duration::from_secs(90 + 55));
}

/// Blocking work counts as busy: time does not jump while it runs.
#[hatchery::test(virtual_time)]
async fn blocking_work_keeps_time_still() {
    let out = move_on_after(
        Duration::from_secs(10),
        run_blocking(|| {
            std::thread::sleep(Duration::from_millis(30));
            7
        }),
    )
    .await;
    assert_eq!(out, Some(7));
    assert!(elapsed() < Duration::from_secs(10));
}

/// `wait_all_tasks_blocked` returns once every other task waits, before time moves.
#[hatchery::test(virtual_time)]
async fn wait_all_tasks_blocked_sees_children_parked() {
    let parked = Arc::new(AtomicUsize::new(0));
    let p = parked.clone();
    nursery(|n| async move {
        for _ in 0..10 {
            let p = p.clone();
            n.spawn(async move {
                hatchery::checkpoint().await;
                p.fetch_add(1, Ordering::SeqCst);
                sleep(HOUR).await;
                Ok::<_, TestError>(())
            });
        }
        wait_all_tasks_blocked().await;
        assert_eq!(p.load(Ordering::SeqCst), 10);
        assert_eq!(elapsed(), Duration::ZERO); // time has not moved
        n.cancel();
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(parked.load(Ordering::SeqCst), 10);
}

/// Manual time moves only by `advance`.
#[hatchery::test(manual_time)]
async fn manual_time_moves_by_hand() {
    nursery(|n| async move {
        let h = n.spawn(async {
            sleep(Duration::from_secs(5)).await;
            Ok::<_, TestError>(hatchery::now())
        });
        wait_all_tasks_blocked().await;
        assert!(!h.is_finished());
        advance(Duration::from_secs(4));
        wait_all_tasks_blocked().await;
        assert!(!h.is_finished());
        advance(Duration::from_secs(1));
        h.join().await.unwrap();
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(elapsed(), Duration::from_secs(5));
}

/// Without a time option the clock is real, and tracking still works.
#[hatchery::test(backends(tokio_current, smol))]
async fn real_time_by_default() {
    assert!(!is_virtual_time());
    wait_all_tasks_blocked().await;
    let start = hatchery::now();
    sleep(Duration::from_millis(2)).await;
    assert!(hatchery::now() - start >= Duration::from_millis(2));
}
