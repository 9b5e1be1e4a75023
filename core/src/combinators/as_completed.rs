//! `as_completed`: a stream of outputs in the order the futures finish.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use futures_core::Stream;

use crate::nursery::{nursery, Nursery};
use crate::rt;
use crate::task::TaskHandle;

/// Runs every future concurrently and hands `body` a [`Stream`] of their outputs in the
/// order they finish (Python's `asyncio.as_completed`). Returns what `body` returns, once
/// every future has stopped.
///
/// This is the scoped form: the futures live in a nursery that `as_completed` opens around
/// `body`. When `body` returns, the futures that have not finished are cancelled, and
/// `as_completed` waits for them to stop before it returns. Dropping the stream inside
/// `body` cancels them at once (they are reaped when `body` returns). So `body` may stop
/// reading early, with `break` or `?`, and nothing is leaked. To read the outputs in a
/// nursery you already have, use [`as_completed_in`].
///
/// The stream's items are the futures' outputs; for fallible futures they are `Result`s,
/// and an `Err` does not cancel the others (decide in `body`, and return or drop the
/// stream to stop them).
///
/// # Cancel safety
///
/// If the enclosing scope is cancelled, `body` is dropped at its suspension point, every
/// future is cancelled and awaited, then this future never completes (the cancelled scope
/// returns). Dropping it from outside hatchery cancels the futures without waiting for them
/// (see [`nursery`](crate::nursery)).
///
/// # Panics
///
/// If a future or `body` panics: the rest are cancelled and, once all have stopped, the
/// panic is resumed here. When first polled outside a hatchery runtime. When kept past
/// the scope it was first polled in, cancelled by that scope while it ran, and awaited
/// after that scope has finished: its outputs are gone (see
/// [Combinators](crate#combinators)).
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use futures_lite::StreamExt;
/// use hatchery::testing::{elapsed, virtual_time};
/// use hatchery::{as_completed, sleep};
///
/// struct Stopped(Arc<AtomicUsize>); // counts the fetches that have been dropped
/// impl Drop for Stopped {
///     fn drop(&mut self) {
///         self.0.fetch_add(1, Ordering::SeqCst);
///     }
/// }
///
/// # hatchery_smol::run(virtual_time(async {
/// let stopped = Arc::new(AtomicUsize::new(0));
/// let fetch = |secs: u64| {
///     let guard = Stopped(stopped.clone());
///     async move {
///         let _guard = guard;
///         sleep(Duration::from_secs(secs)).await;
///         secs
///     }
/// };
/// // Take the two fastest answers; the hour-long one is cancelled and reaped.
/// let fastest = as_completed([60, 3600, 1].map(fetch), |mut done| async move {
///     let a = done.next().await.unwrap();
///     let b = done.next().await.unwrap();
///     vec![a, b]
/// })
/// .await;
/// assert_eq!(fastest, [1, 60]);
/// assert_eq!(stopped.load(Ordering::SeqCst), 3); // the hour-long one has stopped too...
/// assert_eq!(elapsed(), Duration::from_secs(60)); // ...at once, not after an hour
/// # }));
/// ```
pub async fn as_completed<I, B, BFut>(futs: I, body: B) -> BFut::Output
where
    I: IntoIterator,
    I::Item: Future + Send + 'static,
    <I::Item as Future>::Output: Send + 'static,
    B: FnOnce(AsCompleted<<I::Item as Future>::Output>) -> BFut,
    BFut: Future,
{
    let out = nursery::<Infallible, _, _, _>(|n| async move {
        let stream = as_completed_in(&n, futs);
        let out = body(stream).await;
        // Whatever is still running is not wanted any more (even if `body` kept the
        // stream): cancel it; the nursery waits for it to stop.
        n.cancel();
        Ok(out)
    })
    .await;
    match super::not_kept("as_completed", out) {
        Ok(v) => v,
        Err(_) => unreachable!("hatchery: `as_completed` children cannot fail"),
    }
}

/// Spawns every future into the nursery `n` and returns a [`Stream`] of their outputs in
/// the order they finish.
///
/// Dropping the stream cancels the futures that have not finished yet; like every child
/// of `n`, they are awaited before the nursery returns. That is how a stream, which cannot
/// wait in its destructor, still never leaks a task: the nursery reaps what the stream
/// cancelled. For a form that reaps before it returns, use [`as_completed`].
///
/// The futures are children of `n`: their failures (none, since they report through the
/// stream) and panics follow the nursery's rules, and cancelling `n` cancels them.
///
/// # Cancel safety
///
/// The call does not wait: it spawns every future into `n` at once. Waiting for the
/// stream's items is cancel safe, and never completes in a cancelled scope (see
/// [`AsCompleted`]). Cancelling `n`, or a scope around it, cancels the futures as it does
/// the rest of `n`'s children.
///
/// # Panics
///
/// If the nursery has already finished (like [`Nursery::spawn`]) and `futs` is not empty.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use futures_lite::StreamExt;
/// use hatchery::testing::{elapsed, virtual_time};
/// use hatchery::{as_completed_in, nursery, sleep};
///
/// struct Stopped(Arc<AtomicUsize>); // counts the futures that have been dropped
/// impl Drop for Stopped {
///     fn drop(&mut self) {
///         self.0.fetch_add(1, Ordering::SeqCst);
///     }
/// }
///
/// # hatchery_smol::run(virtual_time(async {
/// let stopped = Arc::new(AtomicUsize::new(0));
/// let futs = [5u64, 1, 3600].map(|secs| {
///     let guard = Stopped(stopped.clone());
///     async move {
///         let _guard = guard;
///         sleep(Duration::from_secs(secs)).await;
///         secs
///     }
/// });
/// let first = nursery(|n| async move {
///     let mut done = as_completed_in(&n, futs);
///     Ok::<_, std::io::Error>(done.next().await)
///     // `done` is dropped here: the other two are cancelled, and the nursery waits
///     // for them before it returns.
/// })
/// .await
/// .unwrap();
/// assert_eq!(first, Some(1));
/// assert_eq!(stopped.load(Ordering::SeqCst), 3); // the other two have stopped...
/// assert_eq!(elapsed(), Duration::from_secs(1)); // ...at once
/// # }));
/// ```
#[track_caller]
pub fn as_completed_in<E, I>(n: &Nursery<E>, futs: I) -> AsCompleted<<I::Item as Future>::Output>
where
    E: Send + 'static,
    I: IntoIterator,
    I::Item: Future + Send + 'static,
    <I::Item as Future>::Output: Send + 'static,
{
    let chan = Arc::new(Chan {
        queue: Mutex::new(VecDeque::new()),
        senders: AtomicUsize::new(0),
        waker: AtomicWaker::new(),
    });
    let futs = futs.into_iter();
    let mut handles = Vec::with_capacity(futs.size_hint().0);
    // A loop, not a closure, so that a panic names the caller (`#[track_caller]`).
    for fut in futs {
        chan.senders.fetch_add(1, Ordering::AcqRel);
        let tx = Sender(Some(chan.clone()));
        let spawned = n.try_spawn(async move {
            tx.send(fut.await);
            Ok(())
        });
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => panic!("hatchery: as_completed_in: {e}"),
        }
    }
    AsCompleted { chan, handles }
}

struct Chan<T> {
    queue: Mutex<VecDeque<T>>,
    /// Children that have not finished (each holds a `Sender`).
    senders: AtomicUsize,
    waker: AtomicWaker,
}

impl<T> Chan<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<T>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Held by a child until it sends its output, or until it is cancelled.
struct Sender<T>(Option<Arc<Chan<T>>>);

impl<T> Sender<T> {
    /// Queues the output and stops counting this child as running, in one step under the
    /// queue's lock, so that [`AsCompleted::remaining`] never counts it twice.
    fn send(mut self, v: T) {
        let chan = self.0.take().expect("sent once");
        {
            let mut queue = chan.lock();
            queue.push_back(v);
            chan.senders.fetch_sub(1, Ordering::AcqRel);
        }
        chan.waker.wake();
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // Dropped by a panic unwinding its future: that panic cancels the body once it
        // reaches the nursery. Counted as done now, the child would let the body, polling
        // on another thread meanwhile, see a clean end of the stream first.
        if std::thread::panicking() {
            return;
        }
        if let Some(chan) = self.0.take() {
            chan.senders.fetch_sub(1, Ordering::AcqRel);
            chan.waker.wake();
        }
    }
}

/// A [`Stream`] of the outputs of futures in the order they finish; made by
/// [`as_completed`] and [`as_completed_in`].
///
/// The stream ends when every future has finished or been cancelled. Dropping it cancels
/// the futures that have not finished.
///
/// Waiting for the next item is a hatchery wait: in a cancelled scope it never completes.
/// It is cancel safe: an output that arrives while nobody waits stays queued for the next
/// call.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures_lite::StreamExt;
/// use hatchery::futures::AsCompleted;
/// use hatchery::testing::virtual_time;
/// use hatchery::{as_completed_in, nursery, sleep};
///
/// # hatchery_smol::run(virtual_time(async {
/// let order = nursery(|n| async move {
///     let done: AsCompleted<u64> = as_completed_in(&n, [60u64, 1, 25].map(|s| async move {
///         sleep(Duration::from_secs(s)).await;
///         s
///     }));
///     Ok::<_, std::io::Error>(done.collect::<Vec<_>>().await)
/// })
/// .await
/// .unwrap();
/// assert_eq!(order, [1, 25, 60]); // in the order they finished
/// # }));
/// ```
pub struct AsCompleted<T> {
    chan: Arc<Chan<T>>,
    handles: Vec<TaskHandle<()>>,
}

impl<T> AsCompleted<T> {
    /// How many outputs are still to come: queued, or of futures still running.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_lite::StreamExt;
    /// use hatchery::as_completed;
    ///
    /// # hatchery_smol::run(async {
    /// as_completed([1, 2].map(|x| async move { x }), |mut done| async move {
    ///     assert_eq!(done.remaining(), 2);
    ///     done.next().await;
    ///     assert_eq!(done.remaining(), 1);
    /// })
    /// .await;
    /// # });
    /// ```
    pub fn remaining(&self) -> usize {
        // Read together under the lock, which a child holds while it moves its output
        // from one count to the other.
        let queue = self.chan.lock();
        queue.len() + self.chan.senders.load(Ordering::Acquire)
    }
}

impl<T> Stream for AsCompleted<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if rt::current_cancelled() {
            return Poll::Pending;
        }
        let chan = &self.chan;
        if let Some(v) = chan.lock().pop_front() {
            return Poll::Ready(Some(v));
        }
        chan.waker.register(cx.waker());
        // A child pushes its output before it stops counting as running: read the count
        // first.
        let done = chan.senders.load(Ordering::Acquire) == 0;
        if let Some(v) = chan.lock().pop_front() {
            return Poll::Ready(Some(v));
        }
        if done {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let queue = self.chan.lock();
        let queued = queue.len();
        (
            queued,
            Some(queued + self.chan.senders.load(Ordering::Acquire)),
        )
    }
}

impl<T> Drop for AsCompleted<T> {
    fn drop(&mut self) {
        for h in &self.handles {
            h.cancel();
        }
    }
}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.remaining())
            .finish()
    }
}
