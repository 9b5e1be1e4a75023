//! The kit on the reference adapters, `hatchery-tokio` (both flavors) and `hatchery-smol`,
//! on `hatchery-compio`, and on the simulator, `hatchery-sim` (which runs no threads): the
//! scenarios hold where hatchery is known to be right. On the local runtimes (tokio's
//! `LocalSet` and `LocalRuntime`, smol's `LocalExecutor`, compio, the simulator) the kit
//! runs a second time with every scenario as the child of a `Local` nursery.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::rc::Rc;

use hatchery::{Local, Nursery};

mod tokio_current_thread {
    hatchery_conformance::tests!(hatchery_tokio::run_current_thread);
}

mod tokio_multi_thread {
    hatchery_conformance::tests!(hatchery_tokio::run);
}

mod smol {
    hatchery_conformance::tests!(hatchery_smol::run);
}

mod sim {
    hatchery_conformance::tests!(hatchery_sim::run, without_threads);
}

/// tokio's current-thread runtime with a `LocalSet` as its local runtime.
mod tokio_local {
    hatchery_conformance::tests!(hatchery_tokio::run_local);
}

/// tokio's `LocalRuntime` (only with `--cfg tokio_unstable`).
#[cfg(tokio_unstable)]
mod tokio_local_runtime {
    hatchery_conformance::tests!(hatchery_tokio::run_local_runtime);
}

/// smol with a `LocalExecutor` as its local runtime.
mod smol_local {
    hatchery_conformance::tests!(hatchery_smol::run_local);
}

/// The simulator, with every scenario run as the child of a `Local` nursery: a local task,
/// drawn by the seed from the simulator's ready list as its other tasks are.
mod sim_local {
    hatchery_conformance::tests!(crate::sim_as_local_child, without_threads);
}

/// Runs `fut` on the simulator (seed from the environment, as `hatchery_sim::run`) as
/// the one child of a `Local` nursery; a panic of `fut` is the nursery's, resumed.
fn sim_as_local_child<F: Future + 'static>(fut: F) -> F::Output {
    hatchery_sim::run(as_local_child(fut))
}

/// tokio's `LocalSet` (and `LocalRuntime`), smol's `LocalExecutor` and compio, each scenario run as the child
/// of a `Local` nursery: a task of the local executor.
mod tokio_local_child {
    fn run<F: std::future::Future + 'static>(fut: F) -> F::Output {
        hatchery_tokio::run_local(crate::as_local_child(fut))
    }
    hatchery_conformance::tests!(run);
}

#[cfg(tokio_unstable)]
mod tokio_local_runtime_child {
    fn run<F: std::future::Future + 'static>(fut: F) -> F::Output {
        hatchery_tokio::run_local_runtime(crate::as_local_child(fut))
    }
    hatchery_conformance::tests!(run);
}

mod smol_local_child {
    fn run<F: std::future::Future + 'static>(fut: F) -> F::Output {
        hatchery_smol::run_local(crate::as_local_child(fut))
    }
    hatchery_conformance::tests!(run);
}

mod compio_local_child {
    fn run<F: std::future::Future + 'static>(fut: F) -> F::Output {
        hatchery_compio::run_local(crate::as_local_child(fut))
    }
    hatchery_conformance::tests!(run);
}

/// `fut`, run as the one child of a `Local` nursery.
async fn as_local_child<F: Future + 'static>(fut: F) -> F::Output {
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    Local::nursery(|n: Nursery<Infallible, Local>| async move {
        n.spawn(async move {
            let value = fut.await;
            *o.borrow_mut() = Some(value);
            Ok(())
        });
        Ok(())
    })
    .await
    .unwrap();
    let value = out.borrow_mut().take();
    value.expect("the local child ran to its end")
}

/// compio's thread-per-core runtime, both faces on one thread: its default driver
/// (io_uring on Linux where the kernel offers it, else polling).
mod compio {
    hatchery_conformance::tests!(hatchery_compio::run_local);
}

/// compio with its polling driver (epoll on Linux) forced, where io_uring would be
/// chosen.
mod compio_polling {
    fn run<F: std::future::Future>(fut: F) -> F::Output {
        let mut proactor = compio_driver::ProactorBuilder::new();
        proactor.driver_type(compio_driver::DriverType::Poll);
        let mut builder = compio_runtime::RuntimeBuilder::new();
        let compio = builder.with_proactor(proactor).build().unwrap();
        assert!(compio.driver_type().is_polling());
        hatchery_compio::run_local_on(&compio, fut)
    }

    hatchery_conformance::tests!(run);
}

/// Every scenario the simulator can run, under several seeds (other interleavings of the
/// same program), each twice: the same seed gives the same trace.
#[test]
fn sim_every_scenario_under_many_seeds_replays() {
    use hatchery_conformance::{prepare, SCENARIOS};
    for scenario in SCENARIOS.iter().filter(|s| !s.needs_threads) {
        for seed in 0..8 {
            let sim = hatchery_sim::Sim::new(seed);
            let (_, first) = sim.run_traced(prepare(scenario));
            let (_, again) = sim.run_traced(prepare(scenario));
            assert_eq!(
                first.hash(),
                again.hash(),
                "{} with seed {seed}",
                scenario.name
            );
        }
    }
}

/// As `sim_every_scenario_under_many_seeds_replays`, each scenario run as a local child:
/// local tasks replay as the others do.
#[test]
fn sim_every_scenario_as_a_local_child_under_many_seeds_replays() {
    use hatchery_conformance::{prepare, SCENARIOS};
    for scenario in SCENARIOS.iter().filter(|s| !s.needs_threads) {
        for seed in 0..8 {
            let sim = hatchery_sim::Sim::new(seed);
            let (_, first) = sim.run_traced(as_local_child(prepare(scenario)));
            let (_, again) = sim.run_traced(as_local_child(prepare(scenario)));
            assert_eq!(
                first.hash(),
                again.hash(),
                "{} with seed {seed}",
                scenario.name
            );
            // The scenario ran in a local task, and the tasks it spawned beside it.
            assert!(first.spawns() >= 1, "{}", scenario.name);
        }
    }
}
