//! Nurseries: `nursery`, `Nursery::{spawn, start, cancel}`, for every kind of children.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::child::{self, Label, Named, Output, PartRef, TaskHandle};
use crate::error::{NurseryError, SpawnError};
use crate::group::Group;
use crate::kind::polled::{Polled, PolledLocal, PolledOf, Rounds};
use crate::kind::{GroupFuture, Local, Spawned};
use crate::reason::{said, CancelReason};
use crate::seam::current_local;
use crate::trace;

mod convert;
mod start;
mod subgroup;

pub use self::convert::{err_into, BodyOutput, ErrInto};
pub use self::start::{Start, StartWithHandle, Starts, TaskStatus};
pub use self::subgroup::{Subgroup, SubgroupWait};

/// Where a nursery's children run: the second type parameter of [`Nursery`] (and of its
/// future, [`NurseryFuture`](crate::futures::NurseryFuture), and of the combinators'
/// [`Map`](crate::futures::Map)), chosen by the function that opens the nursery.
///
/// | `C` | opened by | children |
/// |---|---|---|
/// | [`Spawned`] (the default) | [`nursery`] | tasks of the executor: `Send + 'static`, run in parallel |
/// | [`Local`] | [`Local::nursery`] | tasks of the thread's local executor: `'static`, need not be `Send` |
/// | [`Polled<'env>`](Polled) | [`Polled::nursery`] | futures the nursery polls in its own task: `Send`, may borrow for `'env` |
/// | [`PolledLocal<'env>`](PolledLocal) | [`PolledLocal::nursery`] | the same, need not be `Send` |
///
/// The rules are the same whatever `C` is (one group, one child cell, one driver run
/// them); `C` decides only how children are admitted (the bounds of `spawn`, which
/// differ: [`Accepts`]) and scheduled. Sealed: the four above are all there is. Code
/// that works with any nursery is generic over it:
///
/// ```
/// use hatchery::{nursery, Children, Nursery, Polled};
///
/// // Cancels any nursery: the methods that every kind has (cancel, is_cancelled,
/// // is_closed, ...) work on `Nursery<E, C>`.
/// fn stop<E, C: Children>(n: &Nursery<E, C>) {
///     if !n.is_cancelled() {
///         n.cancel_with("enough");
///     }
/// }
///
/// # hatchery_smol::run(async {
/// let a = nursery(|n| async move { stop(&n); Ok::<_, std::io::Error>(1) }).await;
/// let b = Polled::nursery(|n| async move { stop(&n); Ok::<_, std::io::Error>(2) }).await;
/// assert_eq!((a.unwrap(), b.unwrap()), (1, 2)); // no suspension after `cancel`: N4
/// # });
/// ```
pub trait Children: sealed::Sealed {}

pub(crate) mod sealed {
    /// What a kind of children is to the group: the kind that schedules them. Public
    /// only in name (its module is private), so that [`Children`](super::Children) is
    /// sealed.
    #[allow(unreachable_pub)]
    pub trait Sealed {
        /// The group's kind of children.
        type Kind: crate::kind::Kind;

        /// A new group's kind.
        fn kind() -> Self::Kind;
    }

    /// Tells the `tracing` feature of the error a nursery's body returned: what can be
    /// said of it depends on its bounds, which differ by kind (a spawning nursery's error
    /// is `'static`, a polled one's may borrow). Public only in name, as `Sealed`.
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
/// | [`Local`] | `'static` (`E` too) |
/// | [`Polled<'env>`](Polled) | `Send + 'env` |
/// | [`PolledLocal<'env>`](PolledLocal) | `'env` |
///
/// Sealed, as [`Children`] is.
///
/// # Examples
///
/// ```
/// use hatchery::{nursery, Accepts, Children, Nursery, Polled, TaskHandle};
///
/// // Spawns the same child into any kind of nursery that accepts it.
/// fn answer<E, C>(n: &Nursery<E, C>) -> TaskHandle<u32>
/// where
///     C: Accepts<std::future::Ready<Result<u32, E>>, u32, E>,
/// {
///     n.spawn(std::future::ready(Ok(42)))
/// }
///
/// # hatchery_smol::run(async {
/// let a = nursery(|n| async move { Ok::<_, std::io::Error>(answer(&n).join().await?) });
/// let b = Polled::nursery(|n| async move { Ok::<_, std::io::Error>(answer(&n).join().await?) });
/// assert_eq!((a.await.unwrap(), b.await.unwrap()), (42, 42));
/// # });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{F}` cannot be spawned into this nursery",
    label = "not a child this kind of nursery accepts",
    note = "a spawning nursery (`nursery`) takes `Send + 'static` futures; to borrow, open a `Polled::nursery` (`Send` children) or a `PolledLocal::nursery` (any children)"
)]
#[allow(private_interfaces)]
pub trait Accepts<F, T, E>: Children {
    /// Spawns `fut` at `site`, called `name` if given, into the group `group` (a
    /// nursery's or a subgroup's), or gives it back dropped with [`SpawnError`] if the
    /// nursery has closed. (Not for use outside hatchery: `Group` cannot be named there.)
    #[doc(hidden)]
    fn try_spawn(
        group: &Arc<Group<E>>,
        fut: F,
        site: &'static Location<'static>,
        name: Option<Cow<'static, str>>,
    ) -> Result<TaskHandle<T>, SpawnError>;
}

/// Every kind's `try_spawn`: admits a child into `group` (or gives back
/// [`SpawnError`]), labels it as spawned at `site`, called `name` if given (the clock is
/// read for a named child only, for its age in the task tree), and spawns it with `spawn`
/// (the kind's way: the executor, the local one, or the group's ready queue).
#[inline(always)]
fn spawn_into<E, T>(
    group: &Arc<Group<E>>,
    site: &'static Location<'static>,
    name: Option<Cow<'static, str>>,
    spawn: impl FnOnce(Label) -> PartRef<Output<T>>,
) -> Result<TaskHandle<T>, SpawnError> {
    group.admit()?;
    let named = name.map(|name| Box::new(Named::new(name, group.rt.now())));
    Ok(TaskHandle::new(spawn(Label::new(site, named))))
}

impl<E, F, T> Accepts<F, T, E> for Spawned
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    #[inline]
    fn try_spawn(
        group: &Arc<Group<E>>,
        fut: F,
        site: &'static Location<'static>,
        name: Option<Cow<'static, str>>,
    ) -> Result<TaskHandle<T>, SpawnError> {
        spawn_into(group, site, name, |label| {
            child::spawn(group, &group.node, fut, (), label, None::<fn(_)>)
        })
    }
}

impl Children for Spawned {}

impl sealed::Sealed for Spawned {
    type Kind = Spawned;

    fn kind() -> Spawned {
        Spawned
    }
}

impl<E: 'static> sealed::Describe<E> for Spawned {
    fn describe(error: &E) {
        trace::failed(error, false);
    }
}

impl<E, F, T> Accepts<F, T, E> for Local
where
    F: Future<Output = Result<T, E>> + 'static,
    T: 'static,
    E: 'static,
{
    #[inline]
    fn try_spawn(
        group: &Arc<Group<E>>,
        fut: F,
        site: &'static Location<'static>,
        name: Option<Cow<'static, str>>,
    ) -> Result<TaskHandle<T>, SpawnError> {
        // Before the child is counted in: without a local runtime, nothing is spawned.
        let local = current_local();
        spawn_into(group, site, name, |label| {
            child::spawn_local(&*local, group, &group.node, fut, (), label, None::<fn(_)>)
        })
    }
}

impl Children for Local {}

impl sealed::Sealed for Local {
    type Kind = Local;

    fn kind() -> Local {
        Local::default()
    }
}

impl<E: 'static> sealed::Describe<E> for Local {
    fn describe(error: &E) {
        trace::failed(error, false);
    }
}

impl Local {
    /// Opens a nursery whose children are tasks of this thread's local executor, runs
    /// `body` in it, and returns once the body and every child have finished: a
    /// [`nursery`] whose children need not be `Send` (see the kind's docs).
    ///
    /// # Cancel safety
    ///
    /// As [`nursery`]'s: if an enclosing scope is cancelled, every child is cancelled,
    /// the nursery waits for all of them, and then this future never completes (the
    /// cancelled scope returns). Dropping it from outside hatchery (C8) cancels the
    /// children without waiting for them.
    ///
    /// # Panics
    ///
    /// When first polled on a thread with no local runtime (run the code inside
    /// `hatchery_tokio::run_local` or `hatchery_smol::run_local`, or install your own
    /// local executor with [`enter_local`](crate::rt::enter_local)), or a child is
    /// spawned where there is none any more; otherwise as [`nursery`].
    ///
    /// # Errors
    ///
    /// As [`nursery`]: [`NurseryError::Failed`] with every error, in order;
    /// [`NurseryError::Cancelled`] if [`Nursery::cancel`] ended the body first.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use hatchery::Local;
    ///
    /// # hatchery_tokio::run_local(async {
    /// let name = Rc::new(String::from("per-core state"));
    /// let n = name.clone();
    /// let len = Local::nursery(|nursery| async move {
    ///     let h = nursery.spawn(async move { Ok::<_, std::io::Error>(n.len()) });
    ///     Ok(h.join().await?)
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(len, name.len());
    /// # });
    /// ```
    #[track_caller]
    pub fn nursery<E, T, B, Fut>(body: B) -> NurseryFuture<B, Fut, T, E, Local>
    where
        B: FnOnce(Nursery<E, Local>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: 'static,
    {
        NurseryFuture::new(trace::Sited::nursery(Location::caller()), body)
    }
}

/// The impls that make `$kind` a kind of children, written once for both polled kinds,
/// which differ only in the bound `$send` on a child's future and value (`Send`, or
/// none) and in whether the group's future is `Send` (`$marker`).
macro_rules! polled_kind {
    ($kind:ident, $marker:ty, $($send:ident)?) => {
        impl<'env, E, F, T> Accepts<F, T, E> for $kind<'env>
        where
            F: Future<Output = Result<T, E>> + $($send +)? 'env,
            T: $($send +)? 'env,
        {
            #[inline]
            fn try_spawn(
                group: &Arc<Group<E>>,
                fut: F,
                site: &'static Location<'static>,
                name: Option<Cow<'static, str>>,
            ) -> Result<TaskHandle<T>, SpawnError> {
                spawn_into(group, site, name, |label| {
                    child::spawn_polled(group, &group.node, fut, (), label, None::<fn(_)>)
                })
            }
        }

        impl Children for $kind<'_> {}

        impl sealed::Sealed for $kind<'_> {
            type Kind = Rounds<$marker>;

            fn kind() -> Self::Kind {
                Rounds::new()
            }
        }

        impl<E> sealed::Describe<E> for $kind<'_> {
            fn describe(_: &E) {
                trace::failed_borrowed::<E>(false);
            }
        }

        impl<'env> $kind<'env> {
            /// Opens a nursery whose children this task polls (see the kind's docs), runs
            /// `body` in it, and returns once the body and every child have finished.
            ///
            /// The children are futures that the nursery polls itself, in the task that
            /// awaits it: they run concurrently with the body and each other, never in
            /// parallel (rule I1), and may borrow from the caller's stack. Everything else
            /// is [`nursery`]'s: the body's value once every child has finished; every
            /// error, in order, if any failed (the first cancelled the rest); a panic
            /// resumed once all have finished; [`NurseryError::Cancelled`] if the
            /// nursery's own [`cancel`](Nursery::cancel) ended the body before it
            /// returned a value.
            ///
            /// # Cancel safety
            ///
            /// If an enclosing scope is cancelled, every child is cancelled at its next
            /// suspension point (a shielded one finishes its shield first), the nursery
            /// waits for all of them, and then this future never completes: the cancelled
            /// scope returns. Dropping this future from outside hatchery (C8) drops the
            /// body and every child at once, each in its own context.
            ///
            /// # Panics
            ///
            /// When first polled outside a hatchery runtime; to resume a panic of the body
            /// or of a child, once every child has finished; when polled after it returned.
            ///
            /// # Errors
            ///
            /// [`NurseryError::Failed`] with every error the body and the children
            /// returned, in the order they happened; [`NurseryError::Cancelled`] if
            /// [`Nursery::cancel`] ended the body before it produced its value.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("use hatchery::", stringify!($kind), ";")]
            ///
            /// # hatchery_smol::run_current_thread(async {
            /// let mut totals = vec![0u32; 3];
            /// let slots = &mut totals;
            #[doc = concat!(stringify!($kind), "::nursery(|n| async move {")]
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
            pub fn nursery<E, T, B, Fut>(body: B) -> NurseryFuture<B, Fut, T, E, Self>
            where
                B: FnOnce(Nursery<E, Self>) -> Fut,
                Fut: Future<Output = Result<T, E>>,
            {
                NurseryFuture::new(trace::Sited::polled(Location::caller()), body)
            }
        }
    };
}

polled_kind!(Polled, (), Send);
polled_kind!(PolledLocal, *const (),);

/// A polled combinator's group takes its futures (wrapped) as they are: its future is
/// `Send` exactly when they are (`Rounds<F>`), and it outlives none of them (its body
/// holds them until it admits them).
impl<E, F, G, T> Accepts<G, T, E> for PolledOf<F>
where
    G: Future<Output = Result<T, E>>,
{
    #[inline]
    fn try_spawn(
        group: &Arc<Group<E>>,
        fut: G,
        site: &'static Location<'static>,
        name: Option<Cow<'static, str>>,
    ) -> Result<TaskHandle<T>, SpawnError> {
        spawn_into(group, site, name, |label| {
            child::spawn_polled(group, &group.node, fut, (), label, None::<fn(_)>)
        })
    }
}

impl<F> Children for PolledOf<F> {}

impl<F> sealed::Sealed for PolledOf<F> {
    type Kind = Rounds<F>;

    fn kind() -> Rounds<F> {
        Rounds::new()
    }
}

impl<E, F> sealed::Describe<E> for PolledOf<F> {
    fn describe(_: &E) {
        trace::failed_borrowed::<E>(false);
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
    NurseryFuture::new(trace::Sited::nursery(Location::caller()), body)
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
    NurseryFuture::new(trace::Sited::nursery(site), body)
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
pub struct Nursery<E, C: Children = Spawned> {
    pub(crate) group: Arc<Group<E>>,
    _kind: PhantomData<C>,
}

impl<E, C: Children> Clone for Nursery<E, C> {
    fn clone(&self) -> Self {
        Nursery {
            group: self.group.clone(),
            _kind: PhantomData,
        }
    }
}

impl<E, C: Children> fmt::Debug for Nursery<E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node = &self.group.node;
        f.debug_struct("Nursery")
            .field("opened_at", &format_args!("{}", self.opened_at()))
            .field("tasks", &self.group.live())
            .field("closed", &self.is_closed())
            .field("cancelled", &node.is_cancelled())
            .field("cancel_reason", &CancelReason::of(&**node))
            .finish()
    }
}

/// The panic of a `spawn` into a nursery that has finished (a task is never silently
/// dropped).
#[cold]
#[track_caller]
pub(crate) fn refused(e: SpawnError, kind: &str) -> ! {
    panic!("hatchery: {e}; use `{kind}::try_spawn` to handle this")
}

/// What every nursery has, whatever its kind of children ([`Children`]).
impl<E, C: Children> Nursery<E, C> {
    /// The handle of the nursery whose group is `group`.
    pub(crate) fn of(group: Arc<Group<E>>) -> Self {
        Nursery {
            group,
            _kind: PhantomData,
        }
    }

    /// [`spawn`](Nursery::spawn), giving the task a name: its handle's
    /// [`name`](TaskHandle::name), and what a cancel reason says of it if it fails
    /// ([`CancelReason::Failure`]). A task without a name is known by where it was
    /// spawned ([`TaskHandle::spawned_at`]); a name costs one allocation and one read of
    /// the clock (for its age in the task tree), made only here.
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
        C: Accepts<F, T, E>,
    {
        // A `match`, not a closure: the panic's location is the caller's (`track_caller`).
        match C::try_spawn(&self.group, fut, Location::caller(), Some(name.into())) {
            Ok(h) => h,
            Err(e) => refused(e, "Nursery"),
        }
    }

    /// [`spawn`](Nursery::spawn) called at `site` (see [`nursery_at`]).
    pub(crate) fn spawn_at<T, F>(&self, site: &'static Location<'static>, fut: F) -> TaskHandle<T>
    where
        C: Accepts<F, T, E>,
    {
        self.try_spawn_at(site, fut)
            .unwrap_or_else(|e| refused(e, "Nursery"))
    }

    /// [`try_spawn`](Nursery::try_spawn) called at `site` (see [`nursery_at`]).
    pub(crate) fn try_spawn_at<T, F>(
        &self,
        site: &'static Location<'static>,
        fut: F,
    ) -> Result<TaskHandle<T>, SpawnError>
    where
        C: Accepts<F, T, E>,
    {
        C::try_spawn(&self.group, fut, site, None)
    }

    /// Spawns `fut` as a new task of the nursery and returns a handle to its value.
    ///
    /// What the task is depends on the nursery's kind of children `C` (see [`Accepts`]
    /// for the bounds on `fut`):
    ///
    /// * in a nursery opened with [`nursery`] ([`Spawned`]), a task of the executor
    ///   (`Send + 'static`): on a multi-threaded runtime it runs in parallel with the body
    ///   and its siblings (rule N8);
    /// * in a polled nursery ([`Polled::nursery`](crate::Polled::nursery),
    ///   [`PolledLocal::nursery`](crate::PolledLocal::nursery)), a future that the
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
        match C::try_spawn(&self.group, fut, Location::caller(), None) {
            Ok(h) => h,
            Err(e) => refused(e, "Nursery"),
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
        C::try_spawn(&self.group, fut, Location::caller(), None)
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
        self.group.cancel(said(Location::caller(), None));
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
        self.group
            .cancel(said(Location::caller(), Some(message.into())));
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
        CancelReason::of(&*self.group.node)
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
        self.group.is_cancelled()
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
        self.group.is_closed()
    }

    /// The name the nursery was given by [`named`](NurseryFuture::named), if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|n| async move {
    ///     assert_eq!(n.name(), Some("pool"));
    ///     nursery(|inner| async move {
    ///         assert_eq!(inner.name(), None);
    ///         Ok::<_, std::io::Error>(())
    ///     })
    ///     .await
    ///     .map_err(std::io::Error::other)
    /// }).named("pool")
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.group.tag().name()
    }

    /// Where the nursery was opened: the call of [`nursery`] (or of [`Polled::nursery`], or
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
        self.group.tag().at()
    }
}

pin_project! {
    /// Future returned by [`nursery`] (and, with another kind of children `C`, by
    /// [`Polled::nursery`] and [`PolledLocal::nursery`]).
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
    pub struct NurseryFuture<F, Fut, T, E, C: Children = Spawned> {
        make: Option<F>,
        #[pin]
        group: GroupFuture<C::Kind, Fut, T, E>,
    }
}

impl<F, Fut, T, E, C: Children> fmt::Debug for NurseryFuture<F, Fut, T, E, C> {
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
    C: Children,
    Self: Future,
{
    fn is_terminated(&self) -> bool {
        self.group.is_terminated()
    }
}

impl<F, Fut, T, E, C: Children> NurseryFuture<F, Fut, T, E, C> {
    /// The future of a nursery opened at `site` that will run `body`.
    pub(crate) fn new(site: trace::Sited, body: F) -> Self {
        NurseryFuture {
            make: Some(body),
            group: GroupFuture::new(C::kind(), site, None),
        }
    }

    /// Gives the nursery a name: its handle's [`name`](Nursery::name), and how the task
    /// tree shows it ([`diagnostics::tree`](crate::diagnostics::tree)). A nursery without
    /// a name is known by where it was opened; a name costs one allocation and one read
    /// of the clock (for its age in the tree), made when the nursery opens. Call it
    /// before the nursery is first polled; a name given after is not seen.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// let name = nursery(|n| async move { Ok::<_, std::io::Error>(n.name().map(str::to_owned)) })
    ///     .named("fetchers")
    ///     .await
    ///     .unwrap();
    /// assert_eq!(name.as_deref(), Some("fetchers"));
    /// # });
    /// ```
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.group.name(name.into());
        self
    }
}

impl<F, Fut, T, E, C> Future for NurseryFuture<F, Fut, T, E, C>
where
    C: Children + sealed::Describe<E>,
    F: FnOnce(Nursery<E, C>) -> Fut,
    Fut::Output: BodyOutput<E>,
    Fut: Future<Output = Result<T, E>>,
{
    type Output = Result<T, NurseryError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let make = this.make;
        let open = |group: &Arc<Group<E>>| {
            let make = make
                .take()
                .expect("hatchery: nursery future polled after completion");
            make(Nursery::of(group.clone()))
        };
        this.group.poll_group(cx, open, C::describe)
    }
}
