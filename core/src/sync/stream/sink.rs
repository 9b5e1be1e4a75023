//! `Sink` for [`SendStream`]: the futures ecosystem's producer interface (`SinkExt::send`,
//! `send_all`, `StreamExt::forward`), with the guarantees of [`SendStream::send`].
//!
//! `poll_ready` waits for room, and `start_send` sends at once, under the stream's lock,
//! so that an item accepted is an item in the stream. Readiness is not a reservation (as
//! for `send`), so another handle on another thread may take the room between the two
//! calls: then the item waits in this handle (`SinkState::item`) until the next
//! `poll_ready`, `poll_flush` or `poll_close` sends it.
//!
//! The handle's waiter is registered by a poll and outlives the future that polled it
//! (`SinkExt::send`, dropped by a scope or a lost `select!` branch, cannot tell the
//! handle): so it is a `Sink` waiter, which takes no wake-up from the other senders (see
//! `State::wake_senders`): each is woken, and forgotten, whenever there is room.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use super::{poll_send, rt, wait_registered, SendError, SendStream, State, TrySendError};

/// The state of a handle used as a `Sink` (boxed: made by the first use, so that a
/// handle never used as one stays small).
pub(super) struct SinkState<T> {
    /// The waiter of a `poll_ready` that found no room, or of a flush of `item` (a `Sink`
    /// waiter: removed when woken, so the id may be stale).
    waiter: Option<u64>,
    /// An item `start_send` accepted but found no room for (another sender took it after
    /// `poll_ready`). A `Mutex` only so that `SendStream<T>` stays `Sync` for `T: Send`: it
    /// is reached through `&mut` (`get_mut`), never locked.
    item: Mutex<Option<T>>,
}

impl<T> State<T> {
    /// Whether a send could complete now (as [`State::push`] decides): an empty stream
    /// with a receive waiting for an item, or room in the buffer.
    fn has_room(&mut self) -> bool {
        (self.buffered() == 0 && self.recv.first_taker().is_some()) || self.buffered() < self.cap
    }
}

/// The sink state of a handle, made on first use.
fn state<T>(sink: &mut Option<Box<SinkState<T>>>) -> &mut SinkState<T> {
    sink.get_or_insert_with(|| {
        Box::new(SinkState {
            waiter: None,
            item: Mutex::new(None),
        })
    })
}

impl<T> SendStream<T> {
    /// Sends the item that `start_send` left in this handle, if any, waiting for room:
    /// never in a cancelled scope, where it withdraws (the item stays here).
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError<T>>> {
        let Some(sink) = self.sink.as_deref_mut() else {
            return Poll::Ready(Ok(()));
        };
        let slot = sink.item.get_mut().unwrap_or_else(PoisonError::into_inner);
        let Some(item) = slot.take() else {
            return Poll::Ready(Ok(()));
        };
        let mut st = self.chan.lock();
        if rt::current_cancelled() {
            *slot = Some(item);
            st.remove_sender(sink.waiter.take());
            return Poll::Pending;
        }
        let (flags, waiter) = ((&self.handle, &self.closed, &self.waited), &mut sink.waiter);
        poll_send(&mut st, flags, item, slot, waiter, cx.waker(), true)
    }
}

/// A send handle is a [`Sink`](futures_sink::Sink), so the futures ecosystem's
/// producers work on it: `SinkExt::send`, `SinkExt::send_all`, `StreamExt::forward`
/// (from `futures-util`). It keeps the guarantees of [`send`](SendStream::send).
///
/// * `poll_ready` waits for room in the stream (for a rendezvous stream: for a receive
///   waiting for an item). It does not fail: for a closed handle or a stream with no
///   receiver, it is ready, and `start_send` returns the error with the item. Unlike a
///   `send`, a handle waiting in `poll_ready` holds no place in the FIFO order of the
///   waiting sends, since the future that polled it may be gone for good while the handle
///   lives on (a `SinkExt::send` dropped by a scope or a lost `select!` branch): it is
///   woken whenever there is room, and never keeps a wake-up from the sends behind it.
///   So a sink waiting is never in the way of the other senders; in return, many handles
///   waiting as sinks are all woken for each item taken, and race for the room.
/// * `start_send` sends the item at once: when it returns `Ok`, the item is in the
///   stream (or handed to a receive), and `poll_flush` has nothing left to do. Readiness
///   is not a reservation (nor is it for `send`): if another handle, on another thread,
///   took the room between `poll_ready` and `start_send`, the item waits in this handle,
///   and the next `poll_ready`, `poll_flush` or `poll_close` sends it first, waiting
///   for room as `poll_ready` does. Items of one handle arrive in the order they were
///   given.
/// * `poll_close` sends that item if there is one, then closes *this handle*, as
///   [`close`](SendStream::close) does: the other clones stay open, and receivers see
///   the end of the stream once every send handle is closed and the buffer has drained.
///   It does not wait for receivers to take the items. `StreamExt::forward` closes the
///   sink when its stream ends; `send_all` does not.
///
/// The error is [`SendError`], with the item that was not sent: `Closed` once this
/// handle is closed (by `poll_close` too), `Broken` once every receive handle is gone.
///
/// The inherent [`send`](SendStream::send) and [`close`](SendStream::close) come before
/// `SinkExt`'s in method calls: `tx.send(item)` is the stream's own send (the same
/// guarantees, without `&mut`), and `tx.close()` closes at once. Call `SinkExt`'s as
/// `SinkExt::send(&mut tx, item)` and `SinkExt::close(&mut tx)`.
///
/// # Cancel safety
///
/// As for `send`: a `SinkExt::send` dropped while it waits for room sent nothing (its
/// item is dropped with it). The handle stays registered as waiting (counted in
/// [`tasks_waiting_send`](crate::sync::StreamStatistics::tasks_waiting_send)) until
/// there is room, its next poll, or its close, taking nothing from anyone. If the
/// enclosing scope is cancelled while it waits, `poll_ready` never completes (polled in
/// the cancelled scope, it withdraws): the scope drops the send, and nothing was sent.
/// `poll_flush` and `poll_close` have nothing to wait for and complete even in a
/// cancelled scope (`poll_close` closes the handle), except for an item left in the
/// handle by the race above: sending it is a wait like the others, so in a cancelled
/// scope it withdraws and the item stays in the handle, to be sent by its next
/// `poll_ready`, `poll_flush` or `poll_close` outside that scope (or dropped with the
/// handle).
///
/// # Panics
///
/// `start_send` panics when an item is still waiting in the handle, which a successful
/// `poll_ready` would have sent first (the `Sink` contract requires one before each
/// `start_send`).
///
/// # Examples
///
/// ```
/// use futures_util::{stream, SinkExt, StreamExt};
/// use hatchery::{memory_stream, nursery};
///
/// # hatchery_smol::run(async {
/// let (mut tx, rx) = memory_stream::<u32>(1);
/// let got = nursery(|n| async move {
///     n.spawn(async move {
///         // `SinkExt::send` (`tx.send(0)` is `SendStream::send`, which means the same).
///         SinkExt::send(&mut tx, 0).await?;
///         // Every item of a stream, then close the handle (the only one: the end).
///         stream::iter(1..5).map(Ok).forward(tx).await?;
///         Ok(())
///     });
///     Ok::<_, hatchery::sync::SendError<u32>>(rx.collect::<Vec<_>>().await)
/// })
/// .await
/// .unwrap();
/// assert_eq!(got, [0, 1, 2, 3, 4]);
/// # });
/// ```
impl<T> futures_sink::Sink<T> for SendStream<T> {
    type Error = SendError<T>;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        // An item left by an earlier `start_send` goes first.
        std::task::ready!(this.poll_pending(cx))?;
        let mut st = this.chan.lock();
        if rt::current_cancelled() {
            // Withdraw: the scope drops the send, which sent nothing.
            st.remove_sender(this.sink.as_mut().and_then(|s| s.waiter.take()));
            return Poll::Pending;
        }
        // A closed handle or a broken stream is ready: `start_send` gives the item back
        // with the error.
        if this.closed.load(Ordering::Acquire) || st.receivers == 0 || st.has_room() {
            st.remove_sender(this.sink.as_mut().and_then(|s| s.waiter.take()));
            return Poll::Ready(Ok(()));
        }
        let waiter = &mut state(&mut this.sink).waiter;
        let flags = (&this.handle, &this.closed, &this.waited);
        if wait_registered(&mut st, flags, waiter, cx.waker(), true) {
            return Poll::Pending;
        }
        // Closed meanwhile by a close that took no lock: ready, as above.
        st.remove_sender(waiter.take());
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: T) -> Result<(), Self::Error> {
        let this = self.get_mut();
        if let Some(sink) = this.sink.as_deref_mut() {
            let slot = sink.item.get_mut().unwrap_or_else(PoisonError::into_inner);
            assert!(
                slot.is_none(),
                "hatchery: `Sink::start_send` on a `SendStream` whose last item is still \
                 waiting to be sent: call `poll_ready` (until it is ready) before each \
                 `start_send`"
            );
        }
        let mut st = this.chan.lock();
        match st.try_send(this.closed.load(Ordering::Acquire), item) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(item)) => {
                // Another sender took the room after `poll_ready`: the item waits here
                // for the flush that sends it.
                let sink = state(&mut this.sink);
                *sink.item.get_mut().unwrap_or_else(PoisonError::into_inner) = Some(item);
                Ok(())
            }
            Err(TrySendError::Closed(item)) => Err(SendError::Closed(item)),
            Err(TrySendError::Broken(item)) => Err(SendError::Broken(item)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_pending(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let out = std::task::ready!(this.poll_pending(cx));
        this.close();
        Poll::Ready(out)
    }
}
