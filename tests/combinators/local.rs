//! The combinators of the local kind (`Local::join`, `try_join`, `settle`, `race`,
//! `race_ok`, `map`): futures that are not `Send`, each a task of the thread's local
//! executor, under the rules of every combinator (G1-G4), on tokio's `LocalSet`, smol's
//! `LocalExecutor` and the simulator.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use hatchery::{finally, move_on_after, sleep, Local, NurseryError};
use hatchery_tests::{ms, panic_message, HOUR};

type LocalFut<T> = Pin<Box<dyn Future<Output = T>>>;

/// A future that waits an hour and, when cancelled, runs a 5 ms cleanup, then counts
/// itself in `cleaned` (an `Rc`: not `Send`).
fn loser<T: 'static>(cleaned: &Rc<Cell<u32>>) -> LocalFut<T> {
    let cleaned = cleaned.clone();
    Box::pin(async move {
        finally(sleep(HOUR), async move {
            sleep(ms(5)).await;
            cleaned.set(cleaned.get() + 1);
        })
        .await;
        unreachable!("a loser is never left to finish")
    })
}

#[hatchery::test(virtual_time, backends(tokio_local, smol_local, sim))]
/// G1: each future is a task of the local executor (on the caller's thread, run while
/// the caller waits), the outputs come back in input order.
async fn g1_local_join_runs_tasks_in_input_order() {
    let here = std::thread::current().id();
    let order = Rc::new(RefCell::new(Vec::new()));
    let futs = (1..=3u64).map(|i| {
        let order = order.clone();
        async move {
            assert_eq!(std::thread::current().id(), here);
            sleep(ms(10 - i)).await;
            order.borrow_mut().push(i);
            i * 10
        }
    });
    assert_eq!(Local::join(futs).await, [10, 20, 30]);
    assert_eq!(*order.borrow(), [3, 2, 1]); // they ran concurrently
    assert_eq!(hatchery::testing::elapsed(), ms(9));
}

#[hatchery::test(virtual_time, backends(tokio_local, smol_local, sim))]
/// G2, G4: the first error cancels the others and waits for their cleanup; every error
/// comes out; `settle` cancels nothing.
async fn g2_g4_local_try_join_fails_fast_and_settle_does_not() {
    let cleaned = Rc::new(Cell::new(0));
    let futs: Vec<LocalFut<Result<(), &str>>> = vec![
        loser(&cleaned),
        loser(&cleaned),
        Box::pin(async {
            sleep(ms(2)).await;
            Err("no")
        }),
    ];
    let out = Local::try_join(futs).await;
    assert_eq!(out, Err(NurseryError::Failed(vec!["no"])));
    assert_eq!(cleaned.get(), 2, "both cancelled and awaited");
    assert_eq!(hatchery::testing::elapsed(), ms(7));

    let finished = Rc::new(Cell::new(false));
    let f = finished.clone();
    let futs: Vec<LocalFut<Result<u32, &str>>> = vec![
        Box::pin(async { Err("no") }),
        Box::pin(async move {
            sleep(ms(3)).await;
            f.set(true);
            Ok(1)
        }),
    ];
    assert_eq!(Local::settle(futs).await, [Err("no"), Ok(1)]);
    assert!(finished.get());
}

#[hatchery::test(virtual_time, backends(tokio_local, smol_local, sim))]
/// G2: the first to finish wins, the losers are cancelled and awaited before the race
/// returns; `race_ok` skips errors.
async fn g2_local_race_cancels_and_awaits_the_losers() {
    let cleaned = Rc::new(Cell::new(0));
    let mut futs: Vec<LocalFut<u32>> = vec![loser(&cleaned), loser(&cleaned)];
    futs.push(Box::pin(async {
        sleep(ms(2)).await;
        42
    }));
    assert_eq!(Local::race(futs).await, 42);
    assert_eq!(cleaned.get(), 2);

    let futs: Vec<LocalFut<Result<u32, &str>>> = vec![
        Box::pin(async { Err("down") }),
        Box::pin(async {
            sleep(ms(1)).await;
            Ok(7)
        }),
        loser(&cleaned),
    ];
    assert_eq!(Local::race_ok(futs).await, Ok(7));
    assert_eq!(cleaned.get(), 3);
}

#[hatchery::test(virtual_time, backends(tokio_local, smol_local, sim))]
/// G1 for `map`: at most `limit` at once, results in input order; `try_join` reads no
/// input after a failure.
async fn g1_local_map_bounds_and_stops_reading() {
    let (running, peak) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let out = Local::map(2, 1..=6u32, |i| {
        let (running, peak) = (running.clone(), peak.clone());
        async move {
            running.set(running.get() + 1);
            peak.set(peak.get().max(running.get()));
            sleep(ms(1)).await;
            running.set(running.get() - 1);
            i * 10
        }
    })
    .join()
    .await;
    assert_eq!(out, [10, 20, 30, 40, 50, 60]);
    assert_eq!(peak.get(), 2);

    let read = Rc::new(Cell::new(0));
    let r = read.clone();
    let inputs = (1..=100u32).inspect(move |_| r.set(r.get() + 1));
    let out = Local::map(1, inputs, |i| async move {
        sleep(ms(1)).await;
        if i == 3 {
            Err(i)
        } else {
            Ok(i)
        }
    })
    .try_join()
    .await;
    assert_eq!(out, Err(NurseryError::Failed(vec![3])));
    assert!(read.get() <= 4, "read {} inputs", read.get());
}

#[hatchery::test(virtual_time, backends(tokio_local, smol_local, sim))]
/// G3: an enclosing cancellation cancels every future and waits for them; the
/// combinator never completes, the scope returns.
async fn g3_an_enclosing_cancellation_stops_local_combinators() {
    let cleaned = Rc::new(Cell::new(0));
    let futs: Vec<LocalFut<()>> = (0..3).map(|_| loser(&cleaned)).collect();
    assert_eq!(move_on_after(ms(4), Local::join(futs)).await, None);
    assert_eq!(cleaned.get(), 3);
    assert_eq!(hatchery::testing::elapsed(), ms(9)); // 4 ms, then the 5 ms cleanups

    let futs: Vec<LocalFut<()>> = (0..2).map(|_| loser(&cleaned)).collect();
    assert_eq!(move_on_after(ms(1), Local::race(futs)).await, None);
    assert_eq!(cleaned.get(), 5);
}

#[test]
/// Without a local runtime on the thread, a local combinator is a clear panic.
fn a_local_combinator_without_a_local_runtime_says_what_to_do() {
    let caught = std::panic::catch_unwind(|| {
        hatchery_smol::run(Local::join((1..=2).map(|i| async move { i })));
    });
    let message = panic_message(&*caught.unwrap_err());
    assert!(
        message.contains("no local runtime on this thread"),
        "{message}"
    );
}
