//! Cancel scopes: `CancelScope` and its handle, `move_on_*`, `fail_*` and `shield` (the
//! public API; the futures all run on the engine in [`engine`]), and `finally`.

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use crate::diagnostics::{self, HolderKind, Site};
use crate::node::{AtomicDeadline, Kind, Labelled, Node, Reason, SharedLink, Tag};
use crate::reason::{said, CancelReason};
use crate::seam::Runtime;

mod engine;
mod finally;

use self::engine::{Outcome, Scoped};
pub use self::finally::{finally, finally_with, Finally};

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
#[must_use = "a cancel scope does nothing until a future runs in it (`run`, `fail`)"]
pub struct CancelScope {
    /// The scope's node, made before entry only for a [handle](CancelScope::handle);
    /// otherwise the scope gets it when it is entered (possibly a finished scope's node,
    /// see [`context::recycle_node`](crate::context::recycle_node)), so that building and entering a scope nobody else can
    /// see costs no allocation and no reference count.
    node: OnceLock<Arc<Node<EnteredOn>>>,
    /// The shield and the deadline, while there is no node to hold them. A shield is
    /// where `with_shield(true)` was called, for the hold warnings (`diagnostics`).
    shield: Option<&'static Location<'static>>,
    deadline: Option<Instant>,
    /// A relative timeout: if the deadline is set again (through a handle) before entry,
    /// the timeout is dropped.
    timeout: Option<Duration>,
    /// Whether `with_deadline` set a deadline.
    has_deadline: bool,
    /// Where the scope was made (`#[track_caller]`), for the task tree: kept in the node,
    /// if one is made (a handle's or a name's).
    site: &'static Location<'static>,
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
    #[track_caller]
    pub fn new() -> CancelScope {
        CancelScope {
            node: OnceLock::new(),
            shield: None,
            deadline: None,
            timeout: None,
            has_deadline: false,
            site: Location::caller(),
        }
    }

    /// Names the scope: its handle's [`name`](CancelHandle::name), and how the task tree
    /// shows it ([`diagnostics::tree`](crate::diagnostics::tree)). A named scope is in
    /// the tree for as long as it runs; an unnamed one only while its cancellation needs
    /// to find it from above (rule O2). A name costs what a [handle](CancelScope::handle) does
    /// (the scope's node is made now, not on entry) and one read of the clock on entry,
    /// for its age in the tree. A second name replaces the first only before entry.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::CancelScope;
    ///
    /// # hatchery_smol::run(async {
    /// let scope = CancelScope::new().with_name("shutdown");
    /// let handle = scope.handle();
    /// assert_eq!(handle.name(), Some("shutdown"));
    /// assert_eq!(scope.run(async { 1 }).await, Some(1));
    /// # });
    /// ```
    pub fn with_name(self, name: impl Into<Cow<'static, str>>) -> CancelScope {
        let _ = self.made_node().ext.3.set(name.into());
        self
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
    #[track_caller]
    pub fn with_shield(mut self, shield: bool) -> CancelScope {
        // Called here, not through a closure: `#[track_caller]` reaches direct calls only.
        let site = shield.then_some(Location::caller());
        match self.node.get() {
            Some(node) => {
                node.set_shield(shield);
                node.ext.watch(node, site);
            }
            None => self.shield = site,
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
        CancelHandle {
            node: self.made_node().clone(),
        }
    }

    /// The scope's node, made now if there is none yet (for a handle).
    fn made_node(&self) -> &Arc<Node<EnteredOn>> {
        self.node.get_or_init(|| {
            let shield = self.shield.is_some();
            let node = Arc::new(Node::with_ext(shield, false, EnteredOn::new(self.site)));
            if let Some(deadline) = self.deadline {
                // Not through `set_deadline`: a timeout set after this still applies.
                node.init_deadline(deadline);
            }
            if shield {
                node.ext.watch(&node, self.shield);
            }
            node
        })
    }

    /// The scope, with its node made before entry if it is a shield watched by the hold
    /// warnings (`diagnostics`): the node carries where the shield was made. Otherwise
    /// (in release builds, by default) the node is made on entry, as usual.
    #[inline]
    fn watched(self) -> CancelScope {
        if self.shield.is_some() && diagnostics::enabled() {
            self.made_node();
        }
        self
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
    #[cfg_attr(feature = "tracing", track_caller)]
    pub fn run<F: IntoFuture>(self, fut: F) -> Run<F::IntoFuture> {
        Run {
            scoped: Scoped::new(self.watched(), fut.into_future()),
        }
    }

    /// Like [`run`](CancelScope::run), but reports a cancellation caused by this scope's
    /// deadline as an error: `Err(Elapsed)`. A finished body gives `Ok(Some(value))`.
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
    #[cfg_attr(feature = "tracing", track_caller)]
    pub fn fail<F: IntoFuture>(self, fut: F) -> FailScope<F::IntoFuture> {
        FailScope {
            scoped: Scoped::new(self.watched(), fut.into_future()),
        }
    }
}

impl Default for CancelScope {
    #[track_caller]
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
                .field("shield", &self.shield.is_some())
                .field("cancel_called", &false)
                .field("cancelled_caught", &false)
                .field("cancel_reason", &None::<CancelReason>)
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
    node: Arc<Node<EnteredOn>>,
}

/// What the node of a scope with a [`CancelHandle`] carries besides its state: the
/// runtime the scope was entered on, whose clock [`CancelHandle::set_deadline`] reads (it
/// may be called from a plain thread, and under a test run's virtual time the clock is
/// the run's). Set once, on entry. A shield's node also carries where it was made, while
/// the hold warnings watch it (`diagnostics`). And what the scope is called, for the task
/// tree: where it was made, the name `with_name` gave it, and when it was entered (named
/// scopes only). And its parent link, for a scope entered while a handle can see it
/// (set then through a shared reference: node invariant 6), and its deadline (which only
/// a scope's node carries: `node::Tag::deadline`).
pub(crate) struct EnteredOn(
    pub(crate) OnceLock<Arc<dyn Runtime>>,
    OnceLock<Arc<Site>>,
    &'static Location<'static>,
    OnceLock<Cow<'static, str>>,
    OnceLock<Instant>,
    SharedLink,
    AtomicDeadline,
);

impl Tag for EnteredOn {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn label(&self) -> Option<Labelled<'_>> {
        Some(Labelled {
            kind: Kind::Scope,
            site: Some(self.2),
            name: self.name(),
            since: self.4.get().copied(),
        })
    }

    fn shared_link(&self) -> Option<&SharedLink> {
        Some(&self.5)
    }

    fn shared_link_mut(&mut self) -> Option<&mut SharedLink> {
        Some(&mut self.5)
    }

    fn deadline(&self) -> Option<&AtomicDeadline> {
        Some(&self.6)
    }
}

impl EnteredOn {
    /// The name [`CancelScope::with_name`] gave the scope, if any.
    pub(crate) fn name(&self) -> Option<&str> {
        self.3.get().map(|n| &**n)
    }

    fn new(site: &'static Location<'static>) -> EnteredOn {
        EnteredOn(
            OnceLock::new(),
            OnceLock::new(),
            site,
            OnceLock::new(),
            OnceLock::new(),
            SharedLink::default(),
            AtomicDeadline::default(),
        )
    }

    /// A scope's node was entered (its runner calls this, once): a named one links itself
    /// and the scopes around it in its task into their parents' child lists, as a
    /// nursery does on entry, so that the task tree finds it from the root. (Shields too:
    /// a shield in a list takes nothing from it.)
    pub(crate) fn entered(node: &Arc<Node>, rt: &dyn Runtime) {
        let Some(on) = node
            .ext_ref::<EnteredOn>()
            .filter(|on| on.3.get().is_some())
        else {
            return;
        };
        let _ = on.4.set(rt.now());
        node.link_path();
    }
    /// Watches the shield of `node` (whose ext this is), made at `site`, if the hold
    /// warnings are on.
    fn watch(&self, node: &Arc<Node<EnteredOn>>, site: Option<&'static Location<'static>>) {
        if let Some(site) = site.and_then(|at| diagnostics::site(HolderKind::Shield, at)) {
            let node: Arc<Node> = node.clone();
            site.owned_by(&node);
            let _ = self.1.set(site);
        }
    }

    /// The watched site of a shield's node, if any.
    pub(crate) fn site_of(node: &Arc<Node>) -> Option<&Arc<Site>> {
        node.ext_ref::<EnteredOn>()?.1.get()
    }
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
    #[track_caller]
    pub fn cancel(&self) {
        self.node
            .cancel_with(Reason::Explicit, said(Location::caller(), None));
    }

    /// [`cancel`](CancelHandle::cancel), with a message that the scope's
    /// [`cancel_reason`](CancelHandle::cancel_reason) carries (and the reason of the work
    /// inside, as [`CancelReason::Outer`]). If the scope was cancelled already, the
    /// first reason stays and the message is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::{checkpoint, CancelReason, CancelScope};
    /// # hatchery_smol::run(async {
    /// let scope = CancelScope::new();
    /// let handle = scope.handle();
    /// scope.run(async {
    ///     handle.cancel_with("enough");
    ///     checkpoint().await;
    /// }).await;
    /// let reason = handle.cancel_reason().unwrap();
    /// assert!(matches!(reason, CancelReason::Explicit { .. }));
    /// assert_eq!(reason.message(), Some("enough"));
    /// assert!(reason.to_string().ends_with(": enough"));
    /// # });
    /// ```
    #[track_caller]
    pub fn cancel_with(&self, message: impl Into<Cow<'static, str>>) {
        let detail = said(Location::caller(), Some(message.into()));
        self.node.cancel_with(Reason::Explicit, detail);
    }

    /// Why the scope was cancelled, if it was: by its handle, its deadline, or (as
    /// [`CancelReason::Outer`]) an enclosing scope, nursery or task whose cancellation
    /// reached it while it ran. Readable after the scope has ended.
    ///
    /// An enclosing scope's cancellation counts once it has reached this scope (at its
    /// next poll if nothing made it a child of that scope's list: while the scope runs,
    /// an enclosing scope cancelled now counts at once). A shielded scope has only its
    /// own reasons.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{move_on_after, sleep, CancelReason, CancelScope};
    ///
    /// # hatchery_smol::run(async {
    /// let inner = CancelScope::new();
    /// let handle = inner.handle();
    /// assert_eq!(handle.cancel_reason(), None);
    /// move_on_after(Duration::from_millis(1), inner.run(sleep(Duration::from_secs(3600)))).await;
    /// let reason = handle.cancel_reason().unwrap();
    /// assert_eq!(reason, CancelReason::Outer(Box::new(CancelReason::Deadline)));
    /// assert!(!handle.cancel_called()); // not cancelled itself
    /// # });
    /// ```
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        CancelReason::of(&self.node)
    }

    /// Whether the scope was cancelled, by [`cancel`](CancelHandle::cancel) or by its
    /// deadline. Sticky: once true it stays true. Cancellation inherited from an
    /// enclosing scope does not count.
    ///
    /// A deadline counts once the scope has seen it pass: on entry, when
    /// [`set_deadline`](CancelHandle::set_deadline) moves it to an instant that has
    /// passed, or when the scope checks its timer, after each poll of its body that
    /// leaves the body pending (a body that finishes in the poll where its deadline passes
    /// finishes uncancelled). Trio also reads the clock here; hatchery does not, so read
    /// [`deadline`](CancelHandle::deadline) against [`now`](crate::now) to know whether
    /// a deadline has passed before the scope has noticed.
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
        self.node.reason().is_some()
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

    /// Sets or moves the deadline, also while the scope runs: earlier, later, or `None`
    /// to remove it.
    ///
    /// A deadline that has already passed cancels a running scope at once, as
    /// [`cancel`](CancelHandle::cancel) does (D5): [`cancel_called`] is true when this
    /// returns, and stays true if the deadline is moved back later; the body stops at
    /// its next suspension point. "Passed" is read once here, on the clock of the runtime
    /// the scope runs on (a test run's virtual clock under
    /// [`virtual_time`](crate::testing::virtual_time)), from any thread. A later deadline
    /// postpones the cancellation. Has no effect on a scope that is cancelled already.
    ///
    /// Before the scope is entered, the deadline replaces the one it was built with (a
    /// relative timeout too), and a deadline that has passed by the time the scope is
    /// entered cancels it there, as one it was built with would. After the scope has
    /// finished, only [`deadline`](CancelHandle::deadline) changes.
    ///
    /// [`cancel_called`]: CancelHandle::cancel_called
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
    /// // A deadline that has already passed cancels at once; the body stops at its next
    /// // suspension point.
    /// let scope = CancelScope::new();
    /// let handle = scope.handle();
    /// let steps = Cell::new(0);
    /// let out = scope.run(async {
    ///     handle.set_deadline(now()); // due now
    ///     assert!(handle.cancel_called()); // cancelled already
    ///     handle.set_deadline(None); // and it sticks
    ///     steps.set(1);
    ///     checkpoint().await; // the body is dropped here
    ///     steps.set(2);
    /// }).await;
    /// assert_eq!((out, steps.get()), (None, 1));
    /// assert!(handle.cancel_called() && handle.cancelled_caught());
    /// # }));
    /// ```
    pub fn set_deadline(&self, deadline: impl Into<Option<Instant>>) {
        let deadline = deadline.into();
        self.node.set_deadline(deadline);
        let Some(deadline) = deadline.filter(|_| self.node.reason().is_none()) else {
            return;
        };
        // Pairs with the fence of the entry (`Scoped::poll_scoped`), which sets the runtime
        // and then reads the deadline: either it finds the deadline stored above, or we
        // find its runtime here. (Before entry, the entry checks the deadline itself.)
        fence(Ordering::SeqCst);
        if let Some(rt) = self.node.ext.0.get() {
            if !self.node.is_finished() && deadline <= rt.now() {
                self.node.cancel(Reason::Deadline);
            }
        }
    }

    /// The name the scope was given by [`with_name`](CancelScope::with_name), if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::CancelScope;
    ///
    /// assert_eq!(CancelScope::new().with_name("drain").handle().name(), Some("drain"));
    /// assert_eq!(CancelScope::new().handle().name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.node.ext.name()
    }

    /// Where the scope was made: the call of [`CancelScope::new`] (or `default`).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::CancelScope;
    ///
    /// let handle = CancelScope::new().handle();
    /// assert_eq!((handle.made_at().file(), handle.made_at().line()), (file!(), line!() - 1));
    /// ```
    pub fn made_at(&self) -> &'static Location<'static> {
        self.node.ext.2
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
            .field("cancel_reason", &self.cancel_reason())
            .finish()
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_fields("CancelHandle", f)
    }
}

// The four scope futures: a `Scoped` (the scope and its work), pinned, with `Debug` and
// `FusedFuture` (terminated once they have returned; a scope stalled under a cancelled
// enclosing scope, which ends the work and drops it, is not).
macro_rules! scope_future {
    ($($(#[$attr:meta])* $name:ident -> $out:ty = $map:expr;)*) => {$(
        pin_project! {
            $(#[$attr])*
            #[must_use = "futures do nothing unless polled"]
            pub struct $name<F> {
                #[pin]
                scoped: Scoped<F>,
            }
        }

        impl<F> fmt::Debug for $name<F> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }

        impl<F: Future> futures_core::future::FusedFuture for $name<F> {
            fn is_terminated(&self) -> bool {
                self.scoped.is_done()
            }
        }

        impl<F: Future> Future for $name<F> {
            type Output = $out;

            #[inline]
            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                self.project().scoped.poll_scoped(cx).map($map)
            }
        }
    )*};
}

scope_future! {
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
    Run -> Option<F::Output> = |o| match o {
        Outcome::Done(v) => Some(v),
        Outcome::Caught(_) => None,
    };

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
    FailScope -> Result<Option<F::Output>, Elapsed> = |o| match o {
        Outcome::Done(v) => Ok(Some(v)),
        Outcome::Caught(Reason::Deadline) => Err(Elapsed(())),
        Outcome::Caught(_) => Ok(None),
    };

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
    Fail -> Result<F::Output, Elapsed> = |o| match o {
        Outcome::Done(v) => Ok(v),
        // Nobody else holds this scope's handle, so only its deadline can cancel it
        // (or, kept past the scope it was first polled in, that scope's cancellation).
        Outcome::Caught(_) => Err(Elapsed(())),
    };

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
    Shield -> F::Output = |o| match o {
        Outcome::Done(v) => v,
        Outcome::Caught(_) => unreachable!("nothing can cancel an anonymous shield"),
    };
}

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
#[cfg_attr(feature = "tracing", track_caller)]
pub fn move_on_after<F: IntoFuture>(timeout: Duration, fut: F) -> Run<F::IntoFuture> {
    // `CancelScope::new().with_timeout(timeout).run(fut)`, built directly.
    Run {
        scoped: Scoped::after(timeout, fut.into_future()),
    }
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
#[cfg_attr(feature = "tracing", track_caller)]
pub fn move_on_at<F: IntoFuture>(deadline: Instant, fut: F) -> Run<F::IntoFuture> {
    CancelScope::new().with_deadline(deadline).run(fut)
}

/// Runs `fut` with a timeout; fails with [`Elapsed`] if it does not finish within
/// `timeout` of being first polled.
///
/// There is no handle to the scope, so it cannot be cancelled explicitly; use
/// [`CancelScope::fail`] for that.
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
#[cfg_attr(feature = "tracing", track_caller)]
pub fn fail_after<F: IntoFuture>(timeout: Duration, fut: F) -> Fail<F::IntoFuture> {
    Fail {
        scoped: Scoped::after(timeout, fut.into_future()),
    }
}

/// Runs `fut` until `deadline`; fails with [`Elapsed`] if it is not done by then.
///
/// # Errors
///
/// [`Elapsed`] if `deadline` passed before `fut` finished; otherwise as for
/// [`fail_after`].
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
#[cfg_attr(feature = "tracing", track_caller)]
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
#[track_caller]
pub fn shield<F: IntoFuture>(fut: F) -> Shield<F::IntoFuture> {
    Shield {
        scoped: Scoped::new(
            CancelScope::new().with_shield(true).watched(),
            fut.into_future(),
        ),
    }
}
