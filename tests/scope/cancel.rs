//! Cancel scopes cancelled by hand: delivery at suspension points (C1), cancellation of
//! the whole tree (C2), and who catches it (C3).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hatchery::testing::elapsed;
use hatchery::{checkpoint, nursery, sleep, CancelScope, Deadline};
use hatchery_tests::{backend, ms, secs, until, Counter, Log, TestError, HOUR};

/// C1: a cancelled body stops at its next suspension point; code before it still runs,
/// code after it never does, and the body future is dropped there.
#[hatchery::test(virtual_time)]
async fn c1_cancel_drops_body_at_next_suspension() {
    let log = Log::new();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run({
            let (log, handle) = (log.clone(), handle.clone());
            async move {
                let _guard = log.on_drop("body dropped");
                log.push("before cancel");
                handle.cancel();
                log.push("after cancel, same poll");
                sleep(HOUR).await;
                log.push("unreachable");
                1
            }
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(
        log.events(),
        ["before cancel", "after cancel, same poll", "body dropped"]
    );
    assert!(handle.cancel_called());
    assert!(handle.cancelled_caught());
    assert_eq!(elapsed(), Duration::ZERO);
}

/// C1: futures that know nothing of hatchery are cancelled by dropping them, even when
/// the cancel comes from another task (possibly on another thread).
#[hatchery::test(virtual_time)]
async fn c1_foreign_future_is_dropped() {
    let log = Log::new();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let remote = handle.clone();
    let out = nursery(|n| {
        let log = log.clone();
        async move {
            n.spawn(async move {
                sleep(secs(5)).await;
                remote.cancel();
                Ok(())
            });
            let out = scope
                .run(async move {
                    let _guard = log.on_drop("pending dropped");
                    std::future::pending::<()>().await;
                })
                .await;
            Ok::<_, TestError>(out)
        }
    })
    .await;
    assert_eq!(out, Ok(None));
    assert_eq!(log.events(), ["pending dropped"]);
    assert!(handle.cancelled_caught());
    assert_eq!(elapsed(), secs(5));
}

/// C1, C2: a handle can cancel a scope from a plain OS thread. (Real time: virtual time
/// cannot see the thread, and would let the sleep end first.)
#[hatchery::test]
async fn c2_h1_cancel_from_another_os_thread() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let remote = handle.clone();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(ms(5));
        remote.cancel();
    });
    let out = scope.run(sleep(HOUR)).await;
    thread.join().unwrap();
    assert_eq!(out, None);
    assert!(handle.cancelled_caught());
}

/// C1, C3: code that never suspends is never interrupted: a body cancelled while it
/// runs, that then finishes without suspending, returns its value and the scope
/// reports `cancelled_caught() == false` (but `cancel_called() == true`).
#[hatchery::test(virtual_time)]
async fn c3_body_that_never_suspends_again_returns_its_value() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let inner = handle.clone();
    let out = scope
        .run(async move {
            sleep(secs(1)).await;
            inner.cancel();
            // Blocking work is not a suspension point.
            std::thread::sleep(ms(2));
            42
        })
        .await;
    assert_eq!(out, Some(42));
    assert!(handle.cancel_called());
    assert!(!handle.cancelled_caught());
    assert_eq!(elapsed(), secs(1));
}

/// C1: `checkpoint()` is the suspension point of a CPU loop: the loop stops exactly at
/// the first checkpoint after the cancel.
#[hatchery::test]
async fn c1_checkpoint_lets_a_cpu_loop_be_cancelled() {
    let spins = Counter::new();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run({
            let (spins, handle) = (spins.clone(), handle.clone());
            async move {
                loop {
                    if spins.incr() == 100 {
                        handle.cancel();
                    }
                    checkpoint().await;
                }
            }
        })
        .await;
    let out: Option<()> = out;
    assert_eq!(out, None);
    assert_eq!(spins.get(), 100);
    assert!(handle.cancelled_caught());
}

/// C1: outside any cancellation, `checkpoint()` just yields and returns.
#[hatchery::test]
async fn c1_checkpoint_returns_when_not_cancelled() {
    let log = Log::new();
    for _ in 0..3 {
        checkpoint().await;
        log.push("passed");
    }
    assert_eq!(log.count("passed"), 3);
}

/// C4 (and C1): a scope cancelled before it is entered lets its body run to the first
/// suspension point, then cancels it there.
#[hatchery::test]
async fn c4_cancelled_before_entered_runs_to_first_suspension() {
    let log = Log::new();
    let scope = CancelScope::new();
    let handle = scope.handle();
    handle.cancel();
    assert!(handle.cancel_called());
    assert!(!handle.cancelled_caught());
    let out = scope
        .run({
            let log = log.clone();
            async move {
                log.push("first poll");
                assert_eq!(hatchery::current_effective_deadline(), Deadline::Cancelled);
                checkpoint().await;
                log.push("unreachable");
            }
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["first poll"]);
    assert!(handle.cancelled_caught());
}

/// C3: `cancel_called` is sticky; `cancelled_caught` is false while the scope runs and
/// when its body finished; a handle outlives its scope harmlessly.
#[hatchery::test(virtual_time)]
async fn c3_h1_handle_flags_over_the_scope_lifetime() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let inner = handle.clone();
    assert!(!handle.cancel_called() && !handle.cancelled_caught());
    let out = scope
        .run(async move {
            sleep(secs(1)).await;
            assert!(!inner.cancel_called() && !inner.cancelled_caught());
            "done"
        })
        .await;
    assert_eq!(out, Some("done"));
    assert!(!handle.cancel_called() && !handle.cancelled_caught());
    // Cancelling a finished scope has no effect on anything running now.
    handle.cancel();
    assert!(!handle.cancelled_caught());
    sleep(secs(1)).await;

    let scope = CancelScope::new();
    let handle = scope.handle();
    handle.cancel();
    handle.cancel(); // idempotent
    assert_eq!(scope.run(sleep(HOUR)).await, None);
    assert!(handle.cancel_called() && handle.cancelled_caught());
    sleep(secs(1)).await;
    assert!(
        handle.cancel_called() && handle.cancelled_caught(),
        "flags are sticky"
    );
    assert_eq!(elapsed(), secs(3));
}

/// C2: cancelling a scope cancels everything inside it: nested scopes, the body of a
/// nursery opened inside it, its children, and their own nurseries' children.
#[hatchery::test(virtual_time)]
async fn c2_cancel_reaches_the_whole_tree() {
    const CHILDREN: usize = 4;
    const GRANDCHILDREN: usize = 3;
    let log = Log::new();
    let started = Counter::new();
    let dropped = Counter::new();
    let inner_handles = Arc::new(Mutex::new(Vec::new()));
    let scope = CancelScope::new();
    let handle = scope.handle();
    let body = {
        let (log, started, dropped, inner_handles, handle) = (
            log.clone(),
            started.clone(),
            dropped.clone(),
            inner_handles.clone(),
            handle.clone(),
        );
        async move {
            let outer_log = log.clone();
            let r = nursery(|n| async move {
                for _ in 0..CHILDREN {
                    let (log, started, dropped, inner_handles) = (
                        log.clone(),
                        started.clone(),
                        dropped.clone(),
                        inner_handles.clone(),
                    );
                    n.spawn(async move {
                        let _guard = dropped.guard();
                        let outer_log = log.clone();
                        let r = nursery(|n2| async move {
                            for _ in 0..GRANDCHILDREN {
                                let (started, dropped) = (started.clone(), dropped.clone());
                                n2.spawn(async move {
                                    let _guard = dropped.guard();
                                    started.incr();
                                    std::future::pending::<()>().await;
                                    Ok(())
                                });
                            }
                            // A nested scope in the child's nursery body.
                            let inner = CancelScope::new();
                            inner_handles.lock().unwrap().push(inner.handle());
                            let _guard = dropped.guard();
                            inner.run(sleep(HOUR)).await;
                            log.push("unreachable: child's inner scope returned");
                            Ok::<(), TestError>(())
                        })
                        .await;
                        outer_log.push("unreachable: child's nursery returned");
                        r.map_err(|_| TestError("child nursery"))
                    });
                }
                // A nested scope in the body.
                let inner = CancelScope::new();
                inner_handles.lock().unwrap().push(inner.handle());
                inner
                    .run(async move {
                        let _guard = dropped.guard();
                        until(|| started.get() == CHILDREN * GRANDCHILDREN).await;
                        handle.cancel();
                        sleep(HOUR).await;
                    })
                    .await;
                log.push("unreachable: body's inner scope returned");
                Ok::<(), TestError>(())
            })
            .await;
            outer_log.push("unreachable: nursery returned");
            r
        }
    };
    let out = scope.run(body).await;
    assert_eq!(out, None);
    assert!(handle.cancelled_caught());
    assert!(log.is_empty(), "{log:?}");
    // Every child, grandchild, child nursery body and the body's scope was dropped.
    assert_eq!(
        dropped.get(),
        CHILDREN + CHILDREN * GRANDCHILDREN + CHILDREN + 1
    );
    let inner = inner_handles.lock().unwrap();
    assert_eq!(inner.len(), CHILDREN + 1);
    for h in inner.iter() {
        assert!(!h.cancel_called() && !h.cancelled_caught());
    }
    assert_eq!(elapsed(), Duration::ZERO);
}

/// C2: a scope entered inside an already cancelled scope is cancelled too (it runs to
/// its first suspension point), and the outer scope is the one that returns.
#[hatchery::test]
async fn c2_scope_entered_inside_cancelled_scope_is_cancelled() {
    let log = Log::new();
    let outer = CancelScope::new();
    let outer_handle = outer.handle();
    let inner = CancelScope::new();
    let inner_handle = inner.handle();
    let out = outer
        .run({
            let (log, outer_handle) = (log.clone(), outer_handle.clone());
            async move {
                outer_handle.cancel();
                inner
                    .run(async {
                        log.push("inner first poll");
                        assert!(hatchery::current_effective_deadline().is_cancelled());
                        checkpoint().await;
                        log.push("unreachable");
                    })
                    .await;
                log.push("inner returned");
            }
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["inner first poll"]);
    assert!(outer_handle.cancelled_caught());
    assert!(!inner_handle.cancel_called() && !inner_handle.cancelled_caught());
}

/// C1: the root future of every backend is a plain future: nothing cancels it.
#[hatchery::test]
async fn root_is_not_cancelled() {
    assert_eq!(hatchery::current_effective_deadline(), Deadline::Never);
    sleep(ms(1)).await;
    checkpoint().await;
    assert!(["tokio_current", "tokio_multi", "smol"].contains(&backend()));
}

/// C2: cancellation follows the scope tree, not the call stack: a task spawned from
/// inside a cancelled scope into a nursery opened *outside* it is not cancelled.
#[hatchery::test(virtual_time)]
async fn c2_task_in_outer_nursery_not_cancelled() {
    let log = Log::new();
    let r = nursery(|n| {
        let log = log.clone();
        async move {
            let scope = CancelScope::new().with_timeout(secs(5));
            let handle = scope.handle();
            let out = scope
                .run(async {
                    let (log, handle) = (log.clone(), handle.clone());
                    n.spawn(async move {
                        // Outlives the scope it was spawned from (which returns at 5 s).
                        sleep(secs(10)).await;
                        assert!(log.contains("scope returned"));
                        assert!(handle.cancelled_caught());
                        sleep(secs(1)).await;
                        log.push("outer-nursery task finished");
                        Ok::<_, TestError>(())
                    });
                    sleep(HOUR).await;
                })
                .await;
            assert_eq!(out, None);
            log.push("scope returned");
            Ok(())
        }
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(
        log.events(),
        ["scope returned", "outer-nursery task finished"]
    );
    assert_eq!(elapsed(), secs(11));
}

/// C1, C3: races between a cancel from another thread and a body finishing: whatever
/// wins, the outcome is consistent: `None` exactly when the scope caught the
/// cancellation, and then `cancel_called` is set. (Real time: the canceller is an OS
/// thread.)
#[hatchery::test]
async fn c3_cancel_races_are_consistent() {
    for i in 0..200u32 {
        let scope = CancelScope::new();
        let handle = scope.handle();
        let remote = handle.clone();
        let spins = i % 7;
        let canceller = std::thread::spawn(move || {
            for _ in 0..spins {
                std::thread::yield_now();
            }
            remote.cancel();
        });
        let out = scope
            .run(async move {
                for _ in 0..(i % 5) {
                    checkpoint().await;
                }
                i
            })
            .await;
        canceller.join().unwrap();
        assert_eq!(out.is_none(), handle.cancelled_caught(), "iteration {i}");
        if out.is_none() {
            assert!(handle.cancel_called());
        } else {
            assert_eq!(out, Some(i));
        }
    }
}
