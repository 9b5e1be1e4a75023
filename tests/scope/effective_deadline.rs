//! `current_effective_deadline` (C7): the earliest deadline of the enclosing scopes up to
//! the nearest shield; `Cancelled` once cancelled; seen by nursery children too.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hatchery::testing::elapsed;
use hatchery::{
    checkpoint, current_effective_deadline, move_on_after, move_on_at, now, nursery, shield, sleep,
    CancelScope, Deadline,
};
use hatchery_tests::{secs, TestError, HOUR};

/// C7: no enclosing deadline means `Never`.
#[hatchery::test]
async fn c7_root_has_no_deadline() {
    assert_eq!(current_effective_deadline(), Deadline::Never);
    let inside = CancelScope::new()
        .run(async { current_effective_deadline() })
        .await;
    assert_eq!(inside, Some(Deadline::Never));
}

/// C7: the earliest of the enclosing deadlines, whichever scope has it.
#[hatchery::test(virtual_time)]
async fn c7_minimum_of_enclosing_deadlines() {
    let d1 = now() + Duration::from_secs(10);
    let d2 = d1 + Duration::from_secs(10);
    let a = move_on_at(d1, move_on_at(d2, async { current_effective_deadline() })).await;
    assert_eq!(a, Some(Some(Deadline::At(d1))));
    let b = move_on_at(d2, move_on_at(d1, async { current_effective_deadline() })).await;
    assert_eq!(b, Some(Some(Deadline::At(d1))));
    let c = move_on_at(d2, async {
        let inner = move_on_at(d1, async { current_effective_deadline() }).await;
        // Back outside the inner scope: only the outer deadline applies.
        (inner, current_effective_deadline())
    })
    .await;
    assert_eq!(c, Some((Some(Deadline::At(d1)), Deadline::At(d2))));

    // A relative timeout counts from entry.
    let before = now();
    let left = move_on_after(Duration::from_secs(30), async {
        current_effective_deadline().remaining(now()).unwrap()
    })
    .await
    .unwrap();
    // Time stands still while the task runs: exactly the whole timeout is left.
    assert_eq!(left, Duration::from_secs(30));
    assert_eq!(now(), before);
}

/// C7: shields stop the walk: ancestors' deadlines do not count inside a shield, the
/// shield's own deadline and scopes inside it do.
#[hatchery::test]
async fn c7_d10_stops_at_shields() {
    let d1 = now() + Duration::from_secs(10);
    let d2 = d1 + Duration::from_secs(10);
    let d0 = d1 - Duration::from_secs(5);
    let r = move_on_at(d1, async {
        let plain = shield(async { current_effective_deadline() }).await;
        let own = CancelScope::new()
            .with_shield(true)
            .with_deadline(d2)
            .run(async { current_effective_deadline() })
            .await;
        let inside = shield(move_on_at(d2, async { current_effective_deadline() })).await;
        let earlier_inside = CancelScope::new()
            .with_shield(true)
            .with_deadline(d2)
            .run(move_on_at(d0, async { current_effective_deadline() }))
            .await;
        (
            plain,
            own,
            inside,
            earlier_inside,
            current_effective_deadline(),
        )
    })
    .await;
    assert_eq!(
        r,
        Some((
            Deadline::Never,
            Some(Deadline::At(d2)),
            Some(Deadline::At(d2)),
            Some(Some(Deadline::At(d0))),
            Deadline::At(d1),
        ))
    );
}

/// C7: a cancelled scope shows as `Cancelled`, in nested scopes too, but not inside a
/// shield; after the shield it is `Cancelled` again.
#[hatchery::test(virtual_time)]
async fn c7_cancelled_is_visible() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let scope = CancelScope::new().with_timeout(HOUR);
    let handle = scope.handle();
    let out = scope
        .run({
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push(current_effective_deadline().is_cancelled());
                handle.cancel();
                seen.lock()
                    .unwrap()
                    .push(current_effective_deadline().is_cancelled());
                let nested = CancelScope::new().with_timeout(HOUR);
                nested
                    .run(async {
                        seen.lock()
                            .unwrap()
                            .push(current_effective_deadline().is_cancelled());
                        shield(async {
                            seen.lock()
                                .unwrap()
                                .push(current_effective_deadline().is_cancelled());
                            sleep(secs(1)).await;
                        })
                        .await;
                        seen.lock()
                            .unwrap()
                            .push(current_effective_deadline().is_cancelled());
                        checkpoint().await;
                    })
                    .await;
            }
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(*seen.lock().unwrap(), [false, true, true, false, true]);
    assert_eq!(Deadline::Cancelled.remaining(now()), Some(Duration::ZERO));
    assert_eq!(Deadline::Never.remaining(now()), None);
    let t = now();
    assert_eq!(Deadline::Cancelled.instant(t), Some(t));
    assert_eq!(Deadline::At(t + HOUR).instant(t), Some(t + HOUR));
    assert_eq!(elapsed(), secs(1));
}

/// C7: a deadline that has passed but not yet been acted on is visible either as
/// `Cancelled` or as a past instant.
#[hatchery::test]
async fn c7_passed_deadline_is_visible() {
    let d = now();
    let seen = move_on_at(d, async {
        let seen = current_effective_deadline();
        checkpoint().await;
        seen
    })
    .await;
    // The body was cancelled at its first suspension point, so nothing came back; look
    // from inside before the first suspension instead.
    assert_eq!(seen, None);
    let scope = CancelScope::new().with_deadline(d);
    let out = scope.run(async { current_effective_deadline() }).await;
    match out {
        Some(Deadline::Cancelled) => {}
        Some(Deadline::At(at)) => assert!(at <= now()),
        other => panic!("expected a passed deadline, got {other:?}"),
    }
}

/// C7: nursery children see the deadlines of the scopes around the nursery (several
/// levels up), combined with their own scopes.
#[hatchery::test]
async fn c7_visible_inside_nursery_children() {
    let d1 = now() + Duration::from_secs(10);
    let d2 = d1 + Duration::from_secs(10);
    let d0 = d1 - Duration::from_secs(5);
    let r = move_on_at(
        d2,
        move_on_at(
            d1,
            nursery(|n| async move {
                let plain = n.spawn(async { Ok::<_, TestError>(current_effective_deadline()) });
                let own = n.spawn(async move {
                    Ok(move_on_at(d0, async { current_effective_deadline() }).await)
                });
                let later = n.spawn(async move {
                    Ok(move_on_at(d2, async { current_effective_deadline() }).await)
                });
                let shielded =
                    n.spawn(async { Ok(shield(async { current_effective_deadline() }).await) });
                let grandchild = n.spawn(async {
                    nursery(|n2| async move {
                        n2.spawn(async { Ok::<_, TestError>(current_effective_deadline()) })
                            .join()
                            .await
                            .map_err(|_| TestError("join"))
                    })
                    .await
                    .map_err(|_| TestError("inner nursery"))
                });
                Ok((
                    plain.join().await.unwrap(),
                    own.join().await.unwrap(),
                    later.join().await.unwrap(),
                    shielded.join().await.unwrap(),
                    grandchild.join().await.unwrap(),
                ))
            }),
        ),
    )
    .await;
    assert_eq!(
        r,
        Some(Some(Ok((
            Deadline::At(d1),
            Some(Deadline::At(d0)),
            Some(Deadline::At(d1)),
            Deadline::Never,
            Deadline::At(d1),
        ))))
    );
}

/// C7 with N5: a child spawned into a cancelled nursery sees `Cancelled` at its first
/// poll.
#[hatchery::test]
async fn c7_child_of_cancelled_nursery_sees_cancelled() {
    let seen = Arc::new(Mutex::new(None));
    let r = nursery(|n| {
        let seen = seen.clone();
        async move {
            n.cancel();
            n.spawn(async move {
                *seen.lock().unwrap() = Some(current_effective_deadline());
                checkpoint().await;
                Ok::<_, TestError>(())
            });
            Ok(())
        }
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(*seen.lock().unwrap(), Some(Deadline::Cancelled));
}
