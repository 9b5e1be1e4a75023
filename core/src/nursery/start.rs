//! [`Nursery::start`]: a task that runs under its caller's cancellation until it says it
//! is ready ([`TaskStatus::started`]), then belongs to the nursery.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{resume_unwind, Location};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;

use super::Nursery;
use crate::context;
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
    Inline(Arc<Mutex<Option<V>>>),
}

trait StartSink<V>: Send + Sync {
    fn started(&self, value: V);
}

impl<V> TaskStatus<V> {
    /// The token of an inline child's `start`, which finds the value in `slot`.
    pub(crate) fn inline(slot: Arc<Mutex<Option<V>>>) -> Self {
        TaskStatus {
            sink: Sink::Inline(slot),
        }
    }

    /// Hands `value` to the caller of [`Nursery::start`] and moves this task into the
    /// nursery. From now on an error or panic of the task goes to the nursery. (In an
    /// [inline nursery](crate::inline), the nursery takes the child over at the child's
    /// next suspension point, or when it returns.)
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
            Sink::Inline(slot) => *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(value),
        }
    }
}

impl<V> fmt::Debug for TaskStatus<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskStatus").finish_non_exhaustive()
    }
}

enum StartState<V, E> {
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

struct StartShared<V, E> {
    state: Mutex<StartStateFull<V, E>>,
    waker: AtomicWaker,
    nursery_node: Arc<Node>,
    /// A `start_with_handle`: the task's value goes to its handle once it has started.
    with_handle: bool,
}

struct StartStateFull<V, E> {
    state: StartState<V, E>,
    child: Option<Arc<Node>>,
}

impl<V, E> StartShared<V, E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, StartStateFull<V, E>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<V: Send, E: Send> StartSink<V> for StartShared<V, E> {
    fn started(&self, value: V) {
        let mut s = self.lock();
        if let StartState::Waiting = s.state {
            if let Some(child) = &s.child {
                if !child.reparent(&self.nursery_node) {
                    // The caller is cancelled: the task stays under its cancellation
                    // and `start` never returns. The value is dropped, outside the lock.
                    drop(s);
                    drop(value);
                    return;
                }
            }
            s.state = StartState::Started(value);
            drop(s);
            self.waker.wake();
        }
    }
}

impl<V: Send, E: Send> Route<E> for StartShared<V, E> {
    fn end(&self, end: End<E>) -> Option<End<E>> {
        let mut s = self.lock();
        match s.state {
            StartState::Waiting => {}
            StartState::Abandoned => {
                // Nobody is left to report it to (C8); dropped outside the lock.
                drop(s);
                drop(end);
                return None;
            }
            _ => return Some(end),
        }
        s.state = match end {
            End::Value(()) | End::Cancelled => StartState::NotStarted,
            End::Failed(e) => StartState::Failed(e),
            End::Panicked(p) => StartState::Panicked(p),
        };
        drop(s);
        self.waker.wake();
        None
    }

    fn wants_value(&self) -> bool {
        self.with_handle && matches!(self.lock().state, StartState::Started(_) | StartState::Over)
    }
}

impl<E: Send + 'static> Nursery<E> {
    /// Starts a task and waits until it signals that it is ready, returning the value it
    /// passes to [`TaskStatus::started`] (trio's `nursery.start`).
    ///
    /// `f` receives the [`TaskStatus`] token and returns the task's future. Until the task
    /// calls `started`, it runs under the *caller's* cancellation, and an error or panic
    /// it produces comes out of `start` instead of failing the nursery. After `started`, it
    /// is an ordinary child of the nursery. A pending `start` keeps the nursery open.
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
    pub fn start<V, T, F, Fut>(&self, f: F) -> Start<Fut, V, E>
    where
        F: FnOnce(TaskStatus<V>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        V: Send + 'static,
    {
        self.start_inner(f, false)
    }

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

    #[track_caller]
    fn start_inner<V, T, F, Fut>(&self, f: F, with_handle: bool) -> Start<Fut, V, E>
    where
        F: FnOnce(TaskStatus<V>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        V: Send + 'static,
    {
        let shared = Arc::new(StartShared {
            state: Mutex::new(StartStateFull {
                state: StartState::Waiting,
                child: None,
            }),
            waker: AtomicWaker::new(),
            nursery_node: self.shared.node.clone(),
            with_handle,
        });
        // A closed nursery takes no task: `f` is not called (trio's `start` fails before
        // it calls the function), and the first poll returns `Closed`.
        let first = match self.is_closed() {
            true => First::Closed,
            false => First::Spawn(f(TaskStatus {
                sink: Sink::Task(shared.clone()),
            })),
        };
        Start {
            first,
            nursery: self.clone(),
            shared,
            hold: None,
            handle: None,
            site: Location::caller(),
            done: false,
        }
    }
}

/// Future returned by [`Nursery::start`].
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
pub struct Start<Fut, V, E> {
    first: First<Fut>,
    nursery: Nursery<E>,
    shared: Arc<StartShared<V, E>>,
    hold: Option<Held>,
    /// The task's `TaskHandle<T>`, made at the first poll of a `start_with_handle`
    /// (`T` is not among this type's parameters).
    handle: Option<Box<dyn Any + Send + Sync>>,
    /// Where `start` was called, for the hold warnings (`diagnostics`).
    site: &'static Location<'static>,
    /// It has returned `Ready`.
    done: bool,
}

/// What the first poll of a [`Start`] does.
enum First<Fut> {
    /// Spawns the task whose future `start`'s closure made.
    Spawn(Fut),
    /// Returns `Closed`: the nursery had finished when `start` was called, and the closure
    /// was not called.
    Closed,
    /// Nothing: it has been polled.
    Polled,
}

impl<Fut, V, E> Unpin for Start<Fut, V, E> {}

impl<Fut, V, E> fmt::Debug for Start<Fut, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Start").finish_non_exhaustive()
    }
}

/// Terminated once it has returned.
impl<Fut, T, V, E> futures_core::future::FusedFuture for Start<Fut, V, E>
where
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    V: Send + 'static,
    E: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<Fut, T, V, E> Future for Start<Fut, V, E>
where
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    V: Send + 'static,
    E: Send + 'static,
{
    type Output = Result<V, StartError<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        assert!(!this.done, "`Start` polled after completion");
        if let Some(hold) = &this.hold {
            hold.polled();
        }
        if let First::Spawn(_) | First::Closed = this.first {
            let caller = context::current();
            let First::Spawn(fut) = std::mem::replace(&mut this.first, First::Polled) else {
                this.done = true;
                return Poll::Ready(Err(StartError::Closed));
            };
            if this.nursery.shared.add_child().is_err() {
                this.done = true;
                return Poll::Ready(Err(StartError::Closed));
            }
            // The task runs elsewhere under the caller's scopes: those between here and
            // the caller's task root join their parents' lists, as for a nursery, so that
            // an enclosing cancellation finds the task without waiting for the caller to
            // poll them again.
            caller.node.link_ancestors();
            this.hold = Some(Held::new(&caller.node, HolderKind::Start, this.site));
            let route: Arc<dyn Route<E>> = this.shared.clone();
            // The child node is in place before the task can run and call `started`.
            let start = &this.shared;
            let cell = spawn_cell(
                &this.nursery.shared,
                &caller.node,
                fut,
                Some(route),
                Label {
                    site: this.site,
                    name: None,
                },
                |cell| {
                    let node: Arc<Node> = cell.clone();
                    let mut s = start.lock();
                    // `started` was called before this first poll (in `f` itself, or by
                    // a thread `f` handed the token to): move the task now, as `started`
                    // does once the task exists. In a cancelled caller the call is
                    // ignored, as a late `started` is.
                    if matches!(s.state, StartState::Started(_))
                        && !node.reparent(&start.nursery_node)
                    {
                        let ignored = std::mem::replace(&mut s.state, StartState::Waiting);
                        s.child = Some(node);
                        drop(s);
                        drop(ignored);
                        return;
                    }
                    s.child = Some(node);
                },
            );
            if this.shared.with_handle {
                this.handle = Some(Box::new(task::handle_of(cell)));
            }
        } else if this.hold.is_some() {
            // Kept past the scope of its last poll and awaited in another (the loser of a
            // race, awaited again): a task that has not started runs under the
            // cancellation of whoever awaits it, so it moves under this caller's scope,
            // and so does the hold.
            let old = context::with_current(|c| {
                // Awaited outside hatchery (a plain thread's `block_on`): nothing to
                // follow.
                let node = c?.node;
                if this.hold.as_ref().is_none_or(|hold| hold.is_on(node)) {
                    return None;
                }
                let s = this.shared.lock();
                let (StartState::Waiting, Some(child)) = (&s.state, &s.child) else {
                    return None;
                };
                // Awaited inside the task itself (or below it): it cannot move under
                // itself.
                if node.is_within(child) {
                    return None;
                }
                node.link_ancestors();
                // Refused if the task or its old scope is cancelled: then it is, or now
                // takes that cancellation, and ends.
                child.reparent(node);
                drop(s);
                this.hold
                    .replace(Held::new(node, HolderKind::Start, this.site))
            });
            drop(old);
        }
        this.shared.waker.register(cx.waker());
        let mut s = this.shared.lock();
        let state = std::mem::replace(&mut s.state, StartState::Over);
        let out = match state {
            StartState::Waiting => {
                s.state = StartState::Waiting;
                return Poll::Pending;
            }
            StartState::Over | StartState::Abandoned => return Poll::Pending,
            StartState::Started(v) => Ok(v),
            StartState::Failed(e) => Err(StartError::Failed(e)),
            StartState::Panicked(p) => {
                drop(s);
                this.hold.take();
                this.done = true;
                resume_unwind(p);
            }
            StartState::NotStarted => {
                if context::current_cancelled() {
                    // The caller's scope cancelled the task: let that scope end the work.
                    // (Kept: awaited again outside that scope, this reports it.)
                    s.state = StartState::NotStarted;
                    drop(s);
                    this.hold.take();
                    return Poll::Pending;
                }
                Err(StartError::NotStarted)
            }
        };
        drop(s);
        this.hold.take();
        this.done = true;
        Poll::Ready(out)
    }
}

impl<Fut, V, E> Drop for Start<Fut, V, E> {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        match s.state {
            // Dropped from outside while the task has not started: cancel it.
            StartState::Waiting if self.hold.is_some() => {
                s.state = StartState::Abandoned;
                if let Some(child) = &s.child {
                    child.cancel(Reason::Dropped);
                }
            }
            // An end nobody took (a value `started` handed over, an error, a panic): it
            // is dropped here, by whoever dropped the `Start`, not kept for as long as
            // the task runs (and then dropped where a panic in its drop is lost).
            StartState::Started(_) | StartState::Failed(_) | StartState::Panicked(_) => {
                let unclaimed = std::mem::replace(&mut s.state, StartState::Over);
                drop(s);
                drop(unclaimed);
            }
            _ => {}
        }
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
        let value = match Pin::new(&mut *start).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(v)) => v,
        };
        // Made at the first poll, which spawned the task that has started since.
        let handle = start
            .handle
            .take()
            .and_then(|h| h.downcast::<TaskHandle<T>>().ok())
            .expect("hatchery: internal error: a started task without its handle");
        Poll::Ready(Ok((value, *handle)))
    }
}
