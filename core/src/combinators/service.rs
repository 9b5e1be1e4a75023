//! `service`: a long-lived group of background work with a graceful shutdown.

use std::convert::Infallible;
use std::fmt;
use std::future::{poll_fn, Future};
use std::panic::Location;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;

use crate::context as rt;
use crate::error::NurseryError;
use crate::node::Node;
use crate::nursery::{nursery_at, Nursery};
use crate::scope::{move_on_after, CancelHandle, CancelScope};

/// Runs `body` with a [`Service`] that accepts background work, then shuts the service
/// down gracefully. It plays the part of FastAPI's `BackgroundTasks` (slow work that a
/// request handler hands off), except that no task outlives it.
///
/// `body` is typically the request loop of a server. Its handlers answer quickly and hand
/// slow work (send a mail, update a cache) to the service with [`Service::spawn`]. Each
/// piece of work is a task of its own; an error it returns is recorded for the report and
/// does not disturb the other tasks (a background failure must not take the server down).
///
/// **Shutdown** begins when `body` returns (or fails), or when [`Service::shutdown`] is
/// called from anywhere (a handler, a signal watcher); `shutdown` also cancels `body`.
/// Then:
///
/// 1. the service stops accepting work: `spawn` from outside the service fails. Work
///    that is already running may still spawn follow-up work into it, so a handler that
///    was mid-way is not cut off;
/// 2. the running work gets `grace` to finish (`Duration::MAX`: wait as long as it takes;
///    `Duration::ZERO`: cancel at once), counted from when `body` has stopped: a body
///    cancelled by `shutdown` first finishes its own cleanup (shielded work, `finally`),
///    during which the running work goes on;
/// 3. whatever is still running then is cancelled, and awaited (a cancellation, not a
///    hard stop: work inside a [`shield`](crate::shield) runs on until the shield ends,
///    and counts as completed if it then returns by itself);
/// 4. `service` returns a [`ServiceReport`]: the body's value, every error, and how many
///    tasks finished and how many were cancelled.
///
/// Panics are not caught: a panic in `body` or in a task cancels everything, and is resumed
/// here once all has stopped (as in a [`nursery`](crate::nursery)).
///
/// # Cancel safety
///
/// If the enclosing scope is cancelled, that is not a graceful shutdown: `body` and every
/// task are cancelled at once and awaited, then this future never completes (the cancelled
/// scope returns, and the report is not made), unless it finishes in its very first poll
/// (a body that returns at once, its `try_spawn`s refused in a scope cancelled already):
/// then, like a [`nursery`](crate::nursery) that never suspended, it returns its report.
/// Trigger a graceful shutdown with [`Service::shutdown`] instead. Dropping the future
/// from outside hatchery cancels everything without waiting (see
/// [`nursery`](crate::nursery)).
///
/// # Panics
///
/// As described above; and when first polled outside a hatchery runtime. When kept past
/// the scope it was first polled in, cancelled by that scope while it ran, and awaited
/// after that scope has finished: the report is gone with the service's work (see
/// [Combinators](crate#combinators)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{service, sleep};
///
/// # hatchery_smol::run(async {
/// let report = service(Duration::from_secs(5), |svc| async move {
///     for order in 0..3u32 {
///         // The handler answers at once; the notification is sent in the background.
///         svc.spawn(async move {
///             sleep(Duration::from_millis(5)).await;
///             if order == 1 { Err(format!("order {order}: mail server down")) } else { Ok(()) }
///         });
///     }
///     Ok::<_, String>("3 orders taken")
/// })
/// .await;
/// // Returning from the body shut the service down; the notifications were drained.
/// assert_eq!(report.value, Some("3 orders taken"));
/// assert_eq!(report.errors, ["order 1: mail server down"]);
/// assert_eq!((report.completed, report.cancelled), (3, 0));
/// # });
/// ```
///
/// A shutdown from a handler, with work that does not finish within the grace period (on
/// virtual time: the grace period passes without a real wait):
///
/// ```
/// use std::time::Duration;
/// use hatchery::testing::virtual_time;
/// use hatchery::{service, sleep};
///
/// # hatchery_smol::run(virtual_time(async {
/// let report = service(Duration::from_millis(100), |svc| async move {
///     svc.spawn(async { sleep(Duration::from_millis(1)).await; Ok::<_, String>(()) });
///     svc.spawn(async { sleep(Duration::from_secs(3600)).await; Ok(()) }); // stuck
///     let handler = svc.clone();
///     svc.spawn(async move { handler.shutdown(); Ok(()) }); // e.g. on SIGTERM
///     sleep(Duration::from_secs(3600)).await; // serve forever: `shutdown` cancels this
///     Ok(())
/// })
/// .await;
/// assert_eq!(report.value, None); // the body was cancelled
/// assert_eq!((report.completed, report.cancelled), (2, 1));
/// # }));
/// ```
#[track_caller]
pub fn service<E, T, F, Fut>(grace: Duration, body: F) -> impl Future<Output = ServiceReport<T, E>>
where
    F: FnOnce(Service<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    // The caller's place, for the nursery and the body's scope (task tree, hold
    // warnings).
    let site = Location::caller();
    let scope = CancelScope::new();
    async move {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                phase: Phase::Accepting,
                running: 0,
                completed: 0,
                cancelled: 0,
                errors: Vec::new(),
            }),
            idle: AtomicWaker::new(),
            body: scope.handle(),
            body_node: OnceLock::new(),
        });
        let sh = shared.clone();
        let out = nursery_at::<Infallible, _, _, _>(site, |n| async move {
            // Cancelled from outside, the service ends here (its work is cancelled and
            // awaited): it no longer accepts any. (After a graceful shutdown, the phase is
            // `Closed` already, which this leaves as it is.)
            let _closed = CloseOnDrop(&sh);
            let svc = Service {
                n: n.clone(),
                shared: sh.clone(),
            };
            let body_node = &sh.body_node;
            let body = async move {
                // Remember the body's scope: code under it is outside the service's work.
                let _ = body_node.set(rt::current().node);
                body(svc).await
            };
            // `None` if the body was cancelled or failed (its error goes to the report).
            let value = match scope.run(body).await {
                Some(Err(e)) => {
                    sh.lock().errors.push(e);
                    None
                }
                done => done.and_then(Result::ok),
            };
            sh.set_phase(Phase::Draining);
            let drained = move_on_after(grace, poll_fn(|cx| sh.poll_idle(cx)))
                .await
                .is_some();
            sh.set_phase(Phase::Closed);
            if !drained {
                n.cancel();
            }
            // No suspension since `cancel`: the nursery returns this value.
            Ok(value)
        })
        .await;
        let value = super::ops::no_errors("service", out);
        let mut state = shared.lock();
        ServiceReport {
            value,
            errors: std::mem::take(&mut state.errors),
            completed: state.completed,
            cancelled: state.cancelled,
        }
    }
}

/// A handle to a running [`service`]: spawn background work into it, or shut it down.
///
/// Cheap to clone; hand clones to request handlers.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{service, Service};
///
/// async fn handle_order(svc: Service<String>, id: u32) -> u32 {
///     svc.spawn(async move { Ok(()) }); // send the receipt in the background
///     id * 2
/// }
///
/// # hatchery_smol::run(async {
/// let report = service(Duration::from_secs(1), |svc| async move {
///     let mut answers = Vec::new();
///     for id in 1..=3 {
///         answers.push(handle_order(svc.clone(), id).await);
///     }
///     Ok::<_, String>(answers)
/// })
/// .await;
/// assert_eq!(report.value, Some(vec![2, 4, 6]));
/// assert_eq!(report.completed, 3);
/// # });
/// ```
pub struct Service<E> {
    n: Nursery<Infallible>,
    shared: Arc<Shared<E>>,
}

impl<E> Clone for Service<E> {
    fn clone(&self) -> Self {
        Service {
            n: self.n.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<E> fmt::Debug for Service<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Service")
            .field("phase", &state.phase)
            .field("running", &state.running)
            .field("completed", &state.completed)
            .field("cancelled", &state.cancelled)
            .field("errors", &state.errors.len())
            .finish()
    }
}

impl<E: Send + 'static> Service<E> {
    /// Spawns `work` as a background task of the service.
    ///
    /// If it returns `Err`, the error is recorded for the [`ServiceReport`]; the other
    /// tasks are not affected. Background work has no value to return (hand results on
    /// through a channel if needed).
    ///
    /// # Panics
    ///
    /// If the service no longer accepts work (see [`try_spawn`](Service::try_spawn),
    /// which request handlers racing with a shutdown should prefer). Not when it refuses
    /// it because an enclosing scope has cancelled it, or because the `service` future
    /// was dropped from outside hatchery (C8): that may happen at any moment (between an
    /// `accept` and this `spawn`, say), and what is spawned then would only be cancelled.
    /// `work` is then dropped unpolled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{service, sleep};
    ///
    /// # hatchery_smol::run(async {
    /// let report = service(Duration::from_secs(1), |svc| async move {
    ///     svc.spawn(async { Err("cache update failed".to_string()) });
    ///     svc.spawn(async { sleep(Duration::from_millis(5)).await; Ok(()) }); // not disturbed
    ///     Ok::<_, String>(())
    /// })
    /// .await;
    /// assert_eq!(report.errors, ["cache update failed"]);
    /// assert_eq!((report.completed, report.cancelled), (2, 0));
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, work: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        if let Err(Refused::Closed) = self.offer(Location::caller(), work) {
            panic!(
                "hatchery: {}; use `Service::try_spawn` to handle this",
                ServiceClosed(())
            );
        }
    }

    /// Like [`spawn`](Service::spawn), but returns an error instead of panicking when the
    /// service no longer accepts work. `work` is then dropped unpolled.
    ///
    /// The service accepts work until its shutdown begins; during the grace period it
    /// still accepts work spawned from inside its own tasks (follow-up work of a task that
    /// is finishing: code polled in the task, not threads it starts, `run_blocking`
    /// included); after the grace period, nothing. Nor once an enclosing scope has
    /// cancelled the service (not a graceful shutdown: see [`service`]).
    ///
    /// # Errors
    ///
    /// [`ServiceClosed`] if the service no longer accepts this work.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::service;
    ///
    /// # hatchery_smol::run(async {
    /// service(Duration::from_secs(1), |svc| async move {
    ///     assert!(svc.try_spawn(async { Ok::<_, String>(()) }).is_ok());
    ///     svc.shutdown();
    ///     assert!(svc.try_spawn(async { Ok(()) }).is_err());
    ///     Ok(())
    /// })
    /// .await;
    /// # });
    /// ```
    #[track_caller]
    pub fn try_spawn<F>(&self, work: F) -> Result<(), ServiceClosed>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.offer(Location::caller(), work)
            .map_err(|_| ServiceClosed(()))
    }

    /// [`try_spawn`](Service::try_spawn), saying why work is refused; the work is known
    /// by `site`, its caller's place.
    fn offer<F>(&self, site: &'static Location<'static>, work: F) -> Result<(), Refused>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        {
            let mut state = self.shared.lock();
            // Cancelled by an enclosing scope, the service is closed even while a shield
            // keeps its body alive (the phase moves on only when the body is dropped).
            match state.phase {
                Phase::Accepting => {}
                Phase::Draining if self.inside_work() => {}
                Phase::Cancelled => return Err(Refused::Cancelled),
                Phase::Draining | Phase::Closed => return Err(Refused::Closed),
            }
            if self.n.is_cancelled() {
                return Err(Refused::Cancelled);
            }
            state.running += 1;
        }
        let mut guard = Running {
            shared: self.shared.clone(),
            finished: false,
        };
        let spawned = self.n.try_spawn_at(site, async move {
            let result = work.await;
            guard.finished = true;
            if let Err(e) = result {
                guard.shared.lock().errors.push(e);
            }
            Ok(())
        });
        // The nursery is open while the service accepts work; be safe all the same.
        spawned.map(drop).map_err(|_| Refused::Closed)
    }

    /// Whether the caller runs inside the service's work: in one of its tasks, or in a
    /// scope or nursery opened by one (not in the body).
    fn inside_work(&self) -> bool {
        let service = &self.n.group.node;
        let mut below: Option<Arc<Node>> = None;
        let mut cur = rt::try_current().map(|c| c.node);
        while let Some(node) = cur {
            if Arc::ptr_eq(&node, service) {
                // `below` is the task (or the body's scope) through which we came.
                let body = self.shared.body_node.get();
                return below.is_some_and(|b| body.is_none_or(|body| !Arc::ptr_eq(&b, body)));
            }
            cur = node.parent();
            below = Some(node);
        }
        false
    }

    /// Begins the graceful shutdown: stops accepting work from outside the service,
    /// cancels the body, and gives the running tasks the grace period to finish (see
    /// [`service`]). Idempotent; returns at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{nursery, service, sleep};
    ///
    /// # hatchery_smol::run(async {
    /// let report = service(Duration::from_secs(5), |svc| async move {
    ///     svc.spawn(async { sleep(Duration::from_millis(5)).await; Ok::<_, String>(()) });
    ///     assert_eq!(svc.running(), 1);
    ///     // A signal watcher, say: shuts the service down after a while.
    ///     nursery(|n| async move {
    ///         let watcher = svc.clone();
    ///         n.spawn(async move { sleep(Duration::from_millis(1)).await; watcher.shutdown(); Ok(()) });
    ///         sleep(Duration::from_secs(3600)).await; // serve until shut down
    ///         Ok::<_, String>(())
    ///     })
    ///     .await
    ///     .map_err(|e| e.to_string())
    /// })
    /// .await;
    /// assert!(report.value.is_none()); // the body was cancelled...
    /// assert!(report.is_clean()); // ...and the running work finished in time
    /// # });
    /// ```
    pub fn shutdown(&self) {
        self.shared.set_phase(Phase::Draining);
        self.shared.body.cancel();
    }

    /// Whether the shutdown has begun (by [`shutdown`](Service::shutdown), because the
    /// body returned, or because an enclosing scope cancelled the service).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::service;
    ///
    /// # hatchery_smol::run(async {
    /// service(Duration::from_secs(1), |svc| async move {
    ///     assert!(!svc.is_shutting_down());
    ///     svc.shutdown();
    ///     assert!(svc.is_shutting_down());
    ///     Ok::<_, String>(())
    /// })
    /// .await;
    /// # });
    /// ```
    pub fn is_shutting_down(&self) -> bool {
        self.shared.lock().phase != Phase::Accepting || self.n.is_cancelled()
    }

    /// How many background tasks are running.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{service, sleep};
    ///
    /// # hatchery_smol::run(async {
    /// let report = service(Duration::from_secs(1), |svc| async move {
    ///     assert_eq!(svc.running(), 0);
    ///     svc.spawn(async { sleep(Duration::from_millis(5)).await; Ok::<_, String>(()) });
    ///     assert_eq!(svc.running(), 1);
    ///     Ok(())
    /// })
    /// .await;
    /// assert_eq!(report.completed, 1); // drained at shutdown
    /// # });
    /// ```
    pub fn running(&self) -> usize {
        self.shared.lock().running
    }
}

/// What a [`service`] did, returned once it has shut down.
///
/// Cancelled tasks are counted, not reported as errors: cancelling what is left at the
/// end of the grace period is the normal end of a shutdown.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{service, sleep, ServiceReport};
///
/// # hatchery_smol::run(async {
/// let report: ServiceReport<&str, String> = service(Duration::ZERO, |svc| async move {
///     svc.spawn(async { sleep(Duration::from_secs(3600)).await; Ok(()) });
///     Ok("served")
/// })
/// .await;
/// assert_eq!(report.value, Some("served"));
/// assert!(report.errors.is_empty());
/// // A grace period of zero: the task still running was cancelled at once.
/// assert_eq!((report.completed, report.cancelled), (0, 1));
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ServiceReport<T, E> {
    /// The body's value: `None` if [`Service::shutdown`] cancelled the body, or if the body
    /// failed (its error is in `errors`).
    pub value: Option<T>,
    /// Every error, in the order they happened: of background tasks, and of the body.
    pub errors: Vec<E>,
    /// Background tasks that finished by themselves, with a value or an error.
    pub completed: usize,
    /// Background tasks that were cancelled: still running at the end of the grace period.
    pub cancelled: usize,
}

impl<T, E> ServiceReport<T, E> {
    /// Whether nothing failed and nothing had to be cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::service;
    ///
    /// # hatchery_smol::run(async {
    /// let clean = service(Duration::from_secs(1), |svc| async move {
    ///     svc.spawn(async { Ok::<_, String>(()) });
    ///     Ok(())
    /// })
    /// .await;
    /// assert!(clean.is_clean());
    ///
    /// let failed = service(Duration::from_secs(1), |svc| async move {
    ///     svc.spawn(async { Err("mail server down".to_string()) });
    ///     Ok(())
    /// })
    /// .await;
    /// assert!(!failed.is_clean());
    /// # });
    /// ```
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty() && self.cancelled == 0
    }

    /// The body's value, or every error as [`NurseryError::Failed`] (for `?`). Cancelled
    /// tasks are not errors.
    ///
    /// # Errors
    ///
    /// [`NurseryError::Failed`] if the body or any background task failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::service;
    ///
    /// async fn app() -> anyhow::Result<()> {
    ///     let report = service(Duration::from_secs(1), |svc| async move {
    ///         svc.spawn(async { Err(std::io::Error::other("disk full")) });
    ///         Ok(())
    ///     })
    ///     .await;
    ///     report.into_result()?;
    ///     Ok(())
    /// }
    ///
    /// let err = hatchery_smol::run(app()).unwrap_err();
    /// assert_eq!(err.to_string(), "disk full");
    /// ```
    pub fn into_result(self) -> Result<Option<T>, NurseryError<E>> {
        if self.errors.is_empty() {
            Ok(self.value)
        } else {
            Err(NurseryError::Failed(self.errors))
        }
    }
}

/// The error of [`Service::try_spawn`]: the service is shutting down and accepts no new
/// work.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{service, ServiceClosed};
///
/// # hatchery_smol::run(async {
/// service(Duration::from_secs(1), |svc| async move {
///     svc.shutdown();
///     let err: ServiceClosed = svc.try_spawn(async { Ok::<_, String>(()) }).unwrap_err();
///     assert_eq!(err.to_string(), "the service is shutting down and accepts no new work");
///     Ok(())
/// })
/// .await;
/// # });
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceClosed(());

impl fmt::Debug for ServiceClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceClosed")
    }
}

impl fmt::Display for ServiceClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the service is shutting down and accepts no new work")
    }
}

impl std::error::Error for ServiceClosed {}

/// Why a service refused work.
enum Refused {
    /// Shut down (or shutting down, and the work comes from outside).
    Closed,
    /// Cancelled by an enclosing scope.
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Accepting,
    Draining,
    /// Ended by an enclosing scope's cancellation (not a graceful shutdown).
    Cancelled,
    /// Shut down: the grace period is over.
    Closed,
}

struct State<E> {
    phase: Phase,
    running: usize,
    completed: usize,
    cancelled: usize,
    errors: Vec<E>,
}

struct Shared<E> {
    state: Mutex<State<E>>,
    /// The body's task, woken when the last running task ends.
    idle: AtomicWaker,
    body: CancelHandle,
    /// The body's cancel scope.
    body_node: OnceLock<Arc<Node>>,
}

impl<E> Shared<E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<E>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the phase forward (never back).
    fn set_phase(&self, phase: Phase) {
        let mut state = self.lock();
        state.phase = state.phase.max(phase);
    }

    fn poll_idle(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.idle.register(cx.waker());
        if self.lock().running == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Counts a running task; dropped with the task's future.
struct Running<E> {
    shared: Arc<Shared<E>>,
    finished: bool,
}

impl<E> Drop for Running<E> {
    fn drop(&mut self) {
        let idle = {
            let mut state = self.shared.lock();
            state.running -= 1;
            if self.finished {
                state.completed += 1;
            } else {
                state.cancelled += 1;
            }
            state.running == 0
        };
        if idle {
            self.shared.idle.wake();
        }
    }
}

/// Closes the service when dropped.
struct CloseOnDrop<'a, E>(&'a Shared<E>);

impl<E> Drop for CloseOnDrop<'_, E> {
    fn drop(&mut self) {
        self.0.set_phase(Phase::Cancelled);
    }
}
