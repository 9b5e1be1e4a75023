//! The kit on the reference adapters, `hatchery-tokio` (both flavors) and `hatchery-smol`:
//! the scenarios hold where hatchery is known to be right.

mod tokio_current_thread {
    hatchery_conformance::tests!(hatchery_tokio::run_current_thread);
}

mod tokio_multi_thread {
    hatchery_conformance::tests!(hatchery_tokio::run);
}

mod smol {
    hatchery_conformance::tests!(hatchery_smol::run);
}
