//! A task keeps the deadlines of its scopes and sleeps itself: a loop of timeouts that do
//! not fire, or of sleeps cut short, keeps no memory per round. Counted by this test
//! binary's own global allocator, on every backend.
//!
//! The count is of every thread, so each test takes a lock before it builds its runtimes
//! (one per backend, in turn), and no other test of this binary allocates meanwhile.

use std::future::Future;
use std::time::Duration;

use crate::{ALLOCATOR, TURN};
use futures_lite::future;
use hatchery::{checkpoint, move_on_after, nursery, sleep};
use hatchery_tests::TestError;

const HOUR: Duration = Duration::from_secs(3600);

/// Runs `body` in a task of a nursery on every backend in turn, with no other test of
/// this binary running.
fn in_a_task_on_every_backend<F>(body: fn(&'static str) -> F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let task = |backend| async move {
        nursery(|n| async move {
            n.spawn(async move {
                body(backend).await;
                Ok::<_, TestError>(())
            });
            Ok(())
        })
        .await
        .unwrap();
    };
    hatchery_tokio::run_current_thread(task("tokio_current"));
    hatchery_tokio::run(task("tokio_multi"));
    hatchery_smol::run(task("smol"));
}

/// Rounds of each loop: enough that a byte kept per round would show above what other
/// threads (a runtime's workers, winding down or starting) allocate meanwhile, which the
/// bound of 64 KiB leaves room for.
const ROUNDS: usize = 100_000;

/// A loop of `move_on_after(1 h, checkpoint())`, each suspending once: after a warm-up
/// round, the loop keeps no memory (the task's deadlines hold at most a few entries).
#[test]
fn a_loop_of_timeouts_keeps_no_memory() {
    in_a_task_on_every_backend(|backend| async move {
        // Warm up: the task's deadlines and timer are made.
        assert_eq!(move_on_after(HOUR, checkpoint()).await, Some(()));
        ALLOCATOR.start();
        for _ in 0..ROUNDS {
            assert_eq!(move_on_after(HOUR, checkpoint()).await, Some(()));
        }
        let kept = ALLOCATOR.stop();
        assert!(
            kept <= 64 * 1024,
            "{backend}: {kept} bytes kept by {ROUNDS} timeouts in a loop"
        );
    });
}

/// The same with timeouts nested in a long-lived one, whose deadline is the earliest:
/// the inner ones are later, and their entries go as they finish.
#[test]
fn a_loop_of_timeouts_inside_a_long_one_keeps_no_memory() {
    in_a_task_on_every_backend(|backend| async move {
        let out = move_on_after(HOUR, async {
            assert_eq!(move_on_after(2 * HOUR, checkpoint()).await, Some(()));
            ALLOCATOR.start();
            for _ in 0..ROUNDS {
                assert_eq!(move_on_after(2 * HOUR, checkpoint()).await, Some(()));
            }
            ALLOCATOR.stop()
        })
        .await;
        let kept = out.unwrap();
        assert!(
            kept <= 64 * 1024,
            "{backend}: {kept} bytes kept by {ROUNDS} nested timeouts in a loop"
        );
    });
}

/// A loop of sleeps raced against a checkpoint, each dropped before its end.
#[test]
fn a_loop_of_sleeps_dropped_early_keeps_no_memory() {
    in_a_task_on_every_backend(|backend| async move {
        let race = || future::or(async { sleep(HOUR).await }, checkpoint());
        race().await;
        ALLOCATOR.start();
        for _ in 0..ROUNDS {
            race().await;
        }
        let kept = ALLOCATOR.stop();
        assert!(
            kept <= 64 * 1024,
            "{backend}: {kept} bytes kept by {ROUNDS} sleeps dropped early"
        );
    });
}
