//! Entering: binding a runtime to a future, the root of a hatchery task tree
//! ([`enter`], [`enter_root`]), and what code can ask about it ([`current`],
//! [`is_entered`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::{enter_task, forget_runtime, nested_runtime, with_current, with_runtime};
use crate::node::Node;
use crate::seam::Runtime;
use crate::timer::TimerSlot;

/// Installs `runtime` for everything `fut` does, making `fut` the root of a hatchery
/// task tree.
///
/// Adapters call this in their `run` and `enter` functions; call it yourself only when
/// binding a new executor (see [`Runtime`]).
///
/// The root scope cannot be cancelled; wrap `fut` in a [`CancelScope`](crate::CancelScope)
/// for that.
///
/// Polled inside a hatchery context already (`hatchery_tokio::enter` in a library called
/// from hatchery code, say), `fut` is not a new root: it runs in the enclosing scope,
/// under its cancellation, deadlines and shields, as any code there does, and only the
/// runtime changes (the one its nurseries spawn children on, and whose clock and timers
/// it uses; in a [test run](crate::testing)'s code, `fut` stays on the run's clock, and
/// its tasks count as the run's). A root of its own would be cut loose: dropped, not cancelled, by an enclosing
/// scope (C8). "Inside" means polled on a thread where hatchery code is being polled:
/// an executor blocked on from hatchery code (`block_in_place` and `Handle::block_on`,
/// a `LocalSet` driven there) polls `fut` inside the blocked task's scope, and once that
/// scope is cancelled (or its deadline passes), `fut` stops for good. Block with
/// [`enter_root`], or on another thread ([`run_blocking`](crate::run_blocking)). A root
/// (first polled outside hatchery) stays one, wherever it is polled later.
///
/// # Cancel safety
///
/// As a root (outside hatchery), nothing can cancel `fut`; dropping this future drops
/// `fut` from outside (C8): everything in it is cancelled at once, and its nurseries'
/// children are aborted without being waited for. Inside a hatchery context, it is
/// `fut` itself, in the enclosing scope: if that scope is cancelled while it waits,
/// `fut` is cancelled as the code around it is, and this future completes only if `fut`
/// does.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use hatchery::rt;
/// use hatchery_tokio::TokioRuntime;
///
/// # hatchery_tokio::run(async {
/// // In a task of a running tokio runtime (what `hatchery_tokio::enter` does):
/// let runtime = Arc::new(TokioRuntime::current());
/// let out = rt::enter(runtime, hatchery::nursery(|n| async move {
///     let h = n.spawn(async { Ok::<_, std::io::Error>(6 * 7) });
///     Ok(h.join().await?)
/// }))
/// .await;
/// assert_eq!(out.unwrap(), 42);
/// # });
/// ```
pub fn enter<F: Future>(runtime: Arc<dyn Runtime>, fut: F) -> Enter<F> {
    Enter::new(runtime, fut, true)
}

/// [`enter`], always as a root of its own, even when polled inside a hatchery context.
///
/// For an adapter's blocking `run` function: a sync function that runs async code on an
/// executor of its own (`hatchery_smol::run_current_thread`, say) may be called from
/// hatchery code, and then blocks the task that called it. Nested in that task's scope,
/// as [`enter`] would be, the code would stop for good once the scope is cancelled (a
/// cancelled scope's waits never complete, and the scope cannot drop code its own task
/// is blocked on). As a root it runs to its end. hatchery's test runs use it too: their
/// clock is their own, and the enclosing deadlines cannot be compared with it.
///
/// # Cancel safety
///
/// As a root, nothing can cancel `fut`. Dropping this future drops `fut` from outside
/// (C8): everything in it is cancelled at once, and its nurseries' children are
/// cancelled without being awaited. That includes being awaited in hatchery code whose
/// scope is then cancelled: that scope does not cancel `fut` in order, it drops this
/// future at its suspension point, like any foreign future, so `fut`'s
/// [`finally`](crate::finally) cleanups do not run. Wrap `fut` in a
/// [`CancelScope`](crate::CancelScope) of its own if it must be stoppable.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use futures_lite::future::block_on;
/// use hatchery::{rt, CancelScope};
/// use hatchery_tokio::TokioRuntime;
///
/// # hatchery_tokio::run(async {
/// let runtime: Arc<dyn rt::Runtime> = Arc::new(TokioRuntime::current());
/// let scope = CancelScope::new();
/// scope.handle().cancel();
/// let out = scope
///     .run(async move {
///         // A blocking call in a cancelled scope, before its next suspension: the
///         // root's code does not see that cancellation.
///         block_on(rt::enter_root(runtime, async {
///             hatchery::checkpoint().await;
///             7
///         }))
///     })
///     .await;
/// assert_eq!(out, Some(7));
/// # });
/// ```
pub fn enter_root<F: Future>(runtime: Arc<dyn Runtime>, fut: F) -> Enter<F> {
    Enter::new(runtime, fut, false)
}

pin_project! {
    /// Future returned by [`enter`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use hatchery::futures::Enter;
    /// use hatchery::rt;
    ///
    /// # hatchery_tokio::run(async {
    /// let runtime = Arc::new(hatchery_tokio::TokioRuntime::current());
    /// // Runs on the runtime's blocking threads once awaited.
    /// let root: Enter<_> = rt::enter(runtime, hatchery::run_blocking(|| 2 + 2));
    /// assert_eq!(root.await, 4);
    /// # });
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct Enter<F> {
        #[pin]
        fut: F,
        rt: Arc<dyn Runtime>,
        // The root's node, made at its first poll as a root (a nested one needs none).
        node: Option<Arc<Node>>,
        // Inside a hatchery context, runs in the enclosing scope rather than as a root.
        nest: bool,
        // Nested: `rt` has been fitted to the enclosing context (see `nested_runtime`).
        fitted: bool,
        // A root's deadlines (see `crate::timer`).
        timers: TimerSlot,
    }

    impl<F> PinnedDrop for Enter<F> {
        fn drop(this: Pin<&mut Self>) {
            // The root is gone: this thread need not keep its runtime alive.
            forget_runtime(this.project().rt);
        }
    }
}

impl<F: Future> Future for Enter<F> {
    type Output = F::Output;

    // Inlined into the executor's poll of the task, as the task's own future would be
    // without it: a root is polled once per poll of its task, and that is the cost of
    // every task poll (see `context::Entered`). What is not the common poll of a root is
    // out of line ([`Enter::first_poll`]).
    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // A root has its node from its first poll on; a nested one never has one. (Read
        // through the projection: a shared reference to the whole would cover `fut`, an
        // async body that may hold references into itself.)
        if self.as_mut().project().node.is_none() {
            if let Some(out) = self.as_mut().first_poll(cx) {
                return out;
            }
        }
        let this = self.project();
        let fut = this.fut;
        let out = enter_task(this.node, this.rt, cx.waker(), this.timers, || fut.poll(cx));
        if out.is_ready() {
            // No deadline of the root's outlives it.
            drop(std::mem::take(this.timers));
        }
        out
    }
}

impl<F: Future> Enter<F> {
    /// A root not polled yet, or code to nest in the hatchery context it is polled in
    /// (`nest`: [`enter`]'s, not [`enter_root`]'s).
    fn new(rt: Arc<dyn Runtime>, fut: F, nest: bool) -> Enter<F> {
        Enter {
            fut,
            rt,
            node: None,
            nest,
            fitted: false,
            timers: TimerSlot::default(),
        }
    }

    /// A poll before the root has its node: decides whether it is a root (it stays one,
    /// as its scopes are under its node) and makes its node, or, nested in a hatchery
    /// context, polls it there and returns its output (every poll of a nested one comes
    /// here).
    #[inline(never)]
    fn first_poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Option<Poll<F::Output>> {
        let this = self.project();
        if *this.nest && is_entered() {
            if !*this.fitted {
                *this.fitted = true;
                if let Some(rt) = nested_runtime(this.rt) {
                    *this.rt = rt;
                }
            }
            let fut = this.fut;
            return Some(with_runtime(this.rt, || fut.poll(cx)));
        }
        *this.node = Some(Node::new(false, true));
        None
    }
}

/// Terminated when the wrapped future is.
impl<F: futures_core::future::FusedFuture> futures_core::future::FusedFuture for Enter<F> {
    fn is_terminated(&self) -> bool {
        self.fut.is_terminated()
    }
}

impl<F> fmt::Debug for Enter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enter").finish_non_exhaustive()
    }
}

/// The runtime that the code being polled runs on, or `None` outside hatchery.
///
/// For libraries: code written on `hatchery` alone finds its caller's runtime here, with
/// no argument, as every hatchery function does. With it, a library can
///
/// * tell which executor it runs on ([`Runtime::name`]: `"tokio"`, `"smol"`, a third
///   party's name), to pick a native type where it has one (tokio's sockets when the
///   name is `"tokio"`, say, and its own otherwise);
/// * bind async code that a plain thread runs to the same runtime: a thread-to-async
///   helper passes it to [`enter`] (see the example), so that the nurseries in that code
///   spawn their children on the caller's executor;
/// * read the clock ([`Runtime::now`]) or run blocking work
///   ([`Runtime::spawn_blocking`]) outside a task, on the caller's terms.
///
/// Spawning on it directly ([`Runtime::spawn`]) starts a task outside every nursery and
/// scope: nothing waits for it or cancels it. Spawn into a nursery instead.
///
/// Inside a [test run](crate::testing), this is the run's runtime: the backend's
/// executor under the run's clock and task tracking, whose [`name`](Runtime::name) is
/// the backend's. In code that [`enter`] nested on another runtime, it is that one.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use hatchery::rt;
///
/// assert!(rt::current().is_none()); // outside hatchery
///
/// // Which executor the library runs on.
/// let name = hatchery_tokio::run(async { rt::current().unwrap().name() });
/// assert_eq!(name, "tokio");
/// let name = hatchery_smol::run(async { rt::current().unwrap().name() });
/// assert_eq!(name, "smol");
///
/// // A plain thread that runs async code on its caller's runtime: the nursery's children
/// // are spawned on the caller's executor, the thread polls the root.
/// hatchery_smol::run(async {
///     let runtime = rt::current().expect("called from hatchery code");
///     let thread = std::thread::spawn(move || {
///         futures_lite::future::block_on(rt::enter(runtime, hatchery::nursery(|n| async move {
///             let h = n.spawn(async { Ok::<_, std::io::Error>(6 * 7) });
///             Ok(h.join().await?)
///         })))
///     });
///     let out = hatchery::run_blocking(move || thread.join().unwrap()).await;
///     assert_eq!(out.unwrap(), 42);
/// });
/// ```
pub fn current() -> Option<Arc<dyn Runtime>> {
    with_current(|c| c.map(|c| c.rt.clone()))
}

/// Whether the current thread is inside a hatchery context (a runtime is bound).
///
/// # Examples
///
/// ```
/// assert!(!hatchery::rt::is_entered());
/// hatchery_smol::run(async { assert!(hatchery::rt::is_entered()) });
/// ```
pub fn is_entered() -> bool {
    with_current(|c| c.is_some())
}
