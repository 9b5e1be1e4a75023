//! The hold warnings (`hatchery::diagnostics`, rule K6): a cancelled scope that waits on a
//! holder kept without being polled (rule K4) says so, naming the holder's kind and where
//! it was created, once the threshold has passed; a holder that is slow but polled is
//! never reported.
//!
//! Every test keeps its holder in the body of a `move_on_after` that is cancelled at 1 s,
//! waits (on a future of its own, not a hatchery wait) for the warning, then drops the
//! holder so that the scope can end.

use std::future::Future;
use std::panic::Location;
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_lite::future::poll_once;
use hatchery::diagnostics::{set_hold_warning_hook, set_hold_warnings, HolderKind};
use hatchery::sync::Event;
use hatchery::testing::elapsed;
use hatchery::{finally, move_on_after, nursery, shield, sleep, CancelScope, Nursery, TaskStatus};
use hatchery_tests::{backend, secs, TestError, HOUR};

/// The threshold every test runs with.
const THRESHOLD: Duration = Duration::from_secs(5);

/// A warning as the hook saw it: the backend it was emitted on, the holder's kind, its
/// file and line, and how long the scope had waited.
type Seen = (
    Option<&'static str>,
    HolderKind,
    &'static str,
    u32,
    Duration,
);

/// The warnings so far, and the tasks waiting for one.
static SEEN: Mutex<(Vec<Seen>, Vec<Waker>)> = Mutex::new((Vec::new(), Vec::new()));

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        set_hold_warnings(Some(THRESHOLD));
        set_hold_warning_hook(|w| {
            let mut seen = SEEN.lock().unwrap();
            let location = w.location();
            seen.0.push((
                hatchery::testing::backend(),
                w.kind(),
                location.file(),
                location.line(),
                w.waited(),
            ));
            for waker in seen.1.drain(..) {
                waker.wake();
            }
        });
    });
}

/// The warnings of this backend for a holder created at `line` of this file.
fn seen_at(line: u32) -> Vec<(HolderKind, Duration)> {
    let file = Location::caller().file();
    SEEN.lock()
        .unwrap()
        .0
        .iter()
        .filter(|s| s.0 == Some(backend()) && s.2 == file && s.3 == line)
        .map(|s| (s.1, s.4))
        .collect()
}

/// Waits until a warning for a holder created at `line` arrives on this backend.
fn warned(line: u32) -> impl Future<Output = (HolderKind, Duration)> {
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        if let Some(&first) = seen_at(line).first() {
            return Poll::Ready(first);
        }
        SEEN.lock().unwrap().1.push(cx.waker().clone());
        // Checked again: the hook may have run in between.
        match seen_at(line).first() {
            Some(&first) => Poll::Ready(first),
            None => Poll::Pending,
        }
    })
}

/// Keeps `holder` after polling it once inside a scope cancelled at 1 s, until the
/// warning for `line` comes; then drops it. Returns the warning.
async fn keep<F: Future>(holder: F, line: u32) -> (HolderKind, Duration) {
    let mut holder = Box::pin(holder);
    let mut warning = None;
    let out = move_on_after(secs(1), async {
        assert!(
            poll_once(holder.as_mut()).await.is_none(),
            "the holder must wait"
        );
        warning = Some(warned(line).await);
        drop(holder);
        sleep(HOUR).await;
    })
    .await;
    assert_eq!(out, None);
    // Cancelled at 1 s, warned one threshold later.
    assert_eq!(elapsed(), secs(1) + THRESHOLD);
    warning.expect("the warning came")
}

#[hatchery::test(virtual_time)]
async fn k6_a_kept_shield_is_named() {
    setup();
    let line = line!() + 1;
    let holder = shield(sleep(HOUR));
    assert_eq!(keep(holder, line).await, (HolderKind::Shield, THRESHOLD));
}

#[hatchery::test(virtual_time)]
async fn k6_a_kept_shielded_scope_is_named_where_it_is_shielded() {
    setup();
    let scope = CancelScope::new();
    let line = line!() + 1;
    let holder = scope.with_shield(true).run(sleep(HOUR));
    assert_eq!(keep(holder, line).await.0, HolderKind::Shield);
}

#[hatchery::test(virtual_time)]
async fn k6_a_kept_nursery_is_named() {
    setup();
    let line = line!() + 1;
    let holder = nursery(|n: Nursery<TestError>| async move {
        n.spawn(async {
            sleep(HOUR).await;
            Ok(())
        });
        Ok(())
    });
    assert_eq!(keep(holder, line).await, (HolderKind::Nursery, THRESHOLD));
}

#[hatchery::test(virtual_time)]
async fn k6_a_kept_finally_is_named() {
    setup();
    let line = line!() + 1;
    let holder = finally(sleep(HOUR), async {});
    assert_eq!(keep(holder, line).await, (HolderKind::Finally, THRESHOLD));
}

/// A `finally` kept during its cleanup is named once, as the `finally`: its cleanup's
/// shield is not a holder of its own.
#[hatchery::test(virtual_time)]
async fn k6_a_kept_finally_in_its_cleanup_is_named_once() {
    setup();
    let line = line!() + 1;
    let holder = finally(async {}, sleep(HOUR));
    assert_eq!(keep(holder, line).await, (HolderKind::Finally, THRESHOLD));
    // Every warning of the scan that found it was emitted before the scope could end.
    assert_eq!(seen_at(line), [(HolderKind::Finally, THRESHOLD)]);
}

/// A `finally` whose cleanup has begun, moved into another scope and kept there, holds
/// that scope (rule K5), and is named there.
#[hatchery::test(virtual_time)]
async fn k6_a_finally_moved_in_its_cleanup_is_named_where_it_is_kept() {
    setup();
    let line = line!() + 1;
    let mut holder = Box::pin(finally(async {}, sleep(HOUR)));
    // The work ends in the first poll, here; the cleanup begins.
    assert!(poll_once(holder.as_mut()).await.is_none());
    assert_eq!(keep(holder, line).await, (HolderKind::Finally, THRESHOLD));
}

#[hatchery::test(virtual_time)]
async fn k6_a_kept_start_is_named() {
    setup();
    nursery(|n: Nursery<TestError>| async move {
        let line = line!() + 1;
        let holder = n.start(|_status: TaskStatus<()>| async {
            sleep(HOUR).await;
            Ok(())
        });
        assert_eq!(keep(holder, line).await, (HolderKind::Start, THRESHOLD));
        Ok(())
    })
    .await
    .unwrap();
}

/// A shield that takes longer than the threshold but is polled whenever its scope is: no
/// warning, even though the scope waited on it for 59 s.
#[hatchery::test(virtual_time)]
async fn k6_a_slow_holder_that_is_polled_is_not_reported() {
    setup();
    let line = line!() + 1;
    let out = move_on_after(secs(1), shield(sleep(secs(60)))).await;
    // The shielded body finished with its value (rule C3).
    assert_eq!(out, Some(()));
    assert_eq!(elapsed(), secs(60));
    assert_eq!(seen_at(line), []);
}

/// A holder inside a task whose nursery is cancelled: the task's root waits on it.
#[hatchery::test(virtual_time)]
async fn k6_a_kept_holder_in_a_cancelled_task_is_named() {
    setup();
    let out = nursery(|n: Nursery<TestError>| async move {
        let task = n.spawn(async {
            let line = line!() + 1;
            let mut holder = Box::pin(shield(sleep(HOUR)));
            assert!(poll_once(holder.as_mut()).await.is_none());
            let warning = warned(line).await;
            drop(holder);
            sleep(HOUR).await;
            Ok(warning)
        });
        sleep(secs(1)).await;
        task.cancel();
        Ok(task.join().await)
    })
    .await
    .unwrap();
    assert!(out.is_err(), "the task was cancelled");
    assert_eq!(elapsed(), secs(1) + THRESHOLD);
}

/// A holder polled whenever its scope is arms the warning's timer once, when the scope
/// first sees it, not again at each poll that timer makes. A shielded cleanup waiting on
/// a thread (which virtual time does not see) made the clock jump one threshold at a
/// time, at full speed, for as long as the thread took (73,000 s in 300 ms): the timer
/// woke the scope, whose poll polled the shield, which re-armed the timer.
#[hatchery::test(virtual_time)]
async fn k6_a_polled_holder_arms_the_warning_once() {
    setup();
    // The virtual time of each poll of the shielded cleanup.
    let polls = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let done = Arc::new(Event::new());
    let thread = {
        let (polls, done) = (polls.clone(), done.clone());
        std::thread::spawn(move || {
            // Once the warning's timer has made its poll, give a clock that would spin
            // time to show it.
            while !polls.lock().unwrap().iter().any(|&t| t > secs(1)) {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(200));
            done.set();
        })
    };
    let line = line!() + 1;
    let out = move_on_after(
        secs(1),
        shield(async {
            let mut wait = std::pin::pin!(done.wait());
            std::future::poll_fn(|cx| {
                polls.lock().unwrap().push(elapsed());
                wait.as_mut().poll(cx)
            })
            .await;
            elapsed()
        }),
    )
    .await;
    thread.join().unwrap();
    // The shield finished with its value (rule C3), once the clock had jumped to the
    // warning's timer, one threshold after the cancellation, and no further.
    assert_eq!(
        out,
        Some(secs(1) + THRESHOLD),
        "polls at {:?}",
        polls.lock().unwrap()
    );
    assert_eq!(elapsed(), secs(1) + THRESHOLD);
    assert_eq!(seen_at(line), [], "a polled holder is not reported");
}
