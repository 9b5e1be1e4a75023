//! A scope future kept past the scope it was first polled in.
//!
//! `move_on_after(d, &mut op)` and then `op.await`, or the loser of a select awaited
//! later: `op` was entered under a scope that has finished by the time it runs again.
//! That finished scope no longer cancels it (not its handle, not its deadline) and can
//! no longer catch anything; `op` follows the scopes around it that still run. Only a
//! cancellation that reached `op` while that scope ran ends it, as cancelled: `op` was
//! polled after it, or was in the scope's child list (polled through a combinator with
//! wakers of its own, or with a nursery open inside).

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_lite::future;
use hatchery::testing::elapsed;
use hatchery::{
    current_effective_deadline, fail_after, finally, move_on_after, now, nursery, shield, sleep,
    CancelScope, Deadline, Nursery,
};
use hatchery_tests::{catch_panic, secs, until, TestError, HOUR};

/// The tokio idiom (`timeout(d, &mut op)`, then `op.await`): the timeout only stops
/// polling `op`, which goes on afterwards under its own deadline.
#[hatchery::test(virtual_time)]
async fn kept_past_a_timeout_goes_on() {
    let start = now();
    let mut op = pin!(fail_after(secs(10), async {
        sleep(secs(5)).await;
        current_effective_deadline()
    }));
    assert_eq!(move_on_after(secs(1), &mut op).await, None);
    assert_eq!(elapsed(), secs(1));
    let deadline = op.await.expect("its own deadline is 10 s away");
    assert_eq!(elapsed(), secs(5));
    // Its own deadline, not the finished timeout's (1 s).
    assert_eq!(deadline, Deadline::At(start + secs(10)));
}

/// Cancelling a finished scope through its handle is recorded, and changes nothing for a
/// future kept past it.
#[hatchery::test(virtual_time)]
async fn cancel_of_a_finished_scope_leaves_a_kept_future_alone() {
    let mut op = pin!(move_on_after(HOUR, async {
        sleep(secs(2)).await;
        3
    }));
    let scope = CancelScope::new();
    let handle = scope.handle();
    let first = scope.run(future::poll_once(&mut op)).await;
    assert_eq!(first, Some(None)); // entered, and pending
    handle.cancel();
    assert!(handle.cancel_called());
    assert!(!handle.cancelled_caught());
    assert_eq!(op.await, Some(3));
    assert_eq!(elapsed(), secs(2));
}

/// The deadline of a finished scope passing later changes nothing for a future kept past
/// it, nor for scopes inside that future that are cancelled themselves.
#[hatchery::test(virtual_time)]
async fn deadline_of_a_finished_scope_is_not_an_outer_cancellation() {
    let mut op = pin!(move_on_after(HOUR, async {
        // Times out at 2 s, after the finished scope's deadline (1 s): it catches its
        // own cancellation, as no running scope around it is cancelled.
        let inner = move_on_after(secs(2), sleep(HOUR)).await;
        (inner, current_effective_deadline())
    }));
    let first = move_on_after(secs(1), future::poll_once(&mut op)).await;
    assert_eq!(first, Some(None)); // finished at once, its deadline still ahead
    let (inner, deadline) = op.await.expect("nothing cancels the kept future");
    assert_eq!(inner, None);
    assert_eq!(elapsed(), secs(2));
    assert!(matches!(deadline, Deadline::At(_)));
}

/// A kept future still follows the running scopes around the finished one.
#[hatchery::test(virtual_time)]
async fn kept_future_follows_the_running_scopes_around() {
    let outer = move_on_after(secs(3), async {
        let mut op = pin!(move_on_after(HOUR, sleep(HOUR)));
        let first = move_on_after(secs(1), future::poll_once(&mut op)).await;
        assert_eq!(first, Some(None));
        op.await;
        unreachable!("the outer deadline ends the kept future");
    })
    .await;
    assert_eq!(outer, None);
    assert_eq!(elapsed(), secs(3));
}

/// Polls its future with a waker of its own (as `FuturesUnordered` does), so that the
/// scope inside links itself into its parent's child list, where the parent's
/// cancellation marks it at once.
struct OwnWaker<'a, F>(Pin<&'a mut F>);

struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

impl<F: Future> Future for OwnWaker<'_, F> {
    type Output = Poll<F::Output>;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Poll<F::Output>> {
        let waker = Waker::from(Arc::new(Noop));
        Poll::Ready(self.0.as_mut().poll(&mut Context::from_waker(&waker)))
    }
}

/// A kept future that the cancellation of its first scope reached while that scope ran
/// is cancelled: with nothing left to catch it, it returns as cancelled (`None`), where
/// it used to stay pending for good.
#[hatchery::test(virtual_time)]
async fn k2_kept_future_reached_by_the_cancellation_returns_cancelled() {
    let mut op = pin!(move_on_after(HOUR, sleep(HOUR)));
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run(async {
            assert!(OwnWaker(op.as_mut()).await.is_pending()); // linked under `scope`
            handle.cancel(); // marks `op` too
            sleep(HOUR).await;
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(op.await, None);
    assert_eq!(elapsed(), secs(0));
}

/// The same for `fail_after`: the deadline of the scope that cancelled it counts as its
/// own (`Elapsed`).
#[hatchery::test(virtual_time)]
async fn kept_fail_after_reached_by_a_deadline_fails() {
    let mut op = pin!(fail_after(HOUR, sleep(HOUR)));
    let out = move_on_after(secs(1), async {
        assert!(OwnWaker(op.as_mut()).await.is_pending());
        sleep(HOUR).await;
    })
    .await;
    assert_eq!(out, None);
    assert!(op.await.is_err());
    assert_eq!(elapsed(), secs(1));
}

/// A kept future that saw its first scope's cancellation while a shielded cleanup held
/// that scope open: its body was dropped then, and once the scope has finished it
/// returns as cancelled.
#[hatchery::test(virtual_time)]
async fn kept_future_dropped_by_a_held_scope_returns_cancelled() {
    let mut op = pin!(move_on_after(HOUR, sleep(HOUR)));
    let out = move_on_after(secs(5), async {
        let cleanup = finally(sleep(HOUR), async { sleep(secs(10)).await });
        // Both pending at 5 s: the scope polls its body again for the cleanup, and `op`
        // sees the cancellation then.
        future::zip(
            cleanup,
            future::poll_fn(|cx| match op.as_mut().poll(cx) {
                Poll::Ready(_) => unreachable!("cancelled, with the scope still running"),
                Poll::Pending => Poll::<()>::Pending,
            }),
        )
        .await;
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(elapsed(), secs(15));
    assert_eq!(op.await, None);
    assert_eq!(elapsed(), secs(15));
}

/// A nursery future kept past a scope that finished without being cancelled (the loser
/// of a select) goes on, and its tasks with it; a cancel of the finished scope changes
/// nothing.
#[hatchery::test(virtual_time)]
async fn kept_nursery_goes_on() {
    let mut op = pin!(nursery(|n: Nursery<TestError>| async move {
        let h = n.spawn(async {
            sleep(secs(4)).await;
            Ok(4)
        });
        Ok(h.join().await.unwrap())
    }));
    let scope = CancelScope::new().with_timeout(secs(1));
    let handle = scope.handle();
    assert_eq!(scope.run(future::poll_once(&mut op)).await, Some(None));
    handle.cancel();
    assert_eq!(op.await.unwrap(), 4);
    assert_eq!(elapsed(), secs(4));
}

/// A nursery is in its scope's child list, so that scope's cancellation always reaches
/// it: kept past it, it returns as cancelled once the scope has finished, where it used to
/// stay pending for good. Its task was cancelled with the scope.
#[hatchery::test(virtual_time)]
async fn kept_nursery_past_a_cancelled_scope_returns_cancelled() {
    let mut op = pin!(nursery(|n: Nursery<TestError>| async move {
        n.spawn(async {
            finally(sleep(HOUR), async { sleep(secs(2)).await }).await;
            Ok(())
        });
        sleep(HOUR).await;
        Ok(())
    }));
    assert_eq!(move_on_after(secs(1), &mut op).await, None);
    // The task's shielded cleanup held the timeout open.
    assert_eq!(elapsed(), secs(3));
    assert!(op.await.unwrap_err().is_cancelled());
    assert_eq!(elapsed(), secs(3));
}

/// A scope future first polled in a task that has finished since, and awaited in another:
/// a cancel of the finished task through its handle changes nothing for it.
#[hatchery::test(virtual_time)]
async fn kept_past_its_task_goes_on() {
    type Kept = Pin<Box<dyn Future<Output = Option<u32>> + Send>>;
    let slot: Arc<Mutex<Option<Kept>>> = Arc::default();
    let s = slot.clone();
    nursery(|n: Nursery<TestError>| async move {
        let h = n.spawn(async move {
            let mut op: Kept = Box::pin(move_on_after(HOUR, async {
                sleep(secs(2)).await;
                2
            }));
            assert!(future::poll_once(op.as_mut()).await.is_none());
            *s.lock().unwrap() = Some(op);
            Ok(())
        });
        until(|| h.is_finished()).await;
        h.cancel();
        let op = slot.lock().unwrap().take().expect("kept by the task");
        assert_eq!(op.await, Some(2));
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(elapsed(), secs(2));
}

/// A nursery open inside a kept future puts it in the enclosing scopes' child lists (its
/// tasks run elsewhere, and a cancellation must reach them): the timeout's cancellation
/// reaches it while the timeout runs, its tasks are cancelled, and it returns as
/// cancelled rather than going on. The same through `join`, which runs a nursery.
#[hatchery::test(virtual_time)]
async fn kept_future_with_a_nursery_inside_is_reached() {
    let done = Arc::new(Mutex::new(false));
    let d = done.clone();
    let mut op = pin!(fail_after(secs(10), async move {
        nursery(|n: Nursery<TestError>| async move {
            n.spawn(async move {
                sleep(secs(5)).await;
                *d.lock().unwrap() = true;
                Ok(())
            });
            Ok(())
        })
        .await
        .unwrap();
        "done"
    }));
    assert_eq!(move_on_after(secs(1), &mut op).await, None);
    assert!(op.await.is_err());
    assert_eq!(elapsed(), secs(1));
    assert!(!*done.lock().unwrap(), "its task was cancelled at 1 s");

    let mut op = pin!(move_on_after(secs(10), async {
        hatchery::join([sleep(secs(5)), sleep(secs(4))]).await;
        "done"
    }));
    assert_eq!(move_on_after(secs(1), &mut op).await, None);
    assert_eq!(op.await, None);
    assert_eq!(elapsed(), secs(2));
}

/// A kept `finally` whose work the finished scope's cancellation reached: its cleanup
/// runs, and since it has no value to return and nothing is left to catch the
/// cancellation, it panics and says why, rather than hang.
#[hatchery::test(virtual_time)]
async fn k3_kept_finally_reached_by_the_cancellation_panics_after_its_cleanup() {
    let cleaned = Arc::new(Mutex::new(false));
    let c = cleaned.clone();
    let mut op = pin!(finally(sleep(HOUR), async move {
        *c.lock().unwrap() = true;
    }));
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run(async {
            assert!(OwnWaker(op.as_mut()).await.is_pending()); // linked under `scope`
            handle.cancel(); // marks `op`'s work scope too
        })
        .await;
    assert_eq!(out, Some(())); // the body never suspended after the cancel
    let r = catch_panic(move_on_after(secs(5), op)).await;
    assert!(r
        .unwrap_err()
        .contains("`finally` future was cancelled by the scope"));
    assert!(*cleaned.lock().unwrap());
}

/// The same for a kept `finally` with a nursery inside, past a timeout: the work was
/// dropped and the cleanup ran while the timeout held on; awaited later, it panics and
/// says why (it used to poll its finished cleanup again).
#[hatchery::test(virtual_time)]
async fn kept_finally_with_a_nursery_past_a_timeout_panics() {
    let cleaned = Arc::new(Mutex::new(false));
    let c = cleaned.clone();
    let mut op = pin!(finally(
        async {
            nursery(|n: Nursery<TestError>| async move {
                n.spawn(async {
                    sleep(secs(5)).await;
                    Ok(())
                });
                Ok(())
            })
            .await
            .unwrap();
            "done"
        },
        async move {
            *c.lock().unwrap() = true;
        }
    ));
    assert_eq!(move_on_after(secs(1), &mut op).await, None);
    assert!(*cleaned.lock().unwrap());
    let r = catch_panic(move_on_after(secs(10), op)).await;
    assert!(r
        .unwrap_err()
        .contains("`finally` future was cancelled by the scope"));
    assert_eq!(elapsed(), secs(1));
}

/// Awaits `fut` for a second after a timeout cancelled it, and returns its panic message.
async fn kept_panic<F: Future>(fut: F) -> String {
    let mut op = pin!(fut);
    assert!(move_on_after(secs(1), &mut op).await.is_none());
    match catch_panic(op).await {
        Ok(_) => panic!("a kept combinator returned"),
        Err(message) => message,
    }
}

/// The combinators run their futures in a nursery, which a timeout's cancellation always
/// reaches: kept past it, each panics and says why (its outputs are gone), rather than
/// report an internal error or, for `try_join`, an `Err(Cancelled)` it documents as
/// impossible.
#[hatchery::test(virtual_time)]
async fn g5_k3_kept_combinators_panic_and_say_why() {
    type B<T> = Pin<Box<dyn Future<Output = T> + Send>>;
    fn slow() -> B<Result<u8, TestError>> {
        Box::pin(async {
            sleep(HOUR).await;
            Ok(1)
        })
    }
    let why = "was cancelled by the scope it was first polled in";
    let messages = [
        kept_panic(hatchery::join([Box::pin(sleep(HOUR)) as B<()>])).await,
        kept_panic(hatchery::try_join([slow()])).await,
        kept_panic(hatchery::settle([slow()])).await,
        kept_panic(hatchery::map(2, 0..3, |_| sleep(HOUR)).join()).await,
        kept_panic(hatchery::race([Box::pin(sleep(HOUR)) as B<()>])).await,
        kept_panic(hatchery::race_ok([slow()])).await,
        kept_panic(hatchery::as_completed(
            [Box::pin(sleep(HOUR)) as B<()>],
            |_s| sleep(HOUR),
        ))
        .await,
        kept_panic(hatchery::produce(
            0,
            |_tx: hatchery::SendStream<u8>| async {
                sleep(HOUR).await;
                Ok(())
            },
            |_items| async {
                sleep(HOUR).await;
                Ok::<_, TestError>(())
            },
        ))
        .await,
        kept_panic(async { hatchery::join!(sleep(HOUR), sleep(HOUR)) }).await,
        kept_panic(async { hatchery::try_join!(slow(), slow()) }).await,
        kept_panic(async { hatchery::race!(sleep(HOUR), std::future::pending::<()>()) }).await,
    ];
    for m in &messages {
        assert!(m.contains(why), "{m}");
    }
    assert_eq!(elapsed(), secs(11));
}

/// A kept scope future whose enclosing scope is cancelled during its own body's poll (by
/// the body itself here; a sibling failing on another thread does the same), then
/// awaited after that scope has finished: it was reached by the cancellation, so it
/// returns as cancelled (from a review: it panicked with an internal "body present").
#[hatchery::test(virtual_time)]
async fn kept_future_cancelled_during_its_own_poll_returns_cancelled() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let h = handle.clone();
    let mut op = pin!(move_on_after(HOUR, async move {
        h.cancel(); // cancels the enclosing scope from inside `op`'s body
        sleep(secs(1)).await;
        1
    }));
    let out = scope.run(async { (&mut op).await }).await;
    assert_eq!(out, None);
    assert!(handle.cancelled_caught());
    let r = catch_panic(op).await;
    assert_eq!(r, Ok(None));
    assert_eq!(elapsed(), secs(0));
}

/// A nursery first polled in an inner scope that then finishes normally, kept and awaited
/// in the enclosing scope: that scope's cancellation reaches the nursery's children (the
/// finished inner scope had left the enclosing scope's child list, with the nursery in
/// its own, so the children ran on until something else woke them).
#[hatchery::test(virtual_time)]
async fn kept_nursery_children_are_reached_by_the_outer_cancel() {
    let ev = Arc::new(hatchery::sync::Event::new());
    let e2 = ev.clone();
    nursery(|outer: Nursery<TestError>| async move {
        outer.spawn(async move {
            sleep(secs(30)).await;
            e2.set(); // lets the kept nursery's child go, if nothing cancelled it
            Ok(())
        });
        let out = move_on_after(secs(1), async {
            let mut work = pin!(nursery(|n: Nursery<TestError>| async move {
                n.spawn(async move {
                    ev.wait().await;
                    Ok(())
                });
                Ok(())
            }));
            // Polled once in an inner scope, which finishes without being cancelled.
            let first = CancelScope::new().run(future::poll_once(&mut work)).await;
            assert!(matches!(first, Some(None)));
            let _ = work.await;
            unreachable!("the timeout ends the work");
        })
        .await;
        assert_eq!(out, None);
        assert_eq!(
            elapsed(),
            secs(1),
            "the kept nursery's child was not cancelled"
        );
        Ok(())
    })
    .await
    .unwrap();
}

/// The same with a scope around the nursery: the kept scope follows the enclosing scope
/// that still runs (with a sleeping child, it hung: the child's sleep saw the enclosing
/// deadline, which had cancelled nothing it could reach).
#[hatchery::test(virtual_time)]
async fn kept_scope_with_a_nursery_follows_a_cancelled_outer_scope() {
    let out = move_on_after(secs(1), async {
        let mut op = pin!(move_on_after(HOUR, async {
            nursery(|n: Nursery<TestError>| async move {
                n.spawn(async {
                    sleep(secs(30)).await;
                    Ok(())
                });
                Ok(())
            })
            .await
        }));
        let first = CancelScope::new().run(future::poll_once(&mut op)).await;
        assert!(matches!(first, Some(None)));
        let _ = op.await;
        unreachable!("the timeout ends the work");
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(elapsed(), secs(1));
}
/// A shield first polled in one scope and then moved into another (here a timeout's)
/// holds the new one: its cancellation waits for the shield, which is not cut (C6). The
/// hold stayed with the first scope.
#[hatchery::test(virtual_time)]
async fn k5_moved_shield_is_not_cut_by_the_new_scope() {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let mut cleanup = Box::pin(shield(async move {
        sleep(secs(5)).await;
        d.store(true, Ordering::SeqCst);
        "closed"
    }));
    assert!(future::poll_once(&mut cleanup).await.is_none()); // entered here
    let out = move_on_after(secs(1), cleanup).await;
    assert_eq!(out, Some("closed"), "at {:?}", elapsed());
    assert!(done.load(Ordering::SeqCst));
    assert_eq!(elapsed(), secs(5));
}

type Kept = Pin<Box<dyn Future<Output = &'static str> + Send>>;

/// A shield first polled in one task and sent to another, where it is awaited, no longer
/// holds the first task's scope: that scope's timeout ends its body on time (it waited
/// until an unrelated timer woke it).
#[hatchery::test(virtual_time)]
async fn shield_sent_to_another_task_leaves_no_hold_behind() {
    let at = send_a_polled_shield_to_another_task(Box::pin(shield(async {
        sleep(secs(5)).await;
        "closed"
    })))
    .await;
    assert_eq!(at, secs(1), "the timeout returned at {at:?}");
}

/// Polls `cleanup` (a shield) once under a 1 s timeout, sends it to another task that
/// awaits it, and returns when the timeout ended its body (no hold left behind: at 1 s).
async fn send_a_polled_shield_to_another_task(cleanup: Kept) -> Duration {
    let (tx, rx) = hatchery::memory_stream::<Kept>(1);
    nursery(|n: Nursery<TestError>| async move {
        n.spawn(async move {
            let cleanup: Kept = rx.recv().await.unwrap();
            assert_eq!(cleanup.await, "closed");
            Ok(())
        });
        let out = move_on_after(secs(1), async {
            let mut cleanup = cleanup;
            assert!(future::poll_once(&mut cleanup).await.is_none());
            tx.send(cleanup).await.unwrap();
            sleep(HOUR).await;
        })
        .await;
        assert_eq!(out, None);
        Ok(elapsed())
    })
    .await
    .unwrap()
}

/// A scope cancelled while held, whose first hold went in its own poll, is woken again
/// when a second one goes elsewhere (a shield handed to another task): the first wake-up
/// had taken its waker out.
#[hatchery::test(virtual_time)]
async fn a_second_moved_shield_wakes_the_cancelled_scope() {
    let slot: Arc<Mutex<Option<Kept>>> = Arc::new(Mutex::new(None));
    let ev = Arc::new(hatchery::sync::Event::new());
    let (s2, e2) = (slot.clone(), ev.clone());
    nursery(|n: Nursery<TestError>| async move {
        n.spawn(async move {
            e2.wait().await;
            // Only once everything else is idle (the scope's task has been polled again).
            sleep(secs(1)).await;
            let cleanup = s2.lock().unwrap().take().unwrap();
            assert_eq!(cleanup.await, "closed");
            Ok(())
        });
        let rescue = move_on_after(secs(100), async {
            let out = move_on_after(secs(1), async {
                // Cancelled at 1 s while this shield holds the scope.
                shield(sleep(secs(2))).await;
                let mut cleanup: Kept = Box::pin(shield(async {
                    sleep(secs(5)).await;
                    "closed"
                }));
                assert!(future::poll_once(&mut cleanup).await.is_none());
                *slot.lock().unwrap() = Some(cleanup);
                ev.set();
                sleep(HOUR).await;
            })
            .await;
            assert_eq!(out, None);
            elapsed()
        })
        .await;
        let at = rescue.expect("only the 100 s rescue timeout ended the scope");
        // The other task takes the shield at 3 s (2 s of the first shield, then 1 s).
        assert_eq!(at, secs(3), "the scope ended at {at:?}");
        Ok(())
    })
    .await
    .unwrap();
}

/// A shield with a nursery open inside, sent to another task: the nursery's hold stays
/// inside the shield, so the first task's timeout ends its body on time.
#[hatchery::test(virtual_time)]
async fn a_moved_shield_with_a_nursery_inside_leaves_no_hold_behind() {
    let at = send_a_polled_shield_to_another_task(Box::pin(shield(async {
        nursery(|inner: Nursery<TestError>| async move {
            inner.spawn(async {
                sleep(secs(50)).await;
                Ok(())
            });
            Ok(())
        })
        .await
        .unwrap();
        "closed"
    })))
    .await;
    assert_eq!(at, secs(1), "the timeout returned at {at:?}");
}

/// A `finally` moved by value into a timeout belongs to the scope of its first poll, like
/// any scope: the timeout, once cancelled, drops it as from outside hatchery, without the
/// cleanup (it did not hold the timeout open for the work's hour).
#[hatchery::test(virtual_time)]
async fn k5_a_moved_finally_follows_its_first_scope() {
    let cleaned = Arc::new(AtomicBool::new(false));
    let c = cleaned.clone();
    let mut fin = Box::pin(finally(
        async {
            sleep(HOUR).await;
            "work done"
        },
        async move { c.store(true, Ordering::SeqCst) },
    ));
    assert!(future::poll_once(&mut fin).await.is_none()); // entered here
    let out = move_on_after(secs(1), fin).await;
    assert_eq!(
        elapsed(),
        secs(1),
        "the timeout returned at {:?} with {out:?}",
        elapsed()
    );
    assert_eq!(out, None);
}
