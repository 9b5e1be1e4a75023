//! The harness of the seeded random tests: one generator ([`Rng`]), one set of
//! environment variables that chooses the seeds ([`Seeds::from_env`]), one place that runs
//! a case per seed and reports the seeds that failed with the line that replays the first
//! ([`check`], and [`check_async`] inside a `#[hatchery::test]`), and one way to keep the
//! panics a test plants on purpose out of its output ([`planted_panic`]).
//!
//! A seeded test draws everything it does from an [`Rng`] made from its seed, so a seed
//! replays its case: exactly on virtual time or when the case is polled by hand, and
//! often (not always) when real threads race in it.
//!
//! The variables, the same for every seeded test:
//!
//! * `HATCHERY_TEST_SEED=<seed>`: alone, run that seed only (the replay); with
//!   `HATCHERY_TEST_CASES`, the first seed;
//! * `HATCHERY_TEST_CASES=<count>`: run that many seeds (from 0, or from
//!   `HATCHERY_TEST_SEED`) instead of the test's own count;
//! * `HATCHERY_TEST_STATS=1`: print what the tests count about their cases (their mix,
//!   the cases they skip).
//!
//! A failure ends the test with the first failing seed's panic, the other seeds that
//! failed (each with the first line of its panic), and the command that replays it:
//!
//! ```text
//! seed 17 failed: Smol seed 17: errors out vs. errors returned ...
//!
//! 1 of 1000 seeds (0..1000) failed: 17
//! Replay the first with:
//!     HATCHERY_TEST_SEED=17 cargo test -p hatchery-tests --test model -- random_trees::e3_random_trees_smol --exact
//! ```

use std::any::Any;
use std::cell::Cell;
use std::fmt::Write as _;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;
use std::time::Instant;

use futures_lite::FutureExt;

use crate::panic_message;

/// The seed to replay, or the first seed of a run.
pub const SEED_VAR: &str = "HATCHERY_TEST_SEED";
/// How many seeds to run.
pub const CASES_VAR: &str = "HATCHERY_TEST_CASES";
/// Set (and not `0`): tests print what they count about their cases.
pub const STATS_VAR: &str = "HATCHERY_TEST_STATS";

/// After this many failing seeds a run stops: the first is the one reported, and the
/// others only say how common the failure is.
pub const MAX_FAILURES: usize = 10;

/// A small seeded generator (xorshift64*): a seed replays its case exactly.
///
/// [`Rng::seeded`] takes any seed and spreads it over the state (consecutive seeds give
/// unrelated streams).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for any seed, zero included.
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (which must not be zero).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A number below `n` (which must not be zero).
    pub fn below_u64(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below_u64(100) < percent
    }
}

/// The seeds a test runs: `count` of them from `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeds {
    /// The first seed.
    pub first: u64,
    /// How many.
    pub count: u64,
    /// Whether this is the replay of one seed ([`SEED_VAR`] alone).
    pub replay: bool,
}

impl Seeds {
    /// The seeds the environment asks for ([`SEED_VAR`], [`CASES_VAR`]); by default
    /// `default_cases` seeds from 0.
    ///
    /// # Panics
    ///
    /// If one of the variables is set but is not a number.
    pub fn from_env(default_cases: u64) -> Seeds {
        Seeds::from(env_u64(SEED_VAR), env_u64(CASES_VAR), default_cases)
    }

    /// The seeds for `seed` and `cases` as the variables give them.
    pub fn from(seed: Option<u64>, cases: Option<u64>, default_cases: u64) -> Seeds {
        match (seed, cases) {
            (Some(first), None) => Seeds {
                first,
                count: 1,
                replay: true,
            },
            (first, count) => Seeds {
                first: first.unwrap_or(0),
                count: count.unwrap_or(default_cases),
                replay: false,
            },
        }
    }

    /// The seeds, in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + use<> {
        let first = self.first;
        (0..self.count).map(move |i| first.wrapping_add(i))
    }
}

/// Whether [`STATS_VAR`] asks the tests to print what they count about their cases.
pub fn stats() -> bool {
    std::env::var_os(STATS_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

fn env_u64(var: &str) -> Option<u64> {
    let value = std::env::var(var).ok()?;
    match value.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{var}={value:?} is not a number (a u64, in decimal)"),
    }
}

/// Runs `case` once for each seed the environment asks for (by default `default_cases`
/// seeds from 0, see [`Seeds::from_env`]). A case fails by panicking; the run goes on to
/// the next seed (up to [`MAX_FAILURES`] failures) and then fails with the first failing
/// seed's panic message, the other seeds that failed, and the command that replays it.
/// The panics of the later failing seeds are not printed where they happen, on the
/// thread that runs the cases (the first's is).
///
/// # Panics
///
/// If a case panicked; if a variable is not a number.
pub fn check(default_cases: u64, mut case: impl FnMut(u64)) {
    let mut run = Run::new(default_cases);
    for seed in run.seeds.iter() {
        run.current = Some(seed);
        let quiet = !run.failed.is_empty();
        let out = catch_unwind(AssertUnwindSafe(|| quietly(quiet, || case(seed))));
        if run.record(seed, out) {
            break;
        }
    }
    run.finish();
}

/// [`check`] for cases that are futures, awaited one after another in the calling task
/// (a `#[hatchery::test]` body, say). Dropped while a case runs (by a timeout around it),
/// it prints that case's seed and the line that replays it.
///
/// # Panics
///
/// As [`check`].
pub async fn check_async<F, Fut>(default_cases: u64, mut case: F)
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut run = Run::new(default_cases);
    for seed in run.seeds.iter() {
        run.current = Some(seed);
        let quiet = !run.failed.is_empty();
        let mut fut = std::pin::pin!(AssertUnwindSafe(case(seed)).catch_unwind());
        let out = std::future::poll_fn(|cx| quietly(quiet, || fut.as_mut().poll(cx))).await;
        if run.record(seed, out) {
            break;
        }
    }
    run.finish();
}

/// The seeds of one [`check`] and what became of them.
struct Run {
    seeds: Seeds,
    /// The test's name, for the replay line: libtest names a test's thread after the
    /// test (but with one test thread, where it runs tests on `main`).
    test: Option<String>,
    started: Instant,
    ran: u64,
    /// The seed of the case that runs.
    current: Option<u64>,
    /// The failing seeds, with their panics' messages.
    failed: Vec<(u64, String)>,
}

impl Run {
    fn new(default_cases: u64) -> Run {
        install_hook();
        let seeds = Seeds::from_env(default_cases);
        if seeds.replay {
            eprintln!(
                "hatchery-tests: replaying seed {} ({SEED_VAR})",
                seeds.first
            );
        }
        Run {
            seeds,
            test: test_name(),
            started: Instant::now(),
            ran: 0,
            current: None,
            failed: Vec::new(),
        }
    }

    /// Records the outcome of `seed`; true if the run should stop.
    fn record(&mut self, seed: u64, out: Result<(), Box<dyn Any + Send>>) -> bool {
        self.ran += 1;
        self.current = None;
        if let Err(panic) = out {
            self.failed.push((seed, panic_message(&*panic)));
        }
        self.failed.len() >= MAX_FAILURES
    }

    fn finish(&self) {
        let Some((seed, message)) = self.failed.first() else {
            eprintln!(
                "hatchery-tests: {} seeds from {} passed in {:.1?}",
                self.ran,
                self.seeds.first,
                self.started.elapsed()
            );
            return;
        };
        let seed = *seed;
        let mut report = format!("seed {seed} failed: {message}\n\n");
        let seeds = self.seeds;
        if seeds.replay {
            report += "Replayed with:\n";
        } else {
            let last = seeds.first.wrapping_add(seeds.count);
            let list: Vec<String> = self.failed.iter().map(|(s, _)| s.to_string()).collect();
            let _ = write!(
                report,
                "{} of {} seeds ({}..{last}) failed: {}",
                self.failed.len(),
                self.ran,
                seeds.first,
                list.join(", ")
            );
            if self.ran < seeds.count {
                let _ = write!(report, " (stopped after {MAX_FAILURES} failures)");
            }
            // The others in a line each: the same failure, or another?
            for (seed, message) in &self.failed[1..] {
                let line = message.lines().next().unwrap_or_default();
                let short: String = line.chars().take(120).collect();
                let more = if short.len() < message.len() {
                    "..."
                } else {
                    ""
                };
                let _ = write!(report, "\n  seed {seed}: {short}{more}");
            }
            report += "\nReplay the first with:\n";
        }
        let _ = write!(report, "    {}", replay_line(seed, self.test.as_deref()));
        panic!("{report}");
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Dropped with a case unfinished: a timeout around `check_async` (not a panic of
        // the case, which `record` has seen).
        if let Some(seed) = self.current {
            eprintln!(
                "hatchery-tests: the run was dropped while seed {seed} ran; replay it with:\n    {}",
                replay_line(seed, self.test.as_deref())
            );
        }
    }
}

/// The command that runs `seed` alone in `test` (its full name, as libtest prints it).
pub fn replay_line(seed: u64, test: Option<&str>) -> String {
    let mut line = format!("{SEED_VAR}={seed} cargo test -p {}", env!("CARGO_PKG_NAME"));
    if let Some(binary) = test_binary() {
        let _ = write!(line, " --test {binary}");
    }
    let _ = write!(line, " -- {} --exact", test.unwrap_or("<test name>"));
    line
}

/// The name of the running test binary (`model` for target/debug/deps/model-0123abcd).
fn test_binary() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let stem = exe.file_stem()?.to_str()?;
    let name = match stem.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name,
        _ => stem,
    };
    Some(name.to_string())
}

/// The running test's name, if this thread is named after it.
fn test_name() -> Option<String> {
    let thread = std::thread::current();
    thread
        .name()
        .filter(|n| *n != "main" && !n.starts_with("tokio-") && !n.starts_with("smol"))
        .map(str::to_string)
}

thread_local! {
    /// Set by [`planted_panic`] for the panic hook, which clears it.
    static PLANTED: Cell<bool> = const { Cell::new(false) };
    /// Set while a case runs on this thread after an earlier seed failed: the hook does
    /// not print its panics (the first failure's is printed, the later seeds are listed).
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with [`QUIET`] set to `quiet`.
fn quietly<T>(quiet: bool, f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            QUIET.with(|q| q.set(self.0));
        }
    }
    let _reset = Reset(QUIET.with(|q| q.replace(quiet)));
    f()
}

/// Panics with `payload`, a panic the test planted and expects: the panic hook does not
/// print it (a test that plants a thousand panics would drown its output). Any other
/// panic is printed as usual. The payload is `payload` itself, as `panic_any` gives it.
pub fn planted_panic<P: Any + Send + 'static>(payload: P) -> ! {
    install_hook();
    PLANTED.with(|p| p.set(true));
    std::panic::panic_any(payload)
}

/// Installs (once for the process) the panic hook that keeps [`planted_panic`]s quiet and
/// hands every other panic to the hook that was there before.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The hook runs on the panicking thread, before it unwinds.
            let planted = PLANTED.with(|p| p.replace(false));
            if !planted && !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
}
