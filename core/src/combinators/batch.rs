//! `batches`: cut a stream into batches by size and by time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::context as rt;
use crate::time::{now, sleep_until, Sleep};

/// The most items a new batch reserves room for up front.
const RESERVE: usize = 64;

/// Groups the items of `stream` into batches of at most `max_size` items, and cuts a batch
/// early once `max_wait` has passed since its first item arrived, that is, was taken
/// from `stream` (tokio-stream's `chunks_timeout`; Kafka's `linger`). Items that wait in
/// a channel while the consumer handles the batch before are not counted as waiting.
///
/// A batch is yielded as soon as it is full, or when its first item is `max_wait` old,
/// whichever comes first; so a slow trickle of items is still delivered promptly, and a
/// flood is delivered in full batches. The age is checked after every item too, so a
/// stream that is always ready but slow to produce each item does not hold a batch past
/// its time (and `Duration::ZERO` makes batches of one item). Batches are never empty.
/// When `stream` ends, the last, partial batch is yielded, then the batches end.
/// `Duration::MAX` means no time limit.
///
/// Time is the runtime's clock ([`now`](crate::now)), so a virtual clock applies.
///
/// # Cancel safety
///
/// Waiting for the next batch is cancel safe as long as the `Batches` stream is kept:
/// items already taken from `stream` stay in the pending batch. Dropping the `Batches`
/// stream drops that pending batch. So to shut down without losing items, end `stream`
/// (drop its senders) rather than cancel the consumer: the partial batch then comes
/// out. In a cancelled scope the next batch never completes
/// (like every hatchery wait), and the scope drops the wait.
///
/// # Panics
///
/// If `max_size` is zero. Polling panics outside a hatchery runtime once `stream` yields
/// an item (each item's arrival is read from the runtime's clock).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures_lite::{stream, StreamExt};
/// use hatchery::batches;
///
/// # hatchery_smol::run(async {
/// let rows = stream::iter(1..=7);
/// let sizes: Vec<usize> = batches(rows, 3, Duration::from_millis(50))
///     .map(|batch| batch.len())
///     .collect()
///     .await;
/// assert_eq!(sizes, [3, 3, 1]);
/// # });
/// ```
#[track_caller]
pub fn batches<S: Stream>(stream: S, max_size: usize, max_wait: Duration) -> Batches<S> {
    assert!(
        max_size > 0,
        "hatchery: `batches` needs a max_size of at least 1"
    );
    Batches {
        stream,
        max_size,
        max_wait,
        items: Vec::new(),
        deadline: None,
        timer: None,
        done: false,
    }
}

pin_project! {
    /// The [`Stream`] of batches made by [`batches`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures_lite::StreamExt;
    /// use hatchery::futures::Batches;
    /// use hatchery::{batches, memory_stream};
    ///
    /// # hatchery_smol::run(async {
    /// let (tx, rx) = memory_stream(16);
    /// let mut b: Batches<_> = batches(rx, 100, Duration::from_millis(10));
    /// tx.try_send(1).unwrap();
    /// tx.try_send(2).unwrap();
    /// // Far from full, but the first item is 10 ms old: the batch is cut by time.
    /// assert_eq!(b.next().await, Some(vec![1, 2]));
    /// drop(tx);
    /// assert_eq!(b.next().await, None);
    /// # });
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct Batches<S: Stream> {
        #[pin]
        stream: S,
        max_size: usize,
        max_wait: Duration,
        items: Vec<S::Item>,
        // When the pending batch is cut by time (`None`: no time limit or no batch), and
        // the timer that wakes us then (made when first needed).
        deadline: Option<Instant>,
        timer: Option<Sleep>,
        done: bool,
    }
}

/// Terminated once the stream has ended and its last batch has been returned.
impl<S: Stream> futures_core::FusedStream for Batches<S> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S: Stream> Stream for Batches<S> {
    type Item = Vec<S::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<S::Item>>> {
        let mut this = self.project();
        // In a cancelled scope, even after the end: like every hatchery wait.
        if rt::current_cancelled() {
            return Poll::Pending;
        }
        if *this.done {
            return Poll::Ready(None);
        }
        loop {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    let arrived = now();
                    if this.items.is_empty() {
                        *this.deadline = arrived.checked_add(*this.max_wait);
                        // Room for the batch, up to a small number: a large limit
                        // (`usize::MAX` for "cut by time only") is no size to allocate.
                        this.items.reserve((*this.max_size).min(RESERVE));
                    }
                    this.items.push(item);
                    // Full, or old enough: a stream that stays ready never lets the
                    // timer below be polled.
                    let full = this.items.len() >= *this.max_size;
                    if full || this.deadline.is_some_and(|d| arrived >= d) {
                        break;
                    }
                }
                Poll::Ready(None) => {
                    *this.done = true;
                    break;
                }
                Poll::Pending => {
                    let Some(deadline) = *this.deadline else {
                        return Poll::Pending;
                    };
                    let timer = this.timer.get_or_insert_with(|| sleep_until(deadline));
                    ready!(Pin::new(timer).poll(cx));
                    break;
                }
            }
        }
        *this.deadline = None;
        *this.timer = None;
        // Empty only at the end of the stream.
        let batch = std::mem::take(this.items);
        Poll::Ready((!batch.is_empty()).then_some(batch))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let pending = self.items.len();
        let (lo, hi) = self.stream.size_hint();
        // Full batches at least; at worst (time cuts) one item per batch.
        (
            pending.saturating_add(lo).div_ceil(self.max_size),
            hi.and_then(|h| h.checked_add(pending)),
        )
    }
}

impl<S: Stream> fmt::Debug for Batches<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batches")
            .field("max_size", &self.max_size)
            .field("max_wait", &self.max_wait)
            .field("pending", &self.items.len())
            .field("done", &self.done)
            .finish()
    }
}
