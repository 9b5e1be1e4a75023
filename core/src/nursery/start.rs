//! [`Nursery::start`]: a child that runs under its caller's cancellation until it says it
//! is ready ([`TaskStatus::started`]), then belongs to the nursery (rule N6), for every
//! kind of children: one handshake ([`Hand`]) and one future ([`Start`]). The child is
//! an ordinary child of the group (the same cell and driver), made under the caller's
//! node with a movable parent link and a route to its `start` ([`Route`]); its kind
//! schedules it as every other of its children ([`Starts`]).

use std::fmt;
use std::future::Future;
use std::panic::{resume_unwind, Location};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use futures_core::TryFuture;

use super::{Children, Local, Nursery, Polled, PolledLocal, Spawned};
use crate::child::{self, End, Label, Output, PartRef, Route, TaskHandle};
use crate::context;
use crate::diagnostics::{Held, HolderKind};
use crate::error::StartError;
use crate::group::{Group, Panic};
use crate::node::{Node, Reason};
use crate::seam::current_local;

/// The token a task started with [`Nursery::start`] uses to say it is ready.
///
/// Call [`started`](TaskStatus::started) once the task is ready (a server is listening,
/// a connection is open): `start` then returns the value, and the task continues as a
/// child of the nursery. Dropping the token without calling it is allowed; `start` then
/// fails with [`StartError::NotStarted`] when the task finishes.
///
/// # Examples
///
/// ```
/// use hatchery::{nursery, StartError, TaskStatus};
///
/// # hatchery_smol::run(async {
/// nursery(|n| async move {
///     let r = n
///         .start(|status: TaskStatus<u16>| async move {
///             drop(status); // gave up before it was ready
///             Ok::<_, std::io::Error>(())
///         })
///         .await;
///     assert!(matches!(r, Err(StartError::NotStarted)));
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
pub struct TaskStatus<V> {
    slot: Arc<StartSlot<V>>,
}

/// What a [`TaskStatus`] shares with its `start`: the value `started` left, and, once the
/// child's node exists, where `started` moves it. The child moves into the nursery's
/// scope at the call (rule S4); the value waits for the handshake, which takes it when
/// the `start` or the child's end looks ([`StartShared::sync`]).
pub(crate) struct StartSlot<V> {
    inner: Mutex<SlotInner<V>>,
    /// The task that polls the `start`.
    waker: AtomicWaker,
}

struct SlotInner<V> {
    /// The value, and whether `started` moved the child (not when it came before the
    /// child's node existed: the handshake moves it then).
    value: Option<(V, bool)>,
    /// The child's node and the nursery's.
    moves: Option<(Arc<Node>, Arc<Node>)>,
}

impl<V> StartSlot<V> {
    fn lock(&self) -> MutexGuard<'_, SlotInner<V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `started(value)`: moves the child now, unless the caller's scope (or the child)
    /// is cancelled already; then the value is dropped, as [`Hand::started`] drops it.
    /// (One locked step, so that a token on another thread and the child's launch see
    /// each other whole; the move takes node locks under it, never the other way round.)
    fn started(&self, value: V) {
        let mut inner = self.lock();
        let moved = match &inner.moves {
            Some((child, nursery)) if !child.reparent(nursery) => {
                // Dropped outside the lock.
                drop(inner);
                drop(value);
                return;
            }
            Some(_) => true,
            None => false,
        };
        inner.value = Some((value, moved));
        drop(inner);
        self.waker.wake();
    }
}

impl<V> TaskStatus<V> {
    /// Hands `value` to the caller of [`Nursery::start`] and moves this task into the
    /// nursery: from now on the nursery's cancellation and deadlines apply to it (rule
    /// S4), and an error or panic of the task goes to the nursery.
    ///
    /// If the caller's scope is cancelled already (the task is then running in a shield
    /// or has not reached a checkpoint yet), this does nothing, as in trio: `value` is
    /// dropped, the task stays under the caller's cancellation, and `start` never
    /// returns. Calling it after the caller dropped `start` does nothing either.
    ///
    /// It may also be called before the task first runs, in `start`'s closure itself
    /// (`n.start(|status| { status.started(port); serve(listener) })`): the task then
    /// belongs to the nursery from its start, and the caller's scope is checked when
    /// `start` is first polled.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    /// # hatchery_smol::run(async {
    /// nursery(|n| async move {
    ///     let v = n.start(|status| async move {
    ///         status.started("ready");
    ///         Ok(())
    ///     }).await?;
    ///     assert_eq!(v, "ready");
    ///     Ok::<_, anyhow::Error>(())
    /// }).await.unwrap();
    /// # });
    /// ```
    pub fn started(self, value: V) {
        self.slot.started(value);
    }
}

impl<V> fmt::Debug for TaskStatus<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskStatus").finish_non_exhaustive()
    }
}

/// Where a start is in its handshake with its task.
pub(crate) enum StartState<V, E> {
    Waiting,
    Started(V),
    Failed(E),
    Panicked(Panic),
    NotStarted,
    /// The value has been handed out: the task belongs to the nursery.
    Over,
    /// `Start` was dropped from outside before the task started (C8): the task is
    /// cancelled under the caller's scope, and an error or panic of it goes nowhere.
    Abandoned,
}

/// A start's handshake with its task (rule N6), whichever kind of children runs the task:
/// the one place that decides what `started`, the task's end, the start's poll and its
/// drop do. A spawned task's start keeps it under a lock (`started` and the task's end
/// come from other threads); a polled child's start keeps it to itself.
pub(crate) struct Hand<V, E> {
    state: StartState<V, E>,
    /// The task's node, once it exists (under the caller's scope, movable).
    child: Option<Arc<Node>>,
}

/// Where a task's end goes ([`Hand::end`]).
pub(crate) enum EndTo<E> {
    /// To the start: the task had not started (kept in the hand).
    Start,
    /// Nowhere: the start was dropped from outside (C8); the caller drops it.
    Nobody(End<E>),
    /// To the nursery: the task had started (its error or panic fails the nursery).
    Nursery(End<E>),
}

/// What a start's poll does now ([`Hand::poll`]).
pub(crate) enum Outcome<V, E> {
    /// Waits (for the task to start or end).
    Pending,
    /// Waits for good: the caller's scope cancelled the task, and ends the work (kept and
    /// awaited again outside that scope, the start reports it then).
    Stall,
    /// Returns.
    Ready(Result<V, StartError<E>>),
    /// Resumes the task's panic.
    Panic(Panic),
}

impl<V, E> Hand<V, E> {
    pub(crate) fn new() -> Self {
        Hand {
            state: StartState::Waiting,
            child: None,
        }
    }

    /// The task's node exists: `started` moves it from now on. If the task called
    /// `started` before it existed (in `start`'s closure itself, or on a thread the
    /// closure handed the token to), it is moved now; in a cancelled caller that call is
    /// ignored, as a late `started` is, and its value handed back to be dropped.
    pub(crate) fn child_made(&mut self, node: Arc<Node>, nursery: &Arc<Node>) -> Option<V> {
        let mut ignored = None;
        if matches!(self.state, StartState::Started(_)) && !node.reparent(nursery) {
            if let StartState::Started(v) = std::mem::replace(&mut self.state, StartState::Waiting)
            {
                ignored = Some(v);
            }
        }
        self.child = Some(node);
        ignored
    }

    /// The task called `started(value)`: it moves into the `nursery`. Unless the
    /// caller's scope is cancelled (the task stays under it, and `start` never returns),
    /// or the start no longer waits: then the value is handed back, to be dropped outside
    /// any lock. (`nursery` is `None` where the kind moved the task at the call already,
    /// as the token does: [`StartSlot`].)
    pub(crate) fn started(&mut self, value: V, nursery: Option<&Arc<Node>>) -> Result<(), V> {
        if !matches!(self.state, StartState::Waiting) {
            return Err(value);
        }
        if let (Some(child), Some(nursery)) = (&self.child, nursery) {
            if !child.reparent(nursery) {
                return Err(value);
            }
        }
        self.state = StartState::Started(value);
        Ok(())
    }

    /// The task ended: before it started, its end is the start's (a value or a
    /// cancellation is `NotStarted`); after, the nursery's.
    pub(crate) fn end(&mut self, end: End<E>) -> EndTo<E> {
        match self.state {
            StartState::Waiting => {}
            StartState::Abandoned => return EndTo::Nobody(end),
            _ => return EndTo::Nursery(end),
        }
        self.state = match end {
            End::Done | End::Cancelled => StartState::NotStarted,
            End::Failed(e) => StartState::Failed(e),
            End::Panicked(p) => StartState::Panicked(p),
        };
        EndTo::Start
    }

    /// What the start's poll returns, in a caller whose scope is cancelled or not
    /// (`cancelled`, asked only when it matters).
    pub(crate) fn poll(&mut self, cancelled: impl FnOnce() -> bool) -> Outcome<V, E> {
        match std::mem::replace(&mut self.state, StartState::Over) {
            // Nothing to return yet, or any more: the state stays as it was.
            state @ (StartState::Waiting | StartState::Over | StartState::Abandoned) => {
                self.state = state;
                Outcome::Pending
            }
            StartState::Started(v) => Outcome::Ready(Ok(v)),
            StartState::Failed(e) => Outcome::Ready(Err(StartError::Failed(e))),
            StartState::Panicked(p) => Outcome::Panic(p),
            // The caller's scope cancelled the task: let that scope end the work.
            StartState::NotStarted if cancelled() => {
                self.state = StartState::NotStarted;
                Outcome::Stall
            }
            StartState::NotStarted => Outcome::Ready(Err(StartError::NotStarted)),
        }
    }

    /// The task, if it has not started nor ended: a kept start awaited under another
    /// scope takes it along (see [`Start`]'s poll).
    fn waiting_child(&self) -> Option<&Arc<Node>> {
        match self.state {
            StartState::Waiting => self.child.as_ref(),
            _ => None,
        }
    }

    /// The start is dropped. A task that has not started (`launched`: it runs) is
    /// abandoned: its node is returned, to be cancelled (C8), and its end will go
    /// nowhere. An end nobody took (a value `started` handed over, an error, a panic) is
    /// handed back, to be dropped by whoever dropped the start, outside any lock (not
    /// kept for as long as the task runs, where a panic in its drop would be lost).
    pub(crate) fn abandon(&mut self, launched: bool) -> Abandoned<V, E> {
        match self.state {
            StartState::Waiting if launched => {
                self.state = StartState::Abandoned;
                Abandoned::Cancel(self.child.clone())
            }
            StartState::Started(_) | StartState::Failed(_) | StartState::Panicked(_) => {
                Abandoned::Unclaimed(std::mem::replace(&mut self.state, StartState::Over))
            }
            _ => Abandoned::Nothing,
        }
    }

    /// Whether the task has started (its value handed over or not).
    pub(crate) fn has_started(&self) -> bool {
        matches!(self.state, StartState::Started(_) | StartState::Over)
    }
}

/// What a dropped start leaves ([`Hand::abandon`]).
pub(crate) enum Abandoned<V, E> {
    Nothing,
    /// The task that had not started: to be cancelled.
    Cancel(Option<Arc<Node>>),
    /// An end nobody took, to drop.
    #[allow(dead_code)] // Held only to be dropped.
    Unclaimed(StartState<V, E>),
}

/// What a start shares with its child: the handshake under a lock, the token's slot, and
/// whether the child's value goes to a handle (`start_with_handle`).
pub(crate) struct StartShared<V, E> {
    hand: Mutex<Hand<V, E>>,
    slot: Arc<StartSlot<V>>,
    nursery_node: Arc<Node>,
    with_handle: bool,
}

impl<V, E> StartShared<V, E> {
    /// The handshake, with the value `started` left since the last look in it: the token
    /// moved the child into the nursery's scope at the call (unless the caller's was
    /// cancelled, and then left no value); a value left before the child existed moves
    /// it now. Every reader of the handshake looks through here, so that the child's end
    /// right after a `started` on another thread is seen after it.
    fn sync(&self) -> MutexGuard<'_, Hand<V, E>> {
        let mut hand = self.hand.lock().unwrap_or_else(|e| e.into_inner());
        let left = self.slot.lock().value.take();
        if let Some((value, moved)) = left {
            let nursery = (!moved).then_some(&self.nursery_node);
            if let Err(ignored) = hand.started(value, nursery) {
                // Dropped outside both locks: the caller holds the hand's; the value is
                // the user's.
                drop(hand);
                drop(ignored);
                hand = self.hand.lock().unwrap_or_else(|e| e.into_inner());
            }
        }
        hand
    }
}

impl<V, E> Route<E> for StartShared<V, E> {
    fn end(&self, end: End<E>) -> Option<End<E>> {
        let to = self.sync().end(end);
        match to {
            EndTo::Start => {
                self.slot.waker.wake();
                None
            }
            // Nobody is left to report it to (C8); dropped outside the lock.
            EndTo::Nobody(end) => {
                drop(end);
                None
            }
            EndTo::Nursery(end) => Some(end),
        }
    }

    fn wants_value(&self) -> bool {
        self.with_handle && self.sync().has_started()
    }
}

/// The futures that a nursery whose children are `Self` starts with [`Nursery::start`]:
/// a future `Fut` of `Result<T, E>` with the bounds of the kind (as [`Accepts`](super::Accepts)
/// gives them for `spawn`), whose `started` hands over a `V`. Sealed.
#[diagnostic::on_unimplemented(
    message = "`{Fut}` cannot be started in this nursery",
    label = "not a task this kind of nursery starts",
    note = "a spawning nursery (`nursery`) starts `Send + 'static` futures; to borrow, open a `Polled::nursery` or a `PolledLocal::nursery`"
)]
#[allow(private_interfaces, private_bounds)]
pub trait Starts<Fut, V, T, E>: Children {
    /// Makes the child of `fut` under `caller` (its node), with `route` to its `start`,
    /// and schedules it as the kind does; `built` gets its node first.
    #[doc(hidden)]
    fn launch(
        group: &Arc<Group<E>>,
        caller: &Arc<Node>,
        fut: Fut,
        route: Arc<StartShared<V, E>>,
        site: &'static Location<'static>,
        built: impl FnOnce(Arc<Node>),
    ) -> PartRef<Output<T>>;
}

#[allow(private_interfaces, private_bounds)]
impl<Fut, V, T, E> Starts<Fut, V, T, E> for Spawned
where
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    V: Send + 'static,
    E: Send + 'static,
{
    fn launch(
        group: &Arc<Group<E>>,
        caller: &Arc<Node>,
        fut: Fut,
        route: Arc<StartShared<V, E>>,
        site: &'static Location<'static>,
        built: impl FnOnce(Arc<Node>),
    ) -> PartRef<Output<T>> {
        let route: Arc<dyn Route<E> + Send + Sync> = route;
        child::spawn(
            group,
            caller,
            fut,
            Some(route),
            Label::new(site, None),
            Some(built),
        )
    }
}

#[allow(private_interfaces, private_bounds)]
impl<Fut, V, T, E> Starts<Fut, V, T, E> for Local
where
    Fut: Future<Output = Result<T, E>> + 'static,
    T: 'static,
    V: 'static,
    E: 'static,
{
    fn launch(
        group: &Arc<Group<E>>,
        caller: &Arc<Node>,
        fut: Fut,
        route: Arc<StartShared<V, E>>,
        site: &'static Location<'static>,
        built: impl FnOnce(Arc<Node>),
    ) -> PartRef<Output<T>> {
        let route: Arc<dyn Route<E>> = route;
        let label = Label::new(site, None);
        let local = current_local();
        child::spawn_local(&*local, group, caller, fut, Some(route), label, Some(built))
    }
}

/// `start` for a polled kind, written once for both, which differ only in the bound
/// `$send` on the child's future, its value and the start's (`Send`, or none).
macro_rules! polled_starts {
    ($kind:ident, $($send:ident)?) => {
        #[allow(private_interfaces, private_bounds)]
        impl<'env, Fut, V, T, E> Starts<Fut, V, T, E> for $kind<'env>
        where
            Fut: Future<Output = Result<T, E>> + $($send +)? 'env,
            T: $($send +)? 'env,
            V: $($send +)? 'env,
            E: 'env,
        {
            fn launch(
                group: &Arc<Group<E>>,
                caller: &Arc<Node>,
                fut: Fut,
                route: Arc<StartShared<V, E>>,
                site: &'static Location<'static>,
                built: impl FnOnce(Arc<Node>),
            ) -> PartRef<Output<T>> {
                let route: Arc<dyn Route<E> + 'env> = route;
                let label = Label::new(site, None);
                child::spawn_polled(group, caller, fut, Some(route), label, Some(built))
            }
        }
    };
}

polled_starts!(Polled, Send);
polled_starts!(PolledLocal,);

impl<E, C: Children> Nursery<E, C> {
    /// Starts a task and waits until it signals that it is ready, returning the value it
    /// passes to [`TaskStatus::started`] (trio's `nursery.start`).
    ///
    /// `f` receives the [`TaskStatus`] token and returns the task's future. Until the task
    /// calls `started`, it runs under the *caller's* cancellation, and an error or panic
    /// it produces comes out of `start` instead of failing the nursery. After `started`, it
    /// is an ordinary child of the nursery. A pending `start` keeps the nursery open.
    ///
    /// The same for every kind of nursery ([`Starts`] gives the bounds on the task): a
    /// child of the nursery's kind from `start`'s first poll (a task of the executor in a
    /// spawning one; a future the nursery polls in its own task in a polled one, which
    /// may borrow, as its other children do).
    ///
    /// The task's own value (its final `Ok`) is dropped when it returns, as trio's is:
    /// [`start_with_handle`](Nursery::start_with_handle) also hands back a
    /// [`TaskHandle`] that keeps it.
    ///
    /// # Errors
    ///
    /// * [`StartError::Failed`] with the task's error if it failed before `started`;
    /// * [`StartError::NotStarted`] if it ended without calling `started`: it returned,
    ///   or was cancelled, by the executor or by the scope of an earlier poll of a kept
    ///   `start` (a timeout it was lent to, say). A cancellation of the scope that awaits
    ///   `start` makes `start` itself never return;
    /// * [`StartError::Closed`] if the nursery has already finished. `f` is not called
    ///   then (it is called by `start` itself, when the nursery is open; if the nursery
    ///   finishes before the first poll, the future `f` made is dropped unpolled).
    ///
    /// # Cancel safety
    ///
    /// If the enclosing scope is cancelled while `start` waits, the task (still under the
    /// caller's cancellation) is cancelled too, `start` waits for it to stop, and then the
    /// scope ends the work: `start` never returns, even if the task calls `started` in a
    /// shielded part after the cancellation (that call is ignored), unless the task then
    /// fails or panics: its error comes out of `start` (`StartError::Failed`), and its
    /// panic is resumed there, as from a nursery that fails while cancelled. If the task
    /// had called `started` before, it keeps running in the nursery, and `start` returns
    /// its value when next polled, even in a scope cancelled since: the value is handed
    /// over, not lost. Dropping the future from outside hatchery cancels a task that has
    /// not started yet, without waiting for it; an error or panic of that task before
    /// `started` is then dropped with it (C8: nobody is left to report it to). A `start`
    /// polled once and then kept without being polled again (the loser of a `select` that
    /// is not dropped) holds on to the caller's scopes: a cancelled one cannot end its
    /// body until the `start` is polled again or dropped. Drop what you do not poll. A
    /// kept `start` awaited again under another scope (after the scope of its first poll
    /// has ended, say) takes its task, if not started yet and not cancelled there, along:
    /// the task runs under the cancellation of that scope from then on.
    ///
    /// # Panics
    ///
    /// When first polled outside a hatchery runtime. A panic of the task before `started`
    /// is resumed here. When polled after it returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{nursery, sleep};
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|n| async move {
    ///     let port = n
    ///         .start(|ready| async move {
    ///             sleep(Duration::from_millis(1)).await; // bind a socket...
    ///             ready.started(8080u16);
    ///             sleep(Duration::from_millis(1)).await; // ...then serve
    ///             Ok(())
    ///         })
    ///         .await?;
    ///     assert_eq!(port, 8080);
    ///     Ok::<_, anyhow::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn start<V, T, F, Fut>(&self, f: F) -> Start<Fut, V, E, C>
    where
        F: FnOnce(TaskStatus<V>) -> Fut,
        C: Starts<Fut, V, T, E>,
    {
        self.start_inner(f, false)
    }

    /// Like [`start`](Nursery::start), and also returns a [`TaskHandle`] to the task's
    /// final value: `start` hands over the value passed to
    /// [`TaskStatus::started`] and lets the task's own value go, this keeps both.
    ///
    /// The handle is that of any child (N7): `join` waits for
    /// the task's value (an error of the task goes to the nursery, as for every child
    /// that has started), `cancel` cancels the task alone, and dropping it does not
    /// cancel the task.
    ///
    /// # Errors
    ///
    /// As [`start`](Nursery::start): no handle is made for a task that did not start.
    ///
    /// # Cancel safety
    ///
    /// As [`start`](Nursery::start). A task that had called `started` when the future
    /// was dropped keeps running in the nursery; its handle is dropped with the future,
    /// and its value with the task.
    ///
    /// # Panics
    ///
    /// As [`start`](Nursery::start).
    ///
    /// # Examples
    ///
    /// A server that says where it listens, then how many requests it served:
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|n| async move {
    ///     let (port, server) = n
    ///         .start_with_handle(|ready| async move {
    ///             ready.started(8080u16); // bound: `start_with_handle` returns
    ///             Ok(3u32) // ... served 3 requests, then stopped
    ///         })
    ///         .await?;
    ///     assert_eq!(port, 8080);
    ///     assert_eq!(server.join().await?, 3);
    ///     Ok::<_, anyhow::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn start_with_handle<V, T, F, Fut>(&self, f: F) -> StartWithHandle<Fut, V, E, C>
    where
        F: FnOnce(TaskStatus<V>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: Starts<Fut, V, T, E>,
    {
        StartWithHandle {
            start: self.start_inner(f, true),
            handle: None,
        }
    }

    #[track_caller]
    fn start_inner<V, F, Fut>(&self, f: F, with_handle: bool) -> Start<Fut, V, E, C>
    where
        F: FnOnce(TaskStatus<V>) -> Fut,
    {
        let slot = Arc::new(StartSlot {
            inner: Mutex::new(SlotInner {
                value: None,
                moves: None,
            }),
            waker: AtomicWaker::new(),
        });
        let shared = Arc::new(StartShared {
            hand: Mutex::new(Hand::new()),
            slot: slot.clone(),
            nursery_node: self.group.node.clone(),
            with_handle,
        });
        // A closed nursery takes no task: `f` is not called (trio's `start` fails before
        // it calls the function), and the first poll returns `Closed` (rule S1).
        let first = match self.is_closed() {
            true => First::Closed,
            false => First::Launch(f(TaskStatus { slot })),
        };
        Start {
            first,
            nursery: self.clone(),
            shared,
            launched: false,
            hold: None,
            site: Location::caller(),
            done: false,
        }
    }
}

/// Future returned by [`Nursery::start`], for every kind of children `C`.
///
/// # Examples
///
/// ```
/// use hatchery::futures::Start;
/// use hatchery::nursery;
///
/// # hatchery_smol::run(async {
/// nursery(|n| async move {
///     // An error before `started` comes out of `start`; the nursery does not fail.
///     let start: Start<_, (), &str> = n.start(|_status| async { Err::<(), _>("cannot bind") });
///     assert_eq!(start.await.unwrap_err().into_inner(), Some("cannot bind"));
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Start<Fut, V, E, C: Children = Spawned> {
    first: First<Fut>,
    nursery: Nursery<E, C>,
    /// The handshake, shared with the child and its token.
    shared: Arc<StartShared<V, E>>,
    /// The child was made (it runs).
    launched: bool,
    /// Holds the caller's scope while the task runs under it (rule K4).
    hold: Option<Held>,
    /// Where `start` was called: the child's site, and the hold warnings'.
    site: &'static Location<'static>,
    /// It has returned `Ready`.
    done: bool,
}

/// What the first poll of a [`Start`] does.
enum First<Fut> {
    /// Launches the task whose future `start`'s closure made.
    Launch(Fut),
    /// Returns `Closed`: the nursery had finished when `start` was called, and the closure
    /// was not called.
    Closed,
    /// Nothing: it has been polled.
    Polled,
}

impl<Fut, V, E, C: Children> Unpin for Start<Fut, V, E, C> {}

impl<Fut, V, E, C: Children> fmt::Debug for Start<Fut, V, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Start").finish_non_exhaustive()
    }
}

impl<Fut, V, E, C: Children> Drop for Start<Fut, V, E, C> {
    fn drop(&mut self) {
        // A child that started keeps running in the nursery; one that had not is
        // cancelled (C8), and its end goes nowhere. What nobody took is dropped here,
        // outside the lock.
        let left = self.shared.sync().abandon(self.launched);
        if let Abandoned::Cancel(Some(child)) = &left {
            child.cancel(Reason::Dropped);
        }
        drop(left);
    }
}

/// Terminated once it has returned.
impl<Fut, T, V, E, C> futures_core::future::FusedFuture for Start<Fut, V, E, C>
where
    C: Starts<Fut, V, T, E>,
    Fut: Future<Output = Result<T, E>>,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<Fut, T, V, E, C> Future for Start<Fut, V, E, C>
where
    C: Starts<Fut, V, T, E>,
    Fut: Future<Output = Result<T, E>>,
{
    type Output = Result<V, StartError<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.poll_start(cx, None)
    }
}

impl<Fut, T, V, E, C> Start<Fut, V, E, C>
where
    C: Starts<Fut, V, T, E>,
    Fut: Future<Output = Result<T, E>>,
{
    /// Polls the start; the child's handle goes to `keep`, if given, when it is made.
    fn poll_start(
        &mut self,
        cx: &mut Context<'_>,
        keep: Option<&mut Option<TaskHandle<T>>>,
    ) -> Poll<Result<V, StartError<E>>> {
        assert!(!self.done, "`Start` polled after completion");
        if let Some(hold) = &self.hold {
            hold.polled();
        }
        if let First::Launch(_) | First::Closed = self.first {
            let caller = context::current();
            let group = &self.nursery.group;
            let fut = match std::mem::replace(&mut self.first, First::Polled) {
                First::Launch(fut) if group.admit().is_ok() => fut,
                _ => {
                    self.done = true;
                    return Poll::Ready(Err(StartError::Closed));
                }
            };
            // The task runs under the caller's scopes: those between here and the
            // caller's task root join their parents' lists, as for a nursery, so that an
            // enclosing cancellation finds the task without waiting for the caller to poll
            // them again.
            caller.node.link_ancestors();
            self.hold = Some(Held::new(&caller.node, HolderKind::Start, self.site));
            // The child's node is in place before the child can run and call `started`.
            let shared = &self.shared;
            let built = |node: Arc<Node>| {
                let nursery = shared.nursery_node.clone();
                let ignored = shared.sync().child_made(node.clone(), &nursery);
                shared.slot.lock().moves = Some((node, nursery));
                drop(ignored);
            };
            let cell = C::launch(group, &caller.node, fut, shared.clone(), self.site, built);
            self.launched = true;
            if let Some(keep) = keep {
                *keep = Some(TaskHandle::new(cell));
            }
        } else if self.hold.is_some() {
            self.follow_caller();
        }
        self.shared.slot.waker.register(cx.waker());
        let outcome = self.shared.sync().poll(context::current_cancelled);
        if !matches!(outcome, Outcome::Pending) {
            self.hold.take();
        }
        self.done = !matches!(outcome, Outcome::Pending | Outcome::Stall);
        match outcome {
            Outcome::Pending | Outcome::Stall => Poll::Pending,
            Outcome::Ready(out) => Poll::Ready(out),
            Outcome::Panic(p) => resume_unwind(p),
        }
    }

    /// Kept past the scope of its last poll and awaited in another (the loser of a race,
    /// awaited again): a task that has not started runs under the cancellation of
    /// whoever awaits it, so it moves under this caller's scope, and so does the hold.
    fn follow_caller(&mut self) {
        let site = self.site;
        let (shared, hold) = (&self.shared, &mut self.hold);
        let old = context::with_current(|c| {
            // Awaited outside hatchery (a plain thread's `block_on`): nothing to follow.
            let node = c?.node;
            if hold.as_ref().is_none_or(|hold| hold.is_on(node)) {
                return None;
            }
            let hand = shared.sync();
            let child = hand.waiting_child()?;
            // Awaited inside the task itself (or below it): it cannot move under itself.
            if node.is_within(child) {
                return None;
            }
            node.link_ancestors();
            // Refused if the task or its old scope is cancelled: then it is, or now takes
            // that cancellation, and ends.
            child.reparent(node);
            drop(hand);
            hold.replace(Held::new(node, HolderKind::Start, site))
        });
        drop(old);
    }
}

/// Future returned by [`Nursery::start_with_handle`].
///
/// # Examples
///
/// ```
/// use hatchery::futures::StartWithHandle;
/// use hatchery::nursery;
///
/// # hatchery_smol::run(async {
/// nursery(|n| async move {
///     let start: StartWithHandle<_, &str, std::io::Error> = n.start_with_handle(|status| async move {
///         status.started("ready");
///         Ok(7)
///     });
///     let (ready, handle) = start.await.unwrap();
///     assert_eq!((ready, handle.join().await.unwrap()), ("ready", 7));
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct StartWithHandle<Fut: TryFuture, V, E, C: Children = Spawned> {
    start: Start<Fut, V, E, C>,
    handle: Option<TaskHandle<Fut::Ok>>,
}

impl<Fut: TryFuture, V, E, C: Children> Unpin for StartWithHandle<Fut, V, E, C> {}

impl<Fut: TryFuture, V, E, C: Children> fmt::Debug for StartWithHandle<Fut, V, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartWithHandle").finish_non_exhaustive()
    }
}

impl<Fut, T, V, E, C> Future for StartWithHandle<Fut, V, E, C>
where
    C: Starts<Fut, V, T, E>,
    Fut: Future<Output = Result<T, E>>,
{
    type Output = Result<(V, TaskHandle<T>), StartError<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let value = std::task::ready!(this.start.poll_start(cx, Some(&mut this.handle)))?;
        // Made at the first poll, which launched the task that has started since.
        let handle = this
            .handle
            .take()
            .expect("hatchery: internal error: a started task without its handle");
        Poll::Ready(Ok((value, handle)))
    }
}
