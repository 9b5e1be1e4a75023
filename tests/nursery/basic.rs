//! Nurseries on the happy path: waiting for every child (N1), spawning while open and
//! after close (N5), on both kinds of nursery; children as parallel executor tasks (N8),
//! on the spawning one.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use hatchery::sync::Event;
use hatchery::testing::elapsed;
use hatchery::{checkpoint, nursery, sleep, StartError};
use hatchery_tests::{
    backend, each_kind, is_multi_thread, kinds, ms, panic_message, secs, until, Counter, Kind, Log,
    TestError,
};

type Res<T> = Result<T, TestError>;

/// Spins (without suspending) until `arrived` reaches `n` or five seconds pass; returns
/// whether everyone arrived. Only meaningful when the spinners run in parallel.
fn spin_rendezvous(arrived: &Counter, n: usize) -> bool {
    arrived.incr();
    let start = Instant::now();
    while arrived.get() < n {
        if start.elapsed() > Duration::from_secs(5) {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

each_kind!(n1_waits_for_every_child, virtual_time);
/// N1: the nursery returns the body's value only after every child has finished, even
/// when the body itself returns at once.
async fn n1_waits_for_every_child<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            for i in 0..5u64 {
                let log = log.clone();
                n.spawn(async move {
                    sleep(secs(1 + 3 * i)).await;
                    log.push("child done");
                    Ok(())
                });
            }
            log.push("body done");
            Ok::<_, TestError>("value")
        }
    })
    .await;
    log.push("nursery returned");
    assert_eq!(r, Ok("value"));
    // Time stands still while the body runs, so it finishes before any child wakes.
    let mut expected = vec!["body done"];
    expected.extend(["child done"; 5]);
    expected.push("nursery returned");
    assert_eq!(log.events(), expected);
    assert_eq!(elapsed(), secs(13), "returned when the last child finished");
}

each_kind!(n1_children_dropped_before_return);
/// N1: children's futures (and what they own) are dropped before `nursery` returns.
async fn n1_children_dropped_before_return<K: Kind>() {
    let dropped = Counter::new();
    let r = K::nursery(|n| {
        let dropped = dropped.clone();
        async move {
            for _ in 0..10 {
                let guard = dropped.guard();
                n.spawn(async move {
                    let _guard = guard;
                    checkpoint().await;
                    Ok(())
                });
            }
            Ok::<_, TestError>(())
        }
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(dropped.get(), 10);
}

each_kind!(n1_unjoined_values_dropped_before_return);
/// N1: the values of children whose handles are gone when they finish are dropped
/// before `nursery` returns; a kept handle keeps its value until it is joined or
/// dropped. (The children wait until the body has dropped the handles: on several
/// threads a child could otherwise finish before its handle is dropped.)
async fn n1_unjoined_values_dropped_before_return<K: Kind>() {
    let dropped = Counter::new();
    let kept = Counter::new();
    let mut handles = Vec::new();
    let r = K::nursery(|n| {
        let (dropped, kept, handles) = (dropped.clone(), kept.clone(), &mut handles);
        async move {
            let go = Arc::new(Event::new());
            for i in 0..20 {
                let guard = if i < 10 {
                    dropped.guard()
                } else {
                    kept.guard()
                };
                let go = go.clone();
                let h = n.spawn(async move {
                    go.wait().await;
                    Ok::<_, TestError>(guard)
                });
                if i >= 10 {
                    handles.push(h);
                }
            }
            go.set();
            Ok(())
        }
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(dropped.get(), 10, "unjoined values are gone");
    assert_eq!(kept.get(), 0, "a handle keeps its value");
    let first = handles.remove(0).join().await.unwrap();
    drop(first);
    assert_eq!(kept.get(), 1);
    drop(handles);
    assert_eq!(kept.get(), 10);
}

each_kind!(n1_join_values_and_empty_nursery, virtual_time);
/// N7 (basic) and N1: join returns each child's value; an empty nursery returns the
/// body's value.
async fn n1_join_values_and_empty_nursery<K: Kind>() {
    let r = K::nursery(|n| async move {
        let hs: Vec<_> = (0..10u64)
            .map(|i| {
                n.spawn(async move {
                    sleep(secs(i % 3)).await;
                    Ok(i * i)
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in hs {
            out.push(h.join().await.unwrap());
        }
        Ok::<_, TestError>(out)
    })
    .await;
    assert_eq!(r.unwrap(), (0..10u64).map(|i| i * i).collect::<Vec<_>>());
    let empty: Res<u8> = K::nursery(|_n: kinds::Nursery<K, TestError>| async { Ok(1) })
        .await
        .map_err(|_| TestError("empty"));
    assert_eq!(empty, Ok(1));
    assert_eq!(elapsed(), secs(2));
}

each_kind!(n5_spawn_from_children_and_while_body_waits);
/// N5: spawning works from children (siblings, via a clone of the nursery), from
/// grandchildren, and from the body while it waits for children. (Real time: a plain OS
/// thread spawns too.)
async fn n5_spawn_from_children_and_while_body_waits<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let n2 = n.clone();
            let log2 = log.clone();
            let a = n.spawn(async move {
                sleep(ms(2)).await;
                let n3 = n2.clone();
                let log3 = log2.clone();
                let b = n2.spawn(async move {
                    log3.push("b ran");
                    n3.spawn(async move {
                        sleep(ms(2)).await;
                        log3.push("c ran");
                        Ok(())
                    });
                    Ok(2)
                });
                Ok(1 + b.join().await.unwrap())
            });
            // While the body waits, a plain OS thread spawns into the nursery too.
            let n4 = n.clone();
            let log4 = log.clone();
            let spawned = Counter::new();
            let spawned2 = spawned.clone();
            std::thread::spawn(move || {
                std::thread::sleep(ms(1));
                let h = n4.try_spawn(async move {
                    log4.push("from thread ran");
                    Ok(())
                });
                if h.is_ok() {
                    spawned2.incr();
                }
            });
            until(|| spawned.get() == 1).await;
            let v = a.join().await.unwrap();
            // And the body spawns while the others are still running.
            let d = n.spawn(async { Ok(10) });
            Ok::<_, TestError>(v + d.join().await.unwrap())
        }
    })
    .await;
    assert_eq!(r, Ok(13));
    assert!(log.contains("b ran"));
    assert!(
        log.contains("c ran"),
        "a grandchild spawned by a child ran before return"
    );
    assert!(log.contains("from thread ran"));
}

each_kind!(n5_spawn_after_close_fails_clearly, virtual_time);
/// N5: after the nursery has finished, `try_spawn` fails with `SpawnError`, `spawn`
/// panics naming the closed nursery, `start` fails with `Closed`, and the future is
/// dropped without being polled.
async fn n5_spawn_after_close_fails_clearly<K: Kind>() {
    let saved: Arc<Mutex<Option<kinds::Nursery<K, TestError>>>> = Arc::default();
    let r = K::nursery(|n| {
        let saved = saved.clone();
        async move {
            assert!(!n.is_closed());
            *saved.lock().unwrap() = Some(n);
            Ok(())
        }
    })
    .await;
    assert_eq!(r, Ok(()));
    let n = saved.lock().unwrap().take().unwrap();
    assert!(n.is_closed());

    let log = Log::new();
    let guard = log.on_drop("future dropped");
    let polled = log.clone();
    let e = n
        .try_spawn(async move {
            let _guard = guard;
            polled.push("unreachable: polled");
            Ok(())
        })
        .unwrap_err();
    assert_eq!(log.events(), ["future dropped"]);
    assert_eq!(
        e.to_string(),
        "cannot spawn into a closed nursery (it has finished, or its future was dropped)"
    );

    let p = catch_unwind(AssertUnwindSafe(|| {
        n.spawn(async { Ok(()) });
    }))
    .unwrap_err();
    let msg = panic_message(&*p);
    assert_eq!(
        msg,
        "hatchery: cannot spawn into a closed nursery (it has finished, or its future was \
         dropped); use `Nursery::try_spawn` to handle this"
    );

    let s = n.start(|status| async move {
        status.started(());
        Ok(())
    });
    assert!(matches!(s.await, Err(StartError::<TestError>::Closed)));
    sleep(secs(1)).await;
    assert!(!log.contains("unreachable: polled"));
    assert_eq!(elapsed(), secs(1));
}

/// N8: on a multi-threaded runtime children run in parallel with each other (they
/// meet at a spinning rendezvous that never suspends) and with the body.
#[hatchery::test]
async fn n8_children_run_in_parallel() {
    let multi = is_multi_thread();
    let arrived = Counter::new();
    let r = nursery(|n| {
        let arrived = arrived.clone();
        async move {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let arrived = arrived.clone();
                    n.spawn(async move {
                        if multi {
                            Ok(spin_rendezvous(&arrived, 2))
                        } else {
                            arrived.incr();
                            until(|| arrived.get() >= 2).await;
                            Ok(true)
                        }
                    })
                })
                .collect();
            let mut met = Vec::new();
            for h in hs {
                met.push(h.join().await.unwrap());
            }
            Ok::<_, TestError>(met)
        }
    })
    .await;
    assert_eq!(r, Ok(vec![true, true]));
}

/// N8: a child makes progress while the body blocks its thread (multi-thread
/// backends): children are executor tasks, not polled inline by the body.
#[hatchery::test]
async fn n8_child_progresses_while_body_blocks() {
    let multi = is_multi_thread();
    let progressed = Counter::new();
    let r = nursery(|n| {
        let progressed = progressed.clone();
        async move {
            let p = progressed.clone();
            n.spawn(async move {
                p.incr();
                Ok(())
            });
            if multi {
                let start = Instant::now();
                while progressed.get() == 0 && start.elapsed() < Duration::from_secs(5) {
                    std::thread::yield_now();
                }
                Ok::<_, TestError>(progressed.get())
            } else {
                until(|| progressed.get() == 1).await;
                Ok(progressed.get())
            }
        }
    })
    .await;
    assert_eq!(r, Ok(1));
}

/// N8: on tokio's multi-thread runtime every child runs on a worker thread, never on
/// the thread that runs the root future; on current-thread runtimes, on that thread.
#[hatchery::test]
async fn n8_children_are_executor_tasks() {
    let backend = backend();
    let root = std::thread::current().id();
    let r = nursery(|n| async move {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                n.spawn(async {
                    checkpoint().await;
                    Ok::<ThreadId, TestError>(std::thread::current().id())
                })
            })
            .collect();
        let mut ids = Vec::new();
        for h in hs {
            ids.push(h.join().await.unwrap());
        }
        Ok(ids)
    })
    .await
    .unwrap();
    match backend {
        "tokio_multi" => assert!(r.iter().all(|id| *id != root)),
        "tokio_current" => assert!(r.iter().all(|id| *id == root)),
        "smol" => assert_eq!(r.len(), 8),
        other => panic!("unknown backend {other}"),
    }
}

each_kind!(n1_nested_nurseries_compose, virtual_time);
/// N1: nested nurseries compose: values flow up through two levels.
async fn n1_nested_nurseries_compose<K: Kind>() {
    let r = K::nursery(|n| async move {
        let hs: Vec<_> = (0..4u64)
            .map(|i| {
                n.spawn(async move {
                    K::nursery(|n2| async move {
                        let hs: Vec<_> = (0..4u64)
                            .map(|j| {
                                n2.spawn(async move {
                                    sleep(secs(j)).await;
                                    Ok(i * 4 + j)
                                })
                            })
                            .collect();
                        let mut s = 0;
                        for h in hs {
                            s += h.join().await.unwrap();
                        }
                        Ok::<_, TestError>(s)
                    })
                    .await
                    .map_err(|e| e.into_first().unwrap())
                })
            })
            .collect();
        let mut s = 0;
        for h in hs {
            s += h.join().await.unwrap();
        }
        Ok::<_, TestError>(s)
    })
    .await;
    assert_eq!(r, Ok((0..16).sum()));
    assert_eq!(elapsed(), secs(3));
}

each_kind!(n1_handle_state_while_open);
/// N1: the nursery handle reports an open, uncancelled nursery while it runs, and the
/// nursery's `Debug` does not need `E: Debug`.
async fn n1_handle_state_while_open<K: Kind>() {
    struct NoDebug;
    let r = K::nursery(|n: kinds::Nursery<K, NoDebug>| async move {
        assert!(!n.is_closed());
        assert!(!n.is_cancelled());
        let _ = format!("{n:?}");
        n.spawn(async { Ok(()) }).join().await.ok();
        Ok(5)
    })
    .await;
    assert!(matches!(r, Ok(5)));
}

each_kind!(n5_try_spawn_racing_close_never_drops_a_task);
/// N5: a task is never silently dropped: a plain thread keeps calling `try_spawn`
/// while the nursery closes; every spawn that succeeded ran (got its first poll)
/// before the nursery returned, and the thread stops at the first `SpawnError`. (Real
/// time: the spawner is an OS thread.)
async fn n5_try_spawn_racing_close_never_drops_a_task<K: Kind>() {
    for round in 0..20u64 {
        let accepted = Counter::new();
        let ran = Counter::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let r = K::nursery(|n| {
            let (accepted, ran) = (accepted.clone(), ran.clone());
            async move {
                let spawner = n.clone();
                // Bounded, or the spawner could keep the nursery open forever (it
                // closes only once no child is left).
                let thread = std::thread::spawn(move || {
                    for _ in 0..300 {
                        let ran = ran.clone();
                        match spawner.try_spawn(async move {
                            ran.incr();
                            Ok(())
                        }) {
                            Ok(_) => accepted.incr(),
                            Err(_) => break,
                        };
                        std::thread::yield_now();
                    }
                });
                tx.send(thread).unwrap();
                sleep(ms(round % 3)).await;
                Ok::<_, TestError>(())
            }
        })
        .await;
        assert_eq!(r, Ok(()));
        let ran_at_return = ran.get();
        rx.recv().unwrap().join().unwrap();
        assert_eq!(ran_at_return, accepted.get(), "round {round}");
        assert_eq!(ran.get(), accepted.get(), "round {round}");
    }
}

each_kind!(nursery_polled_after_completion_panics);
/// A nursery future polled again after it returned (a value, errors, or a panic) panics
/// with a message, rather than staying pending for good.
async fn nursery_polled_after_completion_panics<K: Kind>() {
    async fn poll_again<F: std::future::Future + Unpin>(fut: &mut F) -> String {
        hatchery_tests::catch_panic(futures_lite::future::poll_once(fut))
            .await
            .map(|_| ())
            .expect_err("polled after completion")
    }
    let mut ok = Box::pin(K::nursery(|_n| async { Ok::<u8, TestError>(1) }));
    assert_eq!((&mut ok).await.unwrap(), 1);
    assert!(poll_again(&mut ok)
        .await
        .contains("polled after completion"));

    let mut failed = Box::pin(K::nursery(|n| async move {
        n.spawn(async { Err::<(), _>(TestError("child")) });
        Ok::<u8, TestError>(1)
    }));
    assert!((&mut failed).await.is_err());
    assert!(poll_again(&mut failed)
        .await
        .contains("polled after completion"));

    let mut panicked = Box::pin(K::nursery(|n| async move {
        n.spawn::<(), _>(async { panic!("child panic") });
        Ok::<u8, TestError>(1)
    }));
    let first = hatchery_tests::catch_panic(&mut panicked).await;
    assert_eq!(first.map(|_| ()).unwrap_err(), "child panic");
    assert!(poll_again(&mut panicked)
        .await
        .contains("polled after completion"));
}
