//! `join`, `try_join` and `settle` of the spawning kind: run many futures at once as
//! tasks, results in input order (the operations themselves: `ops.rs`).

use std::future::Future;
use std::panic::Location;

use super::ops::Work;
use super::ops::{joined, tried, Then};
use super::run::run;
use crate::error::NurseryError;
use crate::kind::mode::{JoinMode, TryJoinMode};
use crate::kind::Spawned;

/// Runs every future concurrently and returns their outputs in input order (Python's
/// `asyncio.gather`).
///
/// Each future is spawned into a nursery as its own task, so on a multi-threaded runtime
/// they run in parallel; `join` returns once all have finished. The futures may have any
/// output; for futures that return `Result`, choose between [`try_join`] (fail fast) and
/// [`settle`] (collect every result). To limit how many run at once, use
/// [`map`](crate::map).
///
/// For a few futures of different types, [`join!`](crate::join!) returns their outputs
/// as a tuple. For futures that borrow, or are not `Send`,
/// [`Polled::join`](crate::Polled::join) is the same operation over the polled kind of
/// children (polled by the caller's task). (So does a [`nursery`](crate::nursery) whose body joins their
/// [`TaskHandle`](crate::TaskHandle)s.)
///
/// The input is read when this future is first polled, not when it is made, one item at
/// a time with a spawn after each: on several threads the first futures may be running
/// before the last are made (make them all first, in a `Vec`, if that matters).
///
/// # Cancel safety
///
/// If the enclosing scope is cancelled, every future is cancelled and awaited, then this
/// future never completes (the cancelled scope returns). Dropping it from outside hatchery
/// cancels the futures without waiting for them (see [`nursery`](crate::nursery)).
///
/// # Panics
///
/// If a future panics: the others are cancelled and, once all have finished, the panic is
/// resumed here. When first polled outside a hatchery runtime. When kept past the scope
/// it was first polled in, cancelled by that scope while it ran, and awaited after that
/// scope has finished: its outputs are gone (see [Combinators](crate#combinators)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{join, sleep};
///
/// async fn fetch(id: u64) -> u64 {
///     sleep(Duration::from_millis(10 - id)).await;
///     id * 10
/// }
///
/// # hatchery_smol::run(async {
/// let all = join((1..=3).map(fetch)).await;
/// assert_eq!(all, [10, 20, 30]); // input order, not completion order
/// # });
/// ```
#[track_caller]
pub fn join<I>(futs: I) -> impl Future<Output = Vec<<I::Item as Future>::Output>>
where
    I: IntoIterator,
    I::Item: Future + Send + 'static,
    <I::Item as Future>::Output: Send + 'static,
{
    let group =
        run::<Spawned, JoinMode, _, _, _>(Work::every(futs.into_iter(), Location::caller()));
    Then::new(group, |ended| joined("join", ended, true))
}

/// Runs every future concurrently and returns their values in input order, or fails fast.
///
/// For a few futures of different types, [`try_join!`](crate::try_join!) returns their
/// values as a tuple. For futures that borrow, [`Polled::try_join`](crate::Polled::try_join)
/// is the same operation over the polled kind of children.
///
/// The first future to return `Err` cancels the others; `try_join` waits until all have
/// finished, then returns every error that happened, in the order they happened (the first
/// one is the error that cancelled the rest; others may have failed at the same time or
/// while being cancelled). Like `asyncio.TaskGroup`, or `gather` without
/// `return_exceptions`, but nothing is left running. Inputs not read yet when a future
/// fails are still made and spawned, as into any cancelled nursery: each gets a first
/// poll, up to its first suspension point, and is then cancelled (as `gather` creates
/// every task up front). Use [`map`](crate::map) to take no more input after a failure.
///
/// # Errors
///
/// [`NurseryError::Failed`] with every error, in the order they happened. `?` converts
/// it into `anyhow::Error` or `Box<dyn Error + Send + Sync>` (see [`NurseryError`]). It is
/// never [`NurseryError::Cancelled`].
///
/// # Cancel safety
///
/// As for [`join`], with one difference: if a future failed before or while the
/// enclosing scope's cancellation reached it, `try_join` returns its errors once every
/// future has finished (a nursery's errors are reported even when it is cancelled from
/// outside), so a `move_on_after` around it returns `Some(Err(..))`.
///
/// # Panics
///
/// As for [`join`].
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use hatchery::testing::{elapsed, virtual_time};
/// use hatchery::{sleep, try_join};
///
/// struct Stopped(Arc<AtomicUsize>); // counts the fetches that have been dropped
/// impl Drop for Stopped {
///     fn drop(&mut self) {
///         self.0.fetch_add(1, Ordering::SeqCst);
///     }
/// }
///
/// # hatchery_smol::run(virtual_time(async {
/// let stopped = Arc::new(AtomicUsize::new(0));
/// let fetch = |secs: u64| {
///     let guard = Stopped(stopped.clone());
///     async move {
///         let _guard = guard;
///         sleep(Duration::from_secs(secs)).await;
///         if secs == 2 { Err(format!("{secs} failed")) } else { Ok(secs) }
///     }
/// };
/// assert_eq!(try_join([1, 3].map(fetch)).await, Ok(vec![1, 3]));
/// assert_eq!(elapsed(), Duration::from_secs(3));
///
/// // The failure of 2 cancels the hour-long 3600; all are done when `try_join` returns.
/// stopped.store(0, Ordering::SeqCst);
/// let err = try_join([1, 2, 3600].map(fetch)).await.unwrap_err();
/// assert_eq!(err.errors(), ["2 failed"]);
/// assert_eq!(stopped.load(Ordering::SeqCst), 3);
/// assert_eq!(elapsed(), Duration::from_secs(3 + 2)); // not an hour
/// # }));
/// ```
#[track_caller]
pub fn try_join<I, T, E>(futs: I) -> impl Future<Output = Result<Vec<T>, NurseryError<E>>>
where
    I: IntoIterator,
    I::Item: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let group =
        run::<Spawned, TryJoinMode<E>, _, _, _>(Work::every(futs.into_iter(), Location::caller()));
    Then::new(group, |ended| tried("try_join", ended, true))
}

/// Runs every future concurrently and returns every result, `Ok` or `Err`, in input order
/// (Python's `gather(..., return_exceptions=True)`, JavaScript's `Promise.allSettled`).
///
/// An error does not cancel the others. This is [`join`] for fallible futures, named so
/// that the choice between failing fast ([`try_join`]) and collecting every outcome is
/// visible where it is made. For futures that borrow, [`Polled::settle`](crate::Polled::settle)
/// is the same operation over the polled kind of children.
///
/// # Cancel safety
///
/// As for [`join`].
///
/// # Panics
///
/// As for [`join`].
///
/// # Examples
///
/// ```
/// use hatchery::settle;
///
/// async fn parse(s: &'static str) -> Result<u32, std::num::ParseIntError> {
///     s.parse()
/// }
///
/// # hatchery_smol::run(async {
/// let results = settle(["1", "x", "3"].map(parse)).await;
/// assert_eq!(results[0], Ok(1));
/// assert!(results[1].is_err());
/// assert_eq!(results[2], Ok(3));
/// # });
/// ```
#[track_caller]
pub fn settle<I, T, E>(futs: I) -> impl Future<Output = Vec<Result<T, E>>>
where
    I: IntoIterator,
    I::Item: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let group =
        run::<Spawned, JoinMode, _, _, _>(Work::every(futs.into_iter(), Location::caller()));
    Then::new(group, |ended| joined("settle", ended, true))
}
