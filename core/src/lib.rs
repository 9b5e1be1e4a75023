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
//!   a background [`service`] with graceful shutdown, [`batches`] of a stream, and
//!   [`produce`], a producer task feeding its consumer a stream (an async generator). For
//!   a few futures of different types, the macros [`join!`] and [`try_join!`] return a
//!   tuple and [`race!`] the first output.
//! * **Polled children** ([`Polled`]): a nursery whose children are polled by its own
//!   task ([`Polled::nursery`], [`PolledLocal::nursery`]), so that they can borrow from
//!   the caller and need not be `Send`, with the same cancellation rules, and the
//!   combinators over it: [`Polled::join`], [`Polled::try_join`], [`Polled::settle`],
//!   [`Polled::race`], [`Polled::race_ok`], [`Polled::map`], and `join!(Polled: ..)` and
//!   `try_join!(Polled: ..)` for futures of different types.
//! * **Synchronization** ([`sync`]): memory streams ([`memory_stream`], rendezvous or
//!   buffered), and anyio's primitives, each correct under cancellation.
//! * **Diagnostics** ([`diagnostics`]): a warning when a cancelled scope waits on a
//!   nursery, shield, `finally` or `start` that is kept but no longer polled.
//! * **Networking** ([`net`]): TCP, UDP and Unix sockets on every runtime (its own
//!   reactor), whose operations are checkpoints and say what a cancellation leaves
//!   behind; happy eyeballs for host names, and [`net::serve`] for a task per connection.
//! * **Files** ([`fs`]): open, read, write and seek files, whole-file reads and writes,
//!   directories as streams, on worker threads under a limiter of their own, buffered,
//!   with written-down cancellation rules (anyio's `open_file` and `Path`).
//! * **Child processes** ([`process`]): std's `Command`, run with its pipes on the
//!   reactor; a cancelled `run` terminates and reaps its child, and a dropped running
//!   `Child` is killed and reaped (anyio's `run_process` and `open_process`).
//! * **Any descriptor** ([`io::Async`]): a pipe, an eventfd or a C library's socket
//!   on the runtime's reactor, waiting until readable or writable (trio's
//!   `wait_readable`), its waits checkpoints as every other I/O operation.
//! * **Threads** ([`to_thread`], [`from_thread`]): blocking work on a thread under a
//!   capacity limiter, calls back into the runtime from such a thread, and blocking
//!   portals through which any thread calls async code (anyio's `to_thread`,
//!   `from_thread` and `BlockingPortal`).
//! * **Signals** ([`signal`]): a stream of the signals the process receives, in order,
//!   and [`signal::ctrl_c`]; dropping the stream gives the signals back (anyio's
//!   `open_signal_receiver`).
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
//! | [`produce`] | the consumer | the consumer's value; the producer is cancelled | the consumer reads it after the items; unread, returned |
//! | [`map`] | all, at most N at a time | `join`, `try_join` or `settle`, ordered or not | as chosen |
//! | [`join!`], [`try_join!`] | as `join`, `try_join` | a tuple: futures of different types | as `join`, `try_join` |
//! | [`race!`] | the first | as `race`, for futures of different types | (outputs are opaque) |
//!
//! Errors are reported like a nursery's: [`NurseryError::Failed`] with every error, in
//! the order they happened. Never [`NurseryError::Cancelled`]: these combinators do not
//! cancel themselves, and when they are cancelled from outside they return only to
//! report errors.
//!
//! The same combinators for futures that borrow from the caller or are not `Send` are
//! the kind [`Polled`]'s: [`Polled::join`], [`Polled::try_join`], [`Polled::settle`],
//! [`Polled::race`], [`Polled::race_ok`], [`Polled::map`], `join!(Polled: ..)` and
//! `try_join!(Polled: ..)`. They have the same semantics, written once: what differs is
//! the kind of children that runs the futures, tasks of a nursery here ([`Spawned`]),
//! futures polled by the caller's task there ([`Polled`]: in place in the combinator's
//! future for a few, in a polled nursery for more), as [`futures::Map`]'s kind parameter
//! says. (For the polled kind, "spawns them into a nursery" above reads "polls them in a
//! polled nursery", and they run concurrently, never in parallel.)
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
//! [`AsCompleted`](futures::AsCompleted), [`Items`](futures::Items),
//! [`Batches`](futures::Batches)) are named, in
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
//! # The rules
//!
//! The semantics are stated once, as numbered rules, in the book's chapter *Semantics:
//! the rules* (`docs/src/semantics.md`); the docs, comments and tests cite them by name:
//!
//! * **C1–C8**, cancellation: delivery at suspension points, the whole tree, the
//!   outermost scope catches, deadlines, `fail_after`, shields, the effective deadline,
//!   foreign droppers. **N1–N8**, nurseries: waiting for all, errors, panics,
//!   cancellation is not an error, spawning, `start`, task handles, executor tasks.
//! * **S** [`Nursery::start`]; **H** handles ([`CancelHandle`], [`TaskHandle`]);
//!   **D** deadlines, the clock and the effective deadline; **P** shields and
//!   [`finally`]; **K** kept futures (polled in one scope, awaited in another);
//!   **F** foreign droppers; **W** hatchery's waits and the [`sync`] primitives;
//!   **G** combinators; **T** threads; **X** the operating system (files, descriptors,
//!   processes); **R** the runtime and the task context; **E** engineering rules
//!   (executor independence, speed, soundness).
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
//! * `macros` (off by default, so that a library compiles no proc-macro crate): the
//!   `#[hatchery::test]` attribute (see [`testing`]), from the `hatchery-macros` crate.
//! * `tokio-io` (off by default): tokio's `AsyncRead` and `AsyncWrite` for the streams of
//!   [`net`], and with `AsyncSeek` for [`fs::File`] (tokio's traits only, no tokio runtime: for `tokio-util`'s codecs, and hyper
//!   through `hyper_util::rt::TokioIo`, on any runtime). They always implement
//!   `futures_io`'s.
//! * `tracing` (off by default): spans and events through the
//!   [`tracing`](https://docs.rs/tracing) crate, all with the target `hatchery` (filter
//!   them with `hatchery=debug`). Without the feature there is no code for them at all.
//!
//!   | span | level | fields | made |
//!   |---|---|---|---|
//!   | `nursery` | DEBUG | `site`: where [`nursery`] was called | at the nursery's first poll, a child of the span current there |
//!   | `task` | DEBUG | `name` (if [`spawn_named`](Nursery::spawn_named) gave one), `site`: where it was spawned | at the spawn, a child of its nursery's span (whichever task spawns it) |
//!   | `scope` | DEBUG | `site`: where the scope's future was built ([`move_on_after`], [`CancelScope::run`], [`shield`], ...), `shield`, `timeout` (if any) | at the scope's first poll, a child of the span current there |
//!
//!   Each span is entered around every poll of its work, on whichever thread polls it,
//!   so that the spans follow the tree of nurseries, tasks and scopes, and the user's own
//!   spans and events inside them are their children.
//!
//!   | event | level | in the span of | fields |
//!   |---|---|---|---|
//!   | `cancelled` | DEBUG | the scope, task or nursery body whose work is dropped by a cancellation | `reason`: the [`CancelReason`]'s `Display`; `cancel_message`: its message, if any; `caught` (scopes): whether this scope returns (rather than an enclosing cancelled one) |
//!   | `deadline expired` | DEBUG | the scope whose own deadline cancelled it, just before its `cancelled` | none |
//!   | `task failed`, `body failed` | DEBUG | the task, or the nursery (its body) | `error`: its `Display` for the standard error and string types (`Box<dyn Error + ...>`, `io::Error`, `String`, `&str`; the nursery's error type has no `Display` bound), `error_type`: its type's name |
//!   | `task panicked`, `body panicked` | WARN | the task, or the nursery | `panic`: the payload, if a `&str` or a `String` |
//!
//!   An error is DEBUG: the nursery returns it to its caller, whose business it is to
//!   report it. A panic is WARN: it is resumed in the caller too, but is a bug. The
//!   book's chapter *Tracing* shows a trace, and what the feature costs.
//!
//! # When not to use this
//!
//! If you need a fire-and-forget task that outlives its caller, hatchery is the wrong
//! tool on purpose: open a nursery high enough in your program instead, or use the
//! executor's own `spawn`. Spawned children must be `Send + 'static`; for children that
//! borrow from the caller or are not `Send`, use a [`Polled`] nursery, which polls them in
//! its own task: concurrently, never in parallel, so a child that blocks its thread
//! blocks its siblings too.

// `unsafe` is denied everywhere but in `child::cell` (the one child cell: a child's node,
// future, output and label in one allocation, for every kind of children) and
// `node::waker` (a runner's waker in two atomics), whose module docs argue their
// soundness. `signal` has none: the two system calls it needs that safe Rust cannot make
// are the `hatchery-sigaction` crate's.
#![deny(unsafe_code)]
// docs.rs (`--cfg docsrs`, see Cargo.toml): mark feature-gated items with their feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The layers, bottom to top: a module imports only modules listed above its line here.
// The `layers` step of `.ci/run` (`.ci/check_layers.py`) reads this list and fails on an
// import that goes up, or on a top-level module missing from it: a new module gets a
// line here after the lines of the modules it imports, before those of the modules that
// import it.
//
// layer seam: the runtime seam, what hatchery needs from an executor (imports nothing)
// layer values: context values, inherited by children (imports nothing)
// layer error: the public error types
// layer node: the cancel tree
// layer reason: why a scope was cancelled, as the public API reports it
// layer timer: the deadlines a task keeps
// layer trace: spans and events of the `tracing` feature
// layer context: the ambient context: the current runtime, scope and task
// layer tree: the task tree as `diagnostics` shows it
// layer diagnostics: task-tree dumps and warnings about holds
// layer sync: the sync primitives and the streams
// layer time: `sleep`, `now`, the effective deadline
// layer scope: cancel scopes, shields and `finally`
// layer group: a group's state, its record, how it ends (every kind of children)
// layer child: the one child cell, the one driver, the handles
// layer kind: kinds of children and the one group future over them
// layer nursery: `Nursery` for every kind, `start`, subgroups
// layer combinators: `join`, `race`, `map` and the rest, each written once over every
//     kind of children
// layer produce: structured streams, a producer task feeding its consumer (over a
//     nursery and a memory stream)
// layer thread: work on threads, calls back, portals
// layer net: sockets over the runtime's reactor
// layer signal: Unix signals (over `net`'s sockets)
// layer io: any descriptor on the runtime's reactor
// layer process: child processes (over `io`'s pipes)
// layer fs: files (over the threads)
// layer rt: the seam's public face, `hatchery::rt`, with the entry points of `context`
//     (re-exports only; nothing imports it)
// layer testing: test runs and virtual time (over everything; nothing imports it)
mod child;
mod combinators;
mod context;
pub mod diagnostics;
mod error;
pub mod fs;
mod group;
pub mod io;
mod kind;
pub mod net;
mod node;
mod nursery;
pub mod process;
mod produce;
mod reason;
pub mod rt;
mod scope;
mod seam;
pub mod signal;
pub mod sync;
pub mod testing;
mod thread;
mod time;
mod timer;
mod trace;
mod tree;
mod values;

pub use crate::child::TaskHandle;
pub use crate::combinators::{
    as_completed, as_completed_in, batches, join, map, map_stream, race, race_ok, retry, service,
    settle, try_join, Backoff, HatcherySleeper, Service, ServiceClosed, ServiceReport,
};
pub use crate::error::{JoinError, NurseryError, SpawnError, StartError};
pub use crate::kind::polled::{Polled, PolledLocal};
pub use crate::kind::{Local, Spawned};
pub use crate::nursery::{
    err_into, nursery, Accepts, BodyOutput, Children, Nursery, Starts, Subgroup, TaskStatus,
};
pub use crate::produce::produce;
pub use crate::reason::CancelReason;
pub use crate::scope::{
    fail_after, fail_at, finally, finally_with, move_on_after, move_on_at, shield, CancelHandle,
    CancelScope, Elapsed,
};
pub use crate::sync::stream::{memory_stream, memory_stream_unbounded, ReceiveStream, SendStream};
pub use crate::thread::{from_thread, to_thread, to_thread::run_blocking};
pub use crate::time::{checkpoint, current_effective_deadline, now, sleep, sleep_until, Deadline};
pub use crate::values::{ContextKey, WithContext};
/// Not public API: what the macros expand to.
#[doc(hidden)]
pub mod __private {
    pub use crate::combinators::tuple::{
        polled_joined, polled_tried, JoinTuple, RaceTuple, TryJoinTuple,
    };
    pub use crate::kind::tuple::*;
}
/// The backoff policies used by [`retry`] (re-exported so that versions match).
pub use backon;
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
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
    pub use crate::child::Join;
    pub use crate::combinators::{AsCompleted, Batches, InputIter, Map, Retry};
    pub use crate::context::Enter;
    pub use crate::nursery::{ErrInto, NurseryFuture, Start, StartWithHandle, SubgroupWait};
    pub use crate::produce::Items;
    pub use crate::scope::{Fail, FailScope, Finally, Run, Shield};
    pub use crate::sync::futures::*;
    pub use crate::thread::to_thread::{RunBlocking, RunSync};
    pub use crate::time::{Checkpoint, Sleep};
}
