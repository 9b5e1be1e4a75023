//! `CapacityLimiter`: FIFO fairness, raising and lowering `total_tokens`, misuse errors,
//! and no token lost to cancellation.

use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use hatchery::sync::{CapacityLimiter, LimiterError};
use hatchery::testing::wait_all_tasks_blocked;
use hatchery::{move_on_after, nursery, sleep};
use hatchery_tests::Log;

/// Waiters get tokens in the order they asked; a returned token goes to the longest
/// waiter before a new `try_acquire`.
#[hatchery::test(virtual_time)]
async fn fifo_fairness() {
    let limiter = Arc::new(CapacityLimiter::new(1));
    let log = Log::new();
    limiter.try_acquire_on_behalf_of(0).unwrap();
    let (lim, l) = (limiter.clone(), log.clone());
    nursery(|n| async move {
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            let (lim, l) = (lim.clone(), l.clone());
            n.spawn(async move {
                let b = i as u64 + 1;
                lim.acquire_on_behalf_of(b).await?;
                l.push(name);
                sleep(Duration::from_millis(1)).await;
                lim.release_on_behalf_of(b)?;
                Ok::<_, anyhow::Error>(())
            });
            wait_all_tasks_blocked().await;
        }
        assert_eq!(lim.statistics().tasks_waiting, 3);
        lim.release_on_behalf_of(0)?;
        assert!(lim.try_acquire().is_none());
        assert_eq!(lim.statistics().borrowers, [1]);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(log.events(), ["a", "b", "c"]);
    assert_eq!(limiter.borrowed_tokens(), 0);
}

/// Raising `total_tokens` wakes that many waiters at once; lowering it below the number
/// borrowed keeps the holders and holds back new borrowers.
#[hatchery::test(virtual_time)]
async fn raising_and_lowering_total_tokens() {
    let limiter = Arc::new(CapacityLimiter::new(1));
    let first = limiter.try_acquire().unwrap();
    let lim = limiter.clone();
    nursery(|n| async move {
        let mut tokens = Vec::new();
        for _ in 0..4 {
            let lim = lim.clone();
            tokens.push(n.spawn(async move { Ok::<_, anyhow::Error>(lim.acquire().await) }));
        }
        wait_all_tasks_blocked().await;
        assert_eq!(lim.statistics().tasks_waiting, 4);
        lim.set_total_tokens(3); // two more tokens: two waiters wake
        assert_eq!(lim.borrowed_tokens(), 3);
        assert_eq!(lim.statistics().tasks_waiting, 2);
        // Which two is up to the FIFO order of their first polls (unspecified between
        // siblings), so take whichever finished.
        wait_all_tasks_blocked().await;
        let (done, mut tokens): (Vec<_>, Vec<_>) =
            tokens.into_iter().partition(|h| h.is_finished());
        assert_eq!(done.len(), 2);
        let mut held = Vec::new();
        for h in done {
            held.push(h.join().await?);
        }
        // Lower below the number borrowed: holders keep their tokens.
        lim.set_total_tokens(1);
        assert_eq!(lim.borrowed_tokens(), 3);
        assert_eq!(lim.available_tokens(), 0);
        drop(held);
        // 1 borrowed of 1: the waiters still wait.
        wait_all_tasks_blocked().await;
        assert_eq!(lim.statistics().tasks_waiting, 2);
        assert!(tokens.iter().all(|h| !h.is_finished()));
        drop(first);
        wait_all_tasks_blocked().await;
        let (done, rest): (Vec<_>, Vec<_>) = tokens.into_iter().partition(|h| h.is_finished());
        assert_eq!((done.len(), rest.len()), (1, 1));
        assert_eq!(lim.statistics().tasks_waiting, 1);
        for h in done {
            drop(h.join().await?);
        }
        tokens = rest;
        drop(tokens.remove(0).join().await?);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(limiter.borrowed_tokens(), 0);
}

/// Misuse is an error, never a hang: acquiring twice for one borrower, releasing a token
/// not held; a zero total panics with a message.
#[hatchery::test]
async fn misuse_errors() {
    let limiter = CapacityLimiter::new(1);
    limiter.acquire_on_behalf_of(5).await.unwrap();
    // Twice for the same borrower: an error at once, not a wait for itself.
    assert_eq!(
        limiter.acquire_on_behalf_of(5).await,
        Err(LimiterError::AlreadyBorrowing)
    );
    assert_eq!(
        limiter.try_acquire_on_behalf_of(6),
        Err(LimiterError::WouldBlock)
    );
    assert_eq!(
        limiter.release_on_behalf_of(6),
        Err(LimiterError::NotBorrowing)
    );
    limiter.release_on_behalf_of(5).unwrap();
    assert_eq!(
        limiter.release_on_behalf_of(5),
        Err(LimiterError::NotBorrowing)
    );
    assert_eq!(
        LimiterError::AlreadyBorrowing.to_string(),
        "this borrower already holds a capacity token"
    );
    let zero = std::panic::catch_unwind(|| CapacityLimiter::new(0)).unwrap_err();
    let msg = zero.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("at least one token"), "{msg}");
    let set_zero = std::panic::catch_unwind(|| limiter.set_total_tokens(0));
    assert!(set_zero.is_err());
    assert_eq!(limiter.total_tokens(), 1);
}

/// A cancelled wait holds nothing and leaves no waiter; a token granted to a waiter that
/// is cancelled before it wakes goes to the next one.
#[hatchery::test(virtual_time)]
async fn w2_cancelled_wait_holds_nothing() {
    let limiter = Arc::new(CapacityLimiter::new(1));
    limiter.try_acquire_on_behalf_of(1).unwrap();
    assert_eq!(
        move_on_after(Duration::from_secs(1), limiter.acquire_on_behalf_of(2)).await,
        None
    );
    let s = limiter.statistics();
    assert_eq!((s.tasks_waiting, s.borrowers.clone()), (0, vec![1]));
    // The borrower can try again: it was not left half-registered.
    let scope = hatchery::CancelScope::new();
    let handle = scope.handle();
    let lim = limiter.clone();
    nursery(|n| async move {
        let cancelled = n.spawn({
            let lim = lim.clone();
            async move { Ok::<_, anyhow::Error>(scope.run(lim.acquire_on_behalf_of(2)).await) }
        });
        wait_all_tasks_blocked().await;
        let next = n.spawn({
            let lim = lim.clone();
            async move {
                lim.acquire_on_behalf_of(3).await?;
                Ok(None::<Result<(), LimiterError>>)
            }
        });
        wait_all_tasks_blocked().await;
        lim.release_on_behalf_of(1)?; // granted to borrower 2...
        handle.cancel(); // ...whose wait is cancelled before it wakes
                         // Either borrower 2 got it before the cancel landed, or it went on to 3.
        match cancelled.join().await? {
            Some(r) => {
                r?;
                lim.release_on_behalf_of(2)?;
            }
            None => assert!(!lim.statistics().borrowers.contains(&2)),
        }
        next.join().await?;
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(limiter.statistics().borrowers, [3]);
    assert_eq!(limiter.statistics().tasks_waiting, 0);
}

/// A borrower whose acquire was granted a token but has not returned yet does not hold
/// it: releasing on its behalf then fails, and the acquire returns holding the token,
/// counted once.
#[hatchery::test]
async fn release_before_the_granted_acquire_returns_is_refused() {
    let limiter = CapacityLimiter::new(1);
    limiter.try_acquire_on_behalf_of(1).unwrap();
    let mut acquire = Box::pin(limiter.acquire_on_behalf_of(7));
    assert!(future::poll_once(&mut acquire).await.is_none()); // waits
    limiter.release_on_behalf_of(1).unwrap(); // the token is set aside for 7
    assert_eq!(
        limiter.release_on_behalf_of(7),
        Err(LimiterError::NotBorrowing)
    );
    assert_eq!(acquire.await, Ok(()));
    assert_eq!(limiter.borrowed_tokens(), 1);
    assert_eq!(limiter.release_on_behalf_of(7), Ok(()));
    assert_eq!(limiter.borrowed_tokens(), 0);
}

/// An acquire polled again after it returned panics with a message that blames the
/// caller: it never takes a second token.
#[hatchery::test]
async fn acquire_polled_after_completion_panics() {
    let limiter = CapacityLimiter::new(3);
    let mut acquire = Box::pin(limiter.acquire());
    let _token = future::poll_once(&mut acquire)
        .await
        .expect("a token is free");
    let again = hatchery_tests::catch_panic(future::poll_once(&mut acquire)).await;
    let message = again.map(|_| ()).expect_err("polled after completion");
    assert!(
        message.contains("`LimiterAcquire` polled after completion"),
        "{message}"
    );
    let mut named = Box::pin(limiter.acquire_on_behalf_of(7));
    assert_eq!(future::poll_once(&mut named).await, Some(Ok(())));
    let again = hatchery_tests::catch_panic(future::poll_once(&mut named)).await;
    assert!(again.is_err());
    assert_eq!(limiter.borrowed_tokens(), 2);
}

/// A fan-out of 100k tasks through one token, anonymous and named borrowers, takes time
/// linear in their number (found by an audit): each acquire and each returned token
/// looked for its borrower in the whole queue of waiters, which made this quadratic
/// (minutes at this size, against seconds in a debug build; the generous real-time
/// limit fails the test rather than waiting for it).
#[hatchery::test]
async fn a_fan_out_of_100k_waiting_tasks_is_not_quadratic() {
    const N: u64 = 100_000;
    let limiter = Arc::new(CapacityLimiter::new(1));
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (lim, d) = (limiter.clone(), done.clone());
    hatchery::fail_after(
        Duration::from_secs(60),
        nursery(|n| async move {
            for i in 0..N {
                let (lim, d) = (lim.clone(), d.clone());
                n.spawn(async move {
                    if i % 2 == 0 {
                        let _token = lim.acquire().await;
                        hatchery::checkpoint().await;
                    } else {
                        lim.acquire_on_behalf_of(i).await.unwrap();
                        hatchery::checkpoint().await;
                        lim.release_on_behalf_of(i).unwrap();
                    }
                    d.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Ok::<_, anyhow::Error>(())
                });
            }
            Ok(())
        }),
    )
    .await
    .expect("100k tasks through one token took over a minute")
    .unwrap();
    assert_eq!(done.load(std::sync::atomic::Ordering::Relaxed), N);
    assert_eq!(limiter.borrowed_tokens(), 0);
    assert_eq!(limiter.statistics().tasks_waiting, 0);
}

/// Raising the total one token at a time for 100k waiting tasks that have not woken yet
/// takes time linear in their number (found by a review: each raise looked for the first
/// waiter not granted a token past all those granted before).
#[hatchery::test]
async fn raising_the_total_one_by_one_for_100k_waiters_is_not_quadratic() {
    const N: usize = 100_000;
    let limiter = CapacityLimiter::new(1);
    let _first = limiter.try_acquire().unwrap();
    let mut waits: Vec<_> = (0..N).map(|_| Box::pin(limiter.acquire())).collect();
    for w in &mut waits {
        assert!(future::poll_once(w).await.is_none());
    }
    let out = hatchery::fail_after(Duration::from_secs(60), async {
        for total in 2..=N + 1 {
            limiter.set_total_tokens(total);
            if total % 1000 == 0 {
                hatchery::checkpoint().await; // lets the time limit in
            }
        }
    })
    .await;
    assert!(
        out.is_ok(),
        "raising the total 100k times took over a minute"
    );
    assert_eq!(limiter.statistics().tasks_waiting, 0);
    let mut tokens = Vec::new();
    for w in waits {
        tokens.push(w.await);
    }
    assert_eq!(limiter.borrowed_tokens(), N + 1);
    drop(tokens);
}

/// W3, W5: a named borrower's wait that was granted a token and is dropped without being
/// polled gives the token to the next waiter, and is a borrower no more; one dropped
/// while still waiting, behind it, takes nothing with it and gives back nothing.
#[hatchery::test]
async fn w3_a_dropped_granted_wait_hands_its_token_on() {
    let limiter = CapacityLimiter::new(1);
    limiter.try_acquire_on_behalf_of(1).unwrap();
    let mut a = Box::pin(limiter.acquire_on_behalf_of(2));
    let mut b = Box::pin(limiter.acquire_on_behalf_of(3));
    let mut c = Box::pin(limiter.acquire_on_behalf_of(4));
    for w in [&mut a, &mut b, &mut c] {
        assert!(future::poll_once(w).await.is_none(), "queued");
    }
    limiter.release_on_behalf_of(1).unwrap(); // granted to 2, not polled
    assert_eq!(limiter.statistics().tasks_waiting, 2);
    drop(b); // 3 was waiting: nothing to give back
    assert_eq!(limiter.statistics().tasks_waiting, 1);
    assert_eq!(limiter.borrowed_tokens(), 1);
    drop(a); // 2's grant goes to 4
    assert_eq!(limiter.statistics().tasks_waiting, 0);
    assert_eq!(limiter.borrowed_tokens(), 1);
    assert_eq!(future::poll_once(&mut c).await, Some(Ok(())));
    assert_eq!(limiter.statistics().borrowers, [4]);
    // 2 and 3 hold nothing, and may wait again.
    assert_eq!(
        limiter.release_on_behalf_of(2),
        Err(LimiterError::NotBorrowing)
    );
    assert_eq!(
        limiter.try_acquire_on_behalf_of(3),
        Err(LimiterError::WouldBlock)
    );
}

/// W3, W5, for anonymous borrowers, whose granted wait returns without the limiter's
/// lock: a wait still queued behind a granted one is not granted, a granted wait dropped
/// without being polled hands its token on, and nothing is counted twice.
#[hatchery::test]
async fn w3_a_dropped_granted_anonymous_wait_hands_its_token_on() {
    let limiter = CapacityLimiter::new(1);
    let token = limiter.try_acquire().unwrap();
    let mut a = Box::pin(limiter.acquire());
    let mut b = Box::pin(limiter.acquire());
    let mut c = Box::pin(limiter.acquire());
    for w in [&mut a, &mut b, &mut c] {
        assert!(future::poll_once(w).await.is_none(), "queued");
    }
    drop(token); // granted to `a`, not polled
    assert!(future::poll_once(&mut b).await.is_none(), "`b` still waits");
    assert_eq!(limiter.borrowed_tokens(), 1);
    drop(a); // its token goes to `b`
    assert_eq!(limiter.borrowed_tokens(), 1);
    assert_eq!(limiter.statistics().tasks_waiting, 1);
    let got = future::poll_once(&mut b)
        .await
        .expect("granted to the next");
    assert!(future::poll_once(&mut c).await.is_none(), "`c` still waits");
    drop(got); // to `c`
    let last = future::poll_once(&mut c).await.expect("granted");
    assert_eq!(limiter.borrowed_tokens(), 1);
    drop(last);
    assert_eq!(limiter.borrowed_tokens(), 0);
    assert!(limiter.try_acquire().is_some());
}
