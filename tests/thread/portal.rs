//! Blocking portals: plain threads run futures on a hatchery runtime through a
//! `BlockingPortal`, opened in async code (`blocking_portal`) or with a runtime of its
//! own on a background thread (`start_blocking_portal`, each adapter's).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use hatchery::from_thread::{blocking_portal, BlockingPortal, PortalError, PortalRuntime};
use hatchery::sync::Event;
use hatchery::{run_blocking, sleep, CancelScope};
use hatchery_tests::{catch_panic, panic_message, until, Log, HOUR};

/// Eight plain threads call through one portal at once, a hundred calls each that
/// suspend; every call returns its own result.
fn eight_threads(portal: &BlockingPortal) {
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (portal, barrier) = (portal.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                (0..100u64)
                    .map(|i| {
                        portal
                            .call(async move {
                                hatchery::checkpoint().await;
                                sleep(Duration::from_micros(50)).await;
                                t * 1000 + i
                            })
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for (t, thread) in threads.into_iter().enumerate() {
        let got = thread.join().unwrap();
        let want: Vec<u64> = (0..100).map(|i| t as u64 * 1000 + i).collect();
        assert_eq!(got, want);
    }
}

#[hatchery::test]
async fn t5_a_portal_serves_eight_threads_at_once() {
    blocking_portal(|portal| async move {
        run_blocking(move || eight_threads(&portal)).await;
    })
    .await;
}

/// Calls run as tasks of the portal, in parallel, under the scope the portal was opened
/// in: they see its deadline.
#[hatchery::test(virtual_time)]
async fn t5_calls_run_under_the_portals_scope() {
    let deadline = hatchery::now() + HOUR;
    let seen = hatchery::move_on_at(
        deadline,
        blocking_portal(|portal| async move {
            run_blocking(move || portal.call(async { hatchery::current_effective_deadline() }))
                .await
        }),
    )
    .await
    .unwrap();
    assert_eq!(seen, Ok(hatchery::Deadline::At(deadline)));
}

/// Once stopped, a portal takes no calls, and the calls in flight are cancelled; the
/// body goes on.
#[hatchery::test]
async fn calls_after_stop_fail() {
    let log = Log::new();
    let l = log.clone();
    blocking_portal(|portal| async move {
        let started = Arc::new(Event::new());
        let s = started.clone();
        let p = portal.clone();
        let in_flight = futures_lite::future::zip(
            run_blocking(move || {
                p.call(async move {
                    s.set();
                    sleep(HOUR).await;
                })
            }),
            async {
                started.wait().await;
                portal.stop();
                assert!(portal.is_stopped());
            },
        )
        .await
        .0;
        assert_eq!(in_flight, Err(PortalError::Stopped));
        let p = portal.clone();
        let late =
            run_blocking(move || (p.call(async { 1 }), p.spawn(async { 2 }).map(drop))).await;
        assert_eq!(late, (Err(PortalError::Stopped), Err(PortalError::Stopped)));
        assert_eq!(portal.spawn(async {}).map(drop), Err(PortalError::Stopped));
        l.push("body went on");
    })
    .await;
    assert_eq!(log.events(), ["body went on"]);
}

/// When the body returns, the portal takes no more calls, but those in flight run to
/// their end: the portal waits for them, as a nursery does.
#[hatchery::test]
async fn the_end_of_the_body_waits_for_calls_in_flight() {
    let (started, release) = (Arc::new(Event::new()), Arc::new(Event::new()));
    let kept = Arc::new(std::sync::Mutex::new(None));
    let (s, r, k) = (started.clone(), release.clone(), kept.clone());
    let thread_done = Arc::new(Event::new());
    let done = thread_done.clone();
    let thread = blocking_portal(|portal| async move {
        *k.lock().unwrap() = Some(portal.clone());
        let thread = std::thread::spawn(move || {
            let out = portal.call(async move {
                s.set();
                r.wait().await;
                "finished"
            });
            done.set();
            out
        });
        started.wait().await;
        thread
    });
    // The body has returned; the portal still waits for the call.
    let (thread, ()) = futures_lite::future::zip(thread, async {
        until(|| {
            kept.lock()
                .unwrap()
                .as_ref()
                .is_some_and(|p| p.is_stopped())
        })
        .await;
        assert!(!thread_done.is_set());
        release.set();
    })
    .await;
    assert_eq!(thread.join().unwrap(), Ok("finished"));
    let portal = kept.lock().unwrap().take().unwrap();
    assert_eq!(
        run_blocking(move || portal.call(async {})).await,
        Err(PortalError::Stopped)
    );
}

/// A task spawned in the portal can be joined, or cancelled alone.
#[hatchery::test]
async fn portal_tasks_join_or_cancel() {
    blocking_portal(|portal| async move {
        let forever = portal.spawn(sleep(HOUR)).unwrap();
        let quick = portal.spawn(async { 7 }).unwrap();
        assert!(!forever.is_finished());
        forever.cancel();
        let (a, b) = run_blocking(move || (forever.join(), quick.join())).await;
        assert_eq!(a, Err(PortalError::Cancelled));
        assert_eq!(b, Ok(7));
        // The portal goes on.
        let p = portal.clone();
        assert_eq!(run_blocking(move || p.call(async { 8 })).await, Ok(8));
    })
    .await;
}

/// A panic in a call is resumed in the calling thread; the portal goes on.
#[hatchery::test]
async fn a_panic_in_a_call_resumes_in_the_caller() {
    blocking_portal(|portal| async move {
        let p = portal.clone();
        let (panicked, after) = run_blocking(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                p.call(async { panic!("boom in the portal") })
            }));
            (panic_message(&*r.unwrap_err()), p.call(async { "goes on" }))
        })
        .await;
        assert_eq!(panicked, "boom in the portal");
        assert_eq!(after, Ok("goes on"));
        let task = portal.spawn(async { panic!("boom in a task") }).unwrap();
        let err = catch_panic(run_blocking(move || task.join()))
            .await
            .unwrap_err();
        assert_eq!(err, "boom in a task");
    })
    .await;
}

/// Blocking calls from async code fail at once, rather than block an executor thread (or
/// the portal's own runtime, waiting for itself).
#[hatchery::test]
async fn blocking_calls_from_async_code_fail() {
    blocking_portal(|portal| async move {
        assert_eq!(portal.call(async { 1 }), Err(PortalError::InAsyncCode));
        let task = portal.spawn(async { 2 }).unwrap(); // not blocking: fine
        let p = portal.clone();
        let inner = portal.spawn(async move { p.call(async { 3 }) }).unwrap();
        assert_eq!(
            run_blocking(move || inner.join()).await,
            Ok(Err(PortalError::InAsyncCode))
        );
        assert_eq!(task.join(), Err(PortalError::InAsyncCode));
    })
    .await;
}

/// Cancelling the scope around `blocking_portal` stops the portal: calls in flight
/// return `Stopped`, and later ones too.
#[hatchery::test]
async fn t5_cancelling_the_enclosing_scope_stops_the_portal() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let (started, done) = (Arc::new(Event::new()), Arc::new(Event::new()));
    let kept = Arc::new(std::sync::Mutex::new(None));
    let (s, d, k) = (started.clone(), done.clone(), kept.clone());
    let out = scope
        .run(blocking_portal(|portal| async move {
            let p = portal.clone();
            let thread = std::thread::spawn(move || {
                let out = p.call(async move {
                    s.set();
                    sleep(HOUR).await;
                });
                d.set();
                (out, p.call(async {}))
            });
            *k.lock().unwrap() = Some(thread);
            started.wait().await;
            handle.cancel();
            sleep(HOUR).await;
        }))
        .await;
    assert!(out.is_none());
    done.wait().await;
    let thread = kept.lock().unwrap().take().unwrap();
    assert_eq!(
        thread.join().unwrap(),
        (Err(PortalError::Stopped), Err(PortalError::Stopped))
    );
}

/// A background portal on each adapter's runtime: eight threads at once, then a stop
/// that cancels what runs, after which calls fail.
fn background(rt: PortalRuntime) {
    let portal = rt.portal().clone();
    eight_threads(&portal);
    let cancelled = Arc::new(AtomicUsize::new(0));
    let c = cancelled.clone();
    struct Count(Arc<AtomicUsize>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let forever = portal
        .spawn(async move {
            let _count = Count(c);
            sleep(HOUR).await;
        })
        .unwrap();
    // A call from the portal's own runtime would wait for itself: it fails instead.
    let p = portal.clone();
    assert_eq!(
        portal.call(async move { p.call(async {}) }),
        Ok(Err(PortalError::InAsyncCode))
    );
    rt.stop();
    // `stop` returned once the runtime had ended: the task was cancelled and dropped.
    assert_eq!(cancelled.load(Ordering::SeqCst), 1);
    assert_eq!(forever.join(), Err(PortalError::Stopped));
    assert_eq!(portal.call(async { 1 }), Err(PortalError::Stopped));
    assert!(portal.is_stopped());
}

#[test]
fn a_background_portal_on_tokio() {
    background(hatchery_tokio::start_blocking_portal());
}

#[test]
fn a_background_portal_on_smol() {
    background(hatchery_smol::start_blocking_portal());
}

/// Dropping a background portal stops it and waits for its runtime.
#[test]
fn dropping_a_background_portal_stops_it() {
    let rt = hatchery_smol::start_blocking_portal();
    let portal = rt.portal().clone();
    let task = portal.spawn(sleep(HOUR)).unwrap();
    drop(rt);
    assert!(task.is_finished());
    assert_eq!(portal.call(async {}), Err(PortalError::Stopped));
}

/// A runtime that panics before it serves: `start_blocking_portal` resumes its panic
/// rather than wait for good.
#[test]
fn a_runtime_that_fails_to_start() {
    let err = std::panic::catch_unwind(|| {
        hatchery::from_thread::start_blocking_portal(|_serve| panic!("no runtime today"))
    })
    .unwrap_err();
    assert_eq!(panic_message(&*err), "no runtime today");
    let err = std::panic::catch_unwind(|| hatchery::from_thread::start_blocking_portal(drop))
        .unwrap_err();
    assert!(panic_message(&*err).contains("without running the portal"));
}
