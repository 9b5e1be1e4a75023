//! The combinators over the local kind of children ([`Local`]): the futures are tasks of
//! the thread's local executor and need not be `Send`. The operations are the spawning
//! kind's (`ops.rs`), over a nursery of the local kind (`run.rs`).

use std::future::Future;
use std::panic::Location;

use futures_core::Stream;

use super::map::Map;
use super::ops::{self, first_ok, joined, tried, winner, InputIter, Then, Work};
use super::run::run;
use crate::error::NurseryError;
use crate::kind::mode::{JoinMode, RaceMode, RaceOkMode, TryJoinMode};
use crate::kind::Local;

/// The combinators whose futures are tasks of the thread's local executor: the same
/// operations as [`join`](crate::join()), [`try_join`](crate::try_join()),
/// [`settle`](crate::settle), [`race`](crate::race()), [`race_ok`](crate::race_ok) and
/// [`map`](crate::map), for `'static` futures that are not `Send` (`Rc`, `RefCell`). Each
/// future is a task of its own (the executor's fairness, the task tree and `tracing` see
/// it), on the thread that awaits the combinator. On a thread without a local runtime
/// they panic as the first future is spawned, with what to do.
impl Local {
    /// Runs every future concurrently as a task of this thread's local executor and
    /// returns their outputs in input order: [`join`](crate::join()) for futures that are
    /// not `Send`.
    ///
    /// # Cancel safety
    ///
    /// As [`join`](crate::join()): if the enclosing scope is cancelled, every future is
    /// cancelled at its next suspension point and awaited, and this future never
    /// completes (the scope returns). Dropping it from outside hatchery cancels every
    /// future, which its task then drops.
    ///
    /// # Panics
    ///
    /// As [`join`](crate::join()); and where no local runtime is installed on the thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use hatchery::Local;
    ///
    /// # hatchery_smol::run_local(async {
    /// let base = Rc::new(100); // not `Send`
    /// let out = Local::join((1..=3).map(|i| {
    ///     let base = base.clone();
    ///     async move { *base + i }
    /// }))
    /// .await;
    /// assert_eq!(out, [101, 102, 103]); // input order
    /// # });
    /// ```
    #[track_caller]
    pub fn join<I>(futs: I) -> impl Future<Output = Vec<<I::Item as Future>::Output>>
    where
        I: IntoIterator,
        I::Item: Future + 'static,
        <I::Item as Future>::Output: 'static,
    {
        let work = Work::every(futs.into_iter(), Location::caller());
        Then::new(run::<Local, JoinMode, _, _, _>(work), |ended| {
            joined("Local::join", ended, true)
        })
    }

    /// Runs every fallible future concurrently as a task of this thread's local executor
    /// and returns their values in input order, or fails fast: [`try_join`](crate::try_join())
    /// for futures that are not `Send`.
    ///
    /// # Errors
    ///
    /// As [`try_join`](crate::try_join()): [`NurseryError::Failed`] with every error, in
    /// the order they happened.
    ///
    /// # Cancel safety
    ///
    /// As [`join`](Self::join); errors that happened before or during the enclosing
    /// scope's cancellation are still returned.
    ///
    /// # Panics
    ///
    /// As [`join`](Self::join).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use hatchery::{sleep, Local, NurseryError};
    ///
    /// # hatchery_tokio::run_local(async {
    /// let finished = Rc::new(Cell::new(0));
    /// let f = finished.clone();
    /// let slow = async move {
    ///     sleep(Duration::from_secs(3600)).await;
    ///     f.set(1);
    ///     Ok(())
    /// };
    /// let out = Local::try_join([
    ///     Box::pin(slow) as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>,
    ///     Box::pin(async { Err("no") }),
    /// ])
    /// .await;
    /// assert!(matches!(out, Err(NurseryError::Failed(ref e)) if e == &["no"]));
    /// assert_eq!(finished.get(), 0); // the slow one was cancelled
    /// # });
    /// ```
    #[track_caller]
    pub fn try_join<I, T, E>(futs: I) -> impl Future<Output = Result<Vec<T>, NurseryError<E>>>
    where
        I: IntoIterator,
        I::Item: Future<Output = Result<T, E>> + 'static,
        T: 'static,
        E: 'static,
    {
        let work = Work::every(futs.into_iter(), Location::caller());
        Then::new(run::<Local, TryJoinMode<E>, _, _, _>(work), |ended| {
            tried("Local::try_join", ended, true)
        })
    }

    /// Runs every fallible future concurrently as a task of this thread's local executor
    /// to its end and returns every `Result`, in input order: [`settle`](crate::settle)
    /// for futures that are not `Send`. An error does not cancel the others.
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
    /// use std::rc::Rc;
    /// use hatchery::Local;
    ///
    /// # hatchery_smol::run_local(async {
    /// let inputs = Rc::new(["1", "x", "3"]);
    /// let results = Local::settle((0..3).map(|i| {
    ///     let inputs = inputs.clone();
    ///     async move { inputs[i].parse::<u32>() }
    /// }))
    /// .await;
    /// assert_eq!(results[0], Ok(1));
    /// assert!(results[1].is_err());
    /// assert_eq!(results[2], Ok(3));
    /// # });
    /// ```
    #[track_caller]
    pub fn settle<I, T, E>(futs: I) -> impl Future<Output = Vec<Result<T, E>>>
    where
        I: IntoIterator,
        I::Item: Future<Output = Result<T, E>> + 'static,
        T: 'static,
        E: 'static,
    {
        let work = Work::every(futs.into_iter(), Location::caller());
        Then::new(run::<Local, JoinMode, _, _, _>(work), |ended| {
            joined("Local::settle", ended, true)
        })
    }

    /// Runs every future concurrently as a task of this thread's local executor and
    /// returns the output of the first to finish; the others are cancelled and awaited:
    /// [`race`](crate::race()) for futures that are not `Send`.
    ///
    /// # Cancel safety
    ///
    /// As [`race`](crate::race()): if the enclosing scope is cancelled, every future is
    /// cancelled and awaited, and this future never completes.
    ///
    /// # Panics
    ///
    /// As [`race`](crate::race()): when given no future; and where no local runtime is
    /// installed on the thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use hatchery::{sleep, Local};
    ///
    /// # hatchery_tokio::run_local(async {
    /// let name = Rc::new("fast"); // not `Send`
    /// let wait = |ms: u64, name: Rc<&'static str>| async move {
    ///     sleep(Duration::from_millis(ms)).await;
    ///     *name
    /// };
    /// let winner = Local::race([wait(3600_000, Rc::new("slow")), wait(1, name)]).await;
    /// assert_eq!(winner, "fast");
    /// # });
    /// ```
    #[track_caller]
    pub fn race<I>(futs: I) -> impl Future<Output = <I::Item as Future>::Output>
    where
        I: IntoIterator,
        I::Item: Future + 'static,
        <I::Item as Future>::Output: 'static,
    {
        // Read at the call, as documented.
        let futs: Vec<_> = ops::racers(futs, "Local::race").collect();
        let work = Work::every(futs.into_iter(), Location::caller());
        Then::new(run::<Local, RaceMode, _, _, _>(work), |ended| {
            winner("Local::race", ended)
        })
    }

    /// Runs every fallible future concurrently as a task of this thread's local executor
    /// and returns the first `Ok`; the others are cancelled and awaited:
    /// [`race_ok`](crate::race_ok) for futures that are not `Send`.
    ///
    /// # Errors
    ///
    /// As [`race_ok`](crate::race_ok): if every future fails, [`NurseryError::Failed`]
    /// with every error, in the order they happened.
    ///
    /// # Cancel safety
    ///
    /// As [`race`](Self::race).
    ///
    /// # Panics
    ///
    /// As [`race`](Self::race).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use hatchery::Local;
    ///
    /// # hatchery_smol::run_local(async {
    /// let mirrors = Rc::new(["down", "up"]);
    /// let first = Local::race_ok((0..2).map(|i| {
    ///     let mirrors = mirrors.clone();
    ///     async move { if mirrors[i] == "up" { Ok(i) } else { Err(mirrors[i]) } }
    /// }))
    /// .await;
    /// assert_eq!(first.ok(), Some(1));
    /// # });
    /// ```
    #[track_caller]
    pub fn race_ok<I, T, E>(futs: I) -> impl Future<Output = Result<T, NurseryError<E>>>
    where
        I: IntoIterator,
        I::Item: Future<Output = Result<T, E>> + 'static,
        T: 'static,
        E: 'static,
    {
        let futs: Vec<_> = ops::racers(futs, "Local::race_ok").collect();
        let work = Work::every(futs.into_iter(), Location::caller());
        Then::new(run::<Local, RaceOkMode, _, _, _>(work), |ended| {
            first_ok("Local::race_ok", ended)
        })
    }

    /// Runs `f` on each input with at most `limit` at once, each as a task of this
    /// thread's local executor: [`map`](crate::map) for futures that are not `Send`.
    /// Await [`join`](Map::join), [`try_join`](Map::try_join) or [`settle`](Map::settle)
    /// on the returned [`Map`].
    ///
    /// # Panics
    ///
    /// If `limit` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use hatchery::{sleep, Local};
    ///
    /// # hatchery_smol::run_local(async {
    /// let (running, peak) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    /// let out = Local::map(2, 1..=5, |i| {
    ///     let (running, peak) = (running.clone(), peak.clone());
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
    pub fn map<I, F, Fut>(limit: usize, inputs: I, f: F) -> Map<InputIter<I::IntoIter>, F, Local>
    where
        I: IntoIterator,
        F: FnMut(I::Item) -> Fut,
        Fut: Future,
    {
        let inputs = InputIter::new(inputs.into_iter());
        Map::new(limit, inputs, f, "Local::map", Location::caller())
    }
}

/// The local kind's: futures that are tasks of the thread's local executor.
impl<S: Stream, F> Map<S, F, Local> {
    /// Runs every future and returns their outputs in input order (or in completion
    /// order after [`unordered`](Map::unordered)), as [`Local::join`] does.
    ///
    /// # Cancel safety
    ///
    /// As [`Local::join`]: no input is read after the enclosing scope is cancelled.
    ///
    /// # Panics
    ///
    /// As [`Local::join`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use hatchery::Local;
    ///
    /// # hatchery_smol::run_local(async {
    /// let words = Rc::new(["a", "bb"]);
    /// let lens = Local::map(1, 0..2, |i| {
    ///     let words = words.clone();
    ///     async move { words[i].len() }
    /// })
    /// .join()
    /// .await;
    /// assert_eq!(lens, [1, 2]);
    /// # });
    /// ```
    pub fn join<Fut>(self) -> impl Future<Output = Vec<Fut::Output>>
    where
        F: FnMut(S::Item) -> Fut,
        Fut: Future + 'static,
        Fut::Output: 'static,
    {
        let (work, ordered, what) = self.work();
        let group = run::<Local, JoinMode, _, _, _>(work);
        Then::new(group, move |ended| joined(what, ended, ordered))
    }

    /// Runs the fallible futures, failing fast, as [`Local::try_join`] does; no input is
    /// read after a failure.
    ///
    /// # Errors
    ///
    /// As [`Local::try_join`].
    ///
    /// # Cancel safety
    ///
    /// As [`join`](Self::join).
    ///
    /// # Panics
    ///
    /// As [`Local::join`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::{Local, NurseryError};
    ///
    /// # hatchery_smol::run_local(async {
    /// let out = Local::map(1, ["1", "x", "3"], |s| async move { s.parse::<u32>() })
    ///     .try_join()
    ///     .await;
    /// assert!(matches!(out, Err(NurseryError::Failed(ref e)) if e.len() == 1));
    /// # });
    /// ```
    pub fn try_join<Fut, T, E>(self) -> impl Future<Output = Result<Vec<T>, NurseryError<E>>>
    where
        F: FnMut(S::Item) -> Fut,
        Fut: Future<Output = Result<T, E>> + 'static,
        T: 'static,
        E: 'static,
    {
        let (work, ordered, what) = self.work();
        let group = run::<Local, TryJoinMode<E>, _, _, _>(work);
        Then::new(group, move |ended| tried(what, ended, ordered))
    }

    /// Runs every fallible future to its end and returns every `Result`, as
    /// [`Local::settle`] does.
    ///
    /// # Cancel safety
    ///
    /// As [`join`](Self::join).
    ///
    /// # Panics
    ///
    /// As [`Local::join`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::Local;
    ///
    /// # hatchery_smol::run_local(async {
    /// let out = Local::map(2, ["1", "x"], |s| async move { s.parse::<u32>() })
    ///     .settle()
    ///     .await;
    /// assert_eq!(out[0], Ok(1));
    /// assert!(out[1].is_err());
    /// # });
    /// ```
    pub fn settle<Fut, T, E>(self) -> impl Future<Output = Vec<Result<T, E>>>
    where
        F: FnMut(S::Item) -> Fut,
        Fut: Future<Output = Result<T, E>> + 'static,
        T: 'static,
        E: 'static,
    {
        self.join()
    }
}
