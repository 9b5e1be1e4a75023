//! The `tracing` feature: a span for each nursery, task and cancel scope, and events for
//! cancellations, deadlines, errors and panics (documented in the crate docs, *Features*).
//!
//! Everything the rest of the crate calls is here, twice: the real thing with the feature
//! on, and a no-op twin of the same shape with it off, whose types are empty and whose
//! functions are empty and always inlined. A call site is one line and carries no `cfg`:
//! with the feature off it compiles to nothing, and the structures that keep a [`Span`]
//! are as large as without it.
//!
//! A nursery or a scope is entered where it is first polled, and its span is made
//! there: a child of the span current at that poll, the span of the task, scope or
//! nursery polling it (each enters its own around every poll), or of the caller's own
//! instrumented future. A task's span is made when it is spawned, a child of its
//! nursery's span whichever task spawns it (a sibling holding a `Nursery` clone, say),
//! on whichever thread it runs.

#[cfg(feature = "tracing")]
pub(crate) use self::on::*;

#[cfg(not(feature = "tracing"))]
pub(crate) use self::off::*;

/// The target of every span and event: filter them with `hatchery=debug`.
#[cfg(feature = "tracing")]
const TARGET: &str = "hatchery";

#[cfg(feature = "tracing")]
mod on {
    use std::any::Any;
    use std::error::Error;
    use std::panic::Location;
    use std::sync::OnceLock;
    use std::time::Duration;

    use super::TARGET;
    use crate::node::{Node, Reason};
    use crate::reason::CancelReason;

    /// The span of a task or a scope (a disabled one when no subscriber wants it), or
    /// what a scope's will be made of at its first poll.
    pub(crate) struct Span(Inner);

    enum Inner {
        Scope {
            site: &'static Location<'static>,
            shield: bool,
            timeout: Option<Duration>,
        },
        Open(tracing::Span),
    }

    impl Span {
        /// A cancel scope's span, to be made at its first poll ([`entry`](Span::entry)),
        /// of a scope built here: at the caller of `move_on_after`, `CancelScope::run`
        /// and the like (`#[track_caller]` all the way).
        #[inline]
        #[track_caller]
        pub(crate) fn scope(shield: bool, timeout: Option<Duration>) -> Span {
            Span(Inner::Scope {
                site: Location::caller(),
                shield,
                timeout,
            })
        }

        /// A task's span, a child of its nursery's (`parent`): its name, if it has one,
        /// and where it was spawned.
        #[inline]
        pub(crate) fn task(
            parent: &Parent,
            name: Option<&str>,
            site: &'static Location<'static>,
        ) -> Span {
            Span(Inner::Open(tracing::debug_span!(
                target: TARGET,
                parent: parent.0.clone(),
                "task",
                name,
                site = %site,
            )))
        }

        /// A polled nursery's child's span, a child of its nursery's (`parent`): where
        /// it was spawned (for a `start`ed child or a combinator's future, where the
        /// nursery was opened).
        #[inline]
        pub(crate) fn child(parent: &Parent, site: &'static Location<'static>) -> Span {
            Span(Inner::Open(tracing::debug_span!(
                target: TARGET,
                parent: parent.0.clone(),
                "child",
                site = %site,
            )))
        }

        /// Makes a scope's span at its first poll, a child of the current span, then
        /// enters it until the guard is dropped: around every poll. `name` gives the
        /// scope's name, if it has one (`CancelScope::with_name`), at the first poll.
        #[inline]
        pub(crate) fn entry<'n>(
            &mut self,
            name: impl FnOnce() -> Option<&'n str>,
        ) -> tracing::span::Entered<'_> {
            if let Inner::Scope {
                site,
                shield,
                timeout,
            } = self.0
            {
                self.0 = Inner::Open(open_scope(site, shield, timeout, name()));
            }
            self.enter()
        }

        /// Enters the span (made by now) until the guard is dropped: around a poll.
        #[inline]
        pub(crate) fn enter(&self) -> tracing::span::Entered<'_> {
            match &self.0 {
                Inner::Open(span) => span.enter(),
                Inner::Scope { .. } => unreachable!("hatchery: internal error: span not made"),
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn open_scope(
        site: &'static Location<'static>,
        shield: bool,
        timeout: Option<Duration>,
        name: Option<&str>,
    ) -> tracing::Span {
        tracing::debug_span!(
            target: TARGET,
            "scope",
            name,
            site = %site,
            shield,
            timeout = timeout.map(tracing::field::debug),
        )
    }

    /// A nursery's site (where `nursery` was called), and its span, made at its first
    /// poll (once, through `&self`: the guard of `entry` borrows it while the poll runs,
    /// and the poll reads the site and the span's id).
    pub(crate) struct Sited {
        at: &'static Location<'static>,
        span: OnceLock<tracing::Span>,
        // A polled nursery's (or a polled combinator's): its span is `polled_nursery`.
        polled: bool,
    }

    impl Sited {
        #[inline]
        pub(crate) fn nursery(at: &'static Location<'static>) -> Sited {
            Sited {
                at,
                span: OnceLock::new(),
                polled: false,
            }
        }

        /// A polled nursery's site (or a polled combinator's group's): its span is
        /// named `polled_nursery`, and its children's `child`.
        #[inline]
        pub(crate) fn polled(at: &'static Location<'static>) -> Sited {
            Sited {
                at,
                span: OnceLock::new(),
                polled: true,
            }
        }

        /// Where `nursery` was called.
        #[inline]
        pub(crate) fn at(&self) -> &'static Location<'static> {
            self.at
        }

        /// Makes the nursery's span at its first poll, a child of the current span, then
        /// enters it until the guard is dropped: around every poll.
        #[inline]
        /// `name`: the nursery's name, if it has one (read at the first poll only).
        pub(crate) fn entry(&self, name: Option<&str>) -> tracing::span::Entered<'_> {
            self.span
                .get_or_init(|| open_nursery(self.at, name, self.polled))
                .enter()
        }

        /// What the tasks spawned into this nursery are children of (its span, made by
        /// now).
        #[inline]
        pub(crate) fn parent(&self) -> Parent {
            Parent(self.span.get().and_then(tracing::Span::id))
        }
    }

    #[cold]
    #[inline(never)]
    fn open_nursery(
        site: &'static Location<'static>,
        name: Option<&str>,
        polled: bool,
    ) -> tracing::Span {
        if polled {
            tracing::debug_span!(target: TARGET, "polled_nursery", name, site = %site)
        } else {
            tracing::debug_span!(target: TARGET, "nursery", name, site = %site)
        }
    }

    /// The span a task's span is a child of: its nursery's, by id (the nursery's future
    /// keeps the span itself, and outlives every task spawned into it).
    #[derive(Clone)]
    pub(crate) struct Parent(Option<tracing::Id>);

    /// The work whose node is `node` has observed its cancellation: its body is dropped.
    /// `caught`, for a scope: whether it catches the cancellation (returns) rather than
    /// an enclosing scope.
    #[inline]
    pub(crate) fn cancelled<X: ?Sized + crate::node::Tag>(node: &Node<X>, caught: Option<bool>) {
        if tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
            cancelled_event(CancelReason::of(node), node.reason(), caught);
        }
    }

    #[cold]
    #[inline(never)]
    fn cancelled_event(reason: Option<CancelReason>, own: Option<Reason>, caught: Option<bool>) {
        if own == Some(Reason::Deadline) {
            tracing::debug!(target: TARGET, "deadline expired");
        }
        let message = reason.as_ref().and_then(CancelReason::message);
        tracing::debug!(
            target: TARGET,
            reason = reason.as_ref().map(tracing::field::display),
            cancel_message = message,
            caught,
            "cancelled",
        );
    }

    /// A task (or a nursery's body, `task` false) returned an error.
    #[inline]
    pub(crate) fn failed<E: 'static>(error: &E, task: bool) {
        if tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
            failed_event(error, std::any::type_name::<E>(), task);
        }
    }

    #[cold]
    #[inline(never)]
    fn failed_event(error: &dyn Any, error_type: &'static str, task: bool) {
        let shown = display(error);
        let what = if task { "task failed" } else { "body failed" };
        tracing::debug!(
            target: TARGET,
            error = shown.as_ref().map(tracing::field::display),
            error_type,
            "{what}",
        );
    }

    /// A polled child (or a polled nursery's body, `task` false) returned an error,
    /// of a type that may borrow: only the type's name is told.
    #[inline]
    pub(crate) fn failed_borrowed<E>(task: bool) {
        if tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
            failed_borrowed_event(std::any::type_name::<E>(), task);
        }
    }

    #[cold]
    #[inline(never)]
    fn failed_borrowed_event(error_type: &'static str, task: bool) {
        let what = if task { "child failed" } else { "body failed" };
        tracing::debug!(target: TARGET, error_type, "{what}");
    }

    /// The error's `Display`, for the error types it can be read from without a bound
    /// on the nursery's error type (which has none): the standard library's errors and
    /// strings.
    fn display(error: &dyn Any) -> Option<String> {
        shown::<Box<dyn Error + Send + Sync>>(error)
            .or_else(|| shown::<Box<dyn Error + Send>>(error))
            .or_else(|| shown::<Box<dyn Error>>(error))
            .or_else(|| shown::<std::io::Error>(error))
            .or_else(|| shown::<String>(error))
            .or_else(|| shown::<&'static str>(error))
            .or_else(|| shown::<std::sync::Arc<dyn Error + Send + Sync>>(error))
    }

    /// `error` shown, if it is a `T`.
    fn shown<T: Any + std::fmt::Display>(error: &dyn Any) -> Option<String> {
        error.downcast_ref::<T>().map(T::to_string)
    }

    /// A task (or a nursery's body, `task` false) panicked, with this payload.
    #[inline]
    pub(crate) fn panicked(payload: &(dyn Any + Send), task: bool) {
        if tracing::enabled!(target: TARGET, tracing::Level::WARN) {
            panicked_event(payload, task);
        }
    }

    #[cold]
    #[inline(never)]
    fn panicked_event(payload: &(dyn Any + Send), task: bool) {
        let panic = match payload.downcast_ref::<&'static str>() {
            Some(s) => Some(*s),
            None => payload.downcast_ref::<String>().map(String::as_str),
        };
        let what = if task {
            "task panicked"
        } else {
            "body panicked"
        };
        tracing::warn!(target: TARGET, panic, "{what}");
    }
}

#[cfg(not(feature = "tracing"))]
mod off {
    use std::any::Any;
    use std::panic::Location;
    use std::time::Duration;

    use crate::node::Node;

    /// No span: the feature is off.
    pub(crate) struct Span;

    /// No parent span: the feature is off.
    #[derive(Clone)]
    pub(crate) struct Parent;

    /// No span entered: the feature is off.
    pub(crate) struct Entered;

    /// A nursery's site, and no span: the feature is off.
    pub(crate) struct Sited(&'static Location<'static>);

    impl Sited {
        #[inline(always)]
        pub(crate) fn nursery(at: &'static Location<'static>) -> Sited {
            Sited(at)
        }

        #[inline(always)]
        pub(crate) fn polled(at: &'static Location<'static>) -> Sited {
            Sited(at)
        }

        #[inline(always)]
        pub(crate) fn at(&self) -> &'static Location<'static> {
            self.0
        }

        #[inline(always)]
        pub(crate) fn entry(&self, _name: Option<&str>) -> Entered {
            Entered
        }

        #[inline(always)]
        pub(crate) fn parent(&self) -> Parent {
            Parent
        }
    }

    impl Span {
        #[inline(always)]
        pub(crate) fn scope(_shield: bool, _timeout: Option<Duration>) -> Span {
            Span
        }

        #[inline(always)]
        pub(crate) fn task(
            _parent: &Parent,
            _name: Option<&str>,
            _site: &'static Location<'static>,
        ) -> Span {
            Span
        }

        #[inline(always)]
        pub(crate) fn child(_parent: &Parent, _site: &'static Location<'static>) -> Span {
            Span
        }

        #[inline(always)]
        pub(crate) fn entry<'n>(&mut self, _name: impl FnOnce() -> Option<&'n str>) -> Entered {
            Entered
        }

        #[inline(always)]
        pub(crate) fn enter(&self) -> Entered {
            Entered
        }
    }

    #[inline(always)]
    pub(crate) fn cancelled<X: ?Sized + crate::node::Tag>(_node: &Node<X>, _caught: Option<bool>) {}

    #[inline(always)]
    pub(crate) fn failed<E: 'static>(_error: &E, _task: bool) {}

    #[inline(always)]
    pub(crate) fn failed_borrowed<E>(_task: bool) {}

    #[inline(always)]
    pub(crate) fn panicked(_payload: &(dyn Any + Send), _task: bool) {}
}
