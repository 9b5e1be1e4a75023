//! [`Nursery::start`]: a task that runs under its caller's cancellation until it says it
//! is ready ([`TaskStatus::started`]), then belongs to the nursery (rule N6), for every
//! kind of children: one handshake ([`Hand`]) and one future ([`Start`]), over a kind's
//! way of running the task until then ([`Starts`]: a task of the executor, or a future
//! that `start` polls itself).

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{resume_unwind, Location};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;

use super::{Children, Nursery, Spawned};
use crate::context::{self, Ctx};
use crate::diagnostics::{Held, HolderKind};
use crate::error::StartError;
use crate::node::{Node, Reason};
use crate::task::{self, spawn_cell, End, Label, Panic, Route, TaskHandle};

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
    sink: Sink<V>,
}

/// Where a [`TaskStatus`] hands its value.
enum Sink<V> {
    /// A spawned task's `start`, which takes the task over at once.
    Task(Arc<dyn StartSink<V>>),
    /// An inline child's `start`, which looks at the value after each poll of the child
    /// (the child is polled in the caller's task until then).
    Inline(Arc<InlineSlot<V>>),
}

/// What an inline child's [`TaskStatus`] shares with its `start`: the value `started`
/// left, and, once the child's node exists, where `started` moves it.
///
/// The child moves into the nursery's scope at the call (rule S4), as a spawned task
/// does; only the value waits for the start, which looks after each poll of the child
/// and hands the child to its nursery there (the start polls it until then, and cannot
/// let go of it during its own poll).
pub(crate) struct InlineSlot<V> {
    inner: Mutex<InlineInner<V>>,
}

struct InlineInner<V> {
    /// The value, and whether `started` moved the child (not when it came before the
    /// child's node existed: the handshake moves it then).
    value: Option<(V, bool)>,
    /// The child's node and the nursery's.
    moves: Option<(Arc<Node>, Arc<Node>)>,
}

impl<V> InlineSlot<V> {
    pub(crate) fn new() -> Arc<InlineSlot<V>> {
        Arc::new(InlineSlot {
            inner: Mutex::new(InlineInner {
                value: None,
                moves: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InlineInner<V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The child's node exists: a later `started` moves it into `nursery` at the call.
    /// (A value left before is moved by the handshake, [`Hand::child_made`].)
    pub(crate) fn child_made(&self, child: Arc<Node>, nursery: Arc<Node>) {
        self.lock().moves = Some((child, nursery));
    }

    /// The value `started` left since the last look, and whether it moved the child.
    pub(crate) fn take(&self) -> Option<(V, bool)> {
        self.lock().value.take()
    }

    /// `started(value)`: moves the child now, unless the caller's scope (or the child)
    /// is cancelled already; then the value is dropped, as [`Hand::started`] drops it.
    /// The handshake records the move when the start looks. (One locked step, so that a
    /// token on another thread and the child's launch see each other whole; the move
    /// takes node locks under it, never the other way round.)
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
    }
}

trait StartSink<V>: Send + Sync {
    fn started(&self, value: V);
}

impl<V> TaskStatus<V> {
    /// The token of an inline child's `start`, which finds the value in `slot`.
    pub(crate) fn inline(slot: Arc<InlineSlot<V>>) -> Self {
        TaskStatus {
            sink: Sink::Inline(slot),
        }
    }

    /// Hands `value` to the caller of [`Nursery::start`] and moves this task into the
    /// nursery: from now on the nursery's cancellation and deadlines apply to it (rule
    /// S4), and an error or panic of the task goes to the nursery. (In an
    /// [inline nursery](crate::inline), the child moves into the nursery's scope at this
    /// call, too; `start`, which polls it, hands it to the nursery to poll at its next
    /// suspension point, or when it returns.)
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
        match self.sink {
            Sink::Task(sink) => sink.started(value),
            Sink::Inline(slot) => slot.started(value),
        }
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
/// come from other threads); an inline child's start keeps it to itself.
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
    /// as an inline child's token does: [`InlineSlot`].)
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
            End::Value(()) | End::Cancelled => StartState::NotStarted,
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

/// What a spawned task's start shares with the task: the handshake under a lock, and the
/// waker of the start's task.
pub(crate) struct StartShared<V, E> {
    hand: Mutex<Hand<V, E>>,
    waker: AtomicWaker,
    nursery_node: Arc<Node>,
    /// A `start_with_handle`: the task's value goes to its handle once it has started.
    with_handle: bool,
}

impl<V, E> StartShared<V, E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Hand<V, E>> {
        self.hand.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<V: Send, E: Send> StartSink<V> for StartShared<V, E> {
    fn started(&self, value: V) {
        let taken = self.lock().started(value, Some(&self.nursery_node));
        match taken {
            Ok(()) => self.waker.wake(),
            // Dropped outside the lock.
            Err(value) => drop(value),
        }
    }
}

impl<V: Send, E: Send> Route<E> for StartShared<V, E> {
    fn end(&self, end: End<E>) -> Option<End<E>> {
        let to = self.lock().end(end);
        match to {
            EndTo::Start => {
                self.waker.wake();
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
        self.with_handle && self.lock().has_started()
    }
}

/// How a kind of children runs a task before it has started, for [`Nursery::start`]:
/// the futures `Fut` (of `Result<T, E>`, with a value `V` for `started`) that it starts,
/// with the bounds of the kind.
///
/// | `Self` | `Fut`, `T` and `V` |
/// |---|---|
/// | [`Spawned`] | `Send + 'static` (`E` too): the task is a task of the executor from its first poll |
/// | [`SendChild<'env, E>`](crate::inline::SendChild) | `Send + 'env` (`V`: `Send`): the child is polled by `start` until it starts, then by the nursery |
/// | [`LocalChild<'env, E>`](crate::inline::LocalChild) | `'env` |
///
/// Sealed, as [`Children`] is.
#[diagnostic::on_unimplemented(
    message = "`{Fut}` cannot be started in this nursery",
    label = "not a task this kind of nursery starts",
    note = "a spawning nursery (`nursery`) starts `Send + 'static` futures; to borrow, open an `inline::nursery` or an `inline::local_nursery`"
)]
#[allow(private_interfaces, private_bounds)]
pub trait Starts<Fut, V, T, E>: Children<E> {
    /// Makes the start's own part, and the token its task gets. (Not for use outside
    /// hatchery: `Self::Shared` cannot be named there.)
    #[doc(hidden)]
    fn prepare(shared: &Arc<Self::Shared>, with_handle: bool) -> (Self::Run<V>, TaskStatus<V>);

    /// Counts the task in (it keeps the nursery open), or `false` if the nursery has
    /// closed.
    #[doc(hidden)]
    fn admit(shared: &Arc<Self::Shared>) -> bool;

    /// Runs `fut` under `caller`'s scope: its node is made there, movable, and handed to
    /// the hand ([`Hand::child_made`]) before the task can run.
    #[doc(hidden)]
    fn launch(
        run: &mut Self::Run<V>,
        shared: &Arc<Self::Shared>,
        fut: Fut,
        caller: &Ctx,
        site: &'static Location<'static>,
    );

    /// Lets the task run, in the start's poll, if the start runs it itself; makes sure
    /// that the start's task is woken when the handshake moves.
    #[doc(hidden)]
    fn drive(run: &mut Self::Run<V>, shared: &Arc<Self::Shared>, cx: &mut Context<'_>);

    /// Runs `f` on the handshake.
    #[doc(hidden)]
    fn with_hand<R>(run: &mut Self::Run<V>, f: impl FnOnce(&mut Hand<V, E>) -> R) -> R;
}

/// A spawned task's start: the handshake it shares with the task, and the task's handle
/// (a `start_with_handle`'s, made at the first poll).
#[allow(unreachable_pub, missing_debug_implementations)]
pub struct SpawnRun<V, E> {
    shared: Arc<StartShared<V, E>>,
    /// The task's `TaskHandle<T>` (`T` is not among this type's parameters).
    handle: Option<Box<dyn Any + Send + Sync>>,
    /// The task was spawned: dropped while it waits, the start abandons it.
    launched: bool,
}

impl<V, E> Drop for SpawnRun<V, E> {
    fn drop(&mut self) {
        let left = self.shared.lock().abandon(self.launched);
        if let Abandoned::Cancel(Some(child)) = &left {
            // Dropped from outside while the task has not started: cancel it.
            child.cancel(Reason::Dropped);
        }
        drop(left);
    }
}

#[allow(private_interfaces, private_bounds)]
impl<Fut, V, T, E> Starts<Fut, V, T, E> for Spawned
where
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    V: Send + 'static,
    E: Send + 'static,
{
    fn prepare(
        shared: &Arc<super::Shared<E>>,
        with_handle: bool,
    ) -> (SpawnRun<V, E>, TaskStatus<V>) {
        let start = Arc::new(StartShared {
            hand: Mutex::new(Hand::new()),
            waker: AtomicWaker::new(),
            nursery_node: shared.node.clone(),
            with_handle,
        });
        let status = TaskStatus {
            sink: Sink::Task(start.clone()),
        };
        let run = SpawnRun {
            shared: start,
            handle: None,
            launched: false,
        };
        (run, status)
    }

    fn admit(shared: &Arc<super::Shared<E>>) -> bool {
        shared.add_child().is_ok()
    }

    fn launch(
        run: &mut SpawnRun<V, E>,
        shared: &Arc<super::Shared<E>>,
        fut: Fut,
        caller: &Ctx,
        site: &'static Location<'static>,
    ) {
        let route: Arc<dyn Route<E>> = run.shared.clone();
        let start = &run.shared;
        let label = Label::at(site);
        // The child node is in place before the task can run and call `started`.
        let built = |node: Arc<Node>| {
            let ignored = start.lock().child_made(node, &start.nursery_node);
            drop(ignored);
        };
        let cell = spawn_cell(shared, &caller.node, fut, Some(route), label, Some(built));
        if run.shared.with_handle {
            run.handle = Some(Box::new(task::handle_of(cell)));
        }
        run.launched = true;
    }

    fn drive(run: &mut SpawnRun<V, E>, _: &Arc<super::Shared<E>>, cx: &mut Context<'_>) {
        run.shared.waker.register(cx.waker());
    }

    fn with_hand<R>(run: &mut SpawnRun<V, E>, f: impl FnOnce(&mut Hand<V, E>) -> R) -> R {
        f(&mut run.shared.lock())
    }
}

/// What every nursery can do with a task that must say when it is ready.
impl<E, C: Children<E>> Nursery<E, C> {
    /// Starts a task and waits until it signals that it is ready, returning the value it
    /// passes to [`TaskStatus::started`] (trio's `nursery.start`).
    ///
    /// `f` receives the [`TaskStatus`] token and returns the task's future. Until the task
    /// calls `started`, it runs under the *caller's* cancellation, and an error or panic
    /// it produces comes out of `start` instead of failing the nursery. After `started`, it
    /// is an ordinary child of the nursery. A pending `start` keeps the nursery open.
    ///
    /// The same for every kind of nursery ([`Starts`] gives the bounds on the task): in a
    /// spawning one the task is a task of the executor from `start`'s first poll; in an
    /// inline one ([`inline::nursery`](crate::inline::nursery)), a future that `start`
    /// polls itself, in the caller's task, until it has started, and the nursery then
    /// (it may borrow, as the nursery's other children do).
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

    #[track_caller]
    fn start_inner<V, T, F, Fut>(&self, f: F, with_handle: bool) -> Start<Fut, V, E, C>
    where
        F: FnOnce(TaskStatus<V>) -> Fut,
        C: Starts<Fut, V, T, E>,
    {
        let (run, status) = C::prepare(&self.shared, with_handle);
        // A closed nursery takes no task: `f` is not called (trio's `start` fails before
        // it calls the function), and the first poll returns `Closed` (rule S1).
        let first = match self.is_closed() {
            true => First::Closed,
            false => First::Launch(f(status)),
        };
        Start {
            first,
            nursery: self.clone(),
            run,
            hold: None,
            site: Location::caller(),
            done: false,
        }
    }
}

impl<E: Send + 'static> Nursery<E> {
    /// Like [`start`](Nursery::start), and also returns a [`TaskHandle`] to the task's
    /// final value: `start` hands over the value passed to
    /// [`TaskStatus::started`] and lets the task's own value go, this keeps both.
    ///
    /// The handle is that of a spawned task (N7): `join` waits for
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
    pub fn start_with_handle<V, T, F, Fut>(&self, f: F) -> StartWithHandle<Fut, V, E>
    where
        F: FnOnce(TaskStatus<V>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        V: Send + 'static,
    {
        StartWithHandle {
            start: self.start_inner(f, true),
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
pub struct Start<Fut, V, E, C: Children<E> = Spawned> {
    first: First<Fut>,
    nursery: Nursery<E, C>,
    /// The kind's own part: the handshake, and the task if the start runs it.
    run: C::Run<V>,
    /// Holds the caller's scope while the task runs under it (rule K4).
    hold: Option<Held>,
    /// Where `start` was called, for the hold warnings (`diagnostics`).
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

impl<Fut, V, E, C: Children<E>> Unpin for Start<Fut, V, E, C> {}

impl<Fut, V, E, C: Children<E>> fmt::Debug for Start<Fut, V, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Start").finish_non_exhaustive()
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
        let this = &mut *self;
        assert!(!this.done, "`Start` polled after completion");
        if let Some(hold) = &this.hold {
            hold.polled();
        }
        if let First::Launch(_) | First::Closed = this.first {
            let caller = context::current();
            let fut = match std::mem::replace(&mut this.first, First::Polled) {
                First::Launch(fut) if C::admit(&this.nursery.shared) => fut,
                _ => {
                    this.done = true;
                    return Poll::Ready(Err(StartError::Closed));
                }
            };
            // The task runs under the caller's scopes: those between here and the
            // caller's task root join their parents' lists, as for a nursery, so that an
            // enclosing cancellation finds the task without waiting for the caller to poll
            // them again.
            caller.node.link_ancestors();
            this.hold = Some(Held::new(&caller.node, HolderKind::Start, this.site));
            C::launch(&mut this.run, &this.nursery.shared, fut, &caller, this.site);
        } else if this.hold.is_some() {
            this.follow_caller();
        }
        C::drive(&mut this.run, &this.nursery.shared, cx);
        let outcome = C::with_hand(&mut this.run, |hand| hand.poll(context::current_cancelled));
        if !matches!(outcome, Outcome::Pending) {
            this.hold.take();
        }
        this.done = !matches!(outcome, Outcome::Pending | Outcome::Stall);
        match outcome {
            Outcome::Pending | Outcome::Stall => Poll::Pending,
            Outcome::Ready(out) => Poll::Ready(out),
            Outcome::Panic(p) => resume_unwind(p),
        }
    }
}

impl<Fut, T, V, E, C> Start<Fut, V, E, C>
where
    C: Starts<Fut, V, T, E>,
    Fut: Future<Output = Result<T, E>>,
{
    /// Kept past the scope of its last poll and awaited in another (the loser of a race,
    /// awaited again): a task that has not started runs under the cancellation of
    /// whoever awaits it, so it moves under this caller's scope, and so does the hold.
    fn follow_caller(&mut self) {
        let site = self.site;
        let (run, hold) = (&mut self.run, &mut self.hold);
        let old = context::with_current(|c| {
            // Awaited outside hatchery (a plain thread's `block_on`): nothing to follow.
            let node = c?.node;
            if hold.as_ref().is_none_or(|hold| hold.is_on(node)) {
                return None;
            }
            C::with_hand(run, |hand| {
                let child = hand.waiting_child()?;
                // Awaited inside the task itself (or below it): it cannot move under
                // itself.
                if node.is_within(child) {
                    return None;
                }
                node.link_ancestors();
                // Refused if the task or its old scope is cancelled: then it is, or now
                // takes that cancellation, and ends.
                child.reparent(node);
                Some(())
            })?;
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
pub struct StartWithHandle<Fut, V, E> {
    start: Start<Fut, V, E>,
}

impl<Fut, V, E> fmt::Debug for StartWithHandle<Fut, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartWithHandle").finish_non_exhaustive()
    }
}

impl<Fut, T, V, E> Future for StartWithHandle<Fut, V, E>
where
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    V: Send + 'static,
    E: Send + 'static,
{
    type Output = Result<(V, TaskHandle<T>), StartError<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let start = &mut self.start;
        let value = std::task::ready!(Pin::new(&mut *start).poll(cx))?;
        // Made at the first poll, which spawned the task that has started since.
        let handle = start
            .run
            .handle
            .take()
            .and_then(|h| h.downcast::<TaskHandle<T>>().ok())
            .expect("hatchery: internal error: a started task without its handle");
        Poll::Ready(Ok((value, *handle)))
    }
}
