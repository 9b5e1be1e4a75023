//! The combinators that borrow: [`join`], [`try_join`], [`race`], [`race_ok`] and
//! bounded [`map`], each an inline nursery over futures of one type.

use std::convert::Infallible;
use std::fmt;
use std::future::{ready, Future, Ready};
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::engine::{Group as Children, Shared};
use super::fixed::{self, Fixed, JoinMode, RaceMode, RaceOkMode, Takes, TryJoinMode, VecSlots};
use crate::error::NurseryError;
use crate::group::GroupFuture;
use crate::sync::{OwnedSemaphorePermit, Semaphore};
use crate::trace;

pin_project! {
    /// A future of a combinator, with its index among the inputs, and the permit of a
    /// bounded `map` (released when it ends).
    struct Indexed<F: Future, O, E> {
        #[pin]
        fut: F,
        index: usize,
        permit: Option<OwnedSemaphorePermit>,
        split: fn(F::Output) -> Result<O, E>,
    }
}

impl<F: Future, O, E> Future for Indexed<F, O, E> {
    type Output = Result<(usize, O), E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.fut.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(out) => {
                this.permit.take();
                Poll::Ready((this.split)(out).map(|o| (*this.index, o)))
            }
        }
    }
}

type Child<F, O, E> = Pin<Box<Indexed<F, O, E>>>;

/// The output that stops a group (`race`): the first one cancels the rest.
type Stop<O> = Option<fn(&O) -> bool>;

/// The shared state of a bounded map's group.
type MapShared<F, O, E> = Arc<Shared<E, Child<F, O, E>>>;

/// The outputs of a group in input order.
fn ordered<O>(mut outputs: Vec<(usize, O)>) -> Vec<O> {
    outputs.sort_unstable_by_key(|(i, _)| *i);
    outputs.into_iter().map(|(_, o)| o).collect()
}

pin_project! {
    /// Runs every input at once (no body of its own) with an inline nursery's engine: the
    /// path of `join`, `try_join`, `race` and `race_ok` for more than [`fixed::MAX`]
    /// futures, whose per-future wakers poll only those that were woken.
    struct All<F: Future, O, E> {
        futs: Option<Vec<F>>,
        split: fn(F::Output) -> Result<O, E>,
        #[pin]
        group: GroupFuture<Children<Child<F, O, E>, (usize, O)>, Ready<Result<(), E>>, (), E>,
    }
}

impl<F: Future, O, E> Future for All<F, O, E> {
    type Output = Result<Vec<O>, NurseryError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (futs, split) = (this.futs, *this.split);
        let make = |shared: &MapShared<F, O, E>| {
            let futs = futs
                .take()
                .expect("hatchery: combinator polled after completion");
            for (index, fut) in futs.into_iter().enumerate() {
                let child = Box::pin(Indexed {
                    fut,
                    index,
                    permit: None,
                    split,
                });
                if shared.push(child, shared.child_node(), None).is_err() {
                    unreachable!("hatchery: internal error: a new group is closed");
                }
            }
            ready(Ok(()))
        };
        this.group
            .poll_group(cx, make, |_| trace::failed_borrowed::<E>(false))
            .map_ok(|((), outputs)| ordered(outputs))
    }
}

pin_project! {
    /// A combinator's group: the fast path for a few futures, the engine for many
    /// (boxed: the group is moved into the caller's future, and a join of two should
    /// not move the engine's state around with it). `M` is the combinator's [`Mode`].
    #[project = GroupProj]
    enum Group<F: Future, M: Takes<F::Output>> {
        Fixed { #[pin] fixed: Fixed<VecSlots<F, M>> },
        Engine { all: Pin<Box<All<F, M::Value, M::Error>>> },
    }
}

impl<F, M> Group<F, M>
where
    F: Future,
    M: Takes<F::Output>,
{
    /// The group of `futs`; `race` (a mode that stops) needs one at least.
    #[track_caller]
    fn new<I>(futs: I, what: &str) -> Self
    where
        I: IntoIterator<Item = F>,
    {
        let mut futs = futs.into_iter();
        let (first, second) = (futs.next(), futs.next());
        assert!(
            !M::STOPS || first.is_some(),
            "hatchery: `inline::{what}` of no futures"
        );
        // No allocation for two futures or fewer.
        let rest: Vec<F> = futs.collect();
        if rest.len() + 2 <= fixed::MAX {
            return Group::Fixed {
                fixed: Fixed::new(VecSlots::new(first, second, rest), Location::caller()),
            };
        }
        let futs = first.into_iter().chain(second).chain(rest).collect();
        let stop: Stop<(usize, M::Value)> = match M::STOPS {
            true => Some(|(_, value)| M::stops(value)),
            false => None,
        };
        Group::Engine {
            all: Box::pin(All {
                futs: Some(futs),
                split: M::split,
                group: GroupFuture::new(
                    Children::new(stop),
                    trace::Sited::inline(Location::caller()),
                    None,
                ),
            }),
        }
    }
}

impl<F, M> Future for Group<F, M>
where
    F: Future,
    M: Takes<F::Output>,
{
    type Output = Result<Vec<M::Value>, NurseryError<M::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GroupProj::Fixed { fixed } => fixed.poll(cx),
            GroupProj::Engine { all } => all.as_mut().poll(cx),
        }
    }
}

pin_project! {
    /// A combinator's group, its outputs (`A`) turned into the combinator's. `A` is a
    /// parameter, not `F::Output`: that projection through the group's `Future` impl
    /// (which needs `F: 'env`) in a field's type would make rustc unable to prove a
    /// future that awaits this one `Send` when the futures borrow from it.
    struct Then<F, A, T> {
        #[pin]
        fut: F,
        then: fn(A) -> T,
    }
}

impl<F: Future<Output = A>, A, T> Future for Then<F, A, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.project();
        this.fut.poll(cx).map(*this.then)
    }
}

/// Outer cancellation never returns from a combinator that has no error to report: the
/// nursery stays pending. `Cancelled` comes only from a kept combinator whose scope has
/// finished (rule K).
#[track_caller]
pub(crate) fn no_errors<T>(r: Result<T, NurseryError<Infallible>>) -> T {
    match r {
        Ok(v) => v,
        Err(NurseryError::Failed(never)) => match never.into_iter().next() {
            Some(e) => match e {},
            None => unreachable!("hatchery: internal error: a failure without an error"),
        },
        Err(NurseryError::Cancelled) => kept_cancelled(),
    }
}

/// A `try_join`'s result, which is never `Cancelled` (rule G4) but from a combinator kept
/// past the scope that cancelled it: that panics, as for the other combinators (G5).
#[track_caller]
pub(crate) fn not_kept<T, E>(r: Result<T, NurseryError<E>>) -> Result<T, NurseryError<E>> {
    if let Err(NurseryError::Cancelled) = r {
        kept_cancelled();
    }
    r
}

#[cold]
#[track_caller]
fn kept_cancelled() -> ! {
    panic!(
        "hatchery: an inline combinator kept past the scope it was first polled in was \
         cancelled by that scope, and awaited after it finished: its outputs are gone"
    )
}

/// Runs every future concurrently in the caller's task and returns their outputs in
/// input order: [`crate::join()`] for futures that borrow, or are not `Send`.
///
/// The futures are polled by an inline nursery (see the [module docs](super)): they
/// may borrow from the caller, run concurrently but not in parallel, and this future is
/// `Send` exactly when they are.
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
/// is resumed here. When first polled outside a hatchery runtime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{inline, sleep};
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
/// let out = inline::join([fetch(&client, 1), fetch(&client, 2)]).await;
/// assert_eq!(out, [101, 102]); // input order; `client` was only borrowed
/// # });
/// ```
#[track_caller]
pub fn join<'env, I>(futs: I) -> impl Future<Output = Vec<<I::Item as Future>::Output>> + 'env
where
    I: IntoIterator,
    I::IntoIter: 'env,
    I::Item: Future + 'env,
{
    Then {
        fut: Group::<_, JoinMode>::new(futs, "join"),
        then: no_errors,
    }
}

/// Runs every fallible future concurrently in the caller's task to its end and returns
/// every `Result`, in input order: [`crate::settle`] for futures that borrow. An error
/// does not cancel the others: this is [`join`] for fallible futures, named so that the
/// choice between failing fast ([`try_join`]) and collecting every outcome is visible
/// where it is made.
///
/// # Cancel safety
///
/// As [`join`].
///
/// # Panics
///
/// As [`join`].
///
/// # Examples
///
/// ```
/// use hatchery::inline;
///
/// # hatchery_smol::run(async {
/// let inputs = ["1", "x", "3"];
/// let parse = |i: usize| {
///     let inputs = &inputs;
///     async move { inputs[i].parse::<u32>() }
/// };
/// let results = inline::settle([parse(0), parse(1), parse(2)]).await;
/// assert_eq!(results[0], Ok(1));
/// assert!(results[1].is_err());
/// assert_eq!(results[2], Ok(3));
/// # });
/// ```
#[track_caller]
pub fn settle<'env, I, T, E>(futs: I) -> impl Future<Output = Vec<Result<T, E>>> + 'env
where
    I: IntoIterator,
    I::IntoIter: 'env,
    I::Item: Future<Output = Result<T, E>> + 'env,
    T: 'env,
    E: 'env,
{
    Then {
        fut: Group::<_, JoinMode>::new(futs, "settle"),
        then: no_errors,
    }
}

/// Runs every future concurrently in the caller's task and returns their values in input
/// order, or fails fast: [`crate::try_join()`] for futures that borrow.
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
/// As [`join`].
///
/// # Errors
///
/// [`NurseryError::Failed`] with every error, in the order they happened.
///
/// # Examples
///
/// ```
/// use hatchery::inline;
///
/// # hatchery_smol::run(async {
/// let limits = [3, 5];
/// let check = |i: usize, v: u32| {
///     let limits = &limits;
///     async move { if v <= limits[i] { Ok(v) } else { Err(format!("{v} too big")) } }
/// };
/// assert_eq!(inline::try_join([check(0, 2), check(1, 4)]).await.unwrap(), [2, 4]);
/// let err = inline::try_join([check(0, 2), check(1, 9)]).await.unwrap_err();
/// assert_eq!(err.into_errors(), ["9 too big"]);
/// # });
/// ```
#[track_caller]
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
    Then {
        fut: Group::<_, TryJoinMode<E>>::new(futs, "try_join"),
        then: not_kept,
    }
}

/// Runs the futures concurrently in the caller's task and returns the first output; the
/// others are cancelled and awaited: [`crate::race()`] for futures that borrow.
///
/// # Cancel safety
///
/// If the enclosing scope is cancelled, every future is cancelled and awaited, and this
/// future never completes. Dropping it from outside hatchery drops every future at once.
///
/// # Panics
///
/// If `futs` is empty (there would be no winner). If a future panics, as [`join`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{inline, sleep};
///
/// # hatchery_smol::run(async {
/// let replicas = ["slow", "fast"];
/// let ask = |i: usize, ms: u64| {
///     let replicas = &replicas;
///     async move { sleep(Duration::from_millis(ms)).await; replicas[i] }
/// };
/// assert_eq!(inline::race([ask(0, 3600_000), ask(1, 1)]).await, "fast");
/// # });
/// ```
#[track_caller]
pub fn race<'env, I>(futs: I) -> impl Future<Output = <I::Item as Future>::Output> + 'env
where
    I: IntoIterator,
    I::IntoIter: 'env,
    I::Item: Future + 'env,
{
    Then {
        fut: Group::<_, RaceMode>::new(futs, "race"),
        then: |r: Result<Vec<_>, _>| match no_errors(r).into_iter().next() {
            Some(out) => out,
            None => unreachable!("hatchery: internal error: a race without a winner"),
        },
    }
}

/// Runs the futures concurrently in the caller's task and returns the first `Ok` value;
/// the others are cancelled and awaited. If all fail, returns every error, in the order
/// they happened: [`crate::race_ok`] for futures that borrow.
///
/// # Cancel safety
///
/// As [`race`].
///
/// # Panics
///
/// If `futs` is empty. If a future panics, as [`join`].
///
/// # Errors
///
/// [`NurseryError::Failed`] with every error, if every future failed.
///
/// # Examples
///
/// ```
/// use hatchery::inline;
///
/// # hatchery_smol::run(async {
/// let mirrors = ["down", "up"];
/// let get = |i: usize| {
///     let mirrors = &mirrors;
///     async move { if mirrors[i] == "up" { Ok(i) } else { Err(mirrors[i]) } }
/// };
/// assert_eq!(inline::race_ok([get(0), get(1)]).await.unwrap(), 1);
/// # });
/// ```
#[track_caller]
pub fn race_ok<'env, I, T, E>(futs: I) -> impl Future<Output = Result<T, NurseryError<E>>> + 'env
where
    I: IntoIterator,
    I::IntoIter: 'env,
    I::Item: Future<Output = Result<T, E>> + 'env,
    T: 'env,
    E: 'env,
{
    Then {
        fut: Group::<_, RaceOkMode>::new(futs, "race_ok"),
        then: |r| {
            let mut errors = Vec::new();
            for r in no_errors(r) {
                match r {
                    Ok(v) => return Ok(v),
                    Err(e) => errors.push(e),
                }
            }
            Err(NurseryError::Failed(errors))
        },
    }
}

/// Applies `f` to every input and runs the futures it makes in the caller's task, at
/// most `limit` at a time: [`crate::map`] for futures that borrow. Finish it with
/// [`Map::join`], [`Map::try_join`] or [`Map::settle`] (after [`Map::unordered`], in
/// the order they complete), as [`crate::map`]'s.
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
/// use hatchery::{inline, sleep};
///
/// # hatchery_smol::run(async {
/// let (running, peak) = (Cell::new(0), Cell::new(0));
/// let out = inline::map(2, 1..=5, |i| {
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
pub fn map<I, F, Fut>(limit: usize, inputs: I, f: F) -> Map<I::IntoIter, F>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future,
{
    assert!(limit > 0, "hatchery: `inline::map` with a limit of zero");
    Map {
        limit,
        inputs: inputs.into_iter(),
        f,
        ordered: true,
        at: Location::caller(),
    }
}

/// A bounded map over inputs, from [`map`]: finish it with [`join`](Map::join),
/// [`try_join`](Map::try_join) or [`settle`](Map::settle), the methods of
/// [`crate::futures::Map`].
///
/// # Examples
///
/// ```
/// use hatchery::inline::{self, Map};
///
/// # hatchery_smol::run(async {
/// let base = 7;
/// let m: Map<_, _> = inline::map(4, 0..3, |i| async move { base + i });
/// assert_eq!(m.join().await, [7, 8, 9]);
/// # });
/// ```
#[must_use = "a `Map` does nothing until `join`, `try_join` or `settle` is awaited"]
pub struct Map<I, F> {
    limit: usize,
    inputs: I,
    f: F,
    /// In input order (else in completion order: `unordered`).
    ordered: bool,
    // Where `map` was called: the site of its group's span (`tracing` feature).
    at: &'static Location<'static>,
}

impl<I, F> fmt::Debug for Map<I, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("limit", &self.limit)
            .field("ordered", &self.ordered)
            .finish_non_exhaustive()
    }
}

impl<I, F> Map<I, F> {
    /// Collects outputs in the order the futures complete instead of the input order,
    /// as [`crate::futures::Map::unordered`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{inline, sleep};
    /// use hatchery::testing::virtual_time;
    ///
    /// # hatchery_smol::run(virtual_time(async {
    /// let order = inline::map(3, [60u64, 1, 25], |secs| async move {
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

    /// Runs every future and returns their outputs in input order (or in completion
    /// order after [`unordered`](Map::unordered)), as [`join`] does.
    ///
    /// # Cancel safety
    ///
    /// As [`join`]: no input is read after the enclosing scope is cancelled.
    ///
    /// # Panics
    ///
    /// As [`join`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::inline;
    ///
    /// # hatchery_smol::run(async {
    /// let words = ["a", "bb"];
    /// let lens = inline::map(1, &words, |w| async move { w.len() }).join().await;
    /// assert_eq!(lens, [1, 2]);
    /// # });
    /// ```
    pub fn join<'env, Fut>(self) -> impl Future<Output = Vec<Fut::Output>> + 'env
    where
        I: Iterator + 'env,
        F: FnMut(I::Item) -> Fut + 'env,
        Fut: Future + 'env,
    {
        let order = self.ordered;
        let run = bounded(self, Ok::<_, Infallible>);
        async move { in_order(order, no_errors(run.await)) }
    }

    /// Runs the futures and returns their values in input order, or fails fast, as
    /// [`try_join`] does; after a failure, no more input is read.
    ///
    /// # Cancel safety
    ///
    /// As [`try_join`].
    ///
    /// # Panics
    ///
    /// As [`join`].
    ///
    /// # Errors
    ///
    /// [`NurseryError::Failed`] with every error, in the order they happened.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::inline;
    ///
    /// # hatchery_smol::run(async {
    /// let max = 2;
    /// let r = inline::map(3, 0..5, |i| async move { if i <= max { Ok(i) } else { Err(i) } })
    ///     .try_join()
    ///     .await;
    /// assert_eq!(r.unwrap_err().into_errors()[0], 3);
    /// # });
    /// ```
    pub fn try_join<'env, Fut, T, E>(
        self,
    ) -> impl Future<Output = Result<Vec<T>, NurseryError<E>>> + 'env
    where
        I: Iterator + 'env,
        F: FnMut(I::Item) -> Fut + 'env,
        Fut: Future<Output = Result<T, E>> + 'env,
        T: 'env,
        E: 'env,
    {
        let order = self.ordered;
        let run = bounded(self, |r| r);
        async move { not_kept(run.await).map(|outputs| in_order(order, outputs)) }
    }

    /// Runs every future to its end and returns every `Result`, in input order (or in
    /// completion order after [`unordered`](Map::unordered)): an error does not cancel
    /// the others, as [`settle`] does.
    ///
    /// # Cancel safety
    ///
    /// As [`join`](Map::join).
    ///
    /// # Panics
    ///
    /// As [`join`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::inline;
    ///
    /// # hatchery_smol::run(async {
    /// let words = ["1", "x", "3"];
    /// let parsed = inline::map(2, &words, |w| async move { w.parse::<u32>() }).settle().await;
    /// assert_eq!(parsed[0], Ok(1));
    /// assert!(parsed[1].is_err());
    /// # });
    /// ```
    pub fn settle<'env, Fut, T, E>(self) -> impl Future<Output = Vec<Result<T, E>>> + 'env
    where
        I: Iterator + 'env,
        F: FnMut(I::Item) -> Fut + 'env,
        Fut: Future<Output = Result<T, E>> + 'env,
        T: 'env,
        E: 'env,
    {
        self.join()
    }
}

/// The outputs of a group in input order if `ordered`, else as they came (the order the
/// futures completed in).
fn in_order<O>(ordered: bool, outputs: Vec<(usize, O)>) -> Vec<O> {
    match ordered {
        true => self::ordered(outputs),
        false => outputs.into_iter().map(|(_, o)| o).collect(),
    }
}

/// A bounded map's nursery: its body reads an input whenever a permit is free.
fn bounded<'env, I, F, Fut, O, E>(
    map: Map<I, F>,
    split: fn(Fut::Output) -> Result<O, E>,
) -> impl Future<Output = Result<Vec<(usize, O)>, NurseryError<E>>> + 'env
where
    I: Iterator + 'env,
    F: FnMut(I::Item) -> Fut + 'env,
    Fut: Future + 'env,
    O: 'env,
    E: 'env,
{
    let Map {
        limit,
        inputs,
        mut f,
        at,
        ..
    } = map;
    let mut make = Some(move |shared: &MapShared<Fut, O, E>| {
        let shared = shared.clone();
        async move {
            let permits = Semaphore::new(limit);
            for (index, input) in inputs.enumerate() {
                let permit = permits.acquire_owned().await;
                let child = Box::pin(Indexed {
                    fut: f(input),
                    index,
                    permit: Some(permit),
                    split,
                });
                if shared.push(child, shared.child_node(), None).is_err() {
                    unreachable!("hatchery: internal error: an open group is closed");
                }
            }
            Ok(())
        }
    });
    let mut group = Box::pin(GroupFuture::new(
        Children::new(None),
        trace::Sited::inline(at),
        None,
    ));
    std::future::poll_fn(move |cx| {
        group
            .as_mut()
            .poll_group(
                cx,
                |shared| (make.take().expect("made once"))(shared),
                |_| trace::failed_borrowed::<E>(false),
            )
            .map(|r| r.map(|((), outputs)| outputs))
    })
}
