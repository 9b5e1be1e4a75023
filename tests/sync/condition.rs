//! `Condition`: wait releases and re-acquires the lock; notifications are not lost to
//! cancelled waiters.

use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use hatchery::sync::{Condition, Lock};
use hatchery::testing::{elapsed, wait_all_tasks_blocked};
use hatchery::{move_on_after, nursery, shield, sleep, CancelScope};
use hatchery_tests::secs;

/// A producer/consumer queue on a lock and a condition: every item arrives.
#[hatchery::test]
async fn producer_consumer() {
    let state = Arc::new((Lock::new((Vec::<u32>::new(), false)), Condition::new()));
    let s = state.clone();
    let got = nursery(|n| async move {
        let p = s.clone();
        n.spawn(async move {
            for i in 0..100 {
                p.0.lock().await.0.push(i);
                p.1.notify(1);
                hatchery::checkpoint().await;
            }
            p.0.lock().await.1 = true;
            p.1.notify_all();
            Ok::<_, anyhow::Error>(())
        });
        let (lock, cond) = &*s;
        let mut got = Vec::new();
        let mut g = lock.lock().await;
        loop {
            got.append(&mut g.0);
            if g.1 {
                break;
            }
            g = cond.wait(g).await;
        }
        Ok(got)
    })
    .await
    .unwrap();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

/// A wait cancelled while waiting releases the lock (and the caller never runs on);
/// a waiter notified and then cancelled before it woke passes the notification on.
#[hatchery::test(virtual_time)]
async fn w2_cancelled_wait_passes_notification_on() {
    let state = Arc::new((Lock::new(0), Condition::new()));
    let (lock, cond) = &*state;
    let g = lock.lock().await;
    assert!(move_on_after(Duration::from_secs(1), cond.wait(g))
        .await
        .is_none());
    assert!(!lock.is_locked());

    let scope = CancelScope::new();
    let handle = scope.handle();
    let s = state.clone();
    nursery(|n| async move {
        let first = n.spawn({
            let s = s.clone();
            async move {
                let out = scope
                    .run(async {
                        let g = s.0.lock().await;
                        drop(s.1.wait(g).await);
                    })
                    .await;
                Ok::<_, anyhow::Error>(out.is_some())
            }
        });
        wait_all_tasks_blocked().await;
        let second = n.spawn({
            let s = s.clone();
            async move {
                let g = s.0.lock().await;
                let mut g = s.1.wait(g).await;
                *g += 1;
                Ok(true)
            }
        });
        wait_all_tasks_blocked().await;
        s.1.notify(1); // to the first waiter...
        handle.cancel(); // ...cancelled before it wakes
        let first_woke = first.join().await?;
        if first_woke {
            // It consumed the notification before the cancel landed; wake the second.
            s.1.notify(1);
        }
        assert!(second.join().await?);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(*lock.lock().await, 1);
}

/// A notification given to a waiter whose scope was cancelled, while a shielded cleanup
/// next to it keeps the cancelled body alive, goes to the next waiter at once.
#[hatchery::test(virtual_time)]
async fn condition_cancelled_waiter_next_to_shield_passes_notification() {
    let state = Arc::new((Lock::new(()), Condition::new()));
    let scope = CancelScope::new();
    let h = scope.handle();
    let st = state.clone();
    let at = nursery(|n| async move {
        let s1 = st.clone();
        n.spawn(async move {
            let (lock, cond) = &*s1;
            let g = lock.lock().await;
            scope
                .run(future::zip(cond.wait(g), shield(sleep(secs(100)))))
                .await;
            Ok(())
        });
        wait_all_tasks_blocked().await;
        let s2 = st.clone();
        let c = n.spawn(async move {
            let (lock, cond) = &*s2;
            let g = lock.lock().await;
            let _g = cond.wait(g).await;
            Ok::<_, anyhow::Error>(elapsed())
        });
        wait_all_tasks_blocked().await;
        h.cancel();
        wait_all_tasks_blocked().await;
        st.1.notify(1);
        Ok(c.join().await?)
    })
    .await
    .unwrap();
    assert_eq!(
        at,
        Duration::ZERO,
        "the notification reached the live waiter late"
    );
}

/// A waiter notified while the notifier holds the lock, then cancelled while it waits to
/// take the lock back, passes its notification on: `notify(1)` still wakes somebody.
#[hatchery::test(virtual_time)]
async fn a_waiter_cancelled_while_taking_the_lock_back_passes_its_notification_on() {
    let state = Arc::new((Lock::new(0u32), Condition::new()));
    let scope = CancelScope::new();
    let h = scope.handle();
    let st = state.clone();
    let (first_returned, second_woken) = nursery(|n| async move {
        let s1 = st.clone();
        let first = n.spawn(async move {
            let (lock, cond) = &*s1;
            let out = scope
                .run(async {
                    let g = lock.lock().await;
                    let g = cond.wait(g).await;
                    drop(g);
                })
                .await;
            Ok::<_, anyhow::Error>(out.is_some())
        });
        wait_all_tasks_blocked().await;
        let s2 = st.clone();
        let second = n.spawn(async move {
            let (lock, cond) = &*s2;
            let g = lock.lock().await;
            let woken = move_on_after(secs(10), cond.wait(g)).await.is_some();
            Ok::<_, anyhow::Error>(woken)
        });
        wait_all_tasks_blocked().await;
        let (lock, cond) = &*st;
        let mut g = lock.lock().await;
        *g += 1;
        cond.notify(1); // to the first waiter (longest waiting), lock held
        wait_all_tasks_blocked().await; // it woke, and now waits for the lock we hold
        h.cancel(); // its timeout fires now
        wait_all_tasks_blocked().await;
        drop(g);
        Ok((first.join().await?, second.join().await?))
    })
    .await
    .unwrap();
    // The first waiter was dropped while it waited for the lock; the second got the
    // notification it had taken.
    assert!(!first_returned);
    assert!(second_woken, "notify(1) woke nobody");
}

/// A waiter notified while the lock is held, then cancelled while it waits to take the
/// lock back, with a shielded cleanup next to it that keeps the cancelled body alive,
/// leaves the lock's queue and passes its notification on at once: the cancelled body
/// never takes the lock, and the next waiter is woken.
#[hatchery::test(virtual_time)]
async fn a_waiter_cancelled_while_taking_the_lock_back_next_to_a_shield_leaves_the_queue() {
    let state = Arc::new((Lock::new(0u32), Condition::new()));
    let scope = CancelScope::new();
    let h = scope.handle();
    let st = state.clone();
    let (first, second_woken_at, free_after) = nursery(|n| async move {
        let s1 = st.clone();
        let first = n.spawn(async move {
            let (lock, cond) = &*s1;
            let g = lock.lock().await;
            let out = scope
                .run(future::zip(cond.wait(g), shield(sleep(secs(100)))))
                .await;
            Ok::<_, anyhow::Error>((out.is_some(), elapsed()))
        });
        wait_all_tasks_blocked().await;
        let s2 = st.clone();
        let second = n.spawn(async move {
            let (lock, cond) = &*s2;
            let g = lock.lock().await;
            let woken = move_on_after(secs(1000), cond.wait(g)).await.is_some();
            Ok::<_, anyhow::Error>(woken.then(elapsed))
        });
        wait_all_tasks_blocked().await;
        let (lock, cond) = &*st;
        let g = lock.lock().await;
        cond.notify(1); // to the first waiter, while the lock is held
        wait_all_tasks_blocked().await; // it woke and waits for the lock
        assert_eq!(lock.tasks_waiting(), 1);
        h.cancel();
        wait_all_tasks_blocked().await;
        // The first left the queue; the second, given the notification, joined it.
        assert_eq!(lock.tasks_waiting(), 1);
        drop(g);
        let second_woken_at = second.join().await?;
        let free_after = lock.try_lock().is_some().then(elapsed);
        Ok((first.join().await?, second_woken_at, free_after))
    })
    .await
    .unwrap();
    assert_eq!(second_woken_at, Some(Duration::ZERO), "notify(1) lost");
    assert_eq!(
        free_after,
        Some(Duration::ZERO),
        "the cancelled body took the lock and held it"
    );
    assert_eq!(first, (false, secs(100)));
}

/// A wait first polled in a scope that is already cancelled, with a shielded cleanup next
/// to it that keeps the cancelled body alive, releases the lock at once rather than
/// holding it for the whole cleanup.
#[hatchery::test(virtual_time)]
async fn a_wait_polled_in_a_cancelled_scope_next_to_a_shield_releases_the_lock() {
    let state = Arc::new((Lock::new(0u32), Condition::new()));
    let scope = CancelScope::new();
    let h = scope.handle();
    let st = state.clone();
    let (free_at, cleanup_done) = nursery(|n| async move {
        let s1 = st.clone();
        let waiter = n.spawn(async move {
            let (lock, cond) = &*s1;
            let g = lock.lock().await;
            let out = scope
                .run(future::zip(
                    async {
                        h.cancel();
                        cond.wait(g).await
                    },
                    shield(sleep(secs(100))),
                ))
                .await;
            Ok::<_, anyhow::Error>((out.is_some(), elapsed()))
        });
        wait_all_tasks_blocked().await;
        let (lock, _) = &*st;
        let g = lock.lock().await;
        let free_at = elapsed();
        drop(g);
        Ok((free_at, waiter.join().await?))
    })
    .await
    .unwrap();
    assert_eq!(free_at, Duration::ZERO, "the cancelled wait held the lock");
    assert_eq!(cleanup_done, (false, secs(100)));
}
