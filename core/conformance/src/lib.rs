//! A conformance kit for runtimes bound to [hatchery]: its semantics, checked on your
//! executor.
//!
//! hatchery runs on any executor bound through its seam, [`hatchery::rt::Runtime`]
//! (spawn, a clock, timers, blocking work). Its semantics live in the core, so a binding
//! is a few dozen lines; but a binding can still break them (a `spawn` that polls the
//! task inline, a timer that does not wake, a runtime its own threads keep alive). This
//! crate runs a curated set of scenarios on your binding, each a short program with
//! asserted outcomes, one `#[test]` per scenario:
//!
//! ```toml
//! [dev-dependencies]
//! hatchery-conformance = "0.1"
//! ```
//!
//! ```
//! // tests/conformance.rs of your crate
//! # mod my_runtime {
//! #     pub fn run<F: std::future::Future>(fut: F) -> F::Output {
//! #         hatchery_smol::run(fut)
//! #     }
//! # }
//! /// Your runtime's blocking entry point: any `fn<F: Future>(F) -> F::Output` that runs
//! /// `fut` as a hatchery root (`hatchery::rt::enter_root` on your executor).
//! fn run<F: std::future::Future>(fut: F) -> F::Output {
//!     my_runtime::run(fut)
//! }
//!
//! hatchery_conformance::tests!(run);
//! # fn main() {
//! #     for s in hatchery_conformance::SCENARIOS.iter().take(3) {
//! #         run(hatchery_conformance::prepare(s));
//! #     }
//! # }
//! ```
//!
//! `cargo test` then runs `c1_delivery_at_suspension_points`,
//! `n2_first_error_cancels_the_rest::spawning`, `n2_first_error_cancels_the_rest::polling`,
//! ... on your runtime, each through your `run`, plus
//! [`runtime_is_released`](macro@tests#the-runtime-is-released). The scenarios of
//! nurseries and `start` run once for each kind of nursery, the spawning one
//! (`hatchery::nursery`, whose children are tasks of your executor) and the polled one
//! (`hatchery::Polled::nursery`, whose children its own task polls): the rules are the
//! same for both, and each relies on your executor in its own way (see [`kinds`]). Scenarios on a virtual
//! clock run under [`hatchery::testing::virtual_time`] (your executor, hatchery's
//! clock), the others under [`hatchery::testing::tracked`] (your executor, your clock
//! and timers). To run one by hand, or all in a loop of your own, see [`SCENARIOS`] and
//! [`prepare`]. For tests of your own on your runtime, `#[hatchery::test]` takes it as a
//! backend: `#[hatchery::test(backends(mine = crate::run))]`.
//!
//! # What is checked, and how the scenarios were chosen
//!
//! hatchery's own suite has about two thousand tests; most check the core's semantics,
//! which no binding can change, and would only repeat the same code on another
//! executor. The kit keeps
//!
//! * **every scenario whose outcome depends on the binding**: that `spawn` runs tasks in
//!   the background, never inline (N8), and that many of them finish; that the runtime's
//!   clock and timers drive sleeps, timeouts and moved deadlines (D1, D5, C2 and C8 on
//!   real time); that blocking work runs on another thread and its panic comes back
//!   (W6); that tasks find their runtime in any thread the executor uses (R1), and code
//!   outside finds none (R2); that an `enter` nested in hatchery code stays in its scope
//!   (R3); that a cancelled task is dropped in its context (R5); that virtual time moves
//!   over your executor's tasks; that the reactor, if the runtime has one, ends the
//!   wait of a read or a write on an event that carries an error or a hang-up (R6: a
//!   UDP socket's ICMP answer, a connection reset; these pass at once on a runtime
//!   without a reactor); and that the runtime is let go of once `run` returns;
//! * **one scenario for each rule of the principles**, C1–C8 and N1–N8 (N1–N7 and the
//!   scenario of `start`, S, on both kinds of nursery, N8's on the spawning one, whose
//!   rule it is), and one for each
//!   other family of the book's *Semantics* chapter (S `start`, H handles, D deadlines,
//!   P shields and `finally`, K kept futures, F foreign droppers, W waits and the `sync`
//!   primitives, G combinators, R the runtime): the common path through each, run on
//!   your executor's threads, so that a binding that breaks a family's assumptions
//!   (wakers, ordering, thread hops) fails it;
//! * **every rule of structured streams**, Y1–Y4 (`produce`): a producer task and its
//!   consumer hand items, errors and panics across tasks, on your executor's threads,
//!   and the producer must be stopped and awaited before the call returns.
//!
//! The engineering rules (E) are not about a binding: the core's independence, speed
//! and soundness are checked by hatchery's CI; E5's clear errors appear in the scenarios
//! of N5 and R2. The scenarios and the rules they check are listed in [`scenarios`] (each
//! with its rule in its name and docs) and in [`SCENARIOS`].
//!
//! A scenario that fails panics with the assertion that failed, like any test. A
//! scenario that hangs is a hang of your binding: run the suite under a timeout in CI
//! (virtual-time scenarios fail on their own after 10 s of deadlock).
//!
//! # When not to use this
//!
//! The adapters `hatchery-tokio`, `hatchery-smol` and `hatchery-compio`, and the
//! simulator `hatchery-sim` (without the scenarios that need threads), pass this kit in
//! hatchery's CI: an application using them needs nothing from here.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use hatchery::rt::Runtime;
use hatchery::testing::TestRun;

mod support;

pub mod kinds;
pub mod scenarios;

pub use kinds::{Kind, Polling, Spawning};

/// The clock a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// hatchery's virtual clock over your executor ([`hatchery::testing::virtual_time`]):
    /// the scenario asserts exact times, and takes no real time.
    Virtual,
    /// Your runtime's clock and timers, with hatchery's task tracking
    /// ([`hatchery::testing::tracked`]): the scenario checks them, in at most a fraction
    /// of a second.
    Real,
}

/// One scenario of the kit: a short program with asserted outcomes.
///
/// # Examples
///
/// ```
/// use hatchery_conformance::{prepare, Clock, SCENARIOS};
///
/// let virtual_ones = SCENARIOS.iter().filter(|s| s.clock == Clock::Virtual).count();
/// assert!(virtual_ones > 0);
/// let c1 = SCENARIOS.iter().find(|s| s.rule == "C1").unwrap();
/// hatchery_smol::run(prepare(c1)); // panics if the runtime breaks the rule
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Its name: the rule's prefix, then what it checks (`c1_delivery_at_suspension_points`).
    pub name: &'static str,
    /// The rule of the book's *Semantics* chapter it checks (`"C1"`), or the rules.
    pub rule: &'static str,
    /// The clock it runs on.
    pub clock: Clock,
    /// It needs a thread for blocking work (`run_blocking`): a runtime that runs none
    /// (a simulator) skips it (see [`tests!`](macro@tests#a-runtime-without-threads)).
    pub needs_threads: bool,
    /// The kind of nursery it opens, for a scenario of nurseries (N1-N7) or `start` (S),
    /// which runs once on each ([`Kind::NAME`]: `"spawning"`, `"polling"`); `None` for
    /// the others.
    pub kind: Option<&'static str>,
    /// The scenario's future, as [`prepare`] runs it.
    pub future: fn() -> Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// A scenario ready to run: its future, under its clock ([`Clock`]), named after the
/// scenario for [`hatchery::testing::backend`]. Run it with your `run`.
///
/// # Examples
///
/// ```
/// use hatchery_conformance::{prepare, SCENARIOS};
///
/// for scenario in SCENARIOS.iter().filter(|s| s.rule.starts_with('G')) {
///     hatchery_tokio::run_current_thread(prepare(scenario));
/// }
/// ```
pub fn prepare(scenario: &Scenario) -> TestRun<Pin<Box<dyn Future<Output = ()> + Send>>> {
    __wrap(scenario.clock, (scenario.future)(), scenario.name)
}

/// Not public API: what [`tests!`] expands to.
#[doc(hidden)]
pub fn __wrap<F: Future>(clock: Clock, fut: F, name: &'static str) -> TestRun<F> {
    match clock {
        Clock::Virtual => hatchery::testing::virtual_time(fut),
        Clock::Real => hatchery::testing::tracked(fut),
    }
    .with_backend_name(name)
}

/// The runtime of the root that awaits this, after a task has run on it: what
/// [`assert_released`] watches. [`tests!`]' `runtime_is_released` runs it with your
/// `run`.
///
/// # Panics
///
/// Outside a hatchery runtime (`run` made no root).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery_conformance::{assert_released, root_runtime};
///
/// let runtime = hatchery_smol::run(root_runtime());
/// assert_released(runtime, Duration::from_secs(10));
/// ```
pub async fn root_runtime() -> Weak<dyn Runtime> {
    let rt = hatchery::rt::current().expect("hatchery-conformance: `run` made no hatchery root");
    // A task too, so that the executor's threads have polled for the runtime.
    hatchery::nursery(|n| async move {
        n.spawn(async {
            hatchery::checkpoint().await;
            Ok::<_, std::convert::Infallible>(())
        });
        Ok::<_, std::convert::Infallible>(())
    })
    .await
    .unwrap();
    Arc::downgrade(&rt)
}

/// Asserts that the runtime behind `runtime` is dropped within `patience` (of real
/// time), waiting for it: run it just after your `run` returned (see
/// [`root_runtime`]).
///
/// # Panics
///
/// If the runtime is still alive after `patience`, with a message that says why that
/// usually is: its executor's threads keep it.
///
/// # Examples
///
/// ```should_panic
/// use std::sync::Arc;
/// use std::time::Duration;
/// use hatchery::rt::Runtime;
/// use hatchery_conformance::assert_released;
///
/// let ex = Arc::new(async_executor::Executor::new());
/// let runtime: Arc<dyn Runtime> = Arc::new(hatchery_smol::SmolRuntime::new(&ex));
/// // Still held here: panics after 10 ms.
/// assert_released(Arc::downgrade(&runtime), Duration::from_millis(10));
/// ```
#[track_caller]
pub fn assert_released(runtime: Weak<dyn Runtime>, patience: Duration) {
    let start = Instant::now();
    while runtime.strong_count() != 0 {
        assert!(
            start.elapsed() < patience,
            "hatchery-conformance: the runtime is still alive {patience:?} after `run` \
             returned ({} strong references). A thread that polls hatchery tasks keeps the \
             last runtime it polled for until it polls for another or ends: a runtime that \
             owns its executor's threads keeps them, and they keep it, for good (one more \
             pool of threads leaked per `run`). Hold the executor weakly (or a handle that \
             does not own its threads), or let go of it when `run` returns; see the book's \
             chapter on runtimes, \"Who owns the threads\"",
            runtime.strong_count()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Generates one `#[test]` per scenario of the kit, each run with `run`, your runtime's
/// blocking entry point (`fn run<F: Future>(fut: F) -> F::Output`, given by its path).
///
/// Invoke it once, at module level in a test file (or inside a `mod`, to run the kit on
/// several runtimes). The tests are named after the scenarios ([`SCENARIOS`]); a
/// scenario of nurseries or `start` is a module of two tests, one for each [`Kind`] of
/// nursery (`n1_a_nursery_waits_for_all::spawning`, `n1_a_nursery_waits_for_all::polling`),
/// which sees `run` through `use super::*`: give `run` as a name in scope or a path from a
/// crate (`crate::run`, `hatchery_smol::run`), not one that starts with `self::` or
/// `super::`. And one more test:
///
/// # The runtime is released
///
/// `runtime_is_released` runs a root that spawns a task, and checks that the runtime it
/// ran on ([`hatchery::rt::current`]) is dropped within 10 seconds of `run` returning. A
/// runtime that owns its executor's threads fails it: those threads keep the last
/// runtime they polled for, so the runtime and its threads keep each other alive, and
/// every `run` leaks a pool.
///
/// # A runtime without threads
///
/// `tests!(run, without_threads)` is for a runtime that runs no thread for blocking
/// work, on purpose: a deterministic simulator (`hatchery-sim`), whose
/// [`spawn_blocking`](hatchery::rt::Runtime::spawn_blocking) refuses it. The scenarios
/// that need one ([`Scenario::needs_threads`]: `w6_run_blocking_runs_on_another_thread`
/// and `r2_no_runtime_outside`, which runs its check on a blocking thread) are then
/// generated `#[ignore]`d, with the reason, so that `cargo test` lists them as ignored
/// rather than passing them; every other scenario runs as usual.
///
/// ```
/// mod on_the_simulator {
///     hatchery_conformance::tests!(hatchery_sim::run, without_threads);
/// }
/// # fn main() {}
/// ```
///
/// # Examples
///
/// ```
/// mod on_smol {
///     hatchery_conformance::tests!(hatchery_smol::run);
/// }
///
/// mod on_tokio {
///     fn run<F: std::future::Future>(fut: F) -> F::Output {
///         hatchery_tokio::run_current_thread(fut)
///     }
///
///     hatchery_conformance::tests!(run);
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! tests {
    ($run:path) => {
        $crate::__with_scenarios!(__tests($run, threads));

        #[test]
        fn runtime_is_released() {
            let runtime = $run($crate::root_runtime());
            $crate::assert_released(runtime, ::std::time::Duration::from_secs(10));
        }
    };
    ($run:path, without_threads) => {
        $crate::__with_scenarios!(__tests($run, without_threads));

        #[test]
        fn runtime_is_released() {
            let runtime = $run($crate::root_runtime());
            $crate::assert_released(runtime, ::std::time::Duration::from_secs(10));
        }
    };
}

/// Not public API: one test per scenario, for [`tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __tests {
    (($run:path, $threads:ident) $($name:ident $(<$kinds:ident>)?: $clock:ident, $rule:literal $(, $needs:ident)?;)*) => {
        $(
            $crate::__test!($run, $threads, $name $(<$kinds>)?, $clock, $($needs)?);
        )*
    };
}

/// Not public API: one scenario's test, for [`tests!`]: ignored, with the reason, if it
/// needs a thread and the runtime runs none; a module of one test per kind of nursery
/// for a scenario that runs on each (`<kinds>` in the list).
#[doc(hidden)]
#[macro_export]
macro_rules! __test {
    ($run:path, $threads:ident, $name:ident <kinds>, $clock:ident, $($needs:ident)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $crate::__test!($run, $threads, spawning = $name::<$crate::Spawning>, $clock, $($needs)?);
            $crate::__test!($run, $threads, polling = $name::<$crate::Polling>, $clock, $($needs)?);
        }
    };
    ($run:path, without_threads, $test:ident $(= $name:ident::<$kind:path>)?, $clock:ident, threads) => {
        #[test]
        #[ignore = "needs a thread for blocking work, which this runtime does not run"]
        fn $test() {}
    };
    ($run:path, $threads:ident, $test:ident = $name:ident::<$kind:path>, $clock:ident, $($needs:ident)?) => {
        #[test]
        fn $test() {
            $run($crate::__wrap(
                $crate::Clock::$clock,
                $crate::scenarios::$name::<$kind>(),
                ::core::concat!(::core::stringify!($name), "::", ::core::stringify!($test)),
            ))
        }
    };
    ($run:path, $threads:ident, $name:ident, $clock:ident, $($needs:ident)?) => {
        #[test]
        fn $name() {
            $run($crate::__wrap(
                $crate::Clock::$clock,
                $crate::scenarios::$name(),
                ::core::stringify!($name),
            ))
        }
    };
}

/// Not public API: [`SCENARIOS`], from the list: its entries gathered one by one (a
/// scenario of nurseries or `start` makes one for each kind of nursery), then the array.
#[doc(hidden)]
#[macro_export]
macro_rules! __list {
    (() $($list:tt)*) => {
        $crate::__list!(@gather [] $($list)*);
    };
    (@gather [$($done:tt)*] $name:ident <kinds>: $clock:ident, $rule:literal $(, $needs:ident)?; $($rest:tt)*) => {
        $crate::__list!(@gather [
            $($done)*
            Scenario {
                name: ::core::concat!(::core::stringify!($name), "::spawning"),
                rule: $rule,
                clock: Clock::$clock,
                needs_threads: $crate::__needs_threads!($($needs)?),
                kind: ::core::option::Option::Some(<$crate::Spawning as $crate::Kind>::NAME),
                future: || ::std::boxed::Box::pin($crate::scenarios::$name::<$crate::Spawning>()),
            },
            Scenario {
                name: ::core::concat!(::core::stringify!($name), "::polling"),
                rule: $rule,
                clock: Clock::$clock,
                needs_threads: $crate::__needs_threads!($($needs)?),
                kind: ::core::option::Option::Some(<$crate::Polling as $crate::Kind>::NAME),
                future: || ::std::boxed::Box::pin($crate::scenarios::$name::<$crate::Polling>()),
            },
        ] $($rest)*);
    };
    (@gather [$($done:tt)*] $name:ident: $clock:ident, $rule:literal $(, $needs:ident)?; $($rest:tt)*) => {
        $crate::__list!(@gather [
            $($done)*
            Scenario {
                name: ::core::stringify!($name),
                rule: $rule,
                clock: Clock::$clock,
                needs_threads: $crate::__needs_threads!($($needs)?),
                kind: ::core::option::Option::None,
                future: || ::std::boxed::Box::pin($crate::scenarios::$name()),
            },
        ] $($rest)*);
    };
    (@gather [$($done:tt)*]) => {
        /// Every scenario of the kit, in the order of the book's rule families: those of
        /// nurseries (N1-N7) and `start` (S) once for each [`Kind`] of nursery, the
        /// spawning one first.
        ///
        /// # Examples
        ///
        /// ```
        /// use hatchery_conformance::SCENARIOS;
        ///
        /// for family in ["C", "N", "S", "H", "D", "P", "K", "F", "W", "G", "V", "Y", "R"] {
        ///     assert!(SCENARIOS.iter().any(|s| s.rule.starts_with(family)), "{family}");
        /// }
        /// let n1: Vec<_> = SCENARIOS.iter().filter(|s| s.rule == "N1").map(|s| s.name).collect();
        /// assert_eq!(
        ///     n1,
        ///     ["n1_a_nursery_waits_for_all::spawning", "n1_a_nursery_waits_for_all::polling"]
        /// );
        /// ```
        pub const SCENARIOS: &[Scenario] = &[$($done)*];
    };
}

/// Not public API: whether a scenario of the list needs threads.
#[doc(hidden)]
#[macro_export]
macro_rules! __needs_threads {
    () => {
        false
    };
    (threads) => {
        true
    };
}

/// Not public API: the list of scenarios, once, handed to `$callback` (a macro of this
/// crate) after `$args`.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_scenarios {
    ($callback:ident $args:tt) => {
        $crate::$callback! { $args
            c1_delivery_at_suspension_points: Virtual, "C1";
            c2_cancellation_reaches_every_task: Real, "C2";
            c3_the_outermost_cancelled_scope_catches: Virtual, "C3";
            c4_deadlines_move: Virtual, "C4";
            c5_fail_after_reports_its_own_deadline: Virtual, "C5";
            c6_shields_protect_cleanup: Virtual, "C6";
            c7_the_effective_deadline: Virtual, "C7";
            c8_a_foreign_drop_cancels_without_waiting: Real, "C8";
            n1_a_nursery_waits_for_all<kinds>: Virtual, "N1";
            n2_first_error_cancels_the_rest<kinds>: Virtual, "N2";
            n3_panics_resume_after_all_finished<kinds>: Virtual, "N3";
            n4_cancellation_is_not_an_error<kinds>: Virtual, "N4";
            n5_spawning_after_close_fails_clearly<kinds>: Virtual, "N5";
            n6_start_waits_until_ready<kinds>: Virtual, "N6";
            n7_task_handles<kinds>: Virtual, "N7";
            n8_spawn_never_polls_inline: Real, "N8";
            n8_many_tasks_finish: Real, "N8";
            s3_an_error_before_started_comes_out_of_start<kinds>: Virtual, "S3";
            h2_h3_cancel_called_and_cancelled_caught: Virtual, "H2, H3";
            d1_the_runtime_clock_drives_sleeps_and_timeouts: Real, "D1";
            d2_timeouts_count_from_entry: Virtual, "D2";
            d3_far_deadlines_never_overflow: Virtual, "D3";
            d4_a_passed_deadline_cancels_at_the_first_suspension: Virtual, "D4";
            d5_a_moved_deadline_rearms_the_runtime_timer: Real, "D5";
            p5_finally_cleans_up_after_cancellation: Virtual, "P5";
            k1_a_finished_scope_lets_go: Virtual, "K1";
            f2_a_dropped_nursery_is_closed: Real, "F2";
            w1_waits_never_complete_in_a_cancelled_scope: Virtual, "W1";
            w3_a_cancelled_receive_loses_nothing: Virtual, "W3";
            w6_run_blocking_runs_on_another_thread: Real, "W6", threads;
            w_a_limiter_bounds_concurrency: Virtual, "W2, W5";
            g2_race_cancels_and_awaits_the_losers: Virtual, "G1, G2";
            g_map_runs_at_most_n_at_a_time: Virtual, "G1";
            g6_retry_backs_off_on_the_clock: Virtual, "G6";
            v1_v2_children_inherit_and_never_pass_up<kinds>: Virtual, "V1, V2";
            v3_values_reach_threads_and_calls_back: Real, "V3", threads;
            y1_items_then_the_error_in_order: Virtual, "Y1";
            y2_breaking_early_cancels_and_awaits_the_producer: Virtual, "Y2";
            y2_an_enclosing_cancellation_stops_both: Virtual, "Y2";
            y3_errors_are_not_lost: Virtual, "Y3";
            y4_panics_are_resumed_after_both_stop: Virtual, "Y4";
            r1_tasks_find_their_runtime: Real, "R1";
            r2_no_runtime_outside: Real, "R2", threads;
            r3_a_nested_enter_stays_in_its_scope: Real, "R3";
            r5_a_cancelled_task_is_dropped_in_its_context: Virtual, "R5";
            r_virtual_time_moves_over_the_executor: Virtual, "R1, D1";
            r6_an_error_event_ends_a_waiting_receive: Real, "R6";
            r6_an_error_pending_before_the_receive_is_returned: Real, "R6";
            r6_a_reset_ends_a_waiting_read: Real, "R6";
            r6_a_reset_ends_a_waiting_write: Real, "R6";
        }
    };
}

__with_scenarios!(__list());
