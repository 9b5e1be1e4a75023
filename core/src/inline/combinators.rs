//! The inline kind of the combinators ([`Polled`]): futures polled by the caller's task,
//! which may borrow from it, in slots in place for a few (`fixed.rs`, the fast path) and
//! in an inline nursery's engine for more and for `map`; and the entry points of the
//! borrowing [`join`], [`try_join`], [`settle`], [`race`], [`race_ok`] and [`map`]. What
//! each combinator does is written once for both kinds (`combinators/ops.rs`).

use std::future::{poll_fn, Future};
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;

use super::engine::{Group as Children, Shared};
use super::fixed::{self, Fixed, Ordered, VecSlots};
use crate::combinators::feed::{feed, Admit, Permit};
use crate::combinators::mode::{JoinMode, RaceMode, RaceOkMode, Takes, TryJoinMode};
use crate::combinators::ops::{self, Ended, FirstOk, Joined, Outputs, Then, Tried, Winner, Work};
use crate::combinators::{InputIter, Map as AnyMap};
use crate::error::NurseryError;
use crate::group::GroupFuture;
use crate::trace;

/// The kind of children of the inline combinators: futures polled by the task that
/// awaits the combinator, stored as they are (so the combinator's future is `Send`
/// exactly when they are, and they may borrow). The `K` of an inline
/// [`Map`](crate::futures::Map), whose other kind is [`Spawned`](crate::Spawned).
///
/// A few futures (at most 32, known at the call: `join`, `try_join`, `race`, `race_ok`
/// and the tuple macros) are kept in slots in place and polled all on every wake-up,
/// with no allocation for two; more, and `map`'s, are children of an inline nursery's
/// engine, whose per-future wakers poll only those that were woken.
///
/// # Examples
///
/// ```
/// use hatchery::futures::{InputIter, Map};
/// use hatchery::inline::{self, Polled};
///
/// # hatchery_smol::run(async {
/// let base = 10;
/// let m: Map<InputIter<std::ops::Range<u32>>, _, Polled> =
///     inline::map(2, 0..3, |i| async move { base + i });
/// assert_eq!(m.join().await, [10, 11, 12]);
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Polled;

pin_project! {
    /// A future of a combinator, with its index among the inputs, and its place among
    /// those in flight (freed when it ends).
    struct Indexed<F: Future, O, E> {
        #[pin]
        fut: F,
        index: usize,
        permit: Option<Permit>,
        split: fn(F::Output) -> Result<O, E>,
    }
}

impl<F: Future, O, E> Future for Indexed<F, O, E> {
    type Output = Result<(usize, O), E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = (this.split)(ready!(this.fut.poll(cx)));
        if let (Err(_), Some(permit)) = (&out, &*this.permit) {
            permit.stop();
        }
        this.permit.take();
        Poll::Ready(out.map(|o| (*this.index, o)))
    }
}

type Child<F, O, E> = Pin<Box<Indexed<F, O, E>>>;

/// The shared state of a combinator's inline nursery.
type MapShared<F, O, E> = Arc<Shared<E, Child<F, O, E>>>;

/// The output that stops a group (`race`): the first one cancels the rest.
type Stop<O> = Option<fn(&O) -> bool>;

/// A combinator's inline nursery, as its body admits children into it.
struct Admitting<F: Future, O, E> {
    shared: MapShared<F, O, E>,
    split: fn(F::Output) -> Result<O, E>,
}

impl<F: Future, O, E> Admit<F> for Admitting<F, O, E> {
    fn is_cancelled(&self) -> bool {
        self.shared.node.is_cancelled()
    }

    fn admit(&mut self, index: usize, fut: F, permit: Option<Permit>) {
        let child = Box::pin(Indexed {
            fut,
            index,
            permit,
            split: self.split,
        });
        let shared = &self.shared;
        if shared.push(child, shared.child_node(), None).is_err() {
            unreachable!("hatchery: internal error: an open group is closed");
        }
    }
}

pin_project! {
    /// A combinator's group: the fast path for a few futures, the engine for many
    /// (boxed: the group is moved into the caller's future, and a join of two should
    /// not move the engine's state around with it).
    #[project = GroupProj]
    enum Group<A, B> {
        Fixed { #[pin] fixed: A },
        Engine { run: Pin<Box<B>> },
    }
}

impl<A: Future, B: Future<Output = A::Output>> Future for Group<A, B> {
    type Output = A::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<A::Output> {
        match self.project() {
            GroupProj::Fixed { fixed } => fixed.poll(cx),
            GroupProj::Engine { run } => run.as_mut().poll(cx),
        }
    }
}

/// Runs `work` in an inline nursery whose body admits the futures ([`feed`]); the mode
/// `M` takes their outputs.
fn run<M, S, F, Fut>(work: Work<S, F>) -> impl Future<Output = Ended<M::Value, M::Error>>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
    M: Takes<Fut::Output>,
{
    let stop: Stop<(usize, M::Value)> = M::STOPS.then_some(|(_, value)| M::stops(value));
    let mut group = Box::pin(GroupFuture::new(
        Children::new(stop),
        trace::Sited::inline(work.site),
        None,
    ));
    let mut make = Some(move |shared: &MapShared<Fut, M::Value, M::Error>| {
        let admitting = Admitting {
            shared: shared.clone(),
            split: M::split,
        };
        async move {
            feed(work, admitting).await;
            Ok(())
        }
    });
    poll_fn(move |cx| {
        group
            .as_mut()
            .poll_group(
                cx,
                |shared| (make.take().expect("made once"))(shared),
                |_| trace::failed_borrowed::<M::Error>(false),
            )
            .map_ok(|((), outputs)| Outputs::Completed(outputs))
    })
}

/// Runs every future of `futs` at once, read now: at most [`fixed::MAX`] in slots in
/// place (no allocation for two or fewer), more as [`run`] does.
#[inline]
fn all<M, I>(
    mut futs: I,
    site: &'static Location<'static>,
) -> impl Future<Output = Ended<M::Value, M::Error>>
where
    I: Iterator,
    I::Item: Future,
    M: Ordered<<I::Item as Future>::Output>,
{
    let (first, second) = (futs.next(), futs.next());
    // No call to collect nothing, for two futures or fewer.
    let rest: Vec<I::Item> = match futs.next() {
        None => Vec::new(),
        Some(third) => std::iter::once(third).chain(futs).collect(),
    };
    if rest.len() + 2 <= fixed::MAX {
        return Group::Fixed {
            fixed: Fixed::new(VecSlots::<I::Item, M>::new(first, second, rest), site),
        };
    }
    let futs = first.into_iter().chain(second).chain(rest);
    Group::Engine {
        run: Box::pin(run::<M, _, _, _>(Work::every(futs, site))),
    }
}

/// Runs every future concurrently in the caller's task and returns their outputs in
/// input order: [`crate::join()`] for futures that borrow, or are not `Send`.
///
/// The same operation as [`crate::join()`], over the inline kind of children
/// ([`Polled`]): the futures are read at the call and polled by the caller's task (in
/// slots in place for up to 32, by an inline nursery for more; see the [module
/// docs](super)). They may borrow from the caller, run concurrently but not in
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
#[inline]
pub fn join<'env, I>(futs: I) -> impl Future<Output = Vec<<I::Item as Future>::Output>> + 'env
where
    I: IntoIterator,
    I::IntoIter: 'env,
    I::Item: Future + 'env,
{
    Then::new(
        all::<JoinMode, _>(futs.into_iter(), Location::caller()),
        "inline::join",
        Joined { ordered: true },
    )
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
        all::<JoinMode, _>(futs.into_iter(), Location::caller()),
        "inline::settle",
        Joined { ordered: true },
    )
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
    let group = all::<TryJoinMode<E>, _>(futs.into_iter(), Location::caller());
    Then::new(group, "inline::try_join", Tried { ordered: true })
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
#[inline]
pub fn race<'env, I>(futs: I) -> impl Future<Output = <I::Item as Future>::Output> + 'env
where
    I: IntoIterator,
    I::IntoIter: 'env,
    I::Item: Future + 'env,
{
    let group = all::<RaceMode, _>(ops::racers(futs, "inline::race"), Location::caller());
    Then::new(group, "inline::race", Winner)
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
#[inline]
pub fn race_ok<'env, I, T, E>(futs: I) -> impl Future<Output = Result<T, NurseryError<E>>> + 'env
where
    I: IntoIterator,
    I::IntoIter: 'env,
    I::Item: Future<Output = Result<T, E>> + 'env,
    T: 'env,
    E: 'env,
{
    let group = all::<RaceOkMode, _>(ops::racers(futs, "inline::race_ok"), Location::caller());
    Then::new(group, "inline::race_ok", FirstOk)
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
    AnyMap::new(
        limit,
        InputIter::new(inputs.into_iter()),
        f,
        "inline::map",
        Location::caller(),
    )
}

/// A bounded map over inputs, from [`map`]: the one [`Map`](crate::futures::Map) type,
/// whose futures the inline kind ([`Polled`]) runs in the caller's task. Finish it with
/// [`join`](crate::futures::Map::join), [`try_join`](crate::futures::Map::try_join) or
/// [`settle`](crate::futures::Map::settle) (after
/// [`unordered`](crate::futures::Map::unordered), in the order they complete), which
/// differ from the spawning kind's only in the bounds on the futures.
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
pub type Map<I, F> = AnyMap<InputIter<I>, F, Polled>;

/// The inline kind's: futures polled in the caller's task, which may borrow.
impl<S: Stream, F> AnyMap<S, F, Polled> {
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
    pub fn join<Fut>(self) -> impl Future<Output = Vec<Fut::Output>>
    where
        F: FnMut(S::Item) -> Fut,
        Fut: Future,
    {
        let (work, ordered, what) = self.work();
        let group = run::<JoinMode, _, _, _>(work);
        Then::new(group, what, Joined { ordered })
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
    pub fn try_join<Fut, T, E>(self) -> impl Future<Output = Result<Vec<T>, NurseryError<E>>>
    where
        F: FnMut(S::Item) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let (work, ordered, what) = self.work();
        let group = run::<TryJoinMode<E>, _, _, _>(work);
        Then::new(group, what, Tried { ordered })
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
    pub fn settle<Fut, T, E>(self) -> impl Future<Output = Vec<Result<T, E>>>
    where
        F: FnMut(S::Item) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.join()
    }
}
