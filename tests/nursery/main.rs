//! Nurseries and their children: spawning and polled nurseries, tuple joins, errors, panics, cancellation, `start`, subgroups, task handles, names and the task tree (rules N, I, P, F and W).
//!
//! One test binary per family of rules (a binary links once; each file is a module).

mod basic;
mod cancel;
mod deep_nesting;
mod errors;
mod foreign_drop;
mod kinds;
mod large_futures;
mod local;
mod panic;
mod polled;
mod polled_tuple;
mod start;
mod subgroup;
mod task_handle;
mod task_names;
mod task_tree;
mod values;
