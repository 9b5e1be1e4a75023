//! Memory object streams: in-process channels with clonable ends, a rendezvous kind, and
//! exact behaviour under cancellation.

use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::node::Node;
use crate::rt;

/// Creates a memory stream holding up to `capacity` items in flight.
///
/// `capacity == 0` is a *rendezvous*: [`SendStream::send`] completes only when it hands
/// the item to a receive that is waiting for one. (If that receive is then cancelled, the
/// item goes back to the stream for the next receiver; if no receive handle is left, it
/// is dropped.) A waiting `send` keeps its item until it meets a waiting `recv`:
/// [`try_recv`](ReceiveStream::try_recv) does not take it, unlike anyio's
/// `receive_nowait`.
///
/// Items are taken in the order they were sent (per sender; across senders in the order
/// their sends completed); with several receivers, an item given back by a cancelled
/// receive may arrive after a later one. Both ends can be cloned; see [`SendStream`] and
/// [`ReceiveStream`] for the closing rules.
///
/// Any `usize` is a valid capacity (`usize::MAX` behaves like [`memory_stream_unbounded`]);
/// nothing is allocated up front.
///
/// # Examples
///
/// ```
/// use hatchery::{memory_stream, nursery};
///
/// # hatchery_smol::run(async {
/// let (tx, rx) = memory_stream::<u32>(0); // rendezvous
/// let got = nursery(|n| async move {
///     n.spawn(async move {
///         for i in 0..3 {
///             tx.send(i).await?;
///         }
///         Ok(())
///     });
///     let mut got = Vec::new();
///     while let Ok(v) = rx.recv().await {
///         got.push(v);
///     }
///     Ok::<_, hatchery::sync::SendError<u32>>(got)
/// })
/// .await
/// .unwrap();
/// assert_eq!(got, [0, 1, 2]);
/// # });
/// ```
pub fn memory_stream<T>(capacity: usize) -> (SendStream<T>, ReceiveStream<T>) {
    let chan = Arc::new(Chan {
        state: Mutex::new(State {
            buf: VecDeque::new(),
            cap: capacity,
            bounded: capacity != usize::MAX,
            senders: 1,
            receivers: 1,
            send_waiters: VecDeque::new(),
            send_woken: 0,
            recv_waiters: VecDeque::new(),
            stream_waiters: 0,
            bounced: VecDeque::new(),
            next_id: 2,
        }),
        closing: event_listener::Event::new(),
    });
    (
        SendStream {
            chan: chan.clone(),
            handle: 0,
            closed: AtomicBool::new(false),
        },
        ReceiveStream {
            chan,
            handle: 1,
            closed: AtomicBool::new(false),
            next: None,
        },
    )
}

/// Creates a memory stream with no limit on the items in flight: `send` never waits.
///
/// # Examples
///
/// ```
/// # hatchery_smol::run(async {
/// let (tx, rx) = hatchery::memory_stream_unbounded();
/// for i in 0..1000 {
///     tx.try_send(i).unwrap();
/// }
/// drop(tx);
/// let mut sum = 0;
/// while let Ok(v) = rx.recv().await {
///     sum += v;
/// }
/// assert_eq!(sum, 499_500);
/// # });
/// ```
pub fn memory_stream_unbounded<T>() -> (SendStream<T>, ReceiveStream<T>) {
    memory_stream(usize::MAX)
}

struct Chan<T> {
    state: Mutex<State<T>>,
    /// Notified (all listeners) whenever a handle closes, for [`SendStream::closed`].
    closing: event_listener::Event,
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Items are only moved under this lock, never dropped (that is done outside it),
        // and the wakers woken under it are the executors', so a poisoned lock still
        // holds valid state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct SendWaiter {
    id: u64,
    handle: u64,
    waker: Waker,
    /// Woken for room, and not polled since (see [`State::wake_senders`]).
    notified: bool,
}

struct RecvWaiter<T> {
    id: u64,
    handle: u64,
    waker: Waker,
    /// For a [`Recv`]: an item handed over directly by a sender (rendezvous, or an
    /// empty buffer), with its place in the order of hand-overs (see [`State::bounce`]).
    slot: Option<(u64, T)>,
    /// Whether this is the waiter of a handle's `poll_next`. It stays registered between
    /// polls, and the `next()` future that polled it may be gone for good (a lost
    /// `select!` branch) while the handle lives on; so it is never handed an item: an
    /// item sent for it waits in the buffer, where any receiver takes it, and every
    /// stream waiter is woken for it (see [`State::wake_receivers`]).
    stream: bool,
    /// For a stream waiter: an item was put in the buffer for it since its last poll. It
    /// stands for no further item until it is polled again, so a rendezvous sender does
    /// not count an idle handle as a receiver twice.
    served: bool,
    /// The scope of its last poll. No item is sent for it once that scope is cancelled:
    /// it will never take one (a cancelled `Recv` withdraws at its next poll, and the
    /// scope may drop a stream's poller without polling it again).
    scope: Option<Arc<Node>>,
    /// For a [`Recv`]: woken for a buffered item, and not polled since (see
    /// [`State::wake_receivers`]).
    notified: bool,
}

impl<T> RecvWaiter<T> {
    /// Whether a sender may send an item for this waiter.
    fn takes(&self) -> bool {
        self.slot.is_none()
            && !self.served
            && !self.scope.as_ref().is_some_and(|n| n.is_cancelled())
    }
}

struct State<T> {
    buf: VecDeque<T>,
    cap: usize,
    bounded: bool,
    /// Open send / receive handles.
    senders: usize,
    receivers: usize,
    send_waiters: VecDeque<SendWaiter>,
    /// The first `send_woken` send waiters are notified (others may be too): where
    /// [`State::wake_senders`] starts looking.
    send_woken: usize,
    recv_waiters: VecDeque<RecvWaiter<T>>,
    /// How many of `recv_waiters` are stream waiters.
    stream_waiters: usize,
    /// The hand-over numbers of the items at the front of `buf` that came back from
    /// waiters (`bounced[i]` is that of `buf[i]`), in increasing order.
    bounced: VecDeque<u64>,
    next_id: u64,
}

impl<T> State<T> {
    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Whether an item handed to a waiting receive is still in its slot. It may yet come
    /// back (if that receive is dropped), so the stream has not ended while it is there.
    fn in_flight(&self) -> bool {
        self.recv_waiters.iter().any(|w| w.slot.is_some())
    }

    /// Whether the stream has ended for receivers: every sender is gone and no item is
    /// left, buffered or in flight. Final: nothing can send again.
    fn ended(&self) -> bool {
        self.senders == 0 && self.buf.is_empty() && !self.in_flight()
    }

    /// Wakes every waiting receive, to see the end of the stream.
    fn wake_all_receivers(&self) {
        for w in &self.recv_waiters {
            w.waker.wake_by_ref();
        }
    }

    /// Wakes waiting sends for the room there is. As many sends can complete now as
    /// there are free places in the buffer (plus, when it is empty, the receives waiting
    /// for an item); the first that many waiters are woken, each once: one woken and not
    /// polled since (perhaps kept without being polled: a paused wait) is not woken
    /// again, and counts. So each item taken wakes one more send, however many paused
    /// sends are ahead of it.
    ///
    /// Called whenever the room grows or the waiters ahead change. The first
    /// `send_woken` waiters are skipped, so in the common case this is O(1).
    fn wake_senders(&mut self) {
        let waiting = self.send_waiters.len();
        if self.send_woken >= waiting {
            return; // no waiter, or all woken
        }
        let mut room = self.cap.saturating_sub(self.buf.len());
        if room < waiting && self.buf.is_empty() {
            // Each waiting receive takes one item (handed over).
            let takers = self.recv_waiters.iter().filter(|w| w.takes());
            room += takers.take(waiting - room).count();
        }
        let target = room.min(waiting);
        for w in self
            .send_waiters
            .range_mut(self.send_woken.min(target)..target)
        {
            if !w.notified {
                w.notified = true;
                w.waker.wake_by_ref();
            }
        }
        self.send_woken = self.send_woken.max(target);
    }

    /// Wakes the receivers that may take a buffered item: as many waiting [`Recv`]s as
    /// there are items, the first ones that can take an item (not those whose scope is
    /// cancelled), each once: one woken and not polled since (a paused wait) keeps its
    /// wake-up, and the next item wakes the receive behind it. And every stream waiter
    /// (served or not), since one of them may never be polled again.
    fn wake_receivers(&mut self) {
        let mut items = self.buf.len();
        let mut streams = self.stream_waiters;
        for w in &mut self.recv_waiters {
            if items == 0 && streams == 0 {
                break;
            }
            if w.stream {
                w.waker.wake_by_ref();
                streams -= 1;
            } else if items > 0 && w.takes() {
                items -= 1;
                if !w.notified {
                    w.notified = true;
                    w.waker.wake_by_ref();
                }
            }
        }
    }

    /// Hands `item` to a waiting receiver or buffers it. Never waits.
    fn push(&mut self, item: T) -> Result<(), T> {
        if self.buf.is_empty() {
            let seq = self.next_id;
            if let Some(w) = self.recv_waiters.iter_mut().find(|w| w.takes()) {
                if w.stream {
                    // Sent for a waiting `next()`, even in a rendezvous stream, but
                    // buffered, for whichever receiver comes first.
                    w.served = true;
                    self.buf.push_back(item);
                    self.wake_receivers();
                } else {
                    self.next_id += 1;
                    w.slot = Some((seq, item));
                    w.waker.wake_by_ref();
                }
                return Ok(());
            }
        }
        if self.buf.len() < self.cap {
            self.buf.push_back(item);
            self.wake_receivers();
            return Ok(());
        }
        Err(item)
    }

    fn try_send(&mut self, handle_closed: bool, item: T) -> Result<(), TrySendError<T>> {
        if handle_closed {
            return Err(TrySendError::Closed(item));
        }
        if self.receivers == 0 {
            return Err(TrySendError::Broken(item));
        }
        self.push(item).map_err(TrySendError::Full)
    }

    /// Takes the next buffered item, making room for a sender.
    fn pop(&mut self) -> Option<T> {
        let item = self.buf.pop_front()?;
        self.bounced.pop_front();
        self.wake_senders();
        if !self.buf.is_empty() {
            self.wake_receivers();
        } else if self.ended() {
            // That was the last item (one handed back, say, while receives waited for it
            // to come back or not): the others learn that the stream has ended.
            self.wake_all_receivers();
        }
        Some(item)
    }

    fn remove_sender(&mut self, id: u64) {
        if let Some(i) = self.send_waiters.iter().position(|w| w.id == id) {
            let w = self.send_waiters.remove(i).expect("index in range");
            if i < self.send_woken {
                self.send_woken -= 1;
            }
            // Pass on a wake-up this waiter may have received and not used.
            if w.notified {
                self.wake_senders();
            }
        }
    }

    /// Removes a receive waiter; an item already handed to it goes back to the front of
    /// the stream, so nothing is lost.
    fn remove_receiver(&mut self, id: u64) {
        if let Some(i) = self.recv_waiters.iter().position(|w| w.id == id) {
            let w = self.remove_waiter(i);
            if let Some((seq, item)) = w.slot {
                // A waiter belongs to an open receive handle (closing a handle removes
                // its waiters), so there is a receiver to take the item, and it is never
                // dropped here, under the lock.
                debug_assert!(self.receivers > 0, "a receive waiter outlived its handle");
                self.bounce(seq, item);
            }
            if !self.buf.is_empty() {
                self.wake_receivers();
            }
        }
    }

    /// Puts back an item that was handed to a waiter that is gone, where it belongs: a
    /// sender hands an item over only when the buffer is empty, so it is older than every
    /// item buffered since; among the items that came back, hand-over order decides.
    fn bounce(&mut self, seq: u64, item: T) {
        let i = self.bounced.partition_point(|&s| s < seq);
        self.bounced.insert(i, seq);
        self.buf.insert(i, item);
    }

    fn remove_waiter(&mut self, i: usize) -> RecvWaiter<T> {
        let w = self.recv_waiters.remove(i).expect("index in range");
        if w.stream {
            self.stream_waiters -= 1;
        }
        w
    }

    fn register_sender(&mut self, id: &mut Option<u64>, handle: u64, waker: &Waker) {
        if let Some(id) = *id {
            if let Some(i) = self.send_waiters.iter().position(|w| w.id == id) {
                let w = &mut self.send_waiters[i];
                if !w.waker.will_wake(waker) {
                    w.waker = waker.clone();
                }
                // Polled, and no room: a wake-up it had is used up (a send polled
                // before it took the room).
                if w.notified {
                    w.notified = false;
                    self.send_woken = self.send_woken.min(i);
                }
                return;
            }
        }
        let new = self.id();
        *id = Some(new);
        self.send_waiters.push_back(SendWaiter {
            id: new,
            handle,
            waker: waker.clone(),
            notified: false,
        });
    }

    fn poll_recv(
        &mut self,
        id: &mut Option<u64>,
        handle: u64,
        handle_closed: bool,
        waker: &Waker,
        stream: bool,
    ) -> Poll<Result<T, RecvError>> {
        if let Some(my) = *id {
            if let Some(i) = self.recv_waiters.iter().position(|w| w.id == my) {
                if self.recv_waiters[i].slot.is_some() {
                    let w = self.remove_waiter(i);
                    *id = None;
                    if !self.buf.is_empty() {
                        self.wake_receivers();
                    } else if self.ended() {
                        // That was the last item: receives that waited for it to be taken
                        // or to come back now see the end.
                        self.wake_all_receivers();
                    }
                    return Poll::Ready(Ok(w.slot.expect("checked").1));
                }
            }
        }
        let end = if handle_closed {
            Some(RecvError::Closed)
        } else if !self.buf.is_empty() {
            None
        } else if self.ended() {
            Some(RecvError::EndOfStream)
        } else {
            // Wait: for a sender, or for an item in flight to be taken (the end) or to
            // come back.
            if let Some(my) = *id {
                if let Some(w) = self.recv_waiters.iter_mut().find(|w| w.id == my) {
                    if !w.waker.will_wake(waker) {
                        w.waker = waker.clone();
                    }
                    // Polled again, perhaps from another scope.
                    let same = rt::with_current(|c| match (c, &w.scope) {
                        (Some(c), Some(n)) => Arc::ptr_eq(c.node, n),
                        (None, None) => true,
                        _ => false,
                    });
                    let took = w.takes();
                    w.served = false;
                    // Polled, and no item: a wake-up it had is used up (a receive
                    // polled before it took the item).
                    w.notified = false;
                    if !same {
                        w.scope = current_scope();
                    }
                    // It may have been skipped while served, or while its old scope
                    // was cancelled (a rendezvous sender then waits for a receiver):
                    // if it takes items again, let a waiting sender know, as a new
                    // receiver would.
                    if !took && w.takes() {
                        self.wake_senders();
                    }
                    return Poll::Pending;
                }
            }
            let new = self.id();
            *id = Some(new);
            self.recv_waiters.push_back(RecvWaiter {
                id: new,
                handle,
                waker: waker.clone(),
                slot: None,
                stream,
                served: false,
                scope: current_scope(),
                notified: false,
            });
            self.stream_waiters += usize::from(stream);
            // A rendezvous sender waits for a receiver to show up.
            self.wake_senders();
            return Poll::Pending;
        };
        if let Some(my) = id.take() {
            // Its slot is empty (checked above): nothing to put back, and the wake-ups
            // for what is left in the buffer are `pop`'s.
            if let Some(i) = self.recv_waiters.iter().position(|w| w.id == my) {
                self.remove_waiter(i);
            }
        }
        match end {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(self.pop().expect("buffer not empty"))),
        }
    }
}

/// The innermost scope of the current task, if any.
fn current_scope() -> Option<Arc<Node>> {
    rt::with_current(|c| c.map(|c| c.node.clone()))
}

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
    chan: Arc<Chan<T>>,
    handle: u64,
    closed: AtomicBool,
}

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
    chan: Arc<Chan<T>>,
    handle: u64,
    closed: AtomicBool,
    /// The waiter of `poll_next`.
    next: Option<u64>,
}

/// A snapshot of a memory stream's state (anyio's `MemoryObjectStreamStatistics`).
///
/// # Examples
///
/// ```
/// use hatchery::sync::StreamStatistics;
///
/// let (tx, rx) = hatchery::memory_stream_unbounded::<u8>();
/// let _tx2 = tx.clone();
/// tx.try_send(1).unwrap();
/// let s: StreamStatistics = rx.statistics();
/// assert_eq!(s.max_buffer_size, None); // unbounded
/// assert_eq!(s.current_buffer_used, 1);
/// assert_eq!((s.open_send_streams, s.open_receive_streams), (2, 1));
/// assert_eq!((s.tasks_waiting_send, s.tasks_waiting_receive), (0, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamStatistics {
    /// Items buffered, up to the capacity. Items beyond it are being handed over (an
    /// item sent for a waiting `next()`, or put back by a receive that went away, may
    /// wait in the stream even at capacity 0) and are not counted; neither is an item
    /// handed to a waiting `recv`.
    pub current_buffer_used: usize,
    /// The capacity; `None` for an unbounded stream.
    pub max_buffer_size: Option<usize>,
    /// Open (not closed, not dropped) send handles.
    pub open_send_streams: usize,
    /// Open receive handles.
    pub open_receive_streams: usize,
    /// Tasks waiting in `send`.
    pub tasks_waiting_send: usize,
    /// Receivers a sender could hand an item to now: tasks waiting in `recv`, and receive
    /// handles registered by a `Stream` poll that is pending (such a handle counts even
    /// if the `next()` future that polled it is gone, until it is polled again, dropped
    /// or closed, or an item is sent for it). A wait whose scope is cancelled does not
    /// count: it will take nothing.
    pub tasks_waiting_receive: usize,
}

fn statistics<T>(st: &State<T>) -> StreamStatistics {
    StreamStatistics {
        current_buffer_used: st.buf.len().min(st.cap),
        max_buffer_size: st.bounded.then_some(st.cap),
        open_send_streams: st.senders,
        open_receive_streams: st.receivers,
        tasks_waiting_send: st.send_waiters.len(),
        tasks_waiting_receive: st.recv_waiters.iter().filter(|w| w.takes()).count(),
    }
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
        super::block_on(self.send(item))
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
        let mut st = self.chan.lock();
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        st.senders -= 1;
        // This handle's waiting sends find their waiter gone and fail with `Closed`.
        st.send_waiters.retain(|w| {
            let mine = w.handle == self.handle;
            if mine {
                w.waker.wake_by_ref();
            }
            !mine
        });
        // Pass on the wake-ups that those had (the waiters ahead changed).
        st.send_woken = 0;
        st.wake_senders();
        if st.senders == 0 {
            st.wake_all_receivers();
        }
        drop(st);
        self.chan.closing.notify(usize::MAX);
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
    /// has drained.
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
            listener: None,
        }
    }

    /// Whether a send through this handle can no longer succeed.
    fn cannot_send(&self) -> bool {
        self.is_closed() || self.chan.lock().receivers == 0
    }

    /// A snapshot of the stream's statistics.
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
        statistics(&self.chan.lock())
    }
}

impl<T> Clone for SendStream<T> {
    fn clone(&self) -> Self {
        let mut st = self.chan.lock();
        let closed = self.closed.load(Ordering::Acquire);
        if !closed {
            st.senders += 1;
        }
        let handle = st.id();
        SendStream {
            chan: self.chan.clone(),
            handle,
            closed: AtomicBool::new(closed),
        }
    }
}

impl<T> Drop for SendStream<T> {
    fn drop(&mut self) {
        self.close();
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
            if let Some(id) = this.id.take() {
                st.remove_sender(id);
            }
            return Poll::Pending;
        }
        let item = this.item.take().expect("`Send` polled after completion");
        let out = match st.try_send(this.stream.closed.load(Ordering::Acquire), item) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(item)) => {
                this.item = Some(item);
                st.register_sender(&mut this.id, this.stream.handle, cx.waker());
                return Poll::Pending;
            }
            Err(TrySendError::Closed(item)) => Err(SendError::Closed(item)),
            Err(TrySendError::Broken(item)) => Err(SendError::Broken(item)),
        };
        if let Some(id) = this.id.take() {
            st.remove_sender(id);
        }
        Poll::Ready(out)
    }
}

impl<T> Drop for Send<'_, T> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.stream.chan.lock().remove_sender(id);
        }
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
    listener: Option<event_listener::EventListener>,
}

impl<T> Future for SendClosed<'_, T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if rt::current_cancelled() {
            return Poll::Pending;
        }
        let this = &mut *self;
        let stream = this.stream;
        super::poll_until(&stream.chan.closing, &mut this.listener, cx, || {
            stream.cannot_send()
        })
    }
}

impl<T> fmt::Debug for SendClosed<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendClosed").finish_non_exhaustive()
    }
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
    /// again outside that scope. Buffered items are delivered before
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
        super::block_on(self.recv())
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
        // an item already handed to one of them goes back to the front of the stream.
        let mut i = 0;
        while i < st.recv_waiters.len() {
            if st.recv_waiters[i].handle == self.handle {
                let w = st.remove_waiter(i);
                w.waker.wake();
                if let Some((seq, item)) = w.slot {
                    st.bounce(seq, item);
                }
            } else {
                i += 1;
            }
        }
        if !st.buf.is_empty() {
            st.wake_receivers();
        }
        if st.receivers == 0 {
            // Dropped outside the lock: an item's destructor is user code.
            let dropped = std::mem::take(&mut st.buf);
            st.bounced.clear();
            for w in &st.send_waiters {
                w.waker.wake_by_ref();
            }
            drop(st);
            // Wake `closed()` first: the state is final, and an item's destructor may
            // panic.
            self.chan.closing.notify(usize::MAX);
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

    /// A snapshot of the stream's statistics.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = hatchery::memory_stream::<()>(0);
    /// let _rx2 = rx.clone();
    /// assert_eq!(tx.statistics().open_receive_streams, 2);
    /// ```
    pub fn statistics(&self) -> StreamStatistics {
        statistics(&self.chan.lock())
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
            next: None,
        }
    }
}

impl<T> Drop for ReceiveStream<T> {
    fn drop(&mut self) {
        if let Some(id) = self.next.take() {
            self.chan.lock().remove_receiver(id);
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
            if let Some(id) = this.next.take() {
                st.remove_receiver(id);
            }
            return Poll::Pending;
        }
        let closed = this.closed.load(Ordering::Acquire);
        st.poll_recv(&mut this.next, this.handle, closed, cx.waker(), true)
            .map(Result::ok)
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
        super::poll_once(&mut this.done, "Recv", || {
            let mut st = this.stream.chan.lock();
            // Checked before an item is taken: a cancelled receive takes nothing.
            if rt::current_cancelled() {
                if let Some(id) = this.id.take() {
                    st.remove_receiver(id);
                }
                return Poll::Pending;
            }
            let closed = this.stream.closed.load(Ordering::Acquire);
            st.poll_recv(&mut this.id, this.stream.handle, closed, cx.waker(), false)
        })
    }
}

impl<T> Drop for Recv<'_, T> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.stream.chan.lock().remove_receiver(id);
        }
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv")
            .field("waiting", &self.id.is_some())
            .finish_non_exhaustive()
    }
}

/// Why [`SendStream::send`] failed; the item comes back.
///
/// # Examples
///
/// ```
/// use hatchery::sync::SendError;
///
/// # hatchery_smol::run(async {
/// let (tx, rx) = hatchery::memory_stream(1);
/// let tx2 = tx.clone();
/// tx2.close();
/// assert_eq!(tx2.send("a").await, Err(SendError::Closed("a"))); // this handle is closed
/// drop(rx);
/// let err = tx.send("b").await.unwrap_err();
/// assert_eq!(err, SendError::Broken("b")); // nobody will ever receive it
/// assert_eq!(err.into_inner(), "b");
/// # });
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SendError<T> {
    /// This send handle is closed (by [`SendStream::close`]).
    Closed(T),
    /// Every receive handle is gone: nobody will ever receive the item (anyio's
    /// `BrokenResourceError`).
    Broken(T),
}

impl<T> SendError<T> {
    /// The item that was not sent.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(hatchery::sync::SendError::Broken(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            SendError::Closed(t) | SendError::Broken(t) => t,
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("Closed(..)"),
            SendError::Broken(_) => f.write_str("Broken(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("sending on a closed send handle"),
            SendError::Broken(_) => f.write_str("sending into a stream with no receivers"),
        }
    }
}

impl<T> Error for SendError<T> {}

/// Why [`SendStream::try_send`] failed; the item comes back.
///
/// # Examples
///
/// ```
/// use hatchery::sync::TrySendError;
///
/// let (tx, _rx) = hatchery::memory_stream(1);
/// tx.try_send("first").unwrap();
/// match tx.try_send("second") {
///     Err(TrySendError::Full(item)) => assert_eq!(item, "second"), // keep it for later
///     other => panic!("unexpected: {other:?}"),
/// }
/// tx.close();
/// assert_eq!(tx.try_send("third"), Err(TrySendError::Closed("third")));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The buffer is full (for a rendezvous stream: no receiver is waiting).
    Full(T),
    /// This send handle is closed.
    Closed(T),
    /// Every receive handle is gone.
    Broken(T),
}

impl<T> TrySendError<T> {
    /// The item that was not sent.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(hatchery::sync::TrySendError::Full(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(t) | TrySendError::Closed(t) | TrySendError::Broken(t) => t,
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
            TrySendError::Broken(_) => f.write_str("Broken(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("stream is full"),
            TrySendError::Closed(_) => f.write_str("sending on a closed send handle"),
            TrySendError::Broken(_) => f.write_str("sending into a stream with no receivers"),
        }
    }
}

impl<T> Error for TrySendError<T> {}

/// Why [`ReceiveStream::recv`] failed.
///
/// # Examples
///
/// ```
/// use hatchery::sync::RecvError;
///
/// # hatchery_smol::run(async {
/// let (tx, rx) = hatchery::memory_stream::<u32>(1);
/// let rx2 = rx.clone();
/// rx2.close();
/// assert_eq!(rx2.recv().await, Err(RecvError::Closed)); // this handle is closed
/// drop(tx);
/// assert_eq!(rx.recv().await, Err(RecvError::EndOfStream)); // no sender is left
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// The buffer is drained and every send handle is gone: no item will ever come
    /// (anyio's `EndOfStream`).
    EndOfStream,
    /// This receive handle is closed (by [`ReceiveStream::close`]).
    Closed,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::EndOfStream => f.write_str("end of stream"),
            RecvError::Closed => f.write_str("receiving on a closed receive handle"),
        }
    }
}

impl Error for RecvError {}

/// Why [`ReceiveStream::try_recv`] failed.
///
/// # Examples
///
/// ```
/// use hatchery::sync::TryRecvError;
///
/// let (tx, rx) = hatchery::memory_stream(1);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// tx.try_send(1).unwrap();
/// drop(tx);
/// assert_eq!(rx.try_recv(), Ok(1));
/// assert_eq!(rx.try_recv(), Err(TryRecvError::EndOfStream));
/// rx.close();
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// No item is ready now.
    Empty,
    /// The buffer is drained and every send handle is gone.
    EndOfStream,
    /// This receive handle is closed.
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("stream is empty"),
            TryRecvError::EndOfStream => f.write_str("end of stream"),
            TryRecvError::Closed => f.write_str("receiving on a closed receive handle"),
        }
    }
}

impl Error for TryRecvError {}
