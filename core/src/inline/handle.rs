//! The handle of an inline child: [`TaskHandle`] and its [`Join`] future, which read
//! how the child ended from its [`Cell`](super::cell::Cell).

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::cell::{HandleCell, Slot};
use crate::context;
use crate::error::JoinError;
use crate::node::Node;
use crate::reason::said;

/// A handle to a child of an [inline nursery](super::nursery): wait for its value,
/// cancel just that child, or ask whether it has finished (rule N7).
///
/// Like [`crate::TaskHandle`], whose methods it shares: dropping it does not cancel the
/// child. Its value is dropped with the handle if the child has finished, or else with
/// the nursery's record when the child finishes.
///
/// # Examples
///
/// ```
/// use hatchery::inline;
///
/// # hatchery_smol::run(async {
/// let names = vec!["ada".to_string(), "grace".to_string()];
/// let names_ref = &names;
/// let longest = inline::nursery(|n| async move {
///     let handles: Vec<inline::TaskHandle<usize>> = names_ref
///         .iter()
///         .map(|name| n.spawn(async move { Ok::<_, std::io::Error>(name.len()) }))
///         .collect();
///     let mut best = 0;
///     for h in handles {
///         best = best.max(h.join().await?);
///     }
///     Ok(best)
/// })
/// .await
/// .unwrap();
/// assert_eq!(longest, 5);
/// assert_eq!(names.len(), 2); // borrowed, not moved
/// # });
/// ```
pub struct TaskHandle<T> {
    out: HandleCell<T>,
    node: Arc<Node>,
}

impl<T> TaskHandle<T> {
    pub(super) fn new(out: HandleCell<T>, node: Arc<Node>) -> Self {
        TaskHandle { out, node }
    }

    /// Waits for the child and returns its value.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if the future is dropped after the child finished, the value is
    /// lost (the child itself is not affected). If the enclosing scope is cancelled,
    /// this never completes and the scope drops it.
    ///
    /// # Panics
    ///
    /// When polled after it returned; when awaited by the child it joins (it would wait
    /// for itself forever).
    ///
    /// # Errors
    ///
    /// A [`JoinError`] if the child did not produce a value: it was cancelled, it failed
    /// (its error went to the nursery, which reports it), or it panicked (the nursery
    /// resumes the panic).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::inline;
    ///
    /// # hatchery_smol::run(async {
    /// let base = 40;
    /// let v = inline::nursery(|n| async move {
    ///     let h = n.spawn(async move { Ok::<_, std::io::Error>(base + 2) });
    ///     Ok(h.join().await?)
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(v, 42);
    /// # });
    /// ```
    pub fn join(self) -> Join<T> {
        Join {
            out: Some(self.out),
            node: self.node,
        }
    }

    /// Cancels this child only: it is dropped at its next suspension point (a shielded
    /// part runs to its end first), and its handle reports [`JoinError::is_cancelled`].
    /// Not a failure of the nursery. No effect if the child has finished.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{inline, sleep};
    ///
    /// # hatchery_smol::run(async {
    /// inline::nursery(|n| async move {
    ///     let h = n.spawn(async { sleep(Duration::from_secs(3600)).await; Ok::<_, std::io::Error>(()) });
    ///     h.cancel();
    ///     assert!(h.join().await.unwrap_err().is_cancelled());
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn cancel(&self) {
        let detail = said(Location::caller(), None);
        super::engine::cancel_child(&self.node, detail);
    }

    /// Whether the child has finished (its future has been dropped, or is being dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::inline;
    ///
    /// # hatchery_smol::run(async {
    /// let mut handle = None;
    /// inline::nursery(|n| {
    ///     handle = Some(n.spawn(async { Ok::<_, std::io::Error>(()) }));
    ///     async { Ok(()) }
    /// })
    /// .await
    /// .unwrap();
    /// assert!(handle.unwrap().is_finished()); // the nursery waited for it
    /// # });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.out.output().is_finished()
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Future returned by [`TaskHandle::join`].
///
/// # Examples
///
/// ```
/// use hatchery::inline::{self, Join};
///
/// # hatchery_smol::run(async {
/// inline::nursery(|n| async move {
///     let join: Join<&str> = n.spawn(async { Ok::<_, std::io::Error>("done") }).join();
///     assert_eq!(join.await.unwrap(), "done");
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Join<T> {
    /// Taken when it returns.
    out: Option<HandleCell<T>>,
    node: Arc<Node>,
}

impl<T> Join<T> {
    /// Cancels the child being joined, as [`TaskHandle::cancel`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{inline, move_on_after, sleep};
    ///
    /// # hatchery_smol::run(async {
    /// inline::nursery(|n| async move {
    ///     let mut join = n
    ///         .spawn(async { sleep(Duration::from_secs(3600)).await; Ok::<_, std::io::Error>(1) })
    ///         .join();
    ///     if move_on_after(Duration::from_millis(5), &mut join).await.is_none() {
    ///         join.cancel();
    ///         assert!(join.await.unwrap_err().is_cancelled());
    ///     }
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn cancel(&self) {
        let detail = said(Location::caller(), None);
        super::engine::cancel_child(&self.node, detail);
    }

    /// Whether the child has finished; `true` once the join has returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::inline;
    ///
    /// # hatchery_smol::run(async {
    /// inline::nursery(|n| async move {
    ///     let mut join = n.spawn(async { Ok::<_, std::io::Error>(1) }).join();
    ///     assert_eq!((&mut join).await.unwrap(), 1);
    ///     assert!(join.is_finished());
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.out
            .as_ref()
            .is_none_or(|cell| cell.output().is_finished())
    }
}

impl<T> Unpin for Join<T> {}

impl<T> Future for Join<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if context::current_cancelled() {
            return Poll::Pending;
        }
        let out = &self
            .out
            .as_ref()
            .expect("hatchery: `Join` polled after completion")
            .output();
        let take = |out: &super::cell::Output<T>| {
            let mut slot = out.lock();
            match std::mem::replace(&mut *slot, Slot::Taken) {
                Slot::Running => {
                    *slot = Slot::Running;
                    None
                }
                Slot::Done(result) => Some(result),
                Slot::Taken => Some(Err(JoinError::cancelled())),
            }
        };
        let result = match take(out) {
            Some(result) => result,
            None => {
                out.waker.register(cx.waker());
                match take(out) {
                    Some(result) => result,
                    None => {
                        let node = &self.node;
                        if context::with_current(|c| c.is_some_and(|c| c.node.is_within(node))) {
                            panic!(
                                "hatchery: an inline child joins its own handle: it would \
                                 wait for itself forever"
                            );
                        }
                        return Poll::Pending;
                    }
                }
            }
        };
        self.out = None;
        Poll::Ready(result)
    }
}

impl<T> fmt::Debug for Join<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join")
            .field("finished", &self.is_finished())
            .finish()
    }
}
