//! The `_blocking` methods of `hatchery::sync`: they bridge plain threads and hatchery
//! tasks in both directions, and called from async code they panic with a message
//! instead of blocking an executor thread.

use std::sync::Arc;
use std::time::Duration;

use hatchery::sync::{CapacityLimiter, Condition, Event, Lock, Semaphore};
use hatchery::testing::wait_all_tasks_blocked;
use hatchery::{nursery, run_blocking};

/// A thread blocks in each `_blocking` method until a task lets it go; the task sees the
/// thread's effects afterwards.
#[hatchery::test]
async fn threads_wait_for_tasks() {
    let event = Arc::new(Event::new());
    let lock = Arc::new(Lock::new(Vec::new()));
    let cond = Arc::new(Condition::new());
    let sem = Arc::new(Semaphore::new(0));
    let limiter = Arc::new(CapacityLimiter::new(1));
    let token = limiter.acquire().await;
    let guard = lock.lock().await;

    let thread = {
        let (event, lock, cond, sem, limiter) = (
            event.clone(),
            lock.clone(),
            cond.clone(),
            sem.clone(),
            limiter.clone(),
        );
        std::thread::spawn(move || {
            event.wait_blocking();
            lock.lock_blocking().push("lock");
            let _permit = sem.acquire_blocking();
            lock.lock_blocking().push("permit");
            let _token = limiter.acquire_blocking();
            let mut g = lock.lock_blocking();
            g.push("token");
            while !g.contains(&"notify") {
                g = cond.wait_blocking(g);
            }
            g.push("notified");
        })
    };
    let done = run_blocking(move || thread.join());
    // Each step waits for the task: nothing happens until the event is set...
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(lock.tasks_waiting(), 0);
    event.set();
    // ... then the thread waits for the lock the task holds.
    while lock.tasks_waiting() == 0 {
        std::thread::yield_now();
    }
    assert!(guard.is_empty());
    drop(guard);
    while sem.tasks_waiting() == 0 {
        hatchery::checkpoint().await;
    }
    assert_eq!(*lock.lock().await, ["lock"]);
    sem.add_permits(1);
    while limiter.statistics().tasks_waiting == 0 {
        hatchery::checkpoint().await;
    }
    assert_eq!(*lock.lock().await, ["lock", "permit"]);
    drop(token);
    loop {
        let mut g = lock.lock().await;
        if g.contains(&"token") {
            g.push("notify");
            break;
        }
        drop(g);
        hatchery::checkpoint().await;
    }
    cond.notify_all();
    done.await.unwrap();
    assert_eq!(
        *lock.lock().await,
        ["lock", "permit", "token", "notify", "notified"]
    );
    assert_eq!(limiter.borrowed_tokens(), 0);
    assert_eq!(sem.available_permits(), 1);
}

/// Tasks wait for a thread that holds what they need, from `run_blocking` too.
#[hatchery::test]
async fn tasks_wait_for_threads() {
    let lock = Arc::new(Lock::new(0));
    let event = Arc::new(Event::new());
    let got = nursery(|n| {
        let (lock, event) = (lock.clone(), event.clone());
        async move {
            let waiter = n.spawn({
                let (lock, event) = (lock.clone(), event.clone());
                async move {
                    event.wait().await;
                    Ok::<_, anyhow::Error>(*lock.lock().await)
                }
            });
            wait_all_tasks_blocked().await;
            run_blocking(move || {
                *lock.lock_blocking() = 7;
                event.set();
            })
            .await;
            Ok(waiter.join().await?)
        }
    })
    .await
    .unwrap();
    assert_eq!(got, 7);
}

/// Called from async code, each `_blocking` method panics at once with a message that
/// says what to do, instead of blocking the executor thread.
#[hatchery::test]
async fn w7_panic_in_async_code() {
    fn expect_panic(what: &str, f: impl FnOnce()) {
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .expect_err(&format!("{what} did not panic in async code"));
        let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
        assert!(
            msg.contains("called from async code") && msg.contains("`.await`"),
            "{what}: {msg}"
        );
    }
    let lock = Lock::new(());
    let event = Event::new();
    event.set(); // even when it would not have to wait
    let sem = Semaphore::new(1);
    let limiter = CapacityLimiter::new(1);
    let cond = Condition::new();
    expect_panic("Lock::lock_blocking", || drop(lock.lock_blocking()));
    expect_panic("Event::wait_blocking", || event.wait_blocking());
    expect_panic("Semaphore::acquire_blocking", || {
        drop(sem.acquire_blocking())
    });
    expect_panic("CapacityLimiter::acquire_blocking", || {
        drop(limiter.acquire_blocking())
    });
    let guard = lock.try_lock().unwrap();
    expect_panic("Condition::wait_blocking", || {
        drop(cond.wait_blocking(guard))
    });
    // Nothing was taken.
    assert!(!lock.is_locked());
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(limiter.borrowed_tokens(), 0);
}
