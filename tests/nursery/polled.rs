//! Polled (borrowing) nurseries: children that borrow from the caller's stack, polled by
//! the nursery's own task, under the rules of the spawning nursery (N1-N7, I1-I4).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_lite::FutureExt;
use hatchery::testing::elapsed;
use hatchery::{
    current_effective_deadline, finally, move_on_after, nursery, shield, sleep, CancelScope,
    NurseryError, Polled, PolledLocal, StartError,
};
use hatchery_tests::{ms, panic_message, secs, Log, TestError};

fn assert_send<T: Send>(_: &T) {}

/// Records when the wrapped future is dropped.
struct OnDrop<F> {
    fut: Pin<Box<F>>,
    _guard: hatchery_tests::DropGuard,
}

impl<F: Future> Future for OnDrop<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.fut.as_mut().poll(cx)
    }
}

/// I1: children borrow a local `Vec` (shared) and disjoint `&mut` slots; both are used
/// mutably again after the nursery returns.
#[hatchery::test(virtual_time)]
async fn i1_borrows_local_vec_mutated_after() {
    let mut data = vec![1u64, 2, 3];
    let mut outs = vec![0u64; 3];
    let sum = Polled::nursery(|n| {
        let data = &data;
        let outs = &mut outs;
        async move {
            let h = n.spawn(async move {
                sleep(ms(2)).await;
                Ok::<_, TestError>(data.iter().sum::<u64>())
            });
            for (i, slot) in outs.iter_mut().enumerate() {
                n.spawn(async move {
                    sleep(ms(1)).await;
                    *slot = data[i] * 10;
                    Ok(())
                });
            }
            Ok(h.join().await.unwrap())
        }
    })
    .await
    .unwrap();
    data.push(4);
    outs.push(40);
    assert_eq!(sum, 6);
    assert_eq!(data, [1, 2, 3, 4]);
    assert_eq!(outs, [10, 20, 30, 40]);
}

/// I1: the nursery future is `Send` when its children are, and can be awaited in a
/// spawned task of a multi-threaded runtime.
#[hatchery::test]
async fn send_nursery_in_spawned_task() {
    let r = nursery(|n| async move {
        let h = n.spawn(async {
            let local = vec![5u32, 6];
            let fut = Polled::nursery(|n| {
                let local = &local;
                async move {
                    let h = n.spawn(async move { Ok::<_, TestError>(local[0] + local[1]) });
                    Ok(h.join().await.unwrap())
                }
            });
            assert_send(&fut);
            fut.await.map_err(|_| TestError("polled"))
        });
        Ok::<_, TestError>(h.join().await.unwrap())
    })
    .await
    .unwrap();
    assert_eq!(r, 11);
}

/// I1: `!Send` children (an `Rc`, a `RefCell` borrow held across a suspension) on each
/// backend's current-thread runtime.
fn rc_children() -> u32 {
    let shared = Rc::new(RefCell::new(Vec::new()));
    let r = async {
        PolledLocal::nursery(|n| {
            let shared = shared.clone();
            async move {
                for i in 0..4u32 {
                    let shared = shared.clone();
                    n.spawn(async move {
                        hatchery::checkpoint().await;
                        shared.borrow_mut().push(i);
                        Ok::<_, TestError>(())
                    });
                }
                let h = n.spawn(async move { Ok(Rc::new(7u32)) });
                Ok(*h.join().await.unwrap())
            }
        })
        .await
        .unwrap()
    };
    let v = hatchery_tokio::run_current_thread(r);
    assert_eq!(shared.borrow().len(), 4);
    v
}

#[test]
fn local_rc_children_tokio_current_thread() {
    assert_eq!(rc_children(), 7);
}

#[test]
fn local_rc_children_smol_current_thread() {
    let shared = Rc::new(Cell::new(0u32));
    let v = hatchery_smol::run_current_thread(async {
        let shared = &shared;
        PolledLocal::nursery(|n| async move {
            for _ in 0..3 {
                let s = shared.clone();
                n.spawn(async move {
                    sleep(ms(1)).await;
                    s.set(s.get() + 1);
                    Ok::<_, TestError>(())
                });
            }
            Ok(())
        })
        .await
    });
    v.unwrap();
    assert_eq!(shared.get(), 3);
}

/// N1: the nursery returns only after every child finished, even if the body returns
/// at once.
#[hatchery::test(virtual_time)]
async fn n1_waits_for_every_child() {
    let done = AtomicUsize::new(0);
    let done_ref = &done;
    Polled::nursery(|n| async move {
        for i in 0..5u64 {
            let done = done_ref;
            n.spawn(async move {
                sleep(ms(10 * i)).await;
                done.fetch_add(1, Ordering::SeqCst);
                Ok::<_, TestError>(())
            });
        }
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 5);
    assert_eq!(elapsed(), ms(40));
}

/// N2: the first error cancels the body and the siblings; every error comes back in the
/// order it happened (one returned from a shield after the cancellation comes second).
#[hatchery::test(virtual_time)]
async fn n2_first_error_cancels_rest_every_error_in_order() {
    let log = Log::new();
    let log_ref = &log;
    let r: Result<(), _> = Polled::nursery(|n| async move {
        let log = log_ref;
        n.spawn(async move {
            let _g = log.on_drop("sleeper dropped");
            sleep(secs(3600)).await;
            Ok(())
        });
        n.spawn(async move {
            shield(sleep(ms(5))).await;
            Err::<(), _>(TestError("second"))
        });
        n.spawn(async {
            sleep(ms(1)).await;
            Err::<(), _>(TestError("first"))
        });
        sleep(secs(3600)).await;
        Ok(())
    })
    .await;
    match r {
        Err(NurseryError::Failed(errors)) => {
            assert_eq!(errors, [TestError("first"), TestError("second")])
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(log.contains("sleeper dropped"));
    assert_eq!(elapsed(), ms(5));
}

/// N3: a panic cancels the rest and is resumed once every child has finished (a
/// shielded cleanup of a sibling completes first); it wins over errors.
#[hatchery::test(virtual_time)]
async fn n3_panic_resumed_after_all_finished() {
    let log = Log::new();
    let log_ref = &log;
    let r = std::panic::AssertUnwindSafe(Polled::nursery(|n| async move {
        let log = log_ref;
        n.spawn(async move {
            let r = sleep(secs(3600)).await;
            Ok::<_, TestError>(r)
        });
        n.spawn(async move {
            finally(sleep(secs(3600)), async {
                sleep(ms(3)).await;
                log.push("cleanup done");
            })
            .await;
            Ok(())
        });
        n.spawn(async {
            shield(sleep(ms(2))).await;
            Err::<(), _>(TestError("error"))
        });
        n.spawn(async {
            sleep(ms(1)).await;
            panic!("boom");
            #[allow(unreachable_code)]
            Ok::<(), TestError>(())
        });
        Ok(())
    }))
    .catch_unwind()
    .await;
    let p = r.unwrap_err();
    assert_eq!(panic_message(&*p), "boom");
    assert_eq!(log.events(), ["cleanup done"]);
    assert_eq!(elapsed(), ms(4));
}

/// N4: the nursery's own cancel ends a body that had no value as `Cancelled`; an outer
/// scope's cancellation is not an error, and the scope catches it after the children
/// are gone.
#[hatchery::test(virtual_time)]
async fn n4_cancellation_is_not_an_error() {
    let r: Result<(), _> = Polled::nursery(|n| async move {
        n.spawn(async {
            sleep(secs(3600)).await;
            Ok::<_, TestError>(())
        });
        sleep(ms(1)).await;
        n.cancel();
        sleep(secs(3600)).await;
        Ok(())
    })
    .await;
    assert!(r.unwrap_err().is_cancelled());

    let log = Log::new();
    let log_ref = &log;
    let out = move_on_after(
        ms(5),
        OnDrop {
            fut: Box::pin(Polled::nursery(|n| async move {
                let log = log_ref;
                n.spawn(async move {
                    let _g = log.on_drop("child dropped");
                    sleep(secs(3600)).await;
                    Ok::<_, TestError>(())
                });
                Ok(())
            })),
            _guard: log.on_drop("nursery dropped"),
        },
    )
    .await;
    assert!(out.is_none());
    assert_eq!(log.events(), ["child dropped", "nursery dropped"]);
    assert_eq!(elapsed(), ms(6));
}

/// N5, I2: children spawn siblings; a child spawned into a cancelled nursery gets its
/// first poll; spawning after the nursery finished fails.
#[hatchery::test(virtual_time)]
async fn n5_spawning_from_children_and_after_close() {
    let log = Log::new();
    let mut saved = None;
    let (log_ref, saved_ref) = (&log, &mut saved);
    Polled::nursery(|n| async move {
        let n2 = n.clone();
        let log = log_ref;
        n.spawn(async move {
            let h = n2.spawn(async move {
                sleep(ms(1)).await;
                Ok(3)
            });
            Ok::<_, TestError>(h.join().await.unwrap())
        });
        n.cancel();
        n.spawn(async move {
            log.push("first poll");
            sleep(secs(1)).await;
            log.push("never");
            Ok(0)
        });
        *saved_ref = Some(n);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(log.events(), ["first poll"]);
    let closed = saved.unwrap();
    assert!(closed.is_closed());
    assert!(closed.try_spawn(async { Ok(1) }).is_err());
}

/// N6: `start` returns the value passed to `started`; an error before it comes out of
/// `start`, not the nursery; a child that returns without it gives `NotStarted`.
#[hatchery::test(virtual_time)]
async fn n6_start() {
    let name = String::from("svc");
    let served = Cell::new(false);
    let (name, served_ref) = (&name, &served);
    let r = PolledLocal::nursery(|n| async move {
        let served = served_ref;
        let v = n
            .start(|status| async move {
                sleep(ms(1)).await;
                status.started(name.len());
                sleep(ms(2)).await;
                served.set(true);
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(v, 3);
        let e = n.start(|_s: hatchery::TaskStatus<()>| async { Err::<(), _>(TestError("bind")) });
        assert!(matches!(
            e.await,
            Err(StartError::Failed(TestError("bind")))
        ));
        let ns = n.start(|_s: hatchery::TaskStatus<()>| async { Ok::<_, TestError>(()) });
        assert!(matches!(ns.await, Err(StartError::NotStarted)));
        Ok::<_, TestError>(v)
    })
    .await;
    assert_eq!(r.unwrap(), 3);
    assert!(served.get());
    assert_eq!(elapsed(), ms(3));
}

/// N7, I2: a handle gives the child's value, cancels only its child (not a failure), and
/// tells whether it finished; dropping it does not cancel the child.
#[hatchery::test(virtual_time)]
async fn n7_handles() {
    let finished = Cell::new(false);
    let finished_ref = &finished;
    let r = PolledLocal::nursery(|n| async move {
        let finished = finished_ref;
        let slow = n.spawn(async {
            sleep(secs(3600)).await;
            Ok::<_, TestError>(1)
        });
        let dropped = n.spawn(async move {
            sleep(ms(2)).await;
            finished.set(true);
            Ok(2)
        });
        drop(dropped);
        let quick = n.spawn(async { Ok(3) });
        assert_eq!(quick.join().await.unwrap(), 3);
        assert!(!slow.is_finished());
        slow.cancel();
        let slow_end = slow.join().await.unwrap_err();
        assert!(slow_end.is_cancelled());
        Ok(7)
    })
    .await;
    assert_eq!(r.unwrap(), 7);
    assert!(finished.get());
}

/// N7: a polled child's handle is the spawning nursery's `TaskHandle`, with the same
/// methods: `cancel_with` gives the child a reason with its message, `spawned_at` is the
/// call of `spawn`, a polled child has no name, and its `Debug` says all that.
#[hatchery::test(virtual_time)]
async fn n7_a_polled_handle_is_a_task_handle() {
    let r = Polled::nursery(|n| async move {
        let line = line!() + 1;
        let h: hatchery::TaskHandle<u8> = n.spawn(async {
            sleep(secs(3600)).await;
            Ok::<_, TestError>(1)
        });
        assert_eq!(
            (h.spawned_at().file(), h.spawned_at().line()),
            (file!(), line)
        );
        assert_eq!(h.name(), None);
        assert_eq!(h.cancel_reason(), None);
        sleep(ms(1)).await;
        h.cancel_with("no longer needed");
        let reason = h.cancel_reason().expect("cancelled by its handle");
        assert!(
            matches!(reason.origin(), hatchery::CancelReason::Explicit { .. }),
            "{reason}"
        );
        assert_eq!(reason.message(), Some("no longer needed"));
        let debug = format!("{h:?}");
        assert!(
            debug.contains("TaskHandle") && debug.contains(file!()),
            "{debug}"
        );
        assert!(h.join().await.unwrap_err().is_cancelled());
        Ok(())
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(
        elapsed(),
        ms(1),
        "the cancelled child did not keep the nursery"
    );
}

/// N7: a polled child that joins its own handle from inside a nursery it opened would
/// wait for itself: it panics and says so (as a task that joins itself does).
#[hatchery::test(virtual_time)]
async fn n7_a_polled_child_joining_itself_from_a_nested_nursery_panics() {
    let slot = std::sync::Mutex::new(None::<hatchery::TaskHandle<()>>);
    let slot = &slot;
    let r = hatchery_tests::catch_panic(Polled::nursery(|n| async move {
        let h = n.spawn(async move {
            sleep(ms(1)).await;
            let me = slot.lock().unwrap().take().unwrap();
            Polled::nursery(|m| async move {
                m.spawn(async move {
                    move_on_after(secs(3600), me.join()).await;
                    Ok::<_, TestError>(())
                });
                Ok(())
            })
            .await
            .map_err(|_| TestError("inner"))
        });
        *slot.lock().unwrap() = Some(h);
        Ok(())
    }))
    .await;
    let msg = r.unwrap_err();
    assert!(msg.contains("joins its own handle"), "{msg}");
    assert!(
        elapsed() < secs(3600),
        "the child waited an hour for itself"
    );
}
/// I2: a child dropped mid-poll (at its suspension point) by a cancelled scope releases
/// its borrow before the nursery returns: both a scope inside the child and a handle's
/// cancel. (Holding the borrow across a suspension is the point.)
#[hatchery::test(virtual_time)]
#[allow(clippy::await_holding_refcell_ref)]
async fn i2_cancelled_child_releases_borrow_before_return() {
    let cell = RefCell::new(0);
    let cell_ref = &cell;
    let r = PolledLocal::nursery(|n| async move {
        let c = cell_ref;
        let h = n.spawn(async move {
            let out = move_on_after(ms(1), async {
                let mut g = c.borrow_mut();
                sleep(secs(3600)).await;
                *g += 1;
            })
            .await;
            assert!(out.is_none());
            // The scope dropped the borrow at its suspension point.
            assert!(c.try_borrow_mut().is_ok());
            Ok::<_, TestError>(())
        });
        h.join().await.unwrap();
        let h = n.spawn(async move {
            let _g = c.borrow_mut();
            sleep(secs(3600)).await;
            Ok(())
        });
        sleep(ms(1)).await;
        assert!(c.try_borrow_mut().is_err());
        h.cancel();
        assert!(h.join().await.unwrap_err().is_cancelled());
        assert!(c.try_borrow_mut().is_ok());
        Ok(())
    })
    .await;
    r.unwrap();
    *cell.borrow_mut() += 1;
    assert_eq!(cell.into_inner(), 1);
}

/// I1, I2: scopes, deadlines, shields and the effective deadline inside children work
/// as in spawned tasks; an outer cancellation waits for a shielded child.
#[hatchery::test(virtual_time)]
async fn i1_scopes_inside_children() {
    let log = Log::new();
    let scope = CancelScope::new().with_timeout(ms(10));
    let log_ref = &log;
    let out = scope
        .run(Polled::nursery(|n| async move {
            let log = log_ref;
            n.spawn(async move {
                let d = current_effective_deadline().instant(hatchery::now());
                assert_eq!(
                    d.unwrap().saturating_duration_since(hatchery::now()),
                    ms(10)
                );
                let inner = move_on_after(ms(2), sleep(secs(1))).await;
                assert!(inner.is_none());
                log.push("inner timeout");
                shield(async {
                    sleep(ms(20)).await;
                    log.push("shield done");
                })
                .await;
                sleep(ms(1)).await;
                log.push("never");
                Ok::<_, TestError>(())
            });
            Ok(())
        }))
        .await;
    assert!(out.is_none());
    assert_eq!(log.events(), ["inner timeout", "shield done"]);
    assert_eq!(elapsed(), ms(22));
}

/// I1, I2: nested freely: a spawning nursery inside a polled child, and a polled nursery in a
/// spawned task; an outer cancellation reaches all of them.
#[hatchery::test(virtual_time)]
async fn i2_nested_both_ways_cancelled_from_outside() {
    let log = Log::new();
    let log_ref = &log;
    let out = move_on_after(
        ms(5),
        Polled::nursery(|n| async move {
            let log = log_ref.clone();
            n.spawn(async move {
                nursery(|s| async move {
                    let l2 = log.clone();
                    s.spawn(async move {
                        let _g = l2.on_drop("spawned dropped");
                        let local = 1;
                        Polled::nursery(|i| async move {
                            let local = &local;
                            i.spawn(async move {
                                let _ = local;
                                sleep(secs(3600)).await;
                                Ok::<_, TestError>(())
                            });
                            Ok(())
                        })
                        .await
                        .map_err(|_| TestError("inner"))
                    });
                    Ok::<_, TestError>(())
                })
                .await
                .map_err(|_| TestError("outer"))
            });
            Ok(())
        }),
    )
    .await;
    assert!(out.is_none());
    assert_eq!(log.events(), ["spawned dropped"]);
}

/// I1: 100,000 children, each yielding once, all borrowing one counter.
#[hatchery::test]
async fn hundred_thousand_children() {
    let count = AtomicUsize::new(0);
    let count_ref = &count;
    Polled::nursery(|n| async move {
        for _ in 0..100_000 {
            let count = count_ref;
            n.spawn(async move {
                hatchery::checkpoint().await;
                count.fetch_add(1, Ordering::Relaxed);
                Ok::<_, TestError>(())
            });
        }
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(count.load(Ordering::Relaxed), 100_000);
}

/// C1, I2: a child that never suspends again is not interrupted by a cancellation.
#[hatchery::test]
async fn c1_child_that_never_suspends_finishes() {
    let r = Polled::nursery(|n| async move {
        let h = n.spawn(async { Ok::<_, TestError>((0..1000u32).sum::<u32>()) });
        n.cancel();
        Ok(h)
    })
    .await
    .unwrap();
    assert!(r.is_finished());
}

/// I1, G2: the borrowing combinators.
#[hatchery::test(virtual_time)]
async fn combinators_borrow() {
    let client = String::from("client");
    let fetch = |id: u64| {
        let client = &client;
        async move {
            sleep(ms(10 - id)).await;
            format!("{client}:{id}")
        }
    };
    assert_eq!(
        Polled::join([fetch(1), fetch(2)]).await,
        ["client:1", "client:2"]
    );
    assert_eq!(Polled::race([fetch(1), fetch(2)]).await, "client:2");

    let log = Log::new();
    let check = |i: u64| {
        let log = &log;
        async move {
            let _g = log.on_drop("dropped");
            sleep(ms(i)).await;
            if i == 2 {
                Err(TestError("two"))
            } else {
                Ok(i)
            }
        }
    };
    let r = Polled::try_join([check(1), check(2), check(100)]).await;
    assert_eq!(r.unwrap_err().into_errors(), [TestError("two")]);
    assert_eq!(log.count("dropped"), 3);
    assert_eq!(Polled::race_ok([check(2), check(3)]).await.unwrap(), 3);
    let all_fail = Polled::race_ok([check(2)]).await.unwrap_err();
    assert_eq!(all_fail.into_errors(), [TestError("two")]);

    let running = Cell::new(0);
    let peak = Cell::new(0);
    let out = Polled::map(3, 0..10u64, |i| {
        let (running, peak) = (&running, &peak);
        async move {
            running.set(running.get() + 1);
            peak.set(peak.get().max(running.get()));
            sleep(ms(1)).await;
            running.set(running.get() - 1);
            i
        }
    })
    .join()
    .await;
    assert_eq!(out, (0..10).collect::<Vec<_>>());
    assert_eq!(peak.get(), 3);
}

/// I1: the combinators' futures are `Send` when their futures are, also when those borrow
/// from the awaiting task's stack: each one awaited in a spawned task, with a few
/// futures (their fast path) and more than that path takes (the engine's).
#[hatchery::test(virtual_time)]
async fn combinators_send_in_spawned_task() {
    let r = nursery(|n| async move {
        let h = n.spawn(async {
            let data: Vec<u64> = (0..100).collect();
            let data = &data;
            let get = |i: usize| async move {
                sleep(ms(data[i] % 7)).await;
                data[i]
            };
            let try_get = |i: usize| async move { Ok::<_, TestError>(get(i).await) };
            let few = Polled::join([get(1), get(2)]);
            assert_send(&few);
            assert_eq!(few.await, [1, 2]);
            let many = Polled::join((0..100).map(get));
            assert_send(&many);
            assert_eq!(many.await, *data);
            let tried = Polled::try_join((0..40).map(try_get));
            assert_send(&tried);
            assert_eq!(tried.await.unwrap().len(), 40);
            let raced = Polled::race((0..40).map(get));
            assert_send(&raced);
            assert_eq!(raced.await % 7, 0);
            let raced_ok = Polled::race_ok([try_get(3), try_get(5)]);
            assert_send(&raced_ok);
            assert_eq!(raced_ok.await.unwrap(), 3);
            let mapped = Polled::map(8, 0..20, get).join();
            assert_send(&mapped);
            assert_eq!(mapped.await.iter().sum::<u64>(), 190);
            Ok::<_, TestError>(data.len())
        });
        h.join().await.map_err(|_| TestError("join"))
    })
    .await
    .unwrap();
    assert_eq!(r, 100);
}

/// G3, N4: a polled `try_join` whose future failed returns the error in the poll it
/// failed in, even with siblings polled before it still pending: an enclosing
/// cancellation that comes before its next poll (here the nursery's, from a child polled
/// after the body) would otherwise drop it with the error.
#[hatchery::test(virtual_time)]
async fn try_join_error_survives_a_cancellation_before_its_next_poll() {
    let r = Polled::nursery(|n| async move {
        let canceller = n.clone();
        n.spawn(async move {
            canceller.cancel();
            Ok(())
        });
        let slow = async {
            sleep(secs(3600)).await;
            Ok(())
        };
        let failing = async { Err(TestError("failed")) };
        type Step = Pin<Box<dyn Future<Output = Result<(), TestError>> + Send>>;
        let futs: [Step; 2] = [Box::pin(slow), Box::pin(failing)];
        Polled::try_join(futs)
            .await
            .map_err(|e| e.into_errors().remove(0))
    })
    .await;
    assert_eq!(r.unwrap_err().into_errors(), [TestError("failed")]);
    assert_eq!(elapsed(), secs(0));
}

/// I4 (K1, K2 and G5 for the polled combinators): kept past a timeout and awaited after it:
/// one whose futures the timeout's cancellation did not reach (they were polled by the
/// timeout's own task, and it dropped only a reference to the combinator) was merely
/// paused, and finishes with its values; one that the cancellation reached while the
/// timeout ran (polled again while it was cancelled, a shielded sibling holding it
/// open) has lost its outputs and panics, as the spawning combinators do, `try_join`
/// included; a kept polled nursery returns `Err(Cancelled)` (K2).
#[hatchery::test(virtual_time)]
async fn i4_kept_polled_combinators() {
    use std::pin::pin;
    let base = 10;
    let get = |s: u64| {
        let base = &base;
        async move {
            sleep(secs(s)).await;
            Ok::<_, TestError>(base + s)
        }
    };
    // Paused (K1): the values come at 3 s, under no deadline.
    let mut op = pin!(Polled::join([get(2), get(3)]));
    assert!(move_on_after(secs(1), &mut op).await.is_none());
    let out: Vec<_> = op.await.into_iter().map(Result::unwrap).collect();
    assert_eq!(out, [12, 13]);
    assert_eq!(elapsed(), secs(3));

    // Reached (K2, G5): a shield beside it keeps the timeout's body polled after the
    // deadline, so the combinator sees the cancellation and drops its futures.
    async fn reached<F: Future>(op: F) -> String {
        let mut op = pin!(op);
        let _ = move_on_after(secs(1), async {
            let shielded = shield(sleep(secs(2)));
            futures_lite::future::zip(&mut op, shielded).await;
        })
        .await;
        match hatchery_tests::catch_panic(op).await {
            Ok(_) => panic!("a kept polled combinator returned"),
            Err(message) => message,
        }
    }
    let why = "its outputs are gone";
    let messages = [
        reached(Polled::join([get(100)])).await,
        reached(Polled::try_join([get(100), get(200)])).await,
        reached(Polled::race([get(100)])).await,
        reached(Polled::race_ok([get(100)])).await,
        reached(Polled::map(2, [100, 200], get).try_join()).await,
    ];
    for m in &messages {
        assert!(m.contains(why), "{m}");
    }

    let mut kept = pin!(Polled::nursery(|n| async move {
        n.spawn(get(100));
        Ok(())
    }));
    assert!(move_on_after(secs(1), &mut kept).await.is_none());
    assert!(kept.await.unwrap_err().is_cancelled());
}

/// I3: dropped from outside hatchery (the losing branch of a select), a polled nursery
/// drops its body and every child at once, before the drop returns; a forgotten one
/// never polls its children again, so what they borrowed is free to use (no lifetime
/// was extended).
#[hatchery::test]
async fn i3_dropped_from_outside_and_forgotten() {
    let log = Log::new();
    let polls = AtomicUsize::new(0);
    let out = {
        let (log, polls) = (&log, &polls);
        let work = Polled::nursery(|n| async move {
            for _ in 0..3 {
                n.spawn(async move {
                    let _g = log.on_drop("child dropped");
                    loop {
                        polls.fetch_add(1, Ordering::SeqCst);
                        hatchery::checkpoint().await;
                    }
                    #[allow(unreachable_code)]
                    Ok::<_, TestError>(())
                });
            }
            let _g = log.on_drop("body dropped");
            std::future::pending::<Result<(), TestError>>().await
        });
        let other = async {
            for _ in 0..5 {
                hatchery::checkpoint().await;
            }
            "other"
        };
        futures_lite::future::or(async { work.await.map(|()| "work").unwrap() }, other).await
    };
    assert_eq!(out, "other");
    assert_eq!(log.count("child dropped"), 3);
    assert_eq!(log.count("body dropped"), 1);

    let mut data = vec![1u32, 2, 3];
    let polls = AtomicUsize::new(0);
    let mut kept = None;
    {
        let (data, polls, kept) = (&data, &polls, &mut kept);
        let mut work = Box::pin(Polled::nursery(|n| {
            *kept = Some(n.spawn(async move {
                loop {
                    polls.fetch_add(data.len(), Ordering::SeqCst);
                    hatchery::checkpoint().await;
                }
                #[allow(unreachable_code)]
                Ok::<_, TestError>(())
            }));
            async { Ok(()) }
        }));
        let polled = futures_lite::future::poll_once(&mut work).await;
        assert!(polled.is_none());
        std::mem::forget(work);
    }
    // A handle that outlived the forgotten nursery sees a child that never ended; its
    // join would wait forever, and dropping it frees nothing the child borrowed.
    let kept = kept.unwrap();
    assert!(!kept.is_finished());
    assert!(futures_lite::future::poll_once(kept.join()).await.is_none());
    // Polled in that one poll of the nursery (up to its rounds' limit: it wakes itself).
    let seen = polls.load(Ordering::SeqCst);
    assert!(seen >= 3, "{seen}");
    data.push(4); // the forgotten nursery's child borrowed it: no one polls it again
    for _ in 0..5 {
        hatchery::checkpoint().await;
    }
    assert_eq!(polls.load(Ordering::SeqCst), seen);
    assert_eq!(data, [1, 2, 3, 4]);
}

/// N7 with a child's future and its output in one allocation: a handle that outlives
/// what the child borrowed (returned out of the nursery, the data dropped) still reads
/// the value, and freeing the allocation then touches nothing the future borrowed (Miri
/// runs this test).
#[hatchery::test(virtual_time)]
async fn n7_handle_outlives_what_its_child_borrowed() {
    let log = Log::new();
    let handle = {
        let data = vec![1u8, 2, 3];
        let data_ref = &data;
        let guard = log.on_drop("future dropped");
        let mut kept = None;
        Polled::nursery(|n| {
            kept = Some(n.spawn(async move {
                let _guard = guard;
                sleep(ms(1)).await;
                Ok::<_, TestError>(data_ref.iter().map(|&b| u32::from(b)).sum::<u32>())
            }));
            async { Ok(()) }
        })
        .await
        .unwrap();
        // The future was dropped where the child ended, not with the handle.
        assert_eq!(log.events(), ["future dropped"]);
        kept.unwrap()
    };
    assert!(handle.is_finished());
    assert_eq!(handle.join().await.unwrap(), 6);
}

/// N7: a child's value is dropped exactly once whatever its handle does: where the child
/// ends if the handle is gone, with the handle if it is kept and never joined, with the
/// join's output if joined; and a cancelled child's future is dropped at once, while its
/// handle still holds the allocation.
#[hatchery::test(virtual_time)]
async fn n7_values_and_futures_dropped_once() {
    let log = Log::new();
    let log_ref = &log;
    let kept = Polled::nursery(|n| async move {
        // Handle dropped before the child ends: the value is dropped where it ends.
        drop(n.spawn(async move {
            sleep(ms(1)).await;
            Ok::<_, TestError>(log_ref.on_drop("value of the handle-less child"))
        }));
        // Kept, never joined: dropped with the handle, after the nursery.
        let kept = n.spawn(async move { Ok(log_ref.on_drop("value of the kept child")) });
        // Joined: the value is the join's output.
        let joined = n.spawn(async move { Ok(log_ref.on_drop("value of the joined child")) });
        let value = joined.join().await.unwrap();
        drop(value);
        // Cancelled with its handle kept: its future is dropped when it is cancelled.
        let cancelled = n.spawn(async move {
            let _guard = log_ref.on_drop("future of the cancelled child");
            sleep(secs(3600)).await;
            Ok(log_ref.on_drop("never made"))
        });
        sleep(ms(2)).await;
        cancelled.cancel();
        sleep(ms(1)).await;
        assert!(log_ref.contains("future of the cancelled child"));
        assert!(cancelled.join().await.unwrap_err().is_cancelled());
        Ok(kept)
    })
    .await
    .unwrap();
    assert_eq!(log.count("value of the handle-less child"), 1);
    assert_eq!(log.count("value of the joined child"), 1);
    assert_eq!(log.count("future of the cancelled child"), 1);
    assert!(!log.contains("value of the kept child"));
    assert!(kept.is_finished());
    drop(kept);
    assert_eq!(log.count("value of the kept child"), 1);
    assert!(!log.contains("never made"));
}

/// N3 and N7: a child whose future panics as it is dropped (cancelled, its handle kept)
/// has its destructor run once; the handle reports the cancellation and the nursery the
/// panic.
#[hatchery::test(virtual_time)]
async fn n7_future_that_panics_when_dropped() {
    struct PanicOnDrop(Log);
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            self.0.push("dropped");
            panic!("boom in drop");
        }
    }
    let log = Log::new();
    let log_ref = &log;
    let r = std::panic::AssertUnwindSafe(Polled::nursery(|n| async move {
        let h = n.spawn(async move {
            let _p = PanicOnDrop(log_ref.clone());
            sleep(secs(3600)).await;
            Ok::<_, TestError>(())
        });
        sleep(ms(1)).await;
        h.cancel();
        assert!(h.join().await.unwrap_err().is_cancelled());
        Ok(())
    }))
    .catch_unwind()
    .await;
    assert_eq!(panic_message(&*r.unwrap_err()), "boom in drop");
    assert_eq!(log.count("dropped"), 1);
}

/// S1 for a polled nursery: `start` on one that has finished fails with `Closed`
/// without calling its closure (it called it, and dropped what it made, when `start` was
/// written twice).
#[hatchery::test(virtual_time)]
async fn s1_a_polled_start_on_a_closed_nursery_never_calls_the_closure() {
    let called = Cell::new(0);
    let mut saved = None;
    let keep = &mut saved;
    Polled::nursery(|n| async move {
        *keep = Some(n);
        Ok::<_, TestError>(())
    })
    .await
    .unwrap();
    let n = saved.unwrap();
    let start = n.start(|status: hatchery::TaskStatus<u16>| {
        called.set(called.get() + 1);
        async move {
            status.started(8080);
            Ok(())
        }
    });
    assert_eq!(called.get(), 0, "not called by `start`");
    assert!(matches!(start.await, Err(StartError::Closed)));
    assert_eq!(called.get(), 0, "nor by its first poll");
}

/// N6 for a polled nursery: a child whose `started` was called (here by the body, which
/// it handed its token to) keeps running in the nursery when its `start` is dropped
/// before it was polled again: the nursery takes it over.
#[hatchery::test(virtual_time)]
async fn n6_a_polled_child_started_before_its_start_is_dropped_keeps_running() {
    let done = std::sync::atomic::AtomicBool::new(false);
    let token = std::sync::Mutex::new(None);
    let (done, token) = (&done, &token);
    let r = Polled::nursery(|n| async move {
        let mut start = Box::pin(n.start(|status: hatchery::TaskStatus<u32>| async move {
            *token.lock().unwrap() = Some(status);
            sleep(ms(5)).await;
            done.store(true, Ordering::SeqCst);
            Ok::<_, TestError>(())
        }));
        // One poll launches the child, which the nursery polls (in this task) to its
        // sleep, where it has handed its token over.
        assert!(futures_lite::future::poll_once(start.as_mut())
            .await
            .is_none());
        let status = loop {
            if let Some(status) = token.lock().unwrap().take() {
                break status;
            }
            hatchery::checkpoint().await;
        };
        status.started(7);
        drop(start);
        Ok(())
    })
    .await;
    assert_eq!(r, Ok(()));
    assert!(
        done.load(Ordering::SeqCst),
        "the started child ran to its end in the nursery"
    );
    assert_eq!(elapsed(), ms(5));
}

/// The polled combinators have the spawning ones' family: `Polled::settle` runs every
/// future to its end, an error cancelling nothing, and returns every `Result` in input
/// order; a `Map`'s `settle` does the same, and `unordered` gives completion order.
#[hatchery::test(virtual_time)]
async fn polled_settle_and_unordered_maps() {
    let inputs = ["3", "x", "1"];
    let inputs = &inputs;
    let parse = |i: usize| async move {
        let secs: u64 = inputs[i].parse().unwrap_or(2);
        sleep(hatchery_tests::secs(secs)).await;
        inputs[i].parse::<u64>()
    };
    let all = Polled::settle([parse(0), parse(1), parse(2)]).await;
    assert_eq!(all[0], Ok(3));
    assert!(all[1].is_err(), "the error is kept, not a failure");
    assert_eq!(all[2], Ok(1));
    assert_eq!(elapsed(), secs(3), "the error cancelled nothing");

    let settled = Polled::map(2, 0..3, parse).settle().await;
    assert_eq!(settled.iter().filter(|r| r.is_ok()).count(), 2);
    assert!(settled[1].is_err());

    let order = Polled::map(3, 0..3, parse).unordered().join().await;
    let done: Vec<_> = order.into_iter().map(|r| r.ok()).collect();
    assert_eq!(
        done,
        [Some(1), None, Some(3)],
        "completion order: 1 s, 2 s, 3 s"
    );
}
