//! A lower bound for an unfair semaphore in hatchery, for the `semaphore` row of the
//! performance chapter ("the single-thread rows, counted"): the benchmark's fan-out (64
//! tasks share 8 permits; each acquires one, yields once holding it, and releases it,
//! 100,000 acquisitions in all) with async-lock's semaphore, which is not fair, in raw
//! tasks and in the children of a hatchery nursery. Children of a nursery using it pay
//! hatchery's child (its spawn, its poll wrapper) around the semaphore's own code, and
//! none of a hatchery semaphore's (the cancellation check before a wait, the withdrawal
//! of a cancelled waiter): a hatchery semaphore that gave up FIFO fairness would cost at
//! least this. The fair sides run beside it: tokio's fair semaphore in raw tasks (the
//! row's reference) and hatchery's in a nursery (the row's hatchery side).
//!
//! On tokio's current-thread runtime and on an `async-executor` run by this one thread
//! (the benchmark's tokio-ct and smol-ct), each side timed inside a task spawned there,
//! the sides alternated:
//!
//! ```sh
//! cargo run --release -p hatchery-benches --bin unfair_sketch
//! # one side on one backend, `reps` runs, for callgrind (an acquisition's count: the
//! # difference of 3 and 1 runs, / 200,000)
//! cargo run --release -p hatchery-benches --bin unfair_sketch -- smol-ct nursery_unfair 3
//! ```

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_executor::Executor;

// The benchmark's own fan-out and yield, the same code as its `semaphore` row runs.
#[path = "../fanout.rs"]
mod fanout;
#[path = "../yield_once.rs"]
mod yield_once;

use fanout::{hatchery_semaphore, smol_semaphore, tokio_semaphore};

/// Acquisitions per run.
const ACQUISITIONS: usize = 100_000;
/// Timed runs per side (after one warm-up each); the median is printed.
const RUNS: usize = 7;

/// The sides, in the order they are printed.
const SIDES: [&str; 4] = ["raw_unfair", "raw_fair", "nursery_unfair", "nursery_fair"];

type Unfair = async_lock::Semaphore;
type Fair = tokio::sync::Semaphore;

/// One of the two one-thread backends.
enum Backend {
    TokioCt(tokio::runtime::Runtime),
    SmolCt(Arc<Executor<'static>>),
}

impl Backend {
    fn new(name: &str) -> Backend {
        match name {
            "tokio-ct" => Backend::TokioCt(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("cannot build a tokio runtime"),
            ),
            "smol-ct" => Backend::SmolCt(Arc::new(Executor::new())),
            other => panic!("unfair_sketch: no backend {other:?} (tokio-ct, smol-ct)"),
        }
    }

    /// One run of `side`, in a task spawned on this backend: ns an acquisition.
    fn run(&self, side: &str) -> f64 {
        let took = match self {
            Backend::TokioCt(rt) => {
                let task = match side {
                    "raw_unfair" => rt.spawn(tokio_semaphore::<Unfair>(ACQUISITIONS)),
                    "raw_fair" => rt.spawn(tokio_semaphore::<Fair>(ACQUISITIONS)),
                    _ => {
                        let runtime =
                            Arc::new(hatchery_tokio::TokioRuntime::new(rt.handle().clone()));
                        rt.spawn(hatchery::rt::enter(runtime, in_nursery_side(side)))
                    }
                };
                rt.block_on(task).expect("the timed task failed")
            }
            Backend::SmolCt(ex) => {
                let task = match side {
                    "raw_unfair" => {
                        let ex2 = ex.clone();
                        ex.spawn(async move { smol_semaphore::<Unfair>(&ex2, ACQUISITIONS).await })
                    }
                    "raw_fair" => {
                        let ex2 = ex.clone();
                        ex.spawn(async move { smol_semaphore::<Fair>(&ex2, ACQUISITIONS).await })
                    }
                    _ => ex.spawn(hatchery_smol::enter(ex, in_nursery_side(side))),
                };
                async_io::block_on(ex.run(task))
            }
        };
        took.as_secs_f64() * 1e9 / ACQUISITIONS as f64
    }
}

/// The nursery's side named `side`, boxed so that both are one type.
fn in_nursery_side(side: &str) -> Pin<Box<dyn Future<Output = Duration> + Send>> {
    match side {
        "nursery_unfair" => Box::pin(hatchery_semaphore::<Unfair>(ACQUISITIONS)),
        "nursery_fair" => Box::pin(hatchery_semaphore::<hatchery::sync::Semaphore>(
            ACQUISITIONS,
        )),
        other => panic!("unfair_sketch: no side {other:?} ({})", SIDES.join(", ")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [backend, side, reps] = args.as_slice() {
        let backend = Backend::new(backend);
        let reps: usize = reps.parse().expect("unfair_sketch: reps is a number");
        for _ in 0..reps {
            black_box(backend.run(side));
        }
        return;
    }
    assert!(args.is_empty(), "usage: unfair_sketch [BACKEND SIDE REPS]");
    for name in ["tokio-ct", "smol-ct"] {
        let backend = Backend::new(name);
        let mut times: [Vec<f64>; 4] = Default::default();
        for side in SIDES {
            backend.run(side);
        }
        for _ in 0..RUNS {
            for (side, times) in SIDES.iter().zip(&mut times) {
                times.push(backend.run(side));
            }
        }
        let [raw_unfair, raw_fair, nursery_unfair, nursery_fair] = times.map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        });
        println!(
            "{name}, {ACQUISITIONS} acquisitions, median of {RUNS} runs, ns an acquisition: \
             raw unfair {raw_unfair:.0}, raw fair {raw_fair:.0} ({:.2}x), nursery unfair \
             {nursery_unfair:.0} ({:.2}x), nursery fair {nursery_fair:.0} ({:.2}x; {:.2}x \
             of raw fair)",
            raw_fair / raw_unfair,
            nursery_unfair / raw_unfair,
            nursery_fair / raw_unfair,
            nursery_fair / raw_fair,
        );
    }
}
