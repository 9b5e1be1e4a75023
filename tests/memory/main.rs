//! What memory nurseries, scope timers and streams keep, counted by a global allocator. One test at a time ([`TURN`]): the count is the whole process's.
//!
//! One test binary per family of rules (a binary links once; each file is a module).

use std::sync::Mutex;

use hatchery_bench_alloc::Counting;

/// Counts every allocation of the process.
#[global_allocator]
static ALLOCATOR: Counting = Counting::new();

/// One test at a time: the count is the whole process's.
static TURN: Mutex<()> = Mutex::new(());

mod nursery;
mod scope_timers;
mod stream;
