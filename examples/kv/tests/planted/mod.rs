//! What the tests of a planted bug share: the bug is caught by a seed, the one the book
//! names, and that seed replays it.

use std::fmt::Debug;
use std::future::Future;

use hatchery_sim::Sim;

/// `scenario(true)`, the broken variant (`what`), fails under some seed of the first
/// thousand, and the first that catches it is `first` (what the book's simulation
/// chapter says); that seed replays it, twice: the same failure, the same trace. And
/// `scenario(false)`, the correct one, passes the same seed.
pub(crate) fn caught_at_and_replayed<T, Fut>(what: &str, first: u64, scenario: impl Fn(bool) -> Fut)
where
    T: Debug + PartialEq,
    Fut: Future<Output = Result<T, String>>,
{
    let caught =
        (0..1000).find_map(|seed| Sim::new(seed).run(scenario(true)).err().map(|e| (seed, e)));
    let (seed, failure) = caught.unwrap_or_else(|| panic!("some seed catches {what}"));
    eprintln!("{what} fails under seed {seed}: {failure}");
    assert_eq!(
        seed, first,
        "the simulation chapter (docs/src/simulation.md) says seed {first}: update it"
    );
    let (again, first_trace) = Sim::new(seed).run_traced(scenario(true));
    let (third, second_trace) = Sim::new(seed).run_traced(scenario(true));
    assert_eq!(again, Err(failure.clone()), "replayed");
    assert_eq!(third, Err(failure));
    assert_eq!(first_trace.hash(), second_trace.hash(), "the same run");
    assert!(
        Sim::new(seed).run(scenario(false)).is_ok(),
        "the correct variant passes seed {seed}"
    );
}
