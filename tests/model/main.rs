//! Seeded random tests checked against models: random nursery trees (spawning and polled), the sync primitives, memory streams, deadlines on the virtual clock, and orphan races.
//!
//! One test binary per family of rules (a binary links once; each file is a module).

mod deadline_model;
mod orphan_race;
mod polled_random_trees;
mod random_trees;
mod seeded;
mod stream_model;
mod sync_model;
