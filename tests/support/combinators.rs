//! The combinators of either kind, for scenarios written once: [`Combinators`] is
//! `hatchery`'s spawning `join`, `try_join`, `settle`, `race`, `race_ok` and `map` on
//! [`Spawning`], and [`hatchery::Polled`]'s on [`Polling`]. The rules of the combinators
//! (G2-G5) are the same for both kinds (one implementation, `core/src/combinators/ops.rs`);
//! a scenario generic over `K: Combinators`, run by [`each_kind!`](crate::each_kind),
//! checks them on both.

use std::future::Future;

use hatchery::NurseryError;

use crate::{Kind, Polling, Spawning};

/// The combinators of a kind of children, over `Send + 'static` futures (the bounds both
/// kinds take), collected in a `Vec` at the call.
///
/// # Examples
///
/// ```
/// use hatchery_tests::{Combinators, Polling, Spawning};
///
/// async fn doubled<K: Combinators>() -> Vec<u32> {
///     K::join([1, 2].map(|x| async move { x })).await
/// }
///
/// assert_eq!(hatchery_smol::run(doubled::<Spawning>()), [1, 2]);
/// assert_eq!(hatchery_smol::run(doubled::<Polling>()), [1, 2]);
/// ```
pub trait Combinators: Kind {
    /// `join`.
    fn join<F>(futs: impl IntoIterator<Item = F>) -> impl Future<Output = Vec<F::Output>> + Send
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// `try_join`.
    fn try_join<F, T, E>(
        futs: impl IntoIterator<Item = F>,
    ) -> impl Future<Output = Result<Vec<T>, NurseryError<E>>> + Send
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static;

    /// `settle`.
    fn settle<F, T, E>(
        futs: impl IntoIterator<Item = F>,
    ) -> impl Future<Output = Vec<Result<T, E>>> + Send
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static;

    /// `race`.
    fn race<F>(futs: impl IntoIterator<Item = F>) -> impl Future<Output = F::Output> + Send
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// `race_ok`.
    fn race_ok<F, T, E>(
        futs: impl IntoIterator<Item = F>,
    ) -> impl Future<Output = Result<T, NurseryError<E>>> + Send
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static;

    /// `map(limit, inputs, f).join()`, or `.unordered().join()` if not `ordered`.
    fn map_join<I, Fu, F>(
        limit: usize,
        inputs: I,
        f: Fu,
        ordered: bool,
    ) -> impl Future<Output = Vec<F::Output>> + Send
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        Fu: FnMut(I::Item) -> F + Send + 'static,
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// `map(limit, inputs, f).try_join()`.
    fn map_try_join<I, Fu, F, T, E>(
        limit: usize,
        inputs: I,
        f: Fu,
    ) -> impl Future<Output = Result<Vec<T>, NurseryError<E>>> + Send
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        Fu: FnMut(I::Item) -> F + Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static;

    /// `map(limit, inputs, f).settle()`.
    fn map_settle<I, Fu, F, T, E>(
        limit: usize,
        inputs: I,
        f: Fu,
    ) -> impl Future<Output = Vec<Result<T, E>>> + Send
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        Fu: FnMut(I::Item) -> F + Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static;
}

/// One impl per kind, the same text over the kind's module.
macro_rules! combinators {
    ($kind:ty, $($path:ident)::+) => {
        impl Combinators for $kind {
            fn join<F>(futs: impl IntoIterator<Item = F>) -> impl Future<Output = Vec<F::Output>> + Send
            where
                F: Future + Send + 'static,
                F::Output: Send + 'static,
            {
                $($path)::+::join(futs.into_iter().collect::<Vec<_>>())
            }

            fn try_join<F, T, E>(futs: impl IntoIterator<Item = F>) -> impl Future<Output = Result<Vec<T>, NurseryError<E>>> + Send
            where
                F: Future<Output = Result<T, E>> + Send + 'static,
                T: Send + 'static,
                E: Send + 'static,
            {
                $($path)::+::try_join(futs.into_iter().collect::<Vec<_>>())
            }

            fn settle<F, T, E>(futs: impl IntoIterator<Item = F>) -> impl Future<Output = Vec<Result<T, E>>> + Send
            where
                F: Future<Output = Result<T, E>> + Send + 'static,
                T: Send + 'static,
                E: Send + 'static,
            {
                $($path)::+::settle(futs.into_iter().collect::<Vec<_>>())
            }

            fn race<F>(futs: impl IntoIterator<Item = F>) -> impl Future<Output = F::Output> + Send
            where
                F: Future + Send + 'static,
                F::Output: Send + 'static,
            {
                $($path)::+::race(futs.into_iter().collect::<Vec<_>>())
            }

            fn race_ok<F, T, E>(futs: impl IntoIterator<Item = F>) -> impl Future<Output = Result<T, NurseryError<E>>> + Send
            where
                F: Future<Output = Result<T, E>> + Send + 'static,
                T: Send + 'static,
                E: Send + 'static,
            {
                $($path)::+::race_ok(futs.into_iter().collect::<Vec<_>>())
            }

            fn map_join<I, Fu, F>(limit: usize, inputs: I, f: Fu, ordered: bool) -> impl Future<Output = Vec<F::Output>> + Send
            where
                I: IntoIterator,
                I::IntoIter: Send + 'static,
                Fu: FnMut(I::Item) -> F + Send + 'static,
                F: Future + Send + 'static,
                F::Output: Send + 'static,
            {
                let map = $($path)::+::map(limit, inputs, f);
                match ordered {
                    true => map.join(),
                    false => map.unordered().join(),
                }
            }

            fn map_try_join<I, Fu, F, T, E>(
                limit: usize,
                inputs: I,
                f: Fu,
            ) -> impl Future<Output = Result<Vec<T>, NurseryError<E>>> + Send
            where
                I: IntoIterator,
                I::IntoIter: Send + 'static,
                Fu: FnMut(I::Item) -> F + Send + 'static,
                F: Future<Output = Result<T, E>> + Send + 'static,
                T: Send + 'static,
                E: Send + 'static,
            {
                $($path)::+::map(limit, inputs, f).try_join()
            }

            fn map_settle<I, Fu, F, T, E>(limit: usize, inputs: I, f: Fu) -> impl Future<Output = Vec<Result<T, E>>> + Send
            where
                I: IntoIterator,
                I::IntoIter: Send + 'static,
                Fu: FnMut(I::Item) -> F + Send + 'static,
                F: Future<Output = Result<T, E>> + Send + 'static,
                T: Send + 'static,
                E: Send + 'static,
            {
                $($path)::+::map(limit, inputs, f).settle()
            }
        }
    };
}

combinators!(Spawning, hatchery);
combinators!(Polling, hatchery::Polled);
