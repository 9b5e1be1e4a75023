//! Cancel scopes: `CancelScope`, `move_on_*`, `fail_*` and `shield`.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use crate::node::{self, Hold, Node};
use crate::rt::{self, Runtime};

/// A region of code that can be cancelled as a unit: explicitly through its
/// [`CancelHandle`], or by a deadline.
///
/// Build a scope, optionally take a [handle](CancelScope::handle) to it, then
/// [`run`](CancelScope::run) a future inside it. When the scope is cancelled, the future
/// is dropped at its next suspension point and `run` returns `None`; if it finishes first,
/// `run` returns `Some(value)`.
///
/// Cancellation reaches everything inside the scope: nested scopes and every task spawned
/// into a nursery opened inside it, on any thread. Nested scopes follow trio's rules:
///
/// * The outermost cancelled scope (below the nearest shield) is the one that returns.
///   Inner scopes cancelled by an outer one never return; their
///   [`cancelled_caught`](CancelHandle::cancelled_caught) stays `false`.
/// * A scope whose body finishes without suspending again returns the value even if it
///   was cancelled meanwhile, with `cancelled_caught() == false`.
/// * A relative timeout ([`with_timeout`](CancelScope::with_timeout)) starts when the
///   scope is entered (first polled), not when it is built. A deadline already in the
///   past lets the body run to its first suspension point, then cancels it; so does a
///   scope that was cancelled before it was entered.
/// * A [shield](CancelScope::with_shield) is not cancelled by its ancestors. Its own
///   deadline and `cancel` still work. Use it for cleanup that must finish:
///   [`shield`](crate::shield).
///
/// A scope is entered once: `run` consumes it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{sleep, CancelScope};
///
/// # hatchery_smol::run(async {
/// let scope = CancelScope::new().with_timeout(Duration::from_millis(10));
/// let handle = scope.handle();
/// let out = scope.run(sleep(Duration::from_secs(3600))).await;
/// assert_eq!(out, None);
/// assert!(handle.cancel_called() && handle.cancelled_caught());
/// # });
/// ```
pub struct CancelScope {
    /// The scope's node, made before entry only for a [handle](CancelScope::handle);
    /// otherwise the scope gets it when it is entered (possibly a finished scope's node,
    /// see [`rt::recycle_node`]), so that building and entering a scope nobody else can
    /// see costs no allocation and no reference count.
    node: OnceLock<Arc<Node>>,
    /// The shield and the deadline, while there is no node to hold them.
    shield: bool,
    deadline: Option<Instant>,
    /// A relative timeout: if the deadline is set again (through a handle) before entry,
    /// the timeout is dropped.
    timeout: Option<Duration>,
    /// Whether `with_deadline` set a deadline.
    has_deadline: bool,
}

impl CancelScope {
    /// A scope with no deadline that is not shielded.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::CancelScope;
    ///
    /// # hatchery_smol::run(async {
    /// let scope = CancelScope::new();
    /// let handle = scope.handle();
    /// assert_eq!(handle.deadline(), None);
    /// assert!(!handle.is_shielded());
    /// assert_eq!(scope.run(async { 5 }).await, Some(5));
    /// # });
    /// ```
    pub fn new() -> CancelScope {
        CancelScope {
            node: OnceLock::new(),
            shield: false,
            deadline: None,
            timeout: None,
            has_deadline: false,
        }
    }

    /// Sets an absolute deadline, measured on the runtime's clock
    /// ([`now`](crate::now)).
    ///
    /// A deadline in the past cancels the scope on entry: its body runs to its first
    /// suspension point and is cancelled there.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{now, sleep, CancelScope};
    /// # hatchery_smol::run(async {
    /// let scope = CancelScope::new().with_deadline(now() + Duration::from_millis(5));
    /// assert_eq!(scope.run(sleep(Duration::from_secs(3600))).await, None);
    /// # });
    /// ```
    pub fn with_deadline(mut self, deadline: Instant) -> CancelScope {
        match self.node.get() {
            Some(node) => node.set_deadline(Some(deadline)),
            None => self.deadline = Some(deadline),
        }
        self.timeout = None;
        self.has_deadline = true;
        self
    }

    /// Sets a deadline `timeout` after the moment the scope is entered.
    ///
    /// `Duration::MAX`, or any timeout too large to represent, means no deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{sleep, CancelScope};
    ///
    /// # hatchery_smol::run(async {
    /// let scope = CancelScope::new().with_timeout(Duration::from_millis(5));
    /// let handle = scope.handle();
    /// assert_eq!(handle.deadline(), None); // the clock starts when the scope is entered
    /// assert_eq!(scope.run(sleep(Duration::from_secs(3600))).await, None);
    /// assert!(handle.cancelled_caught());
    ///
    /// let unlimited = CancelScope::new().with_timeout(Duration::MAX);
    /// assert_eq!(unlimited.run(sleep(Duration::from_millis(1))).await, Some(()));
    /// # });
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> CancelScope {
        if self.has_deadline {
            match self.node.get() {
                Some(node) => node.set_deadline(None),
                None => self.deadline = None,
            }
            self.has_deadline = false;
        }
        // A deadline set through a handle from here on wins over the timeout.
        if let Some(node) = self.node.get() {
            node.forget_deadline_set();
        }
        self.timeout = Some(timeout);
        self
    }

    /// Shields the scope (if `shield` is true) from the cancellation of its ancestors.
    ///
    /// The shield is chosen before the scope runs and stays as it is while it runs: there
    /// is no `cancel_scope.shield = True` of trio's to switch it on halfway. Shield the
    /// part of the work that needs it instead, with [`shield`](crate::shield()) or a
    /// shielded scope of its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{move_on_after, sleep, CancelScope};
    /// # hatchery_smol::run(async {
    /// let mut done = false;
    /// move_on_after(Duration::from_millis(1), async {
    ///     // The outer deadline passes during the shielded work, which still finishes.
    ///     CancelScope::new().with_shield(true).run(async {
    ///         sleep(Duration::from_millis(10)).await;
    ///         done = true;
    ///     }).await;
    /// }).await;
    /// assert!(done);
    /// # });
    /// ```
    pub fn with_shield(mut self, shield: bool) -> CancelScope {
        match self.node.get() {
            Some(node) => node.set_shield(shield),
            None => self.shield = shield,
        }
        self
    }

    /// A handle that can cancel this scope or move its deadline from any thread or task.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::{checkpoint, CancelScope};
    ///
    /// # hatchery_smol::run(async {
    /// let scope = CancelScope::new();
    /// let handle = scope.handle();
    /// let out = scope
    ///     .run(async {
    ///         handle.cancel(); // from inside the body
    ///         checkpoint().await; // the body is dropped here
    ///         "not reached"
    ///     })
    ///     .await;
    /// assert_eq!(out, None);
    /// assert!(handle.cancel_called());
    /// # });
    /// ```
    pub fn handle(&self) -> CancelHandle {
        let node = self.node.get_or_init(|| {
            let node = Node::new(self.shield, false);
            if let Some(deadline) = self.deadline {
                // Not through `set_deadline`: a timeout set after this still applies.
                node.init_deadline(deadline);
            }
            node
        });
        CancelHandle { node: node.clone() }
    }

    /// Runs `fut` inside this scope. Returns `None` if this scope was cancelled and
    /// caught the cancellation, `Some(value)` if `fut` finished.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future drops `fut` (and cancels everything it spawned into
    /// nurseries it opened). If an enclosing scope is cancelled while this one runs, the
    /// body is dropped at its next suspension point and this future never completes: the
    /// enclosing scope that was cancelled returns instead.
    ///
    /// It may also be polled in one scope and kept to be awaited after that scope has
    /// finished (`move_on_after(d, &mut this)` then `this.await`, or the loser of a
    /// select). The finished scope then neither cancels it (not its handle, not its
    /// deadline) nor catches anything for it; it follows the scopes around it that still
    /// run. Only if that scope's cancellation reached it while the scope ran (it was
    /// polled again after that, polled through a combinator with wakers of its own, or
    /// had a nursery open inside, as `join` and `race` do) is it cancelled, and it
    /// returns `None` as if this scope had caught it.
    ///
    /// # Panics
    ///
    /// When polled outside a hatchery runtime. When polled after it returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{sleep, CancelScope};
    /// # hatchery_smol::run(async {
    /// assert_eq!(CancelScope::new().run(async { 1 }).await, Some(1));
    /// let scope = CancelScope::new().with_timeout(Duration::from_millis(5));
    /// assert_eq!(scope.run(sleep(Duration::from_secs(3600))).await, None);
    /// # });
    /// ```
    pub fn run<F: IntoFuture>(self, fut: F) -> Run<F::IntoFuture> {
        Run {
            scoped: Scoped::new(self, fut.into_future()),
        }
    }

    /// Like [`run`](CancelScope::run), but reports a cancellation caused by this scope's
    /// deadline as an error: `Err(Elapsed)`. An explicit [`cancel`](CancelHandle::cancel)
    /// of this scope is not an error and gives `Ok(None)`; a finished body gives
    /// `Ok(Some(value))`.
    ///
    /// # Errors
    ///
    /// [`Elapsed`] if this scope's own deadline cancelled the body. An explicit
    /// [`cancel`](CancelHandle::cancel) of this scope gives `Ok(None)`; an enclosing
    /// scope's cancellation makes this future never complete.
    ///
    /// # Cancel safety
    ///
    /// As for [`run`](CancelScope::run).
    ///
    /// # Panics
    ///
    /// When polled outside a hatchery runtime. When polled after it returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{sleep, CancelScope};
    ///
    /// # hatchery_smol::run(async {
    /// let scope = CancelScope::new().with_timeout(Duration::from_millis(10));
    /// let out = scope.fail(sleep(Duration::from_secs(3600))).await;
    /// assert!(out.is_err());
    ///
    /// let scope = CancelScope::new().with_timeout(Duration::from_secs(3600));
    /// scope.handle().cancel();
    /// assert_eq!(scope.fail(sleep(Duration::from_secs(3600))).await, Ok(None));
    /// # });
    /// ```
    pub fn fail<F: IntoFuture>(self, fut: F) -> FailScope<F::IntoFuture> {
        FailScope {
            scoped: Scoped::new(self, fut.into_future()),
        }
    }
}

impl Default for CancelScope {
    fn default() -> Self {
        CancelScope::new()
    }
}

impl fmt::Debug for CancelScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node.get() {
            Some(node) => CancelHandle { node: node.clone() }.fmt_fields("CancelScope", f),
            // Nobody could have cancelled it yet.
            None => f
                .debug_struct("CancelScope")
                .field("deadline", &self.deadline)
                .field("shield", &self.shield)
                .field("cancel_called", &false)
                .field("cancelled_caught", &false)
                .finish(),
        }
    }
}

/// Controls a [`CancelScope`] from anywhere: cancel it, move its deadline, read its state.
///
/// Handles are cheap to clone and can be sent to other threads and tasks. A handle keeps
/// working after its scope has finished, without effect on anything that runs: `cancel`
/// then only makes [`cancel_called`](CancelHandle::cancel_called) true (as in trio), and
/// `set_deadline` only changes what [`deadline`](CancelHandle::deadline) reports. A handle
/// keeps its scope's bookkeeping (and that of the task around it) allocated; drop it
/// when done.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{nursery, sleep, CancelScope};
///
/// # hatchery_smol::run(async {
/// let scope = CancelScope::new();
/// let handle = scope.handle();
/// let out = nursery(|n| async move {
///     n.spawn(async move {
///         sleep(Duration::from_millis(5)).await;
///         handle.cancel(); // from another task
///         Ok::<_, std::io::Error>(())
///     });
///     Ok(scope.run(sleep(Duration::from_secs(3600))).await)
/// })
/// .await
/// .unwrap();
/// assert_eq!(out, None);
/// # });
/// ```
#[derive(Clone)]
pub struct CancelHandle {
    node: Arc<Node>,
}

impl CancelHandle {
    /// Cancels the scope and everything inside it. Idempotent; works before the scope is
    /// entered (the body then runs to its first suspension point and is cancelled there)
    /// and after it has finished (no effect).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::{checkpoint, CancelScope};
    /// # hatchery_smol::run(async {
    /// let scope = CancelScope::new();
    /// let handle = scope.handle();
    /// handle.cancel(); // before entry: the body runs to its first suspension point
    /// assert_eq!(scope.run(async { checkpoint().await; 1 }).await, None);
    /// assert!(handle.cancel_called() && handle.cancelled_caught());
    /// # });
    /// ```
    pub fn cancel(&self) {
        self.node.cancel(node::EXPLICIT);
    }

    /// Whether the scope was cancelled, by [`cancel`](CancelHandle::cancel) or by its
    /// deadline. Sticky: once true it stays true. Cancellation inherited from an
    /// enclosing scope does not count.
    ///
    /// A deadline counts once the scope has seen it pass: on entry, or when the scope
    /// checks its timer, after each poll of its body that leaves the body pending (a body
    /// that finishes in the poll where its deadline passes finishes uncancelled). Trio
    /// also reads the clock here; hatchery does not, so read
    /// [`deadline`](CancelHandle::deadline) against [`now`](crate::now) to know whether
    /// it has passed before the scope has noticed.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::{checkpoint, CancelScope};
    ///
    /// # hatchery_smol::run(async {
    /// let (outer, inner) = (CancelScope::new(), CancelScope::new());
    /// let (outer_h, inner_h) = (outer.handle(), inner.handle());
    /// assert!(!outer_h.cancel_called());
    /// let out = outer
    ///     .run(inner.run(async {
    ///         outer_h.cancel();
    ///         checkpoint().await;
    ///     }))
    ///     .await;
    /// assert_eq!(out, None);
    /// assert!(outer_h.cancel_called());
    /// assert!(!inner_h.cancel_called()); // inherited from the outer scope: does not count
    /// # });
    /// ```
    pub fn cancel_called(&self) -> bool {
        self.node.reason() != node::NONE
    }

    /// Whether this scope ended its body because of its own cancellation (and so returned
    /// `None`). False while the scope runs, if the body finished, or if an enclosing scope
    /// was the one that caught the cancellation.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{sleep, CancelScope};
    ///
    /// # hatchery_smol::run(async {
    /// let outer = CancelScope::new().with_timeout(Duration::from_millis(5));
    /// let inner = CancelScope::new();
    /// let (outer_h, inner_h) = (outer.handle(), inner.handle());
    /// let out = outer.run(inner.run(sleep(Duration::from_secs(3600)))).await;
    /// assert_eq!(out, None);
    /// assert!(outer_h.cancelled_caught());
    /// assert!(!inner_h.cancelled_caught()); // the outer scope caught it
    ///
    /// let finished = CancelScope::new();
    /// let h = finished.handle();
    /// finished.run(async {}).await;
    /// assert!(!h.cancelled_caught());
    /// # });
    /// ```
    pub fn cancelled_caught(&self) -> bool {
        self.node.caught()
    }

    /// The scope's absolute deadline, if it has one. A relative timeout is only known as a
    /// deadline once the scope has been entered.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{now, CancelScope};
    ///
    /// # hatchery_smol::run(async {
    /// let at = now() + Duration::from_secs(10);
    /// assert_eq!(CancelScope::new().with_deadline(at).handle().deadline(), Some(at));
    ///
    /// let scope = CancelScope::new().with_timeout(Duration::from_secs(10));
    /// let handle = scope.handle();
    /// assert_eq!(handle.deadline(), None); // not entered yet
    /// let entered_at = now();
    /// scope
    ///     .run(async { assert!(handle.deadline().unwrap() >= entered_at + Duration::from_secs(10)) })
    ///     .await;
    /// # });
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline()
    }

    /// Sets or moves the deadline, also while the scope runs. An earlier deadline that has
    /// already passed cancels the scope at its next suspension point (the scope reads
    /// the clock when it is next polled; use [`cancel`](CancelHandle::cancel) to cancel
    /// at once); a later one postpones it; `None` removes it. Has no effect on a scope
    /// that was already cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::time::Duration;
    /// use hatchery::testing::virtual_time;
    /// use hatchery::{checkpoint, now, sleep, CancelScope};
    /// # hatchery_smol::run(virtual_time(async {
    /// let scope = CancelScope::new().with_timeout(Duration::from_secs(1));
    /// let handle = scope.handle();
    /// let out = scope.run(async {
    ///     handle.set_deadline(now() + Duration::from_secs(3600)); // postpone
    ///     sleep(Duration::from_secs(10)).await;
    ///     "finished"
    /// }).await;
    /// assert_eq!(out, Some("finished"));
    ///
    /// // A deadline that has already passed cancels at the next suspension point.
    /// let scope = CancelScope::new();
    /// let handle = scope.handle();
    /// let steps = Cell::new(0);
    /// let out = scope.run(async {
    ///     handle.set_deadline(now()); // due now
    ///     assert!(!handle.cancel_called()); // not cancelled yet (`cancel` would be)
    ///     steps.set(1);
    ///     checkpoint().await; // the scope reads the clock: cancelled here
    ///     steps.set(2);
    /// }).await;
    /// assert_eq!((out, steps.get()), (None, 1));
    /// assert!(handle.cancel_called());
    ///
    /// // A cancelled scope stays cancelled: removing the deadline does not undo it.
    /// let scope = CancelScope::new().with_deadline(now());
    /// let handle = scope.handle();
    /// let out = scope.run(async {
    ///     handle.set_deadline(None);
    ///     checkpoint().await;
    /// }).await;
    /// assert_eq!(out, None);
    /// # }));
    /// ```
    pub fn set_deadline(&self, deadline: impl Into<Option<Instant>>) {
        self.node.set_deadline(deadline.into());
    }

    /// Whether the scope is shielded from its ancestors' cancellation.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::CancelScope;
    ///
    /// assert!(CancelScope::new().with_shield(true).handle().is_shielded());
    /// assert!(!CancelScope::new().handle().is_shielded());
    /// ```
    pub fn is_shielded(&self) -> bool {
        self.node.is_shield()
    }

    fn fmt_fields(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("deadline", &self.deadline())
            .field("shield", &self.is_shielded())
            .field("cancel_called", &self.cancel_called())
            .field("cancelled_caught", &self.cancelled_caught())
            .finish()
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_fields("CancelHandle", f)
    }
}

/// A scope's timer: armed for its node's deadline, re-armed when the deadline moves.
///
/// A scope that no longer needs its timer hands it to the next scope or sleep armed in
/// the same task poll ([`rt::RtTimer::release`], [`rt::timer_at`]), which moves it with
/// `Sleep::reset` instead of making a new one: a loop of timeouts keeps one timer.
pub(crate) struct Timer {
    timer: Option<rt::RtTimer>,
    /// The deadline the timer was last set up for (`None` before the first poll).
    seen: Option<Option<Instant>>,
    /// The clock reading taken on entry, reused the first time the timer is armed.
    now: Option<Instant>,
}

impl Timer {
    pub(crate) fn new() -> Timer {
        Timer {
            timer: None,
            seen: None,
            now: None,
        }
    }

    /// Checks the node's deadline: cancels the node if it has passed, otherwise makes sure
    /// a timer will wake this task when it does.
    pub(crate) fn poll(&mut self, node: &Arc<Node>, rt: &dyn Runtime, cx: &mut Context<'_>) {
        let deadline = node.deadline();
        if self.seen != Some(deadline) {
            self.seen = Some(deadline);
            // The entry's reading, for a timeout (it saves reading the clock again): a
            // deadline it finds passed has passed. One that passed since (a body that
            // blocked its thread) is seen when the timer fires.
            let now = self.now.take();
            let Some(deadline) = deadline else {
                self.release();
                return;
            };
            let now = now.unwrap_or_else(|| rt.now());
            if deadline <= now {
                node.cancel(node::DEADLINE);
                return;
            }
            let wake_at = rt::wake_at(rt, deadline, now);
            match &mut self.timer {
                Some(timer) => timer.sleep().reset(wake_at),
                None => self.timer = Some(rt::timer_at(rt, wake_at)),
            }
        }
        while let Some(timer) = &mut self.timer {
            if timer.sleep().poll(cx).is_pending() {
                return;
            }
            let deadline = node.deadline();
            let now = rt.now();
            match deadline {
                Some(d) if d <= now => {
                    node.cancel(node::DEADLINE);
                    return;
                }
                Some(d) => timer.sleep().reset(rt::wake_at(rt, d, now)),
                None => self.release(),
            }
        }
    }

    /// Lets go of the timer of a scope that is cancelled: its deadline no longer
    /// matters (and a virtual clock must not jump to it). Armed again if polled after
    /// all (a kept scope future whose cancelled ancestor has finished).
    pub(crate) fn disarm(&mut self) {
        self.release();
        self.seen = None;
    }

    /// Lets go of the timer, for the next scope armed in this task poll.
    pub(crate) fn release(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.release();
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.release();
    }
}

/// How a scope's body ended.
pub(crate) enum Outcome<T> {
    /// The body finished with a value.
    Done(T),
    /// This scope was cancelled and caught it; `reason` says why.
    Caught(u8),
}

pin_project! {
    /// The engine shared by every scope future.
    pub(crate) struct Scoped<F> {
        #[pin]
        body: Option<F>,
        // Before entry, the node a handle made, if any; from entry until the scope is
        // done, always set; taken when the scope is done (see `rt::recycle_node`).
        node: Option<Arc<Node>>,
        // The shield and deadline the node gets on entry, if it is made then.
        shield: bool,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
        timer: Timer,
        hold: Option<Hold>,
        entered: bool,
        done: bool,
        // A `CancelHandle` exists: the scope can be cancelled from elsewhere, so its
        // waker is always registered.
        shared: bool,
        // The node's waker was registered: its node is not reused, since it would keep
        // the waker.
        registered: bool,
    }

    impl<F> PinnedDrop for Scoped<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            // Drop the body (and any hold inside it) before leaving the tree.
            this.body.set(None);
            this.hold.take();
            if let Some(node) = this.node {
                node.detach_unless_kept();
                node.finish();
            }
        }
    }
}

impl<F: Future> Scoped<F> {
    pub(crate) fn new(scope: CancelScope, body: F) -> Self {
        let node = scope.node.into_inner();
        // A node made by a handle holds the shield and the deadline itself, and the
        // handle may have changed them since.
        let deadline = if node.is_some() { None } else { scope.deadline };
        Scoped {
            body: Some(body),
            node,
            shield: scope.shield,
            deadline,
            timeout: scope.timeout,
            timer: Timer::new(),
            hold: None,
            entered: false,
            done: false,
            shared: true,
            registered: false,
        }
    }

    /// Whether the body was dropped because an enclosing scope was cancelled (this scope
    /// then never completes; the enclosing one ends the work).
    pub(crate) fn stalled(&self) -> bool {
        self.entered && !self.done && self.body.is_none()
    }

    /// Stalled, but the enclosing scope that cancelled it has finished since (a scope
    /// future kept past the scope it was first polled in): nothing will drop it.
    fn orphaned(&self) -> bool {
        self.stalled()
            && self
                .node
                .as_ref()
                .is_some_and(|node| !node.outer_cancelled(crate::time::now()))
    }

    pub(crate) fn poll_scoped(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Outcome<F::Output>> {
        let mut this = self.project();
        assert!(
            !*this.done,
            "hatchery: scope future polled after completion"
        );
        if !*this.entered {
            *this.entered = true;
            let made_by_handle = this.node.is_some();
            let slot = &mut *this.node;
            let (timer, hold, shared) = (&mut *this.timer, &mut *this.hold, &mut *this.shared);
            let (shield, timeout) = (*this.shield, this.timeout.take());
            // Set by `with_deadline` (never together with a timeout).
            let mut deadline = this.deadline.take();
            rt::with_current(|parent| {
                let parent = parent.expect(rt::NO_RUNTIME);
                if let Some(timeout) = timeout {
                    // Only if no deadline was set through a handle since `with_timeout`.
                    if !slot.as_ref().is_some_and(|node| node.deadline_was_set()) {
                        let now = parent.rt.now();
                        timer.now = Some(now);
                        // `None` on overflow: a timeout too large to represent is no
                        // deadline.
                        deadline = now.checked_add(timeout);
                    }
                }
                let node = match slot.take() {
                    // A handle made the node: it is set up through the handle's rules.
                    Some(mut node) => {
                        *shared = !Node::enter(&mut node, parent.node, deadline);
                        node
                    }
                    // Nobody else has seen this scope: it takes a finished scope's node
                    // if one under the same parent is at hand, or a new one.
                    None => {
                        *shared = false;
                        match parent.take_spare_node() {
                            Some(node) => {
                                node.reenter(shield, deadline);
                                node
                            }
                            None => Node::entered(parent.node, shield, deadline),
                        }
                    }
                };
                if node.is_shield() {
                    *hold = Some(Hold::new(parent.node));
                }
                *slot = Some(node);
            });
            // A deadline passed already: cancelled on entry, as a scope cancelled before
            // it is entered is (trio's rule), so the body sees it from its first line,
            // and stops at its first suspension point. (A timeout of more than zero,
            // counted from the clock just read, has not passed: no check.)
            if made_by_handle || deadline.is_some() && timeout.is_none_or(|t| t.is_zero()) {
                let node = this.node.as_ref().expect("node of an entered scope");
                cancel_if_passed(node, made_by_handle, deadline, this.timer.now);
            }
        } else {
            if let Some(hold) = this.hold.as_ref() {
                // A shield kept and polled under another scope (or task) than before
                // holds that one now: its cancellation must wait for us, as the first
                // one's did, and the first one's no longer does.
                let moved =
                    rt::with_current(|c| c.filter(|c| !hold.is_on(c.node)).map(|c| c.node.clone()));
                if let Some(node) = moved {
                    drop(this.hold.replace(Hold::new(&node)));
                }
            }
            let node = this.node.as_ref().expect("node of an entered scope");
            if !node.is_linked() {
                // Our parent's cancellation does not reach us through its child list.
                node.refresh();
            }
            if node.should_drop() {
                // Cancelled while suspended: drop the body where it stands.
                this.timer.disarm();
                return finish_cancelled(
                    this.body,
                    this.hold,
                    this.node,
                    *this.registered,
                    this.done,
                );
            }
        }
        let slot = &mut *this.node;
        let node = slot.as_mut().expect("node of an entered scope");
        let was_cancelled = node.is_marked();
        let body = this.body.as_mut().as_pin_mut().expect("body present");
        // The body runs with this scope as the innermost one.
        let (poll, by_parent) = Hold::release_on_unwind(this.hold, || {
            rt::enter_node(node, cx.waker(), || body.poll(cx))
        });
        let node = &*node;
        if let Poll::Ready(v) = poll {
            this.body.set(None);
            this.hold.take();
            *this.done = true;
            node.detach_unless_kept();
            node.finish();
            this.timer.release();
            recycle(slot, *this.registered);
            return Poll::Ready(Outcome::Done(v));
        }
        // Who wakes us when an enclosing scope is cancelled: polled by our parent's own
        // runner, its wake-up reaches us and we `refresh` on the next poll; polled
        // through a combinator with other wakers (or moved to another task), the parent
        // must find us in its child list.
        if !by_parent {
            node.link_scope();
        }
        let linked = node.is_linked();
        // Registering only now is enough: a cancellation from here on wakes us, and one
        // that came earlier is seen by `should_drop` below. Without a handle and a link,
        // only our deadline cancels us (here, or from a scope inside that finds it
        // passed), and our own timer wakes the task for it.
        if linked || *this.shared {
            node.register(cx.waker());
            *this.registered = true;
        }
        let cancelled = node.is_cancelled() || {
            let timer = &mut *this.timer;
            rt::with_current(|c| timer.poll(node, &**c.expect(rt::NO_RUNTIME).rt, cx));
            node.is_marked()
        };
        if cancelled {
            this.timer.disarm();
            if !node.has_holds() {
                return finish_cancelled(this.body, this.hold, slot, *this.registered, this.done);
            }
            // Something inside must finish first. Its hold may go elsewhere (a kept
            // shield polled from now on in another scope or task), which then wakes us:
            // register on every such poll (a wake-up takes the waker out).
            node.register(cx.waker());
            *this.registered = true;
            if !node.has_holds() {
                return finish_cancelled(this.body, this.hold, slot, *this.registered, this.done);
            }
        }
        if !was_cancelled && node.is_marked() {
            // Cancelled during this poll (by our deadline, or a `cancel` while no waker
            // was registered), but something inside must finish first (a shielded
            // cleanup, a nursery draining its children). Scopes in the body that are not
            // linked learn of it only when polled: poll again.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// Cancels a scope being entered whose deadline has passed already (see the entry in
/// `poll_scoped`). Out of line: most scopes have a timeout, which cannot have passed.
#[cold]
#[inline(never)]
fn cancel_if_passed(
    node: &Arc<Node>,
    made_by_handle: bool,
    deadline: Option<Instant>,
    entry_now: Option<Instant>,
) {
    let deadline = if made_by_handle {
        node.deadline()
    } else {
        deadline
    };
    if let Some(d) = deadline {
        // A reading of our own is not kept for the timer's first arming, which comes
        // after the body's first poll: a deadline that passes meanwhile must be found
        // passed then.
        let now = entry_now.unwrap_or_else(|| rt::current().rt.now());
        if d <= now {
            node.cancel(node::DEADLINE);
        }
    }
}

/// Lets a done scope's node go: for the next scope entered under the same parent in this
/// task poll, if nothing else holds it ([`rt::recycle_node`]).
fn recycle(slot: &mut Option<Arc<Node>>, registered: bool) {
    if let Some(node) = slot.take() {
        if !registered {
            rt::recycle_node(node);
        }
    }
}

/// Drops a cancelled body. Returns `Ready(Caught)` if this scope catches the cancellation,
/// or stays pending forever if an enclosing scope will.
///
/// A scope future kept past the scope it was first polled in (see [`Node::finish`]) may
/// have been reached by that scope's cancellation, which nothing can catch any more: it
/// returns as cancelled itself, with that scope's reason.
fn finish_cancelled<F, T>(
    mut body: Pin<&mut Option<F>>,
    hold: &mut Option<Hold>,
    slot: &mut Option<Arc<Node>>,
    registered: bool,
    done: &mut bool,
) -> Poll<Outcome<T>> {
    let node = slot.as_ref().expect("node of an entered scope");
    // Cancelled by an ancestor whose cancellation has not reached our own flag (we are not
    // in its child list): set it, so that if we are kept and polled after that ancestor
    // has finished, we still know we were cancelled.
    node.refresh();
    rt::drop_cancelled_body(|| body.set(None));
    hold.take();
    let own = node.reason();
    // Cancelled itself, or by a finished ancestor (whose reason then counts).
    if !node.outer_cancelled(crate::time::now()) {
        let reason = if own != node::NONE {
            own
        } else {
            node.orphan_reason()
        };
        node.set_caught();
        *done = true;
        node.detach();
        node.finish();
        recycle(slot, registered);
        Poll::Ready(Outcome::Caught(reason))
    } else {
        // An outer scope was cancelled: it is the one that returns, and it drops us.
        Poll::Pending
    }
}

pin_project! {
    /// Future returned by [`CancelScope::run`], [`move_on_after`] and [`move_on_at`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::futures::Run;
    /// use hatchery::testing::virtual_time;
    /// use hatchery::{move_on_after, sleep};
    ///
    /// hatchery_smol::run(virtual_time(async {
    ///     let run: Run<_> = move_on_after(Duration::from_secs(60), sleep(Duration::from_secs(1)));
    ///     sleep(Duration::from_secs(3600)).await; // the timeout has not started yet...
    ///     assert_eq!(run.await, Some(())); // ...it runs from the first poll
    /// }));
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct Run<F> {
        #[pin]
        scoped: Scoped<F>,
    }
}

impl<F: Future> Future for Run<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().scoped.poll_scoped(cx).map(|o| match o {
            Outcome::Done(v) => Some(v),
            Outcome::Caught(_) => None,
        })
    }
}

pin_project! {
    /// Future returned by [`CancelScope::fail`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::futures::FailScope;
    /// use hatchery::CancelScope;
    ///
    /// # hatchery_smol::run(async {
    /// let scope = CancelScope::new().with_timeout(Duration::from_secs(5));
    /// let fut: FailScope<_> = scope.fail(async { 1 + 1 });
    /// assert_eq!(fut.await, Ok(Some(2))); // finished in time
    /// # });
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct FailScope<F> {
        #[pin]
        scoped: Scoped<F>,
    }
}

impl<F: Future> Future for FailScope<F> {
    type Output = Result<Option<F::Output>, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().scoped.poll_scoped(cx).map(|o| match o {
            Outcome::Done(v) => Ok(Some(v)),
            Outcome::Caught(node::DEADLINE) => Err(Elapsed(())),
            Outcome::Caught(_) => Ok(None),
        })
    }
}

pin_project! {
    /// Future returned by [`fail_after`] and [`fail_at`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::fail_after;
    /// use hatchery::futures::Fail;
    ///
    /// async fn answer() -> anyhow::Result<u32> {
    ///     let fut: Fail<_> = fail_after(Duration::from_secs(5), async { 42 });
    ///     Ok(fut.await?) // `Elapsed` is an error: `?` converts it
    /// }
    ///
    /// assert_eq!(hatchery_smol::run(answer()).unwrap(), 42);
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct Fail<F> {
        #[pin]
        scoped: Scoped<F>,
    }
}

impl<F: Future> Future for Fail<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().scoped.poll_scoped(cx).map(|o| match o {
            Outcome::Done(v) => Ok(v),
            // Nobody else holds this scope's handle, so only its deadline can cancel it
            // (or, kept past the scope it was first polled in, that scope's cancellation).
            Outcome::Caught(_) => Err(Elapsed(())),
        })
    }
}

pin_project! {
    /// Future returned by [`shield`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::futures::Shield;
    /// use hatchery::{move_on_after, shield, sleep};
    ///
    /// # hatchery_smol::run(async {
    /// let out = move_on_after(Duration::from_millis(5), async {
    ///     let cleanup: Shield<_> = shield(async {
    ///         sleep(Duration::from_millis(20)).await;
    ///         "closed"
    ///     });
    ///     cleanup.await // finishes although the deadline passes meanwhile
    /// })
    /// .await;
    /// // The body finished without suspending again: its value comes out.
    /// assert_eq!(out, Some("closed"));
    /// # });
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct Shield<F> {
        #[pin]
        scoped: Scoped<F>,
    }
}

impl<F: Future> Future for Shield<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().scoped.poll_scoped(cx).map(|o| match o {
            Outcome::Done(v) => v,
            Outcome::Caught(_) => unreachable!("nothing can cancel an anonymous shield"),
        })
    }
}

macro_rules! debug_future {
    ($($name:ident),*) => {$(
        impl<F> fmt::Debug for $name<F> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    )*};
}
debug_future!(Run, FailScope, Fail, Shield);

/// The error of [`fail_after`], [`fail_at`] and [`CancelScope::fail`]: the scope's
/// deadline passed before the work finished.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{fail_after, sleep, Elapsed};
///
/// # hatchery_smol::run(async {
/// let err: Elapsed = fail_after(Duration::from_millis(5), sleep(Duration::from_secs(3600)))
///     .await
///     .unwrap_err();
/// assert_eq!(err.to_string(), "deadline elapsed");
/// let err: Box<dyn std::error::Error + Send + Sync> = err.into(); // a std error
/// assert_eq!(err.to_string(), "deadline elapsed");
/// # });
/// ```
///
/// In code that returns `io::Result`, `?` turns it into an [`io::Error`](std::io::Error)
/// of kind `TimedOut`:
///
/// ```
/// use std::io;
/// use std::time::Duration;
/// use hatchery::{fail_after, sleep};
///
/// async fn read_config() -> io::Result<String> {
///     sleep(Duration::from_secs(3600)).await; // a slow disk
///     Ok(String::new())
/// }
///
/// async fn load() -> io::Result<String> {
///     fail_after(Duration::from_millis(5), read_config()).await?
/// }
///
/// # hatchery_smol::run(async {
/// assert_eq!(load().await.unwrap_err().kind(), io::ErrorKind::TimedOut);
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    /// An error of kind [`TimedOut`](std::io::ErrorKind::TimedOut) that carries the
    /// `Elapsed` (so it can be downcast back).
    fn from(elapsed: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, elapsed)
    }
}

/// Runs `fut` with a timeout; gives up and returns `None` if it does not finish within
/// `timeout` of being first polled.
///
/// `Duration::MAX` means no timeout. Like Python's `anyio.move_on_after`.
///
/// # Cancel safety
///
/// Dropping the future drops `fut`. If an enclosing scope is cancelled while this waits,
/// `fut` is dropped at its next suspension point and this future never completes (the
/// cancelled enclosing scope returns instead).
///
/// # Panics
///
/// When polled outside a hatchery runtime. When polled after it returned.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{move_on_after, sleep};
///
/// # hatchery_smol::run(async {
/// let fast = move_on_after(Duration::from_secs(5), async { 42 }).await;
/// assert_eq!(fast, Some(42));
///
/// let slow = move_on_after(Duration::from_millis(10), sleep(Duration::from_secs(3600))).await;
/// assert_eq!(slow, None);
/// # });
/// ```
pub fn move_on_after<F: IntoFuture>(timeout: Duration, fut: F) -> Run<F::IntoFuture> {
    CancelScope::new().with_timeout(timeout).run(fut)
}

/// Runs `fut` until `deadline` (on the runtime's clock); returns `None` if it is not done
/// by then.
///
/// # Cancel safety
///
/// As for [`move_on_after`].
///
/// # Panics
///
/// When polled outside a hatchery runtime. When polled after it returned.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{move_on_at, now, sleep};
///
/// # hatchery_smol::run(async {
/// let deadline = now() + Duration::from_millis(10);
/// assert_eq!(move_on_at(deadline, sleep(Duration::from_secs(3600))).await, None);
/// # });
/// ```
pub fn move_on_at<F: IntoFuture>(deadline: Instant, fut: F) -> Run<F::IntoFuture> {
    CancelScope::new().with_deadline(deadline).run(fut)
}

/// Runs `fut` with a timeout; fails with [`Elapsed`] if it does not finish within
/// `timeout` of being first polled.
///
/// Only this call's own deadline produces `Elapsed`: if an enclosing scope is cancelled,
/// that scope returns instead and this future never completes. There is no handle to the
/// scope, so it cannot be cancelled explicitly; use [`CancelScope::fail`] for that.
///
/// # Errors
///
/// [`Elapsed`] if this call's own deadline passed before `fut` finished; never for an
/// enclosing scope's cancellation, which makes this future never complete.
/// (Except in a future kept past the scope it was first polled in, which that scope's
/// cancellation reached while it ran: nothing is left to catch it, and this returns
/// `Elapsed`; see [`CancelScope::run`].)
///
/// # Cancel safety
///
/// As for [`move_on_after`].
///
/// # Panics
///
/// When polled outside a hatchery runtime. When polled after it returned.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{fail_after, sleep, Elapsed};
///
/// # hatchery_smol::run(async {
/// let r = fail_after(Duration::from_millis(10), sleep(Duration::from_secs(3600))).await;
/// assert!(matches!(r, Err(Elapsed { .. })));
/// assert_eq!(fail_after(Duration::from_secs(1), async { 7 }).await, Ok(7));
/// # });
/// ```
pub fn fail_after<F: IntoFuture>(timeout: Duration, fut: F) -> Fail<F::IntoFuture> {
    Fail {
        scoped: Scoped::new(CancelScope::new().with_timeout(timeout), fut.into_future()),
    }
}

/// Runs `fut` until `deadline`; fails with [`Elapsed`] if it is not done by then.
///
/// # Errors
///
/// [`Elapsed`] if `deadline` passed before `fut` finished; never for an enclosing
/// scope's cancellation, which makes this future never complete.
/// (Except in a future kept past the scope it was first polled in, which that scope's
/// cancellation reached while it ran: nothing is left to catch it, and this returns
/// `Elapsed`; see [`CancelScope::run`].)
///
/// # Cancel safety
///
/// As for [`move_on_after`].
///
/// # Panics
///
/// When polled outside a hatchery runtime. When polled after it returned.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::testing::{elapsed, virtual_time};
/// use hatchery::{fail_at, now, sleep, Elapsed};
///
/// # hatchery_smol::run(virtual_time(async {
/// let r = fail_at(now() + Duration::from_secs(1), async { "done" }).await;
/// assert_eq!(r, Ok("done"));
///
/// let deadline = now() + Duration::from_secs(10);
/// let r = fail_at(deadline, sleep(Duration::from_secs(3600))).await;
/// assert!(matches!(r, Err(Elapsed { .. })));
/// assert_eq!(elapsed(), Duration::from_secs(10)); // it gave up at the deadline
/// # }));
/// ```
pub fn fail_at<F: IntoFuture>(deadline: Instant, fut: F) -> Fail<F::IntoFuture> {
    Fail {
        scoped: Scoped::new(
            CancelScope::new().with_deadline(deadline),
            fut.into_future(),
        ),
    }
}

/// Runs `fut` protected from the cancellation of enclosing scopes: the way to write async
/// cleanup inside work that is being cancelled.
///
/// Scopes inside `fut` still work (give cleanup its own timeout with
/// [`move_on_after`]), and nurseries opened inside it are protected too. When the shield
/// ends inside a scope that is still cancelled, the cancellation lands at the next
/// suspension point after it.
///
/// # Cancel safety
///
/// Dropping the future drops `fut`: a shield protects against hatchery cancellation, not
/// against a foreign owner dropping it. An enclosing scope that is cancelled waits for
/// the shielded work to finish before it ends. (So this is anyio's shielded
/// `CancelScope`, not `asyncio.shield`, whose caller stops waiting while the work runs
/// on: for that, spawn the work into a nursery and wait for its handle with a limit.)
///
/// It holds the scopes it is polled in: kept and awaited later under another scope (the
/// loser of a select, moved into a timeout, sent to another task), it holds that one
/// from then on, and so does everything inside it (a nursery, a `finally`). Kept
/// *without* being polled while an enclosing scope is cancelled, it keeps that scope
/// from ending its body until it is polled again or dropped, so code that awaits
/// something else meanwhile waits for good: poll it in every round of the loop, or drop
/// it.
///
/// # Panics
///
/// When polled outside a hatchery runtime. When polled after it returned.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{move_on_after, shield, sleep};
///
/// # hatchery_smol::run(async {
/// let mut closed = false;
/// let out = move_on_after(Duration::from_millis(5), async {
///     // The deadline passes while the cleanup runs; the cleanup still finishes...
///     shield(async {
///         sleep(Duration::from_millis(20)).await;
///         closed = true;
///     })
///     .await;
///     // ...and the cancellation lands at the next suspension point.
///     sleep(Duration::from_secs(3600)).await;
///     unreachable!();
/// })
/// .await;
/// assert_eq!(out, None);
/// assert!(closed);
/// # });
/// ```
pub fn shield<F: IntoFuture>(fut: F) -> Shield<F::IntoFuture> {
    Shield {
        scoped: Scoped::new(CancelScope::new().with_shield(true), fut.into_future()),
    }
}

/// Runs `work`, then `cleanup`, and makes sure `cleanup` runs to its end even when `work`
/// is cancelled: Python's `try: ... finally:` with a shielded `finally` block.
///
/// * If `work` finishes, `cleanup` runs (shielded), then its value is returned.
/// * If an enclosing scope is cancelled, `work` is dropped at its suspension point,
///   `cleanup` runs to its end, shielded from that cancellation, and then the cancellation
///   continues: this future never completes and the cancelled scope returns.
///
/// Give the cleanup its own limit with [`move_on_after`] inside it if it might hang.
/// `cleanup` does not run if `work` panics (only `Drop` runs then).
///
/// # Cancel safety
///
/// Dropping the future from outside hatchery drops `work` and `cleanup` without running
/// the cleanup. Cancellation of an enclosing scope is handled as described above. It
/// holds the scopes of its first poll until its cleanup is done: one kept without being
/// polled keeps a cancelled enclosing scope from ending its body until it is polled
/// again or dropped. Like a scope, it belongs to the scope of its first poll: moved into
/// another (passed by value to a timeout, sent to another task), it follows only the
/// first one's cancellation, and the new one, once cancelled, drops it as from outside
/// hatchery.
///
/// # Panics
///
/// When polled outside a hatchery runtime. When kept past the scope it was first polled
/// in (see [`CancelScope::run`]) and awaited after that scope, cancelled while it ran,
/// has finished: its cleanup has run, and it has no value to return.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::time::Duration;
/// use hatchery::{finally, move_on_after, sleep};
///
/// # hatchery_smol::run(async {
/// let closed = AtomicBool::new(false);
/// let out = move_on_after(Duration::from_millis(5), finally(
///     sleep(Duration::from_secs(3600)), // the work: cancelled after 5 ms
///     async {
///         sleep(Duration::from_millis(10)).await; // async cleanup, e.g. `conn.close()`
///         closed.store(true, Ordering::SeqCst);
///     },
/// ))
/// .await;
/// assert_eq!(out, None);
/// assert!(closed.load(Ordering::SeqCst));
/// # });
/// ```
///
/// The cleanup does not learn how the work ended. For a cleanup that depends on it
/// (Python's `except Cancelled:`, a rollback unless the work committed), let the work
/// say so through a flag both futures share (an `AtomicBool`, so that the `finally` can
/// run in a spawned task, which must be `Send`; in the root future a `Cell` does too).
/// Both futures exist at once, so they cannot both borrow one resource mutably: for
/// work on a resource that the cleanup then closes, use [`finally_with`].
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
/// use std::time::Duration;
/// use hatchery::{finally, move_on_after, sleep};
///
/// # hatchery_smol::run(async {
/// let committed = AtomicBool::new(false);
/// let rolled_back = AtomicBool::new(false);
/// let out = move_on_after(Duration::from_millis(5), finally(
///     async {
///         sleep(Duration::from_secs(3600)).await; // cancelled before it commits
///         committed.store(true, SeqCst);
///     },
///     async {
///         if !committed.load(SeqCst) {
///             sleep(Duration::from_millis(1)).await; // e.g. `tx.rollback().await`
///             rolled_back.store(true, SeqCst);
///         }
///     },
/// ))
/// .await;
/// assert_eq!(out, None);
/// assert!(rolled_back.load(SeqCst));
/// # });
/// ```
pub fn finally<W: IntoFuture, C: IntoFuture<Output = ()>>(
    work: W,
    cleanup: C,
) -> Finally<W::IntoFuture, C::IntoFuture> {
    Finally {
        work: Scoped::new(CancelScope::new(), work.into_future()),
        cleanup: shield(cleanup),
        value: None,
        cleaning: false,
        cleaned: false,
        orphaned: false,
        hold: None,
    }
}

/// [`finally`] for work on a resource that the cleanup then takes: runs
/// `work(&mut resource)`, then `cleanup(resource)`, and makes sure the cleanup runs to its
/// end even when the work is cancelled (Python's `async with session:`, or
/// `try: await s.execute() finally: await s.close()` with a `close` that takes `self`).
///
/// `finally(s.execute(..), s.close())` cannot be written for a resource whose methods
/// take `&mut self` (the two futures would borrow it at once) or whose `close` takes it
/// by value. Here the resource is lent to the work, then handed to the cleanup, which
/// gets it back whether the work finished, was cancelled at a suspension point, or
/// never started. Otherwise everything is as for [`finally`]: the cleanup is shielded
/// (give it its own limit with [`move_on_after`] inside), and does not run if the work
/// panics (the resource is dropped then). Its future is an `async fn`'s, which has no
/// name: box it to keep it in a struct.
///
/// # Cancel safety
///
/// As for [`finally`]: if an enclosing scope is cancelled, the work is dropped at its
/// suspension point, the cleanup runs to its end with the resource, and then this future
/// never completes (the cancelled scope returns). Dropping the future from outside
/// hatchery drops the work and the resource without running the cleanup.
///
/// # Panics
///
/// As for [`finally`].
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
/// use std::time::Duration;
/// use hatchery::{finally_with, move_on_after, sleep};
///
/// static CLOSED: AtomicBool = AtomicBool::new(false);
///
/// struct Session {
///     rows: u32,
/// }
///
/// impl Session {
///     async fn execute(&mut self, _sql: &str) -> u32 {
///         sleep(Duration::from_secs(3600)).await; // a slow query
///         self.rows += 1;
///         self.rows
///     }
///     async fn close(self) {
///         sleep(Duration::from_millis(1)).await; // say goodbye to the server
///         CLOSED.store(true, SeqCst);
///     }
/// }
///
/// # hatchery_smol::run(async {
/// let out = move_on_after(
///     Duration::from_millis(5),
///     finally_with(
///         Session { rows: 0 },
///         async |s: &mut Session| s.execute("UPDATE ...").await,
///         async |s: Session| s.close().await, // runs, shielded, after the timeout
///     ),
/// )
/// .await;
/// assert_eq!(out, None);
/// assert!(CLOSED.load(SeqCst));
/// # });
/// ```
pub async fn finally_with<R, T, W, C>(resource: R, work: W, cleanup: C) -> T
where
    W: AsyncFnOnce(&mut R) -> T,
    C: AsyncFnOnce(R),
{
    // Taken by the work for its duration, and put back even when the work is dropped
    // (cancelled) or unwinds; the two never run at once.
    let slot = std::sync::Mutex::new(Some(resource));
    struct Lent<'a, R>(&'a std::sync::Mutex<Option<R>>, Option<R>);
    impl<R> Drop for Lent<'_, R> {
        fn drop(&mut self) {
            if let Some(r) = self.1.take() {
                *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            }
        }
    }
    let take = || slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    finally(
        async {
            let mut lent = Lent(&slot, take());
            let resource = lent.1.as_mut().expect("the resource is lent once");
            work(resource).await
        },
        async {
            if let Some(resource) = take() {
                cleanup(resource).await;
            }
        },
    )
    .await
}

pin_project! {
    /// Future returned by [`finally`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use hatchery::finally;
    /// use hatchery::futures::Finally;
    ///
    /// # hatchery_smol::run(async {
    /// let steps = RefCell::new(Vec::new());
    /// let fut: Finally<_, _> = finally(
    ///     async {
    ///         steps.borrow_mut().push("work");
    ///         42
    ///     },
    ///     async { steps.borrow_mut().push("cleanup") },
    /// );
    /// assert!(steps.borrow().is_empty()); // nothing runs until it is polled
    /// assert_eq!(fut.await, 42);
    /// assert_eq!(*steps.borrow(), ["work", "cleanup"]);
    /// # });
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct Finally<W: Future, C> {
        #[pin]
        work: Scoped<W>,
        #[pin]
        cleanup: Shield<C>,
        value: Option<W::Output>,
        cleaning: bool,
        cleaned: bool,
        // The work was cancelled by a scope that has finished since (see `orphaned`).
        orphaned: bool,
        // Held from the first poll until the cleanup is done, so that a cancelled
        // enclosing scope lets this future notice the cancellation and clean up.
        hold: Option<Hold>,
    }
}

impl<W: Future, C: Future<Output = ()>> Future for Finally<W, C> {
    type Output = W::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<W::Output> {
        let mut this = self.project();
        if this.hold.is_none() && !this.work.entered {
            *this.hold = Some(Hold::new(&rt::current().node));
        }
        if !*this.cleaning {
            let work = this.work.as_mut();
            match Hold::release_on_unwind(this.hold, || work.poll_scoped(cx)) {
                Poll::Ready(Outcome::Done(v)) => *this.value = Some(v),
                // Nothing else can cancel this scope than the scope (finished since) that
                // a kept `finally` was first polled in.
                Poll::Ready(Outcome::Caught(_)) => *this.orphaned = true,
                Poll::Pending if this.work.stalled() => {}
                Poll::Pending => return Poll::Pending,
            }
            // The work is over (finished or dropped). Start the cleanup in this same poll:
            // entering the shield holds the enclosing scopes until it is done.
            *this.cleaning = true;
        }
        if !*this.cleaned {
            let cleanup = this.cleanup.as_mut();
            if Hold::release_on_unwind(this.hold, || cleanup.poll(cx)).is_pending() {
                return Poll::Pending;
            }
            *this.cleaned = true;
            this.hold.take();
        }
        match this.value.take() {
            Some(v) => Poll::Ready(v),
            // Cancelled from outside: now that the cleanup is done, the enclosing
            // cancelled scope ends the work. Unless it has finished since: kept past the
            // scope it was first polled in, this `finally` has no value to return.
            None if *this.orphaned || this.work.orphaned() => panic!(
                "hatchery: a `finally` future was cancelled by the scope it was first polled \
                 in, which has finished since, and it has no value to return (its cleanup \
                 ran): await a `finally` in the scope where it started, or drop it"
            ),
            None => Poll::Pending,
        }
    }
}

impl<W: Future, C> fmt::Debug for Finally<W, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finally")
            .field("cleaning", &self.cleaning)
            .finish_non_exhaustive()
    }
}
