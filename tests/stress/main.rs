//! Stress on real threads: racing cancellations, many nurseries, memory streams under load.
//!
//! One test binary per family of rules (a binary links once; each file is a module).

mod nursery;
mod race;
mod stream;
