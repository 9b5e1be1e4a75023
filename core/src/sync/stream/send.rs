//! The sending end of a memory stream, [`SendStream`], and its futures.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use super::*;

/// The sending end of a memory stream, made by [`memory_stream`].
///
/// Clone it to have several producers. The stream ends for receivers once every send
/// handle is closed (by [`close`](SendStream::close) or by being dropped) and the buffer
/// has drained.
///
/// Closing a handle closes *that handle* (as anyio's `aclose`): its sends that are waiting
/// wake up with [`SendError::Closed`], and it no longer counts as an open send end; the
/// other clones are unaffected. Cloning a closed handle gives a closed handle.
///
/// It is a [`Sink`](futures_sink::Sink), for the futures ecosystem's producers
/// (`SinkExt::send`, `send_all`, `StreamExt::forward`), with the guarantees of
/// [`send`](SendStream::send): see its `Sink` impl below.
///
/// # Examples
///
/// ```
/// use hatchery::sync::TryRecvError;
///
/// let (tx, rx) = hatchery::memory_stream(4);
/// let tx2 = tx.clone();
/// tx.try_send(1).unwrap();
/// tx2.try_send(2).unwrap();
/// tx.close(); // closes this handle only
/// tx2.try_send(3).unwrap();
/// drop(tx2); // the last open send handle
/// assert_eq!(rx.try_recv(), Ok(1));
/// assert_eq!(rx.try_recv(), Ok(2));
/// assert_eq!(rx.try_recv(), Ok(3));
/// assert_eq!(rx.try_recv(), Err(TryRecvError::EndOfStream)); // after the buffer drained
/// ```
pub struct SendStream<T> {
    pub(super) chan: Arc<Chan<T>>,
    /// This handle's id on the waiters' lists: [`NO_HANDLE`] until a send of it first
    /// waits (given then, under the stream's lock; see [`wait_registered`]).
    pub(super) handle: AtomicU64,
    pub(super) closed: AtomicBool,
    /// Whether a send of this handle ever waited (set under the stream's lock, before
    /// that send reads `closed` again): closing a handle that never did has no waiter to
    /// look for, and takes no lock for it (see [`SendStream::close`]).
    pub(super) waited: AtomicBool,
    /// Notified (all listeners) when this handle closes, for [`SendStream::closed`]: the
    /// `closed()` futures of the other handles are not woken.
    pub(super) closing: event_listener::Event,
    /// Whether a [`SendStream::closed`] future of this handle was ever polled: only then
    /// does closing it notify `closing`.
    pub(super) watched: AtomicBool,
    /// The state of the [`Sink`](futures_sink::Sink) impl, made by its first use.
    pub(super) sink: Option<Box<sink::SinkState<T>>>,
}

impl<T> SendStream<T> {
    /// Sends `item` if that is possible without waiting.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] if the buffer is full (for a rendezvous stream: if no
    /// receiver is waiting), [`TrySendError::Closed`] if this handle is closed,
    /// [`TrySendError::Broken`] if every receiver is gone. The item comes back in each.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::sync::TrySendError;
    ///
    /// let (tx, rx) = hatchery::memory_stream(1);
    /// assert!(tx.try_send(1).is_ok());
    /// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    /// drop(rx);
    /// assert_eq!(tx.try_send(3), Err(TrySendError::Broken(3)));
    /// ```
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let mut st = self.chan.lock();
        st.try_send(self.closed.load(Ordering::Acquire), item)
    }

    /// Sends `item`, waiting for room in the buffer (for a rendezvous stream: for a
    /// receiver to take it).
    ///
    /// Senders waiting on a full stream are woken in FIFO order, one for each item taken.
    /// This is not a reservation: a send polled before the woken one (a new `send`, or a
    /// waiting one whose task a sibling future woke) may take the room first, and the
    /// woken one waits again at the front. ([`Semaphore`](crate::sync::Semaphore) does
    /// reserve.) A waiting send that is kept without being polled (paused: a `select!`
    /// loser kept with `&mut`, or one lent to a timeout that fired) keeps its place and
    /// takes at most one wake-up: the next item taken wakes the send behind it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it completes, the item was not sent
    /// (it is dropped with the future), and the future leaves no waiter behind. If the
    /// enclosing scope is cancelled while it waits, it withdraws and never completes: the
    /// scope drops it, and nothing was sent. A send that completed had delivered its item
    /// (to the buffer, or for a rendezvous, to a receiver) in the same poll that returned.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] if this handle is (or gets) closed, [`SendError::Broken`] if
    /// every receiver is (or gets) gone, even if the buffer has room. The item comes back.
    ///
    /// # Panics
    ///
    /// When polled after it returned (outside a cancelled scope).
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let (tx, rx) = hatchery::memory_stream(4);
    /// tx.send("hello").await.unwrap();
    /// assert_eq!(rx.recv().await, Ok("hello"));
    /// # });
    /// ```
    pub fn send(&self, item: T) -> Send<'_, T> {
        Send {
            stream: self,
            item: Some(item),
            id: None,
        }
    }

    /// Sends `item`, blocking this thread until there is room (for a rendezvous: until a
    /// receiver takes it). For threads outside the executor (a plain thread, or
    /// [`run_blocking`](crate::run_blocking)); never call it from async code, where it
    /// would block an executor thread.
    ///
    /// # Errors
    ///
    /// As for [`send`](SendStream::send).
    ///
    /// # Panics
    ///
    /// When called from async code inside hatchery (a task or scope being polled on this
    /// thread), with a message that says to use the async method instead.
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let (tx, rx) = hatchery::memory_stream(0);
    /// let producer = std::thread::spawn(move || {
    ///     for i in 0..3 {
    ///         tx.send_blocking(i).unwrap();
    ///     }
    /// });
    /// let mut got = Vec::new();
    /// while let Ok(v) = rx.recv().await {
    ///     got.push(v);
    /// }
    /// producer.join().unwrap();
    /// assert_eq!(got, [0, 1, 2]);
    /// # });
    /// ```
    pub fn send_blocking(&self, item: T) -> Result<(), SendError<T>> {
        crate::sync::block_on(self.send(item))
    }

    /// Closes this handle: waiting sends on it fail with [`SendError::Closed`], and it
    /// stops counting as an open send end (when it was the last, receivers see
    /// end-of-stream after draining the buffer). Other clones are unaffected. Idempotent;
    /// dropping the handle does the same.
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let (tx, rx) = hatchery::memory_stream(4);
    /// tx.try_send(1).unwrap();
    /// tx.close();
    /// assert!(tx.is_closed());
    /// assert_eq!(rx.recv().await, Ok(1));
    /// assert_eq!(rx.recv().await, Err(hatchery::sync::RecvError::EndOfStream));
    /// # });
    /// ```
    pub fn close(&self) {
        // `closed` and `waited` are set and read in opposite orders here and in a send that
        // waits ([`wait_registered`]), sequentially consistent, so that one of the two
        // sees the other's: either this close looks for the send's waiter, or the send
        // sees the handle closed. The same for `watched` and a `closed()` future of this
        // handle, which sets it, then listens, then reads `closed` (a listener made
        // before that read is found by `notify`).
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let waited = self.waited.load(Ordering::SeqCst);
        let watched = self.watched.load(Ordering::SeqCst);
        self.release(waited, watched);
    }

    /// Closing, once this handle's `closed` is set: it stops counting as an open send
    /// handle, its waiting sends (if a send of it ever `waited`) fail, the receives see
    /// the end of the stream if it was the last, and its `closed()` futures (if one was
    /// ever `watched`) wake. Without the lock when the handle never waited and is not the
    /// last; without notifying when it was never watched (`notify` would make the event's
    /// state, an allocation per closed handle).
    fn release(&self, waited: bool, watched: bool) {
        let last = self.chan.senders.fetch_sub(1, Ordering::AcqRel) == 1;
        if waited || last {
            let mut st = self.chan.lock();
            // This handle's waiting sends find their waiter gone and fail with `Closed`;
            // the wake-ups that those had pass on. (Another handle's waiters are not
            // touched.)
            if waited && st.close_senders(self.handle.load(Ordering::Relaxed)) {
                st.wake_senders();
            }
            if last {
                st.senders_gone = true;
                st.wake_all_receivers();
            }
        }
        if watched {
            self.closing.notify(usize::MAX);
        }
    }

    /// Whether this handle is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = hatchery::memory_stream::<()>(1);
    /// let tx2 = tx.clone();
    /// assert!(!tx.is_closed());
    /// tx.close();
    /// assert!(tx.is_closed());
    /// assert!(!tx2.is_closed()); // closing one handle leaves its clones open
    /// ```
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Waits until no send through this handle can succeed any more: every receive
    /// handle is closed or dropped (a send would fail with [`SendError::Broken`]), or
    /// this handle is closed. Completes at once if that is already so.
    ///
    /// A producer that has nothing to send for a while can race this against its own
    /// work, so that it stops as soon as nobody listens (tokio's `Sender::closed`). A
    /// receive end has no counterpart: its `recv` reports end-of-stream once the buffer
    /// has drained. Another send handle closing does not wake it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future just stops waiting. If the enclosing scope is
    /// cancelled while it waits, it never completes (even if the stream breaks) and the
    /// scope drops it.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// let (tx, rx) = hatchery::memory_stream::<u64>(1);
    /// nursery(|n| async move {
    ///     n.spawn(async move {
    ///         // Stand-in for a producer waiting on something else: it stops once
    ///         // the consumer is gone.
    ///         tx.closed().await;
    ///         assert_eq!(tx.statistics().open_receive_streams, 0);
    ///         Ok(())
    ///     });
    ///     hatchery::checkpoint().await;
    ///     drop(rx); // the consumer leaves
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn closed(&self) -> SendClosed<'_, T> {
        SendClosed {
            stream: self,
            listeners: [None, None],
            done: false,
        }
    }

    /// Whether a send through this handle can no longer succeed.
    fn cannot_send(&self) -> bool {
        self.is_closed() || self.chan.lock().receivers == 0
    }

    /// A snapshot of the stream's statistics. Counting
    /// [`tasks_waiting_receive`](StreamStatistics::tasks_waiting_receive) looks at the
    /// scope of each waiting receive.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = hatchery::memory_stream(2);
    /// tx.try_send(1).unwrap();
    /// let s = tx.statistics();
    /// assert_eq!((s.current_buffer_used, s.max_buffer_size), (1, Some(2)));
    /// ```
    pub fn statistics(&self) -> StreamStatistics {
        statistics(&self.chan)
    }
}

impl<T> Clone for SendStream<T> {
    fn clone(&self) -> Self {
        // Without the lock. The count is only raised from one, or more, and `self` counts
        // unless it is closed: if it reached zero, `self` was closed meanwhile by another
        // thread, and its clone is closed too (as if cloned after that close).
        let closed = self.closed.load(Ordering::Acquire)
            || self
                .chan
                .senders
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n > 0).then_some(n + 1)
                })
                .is_err();
        SendStream {
            chan: self.chan.clone(),
            handle: AtomicU64::new(NO_HANDLE),
            closed: AtomicBool::new(closed),
            waited: AtomicBool::new(false),
            closing: event_listener::Event::new(),
            watched: AtomicBool::new(false),
            sink: None,
        }
    }
}

impl<T> Drop for SendStream<T> {
    fn drop(&mut self) {
        // As `close`, without its atomic swap: nothing else can reach the handle now (no
        // send or `closed()` future of it is left, nor a clone being made), so its flags
        // are read and set as plain fields.
        if std::mem::replace(self.closed.get_mut(), true) {
            return;
        }
        let (waited, watched) = (*self.waited.get_mut(), *self.watched.get_mut());
        self.release(waited, watched);
    }
}

impl<T> fmt::Debug for SendStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendStream")
            .field("closed", &self.is_closed())
            .field("statistics", &self.statistics())
            .finish()
    }
}

/// Future returned by [`SendStream::send`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::move_on_after;
/// use hatchery::sync::TryRecvError;
///
/// # hatchery_smol::run(async {
/// let (tx, rx) = hatchery::memory_stream(0); // rendezvous
/// let send: hatchery::futures::Send<'_, &str> = tx.send("hello");
/// // Nobody receives: the timeout ends the send, and nothing was sent.
/// assert_eq!(move_on_after(Duration::from_millis(5), send).await, None);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Send<'a, T> {
    stream: &'a SendStream<T>,
    item: Option<T>,
    id: Option<u64>,
}

// The item is never pinned.
impl<T> Unpin for Send<'_, T> {}

impl<T> Future for Send<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut st = this.stream.chan.lock();
        if rt::current_cancelled() {
            // Withdraw: nothing is sent; the scope drops us.
            st.remove_sender(this.id.take());
            return Poll::Pending;
        }
        let item = this.item.take().expect("`Send` polled after completion");
        let (stream, slot, waiter) = (this.stream, &mut this.item, &mut this.id);
        let flags = (&stream.handle, &stream.closed, &stream.waited);
        poll_send(&mut st, flags, item, slot, waiter, cx.waker(), false)
    }
}

impl<T> Drop for Send<'_, T> {
    fn drop(&mut self) {
        if self.id.is_some() {
            self.stream.chan.lock().remove_sender(self.id.take());
        }
    }
}

/// Terminated once it has returned (its item is then gone: sent, or given back in the
/// error).
impl<T> futures_core::future::FusedFuture for Send<'_, T> {
    fn is_terminated(&self) -> bool {
        self.item.is_none()
    }
}

impl<T> fmt::Debug for Send<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Send")
            .field("done", &self.item.is_none())
            .finish_non_exhaustive()
    }
}

/// Future returned by [`SendStream::closed`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::futures::SendClosed;
/// use hatchery::move_on_after;
///
/// # hatchery_smol::run(async {
/// let (tx, rx) = hatchery::memory_stream::<()>(0);
/// let closed: SendClosed<'_, ()> = tx.closed();
/// assert_eq!(move_on_after(Duration::from_millis(5), closed).await, None); // rx is open
/// rx.close();
/// tx.closed().await;
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct SendClosed<'a, T> {
    stream: &'a SendStream<T>,
    /// Listening for this handle's close, and for the last receiver's.
    listeners: [Option<event_listener::EventListener>; 2],
    /// It has returned (for [`FusedFuture`](futures_core::future::FusedFuture)).
    done: bool,
}

impl<T> Future for SendClosed<'_, T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if rt::current_cancelled() {
            return Poll::Pending;
        }
        let this = &mut *self;
        let stream = this.stream;
        // Before listening: see `SendStream::close`.
        stream.watched.store(true, Ordering::SeqCst);
        let events = [&stream.closing, &stream.chan.closing];
        let out = crate::sync::poll_until(events, &mut this.listeners, cx, || stream.cannot_send());
        this.done = out.is_ready();
        out
    }
}

/// Terminated once it has returned. (Polled again, it returns at once: a handle that
/// cannot send never can again.)
impl<T> futures_core::future::FusedFuture for SendClosed<'_, T> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

opaque_debug!(impl<T> SendClosed<'_, T>);
