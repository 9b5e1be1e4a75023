//! `TaskHandle` (N7): join a child's value, cancel just that child, ask whether it has
//! finished; dropping the handle does not cancel the child. On both kinds of nursery (a
//! handle is one type for both), but for a race between threads of the executor.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Context;
use std::time::{Duration, Instant};

use hatchery::sync::Event;
use hatchery::testing::{elapsed, wait_all_tasks_blocked};
use hatchery::{checkpoint, nursery, sleep, JoinError, NurseryError, TaskHandle};
use hatchery_tests::{each_kind, hook, secs, until, Counter, Kind, Log, TestError, HOUR};

each_kind!(n7_h5_join_returns_value, virtual_time);
/// N7: `join` returns the child's value, from the body and from another child.
async fn n7_h5_join_returns_value<K: Kind>() {
    let r = K::nursery(|n| async move {
        let a = n.spawn(async {
            sleep(secs(2)).await;
            Ok::<_, TestError>("a")
        });
        let b = n.spawn(async { Ok(String::from("b")) });
        let c = n.spawn(async move { Ok(format!("{}+c", b.join().await.unwrap())) });
        Ok((a.join().await.unwrap(), c.join().await.unwrap()))
    })
    .await;
    assert_eq!(r, Ok(("a", "b+c".to_string())));
    assert_eq!(elapsed(), secs(2));
}

each_kind!(n7_h6_cancel_just_one_child, virtual_time);
/// N7: cancelling one child through its handle: its join reports `is_cancelled`, its
/// siblings are unaffected, and the nursery is neither cancelled nor failed.
async fn n7_h6_cancel_just_one_child<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let victim = n.spawn({
                let log = log.clone();
                async move {
                    let _guard = log.on_drop("victim dropped");
                    sleep(HOUR).await;
                    log.push("unreachable");
                    Ok::<_, TestError>(0)
                }
            });
            let sibling = n.spawn(async {
                sleep(secs(5)).await;
                Ok(2)
            });
            sleep(secs(1)).await;
            victim.cancel();
            let e = victim.join().await.unwrap_err();
            assert!(e.is_cancelled() && !e.is_failed() && !e.is_panicked());
            assert_eq!(e.to_string(), "task was cancelled");
            assert!(!n.is_cancelled());
            assert_eq!(sibling.join().await, Ok(2));
            Ok(1)
        }
    })
    .await;
    assert_eq!(r, Ok(1));
    assert_eq!(log.events(), ["victim dropped"]);
    assert_eq!(elapsed(), secs(5));
}

each_kind!(n7_cancel_before_first_poll, virtual_time);
/// N7: cancelling a child through its handle before it was ever polled: it still gets
/// its first poll (like any task spawned into a cancelled scope), then is cancelled at its
/// first suspension point. (On a multi-threaded backend a worker may get to poll it
/// before the cancel; the outcome is the same.)
async fn n7_cancel_before_first_poll<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let h = n.spawn(async move {
                log.push("first poll");
                sleep(HOUR).await;
                log.push("unreachable");
                Ok::<_, TestError>(())
            });
            h.cancel();
            Ok(h.join().await.unwrap_err().is_cancelled())
        }
    })
    .await;
    assert_eq!(r, Ok(true));
    assert_eq!(log.events(), ["first poll"]);
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n7_cancel_child_with_nested_nursery, virtual_time);
/// N7: cancelling a child cancels everything inside it (its own nursery's children).
async fn n7_cancel_child_with_nested_nursery<K: Kind>() {
    let dropped = Counter::new();
    let started = Counter::new();
    let r = K::nursery(|n| {
        let (dropped, started) = (dropped.clone(), started.clone());
        async move {
            let s2 = started.clone();
            let h = n.spawn(async move {
                K::nursery(|inner| async move {
                    for _ in 0..5 {
                        let (guard, started) = (dropped.guard(), s2.clone());
                        inner.spawn(async move {
                            let _guard = guard;
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
            until(|| started.get() == 5).await;
            h.cancel();
            Ok(h.join().await.unwrap_err().is_cancelled())
        }
    })
    .await;
    assert_eq!(r, Ok(true));
    assert_eq!(dropped.get(), 5);
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n7_h8_is_finished, virtual_time);
/// N7: `is_finished` is false while the child runs and true once it has finished (its
/// future dropped), before and after `join`.
async fn n7_h8_is_finished<K: Kind>() {
    let r = K::nursery(|n| async move {
        let gate = Counter::new();
        let g = gate.clone();
        let h = n.spawn(async move {
            until(|| g.get() == 1).await;
            Ok::<_, TestError>(9)
        });
        wait_all_tasks_blocked().await; // the child waits at its gate
        assert!(!h.is_finished());
        gate.incr();
        until(|| h.is_finished()).await;
        assert!(h.is_finished());
        assert!(format!("{h:?}").contains("true"));
        Ok(h.join().await.unwrap())
    })
    .await;
    assert_eq!(r, Ok(9));
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n7_h7_dropping_handle_does_not_cancel, virtual_time);
/// N7: dropping a handle does not cancel the child: it runs to its end, and the
/// nursery waits for it.
async fn n7_h7_dropping_handle_does_not_cancel<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let h = n.spawn(async move {
                sleep(secs(10)).await;
                log.push("child finished");
                Ok::<_, TestError>(())
            });
            drop(h);
            Ok(())
        }
    })
    .await;
    log.push("nursery returned");
    assert_eq!(r, Ok(()));
    assert_eq!(log.events(), ["child finished", "nursery returned"]);
    assert_eq!(elapsed(), secs(10));
}

each_kind!(n7_h5_join_after_nursery_returned, virtual_time);
/// N7: a handle that outlives its nursery still yields the value; cancelling a
/// finished task has no effect.
async fn n7_h5_join_after_nursery_returned<K: Kind>() {
    let h: TaskHandle<u32> = K::nursery(|n| async move {
        Ok::<_, TestError>(n.spawn(async {
            sleep(secs(1)).await;
            Ok(5)
        }))
    })
    .await
    .unwrap();
    assert!(h.is_finished());
    h.cancel();
    assert_eq!(h.join().await, Ok(5));
    assert_eq!(elapsed(), secs(1));
}

each_kind!(n7_failed_child_handle);
/// N7: the handle of a child that failed reports `is_failed` (its error went to the
/// nursery, which reports it).
async fn n7_failed_child_handle<K: Kind>() {
    let slot: Arc<Mutex<Option<TaskHandle<()>>>> = Arc::default();
    let r = K::nursery(|n| {
        let slot = slot.clone();
        async move {
            *slot.lock().unwrap() = Some(n.spawn(async {
                checkpoint().await;
                Err(TestError("failed"))
            }));
            Ok(())
        }
    })
    .await;
    assert_eq!(r, Err(NurseryError::Failed(vec![TestError("failed")])));
    let h = slot.lock().unwrap().take().unwrap();
    let e: JoinError = h.join().await.unwrap_err();
    assert!(e.is_failed() && !e.is_cancelled() && !e.is_panicked());
}

each_kind!(n7_child_cancelled_with_nursery, virtual_time);
/// N7: the handle of a child cancelled with its nursery reports `is_cancelled`.
async fn n7_child_cancelled_with_nursery<K: Kind>() {
    let slot: Arc<Mutex<Option<TaskHandle<()>>>> = Arc::default();
    let r = K::nursery(|n| {
        let slot = slot.clone();
        async move {
            *slot.lock().unwrap() = Some(n.spawn(async {
                sleep(HOUR).await;
                Ok::<_, TestError>(())
            }));
            n.cancel();
            checkpoint().await;
            Ok(())
        }
    })
    .await;
    assert!(r.unwrap_err().is_cancelled());
    let h = slot.lock().unwrap().take().unwrap();
    assert!(h.join().await.unwrap_err().is_cancelled());
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n7_join_error_converts, virtual_time);
/// N7: `JoinError` converts into `io::Error` and `anyhow::Error` with `?`.
async fn n7_join_error_converts<K: Kind>() {
    let r = K::nursery(|n| async move {
        let h = n.spawn(async {
            sleep(HOUR).await;
            Ok::<(), std::io::Error>(())
        });
        h.cancel();
        h.join().await?;
        Ok(())
    })
    .await;
    let e = r.unwrap_err().into_first().unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::Other);

    async fn any<K: Kind>() -> anyhow::Result<()> {
        K::nursery(|n| async move {
            let h = n.spawn(async {
                sleep(HOUR).await;
                Ok::<(), anyhow::Error>(())
            });
            h.cancel();
            h.join().await?;
            Ok(())
        })
        .await?;
        Ok(())
    }
    let e = any::<K>().await.unwrap_err();
    assert_eq!(e.to_string(), "task was cancelled");
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n7_cancel_during_shield_value_still_returned, virtual_time);
/// N7 with C3: a child cancelled by its handle while in a shield finishes the shield;
/// if it then returns without suspending again, its value still comes back.
async fn n7_cancel_during_shield_value_still_returned<K: Kind>() {
    let r = K::nursery(|n| async move {
        let in_shield = Counter::new();
        let c = in_shield.clone();
        let h = n.spawn(async move {
            let v = hatchery::shield(async {
                c.incr();
                sleep(secs(10)).await;
                11
            })
            .await;
            Ok::<_, TestError>(v)
        });
        until(|| in_shield.get() == 1).await;
        h.cancel();
        Ok(h.join().await)
    })
    .await;
    assert_eq!(r, Ok(Ok(11)));
    assert_eq!(elapsed(), secs(10));
}

each_kind!(n7_h7_dropping_join_future_does_not_cancel, virtual_time);
/// N7: dropping a `join` future before the child finished does not cancel the child.
async fn n7_h7_dropping_join_future_does_not_cancel<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let h = n.spawn(async move {
                sleep(secs(10)).await;
                log.push("child finished");
                Ok::<_, TestError>(())
            });
            let joined = futures_lite::future::poll_once(h.join()).await;
            assert!(joined.is_none());
            Ok(())
        }
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(log.events(), ["child finished"]);
    assert_eq!(elapsed(), secs(10));
}

each_kind!(h8_join_with_deadline_then_cancel, virtual_time);
/// `asyncio.wait_for(task, t)`: a deadline on `&mut join` stops only the waiting; the
/// join stays usable, `Join::cancel` stops the task, and the join then reports it.
async fn h8_join_with_deadline_then_cancel<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let mut join = n
                .spawn({
                    let log = log.clone();
                    async move {
                        let _guard = log.on_drop("task dropped");
                        sleep(HOUR).await;
                        Ok::<_, TestError>("late")
                    }
                })
                .join();
            assert_eq!(hatchery::move_on_after(secs(2), &mut join).await, None);
            assert!(!join.is_finished(), "the timeout must not touch the task");
            log.push("timed out");
            join.cancel();
            let e = join.await.unwrap_err();
            assert!(e.is_cancelled());
            assert!(!n.is_cancelled());
            Ok(elapsed())
        }
    })
    .await;
    assert_eq!(r, Ok(secs(2)));
    assert_eq!(log.events(), ["timed out", "task dropped"]);
}

each_kind!(join_value_after_deadline_is_kept, virtual_time);
/// A value that arrives after the deadline but before the cancel is not lost: the
/// join still returns it, and the cancel has no effect.
async fn join_value_after_deadline_is_kept<K: Kind>() {
    let r = K::nursery(|n| async move {
        let mut join = n
            .spawn(async {
                sleep(secs(3)).await;
                Ok::<_, TestError>(7)
            })
            .join();
        assert_eq!(hatchery::move_on_after(secs(2), &mut join).await, None);
        sleep(secs(2)).await; // the task finishes meanwhile
        assert!(join.is_finished());
        join.cancel();
        let v = (&mut join).await.unwrap();
        assert!(join.is_finished());
        Ok(v)
    })
    .await;
    assert_eq!(r, Ok(7));
}

/// N7 with a failing sibling on another thread: the failure cancels the nursery before
/// the handle has the result, so a join that takes the result in between sees the
/// cancellation too, and stays pending rather than hand the failure to code the failure
/// cancelled. The waker's `clone` (in the join's register, between its cancellation check
/// and its second look at the result) lets the child fail on another executor thread and
/// waits until it has finished; a multi-thread backend runs it.
#[hatchery::test(backends(tokio_multi, smol))]
async fn join_never_hands_a_failure_to_code_it_cancelled() {
    let r = nursery(|n| async move {
        let gate = Arc::new(Event::new());
        let g = gate.clone();
        let a = n.spawn(async move {
            g.wait().await; // suspends: linked into the nursery
            Err::<(), _>(TestError("a"))
        });
        let mut join = a.join();
        let fired = Arc::new(AtomicBool::new(false));
        let n2 = n.clone();
        let out = poll_fn(|cx: &mut Context<'_>| {
            let (gate, fired, n2) = (gate.clone(), fired.clone(), n2.clone());
            let w = hook::waker(hook::Data {
                inner: cx.waker().clone(),
                on_clone: Box::new(move || {
                    if fired.swap(true, Ordering::SeqCst) {
                        return;
                    }
                    // Let the child fail, from a foreign thread (so that another
                    // executor thread runs it), and wait until it has finished.
                    let gate = gate.clone();
                    std::thread::spawn(move || gate.set()).join().unwrap();
                    let start = Instant::now();
                    while !format!("{n2:?}").contains("tasks: 0") {
                        assert!(start.elapsed() < Duration::from_secs(10), "child never ran");
                        std::thread::yield_now();
                    }
                    assert!(n2.is_cancelled(), "the failure cancelled the nursery");
                }),
            });
            Pin::new(&mut join).poll(&mut Context::from_waker(&w))
        })
        .await;
        // Not reached: the body is cancelled in its join.
        match out {
            Ok(()) => Ok(()),
            Err(e) if e.is_failed() => Err(TestError("join handed: task failed")),
            Err(_) => Err(TestError("join handed: other")),
        }
    })
    .await;
    assert_eq!(r, Err(NurseryError::Failed(vec![TestError("a")])));
}
