//! The scenarios, one `async fn` each, named after the rule of the book's *Semantics*
//! chapter they check (`c4_`, `n6_`, and `w_`, `g_`, `r_` for several rules of a family).
//!
//! Each runs as a hatchery root inside a test run ([`prepare`](crate::prepare) and
//! [`tests!`](crate::tests) set it up); called any other way, they panic outside a
//! runtime, and the virtual-time ones assert times a real clock would not give. They
//! assert with `assert!`, so a failure panics with the assertion's message and location.
//! The scenarios of N1-N7 and S are generic over the [`Kind`](crate::Kind) of nursery they
//! open, and run on each (`n1_a_nursery_waits_for_all::<Polling>()`).
//!
//! By family (see the crate docs for how they were chosen):
//!
//! | family | scenarios |
//! |---|---|
//! | C, cancellation | [`c1_delivery_at_suspension_points`] ... [`c8_a_foreign_drop_cancels_without_waiting`] |
//! | N, nurseries | [`n1_a_nursery_waits_for_all`] ... [`n7_task_handles`] (each on both kinds of nursery), [`n8_spawn_never_polls_inline`], [`n8_many_tasks_finish`] |
//! | S, `start` | [`s3_an_error_before_started_comes_out_of_start`] (on both kinds) |
//! | H, handles | [`h2_h3_cancel_called_and_cancelled_caught`] |
//! | D, deadlines | [`d1_the_runtime_clock_drives_sleeps_and_timeouts`] ... [`d5_a_moved_deadline_rearms_the_runtime_timer`] |
//! | P, shields | [`p5_finally_cleans_up_after_cancellation`] |
//! | K, kept futures | [`k1_a_finished_scope_lets_go`] |
//! | F, foreign droppers | [`f2_a_dropped_nursery_is_closed`] (and [`c8_a_foreign_drop_cancels_without_waiting`]) |
//! | W, waits | [`w1_waits_never_complete_in_a_cancelled_scope`], [`w3_a_cancelled_receive_loses_nothing`], [`w6_run_blocking_runs_on_another_thread`], [`w_a_limiter_bounds_concurrency`] |
//! | G, combinators | [`g2_race_cancels_and_awaits_the_losers`], [`g_map_runs_at_most_n_at_a_time`], [`g6_retry_backs_off_on_the_clock`] |
//! | V, context values | [`v1_v2_children_inherit_and_never_pass_up`] (on both kinds), [`v3_values_reach_threads_and_calls_back`] |
//! | Y, structured streams | [`y1_items_then_the_error_in_order`], [`y2_breaking_early_cancels_and_awaits_the_producer`], [`y2_an_enclosing_cancellation_stops_both`], [`y3_errors_are_not_lost`], [`y4_panics_are_resumed_after_both_stop`] |
//! | R, runtime | [`r1_tasks_find_their_runtime`], [`r2_no_runtime_outside`], [`r3_a_nested_enter_stays_in_its_scope`], [`r5_a_cancelled_task_is_dropped_in_its_context`], [`r_virtual_time_moves_over_the_executor`] |
//! | R6, the reactor | [`r6_an_error_event_ends_a_waiting_receive`], [`r6_an_error_pending_before_the_receive_is_returned`], [`r6_a_reset_ends_a_waiting_read`], [`r6_a_reset_ends_a_waiting_write`] (each passes at once on a runtime without a reactor) |

mod cancel;
mod io;
mod nursery;
mod runtime;
mod streams;
mod values;
mod waits;

pub use self::cancel::*;
pub use self::io::*;
pub use self::nursery::*;
pub use self::runtime::*;
pub use self::streams::*;
pub use self::values::*;
pub use self::waits::*;
