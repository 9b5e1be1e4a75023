//! A checkpoint notices a passed deadline itself (D12): code that loops without waiting
//! but calls `checkpoint()` (or a sleep due at once) stops at the first checkpoint after
//! a deadline around it has passed, without waiting for the executor to fire the
//! scope's timer. On a virtual clock (moved by `advance`, the stand-in for work that
//! takes time) and on the real one (a thread kept busy), for a scope in the task and one
//! around its nursery, on both kinds of nursery.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hatchery::testing::{advance, elapsed};
use hatchery::{checkpoint, move_on_after, shield, sleep, CancelScope};
use hatchery_tests::{each_kind, ms, Kind, TestError};

/// Work that takes 5 ms of the virtual clock, then a checkpoint, until cancelled: how
/// many rounds began.
async fn advance_until_cancelled(rounds: &AtomicUsize) {
    loop {
        rounds.fetch_add(1, Ordering::Relaxed);
        advance(ms(5));
        checkpoint().await;
    }
}

/// D12: the deadline passes during the fourth piece of work: its checkpoint is the first
/// after the deadline, and ends the body there.
#[hatchery::test(virtual_time)]
async fn d12_a_checkpoint_after_a_passed_deadline_cancels_at_once() {
    let rounds = AtomicUsize::new(0);
    let out = move_on_after(ms(20), advance_until_cancelled(&rounds)).await;
    assert_eq!(out, None);
    assert_eq!(rounds.into_inner(), 4, "rounds of work begun");
    assert_eq!(elapsed(), ms(20));
}

/// D12: the same for a sleep due at once (`sleep(0)`, a checkpoint, D9), and for a
/// scope whose deadline passed while the scope was entered with a handle.
#[hatchery::test(virtual_time)]
async fn d12_a_sleep_due_at_once_after_a_passed_deadline_cancels_at_once() {
    let mut rounds = 0;
    let scope = CancelScope::new().with_timeout(ms(20));
    let handle = scope.handle();
    let out = scope
        .run(async {
            loop {
                rounds += 1;
                advance(ms(5));
                sleep(Duration::ZERO).await;
            }
        })
        .await;
    assert_eq!(out, None::<()>);
    assert_eq!(rounds, 4, "rounds of work begun");
    assert!(handle.cancelled_caught());
}

each_kind!(
    d12_a_checkpoint_in_a_child_sees_the_deadline_around_its_nursery,
    virtual_time
);
/// D12: the deadline is a scope's around the nursery, in the parent's task (or the
/// polled nursery's); the child's checkpoint ends the child, and the scope catches.
async fn d12_a_checkpoint_in_a_child_sees_the_deadline_around_its_nursery<K: Kind>() {
    let rounds = Arc::new(AtomicUsize::new(0));
    let r = rounds.clone();
    let out = move_on_after(
        ms(20),
        K::nursery(|n| async move {
            n.spawn(async move {
                advance_until_cancelled(&r).await;
                Ok(())
            });
            Ok::<_, TestError>(())
        }),
    )
    .await;
    assert_eq!(out, None);
    assert_eq!(rounds.load(Ordering::Relaxed), 4, "rounds of work begun");
    assert_eq!(elapsed(), ms(20));
}

each_kind!(
    d12_a_checkpoint_in_a_started_child_sees_the_deadline_around_its_nursery,
    virtual_time
);
/// D12: the same for a `start`ed child, whose parent link moves when it starts.
async fn d12_a_checkpoint_in_a_started_child_sees_the_deadline_around_its_nursery<K: Kind>() {
    let rounds = Arc::new(AtomicUsize::new(0));
    let r = rounds.clone();
    let out = move_on_after(
        ms(20),
        K::nursery(|n| async move {
            n.start(|status| async move {
                status.started(());
                advance_until_cancelled(&r).await;
                Ok(())
            })
            .await
            .unwrap();
            Ok::<_, TestError>(())
        }),
    )
    .await;
    assert_eq!(out, None);
    assert_eq!(rounds.load(Ordering::Relaxed), 4, "rounds of work begun");
}

/// D12: a shield keeps the deadlines outside it out (C6): the checkpoints inside go on,
/// and the first one after the shield ends the body.
#[hatchery::test(virtual_time)]
async fn d12_a_checkpoint_in_a_shield_ignores_the_deadlines_outside() {
    let mut rounds = 0;
    let mut after = 0;
    let out = move_on_after(ms(20), async {
        shield(async {
            while rounds < 10 {
                rounds += 1;
                advance(ms(5));
                checkpoint().await;
            }
        })
        .await;
        after += 1;
        checkpoint().await;
        after += 1;
    })
    .await;
    assert_eq!(out, None);
    assert_eq!((rounds, after), (10, 1));
}

/// Work that keeps the thread busy for a millisecond, then a checkpoint, until
/// cancelled; fails if a checkpoint begun at or after `bound` (no earlier than the
/// deadline) completes.
async fn work_until_cancelled(bound: Instant) {
    loop {
        std::thread::sleep(ms(1));
        let begun = Instant::now();
        checkpoint().await;
        assert!(
            begun < bound,
            "a checkpoint begun {:?} after the deadline completed",
            begun - bound
        );
    }
}

/// D12, on the real clock: a scope in the task, whose node is not made (the body never
/// asks for its context), and one entered with a handle. The deadline is no later than
/// the body's first reading of the clock plus the timeout.
#[hatchery::test]
async fn d12_a_checkpoint_after_a_passed_deadline_cancels_at_once_on_real_time() {
    for _ in 0..3 {
        let out = move_on_after(ms(20), async {
            work_until_cancelled(Instant::now() + ms(20)).await;
        })
        .await;
        assert_eq!(out, None);
        let out = CancelScope::new()
            .with_timeout(ms(20))
            .run(async { work_until_cancelled(Instant::now() + ms(20)).await })
            .await;
        assert_eq!(out, None);
    }
}

each_kind!(d12_a_checkpoint_in_a_child_sees_the_deadline_around_its_nursery_on_real_time);
/// D12, on the real clock: a child kept busy, under a deadline around its nursery.
async fn d12_a_checkpoint_in_a_child_sees_the_deadline_around_its_nursery_on_real_time<K: Kind>() {
    for _ in 0..3 {
        let out = move_on_after(ms(20), async {
            let bound = Instant::now() + ms(20);
            K::nursery(|n| async move {
                n.spawn(async move {
                    work_until_cancelled(bound).await;
                    Ok(())
                });
                Ok::<_, TestError>(())
            })
            .await
        })
        .await;
        assert_eq!(out, None);
    }
}
