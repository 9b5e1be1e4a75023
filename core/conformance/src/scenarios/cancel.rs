//! Cancellation (C), handles (H), deadlines (D), shields (P), kept futures (K) and
//! foreign droppers (F).

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use hatchery::testing::elapsed;
use hatchery::{
    current_effective_deadline, fail_after, finally, move_on_after, now, nursery, shield, sleep,
    CancelScope, Deadline, Nursery,
};

use crate::support::{eventually, ms, secs, Counter, Log, HOUR};

/// C1: a cancelled scope stops its body at the body's next suspension point, dropping it
/// there; a body that never suspends again runs to its end, and its value is returned.
pub async fn c1_delivery_at_suspension_points() {
    let log = Log::new();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let l = log.clone();
    let out = scope
        .run(async move {
            let _dropped = l.on_drop("body dropped");
            handle.cancel();
            l.push("runs on after cancel");
            sleep(HOUR).await;
            l.push("not reached");
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["runs on after cancel", "body dropped"]);

    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run(async move {
            handle.cancel();
            7 // no suspension since the cancellation
        })
        .await;
    assert_eq!(out, Some(7));
    assert_eq!(elapsed(), Duration::ZERO);
}

/// C2 (on the runtime's timers): a deadline cancels everything inside its scope, on every
/// thread: tasks, their tasks, and the nurseries those open.
pub async fn c2_cancellation_reaches_every_task() {
    let dropped = Counter::new();
    let start = now();
    let d = dropped.clone();
    let out = move_on_after(
        ms(30),
        nursery(|n: Nursery<Infallible>| async move {
            for _ in 0..3 {
                let (d, n2) = (d.clone(), n.clone());
                n.spawn(async move {
                    let _guard = Guard(d.clone());
                    let d2 = d.clone();
                    n2.spawn(async move {
                        let _guard = Guard(d2);
                        sleep(HOUR).await;
                        Ok(())
                    });
                    nursery(|inner: Nursery<Infallible>| async move {
                        inner.spawn(async move {
                            let _guard = Guard(d);
                            sleep(HOUR).await;
                            Ok(())
                        });
                        sleep(HOUR).await;
                        Ok(())
                    })
                    .await
                    .unwrap();
                    Ok(())
                });
            }
            sleep(HOUR).await;
            Ok(())
        }),
    )
    .await;
    assert!(out.is_none());
    assert_eq!(
        dropped.get(),
        9,
        "every task was dropped before the scope returned"
    );
    let took = now() - start;
    assert!(took >= ms(30) && took < secs(10), "{took:?}");
}

struct Guard(Counter);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.incr();
    }
}

/// C3: under an outer cancellation, the outermost cancelled scope catches; inner scopes
/// never return, and do not report a caught cancellation.
pub async fn c3_the_outermost_cancelled_scope_catches() {
    let outer = CancelScope::new().with_timeout(secs(1));
    let outer_handle = outer.handle();
    let inner = CancelScope::new();
    let inner_handle = inner.handle();
    let log = Log::new();
    let l = log.clone();
    let out = outer
        .run(async move {
            let r = inner.run(sleep(HOUR)).await;
            l.push("inner returned");
            r
        })
        .await;
    assert_eq!(out, None);
    assert!(log.events().is_empty());
    assert!(outer_handle.cancelled_caught());
    assert!(!inner_handle.cancelled_caught());
    assert_eq!(elapsed(), secs(1));
}

/// C4 (D5): a deadline is a cancellation, and can be moved while the scope runs, from
/// another task: later postpones it, earlier cancels at the new instant.
pub async fn c4_deadlines_move() {
    let scope = CancelScope::new().with_timeout(secs(10));
    let handle = scope.handle();
    let out = nursery(|n: Nursery<Infallible>| async move {
        let h = handle.clone();
        n.spawn(async move {
            sleep(secs(5)).await;
            h.set_deadline(now() + secs(20)); // later: postpones
            sleep(secs(10)).await;
            h.set_deadline(now() + secs(1)); // earlier: at 16 s
            Ok(())
        });
        Ok(scope.run(sleep(HOUR)).await)
    })
    .await
    .unwrap();
    assert_eq!(out, None);
    assert_eq!(elapsed(), secs(16));
}

/// C5: `fail_after` returns its error only when its own deadline caught the
/// cancellation; under a shorter enclosing timeout, the enclosing scope returns.
pub async fn c5_fail_after_reports_its_own_deadline() {
    let r = fail_after(secs(1), sleep(HOUR)).await;
    assert!(r.is_err());
    let r = move_on_after(secs(1), fail_after(secs(5), sleep(HOUR))).await;
    assert!(
        r.is_none(),
        "the outer scope catches: fail_after never returns"
    );
    let r = fail_after(secs(5), sleep(secs(1))).await;
    assert!(r.is_ok());
    assert_eq!(elapsed(), secs(3));
}

/// C6 (P1): a shield is not cancelled by the scopes around it, which wait for it; the
/// cancellation lands at the next suspension after it.
pub async fn c6_shields_protect_cleanup() {
    let log = Log::new();
    let l = log.clone();
    let out = move_on_after(secs(1), async move {
        shield(async {
            sleep(secs(3)).await;
            l.push("cleanup done");
        })
        .await;
        l.push("after the shield");
        sleep(HOUR).await;
        l.push("not reached");
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["cleanup done", "after the shield"]);
    assert_eq!(elapsed(), secs(3));
}

/// C7 (D10): the effective deadline is the earliest of the enclosing scopes, up to the
/// nearest shield; a cancelled scope shows as `Cancelled`.
pub async fn c7_the_effective_deadline() {
    assert_eq!(current_effective_deadline(), Deadline::Never);
    let start = now();
    move_on_after(secs(10), async {
        move_on_after(secs(5), async {
            assert_eq!(current_effective_deadline(), Deadline::At(start + secs(5)));
            shield(async {
                assert_eq!(current_effective_deadline(), Deadline::Never);
            })
            .await;
        })
        .await;
        assert_eq!(current_effective_deadline(), Deadline::At(start + secs(10)));
    })
    .await;
    let scope = CancelScope::new();
    let handle = scope.handle();
    scope
        .run(async move {
            handle.cancel();
            assert_eq!(current_effective_deadline(), Deadline::Cancelled);
        })
        .await;
}

/// C8 (F1), on real time: a nursery dropped from outside hatchery (as a `select!` branch
/// would be) cancels its tasks at once without waiting for them; each stops at its next
/// suspension point, also one spawned and not yet polled.
pub async fn c8_a_foreign_drop_cancels_without_waiting() {
    let dropped = Counter::new();
    let d = dropped.clone();
    let mut fut = Box::pin(nursery(|n: Nursery<Infallible>| async move {
        for _ in 0..3 {
            let d = d.clone();
            n.spawn(async move {
                let _guard = Guard(d);
                sleep(HOUR).await;
                Ok(())
            });
        }
        sleep(HOUR).await;
        Ok(())
    }));
    // One poll, as a `select!` would, then the drop.
    std::future::poll_fn(|cx| {
        assert!(fut.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    let start = now();
    drop(fut);
    eventually("every task dropped", || dropped.get() == 3).await;
    assert!(now() - start < secs(10));
}

/// H2, H3: `cancel_called` is sticky and set by a scope's own cancellation;
/// `cancelled_caught` only by a scope that caught one.
pub async fn h2_h3_cancel_called_and_cancelled_caught() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    assert!(!handle.cancel_called());
    let h = handle.clone();
    let out = scope
        .run(async move {
            h.cancel();
            assert!(h.cancel_called());
            sleep(HOUR).await;
        })
        .await;
    assert_eq!(out, None);
    assert!(handle.cancel_called() && handle.cancelled_caught());

    // Cancelled while it never suspends again: not caught (C3).
    let scope = CancelScope::new();
    let handle = scope.handle();
    let h = handle.clone();
    assert_eq!(scope.run(async move { h.cancel() }).await, Some(()));
    assert!(handle.cancel_called() && !handle.cancelled_caught());
}

/// D1 (on the runtime's clock and timers): `now` is the runtime's clock; a sleep waits at
/// least its duration on it, and a timeout fires once its deadline has passed.
pub async fn d1_the_runtime_clock_drives_sleeps_and_timeouts() {
    let rt = hatchery::rt::current().expect("inside hatchery");
    let a = now();
    assert!(rt.now() >= a);
    sleep(ms(20)).await;
    let b = now();
    assert!(b - a >= ms(20), "slept {:?}", b - a);
    let out = move_on_after(ms(20), sleep(HOUR)).await;
    assert_eq!(out, None);
    let c = now();
    assert!(
        c - b >= ms(20) && c - b < secs(10),
        "timed out after {:?}",
        c - b
    );
    // A zero sleep and a deadline already passed still suspend once, and end.
    sleep(Duration::ZERO).await;
    assert_eq!(move_on_after(Duration::ZERO, sleep(HOUR)).await, None);
}

/// D2: a timeout counts from when its scope is entered (first polled), not from when
/// its future was made.
pub async fn d2_timeouts_count_from_entry() {
    let timeout = move_on_after(secs(1), sleep(HOUR));
    sleep(secs(5)).await;
    assert_eq!(timeout.await, None);
    assert_eq!(elapsed(), secs(6));
}

/// D3: `Duration::MAX` and far instants mean "no deadline": nothing overflows or panics.
pub async fn d3_far_deadlines_never_overflow() {
    assert_eq!(move_on_after(Duration::MAX, sleep(secs(1))).await, Some(()));
    assert_eq!(move_on_after(secs(1), sleep(Duration::MAX)).await, None);
    assert!(fail_after(Duration::MAX, async { 5 }).await.is_ok());
    let deadline = CancelScope::new()
        .with_timeout(Duration::MAX)
        .run(async { current_effective_deadline() })
        .await;
    assert_eq!(deadline, Some(Deadline::Never));
    assert_eq!(elapsed(), secs(2));
}

/// D4: a deadline already passed on entry lets the body run to its first suspension,
/// then cancels it.
pub async fn d4_a_passed_deadline_cancels_at_the_first_suspension() {
    let log = Log::new();
    let l = log.clone();
    let out = move_on_after(Duration::ZERO, async move {
        l.push("ran to the first suspension");
        sleep(secs(1)).await;
        l.push("not reached");
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["ran to the first suspension"]);
    assert_eq!(elapsed(), Duration::ZERO);
}

/// D5 (on the runtime's timers): a deadline moved earlier while the scope waits re-arms
/// the timer: the scope ends at the new deadline, not the old one.
pub async fn d5_a_moved_deadline_rearms_the_runtime_timer() {
    let start = now();
    let scope = CancelScope::new().with_timeout(HOUR);
    let handle = scope.handle();
    let out = nursery(|n: Nursery<Infallible>| async move {
        n.spawn(async move {
            sleep(ms(10)).await;
            handle.set_deadline(now() + ms(20));
            Ok(())
        });
        Ok(scope.run(sleep(HOUR)).await)
    })
    .await
    .unwrap();
    assert_eq!(out, None);
    let took = now() - start;
    assert!(took >= ms(30) && took < secs(10), "{took:?}");
}

/// P5: `finally` runs its cleanup after the work, also when the work is cancelled, and
/// the cleanup may wait: the cancellation does not cut it.
pub async fn p5_finally_cleans_up_after_cancellation() {
    let log = Log::new();
    let l = log.clone();
    let out = move_on_after(
        secs(1),
        finally(sleep(HOUR), async move {
            sleep(secs(2)).await;
            l.push("cleaned up");
        }),
    )
    .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["cleaned up"]);
    assert_eq!(elapsed(), secs(3));
    assert_eq!(finally(async { 5 }, async {}).await, 5);
}

/// K1: a future polled in a scope that has finished since is not cancelled by it: it
/// follows the scopes that still run, here its own deadline.
pub async fn k1_a_finished_scope_lets_go() {
    let mut op = pin!(fail_after(secs(10), async {
        sleep(secs(5)).await;
        "done"
    }));
    assert!(move_on_after(secs(1), &mut op).await.is_none());
    assert_eq!(op.await.ok(), Some("done"));
    assert_eq!(elapsed(), secs(5));
}

/// F2 (on real time): a nursery dropped from outside is closed: spawning into it fails
/// clearly, rather than starting a task nobody waits for.
pub async fn f2_a_dropped_nursery_is_closed() {
    let saved = std::sync::Arc::new(std::sync::Mutex::new(None));
    let s = saved.clone();
    let mut fut = Box::pin(nursery(move |n: Nursery<Infallible>| async move {
        *s.lock().unwrap() = Some(n);
        sleep(HOUR).await;
        Ok(())
    }));
    std::future::poll_fn(|cx| {
        assert!(fut.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    drop(fut);
    let n = saved.lock().unwrap().take().unwrap();
    assert!(n.is_closed());
    assert!(n.try_spawn(async { Ok(()) }).is_err());
}
