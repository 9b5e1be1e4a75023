//! `Lock`: mutual exclusion, owned guards, and no lock taken by a cancelled wait.

use std::sync::Arc;
use std::time::Duration;

use hatchery::sync::Lock;
use hatchery::testing::wait_all_tasks_blocked;
use hatchery::{move_on_after, nursery, sleep};

/// Counters behind a lock (seed 004): every increment lands, even across suspensions.
#[hatchery::test]
async fn counter_behind_a_lock() {
    let lock = Arc::new(Lock::new(0u64));
    let l = lock.clone();
    nursery(|n| async move {
        for _ in 0..50 {
            let l = l.clone();
            n.spawn(async move {
                for _ in 0..20 {
                    let mut g = l.lock().await;
                    let v = *g;
                    hatchery::checkpoint().await;
                    *g = v + 1;
                }
                Ok::<_, anyhow::Error>(())
            });
        }
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(*lock.lock().await, 1000);
}

/// An owned guard moves into another task; a cancelled wait takes nothing and the next
/// waiter still gets the lock.
#[hatchery::test(virtual_time)]
async fn owned_guard_and_cancelled_wait() {
    let lock = Arc::new(Lock::new(Vec::new()));
    let guard = lock.lock_owned().await;
    assert!(lock.is_locked());
    assert!(move_on_after(Duration::from_secs(1), lock.lock())
        .await
        .is_none());
    let l = lock.clone();
    nursery(|n| async move {
        let waiter = n.spawn({
            let l = l.clone();
            async move {
                l.lock().await.push("waiter");
                Ok::<_, anyhow::Error>(())
            }
        });
        wait_all_tasks_blocked().await;
        n.spawn(async move {
            let mut guard = guard;
            sleep(Duration::from_secs(1)).await;
            guard.push("holder");
            Ok(())
        });
        waiter.join().await?;
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(*lock.try_lock().unwrap(), ["holder", "waiter"]);
}
