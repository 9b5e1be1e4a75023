//! Many seeds: the loop over seeds ([`Seeds`], [`check_seeds`]), the line that replays a
//! failing one, and the determinism check (a seed run twice must give the same trace).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::future::Future;
use std::panic::resume_unwind;
use std::time::Duration;

use crate::trace::Trace;
use crate::{
    env_seed, env_time_limit, env_u64, Sim, CHECK_VAR, SEEDS_VAR, SEED_VAR, TIME_LIMIT_VAR,
};

/// How many passing seeds `HATCHERY_SIM_CHECK=1` checks.
const DEFAULT_CHECKS: u64 = 8;

/// What a test run under many seeds returns: `()`, or a `Result` whose `Err` fails the
/// test (as `#[test]` functions return).
///
/// # Examples
///
/// ```
/// use hatchery_sim::Outcome;
///
/// assert!(!().is_failure());
/// assert!(Err::<(), _>("boom").is_failure());
/// ```
pub trait Outcome {
    /// Whether this outcome fails the test.
    fn is_failure(&self) -> bool;
}

impl Outcome for () {
    fn is_failure(&self) -> bool {
        false
    }
}

impl<T, E> Outcome for Result<T, E> {
    fn is_failure(&self) -> bool {
        self.is_err()
    }
}

/// A run of a scenario under many seeds, each on a fresh simulator, stopping at the first
/// that fails: [`check_seeds`] with settings. It prints the failing seed and the command
/// that replays it, and can check that seeds replay (the determinism check).
///
/// Three environment variables steer it: [`SEED_VAR`] runs one seed alone (the replay),
/// [`SEEDS_VAR`] tries another number of seeds, [`CHECK_VAR`] turns the determinism check
/// on, and [`TIME_LIMIT_VAR`] sets the limit of simulated time of each run.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery_sim::Seeds;
///
/// Seeds::new(50)
///     .time_limit(Duration::from_secs(60))
///     .check_determinism(4) // seeds 0, 12, 25 and 37 run twice: the same traces
///     .run(|| async {
///         hatchery::sleep(Duration::from_secs(1)).await;
///     });
/// ```
#[derive(Debug, Clone)]
pub struct Seeds {
    count: u64,
    time_limit: Option<Duration>,
    checks: Option<u64>,
    replay: Option<Replay>,
}

/// Runs the scenario that `make` builds once for each seed from 0 to `seeds - 1`, each
/// on a fresh simulator, and stops at the first that fails (panics, or returns an
/// `Err`): it prints that seed and the command that replays it, then fails as the run
/// did (the panic goes on, the `Err` is returned). It returns the last run's outcome.
///
/// `Seeds::new(seeds).run(make)`: see [`Seeds`] for the settings, and the environment
/// variables that change them ([`SEED_VAR`] set, it runs that seed alone, the replay;
/// [`SEEDS_VAR`] set, it tries that many seeds instead of `seeds`; [`CHECK_VAR`] set, it
/// checks that seeds replay). `#[hatchery::test(sim(seeds = N))]` calls this, with what
/// the command that replays a seed needs (the package, test target, features and test).
///
/// # Panics
///
/// As the failing run did. If an environment variable above is set but is not a
/// number. If the determinism check finds a seed whose two runs differ.
///
/// # Examples
///
/// A race that only some schedules lose: two tasks read a counter, yield, and write it
/// back plus one.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
///
/// async fn two_increments() -> u32 {
///     let counter = Arc::new(AtomicU32::new(0));
///     hatchery::nursery(|n| {
///         let counter = counter.clone();
///         async move {
///             for _ in 0..2 {
///                 let c = counter.clone();
///                 n.spawn(async move {
///                     let read = c.load(Ordering::SeqCst);
///                     hatchery::checkpoint().await; // another task may run here
///                     c.store(read + 1, Ordering::SeqCst);
///                     Ok::<_, std::io::Error>(())
///                 });
///             }
///             Ok(())
///         }
///     })
///     .await
///     .unwrap();
///     counter.load(Ordering::SeqCst)
/// }
///
/// // Some seeds lose an increment; `check_seeds` stops at the first and names it.
/// let lost = std::panic::catch_unwind(|| {
///     hatchery_sim::check_seeds(50, || async { assert_eq!(two_increments().await, 2) })
/// });
/// # if std::env::var_os("HATCHERY_SIM_SEED").is_none() {
/// assert!(lost.is_err());
/// # }
/// ```
pub fn check_seeds<Fut, M>(seeds: u64, make: M) -> Fut::Output
where
    M: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Outcome,
{
    Seeds::new(seeds).run(make)
}

impl Seeds {
    /// The seeds from 0 to `count - 1` (at least one).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = hatchery_sim::Seeds::new(3).run(|| async { Ok::<_, String>(7 * 6) });
    /// assert_eq!(out, Ok(42)); // the last seed's
    /// ```
    pub fn new(count: u64) -> Seeds {
        Seeds {
            count: count.max(1),
            time_limit: None,
            checks: None,
            replay: None,
        }
    }

    /// The most simulated time each run may take ([`Sim::time_limit`]), unless
    /// [`TIME_LIMIT_VAR`] says otherwise.
    ///
    /// # Examples
    ///
    /// See [`Seeds`].
    pub fn time_limit(mut self, limit: Duration) -> Seeds {
        self.time_limit = Some(limit);
        self
    }

    /// Checks that seeds replay, whatever [`CHECK_VAR`] says: `passing` seeds that pass
    /// (spread over those tried) run again, and the seed that fails, if one does, twice
    /// again, with their whole trace kept (every event with its simulated time and the
    /// bytes it carried, [`Trace::steps`]). Each replay must be the run it replays: the
    /// same events and the same outcome (of a failing run whose events were not kept,
    /// the same [hash](Trace::hash)). If they differ, the run panics with the first event
    /// that differs: something outside the seed decides the run (the real clock, a
    /// thread, a `HashMap`'s order, another random generator, state kept from an earlier
    /// run), and a failing seed's replay could not be trusted.
    ///
    /// # Examples
    ///
    /// See [`Seeds`].
    pub fn check_determinism(mut self, passing: u64) -> Seeds {
        self.checks = Some(passing);
        self
    }

    /// What the command that replays a seed says: the package, test target, features
    /// and test (what `#[hatchery::test]` knows where it expands).
    #[doc(hidden)]
    pub fn replay(mut self, replay: Replay) -> Seeds {
        self.replay = Some(replay);
        self
    }

    /// Runs the scenario that `make` builds once for each seed, as [`check_seeds`] says.
    ///
    /// # Panics
    ///
    /// As [`check_seeds`].
    ///
    /// # Examples
    ///
    /// See [`Seeds`].
    pub fn run<Fut, M>(self, mut make: M) -> Fut::Output
    where
        M: FnMut() -> Fut,
        Fut: Future,
        Fut::Output: Outcome,
    {
        let (first, count) = match env_seed() {
            Some(seed) => {
                eprintln!("hatchery-sim: replaying seed {seed} ({SEED_VAR})");
                (seed, 1)
            }
            None => (0, env_u64(SEEDS_VAR).unwrap_or(self.count).max(1)),
        };
        let time_limit = env_time_limit().or(self.time_limit);
        let checks = self.checks.or_else(env_checks);
        let sampled: BTreeSet<u64> = match checks {
            Some(n) if n > 0 => (0..n.min(count))
                .map(|i| first + i * count / n.min(count))
                .collect(),
            _ => BTreeSet::new(),
        };
        let sim = |seed: u64, record: bool| {
            let sim = Sim::new(seed).record_events(record);
            match time_limit {
                Some(limit) => sim.time_limit(limit),
                None => sim,
            }
        };
        let mut last = None;
        for seed in (first..).take(usize::try_from(count).unwrap_or(usize::MAX)) {
            let record = sampled.contains(&seed);
            let (out, trace) = sim(seed, record).run_caught(make());
            let failed = match &out {
                Ok(out) => out.is_failure(),
                Err(_) => true,
            };
            if failed {
                eprintln!("{}", report(seed, count, self.replay.as_ref()));
                if checks.is_some() {
                    // The failing seed twice more: each replay must be the failing run,
                    // the same trace (its hash, or every event if it was kept) and the
                    // same outcome.
                    let runs = [(); 2].map(|()| sim(seed, true).run_caught(make()));
                    let [(a, ta), (b, tb)] = runs;
                    let failed = outcome_of(&out);
                    let outcomes = (outcome_of(&a), outcome_of(&b));
                    drop((a, b));
                    let diff = match record {
                        true => compare(seed, &trace, &ta, (failed, outcomes.0.clone())),
                        false => compare_hashes(seed, &trace, &ta, (failed, outcomes.0.clone())),
                    };
                    match diff.or_else(|| compare(seed, &ta, &tb, outcomes)) {
                        Some(diff) => panic!("{diff}"),
                        None => eprintln!(
                            "hatchery-sim: determinism check: seed {seed} failed the same way \
                             twice more, with the same trace ({} events)",
                            ta.steps().len()
                        ),
                    }
                }
                match out {
                    Ok(out) => return out,
                    Err(panic) => resume_unwind(panic),
                }
            }
            if record {
                let (again, second) = sim(seed, true).run_caught(make());
                let outcomes = (outcome_of(&out), outcome_of(&again));
                if let Some(diff) = compare(seed, &trace, &second, outcomes) {
                    panic!("{diff}");
                }
            }
            last = out.ok();
        }
        if !sampled.is_empty() {
            eprintln!(
                "hatchery-sim: determinism check: {} passing seeds ran twice, each with the \
                 same trace both times",
                sampled.len()
            );
        }
        last.expect("at least one seed runs")
    }
}

/// The number of passing seeds [`CHECK_VAR`] asks to check, if set.
fn env_checks() -> Option<u64> {
    let value = std::env::var(CHECK_VAR).ok()?;
    match value.trim() {
        "" | "0" | "off" | "false" | "no" => None,
        "1" | "on" | "true" | "yes" => Some(DEFAULT_CHECKS),
        n => match n.parse() {
            Ok(n) => Some(n),
            Err(_) => panic!(
                "hatchery-sim: {CHECK_VAR}={value:?} is not `1`, `0` or a number of seeds to check"
            ),
        },
    }
}

/// How a run ended, to compare two: passed, failed, or the panic's message.
fn outcome_of<T: Outcome>(out: &std::thread::Result<T>) -> String {
    match out {
        Ok(out) if out.is_failure() => "failed (an `Err`)".into(),
        Ok(_) => "passed".into(),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(not a string)");
            format!("panicked: {message}")
        }
    }
}

/// The report of two runs of `seed` that differ, or `None` if they are the same.
fn compare(seed: u64, a: &Trace, b: &Trace, outcomes: (String, String)) -> Option<String> {
    let difference = a.first_difference(b);
    if difference.is_none() && outcomes.0 == outcomes.1 {
        return None;
    }
    let mut report = format!("hatchery-sim: seed {seed} does not replay: two runs of it differ");
    match difference {
        Some((i, first, second)) => {
            let _ = write!(
                report,
                " at event {} (of {} and {}):",
                i + 1,
                a.steps().len(),
                b.steps().len()
            );
            for step in &a.steps()[i.saturating_sub(3)..i] {
                let _ = write!(report, "\n    both:   {step}");
            }
            let show =
                |s: Option<&crate::Step>| s.map_or("(the run had ended)".into(), |s| s.to_string());
            let _ = write!(
                report,
                "\n    first:  {}\n    second: {}",
                show(first),
                show(second)
            );
        }
        None => report.push_str(", in their outcomes only:"),
    }
    let _ = write!(
        report,
        "\n    outcomes: {} / {}\n{OUTSIDE}",
        outcomes.0, outcomes.1
    );
    Some(report)
}

/// The report of a failing run of `seed`, `failed`, whose events were not kept, and its
/// replay, `replay`, if they differ (their hashes, or their outcomes): `None` if not.
fn compare_hashes(
    seed: u64,
    failed: &Trace,
    replay: &Trace,
    outcomes: (String, String),
) -> Option<String> {
    if failed.hash() == replay.hash() && outcomes.0 == outcomes.1 {
        return None;
    }
    Some(format!(
        "hatchery-sim: seed {seed} does not replay: its failing run and its replay differ \
         (trace hashes {:016x} and {:016x}, of {} and {} polls, {} and {} messages)\n    \
         outcomes: {} / {}\n{OUTSIDE}",
        failed.hash(),
        replay.hash(),
        failed.polls(),
        replay.polls(),
        failed.messages(),
        replay.messages(),
        outcomes.0,
        outcomes.1
    ))
}

/// What a difference between two runs of one seed means, and what to do.
const OUTSIDE: &str = "Something outside the seed decides the run: the real clock \
     (`std::time::Instant`), a thread, a `HashMap`'s or `HashSet`'s iteration order (its \
     keys are random in each map, in one process too), another random generator than the \
     thread's `fastrand`, state that outlives a run (a `static`, a cache). Its replay line \
     could not be trusted. The book's chapter *Simulation testing* lists what the simulator \
     catches, and a `clippy.toml` that refuses the usual culprits";

/// Where a test lives, for the command that replays one of its seeds: what
/// `#[hatchery::test(sim)]` knows where it expands.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Replay {
    /// The package (`CARGO_PKG_NAME`).
    pub package: &'static str,
    /// The test target.
    pub target: Target,
    /// The features of the package's manifest, each with whether the build has it.
    pub features: &'static [(&'static str, bool)],
    /// The build has no debug assertions: a release build.
    pub release: bool,
    /// The test's path, as `module_path!()` gives it (the crate's name first).
    pub module: &'static str,
    /// The test's name in its module (the backend's).
    pub name: &'static str,
    /// The test is `#[ignore]`d.
    pub ignored: bool,
}

/// The kind of test target a test is in.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// The library's unit tests (`--lib`).
    Lib,
    /// An integration test (`--test name`).
    Test(&'static str),
    /// A binary's unit tests (`--bin name`).
    Bin(&'static str),
}

impl Replay {
    /// The arguments of `cargo test` that replay this test.
    fn args(&self) -> String {
        let mut args = format!("-p {}", self.package);
        if self.release {
            args.push_str(" --release");
        }
        let default = self.features.iter().find(|(f, _)| *f == "default");
        if default.is_some_and(|(_, on)| !on) {
            args.push_str(" --no-default-features");
        }
        let on: Vec<&str> = self
            .features
            .iter()
            .filter(|(f, on)| *on && *f != "default")
            .map(|(f, _)| *f)
            .collect();
        if !on.is_empty() {
            let _ = write!(args, " --features {}", on.join(","));
        }
        match self.target {
            Target::Lib => args.push_str(" --lib"),
            Target::Test(name) => {
                let _ = write!(args, " --test {name}");
            }
            Target::Bin(name) => {
                let _ = write!(args, " --bin {name}");
            }
        }
        let path = self.module.split_once("::").map_or("", |(_, path)| path);
        let test = match path {
            "" => self.name.to_owned(),
            path => format!("{path}::{}", self.name),
        };
        let _ = write!(args, " -- {test} --exact");
        if self.ignored {
            args.push_str(" --include-ignored");
        }
        args
    }
}

/// The seed that failed, and the command that replays it.
fn report(seed: u64, count: u64, replay: Option<&Replay>) -> String {
    let mut line = format!("{SEED_VAR}={seed}");
    if let Ok(limit) = std::env::var(TIME_LIMIT_VAR) {
        let _ = write!(line, " {TIME_LIMIT_VAR}={}", limit.trim());
    }
    line.push_str(" cargo test ");
    match replay {
        Some(replay) => line.push_str(&replay.args()),
        None => {
            // Outside the attribute: what the environment tells. libtest names a test's
            // thread after the test (except with one test thread).
            let thread = std::thread::current();
            let test = thread.name().filter(|n| *n != "main");
            if let Ok(package) = std::env::var("CARGO_PKG_NAME") {
                let _ = write!(line, "-p {package}");
            }
            if let Some(test) = test {
                let _ = write!(line, " -- {test} --exact");
            }
        }
    }
    let of = match count {
        1 => String::new(),
        n => format!(" (of seeds 0..{n})"),
    };
    format!(
        "hatchery-sim: seed {seed} failed{of}; replay it with:\n    {}",
        line.trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_package_profile_features_target_and_test() {
        let replay = Replay {
            package: "kv",
            target: Target::Test("crash"),
            features: &[("default", false), ("unsynced-ack", true), ("other", false)],
            release: true,
            module: "crash::the_unsynced_ack",
            name: "sim",
            ignored: true,
        };
        assert_eq!(
            replay.args(),
            "-p kv --release --no-default-features --features unsynced-ack --test crash \
             -- the_unsynced_ack::sim --exact --include-ignored"
        );
        let lib = Replay {
            package: "my-lib",
            target: Target::Lib,
            features: &[("default", true)],
            release: false,
            module: "my_lib::tests::racy",
            name: "sim",
            ignored: false,
        };
        assert_eq!(lib.args(), "-p my-lib --lib -- tests::racy::sim --exact");
    }
}
