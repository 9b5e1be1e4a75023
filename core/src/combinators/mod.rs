//! Combinators: the everyday concurrency patterns, built on nurseries.
//!
//! This module is private, so its docs do not render: what users need (the guarantees,
//! the table, errors, the panic of a kept combinator, why the combinators return `impl
//! Future`) is in the `# Combinators` section of the crate docs (`lib.rs`). Keep it
//! there.
//!
//! Each combinator that opens a nursery of its own (all but `as_completed_in`, `retry`
//! and `batches`) passes that nursery's result through [`not_kept`]: the nursery never
//! cancels itself, so `Cancelled` can only mean a combinator kept past its scope.

mod as_completed;
mod backoff;
mod batch;
mod join;
mod map;
mod race;
mod retry;
mod service;
pub(crate) mod tuple;

pub use self::as_completed::{as_completed, as_completed_in, AsCompleted};

use crate::NurseryError;

/// A combinator's nursery ended `Cancelled`. These nurseries never cancel themselves, and
/// under a cancelled enclosing scope they do not return: only a combinator future kept
/// past the scope it was first polled in, and awaited after that scope (cancelled while
/// it ran) finished, gets here. Its outputs are gone and nothing can catch the
/// cancellation: a panic that says so, rather than a wrong value or a hang.
pub(crate) fn not_kept<T, E>(
    what: &str,
    r: Result<T, NurseryError<E>>,
) -> Result<T, NurseryError<E>> {
    if let Err(NurseryError::Cancelled) = r {
        kept_cancelled(what)
    }
    r
}

#[cold]
#[track_caller]
fn kept_cancelled(what: &str) -> ! {
    panic!(
        "hatchery: `{what}` was cancelled by the scope it was first polled in, which has \
         finished since: its outputs are gone, and nothing is left to catch the \
         cancellation. Await it in the scope where it started, or drop it (see \
         `CancelScope::run` on futures kept past their scope)"
    )
}
pub use self::backoff::Backoff;
pub use self::batch::{batches, Batches};
pub use self::join::{join, settle, try_join};
pub use self::map::{map, map_stream, InputIter, Map};
pub use self::race::{race, race_ok};
pub use self::retry::{retry, HatcherySleeper, Retry};
pub use self::service::{service, Service, ServiceClosed, ServiceReport};
