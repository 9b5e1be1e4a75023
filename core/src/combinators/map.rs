//! Bounded concurrency: `map` and `map_stream`, and [`Map`], one type for every kind of
//! children (`K`): the spawning kind's methods are here, the polled kind's in
//! `polled.rs`, each a call of the one operation (`ops.rs`) over the one way a
//! combinator runs its futures (`run.rs`).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;

use futures_core::Stream;

use super::ops::{joined, tried, InputIter, Then, Work};
use super::run::run;
use crate::error::NurseryError;
use crate::kind::mode::{JoinMode, TryJoinMode};
use crate::kind::Spawned;

/// Maps `f` over `inputs` concurrently, with at most `limit` futures in flight: the
/// semaphore-limited fan-out (Python's `gather_with_concurrency`).
///
/// `map` only describes the work; pick what to collect with [`Map::join`] (any output),
/// [`Map::try_join`] (fail fast on the first `Err`) or [`Map::settle`] (every `Ok` and
/// `Err`). Results come in input order, or in completion order after
/// [`unordered`](Map::unordered).
///
/// * Each future `f` returns is spawned into a nursery as its own task (`Send + 'static`),
///   so on a multi-threaded runtime up to `limit` of them run in parallel.
/// * **Backpressure**: the next input is taken from `inputs`, and `f` is called on it, only
///   when a slot is free. Nothing is read ahead, so `inputs` may be endless or expensive to
///   produce (for an async source, see [`map_stream`]).
/// * `f` runs in the caller's task, between the children; it may borrow (only the futures
///   it returns must be `'static`). For futures that borrow too, [`Polled::map`](crate::Polled::map)
///   is the same operation over the polled kind of children: the same [`Map`], whose
///   `K` says which kind runs it.
///
/// # Panics
///
/// If `limit` is zero.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use hatchery::sleep;
/// use hatchery::testing::{elapsed, virtual_time};
///
/// # hatchery_smol::run(virtual_time(async {
/// let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
/// // 20 fetches of one second each, at most 5 at a time, results in input order.
/// let items = hatchery::map(5, 0..20, |id| {
///     let (running, peak) = (running.clone(), peak.clone());
///     async move {
///         peak.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
///         sleep(Duration::from_secs(1)).await; // a slow fetch
///         running.fetch_sub(1, Ordering::SeqCst);
///         Ok::<_, std::io::Error>(format!("item {id}"))
///     }
/// })
/// .try_join()
/// .await?;
/// assert_eq!(items.len(), 20);
/// assert_eq!(items[3], "item 3");
/// assert_eq!(peak.load(Ordering::SeqCst), 5); // never more than 5 in flight...
/// assert_eq!(elapsed(), Duration::from_secs(4)); // ...so 20 take 4 s, not 1 s
/// # Ok::<_, anyhow::Error>(())
/// # })).unwrap();
/// ```
#[track_caller]
pub fn map<I, F, Fut>(limit: usize, inputs: I, f: F) -> Map<InputIter<I::IntoIter>, F>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future,
{
    let inputs = InputIter::new(inputs.into_iter());
    Map::new(limit, inputs, f, "map", Location::caller())
}

/// Like [`map`], for an async source of inputs: a [`Stream`](futures_core::Stream).
///
/// The stream is polled for its next item only when a slot is free, so a slow or endless
/// producer is never drained ahead of the work. Waiting for the stream is a suspension
/// point of the caller's task.
///
/// # Panics
///
/// If `limit` is zero.
///
/// # Examples
///
/// ```
/// use futures_lite::stream;
///
/// # hatchery_smol::run(async {
/// let inputs = stream::iter(1..=4u64);
/// let squares = hatchery::map_stream(2, inputs, |x| async move { x * x }).join().await;
/// assert_eq!(squares, [1, 4, 9, 16]);
/// # });
/// ```
#[track_caller]
pub fn map_stream<S, F, Fut>(limit: usize, inputs: S, f: F) -> Map<S, F>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
{
    Map::new(limit, inputs, f, "map", Location::caller())
}

/// Concurrent work over many inputs with at most `limit` in flight; made by [`map`] and
/// [`map_stream`] (and by [`Polled::map`](crate::Polled::map)). Choose the output with
/// [`join`](Map::join), [`try_join`](Map::try_join) or [`settle`](Map::settle).
///
/// `K` is the kind of children that runs the futures: [`Spawned`] (the default), tasks of
/// a nursery, `Send + 'static`, in parallel on a multi-threaded runtime; or
/// [`Polled`](crate::Polled) (made by [`Polled::map`](crate::Polled::map)), futures
/// polled in the caller's task, which may borrow. The semantics are the same,
/// written once; each kind has its own `join`, `try_join` and `settle`, which differ
/// only in the bounds on the futures.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use hatchery::futures::Map;
///
/// # hatchery_smol::run(async {
/// let calls = AtomicUsize::new(0);
/// let work: Map<_, _> = hatchery::map(2, 1..=3, |x| {
///     calls.fetch_add(1, Ordering::SeqCst);
///     async move { x * 10 }
/// });
/// assert_eq!(calls.load(Ordering::SeqCst), 0); // only described so far
/// assert_eq!(work.join().await, [10, 20, 30]);
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
/// # });
/// ```
#[must_use = "`Map` does nothing until one of `join`, `try_join` or `settle` is awaited"]
pub struct Map<S, F, K = Spawned> {
    limit: usize,
    inputs: S,
    f: F,
    ordered: bool,
    // The name of the function that made it, for its panics (`map`, `Polled::map`).
    what: &'static str,
    // Where `map` was called: the place of its group (and tasks) in the task tree and
    // the hold warnings (`diagnostics`).
    site: &'static Location<'static>,
    kind: PhantomData<fn() -> K>,
}

impl<S, F, K> Map<S, F, K> {
    /// The work of `f` over `inputs`, at most `limit` at once, by the function `what`
    /// called at `site`.
    pub(crate) fn new(
        limit: usize,
        inputs: S,
        f: F,
        what: &'static str,
        site: &'static Location<'static>,
    ) -> Self {
        assert!(limit > 0, "hatchery: `{what}` needs a limit of at least 1");
        Map {
            limit,
            inputs,
            f,
            ordered: true,
            what,
            site,
            kind: PhantomData,
        }
    }

    /// The work, and whether its outputs come in input order.
    pub(crate) fn work(self) -> (Work<S, F>, bool, &'static str) {
        let work = Work {
            limit: Some(self.limit),
            inputs: self.inputs,
            f: self.f,
            site: self.site,
        };
        (work, self.ordered, self.what)
    }

    /// Collects results in the order they complete instead of the input order.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::sleep;
    /// use hatchery::testing::virtual_time;
    ///
    /// # hatchery_smol::run(virtual_time(async {
    /// let order = hatchery::map(3, [60u64, 1, 25], |secs| async move {
    ///     sleep(Duration::from_secs(secs)).await;
    ///     secs
    /// })
    /// .unordered()
    /// .join()
    /// .await;
    /// assert_eq!(order, [1, 25, 60]);
    /// # }));
    /// ```
    pub fn unordered(mut self) -> Self {
        self.ordered = false;
        self
    }
}

impl<S, F, K> fmt::Debug for Map<S, F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("limit", &self.limit)
            .field("ordered", &self.ordered)
            .finish_non_exhaustive()
    }
}

/// The spawning kind's: each future a task of a nursery.
impl<S: Stream, F> Map<S, F, Spawned> {
    /// Runs the work and returns every output (of any type): in input order, or in
    /// completion order after [`unordered`](Map::unordered).
    ///
    /// # Cancel safety
    ///
    /// If the enclosing scope is cancelled, every running child is cancelled, no further
    /// input is taken, and this future waits for the children to finish, then never
    /// completes (the cancelled scope returns). Dropping it from outside hatchery cancels
    /// the children without waiting for them (see [`nursery`](crate::nursery)).
    ///
    /// # Panics
    ///
    /// When first polled outside a hatchery runtime. If a child panics: the others are
    /// cancelled and, once all have finished, the panic is resumed here. When kept past
    /// the scope it was first polled in, cancelled by that scope while it ran, and
    /// awaited after that scope has finished: its outputs are gone (see
    /// [Combinators](crate#combinators)).
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let lens = hatchery::map(2, ["a", "bb", "ccc"], |s| async move { s.len() }).join().await;
    /// assert_eq!(lens, [1, 2, 3]);
    /// # });
    /// ```
    pub fn join<Fut>(self) -> impl Future<Output = Vec<Fut::Output>>
    where
        F: FnMut(S::Item) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let (work, ordered, what) = self.work();
        let group = run::<Spawned, JoinMode, _, _, _>(work);
        Then::new(group, move |ended| joined(what, ended, ordered))
    }

    /// Runs the work and returns every value, failing fast: the first `Err` cancels the
    /// other children (running ones are cancelled, no further input is taken), and once
    /// all have finished, every error that happened is returned, in the order they
    /// happened.
    ///
    /// Values come in input order, or in completion order after
    /// [`unordered`](Map::unordered).
    ///
    /// # Errors
    ///
    /// [`NurseryError::Failed`] with every error. It is never
    /// [`NurseryError::Cancelled`]: the work does not cancel itself.
    ///
    /// # Cancel safety
    ///
    /// As for [`join`](Map::join), except that errors are reported even when the
    /// enclosing scope is cancelled: a child that failed before or while being cancelled
    /// makes this return its errors once every child has finished (see
    /// [`try_join`](fn@crate::try_join)).
    ///
    /// # Panics
    ///
    /// As for [`join`](Map::join).
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let r = hatchery::map(4, 0..10, |i| async move {
    ///     if i == 7 { Err(format!("item {i} is bad")) } else { Ok(i) }
    /// })
    /// .try_join()
    /// .await;
    /// assert_eq!(r.unwrap_err().errors(), ["item 7 is bad"]);
    /// # });
    /// ```
    pub fn try_join<Fut, T, E>(self) -> impl Future<Output = Result<Vec<T>, NurseryError<E>>>
    where
        F: FnMut(S::Item) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let (work, ordered, what) = self.work();
        let group = run::<Spawned, TryJoinMode<E>, _, _, _>(work);
        Then::new(group, move |ended| tried(what, ended, ordered))
    }

    /// Runs the work and returns every result, `Ok` or `Err`: one error does not cancel
    /// the rest (Python's `gather(..., return_exceptions=True)`).
    ///
    /// Results come in input order, or in completion order after
    /// [`unordered`](Map::unordered).
    ///
    /// # Cancel safety
    ///
    /// As for [`join`](Map::join).
    ///
    /// # Panics
    ///
    /// As for [`join`](Map::join).
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let r = hatchery::map(4, 0..4, |i| async move {
    ///     if i % 2 == 1 { Err(i) } else { Ok(i) }
    /// })
    /// .settle()
    /// .await;
    /// assert_eq!(r, [Ok(0), Err(1), Ok(2), Err(3)]);
    /// # });
    /// ```
    pub fn settle<Fut, T, E>(self) -> impl Future<Output = Vec<Result<T, E>>>
    where
        F: FnMut(S::Item) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        self.join()
    }
}
