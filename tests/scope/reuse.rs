//! Scopes entered one after another in the same task poll: a scope nobody else could
//! see hands its node to the next one entered under the same parent (no allocation, no
//! reference counts). The next scope must start from a clean state: not cancelled, its
//! own deadline and shield, nothing caught.
//!
//! Each test finishes one scope and enters the next in the same poll, which is when the
//! node is reused. Every test runs inside a [`bounded`] scope: a scope that wrongly
//! stays cancelled waits forever without a timer, and would hang the test instead of
//! failing it.

use std::future::Future;
use std::time::Duration;

use hatchery::testing::elapsed;
use hatchery::{
    checkpoint, current_effective_deadline, fail_after, move_on_after, move_on_at, now, nursery,
    shield, sleep, CancelScope, Deadline,
};
use hatchery_tests::{secs, Log, HOUR};

/// Runs `body` with a deadline far beyond every wait of these tests (virtual time).
async fn bounded<F: Future>(body: F) -> F::Output {
    fail_after(1000 * HOUR, body)
        .await
        .expect("stuck: a scope kept the state of the one before it")
}

/// A scope that caught its deadline, then a scope with a later deadline: the second is
/// not cancelled by the first one's flag or deadline.
#[hatchery::test(virtual_time)]
async fn a_caught_deadline_does_not_carry_over() {
    bounded(async {
        for round in 0..3u64 {
            assert_eq!(move_on_after(secs(1), sleep(HOUR)).await, None);
            // Entered in the poll that woke the first scope's timer.
            let out = move_on_after(secs(5), async {
                sleep(secs(2)).await;
                round
            })
            .await;
            assert_eq!(out, Some(round));
        }
        assert_eq!(elapsed(), Duration::from_secs(9));
    })
    .await
}

/// `fail_after` reports why its scope was cancelled: a deadline error, then a finished
/// body, then a deadline error again.
#[hatchery::test(virtual_time)]
async fn fail_after_in_a_row_reports_each_outcome() {
    bounded(async {
        assert!(fail_after(secs(1), sleep(HOUR)).await.is_err());
        assert_eq!(fail_after(HOUR, async { 7 }).await, Ok(7));
        assert_eq!(fail_after(HOUR, checkpoint()).await, Ok(()));
        assert!(fail_after(secs(2), sleep(HOUR)).await.is_err());
        assert_eq!(elapsed(), Duration::from_secs(3));
    })
    .await
}

/// A scope without a deadline after one with a deadline reports the enclosing deadline,
/// not the previous scope's.
#[hatchery::test(virtual_time)]
async fn the_next_scope_has_its_own_deadline() {
    bounded(async {
        let start = now();
        let outer = CancelScope::new().with_deadline(start + HOUR);
        let out = outer
            .run(async {
                assert_eq!(move_on_after(secs(5), async { 1 }).await, Some(1));
                let plain = CancelScope::new()
                    .run(async { current_effective_deadline() })
                    .await;
                assert_eq!(plain, Some(Deadline::At(start + HOUR)));
                assert_eq!(move_on_at(start + secs(3), sleep(HOUR)).await, None);
                let later = move_on_after(secs(10), async { current_effective_deadline() }).await;
                assert_eq!(later, Some(Deadline::At(now() + secs(10))));
                "done"
            })
            .await;
        assert_eq!(out, Some("done"));
        assert_eq!(elapsed(), Duration::from_secs(3));
    })
    .await
}

/// A finished shield, then an unshielded scope: the enclosing scope's cancellation
/// reaches the second one.
#[hatchery::test(virtual_time)]
async fn a_shield_does_not_carry_over() {
    bounded(async {
        let log = Log::new();
        let outer = CancelScope::new();
        let handle = outer.handle();
        let out = outer
            .run(async {
                shield(async {}).await;
                handle.cancel();
                CancelScope::new()
                    .run(async {
                        checkpoint().await;
                        log.push("unshielded scope survived the cancel");
                    })
                    .await;
                log.push("outer body survived the cancel");
            })
            .await;
        assert_eq!(out, None);
        assert!(handle.cancelled_caught());
        assert!(log.is_empty(), "{log:?}");
    })
    .await
}

/// An explicitly cancelled scope (through a handle), then scopes without handles: they
/// run normally, and the handle still reports the first scope's state.
#[hatchery::test(virtual_time)]
async fn a_cancelled_scope_with_a_handle_leaves_the_next_alone() {
    bounded(async {
        let first = CancelScope::new();
        let handle = first.handle();
        handle.cancel();
        assert_eq!(first.run(checkpoint()).await, None);
        assert_eq!(move_on_after(HOUR, checkpoint()).await, Some(()));
        assert_eq!(CancelScope::new().run(checkpoint()).await, Some(()));
        assert!(handle.cancel_called() && handle.cancelled_caught());
    })
    .await
}

/// Scopes that opened nurseries, in a row: each nursery's children see their own
/// scope's deadline, on every thread.
#[hatchery::test(virtual_time)]
async fn scopes_with_nurseries_in_a_row() {
    bounded(async {
        let log = Log::new();
        for _ in 0..3 {
            let log = &log;
            let out = move_on_after(secs(1), async move {
                nursery(|n| async move {
                    for _ in 0..4 {
                        let log = log.clone();
                        n.spawn(async move {
                            sleep(HOUR).await;
                            log.push("child outlived its scope");
                            Ok::<_, std::io::Error>(())
                        });
                    }
                    Ok::<_, std::io::Error>(())
                })
                .await
            })
            .await;
            assert!(out.is_none());
            assert_eq!(move_on_after(secs(1), async { 2 }).await, Some(2));
        }
        assert!(log.is_empty(), "{log:?}");
        assert_eq!(elapsed(), Duration::from_secs(3));
    })
    .await
}

/// A scope's `Debug` before entry reports its settings, without making a handle.
#[test]
fn debug_before_entry() {
    let scope = CancelScope::new().with_shield(true);
    let text = format!("{scope:?}");
    assert!(text.contains("shield: true"), "{text}");
    assert!(text.contains("cancel_called: false"), "{text}");
}

/// A handle made after `with_deadline` sees the deadline, and a deadline it sets before
/// entry is the one the scope enters with; a handle made after `with_timeout` sees no
/// deadline until the scope is entered, then the timeout's.
#[hatchery::test(virtual_time)]
async fn handles_made_after_the_builders() {
    bounded(async {
        let at = now() + secs(30);
        let scope = CancelScope::new().with_shield(true).with_deadline(at);
        let handle = scope.handle();
        assert_eq!(handle.deadline(), Some(at));
        assert!(handle.is_shielded());
        assert_eq!(scope.run(async { 3 }).await, Some(3));

        // The handle moves the deadline before entry: entering keeps the handle's.
        let scope = CancelScope::new().with_deadline(at);
        let handle = scope.handle();
        handle.set_deadline(now() + secs(2));
        assert_eq!(scope.run(sleep(HOUR)).await, None);
        assert_eq!(elapsed(), secs(2));

        let scope = CancelScope::new().with_deadline(at).with_timeout(secs(5));
        let handle = scope.handle();
        assert_eq!(handle.deadline(), None);
        let entered = now();
        assert_eq!(scope.run(sleep(HOUR)).await, None);
        assert_eq!(handle.deadline(), Some(entered + secs(5)));
        assert!(handle.cancelled_caught());
    })
    .await
}
