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

/// `is_locked` follows every kind of guard, through a condition wait too.
#[hatchery::test]
async fn is_locked_follows_every_guard() {
    let lock = Lock::new(0);
    assert!(!lock.is_locked());
    {
        let _g = lock.lock().await;
        assert!(lock.is_locked());
    }
    assert!(!lock.is_locked());
    let owned = lock.lock_owned().await;
    assert!(lock.is_locked());
    assert!(lock.try_lock().is_none());
    assert!(lock.is_locked(), "a failed try_lock left it held");
    drop(owned);
    assert!(!lock.is_locked());
    let g = lock.try_lock_owned().unwrap();
    assert!(lock.is_locked());
    drop(g);
    drop(lock.lock_blocking());
    assert!(!lock.is_locked());

    // A condition wait releases the lock while it waits and takes it back after.
    let cond = hatchery::sync::Condition::new();
    let lock = &lock;
    let (guard, ()) = futures_lite::future::zip(cond.wait(lock.lock().await), async {
        let mut g = lock.lock().await; // the wait released it
        assert!(lock.is_locked());
        *g += 1;
        drop(g);
        assert!(!lock.is_locked());
        cond.notify_all();
    })
    .await;
    assert!(lock.is_locked());
    assert_eq!(*guard, 1);
    drop(guard);
    assert!(!lock.is_locked());
}

/// Asking whether the lock is held never takes it: a `try_lock` of the only user always
/// succeeds while another thread keeps asking. (Asking by trying to take the lock, as
/// `is_locked` once did, made it fail now and then.)
#[test]
fn is_locked_never_makes_try_lock_fail() {
    let lock = Arc::new(Lock::new(()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let observer = {
        let (lock, stop) = (lock.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::black_box(lock.is_locked());
            }
        })
    };
    let mut failed = 0;
    for _ in 0..200_000 {
        match lock.try_lock() {
            Some(guard) => drop(guard),
            None => failed += 1,
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    observer.join().unwrap();
    assert_eq!(
        failed, 0,
        "try_lock failed although nobody else takes the lock"
    );
}
