//! The runtime and the task context (R), and what `spawn` must do (N8): the scenarios
//! closest to the binding itself.

use std::cell::Cell;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hatchery::testing::elapsed;
use hatchery::{
    checkpoint, current_effective_deadline, move_on_after, now, nursery, run_blocking, sleep,
    Deadline, Nursery,
};

use crate::support::{message, ms, secs, Counter, Log, HOUR};

thread_local! {
    /// Set while this thread is inside `Nursery::spawn`.
    static SPAWNING: Cell<bool> = const { Cell::new(false) };
}

/// N8: `spawn` runs the task in the background, never inside `spawn` itself (the
/// runtime's `spawn` must not poll it), and the task runs while its spawner waits.
pub async fn n8_spawn_never_polls_inline() {
    let inline = Counter::new();
    let out = nursery(|n: Nursery<Infallible>| async move {
        let (tx, rx) = hatchery::memory_stream::<u32>(0);
        let mut handles = Vec::new();
        for i in 0..10 {
            let (inline, tx) = (inline.clone(), tx.clone());
            SPAWNING.with(|s| s.set(true));
            handles.push(n.spawn(async move {
                if SPAWNING.with(Cell::get) {
                    inline.incr();
                }
                tx.send(i).await.unwrap();
                Ok(())
            }));
            SPAWNING.with(|s| s.set(false));
        }
        drop(tx);
        let mut sum = 0;
        while let Ok(i) = rx.recv().await {
            sum += i;
        }
        for h in handles {
            h.join().await.unwrap();
        }
        Ok((sum, inline.get()))
    })
    .await
    .unwrap();
    assert_eq!(
        out,
        (45, 0),
        "(the sum of what the tasks sent, tasks polled inside spawn)"
    );
}

/// N8: many tasks, spawned from tasks on any thread, all run to their end, each
/// suspending a few times, and their values come back.
pub async fn n8_many_tasks_finish() {
    let out = nursery(|n: Nursery<Infallible>| async move {
        let mut handles = Vec::new();
        for i in 0..20u64 {
            let n2 = n.clone();
            handles.push(n.spawn(async move {
                let mut inner = Vec::new();
                for j in 0..10u64 {
                    inner.push(n2.spawn(async move {
                        checkpoint().await;
                        sleep(Duration::ZERO).await;
                        Ok(j)
                    }));
                }
                let mut sum = i * 100;
                for h in inner {
                    sum += h.join().await.unwrap();
                }
                Ok(sum)
            }));
        }
        let mut total = 0;
        for h in handles {
            total += h.join().await.unwrap();
        }
        Ok(total)
    })
    .await
    .unwrap();
    assert_eq!(out, (0..20u64).map(|i| i * 100 + 45).sum::<u64>());
}

/// R1: every task finds its runtime through the task context, whichever thread the
/// executor polls it on: the same runtime as its root's, and its clock.
pub async fn r1_tasks_find_their_runtime() {
    let root = hatchery::rt::current().expect("the root runs inside hatchery");
    let r = root.clone();
    nursery(|n: Nursery<Infallible>| async move {
        for _ in 0..4 {
            let (n2, r) = (n.clone(), r.clone());
            n.spawn(async move {
                checkpoint().await; // perhaps on another thread now
                let mine = hatchery::rt::current().expect("a task runs inside hatchery");
                assert!(
                    Arc::ptr_eq(&mine, &r),
                    "a task runs on another runtime than its root"
                );
                assert_eq!(mine.name(), r.name());
                let t = now();
                assert!(t <= mine.now());
                n2.spawn(async move {
                    assert!(hatchery::rt::is_entered());
                    Ok(())
                });
                Ok(())
            });
        }
        Ok(())
    })
    .await
    .unwrap();
}

/// R2 (E5): code outside any runtime (a blocking function, a plain thread) finds none:
/// `rt::current()` is `None`, and what needs a runtime panics with a message that says
/// what to do, rather than hang.
pub async fn r2_no_runtime_outside() {
    let (none, msg) = run_blocking(|| {
        let none = hatchery::rt::current().is_none() && !hatchery::rt::is_entered();
        let msg = std::panic::catch_unwind(hatchery::now).map_err(|p| message(&*p));
        (none, msg)
    })
    .await;
    assert!(none);
    let msg = msg.expect_err("`now` outside a runtime returned");
    assert!(
        msg.starts_with("hatchery: no runtime in this context"),
        "{msg}"
    );
}

/// R3: `rt::enter` of the current runtime, nested in hatchery code (a library that
/// enters to be safe), runs in the enclosing scope: the enclosing deadline reaches it.
pub async fn r3_a_nested_enter_stays_in_its_scope() {
    let rt = hatchery::rt::current().expect("inside hatchery");
    let start = now();
    let out = move_on_after(ms(20), hatchery::rt::enter(rt, sleep(HOUR))).await;
    assert_eq!(out, None);
    assert!(now() - start < secs(10));
}

/// R5: a cancelled task's future is dropped in its context: a `Drop` there reads the
/// clock, and sees its scope cancelled.
pub async fn r5_a_cancelled_task_is_dropped_in_its_context() {
    struct Probe(Log);
    impl Drop for Probe {
        fn drop(&mut self) {
            let _ = now(); // would panic outside the task's context
            if current_effective_deadline() == Deadline::Cancelled {
                self.0.push("dropped in its cancelled context");
            }
        }
    }
    let log = Log::new();
    let l = log.clone();
    let out = move_on_after(
        secs(1),
        nursery(|n: Nursery<Infallible>| async move {
            n.spawn(async move {
                let _probe = Probe(l);
                sleep(HOUR).await;
                Ok(())
            });
            sleep(HOUR).await;
            Ok(())
        }),
    )
    .await;
    assert_eq!(out, None);
    assert_eq!(log.events(), ["dropped in its cancelled context"]);
}

/// Virtual time over the executor's tasks (R1, D1): with every task blocked, the clock
/// jumps to the next deadline, so each of many sleeping tasks wakes at exactly its time,
/// whichever threads run them.
pub async fn r_virtual_time_moves_over_the_executor() {
    let start = now();
    let late = Counter::new();
    let l = late.clone();
    nursery(|n: Nursery<Infallible>| async move {
        for i in 1..=30u64 {
            let l = l.clone();
            n.spawn(async move {
                sleep(secs(i)).await;
                if now() - start != secs(i) {
                    l.incr();
                }
                Ok(())
            });
        }
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(
        late.get(),
        0,
        "tasks woke at another time than their deadline"
    );
    assert_eq!(elapsed(), secs(30));
}
