//! Inline nurseries: children that borrow from the caller's stack, polled by the
//! nursery's own task, with the same cancellation rules as [`crate::nursery`].
//!
//! # What is an inline nursery?
//!
//! A [`crate::nursery`] spawns its children as tasks of the executor: they run in
//! parallel, so they must be `Send + 'static`, and "run these three calls at once over
//! my local data" needs `Arc`s and clones. An *inline* nursery ([`nursery`],
//! [`local_nursery`]) owns its children instead and polls them itself, inside the task
//! that awaits it, as `futures::join!` or `FuturesUnordered` do. They run concurrently,
//! not in parallel, and so they may borrow from the enclosing stack, and need not be
//! `Send` (with [`local_nursery`]) or `'static`.
//!
//! ```
//! use std::time::Duration;
//! use hatchery::{inline, sleep};
//!
//! async fn word_len(word: &str) -> usize {
//!     sleep(Duration::from_millis(1)).await;
//!     word.len()
//! }
//!
//! # hatchery_smol::run(async {
//! let words = vec!["nursery".to_string(), "scope".to_string()];
//! let mut lens = Vec::new();
//! let (w, out) = (&words, &mut lens);
//! inline::nursery(|n| async move {
//!     let a = n.spawn(async move { Ok::<_, std::io::Error>(word_len(&w[0]).await) });
//!     let b = n.spawn(async move { Ok(word_len(&w[1]).await) });
//!     let lens = out;
//!     lens.push(a.join().await?);
//!     lens.push(b.join().await?);
//!     Ok(())
//! })
//! .await
//! .unwrap();
//! lens.push(words.len()); // `words` and `lens` were borrowed, not moved
//! assert_eq!(lens, [7, 5, 2]);
//! # });
//! ```
//!
//! # The same rules
//!
//! Everything the book's chapter *Semantics: the rules* says of a nursery holds, but
//! N8 (children are tasks of the executor), replaced by rule I1: the body is a child; the
//! first error cancels the rest, and every error is reported in order (N2); a panic is
//! resumed once every child has finished (N3); cancellation is not an error (N4);
//! spawning from children, and refused once the nursery has closed (N5); handles with
//! the child's value and its own cancellation (N7, [`TaskHandle`]). Each child runs in
//! a cancel scope of its own, so cancel scopes, deadlines, shields, [`finally`](crate::finally),
//! nested nurseries of either kind and [`current_effective_deadline`](crate::current_effective_deadline)
//! work inside children exactly as inside spawned tasks.
//!
//! # Cancellation, and how it differs
//!
//! Cancelling an enclosing scope (or the nursery, or one child through its handle)
//! cancels every child concerned at its next suspension point: its future is dropped
//! there, and with it every borrow it held, before the nursery returns. A child in a
//! shielded part runs to the end of the shield first, and the nursery waits for it. A
//! child that never suspends again is not interrupted (rule C1).
//!
//! What differs from the spawning kind is what "inline" means: the children share one
//! task, and so one thread at a time. There is no parallelism, and a child that blocks
//! its thread (a CPU loop without [`checkpoint`](crate::checkpoint), a blocking call)
//! blocks its siblings and the body too; use [`run_blocking`](crate::run_blocking), or a
//! spawning nursery, for such work. Dropping the nursery future from outside hatchery
//! (C8) drops every child at once, since the nursery owns them: nothing runs on after.
//!
//! # `Send`
//!
//! [`nursery`] takes children that are `Send`, and its future is `Send` when its body is:
//! it can be awaited in a task of a multi-threaded runtime, and move between threads
//! between polls. [`local_nursery`] takes any children (an `Rc`, a `RefCell` borrow) and
//! its future is not `Send`: await it in a task that is not sent (the root future of
//! `hatchery_tokio::run_current_thread`, a `LocalSet`'s task, or an executor's local
//! task). The two are one type, [`Nursery`], told apart by how it stores its children
//! ([`SendChild`], [`LocalChild`]), so that code written for one reads as code for the
//! other. The combinators ([`join!`], [`try_join!`] for futures of different types;
//! [`join()`], [`try_join()`], [`settle`], [`race`], [`race_ok`], [`map`] for any number
//! of one type) store their futures as they are ([`Polled`], the inline kind of
//! children of the combinators): their future is `Send` exactly when the futures are,
//! with no choice to make. They are the spawning combinators' operations, written once
//! for both kinds; only the storage differs.
//!
//! # How it works
//!
//! The nursery owns its children: none is ever polled or reached except through the
//! nursery future, so soundness does not depend on anyone running a destructor (a
//! forgotten nursery future just never polls its children again). A spawned child's
//! future shares one allocation with the output its handle reads, which the nursery
//! alone polls and drops the future of (the private module `cell`, the one `unsafe` of
//! inline nurseries, argues why that is sound). Each child has a waker of its own, and a
//! woken child's key goes into a ready queue: a poll of the nursery polls only the
//! children that were woken, so a nursery of 100,000 children costs no more per wake-up
//! than one of ten.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::SpawnError;
use crate::nursery::{sealed, Accepts, Children, NurseryFuture};
use crate::task::Label;
use crate::trace;
use crate::TaskHandle;

#[allow(unsafe_code)]
mod cell;
mod combinators;
mod engine;
mod fixed;
#[cfg(all(test, hatchery_loom))]
mod loom;
mod start;
pub(crate) mod tuple;

pub use self::combinators::{join, map, race, race_ok, settle, try_join, Map, Polled};

/// Runs futures of different types concurrently in the caller's task and returns their
/// outputs as a tuple: [`futures::join!`]'s form of [`inline::join`](join()), and the
/// borrowing form of [`hatchery::join!`](crate::join!).
///
/// `inline::join!(a, b, ..)` awaits (use it in async code) up to 12 futures, which may
/// borrow from the caller and need not be `Send`: it polls them in place, every one on
/// every wake-up, as `futures::join!` does, and allocates nothing. What it adds to
/// `futures::join!` is what the rules ask of a group (see the [module docs](self)): a
/// future that panics cancels the others, which finish (each at its next suspension
/// point, a shielded part first) before the panic is resumed here (rule N3); the
/// futures run in the caller's scope, under its cancellation and deadlines, and if one
/// of them enters a scope, opens a nursery or reads the clock, the group gets a cancel
/// node of its own so that it can cancel what that future keeps (rule I2). The macro's
/// future is `Send` exactly when the futures are.
///
/// [`futures::join!`]: https://docs.rs/futures/latest/futures/macro.join.html
///
/// # Cancel safety
///
/// If the enclosing scope is cancelled, every future is cancelled at its next suspension
/// point (a shielded part runs to its end first), and the macro's await never completes
/// (the cancelled scope returns). The macro awaits inline: dropping the async code
/// around it from outside hatchery drops every future at once (rule I3).
///
/// # Panics
///
/// If a future panics: the others are cancelled and, once all have finished, the panic is
/// resumed here. When first polled outside a hatchery runtime, if a future asks for its
/// context. When the async code around it is kept past the scope it was first polled in,
/// cancelled by that scope while the futures ran, and awaited after that scope has
/// finished (rule I4): their outputs are gone.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{inline, sleep};
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
/// let (who, how_many) = inline::join!(name(&db, 1), count(&db));
/// assert_eq!((who, how_many), ("grace", 2));
/// # });
/// ```
///
/// Without futures it does not compile: there would be nothing to join.
///
/// ```compile_fail
/// # hatchery_smol::run(async {
/// let nothing = hatchery::inline::join!();
/// # });
/// ```
#[doc(inline)]
pub use crate::__inline_join as join;

/// Runs fallible futures of different types concurrently in the caller's task and returns
/// their values as a tuple, or fails fast: the tuple form of
/// [`inline::try_join`](try_join()), and the borrowing form of
/// [`hatchery::try_join!`](crate::try_join!).
///
/// `inline::try_join!(a, b, ..)` awaits up to 12 futures of `Result`s with one error type,
/// in place, as [`inline::join!`](join!) does. The first to return `Err` cancels the
/// others (each at its next suspension point); once all have finished, every error is
/// returned, in the order they happened (rule N2).
///
/// # Cancel safety
///
/// If the enclosing scope is cancelled, every future is cancelled and awaited, and the
/// macro's await never completes, unless a future had failed by then: the errors are
/// returned. Dropping the async code around it from outside hatchery drops every future
/// at once.
///
/// # Panics
///
/// As [`inline::join!`](join!).
///
/// # Errors
///
/// [`crate::NurseryError::Failed`] with every error, in the order they happened.
///
/// # Examples
///
/// ```
/// use hatchery::inline;
///
/// # hatchery_smol::run(async {
/// let config = String::from("port=8080");
/// let parse_port = async { config.trim_start_matches("port=").parse::<u16>() };
/// let check_len = async { Ok(config.len()) };
/// let (port, len) = inline::try_join!(parse_port, check_len).unwrap();
/// assert_eq!((port, len), (8080, 9));
///
/// let bad = async { "x".parse::<u16>() };
/// let slow = async {
///     hatchery::sleep(std::time::Duration::from_secs(3600)).await; // cancelled
///     Ok(1)
/// };
/// let err = inline::try_join!(bad, slow).unwrap_err();
/// assert_eq!(err.into_errors().len(), 1);
/// # });
/// ```
#[doc(inline)]
pub use crate::__inline_try_join as try_join;

/// What [`inline::join!`](crate::inline::join!) is, under a name of the crate's root (a
/// `#[macro_export]` macro lives there). Use `hatchery::inline::join!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __inline_join {
    ($($fut:expr),+ $(,)?) => {
        $crate::__private::inline::joined(
            $crate::__private::inline::join(($($fut,)+)).await
        )
    };
}

/// What [`inline::try_join!`](crate::inline::try_join!) is, under a name of the crate's
/// root. Use `hatchery::inline::try_join!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __inline_try_join {
    ($($fut:expr),+ $(,)?) => {
        $crate::__private::inline::tried(
            $crate::__private::inline::try_join(($($fut,)+)).await
        )
    };
}

use self::cell::{Owner, Run};
use self::engine::{Group, Shared};

/// A child of a [`nursery`] as the nursery stores it: a future that is `Send`, in one
/// allocation with what its handle reads. The kind of children ([`Children`]) of an
/// inline nursery whose children are `Send`.
///
/// Only named in types: [`inline::Nursery<'env, E>`](Nursery) is
/// `hatchery::Nursery<E, SendChild<'env, E>>`.
///
/// # Examples
///
/// ```
/// use hatchery::inline::SendChild;
/// use hatchery::Nursery;
///
/// fn spawn_two<'env>(n: &Nursery<std::io::Error, SendChild<'env, std::io::Error>>) {
///     n.spawn(async { Ok(1) });
///     n.spawn(async { Ok(2) });
/// }
/// # hatchery_smol::run(async {
/// hatchery::inline::nursery(|n| async move { spawn_two(&n); Ok(()) }).await.unwrap();
/// # });
/// ```
///
/// A nursery's handle is invariant in `'env` (its state is named through
/// [`Children`], a projection): one whose children may borrow for `'env` does not pass for
/// one whose children borrow for less, which would let a child borrow what ends before the
/// nursery does.
///
/// ```compile_fail
/// use hatchery::inline::Nursery;
///
/// fn shorten<'short, 'long: 'short>(n: Nursery<'long, ()>) -> Nursery<'short, ()> {
///     n
/// }
/// ```
pub struct SendChild<'env, E>(Owner<dyn Run<E> + Send + Sync + 'env>);

/// A child of a [`local_nursery`] as the nursery stores it: a future, `Send` or not, in
/// one allocation with what its handle reads. The kind of children ([`Children`]) of an
/// inline nursery whose children need not be `Send`.
///
/// Only named in types: [`LocalNursery<'env, E>`](LocalNursery) is
/// `hatchery::Nursery<E, LocalChild<'env, E>>`.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use hatchery::inline::LocalChild;
/// use hatchery::Nursery;
///
/// fn spawn_rc<'env>(n: &Nursery<std::io::Error, LocalChild<'env, std::io::Error>>) {
///     let shared = Rc::new(5);
///     n.spawn(async move { Ok(*shared) });
/// }
/// # hatchery_smol::run_current_thread(async {
/// hatchery::inline::local_nursery(|n| async move { spawn_rc(&n); Ok(()) }).await.unwrap();
/// # });
/// ```
///
/// Invariant in `'env`, as [`SendChild`] is:
///
/// ```compile_fail
/// use hatchery::inline::LocalNursery;
///
/// fn shorten<'short, 'long: 'short>(n: LocalNursery<'long, ()>) -> LocalNursery<'short, ()> {
///     n
/// }
/// ```
pub struct LocalChild<'env, E>(Owner<dyn Run<E> + 'env>);

/// The impls that make `$child` a kind of children, written once for both inline kinds,
/// which differ only in the bound `$send` on a child's future and value (`Send`, or
/// none) and in the owner's type (`cell::$with_handle` makes it).
macro_rules! inline_kind {
    ($child:ident, $with_handle:ident, $($send:ident)?) => {
        impl<'env, E, F, T> Accepts<F, T, E> for $child<'env, E>
        where
            F: Future<Output = Result<T, E>> + $($send +)? 'env,
            T: $($send +)? 'env,
        {
            #[inline]
            fn try_spawn(
                shared: &Arc<Shared<E, Self>>,
                fut: F,
                site: &'static Location<'static>,
            ) -> Result<TaskHandle<T>, SpawnError> {
                let own = shared.child_node();
                let (owner, handle) = cell::$with_handle(fut, own.clone(), Label::at(site));
                match shared.push($child(owner), own, Some(site)) {
                    Ok(()) => Ok(TaskHandle::new(handle)),
                    // The group has closed: the child is dropped (before its handle).
                    Err(child) => {
                        drop(child);
                        Err(SpawnError(()))
                    }
                }
            }
        }

        impl<E> Future for $child<'_, E> {
            type Output = Result<(), E>;

            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
                self.0.poll(cx)
            }
        }

        impl<E> fmt::Debug for $child<'_, E> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($child)).finish_non_exhaustive()
            }
        }

        impl<E> Children<E> for $child<'_, E> {}

        impl<E> sealed::Sealed<E> for $child<'_, E> {
            type Shared = Shared<E, Self>;
            type Kind = Group<Self, ()>;
            type Run<V> = start::InlineRun<V, E, Self>;
        }

        impl<E> sealed::Describe<E> for $child<'_, E> {
            fn describe(_: &E) {
                trace::failed_borrowed::<E>(false);
            }
        }
    };
}

inline_kind!(SendChild, send_child, Send);
inline_kind!(LocalChild, local_child,);

/// A handle to an open inline nursery whose children are `Send`: the
/// [`Nursery`](crate::Nursery) of a [`nursery`], with [`SendChild`] children. Its methods
/// are every nursery's: `spawn` and `try_spawn` take children that may borrow for `'env`
/// ([`Accepts`]).
///
/// Cheap to clone; clones may be moved into children so that they can spawn siblings.
///
/// # Examples
///
/// ```
/// use hatchery::inline::{self, Nursery};
/// use hatchery::TaskHandle;
///
/// fn spawn_lens<'env>(n: &Nursery<'env, std::io::Error>, words: &'env [&str]) -> Vec<TaskHandle<usize>> {
///     words.iter().map(|w| n.spawn(async move { Ok(w.len()) })).collect()
/// }
///
/// # hatchery_smol::run(async {
/// let words = ["a", "bb", "ccc"];
/// let w = &words;
/// let total = inline::nursery(|n| async move {
///     let mut total = 0;
///     for h in spawn_lens(&n, w) {
///         total += h.join().await?;
///     }
///     Ok::<_, std::io::Error>(total)
/// })
/// .await
/// .unwrap();
/// assert_eq!(total, 6);
/// # });
/// ```
pub type Nursery<'env, E> = crate::Nursery<E, SendChild<'env, E>>;

/// The handle of a [`local_nursery`], whose children need not be `Send`: the
/// [`Nursery`](crate::Nursery) with [`LocalChild`] children.
///
/// # Examples
///
/// ```
/// use std::cell::Cell;
/// use hatchery::inline::{self, LocalNursery};
///
/// fn bump<'env>(n: &LocalNursery<'env, std::io::Error>, count: &'env Cell<u32>) {
///     n.spawn(async move { count.set(count.get() + 1); Ok(()) });
/// }
///
/// # hatchery_smol::run_current_thread(async {
/// let count = Cell::new(0);
/// let c = &count;
/// inline::local_nursery(|n| async move { bump(&n, c); bump(&n, c); Ok(()) })
///     .await
///     .unwrap();
/// assert_eq!(count.get(), 2);
/// # });
/// ```
pub type LocalNursery<'env, E> = crate::Nursery<E, LocalChild<'env, E>>;

/// Opens an inline nursery whose children are `Send`, runs `body` in it, and returns once
/// the body and every child have finished.
///
/// The children are futures that the nursery polls itself, in the task that awaits it
/// (see the [module docs](self)): they may borrow from the caller's stack. The nursery
/// future is `Send` when `body`'s future is. For children that are not `Send`, use
/// [`local_nursery`].
///
/// The outcome is the spawning [`nursery`](crate::nursery)'s: the body's value once every
/// child has finished; every error, in order, if any failed (the first cancelled the
/// rest); a panic resumed once all have finished; [`NurseryError::Cancelled`](crate::NurseryError::Cancelled) if the
/// nursery's own [`cancel`](Nursery::cancel) ended the body before it returned a value.
///
/// # Cancel safety
///
/// If an enclosing scope is cancelled, every child is cancelled at its next suspension
/// point (a shielded one finishes its shield first), the nursery waits for all of them,
/// and then this future never completes: the cancelled scope returns. Dropping this
/// future from outside hatchery (C8) drops the body and every child at once.
///
/// # Panics
///
/// When first polled outside a hatchery runtime; to resume a panic of the body or of a
/// child, once every child has finished; when polled after it returned.
///
/// # Errors
///
/// [`NurseryError::Failed`](crate::NurseryError::Failed) with every error the body and the children returned, in
/// the order they happened; [`NurseryError::Cancelled`](crate::NurseryError::Cancelled) if [`Nursery::cancel`] ended the
/// body before it produced its value.
///
/// # Examples
///
/// ```
/// use hatchery::inline;
///
/// # hatchery_smol::run(async {
/// let mut totals = vec![0u32; 3];
/// let slots = &mut totals;
/// inline::nursery(|n| async move {
///     for (i, slot) in slots.iter_mut().enumerate() {
///         n.spawn(async move {
///             *slot = (i as u32 + 1) * 10; // each child writes its own slot
///             Ok::<_, std::io::Error>(())
///         });
///     }
///     Ok(())
/// })
/// .await
/// .unwrap();
/// totals.push(40); // the borrows ended with the nursery
/// assert_eq!(totals, [10, 20, 30, 40]);
/// # });
/// ```
#[track_caller]
pub fn nursery<'env, E, T, F, Fut>(body: F) -> NurseryFuture<F, Fut, T, E, SendChild<'env, E>>
where
    F: FnOnce(Nursery<'env, E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    NurseryFuture::with_kind(
        Group::new(None),
        trace::Sited::inline(Location::caller()),
        None,
        body,
    )
}

/// Opens an inline nursery whose children need not be `Send` (an `Rc`, a `RefCell`
/// borrow), runs `body` in it, and returns once the body and every child have finished.
///
/// Like [`nursery`] in all else; its future is not `Send`. Await it in a task that stays
/// on one thread: the future given to `hatchery_tokio::run_current_thread` or
/// `hatchery_smol::run_current_thread`, or a local task of the executor.
///
/// # Cancel safety
///
/// As [`nursery`]: an enclosing scope's cancellation cancels every child at its next
/// suspension point, the nursery waits for them, and this future never completes.
/// Dropping it from outside hatchery drops every child at once.
///
/// # Panics
///
/// As [`nursery`].
///
/// # Errors
///
/// As [`nursery`].
///
/// # Examples
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use hatchery::inline;
///
/// # hatchery_smol::run_current_thread(async {
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let log_ref = &log;
/// inline::local_nursery(|n| async move {
///     for i in 0..3 {
///         let log = log_ref;
///         let log = log.clone();
///         n.spawn(async move { log.borrow_mut().push(i); Ok::<_, std::io::Error>(()) });
///     }
///     Ok(())
/// })
/// .await
/// .unwrap();
/// assert_eq!(log.borrow().len(), 3);
/// # });
/// ```
#[track_caller]
pub fn local_nursery<'env, E, T, F, Fut>(
    body: F,
) -> NurseryFuture<F, Fut, T, E, LocalChild<'env, E>>
where
    F: FnOnce(LocalNursery<'env, E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    NurseryFuture::with_kind(
        Group::new(None),
        trace::Sited::inline(Location::caller()),
        None,
        body,
    )
}
