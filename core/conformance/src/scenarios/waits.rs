//! Waits and the `sync` primitives (W), and combinators (G).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hatchery::sync::{CapacityLimiter, Event};
use hatchery::testing::elapsed;
use hatchery::{
    checkpoint, map, memory_stream, move_on_after, nursery, race, retry, run_blocking, sleep,
    Backoff, CancelScope, Nursery,
};

use crate::support::{catch_panic, secs, Counter, Log, HOUR};

/// W1: hatchery's waits never complete in a cancelled scope, even when what they wait
/// for is there: the scope drops them.
pub async fn w1_waits_never_complete_in_a_cancelled_scope() {
    let log = Log::new();
    let (tx, rx) = memory_stream::<u8>(1);
    tx.try_send(1).unwrap();
    let event = Event::new();
    event.set();
    let waits: [(&'static str, u8); 4] = [
        ("checkpoint", 0),
        ("sleep(0)", 1),
        ("recv", 2),
        ("event", 3),
    ];
    for (name, which) in waits {
        let scope = CancelScope::new();
        let handle = scope.handle();
        let (l, rx, event) = (log.clone(), rx.clone(), &event);
        let out = scope
            .run(async move {
                handle.cancel();
                match which {
                    0 => checkpoint().await,
                    1 => sleep(Duration::ZERO).await,
                    2 => drop(rx.recv().await),
                    _ => event.wait().await,
                }
                l.push(name);
            })
            .await;
        assert_eq!(out, None, "{name} completed in a cancelled scope");
    }
    assert!(log.events().is_empty());
    assert_eq!(rx.try_recv(), Ok(1), "the cancelled receive took nothing");
}

/// W3: a receive cancelled while it waits loses nothing: what is sent later goes to the
/// next receiver.
pub async fn w3_a_cancelled_receive_loses_nothing() {
    let (tx, rx) = memory_stream::<&str>(0);
    let out = nursery(|n: Nursery<Infallible>| async move {
        let rx2 = rx.clone();
        let waiter = n.spawn(async move { Ok(move_on_after(secs(1), rx2.recv()).await) });
        assert_eq!(waiter.join().await.unwrap(), None);
        n.spawn(async move {
            sleep(secs(1)).await;
            tx.send("hello").await.unwrap();
            Ok(())
        });
        Ok(rx.recv().await.unwrap())
    })
    .await;
    assert_eq!(out.unwrap(), "hello");
    assert_eq!(elapsed(), secs(2));
}

/// W6 (on the runtime's blocking threads): `run_blocking` runs its function on another
/// thread, returns its value, and resumes its panic; a cancelled scope does not wait for
/// the thread.
pub async fn w6_run_blocking_runs_on_another_thread() {
    let here = std::thread::current().id();
    let (value, there) =
        run_blocking(|| ((1..=10u64).product::<u64>(), std::thread::current().id())).await;
    assert_eq!(value, 3_628_800);
    assert_ne!(there, here, "blocking work ran inline");
    let p = catch_panic(run_blocking(|| -> u8 { panic!("blocking boom") })).await;
    assert_eq!(p.unwrap_err(), "blocking boom");
    let (release, released) = std::sync::mpsc::channel::<()>();
    let out = move_on_after(
        Duration::from_millis(10),
        run_blocking(move || {
            let _ = released.recv_timeout(Duration::from_secs(60));
        }),
    )
    .await;
    assert_eq!(out, None, "the scope did not wait for the thread");
    drop(release);
}

/// W2, W5 (`CapacityLimiter`): at most its total of tokens are borrowed at once; waiters
/// are served first come, first served, and a waiter cancelled while it waits takes
/// nothing.
pub async fn w_a_limiter_bounds_concurrency() {
    let limiter = Arc::new(CapacityLimiter::new(3));
    let peak = Counter::new();
    let running = Counter::new();
    let l = limiter.clone();
    let (p, r) = (peak.clone(), running.clone());
    nursery(|n: Nursery<Infallible>| async move {
        for _ in 0..9 {
            let (l, p, r) = (l.clone(), p.clone(), r.clone());
            n.spawn(async move {
                let _token = l.acquire().await;
                p.raise_to(r.incr());
                sleep(secs(1)).await;
                r.decr();
                Ok(())
            });
        }
        // A waiter that gives up takes no token. It comes after the first three took
        // theirs: on a runtime with a thread per task it could otherwise run first.
        while l.available_tokens() > 0 {
            sleep(Duration::from_millis(1)).await;
        }
        let l2 = l.clone();
        let gave_up = n.spawn(async move {
            Ok(move_on_after(Duration::from_millis(500), l2.acquire())
                .await
                .is_none())
        });
        assert!(gave_up.join().await.unwrap());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(peak.get(), 3);
    assert_eq!(limiter.borrowed_tokens(), 0);
    assert_eq!(elapsed(), secs(3));
}

/// G1, G2: `race` returns the first output, and has cancelled and awaited the others
/// (dropped them) by the time it returns.
pub async fn g2_race_cancels_and_awaits_the_losers() {
    let log = Log::new();
    let futs = (1..=3u64).map(|i| {
        let l = log.clone();
        async move {
            let _dropped = l.on_drop("a future is gone");
            sleep(secs(i)).await;
            i
        }
    });
    assert_eq!(race(futs).await, 1);
    assert_eq!(log.count("a future is gone"), 3);
    assert_eq!(elapsed(), secs(1));
}

/// G1: `map` runs at most `limit` futures at a time, and returns every output in input
/// order.
pub async fn g_map_runs_at_most_n_at_a_time() {
    let out = map(2, 0..6u64, |i| async move {
        sleep(secs(1)).await;
        i * 10
    })
    .join()
    .await;
    assert_eq!(out, [0, 10, 20, 30, 40, 50]);
    assert_eq!(elapsed(), secs(3));
}

/// G6: `retry`'s waits are sleeps on the runtime's clock: three delays of 100, 200 and
/// 400 ms, exactly.
pub async fn g6_retry_backs_off_on_the_clock() {
    let attempts = Counter::new();
    let a = attempts.clone();
    let r = retry(move || {
        let n = a.incr();
        async move {
            if n < 4 {
                Err("busy")
            } else {
                Ok(n)
            }
        }
    })
    .backoff(Backoff::new().without_jitter())
    .max_attempts(5)
    .await;
    assert_eq!(r, Ok(4));
    assert_eq!(elapsed(), Duration::from_millis(700));
    let r = move_on_after(
        secs(1),
        retry(|| async {
            sleep(HOUR).await;
            Ok::<_, ()>(())
        }),
    )
    .await;
    assert_eq!(r, None);
}
