//! The combinators' operations, each written once for every kind of children: the
//! order of outputs (`join`, `settle`, `map` and its `unordered`), failing fast
//! (`try_join`), the first output (`race`) or the first success (`race_ok`), the empty
//! race, and the panic of a combinator kept past its scope (rules G2-G5, I4).
//!
//! A kind of children only stores and runs the futures, in a group that admits them
//! with [`feed`](super::feed::feed) (bounded concurrency) and ends with [`Ended`]: every
//! output with its input's index ([`Outputs`]), or the errors. What the group makes of
//! an output (a value, an error that fails it, a value that stops it) is the mode it
//! runs (`mode.rs`), and what the combinator returns is the operation here, a function
//! of what the group ended with ([`joined`], [`tried`], [`winner`], [`first_ok`]). The
//! group is run once for every kind (`run.rs`: a nursery of the kind, or a few futures
//! kept in place in the caller's task); an entry point is its group and the operation
//! after it ([`Then`]).

use std::convert::{identity, Infallible};
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::error::NurseryError;
use crate::kind::mode::Outputs;

/// What a combinator's group ends with: its outputs, or every error (or `Cancelled`, kept
/// past its scope).
pub(crate) type Ended<V, E> = Result<Outputs<V>, NurseryError<E>>;

/// A combinator's work: `f` over every input.
pub(crate) struct Work<S, F> {
    /// At most this many futures at once, and no more input once the group is cancelled
    /// (`map`, G3). `None`: every input is admitted at once, even once the group is
    /// cancelled, as into any nursery (N5): `join`, `race` and the rest, whose futures
    /// exist already.
    pub(crate) limit: Option<usize>,
    pub(crate) inputs: S,
    pub(crate) f: F,
    /// Where the combinator was called: the place of its group (and, spawned, its tasks).
    pub(crate) site: &'static Location<'static>,
}

impl<I: Iterator> Work<InputIter<I>, fn(I::Item) -> I::Item> {
    /// Every future of `futs` at once, each admitted even once the group is cancelled:
    /// the work of `join`, `try_join`, `race` and `race_ok`.
    pub(crate) fn every(futs: I, site: &'static Location<'static>) -> Self {
        Work {
            limit: None,
            inputs: InputIter::new(futs),
            f: identity,
            site,
        }
    }
}

/// A combinator's group ended `Cancelled`. It never cancels itself (a winner's
/// cancellation is its own, and it returns its value: see `group::decide`), and under a
/// cancelled enclosing scope it does not return: only a combinator future kept past the
/// scope it was first polled in, and awaited after that scope (cancelled while it ran)
/// finished, gets here (rules G5, I4). Its outputs are gone and nothing can catch the
/// cancellation: a panic that says so, rather than a wrong value or a hang.
pub(crate) fn kept<T, E>(what: &str, r: Result<T, NurseryError<E>>) -> Result<T, NurseryError<E>> {
    if let Err(NurseryError::Cancelled) = r {
        kept_cancelled(what)
    }
    r
}

/// [`kept`], for a combinator with no error to report: its outputs.
pub(crate) fn no_errors<T>(what: &str, r: Result<T, NurseryError<Infallible>>) -> T {
    match kept(what, r) {
        Ok(v) => v,
        Err(NurseryError::Failed(never)) => match never.into_iter().next() {
            Some(e) => match e {},
            None => unreachable!("hatchery: internal error: a failure without an error"),
        },
        Err(NurseryError::Cancelled) => unreachable!(),
    }
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

pin_project! {
    /// A combinator's group, then its operation on what the group ended with (`op`).
    pub(crate) struct Then<F, O> {
        #[pin]
        fut: F,
        op: Option<O>,
    }
}

impl<F, O, B> Future for Then<F, O>
where
    F: Future,
    O: FnOnce(F::Output) -> B,
{
    type Output = B;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<B> {
        let this = self.project();
        let ended = std::task::ready!(this.fut.poll(cx));
        let op = this
            .op
            .take()
            .expect("hatchery: combinator polled after completion");
        Poll::Ready(op(ended))
    }
}

impl<F, O> Then<F, O> {
    /// The group `fut`, then `op`.
    #[inline]
    pub(crate) fn new(fut: F, op: O) -> Self {
        Then { fut, op: Some(op) }
    }
}

/// `join`, `settle` and `map`'s `join` (`what`): every output, in input order or in the
/// order they completed.
#[inline]
pub(crate) fn joined<V>(what: &'static str, ended: Ended<V, Infallible>, ordered: bool) -> Vec<V> {
    no_errors(what, ended).arrange(ordered)
}

/// `try_join` and `map`'s `try_join` (`what`): every value, or every error.
#[inline]
pub(crate) fn tried<V, E>(
    what: &'static str,
    ended: Ended<V, E>,
    ordered: bool,
) -> Result<Vec<V>, NurseryError<E>> {
    kept(what, ended).map(|o| o.arrange(ordered))
}

/// `race` and `race!` (`what`): the first output.
pub(crate) fn winner<V>(what: &'static str, ended: Ended<V, Infallible>) -> V {
    match no_errors(what, ended).completed().next() {
        Some(v) => v,
        None => lost(what),
    }
}

/// `race_ok` (`what`): the first value, or every error if all failed.
pub(crate) fn first_ok<T, E>(
    what: &'static str,
    ended: Ended<Result<T, E>, Infallible>,
) -> Result<T, NurseryError<E>> {
    let mut errors = Vec::new();
    for r in no_errors(what, ended).completed() {
        match r {
            Ok(v) => return Ok(v),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        lost(what)
    }
    Err(NurseryError::Failed(errors))
}

#[track_caller]
pub(crate) fn racers<I: IntoIterator>(
    futs: I,
    what: &str,
) -> std::iter::Chain<std::iter::Once<I::Item>, I::IntoIter> {
    let mut futs = futs.into_iter();
    let Some(first) = futs.next() else {
        panic!("hatchery: `{what}` needs at least one future")
    };
    std::iter::once(first).chain(futs)
}

/// A race whose futures all ended without an output: only a spawned task that the
/// executor dropped unfinished does that.
#[cold]
fn lost(what: &str) -> ! {
    panic!(
        "hatchery: every `{what}` child was dropped by the executor before it finished (is \
         the runtime shutting down?)"
    )
}

pin_project! {
    /// The input of [`map`](crate::map): an iterator, seen as a stream that is always ready.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::ops::Range;
    /// use hatchery::futures::{InputIter, Map};
    ///
    /// # hatchery_smol::run(async {
    /// // `map` wraps its iterator in an `InputIter`: it shows in the type of the `Map`.
    /// let work: Map<InputIter<Range<u32>>, _> = hatchery::map(4, 0..3, |i| async move { i + 1 });
    /// assert_eq!(work.join().await, [1, 2, 3]);
    /// # });
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct InputIter<I> {
        iter: I,
    }
}

impl<I> InputIter<I> {
    /// `iter`, as a stream.
    pub(crate) fn new(iter: I) -> Self {
        InputIter { iter }
    }
}

impl<I: Iterator> Stream for InputIter<I> {
    type Item = I::Item;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<I::Item>> {
        Poll::Ready(self.project().iter.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

impl<I> fmt::Debug for InputIter<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputIter").finish_non_exhaustive()
    }
}
