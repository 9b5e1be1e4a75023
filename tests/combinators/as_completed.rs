//! `as_completed` and `as_completed_in`: outputs in completion order; stopping early (or
//! dropping the stream) cancels the rest, which are reaped before the scope returns.

use std::future::{poll_fn, ready, Future, Ready};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use futures_core::Stream;
use futures_lite::StreamExt;
use hatchery::{
    as_completed, as_completed_in, finally, move_on_after, nursery, sleep, Nursery, NurseryError,
};
use hatchery_tests::{catch_panic, hook, ms, until, Counter, Log, TestError, HOUR};

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Waits an hour; when cancelled, its async cleanup takes 5 ms and then logs.
fn slow<T: Send + 'static>(log: &Log, dropped: &Counter) -> BoxFut<T> {
    let (log, guard) = (log.clone(), dropped.guard());
    Box::pin(async move {
        let _guard = guard;
        finally(sleep(HOUR), async move {
            sleep(ms(5)).await;
            log.push("cleaned up");
        })
        .await;
        unreachable!("never left to finish")
    })
}

/// Items come in the order the futures finish. The order is forced without timing:
/// the future of rank `r` finishes only after the body has received `r` items.
#[hatchery::test]
async fn items_come_in_completion_order() {
    let received = Counter::new();
    let futs = [2usize, 0, 3, 1].map(|rank| {
        let received = received.clone();
        async move {
            until(|| received.get() >= rank).await;
            rank
        }
    });
    let order = as_completed(futs, |mut done| async move {
        let mut order = Vec::new();
        while let Some(rank) = done.next().await {
            order.push(rank);
            received.incr();
        }
        order
    })
    .await;
    assert_eq!(order, [0, 1, 2, 3]);
}

/// When the body returns early, the futures still running are cancelled and awaited
/// before `as_completed` returns.
#[hatchery::test]
async fn returning_early_cancels_and_reaps_the_rest() {
    let log = Log::new();
    let dropped = Counter::new();
    let mut futs: Vec<BoxFut<u32>> = (0..3).map(|_| slow(&log, &dropped)).collect();
    futs.push(Box::pin(async {
        sleep(ms(1)).await;
        1
    }));
    let first = as_completed(futs, |mut done| async move { done.next().await }).await;
    assert_eq!(first, Some(1));
    assert_eq!(dropped.get(), 3);
    assert_eq!(log.count("cleaned up"), 3);
}

/// Dropping the stream cancels the rest at once, while the body still runs.
#[hatchery::test]
async fn dropping_the_stream_cancels_at_once() {
    let log = Log::new();
    let dropped = Counter::new();
    let futs: Vec<BoxFut<u32>> = (0..3).map(|_| slow(&log, &dropped)).collect();
    let seen = as_completed(futs, |done| {
        let dropped = dropped.clone();
        async move {
            drop(done);
            until(|| dropped.get() == 3).await;
            dropped.get()
        }
    })
    .await;
    assert_eq!(seen, 3);
    assert_eq!(log.count("cleaned up"), 3);
}

/// Errors are items like any other: they do not cancel the rest.
#[hatchery::test]
async fn errors_are_items() {
    let futs: Vec<BoxFut<Result<u8, TestError>>> = vec![
        Box::pin(async { Err(TestError("bad")) }),
        Box::pin(async {
            sleep(ms(5)).await;
            Ok(1)
        }),
    ];
    let mut all = as_completed(futs, |done| done.collect::<Vec<_>>()).await;
    all.sort_by_key(|r| r.is_ok());
    assert_eq!(all, [Err(TestError("bad")), Ok(1)]);
}

/// Empty and single-element inputs.
#[hatchery::test]
async fn empty_and_single() {
    let none = as_completed(Vec::<Ready<u8>>::new(), |mut done| async move {
        (done.remaining(), done.next().await)
    })
    .await;
    assert_eq!(none, (0, None));
    let one = as_completed([ready(9u8)], |done| done.collect::<Vec<_>>()).await;
    assert_eq!(one, [9]);
}

/// A caller cancelled midway leaks nothing: the body and every future are dropped by
/// the time the enclosing scope returns.
#[hatchery::test]
async fn caller_cancelled_midway_leaks_nothing() {
    let log = Log::new();
    let dropped = Counter::new();
    let futs: Vec<BoxFut<u8>> = (0..3).map(|_| slow(&log, &dropped)).collect();
    let body_dropped = log.on_drop("body dropped");
    let out = move_on_after(
        ms(10),
        as_completed(futs, |mut done| async move {
            let _guard = body_dropped;
            done.next().await
        }),
    )
    .await;
    assert_eq!(out, None);
    assert_eq!(dropped.get(), 3);
    assert_eq!(log.count("cleaned up"), 3);
    assert!(log.contains("body dropped"));
}

/// `as_completed_in`: dropping the stream cancels the rest, and the enclosing
/// nursery reaps them before it returns.
#[hatchery::test]
async fn as_completed_in_is_reaped_by_the_nursery() {
    let log = Log::new();
    let dropped = Counter::new();
    let first = nursery(|n| {
        let (log, dropped) = (log.clone(), dropped.clone());
        async move {
            let mut futs: Vec<BoxFut<u32>> = (0..3).map(|_| slow(&log, &dropped)).collect();
            futs.push(Box::pin(async { 4 }));
            let mut done = as_completed_in(&n, futs);
            assert_eq!(done.remaining(), 4);
            Ok::<_, TestError>(done.next().await)
        }
    })
    .await
    .unwrap();
    assert_eq!(first, Some(4));
    assert_eq!(dropped.get(), 3);
    assert_eq!(log.count("cleaned up"), 3);
}

/// `remaining` never counts an output twice, also while its child moves it from running
/// to queued on another thread.
#[hatchery::test]
async fn remaining_never_counts_an_output_twice() {
    for i in 0..2_000 {
        let max = as_completed([async { 7u32 }], |done| async move {
            let mut max = 0;
            loop {
                max = max.max(done.remaining());
                if futures_lite::Stream::size_hint(&done) == (1, Some(1)) {
                    break;
                }
                hatchery::checkpoint().await; // lets the child run on one thread
            }
            max
        })
        .await;
        assert_eq!(max, 1, "iteration {i}");
    }
}

/// `as_completed_in` on a closed nursery panics with its own message (it has no `try_`
/// form to point to, as `spawn`'s message does).
#[hatchery::test]
async fn as_completed_in_a_closed_nursery_panics_at_the_caller() {
    let mut saved = None;
    nursery(|n| {
        saved = Some(n);
        async { Ok::<_, TestError>(()) }
    })
    .await
    .unwrap();
    let n = saved.unwrap();
    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drop(as_completed_in(&n, [ready(1)]));
    }));
    let p = p.unwrap_err();
    assert_eq!(
        hatchery_tests::panic_message(&*p),
        "hatchery: as_completed_in: cannot spawn into a closed nursery (it has finished, or \
         its future was dropped)"
    );
}

// ----- a panic in flight -----

/// What the child, the body's waker and the body tell each other.
struct Gate {
    /// The child's panic has begun (set as it unwinds through the child's future).
    child_panicked: AtomicBool,
    woken_panicking: AtomicBool,
    polled_since: AtomicBool,
}

/// Tells the gate, as the child's panic unwinds, that it has begun.
struct PanicBegun(Arc<Gate>);

impl Drop for PanicBegun {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.child_panicked.store(true, SeqCst);
        }
    }
}

/// The body's waker, wrapped: woken by the child's thread once its panic has begun
/// (while it unwinds, or after the panic was caught on its way to the nursery), it holds
/// that thread until the body has polled the stream again (at most 5 s: with a fix,
/// nothing changes).
struct HoldUnwinding(Waker, Arc<Gate>);

impl Wake for HoldUnwinding {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let begun = std::thread::panicking() || self.1.child_panicked.load(SeqCst);
        // Once: the first wake-up after the panic began.
        if !begun || self.1.woken_panicking.swap(true, SeqCst) {
            self.0.wake_by_ref();
        } else {
            // Woken from another thread: a worker that wakes a task keeps it for itself
            // (tokio's LIFO slot), and this one is held below.
            let w = self.0.clone();
            std::thread::spawn(move || w.wake());
            let start = Instant::now();
            while !self.1.polled_since.load(SeqCst) && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// A future of `as_completed` that panics does not end the body's stream: the body is
/// cancelled by the panic, it never sees `None`, even if it polls the stream between the
/// panic and the moment the nursery hears of it. (The body's waker here holds the child's
/// thread, once the panic has begun, until the body has polled, to force that window: a
/// stream that counts the child as done as soon as it panics ends in it.)
#[hatchery::test(backends(tokio_multi))]
async fn as_completed_panic_does_not_end_the_stream_early() {
    let saw_end = Arc::new(AtomicBool::new(false));
    let saw = saw_end.clone();
    let gate = Arc::new(Gate {
        child_panicked: AtomicBool::new(false),
        woken_panicking: AtomicBool::new(false),
        polled_since: AtomicBool::new(false),
    });
    let begun = PanicBegun(gate.clone());
    let r = catch_panic(hatchery::as_completed(
        [async move {
            let _begun = begun;
            sleep(Duration::from_millis(20)).await;
            if true {
                panic!("child boom");
            }
            1u32
        }],
        move |mut s| async move {
            let got = poll_fn(|cx| {
                let w = Waker::from(Arc::new(HoldUnwinding(cx.waker().clone(), gate.clone())));
                let out = Pin::new(&mut s).poll_next(&mut Context::from_waker(&w));
                if gate.woken_panicking.load(SeqCst) {
                    gate.polled_since.store(true, SeqCst);
                }
                out
            })
            .await;
            if got.is_none() {
                // "every job finished": commit, report success, ...
                saw.store(true, SeqCst);
            }
            got
        },
    ))
    .await;
    assert_eq!(r.unwrap_err(), "child boom");
    assert!(
        !saw_end.load(SeqCst),
        "the body saw the end of the stream while a future's panic was in flight"
    );
}

/// A reader whose nursery is cancelled in the middle of its poll (after the stream's
/// check on entry, before it finds that every future has finished) does not see the
/// end: in a cancelled scope the wait never completes, and the reader is dropped. (A
/// future that panics on another thread cancels it so, and its sibling then stops.)
/// The waker's `clone`, in the stream's registration between the two, cancels the
/// nursery here, on every backend.
#[hatchery::test]
async fn a_reader_cancelled_mid_poll_does_not_see_the_end() {
    let log = Log::new();
    let l = log.clone();
    let r = nursery(|n: Nursery<TestError>| async move {
        let mut s = as_completed_in(&n, [ready(1u32)]);
        assert_eq!(s.next().await, Some(1));
        assert_eq!(s.remaining(), 0, "every future has finished");
        let end = poll_fn(|cx| {
            let n = n.clone();
            let w = hook::waker(hook::Data {
                inner: cx.waker().clone(),
                on_clone: Box::new(move || n.cancel()),
            });
            Pin::new(&mut s).poll_next(&mut Context::from_waker(&w))
        })
        .await;
        // Not reached: the body is cancelled in its poll.
        l.push(match end {
            None => "saw the end",
            Some(_) => "saw an item",
        });
        Ok(())
    })
    .await;
    assert!(log.is_empty(), "{:?}", log.events());
    assert_eq!(r, Err(NurseryError::Cancelled));
}

/// Panics with "child boom" after `d`.
async fn boom_after(d: Duration) -> u32 {
    sleep(d).await;
    panic!("child boom")
}

/// A future of `as_completed` that panics still ends the stream: a body that drains it
/// shielded (so the panic's cancellation does not reach it) sees the end and returns,
/// and the panic is resumed with its payload. The stream ends only once the panic has
/// reached the nursery. (The unwinding sender skipped its bookkeeping, so the stream
/// waited for it forever; the hour-long limit here is what ended the wait.)
#[hatchery::test(virtual_time)]
async fn as_completed_panic_ends_a_shielded_drain() {
    let log = Log::new();
    let l = log.clone();
    let r = catch_panic(as_completed(
        [
            Box::pin(boom_after(ms(10))) as BoxFut<u32>,
            Box::pin(async {
                sleep(ms(20)).await;
                2
            }),
        ],
        move |mut s| {
            hatchery::shield(async move {
                let mut got = Vec::new();
                loop {
                    match move_on_after(HOUR, s.next()).await {
                        Some(Some(v)) => got.push(v),
                        Some(None) => break l.push("end"),
                        None => break l.push("hung"),
                    }
                }
                got
            })
        },
    ))
    .await;
    assert_eq!(r.unwrap_err(), "child boom");
    assert_eq!(log.events(), ["end"]);
    assert!(hatchery::testing::elapsed() < HOUR);
}

/// The same with `as_completed_in`, drained in a `finally` after the body was cancelled
/// by the panic: the stream ends, and the nursery resumes the panic.
#[hatchery::test(virtual_time)]
async fn as_completed_in_panic_ends_a_drain_in_finally() {
    let log = Log::new();
    let l = log.clone();
    let r = catch_panic(nursery(|n| async move {
        let mut s = as_completed_in(
            &n,
            [
                Box::pin(boom_after(ms(10))) as BoxFut<u32>,
                Box::pin(async {
                    sleep(HOUR).await;
                    2
                }),
            ],
        );
        finally(sleep(HOUR), async move {
            // The panic cancelled the nursery: the hour-long future is cancelled too,
            // and the stream ends once both have stopped.
            match move_on_after(HOUR, s.next()).await {
                Some(None) => l.push("end"),
                Some(Some(_)) => l.push("item"),
                None => l.push("hung"),
            }
        })
        .await;
        Ok::<_, TestError>(())
    }))
    .await;
    assert_eq!(r.unwrap_err(), "child boom");
    assert_eq!(log.events(), ["end"]);
}
