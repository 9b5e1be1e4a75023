//! The harness of the seeded tests keeps its promise (rule E3 is checked with it): a
//! failing seed is printed with the line that replays it, and that line, run, replays
//! that seed alone and fails the same way; the panics a test plants stay out of the
//! output, and the others do not.
//!
//! Each test runs a seeded test that fails on purpose in a child process (this test
//! binary, `std::env::current_exe()`, told by an environment variable to be the child).

use std::process::{Command, Output};

use hatchery_tests::seeded::{self, planted_panic, Rng, Seeds, CASES_VAR, SEED_VAR, STATS_VAR};
use hatchery_tests::{catch_panic, panic_message};

/// Tells the child process that it is the child, and which test it runs.
const CHILD: &str = "HATCHERY_TESTS_SEEDED_CHILD";

/// The seeds the child's test runs.
const CASES: u64 = 40;

/// Whether the child's case fails on `seed`: some seeds of its generator do, some not.
fn fails(seed: u64) -> bool {
    Rng::seeded(seed).below(5) == 3
}

/// The child's case: plants a panic (which must stay quiet, and keep its payload), then
/// fails on the seeds where [`fails`] says so.
fn case(seed: u64) {
    let planted = std::panic::catch_unwind(|| planted_panic(format!("quiet, please {seed}")));
    let payload = planted.expect_err("a planted panic panics");
    assert_eq!(panic_message(&*payload), format!("quiet, please {seed}"));
    assert!(!fails(seed), "case {seed} fails on purpose");
}

/// Runs `test` of this binary in a child process, with `env` set, and returns its output.
/// Without `--test-threads=1`, so that libtest names the test's thread after it.
fn child(test: &str, env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture"])
        .env(CHILD, test)
        .env("RUST_BACKTRACE", "0")
        .env_remove(SEED_VAR)
        .env_remove(CASES_VAR)
        .env_remove(STATS_VAR);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the child process")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Checks the child's failure for `test`, then runs the replay line it printed, and
/// checks that it ran the first failing seed alone and failed the same way.
fn check_failure_and_replay(test: &str) {
    let failing: Vec<u64> = (0..CASES).filter(|&s| fails(s)).collect();
    assert!(
        !failing.is_empty() && failing.len() < CASES as usize,
        "the case fails on some seeds, not all: {failing:?}"
    );
    // Not the first seed run: a replay that ran from 0 would be seen.
    let first = failing[0];
    assert!(first > 0, "{failing:?}");

    let out = child(test, &[]);
    let all = text(&out);
    assert!(!out.status.success(), "the child passed:\n{all}");
    assert!(
        all.contains(&format!(
            "seed {first} failed: case {first} fails on purpose"
        )),
        "the first failing seed's message:\n{all}"
    );
    let list: Vec<String> = failing.iter().map(u64::to_string).collect();
    assert!(
        all.contains(&format!(
            "{} of {CASES} seeds (0..{CASES}) failed: {}\n",
            failing.len(),
            list.join(", ")
        )),
        "the failing seeds:\n{all}"
    );
    // Each of the others with its message's first line.
    for later in &failing[1..] {
        assert!(
            all.contains(&format!(
                "\n  seed {later}: case {later} fails on purpose\n"
            )),
            "{all}"
        );
    }
    assert!(
        !all.contains("quiet, please"),
        "a planted panic printed:\n{all}"
    );
    // The first failure's panic is printed where it happens (and in the report), the
    // later ones' only in the report.
    assert_eq!(
        all.matches(&format!("case {first} fails on purpose"))
            .count(),
        2,
        "{all}"
    );
    for later in &failing[1..] {
        assert_eq!(
            all.matches(&format!("case {later} fails")).count(),
            1,
            "{all}"
        );
    }
    // The replay line names this package, this binary and the test.
    let line = all
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(SEED_VAR))
        .unwrap_or_else(|| panic!("no replay line:\n{all}"));
    assert_eq!(
        line,
        format!("{SEED_VAR}={first} cargo test -p hatchery-tests --test model -- {test} --exact")
    );

    // Run what the line says (cargo would build and run this same binary): its variable,
    // and the arguments after `--`.
    let (assignment, command) = line.split_once(' ').unwrap();
    let (var, seed) = assignment.split_once('=').unwrap();
    let (_, args) = command.split_once(" -- ").unwrap();
    let args: Vec<&str> = args.split_whitespace().collect();
    let replay = Command::new(std::env::current_exe().unwrap())
        .args(&args)
        .arg("--nocapture")
        .env(CHILD, test)
        .env("RUST_BACKTRACE", "0")
        .env(var, seed)
        .env_remove(CASES_VAR)
        .output()
        .expect("run the replay");
    let again = text(&replay);
    assert!(!replay.status.success(), "the replay passed:\n{again}");
    assert!(
        again.contains("1 failed"),
        "the replay ran the test:\n{again}"
    );
    assert!(
        again.contains(&format!("replaying seed {first} ({SEED_VAR})"))
            && again.contains(&format!(
                "seed {first} failed: case {first} fails on purpose"
            ))
            && again.contains("Replayed with:"),
        "the replay ran seed {first} alone, and it failed the same way:\n{again}"
    );
    for other in &failing[1..] {
        assert!(
            !again.contains(&format!("case {other} fails")),
            "the replay ran seed {other}:\n{again}"
        );
    }
}

/// A seeded test run by [`seeded::check`].
#[test]
fn e3_a_failing_seed_prints_the_line_that_replays_it() {
    let test = "seeded::e3_a_failing_seed_prints_the_line_that_replays_it";
    if std::env::var(CHILD).as_deref() == Ok(test) {
        seeded::check(CASES, case);
        return;
    }
    check_failure_and_replay(test);
}

/// The same for [`seeded::check_async`], in a `#[hatchery::test]` on every backend: the
/// replay line names the backend's test, whichever thread polls the test's body.
#[hatchery::test]
async fn e3_a_failing_async_seed_prints_the_line_that_replays_it() {
    let test = format!(
        "seeded::e3_a_failing_async_seed_prints_the_line_that_replays_it::{}",
        hatchery_tests::backend()
    );
    if std::env::var(CHILD).as_deref() == Ok(test.as_str()) {
        seeded::check_async(CASES, |seed| async move {
            hatchery::checkpoint().await;
            case(seed);
        })
        .await;
        return;
    }
    hatchery::run_blocking(move || check_failure_and_replay(&test)).await;
}

/// A case that never ends, dropped by a timeout around `check_async`: the seed that ran
/// is printed with its replay line.
#[hatchery::test(virtual_time, backends(tokio_current))]
async fn e3_a_seeded_run_dropped_mid_case_names_the_seed() {
    let test = "seeded::e3_a_seeded_run_dropped_mid_case_names_the_seed::tokio_current";
    if std::env::var(CHILD).as_deref() == Ok(test) {
        let out = hatchery::move_on_after(
            std::time::Duration::from_secs(60),
            seeded::check_async(CASES, |seed| async move {
                if seed == 3 {
                    std::future::pending::<()>().await;
                }
            }),
        )
        .await;
        assert_eq!(out, None);
        return;
    }
    let out = hatchery::run_blocking(move || child(test, &[])).await;
    let all = text(&out);
    assert!(out.status.success(), "the child failed:\n{all}");
    assert!(
        all.contains(&format!(
            "the run was dropped while seed 3 ran; replay it with:\n    {SEED_VAR}=3 cargo test \
             -p hatchery-tests --test model -- {test} --exact"
        )),
        "{all}"
    );
}

/// The seeds come from two variables: a seed alone is the one to replay; with a count,
/// the first of that many; a count alone starts from 0; neither gives the test's own
/// count.
#[test]
fn e3_the_seeds_come_from_one_set_of_variables() {
    let seeds = |seed, cases| -> Vec<u64> { Seeds::from(seed, cases, 3).iter().collect() };
    assert_eq!(seeds(None, None), [0, 1, 2]);
    assert_eq!(seeds(Some(7), None), [7]);
    assert!(Seeds::from(Some(7), None, 3).replay);
    assert_eq!(seeds(Some(7), Some(2)), [7, 8]);
    assert!(!Seeds::from(Some(7), Some(2), 3).replay);
    assert_eq!(seeds(None, Some(4)), [0, 1, 2, 3]);
    assert_eq!(seeds(Some(u64::MAX), Some(2)), [u64::MAX, 0]);
}

/// A variable that is not a number fails the test, naming it, rather than running the
/// test's default seeds.
#[hatchery::test(backends(tokio_current))]
async fn e3_a_seed_that_is_not_a_number_is_refused() {
    let test = "seeded::e3_a_seed_that_is_not_a_number_is_refused::tokio_current";
    if std::env::var(CHILD).as_deref() == Ok(test) {
        let msg = catch_panic(seeded::check_async(CASES, |_| async {}))
            .await
            .unwrap_err();
        assert_eq!(
            msg,
            format!("{SEED_VAR}=\"seventeen\" is not a number (a u64, in decimal)")
        );
        return;
    }
    let out = hatchery::run_blocking(move || child(test, &[(SEED_VAR, "seventeen".into())])).await;
    assert!(out.status.success(), "{}", text(&out));
}
