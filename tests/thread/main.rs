//! Threads and signals: `to_thread`, `from_thread`, portals, blocking sync calls, thread exit, and `hatchery::signal` (rules T).
//!
//! One test binary per family of rules (a binary links once; each file is a module).

mod blocking;
mod exit;
mod from;
mod portal;
mod signal;
mod to;
