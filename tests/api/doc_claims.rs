//! Claims of the book and the README that no other test pinned: each test names the
//! page it checks. (Written by an audit of the docs against the code; all held.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::StreamExt;
use hatchery::backon::ConstantBuilder;
use hatchery::sync::{CapacityLimiter, Event, LimiterError, Lock, Semaphore};
use hatchery::testing::{elapsed, wait_all_tasks_blocked};
use hatchery::{
    as_completed, fail_after, finally, map, memory_stream, memory_stream_unbounded, move_on_after,
    nursery, retry, shield, sleep, try_join, CancelScope, StartError, TaskStatus,
};
use hatchery_tests::{secs, Counter, Log, TestError, HOUR};

fn cancelled() -> CancelScope {
    let s = CancelScope::new();
    s.handle().cancel();
    s
}

/// sync.md: a wait that could complete at once still checks for cancellation first, and
/// takes nothing in a cancelled scope.
#[hatchery::test(virtual_time)]
async fn w2_w4_waits_that_could_complete_take_nothing_in_a_cancelled_scope() {
    let lock = Arc::new(Lock::new(0));
    assert_eq!(cancelled().run(lock.lock()).await.map(|_| ()), None);
    assert!(!lock.is_locked());
    assert_eq!(
        cancelled().run(lock.clone().lock_owned()).await.map(|_| ()),
        None
    );
    assert!(!lock.is_locked());

    let sem = Arc::new(Semaphore::new(1));
    assert_eq!(cancelled().run(sem.acquire()).await.map(|_| ()), None);
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(
        cancelled()
            .run(sem.clone().acquire_owned())
            .await
            .map(|_| ()),
        None
    );
    assert_eq!(sem.available_permits(), 1);

    let lim = CapacityLimiter::new(1);
    assert_eq!(cancelled().run(lim.acquire()).await.map(|_| ()), None);
    assert_eq!(lim.borrowed_tokens(), 0);
    assert_eq!(cancelled().run(lim.acquire_on_behalf_of(3)).await, None);
    assert_eq!(lim.borrowed_tokens(), 0);

    let (tx, rx) = memory_stream::<u32>(1);
    assert_eq!(cancelled().run(tx.send(1)).await, None);
    assert!(rx.try_recv().is_err());
    tx.try_send(2).unwrap();
    assert_eq!(cancelled().run(rx.recv()).await, None);
    assert_eq!(rx.try_recv(), Ok(2));
    let (utx, urx) = memory_stream_unbounded::<u32>();
    assert_eq!(cancelled().run(utx.send(1)).await, None);
    assert!(urx.try_recv().is_err());
    drop(rx);
    // closed() on a stream with no receivers left
    assert_eq!(cancelled().run(tx.closed()).await, None);
    // a Stream::next in a cancelled scope
    utx.try_send(5).unwrap();
    let mut s = urx.clone();
    assert_eq!(cancelled().run(s.next()).await, None);
    assert_eq!(urx.try_recv(), Ok(5));
}

/// sync.md: `tx.closed()` completes once `tx` itself is closed.
#[hatchery::test(virtual_time)]
async fn closed_completes_when_the_handle_itself_is_closed() {
    let (tx, _rx) = memory_stream::<u32>(1);
    let tx2 = tx.clone();
    tx.close();
    assert_eq!(move_on_after(secs(1), tx.closed()).await, Some(()));
    // the clone is unaffected
    assert_eq!(move_on_after(secs(1), tx2.closed()).await, None);
    assert!(tx2.try_send(1).is_ok());
    // try_send on the closed handle
    assert!(matches!(
        tx.try_send(3),
        Err(hatchery::sync::TrySendError::Closed(3))
    ));
}

/// sync.md: closed() waits on a handle that is open while a waiter closes it from another task.
#[hatchery::test(virtual_time)]
async fn closed_wakes_when_the_handle_is_closed_later() {
    let (tx, _rx) = memory_stream::<u32>(1);
    let tx = Arc::new(tx);
    let t2 = tx.clone();
    nursery(|n| async move {
        n.spawn(async move {
            sleep(secs(5)).await;
            t2.close();
            Ok::<_, TestError>(())
        });
        assert_eq!(move_on_after(secs(60), tx.closed()).await, Some(()));
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(elapsed(), secs(5));
}

/// sync.md: AlreadyBorrowing "at once, not a self-deadlock", also on a full limiter.
#[hatchery::test(virtual_time)]
async fn already_borrowing_at_once_on_a_full_limiter() {
    let lim = CapacityLimiter::new(1);
    lim.acquire_on_behalf_of(1).await.unwrap();
    assert_eq!(
        move_on_after(secs(1), lim.acquire_on_behalf_of(1)).await,
        Some(Err(LimiterError::AlreadyBorrowing))
    );
}

/// python.md: without `without_max_times`, backon's builder allows only 3 retries,
/// whatever `max_attempts` says.
#[hatchery::test(virtual_time)]
async fn backon_builder_caps_retries_at_three() {
    let calls = AtomicUsize::new(0);
    let r = retry(|| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>("down") }
    })
    .backoff(ConstantBuilder::new().with_delay(secs(1)))
    .max_attempts(10)
    .await;
    assert_eq!((r, calls.load(Ordering::SeqCst)), (Err("down"), 4));
}

/// decisions.md: a retry with no delay ends at its timeout on every runtime.
#[hatchery::test]
async fn a_zero_delay_retry_ends_at_its_timeout() {
    let r = move_on_after(
        Duration::from_millis(20),
        retry(|| async { Err::<(), _>("down") })
            .backoff(
                ConstantBuilder::new()
                    .with_delay(Duration::ZERO)
                    .without_max_times(),
            )
            .max_attempts(usize::MAX),
    )
    .await;
    assert_eq!(r, None);
}

/// cancellation.md / decisions.md: `finally` does not run cleanup if `work` panics.
#[hatchery::test(virtual_time)]
async fn finally_skips_cleanup_on_panic() {
    let log = Log::new();
    let l = log.clone();
    let r = futures_lite::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(finally(
        async {
            sleep(secs(1)).await;
            panic!("work panics")
        },
        async move {
            l.push("cleanup");
        },
    )))
    .await;
    assert!(r.is_err());
    assert!(log.is_empty(), "{:?}", log.events());
}

/// combinators.md: errors of `map(..).try_join()` are reported under outer cancellation.
#[hatchery::test(virtual_time)]
async fn map_try_join_reports_errors_under_outer_cancellation() {
    let out = move_on_after(secs(2), async {
        map(2, 0..2u32, |i| async move {
            if i == 0 {
                sleep(secs(1)).await;
                Err(TestError("a"))
            } else {
                finally(sleep(HOUR), sleep(secs(5))).await;
                Ok(1)
            }
        })
        .try_join()
        .await
    })
    .await;
    assert_eq!(elapsed(), secs(6));
    assert_eq!(
        out.expect("the error is reported").unwrap_err().errors(),
        [TestError("a")]
    );
}

/// combinators.md: errors of `try_join!` are reported under outer cancellation.
#[hatchery::test(virtual_time)]
async fn try_join_macro_reports_errors_under_outer_cancellation() {
    let out = move_on_after(secs(2), async {
        hatchery::try_join!(
            async {
                sleep(secs(1)).await;
                Err::<u32, _>(TestError("a"))
            },
            async {
                finally(sleep(HOUR), sleep(secs(5))).await;
                Ok(1)
            }
        )
    })
    .await;
    assert_eq!(elapsed(), secs(6));
    assert_eq!(
        out.expect("the error is reported").unwrap_err().errors(),
        [TestError("a")]
    );
}

/// combinators.md: a panic in an `as_completed` future cancels the rest, awaits them, and is
/// resumed in the caller.
#[hatchery::test(virtual_time)]
async fn as_completed_panic_cancels_and_awaits_the_rest() {
    let drops = Counter::new();
    let d = drops.clone();
    let futs: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = u32> + Send>>> = vec![
        Box::pin(async {
            sleep(secs(1)).await;
            panic!("boom")
        }),
        Box::pin(async move {
            let _g = d.guard();
            finally(sleep(HOUR), sleep(secs(5))).await;
            1
        }),
    ];
    let r = futures_lite::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(as_completed(
        futs,
        |mut s| async move { while s.next().await.is_some() {} },
    )))
    .await;
    assert!(r.is_err());
    assert_eq!(drops.get(), 1);
    assert_eq!(elapsed(), secs(6));
}

/// combinators.md: `settle` and `as_completed` in a cancelled caller never return.
#[hatchery::test(virtual_time)]
async fn settle_in_a_cancelled_caller_never_returns() {
    let out = move_on_after(secs(2), async {
        hatchery::settle([
            Box::pin(async {
                sleep(secs(1)).await;
                Err::<u32, _>(TestError("a"))
            })
                as std::pin::Pin<
                    Box<dyn std::future::Future<Output = Result<u32, TestError>> + Send>,
                >,
            Box::pin(async {
                sleep(HOUR).await;
                Ok(1)
            }),
        ])
        .await
    })
    .await;
    assert!(out.is_none());
    assert_eq!(elapsed(), secs(2));
}

/// testing.md: wait_all_tasks_blocked works under real time too.
#[hatchery::test]
async fn wait_all_tasks_blocked_under_real_time() {
    let parked = Arc::new(AtomicUsize::new(0));
    let p0 = parked.clone();
    nursery(|n| async move {
        for _ in 0..10 {
            let p = p0.clone();
            n.spawn(async move {
                p.fetch_add(1, Ordering::SeqCst);
                Event::new().wait().await;
                Ok::<_, TestError>(())
            });
        }
        wait_all_tasks_blocked().await;
        assert_eq!(p0.load(Ordering::SeqCst), 10);
        n.cancel();
        Ok(())
    })
    .await
    .ok();
    assert_eq!(parked.load(Ordering::SeqCst), 10);
}

/// testing.md: `#[should_panic]` is copied onto every generated test.
#[hatchery::test]
#[should_panic(expected = "probe boom")]
async fn should_panic_is_copied() {
    panic!("probe boom");
}

/// nurseries.md: an error of the shielded part of a start whose caller was cancelled comes
/// out of `start`.
#[hatchery::test(virtual_time)]
async fn shielded_start_error_comes_out_of_start() {
    let out = nursery(|n| async move {
        let r = move_on_after(secs(1), async {
            n.start(|status: hatchery::TaskStatus<u32>| async move {
                shield(async {
                    sleep(secs(2)).await;
                    status.started(1);
                })
                .await;
                Err::<(), _>(TestError("late"))
            })
            .await
        })
        .await;
        Ok::<_, TestError>(r.map(|r| r.map_err(|e| format!("{e:?}"))))
    })
    .await;
    // The task failed after its shield, before it next suspended: the error comes out
    // of `start`, and the timeout's body returns it.
    let r = out.unwrap();
    assert!(matches!(&r, Some(Err(e)) if e.contains("late")), "{r:?}");
    assert_eq!(elapsed(), secs(2));
}

/// decisions.md: `run_blocking` reached in a cancelled scope never starts its work.
#[hatchery::test]
async fn run_blocking_in_a_cancelled_scope_never_starts() {
    let ran = Counter::new();
    let r = ran.clone();
    assert_eq!(
        cancelled()
            .run(hatchery::run_blocking(move || {
                r.incr();
            }))
            .await,
        None
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(ran.get(), 0);
}

/// README/python.md: `try_join` on many futures; the Python table's pattern of
/// `fail_after(t, handle.join())`: only stops waiting.
#[hatchery::test(virtual_time)]
async fn fail_after_join_only_stops_waiting() {
    let log = Log::new();
    let l = log.clone();
    nursery(|n| async move {
        let h = n.spawn(async move {
            sleep(secs(10)).await;
            l.push("child done");
            Ok::<_, TestError>(())
        });
        assert!(hatchery::fail_after(secs(1), h.join()).await.is_err());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(log.events(), ["child done"]);
    assert_eq!(elapsed(), secs(10));
    let _ = try_join([async { Ok::<_, TestError>(1) }]).await;
}

/// sync.md closing rules via close() of the last handle of a side.
#[hatchery::test(virtual_time)]
async fn close_of_the_last_handle() {
    use hatchery::sync::{RecvError, SendError, TryRecvError, TrySendError};
    let (tx, rx) = memory_stream::<u32>(4);
    tx.try_send(1).unwrap();
    tx.close();
    assert_eq!(rx.recv().await, Ok(1));
    assert_eq!(rx.recv().await, Err(RecvError::EndOfStream));
    assert!(matches!(tx.send(2).await, Err(SendError::Closed(2))));

    let (tx, rx) = memory_stream::<u32>(4);
    let rx2 = rx.clone();
    tx.try_send(1).unwrap();
    rx.close();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(rx.recv().await, Err(RecvError::Closed));
    assert!(tx.try_send(2).is_ok()); // rx2 still open
    rx2.close();
    assert!(matches!(tx.try_send(3), Err(TrySendError::Broken(3))));
    assert!(matches!(tx.send(4).await, Err(SendError::Broken(4))));
    assert_eq!(move_on_after(secs(1), tx.closed()).await, Some(()));
}

/// sync.md: recv_blocking in async code panics at once.
#[hatchery::test]
async fn recv_blocking_panics_in_async_code() {
    let (tx, rx) = memory_stream::<u32>(1);
    tx.try_send(1).unwrap();
    let err =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rx.recv_blocking())).unwrap_err();
    let msg = hatchery_tests::panic_message(&*err);
    assert!(msg.contains("called from async code"), "{msg}");
    assert_eq!(rx.try_recv(), Ok(1));
}

/// nurseries.md: the caller's scope cancelled before `started`: `start` never returns,
/// also when the task then ends at once (no suspension after its shield).
#[hatchery::test(virtual_time)]
async fn start_cut_off_then_ends_without_suspending() {
    let out = nursery(|n| async move {
        let r = move_on_after(secs(1), async {
            n.start(|status: hatchery::TaskStatus<u32>| async move {
                shield(async {
                    sleep(secs(2)).await;
                    status.started(1);
                })
                .await;
                Ok::<(), TestError>(())
            })
            .await
        })
        .await;
        let r2 = move_on_after(secs(1), async {
            n.start(|_status: hatchery::TaskStatus<u32>| async move {
                shield(sleep(secs(2))).await;
                Ok::<(), TestError>(())
            })
            .await
        })
        .await;
        Ok::<_, TestError>((format!("{r:?}"), format!("{r2:?}")))
    })
    .await;
    let (r, r2) = out.unwrap();
    assert_eq!((r.as_str(), r2.as_str()), ("None", "None"));
}

/// decisions.md: `CancelHandle::is_shielded`.
#[hatchery::test]
async fn p4_handle_reads_the_shield() {
    let s = CancelScope::new().with_shield(true);
    assert!(s.handle().is_shielded());
    assert!(!CancelScope::new().handle().is_shielded());
}

/// runtimes.md: in a plain tokio::spawn task, sync primitives, streams, checkpoint and
/// TaskHandle::join work; scopes, shield, finally, nurseries, start panic with the message.
#[test]
fn plain_tokio_task_inside_a_run() {
    const NO_RUNTIME: &str = "hatchery: no runtime in this context";
    for multi in [false, true] {
        let f = async {
            nursery(|n| async move {
                let h = n.spawn(async {
                    sleep(Duration::from_millis(5)).await;
                    Ok::<_, TestError>(7)
                });
                let got = tokio::spawn(async move {
                    assert!(!hatchery::rt::is_entered());
                    hatchery::checkpoint().await;
                    let l = Lock::new(1);
                    *l.lock().await += 1;
                    let s = Semaphore::new(1);
                    drop(s.acquire().await);
                    let e = Event::new();
                    e.set();
                    e.wait().await;
                    let (tx, rx) = memory_stream(1);
                    tx.send(1u32).await.unwrap();
                    assert_eq!(rx.recv().await, Ok(1));
                    h.join().await.unwrap()
                })
                .await
                .unwrap();
                assert_eq!(got, 7);
                for (what, r) in [
                    (
                        "shield",
                        tokio::spawn(async { shield(async {}).await }).await,
                    ),
                    (
                        "finally",
                        tokio::spawn(async { finally(async {}, async {}).await }).await,
                    ),
                    (
                        "scope",
                        tokio::spawn(async { CancelScope::new().run(async {}).await.unwrap() })
                            .await,
                    ),
                ] {
                    let p = r.expect_err(what).into_panic();
                    let m = hatchery_tests::panic_message(&*p);
                    assert!(m.starts_with(NO_RUNTIME), "{what}: {m}");
                }
                let n2 = n.clone();
                let r = tokio::spawn(async move {
                    let _ = n2
                        .start(|s: hatchery::TaskStatus<()>| async move {
                            s.started(());
                            Ok(())
                        })
                        .await;
                })
                .await;
                let p = r.expect_err("start").into_panic();
                let m = hatchery_tests::panic_message(&*p);
                eprintln!("start in a plain task: {m}");
                Ok::<_, TestError>(())
            })
            .await
            .unwrap();
        };
        if multi {
            hatchery_tokio::run(f)
        } else {
            hatchery_tokio::run_current_thread(f)
        }
    }
}

/// runtimes.md: run_with on a builder without time.
#[test]
fn run_with_without_time() {
    let b = tokio::runtime::Builder::new_current_thread();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        hatchery_tokio::run_with(b, sleep(Duration::from_millis(1)))
    }));
    let p = r.unwrap_err();
    let msg = hatchery_tests::panic_message(&*p);
    assert!(msg.contains("enable_time"), "{msg}");
}

/// D3: a timeout too large to add to the clock means no deadline.
#[hatchery::test(virtual_time)]
async fn huge_timeout_is_no_deadline() {
    let huge = Duration::from_secs(u64::MAX / 2);
    let s = CancelScope::new().with_timeout(huge);
    let h = s.handle();
    let out = s
        .run(async {
            assert_eq!(
                hatchery::current_effective_deadline(),
                hatchery::Deadline::Never
            );
            sleep(secs(5)).await;
            1
        })
        .await;
    assert_eq!((out, h.deadline()), (Some(1), None));
    assert_eq!(move_on_after(secs(5), sleep(huge)).await, None);
    assert_eq!(hatchery::fail_after(huge, sleep(secs(1))).await, Ok(()));
}

/// cancellation.md, kept futures: a kept `fail_after` with a pending `start` inside, lent
/// to a timeout that fires, is cancelled there (the `start`'s task runs elsewhere, so
/// the caller's scopes are in their parents' lists), and returns as cancelled once
/// awaited: `Err(Elapsed)`, at once.
#[hatchery::test(virtual_time)]
async fn a_kept_scope_with_a_pending_start_inside_is_cancelled_by_the_timeout() {
    let r = nursery(|n| async move {
        let mut op = std::pin::pin!(fail_after(
            secs(10),
            n.start(|status: TaskStatus<u32>| async move {
                sleep(secs(5)).await;
                status.started(7);
                Ok::<_, TestError>(())
            })
        ));
        let paused = move_on_after(secs(1), &mut op).await.is_none();
        let v = op.await;
        Ok::<_, TestError>((paused, v.is_err(), elapsed()))
    })
    .await;
    assert_eq!(r, Ok((true, true, secs(1))), "(paused, elapsed, at)");
}

/// `Nursery::start`, # Errors: a kept `start` lent to a timeout that fires has its task
/// cancelled with that scope; awaited afterwards, it returns `NotStarted`.
#[hatchery::test(virtual_time)]
async fn a_kept_start_lent_to_a_timeout_that_fired_is_not_started() {
    let r = nursery(|n| async move {
        let mut s = n.start(|status: TaskStatus<u32>| async move {
            sleep(secs(5)).await;
            status.started(7);
            Ok::<_, TestError>(())
        });
        let paused = move_on_after(secs(1), &mut s).await.is_none();
        let v = s.await;
        Ok::<_, TestError>((paused, v, elapsed()))
    })
    .await;
    assert_eq!(r, Ok((true, Err(StartError::NotStarted), secs(1))));
}

/// cancellation.md, kept futures: a shield inside a kept scope holds the timeout it is
/// lent to until the shielded work is done.
#[hatchery::test(virtual_time)]
async fn k4_a_kept_scope_with_a_shield_inside_holds_the_timeout() {
    let mut op = std::pin::pin!(move_on_after(secs(10), shield(sleep(secs(5)))));
    let first = move_on_after(secs(1), &mut op).await;
    assert_eq!((first, elapsed()), (Some(Some(())), secs(5)));
}

/// `finally`, # Cancel safety: one moved into another scope while its cleanup runs holds
/// the new scope until the cleanup is done (the cleanup is a shield), and returns its
/// value.
#[hatchery::test(virtual_time)]
async fn a_finally_moved_during_its_cleanup_holds_the_new_scope() {
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let mut fin = Box::pin(finally(async { 1u32 }, async move {
        sleep(secs(5)).await;
        d.fetch_add(1, Ordering::SeqCst);
    }));
    // First polled in a scope that finishes normally at 1 s, the cleanup under way.
    let first = CancelScope::new()
        .run(futures_lite::future::or(
            async { Some((&mut fin).await) },
            async {
                sleep(secs(1)).await;
                None
            },
        ))
        .await;
    assert_eq!(first, Some(None));
    let out = move_on_after(secs(1), fin).await;
    assert_eq!(
        (out, done.load(Ordering::SeqCst), elapsed()),
        (Some(1), 1, secs(5))
    );
}

/// semantics.md, E1: the crate `hatchery` depends on no executor. Its normal dependencies
/// (core/Cargo.toml) name none, but for tokio, optional, behind the `tokio-io` feature
/// (tokio's I/O traits, without its runtime); `.ci/run independence` checks the built
/// dependency tree.
#[test]
fn e1_the_core_depends_on_no_executor() {
    const EXECUTORS: [&str; 5] = ["tokio", "smol", "async-executor", "async-io", "async-std"];
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../core/Cargo.toml"))
            .expect("core/Cargo.toml");
    let mut normal = false;
    let mut seen = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            // `[dependencies]` and `[target.'cfg(..)'.dependencies]`, not dev- or build-.
            normal = line == "[dependencies]" || line.ends_with(".dependencies]");
            continue;
        }
        let Some((name, spec)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim().trim_end_matches(".workspace");
        if normal && !line.starts_with('#') {
            seen.push(name.to_owned());
            if EXECUTORS.contains(&name) {
                assert!(
                    name == "tokio" && spec.contains("optional = true"),
                    "hatchery depends on the executor {name}: {line}"
                );
            }
        }
    }
    assert!(
        seen.iter().any(|d| d == "slab"),
        "the dependencies were read: {seen:?}"
    );
    let features = manifest
        .split("[features]")
        .nth(1)
        .expect("a [features] table");
    assert!(features.contains(r#"tokio-io = ["dep:tokio"]"#));
    assert!(!features.contains(r#"default = ["tokio-io"]"#));
}

/// semantics.md, E4: `unsafe` is allowed in two places of the core only (the modules
/// `child::cell`, the one child cell, and `node::waker`), and for signals in the two
/// functions of `hatchery-sigaction` only; every `unsafe` block and `unsafe impl` there has
/// a `SAFETY:` comment, and the adapters forbid it.
#[test]
fn e4_unsafe_only_in_its_places() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    assert_eq!(
        unsafe_places(&root, "core/src"),
        [
            "core/src/child/mod.rs: mod cell;",
            "core/src/node/mod.rs: mod waker;",
        ],
        "the places where the core allows `unsafe` (rule E4)"
    );
    assert_eq!(
        unsafe_places(&root, "core/sigaction/src"),
        [
            "core/sigaction/src/lib.rs: pub fn register_write",
            "core/sigaction/src/lib.rs: pub fn disposition",
        ],
        "the places where hatchery-sigaction allows `unsafe` (rule E4)"
    );
    for adapter in ["adapters/tokio/src/lib.rs", "adapters/smol/src/lib.rs"] {
        let text = std::fs::read_to_string(root.join(adapter)).unwrap();
        assert!(
            text.contains("#![forbid(unsafe_code)]"),
            "{adapter} forbids unsafe"
        );
    }
}

/// The items under `dir` (below `root`) that allow `unsafe` code, as "path: item", in
/// the order of their files' paths; checks that every `unsafe` block and `unsafe impl`
/// there has a `SAFETY:` comment in the ten lines above it.
fn unsafe_places(root: &std::path::Path, dir: &str) -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs = vec![root.join(dir)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut allowed = Vec::new();
    for path in &files {
        let name = path.strip_prefix(root).unwrap().display().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap();
            if code.contains("allow(unsafe_code)") {
                // The item allowed: the next line that is no attribute or comment.
                let item = lines[i + 1..]
                    .iter()
                    .map(|l| l.trim())
                    .find(|l| !l.starts_with("#[") && !l.starts_with("//"))
                    .unwrap_or("");
                allowed.push(format!(
                    "{name}: {}",
                    item.split(['(', '{']).next().unwrap().trim()
                ));
            }
            if code.contains("unsafe {") || code.contains("unsafe impl") {
                let above = &lines[i.saturating_sub(10)..i];
                assert!(
                    above.iter().any(|l| l.contains("SAFETY:")),
                    "{name}:{}: an unsafe block or impl without a `// SAFETY:` comment",
                    i + 1
                );
            }
        }
    }
    allowed
}
