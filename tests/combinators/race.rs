//! `race` and `race_ok`: the first to finish (or to succeed) wins, and the losers are
//! cancelled *and awaited* before the race returns.

use std::future::{ready, Future, Ready};
use std::pin::Pin;

use hatchery::{finally, move_on_after, race, sleep};
use hatchery_tests::{
    catch_panic, each_kind, ms, secs, Combinators, Counter, Log, TestError, HOUR,
};

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A loser: waits an hour; when cancelled, its async cleanup takes 5 ms and then logs.
fn loser<T: Send + 'static>(log: &Log, dropped: &Counter) -> BoxFut<T> {
    let (log, guard) = (log.clone(), dropped.guard());
    Box::pin(async move {
        let _guard = guard;
        finally(sleep(HOUR), async move {
            sleep(ms(5)).await;
            log.push("loser cleaned up");
        })
        .await;
        unreachable!("a loser is never left to finish")
    })
}

each_kind!(race_returns_the_first_to_finish);
/// The first future to finish wins.
async fn race_returns_the_first_to_finish<K: Combinators>() {
    let futs: Vec<BoxFut<&str>> = vec![
        Box::pin(async {
            sleep(ms(200)).await;
            "slow"
        }),
        Box::pin(async {
            sleep(ms(1)).await;
            "fast"
        }),
        Box::pin(async {
            sleep(HOUR).await;
            "never"
        }),
    ];
    assert_eq!(K::race(futs).await, "fast");
}

each_kind!(race_cancels_and_awaits_the_losers);
/// The losers are cancelled and awaited: when `race` returns, each has been dropped
/// and its (async) cleanup has finished.
async fn race_cancels_and_awaits_the_losers<K: Combinators>() {
    let log = Log::new();
    let dropped = Counter::new();
    let mut futs: Vec<BoxFut<u32>> = (0..3).map(|_| loser(&log, &dropped)).collect();
    futs.push(Box::pin(async {
        sleep(ms(2)).await;
        42
    }));
    assert_eq!(K::race(futs).await, 42);
    assert_eq!(dropped.get(), 3);
    assert_eq!(log.count("loser cleaned up"), 3);
}

each_kind!(race_an_error_can_win);
/// Outputs are opaque to `race`: an `Err` that comes first wins.
async fn race_an_error_can_win<K: Combinators>() {
    let futs: Vec<BoxFut<Result<u8, TestError>>> = vec![
        Box::pin(async { Err(TestError("first")) }),
        Box::pin(async {
            sleep(HOUR).await;
            Ok(1)
        }),
    ];
    assert_eq!(K::race(futs).await, Err(TestError("first")));
}

each_kind!(race_single);
/// A single future simply runs.
async fn race_single<K: Combinators>() {
    assert_eq!(K::race([ready(5)]).await, 5);
    assert_eq!(K::race_ok([ready(Ok::<_, TestError>(5))]).await, Ok(5));
    let err = K::race_ok([ready(Err::<u8, _>(TestError("only")))])
        .await
        .unwrap_err();
    assert_eq!(err.errors(), [TestError("only")]);
}

each_kind!(race_ok_returns_the_first_success);
/// `race_ok` skips failures and returns the first success; the rest are cancelled and
/// awaited.
async fn race_ok_returns_the_first_success<K: Combinators>() {
    let log = Log::new();
    let dropped = Counter::new();
    let mut futs: Vec<BoxFut<Result<u32, TestError>>> =
        (0..2).map(|_| loser(&log, &dropped)).collect();
    futs.push(Box::pin(async { Err(TestError("fast failure")) }));
    futs.push(Box::pin(async {
        sleep(ms(5)).await;
        Ok(7)
    }));
    assert_eq!(K::race_ok(futs).await, Ok(7));
    assert_eq!(dropped.get(), 2);
    assert_eq!(log.count("loser cleaned up"), 2);
}

each_kind!(race_ok_reports_every_error_when_all_fail);
/// If every future fails, `race_ok` reports every error, in the order they happened.
async fn race_ok_reports_every_error_when_all_fail<K: Combinators>() {
    let futs: Vec<BoxFut<Result<u8, TestError>>> = vec![
        Box::pin(async {
            sleep(ms(60)).await;
            Err(TestError("slow"))
        }),
        Box::pin(async { Err(TestError("fast")) }),
    ];
    let err = K::race_ok(futs).await.unwrap_err();
    assert!(!err.is_cancelled());
    assert_eq!(err.into_errors(), [TestError("fast"), TestError("slow")]);
}

each_kind!(caller_cancelled_midway_leaks_nothing);
/// A caller cancelled midway leaks nothing: every contender has been dropped (and
/// cleaned up) by the time the enclosing scope returns.
async fn caller_cancelled_midway_leaks_nothing<K: Combinators>() {
    let log = Log::new();
    let dropped = Counter::new();
    let futs: Vec<BoxFut<u8>> = (0..3).map(|_| loser(&log, &dropped)).collect();
    assert_eq!(move_on_after(ms(10), K::race(futs)).await, None);
    assert_eq!(dropped.get(), 3);
    let futs: Vec<BoxFut<Result<u8, TestError>>> = (0..3).map(|_| loser(&log, &dropped)).collect();
    assert!(move_on_after(ms(10), K::race_ok(futs)).await.is_none());
    assert_eq!(dropped.get(), 6);
    assert_eq!(log.count("loser cleaned up"), 6);
}

each_kind!(a_panic_is_resumed_after_the_rest_stopped);
/// A panicking contender cancels the rest; the panic is resumed once all have stopped.
async fn a_panic_is_resumed_after_the_rest_stopped<K: Combinators>() {
    let log = Log::new();
    let dropped = Counter::new();
    let mut futs: Vec<BoxFut<u8>> = (0..2).map(|_| loser(&log, &dropped)).collect();
    futs.push(Box::pin(async {
        sleep(ms(2)).await;
        panic!("contender panicked")
    }));
    let r = catch_panic(K::race(futs)).await;
    assert_eq!(r.unwrap_err(), "contender panicked");
    assert_eq!(dropped.get(), 2);
    assert_eq!(log.count("loser cleaned up"), 2);
}

/// A race with no contender has no winner: a clear panic at the call, not a hang.
#[test]
#[should_panic(expected = "`race` needs at least one future")]
fn race_of_nothing_panics() {
    drop(race(Vec::<Ready<u8>>::new()));
}

/// Likewise for `race_ok`.
#[test]
#[should_panic(expected = "`race_ok` needs at least one future")]
fn race_ok_of_nothing_panics() {
    drop(hatchery::race_ok(Vec::<Ready<Result<u8, TestError>>>::new()));
}

// ----- race!: futures of different types -----

/// `race!` takes futures of different types (no boxing): the first output wins, the
/// losers are cancelled and awaited (their async cleanup has finished when it returns).
#[hatchery::test]
async fn race_macro_first_wins_losers_awaited() {
    let log = Log::new();
    let dropped = Counter::new();
    let (l1, g1) = (log.clone(), dropped.guard());
    let w = race!(
        async move {
            let _g = g1;
            finally(sleep(HOUR), async move {
                sleep(ms(5)).await;
                l1.push("cleaned up");
            })
            .await;
            "slow"
        },
        async {
            sleep(ms(2)).await;
            "fast"
        },
        loser::<&str>(&log, &dropped),
    );
    assert_eq!(w, "fast");
    assert_eq!(dropped.get(), 2);
    assert_eq!(log.count("cleaned up"), 1);
    assert_eq!(log.count("loser cleaned up"), 1);
}

/// A panic in a `race!` future is resumed after the others stopped; a cancelled caller
/// cancels every future and `race!` never returns.
#[hatchery::test]
async fn race_macro_panic_and_outer_cancellation() {
    let dropped = Counter::new();
    let g = dropped.guard();
    let r = catch_panic(async {
        race!(
            async move {
                let _g = g;
                sleep(HOUR).await;
                1u8
            },
            async {
                sleep(ms(2)).await;
                panic!("boom in race!")
            },
        )
    })
    .await;
    assert_eq!(r.unwrap_err(), "boom in race!");
    assert_eq!(dropped.get(), 1);

    let (g1, g2) = (dropped.guard(), dropped.guard());
    let out = move_on_after(ms(5), async move {
        race!(
            async move {
                let _g = g1;
                sleep(HOUR).await;
            },
            async move {
                let _g = g2;
                sleep(HOUR).await;
            },
        )
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(dropped.get(), 3);
    assert_eq!(race!(ready(7)), 7, "one future");
}

each_kind!(
    g3_a_cancelled_race_ok_never_returns_even_if_all_failed,
    virtual_time
);
/// A cancelled `race_ok` never returns, even when every future has failed by the time
/// the last one is done (one before the deadline, one in its shielded cleanup after
/// it): its errors are its output, not a failure of it (the combinators' docs).
async fn g3_a_cancelled_race_ok_never_returns_even_if_all_failed<K: Combinators>() {
    let out = move_on_after(secs(2), async {
        K::race_ok([
            Box::pin(async {
                sleep(secs(1)).await;
                Err::<u32, _>(TestError("a"))
            }) as BoxFut<Result<u32, TestError>>,
            // Cancelled at 2 s; fails in its cleanup, at 3 s.
            Box::pin(async {
                hatchery::shield(sleep(secs(3))).await;
                Err(TestError("b"))
            }),
        ])
        .await
    })
    .await;
    assert_eq!(
        hatchery::testing::elapsed(),
        secs(3),
        "the cleanup was awaited"
    );
    assert!(out.is_none());
}
