//! `produce`: a producer task feeding a bounded stream to a consumer, both inside one
//! nursery (trio's `as_safe_channel`).

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use futures_core::Stream;

use crate::child::Join;
use crate::combinators::ops::kept;
use crate::context as rt;
use crate::error::NurseryError;
use crate::nursery::{nursery_at, Nursery};
use crate::sync::stream::{memory_stream, ReceiveStream, SendStream};

/// Runs `producer` as a task that sends items into a bounded stream, and hands
/// `consumer` a [`Stream`] of them; returns what `consumer` returns, once the producer
/// has stopped (trio's `as_safe_channel`, Python's async generator made safe).
///
/// This is the scoped form of a generator: `produce` opens a nursery around `consumer`
/// and spawns the producer into it. The producer sends with backpressure: at most
/// `capacity` items wait in the stream (`0` is a rendezvous: each send waits for the
/// consumer to take the item). The consumer reads [`Items`], the items in the order
/// they were sent, each `Ok`; if the producer returns `Err(e)`, the consumer then reads
/// `Err(e)`, and the stream ends. When the consumer returns, for any reason, the
/// producer is cancelled, and `produce` waits for it to stop, its own nurseries and
/// shielded cleanup included, before it returns. So the consumer may stop reading
/// early, with `break` or `?`, and nothing outlives the call. Dropping the stream
/// inside `consumer` cancels the producer at once (it is reaped when `consumer`
/// returns).
///
/// The producer is a task of the executor (`Send + 'static`, in parallel with the
/// consumer on a multi-threaded runtime), like the body of a trio generator, which runs
/// in a task of its nursery; it gets the stream's [`SendStream`], which it may clone
/// into tasks of its own. The consumer runs in the caller's task and may borrow.
///
/// # Errors
///
/// [`NurseryError::Failed`] with every error that nobody handled (the consumer's value,
/// if it returned one, is dropped), in the order they happened: a producer's error that
/// the consumer did not read (it stopped reading first), then the consumer's own error,
/// then errors the producer returned after the consumer had ended (a send in a shield,
/// say, which fails once the consumer is gone).
/// An error the consumer read from the stream is the consumer's: returned with `?`, it
/// comes out once; dropped, it is gone. Being cancelled is not an error: a producer
/// stopped because the consumer ended reports nothing. Never
/// [`NurseryError::Cancelled`].
///
/// # Cancel safety
///
/// If the enclosing scope is cancelled, `consumer` is dropped at its suspension point,
/// the producer is cancelled and awaited, then this future never completes (the
/// cancelled scope returns), unless the producer had returned an error the consumer
/// did not read: that is reported, as a nursery reports errors returned before it was
/// cancelled. Dropping it from outside hatchery cancels the producer without waiting
/// for it (see [`nursery`](crate::nursery)).
///
/// # Panics
///
/// If the producer or the consumer panics (or the closure that makes either): the other
/// is cancelled and, once both have stopped, the panic is resumed here. A consumer that
/// reads the stream out of the panic's reach (shielded) sees it end, without an error.
/// When first polled outside a hatchery runtime. When kept past the scope it was first
/// polled in, cancelled by that scope while it ran, and awaited after that scope has
/// finished (see [Combinators](crate#combinators)). Any `capacity` is valid.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use futures_lite::StreamExt;
/// use hatchery::testing::{elapsed, virtual_time};
/// use hatchery::{finally, produce, sleep};
///
/// # hatchery_smol::run(virtual_time(async {
/// let closed = Arc::new(AtomicBool::new(false));
/// let c = closed.clone();
/// // Pages of a listing, fetched one second apart; the reader wants the first three.
/// let first = produce(
///     1,
///     move |tx| {
///         let fetch = async move {
///             for page in 1.. {
///                 sleep(Duration::from_secs(1)).await;
///                 tx.send(page).await?;
///             }
///             Ok(())
///         };
///         // The cleanup runs, shielded, even when the reader stops early.
///         finally(fetch, async move { c.store(true, Ordering::SeqCst) })
///     },
///     |pages| async move {
///         let got: Vec<u32> = pages.take(3).try_collect().await?;
///         Ok::<_, anyhow::Error>(got)
///     },
/// )
/// .await
/// .unwrap();
/// assert_eq!(first, [1, 2, 3]);
/// assert!(closed.load(Ordering::SeqCst)); // the producer has stopped, cleanup done
/// assert_eq!(elapsed(), Duration::from_secs(3));
/// # }));
/// ```
#[track_caller]
pub fn produce<T, E, R, P, PFut, C, CFut>(
    capacity: usize,
    producer: P,
    consumer: C,
) -> impl Future<Output = Result<R, NurseryError<E>>>
where
    T: Send + 'static,
    E: Send + 'static,
    P: FnOnce(SendStream<T>) -> PFut,
    PFut: Future<Output = Result<(), E>> + Send + 'static,
    C: FnOnce(Items<T, E>) -> CFut,
    CFut: Future<Output = Result<R, E>>,
{
    // The caller's place, for the nursery and the producer's task.
    let site = Location::caller();
    async move {
        // What the consumer ended with, and the producer's error it did not read: kept
        // outside the nursery, which reports only what came after (the producer's
        // errors once the consumer is gone).
        let mut ended = None;
        let slot = &mut ended;
        let r = nursery_at::<E, _, _, _>(site, move |n| async move {
            let (tx, rx) = memory_stream(capacity);
            let shared = Arc::new(Shared::default());
            let fut = producer(tx.clone());
            let task = producer_task(fut, tx, shared.clone());
            let producer = match n.try_spawn_at(site, task) {
                Ok(handle) => handle.join(),
                Err(e) => panic!("hatchery: produce: {e}"),
            };
            let reading = Reading {
                shared: shared.clone(),
                n: n.clone(),
                site,
            };
            let items = Items {
                rx,
                shared,
                producer: Some(producer),
                finished: false,
            };
            let out = consumer(items).await;
            // The producer is not wanted any more: cancelled, and the nursery waits for
            // it to stop.
            n.cancel();
            *slot = Some((out, reading.end()));
            Ok(())
        })
        .await;
        let late = match kept("produce", r) {
            Ok(()) => Vec::new(),
            Err(e) => e.into_errors(),
        };
        let Some((out, unread)) = ended else {
            // The consumer was cancelled: only errors are left to report.
            return Err(NurseryError::Failed(late));
        };
        // In the order they happened: the unread error came before the consumer ended,
        // and `late` after.
        let mut errors: Vec<E> = unread.into_iter().collect();
        let value = out.map_err(|e| errors.push(e)).ok();
        errors.extend(late);
        match value {
            Some(v) if errors.is_empty() => Ok(v),
            _ => Err(NurseryError::Failed(errors)),
        }
    }
}

/// The producer's task: runs `fut` and records how it ended where the stream looks for
/// it, before `last`, the stream's last sender, goes (so the consumer never sees the end
/// first). An error once the consumer is gone goes to the nursery.
async fn producer_task<T, E, F>(
    fut: F,
    last: SendStream<T>,
    shared: Arc<Shared<E>>,
) -> Result<(), E>
where
    F: Future<Output = Result<(), E>>,
{
    let last = Closing {
        _last: last,
        shared,
    };
    match fut.await {
        Err(e) => {
            let mut state = last.shared.lock();
            if state.gone {
                return Err(e);
            }
            state.error = Some(e);
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

/// What the producer's task and the consumer share.
struct Shared<E> {
    state: Mutex<State<E>>,
}

struct State<E> {
    /// The producer's error, not read yet.
    error: Option<E>,
    /// The producer panicked: the stream waits for its task to end before it ends.
    panicked: bool,
    /// The consumer has ended: a later error of the producer goes to the nursery.
    gone: bool,
}

impl<E> Default for Shared<E> {
    fn default() -> Self {
        Shared {
            state: Mutex::new(State {
                error: None,
                panicked: false,
                gone: false,
            }),
        }
    }
}

impl<E> Shared<E> {
    fn lock(&self) -> MutexGuard<'_, State<E>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The consumer has ended: the producer's error it did not read.
    fn end(&self) -> Option<E> {
        let mut state = self.lock();
        state.gone = true;
        state.error.take()
    }
}

/// The stream's last sender, held by the producer's task: dropped after the producer's
/// error or panic is recorded, so that the consumer never sees the end first.
struct Closing<T, E> {
    _last: SendStream<T>,
    shared: Arc<Shared<E>>,
}

impl<T, E> Drop for Closing<T, E> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared.lock().panicked = true;
        }
    }
}

/// Held by the consumer's side. If the consumer is dropped before it ends (cancelled
/// by an enclosing scope, or panicking), hands the producer's error it did not read to
/// the nursery, which reports it as a nursery reports an error returned before it was
/// cancelled.
struct Reading<E: Send + 'static> {
    shared: Arc<Shared<E>>,
    n: Nursery<E>,
    site: &'static Location<'static>,
}

impl<E: Send + 'static> Reading<E> {
    /// The consumer has ended: the producer's error it did not read.
    fn end(self) -> Option<E> {
        self.shared.end() // (then dropped with nothing left to hand over)
    }
}

impl<E: Send + 'static> Drop for Reading<E> {
    fn drop(&mut self) {
        if let Some(e) = self.shared.end() {
            // A task spawned into a draining nursery is still polled once (N5); a
            // closed nursery has nobody left to report to.
            let _ = self
                .n
                .try_spawn_at(self.site, async move { Err::<(), E>(e) });
        }
    }
}

/// The items of a [`produce`] producer, in the order it sent them, then its error if it
/// returned one; made by [`produce`].
///
/// Each item is `Ok`. If the producer returns `Err(e)`, the stream gives `Err(e)` after
/// every item sent before, and then ends; if it returns `Ok(())`, the stream ends. It
/// ends when the producer returns (its own tasks have finished by then), not when its
/// `SendStream` is dropped. An error read here is the consumer's to handle (`?` returns it
/// from `produce`); one the consumer never reads is reported by `produce`.
///
/// A producer that panics gives no error item. Its panic goes to the nursery, which
/// cancels the consumer and resumes the panic once both have stopped; a consumer out of
/// its reach (shielded, or in a `finally`) sees the stream end once the producer's task
/// has ended.
///
/// # Cancel safety
///
/// Waiting for the next item is a hatchery wait: in a cancelled scope it never
/// completes. It is cancel safe: an item (or the error) sent while nobody waits stays in
/// the stream for the next call. Dropping the stream cancels the producer.
///
/// # Examples
///
/// ```
/// use futures_lite::StreamExt;
/// use hatchery::futures::Items;
/// use hatchery::produce;
///
/// # hatchery_smol::run(async {
/// let r = produce(
///     0,
///     |tx| async move {
///         tx.send(1).await.map_err(|_| "consumer gone")?;
///         Err("disk full")
///     },
///     |mut items: Items<u32, &str>| async move {
///         assert_eq!(items.next().await, Some(Ok(1)));
///         assert_eq!(items.next().await, Some(Err("disk full")));
///         assert_eq!(items.next().await, None);
///         Ok(())
///     },
/// )
/// .await;
/// assert!(r.is_ok()); // the consumer read the error: it is handled
/// # });
/// ```
pub struct Items<T, E> {
    rx: ReceiveStream<T>,
    shared: Arc<Shared<E>>,
    /// The producer's task, until a panicked one has ended.
    producer: Option<Join<()>>,
    /// The end has been returned.
    finished: bool,
}

impl<T, E> Stream for Items<T, E> {
    type Item = Result<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T, E>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if let Some(v) = ready!(Pin::new(&mut this.rx).poll_next(cx)) {
            return Poll::Ready(Some(Ok(v)));
        }
        // Every sender is gone: the producer recorded how it ended before the last went.
        let panicked = {
            let mut state = this.shared.lock();
            if let Some(e) = state.error.take() {
                return Poll::Ready(Some(Err(e)));
            }
            state.panicked
        };
        // A panicked producer: the stream ends once its nursery has heard of the panic
        // (before the task's handle does), so a reader the panic cancels waits to be
        // dropped rather than see the end; one out of its reach sees the end.
        if panicked {
            if rt::current_cancelled() {
                return Poll::Pending;
            }
            if let Some(task) = &mut this.producer {
                // Its result is the nursery's to report: the stream just ends.
                let _ = ready!(Pin::new(task).poll(cx));
                this.producer = None;
            }
            if rt::current_cancelled() {
                return Poll::Pending;
            }
        }
        this.finished = true;
        Poll::Ready(None)
    }
}

/// Terminated once the end has been returned.
impl<T, E> futures_core::FusedStream for Items<T, E> {
    fn is_terminated(&self) -> bool {
        self.finished
    }
}

impl<T, E> Drop for Items<T, E> {
    fn drop(&mut self) {
        if let Some(task) = &self.producer {
            task.cancel();
        }
    }
}

impl<T, E> fmt::Debug for Items<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Items").finish_non_exhaustive()
    }
}
