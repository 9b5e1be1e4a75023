//! `Lock`: mutual exclusion, owned guards, and no lock taken by a cancelled wait.

use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use hatchery::sync::{Event, Lock};
use hatchery::testing::{elapsed, wait_all_tasks_blocked};
use hatchery::{move_on_after, nursery, shield, sleep, CancelScope};
use hatchery_tests::secs;

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
    // (From a thread: called from async code, it would panic.)
    std::thread::scope(|s| {
        s.spawn(|| drop(lock.lock_blocking()));
    });
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

/// `tasks_waiting` counts every acquisition that waits for the lock (borrowed, owned, a
/// condition wait re-acquiring it, a thread in `lock_blocking`) and forgets a wait once
/// it took the lock or its scope dropped it.
#[hatchery::test(virtual_time)]
async fn tasks_waiting_counts_every_wait() {
    let lock = Arc::new(Lock::new(Vec::new()));
    let cond = Arc::new(hatchery::sync::Condition::new());
    assert_eq!(lock.tasks_waiting(), 0);
    let (l, c) = (lock.clone(), cond.clone());
    nursery(|n| async move {
        // The condition waiter takes the lock first, then waits on the condition
        // (releasing it): it does not wait for the lock yet.
        n.spawn({
            let (l, c) = (l.clone(), c.clone());
            async move {
                let g = c.wait(l.lock().await).await;
                drop(g);
                l.lock().await.push("notified");
                Ok::<_, anyhow::Error>(())
            }
        });
        wait_all_tasks_blocked().await;
        let held = l.lock().await;
        assert_eq!(l.tasks_waiting(), 0);
        n.spawn({
            let l = l.clone();
            async move {
                l.lock().await.push("borrowed");
                Ok(())
            }
        });
        n.spawn({
            let l = l.clone();
            async move {
                l.lock_owned().await.push("owned");
                Ok(())
            }
        });
        n.spawn({
            let l = l.clone();
            async move {
                let got = move_on_after(Duration::from_secs(1), l.lock()).await;
                assert!(got.is_none(), "took the lock while it was held");
                Ok(())
            }
        });
        wait_all_tasks_blocked().await;
        assert_eq!(l.tasks_waiting(), 3);
        // Notified while the lock is held: now it waits for the lock too.
        c.notify_all();
        wait_all_tasks_blocked().await;
        assert_eq!(l.tasks_waiting(), 4);
        // The timeout drops its wait.
        sleep(Duration::from_secs(2)).await;
        assert_eq!(l.tasks_waiting(), 3);
        // A thread blocked in `lock_blocking` counts too.
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = {
            let l = l.clone();
            std::thread::spawn(move || {
                tx.send(()).unwrap();
                l.lock_blocking().push("thread");
            })
        };
        rx.recv().unwrap();
        while l.tasks_waiting() != 4 {
            std::thread::yield_now(); // (the thread is about to block)
        }
        drop(held);
        n.spawn(async move {
            hatchery::run_blocking(move || thread.join().unwrap()).await;
            Ok(())
        });
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(lock.tasks_waiting(), 0);
    let mut got = lock.try_lock().unwrap().clone();
    got.sort();
    assert_eq!(got, ["borrowed", "notified", "owned", "thread"]);
}

/// A wait for the lock whose scope is cancelled leaves the lock's queue at once, even
/// while a shielded cleanup next to it keeps the cancelled body alive: the lock, freed
/// later, goes to the next waiter at once, not when the cleanup ends.
#[hatchery::test(virtual_time)]
async fn lock_cancelled_waiter_next_to_shield_passes_wakeup() {
    let lock = Arc::new(Lock::new(()));
    let guard = lock.clone().lock_owned().await;
    let scope = CancelScope::new();
    let h = scope.handle();
    let l = lock.clone();
    let at = nursery(|n| async move {
        let l1 = l.clone();
        n.spawn(async move {
            scope
                .run(future::zip(l1.lock(), shield(sleep(secs(100)))))
                .await;
            Ok(())
        });
        wait_all_tasks_blocked().await;
        let l2 = l.clone();
        let c = n.spawn(async move {
            let _g = l2.lock().await;
            Ok::<_, anyhow::Error>(elapsed())
        });
        wait_all_tasks_blocked().await;
        h.cancel();
        wait_all_tasks_blocked().await;
        drop(guard);
        Ok(c.join().await?)
    })
    .await
    .unwrap();
    assert_eq!(
        at,
        Duration::ZERO,
        "the free lock reached the live waiter late"
    );
}

/// The same when the shielded cleanup waits for the next waiter to have used the lock:
/// if the cancelled wait kept its place (and the wake-up it was given), the two would
/// wait for each other until the cleanup's 1000 s bound.
#[hatchery::test(virtual_time)]
async fn lock_cancelled_waiter_deadlocks_with_shielded_cleanup() {
    let lock = Arc::new(Lock::new(()));
    let done = Arc::new(Event::new());
    let guard = lock.clone().lock_owned().await;
    let scope = CancelScope::new();
    let h = scope.handle();
    let (l, d) = (lock.clone(), done.clone());
    let at = nursery(|n| async move {
        let (l1, d1) = (l.clone(), d.clone());
        n.spawn(async move {
            // Cleanup: wait (shielded) until the other task has used the lock.
            let cleanup = shield(move_on_after(secs(1000), d1.wait()));
            scope.run(future::zip(l1.lock(), cleanup)).await;
            Ok(())
        });
        wait_all_tasks_blocked().await;
        let (l2, d2) = (l.clone(), d.clone());
        let c = n.spawn(async move {
            let _g = l2.lock().await;
            d2.set();
            Ok::<_, anyhow::Error>(elapsed())
        });
        wait_all_tasks_blocked().await;
        h.cancel();
        wait_all_tasks_blocked().await;
        drop(guard);
        Ok(c.join().await?)
    })
    .await
    .unwrap();
    assert_eq!(
        at,
        Duration::ZERO,
        "deadlock, broken only by the 1000 s bound"
    );
}

/// A waiter the lock was handed to, cancelled before it woke up while a shield keeps its
/// body alive, passes the lock on at once: it is free again, even for `try_lock`.
#[hatchery::test]
async fn a_waiter_handed_the_lock_then_cancelled_passes_it_on() {
    let lock = Lock::new(0);
    let scope = CancelScope::new();
    let h = scope.handle();
    let guard = lock.lock().await;
    let mut b = Box::pin(scope.run(future::zip(lock.lock(), shield(sleep(secs(10))))));
    assert!(future::poll_once(&mut b).await.is_none()); // waits in line
    drop(guard);
    assert!(lock.is_locked(), "handed to the waiter");
    h.cancel();
    assert!(future::poll_once(&mut b).await.is_none()); // cancelled; the shield keeps it
    assert!(!lock.is_locked());
    assert!(
        lock.try_lock().is_some(),
        "the lock is free but cannot be taken"
    );
    drop(b);
}

/// A `lock()` polled again after it returned its guard panics with a message: it never
/// takes the lock a second time.
#[hatchery::test]
async fn w8_lock_polled_after_completion_panics() {
    let lock = Lock::new(0);
    let mut acquire = Box::pin(lock.lock());
    let guard = future::poll_once(&mut acquire)
        .await
        .expect("the lock is free");
    drop(guard);
    let again = hatchery_tests::catch_panic(future::poll_once(&mut acquire)).await;
    let message = again.map(|_| ()).expect_err("polled after completion");
    assert!(message.contains("polled after completion"), "{message}");
    assert!(!lock.is_locked());
}

/// The lock is fair: released, it goes to the task that has waited longest, before a
/// later `try_lock` or `lock` can take it, and waiters get it in the order they asked.
#[hatchery::test]
async fn a_released_lock_goes_to_the_longest_waiter() {
    let lock = Lock::new(String::new());
    let held = lock.lock().await;
    let mut a = Box::pin(lock.lock());
    let mut b = Box::pin(lock.lock_owned());
    assert!(future::poll_once(&mut a).await.is_none());
    assert!(future::poll_once(&mut b).await.is_none());
    drop(held);
    // Handed to `a`, which has not woken up yet: nobody else can take it.
    assert!(lock.is_locked());
    assert!(lock.try_lock().is_none(), "try_lock overtook a waiter");
    assert!(
        lock.try_lock_owned().is_none(),
        "try_lock_owned overtook a waiter"
    );
    let mut c = Box::pin(lock.lock());
    assert!(
        future::poll_once(&mut c).await.is_none(),
        "a new lock() overtook a waiter"
    );
    assert!(future::poll_once(&mut b).await.is_none(), "not b's turn");
    assert_eq!(lock.tasks_waiting(), 2);
    future::poll_once(&mut a).await.expect("a's turn").push('a');
    assert!(future::poll_once(&mut c).await.is_none(), "not c's turn");
    future::poll_once(&mut b).await.expect("b's turn").push('b');
    future::poll_once(&mut c).await.expect("c's turn").push('c');
    assert!(!lock.is_locked());
    assert_eq!(*lock.lock().await, "abc");
}

/// Tasks that queue for a lock one after another get it in that order, each after the
/// one before has released it.
#[hatchery::test]
async fn tasks_take_a_lock_in_the_order_they_asked() {
    let lock = Arc::new(Lock::new(Vec::new()));
    let held = lock.lock().await;
    nursery(|n| {
        let lock = lock.clone();
        async move {
            for i in 0..8 {
                let lock = lock.clone();
                n.spawn(async move {
                    let mut order = lock.lock().await;
                    order.push(i);
                    hatchery::checkpoint().await; // still holding it
                    Ok::<_, std::io::Error>(())
                });
                wait_all_tasks_blocked().await; // queued before the next one asks
            }
            drop(held);
            Ok(())
        }
    })
    .await
    .unwrap();
    assert_eq!(*lock.lock().await, (0..8).collect::<Vec<_>>());
}
