//! Cancelling nurseries (N4, N5, C2): own cancel vs outer cancel, children spawned into a
//! cancelled nursery, cancellation of very many children, on both kinds of nursery;
//! cancellation across threads, and a child's `Drop` that blocks, on the spawning one.

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use hatchery::testing::elapsed;
use hatchery::{
    checkpoint, current_effective_deadline, move_on_after, nursery, shield, sleep, CancelScope,
    Deadline, Nursery, NurseryError,
};
use hatchery_tests::{
    backend, each_kind, is_multi_thread, kinds, secs, until, Counter, Kind, Log, TestError, HOUR,
};

each_kind!(n4_own_cancel_before_value_is_cancelled, virtual_time);
/// N4: the nursery's own `cancel()` ends the body before it produced a value: the
/// result is the distinct `Cancelled` outcome, with no errors; children are dropped.
async fn n4_own_cancel_before_value_is_cancelled<K: Kind>() {
    let dropped = Counter::new();
    let r = K::nursery(|n| {
        let dropped = dropped.clone();
        async move {
            for _ in 0..3 {
                let guard = dropped.guard();
                n.spawn(async move {
                    let _guard = guard;
                    sleep(HOUR).await;
                    Ok(())
                });
            }
            sleep(secs(1)).await;
            n.cancel();
            assert!(n.is_cancelled());
            sleep(HOUR).await;
            Ok::<_, TestError>("unreachable")
        }
    })
    .await;
    let e = r.unwrap_err();
    assert!(e.is_cancelled());
    assert_eq!(e, NurseryError::Cancelled);
    assert!(e.errors().is_empty());
    assert_eq!(e.first(), None);
    assert_eq!(e.to_string(), "nursery cancelled");
    assert_eq!(dropped.get(), 3);
    assert_eq!(elapsed(), secs(1));
}

each_kind!(n4_own_cancel_after_value_is_ok, virtual_time);
/// N4: a cancel after the body produced its value (the body returned, children were
/// still running) gives `Ok(value)`; so does a body that cancels and returns without
/// suspending.
async fn n4_own_cancel_after_value_is_ok<K: Kind>() {
    let dropped = Counter::new();
    let r = K::nursery(|n| {
        let dropped = dropped.clone();
        async move {
            let guard = dropped.guard();
            n.spawn(async move {
                let _guard = guard;
                sleep(HOUR).await;
                Ok(())
            });
            let n2 = n.clone();
            n.spawn(async move {
                sleep(secs(5)).await;
                n2.cancel();
                Ok(())
            });
            Ok::<_, TestError>(5)
        }
    })
    .await;
    assert_eq!(r, Ok(5));
    assert_eq!(dropped.get(), 1);

    let r = K::nursery(|n| async move {
        n.cancel();
        Ok::<_, TestError>(6)
    })
    .await;
    assert_eq!(r, Ok(6));
    assert_eq!(elapsed(), secs(5));
}

each_kind!(n4_outer_cancel_nursery_never_returns, virtual_time);
/// N4, N1: an outer scope cancels the nursery: it cancels and drains its children,
/// then never returns; the enclosing scope returns `None`; no error anywhere.
async fn n4_outer_cancel_nursery_never_returns<K: Kind>() {
    let log = Log::new();
    let dropped = Counter::new();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run({
            let (log, dropped, handle) = (log.clone(), dropped.clone(), handle.clone());
            async move {
                let r = K::nursery(|n| async move {
                    for _ in 0..4 {
                        let guard = dropped.guard();
                        n.spawn(async move {
                            let _guard = guard;
                            sleep(HOUR).await;
                            Ok(())
                        });
                    }
                    sleep(secs(2)).await;
                    handle.cancel();
                    assert!(n.is_cancelled(), "an outer cancel shows on the nursery");
                    sleep(HOUR).await;
                    Ok::<_, TestError>(())
                })
                .await;
                log.push("unreachable: nursery returned");
                r
            }
        })
        .await;
    assert_eq!(out, None);
    assert!(log.is_empty());
    assert_eq!(dropped.get(), 4);
    assert!(handle.cancelled_caught());

    // The same with a deadline.
    let dropped = Counter::new();
    let out = move_on_after(
        secs(10),
        K::nursery(|n| {
            let dropped = dropped.clone();
            async move {
                for _ in 0..4 {
                    let guard = dropped.guard();
                    n.spawn(async move {
                        let _guard = guard;
                        std::future::pending::<()>().await;
                        Ok(())
                    });
                }
                sleep(HOUR).await;
                Ok::<_, TestError>(())
            }
        }),
    )
    .await;
    assert_eq!(out, None);
    assert_eq!(dropped.get(), 4);
    assert_eq!(elapsed(), secs(12));
}

each_kind!(n4_own_cancel_stays_inside, virtual_time);
/// N4: cancelling a nursery does not cancel what encloses it.
async fn n4_own_cancel_stays_inside<K: Kind>() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run(async {
            let r = K::nursery(|n| async move {
                n.cancel();
                checkpoint().await;
                Ok::<_, TestError>(())
            })
            .await;
            assert!(r.unwrap_err().is_cancelled());
            assert!(!current_effective_deadline().is_cancelled());
            sleep(secs(1)).await;
            "continued"
        })
        .await;
    assert_eq!(out, Some("continued"));
    assert!(!handle.cancel_called());
    assert_eq!(elapsed(), secs(1));
}

each_kind!(
    n5_spawn_into_cancelled_nursery_runs_to_first_suspension,
    virtual_time
);
/// N5, C2: children spawned into an already cancelled nursery run to their first
/// suspension point, then are cancelled.
async fn n5_spawn_into_cancelled_nursery_runs_to_first_suspension<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            n.cancel();
            for _ in 0..3 {
                let log = log.clone();
                n.spawn(async move {
                    log.push("first poll");
                    checkpoint().await;
                    log.push("unreachable");
                    Ok::<_, TestError>(())
                });
            }
            sleep(HOUR).await;
            Ok(())
        }
    })
    .await;
    assert!(r.unwrap_err().is_cancelled());
    assert_eq!(log.events(), ["first poll", "first poll", "first poll"]);
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n5_unpolled_children_get_first_poll, virtual_time);
/// N5: children spawned but not yet polled when the nursery is cancelled still get
/// their first poll (the body spawns and cancels without yielding in between).
async fn n5_unpolled_children_get_first_poll<K: Kind>() {
    let first_polls = Counter::new();
    let r = K::nursery(|n| {
        let first_polls = first_polls.clone();
        async move {
            for _ in 0..20 {
                let first_polls = first_polls.clone();
                n.spawn(async move {
                    first_polls.incr();
                    sleep(HOUR).await;
                    Ok::<_, TestError>(())
                });
            }
            n.cancel();
            checkpoint().await;
            Ok(())
        }
    })
    .await;
    assert!(r.unwrap_err().is_cancelled());
    assert_eq!(first_polls.get(), 20);
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n5_cancel_before_first_poll_is_seen_in_it, virtual_time);
/// N5, C2: a child joins its parent's child list only when it first suspends; a
/// cancellation that came before its first poll is still visible inside that poll.
///
/// On one thread (and for polled children, which the nursery's own task polls) the
/// children are spawned, then the nursery is cancelled before any of them runs. With
/// several threads a spawned child may run as soon as it is spawned, so there the nursery
/// is cancelled first and the children are spawned into it.
async fn n5_cancel_before_first_poll_is_seen_in_it<K: Kind>() {
    let seen = Log::new();
    let parallel = K::PARALLEL && is_multi_thread();
    let r = K::nursery(|n| {
        let seen = seen.clone();
        async move {
            if parallel {
                n.cancel();
            }
            for _ in 0..5 {
                let seen = seen.clone();
                n.spawn(async move {
                    seen.push(match current_effective_deadline() {
                        Deadline::Cancelled => "cancelled",
                        _ => "not cancelled",
                    });
                    sleep(HOUR).await;
                    Ok::<_, TestError>(())
                });
            }
            n.cancel();
            Ok(())
        }
    })
    .await;
    // The body produced its value before the cancel took effect (N4).
    assert_eq!(r, Ok(()));
    assert_eq!(seen.events(), ["cancelled"; 5]);
    assert_eq!(elapsed(), Duration::ZERO);
}

/// C2: cancellation reaches grandchildren in nested nurseries running on other
/// threads; each one is dropped before the outer scope returns.
#[hatchery::test(virtual_time)]
async fn c2_cancel_reaches_grandchildren_on_other_threads() {
    const CHILDREN: usize = 4;
    const GRANDCHILDREN: usize = 8;
    let backend = backend();
    let root = std::thread::current().id();
    let threads: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
    let started = Counter::new();
    let dropped = Counter::new();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run({
            let (threads, started, dropped, handle) = (
                threads.clone(),
                started.clone(),
                dropped.clone(),
                handle.clone(),
            );
            nursery(move |n| async move {
                for _ in 0..CHILDREN {
                    let (threads, started, dropped) =
                        (threads.clone(), started.clone(), dropped.clone());
                    n.spawn(async move {
                        nursery(|n2| async move {
                            for _ in 0..GRANDCHILDREN {
                                let (threads, started, guard) =
                                    (threads.clone(), started.clone(), dropped.guard());
                                n2.spawn(async move {
                                    let _guard = guard;
                                    threads.lock().unwrap().push(std::thread::current().id());
                                    started.incr();
                                    sleep(HOUR).await;
                                    Ok::<_, TestError>(())
                                });
                            }
                            sleep(HOUR).await;
                            Ok(())
                        })
                        .await
                        .map_err(|_| TestError("inner"))
                    });
                }
                until(|| started.get() == CHILDREN * GRANDCHILDREN).await;
                handle.cancel();
                sleep(HOUR).await;
                Ok::<_, TestError>(())
            })
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(dropped.get(), CHILDREN * GRANDCHILDREN);
    let threads = threads.lock().unwrap();
    assert_eq!(threads.len(), CHILDREN * GRANDCHILDREN);
    if backend == "tokio_multi" {
        assert!(
            threads.iter().all(|t| *t != root),
            "grandchildren ran on worker threads"
        );
    }
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n1_ten_thousand_children_cancelled_at_once, virtual_time);
/// C2, N1: 10,000 parked children (half on hatchery sleeps, half on foreign pending
/// futures) cancelled at once by `n.cancel()`: every one is dropped before `nursery`
/// returns.
async fn n1_ten_thousand_children_cancelled_at_once<K: Kind>() {
    const N: usize = 10_000;
    let started = Counter::new();
    let dropped = Counter::new();
    let r = K::nursery(|n| {
        let (started, dropped) = (started.clone(), dropped.clone());
        async move {
            for i in 0..N {
                let (started, guard) = (started.clone(), dropped.guard());
                n.spawn(async move {
                    let _guard = guard;
                    started.incr();
                    if i % 2 == 0 {
                        sleep(HOUR).await;
                    } else {
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, TestError>(())
                });
            }
            until(|| started.get() == N).await;
            n.cancel();
            sleep(HOUR).await;
            Ok(())
        }
    })
    .await;
    let dropped_at_return = dropped.get();
    assert!(r.unwrap_err().is_cancelled());
    assert_eq!(dropped_at_return, N);
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(
    n1_ten_thousand_children_cancelled_by_outer_timeout,
    virtual_time
);
/// C2, N1: the same 10,000 parked children cancelled by an outer `move_on_after`.
async fn n1_ten_thousand_children_cancelled_by_outer_timeout<K: Kind>() {
    const N: usize = 10_000;
    let started = Counter::new();
    let dropped = Counter::new();
    let out = move_on_after(
        secs(50),
        K::nursery(|n| {
            let (started, dropped) = (started.clone(), dropped.clone());
            async move {
                for _ in 0..N {
                    let (started, guard) = (started.clone(), dropped.guard());
                    n.spawn(async move {
                        let _guard = guard;
                        started.incr();
                        std::future::pending::<()>().await;
                        Ok::<_, TestError>(())
                    });
                }
                sleep(HOUR).await;
                Ok(())
            }
        }),
    )
    .await;
    let dropped_at_return = dropped.get();
    assert_eq!(out, None);
    assert_eq!(started.get(), N, "every child got its first poll");
    assert_eq!(dropped_at_return, N);
    assert_eq!(elapsed(), secs(50));
}

each_kind!(n5_spawn_while_draining, virtual_time);
/// N5: spawning into a nursery that is being drained after a cancel still works
/// (from a child in cleanup), and the new child gets its first poll.
async fn n5_spawn_while_draining<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let n2 = n.clone();
            let log2 = log.clone();
            n.spawn(async move {
                hatchery::shield(async {
                    until(|| n2.is_cancelled()).await;
                    let log3 = log2.clone();
                    let h = n2.try_spawn(async move {
                        log3.push("late child first poll");
                        checkpoint().await;
                        log3.push("unreachable");
                        Ok(())
                    });
                    assert!(h.is_ok(), "the nursery is still open while it drains");
                })
                .await;
                Ok::<_, TestError>(())
            });
            n.cancel();
            sleep(HOUR).await;
            Ok(())
        }
    })
    .await;
    assert!(r.unwrap_err().is_cancelled());
    assert_eq!(log.events(), ["late child first poll"]);
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n4_outer_cancel_after_body_value_stalls, virtual_time);
/// N4 (trio): an outer cancellation that arrives while the body has already returned
/// its value and the nursery waits for children: waiting is a suspension point, so
/// the enclosing scope catches the cancellation and the nursery never returns.
async fn n4_outer_cancel_after_body_value_stalls<K: Kind>() {
    let log = Log::new();
    let dropped = Counter::new();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run({
            let (log, dropped, handle) = (log.clone(), dropped.clone(), handle.clone());
            async move {
                let r = K::nursery(|n| async move {
                    let guard = dropped.guard();
                    n.spawn(async move {
                        let _guard = guard;
                        sleep(HOUR).await;
                        Ok(())
                    });
                    n.spawn(async move {
                        sleep(secs(2)).await;
                        handle.cancel();
                        Ok(())
                    });
                    Ok::<_, TestError>(5)
                })
                .await;
                log.push("unreachable: nursery returned");
                r
            }
        })
        .await;
    assert_eq!(out, None);
    assert!(log.is_empty());
    assert_eq!(dropped.get(), 1);
    assert!(handle.cancelled_caught());
    assert_eq!(elapsed(), secs(2));
}

each_kind!(c3_nursery_that_never_suspends_returns_value);
/// C1, C3 with N1: a nursery that never suspends (its body returns at once and it has
/// no children to wait for) is not an interruption point: inside a scope cancelled
/// before entry, its value comes back and the scope returns the body's value. (Modern
/// trio likewise ends a nursery with nothing to wait for with a cancel-*shielded*
/// checkpoint.)
async fn c3_nursery_that_never_suspends_returns_value<K: Kind>() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    handle.cancel();
    let out = scope
        .run(async { K::nursery(|_n: kinds::Nursery<K, TestError>| async { Ok(5) }).await })
        .await;
    assert_eq!(out, Some(Ok(5)));
    assert!(!handle.cancelled_caught());
}

each_kind!(n4_own_and_outer_cancel_outer_wins);
/// N4: a nursery's own cancel and an outer cancel together: the outer scope catches,
/// the nursery reports nothing.
async fn n4_own_and_outer_cancel_outer_wins<K: Kind>() {
    let log = Log::new();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run({
            let (log, handle) = (log.clone(), handle.clone());
            async move {
                let r = K::nursery(|n| async move {
                    n.cancel();
                    handle.cancel();
                    checkpoint().await;
                    Ok::<_, TestError>(())
                })
                .await;
                log.push("unreachable: nursery returned");
                r
            }
        })
        .await;
    assert_eq!(out, None);
    assert!(log.is_empty());
    assert!(handle.cancelled_caught());
}

each_kind!(n4_own_cancel_body_value_from_shield, virtual_time);
/// N4: the nursery's own cancel while the body is in shielded work: the body finishes
/// its value without suspending again, so the nursery returns that value.
async fn n4_own_cancel_body_value_from_shield<K: Kind>() {
    let r = K::nursery(|n| async move {
        n.cancel();
        let v = hatchery::shield(async {
            sleep(secs(2)).await;
            8
        })
        .await;
        Ok::<_, TestError>(v)
    })
    .await;
    assert_eq!(r, Ok(8));
    assert_eq!(elapsed(), secs(2));
}

/// A future that is not hatchery's: ready once opened, whether or not its task was
/// cancelled meanwhile.
#[derive(Clone, Default)]
struct Gate(Arc<Mutex<(bool, Option<std::task::Waker>)>>);

impl Gate {
    fn open(&self) {
        let waker = {
            let mut g = self.0.lock().unwrap();
            g.0 = true;
            g.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether a task waits on the gate (its `wait` returned `Pending`).
    fn has_waiter(&self) -> bool {
        self.0.lock().unwrap().1.is_some()
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            let mut g = self.0.lock().unwrap();
            if g.0 {
                std::task::Poll::Ready(())
            } else {
                g.1 = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await
    }
}

each_kind!(cancelled_task_is_not_polled_again);
/// C1, N4: a task cancelled while suspended is dropped at that suspension point without
/// being polled again, even if what it waits for (here a future that is not hatchery's)
/// became ready meanwhile. The nursery's cancel also takes the task out of its child
/// list; the task must still know that this is not its first poll. On one thread the
/// order is exact: the child waits, the body cancels and opens the gate, then the child
/// is polled; on several threads the child may also be dropped before the gate opens, or
/// learn of the cancel as it links itself, at the end of the poll that suspended it.
async fn cancelled_task_is_not_polled_again<K: Kind>() {
    let log = Log::new();
    let gate = Gate::default();
    let out = K::nursery(|n| {
        let (log, gate) = (log.clone(), gate.clone());
        async move {
            n.spawn({
                let (log, gate) = (log.clone(), gate.clone());
                async move {
                    log.push("waiting");
                    gate.wait().await;
                    log.push("polled after cancel");
                    Ok::<_, TestError>(())
                }
            });
            // The child has suspended in `wait` (a cancel before that would let its first
            // poll run on through an open gate, as it should).
            until(|| gate.has_waiter()).await;
            n.cancel();
            gate.open();
            Ok(1)
        }
    })
    .await;
    // The body finished without suspending after its own cancel: its value stands.
    assert_eq!(out, Ok(1));
    assert_eq!(log.events(), ["waiting"]);
}

each_kind!(a_first_poll_value_does_not_pass_a_cancelled_child);
/// A nursery whose body returns its value in its first poll, in a cancelled scope, while
/// a child it spawned was cancelled meanwhile (on another thread; a polled child in that
/// same poll): the value does not pass, since that child was cut short; the scope
/// catches, as when the nursery waits.
async fn a_first_poll_value_does_not_pass_a_cancelled_child<K: Kind>() {
    let scope = CancelScope::new();
    scope.handle().cancel();
    let out = scope
        .run(K::nursery(|n| async move {
            n.spawn(async {
                sleep(HOUR).await;
                Ok::<_, TestError>(())
            });
            // Time for another thread to run the child and cancel it; on one thread it
            // runs later, and the nursery waits for it.
            std::thread::sleep(Duration::from_millis(50));
            Ok(1)
        }))
        .await;
    assert_eq!(out, None);
}

each_kind!(cancel_after_finish_is_recorded);
/// `cancel` on a nursery that has finished changes nothing, but `is_cancelled` says it
/// was called, as it did before the nursery finished.
async fn cancel_after_finish_is_recorded<K: Kind>() {
    let mut saved = None;
    K::nursery(|n: kinds::Nursery<K, TestError>| {
        saved = Some(n.clone());
        async { Ok(()) }
    })
    .await
    .unwrap();
    let n = saved.unwrap();
    assert!(!n.is_cancelled());
    n.cancel();
    assert!(n.is_cancelled());
}

each_kind!(
    cancelled_child_drops_its_locals_in_its_context,
    virtual_time
);
/// A cancelled child's locals are dropped as part of the task, in its context: a `Drop`
/// may read the clock, and sees its scope cancelled. (They were dropped outside any
/// runtime, where both panic.)
async fn cancelled_child_drops_its_locals_in_its_context<K: Kind>() {
    type Seen = Arc<Mutex<Option<(std::time::Instant, Deadline)>>>;
    struct Stamp(Seen);
    impl Drop for Stamp {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some((hatchery::now(), current_effective_deadline()));
        }
    }
    let start = hatchery::now();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    K::nursery(|n: kinds::Nursery<K, TestError>| async move {
        n.spawn(async move {
            let _stamp = Stamp(s);
            sleep(HOUR).await;
            Ok(())
        });
        sleep(secs(3)).await;
        n.cancel();
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        Some((start + secs(3), Deadline::Cancelled))
    );
}

/// A `Drop` in a cancelled task's future that blocks on a hatchery wait (async cleanup
/// done the sync way): the wait would never complete in the cancelled task, so it panics
/// and says what to do instead, rather than hang the executor's thread.
#[test]
fn drop_blocking_on_a_hatchery_wait_panics_instead_of_hanging() {
    struct BlockingCleanup;
    impl Drop for BlockingCleanup {
        fn drop(&mut self) {
            futures_lite::future::block_on(sleep(hatchery_tests::ms(1)));
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| {
            hatchery_tokio::run_current_thread(async {
                nursery(|n: Nursery<TestError>| async move {
                    n.spawn(async move {
                        let _cleanup = BlockingCleanup;
                        sleep(HOUR).await;
                        Ok(())
                    });
                    sleep(hatchery_tests::ms(5)).await;
                    n.cancel();
                    Ok(())
                })
                .await
            })
        });
        let _ = tx.send(r);
    });
    let r = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the runtime thread hung in a Drop that blocks on hatchery code");
    let payload = r.expect_err("the blocking wait panics");
    let message = hatchery_tests::panic_message(&*payload);
    assert!(
        message.contains("hatchery wait polled in a `Drop`"),
        "{message}"
    );
}

/// A `Drop` that blocks on a hatchery wait (here an event that is set, so the wait would
/// complete at once anywhere else).
struct BlockOnEvent(Arc<hatchery::sync::Event>);

impl Drop for BlockOnEvent {
    fn drop(&mut self) {
        futures_lite::future::block_on(self.0.wait());
    }
}

/// Runs `root` on smol in a thread of its own; the panic message it ends with, if any.
/// Fails if it hangs.
fn panic_of<F>(root: impl FnOnce() -> F + Send + 'static) -> Option<String>
where
    F: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            hatchery_smol::run_with_threads(2, root())
        }));
        let _ = tx.send(
            r.err()
                .map(|p| hatchery_tests::panic_message(&*p).to_string()),
        );
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("hung: a wait in the Drop of cancelled code never returns")
}

/// The locals of a cancelled scope's body are dropped in the context around it: when that
/// is cancelled too, a wait there would never complete, so it panics and says so (from
/// an audit: a shielded cleanup scope with a limit of its own, ended by that limit inside
/// cancelled work, hung its thread with no message).
#[test]
fn drop_blocking_in_a_cancelled_scope_body_inside_cancelled_work_panics() {
    let message = panic_of(|| async {
        let ev = Arc::new(hatchery::sync::Event::new());
        ev.set();
        let outer = CancelScope::new();
        outer.handle().cancel();
        outer
            .run(async {
                CancelScope::new()
                    .with_shield(true)
                    .with_timeout(hatchery_tests::ms(10))
                    .run(async {
                        let _cleanup = BlockOnEvent(ev.clone());
                        sleep(HOUR).await;
                    })
                    .await
            })
            .await;
    });
    let message = message.expect("the blocking wait panics");
    assert!(
        message.contains("hatchery wait polled in a `Drop`"),
        "{message}"
    );
}

/// The same for a cancelled nursery's body.
#[test]
fn drop_blocking_in_a_cancelled_nursery_body_inside_cancelled_work_panics() {
    let message = panic_of(|| async {
        let ev = Arc::new(hatchery::sync::Event::new());
        ev.set();
        let outer = CancelScope::new();
        let h = outer.handle();
        outer
            .run(nursery(|n: Nursery<TestError>| async move {
                n.spawn(async move {
                    h.cancel();
                    Ok(())
                });
                let _cleanup = BlockOnEvent(ev.clone());
                sleep(HOUR).await;
                Ok(())
            }))
            .await;
    });
    let message = message.expect("the blocking wait panics");
    assert!(
        message.contains("hatchery wait polled in a `Drop`"),
        "{message}"
    );
}

/// A scope that cancelled itself (its own timeout) while the code around it runs on: a
/// wait in its body's `Drop` can complete, and does.
#[hatchery::test]
async fn drop_blocking_in_a_scope_body_that_timed_out_by_itself_completes() {
    let ev = Arc::new(hatchery::sync::Event::new());
    ev.set();
    let out = move_on_after(hatchery_tests::ms(5), async {
        let _cleanup = BlockOnEvent(ev.clone());
        sleep(HOUR).await;
    })
    .await;
    assert_eq!(out, None);
}

/// A `Drop` that blocks on a scope of its own that is cancelled (a limit of its own that
/// passes, say): that scope catches its cancellation.
struct InnerCancelledScope(Arc<Mutex<Option<Option<()>>>>);

impl Drop for InnerCancelledScope {
    fn drop(&mut self) {
        let r = futures_lite::future::block_on(async {
            let s = CancelScope::new();
            s.handle().cancel();
            s.run(sleep(HOUR)).await
        });
        *self.0.lock().unwrap() = Some(r);
    }
}

/// In the body of a scope that cancelled itself while the code around it runs on, a
/// `Drop` may run a scope that cancels itself: it catches that (from a review: the first
/// wait in it panicked with the Drop message, as if the code around were cancelled).
#[hatchery::test(virtual_time)]
async fn drop_in_a_self_cancelled_scope_body_runs_an_inner_cancelled_scope() {
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let out = move_on_after(secs(1), async move {
        let _cleanup = InnerCancelledScope(s);
        sleep(HOUR).await;
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(*seen.lock().unwrap(), Some(None));
}

each_kind!(
    drop_in_a_self_cancelled_nursery_body_runs_an_inner_cancelled_scope,
    virtual_time
);
/// The same in the body of a nursery cancelled by its own `cancel()`.
async fn drop_in_a_self_cancelled_nursery_body_runs_an_inner_cancelled_scope<K: Kind>() {
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let r = K::nursery(|n: kinds::Nursery<K, TestError>| async move {
        let _cleanup = InnerCancelledScope(s);
        n.cancel();
        sleep(HOUR).await;
        Ok(())
    })
    .await;
    assert!(r.unwrap_err().is_cancelled());
    assert_eq!(*seen.lock().unwrap(), Some(None));
}

each_kind!(
    drop_of_a_cancelled_task_can_wait_inside_a_shield,
    virtual_time
);
/// Inside a shield in such a `Drop`, a scope cancelled itself catches its cancellation as
/// anywhere else: its wait is not one that could never complete, and must not panic.
async fn drop_of_a_cancelled_task_can_wait_inside_a_shield<K: Kind>() {
    type Seen = Arc<Mutex<Option<Option<()>>>>;
    struct Cleanup(Seen);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let r = futures_lite::future::block_on(shield(async {
                let s = CancelScope::new();
                s.handle().cancel();
                s.run(sleep(HOUR)).await
            }));
            *self.0.lock().unwrap() = Some(r);
        }
    }
    let seen: Seen = Arc::default();
    let s = seen.clone();
    K::nursery(|n: kinds::Nursery<K, TestError>| async move {
        n.spawn(async move {
            let _cleanup = Cleanup(s);
            sleep(HOUR).await;
            Ok(())
        });
        sleep(secs(1)).await;
        n.cancel();
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(None));
}
