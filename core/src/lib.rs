//! Structured concurrency for Rust, on any executor: nurseries, cancel scopes, deadlines
//! and shielding, with trio's semantics.
//!
//! Library code written against `hatchery` runs unchanged on tokio or on smol; an
//! application picks an adapter (`hatchery-tokio`, `hatchery-smol`) and calls its `run`.
//!
//! # Concepts
//!
//! * A **nursery** ([`nursery`]) is a group of tasks with one owner. It returns only
//!   when every task in it has finished: on success, on error, on panic, and when it is
//!   cancelled. The first failure cancels the rest; every error is reported.
//! * A **cancel scope** ([`CancelScope`]) is a region of code that can be cancelled as a
//!   unit, by hand or by a deadline. Cancellation reaches everything inside: nested scopes
//!   and every task spawned into nurseries opened inside it, on any thread. A cancelled
//!   body is dropped at its next suspension point, so any crate's futures are cancelled
//!   too. [`move_on_after`] and [`fail_after`] are scopes with a timeout.
//! * A **shield** ([`shield`]) protects cleanup from the cancellation of enclosing scopes;
//!   [`finally`] runs shielded async cleanup after work that may be cancelled, and
//!   [`finally_with`] does so for a resource that the work borrows and the cleanup takes.
//! * The **effective deadline** ([`current_effective_deadline`]) is what a library
//!   passes to its I/O so that the whole call tree honours its caller's deadline.
//! * **Combinators** cover the everyday patterns (those that run futures concurrently
//!   are built on a nursery, so nothing is leaked and cancellation applies):
//!   [`join`](fn@join), [`try_join`](fn@try_join), [`settle`], [`race`](fn@race),
//!   [`race_ok`], [`as_completed`], bounded-concurrency [`map`], [`retry`] with backoff,
//!   a background [`service`] with graceful shutdown, and [`batches`] of a stream. For
//!   a few futures of different types, the macros [`join!`] and [`try_join!`] return a
//!   tuple and [`race!`] the first output.
//! * **Synchronization** ([`sync`]): memory streams ([`memory_stream`], rendezvous or
//!   buffered), and anyio's primitives, each correct under cancellation.
//! * **Testing** ([`testing`]): `#[hatchery::test]` runs an `async fn` test on every
//!   backend (with `hatchery-tokio` and `hatchery-smol` as dev-dependencies), on a
//!   virtual clock if asked (`#[hatchery::test(virtual_time)]`).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use hatchery::{fail_after, move_on_after, nursery, sleep};
//!
//! async fn fetch(id: u32) -> anyhow::Result<u32> {
//!     sleep(Duration::from_millis(u64::from(id))).await;
//!     Ok(id * 10)
//! }
//!
//! async fn app() -> anyhow::Result<()> {
//!     // Run two fetches in parallel; both finish before `nursery` returns.
//!     let sum = nursery(|n| async move {
//!         let a = n.spawn(fetch(1));
//!         let b = n.spawn(fetch(2));
//!         Ok::<_, anyhow::Error>(a.join().await? + b.join().await?)
//!     })
//!     .await?;
//!     assert_eq!(sum, 30);
//!
//!     // Give up after a timeout, with a fallback value.
//!     let v = move_on_after(Duration::from_millis(5), fetch(1000)).await.unwrap_or(Ok(0))?;
//!     assert_eq!(v, 0);
//!
//!     // Or make the timeout an error.
//!     assert!(fail_after(Duration::from_millis(5), fetch(1000)).await.is_err());
//!     Ok(())
//! }
//!
//! fn main() -> anyhow::Result<()> {
//!     hatchery_smol::run(app()) // or hatchery_tokio::run(app())
//! }
//! ```
//!
//! # Combinators
//!
//! The everyday patterns. Each combinator that runs futures concurrently spawns them into
//! a [`nursery`] it opens (or, for [`as_completed_in`], into yours), so the nursery's
//! guarantees hold:
//!
//! * the futures are tasks of the executor (`Send + 'static`): on a multi-threaded runtime
//!   they run in parallel;
//! * futures that are no longer wanted (losers of a race, the rest after a failure) are
//!   cancelled **and awaited**: when the combinator returns, every one of them has been
//!   dropped;
//! * enclosing cancel scopes and deadlines apply: when one is cancelled, the combinator
//!   cancels its futures, waits for them, and never returns (the cancelled scope does),
//!   unless a future had failed by then in a combinator that fails on an error
//!   ([`try_join`](fn@try_join), [`try_join!`], [`Map::try_join`](futures::Map::try_join)):
//!   like a nursery, it reports the errors its futures returned before or while being
//!   cancelled. Where an error is an output ([`settle`], [`race_ok`] until all fail,
//!   [`as_completed`]), a cancelled combinator never returns. (Like a nursery, one that
//!   finishes in its very first poll, nothing of it cancelled, never suspended and
//!   returns, as code that never suspends does: a `service` whose body returns at once,
//!   say, since its `try_spawn`s are refused in a cancelled scope);
//! * a panic in a future cancels the rest and is resumed in the caller.
//!
//! | combinator | waits for | returns | on `Err` |
//! |---|---|---|---|
//! | [`join`](fn@join) | all | every output, in input order | (outputs are opaque) |
//! | [`try_join`](fn@try_join) | all, or the first `Err` | every value, in input order | cancels the rest; every error |
//! | [`settle`] | all | every `Result`, in input order | keeps going |
//! | [`race`](fn@race) | the first | its output; the rest are cancelled | (outputs are opaque) |
//! | [`race_ok`] | the first `Ok` | its value; the rest are cancelled | keeps going; every error if all fail |
//! | [`as_completed`] | the body | a stream, in completion order | the body decides |
//! | [`map`] | all, at most N at a time | `join`, `try_join` or `settle`, ordered or not | as chosen |
//! | [`join!`], [`try_join!`] | as `join`, `try_join` | a tuple: futures of different types | as `join`, `try_join` |
//! | [`race!`] | the first | as `race`, for futures of different types | (outputs are opaque) |
//!
//! Errors are reported like a nursery's: [`NurseryError::Failed`] with every error, in
//! the order they happened. Never [`NurseryError::Cancelled`]: these combinators do not
//! cancel themselves, and when they are cancelled from outside they return only to
//! report errors.
//!
//! A combinator future can be kept past the scope it was first polled in
//! (`move_on_after(d, &mut fut)`, then `fut.await`; see [`CancelScope::run`]). If that
//! scope was cancelled while the combinator ran in it, the cancellation reached its
//! nursery: its futures were cancelled and its outputs are gone. Awaited after that
//! scope has finished, it panics with a message that says so, rather than return a
//! wrong value or hang. Await it in the scope where it started, or drop it.
//!
//! Beyond fan-out: [`retry`] (exponential backoff with jitter on hatchery's clock, with
//! [backon] policies), [`service`] (background work with a graceful
//! shutdown) and [`batches`] (cut a stream into batches by size and time).
//!
//! The combinators that open a nursery return `impl Future`: the future contains the
//! nursery's body, whose type cannot be named. Naming it would cost an allocation per
//! call and force `Send + 'static` on everything the body uses, such as the input
//! iterator of `map`, which may borrow. The futures are `Send` whenever their inputs
//! are. The hand-written futures and streams ([`Retry`](futures::Retry),
//! [`AsCompleted`](futures::AsCompleted), [`Batches`](futures::Batches)) are named, in
//! [`futures`].
//!
//! # How cancellation works
//!
//! Rust cancels a future by dropping it; trio cancels a task by raising at its next
//! checkpoint. hatchery joins the two. Every task hatchery runs is polled through a
//! wrapper that records the innermost cancel scope in a thread-local while it polls, so
//! it works on any executor. Scopes form a tree across tasks and threads. Cancelling a
//! scope marks its subtree and wakes the tasks in it; each scope, at its next suspension
//! point, drops its body, unless something inside still has to finish first (an active
//! shield, or a nursery draining its children). The outermost cancelled scope returns
//! (`None` from [`CancelScope::run`]); the inner ones never do. hatchery's own waits
//! ([`sleep`], [`checkpoint`], [`TaskHandle::join`]) never complete in a cancelled scope.
//!
//! Code that never suspends is never interrupted: call [`checkpoint`] in long CPU loops.
//!
//! The one way to lose the structured guarantee is to drop a hatchery future from
//! outside hatchery (a `tokio::select!` branch, `tokio::time::timeout`): everything inside
//! is cancelled at once, and a nursery's children are cancelled without being awaited.
//! Use hatchery's scopes for timeouts and races instead.
//!
//! # Runtimes
//!
//! Bind a runtime through an adapter: `hatchery_tokio::run`, `hatchery_smol::run`, or
//! their `enter` functions inside an application that already runs the executor. What
//! needs the runtime (the clock, timers and timeouts, cancel scopes, nurseries and the
//! combinators built on them, [`Nursery::start`], [`run_blocking`]) panics outside one,
//! with a message saying what to do. [`checkpoint`], the [`sync`] primitives, the memory
//! streams and [`TaskHandle::join`] work anywhere, a plain `tokio::spawn` task included
//! (outside a runtime, `checkpoint` only yields). [`rt::is_entered`] tells whether code
//! runs inside one. To bind another executor, implement [`rt::Runtime`].
//!
//! # Features
//!
//! * `macros` (on by default): the `#[hatchery::test]` attribute (see [`testing`]),
//!   from the `hatchery-macros` crate.
//!
//! # When not to use this
//!
//! If you need a fire-and-forget task that outlives its caller, hatchery is the wrong
//! tool on purpose: open a nursery high enough in your program instead, or use the
//! executor's own `spawn`. Children must be `Send + 'static`; a borrowing nursery polled
//! inline is not offered yet.

// `unsafe` is denied everywhere but in `task::raw`, whose module docs argue its soundness.
#![deny(unsafe_code)]

mod combinators;
mod error;
mod node;
mod nursery;
pub mod rt;
mod scope;
pub mod sync;
mod task;
pub mod testing;
mod time;

pub use crate::combinators::{
    as_completed, as_completed_in, batches, join, map, map_stream, race, race_ok, retry, service,
    settle, try_join, HatcherySleeper, Service, ServiceClosed, ServiceReport,
};
pub use crate::error::{JoinError, NurseryError, SpawnError, StartError};
pub use crate::nursery::{nursery, Nursery};
pub use crate::scope::{
    fail_after, fail_at, finally, finally_with, move_on_after, move_on_at, shield, CancelHandle,
    CancelScope, Elapsed,
};
pub use crate::sync::{memory_stream, memory_stream_unbounded, ReceiveStream, SendStream};
pub use crate::task::{TaskHandle, TaskStatus};
pub use crate::time::{
    checkpoint, current_effective_deadline, now, run_blocking, sleep, sleep_until, Deadline,
};
/// Not public API: what the macros expand to.
#[doc(hidden)]
pub mod __private {
    pub use crate::combinators::tuple::{JoinTuple, RaceTuple, TryJoinTuple};
}
/// The backoff policies used by [`retry`] (re-exported so that versions match).
pub use backon;
#[cfg(feature = "macros")]
pub use hatchery_macros::test;

/// The named futures returned by hatchery's functions.
///
/// Name them by path (`hatchery::futures::Sleep`) or import them one by one; do not
/// glob-import this module: [`Send`](futures::Send), the future of
/// [`SendStream::send`](crate::SendStream::send) (named like `async_channel::Send`), would
/// shadow the `Send` marker trait of the prelude.
///
/// # Examples
///
/// A named future can be returned (or kept in a struct) without boxing it:
///
/// ```
/// use std::time::Duration;
/// use hatchery::futures::{Fail, Sleep};
///
/// fn nap_with_limit(nap: Duration, limit: Duration) -> Fail<Sleep> {
///     hatchery::fail_after(limit, hatchery::sleep(nap))
/// }
///
/// # hatchery_smol::run(async {
/// assert!(nap_with_limit(Duration::from_millis(1), Duration::from_secs(5)).await.is_ok());
/// assert!(nap_with_limit(Duration::from_secs(3600), Duration::from_millis(5)).await.is_err());
/// # });
/// ```
pub mod futures {
    pub use crate::combinators::{AsCompleted, Batches, InputIter, Map, Retry};
    pub use crate::nursery::NurseryFuture;
    pub use crate::rt::Enter;
    pub use crate::scope::{Fail, FailScope, Finally, Run, Shield};
    pub use crate::sync::futures::*;
    pub use crate::task::{Join, Start};
    pub use crate::time::{Checkpoint, RunBlocking, Sleep};
}
