//! Nurseries: `nursery`, `Nursery::{spawn, start, cancel}`.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use pin_project_lite::pin_project;

use crate::context::{self, Ctx};
use crate::error::{NurseryError, SpawnError};
use crate::group::{Closed, Failures, GroupFuture, GroupState, Kind, Record};
use crate::node::{self, Detail, Labelled, Node, Reason, Tag};
use crate::reason::{said, CancelReason};
use crate::rt::Runtime;
use crate::task::{Graves, Group, Label, Named, Panic, TaskHandle};
use crate::trace;

mod convert;
#[cfg(all(test, target_pointer_width = "64", not(feature = "tracing")))]
mod sizes;
mod spawn;
mod start;
mod subgroup;

pub use self::convert::{err_into, BodyOutput, ErrInto};
pub(crate) use self::start::{EndTo, Hand, InlineSlot};
pub use self::start::{Start, StartWithHandle, Starts, TaskStatus};
pub use self::subgroup::{Subgroup, SubgroupWait};

/// How a nursery keeps its children: the second type parameter of [`Nursery`] (and of
/// its future, [`NurseryFuture`](crate::futures::NurseryFuture)), chosen by the function
/// that opens the nursery.
///
/// | `C` | opened by | children |
/// |---|---|---|
/// | [`Spawned`] (the default) | [`nursery`] | tasks of the executor: `Send + 'static`, run in parallel |
/// | [`SendChild<'env, E>`](crate::inline::SendChild) | [`inline::nursery`](crate::inline::nursery) | futures polled by the nursery's own task: `Send`, may borrow for `'env` |
/// | [`LocalChild<'env, E>`](crate::inline::LocalChild) | [`inline::local_nursery`](crate::inline::local_nursery) | the same, need not be `Send` |
///
/// The rules are the same whatever `C` is (one group engine runs them); `C` decides how
/// children are admitted (the bounds of `spawn`, which differ) and run. Sealed: the three
/// above are all there is. Code that works with any nursery is generic over it:
///
/// ```
/// use hatchery::{nursery, inline, Children, Nursery};
///
/// // Cancels any nursery once `n` children have been spawned: the methods that every
/// // kind has (cancel, is_cancelled, is_closed, ...) work on `Nursery<E, C>`.
/// fn stop<E, C: Children<E>>(n: &Nursery<E, C>) {
///     if !n.is_cancelled() {
///         n.cancel_with("enough");
///     }
/// }
///
/// # hatchery_smol::run(async {
/// let a = nursery(|n| async move { stop(&n); Ok::<_, std::io::Error>(1) }).await;
/// let b = inline::nursery(|n| async move { stop(&n); Ok::<_, std::io::Error>(2) }).await;
/// assert_eq!((a.unwrap(), b.unwrap()), (1, 2)); // no suspension after `cancel`: N4
/// # });
/// ```
pub trait Children<E>: sealed::Sealed<E> {}

pub(crate) mod sealed {
    use crate::group::{GroupState, Kind};

    /// What a kind of children is to the group engine: the state its handles share and
    /// the kind that runs them. Public only in name (its module is private), so that
    /// [`Children`](super::Children) is sealed.
    #[allow(unreachable_pub)]
    pub trait Sealed<E> {
        /// What a nursery's handle holds.
        type Shared: GroupState;
        /// The group engine's kind of children.
        type Kind: Kind<E, Shared = Self::Shared>;
        /// What a `start` keeps of its task, whose `started` hands over a `V`.
        type Run<V>;
    }

    /// Tells the `tracing` feature of the error a nursery's body returned: what can be
    /// said of it depends on its bounds, which differ by kind (a spawning nursery's error
    /// is `'static`, an inline one's may borrow). Public only in name, as `Sealed`.
    #[allow(unreachable_pub)]
    pub trait Describe<E> {
        fn describe(error: &E);
    }
}

/// The futures that a nursery whose children are `Self` accepts as children: a future
/// `F` of `Result<T, E>`, with the bounds of the kind, which [`Nursery::spawn`] and
/// [`Nursery::try_spawn`] take.
///
/// | `Self` | `F` and `T` |
/// |---|---|
/// | [`Spawned`] | `Send + 'static` (`E` too) |
/// | [`SendChild<'env, E>`](crate::inline::SendChild) | `Send + 'env` |
/// | [`LocalChild<'env, E>`](crate::inline::LocalChild) | `'env` |
///
/// Sealed, as [`Children`] is.
///
/// # Examples
///
/// ```
/// use hatchery::{inline, nursery, Accepts, Children, Nursery, TaskHandle};
///
/// // Spawns the same child into any kind of nursery that accepts it.
/// fn answer<E, C>(n: &Nursery<E, C>) -> TaskHandle<u32>
/// where
///     C: Children<E> + Accepts<std::future::Ready<Result<u32, E>>, u32, E>,
/// {
///     n.spawn(std::future::ready(Ok(42)))
/// }
///
/// # hatchery_smol::run(async {
/// let a = nursery(|n| async move { Ok::<_, std::io::Error>(answer(&n).join().await?) });
/// let b = inline::nursery(|n| async move { Ok::<_, std::io::Error>(answer(&n).join().await?) });
/// assert_eq!((a.await.unwrap(), b.await.unwrap()), (42, 42));
/// # });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{F}` cannot be spawned into this nursery",
    label = "not a child this kind of nursery accepts",
    note = "a spawning nursery (`nursery`) takes `Send + 'static` futures; to borrow, open an `inline::nursery` (`Send` children) or an `inline::local_nursery` (any children)"
)]
pub trait Accepts<F, T, E>: Children<E> {
    /// Spawns `fut` at `site` into the nursery whose state is `shared`, or gives it
    /// back dropped with [`SpawnError`] if the nursery has closed. (Not for use outside
    /// hatchery: `Self::Shared` cannot be named there.)
    #[doc(hidden)]
    fn try_spawn(
        shared: &Arc<Self::Shared>,
        fut: F,
        site: &'static Location<'static>,
    ) -> Result<TaskHandle<T>, SpawnError>;
}

impl<E, F, T> Accepts<F, T, E> for Spawned
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    #[inline]
    fn try_spawn(
        shared: &Arc<Shared<E>>,
        fut: F,
        site: &'static Location<'static>,
    ) -> Result<TaskHandle<T>, SpawnError> {
        spawn::try_spawn_at(shared, fut, None, site)
    }
}

/// The children of a nursery opened with [`nursery`]: tasks of the executor, `Send +
/// 'static`, which run in parallel on a multi-threaded runtime (rule N8). The default
/// kind of [`Nursery`]: `Nursery<E>` is `Nursery<E, Spawned>`. See [`Children`].
///
/// # Examples
///
/// ```
/// use hatchery::{nursery, Nursery, Spawned};
///
/// fn takes(_: &Nursery<std::io::Error, Spawned>) {}
///
/// # hatchery_smol::run(async {
/// nursery(|n: Nursery<std::io::Error>| async move { takes(&n); Ok(()) }).await.unwrap();
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Spawned;

impl<E> Children<E> for Spawned {}

impl<E> sealed::Sealed<E> for Spawned {
    type Shared = Shared<E>;
    type Kind = Spawned;
    type Run<V> = start::SpawnRun<V, E>;
}

impl<E: 'static> sealed::Describe<E> for Spawned {
    fn describe(error: &E) {
        trace::failed(error, false);
    }
}

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
        Some(self.0.labelled(node::Kind::Nursery))
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
pub struct Nursery<E, C: Children<E> = Spawned> {
    pub(crate) shared: Arc<C::Shared>,
}

impl<E, C: Children<E>> Clone for Nursery<E, C> {
    fn clone(&self) -> Self {
        Nursery {
            shared: self.shared.clone(),
        }
    }
}

impl<E, C: Children<E>> fmt::Debug for Nursery<E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node = self.shared.node();
        let mut d = f.debug_struct("Nursery");
        d.field("opened_at", &format_args!("{}", self.opened_at()));
        if let Some(live) = self.shared.live() {
            d.field("tasks", &live);
        }
        d.field("closed", &self.is_closed())
            .field("cancelled", &node.is_cancelled())
            .field("cancel_reason", &CancelReason::of(node))
            .finish()
    }
}

const CLOSED: usize = 1;
const ONE: usize = 2;

/// State shared by a nursery, its handles and its children. Public only in name, as the
/// state that [`Spawned`]'s sealed trait names.
#[allow(unreachable_pub, missing_debug_implementations)]
pub struct Shared<E> {
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
        let open = |cur| (cur & CLOSED == 0).then_some(cur + ONE);
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, open)
            .map(drop)
            .map_err(|_| SpawnError(()))
    }

    /// Records a failure of the task called `task` (`None`: of the body) and cancels
    /// the nursery (N2).
    fn record_failure(&self, error: E, task: Option<&Label>) {
        self.lock().errors.push(error);
        self.cancel_failed(task, false);
    }

    /// Records a panic of the task called `task` (`None`: of the body) and cancels the
    /// nursery (N3).
    fn record_panic(&self, panic: Panic, task: Option<&Label>) {
        self.lock().panicked(panic);
        self.cancel_failed(task, true);
    }

    fn cancel_failed(&self, task: Option<&Label>, panicked: bool) {
        let detail = Detail::Failed {
            task: task.map(Label::site),
            name: task.and_then(Label::name),
            panicked,
        };
        self.node.cancel_with(Reason::Failure, detail);
    }

    fn label(&self) -> Option<&Label> {
        self.node.ext_ref::<NurseryTag>().map(|t| &t.0)
    }
}

impl<E> Failures<E> for Shared<E> {
    fn body_failed(&self, error: E) {
        self.record_failure(error, None);
    }

    fn body_panicked(&self, panic: Panic) {
        trace::panicked(&*panic, false);
        self.record_panic(panic, None);
    }
}

#[allow(private_interfaces)]
impl<E> GroupState for Shared<E> {
    fn node(&self) -> &Arc<Node> {
        &self.node
    }

    fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    fn opened_at(&self) -> &'static Location<'static> {
        self.label()
            .map(Label::site)
            .expect("hatchery: internal error: a nursery's node without its label")
    }

    fn name(&self) -> Option<&str> {
        self.label().and_then(Label::name_str)
    }

    fn live(&self) -> Option<usize> {
        Some(self.state.load(Ordering::Acquire) >> 1)
    }
}

/// The group engine's kind for tasks of the executor: they run and end on their own, and
/// the group closes once their count is zero.
#[allow(private_interfaces)]
impl<E> Kind<E> for Spawned {
    type Shared = Shared<E>;
    type Output = ();

    fn open(
        &mut self,
        parent: &Ctx,
        site: &trace::Sited,
        name: Option<Cow<'static, str>>,
    ) -> Arc<Shared<E>> {
        let named = name.map(|name| Box::new(Named::new(name, parent.rt.now())));
        let label = Label::new(site.at(), named);
        let node: Arc<Node> = Node::attach(
            Node::with_ext(false, false, NurseryTag(label)),
            &parent.node,
        );
        Arc::new(Shared {
            node,
            rt: parent.rt.clone(),
            state: AtomicUsize::new(0),
            graves: Graves::new(),
            child_cancelled: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            record: Mutex::new(Record::default()),
            trace: site.parent(),
        })
    }

    #[inline]
    fn node(shared: &Shared<E>) -> &Arc<Node> {
        &shared.node
    }

    #[inline]
    fn runtime(shared: &Shared<E>) -> &Arc<dyn Runtime> {
        &shared.rt
    }

    fn close(&mut self, shared: &Shared<E>, cx: &mut Context<'_>) -> Option<Closed<E, ()>> {
        shared.waker.register(cx.waker());
        // Closes the nursery if no child is left (at most once).
        shared
            .state
            .compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        // Every child has finished and no more can be spawned. Free what children
        // finishing on other threads left, rather than keep it for as long as a `Nursery`
        // clone outlives the nursery. (The exchange acquired the children's writes.)
        shared.graves.reap(context::thread_mark());
        Some(Closed {
            record: shared.lock().take(),
            outputs: (),
            child_cancelled: shared.child_cancelled.load(Ordering::Relaxed),
        })
    }

    fn shut(&mut self, shared: &Shared<E>) {
        // Nobody will wait for a child spawned from now on: spawning fails (a nursery
        // that finished is closed already). Children still running finish on their own;
        // nobody is woken when they do.
        shared.state.fetch_or(CLOSED, Ordering::AcqRel);
    }

    fn abort(&mut self, _: &Shared<E>) -> Option<Panic> {
        // Children still running finish on their own.
        None
    }

    // After a drop from outside, children may still run (and link in their first poll):
    // the node stays cancelled for them.
    const FINISH_WHEN_DROPPED: bool = false;
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

    fn note_cancelled_child(&self) {
        if !self.child_cancelled.load(Ordering::Relaxed) {
            self.child_cancelled.store(true, Ordering::Relaxed);
        }
    }

    fn child_done(&self) {
        if self.state.fetch_sub(ONE, Ordering::AcqRel) == ONE {
            self.waker.wake();
        }
    }

    fn fail(&self, error: E, task: Option<&Label>) {
        self.record_failure(error, task);
    }

    fn panicked(&self, panic: Panic, task: Option<&Label>) {
        self.record_panic(panic, task);
    }
}

impl<E: Send + 'static> Nursery<E> {
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
        let named = Named::new(name.into(), self.shared.rt.now());
        spawn::spawn(&self.shared, fut, Some(Box::new(named)))
    }

    /// [`spawn`](Nursery::spawn) called at `site` (see [`nursery_at`]).
    pub(crate) fn spawn_at<T, F>(&self, site: &'static Location<'static>, fut: F) -> TaskHandle<T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        self.try_spawn_at(site, fut)
            .unwrap_or_else(|e| spawn::refused(e, "Nursery"))
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
}

/// What every nursery has, whatever its kind of children ([`Children`]).
impl<E, C: Children<E>> Nursery<E, C> {
    /// Spawns `fut` as a new task of the nursery and returns a handle to its value.
    ///
    /// What the task is depends on the nursery's kind of children `C` (see [`Accepts`]
    /// for the bounds on `fut`):
    ///
    /// * in a nursery opened with [`nursery`] ([`Spawned`]), a task of the executor
    ///   (`Send + 'static`): on a multi-threaded runtime it runs in parallel with the body
    ///   and its siblings (rule N8);
    /// * in an inline nursery ([`inline::nursery`](crate::inline::nursery),
    ///   [`inline::local_nursery`](crate::inline::local_nursery)), a future that the
    ///   nursery polls in the task that awaits it, concurrently with the body and its
    ///   siblings, never in parallel (rule I1): it may borrow for `'env`, and need not be
    ///   `Send` in a local one.
    ///
    /// If it returns `Err`, the nursery is cancelled and the error is reported by the
    /// nursery. Dropping the [`TaskHandle`] does not cancel the task. A task spawned into a
    /// nursery that is already cancelled still runs until its first suspension point,
    /// then is cancelled (N5).
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
        C: Accepts<F, T, E>,
    {
        match C::try_spawn(&self.shared, fut, Location::caller()) {
            Ok(h) => h,
            Err(e) => spawn::refused(e, "Nursery"),
        }
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
        C: Accepts<F, T, E>,
    {
        C::try_spawn(&self.shared, fut, Location::caller())
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
        self.shared.node().cancel_with(Reason::Nursery, detail);
    }

    /// Cancels the nursery of a race (called at `at`) that was won.
    pub(crate) fn race_won(&self, at: &'static Location<'static>) {
        let detail = crate::reason::race_won(at);
        self.shared.node().cancel_with(Reason::Nursery, detail);
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
        self.shared.node().cancel_with(Reason::Nursery, detail);
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
        CancelReason::of(self.shared.node())
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
        let node = self.shared.node();
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
        self.shared.is_closed()
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
        self.shared.name()
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
        self.shared.opened_at()
    }
}

pin_project! {
    /// Future returned by [`nursery`] (and, with another kind of children `C`, by
    /// [`inline::nursery`](crate::inline::nursery) and
    /// [`inline::local_nursery`](crate::inline::local_nursery)).
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
    pub struct NurseryFuture<F, Fut, T, E, C: Children<E> = Spawned> {
        make: Option<F>,
        #[pin]
        group: GroupFuture<C::Kind, Fut, T, E>,
    }
}

impl<F, Fut, T, E, C: Children<E>> fmt::Debug for NurseryFuture<F, Fut, T, E, C> {
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
impl<F, Fut, T, E, C> futures_core::future::FusedFuture for NurseryFuture<F, Fut, T, E, C>
where
    C: Children<E>,
    Self: Future,
{
    fn is_terminated(&self) -> bool {
        self.group.is_terminated()
    }
}

impl<F, Fut, T, E, C: Children<E>> NurseryFuture<F, Fut, T, E, C> {
    /// The future of a nursery of `kind`, whose group is opened at `site` and called
    /// `name` if it has one, that will run `body`.
    pub(crate) fn with_kind(
        kind: C::Kind,
        site: trace::Sited,
        name: Option<Cow<'static, str>>,
        body: F,
    ) -> Self {
        NurseryFuture {
            make: Some(body),
            group: GroupFuture::new(kind, site, name),
        }
    }
}

impl<F, Fut, T, E> NurseryFuture<F, Fut, T, E> {
    /// The future of a nursery opened at `site` (its caller's, for `nursery` and
    /// `nursery_named`), called `name` if it has one, that will run `body`.
    fn new(site: &'static Location<'static>, name: Option<Cow<'static, str>>, body: F) -> Self {
        Self::with_kind(Spawned, trace::Sited::nursery(site), name, body)
    }
}

impl<F, Fut, T, E, C> Future for NurseryFuture<F, Fut, T, E, C>
where
    C: Children<E> + sealed::Describe<E>,
    F: FnOnce(Nursery<E, C>) -> Fut,
    Fut::Output: BodyOutput<E>,
    Fut: Future<Output = Result<T, E>>,
{
    type Output = Result<T, NurseryError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let make = this.make;
        let open = |shared: &Arc<C::Shared>| {
            let make = make
                .take()
                .expect("hatchery: nursery future polled after completion");
            make(Nursery {
                shared: shared.clone(),
            })
        };
        this.group
            .poll_group(cx, open, C::describe)
            .map_ok(|(value, _)| value)
    }
}
