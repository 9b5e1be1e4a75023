//! Panics in nurseries (N3, N4): a panic cancels the rest, everything finishes, then the
//! panic is resumed in the caller of `nursery`; a panic wins over errors. On both kinds of
//! nursery.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use hatchery::testing::elapsed;
use hatchery::{checkpoint, shield, sleep};
use hatchery_tests::{
    backend, catch_panic, each_kind, kinds, panic_message, secs, until, Counter, Kind, Log,
    TestError, HOUR,
};

each_kind!(n3_panic_waits_for_sibling_cleanup, virtual_time);
/// N3: a child panics while its siblings are in shielded cleanup: the siblings'
/// cleanups complete before the panic comes out of `nursery`.
async fn n3_panic_waits_for_sibling_cleanup<K: Kind>() {
    let log = Log::new();
    let in_cleanup = Counter::new();
    let r = catch_panic(K::nursery(|n| {
        let (log, in_cleanup) = (log.clone(), in_cleanup.clone());
        async move {
            for _ in 0..2 {
                let (log, in_cleanup, n2) = (log.clone(), in_cleanup.clone(), n.clone());
                n.spawn(async move {
                    shield(async {
                        in_cleanup.incr();
                        until(|| n2.is_cancelled()).await;
                        sleep(secs(10)).await;
                        log.push("sibling cleanup done");
                    })
                    .await;
                    checkpoint().await;
                    log.push("unreachable: sibling");
                    Ok::<_, TestError>(())
                });
            }
            n.spawn::<(), _>(async move {
                until(|| in_cleanup.get() == 2).await;
                panic!("child boom");
            });
            sleep(HOUR).await;
            Ok(())
        }
    }))
    .await;
    log.push("panic caught");
    assert_eq!(r.unwrap_err(), "child boom");
    assert_eq!(
        log.events(),
        [
            "sibling cleanup done",
            "sibling cleanup done",
            "panic caught"
        ]
    );
    assert_eq!(elapsed(), secs(10));
}

each_kind!(n3_body_panic_cancels_children, virtual_time);
/// N3: the body panics: every child is cancelled and dropped before the panic is
/// resumed; the payload is preserved (formatted messages too).
async fn n3_body_panic_cancels_children<K: Kind>() {
    let dropped = Counter::new();
    let started = Counter::new();
    let r: Result<Result<(), _>, _> = catch_panic(K::nursery(|n: kinds::Nursery<K, TestError>| {
        let (dropped, started) = (dropped.clone(), started.clone());
        async move {
            for _ in 0..5 {
                let (guard, started) = (dropped.guard(), started.clone());
                n.spawn(async move {
                    let _guard = guard;
                    started.incr();
                    std::future::pending::<()>().await;
                    Ok(())
                });
            }
            until(|| started.get() == 5).await;
            let code = 42;
            panic!("body boom {code}");
        }
    }))
    .await;
    assert_eq!(r.unwrap_err(), "body boom 42");
    assert_eq!(dropped.get(), 5);
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n4_panic_wins_over_errors, virtual_time);
/// N4: when a panic and errors both happen, the panic wins: it is resumed and the
/// errors are discarded.
async fn n4_panic_wins_over_errors<K: Kind>() {
    let r = catch_panic(K::nursery(|n| async move {
        n.spawn(async { Err::<(), _>(TestError("error first")) });
        let n2 = n.clone();
        n.spawn::<(), _>(async move {
            shield(async { until(|| n2.is_cancelled()).await }).await;
            panic!("panic second");
        });
        sleep(HOUR).await;
        Ok(())
    }))
    .await;
    assert_eq!(r.unwrap_err(), "panic second");
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n3_first_panic_is_resumed, virtual_time);
/// N3: when several tasks panic, the first panic is the one resumed.
async fn n3_first_panic_is_resumed<K: Kind>() {
    let r: Result<Result<(), _>, _> =
        catch_panic(K::nursery(|n: kinds::Nursery<K, TestError>| async move {
            n.spawn::<(), _>(async { panic!("first") });
            let n2 = n.clone();
            n.spawn::<(), _>(async move {
                shield(async { until(|| n2.is_cancelled()).await }).await;
                panic!("second");
            });
            shield(async { sleep(secs(20)).await }).await;
            panic!("body third");
        }))
        .await;
    assert_eq!(r.unwrap_err(), "first");
    assert_eq!(elapsed(), secs(20));
}

each_kind!(n3_panic_from_grandchild_propagates, virtual_time);
/// N3: a panic in a grandchild goes up through both nurseries, message intact.
async fn n3_panic_from_grandchild_propagates<K: Kind>() {
    let r = catch_panic(K::nursery(|n| async move {
        n.spawn(async {
            K::nursery(|n2: kinds::Nursery<K, TestError>| async move {
                n2.spawn::<(), _>(async {
                    sleep(secs(1)).await;
                    panic!("grandchild boom");
                });
                sleep(HOUR).await;
                Ok(())
            })
            .await
            .map_err(|e| e.into_first().unwrap())
        });
        sleep(HOUR).await;
        Ok::<_, TestError>(())
    }))
    .await;
    assert_eq!(r.unwrap_err(), "grandchild boom");
    assert_eq!(elapsed(), secs(1));
}

each_kind!(n3_runtime_usable_after_panic, virtual_time);
/// N3: after a nursery has resumed a panic, the runtime and hatchery keep working.
async fn n3_runtime_usable_after_panic<K: Kind>() {
    let r = catch_panic(K::nursery(|n: kinds::Nursery<K, TestError>| async move {
        n.spawn::<(), _>(async { panic!("boom") });
        Ok(())
    }))
    .await;
    assert_eq!(r.unwrap_err(), "boom");
    let v = K::nursery(|n| async move {
        let h = n.spawn(async {
            sleep(secs(1)).await;
            Ok::<_, TestError>(5)
        });
        Ok(h.join().await.unwrap())
    })
    .await;
    assert_eq!(v, Ok(5));
    assert_eq!(hatchery::move_on_after(secs(2), sleep(HOUR)).await, None);
    assert_eq!(elapsed(), secs(3));
}

each_kind!(n3_panic_dropping_an_unjoined_value);
/// N3: a child's value whose destructor panics, with nobody to join it: the panic is
/// the child's, resumed by `nursery` once the siblings have finished. (The child waits
/// until its handle is gone, which on several threads it could otherwise outrun.)
async fn n3_panic_dropping_an_unjoined_value<K: Kind>() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("value drop boom");
        }
    }
    let log = Log::new();
    let r = catch_panic(K::nursery(|n: kinds::Nursery<K, TestError>| {
        let log = log.clone();
        async move {
            let go = std::sync::Arc::new(hatchery::sync::Event::new());
            let gate = go.clone();
            drop(n.spawn(async move {
                gate.wait().await;
                Ok(PanicOnDrop)
            }));
            go.set();
            n.spawn(async move {
                shield(checkpoint()).await;
                log.push("sibling finished");
                Ok(())
            });
            Ok(())
        }
    }))
    .await;
    assert_eq!(r.unwrap_err(), "value drop boom");
    assert_eq!(log.events(), ["sibling finished"]);
}

each_kind!(n3_panicked_handle);
/// N3, N7 (H5): a panicked child's handle reports `is_panicked` when joined after the
/// nursery has resumed the panic. (A polled child's handle said `is_cancelled`: its
/// cell marked the output panicked when a poll unwound, then its drop marked it
/// cancelled over the panic.)
async fn n3_panicked_handle<K: Kind>() {
    let handle = std::sync::Arc::new(std::sync::Mutex::new(None));
    let r = catch_panic(K::nursery(|n: kinds::Nursery<K, TestError>| {
        let handle = handle.clone();
        async move {
            *handle.lock().unwrap() = Some(n.spawn(async {
                checkpoint().await;
                panic!("boom");
            }));
            Ok(())
        }
    }))
    .await;
    assert_eq!(r.unwrap_err(), "boom");
    let h: hatchery::TaskHandle<()> = handle.lock().unwrap().take().unwrap();
    assert!(h.is_finished());
    let e = h.join().await.unwrap_err();
    assert!(
        e.is_panicked() && !e.is_cancelled() && !e.is_failed(),
        "{e:?}"
    );
}

each_kind!(n3_panic_out_of_the_backend_run);
/// N3: the panic is resumed in the caller of `nursery` even at the root, and the run
/// function of the backend passes it on (checked with `std::panic::catch_unwind`
/// around a whole backend run, from inside this test).
async fn n3_panic_out_of_the_backend_run<K: Kind>() {
    let backend = backend();
    // Running a second runtime inside this one is not allowed on tokio; do it from a
    // plain thread.
    let msg = std::thread::spawn(move || {
        catch_unwind(AssertUnwindSafe(|| {
            let run = async {
                K::nursery(|n: kinds::Nursery<K, TestError>| async move {
                    n.spawn::<(), _>(async { panic!("from the root") });
                    sleep(HOUR).await;
                    Ok(())
                })
                .await
            };
            match backend {
                "tokio_current" => drop(hatchery_tokio::run_current_thread(run)),
                "tokio_multi" => drop(hatchery_tokio::run(run)),
                "smol" => drop(hatchery_smol::run(run)),
                other => panic!("unknown backend {other}"),
            }
        }))
        .map_err(|p| panic_message(&*p))
    })
    .join()
    .unwrap();
    assert_eq!(msg.unwrap_err(), "from the root");
}

each_kind!(
    n3_panic_dropping_a_cancelled_body_waits_for_children,
    virtual_time
);
/// N1/N3: a body dropped because its nursery was cancelled while it was suspended, whose
/// destructor panics while a child is still in shielded cleanup: the panic comes out of
/// `nursery` only once that child has finished.
async fn n3_panic_dropping_a_cancelled_body_waits_for_children<K: Kind>() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("body drop boom");
        }
    }
    let log = Log::new();
    let r = catch_panic(K::nursery(|n: kinds::Nursery<K, TestError>| {
        let log = log.clone();
        async move {
            let _guard = PanicOnDrop;
            let n2 = n.clone();
            n.spawn(async move {
                shield(async {
                    sleep(secs(1)).await;
                    n2.cancel(); // the body waits in `sleep(HOUR)`
                    sleep(secs(10)).await;
                    log.push("child cleanup done");
                })
                .await;
                Ok(())
            });
            sleep(HOUR).await;
            Ok(())
        }
    }))
    .await;
    log.push("panic caught");
    assert_eq!(r.unwrap_err(), "body drop boom");
    assert_eq!(log.events(), ["child cleanup done", "panic caught"]);
    assert_eq!(elapsed(), secs(11));
}

each_kind!(n3_panic_making_the_body_waits_for_children, virtual_time);
/// N3: a panic in the closure that makes the body, after it spawned a child, is the
/// body's: it comes out once that child has finished (cancelled).
async fn n3_panic_making_the_body_waits_for_children<K: Kind>() {
    let log = Log::new();
    let r = catch_panic(K::nursery(|n: kinds::Nursery<K, TestError>| {
        let log = log.clone();
        n.spawn(async move {
            shield(sleep(secs(2))).await;
            log.push("child done");
            checkpoint().await;
            log.push("child not cancelled");
            Ok(())
        });
        if true {
            panic!("make boom");
        }
        async { Ok(()) }
    }))
    .await;
    log.push("panic caught");
    assert_eq!(r.unwrap_err(), "make boom");
    assert_eq!(log.events(), ["child done", "panic caught"]);
    assert_eq!(elapsed(), secs(2));
}

each_kind!(value_of_a_future_whose_drop_panics_is_dropped_in_time);
/// A future that returns a value and then panics when dropped: the panic wins, and the
/// value (unwanted now) is dropped before `nursery` returns, even when it is the task's
/// last act on another thread.
async fn value_of_a_future_whose_drop_panics_is_dropped_in_time<K: Kind>() {
    struct SlowDrop(Counter);
    impl Drop for SlowDrop {
        fn drop(&mut self) {
            std::thread::sleep(std::time::Duration::from_millis(50));
            self.0.incr();
        }
    }
    struct ThenPanic(Option<SlowDrop>);
    impl std::future::Future for ThenPanic {
        type Output = Result<SlowDrop, TestError>;
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Self::Output> {
            std::task::Poll::Ready(Ok(self.0.take().expect("polled once")))
        }
    }
    impl Drop for ThenPanic {
        fn drop(&mut self) {
            panic!("future drop boom");
        }
    }
    let dropped = Counter::new();
    let d = dropped.clone();
    let r = catch_panic(K::nursery(|n| async move {
        let h = n.spawn(ThenPanic(Some(SlowDrop(d))));
        drop(h);
        Ok::<_, TestError>(())
    }))
    .await;
    assert_eq!(r.unwrap_err(), "future drop boom");
    assert_eq!(dropped.get(), 1, "the value outlived the nursery");
}

each_kind!(h5_a_cancelled_childs_drop_that_panics);
/// H5, N3: a child cancelled at a suspension point whose future's drop panics: its
/// handle says it panicked, not that it was cancelled, on both kinds (a polled child's
/// said `is_cancelled`: its handle learned of the end before the destructors ran), and
/// the nursery resumes the panic.
async fn h5_a_cancelled_childs_drop_that_panics<K: Kind>() {
    let handle = std::sync::Arc::new(std::sync::Mutex::new(None));
    let r = catch_panic(K::nursery(|n: kinds::Nursery<K, TestError>| {
        let handle = handle.clone();
        async move {
            let h = n.spawn(async {
                let bomb = hatchery_tests::PanicOnDrop("drop boom");
                sleep(HOUR).await;
                drop(bomb);
                Ok::<_, TestError>(())
            });
            checkpoint().await;
            h.cancel();
            *handle.lock().unwrap() = Some(h);
            Ok(())
        }
    }))
    .await;
    assert_eq!(r.unwrap_err(), "drop boom");
    let h: hatchery::TaskHandle<()> = handle.lock().unwrap().take().unwrap();
    let e = h.join().await.unwrap_err();
    assert!(e.is_panicked() && !e.is_cancelled(), "{e:?}");
}
