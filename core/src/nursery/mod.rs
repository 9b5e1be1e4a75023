//! Nurseries: `nursery`, `Nursery::{spawn, start, cancel}`.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use pin_project_lite::pin_project;

use crate::context;
use crate::diagnostics::{self, Held, HolderKind};
use crate::error::{NurseryError, SpawnError};
use crate::group::{decide, make_body, poll_body, Body, Failures, Phase, Record, Seen};
use crate::node::{Detail, Kind, Labelled, Named, Node, Reason, Tag};
use crate::reason::{said, CancelReason};
use crate::rt::Runtime;
use crate::task::{Graves, Group, Label, Panic, TaskHandle};
use crate::trace;

mod convert;
mod spawn;
mod start;
mod subgroup;

pub use self::convert::{err_into, BodyOutput, ErrInto};
pub use self::start::{Start, StartWithHandle, TaskStatus};
pub use self::subgroup::{Subgroup, SubgroupWait};

/// Opens a nursery, runs `body` in it, and returns once the body and every task spawned
/// into the nursery have finished.
///
/// `body` receives a [`Nursery`] handle to spawn tasks with. The body is part of the
/// group: it runs inline in the caller's task, while spawned children are tasks of the
/// executor that run in parallel on a multi-threaded runtime.
///
/// * **Success**: returns the body's value once every child has finished.
/// * **Errors**: the first child (or body) that returns `Err` cancels the nursery: the
///   body and all other children are cancelled and awaited. Then every error is returned,
///   in the order they happened, as [`NurseryError::Failed`]. `?` converts it into
///   `anyhow::Error` or `Box<dyn Error + Send + Sync>`; for your own error type, implement
///   `From<NurseryError<YourError>>` (see [`NurseryError`]), and
///   [`From<JoinError>`](crate::JoinError) if the body uses `?` on
///   [`TaskHandle::join`](crate::TaskHandle::join), and
///   [`From<StartError<YourError>>`](crate::StartError) if it uses `?` on
///   [`Nursery::start`].
/// * **Panics**: a panic in a child or the body cancels the rest; once all have finished,
///   the first panic is resumed in the caller (like [`std::thread::scope`]). A panic wins
///   over errors. "First" is the first to reach the nursery: a panicking child's own
///   destructors run while it unwinds, before its panic is recorded, so one that wakes
///   the body (a channel sender dropped: the stream ends, as `std::sync::mpsc`'s does)
///   can let the body panic first in response.
/// * **Own cancellation**: [`Nursery::cancel`] cancels the body and every child. If that
///   ends the body before it produced its value, the result is
///   [`NurseryError::Cancelled`]; if the body had already finished, its value is returned.
/// * **Outer cancellation**: cancellation is not an error. When an enclosing scope is
///   cancelled, the nursery cancels its body and children, waits for all of them, and then
///   lets the enclosing scope end the work: this future never completes, even if the body
///   had already returned its value. (Errors that children returned before they were
///   cancelled are still reported. A nursery that finishes in its very first poll, with
///   no child cancelled, never suspended, and returns its value as code that never
///   suspends does.)
///
/// # Errors
///
/// Once the body and every child have finished:
///
/// * [`NurseryError::Failed`] with every error that the body and the children returned,
///   in the order they happened, if any did (the first one cancelled the rest);
/// * [`NurseryError::Cancelled`] if [`Nursery::cancel`] ended the body before it produced
///   its value.
///
/// An enclosing scope's cancellation is not an error: it gives no `Err` of its own (see
/// **Outer cancellation** above).
///
/// # Cancel safety
///
/// If an enclosing scope is cancelled, the nursery still waits for all its children
/// before the scope ends, as described above. Dropping this future from outside hatchery
/// (a `select!` branch, `tokio::time::timeout`) is the one way to lose the structured
/// guarantee: the body is dropped at once and the children are cancelled but not
/// awaited; each stops at its next suspension point. The nursery is closed: spawning
/// into it fails, and its children's errors and panics are not reported (nobody is
/// left to report them to). Use hatchery's own timeouts
/// ([`move_on_after`](crate::move_on_after)) instead.
///
/// A nursery belongs to the scope of its first poll. Kept and awaited later in a scope
/// around that one (`move_on_after(d, &mut work)`, then `work.await`), it follows the
/// scopes that still run there. Moved into another scope instead (passed by value to a
/// timeout, sent to another task), it still follows only the first one's, and the new
/// scope, once cancelled, drops it as from outside hatchery (above). Kept without being
/// polled while an enclosing scope is cancelled, it keeps that scope from ending its
/// body until it is polled again or dropped: drop what you do not poll.
///
/// # Panics
///
/// When first polled outside a hatchery runtime; and, as above, to resume a panic of the
/// body (in the `body` closure, in a poll of its future or in its destructor) or a
/// child, once every child has finished. When polled after it returned.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{nursery, sleep};
///
/// # fn main() -> anyhow::Result<()> {
/// hatchery_smol::run(async {
///     let total = nursery(|n| async move {
///         let a = n.spawn(async { sleep(Duration::from_millis(2)).await; Ok(20) });
///         let b = n.spawn(async { Ok(22) });
///         n.spawn(async { Ok(0) }); // the handle may be dropped: the task still runs
///         Ok::<_, anyhow::Error>(a.join().await? + b.join().await?)
///     })
///     .await?;
///     assert_eq!(total, 42);
///     Ok(())
/// })
/// # }
/// ```
#[track_caller]
pub fn nursery<E, T, F, Fut>(body: F) -> NurseryFuture<F, Fut, T, E>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut::Output: BodyOutput<E>,
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    NurseryFuture::new(Location::caller(), None, body)
}

/// [`nursery`], giving the nursery a name: its handle's [`name`](Nursery::name), and how
/// the task tree shows it ([`diagnostics::tree`](crate::diagnostics::tree)). A nursery
/// without a name is known by where `nursery` was called; a name costs one allocation
/// and one read of the clock (for its age in the tree), made when the nursery opens.
///
/// # Cancel safety
///
/// As [`nursery`]'s: dropping the future before it completes cancels the body and every
/// child, and does not wait for them. If an enclosing scope is cancelled while it waits,
/// the body and every child are cancelled, and it waits for them to finish.
///
/// # Panics
///
/// As [`nursery`]'s.
///
/// # Errors
///
/// As [`nursery`]'s: every error of the body and the children, or
/// [`NurseryError::Cancelled`] if [`Nursery::cancel`] ended the body before its value.
///
/// # Examples
///
/// ```
/// use hatchery::nursery_named;
///
/// # hatchery_smol::run(async {
/// let name = nursery_named("fetchers", |n| async move {
///     Ok::<_, std::io::Error>(n.name().map(str::to_owned))
/// })
/// .await
/// .unwrap();
/// assert_eq!(name.as_deref(), Some("fetchers"));
/// # });
/// ```
#[track_caller]
pub fn nursery_named<E, T, F, Fut>(
    name: impl Into<Cow<'static, str>>,
    body: F,
) -> NurseryFuture<F, Fut, T, E>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut::Output: BodyOutput<E>,
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    NurseryFuture::new(Location::caller(), Some(name.into()), body)
}

/// [`nursery`] called at `site`: for the combinators, which open nurseries on their
/// caller's behalf and record the caller's place (`#[track_caller]` does not reach into
/// the futures they return).
pub(crate) fn nursery_at<E, T, F, Fut>(
    site: &'static Location<'static>,
    body: F,
) -> NurseryFuture<F, Fut, T, E>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut::Output: BodyOutput<E>,
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    NurseryFuture::new(site, None, body)
}

/// What a nursery's node carries: what the nursery is called, for the task tree.
struct NurseryTag(Label);

impl Tag for NurseryTag {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn label(&self) -> Option<Labelled<'_>> {
        Some(self.0.labelled(Kind::Nursery))
    }
}

/// A handle to an open nursery, for spawning tasks into it and cancelling it.
///
/// Cheap to clone; clones may be moved into the nursery's children so that they can spawn
/// siblings.
///
/// # Examples
///
/// ```
/// use hatchery::{nursery, Nursery, TaskHandle};
///
/// fn spawn_squares(n: &Nursery<std::io::Error>, count: u32) -> Vec<TaskHandle<u32>> {
///     (0..count).map(|i| n.spawn(async move { Ok(i * i) })).collect()
/// }
///
/// # hatchery_smol::run(async {
/// let total = nursery(|n| async move {
///     let mut total = 0;
///     for h in spawn_squares(&n, 4) {
///         total += h.join().await?;
///     }
///     Ok::<_, std::io::Error>(total)
/// })
/// .await
/// .unwrap();
/// assert_eq!(total, 1 + 4 + 9);
/// # });
/// ```
pub struct Nursery<E> {
    pub(crate) shared: Arc<Shared<E>>,
}

impl<E> Clone for Nursery<E> {
    fn clone(&self) -> Self {
        Nursery {
            shared: self.shared.clone(),
        }
    }
}

impl<E> fmt::Debug for Nursery<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state.load(Ordering::Acquire);
        f.debug_struct("Nursery")
            .field("tasks", &(state >> 1))
            .field("closed", &(state & CLOSED != 0))
            .field("cancelled", &self.shared.node.is_cancelled())
            .field("cancel_reason", &CancelReason::of(&self.shared.node))
            .finish()
    }
}

const CLOSED: usize = 1;
const ONE: usize = 2;

/// State shared by a nursery, its handles and its children.
pub(crate) struct Shared<E> {
    pub(crate) node: Arc<Node>,
    pub(crate) rt: Arc<dyn Runtime>,
    /// `CLOSED` bit, plus the number of live children times `ONE`.
    state: AtomicUsize,
    /// Allocations of finished children let go of on another thread than the
    /// nursery's, for the nursery's thread to free.
    pub(crate) graves: Graves,
    /// Whether a child ended cancelled: then a body that returned in the first poll did
    /// not run to its end without interruption (see the end of `poll`).
    child_cancelled: AtomicBool,
    waker: AtomicWaker,
    record: Mutex<Record<E>>,
    /// The nursery's span, its tasks' spans' parent (`tracing` feature).
    trace: trace::Parent,
}

impl<E> Shared<E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Record<E>> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a new child, unless the nursery has closed.
    pub(crate) fn add_child(&self) -> Result<(), SpawnError> {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & CLOSED != 0 {
                return Err(SpawnError(()));
            }
            match self.state.compare_exchange_weak(
                cur,
                cur + ONE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Closes the nursery whatever is left: its future is gone. Children still running
    /// finish on their own; nobody is woken when they do.
    fn close(&self) {
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
    }

    /// Closes the nursery if no child is left. Succeeds at most once.
    fn try_close(&self) -> bool {
        self.state
            .compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl<E: Send + 'static> Failures<E> for Shared<E> {
    fn body_failed(&self, error: E) {
        self.fail(error, None);
    }

    fn body_panicked(&self, panic: Panic) {
        self.panicked(panic, None);
    }
}

impl<E: Send + 'static> spawn::Admit for Shared<E> {
    const TYPE: &'static str = "Nursery";

    fn admit(&self) -> Result<(), SpawnError> {
        self.add_child()
    }
}

impl<E: Send + 'static> Group for Shared<E> {
    type Error = E;

    fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.rt
    }

    fn node(&self) -> &Arc<Node> {
        &self.node
    }

    fn trace_parent(&self) -> trace::Parent {
        self.trace.clone()
    }

    fn graves(&self) -> &Graves {
        &self.graves
    }

    /// Notes that a child ended cancelled (before [`child_done`](Self::child_done)).
    fn note_cancelled_child(&self) {
        if !self.child_cancelled.load(Ordering::Relaxed) {
            self.child_cancelled.store(true, Ordering::Relaxed);
        }
    }

    /// A child has finished (its future is already dropped).
    fn child_done(&self) {
        if self.state.fetch_sub(ONE, Ordering::AcqRel) == ONE {
            self.waker.wake();
        }
    }

    /// Records a failure and cancels the nursery.
    fn fail(&self, error: E, task: Option<&Label>) {
        if task.is_none() {
            // The body's (a task's end has its own event, in its span).
            trace::failed(&error, false);
        }
        self.lock().errors.push(error);
        let detail = Detail::Failed {
            task: task.map(|t| t.site),
            name: task.and_then(Label::name),
            panicked: false,
        };
        self.node.cancel_with(Reason::Failure, detail);
    }

    /// Records a panic and cancels the nursery.
    fn panicked(&self, panic: Panic, task: Option<&Label>) {
        if task.is_none() {
            trace::panicked(&*panic, false);
        }
        self.lock().panicked(panic);
        let detail = Detail::Failed {
            task: task.map(|t| t.site),
            name: task.and_then(Label::name),
            panicked: true,
        };
        self.node.cancel_with(Reason::Failure, detail);
    }
}

impl<E: Send + 'static> Nursery<E> {
    /// Spawns `fut` as a new task of the nursery and returns a handle to its value.
    ///
    /// The task is a task of the executor: on a multi-threaded runtime it runs in
    /// parallel with the body and its siblings. If it returns `Err`, the nursery is
    /// cancelled and the error is reported by [`nursery`]. Dropping the [`TaskHandle`]
    /// does not cancel the task.
    ///
    /// A task spawned into a nursery that is already cancelled still runs until its first
    /// suspension point, then is cancelled.
    ///
    /// The task's error type is the nursery's, `E`. A future whose error converts into it
    /// (a library's error into `anyhow::Error`, say) is spawned through
    /// [`err_into`](crate::err_into): `n.spawn(err_into(client.ping()))`. (A `spawn`
    /// taking any `E2: Into<E>` would leave the error type of `n.spawn(async { Ok(x) })`,
    /// and of every `?` in it, with nothing to infer it from.)
    ///
    /// A task that never returns (`async move { loop { .. } }`) gives its value type
    /// nothing to be inferred from either (rustc's E0282 or E0283, "cannot infer type"):
    /// name it, `n.spawn::<(), _>(..)`, or write the loop in a function that returns
    /// `Result<(), E>`.
    ///
    /// # Panics
    ///
    /// If the nursery has already finished: use [`try_spawn`](Nursery::try_spawn) to get
    /// an error instead. A task is never silently dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// let out = nursery(|n| async move {
    ///     let n2 = n.clone();
    ///     // Children may spawn siblings.
    ///     let h = n.spawn(async move { Ok(n2.spawn(async { Ok(2) }).join().await.unwrap() * 21) });
    ///     Ok::<_, std::io::Error>(h.join().await.unwrap())
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(out, 42);
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn<T, F>(&self, fut: F) -> TaskHandle<T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        spawn::spawn(&self.shared, fut, None)
    }

    /// Like [`spawn`](Nursery::spawn), but returns [`SpawnError`] instead of panicking if
    /// the nursery has already finished. The future is dropped unpolled in that case.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] if the nursery is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// let mut saved = None;
    /// nursery(|n| async {
    ///     saved = Some(n);
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// let closed = saved.unwrap();
    /// assert!(closed.try_spawn(async { Ok(()) }).is_err());
    /// # });
    /// ```
    #[track_caller]
    pub fn try_spawn<T, F>(&self, fut: F) -> Result<TaskHandle<T>, SpawnError>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        spawn::try_spawn(&self.shared, fut, None)
    }

    /// [`spawn`](Nursery::spawn), giving the task a name: its handle's
    /// [`name`](TaskHandle::name), and what a cancel reason says of it if it fails
    /// ([`CancelReason::Failure`]). A task without a name is known by where it was
    /// spawned ([`TaskHandle::spawned_at`]); a name costs one allocation, made only here.
    ///
    /// # Panics
    ///
    /// As [`spawn`](Nursery::spawn): if the nursery has already finished.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::{nursery, CancelReason};
    ///
    /// # hatchery_smol::run(async {
    /// let mut kept = None;
    /// let r = nursery(|n| async {
    ///     let n = n;
    ///     n.spawn_named(format!("worker {}", 3), async { Err::<(), _>("boom") });
    ///     kept = Some(n.clone());
    ///     Ok(())
    /// })
    /// .await;
    /// assert!(r.is_err());
    /// let reason = kept.unwrap().cancel_reason().unwrap();
    /// assert!(matches!(&reason, CancelReason::Failure { name: Some(name), .. } if name == "worker 3"));
    /// assert!(reason.to_string().starts_with("task \"worker 3\" (spawned at "));
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn_named<T, F>(&self, name: impl Into<Cow<'static, str>>, fut: F) -> TaskHandle<T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        let named = Named {
            name: name.into(),
            since: self.shared.rt.now(),
        };
        spawn::spawn(&self.shared, fut, Some(Box::new(named)))
    }

    /// Cancels the nursery: its body and every child (children spawned later too). Not an
    /// error: if this ends the body before it returns a value, [`nursery`] returns
    /// [`NurseryError::Cancelled`]. Idempotent.
    ///
    /// To stop some children and let the body go on (to close a connection they used,
    /// say, and then return its value), spawn them into a [`subgroup`](Nursery::subgroup)
    /// and cancel that.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{nursery, sleep};
    ///
    /// # hatchery_smol::run(async {
    /// let r = nursery(|n| async move {
    ///     n.spawn(async { sleep(Duration::from_secs(3600)).await; Ok(()) });
    ///     n.cancel();
    ///     sleep(Duration::from_secs(3600)).await;
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await;
    /// assert!(r.unwrap_err().is_cancelled());
    /// # });
    /// ```
    #[track_caller]
    pub fn cancel(&self) {
        let detail = said(Location::caller(), None);
        self.shared.node.cancel_with(Reason::Nursery, detail);
    }

    /// Cancels the nursery of a race (called at `at`) that was won.
    pub(crate) fn race_won(&self, at: &'static Location<'static>) {
        let detail = crate::reason::race_won(at);
        self.shared.node.cancel_with(Reason::Nursery, detail);
    }

    /// [`cancel`](Nursery::cancel), with a message that the nursery's
    /// [`cancel_reason`](Nursery::cancel_reason) carries, and so do its tasks' (as
    /// [`CancelReason::Outer`]). If the nursery was cancelled already, the first reason
    /// stays and the message is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{nursery, sleep, CancelReason};
    ///
    /// # hatchery_smol::run(async {
    /// let r = nursery(|n| async move {
    ///     let h = n.spawn(async { sleep(Duration::from_secs(3600)).await; Ok(()) });
    ///     n.cancel_with("no longer needed");
    ///     let reason = h.cancel_reason().unwrap(); // the child's: its nursery's reason
    ///     assert!(matches!(reason.origin(), CancelReason::Nursery { .. }));
    ///     assert_eq!(reason.message(), Some("no longer needed"));
    ///     assert!(h.join().await.unwrap_err().is_cancelled());
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await;
    /// assert!(r.unwrap_err().is_cancelled());
    /// # });
    /// ```
    #[track_caller]
    pub fn cancel_with(&self, message: impl Into<Cow<'static, str>>) {
        let detail = said(Location::caller(), Some(message.into()));
        self.shared.node.cancel_with(Reason::Nursery, detail);
    }

    /// Why the nursery was cancelled, if it was: by its own
    /// [`cancel`](Nursery::cancel), by the failure of a task or of its body (naming
    /// where that task was spawned), by an enclosing scope
    /// ([`CancelReason::Outer`]), or by its future being dropped from outside hatchery.
    /// Readable after the nursery has finished, through a kept clone.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::{nursery, CancelReason};
    ///
    /// # hatchery_smol::run(async {
    /// let mut kept = None;
    /// let r = nursery(|n| async {
    ///     let n = n; // moved into the body
    ///     n.spawn(async { Err::<(), _>("boom") });
    ///     kept = Some(n.clone());
    ///     Ok(())
    /// })
    /// .await;
    /// assert!(r.is_err());
    /// let reason = kept.unwrap().cancel_reason().unwrap();
    /// let CancelReason::Failure { task: Some(at), panicked: false, .. } = reason else {
    ///     panic!("{reason}")
    /// };
    /// assert_eq!(at.line(), line!() - 10); // where the failed task was spawned
    /// # });
    /// ```
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        CancelReason::of(&self.shared.node)
    }

    /// Whether the nursery has been cancelled (by [`cancel`](Nursery::cancel), a failure
    /// or an enclosing scope).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// let r = nursery(|n| async move {
    ///     assert!(!n.is_cancelled());
    ///     n.cancel();
    ///     assert!(n.is_cancelled());
    ///     Ok::<_, std::io::Error>("done") // no suspension point since `cancel`
    /// })
    /// .await;
    /// assert_eq!(r.unwrap(), "done");
    /// # });
    /// ```
    pub fn is_cancelled(&self) -> bool {
        let node = &self.shared.node;
        // A `cancel` after the nursery finished is recorded, with nothing left to mark.
        node.is_cancelled() || node.reason().is_some()
    }

    /// Whether the nursery has finished, or its future was dropped from outside hatchery
    /// (C8); spawning into it then fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// let mut saved = None;
    /// nursery(|n| async {
    ///     assert!(!n.is_closed());
    ///     saved = Some(n);
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// assert!(saved.unwrap().is_closed());
    /// # });
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// [`spawn`](Nursery::spawn) called at `site` (see [`nursery_at`]).
    pub(crate) fn spawn_at<T, F>(&self, site: &'static Location<'static>, fut: F) -> TaskHandle<T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        match spawn::try_spawn_at(&self.shared, fut, None, site) {
            Ok(h) => h,
            Err(e) => spawn::refused(e, "Nursery"),
        }
    }

    /// [`try_spawn`](Nursery::try_spawn) called at `site` (see [`nursery_at`]).
    pub(crate) fn try_spawn_at<T, F>(
        &self,
        site: &'static Location<'static>,
        fut: F,
    ) -> Result<TaskHandle<T>, SpawnError>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        spawn::try_spawn_at(&self.shared, fut, None, site)
    }

    /// The name the nursery was given by [`nursery_named`], if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::{nursery, nursery_named};
    ///
    /// # hatchery_smol::run(async {
    /// nursery_named("pool", |n| async move {
    ///     assert_eq!(n.name(), Some("pool"));
    ///     nursery(|inner| async move {
    ///         assert_eq!(inner.name(), None);
    ///         Ok::<_, std::io::Error>(())
    ///     })
    ///     .await
    ///     .map_err(std::io::Error::other)
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.label().and_then(Label::name_str)
    }

    /// Where the nursery was opened: the call of [`nursery`] (or [`nursery_named`], or
    /// the combinator that opened it for you: `join_all`, `race` and the others record
    /// their caller).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// let line = line!() + 1;
    /// nursery(|n| async move {
    ///     assert_eq!((n.opened_at().file(), n.opened_at().line()), (file!(), line));
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn opened_at(&self) -> &'static Location<'static> {
        self.label()
            .map(|l| l.site)
            .expect("hatchery: internal error: a nursery's node without its label")
    }

    fn label(&self) -> Option<&Label> {
        self.shared.node.ext_ref::<NurseryTag>().map(|t| &t.0)
    }
}

pin_project! {
    /// Future returned by [`nursery`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// let opened = Cell::new(false);
    /// let fut = nursery(|_n| {
    ///     opened.set(true);
    ///     async { Ok::<_, std::io::Error>(7) }
    /// });
    /// assert!(!opened.get()); // the nursery opens when the future is first polled
    /// assert_eq!(fut.await.unwrap(), 7);
    /// assert!(opened.get());
    /// # });
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct NurseryFuture<F, Fut, T, E> {
        make: Option<F>,
        #[pin]
        body: Option<Fut>,
        state: Option<Open<T, E>>,
        // Where `nursery` was called, for the hold warnings and the task tree
        // (`diagnostics`); with the `tracing` feature, also the nursery's span, entered
        // around every poll.
        site: trace::Sited,
        // The name `nursery_named` gave, until the nursery opens.
        name: Option<Cow<'static, str>>,
    }

    impl<F, Fut, T, E> PinnedDrop for NurseryFuture<F, Fut, T, E> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if let Some(mut open) = this.state.take() {
                if !open.phase.finished() {
                    // Dropped from outside before it finished (C8): cancel everything
                    // now. Children stop at their next suspension point; nobody waits.
                    open.shared.node.cancel(Reason::Dropped);
                }
                // Nobody will wait for a child spawned from now on: spawning fails (a
                // nursery that finished is closed already).
                open.shared.close();
                // The body's destructor may panic: leave the tree in order first.
                let dropped = catch_unwind(AssertUnwindSafe(|| this.body.set(None)));
                open.hold.take();
                open.shared.node.detach();
                // Not `finish`ed: after a drop from outside, children may still run (and
                // link in their first poll): the node stays cancelled for them.
                if let Err(p) = dropped {
                    resume_unwind(p);
                }
            }
        }
    }
}

/// The state of a nursery between its first poll and its completion.
struct Open<T, E> {
    shared: Arc<Shared<E>>,
    /// The nursery's node, installed as the current one while the body is polled.
    node: Option<Arc<Node>>,
    /// Keeps enclosing scopes of this task from dropping the nursery while it drains.
    hold: Option<Held>,
    /// The body's value, once it has produced one.
    value: Option<T>,
    /// Where it is in its life.
    phase: Phase,
}

impl<F, Fut, T, E> fmt::Debug for NurseryFuture<F, Fut, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NurseryFuture").finish_non_exhaustive()
    }
}

/// Terminated once it has returned its output (or resumed a panic): `select!` loops can
/// keep it without `.fuse()`. A nursery still draining its children, or stalled under a
/// cancelled enclosing scope, is not terminated.
///
/// # Examples
///
/// ```
/// use futures_core::future::FusedFuture;
/// use futures_lite::future::poll_once;
///
/// # hatchery_smol::run(async {
/// let mut n = Box::pin(hatchery::nursery(|_| async { Ok::<_, std::io::Error>(7) }));
/// assert!(!n.is_terminated());
/// assert_eq!(poll_once(n.as_mut()).await.map(Result::unwrap), Some(7));
/// assert!(n.is_terminated());
/// # });
/// ```
impl<F, Fut, T, E> futures_core::future::FusedFuture for NurseryFuture<F, Fut, T, E>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|open| open.phase == Phase::Returned)
    }
}

impl<F, Fut, T, E> NurseryFuture<F, Fut, T, E> {
    /// The future of a nursery opened at `site` (its caller's, for `nursery` and
    /// `nursery_named`), called `name` if it has one, that will run `body`.
    fn new(site: &'static Location<'static>, name: Option<Cow<'static, str>>, body: F) -> Self {
        NurseryFuture {
            make: Some(body),
            body: None,
            state: None,
            site: trace::Sited::nursery(site),
            name,
        }
    }
}

impl<F, Fut, T, E> Future for NurseryFuture<F, Fut, T, E>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut::Output: BodyOutput<E>,
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    type Output = Result<T, NurseryError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _entered = this.site.entry(this.name.as_deref());
        let mut first = false;
        if this.state.is_none() {
            let make = this
                .make
                .take()
                .expect("hatchery: nursery future polled after completion");
            let parent = context::current();
            let label = Label {
                site: this.site.at(),
                name: this.name.take().map(|name| {
                    Box::new(Named {
                        name,
                        since: parent.rt.now(),
                    })
                }),
            };
            let node: Arc<Node> = Arc::new(Node::with_ext(false, false, NurseryTag(label)));
            node.attach(&parent.node);
            let shared = Arc::new(Shared {
                node: node.clone(),
                rt: parent.rt,
                state: AtomicUsize::new(0),
                graves: Graves::new(),
                child_cancelled: AtomicBool::new(false),
                waker: AtomicWaker::new(),
                record: Mutex::new(Record::default()),
                trace: this.site.parent(),
            });
            let hold = Held::new(&parent.node, HolderKind::Nursery, this.site.at());
            let nursery = Nursery {
                shared: shared.clone(),
            };
            let phase = make_body(this.body.as_mut(), || make(nursery), &*shared);
            *this.state = Some(Open {
                shared,
                node: Some(node),
                hold: Some(hold),
                value: None,
                phase,
            });
            first = true;
        }
        let open = this.state.as_mut().expect("nursery state");
        if let Some(hold) = &open.hold {
            hold.polled();
        }
        // Stalled under a cancelled enclosing scope, which drops us. Unless we were kept
        // past it, and it has finished since (see `Node::finish`): then nothing is left
        // to catch the cancellation, and we return it ourselves.
        if let Some(ended) = open
            .phase
            .poll_ended(&open.shared.node, open.shared.rt.now())
        {
            return ended;
        }
        let shared = open.shared.clone();
        let node = &shared.node;

        if open.phase == Phase::Body {
            node.register(cx.waker());
            let body = Body {
                fut: this.body.as_mut(),
                value: &mut open.value,
                slot: &mut open.node,
            };
            if !poll_body(body, first, node, &shared.rt, cx, &*shared) {
                if node.is_marked() {
                    // Cancelled, but held: warn of a holder kept unpolled (cold).
                    diagnostics::held(node, &*shared.rt, cx);
                }
                return Poll::Pending;
            }
            open.phase = Phase::Draining;
        }

        // The body is gone: nothing holds the node any more.
        diagnostics::unwatch(node);
        shared.waker.register(cx.waker());
        if !shared.try_close() {
            return Poll::Pending;
        }
        // Every child has finished and no more can be spawned.
        // Free what children finishing on other threads left, rather than keep it for
        // as long as a `Nursery` clone outlives the nursery.
        shared.graves.reap(context::thread_key());
        let record = shared.lock().take();
        let value = open.value.take();
        let seen = Seen::close(node, shared.rt.now(), true);
        // Release the hold last, just before handing control back to enclosing scopes.
        open.hold.take();
        // A nursery that produced its value in its first poll never suspended: like code
        // that never suspends, cancellation does not interrupt it (C1). Unless a child was
        // cancelled: on another thread, children can start, be cancelled at their first
        // suspension and finish before that first poll ends, and the value must not
        // pass for the work of children that were cut short (combinators build theirs
        // from their children's outputs). (`try_close` acquired the children's writes.)
        let uninterrupted = first && !shared.child_cancelled.load(Ordering::Relaxed);
        let decision = decide(Some(node), record, value, seen, uninterrupted);
        open.phase = decision.phase();
        decision.into_poll()
    }
}
