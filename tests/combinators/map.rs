//! `map` and `map_stream`: at most `limit` in flight, no read-ahead of the input, ordered
//! and unordered outputs, fail-fast and settle modes, and nothing leaked on cancellation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_lite::{stream, StreamExt};
use hatchery::{map, map_stream, move_on_after, nursery, sleep, CancelScope};
use hatchery_tests::{catch_panic, each_kind, ms, until, Combinators, Counter, TestError, HOUR};

/// Tracks how many are in flight, and the most there ever were.
#[derive(Clone, Default)]
struct InFlight {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

impl InFlight {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }
    fn exit(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

each_kind!(at_most_limit_in_flight);
/// Never more than `limit` in flight, and the limit is actually used: each child waits
/// until `limit` are running at once (which would hang if they ran one by one).
async fn at_most_limit_in_flight<K: Combinators>() {
    let flight = InFlight::default();
    let all = flight.clone();
    let f = move |i| {
        let flight = all.clone();
        async move {
            flight.enter();
            until(|| flight.max() >= 3).await;
            sleep(ms(1)).await;
            flight.exit();
            i
        }
    };
    let out = K::map_join(3, 0..20u32, f, true).await;
    assert_eq!(out, (0..20).collect::<Vec<_>>());
    assert_eq!(flight.max(), 3);
}

/// Backpressure: while every slot is busy, no further input is taken (and `f` is not
/// called) however long the children take.
#[hatchery::test]
async fn input_is_not_read_ahead() {
    let pulled = Counter::new();
    let release = Counter::new();
    let out = nursery(|n| {
        let (pulled, release) = (pulled.clone(), release.clone());
        async move {
            let inputs = (0..100u32).inspect(move |_| {
                pulled.incr();
            });
            let work = n.spawn(async move {
                Ok(map(4, inputs, move |i| {
                    let release = release.clone();
                    async move {
                        until(|| release.get() > 0).await;
                        i
                    }
                })
                .join()
                .await)
            });
            Ok::<_, TestError>(work.join().await.unwrap())
        }
    });
    let check = async {
        until(|| pulled.get() == 4).await;
        sleep(ms(20)).await; // give a read-ahead every chance to happen
        assert_eq!(pulled.get(), 4, "the input was read ahead");
        release.incr();
    };
    let (out, ()) = futures_lite::future::zip(out, check).await;
    assert_eq!(out.unwrap(), (0..100).collect::<Vec<_>>());
    assert_eq!(pulled.get(), 100);
}

/// Ordered output is in input order; unordered output is in completion order. The
/// completion order is forced without timing: with two slots, `a` waits until `d`
/// has started, and `d` can only start after `b` and `c` have finished and been
/// collected (a slot is freed only after its output is stored).
#[hatchery::test]
async fn ordered_and_unordered_outputs() {
    for ordered in [true, false] {
        let started_d = Counter::new();
        let work = map(2, ["a", "b", "c", "d"], |name| {
            let started_d = started_d.clone();
            async move {
                match name {
                    "a" => until(|| started_d.get() > 0).await,
                    "d" => {
                        started_d.incr();
                    }
                    _ => {}
                }
                name
            }
        });
        let out = if ordered {
            work.join().await
        } else {
            work.unordered().join().await
        };
        if ordered {
            assert_eq!(out, ["a", "b", "c", "d"]);
        } else {
            assert_eq!(out[..2], ["b", "c"]);
            let mut rest = out[2..].to_vec();
            rest.sort();
            assert_eq!(rest, ["a", "d"]);
        }
    }
}

each_kind!(try_join_fails_fast);
/// Fail-fast: the first error cancels the children in flight, no further input is
/// taken (even from an endless input), and every started child is dropped before
/// `try_join` returns.
///
/// Items 2 and 3 finish quickly, item 4 fails, and every later item would run for an
/// hour: the slot item 4 frees may start one more item before the failure is reported
/// (its future has returned by then), after which every slot is held until the
/// cancellation, whatever the timing.
async fn try_join_fails_fast<K: Combinators>() {
    let started = Counter::new();
    let dropped = Counter::new();
    let (s, d) = (started.clone(), dropped.clone());
    let f = move |i| {
        s.incr();
        let guard = d.guard();
        async move {
            let _guard = guard;
            if i == 4 {
                return Err(TestError("item 4"));
            }
            sleep(if i == 2 || i == 3 { ms(1) } else { HOUR }).await;
            Ok(i)
        }
    };
    let r = K::map_try_join(3, 0u64.., f).await;
    assert_eq!(r.unwrap_err().errors(), [TestError("item 4")]);
    assert_eq!(dropped.get(), started.get());
    let started = started.get();
    assert!(
        (5..=6).contains(&started),
        "input read after the failure: {started}"
    );
}

each_kind!(settle_keeps_every_result);
/// Settle mode keeps going after errors and keeps every result, in input order (or in
/// completion order when unordered).
async fn settle_keeps_every_result<K: Combinators>() {
    let f = |i: u32| async move {
        sleep(ms(u64::from(i % 3))).await;
        if i % 2 == 0 {
            Ok(i)
        } else {
            Err(TestError("odd"))
        }
    };
    let all = K::map_settle(2, 0..6, f).await;
    assert_eq!(
        all,
        [
            Ok(0),
            Err(TestError("odd")),
            Ok(2),
            Err(TestError("odd")),
            Ok(4),
            Err(TestError("odd"))
        ]
    );
    let unordered = K::map_join(2, 0..6, f, false).await;
    assert_eq!(unordered.iter().filter(|r| r.is_err()).count(), 3);
    let mut oks: Vec<u32> = unordered.into_iter().filter_map(Result::ok).collect();
    oks.sort();
    assert_eq!(oks, [0, 2, 4]);
}

/// Empty and single-element inputs, in every mode.
#[hatchery::test]
async fn empty_and_single() {
    let none = map(2, Vec::<u8>::new(), |i| async move { i }).join().await;
    assert!(none.is_empty());
    let none = map(
        2,
        Vec::<u8>::new(),
        |i| async move { Ok::<_, TestError>(i) },
    )
    .try_join()
    .await;
    assert_eq!(none, Ok(vec![]));
    let one = map(2, [1u8], |i| async move { Ok::<_, TestError>(i) })
        .try_join()
        .await;
    assert_eq!(one, Ok(vec![1]));
    let one = map(2, [1u8], |_| async { Err::<u8, _>(TestError("e")) })
        .unordered()
        .settle()
        .await;
    assert_eq!(one, [Err(TestError("e"))]);
    let s = map_stream(1, stream::iter(Vec::<u8>::new()), |i| async move { i })
        .join()
        .await;
    assert!(s.is_empty());
}

/// A stream of inputs is polled only when a slot is free.
#[hatchery::test]
async fn stream_inputs_with_backpressure() {
    let flight = InFlight::default();
    let pulled = Counter::new();
    let inputs = stream::iter(0..10u32).inspect({
        let pulled = pulled.clone();
        move |_| {
            pulled.incr();
        }
    });
    let out = map_stream(2, inputs, |i| {
        let flight = flight.clone();
        async move {
            flight.enter();
            sleep(ms(1)).await;
            flight.exit();
            i * 2
        }
    })
    .unordered()
    .join()
    .await;
    let mut out = out;
    out.sort();
    assert_eq!(out, (0..10).map(|i| i * 2).collect::<Vec<_>>());
    assert!(flight.max() <= 2);
    assert_eq!(pulled.get(), 10);
}

each_kind!(caller_cancelled_midway_leaks_nothing);
/// A caller cancelled midway leaks nothing, and takes no more input.
async fn caller_cancelled_midway_leaks_nothing<K: Combinators>() {
    let started = Counter::new();
    let dropped = Counter::new();
    let out = move_on_after(
        ms(10),
        K::map_join(
            2,
            0..100u32,
            {
                let (s, d) = (started.clone(), dropped.clone());
                move |i| {
                    s.incr();
                    let guard = d.guard();
                    async move {
                        let _guard = guard;
                        sleep(HOUR).await;
                        i
                    }
                }
            },
            true,
        ),
    )
    .await;
    assert_eq!(out, None);
    assert_eq!(started.get(), 2);
    assert_eq!(dropped.get(), 2);
}

/// A limit of zero could never make progress: a clear panic, not a hang.
#[test]
#[should_panic(expected = "needs a limit of at least 1")]
fn zero_limit_panics() {
    let _ = map(0, 0..1, |i| async move { i });
}

/// `map` in a scope cancelled before it is entered takes no input and never completes:
/// it does not return a success without the results (it returned `Ok(vec![])`).
#[hatchery::test]
async fn map_in_a_scope_cancelled_before_entry_returns_nothing() {
    let scope = hatchery::CancelScope::new();
    scope.handle().cancel();
    let taken = Counter::new();
    let t = taken.clone();
    let out = scope
        .run(async move {
            let inputs = (0..5u32).inspect(move |_| {
                t.incr();
            });
            map(2, inputs, |i| async move { Ok::<_, TestError>(i) })
                .try_join()
                .await
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(taken.get(), 0);
}

// A child that fails or panics frees its slot before the nursery hears of the failure
// (its future is dropped first). `map` must not take more input in between. On a
// multi-thread runtime the window is real but short: `interpose` holds the thread that
// frees the slot until `map` has been polled again, which makes it wide every time
// (on one thread the child runs on the polling thread, and the window cannot open).
mod interpose {
    //! Polls a future with a waker that, the first time it is woken from another thread
    //! than the one that polls, holds that thread until the future has been polled again
    //! (at most 2 s). Only the first: later wakes may come under a lock that the poll
    //! needs.
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Condvar, Mutex};
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread::ThreadId;
    use std::time::Duration;

    #[derive(Default)]
    struct State {
        outer: Option<Waker>,
        poller: Option<ThreadId>,
        /// A wake from another thread waits for the next poll to end.
        waiting: bool,
        /// How many times a waking thread was held.
        held: usize,
    }

    #[derive(Default)]
    pub(crate) struct Gate {
        state: Mutex<State>,
        cond: Condvar,
    }

    impl Gate {
        pub(crate) fn held(&self) -> usize {
            self.state.lock().unwrap().held
        }
    }

    impl Wake for Gate {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref()
        }
        fn wake_by_ref(self: &Arc<Self>) {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(w) = s.outer.clone() {
                w.wake();
            }
            if s.poller == Some(std::thread::current().id()) || s.waiting || s.held > 0 {
                return;
            }
            s.waiting = true;
            s.held += 1;
            let _ = self
                .cond
                .wait_timeout_while(s, Duration::from_secs(2), |s| s.waiting);
        }
    }

    pub(crate) struct Interpose<F> {
        gate: Arc<Gate>,
        fut: Pin<Box<F>>,
    }

    impl<F: Future> Future for Interpose<F> {
        type Output = F::Output;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            let was_waiting = {
                let mut s = self.gate.state.lock().unwrap_or_else(|e| e.into_inner());
                s.outer = Some(cx.waker().clone());
                s.poller = Some(std::thread::current().id());
                s.waiting
            };
            let waker = Waker::from(self.gate.clone());
            let polled = self.fut.as_mut().poll(&mut Context::from_waker(&waker));
            let mut s = self.gate.state.lock().unwrap_or_else(|e| e.into_inner());
            if was_waiting || s.waiting {
                s.waiting = false;
                self.gate.cond.notify_all();
            }
            polled
        }
    }

    pub(crate) fn interpose<F: Future>(fut: F) -> (Interpose<F>, Arc<Gate>) {
        let gate = Arc::new(Gate::default());
        (
            Interpose {
                gate: gate.clone(),
                fut: Box::pin(fut),
            },
            gate,
        )
    }
}

each_kind!(no_input_is_taken_after_a_failure);
/// With one slot, the first item fails at once: no further input may be taken.
async fn no_input_is_taken_after_a_failure<K: Combinators>() {
    for _ in 0..20 {
        let calls = Counter::new();
        let c = calls.clone();
        let f = move |i| {
            c.incr();
            async move {
                if i == 0 {
                    Err(TestError("first"))
                } else {
                    Ok(i)
                }
            }
        };
        let work = K::map_try_join(1, 0..4u32, f);
        let (work, gate) = interpose::interpose(work);
        let r = work.await;
        assert_eq!(r.unwrap_err().errors(), [TestError("first")]);
        if gate.held() > 0 {
            assert_eq!(calls.get(), 1, "input was taken after the failure");
        }
    }
}

each_kind!(no_input_is_taken_after_a_panic);
/// The same with a panic: it cancels the rest, and no further input may be taken.
async fn no_input_is_taken_after_a_panic<K: Combinators>() {
    for _ in 0..20 {
        let calls = Counter::new();
        let c = calls.clone();
        let f = move |i| {
            c.incr();
            async move {
                if i == 0 {
                    panic!("first");
                }
                i
            }
        };
        let work = K::map_join(1, 0..4u32, f, true);
        let (work, gate) = interpose::interpose(work);
        let r = catch_panic(work).await;
        assert_eq!(r.unwrap_err(), "first");
        if gate.held() > 0 {
            assert_eq!(calls.get(), 1, "input was taken after the panic");
        }
    }
}

each_kind!(no_input_is_taken_in_a_cancelled_scope_even_without_a_limit);
/// In a cancelled scope `map` takes no input, whatever its limit.
async fn no_input_is_taken_in_a_cancelled_scope_even_without_a_limit<K: Combinators>() {
    for limit in [usize::MAX, usize::MAX - 1, 10] {
        let calls = Counter::new();
        let c = calls.clone();
        let scope = CancelScope::new();
        scope.handle().cancel();
        let out = scope
            .run(K::map_join(
                limit,
                0..5,
                move |i| {
                    c.incr();
                    async move { i }
                },
                true,
            ))
            .await;
        assert!(out.is_none());
        assert_eq!(
            calls.get(),
            0,
            "limit {limit}: f was called in a cancelled scope"
        );
    }
}

each_kind!(
    map_in_a_scope_whose_deadline_has_passed_takes_no_input,
    virtual_time
);
/// `map` in a scope whose deadline has passed already takes no input either: such a
/// scope is cancelled on entry, as one cancelled before it is entered is. (It took
/// `limit` inputs, and more on a multi-thread runtime, before its timer noticed.)
async fn map_in_a_scope_whose_deadline_has_passed_takes_no_input<K: Combinators>() {
    let taken = Counter::new();
    let calls = Counter::new();
    let (t, c) = (taken.clone(), calls.clone());
    let out = move_on_after(std::time::Duration::ZERO, async move {
        let inputs = (0..100u32).inspect(move |_| {
            t.incr();
        });
        let f = move |i| {
            c.incr();
            async move {
                sleep(HOUR).await;
                Ok::<_, TestError>(i)
            }
        };
        K::map_try_join(4, inputs, f).await
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(taken.get(), 0, "inputs taken under a passed deadline");
    assert_eq!(calls.get(), 0, "`f` called under a passed deadline");
}
