//! `from_thread`: calls back into the runtime from a thread that `to_thread::run_sync`
//! started, in the caller's scopes, and what they do when the caller is cancelled; the
//! errors for the wrong thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hatchery::from_thread::{self, FromThreadError};
use hatchery::sync::Event;
use hatchery::testing::elapsed;
use hatchery::{
    current_effective_deadline, fail_after, move_on_after, nursery, shield, sleep, to_thread,
    CancelScope, Deadline,
};
use hatchery_tests::{catch_panic, panic_message, Log, HOUR};

/// Calls run in the caller's scope: they see its deadline, async or sync, and hatchery's
/// functions work in them as in the caller.
#[hatchery::test(virtual_time)]
async fn t4_calls_run_in_the_callers_scope() {
    let deadline = hatchery::now() + HOUR;
    let seen = hatchery::move_on_at(
        deadline,
        to_thread::run_sync(|| {
            let sync = from_thread::run_sync(current_effective_deadline).unwrap();
            let in_async = from_thread::run(async {
                hatchery::checkpoint().await;
                (hatchery::rt::is_entered(), current_effective_deadline())
            })
            .unwrap();
            (sync, in_async)
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        seen,
        (Deadline::At(deadline), (true, Deadline::At(deadline)))
    );
}

/// A nursery opened in a call spawns its tasks on the runtime, and the call returns
/// once they are done.
#[hatchery::test]
async fn a_nursery_in_a_call_runs_on_the_runtime() {
    let sum = to_thread::run_sync(|| {
        from_thread::run(nursery(|n| async move {
            let a = n.spawn(async { Ok::<_, anyhow::Error>(1) });
            let b = n.spawn(async { Ok(2) });
            Ok::<_, anyhow::Error>(a.join().await? + b.join().await?)
        }))
        .unwrap()
        .unwrap()
    })
    .await;
    assert_eq!(sum, 3);
}

/// A call waits for the virtual clock like the caller does: the thread counts as idle
/// while it waits in the call, so the clock moves.
#[hatchery::test(virtual_time)]
async fn t6_a_call_lets_the_virtual_clock_move() {
    let slept = to_thread::run_sync(|| {
        from_thread::run(async {
            sleep(HOUR).await;
            elapsed()
        })
        .unwrap()
    })
    .await;
    assert_eq!(slept, HOUR);
    assert_eq!(elapsed(), HOUR);
}

/// When the caller's scope is cancelled, the call in flight is cancelled at its
/// suspension point and returns `Cancelled`, as does `check_cancelled` and every later
/// call that suspends; the scope waits for the thread, then catches.
#[hatchery::test]
async fn t4_a_call_sees_the_callers_cancellation() {
    let started = Arc::new(Event::new());
    let log = Log::new();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let (s, l) = (started.clone(), log.clone());
    let caller = async {
        scope
            .run(to_thread::run_sync(move || {
                let slept = from_thread::run(async move {
                    s.set();
                    sleep(HOUR).await;
                });
                assert_eq!(slept, Err(FromThreadError::Cancelled));
                assert_eq!(
                    from_thread::check_cancelled(),
                    Err(FromThreadError::Cancelled)
                );
                // A later call runs up to its first suspension point (as a task spawned
                // into a cancelled nursery does, rule C2): a call that does not suspend
                // completes, one that does is cancelled there.
                assert_eq!(from_thread::run(async { 1 }), Ok(1));
                let checkpoint = from_thread::run(async {
                    hatchery::checkpoint().await;
                    2
                });
                assert_eq!(checkpoint, Err(FromThreadError::Cancelled));
                assert_eq!(from_thread::run_sync(|| 3), Ok(3));
                l.push("thread done");
            }))
            .await
    };
    let canceller = async {
        started.wait().await;
        handle.cancel();
    };
    let (out, ()) = futures_lite::future::zip(caller, canceller).await;
    assert!(out.is_none());
    assert!(handle.cancelled_caught());
    assert_eq!(log.events(), ["thread done"]);
}

/// What a call shields runs to its end when the caller is cancelled; the call is
/// cancelled after it (rules C6, P1).
#[hatchery::test(virtual_time)]
async fn a_shield_in_a_call_is_waited_for() {
    let log = Log::new();
    let l = log.clone();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run(to_thread::run_sync(move || {
            let r = from_thread::run(async move {
                handle.cancel();
                shield(sleep(Duration::from_secs(1))).await;
                l.push("shielded part done");
                sleep(HOUR).await;
                l.push("not reached");
            });
            assert_eq!(r, Err(FromThreadError::Cancelled));
        }))
        .await;
    assert!(out.is_none());
    assert_eq!(log.events(), ["shielded part done"]);
    assert_eq!(elapsed(), Duration::from_secs(1));
}

/// A deadline of the caller's scope cancels a call like anything else in the scope, and
/// `fail_after` reports it as its own timeout.
#[hatchery::test(virtual_time)]
async fn the_callers_deadline_cancels_a_call() {
    let out = fail_after(
        Duration::from_secs(5),
        to_thread::run_sync(|| from_thread::run(sleep(HOUR))),
    )
    .await;
    assert!(out.is_err());
    assert_eq!(elapsed(), Duration::from_secs(5));
}

/// A thread that polls `check_cancelled` ends the wait of a cancelled caller early.
#[hatchery::test]
async fn check_cancelled_lets_a_thread_stop_early() {
    let start = Instant::now();
    let out = move_on_after(
        Duration::from_millis(20),
        to_thread::run_sync(|| {
            let mut steps = 0u64;
            while from_thread::check_cancelled().is_ok() {
                steps += 1;
                std::thread::sleep(Duration::from_millis(1));
                assert!(steps < 60_000, "check_cancelled never saw the cancellation");
            }
            steps
        }),
    )
    .await;
    assert_eq!(out, None);
    assert!(start.elapsed() < Duration::from_secs(60));
}

/// After the caller abandoned its thread (`abandon_on_cancel`), the thread's calls fail
/// at once.
#[hatchery::test]
async fn calls_from_an_abandoned_thread_fail() {
    let (release, done) = (Arc::new(Event::new()), Arc::new(Event::new()));
    let (r, d) = (release.clone(), done.clone());
    let results = Arc::new(std::sync::Mutex::new(None));
    let res = results.clone();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run(
            to_thread::run_sync(move || {
                handle.cancel();
                r.wait_blocking();
                *res.lock().unwrap() = Some((
                    from_thread::run(async { 1 }),
                    from_thread::run_sync(|| 2),
                    from_thread::check_cancelled(),
                ));
                d.set();
            })
            .abandon_on_cancel(true),
        )
        .await;
    assert!(out.is_none());
    release.set();
    done.wait().await;
    let got = results.lock().unwrap().take().unwrap();
    assert_eq!(
        got,
        (
            Err(FromThreadError::Cancelled),
            Err(FromThreadError::Cancelled),
            Err(FromThreadError::Cancelled)
        )
    );
}

/// A panic in a call is resumed on the thread; the caller sees it if the thread does not
/// catch it, and goes on if it does.
#[hatchery::test]
async fn a_panic_in_a_call_resumes_on_the_thread() {
    let caught = to_thread::run_sync(|| {
        let r = std::panic::catch_unwind(|| from_thread::run(async { panic!("boom in a call") }));
        let sync = std::panic::catch_unwind(|| from_thread::run_sync(|| panic!("boom in sync")));
        (
            panic_message(&*r.unwrap_err()),
            panic_message(&*sync.unwrap_err()),
            from_thread::run(async { "still works" }),
        )
    })
    .await;
    assert_eq!(
        caught,
        (
            "boom in a call".to_owned(),
            "boom in sync".to_owned(),
            Ok("still works")
        )
    );
    let err = catch_panic(to_thread::run_sync(|| {
        from_thread::run(async { panic!("to the caller") })
    }))
    .await
    .unwrap_err();
    assert_eq!(err, "to the caller");
}

/// From a thread that hatchery did not start, and from async code, the calls fail with
/// an error that says so, rather than hang.
#[hatchery::test]
async fn calls_from_the_wrong_place_fail() {
    let plain = std::thread::spawn(|| {
        (
            from_thread::run(async {}),
            from_thread::run_sync(|| ()),
            from_thread::check_cancelled(),
        )
    })
    .join()
    .unwrap();
    let not = Err(FromThreadError::NotAWorkerThread);
    assert_eq!(plain, (not, not, not));
    let in_async = Err(FromThreadError::InAsyncCode);
    assert_eq!(from_thread::run(async {}), in_async);
    assert_eq!(from_thread::run_sync(|| ()), in_async);
    assert_eq!(from_thread::check_cancelled(), in_async);
    // Nor from a task's nursery child.
    let child = nursery(|n| async move {
        let h = n.spawn(async { Ok::<_, anyhow::Error>(from_thread::run(async {})) });
        Ok::<_, anyhow::Error>(h.join().await?)
    })
    .await
    .unwrap();
    assert_eq!(child, in_async);
    assert!(FromThreadError::NotAWorkerThread
        .to_string()
        .contains("to_thread::run_sync"));
}

/// `run_blocking`'s thread can call back too.
#[hatchery::test]
async fn run_blocking_threads_can_call_back() {
    let v = hatchery::run_blocking(|| from_thread::run(async { 5 })).await;
    assert_eq!(v, Ok(5));
}

/// Many calls from one thread, each a round trip, in order.
#[hatchery::test]
async fn many_calls_in_a_row() {
    let (tx, rx) = hatchery::memory_stream(0);
    let sender = to_thread::run_sync(move || {
        for i in 0..200u32 {
            let tx = tx.clone();
            from_thread::run(async move { tx.send(i).await.unwrap() }).unwrap();
        }
    });
    let receiver = async {
        let mut got = Vec::new();
        while let Ok(i) = rx.recv().await {
            got.push(i);
        }
        got
    };
    let ((), got) = futures_lite::future::zip(sender, receiver).await;
    assert_eq!(got, (0..200).collect::<Vec<_>>());
}
