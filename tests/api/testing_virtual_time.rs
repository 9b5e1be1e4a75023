//! Virtual time (`#[hatchery::test(virtual_time)]`): the clock jumps to the next deadline
//! whenever every task is blocked, on every backend, multi-threaded ones included.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hatchery::testing::{advance, elapsed, is_virtual_time, wait_all_tasks_blocked};
use hatchery::{fail_after, move_on_after, nursery, run_blocking, sleep, CancelScope};
use hatchery_tests::{latest_instant, secs, Counter, Log, TestError, HOUR};

/// An hour-long timeout around a future that never finishes: no real waiting, exactly
/// one virtual hour.
#[hatchery::test(virtual_time)]
async fn an_hour_in_no_time() {
    let wall = Instant::now();
    let start = hatchery::now();
    let out = move_on_after(HOUR, std::future::pending::<()>()).await;
    assert_eq!(out, None);
    assert_eq!(hatchery::now() - start, HOUR);
    assert_eq!(elapsed(), HOUR);
    assert!(is_virtual_time());
    // Generous: the point is "not an hour"; typically a few milliseconds.
    assert!(
        wall.elapsed() < Duration::from_secs(5),
        "took {:?}",
        wall.elapsed()
    );
}

/// Children on other threads sleep in parallel: time advances to each deadline in turn,
/// and the nursery ends at the longest one.
#[hatchery::test(virtual_time)]
async fn parallel_sleeps_end_at_the_longest() {
    let log = Log::new();
    let l = log.clone();
    nursery(|n| async move {
        for (secs, name) in [(30, "30s"), (10, "10s"), (20, "20s")] {
            let l = l.clone();
            n.spawn(async move {
                sleep(Duration::from_secs(secs)).await;
                l.push(name);
                Ok::<_, TestError>(())
            });
        }
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(log.events(), ["10s", "20s", "30s"]);
    assert_eq!(elapsed(), Duration::from_secs(30));
}

/// Deadlines, `fail_after` and moved deadlines all run on the virtual clock.
#[hatchery::test(virtual_time)]
async fn deadlines_are_virtual() {
    let r = fail_after(Duration::from_secs(90), sleep(HOUR)).await;
    assert!(r.is_err());
    assert_eq!(elapsed(), Duration::from_secs(90));

    let scope = CancelScope::new().with_timeout(Duration::from_secs(10));
    let handle = scope.handle();
    let out = scope
        .run(async {
            sleep(Duration::from_secs(5)).await;
            handle.set_deadline(hatchery::now() + Duration::from_secs(100)); // postpone
            sleep(Duration::from_secs(50)).await;
            "done"
        })
        .await;
    assert_eq!(out, Some("done"));
    assert_eq!(elapsed(), Duration::from_secs(90 + 55));
}

/// Blocking work counts as busy: time does not jump while it runs.
#[hatchery::test(virtual_time)]
async fn blocking_work_keeps_time_still() {
    let out = move_on_after(
        Duration::from_secs(10),
        run_blocking(|| {
            std::thread::sleep(Duration::from_millis(30));
            7
        }),
    )
    .await;
    assert_eq!(out, Some(7));
    assert!(elapsed() < Duration::from_secs(10));
}

/// `wait_all_tasks_blocked` returns once every other task waits, before time moves.
#[hatchery::test(virtual_time)]
async fn wait_all_tasks_blocked_sees_children_parked() {
    let parked = Arc::new(AtomicUsize::new(0));
    let p = parked.clone();
    nursery(|n| async move {
        for _ in 0..10 {
            let p = p.clone();
            n.spawn(async move {
                hatchery::checkpoint().await;
                p.fetch_add(1, Ordering::SeqCst);
                sleep(HOUR).await;
                Ok::<_, TestError>(())
            });
        }
        wait_all_tasks_blocked().await;
        assert_eq!(p.load(Ordering::SeqCst), 10);
        assert_eq!(elapsed(), Duration::ZERO); // time has not moved
        n.cancel();
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(parked.load(Ordering::SeqCst), 10);
}

/// Manual time moves only by `advance`.
#[hatchery::test(manual_time)]
async fn manual_time_moves_by_hand() {
    nursery(|n| async move {
        let h = n.spawn(async {
            sleep(Duration::from_secs(5)).await;
            Ok::<_, TestError>(hatchery::now())
        });
        wait_all_tasks_blocked().await;
        assert!(!h.is_finished());
        advance(Duration::from_secs(4));
        wait_all_tasks_blocked().await;
        assert!(!h.is_finished());
        advance(Duration::from_secs(1));
        h.join().await.unwrap();
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(elapsed(), Duration::from_secs(5));
}

/// Without a time option the clock is real, and tracking still works.
#[hatchery::test(backends(tokio_current, smol))]
async fn real_time_by_default() {
    assert!(!is_virtual_time());
    wait_all_tasks_blocked().await;
    let start = hatchery::now();
    sleep(Duration::from_millis(2)).await;
    assert!(hatchery::now() - start >= Duration::from_millis(2));
}

// Regression tests for a race in the virtual clock: tasks woken together by a clock jump
// (or a `wait_all_tasks_blocked` release) must all be counted busy before anything can
// find "every task blocked" again.

/// Two timers due at the same instant: the child's 10 s sleep must end at exactly t.
#[hatchery::test(virtual_time)]
async fn simultaneous_timers_wake_together() {
    for i in 0..300u32 {
        let t = hatchery::now() + secs(10);
        let seen = nursery(|n| async move {
            let child = n.spawn(async move {
                hatchery::sleep_until(t).await;
                Ok::<_, TestError>(hatchery::now())
            });
            hatchery::sleep_until(t).await; // both timers are due at once
            hatchery::sleep_until(t + secs(10)).await;
            Ok(child.join().await.unwrap())
        })
        .await
        .unwrap();
        assert_eq!(
            seen,
            t,
            "iteration {i}: the child's 10 s sleep woke {:?} late",
            seen - t
        );
    }
}

/// Two tasks in wait_all_tasks_blocked are woken together; the child must have run
/// before the next wait_all_tasks_blocked of the parent returns.
#[hatchery::test(virtual_time)]
async fn tasks_woken_together_all_run_before_the_next_release() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    for i in 0..300u32 {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        nursery(|n| async move {
            n.spawn(async move {
                wait_all_tasks_blocked().await;
                d.store(true, SeqCst);
                Ok::<_, TestError>(())
            });
            wait_all_tasks_blocked().await; // the child waits too: both are woken together
            wait_all_tasks_blocked().await; // so the child must have run by now
            assert!(
                done.load(SeqCst),
                "iteration {i}: returned while a woken task had not run"
            );
            Ok(())
        })
        .await
        .unwrap();
    }
}

/// 100 timeouts, ~14 per instant, around hour-long sleeps: every one must fire, on time.
#[hatchery::test(virtual_time)]
async fn many_timeouts_each_fire_on_time() {
    let fired = Counter::new();
    nursery(|n| {
        let fired = fired.clone();
        async move {
            for i in 0..100u64 {
                let fired = fired.clone();
                n.spawn(async move {
                    let start = hatchery::now();
                    if hatchery::move_on_after(secs(i % 7), sleep(HOUR))
                        .await
                        .is_none()
                    {
                        assert_eq!(hatchery::now() - start, secs(i % 7));
                        fired.incr();
                    }
                    Ok::<_, TestError>(())
                });
            }
            Ok(())
        }
    })
    .await
    .unwrap();
    assert_eq!(
        fired.get(),
        100,
        "timeouts that did not fire: their hour-long sleep ended first"
    );
}

/// The clock jumps to a far deadline at once, not a timer step at a time (a virtual timer
/// takes any instant): a timeout of 2^50 s returns at once, on the dot.
#[hatchery::test(virtual_time)]
async fn the_clock_jumps_to_a_far_deadline_at_once() {
    let wall = Instant::now();
    let timeout = secs(1 << 50);
    assert_eq!(
        move_on_after(timeout, std::future::pending::<()>()).await,
        None
    );
    assert_eq!(elapsed(), timeout);
    sleep(timeout).await;
    assert_eq!(elapsed(), timeout * 2);
    assert!(wall.elapsed() < secs(30), "took {:?}", wall.elapsed());
}

/// Near the end of `Instant`'s range a scope's deadline neither overflows nor panics.
#[hatchery::test(virtual_time)]
async fn a_timeout_near_the_end_of_time() {
    let edge = latest_instant(hatchery::now()) - HOUR;
    hatchery::sleep_until(edge).await;
    assert_eq!(hatchery::now(), edge);
    assert_eq!(move_on_after(secs(1), sleep(secs(60))).await, None);
    assert_eq!(hatchery::now(), edge + secs(1));
    assert_eq!(move_on_after(HOUR * 2, sleep(secs(60))).await, Some(()));
}

/// A virtual-time run awaited inside another is a run of its own: its clock starts at the
/// enclosing `now` and moves by itself; the enclosing clock stays where it was.
#[hatchery::test(virtual_time)]
async fn a_nested_run_has_its_own_clock() {
    sleep(secs(10)).await;
    let before = hatchery::now();
    let (inner_elapsed, inner_now) = hatchery::testing::virtual_time(async {
        assert_eq!(elapsed(), Duration::ZERO);
        sleep(secs(5)).await;
        (elapsed(), hatchery::now())
    })
    .await;
    assert_eq!(inner_elapsed, secs(5));
    assert_eq!(inner_now, before + secs(5));
    assert_eq!(elapsed(), secs(10));
    assert_eq!(hatchery::now(), before);
}

/// The enclosing scopes do not cancel a nested run: a cancelled one drops it, as a future
/// that is not hatchery's, so its `finally` cleanup does not run (documented in the
/// testing module and the book).
#[hatchery::test]
async fn an_enclosing_cancel_drops_a_nested_run() {
    let log = Log::new();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let inner_log = log.clone();
    let out = scope
        .run(hatchery::testing::virtual_time(async move {
            let _dropped = inner_log.on_drop("inner run dropped");
            let cleanup_log = inner_log.clone();
            hatchery::finally(
                async {
                    handle.cancel();
                    inner_log.push("cancelled the enclosing scope");
                    std::future::pending::<()>().await
                },
                async move { cleanup_log.push("cleanup") },
            )
            .await
        }))
        .await;
    assert_eq!(out, None);
    assert_eq!(
        log.events(),
        ["cancelled the enclosing scope", "inner run dropped"]
    );
}

/// `advance` past the latest instant `Instant` can hold panics with a message that says
/// what happened and what to do, and leaves the clock where it was.
#[hatchery::test(manual_time)]
async fn advance_past_the_latest_instant_panics_clearly() {
    advance(secs(5));
    let p = std::panic::catch_unwind(|| advance(Duration::MAX)).unwrap_err();
    assert_eq!(
        hatchery_tests::panic_message(&*p),
        "hatchery: virtual time overflow: advancing the clock by \
         18446744073709551615.999999999s passes the latest instant `Instant` can hold; \
         advance by less"
    );
    assert_eq!(elapsed(), secs(5));
}

/// A `wait_all_tasks_blocked` dropped before it fired (polled once in a task that then
/// finished) does not hold the clock: the next time all tasks are blocked, it jumps to
/// the next deadline as usual.
#[hatchery::test(virtual_time)]
async fn a_dropped_wait_all_tasks_blocked_does_not_stop_the_clock() {
    let r = nursery(|n| async move {
        n.spawn(async {
            let mut wait = wait_all_tasks_blocked();
            assert!(futures_lite::future::poll_once(&mut wait).await.is_none());
            Ok::<_, TestError>(())
        })
        .join()
        .await
        .unwrap();
        sleep(secs(5)).await;
        Ok::<_, TestError>(())
    });
    assert_eq!(r.await, Ok(()));
    assert_eq!(elapsed(), secs(5));
}

/// Draining a full tokio channel never blocks: an hour-long timeout around it does not
/// fire, and no virtual time passes. (After 128 messages tokio's budget makes `recv`
/// return `Pending` and wake the task only later: test runs see the budget spent and
/// keep the task busy.)
#[hatchery::test(virtual_time)]
async fn a_tokio_budget_yield_does_not_jump_the_clock() {
    let out = nursery(|n| async move {
        // In a child: on tokio_multi the root is polled by `block_on`, outside a worker.
        let h = n.spawn(async move {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
            for i in 0..1000 {
                tx.send(i).unwrap();
            }
            drop(tx);
            let got = move_on_after(HOUR, async move {
                let mut k = 0;
                while rx.recv().await.is_some() {
                    k += 1;
                }
                k
            })
            .await;
            Ok::<_, TestError>((got, elapsed()))
        });
        h.join().await.map_err(|_| TestError("join"))
    })
    .await
    .unwrap();
    assert_eq!(out, (Some(1000), Duration::ZERO));
}

/// Real time too: `wait_all_tasks_blocked` does not return while a child that drains a
/// tokio channel can run.
#[hatchery::test]
async fn wait_all_tasks_blocked_waits_for_a_budget_yielded_child() {
    nursery(|n| async move {
        let h = n.spawn(async move {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
            for i in 0..1000 {
                tx.send(i).unwrap();
            }
            drop(tx);
            while rx.recv().await.is_some() {}
            Ok::<_, TestError>(())
        });
        wait_all_tasks_blocked().await;
        assert!(h.is_finished(), "returned while the child could still run");
        Ok::<_, TestError>(())
    })
    .await
    .unwrap();
}

/// A test run inside another takes on its backend's name (`backend()`), so code that
/// asks which backend it runs on works in nested runs too.
#[hatchery::test]
async fn a_nested_run_knows_its_backend() {
    let outer = hatchery::testing::backend();
    assert!(outer.is_some());
    let inner = hatchery::testing::virtual_time(async { hatchery::testing::backend() }).await;
    assert_eq!(inner, outer);
}

/// A `tracked` run inside a virtual-time run runs on the enclosing virtual clock, and
/// `is_virtual_time()` says so.
#[hatchery::test(virtual_time)]
async fn a_tracked_run_in_virtual_time_knows_its_clock_is_virtual() {
    let (virt, el) = hatchery::testing::tracked(async {
        sleep(HOUR).await;
        (is_virtual_time(), elapsed())
    })
    .await;
    assert_eq!(el, HOUR);
    assert!(virt);
}

/// A test run polled again after it returned panics with its own message.
#[hatchery::test]
async fn a_test_run_polled_after_completion_panics_clearly() {
    let mut run = Box::pin(hatchery::testing::tracked(async { 1 }));
    assert_eq!(run.as_mut().await, 1);
    let again = hatchery_tests::catch_panic(run.as_mut()).await.unwrap_err();
    assert_eq!(again, "hatchery: test run polled after completion");
}

/// A nested run dropped mid-poll does not hand its clock's timer to the next nested run,
/// which a new runtime at the freed runtime's address used to take (and never fired).
#[hatchery::test]
async fn a_dropped_nested_run_does_not_lend_its_timer_to_the_next_one() {
    use futures_lite::future::poll_once;
    use hatchery::testing::manual_time;
    for round in 0..10 {
        // Everything below happens in one poll of this task.
        let mut r1 = Box::pin(manual_time(move_on_after(
            HOUR,
            std::future::pending::<()>(),
        )));
        assert!(poll_once(r1.as_mut()).await.is_none()); // its scope armed a virtual timer
        drop(r1); // the timer becomes the spare; r1's runtime is freed
        let mut r2 = Box::pin(manual_time(move_on_after(secs(1), async {
            advance(secs(2));
            hatchery::checkpoint().await;
            std::future::pending::<()>().await
        })));
        let mut out = None;
        for _ in 0..10 {
            if let Some(v) = poll_once(r2.as_mut()).await {
                out = Some(v);
                break;
            }
            hatchery::checkpoint().await;
        }
        assert_eq!(
            out,
            Some(None),
            "round {round}: the second run's 1 s timeout never fired"
        );
    }
}

/// A sleep armed in one nested run and dropped in the next one does not lend its timer
/// (of a clock that is gone) to the next run's timeout: a spare timer is matched to its
/// runtime by address, and the next run's runtime can sit at the freed one's.
#[hatchery::test]
async fn a_timer_outliving_its_run_is_not_lent_to_the_next_run() {
    use futures_lite::future::poll_once;
    use hatchery::checkpoint;
    use hatchery::testing::manual_time;
    use std::future::Future;
    use std::task::Poll;
    for round in 0..20 {
        let mut s = Box::pin(sleep(HOUR));
        {
            let s = &mut s;
            // r1 arms `s` on its virtual clock, finishes, and frees its runtime.
            let r1 = manual_time(std::future::poll_fn(move |cx| {
                let _ = s.as_mut().poll(cx);
                Poll::Ready(())
            }));
            r1.await;
        }
        let mut r2 = Box::pin(manual_time(async move {
            drop(s); // in r2's poll: its timer becomes the spare
            move_on_after(secs(1), async {
                advance(secs(2));
                checkpoint().await;
                std::future::pending::<()>().await
            })
            .await
        }));
        let mut out = None;
        for _ in 0..10 {
            if let Some(v) = poll_once(r2.as_mut()).await {
                out = Some(v);
                break;
            }
            checkpoint().await;
        }
        assert_eq!(
            out,
            Some(None),
            "round {round}: the second run's 1 s timeout never fired"
        );
    }
}

/// A virtual-time run where every task waits for what never comes, with no timer set,
/// panics with a message that says so, instead of hanging.
#[hatchery::test]
async fn a_deadlocked_virtual_time_run_panics() {
    use hatchery::sync::Lock;
    use hatchery::testing::virtual_time;
    let run = virtual_time(async {
        let lock = Arc::new(Lock::new(()));
        let l = lock.clone();
        let guard = lock.lock().await;
        nursery(|n| async move {
            // Waits for the guard, which its parent keeps until the child is done.
            let child = n.spawn(async move {
                let _g = l.lock().await;
                Ok::<_, TestError>(())
            });
            child.join().await.unwrap();
            drop(guard);
            Ok::<_, TestError>(())
        })
        .await
    })
    .with_deadlock_timeout(Some(Duration::from_millis(200)));
    let wall = Instant::now();
    let msg = hatchery_tests::catch_panic(run).await.unwrap_err();
    assert!(
        msg.starts_with("hatchery: deadlock in a virtual-time test run: every task has been blocked for 200ms of real time, and no timer is set"),
        "{msg}"
    );
    assert!(wall.elapsed() >= Duration::from_millis(200));
}

/// Under `manual_time`, every task blocked is a deadlock even with timers set: only a
/// task could `advance` the clock.
#[hatchery::test]
async fn a_manual_time_run_with_every_task_asleep_panics() {
    use hatchery::testing::manual_time;
    let run = manual_time(sleep(HOUR)).with_deadlock_timeout(Some(Duration::from_millis(100)));
    let msg = hatchery_tests::catch_panic(run).await.unwrap_err();
    assert!(
        msg.contains("under `manual_time` only they could `advance` the clock"),
        "{msg}"
    );
}

/// A deadlocked run inside another virtual-time run is caught by the enclosing run's
/// watch (the inner run waits on nothing the enclosing clock knows of).
#[hatchery::test]
async fn a_deadlocked_nested_run_is_caught_by_the_enclosing_one() {
    use hatchery::testing::virtual_time;
    let inner = virtual_time(std::future::pending::<()>()).with_deadlock_timeout(None);
    let run = virtual_time(inner).with_deadlock_timeout(Some(Duration::from_millis(100)));
    let msg = hatchery_tests::catch_panic(run).await.unwrap_err();
    assert!(msg.contains("deadlock in a virtual-time test run"), "{msg}");
}

/// A plain thread that wakes a task now and then ends each stall: the run may stall in
/// all for longer than the timeout, never once for that long. (Generous margins: each
/// stall is 0.8 s of a 2 s timeout, and the three stalls take 2.4 s together.)
#[hatchery::test]
async fn a_stall_ended_by_a_thread_starts_the_deadlock_timeout_again() {
    use hatchery::testing::virtual_time;
    let (tx, rx) = hatchery::memory_stream::<u32>(0);
    let sender = std::thread::spawn(move || {
        for i in 0..3 {
            std::thread::sleep(Duration::from_millis(800));
            tx.send_blocking(i).unwrap();
        }
    });
    let run = virtual_time(async move {
        let mut got = Vec::new();
        while let Ok(i) = rx.recv().await {
            got.push(i);
        }
        (got, elapsed())
    })
    .with_deadlock_timeout(Some(Duration::from_secs(2)));
    let (got, virtual_elapsed) = run.await;
    assert_eq!(got, [0, 1, 2]);
    assert_eq!(virtual_elapsed, Duration::ZERO);
    sender.join().unwrap();
}

/// Not a stall: every task waiting for blocking work in flight (it counts as busy), for
/// longer in real time than the deadlock timeout, while another waits on a far timer (a
/// watch armed whenever the run is polled, not only when it stalls, panics here).
#[hatchery::test]
async fn blocking_work_in_flight_is_not_a_deadlock() {
    use hatchery::testing::virtual_time;
    let run = virtual_time(async {
        nursery(|n| async move {
            n.spawn(async {
                sleep(HOUR * 24 * 365).await;
                Ok::<_, TestError>(())
            });
            run_blocking(|| std::thread::sleep(Duration::from_millis(300))).await;
            wait_all_tasks_blocked().await;
            Ok(())
        })
        .await
        .unwrap();
        elapsed()
    })
    .with_deadlock_timeout(Some(Duration::from_millis(50)));
    assert_eq!(run.await, HOUR * 24 * 365);
}

/// A library that wraps itself in an adapter's `enter` inside a virtual-time test (found
/// by an audit): its sleeps and timeouts are on the virtual clock too. (They were on the
/// adapter's real clock, which the test run cannot see: the clock jumped past the
/// 1-second sleep to the enclosing 10-second deadline.)
#[hatchery::test(virtual_time, backends(tokio_current, tokio_multi))]
async fn an_adapter_enter_inside_virtual_time_keeps_the_virtual_clock() {
    let r = move_on_after(
        secs(10),
        hatchery_tokio::enter(async {
            sleep(secs(1)).await;
            "done"
        }),
    )
    .await;
    assert_eq!(r, Some("done"));
    assert_eq!(elapsed(), secs(1));
}

/// Inside an adapter's `enter` in a virtual-time test, the enclosing deadline and `now`
/// are on one clock (`now` was real time, an hour behind the virtual deadline).
#[hatchery::test(virtual_time, backends(tokio_current, tokio_multi))]
async fn an_adapter_enter_inside_virtual_time_sees_a_consistent_deadline() {
    sleep(HOUR).await;
    let left = move_on_after(
        secs(10),
        hatchery_tokio::enter(async {
            hatchery::current_effective_deadline().remaining(hatchery::now())
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(left, secs(10));
}

/// Children of a nursery inside an adapter's `enter` count as the test run's tasks:
/// `wait_all_tasks_blocked` waits for them, and the clock does not jump while they run.
#[hatchery::test(virtual_time, backends(tokio_current, tokio_multi))]
async fn an_adapter_enter_inside_a_test_run_tracks_its_children() {
    let log = Log::new();
    let l = log.clone();
    hatchery_tokio::enter(nursery(|n| async move {
        let l2 = l.clone();
        n.spawn(async move {
            // Busy (not blocked) for a while, then asleep: the clock must wait for it.
            for _ in 0..100 {
                hatchery::checkpoint().await;
            }
            l2.push("child reached its sleep");
            sleep(secs(5)).await;
            l2.push("child woke");
            Ok::<_, TestError>(())
        });
        wait_all_tasks_blocked().await;
        l.push("all blocked");
        Ok(())
    }))
    .await
    .unwrap();
    assert_eq!(
        log.events(),
        ["child reached its sleep", "all blocked", "child woke"]
    );
    assert_eq!(elapsed(), secs(5));
}

/// A separate root inside a virtual-time test (a sync library's own blocking run) keeps
/// its own real clock, also for an adapter's enter inside it (from a review: it took the
/// test's frozen virtual clock and hung).
#[test]
fn a_separate_root_inside_a_virtual_time_run_keeps_its_own_clock() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = hatchery_smol::run(
            hatchery::testing::virtual_time(async {
                // A sync library called from the test: a root of its own, on its own
                // (real) runtime; the library wraps its async code in `enter`.
                hatchery_tokio::run_current_thread(async {
                    hatchery_tokio::enter(async {
                        sleep(Duration::from_millis(10)).await;
                        "done"
                    })
                    .await
                })
            })
            .with_deadlock_timeout(None),
        );
        let _ = done_tx.send(r);
    });
    assert_eq!(
        done_rx.recv_timeout(Duration::from_secs(10)),
        Ok("done"),
        "the nested real-time run hung: its 10 ms sleep was on the test's frozen virtual clock"
    );
}

/// The testing helpers inside such a separate root are outside the test run: they read
/// the run of the code being polled, not the one whose task blocks on the root (from an
/// audit: `wait_all_tasks_blocked` waited for the enclosing run, which could never go
/// idle, and hung; `is_virtual_time` said true on a real clock; `elapsed` answered the
/// enclosing run's virtual hour).
#[test]
fn testing_helpers_in_a_separate_root_inside_a_test_run_are_outside_it() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = hatchery_smol::run(
            hatchery::testing::virtual_time(async {
                sleep(HOUR).await;
                hatchery_tokio::run_current_thread(async {
                    let waited = nursery(|n| async move {
                        n.spawn(async {
                            sleep(Duration::from_millis(10)).await;
                            Ok::<_, TestError>(())
                        });
                        let waited = std::panic::AssertUnwindSafe(wait_all_tasks_blocked());
                        Ok(futures_lite::FutureExt::catch_unwind(waited).await.is_ok())
                    })
                    .await
                    .unwrap();
                    (
                        waited,
                        is_virtual_time(),
                        std::panic::catch_unwind(elapsed).ok(),
                        hatchery::testing::backend(),
                    )
                })
            })
            .with_deadlock_timeout(None),
        );
        let _ = tx.send(r);
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Ok((false, false, None, None)),
        "wait_all_tasks_blocked should panic (not hang), and the root is on real time"
    );
}

/// An adapter's enter in a tracked run inside a virtual-time run stays on the enclosing
/// virtual clock (from a review: its timers went to the raw runtime, an hour away).
#[test]
fn an_adapter_enter_in_a_tracked_run_inside_virtual_time_keeps_the_clock() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = hatchery_tokio::run(hatchery::testing::virtual_time(async {
            sleep(HOUR).await; // the virtual clock is now an hour ahead of real time
            hatchery::testing::tracked(async {
                let before = hatchery::now();
                hatchery_tokio::enter(async {
                    sleep(secs(1)).await;
                })
                .await;
                hatchery::now() - before
            })
            .await
        }));
        let _ = done_tx.send(r);
    });
    let r = done_rx.recv_timeout(Duration::from_secs(20));
    assert_eq!(r, Ok(secs(1)));
}

/// A test run polled by another waker than before wakes that one (from a review: a run
/// whose root was idle kept the first poll's waker).
#[test]
fn a_test_run_wakes_the_waker_of_its_latest_poll() {
    use std::future::Future;
    use std::sync::atomic::AtomicBool;
    use std::task::{Context, Wake, Waker};
    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    hatchery_smol::run(async {
        let (tx, rx) = hatchery::memory_stream::<u32>(1);
        let mut run = Box::pin(
            hatchery::testing::virtual_time(async move { rx.recv().await.unwrap() })
                .with_deadlock_timeout(None),
        );
        let a = Arc::new(Flag(AtomicBool::new(false)));
        let b = Arc::new(Flag(AtomicBool::new(false)));
        let wa = Waker::from(a.clone());
        let wb = Waker::from(b.clone());
        assert!(run
            .as_mut()
            .poll(&mut Context::from_waker(&wa))
            .is_pending());
        // Polled again, now by another task (moved, or a combinator's own waker).
        assert!(run
            .as_mut()
            .poll(&mut Context::from_waker(&wb))
            .is_pending());
        tx.try_send(7).unwrap();
        assert!(
            b.0.load(Ordering::SeqCst),
            "the waker of the latest poll was not woken (the first poll's was: {})",
            a.0.load(Ordering::SeqCst)
        );
        assert_eq!(run.await, 7);
    });
}

/// A cancelled scope whose body is kept alive (a shielded cleanup waiting on a thread)
/// lets go of its deadline's timer: the virtual clock has nothing to jump to (from an
/// audit: it jumped to the cancelled scope's dead one-hour deadline).
#[hatchery::test(virtual_time)]
async fn a_cancelled_scopes_deadline_does_not_move_virtual_time() {
    let ev = Arc::new(hatchery::sync::Event::new());
    let e2 = ev.clone();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        e2.set();
    });
    let scope = CancelScope::new().with_timeout(HOUR);
    let h = scope.handle();
    let seen = scope
        .run(async {
            sleep(secs(1)).await; // the scope's timer is armed by now
            h.cancel();
            // Cleanup that waits for a thread: the run has nothing to jump to.
            hatchery::shield(async {
                ev.wait().await;
                elapsed()
            })
            .await
        })
        .await;
    thread.join().unwrap();
    assert_eq!(
        seen,
        Some(secs(1)),
        "virtual time jumped to a cancelled scope's deadline"
    );
}
