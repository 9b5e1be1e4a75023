//! Deadlines and timeouts of cancel scopes (C4): when they start, past deadlines,
//! "no deadline" values, and moving a deadline while the scope runs.

use std::future::Future;
use std::time::{Duration, Instant};

use hatchery::testing::{advance, elapsed, wait_all_tasks_blocked};
use hatchery::{
    checkpoint, current_effective_deadline, fail_after, fail_at, move_on_after, move_on_at, now,
    nursery, sleep, sleep_until, CancelScope, Deadline,
};
use hatchery_tests::{latest_instant, ms, secs, Counter, Log, TestError, HOUR};

/// A hundred years from `from`: far, but ordinary arithmetic still works around it.
fn century(from: Instant) -> Instant {
    from + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// C4: a relative timeout is computed when the scope is entered (first polled), not
/// when the scope or the future is built.
#[hatchery::test(virtual_time)]
async fn c4_h4_timeout_starts_when_entered() {
    let scope = CancelScope::new().with_timeout(secs(30));
    let handle = scope.handle();
    assert_eq!(handle.deadline(), None, "not known before entry");
    let fut = scope.run({
        let handle = handle.clone();
        async move {
            let d = handle.deadline().expect("known once entered");
            sleep(secs(1)).await;
            d
        }
    });
    sleep(secs(60)).await;
    let entered = now();
    let d = fut.await.expect("finished well before its deadline");
    assert_eq!(d, entered + secs(30), "deadline counted from entry");
    assert_eq!(elapsed(), secs(61));

    // The same through `move_on_after`: built, then left alone well past its timeout.
    let fut = move_on_after(secs(20), async {
        sleep(secs(1)).await;
        "done"
    });
    sleep(secs(25)).await;
    assert_eq!(fut.await, Some("done"));
    assert_eq!(elapsed(), secs(61 + 25 + 1));
}

/// C4: a deadline already in the past lets the body run to its first suspension point,
/// then cancels it there.
#[hatchery::test(virtual_time)]
async fn c4_past_deadline_runs_to_first_suspension() {
    let log = Log::new();
    let scope = CancelScope::new().with_deadline(now());
    let handle = scope.handle();
    let out = scope
        .run({
            let log = log.clone();
            async move {
                log.push("first poll");
                sleep(HOUR).await;
                log.push("unreachable");
            }
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["first poll"]);
    assert!(handle.cancel_called() && handle.cancelled_caught());

    // A deadline well in the past, and a zero timeout, behave the same.
    sleep(secs(2)).await;
    let long_ago = now() - secs(1);
    let out = move_on_at(long_ago, async {
        log.push("first poll 2");
        checkpoint().await;
        log.push("unreachable");
    })
    .await;
    assert_eq!(out, None);
    let out = move_on_after(Duration::ZERO, async {
        log.push("first poll 3");
        checkpoint().await;
        log.push("unreachable");
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["first poll", "first poll 2", "first poll 3"]);
    // Passed deadlines cancel at once: no time went by but the sleep's.
    assert_eq!(elapsed(), secs(2));
}

/// C3, C4: a past deadline and a body that never suspends: the body's value comes back,
/// and the scope did not catch anything.
#[hatchery::test]
async fn c4_past_deadline_body_without_suspension_returns_value() {
    let scope = CancelScope::new().with_deadline(now());
    let handle = scope.handle();
    assert_eq!(scope.run(async { 5 }).await, Some(5));
    assert!(!handle.cancelled_caught());
    assert_eq!(move_on_after(Duration::ZERO, async { 6 }).await, Some(6));
}

/// C4: `Duration::MAX` means "no deadline": no panic, no overflow, nothing cancelled.
#[hatchery::test(virtual_time)]
async fn c4_duration_max_means_no_deadline() {
    let scope = CancelScope::new().with_timeout(Duration::MAX);
    let handle = scope.handle();
    let out = scope
        .run({
            let handle = handle.clone();
            async move {
                assert_eq!(handle.deadline(), None);
                assert_eq!(current_effective_deadline(), Deadline::Never);
                sleep(HOUR).await;
                1
            }
        })
        .await;
    assert_eq!(out, Some(1));
    assert!(!handle.cancel_called());
    assert_eq!(
        move_on_after(Duration::MAX, async {
            sleep(HOUR).await;
            2
        })
        .await,
        Some(2)
    );
    assert_eq!(
        fail_after(Duration::MAX, async {
            sleep(HOUR).await;
            3
        })
        .await,
        Ok(3)
    );
    // A sleep of Duration::MAX sleeps forever, and can still be cancelled.
    assert_eq!(move_on_after(secs(5), sleep(Duration::MAX)).await, None);
    assert_eq!(elapsed(), 3 * HOUR + secs(5));
}

/// C4, D2: a timeout without a handle becomes the deadline "entry's reading plus the
/// timeout" to the nanosecond, near or far (the entry counts it as a word of nanoseconds
/// when it can, and as an instant beyond the words' range of about 292 years), and fires
/// exactly then.
#[hatchery::test(virtual_time)]
async fn c4_d2_a_timeout_is_the_entrys_reading_plus_the_timeout_to_the_nanosecond() {
    const YEAR: u64 = 365 * 24 * 3600;
    let timeouts = [
        Duration::from_nanos(1),
        Duration::from_nanos(999_999_999),
        Duration::new(1, 500_000_007),
        HOUR,
        Duration::from_secs(100 * YEAR),
        Duration::new(300 * YEAR, 3),
    ];
    for timeout in timeouts {
        let out = move_on_after(timeout, async move {
            // Nothing has slept since the entry: the virtual clock still reads it.
            let entered = now();
            assert_eq!(
                current_effective_deadline(),
                Deadline::At(entered + timeout),
                "{timeout:?}"
            );
            checkpoint().await;
            assert_eq!(
                current_effective_deadline(),
                Deadline::At(entered + timeout)
            );
            entered
        })
        .await;
        assert!(
            out.is_some(),
            "{timeout:?}: not cancelled before its deadline"
        );
    }
    // Each of the near ones fires at its deadline exactly.
    for timeout in &timeouts[..4] {
        let start = elapsed();
        let run = move_on_after(*timeout, sleep(HOUR));
        assert_eq!(run.await, None, "{timeout:?}");
        assert_eq!(elapsed() - start, *timeout, "{timeout:?}");
    }
}

/// C4: huge but representable timeouts (a century) are real deadlines, armed without
/// panicking, and do not fire.
#[hatchery::test(virtual_time)]
async fn c4_century_timeout_is_a_far_deadline() {
    let century_len = Duration::from_secs(100 * 365 * 24 * 3600);
    let scope = CancelScope::new().with_timeout(century_len);
    let handle = scope.handle();
    let entered = now();
    let out = scope
        .run(async {
            sleep(HOUR).await;
            1
        })
        .await;
    assert_eq!(out, Some(1));
    let d = handle.deadline().expect("a century is representable");
    assert_eq!(d, entered + century_len);
    assert_eq!(move_on_after(secs(5), sleep(century_len)).await, None);
    assert_eq!(elapsed(), HOUR + secs(5));
}

/// C4: far-future instants (a century; the latest representable instant) mean
/// "effectively no deadline": scopes, sleeps and effective deadlines never panic.
#[hatchery::test(virtual_time)]
async fn c4_far_future_instants_never_panic() {
    for far in [century(now()), latest_instant(now())] {
        let scope = CancelScope::new().with_deadline(far);
        let handle = scope.handle();
        let out = scope
            .run(async move {
                assert_eq!(current_effective_deadline(), Deadline::At(far));
                assert!(current_effective_deadline().remaining(now()).unwrap() > HOUR);
                sleep(HOUR).await;
                "finished"
            })
            .await;
        assert_eq!(out, Some("finished"));
        assert_eq!(handle.deadline(), Some(far));
        assert!(!handle.cancel_called());
        assert_eq!(
            move_on_at(far, async {
                sleep(HOUR).await;
                1
            })
            .await,
            Some(1)
        );
        assert_eq!(
            fail_at(far, async {
                sleep(HOUR).await;
                2
            })
            .await,
            Ok(2)
        );
        // Sleeping until a far instant: cancellable, no panic.
        assert_eq!(move_on_after(secs(5), sleep_until(far)).await, None);
    }
    assert_eq!(elapsed(), 2 * (3 * HOUR + secs(5)));
}

/// C4: a sleep long enough to land near the end of `Instant`'s range: no panic.
#[hatchery::test(virtual_time)]
async fn c4_sleep_to_the_edge_of_instant_range() {
    let start = now();
    let edge = latest_instant(start);
    let until_edge = edge - start;
    assert_eq!(move_on_after(secs(5), sleep(until_edge)).await, None);
    assert_eq!(
        move_on_after(secs(5), sleep(until_edge + secs(1))).await,
        None
    );
    assert_eq!(elapsed(), secs(10));
}

/// C4: `set_deadline` to a passed instant while the scope runs cancels it; the body
/// stops at its next suspension point.
#[hatchery::test(virtual_time)]
async fn c4_set_deadline_earlier_cancels() {
    let log = Log::new();
    let scope = CancelScope::new().with_timeout(HOUR);
    let handle = scope.handle();
    let out = scope
        .run({
            let (log, handle) = (log.clone(), handle.clone());
            async move {
                sleep(secs(1)).await;
                handle.set_deadline(now());
                log.push("same poll");
                sleep(HOUR).await;
                log.push("unreachable");
            }
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["same poll"]);
    assert!(handle.cancel_called() && handle.cancelled_caught());
    assert_eq!(elapsed(), secs(1));
}

/// D5: `set_deadline` to an instant that has passed cancels a running scope at once, as
/// trio's deadline setter does: `cancel_called` is true when it returns, and stays true
/// when the deadline is moved back before the scope is polled again; the body stops at
/// its next suspension point.
#[hatchery::test(virtual_time)]
async fn d5_set_deadline_to_a_passed_instant_cancels_at_once_and_sticks() {
    let log = Log::new();
    let scope = CancelScope::new().with_timeout(HOUR);
    let handle = scope.handle();
    let out = scope
        .run({
            let (log, handle) = (log.clone(), handle.clone());
            async move {
                sleep(secs(1)).await;
                handle.set_deadline(now() - secs(1));
                assert!(
                    handle.cancel_called(),
                    "cancelled when set_deadline returns"
                );
                handle.set_deadline(now() + HOUR);
                handle.set_deadline(None);
                assert!(handle.cancel_called(), "moved back: still cancelled");
                log.push("same poll");
                sleep(HOUR).await;
                log.push("unreachable");
            }
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["same poll"]);
    assert!(handle.cancel_called() && handle.cancelled_caught());
    assert_eq!(handle.deadline(), None);
    assert_eq!(elapsed(), secs(1));
}

/// D5: a passed deadline set from another task, then moved back before the scope runs
/// again, still cancels the scope (the scope's own poll never sees the passed deadline).
#[hatchery::test(virtual_time)]
async fn d5_set_deadline_to_a_passed_instant_from_another_task_sticks() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let remote = handle.clone();
    let out = nursery(|n| async move {
        n.spawn(async move {
            sleep(secs(2)).await;
            remote.set_deadline(now());
            let called = remote.cancel_called();
            remote.set_deadline(now() + HOUR);
            assert!(called && remote.cancel_called());
            Ok::<_, TestError>(())
        });
        Ok(scope.run(sleep(HOUR)).await)
    })
    .await;
    assert_eq!(out, Ok(None));
    assert!(handle.cancelled_caught());
    assert_eq!(elapsed(), secs(2));
}

/// D5: from a plain thread (no hatchery context there) the passed deadline is read on
/// the clock of the runtime the scope runs on: the test run's virtual clock, which has
/// not moved while the thread works.
#[hatchery::test(virtual_time)]
async fn d5_set_deadline_to_a_passed_instant_from_a_thread_on_virtual_time() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let remote = handle.clone();
    let start = now();
    let out = nursery(|n| async move {
        n.spawn(async move {
            sleep(secs(3)).await;
            // Passed on the virtual clock (3 s ago), but far ahead of the real one.
            let called = hatchery::run_blocking(move || {
                remote.set_deadline(start + secs(1));
                let called = remote.cancel_called();
                remote.set_deadline(None);
                called
            })
            .await;
            assert!(called, "cancelled when set_deadline returned");
            Ok::<_, TestError>(())
        });
        Ok(scope.run(sleep(HOUR)).await)
    })
    .await;
    assert_eq!(out, Ok(None));
    assert!(handle.cancel_called() && handle.cancelled_caught());
    assert_eq!(elapsed(), secs(3));
}

/// D5: the same from a plain OS thread on real time; the scope is cancelled although
/// the deadline is removed right after. (Bounded: a lost cancellation fails the test
/// after 10 s instead of waiting an hour.)
#[hatchery::test]
async fn d5_set_deadline_to_a_passed_instant_from_os_thread_sticks() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let remote = handle.clone();
    let past = now();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(ms(5));
        remote.set_deadline(past);
        let called = remote.cancel_called();
        remote.set_deadline(None);
        called
    });
    let out = move_on_after(secs(10), scope.run(sleep(HOUR))).await;
    assert!(
        thread.join().unwrap(),
        "cancelled when set_deadline returned"
    );
    assert_eq!(out, Some(None), "the scope caught it, not the watchdog");
    assert!(handle.cancelled_caught());
}

/// D5: before entry, a passed deadline does not cancel yet (the scope has no clock
/// yet): it cancels on entry. After the scope has finished, it changes only what
/// `deadline` reports.
#[hatchery::test(virtual_time)]
async fn d5_set_deadline_to_a_passed_instant_before_entry_and_after_finish() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    handle.set_deadline(now());
    assert!(!handle.cancel_called(), "not entered yet");
    assert_eq!(scope.run(checkpoint()).await, None);
    assert!(handle.cancel_called() && handle.cancelled_caught());

    let scope = CancelScope::new();
    let handle = scope.handle();
    assert_eq!(scope.run(async { 1 }).await, Some(1));
    handle.set_deadline(now() - secs(1));
    assert!(!handle.cancel_called(), "finished: nothing to cancel");
    assert_eq!(handle.deadline(), Some(now() - secs(1)));
}

/// D5: a scope follows every move of its deadline from another task, not only the first:
/// each wakes it, and it arms its timer for the new deadline (a scope whose waker was
/// registered only once slept through the second move, to the first deadline).
#[hatchery::test(virtual_time)]
async fn d5_every_deadline_move_from_another_task_is_followed() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let remote = handle.clone();
    let out = nursery(|n| async move {
        n.spawn(async move {
            sleep(secs(1)).await;
            remote.set_deadline(now() + secs(60));
            sleep(secs(1)).await;
            remote.set_deadline(now() + secs(30));
            sleep(secs(1)).await;
            remote.set_deadline(now() + secs(5));
            Ok::<_, TestError>(())
        });
        Ok(scope.run(sleep(HOUR)).await)
    })
    .await;
    assert_eq!(out, Ok(None));
    assert!(handle.cancelled_caught());
    assert_eq!(elapsed(), secs(8), "the last deadline, set at 3 s, 5 s on");
}

/// C4: `set_deadline` from another task to a sooner (future) instant: the scope is
/// cancelled once that instant has passed, not before.
#[hatchery::test(virtual_time)]
async fn c4_set_deadline_earlier_from_another_task() {
    let scope = CancelScope::new().with_timeout(HOUR);
    let handle = scope.handle();
    let remote = handle.clone();
    let out = nursery(|n| async move {
        let set_to = n.spawn(async move {
            sleep(secs(2)).await;
            let d = now() + secs(20);
            remote.set_deadline(d);
            Ok::<_, TestError>(d)
        });
        let out = scope.run(sleep(HOUR)).await;
        let returned = now();
        let d = set_to.join().await.unwrap();
        assert_eq!(returned, d, "cancelled exactly at the new deadline");
        Ok(out)
    })
    .await;
    assert_eq!(out, Ok(None));
    assert!(handle.cancelled_caught());
    assert_eq!(elapsed(), secs(22));
}

/// C4: `set_deadline` from a plain OS thread to an instant already passed. (Real time:
/// virtual time cannot see the thread, and would let the sleep end first.)
#[hatchery::test]
async fn c4_set_deadline_from_os_thread() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let remote = handle.clone();
    let past = now();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(ms(5));
        remote.set_deadline(past);
    });
    let out = scope.run(sleep(HOUR)).await;
    thread.join().unwrap();
    assert_eq!(out, None);
    assert!(handle.cancelled_caught());
}

/// C4: a later deadline postpones the cancellation (set before the first suspension).
#[hatchery::test(virtual_time)]
async fn c4_set_deadline_later_postpones() {
    let scope = CancelScope::new().with_timeout(secs(10));
    let handle = scope.handle();
    let out = scope
        .run({
            let handle = handle.clone();
            async move {
                let original = handle.deadline().unwrap();
                handle.set_deadline(now() + HOUR);
                sleep_until(original + secs(20)).await;
                "outlived the original deadline"
            }
        })
        .await;
    assert_eq!(out, Some("outlived the original deadline"));
    assert!(!handle.cancel_called());
    assert_eq!(elapsed(), secs(30));
}

/// C4: a deadline moved between the farthest representable instant and near ones while
/// the scope runs is reported exactly each time, and the near one is obeyed.
#[hatchery::test(virtual_time)]
async fn c4_deadline_moves_between_far_and_near() {
    let start = now();
    let (far, near) = (latest_instant(start), start + secs(30));
    let scope = CancelScope::new().with_deadline(far);
    let handle = scope.handle();
    let out = scope
        .run({
            let handle = handle.clone();
            async move {
                for deadline in [near, far, start + HOUR, far, near] {
                    handle.set_deadline(deadline);
                    assert_eq!(handle.deadline(), Some(deadline));
                    assert_eq!(current_effective_deadline(), Deadline::At(deadline));
                    sleep(secs(1)).await;
                }
                sleep(HOUR).await;
            }
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(handle.deadline(), Some(near));
    assert_eq!(
        elapsed(),
        secs(30),
        "the last deadline, the near one, fired"
    );
}

/// C4: a later deadline set while the scope's timer is already armed (after the body
/// suspended) re-arms it.
#[hatchery::test(virtual_time)]
async fn c4_set_deadline_later_after_suspension() {
    let scope = CancelScope::new().with_timeout(secs(300));
    let handle = scope.handle();
    let out = scope
        .run({
            let handle = handle.clone();
            async move {
                let original = handle.deadline().unwrap();
                sleep(secs(1)).await;
                let later = now() + HOUR;
                handle.set_deadline(later);
                assert_eq!(current_effective_deadline(), Deadline::At(later));
                sleep_until(original + secs(30)).await;
                "postponed"
            }
        })
        .await;
    assert_eq!(out, Some("postponed"));
    assert!(!handle.cancel_called());
    assert_eq!(elapsed(), secs(330));
}

/// C4: `set_deadline(None)` removes the deadline.
#[hatchery::test(virtual_time)]
async fn c4_set_deadline_none_removes_it() {
    let scope = CancelScope::new().with_timeout(secs(10));
    let handle = scope.handle();
    let out = scope
        .run({
            let handle = handle.clone();
            async move {
                let original = handle.deadline().unwrap();
                handle.set_deadline(None);
                assert_eq!(handle.deadline(), None);
                assert_eq!(current_effective_deadline(), Deadline::Never);
                sleep_until(original + secs(20)).await;
                "no deadline"
            }
        })
        .await;
    assert_eq!(out, Some("no deadline"));
    assert!(!handle.cancel_called());
    assert_eq!(elapsed(), secs(30));
}

/// C4: moving the deadline of a scope that is already cancelled does not undo the
/// cancellation.
#[hatchery::test(virtual_time)]
async fn c4_set_deadline_after_cancel_has_no_effect() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    handle.cancel();
    handle.set_deadline(None);
    handle.set_deadline(now() + HOUR);
    assert_eq!(scope.run(sleep(HOUR)).await, None);
    assert!(handle.cancel_called() && handle.cancelled_caught());
    assert_eq!(elapsed(), Duration::ZERO);
}

/// C4: a deadline set on a scope before it is entered replaces a relative timeout.
#[hatchery::test(virtual_time)]
async fn c4_set_deadline_before_entry_overrides_timeout() {
    let scope = CancelScope::new().with_timeout(secs(1));
    let handle = scope.handle();
    let d = now() + HOUR;
    handle.set_deadline(d);
    let out = scope
        .run(async {
            sleep(secs(10)).await;
            current_effective_deadline()
        })
        .await;
    assert_eq!(out, Some(Deadline::At(d)));
    assert_eq!(elapsed(), secs(10));
}

/// C4: a scope's deadline fires while many tasks poll in parallel; every timeout in a
/// batch of sibling tasks fires, each in its own task. In real time, with the
/// runtime's own timers.
#[hatchery::test]
async fn c4_many_timeouts_in_parallel_tasks() {
    many_timeouts_in_parallel_tasks().await;
}

/// The same under virtual time, where many deadlines are due at the same instants: every
/// task a jump of the clock wakes runs before the next jump (to the hour-long sleeps).
#[hatchery::test(virtual_time)]
async fn c4_many_timeouts_in_parallel_tasks_virtual() {
    many_timeouts_in_parallel_tasks().await;
    assert_eq!(elapsed(), ms(6));
}

async fn many_timeouts_in_parallel_tasks() {
    let fired = Counter::new();
    let r = nursery(|n| {
        let fired = fired.clone();
        async move {
            for i in 0..100u64 {
                let fired = fired.clone();
                n.spawn(async move {
                    if move_on_after(ms(i % 7), sleep(HOUR)).await.is_none() {
                        fired.incr();
                    }
                    Ok::<_, TestError>(())
                });
            }
            Ok(())
        }
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(fired.get(), 100);
}

/// C4: the timer of a scope does not fire once the scope has finished.
#[hatchery::test(virtual_time)]
async fn c4_finished_scope_timer_is_inert() {
    let scope = CancelScope::new().with_timeout(secs(5));
    let handle = scope.handle();
    assert_eq!(scope.run(async { 1 }).await, Some(1));
    sleep(secs(15)).await;
    wait_all_tasks_blocked().await;
    assert!(!handle.cancelled_caught());
    assert_eq!(current_effective_deadline(), Deadline::Never);
    assert_eq!(elapsed(), secs(15));
}

/// Records the virtual time of every poll of the wrapped future.
struct RecordPolls<'a, F> {
    at: &'a std::sync::Mutex<Vec<Duration>>,
    fut: std::pin::Pin<Box<F>>,
}

impl<F: std::future::Future> std::future::Future for RecordPolls<'_, F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.at.lock().unwrap().push(elapsed());
        self.fut.as_mut().poll(cx)
    }
}

/// C4: scopes in a row share one timer (each re-arms the one its predecessor let go of
/// in the same poll), and each still fires at its own deadline.
#[hatchery::test(virtual_time)]
async fn c4_timeouts_in_a_row_each_fire_at_their_own_deadline() {
    for round in 1..=3u32 {
        // Suspends once, so its timer is armed; it finishes well before its deadline.
        assert_eq!(move_on_after(HOUR, checkpoint()).await, Some(()));
        let start = now();
        let out = move_on_after(secs(round.into()), sleep(HOUR)).await;
        assert_eq!(out, None);
        assert_eq!(now() - start, secs(round.into()), "round {round}");
    }
    assert_eq!(elapsed(), secs(1 + 2 + 3));
}

/// C4: a scope's timer does not outlive the scope across a suspension: a task that
/// leaves a scope with a near deadline and then waits for something else is not woken
/// at that deadline (it is polled only when it starts waiting and when the event comes,
/// give or take spurious wake-ups, which do not move the virtual clock).
#[hatchery::test(virtual_time)]
async fn c4_a_finished_scope_leaves_no_timer_behind() {
    let event = std::sync::Arc::new(hatchery::sync::Event::new());
    let polls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let r = nursery(|n| {
        let (event, polls) = (event.clone(), polls.clone());
        async move {
            let e = event.clone();
            n.spawn(async move {
                sleep(secs(10)).await;
                e.set();
                Ok::<_, TestError>(())
            });
            // Its timer is armed for 1 s from now when the body suspends.
            assert_eq!(move_on_after(secs(1), checkpoint()).await, Some(()));
            RecordPolls {
                at: &polls,
                fut: Box::pin(event.wait()),
            }
            .await;
            Ok(())
        }
    })
    .await;
    assert_eq!(r, Ok(()));
    let at = polls.lock().unwrap().clone();
    assert!(at.len() >= 2, "{at:?}");
    assert!(
        at.iter().all(|t| *t == Duration::ZERO || *t == secs(10)),
        "polled only at 0 s and 10 s: {at:?}"
    );
    assert_eq!(elapsed(), secs(10));
}

/// Sleeps and timeouts in a row, which pass one timer along within a poll, each wait
/// exactly their own time.
#[hatchery::test(virtual_time)]
async fn c4_sleeps_and_timeouts_in_a_row_wait_their_own_time() {
    for d in [secs(3), secs(1), secs(2)] {
        let start = now();
        sleep(d).await;
        assert_eq!(now() - start, d);
        let start = now();
        assert_eq!(move_on_after(d + secs(1), sleep(d)).await, Some(()));
        assert_eq!(now() - start, d);
        let start = now();
        assert_eq!(move_on_after(d, sleep(HOUR)).await, None);
        assert_eq!(now() - start, d);
    }
    assert_eq!(elapsed(), 3 * secs(3 + 1 + 2));
}

/// C4: a sleep until the very last instant `Instant` can represent neither panics nor
/// ends early (tokio's timer rounds every deadline up, which would overflow there: the
/// timer is armed a year at a time), and a scope with that deadline is as fine.
#[hatchery::test]
async fn c4_sleep_until_the_latest_instant() {
    let far = latest_instant(now());
    assert!(far.checked_add(Duration::from_nanos(1)).is_none());
    assert_eq!(move_on_after(ms(20), sleep_until(far)).await, None);
    assert_eq!(move_on_at(far, sleep(ms(5))).await, Some(()));
}

/// C4: a sleep until an instant too far for a deadline word (about 292 years), polled
/// again and again while it waits (by hand here, between three short sleeps), keeps
/// waiting: its registration, a timer of its own, keeps that deadline for it. Its
/// scope's deadline still ends it.
#[hatchery::test(virtual_time)]
async fn c4_a_far_sleep_polled_again_keeps_waiting() {
    let far = latest_instant(now());
    let mut nap = std::pin::pin!(sleep_until(far));
    for _ in 0..3 {
        let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(nap.as_mut().poll(cx)));
        assert!(polled.await.is_pending());
        sleep(secs(1)).await;
    }
    assert_eq!(move_on_after(secs(5), nap).await, None);
    assert_eq!(elapsed(), secs(8));
}

/// C4: a sleep until an instant too far for a deadline word (here 300 years away, which
/// the virtual clock reaches) ends then, and polled again after it ended is still ended,
/// as a sleep with a word is: its registration, spent, is not asked for the deadline.
#[hatchery::test(virtual_time)]
async fn c4_a_far_sleep_that_ended_stays_ended() {
    let years = Duration::from_secs(300 * 365 * 24 * 3600);
    let mut nap = std::pin::pin!(sleep_until(now() + years));
    (&mut nap).await;
    assert_eq!(elapsed(), years);
    let again = std::future::poll_fn(|cx| std::task::Poll::Ready(nap.as_mut().poll(cx)));
    assert!(again.await.is_ready());
}

/// Tokio, plus a hook that another thread runs (once) inside the next `now()`: that
/// thread acts at exactly the moment the caller reads the clock.
struct Hooked {
    inner: hatchery_tokio::TokioRuntime,
    hook: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl hatchery::rt::Runtime for Hooked {
    fn spawn(&self, task: hatchery::rt::Task) {
        self.inner.spawn(task);
    }
    fn now(&self) -> Instant {
        let hook = self.hook.lock().unwrap().take();
        if let Some(hook) = hook {
            std::thread::spawn(hook).join().unwrap();
        }
        self.inner.now()
    }
    fn sleep_until(&self, deadline: Instant) -> std::pin::Pin<Box<dyn hatchery::rt::Sleep>> {
        self.inner.sleep_until(deadline)
    }
    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        self.inner.spawn_blocking(work);
    }
}

/// C4: a deadline set through a handle from another thread while the scope is being
/// entered (between the entry's look for one and its storing the timeout's) wins over
/// the timeout. It was lost: the scope ran for its whole timeout.
#[test]
fn c4_set_deadline_racing_entry_wins_over_the_timeout() {
    hatchery_tokio::run(async {
        let rt = std::sync::Arc::new(Hooked {
            inner: hatchery_tokio::TokioRuntime::current(),
            hook: std::sync::Mutex::new(None),
        });
        hatchery::rt::enter(rt.clone(), async move {
            let scope = CancelScope::new().with_timeout(HOUR);
            let handle = scope.handle();
            let target = now();
            let setter = handle.clone();
            // A watchdog: fails the test instead of waiting an hour.
            let out = move_on_after(secs(10), async {
                // The next `now()` is the one the scope's entry reads.
                *rt.hook.lock().unwrap() = Some(Box::new(move || setter.set_deadline(target)));
                scope.run(sleep(HOUR)).await
            })
            .await;
            assert_eq!(handle.deadline(), Some(target), "the deadline set was lost");
            assert_eq!(out, Some(None), "cancelled at its first suspension");
        })
        .await;
    });
}

/// C4: a scope whose deadline has passed when it is entered is cancelled on entry, as
/// trio's is: its body sees the cancellation from its first line (and stops at its first
/// suspension point), and `cancel_called` is true even if the body never suspends.
#[hatchery::test(virtual_time)]
async fn c4_a_passed_deadline_cancels_on_entry() {
    let past = now();
    sleep(secs(1)).await;
    let scope = CancelScope::new().with_deadline(past);
    let handle = scope.handle();
    let seen = scope.run(async { current_effective_deadline() }).await;
    assert_eq!(
        seen,
        Some(Deadline::Cancelled),
        "the body ran to its end, not suspending"
    );
    assert!(handle.cancel_called());
    assert!(!handle.cancelled_caught());
    let zero = move_on_after(Duration::ZERO, async { current_effective_deadline() }).await;
    assert_eq!(zero, Some(Deadline::Cancelled));
    assert_eq!(move_on_after(Duration::ZERO, checkpoint()).await, None);
}

/// C1/C4: a deadline that passes while the body's first poll runs (blocking work) stops
/// the body at its next suspension point, even one that is ready at once.
#[hatchery::test]
async fn d6_a_deadline_passed_during_the_first_poll_stops_the_body_at_its_checkpoint() {
    for round in 0..10 {
        let out = move_on_at(now() + ms(5), async {
            std::thread::sleep(ms(20)); // blocking work past the deadline
            checkpoint().await;
            "finished"
        })
        .await;
        assert_eq!(out, None, "move_on_at, round {round}");

        let out = fail_at(now() + ms(5), async {
            std::thread::sleep(ms(20));
            checkpoint().await;
            "finished"
        })
        .await;
        assert!(out.is_err(), "fail_at, round {round}: {out:?}");
    }
}

/// Runs `body` while a sibling task, once every task is blocked, moves the manual clock
/// by `by` in one step (as a thread kept busy that long would find it).
async fn with_jump<T>(by: Duration, body: impl Future<Output = T>) -> T {
    nursery(|n| async move {
        n.spawn(async move {
            wait_all_tasks_blocked().await;
            advance(by);
            Ok::<_, TestError>(())
        });
        Ok(body.await)
    })
    .await
    .unwrap()
}

/// The clock moves past a scope's deadline (10 s) and its body's sleep (20 s) at once
/// (`advance`; a thread kept busy does the same on real time): the deadline came first,
/// so the body stops there, whichever timer is polled first (from an audit: the sleep
/// completed, the body ran on, and `fail_after` returned `Ok`).
#[hatchery::test(manual_time)]
async fn a_deadline_passed_before_a_due_sleep_stops_the_body() {
    let log = Log::new();
    let out = with_jump(
        secs(30),
        fail_after(secs(10), async {
            sleep(secs(20)).await;
            log.push("after the 20 s sleep");
            checkpoint().await;
        }),
    )
    .await;
    assert_eq!(
        log.events(),
        Vec::<&str>::new(),
        "the body ran past its deadline"
    );
    assert!(
        out.is_err(),
        "the 10 s deadline came before the 20 s sleep: {out:?}"
    );
}

/// The same for a kept scope future awaited after both instants have passed.
#[hatchery::test(virtual_time)]
async fn a_kept_scope_whose_deadline_passed_before_its_sleep_times_out() {
    let mut op = std::pin::pin!(fail_after(secs(10), async {
        sleep(secs(30)).await;
        "done"
    }));
    assert!(move_on_after(secs(1), &mut op).await.is_none());
    sleep(secs(60)).await; // its deadline (at 11 s) and its sleep (at 31 s) both pass
    let r = op.await;
    assert!(
        r.is_err(),
        "its 10 s deadline passed before its 30 s sleep: {r:?}"
    );
}

/// The same across tasks: a child's sleep is due after the deadline of a scope around
/// its nursery, and the clock moves past both at once.
#[hatchery::test(manual_time)]
async fn a_deadline_around_a_nursery_passed_before_a_childs_sleep_stops_it() {
    for _ in 0..20 {
        let log = Log::new();
        let l = log.clone();
        let out = with_jump(
            secs(30),
            move_on_after(
                secs(10),
                nursery(|m| async move {
                    m.spawn(async move {
                        sleep(secs(20)).await;
                        l.push("child after sleep");
                        Ok::<_, TestError>(())
                    });
                    Ok::<_, TestError>(())
                }),
            ),
        )
        .await;
        assert!(out.is_none());
        assert_eq!(
            log.events(),
            Vec::<&str>::new(),
            "the child ran past the deadline"
        );
    }
}

/// At the same instant, the deadline wins, as in trio (where a scope's deadline is also
/// set before the sleep in it starts, so on a real clock it comes first anyway): the
/// same on a virtual clock, where both fall on the same instant.
#[hatchery::test(manual_time)]
async fn d7_a_sleep_due_at_the_deadline_is_cut_by_it() {
    let out = with_jump(
        secs(30),
        fail_after(secs(10), async {
            sleep(secs(10)).await;
            "slept"
        }),
    )
    .await;
    assert!(out.is_err(), "{out:?}");
}

/// The same when a virtual clock jumps to the shared instant by itself.
#[hatchery::test(virtual_time)]
async fn d7_a_sleep_due_at_the_deadline_is_cut_by_it_on_a_virtual_clock() {
    assert_eq!(move_on_after(secs(10), sleep(secs(10))).await, None);
    assert_eq!(elapsed(), secs(10));
}

/// A sleep due before the deadline completes even when the clock moves past both at
/// once; the deadline stops the body at its next wait.
#[hatchery::test(manual_time)]
async fn a_sleep_due_before_a_passed_deadline_completes() {
    let log = Log::new();
    let out = with_jump(
        secs(30),
        fail_after(secs(10), async {
            sleep(secs(5)).await;
            log.push("after the 5 s sleep");
            sleep(secs(1)).await;
            log.push("after the 1 s sleep");
        }),
    )
    .await;
    assert_eq!(log.events(), ["after the 5 s sleep"]);
    assert!(out.is_err());
}

/// A sleep counts from its first poll, also when that poll is in a cancelled scope and the
/// sleep is kept and awaited later (from an audit: it counted from its next poll).
#[hatchery::test(virtual_time)]
async fn a_kept_sleep_first_polled_in_a_cancelled_scope_counts_from_that_poll() {
    let scope = CancelScope::new();
    scope.handle().cancel();
    let start = now();
    let mut nap = std::pin::pin!(sleep(secs(10)));
    assert_eq!(scope.run(&mut nap).await, None);
    sleep(secs(4)).await;
    nap.await;
    assert_eq!(now() - start, secs(10));
}

/// A sleep kept past a scope whose deadline fell with its own (the deadline won): awaited
/// later, it completes at once, its time having come (it waited on its spent timer for
/// good on an executor whose timers do not complete twice).
#[hatchery::test(virtual_time)]
async fn a_kept_sleep_cut_by_a_deadline_at_its_own_instant_completes_later() {
    let mut nap = std::pin::pin!(sleep(secs(10)));
    assert_eq!(move_on_after(secs(10), &mut nap).await, None);
    nap.await;
    assert_eq!(elapsed(), secs(10));
}

/// The same on the executor's real timers.
#[hatchery::test]
async fn a_kept_sleep_cut_by_a_deadline_at_its_own_instant_completes_later_on_real_time() {
    let start = now();
    let at = start + hatchery_tests::ms(20);
    let mut nap = std::pin::pin!(sleep_until(at));
    assert_eq!(move_on_at(at, &mut nap).await, None);
    fail_after(secs(5), nap)
        .await
        .expect("the kept sleep completes");
}
