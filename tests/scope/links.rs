//! How a cancellation finds a scope that its parent's runner does not poll directly.
//!
//! A scope polled straight from its parent's body learns of the parent's cancellation
//! when it is next polled, and is not in the parent's child list. These scenarios cover
//! the scopes that must be found another way: one polled through a combinator with
//! wakers of its own (like `FuturesUnordered`), one moved to another task after its first
//! poll, and readers of the cancelled state that run before the scope is polled again.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures_lite::future;
use hatchery::testing::elapsed;
use hatchery::{
    checkpoint, current_effective_deadline, finally, move_on_after, nursery, sleep, CancelScope,
    Deadline, Nursery, TaskHandle, TaskStatus,
};
use hatchery_tests::{is_multi_thread, secs, Log, TestError, HOUR};

/// Polls its future with a waker of its own, and only after that waker was woken, as
/// `FuturesUnordered` does: waking the task alone does not poll the future.
struct OwnWaker<F> {
    fut: Pin<Box<F>>,
    flag: Arc<Flag>,
}

struct Flag {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if let Some(w) = self.task.lock().unwrap().take() {
            w.wake();
        }
    }
}

fn own_waker<F: Future>(fut: F) -> OwnWaker<F> {
    OwnWaker {
        fut: Box::pin(fut),
        flag: Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: Mutex::new(None),
        }),
    }
}

impl<F: Future> Future for OwnWaker<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        *self.flag.task.lock().unwrap() = Some(cx.waker().clone());
        if !self.flag.woken.swap(false, Ordering::SeqCst) {
            return Poll::Pending;
        }
        let waker = Waker::from(self.flag.clone());
        self.fut.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

/// Records the virtual time at which it is dropped.
#[derive(Clone, Default)]
struct DroppedAt(Arc<Mutex<Option<Duration>>>);

impl DroppedAt {
    fn guard(&self) -> DropGuard {
        DropGuard(self.clone())
    }

    fn get(&self) -> Option<Duration> {
        *self.0.lock().unwrap()
    }
}

struct DropGuard(DroppedAt);

impl Drop for DropGuard {
    fn drop(&mut self) {
        *self.0 .0.lock().unwrap() = Some(elapsed());
    }
}

/// Sleeps for an hour, recording when it is dropped.
async fn watched_sleep(at: DroppedAt) {
    let _guard = at.guard();
    sleep(HOUR).await;
}

/// Work that a shielded cleanup of 10 s holds open once it is cancelled: the enclosing
/// scope cannot drop its body until the cleanup is done.
async fn held_open_by_cleanup() {
    finally(sleep(HOUR), async { sleep(secs(10)).await }).await;
}

/// Runs `inner` next to [`held_open_by_cleanup`] in a scope with a 5 s deadline, which
/// returns when the cleanup is done, at 15 s.
async fn in_scope_held_open<F: Future>(inner: F) {
    let out = move_on_after(secs(5), async move {
        future::zip(held_open_by_cleanup(), inner).await;
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(elapsed(), secs(15));
}

/// A scope behind a combinator with its own wakers must be cancelled through the outer
/// scope's child list: its body is dropped when the outer deadline passes (5 s), not when
/// the outer body is (15 s).
#[hatchery::test(virtual_time)]
async fn scope_behind_own_waker_combinator_is_cancelled_at_once() {
    let (with_handle, without) = (DroppedAt::default(), DroppedAt::default());
    in_scope_held_open(future::zip(
        own_waker(CancelScope::new().run(watched_sleep(with_handle.clone()))),
        own_waker(move_on_after(HOUR, watched_sleep(without.clone()))),
    ))
    .await;
    assert_eq!(with_handle.get(), Some(secs(5)));
    assert_eq!(without.get(), Some(secs(5)));
}

/// The same scopes polled straight from the outer body: the outer scope polls its body
/// again when its deadline passes, and they see the cancellation then.
#[hatchery::test(virtual_time)]
async fn scope_polled_directly_is_cancelled_at_once() {
    let (with_handle, without) = (DroppedAt::default(), DroppedAt::default());
    in_scope_held_open(future::zip(
        CancelScope::new().run(watched_sleep(with_handle.clone())),
        move_on_after(HOUR, watched_sleep(without.clone())),
    ))
    .await;
    assert_eq!(with_handle.get(), Some(secs(5)));
    assert_eq!(without.get(), Some(secs(5)));
}

/// A scope first polled in one task and then moved into another: its parent's
/// cancellation still reaches it in its new task.
#[hatchery::test(virtual_time)]
async fn scope_moved_to_another_task_is_cancelled() {
    let at = DroppedAt::default();
    let a = at.clone();
    nursery(|n: Nursery<TestError>| async move {
        let scope = CancelScope::new().with_timeout(secs(5));
        let handle = scope.handle();
        let out = scope
            .run(async {
                let mut moved = Box::pin(move_on_after(HOUR, watched_sleep(a)));
                // Entered here, under `scope`, in this task.
                assert!(future::poll_once(moved.as_mut()).await.is_none());
                n.spawn(async move {
                    moved.await;
                    Ok(())
                });
                sleep(HOUR).await;
            })
            .await;
        assert_eq!(out, None);
        assert!(handle.cancelled_caught());
        sleep(secs(1)).await;
        // Dropped when `scope` was cancelled, in the other task, not by `cancel` below.
        assert_eq!(at.get(), Some(secs(5)));
        n.cancel();
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(elapsed(), secs(6));
}

/// Cancelling an enclosing scope is visible at once inside a nested scope, before that
/// scope is polled again.
#[hatchery::test(virtual_time)]
async fn nested_scope_sees_enclosing_cancel_at_once() {
    let outer = CancelScope::new();
    let handle = outer.handle();
    let mut seen = Vec::new();
    let out = outer
        .run(async {
            move_on_after(HOUR, async {
                seen.push(current_effective_deadline());
                handle.cancel();
                seen.push(current_effective_deadline());
                sleep(secs(1)).await;
            })
            .await
        })
        .await;
    assert!(matches!(seen[0], Deadline::At(_)));
    assert_eq!(seen[1], Deadline::Cancelled);
    // The outer scope caught it; the inner body was dropped at its sleep.
    assert_eq!(out, None);
    assert!(handle.cancelled_caught());
    assert_eq!(elapsed(), Duration::ZERO);
}

/// A child task reads its nursery's state right after cancelling a scope two levels
/// above it, before the nursery's own task has run again.
#[hatchery::test(virtual_time)]
async fn nursery_sees_enclosing_cancel_from_a_child_at_once() {
    let outer = CancelScope::new();
    let handle = outer.handle();
    let seen = Arc::new(AtomicBool::new(false));
    let s = seen.clone();
    outer
        .run(move_on_after(HOUR, async move {
            nursery(|n: Nursery<TestError>| async move {
                let n2 = n.clone();
                n.spawn(async move {
                    assert!(!n2.is_cancelled());
                    handle.cancel();
                    s.store(n2.is_cancelled(), Ordering::SeqCst);
                    Ok(())
                });
                sleep(HOUR).await;
                Ok(())
            })
            .await
        }))
        .await;
    assert!(seen.load(Ordering::SeqCst));
    assert_eq!(elapsed(), Duration::ZERO);
}

/// A scope cancelled through its handle from inside its own body, in a poll where no
/// waker of its own is registered yet, while a cleanup holds it open: the nested scope
/// still sees the cancellation at once.
#[hatchery::test(virtual_time)]
async fn scope_cancelled_from_its_body_reaches_nested_scopes() {
    let at = DroppedAt::default();
    let a = at.clone();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run(future::zip(
            held_open_by_cleanup(),
            future::zip(move_on_after(HOUR, watched_sleep(a)), async {
                handle.cancel();
            }),
        ))
        .await;
    assert_eq!(out, None);
    assert_eq!(at.get(), Some(Duration::ZERO));
    assert_eq!(elapsed(), secs(10));
}

/// The same for a task cancelled through its handle during its first poll.
#[hatchery::test(virtual_time)]
async fn task_cancelled_in_its_first_poll_reaches_nested_scopes() {
    let at = DroppedAt::default();
    let a = at.clone();
    let slot: Arc<Mutex<Option<TaskHandle<()>>>> = Arc::default();
    let s = slot.clone();
    nursery(|n: Nursery<TestError>| async move {
        let handle = n.spawn(async move {
            future::zip(
                held_open_by_cleanup(),
                future::zip(move_on_after(HOUR, watched_sleep(a)), async {
                    // The spawner stores the handle right after `spawn` returns.
                    let own = loop {
                        if let Some(h) = s.lock().unwrap().take() {
                            break h;
                        }
                        std::thread::yield_now();
                    };
                    own.cancel();
                }),
            )
            .await;
            Ok(())
        });
        *slot.lock().unwrap() = Some(handle);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(at.get(), Some(Duration::ZERO));
    assert_eq!(elapsed(), secs(10));
}

/// A child that cancels its own nursery in its first poll then joins a finished sibling:
/// the join must not complete (the body is dropped at that suspension point instead).
#[hatchery::test]
async fn join_in_first_poll_of_a_cancelled_task_does_not_complete() {
    let log = Log::new();
    let l = log.clone();
    let _ = nursery(|n: Nursery<TestError>| async move {
        let done = n.spawn(async { Ok(7) });
        while !done.is_finished() {
            checkpoint().await;
        }
        let n2 = n.clone();
        n.spawn(async move {
            n2.cancel(); // first poll: no suspension yet
            let _v = done.join().await; // a finished sibling: ready at once
            l.push("join returned in a cancelled nursery");
            Ok(())
        });
        Ok(())
    })
    .await;
    assert!(log.is_empty(), "{:?}", log.events());
}

/// The same cancellation is seen by `current_effective_deadline` in the task's first
/// poll, as by `Nursery::is_cancelled` (it said `Never`).
#[hatchery::test]
async fn effective_deadline_in_first_poll_sees_the_cancellation() {
    let seen: Arc<Mutex<Option<(bool, Deadline)>>> = Arc::default();
    let s = seen.clone();
    let _ = nursery(|n: Nursery<TestError>| async move {
        let n2 = n.clone();
        n.spawn(async move {
            n2.cancel();
            *s.lock().unwrap() = Some((n2.is_cancelled(), current_effective_deadline()));
            Ok(())
        });
        Ok(())
    })
    .await;
    assert_eq!(
        seen.lock().unwrap().take(),
        Some((true, Deadline::Cancelled))
    );
}

/// A task that cancels an enclosing scope above a plain inner scope (`outer.run(
/// move_on_after(t, nursery(..)))`) is cancelled at once: its join of a finished sibling
/// does not complete. The inner scope was left out of the outer's child list, so the
/// cancellation reached the nursery only when the parent task polled it again.
#[hatchery::test(virtual_time)]
async fn join_after_outer_cancel_through_inner_scope_does_not_complete() {
    let log = Log::new();
    let l = log.clone();
    let outer = CancelScope::new();
    let handle = outer.handle();
    let out = outer
        .run(move_on_after(HOUR, async move {
            nursery(|n: Nursery<TestError>| async move {
                let done = n.spawn(async { Ok(7) });
                n.spawn(async move {
                    while !done.is_finished() {
                        checkpoint().await; // suspends: this task is linked from here on
                    }
                    handle.cancel(); // cancels the outer scope, and so this task
                    let _v = done.join().await; // must not complete
                    l.push("join returned in a cancelled scope");
                    Ok(())
                });
                sleep(HOUR).await;
                Ok(())
            })
            .await
        }))
        .await;
    assert_eq!(out, None);
    assert!(log.is_empty(), "{:?}", log.events());
}

/// A task `start`ed from inside a plain scope of the caller (`move_on_after(t,
/// n.start(..))`, the usual start with a timeout) that cancels a scope around that one,
/// before `started`, is cancelled at once, as a spawned task is: it reads `Cancelled`,
/// and its join of a finished sibling does not complete. The caller's scope was left out
/// of the nursery's child list, so the cancellation did not reach the task.
#[hatchery::test(virtual_time)]
async fn start_task_under_inner_scope_sees_outer_cancel_at_once() {
    let outer = CancelScope::new();
    let handle = outer.handle();
    let seen: Arc<Mutex<Option<(Deadline, bool)>>> = Arc::default();
    let s = seen.clone();
    let out = outer
        .run(nursery(|n: Nursery<TestError>| async move {
            let done = n.spawn(async { Ok(7) });
            CancelScope::new()
                .run(n.start(move |_status: TaskStatus<()>| async move {
                    while !done.is_finished() {
                        checkpoint().await; // suspends: linked from here on
                    }
                    handle.cancel(); // cancels outer, around the caller's scope
                    *s.lock().unwrap() = Some((current_effective_deadline(), false));
                    let _v = done.join().await; // a finished sibling: must not complete
                    s.lock().unwrap().as_mut().unwrap().1 = true;
                    sleep(HOUR).await;
                    Ok(())
                }))
                .await;
            Ok(())
        }))
        .await;
    assert_eq!(out, None);
    assert_eq!(
        seen.lock().unwrap().take(),
        Some((Deadline::Cancelled, false)),
        "(effective deadline right after cancel(), whether the join completed)"
    );
}

/// A `start`ed task that cancels its caller's scope (the nursery) in its first poll sees
/// the cancellation at once, as a spawned task does
/// (`effective_deadline_in_first_poll_sees_the_cancellation`). The task was in nobody's
/// child list until it first suspended, and the walk up from inside it stopped at its
/// root.
#[hatchery::test]
async fn start_task_sees_its_callers_cancel_in_its_first_poll() {
    let seen: Arc<Mutex<Option<(Deadline, bool)>>> = Arc::default();
    let s = seen.clone();
    let r = nursery(|n: Nursery<TestError>| async move {
        let done = n.spawn(async { Ok(7) });
        while !done.is_finished() {
            checkpoint().await;
        }
        let n2 = n.clone();
        let _ = n
            .start(move |_status: TaskStatus<()>| async move {
                n2.cancel(); // first poll: cancels the caller's scope, the nursery
                *s.lock().unwrap() = Some((current_effective_deadline(), false));
                let _v = done.join().await; // a finished sibling: must not complete
                s.lock().unwrap().as_mut().unwrap().1 = true;
                sleep(HOUR).await;
                Ok(())
            })
            .await;
        Ok(())
    })
    .await;
    assert!(r.unwrap_err().is_cancelled());
    assert_eq!(
        seen.lock().unwrap().take(),
        Some((Deadline::Cancelled, false)),
        "(effective deadline right after cancel(), whether the join completed)"
    );
}

/// A task in its first poll (in nobody's child list until it first suspends) opens a
/// nursery whose child runs on another thread and has suspended once (so it is in that
/// nursery's list, and the walk up from inside it stops at its own root). A cancellation
/// of the outer nursery that returns during that first poll reaches the child at once:
/// it reads `Cancelled`, and its next checkpoint does not complete.
#[hatchery::test]
async fn grandchild_sees_cancel_during_its_parents_first_poll() {
    if !is_multi_thread() {
        return; // the task spins, in its first poll, until its child has run elsewhere
    }
    let seen: Arc<Mutex<Option<Deadline>>> = Arc::default();
    let log = Log::new();
    let (s, l) = (seen.clone(), log.clone());
    let r = nursery(|n: Nursery<TestError>| async move {
        let outer = n.clone();
        n.spawn(async move {
            // Nothing here suspends before the inner nursery waits for its child.
            let _ = nursery(|inner: Nursery<TestError>| async move {
                let linked = Arc::new(AtomicBool::new(false));
                let go = Arc::new(AtomicBool::new(false));
                let (lk, g, log) = (linked.clone(), go.clone(), l.clone());
                let child = async move {
                    let _over = log.on_drop("child over");
                    checkpoint().await; // suspends: in the inner nursery's list from here on
                    lk.store(true, Ordering::SeqCst);
                    while !g.load(Ordering::SeqCst) {
                        std::hint::spin_loop();
                    }
                    *s.lock().unwrap() = Some(current_effective_deadline());
                    checkpoint().await; // must not complete
                    log.push("checkpoint completed");
                    Ok(())
                };
                // Spawned from a plain thread, so that any worker can take it.
                std::thread::spawn(move || drop(inner.spawn(child)))
                    .join()
                    .unwrap();
                while !linked.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
                outer.cancel(); // still in this task's first poll
                go.store(true, Ordering::SeqCst);
                while !l.contains("child over") {
                    std::hint::spin_loop();
                }
                Ok(())
            })
            .await;
            Ok(())
        });
        sleep(HOUR).await;
        Ok(())
    })
    .await;
    assert!(r.unwrap_err().is_cancelled());
    assert_eq!(
        (seen.lock().unwrap().take(), log.events()),
        (Some(Deadline::Cancelled), vec!["child over"]),
        "(the child's effective deadline right after the outer nursery's cancel(), events)"
    );
}

/// What a child sees right after it cancels the outer scope, with or without a plain
/// scope between the outer one and the nursery.
async fn probe(inner_scope: bool) -> Option<(bool, Deadline)> {
    let outer = CancelScope::new();
    let handle = outer.handle();
    let seen: Arc<Mutex<Option<(bool, Deadline)>>> = Arc::default();
    let s = seen.clone();
    let body = async move {
        nursery(|n: Nursery<TestError>| async move {
            let n2 = n.clone();
            n.spawn(async move {
                checkpoint().await; // linked from here on
                handle.cancel();
                *s.lock().unwrap() = Some((n2.is_cancelled(), current_effective_deadline()));
                Ok(())
            });
            sleep(HOUR).await;
            Ok(())
        })
        .await
    };
    if inner_scope {
        outer.run(move_on_after(HOUR, body)).await;
    } else {
        outer.run(body).await;
    }
    seen.lock().unwrap().take()
}

/// Many rounds of the probe above, where the outer scope's task runs on another thread
/// at the same time: woken by the cancel, it refreshes the inner scope, which the cancel
/// has just unlinked, and marks that part of the tree itself. The cancel still returns
/// only once the child's own node is marked (it returned early, and the child read
/// `At(..)` right after cancelling: about once in 10,000 rounds on the multi-threaded
/// backends).
#[hatchery::test(virtual_time)]
async fn a_cancel_racing_a_refresh_on_another_thread_marks_the_whole_tree() {
    for round in 0..3000 {
        let got = probe(true).await;
        assert_eq!(got, Some((true, Deadline::Cancelled)), "round {round}");
    }
}

/// The same reads without the inner scope.
#[hatchery::test(virtual_time)]
async fn effective_deadline_sees_outer_cancel_without_inner_scope() {
    assert_eq!(probe(false).await, Some((true, Deadline::Cancelled)));
}

/// A child of a nursery under a plain inner scope sees an outer cancellation at once
/// (`current_effective_deadline` was the inner scope's `At(..)`).
#[hatchery::test(virtual_time)]
async fn effective_deadline_sees_outer_cancel_through_inner_scope() {
    assert_eq!(probe(true).await, Some((true, Deadline::Cancelled)));
}

/// Waits (in real time, up to 10 s) until `flag` is set; whether it was.
fn wait_until_set(flag: &AtomicBool) -> bool {
    let start = Instant::now();
    while !flag.load(Ordering::SeqCst) {
        if start.elapsed() > Duration::from_secs(10) {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

/// Two cancels of one scope racing on two threads: one from a plain thread, one from a
/// task two nurseries down, while the first walk is long (2,000 other tasks). The second
/// `cancel()` returns only once the tree is marked, so the task that called it reads
/// `Cancelled` (from a review: it found the scope's list emptied by the first walk,
/// which had not reached the task yet, and returned at once; 3 to 11 rounds in 20 read
/// `Never`. A marked node now leaves its parent's list only once its subtree is marked).
#[hatchery::test]
async fn a_second_cancel_racing_the_first_returns_only_once_the_tree_is_marked() {
    let mut bad = 0;
    for _ in 0..20 {
        let scope = CancelScope::new();
        let handle = scope.handle();
        let ready = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Option<Deadline>>> = Arc::default();
        let other = {
            let (h, ready) = (handle.clone(), ready.clone());
            std::thread::spawn(move || {
                // Cancels even if the task took longer than the wait: it spins until then.
                wait_until_set(&ready);
                h.cancel();
            })
        };
        let (r, s, h) = (ready.clone(), seen.clone(), handle.clone());
        scope
            .run(nursery(move |n: Nursery<TestError>| async move {
                for _ in 0..2000 {
                    n.spawn(async {
                        sleep(HOUR).await;
                        Ok(())
                    });
                }
                n.spawn(async move {
                    nursery(move |n2: Nursery<TestError>| async move {
                        n2.spawn(async move {
                            checkpoint().await;
                            sleep(Duration::from_millis(30)).await;
                            r.store(true, Ordering::SeqCst);
                            while !h.cancel_called() {
                                std::hint::spin_loop();
                            }
                            h.cancel();
                            *s.lock().unwrap() = Some(current_effective_deadline());
                            Ok(())
                        });
                        std::future::pending::<()>().await;
                        Ok(())
                    })
                    .await
                    .map_err(|_| TestError("inner nursery"))
                });
                std::future::pending::<()>().await;
                Ok(())
            }))
            .await;
        other.join().unwrap();
        if *seen.lock().unwrap() != Some(Deadline::Cancelled) {
            bad += 1;
        }
    }
    assert_eq!(
        bad, 0,
        "rounds out of 20 that read a non-cancelled deadline right after cancel()"
    );
}

/// A task that cancels its own nursery in a later poll (it is linked then, and its runner
/// found it not cancelled as the poll began), then waits inside a plain scope: the join
/// of a finished sibling must not complete. The scope's walk up the tree stops at the
/// task's root, checked by its runner for the poll (node invariant 12), only until the
/// task's own code cancels something.
#[hatchery::test]
async fn c2_a_scope_sees_its_task_cancelled_earlier_in_the_same_poll() {
    let log = Log::new();
    let l = log.clone();
    let _ = nursery(|n: Nursery<TestError>| async move {
        let done = n.spawn(async { Ok(7) });
        let n2 = n.clone();
        n.spawn(async move {
            while !done.is_finished() {
                checkpoint().await; // suspends: this task is linked from here on
            }
            move_on_after(HOUR, async {
                n2.cancel(); // marks this task's root, through the nursery's list
                let _v = done.join().await; // must not complete
                l.push("join returned in a cancelled nursery");
            })
            .await;
            l.push("the scope returned in a cancelled nursery");
            Ok(())
        });
        Ok(())
    })
    .await;
    assert!(log.is_empty(), "{:?}", log.events());
}

/// A scope suspended in its body, whose task is cancelled by the task's own code in a
/// later poll, before the scope is polled again in that poll (a `zip` polls its first
/// future first): the body is dropped where it suspended, not resumed (rule C1).
#[hatchery::test]
async fn c1_a_suspended_scope_whose_task_cancelled_itself_is_not_resumed() {
    let log = Log::new();
    let l = log.clone();
    let _ = nursery(|n: Nursery<TestError>| async move {
        let n2 = n.clone();
        n.spawn(async move {
            checkpoint().await; // linked from here on
            future::zip(
                async move {
                    future::yield_now().await;
                    n2.cancel(); // in the poll that resumes the scope below
                },
                move_on_after(HOUR, async move {
                    future::yield_now().await;
                    l.push("resumed in a cancelled nursery");
                }),
            )
            .await;
            Ok(())
        });
        Ok(())
    })
    .await;
    assert!(log.is_empty(), "{:?}", log.events());
}
