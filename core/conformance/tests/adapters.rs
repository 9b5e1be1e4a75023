//! The kit on the reference adapters, `hatchery-tokio` (both flavors) and `hatchery-smol`,
//! and on the simulator, `hatchery-sim` (which runs no threads): the scenarios hold where
//! hatchery is known to be right.

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
