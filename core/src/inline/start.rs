//! [`Nursery::start`] for inline nurseries: the child is polled by the caller, under the
//! caller's cancellation, until it calls [`TaskStatus::started`]; then the nursery takes
//! it over (rule N6).

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use super::engine::{ChildWaker, Shared};
use super::{cell, LocalChild, SendChild};
use crate::context;
use crate::error::StartError;
use crate::node::{Hold, Label, Node};
use crate::TaskStatus;

/// Future returned by an inline [`Nursery::start`].
///
/// # Examples
///
/// ```
/// use hatchery::inline::{self, Start};
/// use hatchery::StartError;
///
/// # hatchery_smol::run(async {
/// inline::nursery(|n| async move {
///     let start: Start<(), &str, inline::SendChild<'_, &str>> =
///         n.start(|_status| async { Err::<(), _>("cannot bind") });
///     assert!(matches!(start.await, Err(StartError::Failed("cannot bind"))));
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Start<V, E, C> {
    shared: Arc<Shared<E, C>>,
    slot: Arc<Mutex<Option<V>>>,
    child: Option<C>,
    state: State,
    // Where `start` was called: the child's site (its span's, its failure's).
    at: &'static Location<'static>,
}

enum State {
    Fresh,
    Running {
        own: Arc<Node<ChildWaker>>,
        node: Option<Arc<Node>>,
        polled: bool,
        /// On the scope of the caller that polls it (rule S7).
        hold: Hold,
    },
    /// Cancelled under the caller's scope, which ends the work and drops us.
    Stalled,
    Done,
}

impl<V, E, C> Unpin for Start<V, E, C> {}

impl<V, E, C> fmt::Debug for Start<V, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Start").finish_non_exhaustive()
    }
}

impl<'env, E: 'env> crate::Nursery<E, SendChild<'env, E>> {
    /// Starts a child and waits until it says it is ready, returning the value it passes
    /// to [`TaskStatus::started`] (trio's `nursery.start`, rule N6).
    ///
    /// Until then the child is polled by the caller, under the caller's cancellation, and
    /// an error or panic of it comes out of `start`; after `started` it is a child of
    /// the nursery like any other. A pending `start` keeps the nursery open.
    ///
    /// # Cancel safety
    ///
    /// If the caller's scope is cancelled before `started`, the child is cancelled at
    /// its next suspension point and `start` never returns (the scope does). Dropping the
    /// future drops a child that has not started.
    ///
    /// # Panics
    ///
    /// A panic of the child before `started` is resumed here.
    ///
    /// # Errors
    ///
    /// [`StartError::Failed`] if the child failed before `started`,
    /// [`StartError::NotStarted`] if it returned without calling it,
    /// [`StartError::Closed`] if the nursery had finished.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{inline, sleep};
    ///
    /// # hatchery_smol::run(async {
    /// let name = String::from("db");
    /// let name = &name;
    /// inline::nursery(|n| async move {
    ///     let ready = n
    ///         .start(|status| async move {
    ///             sleep(Duration::from_millis(1)).await; // connect...
    ///             status.started(name.len());
    ///             sleep(Duration::from_millis(1)).await; // ...then serve
    ///             Ok(())
    ///         })
    ///         .await?;
    ///     assert_eq!(ready, 2);
    ///     Ok::<_, anyhow::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn start<V, T, F, Fut>(&self, f: F) -> Start<V, E, SendChild<'env, E>>
    where
        F: FnOnce(TaskStatus<V>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'env,
        T: Send + 'env,
        V: Send,
    {
        let slot = Arc::new(Mutex::new(None));
        let fut = f(TaskStatus::inline(slot.clone()));
        Start {
            shared: self.shared.clone(),
            slot,
            child: Some(SendChild(cell::send_owner(
                async move { fut.await.map(drop) },
                Label {
                    site: Location::caller(),
                    name: None,
                },
            ))),
            state: State::Fresh,
            at: Location::caller(),
        }
    }
}

impl<'env, E: 'env> crate::Nursery<E, LocalChild<'env, E>> {
    /// Starts a child, which need not be `Send`, as [`Nursery::start`] does for a
    /// [`nursery`](super::nursery).
    ///
    /// # Cancel safety
    ///
    /// As [`Nursery::start`].
    ///
    /// # Panics
    ///
    /// As [`Nursery::start`].
    ///
    /// # Errors
    ///
    /// As [`Nursery::start`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use hatchery::inline;
    ///
    /// # hatchery_smol::run_current_thread(async {
    /// inline::local_nursery(|n| async move {
    ///     let v = n.start(|status| async move { status.started(Rc::new(1)); Ok(()) }).await?;
    ///     assert_eq!(*v, 1);
    ///     Ok::<_, anyhow::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn start<V, T, F, Fut>(&self, f: F) -> Start<V, E, LocalChild<'env, E>>
    where
        F: FnOnce(TaskStatus<V>) -> Fut,
        Fut: Future<Output = Result<T, E>> + 'env,
        T: 'env,
    {
        let slot = Arc::new(Mutex::new(None));
        let fut = f(TaskStatus::inline(slot.clone()));
        Start {
            shared: self.shared.clone(),
            slot,
            child: Some(LocalChild(cell::local_owner(
                async move { fut.await.map(drop) },
                Label {
                    site: Location::caller(),
                    name: None,
                },
            ))),
            state: State::Fresh,
            at: Location::caller(),
        }
    }
}

impl<V, E, C> Future for Start<V, E, C>
where
    C: Future<Output = Result<(), E>> + Unpin,
{
    type Output = Result<V, StartError<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match this.state {
            State::Done => panic!("hatchery: `Start` polled after completion"),
            State::Stalled => return Poll::Pending,
            State::Fresh => {
                if !this.shared.reserve() {
                    this.state = State::Done;
                    return Poll::Ready(Err(StartError::Closed));
                }
                let caller = context::current();
                // The child runs under the caller's scopes, which must reach it through
                // their lists (a movable root is not walked through).
                caller.node.link_ancestors();
                let own = Arc::new(Node::task_root(&caller.node, this.shared.waker_ext(), true));
                let node: Arc<Node> = own.clone();
                node.link();
                this.state = State::Running {
                    own,
                    node: Some(node),
                    polled: false,
                    hold: Hold::new(&caller.node),
                };
            }
            State::Running { .. } => follow_caller(&mut this.state),
        }
        let State::Running {
            own, node, polled, ..
        } = &mut this.state
        else {
            unreachable!()
        };
        let cancelled = *polled && own.should_drop();
        let polled_now = if cancelled {
            None
        } else {
            *polled = true;
            let child = this.child.as_mut().expect("start child present");
            let rt = this.shared.rt.clone();
            Some(catch_unwind(AssertUnwindSafe(|| {
                context::enter_with(node, &rt, cx.waker(), || Pin::new(child).poll(cx))
            })))
        };
        let started = this.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        match polled_now {
            Some(Ok(Poll::Pending)) => {
                own.register(cx.waker());
                if let Some(v) = started {
                    let erased: Arc<Node> = own.clone();
                    if erased.reparent(&this.shared.node) {
                        let State::Running { own, .. } =
                            std::mem::replace(&mut this.state, State::Done)
                        else {
                            unreachable!()
                        };
                        let child = this.child.take().expect("start child present");
                        this.shared.fill(child, own, this.at);
                        return Poll::Ready(Ok(v));
                    }
                    // The caller is cancelled: `started` is ignored.
                    drop(v);
                }
                if !own.should_drop() {
                    return Poll::Pending;
                }
                this.end(true);
                this.state = State::Stalled;
                Poll::Pending
            }
            None => {
                drop(started);
                this.end(true);
                this.state = State::Stalled;
                Poll::Pending
            }
            Some(ended) => {
                this.end(false);
                this.state = State::Done;
                match (ended, started) {
                    (Ok(Poll::Ready(Ok(()))), Some(v)) => Poll::Ready(Ok(v)),
                    (Ok(Poll::Ready(Ok(()))), None) => Poll::Ready(Err(StartError::NotStarted)),
                    (Ok(Poll::Ready(Err(e))), Some(v)) => {
                        // Started, then failed in the same poll: the error is the
                        // nursery's.
                        this.shared.fail(e, Some(this.at));
                        Poll::Ready(Ok(v))
                    }
                    (Ok(Poll::Ready(Err(e))), None) => Poll::Ready(Err(StartError::Failed(e))),
                    (Err(p), _) => resume_unwind(p),
                    (Ok(Poll::Pending), _) => unreachable!(),
                }
            }
        }
    }
}

impl<V, E, C> Start<V, E, C> {
    /// Drops the child (in its context if it was cancelled) and gives its slot back.
    fn end(&mut self, cancelled: bool) {
        let State::Running { own, node, .. } = std::mem::replace(&mut self.state, State::Done)
        else {
            return;
        };
        let child = self.child.take();
        let rt = self.shared.rt.clone();
        let mut node = node;
        let waker = std::task::Waker::noop();
        let dropped = if cancelled {
            context::drop_cancelled(&mut node, &rt, waker, || {
                catch_unwind(AssertUnwindSafe(|| drop(child)))
            })
        } else {
            catch_unwind(AssertUnwindSafe(|| drop(child)))
        };
        own.detach();
        own.finish();
        own.register(waker);
        self.shared.unreserve();
        if let Err(p) = dropped {
            resume_unwind(p);
        }
    }
}

impl<V, E, C> Drop for Start<V, E, C> {
    fn drop(&mut self) {
        if matches!(self.state, State::Running { .. }) {
            // Dropped before the child started (C8): it goes with us.
            self.end(false);
        }
    }
}

/// A kept `Start` polled under another scope than before (the loser of a race awaited
/// again, a `start` lent to a timeout and then awaited): its child, which has not
/// started, runs under the cancellation of whoever awaits it (rule S7), so it moves under
/// the caller's scope, and so does the hold.
fn follow_caller(state: &mut State) {
    let State::Running { own, hold, .. } = state else {
        return;
    };
    let moved = context::with_current(|c| {
        // Awaited outside hatchery (a plain thread's `block_on`): nothing to follow.
        let node = c?.node;
        if hold.is_on(node) {
            return None;
        }
        node.link_ancestors();
        let child: Arc<Node> = own.clone();
        // Refused if the child or its old scope is cancelled: then it is, or now takes
        // that cancellation, and ends at its next suspension point.
        child.reparent(node);
        Some(Hold::new(node))
    });
    if let Some(new) = moved {
        drop(std::mem::replace(hold, new));
    }
}
