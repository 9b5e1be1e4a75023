//! `join`, `try_join` and `settle`: input order, parallelism, fail-fast with every error
//! reported, every result kept, and nothing left running when they return (or when the
//! caller is cancelled).

use std::future::{ready, Ready};
use std::time::Duration;

use hatchery::{finally, join, move_on_after, settle, sleep, try_join, CancelScope};
use hatchery_tests::{
    catch_panic, each_kind, ms, secs, until, Combinators, Counter, Log, TestError, HOUR,
};

each_kind!(join_returns_outputs_in_input_order);
/// Outputs come in input order, whatever order the futures finish in.
async fn join_returns_outputs_in_input_order<K: Combinators>() {
    let futs = (0..5u64).map(|i| async move {
        sleep(ms(10 - 2 * i)).await;
        i * 10
    });
    assert_eq!(K::join(futs).await, [0, 10, 20, 30, 40]);
}

/// Every future is running at the same time: each one waits until all have started,
/// which only finishes if none waits for another to end first.
#[hatchery::test]
async fn g1_join_runs_every_future_concurrently() {
    let started = Counter::new();
    let futs: Vec<_> = (0..8)
        .map(|i| {
            let started = started.clone();
            async move {
                started.incr();
                until(|| started.get() == 8).await;
                i
            }
        })
        .collect();
    assert_eq!(join(futs).await, (0..8).collect::<Vec<_>>());
}

each_kind!(join_empty_and_single);
/// Empty and single-element inputs.
async fn join_empty_and_single<K: Combinators>() {
    assert!(K::join(Vec::<Ready<u8>>::new()).await.is_empty());
    assert_eq!(K::join([ready(7)]).await, [7]);
    assert_eq!(
        K::try_join(Vec::<Ready<Result<u8, TestError>>>::new()).await,
        Ok(vec![])
    );
    assert_eq!(
        K::try_join([ready(Ok::<_, TestError>(7))]).await,
        Ok(vec![7])
    );
    let one_err = K::try_join([ready(Err::<u8, _>(TestError("only")))]).await;
    assert_eq!(one_err.unwrap_err().errors(), [TestError("only")]);
    assert!(K::settle(Vec::<Ready<Result<u8, TestError>>>::new())
        .await
        .is_empty());
    assert_eq!(
        K::settle([ready(Err::<u8, _>(TestError("x")))]).await,
        [Err(TestError("x"))]
    );
}

each_kind!(try_join_ok_in_input_order);
/// `try_join` returns the values in input order when all succeed.
async fn try_join_ok_in_input_order<K: Combinators>() {
    let futs = (0..4u64).map(|i| async move {
        sleep(ms(8 - 2 * i)).await;
        Ok::<_, TestError>(i)
    });
    assert_eq!(K::try_join(futs).await, Ok(vec![0, 1, 2, 3]));
}

each_kind!(try_join_fails_fast_and_awaits_the_cancelled);
/// The first error cancels the others, which are dropped (and their async cleanup
/// has run) before `try_join` returns.
async fn try_join_fails_fast_and_awaits_the_cancelled<K: Combinators>() {
    let dropped = Counter::new();
    let log = Log::new();
    let mut futs = Vec::new();
    for _ in 0..4 {
        let guard = dropped.guard();
        let log = log.clone();
        futs.push(Box::pin(async move {
            let _guard = guard;
            finally(sleep(HOUR), async move {
                sleep(ms(5)).await;
                log.push("cleaned up");
            })
            .await;
            Ok::<u32, TestError>(1)
        })
            as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>);
    }
    futs.push(Box::pin(async {
        sleep(ms(2)).await;
        Err(TestError("boom"))
    }));
    let err = K::try_join(futs).await.unwrap_err();
    assert_eq!(err.errors(), [TestError("boom")]);
    assert!(!err.is_cancelled());
    // Awaited, not just cancelled: every loser is gone and its cleanup has finished.
    assert_eq!(dropped.get(), 4);
    assert_eq!(log.count("cleaned up"), 4);
}

each_kind!(g4_try_join_reports_every_error);
/// Every error that happened is reported: two futures that fail without ever
/// suspending both get to fail (a spawned task always gets its first poll).
async fn g4_try_join_reports_every_error<K: Combinators>() {
    let futs = ["a", "b", "c"].map(|name| async move {
        if name == "b" {
            sleep(HOUR).await;
            Ok(0)
        } else {
            Err(TestError(name))
        }
    });
    let mut errors = K::try_join(futs).await.unwrap_err().into_errors();
    errors.sort_by_key(|e| e.0);
    assert_eq!(errors, [TestError("a"), TestError("c")]);
}

each_kind!(settle_keeps_every_result_in_input_order);
/// `settle` keeps going after an error and returns every result in input order.
async fn settle_keeps_every_result_in_input_order<K: Combinators>() {
    let futs = (0..5u64).map(|i| async move {
        sleep(ms(i)).await;
        if i % 2 == 0 {
            Ok(i)
        } else {
            Err(TestError("odd"))
        }
    });
    assert_eq!(
        K::settle(futs).await,
        [
            Ok(0),
            Err(TestError("odd")),
            Ok(2),
            Err(TestError("odd")),
            Ok(4)
        ]
    );
}

each_kind!(caller_cancelled_midway_leaks_nothing);
/// A caller cancelled midway (an outer timeout) leaks nothing: every future has been
/// dropped by the time the enclosing scope returns.
async fn caller_cancelled_midway_leaks_nothing<K: Combinators>() {
    let dropped = Counter::new();
    let started = Counter::new();
    let make = |n: usize| {
        (0..n)
            .map(|_| {
                let guard = dropped.guard();
                let started = started.clone();
                async move {
                    let _guard = guard;
                    started.incr();
                    sleep(HOUR).await;
                    Ok::<u8, TestError>(0)
                }
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(move_on_after(ms(10), K::join(make(3))).await, None);
    assert_eq!(dropped.get(), 3);
    assert_eq!(move_on_after(ms(10), K::try_join(make(3))).await, None);
    assert_eq!(dropped.get(), 6);
    assert!(move_on_after(ms(10), K::settle(make(3))).await.is_none());
    assert_eq!(dropped.get(), 9);
    assert_eq!(started.get(), 9);
}

each_kind!(g4_a_panic_cancels_the_rest_and_is_resumed);
/// A panicking future cancels the others; the panic is resumed once all have stopped.
async fn g4_a_panic_cancels_the_rest_and_is_resumed<K: Combinators>() {
    let dropped = Counter::new();
    let mut futs = Vec::new();
    for i in 0..3 {
        let guard = dropped.guard();
        futs.push(async move {
            let _guard = guard;
            if i == 1 {
                sleep(ms(2)).await;
                panic!("child {i} panicked");
            }
            sleep(HOUR).await;
            i
        });
    }
    let r = catch_panic(K::join(futs)).await;
    assert_eq!(r.unwrap_err(), "child 1 panicked");
    assert_eq!(dropped.get(), 3);
}

/// The combinators' futures are `Send` when their inputs are, so they can themselves be
/// spawned (built here, never polled).
#[test]
fn combinator_futures_are_send() {
    fn send<T: Send>(t: T) -> T {
        t
    }
    let ok = || ready(Ok::<u8, TestError>(1));
    drop(send(join([ready(1)])));
    drop(send(try_join([ok()])));
    drop(send(settle([ok()])));
    drop(send(hatchery::race([ready(1)])));
    drop(send(hatchery::race_ok([ok()])));
    drop(send(hatchery::map(2, 0..3, ready).join()));
    drop(send(hatchery::map(2, 0..3, |_| ok()).try_join()));
    drop(send(hatchery::as_completed([ready(1)], |_s| async { 0 })));
    drop(send(hatchery::service(HOUR, |_svc| async {
        Ok::<_, TestError>(())
    })));
    drop(send(hatchery::retry(ok)));
    drop(send(hatchery::batches(
        futures_lite::stream::iter([1]),
        2,
        HOUR,
    )));
}

/// `join` of a future that suspends, in a scope cancelled before entry, with an input
/// that is slow to end: on a multi-threaded runtime the child is polled on another
/// thread, cancelled at its first suspension, and has finished before the nursery's first
/// poll ends. `join` still never completes (it panicked, blaming the executor).
#[hatchery::test]
async fn join_in_a_cancelled_scope_whose_child_ends_first_returns_nothing() {
    type Child = std::pin::Pin<Box<dyn std::future::Future<Output = u32> + Send>>;
    struct SlowEnd(Option<Child>);
    impl Iterator for SlowEnd {
        type Item = Child;
        fn next(&mut self) -> Option<Child> {
            let item = self.0.take();
            if item.is_none() {
                // Time for another thread to poll and cancel the child.
                std::thread::sleep(Duration::from_millis(50));
            }
            item
        }
    }
    let scope = hatchery::CancelScope::new();
    scope.handle().cancel();
    let out = scope
        .run(async {
            let child: Child = Box::pin(async {
                sleep(HOUR).await;
                1u32
            });
            join(SlowEnd(Some(child))).await
        })
        .await;
    assert_eq!(out, None);
}

each_kind!(g3_combinators_in_cancelled_scopes_return_nothing);
/// The same race by ordinary timing, for `race`, `race_ok` and `join`, many times.
async fn g3_combinators_in_cancelled_scopes_return_nothing<K: Combinators>() {
    use std::future::pending;
    for i in 0..2_000 {
        let r = catch_panic(async {
            let scope = hatchery::CancelScope::new();
            scope.handle().cancel();
            let a = scope.run(K::race([pending::<u32>()])).await;
            let scope = hatchery::CancelScope::new();
            scope.handle().cancel();
            let b = scope
                .run(K::race_ok([pending::<Result<u32, TestError>>()]))
                .await;
            let scope = hatchery::CancelScope::new();
            scope.handle().cancel();
            let c = scope.run(K::join([pending::<u32>()])).await;
            assert!(a.is_none() && b.is_none() && c.is_none());
        })
        .await;
        if let Err(msg) = r {
            panic!("iteration {i}: {msg}");
        }
    }
}

each_kind!(
    g3_errors_are_reported_under_outer_cancellation,
    virtual_time
);
/// A `try_join` whose future failed before the enclosing scope was cancelled reports the
/// error once the rest has finished (as a nursery does), even though the scope's
/// deadline passed meanwhile: the scope does not swallow it.
async fn g3_errors_are_reported_under_outer_cancellation<K: Combinators>() {
    type Child =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<u32, TestError>> + Send>>;
    let out = move_on_after(secs(2), async {
        K::try_join([
            Box::pin(async {
                sleep(secs(1)).await;
                Err(TestError("a"))
            }) as Child,
            // Cancelled at 1 s by the failure; its cleanup runs past the 2 s deadline.
            Box::pin(async {
                finally(sleep(HOUR), sleep(secs(5))).await;
                Ok(1)
            }),
        ])
        .await
    })
    .await;
    assert_eq!(hatchery::testing::elapsed(), secs(6));
    assert_eq!(
        out.expect("the error is reported").unwrap_err().errors(),
        [TestError("a")]
    );
}

// ----- join! and try_join!: futures of different types -----

/// `join!` runs futures of different types at once and returns a tuple in argument
/// order; the futures are made left to right before any runs, and making them does not
/// move what their arguments clone.
#[hatchery::test(virtual_time)]
async fn join_macro_different_types_in_order() {
    let log = Log::new();
    let made = |event: &'static str| {
        log.push(event);
        log.clone()
    };
    let name = String::from("Ada");
    let (a, b, c) = join!(
        {
            let log = made("made a");
            let name = name.clone();
            async move {
                sleep(secs(3)).await;
                log.push("a done");
                name
            }
        },
        {
            let log = made("made b");
            async move {
                sleep(secs(1)).await;
                log.push("b done");
                36u32
            }
        },
        async { ready(()).await },
    );
    assert_eq!((a, b, c), (name.clone(), 36, ()));
    assert_eq!(name, "Ada", "still ours");
    assert_eq!(log.events(), ["made a", "made b", "b done", "a done"]);
    assert_eq!(
        hatchery::testing::elapsed(),
        secs(3),
        "at once, not one by one"
    );
}

/// `try_join!` returns the values as a tuple; the first error cancels the others, which
/// are awaited (their async cleanup included) before it returns with every error.
#[hatchery::test]
async fn try_join_macro_fails_fast_and_awaits_the_rest() {
    let log = Log::new();
    let ok = try_join!(async { Ok::<_, TestError>(1u8) }, async { Ok("two") }).unwrap();
    assert_eq!(ok, (1, "two"));

    let dropped = Counter::new();
    let slow = |guard| {
        let log = log.clone();
        async move {
            let _guard = guard;
            finally(sleep(HOUR), async move {
                sleep(ms(5)).await;
                log.push("cleaned up");
            })
            .await;
            Ok::<String, TestError>("never".into())
        }
    };
    let err = try_join!(
        slow(dropped.guard()),
        async {
            sleep(ms(2)).await;
            Err::<u64, _>(TestError("boom"))
        },
        slow(dropped.guard()),
    )
    .unwrap_err();
    assert_eq!(err.errors(), [TestError("boom")]);
    assert_eq!(dropped.get(), 2);
    assert_eq!(log.count("cleaned up"), 2);
}

/// Futures that fail at once, many times: the body may see a failed join before it sees
/// the nursery's cancellation (on a multi-threaded runtime); it must wait to be dropped,
/// and `try_join!` reports the errors, never panics.
#[hatchery::test]
async fn try_join_macro_immediate_failures() {
    for _ in 0..200 {
        let err = try_join!(async { Err::<(), _>(TestError("first")) }, async {
            Ok::<_, TestError>(2u8)
        })
        .unwrap_err();
        assert_eq!(err.errors(), [TestError("first")]);
        let mut errors = try_join!(async { Err::<u8, _>(TestError("a")) }, async {
            Err::<String, _>(TestError("b"))
        },)
        .unwrap_err()
        .into_errors();
        errors.sort_by_key(|e| e.0);
        assert_eq!(errors, [TestError("a"), TestError("b")]);
    }
}

/// A panic in one future of `join!` cancels the rest and is resumed once all stopped;
/// an enclosing scope's cancellation reaches every future and the macro never returns.
#[hatchery::test]
async fn join_macro_panic_and_outer_cancellation() {
    let dropped = Counter::new();
    let (g1, g2) = (dropped.guard(), dropped.guard());
    let r = catch_panic(async {
        join!(
            async move {
                let _g = g1;
                sleep(HOUR).await;
                1u8
            },
            async move {
                let _g = g2;
                sleep(ms(2)).await;
                panic!("boom in join!")
            },
        )
    })
    .await;
    assert_eq!(r.unwrap_err(), "boom in join!");
    assert_eq!(dropped.get(), 2);

    let (g1, g2) = (dropped.guard(), dropped.guard());
    let out = move_on_after(ms(5), async move {
        try_join!(
            async move {
                let _g = g1;
                sleep(HOUR).await;
                Ok::<_, TestError>(1u8)
            },
            async move {
                let _g = g2;
                sleep(HOUR).await;
                Ok("x")
            },
        )
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(dropped.get(), 4);
}

/// Twelve futures of different types, the most the macros take; their futures are `Send`.
#[hatchery::test]
async fn join_macro_twelve() {
    let all = join!(
        ready(1u8),
        ready(2u16),
        ready(3u32),
        ready(4u64),
        ready(5usize),
        ready(6i8),
        ready(7i16),
        ready(8i32),
        ready(9i64),
        ready('a'),
        ready("b"),
        ready(true),
    );
    assert_eq!(all, (1, 2, 3, 4, 5, 6, 7, 8, 9, 'a', "b", true));
    fn send<T: Send>(t: T) -> T {
        t
    }
    let fut = send(async { try_join!(ready(Ok::<_, TestError>(1)), ready(Ok(2u8))) });
    assert_eq!(fut.await, Ok((1, 2)));
}

each_kind!(join_in_a_cancelled_scope_spawns_every_future);
/// In a cancelled scope, `join` spawns every future it was given, as a nursery would:
/// each runs to its first suspension point, where it is cancelled (unlike `map`, which
/// takes no more input once cancelled: these futures exist already).
async fn join_in_a_cancelled_scope_spawns_every_future<K: Combinators>() {
    let started = Counter::new();
    let scope = CancelScope::new();
    scope.handle().cancel();
    let futs = (0..3).map(|i| {
        let started = started.clone();
        async move {
            started.incr();
            hatchery::checkpoint().await;
            i
        }
    });
    assert_eq!(scope.run(K::join(futs)).await, None);
    assert_eq!(started.get(), 3);
}
