//! The receiving end of a memory stream, [`ReceiveStream`], and its future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use super::*;

/// The receiving end of a memory stream, made by [`memory_stream`].
///
/// Clone it to have several consumers; each item goes to exactly one of them. It is a
/// [`futures_core::Stream`] that ends at end-of-stream (or when this handle is closed).
///
/// Closing a handle closes *that handle*: its receives that are waiting wake up with
/// [`RecvError::Closed`]. Once every receive handle is closed, senders get
/// [`SendError::Broken`] and buffered items are dropped.
///
/// # Examples
///
/// ```
/// use futures_lite::StreamExt;
///
/// # hatchery_smol::run(async {
/// let (tx, rx) = hatchery::memory_stream(4);
/// let rx2 = rx.clone();
/// for i in 1..=4 {
///     tx.try_send(i).unwrap();
/// }
/// drop(tx);
/// assert_eq!(rx2.recv().await, Ok(1)); // each item goes to one receiver
/// let rest: Vec<u32> = rx.collect().await; // a `Stream`, up to end-of-stream
/// assert_eq!(rest, [2, 3, 4]);
/// # });
/// ```
pub struct ReceiveStream<T> {
    pub(super) chan: Arc<Chan<T>>,
    pub(super) handle: u64,
    pub(super) closed: AtomicBool,
    /// Whether a receive of this handle ever waited (as [`SendStream::waited`]).
    pub(super) waited: AtomicBool,
    /// The waiter of `poll_next`.
    pub(super) next: Option<u64>,
}

impl<T> ReceiveStream<T> {
    /// Takes the next item if there is one, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if no item is buffered (a sender waiting in `send` on a
    /// rendezvous stream keeps its item: use [`recv`](ReceiveStream::recv) to meet it),
    /// or if the last item is still being handed to another receive;
    /// [`TryRecvError::EndOfStream`] if the buffer is drained, every sender is gone and
    /// no item is in flight; [`TryRecvError::Closed`] if this handle is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::sync::TryRecvError;
    ///
    /// let (tx, rx) = hatchery::memory_stream(1);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.try_send(7).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.try_recv(), Ok(7));
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::EndOfStream));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut st = self.chan.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(TryRecvError::Closed);
        }
        if let Some(item) = st.pop() {
            return Ok(item);
        }
        if st.ended() {
            Err(TryRecvError::EndOfStream)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Receives the next item, waiting for one.
    ///
    /// Receivers waiting on an empty stream are woken in FIFO order, and a sender hands
    /// its item straight to the longest waiting receive (for a rendezvous stream, or an
    /// empty buffer). An item that comes back from a cancelled receive is not reserved:
    /// the receive polled first takes it; it wakes one waiting receive, as each item in
    /// the stream does. A waiting receive that is kept without being polled (paused)
    /// keeps its place: it may be handed an item, which it holds until it is awaited or
    /// dropped, and it takes at most one wake-up for an item in the stream, so the next
    /// item wakes the receive behind it. One paused in a cancelled scope (lent to a
    /// timeout that fired) takes nothing, neither items nor wake-ups, until it is polled
    /// again outside that scope (a wake-up it had before its scope was cancelled stays
    /// with it until it is polled or dropped). A receive that was passed over (woken for
    /// an item that another receive took first, or polled again after a cancelled scope)
    /// waits again at the front. Buffered items are delivered before
    /// end-of-stream, and end-of-stream is final: it is not reported while an item is
    /// still being handed to another receive, which might give it back.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no item is lost. If the future is dropped before it completes, it took
    /// nothing; an item a sender had already handed to it goes back to the *front* of the
    /// stream for the next receiver (this covers a scope deadline firing during a
    /// handover). If the enclosing scope is cancelled while it waits, it withdraws
    /// without taking an item and never completes: the scope drops it. The
    /// cancellation is checked before an item is taken, never after.
    ///
    /// # Errors
    ///
    /// [`RecvError::EndOfStream`] once the buffer is drained and every sender is gone;
    /// [`RecvError::Closed`] if this handle is (or gets) closed.
    ///
    /// # Panics
    ///
    /// When polled after it returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::sync::RecvError;
    /// # hatchery_smol::run(async {
    /// let (tx, rx) = hatchery::memory_stream(4);
    /// tx.send(1).await.unwrap();
    /// drop(tx);
    /// assert_eq!(rx.recv().await, Ok(1));
    /// assert_eq!(rx.recv().await, Err(RecvError::EndOfStream));
    /// # });
    /// ```
    pub fn recv(&self) -> Recv<'_, T> {
        Recv {
            stream: self,
            id: None,
            done: false,
        }
    }

    /// Receives the next item, blocking this thread until there is one. For threads
    /// outside the executor; never call it from async code.
    ///
    /// # Errors
    ///
    /// As for [`recv`](ReceiveStream::recv).
    ///
    /// # Panics
    ///
    /// When called from async code inside hatchery (a task or scope being polled on this
    /// thread), with a message that says to use the async method instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = hatchery::memory_stream(4);
    /// let consumer = std::thread::spawn(move || {
    ///     let mut sum = 0;
    ///     while let Ok(v) = rx.recv_blocking() {
    ///         sum += v;
    ///     }
    ///     sum
    /// });
    /// for i in 1..=4 {
    ///     tx.send_blocking(i).unwrap();
    /// }
    /// drop(tx);
    /// assert_eq!(consumer.join().unwrap(), 10);
    /// ```
    pub fn recv_blocking(&self) -> Result<T, RecvError> {
        crate::sync::block_on(self.recv())
    }

    /// Closes this handle: waiting receives on it fail with [`RecvError::Closed`], and
    /// it stops counting as an open receive end. When it was the last, senders get
    /// [`SendError::Broken`] and buffered items are dropped. Other clones are unaffected.
    /// Idempotent; dropping the handle does the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::sync::SendError;
    /// # hatchery_smol::run(async {
    /// let (tx, rx) = hatchery::memory_stream(4);
    /// rx.close();
    /// assert_eq!(tx.send(1).await, Err(SendError::Broken(1)));
    /// # });
    /// ```
    pub fn close(&self) {
        let mut st = self.chan.lock();
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        st.receivers -= 1;
        // This handle's waiting receives find their waiter gone and fail with `Closed`;
        // an item already handed to one of them goes back to the front of the stream,
        // and a wake-up one had passes on. (Another handle's waiters are not touched.)
        if self.waited.load(Ordering::Relaxed)
            && st.close_receivers(self.handle)
            && st.buffered() > 0
        {
            st.wake_receivers();
        }
        if st.receivers == 0 {
            // Dropped outside the lock: an item's destructor is user code.
            let dropped = (
                std::mem::take(&mut st.buf),
                std::mem::take(&mut st.returned),
            );
            for w in st.send.waiters.iter() {
                w.waker.wake_by_ref();
            }
            drop(st);
            // Wake `closed()` first: the state is final, and an item's destructor may
            // panic.
            crate::sync::notify_listeners(&self.chan.closing);
            drop(dropped);
        }
    }

    /// Whether this handle is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, rx) = hatchery::memory_stream::<()>(1);
    /// rx.close();
    /// assert!(rx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// A snapshot of the stream's statistics. Counting
    /// [`tasks_waiting_receive`](StreamStatistics::tasks_waiting_receive) looks at the
    /// scope of each waiting receive.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = hatchery::memory_stream::<()>(0);
    /// let _rx2 = rx.clone();
    /// assert_eq!(tx.statistics().open_receive_streams, 2);
    /// ```
    pub fn statistics(&self) -> StreamStatistics {
        statistics(&self.chan)
    }
}

impl<T> Clone for ReceiveStream<T> {
    fn clone(&self) -> Self {
        let mut st = self.chan.lock();
        let closed = self.closed.load(Ordering::Acquire);
        if !closed {
            st.receivers += 1;
        }
        let handle = st.id();
        ReceiveStream {
            chan: self.chan.clone(),
            handle,
            closed: AtomicBool::new(closed),
            waited: AtomicBool::new(false),
            next: None,
        }
    }
}

impl<T> Drop for ReceiveStream<T> {
    fn drop(&mut self) {
        if self.next.is_some() {
            self.chan.lock().remove_receiver(self.next.take());
        }
        self.close();
    }
}

impl<T> fmt::Debug for ReceiveStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiveStream")
            .field("closed", &self.is_closed())
            .field("statistics", &self.statistics())
            .finish()
    }
}

impl<T> Unpin for ReceiveStream<T> {}

/// Yields items until end-of-stream, or until this handle is closed.
///
/// Polling it follows the rules of [`ReceiveStream::recv`], cancel safety included: a
/// poll in a cancelled scope takes nothing and withdraws.
///
/// One difference, because a `Stream` stays registered between polls and the `next()`
/// future that polled it may be gone for good (a lost `select!` branch) while the handle
/// lives on: no item is ever handed to a waiting `poll_next`. An item sent for it stays
/// in the stream, where any receiver of any handle takes it, and every handle waiting in
/// `poll_next` is woken for it. So a handle left idle never holds an item back from the
/// other receivers. In a rendezvous stream, a send completes when it finds a receiver
/// waiting, and a waiting `poll_next` counts as one once per poll (not once its scope is
/// cancelled): a handle whose `next()` was dropped lets at most one send complete
/// without a receive.
///
/// # Examples
///
/// A receive on a clone gets the item although another handle's `next()` was dropped
/// while it waited:
///
/// ```
/// use futures_lite::{future, StreamExt};
///
/// # hatchery_smol::run(async {
/// let (tx, mut rx) = hatchery::memory_stream::<u32>(0);
/// let rx2 = rx.clone();
/// // A `next()` that registers, then loses a race and is dropped.
/// assert_eq!(future::poll_once(rx.next()).await, None);
/// tx.try_send(1).unwrap(); // completes: `rx` was waiting
/// assert_eq!(rx2.try_recv(), Ok(1)); // but any handle takes the item
/// # });
/// ```
impl<T> futures_core::Stream for ReceiveStream<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let mut st = this.chan.lock();
        if rt::current_cancelled() {
            st.remove_receiver(this.next.take());
            return Poll::Pending;
        }
        let closed = this.closed.load(Ordering::Acquire);
        let out = st.poll_recv(&mut this.next, this.handle, closed, cx.waker(), true);
        if this.next.is_some() {
            this.waited.store(true, Ordering::Relaxed);
        }
        out.map(Result::ok)
    }
}

/// The stream is over for good once this handle is closed, or once every sender is gone
/// and no item is left, buffered or in flight: `select!`-style code can skip it.
///
/// # Examples
///
/// ```
/// use futures_core::FusedStream;
///
/// let (tx, rx) = hatchery::memory_stream::<u8>(1);
/// tx.try_send(1).unwrap();
/// drop(tx);
/// assert!(!rx.is_terminated()); // an item is left
/// assert_eq!(rx.try_recv(), Ok(1));
/// assert!(rx.is_terminated());
/// ```
impl<T> futures_core::FusedStream for ReceiveStream<T> {
    fn is_terminated(&self) -> bool {
        let st = self.chan.lock();
        self.closed.load(Ordering::Acquire) || st.ended()
    }
}

/// Future returned by [`ReceiveStream::recv`].
///
/// # Examples
///
/// ```
/// use hatchery::futures::Recv;
///
/// # hatchery_smol::run(async {
/// let (tx, rx) = hatchery::memory_stream(1);
/// let recv: Recv<'_, u32> = rx.recv();
/// tx.try_send(5).unwrap(); // sent before the receive is first polled
/// assert_eq!(recv.await, Ok(5));
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'a, T> {
    stream: &'a ReceiveStream<T>,
    id: Option<u64>,
    done: bool,
}

impl<T> Future for Recv<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // A second poll after `Ready` would take a second item.
        crate::sync::poll_once(&mut this.done, "Recv", || {
            let mut st = this.stream.chan.lock();
            // Checked before an item is taken: a cancelled receive takes nothing.
            if rt::current_cancelled() {
                st.remove_receiver(this.id.take());
                return Poll::Pending;
            }
            let closed = this.stream.closed.load(Ordering::Acquire);
            let out = st.poll_recv(&mut this.id, this.stream.handle, closed, cx.waker(), false);
            if this.id.is_some() {
                this.stream.waited.store(true, Ordering::Relaxed);
            }
            out
        })
    }
}

impl<T> Drop for Recv<'_, T> {
    fn drop(&mut self) {
        if self.id.is_some() {
            self.stream.chan.lock().remove_receiver(self.id.take());
        }
    }
}

waiting_future_impls!(impl<T> Recv<'_, T>, finish_non_exhaustive);
