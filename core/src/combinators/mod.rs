//! Combinators: the everyday concurrency patterns, built on nurseries.
//!
//! Every combinator that runs futures concurrently spawns them into a
//! [`nursery`](crate::nursery) it opens, so the nursery's guarantees hold:
//!
//! * the futures are tasks of the executor (`Send + 'static`): on a multi-threaded runtime
//!   they run in parallel;
//! * futures that are no longer wanted (losers of a race, the rest after a failure) are
//!   cancelled **and awaited**: when the combinator returns, every one of them has been
//!   dropped;
//! * enclosing cancel scopes and deadlines apply: when one is cancelled, the combinator
//!   cancels its futures, waits for them, and never returns (the cancelled scope does),
//!   unless a future had failed by then in a combinator that fails on an error
//!   ([`try_join`](crate::try_join), [`try_join!`](crate::try_join!), `map`'s
//!   `try_join`): like a nursery, it reports the errors its futures returned before or
//!   while being cancelled. For the others an error is an output (`settle`, `race_ok`
//!   until all fail): a cancelled one never returns;
//! * a panic in a future cancels the rest and is resumed in the caller.
//!
//! | combinator | waits for | returns | on `Err` |
//! |---|---|---|---|
//! | [`join`](crate::join) | all | every output, in input order | (outputs are opaque) |
//! | [`try_join`](crate::try_join) | all, or the first `Err` | every value, in input order | cancels the rest; every error |
//! | [`settle`](crate::settle) | all | every `Result`, in input order | keeps going |
//! | [`race`](crate::race) | the first | its output; the rest are cancelled | (outputs are opaque) |
//! | [`race_ok`](crate::race_ok) | the first `Ok` | its value; the rest are cancelled | keeps going; every error if all fail |
//! | [`as_completed`](crate::as_completed) | the body | a stream, in completion order | the body decides |
//! | [`map`](crate::map) | all, at most N at a time | `join`, `try_join` or `settle`, ordered or not | as chosen |
//! | [`join!`](crate::join!), [`try_join!`](crate::try_join!) | as `join`, `try_join` | a tuple: futures of different types | as `join`, `try_join` |
//! | [`race!`](crate::race!) | the first | as `race`, for futures of different types | (outputs are opaque) |
//!
//! Errors are reported like a nursery's: [`NurseryError::Failed`](crate::NurseryError)
//! with every error, in the order they happened (never `Cancelled`: these combinators do
//! not cancel themselves, and when they are cancelled from outside they return only to
//! report errors). One kept past the scope it was first polled in and cancelled by it
//! (`move_on_after(d, &mut fut)`, then `fut.await`) has lost its outputs, and panics when
//! awaited again (see [`CancelScope::run`](crate::CancelScope::run)).
//!
//! Beyond fan-out: [`retry`](crate::retry) (exponential backoff with jitter on hatchery's
//! clock, with [backon](crate::backon) policies), [`service`](crate::service)
//! (background work with a graceful shutdown) and [`batches`](crate::batches) (cut a
//! stream into batches by size and time).
//!
//! # Return types
//!
//! The combinators that open a nursery return `impl Future`: the future contains the
//! nursery's body, whose type cannot be named. Naming it would cost an allocation per call
//! and force `Send + 'static` on everything the body uses, such as the input iterator of
//! `map`, which may borrow. The futures are `Send` whenever their inputs are.
//! Hand-written futures and streams ([`Retry`](crate::futures::Retry),
//! [`AsCompleted`](crate::futures::AsCompleted), [`Batches`](crate::futures::Batches)) are
//! named, in [`futures`](crate::futures).

mod as_completed;
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
pub use self::batch::{batches, Batches};
pub use self::join::{join, settle, try_join};
pub use self::map::{map, map_stream, InputIter, Map};
pub use self::race::{race, race_ok};
pub use self::retry::{retry, HatcherySleeper, Retry};
pub use self::service::{service, Service, ServiceClosed, ServiceReport};
