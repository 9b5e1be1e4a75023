//! `race` and `race_ok` of the spawning kind: the first to finish wins; the losers are
//! cancelled and awaited (the operations themselves: `ops.rs`).

use std::future::Future;
use std::panic::Location;

use super::ops::Work;
use super::ops::{self, first_ok, winner, Then};
use super::run::run;
use crate::error::NurseryError;
use crate::kind::mode::{RaceMode, RaceOkMode};
use crate::kind::Spawned;

/// Runs every future concurrently and returns the output of the first to finish. The
/// others (the losers) are cancelled, and `race` waits until they have stopped before it
/// returns.
///
/// Each future is spawned into a nursery as its own task, when `race` is first polled;
/// `futs` is collected into a `Vec` at the call (unlike [`map`](crate::map), which takes
/// its input lazily). The output may be anything,
/// including a `Result`: an `Err` that comes first wins the race too. To wait for the first
/// *success*, use [`race_ok`].
///
/// For a few futures of different types (with one output type), [`race!`](crate::race!)
/// takes them without boxing. For futures that borrow, [`Polled::race`](crate::Polled::race)
/// is the same operation over the polled kind of children.
///
/// A loser that is already past its last suspension point when the winner finishes runs
/// to its end; its output is dropped. A loser cancelled while it waits is dropped at that
/// suspension point, so its destructors have run when `race` returns.
///
/// # Cancel safety
///
/// If the enclosing scope is cancelled, every future is cancelled and awaited, then this
/// future never completes (the cancelled scope returns). Dropping it from outside hatchery
/// cancels the futures without waiting for them (see [`nursery`](crate::nursery)).
///
/// # Panics
///
/// If `futs` is empty (there would be no winner). If a future panics: the others are
/// cancelled and, once all have finished, the panic is resumed here (even if another
/// future had already won). When first polled outside a hatchery runtime. If the
/// executor drops every future's task before one of them finished (a runtime that is
/// shutting down), with a message that says so. When kept past the scope it was first
/// polled in, cancelled by that scope while it ran, and awaited after that scope has
/// finished: its outputs are gone (see [Combinators](crate#combinators)).
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use hatchery::testing::{elapsed, virtual_time};
/// use hatchery::{race, sleep};
///
/// struct Stopped(Arc<AtomicUsize>); // counts the mirrors that have been dropped
/// impl Drop for Stopped {
///     fn drop(&mut self) {
///         self.0.fetch_add(1, Ordering::SeqCst);
///     }
/// }
///
/// # hatchery_smol::run(virtual_time(async {
/// let stopped = Arc::new(AtomicUsize::new(0));
/// let mirror = |name: &'static str, secs: u64| {
///     let guard = Stopped(stopped.clone());
///     async move {
///         let _guard = guard;
///         sleep(Duration::from_secs(secs)).await;
///         name
///     }
/// };
/// let fastest = race([mirror("eu", 30), mirror("us", 1), mirror("asia", 3600)]).await;
/// assert_eq!(fastest, "us");
/// assert_eq!(stopped.load(Ordering::SeqCst), 3); // "eu" and "asia" have stopped too...
/// assert_eq!(elapsed(), Duration::from_secs(1)); // ...cancelled at once, not waited for
/// # }));
/// ```
#[track_caller]
pub fn race<I>(futs: I) -> impl Future<Output = <I::Item as Future>::Output>
where
    I: IntoIterator,
    I::Item: Future + Send + 'static,
    <I::Item as Future>::Output: Send + 'static,
{
    // Read at the call, as documented.
    let futs: Vec<_> = ops::racers(futs, "race").collect();
    let group =
        run::<Spawned, RaceMode, _, _, _>(Work::every(futs.into_iter(), Location::caller()));
    Then::new(group, |ended| winner("race", ended))
}

/// Runs every future concurrently and returns the first `Ok` value; the others are
/// cancelled and awaited before it returns. If every future fails, returns every error.
///
/// Errors of futures that fail before the winner succeeds are dropped. Like
/// futures-concurrency's `race_ok` and JavaScript's `Promise.any`: use it for hedged
/// requests ("ask three replicas, take the first answer"). For futures that borrow,
/// [`Polled::race_ok`](crate::Polled::race_ok) is the same operation over the polled kind
/// of children.
///
/// # Errors
///
/// If every future returns `Err`: [`NurseryError::Failed`] with all the errors, in the
/// order they happened. It is never [`NurseryError::Cancelled`].
///
/// # Cancel safety
///
/// As for [`race`]: a cancelled `race_ok` never returns, even if every future had
/// failed by then (the errors are its output, not a failure of it, and go with it).
///
/// # Panics
///
/// If `futs` is empty. If a future panics, as for [`race`]. When first polled outside a
/// hatchery runtime. If the executor drops every future's task before one of them
/// finished (a runtime that is shutting down), with a message that says so. When kept
/// past its scope, as for [`race`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::testing::virtual_time;
/// use hatchery::{race_ok, sleep};
///
/// async fn replica(secs: u64, ok: bool) -> Result<u64, String> {
///     sleep(Duration::from_secs(secs)).await;
///     if ok { Ok(secs) } else { Err(format!("replica {secs} is down")) }
/// }
///
/// # hatchery_smol::run(virtual_time(async {
/// // The fast replica fails; the first success wins.
/// let v = race_ok([replica(1, false), replica(5, true), replica(3600, true)]).await;
/// assert_eq!(v, Ok(5));
///
/// let all_down = race_ok([replica(50, false), replica(1, false)]).await.unwrap_err();
/// assert_eq!(all_down.errors(), ["replica 1 is down", "replica 50 is down"]);
/// # }));
/// ```
#[track_caller]
pub fn race_ok<I, T, E>(futs: I) -> impl Future<Output = Result<T, NurseryError<E>>>
where
    I: IntoIterator,
    I::Item: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let futs: Vec<_> = ops::racers(futs, "race_ok").collect();
    let group =
        run::<Spawned, RaceOkMode, _, _, _>(Work::every(futs.into_iter(), Location::caller()));
    Then::new(group, |ended| first_ok("race_ok", ended))
}
