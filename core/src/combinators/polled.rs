//! The combinators over the polled kind of children ([`Polled`]): the futures are polled
//! by the caller's task, may borrow from it and need not be `Send`. The operations are
//! the spawning kind's (`ops.rs`), over a group kept in place for a few futures
//! (`kind::fixed`) or a polled nursery for more (`run.rs`).

use std::future::Future;
use std::panic::Location;

use futures_core::Stream;

use super::map::Map;
use super::ops::InputIter;
use super::ops::{self, first_ok, joined, tried, winner, Then};
use super::run::{all_polled, run};
use crate::error::NurseryError;
use crate::kind::mode::{JoinMode, RaceMode, RaceOkMode, TryJoinMode};
use crate::kind::polled::{Polled, PolledOf};

/// The combinators whose futures the caller's task polls: the same operations as
/// [`join`](crate::join()), [`try_join`](crate::try_join()), [`settle`](crate::settle),
/// [`race`](crate::race()), [`race_ok`](crate::race_ok) and [`map`](crate::map), whose
/// futures are tasks of the executor, for futures that borrow or are not `Send`. They run
/// concurrently, never in parallel, and each combinator's future is `Send` exactly when
/// its futures are.
impl Polled<'_> {
    /// Runs every future concurrently in the caller's task and returns their outputs in
    /// input order: [`join`](crate::join()) for futures that borrow, or are not `Send`.
    ///
    /// The same operation as [`join`](crate::join()), over the polled kind of children:
    /// the futures are read at the call and polled by the caller's task (in slots in place
    /// for up to 32, by a polled nursery for more). They may borrow from the caller, run concurrently but not in
    /// parallel, and this future is `Send` exactly when they are.
    ///
    /// # Cancel safety
    ///
    /// If the enclosing scope is cancelled, every future is cancelled at its next
    /// suspension point and awaited, and this future never completes (the scope returns).
    /// Dropping it from outside hatchery drops every future at once.
    ///
    /// # Panics
    ///
    /// If a future panics: the others are cancelled and, once all have finished, the panic
    /// is resumed here. When first polled outside a hatchery runtime, if a future asks for
    /// its context. When kept past the scope it was first polled in, reached by that scope's
    /// cancellation there, and awaited after that scope has finished (rule I4): its outputs
    /// are gone, and the message says so.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{sleep, Polled};
    ///
    /// struct Client { base: u64 }
    ///
    /// async fn fetch(client: &Client, id: u64) -> u64 {
    ///     sleep(Duration::from_millis(5 - id)).await;
    ///     client.base + id
    /// }
    ///
    /// # hatchery_smol::run(async {
    /// let client = Client { base: 100 };
    /// let out = Polled::join([fetch(&client, 1), fetch(&client, 2)]).await;
    /// assert_eq!(out, [101, 102]); // input order; `client` was only borrowed
    /// # });
    /// ```
    #[track_caller]
    #[inline]
    pub fn join<'env, I>(futs: I) -> impl Future<Output = Vec<<I::Item as Future>::Output>> + 'env
    where
        I: IntoIterator,
        I::IntoIter: 'env,
        I::Item: Future + 'env,
    {
        Then::new(
            all_polled::<PolledOf<I::Item>, JoinMode, _>(futs.into_iter(), Location::caller()),
            |ended| joined("Polled::join", ended, true),
        )
    }

    /// Runs every fallible future concurrently in the caller's task to its end and returns
    /// every `Result`, in input order: [`settle`](crate::settle) for futures that borrow. An error
    /// does not cancel the others: this is [`join`](Self::join) for fallible futures, named so that the
    /// choice between failing fast ([`try_join`](Self::try_join)) and collecting every outcome is visible
    /// where it is made.
    ///
    /// # Cancel safety
    ///
    /// As [`join`](Self::join).
    ///
    /// # Panics
    ///
    /// As [`join`](Self::join).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::Polled;
    ///
    /// # hatchery_smol::run(async {
    /// let inputs = ["1", "x", "3"];
    /// let parse = |i: usize| {
    ///     let inputs = &inputs;
    ///     async move { inputs[i].parse::<u32>() }
    /// };
    /// let results = Polled::settle([parse(0), parse(1), parse(2)]).await;
    /// assert_eq!(results[0], Ok(1));
    /// assert!(results[1].is_err());
    /// assert_eq!(results[2], Ok(3));
    /// # });
    /// ```
    #[track_caller]
    #[inline]
    pub fn settle<'env, I, T, E>(futs: I) -> impl Future<Output = Vec<Result<T, E>>> + 'env
    where
        I: IntoIterator,
        I::IntoIter: 'env,
        I::Item: Future<Output = Result<T, E>> + 'env,
        T: 'env,
        E: 'env,
    {
        Then::new(
            all_polled::<PolledOf<I::Item>, JoinMode, _>(futs.into_iter(), Location::caller()),
            |ended| joined("Polled::settle", ended, true),
        )
    }

    /// Runs every future concurrently in the caller's task and returns their values in input
    /// order, or fails fast: [`try_join`](crate::try_join()) for futures that borrow.
    ///
    /// The first future to return `Err` cancels the others (each at its next suspension
    /// point); once all have finished, every error is returned, in the order they happened.
    ///
    /// # Cancel safety
    ///
    /// If the enclosing scope is cancelled, every future is cancelled and awaited, and this
    /// future never completes, unless a future had failed by then: the errors are returned.
    /// Dropping it from outside hatchery drops every future at once.
    ///
    /// # Panics
    ///
    /// As [`join`](Self::join).
    ///
    /// # Errors
    ///
    /// [`NurseryError::Failed`] with every error, in the order they happened.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::Polled;
    ///
    /// # hatchery_smol::run(async {
    /// let limits = [3, 5];
    /// let check = |i: usize, v: u32| {
    ///     let limits = &limits;
    ///     async move { if v <= limits[i] { Ok(v) } else { Err(format!("{v} too big")) } }
    /// };
    /// assert_eq!(Polled::try_join([check(0, 2), check(1, 4)]).await.unwrap(), [2, 4]);
    /// let err = Polled::try_join([check(0, 2), check(1, 9)]).await.unwrap_err();
    /// assert_eq!(err.into_errors(), ["9 too big"]);
    /// # });
    /// ```
    #[track_caller]
    #[inline]
    pub fn try_join<'env, I, T, E>(
        futs: I,
    ) -> impl Future<Output = Result<Vec<T>, NurseryError<E>>> + 'env
    where
        I: IntoIterator,
        I::IntoIter: 'env,
        I::Item: Future<Output = Result<T, E>> + 'env,
        T: 'env,
        E: 'env,
    {
        let group = all_polled::<PolledOf<I::Item>, TryJoinMode<E>, _>(
            futs.into_iter(),
            Location::caller(),
        );
        Then::new(group, |ended| tried("Polled::try_join", ended, true))
    }

    /// Runs the futures concurrently in the caller's task and returns the first output; the
    /// others are cancelled and awaited: [`race`](crate::race()) for futures that borrow.
    ///
    /// # Cancel safety
    ///
    /// If the enclosing scope is cancelled, every future is cancelled and awaited, and this
    /// future never completes. Dropping it from outside hatchery drops every future at once.
    ///
    /// # Panics
    ///
    /// If `futs` is empty (there would be no winner). If a future panics, as [`join`](Self::join).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{sleep, Polled};
    ///
    /// # hatchery_smol::run(async {
    /// let replicas = ["slow", "fast"];
    /// let ask = |i: usize, ms: u64| {
    ///     let replicas = &replicas;
    ///     async move { sleep(Duration::from_millis(ms)).await; replicas[i] }
    /// };
    /// assert_eq!(Polled::race([ask(0, 3600_000), ask(1, 1)]).await, "fast");
    /// # });
    /// ```
    #[track_caller]
    #[inline]
    pub fn race<'env, I>(futs: I) -> impl Future<Output = <I::Item as Future>::Output> + 'env
    where
        I: IntoIterator,
        I::IntoIter: 'env,
        I::Item: Future + 'env,
    {
        let group = all_polled::<PolledOf<I::Item>, RaceMode, _>(
            ops::racers(futs, "Polled::race"),
            Location::caller(),
        );
        Then::new(group, |ended| winner("Polled::race", ended))
    }

    /// Runs the futures concurrently in the caller's task and returns the first `Ok` value;
    /// the others are cancelled and awaited. If all fail, returns every error, in the order
    /// they happened: [`race_ok`](crate::race_ok) for futures that borrow.
    ///
    /// # Cancel safety
    ///
    /// As [`race`](Self::race).
    ///
    /// # Panics
    ///
    /// If `futs` is empty. If a future panics, as [`join`](Self::join).
    ///
    /// # Errors
    ///
    /// [`NurseryError::Failed`] with every error, if every future failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::Polled;
    ///
    /// # hatchery_smol::run(async {
    /// let mirrors = ["down", "up"];
    /// let get = |i: usize| {
    ///     let mirrors = &mirrors;
    ///     async move { if mirrors[i] == "up" { Ok(i) } else { Err(mirrors[i]) } }
    /// };
    /// assert_eq!(Polled::race_ok([get(0), get(1)]).await.unwrap(), 1);
    /// # });
    /// ```
    #[track_caller]
    #[inline]
    pub fn race_ok<'env, I, T, E>(
        futs: I,
    ) -> impl Future<Output = Result<T, NurseryError<E>>> + 'env
    where
        I: IntoIterator,
        I::IntoIter: 'env,
        I::Item: Future<Output = Result<T, E>> + 'env,
        T: 'env,
        E: 'env,
    {
        let group = all_polled::<PolledOf<I::Item>, RaceOkMode, _>(
            ops::racers(futs, "Polled::race_ok"),
            Location::caller(),
        );
        Then::new(group, |ended| first_ok("Polled::race_ok", ended))
    }

    /// Applies `f` to every input and runs the futures it makes in the caller's task, at
    /// most `limit` at a time: [`map`](crate::map) for futures that borrow. Finish it with
    /// [`Map::join`], [`Map::try_join`] or [`Map::settle`] (after [`Map::unordered`], in
    /// the order they complete), as [`map`](crate::map)'s.
    ///
    /// An input is read, and its future made, only when fewer than `limit` futures run.
    ///
    /// # Panics
    ///
    /// If `limit` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::time::Duration;
    /// use hatchery::{sleep, Polled};
    ///
    /// # hatchery_smol::run(async {
    /// let (running, peak) = (Cell::new(0), Cell::new(0));
    /// let out = Polled::map(2, 1..=5, |i| {
    ///     let (running, peak) = (&running, &peak);
    ///     async move {
    ///         running.set(running.get() + 1);
    ///         peak.set(peak.get().max(running.get()));
    ///         sleep(Duration::from_millis(1)).await;
    ///         running.set(running.get() - 1);
    ///         i * 10
    ///     }
    /// })
    /// .join()
    /// .await;
    /// assert_eq!(out, [10, 20, 30, 40, 50]);
    /// assert_eq!(peak.get(), 2);
    /// # });
    /// ```
    #[track_caller]
    pub fn map<I, F, Fut>(
        limit: usize,
        inputs: I,
        f: F,
    ) -> Map<InputIter<I::IntoIter>, F, Polled<'static>>
    where
        I: IntoIterator,
        F: FnMut(I::Item) -> Fut,
        Fut: Future,
    {
        Map::new(
            limit,
            InputIter::new(inputs.into_iter()),
            f,
            "Polled::map",
            Location::caller(),
        )
    }
}

/// The polled kind's: futures polled in the caller's task, which may borrow.
impl<S: Stream, F> Map<S, F, Polled<'static>> {
    /// Runs every future and returns their outputs in input order (or in completion
    /// order after [`unordered`](Map::unordered)), as [`join`](Self::join) does.
    ///
    /// # Cancel safety
    ///
    /// As [`join`](Self::join): no input is read after the enclosing scope is cancelled.
    ///
    /// # Panics
    ///
    /// As [`join`](Self::join).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::Polled;
    ///
    /// # hatchery_smol::run(async {
    /// let words = ["a", "bb"];
    /// let lens = Polled::map(1, &words, |w| async move { w.len() }).join().await;
    /// assert_eq!(lens, [1, 2]);
    /// # });
    /// ```
    pub fn join<Fut>(self) -> impl Future<Output = Vec<Fut::Output>>
    where
        F: FnMut(S::Item) -> Fut,
        Fut: Future,
    {
        let (work, ordered, what) = self.work();
        let group = run::<PolledOf<Fut>, JoinMode, _, _, _>(work);
        Then::new(group, move |ended| joined(what, ended, ordered))
    }

    /// Runs the futures and returns their values in input order, or fails fast, as
    /// [`try_join`](Self::try_join) does; after a failure, no more input is read.
    ///
    /// # Cancel safety
    ///
    /// As [`try_join`](Self::try_join).
    ///
    /// # Panics
    ///
    /// As [`join`](Self::join).
    ///
    /// # Errors
    ///
    /// [`NurseryError::Failed`] with every error, in the order they happened.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::Polled;
    ///
    /// # hatchery_smol::run(async {
    /// let max = 2;
    /// let r = Polled::map(3, 0..5, |i| async move { if i <= max { Ok(i) } else { Err(i) } })
    ///     .try_join()
    ///     .await;
    /// assert_eq!(r.unwrap_err().into_errors()[0], 3);
    /// # });
    /// ```
    pub fn try_join<Fut, T, E>(self) -> impl Future<Output = Result<Vec<T>, NurseryError<E>>>
    where
        F: FnMut(S::Item) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let (work, ordered, what) = self.work();
        let group = run::<PolledOf<Fut>, TryJoinMode<E>, _, _, _>(work);
        Then::new(group, move |ended| tried(what, ended, ordered))
    }

    /// Runs every future to its end and returns every `Result`, in input order (or in
    /// completion order after [`unordered`](Map::unordered)): an error does not cancel
    /// the others, as [`settle`](Self::settle) does.
    ///
    /// # Cancel safety
    ///
    /// As [`join`](Map::join).
    ///
    /// # Panics
    ///
    /// As [`join`](Self::join).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::Polled;
    ///
    /// # hatchery_smol::run(async {
    /// let words = ["1", "x", "3"];
    /// let parsed = Polled::map(2, &words, |w| async move { w.parse::<u32>() }).settle().await;
    /// assert_eq!(parsed[0], Ok(1));
    /// assert!(parsed[1].is_err());
    /// # });
    /// ```
    pub fn settle<Fut, T, E>(self) -> impl Future<Output = Vec<Result<T, E>>>
    where
        F: FnMut(S::Item) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.join()
    }
}
