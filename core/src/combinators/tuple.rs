//! `join!`, `try_join!` and `race!`: futures of different types.
//!
//! The macros hand their futures, as a tuple, to the traits below, implemented for
//! tuples of up to 12 futures. Each future becomes a task of a nursery, as in
//! [`join`](fn@crate::join): for `join!` and `try_join!` its value is taken through its
//! handle (the tuple is the storage of outputs of different types; failing fast is the
//! nursery's), for `race!` it is a racer of the spawning kind's race (`spawned.rs`),
//! whose winner is taken as `race`'s is (`ops.rs`).

use std::convert::Infallible;
use std::future::Future;
use std::panic::Location;

use super::feed::Admit;
use super::ops::{kept, no_errors, winner, Then};
use super::run::group;
use crate::child::Join;
use crate::error::NurseryError;
use crate::kind::mode::RaceMode;
use crate::kind::Spawned;
use crate::nursery::nursery_at;
use crate::time::checkpoint;

/// Runs futures of different types concurrently, each as its own task, and returns their
/// outputs as a tuple (Python's `asyncio.gather(a(), b())`, unpacked).
///
/// `join!(a, b, ..)` awaits (use it in async code); it is [`join`](fn@crate::join) for up
/// to 12 futures of different types, with the same rules: the futures are `Send +
/// 'static`, each is spawned as a task of one nursery, and it returns once all have
/// finished. The futures are made before anything is spawned, from left to right, so an
/// argument like `fetch(client.clone())` does not move `client`.
///
/// # Cancel safety
///
/// If the enclosing scope is cancelled, every future is cancelled and awaited, then the
/// macro's await never completes (the cancelled scope returns). The macro awaits inline:
/// dropping the async code around it from outside hatchery cancels the futures without
/// waiting for them (see [`nursery`](crate::nursery())).
///
/// # Panics
///
/// If a future panics: the others are cancelled and, once all have finished, the panic is
/// resumed here. Outside a hatchery runtime. If the executor drops a task unfinished (a
/// runtime shutting down). When the async code around it is kept past the scope it was
/// first polled in, cancelled by that scope while the macro's futures ran, and awaited
/// after that scope has finished: their outputs are gone (see
/// [Combinators](crate#combinators)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::sleep;
///
/// async fn name() -> String {
///     sleep(Duration::from_millis(5)).await;
///     "Ada".to_string()
/// }
/// async fn age() -> u32 {
///     sleep(Duration::from_millis(5)).await;
///     36
/// }
///
/// # hatchery_smol::run(async {
/// let (name, age) = hatchery::join!(name(), age());
/// assert_eq!((name.as_str(), age), ("Ada", 36));
/// # });
/// ```
///
/// `join!(Polled: a, b, ..)` runs them in the caller's task instead ([`Polled`](crate::Polled)):
/// they may borrow from the caller and need not be `Send`. It polls them in place, every
/// one on every wake-up, as `futures::join!` does, and allocates nothing; what it adds
/// to `futures::join!` is what the rules ask of a group: a future that panics cancels the
/// others, which finish (each at its next suspension point, a shielded part first)
/// before the panic is resumed here (rule N3); the futures run in the caller's scope,
/// under its cancellation and deadlines, and if one of them enters a scope, opens a
/// nursery or reads the clock, the group gets a cancel node of its own so that it can
/// cancel what that future keeps (rule I2). Its future is `Send` exactly when the
/// futures are. Dropping the async code around it from outside hatchery drops every
/// future at once (rule I3).
///
/// ```
/// use std::time::Duration;
/// use hatchery::sleep;
///
/// struct Db { users: Vec<&'static str> }
///
/// async fn name(db: &Db, id: usize) -> &'static str {
///     sleep(Duration::from_millis(5)).await;
///     db.users[id]
/// }
/// async fn count(db: &Db) -> usize {
///     sleep(Duration::from_millis(5)).await;
///     db.users.len()
/// }
///
/// # hatchery_smol::run(async {
/// let db = Db { users: vec!["ada", "grace"] };
/// // Two futures of different types, both borrowing `db`: no `Arc`, no clone.
/// let (who, how_many) = hatchery::join!(Polled: name(&db, 1), count(&db));
/// assert_eq!((who, how_many), ("grace", 2));
/// # });
/// ```
///
/// Without futures it does not compile: there would be nothing to join.
///
/// ```compile_fail
/// # hatchery_smol::run(async {
/// let nothing = hatchery::join!();
/// # });
/// ```
#[macro_export]
macro_rules! join {
    (Polled: $($fut:expr),+ $(,)?) => {
        $crate::__private::polled_joined(
            $crate::__private::join_slots(($($fut,)+)).await
        )
    };
    ($($fut:expr),+ $(,)?) => {
        $crate::__private::JoinTuple::join_tuple(($($fut,)+)).await
    };
}

/// Runs fallible futures of different types concurrently, each as its own task, and
/// returns their values as a tuple, or fails fast (`asyncio.gather(a(), b())` whose
/// results have different types, or a `TaskGroup` of two tasks).
///
/// `try_join!(a, b, ..)` awaits (use it in async code); it is
/// [`try_join`](fn@crate::try_join) for up to 12 futures of different types and one error
/// type `E`, with the same rules: the first `Err` cancels the others, all are awaited,
/// and every error is reported. The futures are made before anything is spawned, from
/// left to right.
///
/// # Errors
///
/// [`NurseryError::Failed`](crate::NurseryError) with every error, in the order they
/// happened; never `Cancelled`. `?` converts it as for a nursery.
///
/// # Cancel safety
///
/// As for [`join!`](crate::join!), with one difference: if a future failed before or
/// while the enclosing scope's cancellation reached it, the errors are returned once
/// every future has finished (as [`try_join`](fn@crate::try_join) does).
///
/// # Panics
///
/// As for [`join!`](crate::join!).
///
/// # Examples
///
/// ```
/// use hatchery::NurseryError;
///
/// async fn user(id: u32) -> Result<String, String> {
///     Ok(format!("user {id}"))
/// }
/// async fn orders(id: u32) -> Result<Vec<u32>, String> {
///     if id == 0 { Err("no orders for 0".into()) } else { Ok(vec![id * 10]) }
/// }
///
/// # hatchery_smol::run(async {
/// let (u, o) = hatchery::try_join!(user(7), orders(7)).unwrap();
/// assert_eq!((u.as_str(), o), ("user 7", vec![70]));
///
/// let err: NurseryError<String> = hatchery::try_join!(user(0), orders(0)).unwrap_err();
/// assert_eq!(err.errors(), ["no orders for 0"]);
/// # });
/// ```
///
/// Without futures it does not compile: there would be nothing to join.
///
/// ```compile_fail
/// # hatchery_smol::run(async {
/// let nothing = hatchery::try_join!();
/// # });
/// ```
#[macro_export]
macro_rules! try_join {
    (Polled: $($fut:expr),+ $(,)?) => {
        $crate::__private::polled_tried(
            $crate::__private::try_join_slots(($($fut,)+)).await
        )
    };
    ($($fut:expr),+ $(,)?) => {
        $crate::__private::TryJoinTuple::try_join_tuple(($($fut,)+)).await
    };
}

/// Runs futures of different types with one output type concurrently, each as its own
/// task, and returns the output of the first to finish; the others are cancelled and
/// awaited (Python's `asyncio.wait(.., return_when=FIRST_COMPLETED)` of a few
/// coroutines, or a `select` whose losers are cleaned up).
///
/// `race!(a, b, ..)` awaits (use it in async code); it is [`race`](fn@crate::race) for up
/// to 12 futures of different types, without boxing them, with the same rules. The
/// futures are made before anything is spawned, from left to right. Each runs as a task,
/// so it is `Send + 'static` and owns its data (`async move`, cloned `Arc`s); to race
/// leaf waits on borrowed data (a local `Event`'s `wait()`), `futures_lite::future::or`
/// polls them in place.
///
/// # Cancel safety
///
/// If the enclosing scope is cancelled, every future is cancelled and awaited, then the
/// macro's await never completes (the cancelled scope returns). The macro awaits inline:
/// dropping the async code around it from outside hatchery cancels the futures without
/// waiting for them (see [`nursery`](crate::nursery())).
///
/// # Panics
///
/// If a future panics: the others are cancelled and, once all have finished, the panic is
/// resumed here (even if another future had already won). Outside a hatchery runtime. If
/// the executor drops every future's task before one of them finished (a runtime that is
/// shutting down), with a message that says so. When kept past its scope, as for
/// [`join!`](crate::join!).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::sleep;
///
/// # hatchery_smol::run(async {
/// let work = async {
///     sleep(Duration::from_millis(5)).await;
///     "work done"
/// };
/// let shutdown = async {
///     sleep(Duration::from_secs(3600)).await; // e.g. waiting for Ctrl-C
///     "shut down"
/// };
/// assert_eq!(hatchery::race!(work, shutdown), "work done"); // `shutdown` was cancelled
/// # });
/// ```
///
/// Without futures it does not compile: there would be nothing to race.
///
/// ```compile_fail
/// # hatchery_smol::run(async {
/// let nothing = hatchery::race!();
/// # });
/// ```
#[macro_export]
macro_rules! race {
    ($($fut:expr),+ $(,)?) => {
        $crate::__private::RaceTuple::race_tuple(($($fut,)+)).await
    };
}

/// A tuple of futures with one output type that [`race!`](crate::race!) can run.
#[diagnostic::on_unimplemented(
    message = "`race!` takes 1 to 12 futures of one output type",
    label = "not 1 to 12 futures, or their outputs differ"
)]
pub trait RaceTuple {
    /// Their output type.
    type Output;
    /// Runs them as tasks of one nursery; the first output.
    #[track_caller]
    fn race_tuple(self) -> impl Future<Output = Self::Output> + Send;
}

/// A tuple of futures that [`join!`](crate::join!) can run.
#[diagnostic::on_unimplemented(
    message = "`join!` takes 1 to 12 futures",
    label = "not 1 to 12 futures"
)]
pub trait JoinTuple {
    /// The tuple of their outputs.
    type Output;
    /// Runs them as tasks of one nursery; their outputs in order.
    #[track_caller]
    fn join_tuple(self) -> impl Future<Output = Self::Output> + Send;
}

/// A tuple of fallible futures with one error type that [`try_join!`](crate::try_join!)
/// can run.
#[diagnostic::on_unimplemented(
    message = "`try_join!` takes 1 to 12 futures of `Result`s with one error type",
    label = "not 1 to 12 futures of `Result<_, E>` with one `E`"
)]
pub trait TryJoinTuple<E> {
    /// The tuple of their values.
    type Output;
    /// Runs them as tasks of one nursery; their values in order, or every error.
    #[track_caller]
    fn try_join_tuple(self) -> impl Future<Output = Result<Self::Output, NurseryError<E>>> + Send;
}

/// The value of a task joined in its nursery's body. A join fails only when the task
/// failed, panicked or was cancelled, and each of those cancels the nursery before the
/// handle completes: the body then waits here to be dropped.
/// What `join!(Polled: ..)` returns: its outputs (it has no error to report, and is
/// never `Cancelled` but kept past the scope that cancelled it: that panics, rule I4).
#[doc(hidden)]
#[track_caller]
pub fn polled_joined<O>(r: Result<O, NurseryError<Infallible>>) -> O {
    no_errors("join!", r)
}

/// What `try_join!(Polled: ..)` returns: its values or its errors (never `Cancelled`, as
/// [`polled_joined`]).
#[doc(hidden)]
#[track_caller]
pub fn polled_tried<O, E>(r: Result<O, NurseryError<E>>) -> Result<O, NurseryError<E>> {
    kept("try_join!", r)
}

async fn value<T>(join: Join<T>) -> T {
    match join.await {
        Ok(v) => v,
        Err(e) => {
            checkpoint().await;
            panic!(
                "hatchery: a task of `join!` or `try_join!` ended with `{e}` but its nursery \
                 went on: is the runtime shutting down?"
            )
        }
    }
}

/// Implements the traits for the tuple of the `$F`s, then for each longer one up to the `$Fn`s.
macro_rules! tuples {
    (@longer $($F:ident $T:ident),+;) => {};
    (@longer $($F:ident $T:ident),+; $Fn:ident $Tn:ident $(, $Fr:ident $Tr:ident)*) => {
        tuples!($($F $T),+, $Fn $Tn; $($Fr $Tr),*);
    };
    ($($F:ident $T:ident),+; $($Fn:ident $Tn:ident),*) => {
        tuples!(@longer $($F $T),+; $($Fn $Tn),*);

        impl<$($F, $T),+> JoinTuple for ($($F,)+)
        where
            $($F: Future<Output = $T> + Send + 'static, $T: Send + 'static,)+
        {
            type Output = ($($T,)+);

            #[allow(non_snake_case)]
            #[track_caller]
            fn join_tuple(self) -> impl Future<Output = Self::Output> + Send {
                let ($($F,)+) = self;
                let site = Location::caller();
                let all = nursery_at(site, move |n| async move {
                    $(let $F = n.spawn_at(site, async move { Ok::<_, Infallible>($F.await) }).join();)+
                    Ok(($(value($F).await,)+))
                });
                Then::new(all, |ended| no_errors("join!", ended))
            }
        }

        impl<E, $($F, $T),+> TryJoinTuple<E> for ($($F,)+)
        where
            E: Send + 'static,
            $($F: Future<Output = Result<$T, E>> + Send + 'static, $T: Send + 'static,)+
        {
            type Output = ($($T,)+);

            #[allow(non_snake_case)]
            #[track_caller]
            fn try_join_tuple(
                self,
            ) -> impl Future<Output = Result<Self::Output, NurseryError<E>>> + Send {
                let ($($F,)+) = self;
                let site = Location::caller();
                let all = nursery_at(site, move |n| async move {
                    $(let $F = n.spawn_at(site, $F).join();)+
                    Ok(($(value($F).await,)+))
                });
                Then::new(all, |ended| kept("try_join!", ended))
            }
        }

        impl<T, $($F),+> RaceTuple for ($($F,)+)
        where
            T: Send + 'static,
            $($F: Future<Output = T> + Send + 'static,)+
        {
            type Output = T;

            #[allow(non_snake_case)]
            #[track_caller]
            fn race_tuple(self) -> impl Future<Output = T> + Send {
                let ($($F,)+) = self;
                let all = group::<Spawned, RaceMode, T, _, _>(Location::caller(), move |mut t| {
                    let mut index = 0;
                    $(t.admit(index, $F, None); index += 1;)+
                    std::future::ready(index)
                });
                Then::new(all, |ended| winner("race!", ended))
            }
        }
    };
}

tuples!(F1 T1; F2 T2, F3 T3, F4 T4, F5 T5, F6 T6, F7 T7, F8 T8, F9 T9, F10 T10, F11 T11, F12 T12);
