//! Cancel reasons: why a scope, a nursery or a task was cancelled, read from its handle.

use std::borrow::Cow;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use crate::node::{Detail, Node, Reason};

/// Why a cancel scope, a nursery or a task was cancelled.
///
/// Read it from a handle while the work runs or after it has ended:
/// [`CancelHandle::cancel_reason`](crate::CancelHandle::cancel_reason),
/// [`Nursery::cancel_reason`](crate::Nursery::cancel_reason),
/// [`TaskHandle::cancel_reason`](crate::TaskHandle::cancel_reason). The first reason
/// sticks: a scope cancelled by its deadline and then by its handle says
/// [`Deadline`](CancelReason::Deadline). Work cancelled because an enclosing scope was
/// says [`Outer`](CancelReason::Outer), with the reason of the nearest enclosing scope,
/// nursery or task that was cancelled itself.
///
/// Its `Display` is a short lowercase sentence, for logs; `Debug` shows the fields.
///
/// # Examples
///
/// ```
/// use hatchery::{checkpoint, CancelReason, CancelScope};
///
/// # hatchery_smol::run(async {
/// let (outer, inner) = (CancelScope::new(), CancelScope::new());
/// let (outer_h, inner_h) = (outer.handle(), inner.handle());
/// outer
///     .run(inner.run(async {
///         outer_h.cancel_with("shutting down");
///         checkpoint().await;
///     }))
///     .await;
/// let reason = outer_h.cancel_reason().unwrap();
/// assert_eq!(reason.message(), Some("shutting down"));
/// // The inner scope was cancelled by the outer one: it says so, and why.
/// let CancelReason::Outer(why) = inner_h.cancel_reason().unwrap() else { panic!() };
/// assert_eq!(*why, reason);
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelReason {
    /// `cancel` or `cancel_with` of a [`CancelHandle`](crate::CancelHandle) or a
    /// [`TaskHandle`](crate::TaskHandle) (of a task, or of a polled child).
    #[non_exhaustive]
    Explicit {
        /// Where `cancel` was called.
        at: &'static Location<'static>,
        /// The message given to `cancel_with`.
        message: Option<Cow<'static, str>>,
    },
    /// Its deadline passed (a timeout of [`move_on_after`](crate::move_on_after) and the
    /// like, or [`CancelScope::with_deadline`](crate::CancelScope::with_deadline)).
    Deadline,
    /// A task of the nursery, or its body, returned an error or panicked (N2): the
    /// nursery cancelled the rest. For a polled nursery, the child that failed; for a
    /// combinator's futures kept in place (`join!(Polled: ..)`, `Polled::try_join` of a
    /// few futures and the like), the combinator's call.
    #[non_exhaustive]
    Failure {
        /// Where the task that failed was spawned; `None` if it was the nursery's body.
        task: Option<&'static Location<'static>>,
        /// The task's name, if it was given one
        /// ([`spawn_named`](crate::Nursery::spawn_named)).
        name: Option<Cow<'static, str>>,
        /// Whether it panicked (rather than returned an error).
        panicked: bool,
    },
    /// The nursery's own [`cancel`](crate::Nursery::cancel) or
    /// [`cancel_with`](crate::Nursery::cancel_with), a
    /// [`Subgroup::cancel`](crate::Subgroup::cancel), or a race won (of
    /// [`race`](crate::race()), [`race_ok`](crate::race_ok()) and their `Polled` forms: `at`
    /// the race's call, with the message "the race was won").
    #[non_exhaustive]
    Nursery {
        /// Where `cancel` was called.
        at: &'static Location<'static>,
        /// The message given to `cancel_with`.
        message: Option<Cow<'static, str>>,
    },
    /// An enclosing scope, nursery or task was cancelled: its reason (never itself
    /// `Outer`).
    Outer(Box<CancelReason>),
    /// The future of a nursery or of a `start` was dropped from outside hatchery before
    /// it finished (C8), which cancelled what it had started.
    Dropped,
}

impl CancelReason {
    /// The message given to `cancel_with`, here or, for [`Outer`](CancelReason::Outer),
    /// in the scope where the cancellation came from.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::CancelScope;
    ///
    /// let scope = CancelScope::new();
    /// let handle = scope.handle();
    /// handle.cancel_with(format!("job {} is over", 7));
    /// assert_eq!(handle.cancel_reason().unwrap().message(), Some("job 7 is over"));
    /// ```
    pub fn message(&self) -> Option<&str> {
        match self.origin() {
            CancelReason::Explicit { message, .. } | CancelReason::Nursery { message, .. } => {
                message.as_deref()
            }
            _ => None,
        }
    }

    /// Where the cancellation came from: this reason, or for
    /// [`Outer`](CancelReason::Outer) the one it carries.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{checkpoint, move_on_after, CancelReason, CancelScope};
    ///
    /// # hatchery_smol::run(async {
    /// let inner = CancelScope::new();
    /// let handle = inner.handle();
    /// move_on_after(Duration::ZERO, inner.run(checkpoint())).await;
    /// assert_eq!(handle.cancel_reason().unwrap().origin(), &CancelReason::Deadline);
    /// # });
    /// ```
    pub fn origin(&self) -> &CancelReason {
        match self {
            CancelReason::Outer(origin) => origin,
            own => own,
        }
    }

    /// Whether the cancellation came from a deadline, here or in an enclosing scope.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{sleep, CancelScope};
    ///
    /// # hatchery_smol::run(async {
    /// let scope = CancelScope::new().with_timeout(Duration::from_millis(1));
    /// let handle = scope.handle();
    /// scope.run(sleep(Duration::from_secs(3600))).await;
    /// assert!(handle.cancel_reason().unwrap().is_deadline());
    /// # });
    /// ```
    pub fn is_deadline(&self) -> bool {
        matches!(self.origin(), CancelReason::Deadline)
    }

    /// Why `node` was cancelled: by itself, or (marked by an ancestor's cancellation, or
    /// under a running ancestor cancelled now) the reason of the nearest ancestor up to
    /// the nearest shield that was cancelled itself.
    pub(crate) fn of<X: ?Sized + crate::node::Tag>(node: &Node<X>) -> Option<CancelReason> {
        if let Some(own) = CancelReason::own(node) {
            return Some(own);
        }
        // A finished node keeps what reached it while it ran (its flag), not what
        // reaches its ancestors since.
        let reached = node.is_marked() || (!node.is_finished() && node.is_cancelled());
        if !reached || node.is_shield() {
            return None;
        }
        // Up the parents to the nearest shield, that one included.
        let up = |a: &Arc<Node>| if a.is_shield() { None } else { a.parent() };
        std::iter::successors(node.parent(), up)
            .find_map(|ancestor| CancelReason::own(&ancestor))
            .map(|origin| CancelReason::Outer(Box::new(origin)))
    }

    /// Why `node` was cancelled itself, if it was.
    fn own<X: ?Sized + crate::node::Tag>(node: &Node<X>) -> Option<CancelReason> {
        let (reason, detail) = node.reason_detail()?;
        Some(match (reason, detail) {
            (Reason::Deadline, _) => CancelReason::Deadline,
            (Reason::Dropped, _) => CancelReason::Dropped,
            (Reason::Explicit, Some(Detail::Said { at, message })) => {
                CancelReason::Explicit { at, message }
            }
            (Reason::Nursery, Some(Detail::Said { at, message })) => {
                CancelReason::Nursery { at, message }
            }
            (
                Reason::Failure,
                Some(Detail::Failed {
                    task,
                    name,
                    panicked,
                }),
            ) => CancelReason::Failure {
                task,
                name,
                panicked,
            },
            // Every cancel of these kinds goes through `cancel_with`, with its detail.
            (kind, _) => {
                unreachable!("hatchery: internal error: a {kind:?} cancellation without detail")
            }
        })
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let said = |f: &mut fmt::Formatter<'_>, what: &str, at, message: &Option<_>| {
            write!(f, "{what} at {at}")?;
            message.as_ref().map_or(Ok(()), |m| write!(f, ": {m}"))
        };
        match self {
            CancelReason::Explicit { at, message } => said(f, "cancelled", at, message),
            CancelReason::Nursery { at, message } => said(f, "nursery cancelled", at, message),
            CancelReason::Deadline => f.write_str("deadline passed"),
            CancelReason::Failure {
                task,
                name,
                panicked,
            } => {
                let how = if *panicked { "panicked" } else { "failed" };
                match (task, name) {
                    (Some(at), Some(name)) => write!(f, "task {name:?} (spawned at {at}) {how}"),
                    (Some(at), None) => write!(f, "a task spawned at {at} {how}"),
                    (None, _) => write!(f, "the nursery's body {how}"),
                }
            }
            CancelReason::Outer(origin) => write!(f, "an enclosing scope: {origin}"),
            CancelReason::Dropped => f.write_str("dropped from outside hatchery"),
        }
    }
}

/// What the cancellation of a race's losers says: the race called at `at` was won (for
/// `race`, `race_ok` and their `Polled` forms).
pub(crate) fn race_won(at: &'static Location<'static>) -> Detail {
    said(at, Some(Cow::Borrowed("the race was won")))
}

/// The detail of an explicit cancel called at `at`, with `message`.
pub(crate) fn said(at: &'static Location<'static>, message: Option<Cow<'static, str>>) -> Detail {
    Detail::Said { at, message }
}
