//! `as_completed`: a stream of outputs in the order the futures finish.

use std::any::Any;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use atomic_waker::AtomicWaker;
use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::child::Join;
use crate::context as rt;
use crate::nursery::{nursery_at, Nursery};

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
/// panic is resumed here (a `body` that reads the stream out of the panic's reach,
/// shielded, sees it end, without the panicked future's output). When first polled
/// outside a hatchery runtime. When kept past the scope it was first polled in, cancelled
/// by that scope while it ran, and awaited after that scope has finished: its outputs are
/// gone (see [Combinators](crate#combinators)).
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
#[track_caller]
pub fn as_completed<I, B, BFut>(futs: I, body: B) -> impl Future<Output = BFut::Output>
where
    I: IntoIterator,
    I::Item: Future + Send + 'static,
    <I::Item as Future>::Output: Send + 'static,
    B: FnOnce(AsCompleted<<I::Item as Future>::Output>) -> BFut,
    BFut: Future,
{
    // The caller's place, for the nursery and its tasks (task tree, hold warnings).
    let site = Location::caller();
    async move {
        let out = nursery_at::<Infallible, _, _, _>(site, |n| async move {
            let stream = as_completed_at(site, &n, futs);
            let out = body(stream).await;
            // Whatever is still running is not wanted any more (even if `body` kept the
            // stream): cancel it; the nursery waits for it to stop.
            n.cancel();
            Ok(out)
        })
        .await;
        super::ops::no_errors("as_completed", out)
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
    as_completed_at(Location::caller(), n, futs)
}

/// [`as_completed_in`], its tasks spawned at `site`.
#[track_caller]
fn as_completed_at<E, I>(
    site: &'static Location<'static>,
    n: &Nursery<E>,
    futs: I,
) -> AsCompleted<<I::Item as Future>::Output>
where
    E: Send + 'static,
    I: IntoIterator,
    I::Item: Future + Send + 'static,
    <I::Item as Future>::Output: Send + 'static,
{
    let chan = Arc::new(Chan {
        queue: Mutex::new(Queue {
            items: VecDeque::new(),
            unwound: Vec::new(),
        }),
        senders: AtomicUsize::new(0),
        waker: AtomicWaker::new(),
    });
    let futs = futs.into_iter();
    let mut handles = Vec::with_capacity(futs.size_hint().0);
    // A loop, not a closure, so that a panic names the caller (`#[track_caller]`).
    for fut in futs {
        chan.senders.fetch_add(1, Ordering::AcqRel);
        let tx = Sender {
            chan: Some(chan.clone()),
            index: handles.len(),
        };
        let spawned = n.try_spawn_at(site, async move {
            match (CatchUnwind { fut: Some(fut) }).await {
                Ok(v) => tx.send(v),
                Err(panic) => {
                    tx.unwound();
                    resume_unwind(panic)
                }
            }
            Ok(())
        });
        match spawned {
            Ok(handle) => handles.push(handle.join()),
            Err(e) => panic!("hatchery: as_completed_in: {e}"),
        }
    }
    AsCompleted {
        chan,
        handles,
        unwinding: Vec::new(),
    }
}

pin_project! {
    /// Polls a future and catches its panics, its drop's included: a future is dropped
    /// as soon as it returns, so that a panic in that drop is its panic too.
    struct CatchUnwind<F> {
        #[pin]
        fut: Option<F>,
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut fut = self.project().fut;
        let polled = catch_unwind(AssertUnwindSafe(|| {
            let running = fut.as_mut().as_pin_mut().expect("polled after completion");
            let v = ready!(running.poll(cx));
            fut.set(None);
            Poll::Ready(v)
        }));
        match polled {
            Ok(p) => p.map(Ok),
            Err(panic) => {
                // Dropped now, not while the panic unwinds on: a second panic from its
                // drop is lost (the first one wins, as in a nursery), not an abort.
                let _ = catch_unwind(AssertUnwindSafe(|| fut.set(None)));
                Poll::Ready(Err(panic))
            }
        }
    }
}

struct Chan<T> {
    queue: Mutex<Queue<T>>,
    /// Children that have not finished, or whose panic the stream has not seen reach the
    /// nursery yet (each running one holds a `Sender`).
    senders: AtomicUsize,
    waker: AtomicWaker,
}

struct Queue<T> {
    items: VecDeque<T>,
    /// The children whose future panicked, by index, not yet taken by the stream.
    unwound: Vec<usize>,
}

impl<T> Chan<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<T>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Held by a child until it sends its output, until its future panics, or until it is
/// cancelled.
struct Sender<T> {
    chan: Option<Arc<Chan<T>>>,
    /// The child's place in `AsCompleted::handles`.
    index: usize,
}

impl<T> Sender<T> {
    /// Queues the output and stops counting this child as running, in one step under the
    /// queue's lock, so that [`AsCompleted::remaining`] never counts it twice.
    fn send(mut self, v: T) {
        let chan = self.chan.take().expect("sent once");
        {
            let mut queue = chan.lock();
            queue.items.push_back(v);
            chan.senders.fetch_sub(1, Ordering::AcqRel);
        }
        chan.waker.wake();
    }

    /// The child's future panicked, and the panic is on its way to the nursery. Counted
    /// as done now, the child would let the body, polling on another thread meanwhile,
    /// see a clean end of the stream before the panic cancels it; never counted as done,
    /// it would keep a body that drains the stream out of the panic's reach (shielded, or
    /// in a `finally`) waiting forever. So the stream takes the child's index, and counts
    /// it as done once the child's task has ended, which is after its nursery heard of
    /// the panic.
    fn unwound(mut self) {
        let chan = self.chan.take().expect("sent once");
        chan.lock().unwound.push(self.index);
        chan.waker.wake();
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // Cancelled (or dropped by an unwinding executor): no output will come.
        if let Some(chan) = self.chan.take() {
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
/// A future that panics gives no item. Its panic goes to the nursery, which cancels the
/// futures and the code reading the stream, and resumes the panic once all have stopped.
/// The stream counts that future as finished only once its nursery has heard of the
/// panic, so a reader that the cancellation reaches never sees the end first; a reader
/// out of its reach (shielded, or in a `finally`) sees the stream end once the others
/// have stopped, as in trio, where a crashed producer closes its channel.
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
    handles: Vec<Join<()>>,
    /// Children whose future panicked, taken from `Queue::unwound`: each counts as
    /// running until its task has ended.
    unwinding: Vec<usize>,
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
        let (queued, running) = self.counts();
        queued + running
    }

    /// The outputs queued, and the futures still running (a panicked one gives no
    /// output). Read together under the lock, which a child holds while it moves its
    /// output from one count to the other.
    fn counts(&self) -> (usize, usize) {
        let queue = self.chan.lock();
        let senders = self.chan.senders.load(Ordering::Acquire);
        let panicked = queue.unwound.len() + self.unwinding.len();
        (queue.items.len(), senders - panicked)
    }

    /// Counts as done the children whose panic has reached their nursery: their task has
    /// ended (the nursery hears of a panic before the task's handle does).
    fn reap_unwound(&mut self, cx: &mut Context<'_>) {
        let unwound = std::mem::take(&mut self.chan.lock().unwound);
        self.unwinding.extend(unwound);
        let handles = &mut self.handles;
        let chan = &self.chan;
        self.unwinding.retain(|&i| {
            // Its result is the nursery's to report: the stream just ends without it.
            let ended = Pin::new(&mut handles[i]).poll(cx).is_ready();
            if ended {
                chan.senders.fetch_sub(1, Ordering::AcqRel);
            }
            !ended
        });
    }
}

impl<T> Stream for AsCompleted<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if rt::current_cancelled() {
            return Poll::Pending;
        }
        let this = self.get_mut();
        if let Some(v) = this.chan.lock().items.pop_front() {
            return Poll::Ready(Some(v));
        }
        this.chan.waker.register(cx.waker());
        this.reap_unwound(cx);
        // A child pushes its output (or its index, if it panicked) before it stops
        // counting as running: read the count first.
        let done = this.chan.senders.load(Ordering::Acquire) == 0;
        if let Some(v) = this.chan.lock().items.pop_front() {
            return Poll::Ready(Some(v));
        }
        // The cancellation checked on entry may have come since: a panicking child
        // cancels the nursery before its handle says it ended, and the last sibling stops
        // only once cancelled. A reader that saw the count reach zero therefore sees that
        // cancellation now, and must wait to be dropped rather than see a clean end.
        if done && !rt::current_cancelled() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (queued, running) = self.counts();
        (queued, Some(queued + running))
    }
}

/// Terminated once every future has finished and every output has been taken: the
/// next poll returns `None`.
impl<T> futures_core::FusedStream for AsCompleted<T> {
    fn is_terminated(&self) -> bool {
        // A child pushes its output before it stops counting: read the count first.
        self.chan.senders.load(Ordering::Acquire) == 0 && self.chan.lock().items.is_empty()
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
