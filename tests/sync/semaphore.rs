//! `Semaphore`: FIFO fairness, bounded concurrency, and no permit lost to cancellation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use hatchery::sync::Semaphore;
use hatchery::testing::{elapsed, wait_all_tasks_blocked};
use hatchery::{move_on_after, nursery, shield, sleep, CancelScope};
use hatchery_tests::{secs, Log};

/// Waiters get permits in the order they asked; a released permit goes to the longest
/// waiter before a new `try_acquire`.
#[hatchery::test(virtual_time)]
async fn fifo_fairness() {
    let sem = Arc::new(Semaphore::new(1));
    let log = Log::new();
    let first = sem.try_acquire().unwrap();
    let (s, l) = (sem.clone(), log.clone());
    nursery(|n| async move {
        for name in ["a", "b", "c", "d"] {
            let (s, l) = (s.clone(), l.clone());
            n.spawn(async move {
                let _p = s.acquire().await;
                l.push(name);
                sleep(Duration::from_millis(1)).await;
                Ok::<_, anyhow::Error>(())
            });
            wait_all_tasks_blocked().await;
        }
        assert_eq!(s.tasks_waiting(), 4);
        drop(first);
        // The permit went to "a", not to us.
        assert!(s.try_acquire().is_none());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(log.events(), ["a", "b", "c", "d"]);
    assert_eq!(sem.available_permits(), 1);
}

/// Rate limiting (seed 002): at most N tasks hold a permit at once.
#[hatchery::test]
async fn bounds_concurrency() {
    let sem = Arc::new(Semaphore::new(3));
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (s, r, p) = (sem.clone(), running.clone(), peak.clone());
    nursery(|n| async move {
        for _ in 0..30 {
            let (s, r, p) = (s.clone(), r.clone(), p.clone());
            n.spawn(async move {
                let _permit = s.acquire_owned().await;
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                hatchery::checkpoint().await;
                r.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, anyhow::Error>(())
            });
        }
        Ok(())
    })
    .await
    .unwrap();
    assert!(peak.load(Ordering::SeqCst) <= 3);
    assert_eq!(sem.available_permits(), 3);
}

/// A waiter cancelled after its permit was granted (before it woke) passes the permit
/// on: nothing leaks, no ghost waiter remains.
#[hatchery::test(virtual_time)]
async fn w2_cancelled_waiter_passes_permit_on() {
    let sem = Arc::new(Semaphore::new(1));
    let held = sem.try_acquire_owned().unwrap();
    assert!(move_on_after(Duration::from_secs(1), sem.acquire())
        .await
        .is_none());
    assert_eq!(sem.tasks_waiting(), 0);
    let scope = CancelScope::new();
    let handle = scope.handle();
    let s = sem.clone();
    nursery(|n| async move {
        let cancelled = n.spawn({
            let s = s.clone();
            async move { Ok::<_, anyhow::Error>(scope.run(async { drop(s.acquire().await) }).await) }
        });
        wait_all_tasks_blocked().await;
        let next = n.spawn({
            let s = s.clone();
            async move {
                drop(s.acquire().await);
                Ok(None::<()>)
            }
        });
        wait_all_tasks_blocked().await;
        drop(held); // granted to the first waiter...
        handle.cancel(); // ...which is cancelled before it runs
        cancelled.join().await?;
        next.join().await?;
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(sem.tasks_waiting(), 0);
}

/// A wait for a permit whose scope is cancelled, while a shielded cleanup next to it
/// keeps the cancelled body alive, withdraws at once: the next waiter gets the permit at
/// once, not when the cleanup ends.
#[hatchery::test(virtual_time)]
async fn semaphore_cancelled_waiter_next_to_shield_passes_permit() {
    let sem = Arc::new(Semaphore::new(0));
    let scope = CancelScope::new();
    let h = scope.handle();
    let s = sem.clone();
    let at = nursery(|n| async move {
        let s1 = s.clone();
        n.spawn(async move {
            // The body waits for a permit next to a 100 s shielded cleanup.
            scope
                .run(future::zip(s1.acquire(), shield(sleep(secs(100)))))
                .await;
            Ok(())
        });
        wait_all_tasks_blocked().await;
        let s2 = s.clone();
        let c = n.spawn(async move {
            let _p = s2.acquire().await;
            Ok::<_, anyhow::Error>(elapsed())
        });
        wait_all_tasks_blocked().await;
        h.cancel();
        wait_all_tasks_blocked().await;
        s.add_permits(1);
        Ok(c.join().await?)
    })
    .await
    .unwrap();
    assert_eq!(at, Duration::ZERO);
}

/// An acquire polled again after it returned its permit panics with a message: it never
/// takes a second permit.
#[hatchery::test]
async fn w8_acquire_polled_after_completion_panics() {
    let sem = Semaphore::new(2);
    let mut acquire = Box::pin(sem.acquire());
    let permit = future::poll_once(&mut acquire)
        .await
        .expect("a permit is free");
    let again = hatchery_tests::catch_panic(future::poll_once(&mut acquire)).await;
    let message = again.map(|_| ()).expect_err("polled after completion");
    assert!(
        message.contains("`SemaphoreAcquire` polled after completion"),
        "{message}"
    );
    assert_eq!(sem.available_permits(), 1);
    drop(permit);
    let mut owned = Box::pin(sem.acquire_owned());
    let _permit = future::poll_once(&mut owned)
        .await
        .expect("a permit is free");
    let again = hatchery_tests::catch_panic(future::poll_once(&mut owned)).await;
    assert!(again.is_err());
    assert_eq!(sem.available_permits(), 1);
}

/// A permit returned to a full count (`MAX_PERMITS`) is absorbed rather than panicking
/// in its drop; `add_permits` past it panics, in the call itself, and a count above it
/// is refused by `new`.
#[test]
fn a_full_count_absorbs_a_returned_permit() {
    const MAX: usize = Semaphore::MAX_PERMITS;
    assert_eq!(MAX, usize::MAX - 1);
    let sem = Semaphore::new(MAX);
    let permit = sem.try_acquire().unwrap();
    sem.add_permits(1);
    assert_eq!(sem.available_permits(), MAX);
    drop(permit);
    assert_eq!(sem.available_permits(), MAX);
    let overflow = std::panic::catch_unwind(|| sem.add_permits(1)).unwrap_err();
    assert_eq!(
        hatchery_tests::panic_message(&*overflow),
        format!(
            "hatchery: Semaphore::add_permits would pass Semaphore::MAX_PERMITS \
             (usize::MAX - 1): {MAX} available, 1 more"
        )
    );
    assert_eq!(sem.available_permits(), MAX);
    // Permits handed to waiters do not count towards the overflow.
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let mut waiter = Box::pin(sem.acquire());
    assert!(future::block_on(future::poll_once(&mut waiter)).is_none());
    sem.add_permits(MAX);
    assert_eq!(sem.available_permits(), MAX - 1);
    drop(held);
    assert_eq!(sem.available_permits(), MAX);
    drop(waiter);
    assert_eq!(sem.available_permits(), MAX);
    let too_many = std::panic::catch_unwind(|| Semaphore::new(usize::MAX)).unwrap_err();
    assert_eq!(
        hatchery_tests::panic_message(&*too_many),
        "hatchery: a Semaphore can count at most Semaphore::MAX_PERMITS (usize::MAX - 1) \
         permits, not 18446744073709551615"
    );
}

/// 100k waiting acquisitions dropped newest first take time linear in their number
/// (found by an audit): each one looked for itself from the front of the queue, which
/// made this quadratic (minutes at this size; the generous real-time limit fails the
/// test rather than waiting for it).
#[hatchery::test]
async fn dropping_100k_waiters_newest_first_is_not_quadratic() {
    const N: usize = 100_000;
    let sem = Semaphore::new(0);
    let out = hatchery::fail_after(Duration::from_secs(60), async {
        let mut waits: Vec<_> = (0..N).map(|_| Box::pin(sem.acquire())).collect();
        for w in &mut waits {
            assert!(future::poll_once(w).await.is_none());
        }
        assert_eq!(sem.tasks_waiting(), N);
        while let Some(w) = waits.pop() {
            drop(w);
            if waits.len() % 1000 == 0 {
                hatchery::checkpoint().await; // lets the time limit in
            }
        }
    })
    .await;
    assert!(out.is_ok(), "dropping 100k waiters took over a minute");
    assert_eq!(sem.tasks_waiting(), 0);
    sem.add_permits(1);
    assert_eq!(sem.available_permits(), 1);
}

/// 200k permits returned one by one to 200k waiters that have not woken yet take time
/// linear in their number (found by a review: each return looked for the first waiter
/// not granted one past all those granted before; minutes at this size).
#[hatchery::test]
async fn returning_200k_permits_one_by_one_is_not_quadratic() {
    const N: usize = 200_000;
    let sem = Semaphore::new(0);
    let mut waits: Vec<_> = (0..N).map(|_| Box::pin(sem.acquire())).collect();
    for w in &mut waits {
        assert!(future::poll_once(w).await.is_none());
    }
    let out = hatchery::fail_after(Duration::from_secs(60), async {
        for i in 0..N {
            sem.add_permits(1); // before any woken waiter runs
            if i % 1000 == 0 {
                hatchery::checkpoint().await; // lets the time limit in
            }
        }
    })
    .await;
    assert!(out.is_ok(), "returning 200k permits took over a minute");
    assert_eq!(sem.tasks_waiting(), 0);
    for w in waits {
        drop(w.await);
    }
    assert_eq!(sem.available_permits(), N);
}

/// W4: a wait that can complete at once (here a free permit) checks for cancellation and
/// returns in its first poll, without suspending; in a cancelled scope it takes nothing
/// (W2).
#[hatchery::test]
async fn w4_a_free_permit_is_taken_without_suspending() {
    let sem = Semaphore::new(1);
    let permit = future::poll_once(sem.acquire()).await;
    assert!(permit.is_some(), "a free permit is taken in the first poll");
    drop(permit);
    let scope = CancelScope::new();
    scope.handle().cancel();
    let taken = scope
        .run(async { future::poll_once(sem.acquire()).await.is_some() })
        .await;
    assert_eq!(
        taken,
        Some(false),
        "a cancelled wait takes nothing, and does not complete"
    );
    assert_eq!(sem.available_permits(), 1);
}

/// W5: a queued acquire lent to a timeout is paused, not dropped: it keeps its place in
/// the queue, is granted the permit while nobody polls it (a later `try_acquire` and a
/// later waiter do not get it), and completes when awaited.
#[hatchery::test(virtual_time)]
async fn w5_a_paused_acquire_keeps_its_place() {
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let mut acquire = std::pin::pin!(sem.acquire());
    assert!(
        move_on_after(secs(1), &mut acquire).await.is_none(),
        "paused"
    );
    let mut later = std::pin::pin!(sem.acquire());
    assert!(
        future::poll_once(&mut later).await.is_none(),
        "queued behind it"
    );
    drop(held);
    assert!(
        sem.try_acquire().is_none(),
        "the permit is the paused acquire's"
    );
    assert!(
        future::poll_once(&mut later).await.is_none(),
        "and not the later waiter's"
    );
    let permit = future::poll_once(&mut acquire).await;
    assert!(
        permit.is_some(),
        "the paused acquire completes when awaited"
    );
    drop(permit);
    assert!(future::poll_once(&mut later).await.is_some());
}

/// W3, W5: a granted waiter leaves the queue at its grant, and the queue's mark tells the
/// granted from the waiting without its lock. A granted acquire that is never polled and
/// dropped gives its permit to the next waiter; one still waiting, behind a granted one
/// or ahead of a waiting one, gives back nothing, since it was granted nothing.
#[hatchery::test]
async fn w3_a_dropped_waiter_gives_back_only_what_it_was_granted() {
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let mut a = Box::pin(sem.acquire());
    let mut b = Box::pin(sem.acquire());
    let mut c = Box::pin(sem.acquire());
    let mut d = Box::pin(sem.acquire());
    for w in [&mut a, &mut b, &mut c, &mut d] {
        assert!(future::poll_once(w).await.is_none(), "queued");
    }
    assert_eq!(sem.tasks_waiting(), 4);
    drop(held); // granted to `a`, which is not polled
    assert_eq!(sem.tasks_waiting(), 3);
    assert_eq!(sem.available_permits(), 0);
    assert!(future::poll_once(&mut b).await.is_none(), "`b` still waits");
    drop(c); // waiting behind the granted one: nothing to give back
    assert_eq!(sem.tasks_waiting(), 2);
    assert_eq!(sem.available_permits(), 0);
    assert!(sem.try_acquire().is_none());
    drop(a); // granted, never polled: its permit goes to `b`
    assert_eq!(sem.tasks_waiting(), 1);
    assert_eq!(sem.available_permits(), 0);
    let permit = future::poll_once(&mut b)
        .await
        .expect("granted to the next");
    assert!(future::poll_once(&mut d).await.is_none(), "still waiting");
    drop(permit); // to `d`
    assert_eq!(sem.tasks_waiting(), 0);
    drop(d); // granted, never polled: back to the count, nobody waits
    assert_eq!(sem.available_permits(), 1);
    assert!(sem.try_acquire().is_some());
}
