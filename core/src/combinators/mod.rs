//! Combinators: the everyday concurrency patterns, built on nurseries.
//!
//! This module is private, so its docs do not render: what users need (the guarantees,
//! the table, errors, the panic of a kept combinator, why the combinators return `impl
//! Future`) is in the `# Combinators` section of the crate docs (`lib.rs`). Keep it
//! there.
//!
//! `join`, `try_join`, `settle`, `race`, `race_ok` and `map` are written once
//! (`ops.rs`, with bounded concurrency in `feed.rs` and what each makes of an output in
//! `kind/mode.rs`), over a group run once for every kind of children (`run.rs`). The
//! public functions of both kinds (here, and `Polled`'s in `polled.rs`) are thin entry
//! points.
//!
//! Each combinator that opens a nursery of its own (all but `as_completed_in`, `retry`
//! and `batches`) passes that nursery's result through [`ops::kept`]: the nursery never
//! cancels itself, so `Cancelled` can only mean a combinator kept past its scope.

mod as_completed;
mod backoff;
mod batch;
pub(crate) mod feed;
mod join;
mod local;
mod map;
pub(crate) mod ops;
mod polled;
mod race;
mod retry;
mod run;
mod service;
pub(crate) mod tuple;

pub use self::as_completed::{as_completed, as_completed_in, AsCompleted};

pub use self::backoff::Backoff;
pub use self::batch::{batches, Batches};
pub use self::join::{join, settle, try_join};
pub use self::map::{map, map_stream, Map};
pub use self::ops::InputIter;
pub use self::race::{race, race_ok};
pub use self::retry::{retry, HatcherySleeper, Retry};
pub use self::service::{service, Service, ServiceClosed, ServiceReport};
