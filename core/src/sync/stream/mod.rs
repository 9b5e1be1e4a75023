//! Memory object streams: in-process channels with clonable ends, a rendezvous kind, and
//! exact behaviour under cancellation.
//!
//! Here: the constructors and the shared state of a stream (its buffer, its handles'
//! counts, and what each operation does under the lock). Beside it: the sending end
//! (`send.rs`) and its `Sink` (`sink.rs`), the receiving end (`recv.rs`), their errors
//! (`error.rs`), the waiters and the lists they are on (`waiters.rs`, over `list.rs`),
//! and the tests that bound the work per waiter (`tests.rs`).

mod error;
mod list;
mod recv;
mod send;
mod sink;
// Not under `--cfg hatchery_loom` (as `node`'s unit tests): their counting waker's atomic
// is loom's there.
#[cfg(all(test, not(hatchery_loom)))]
mod tests;
mod waiters;

pub use self::error::{RecvError, SendError, TryRecvError, TrySendError};
pub use self::recv::{ReceiveStream, Recv};
pub use self::send::{Send, SendClosed, SendStream};

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use self::list::{Arena, IdMap, List};
use self::waiters::*;
use crate::context as rt;
use crate::node::Node;

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
/// **Cost.** A send, a receive, closing a handle and a waiting task going away each cost
/// O(1) amortized, however many tasks wait: each waiting task is kept on a few lists
/// (its handle's, and its side's, longest waiting first), so an operation visits only the
/// waiters it acts on. Closing a handle visits that handle's waiters and wakes them
/// only; dropping a clone that nobody waits on visits none. Cloning a send handle, and
/// dropping or closing one whose sends never waited (unless it is the last), take no
/// lock and allocate nothing: a handle per worker costs what the executor's channels'
/// senders cost. What happens at most once in
/// a stream's life visits every waiter once: the last send handle or the last receive
/// handle going, and the end of the stream. An item that comes back from a receive that
/// went away is put back in hand-over order, in O(log n) of the items that came back and
/// are not taken yet. [`statistics`](ReceiveStream::statistics) looks at each waiting
/// receive.
///
/// **Memory.** The buffer gives memory back as it drains: once it is at most a quarter
/// full it shrinks to twice the items in it, so it never holds more than four times the
/// items in it, or 16 KiB (at least four items), whichever is more. A bounded stream
/// whose capacity fits in that keeps its buffer. The storage of waiting tasks shrinks
/// the same way as they leave (to a few KiB after any burst).
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
#[must_use = "a stream whose two ends are dropped carries nothing"]
pub fn memory_stream<T>(capacity: usize) -> (SendStream<T>, ReceiveStream<T>) {
    let chan = Arc::new(Chan {
        state: Mutex::new(State::new(capacity)),
        senders: AtomicUsize::new(1),
        closing: event_listener::Event::new(),
    });
    (
        SendStream {
            chan: chan.clone(),
            handle: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            waited: AtomicBool::new(false),
            closing: event_listener::Event::new(),
            watched: AtomicBool::new(false),
            sink: None,
        },
        ReceiveStream {
            chan,
            handle: 1,
            closed: AtomicBool::new(false),
            waited: AtomicBool::new(false),
            next: None,
        },
    )
}

/// Creates a memory stream with no limit on the items in flight: `send` never waits.
///
/// The buffer grows with the items waiting in it and gives memory back as they are
/// taken: it holds at most four times the items in it, or 16 KiB, whichever is more
/// (see [`memory_stream`] for this and for the cost of each operation). A million
/// 64-byte items take 64 MiB while they wait, and the stream keeps 16 KiB once they are
/// received.
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
#[must_use = "a stream whose two ends are dropped carries nothing"]
pub fn memory_stream_unbounded<T>() -> (SendStream<T>, ReceiveStream<T>) {
    memory_stream(usize::MAX)
}

/// A [`SendStream::handle`] not given yet.
const NO_HANDLE: u64 = u64::MAX;

/// A send handle's `handle`, `closed` and `waited` (split from the handle, whose `Sink`
/// state may be borrowed beside them).
type HandleFlags<'a> = (&'a AtomicU64, &'a AtomicBool, &'a AtomicBool);

/// Registers a send of a handle (`flags`) that must wait (`waiter` is its id), under
/// the stream's lock (`st`), unless the handle was closed meanwhile by a
/// [`SendStream::close`] that took no lock: then returns `false`, and the send fails
/// with `Closed`. Gives the handle its id on the waiters' lists if it has none yet.
fn wait_registered<T>(
    st: &mut State<T>,
    (handle, closed, waited): HandleFlags<'_>,
    waiter: &mut Option<u64>,
    waker: &Waker,
    sink: bool,
) -> bool {
    // `waited` before `closed`: see `SendStream::close`.
    waited.store(true, Ordering::SeqCst);
    if closed.load(Ordering::SeqCst) {
        return false;
    }
    let id = match handle.load(Ordering::Relaxed) {
        NO_HANDLE => {
            let id = st.id();
            handle.store(id, Ordering::Relaxed);
            id
        }
        id => id,
    };
    st.register_sender(waiter, id, waker, sink);
    true
}

/// Sends `item` under the stream's lock (`st`) for a handle (`flags`), or, with no room,
/// registers its `waiter` (as [`wait_registered`]) and puts the item back in `slot`
/// to wait. Once it returns `Ready`, the waiter holds no place.
#[inline]
fn poll_send<T>(
    st: &mut State<T>,
    flags: HandleFlags<'_>,
    item: T,
    slot: &mut Option<T>,
    waiter: &mut Option<u64>,
    waker: &Waker,
    sink: bool,
) -> Poll<Result<(), SendError<T>>> {
    let out = match st.try_send(flags.1.load(Ordering::Acquire), item) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(item)) => {
            if wait_registered(st, flags, waiter, waker, sink) {
                *slot = Some(item);
                return Poll::Pending;
            }
            Err(SendError::Closed(item))
        }
        Err(TrySendError::Closed(item)) => Err(SendError::Closed(item)),
        Err(TrySendError::Broken(item)) => Err(SendError::Broken(item)),
    };
    st.remove_sender(waiter.take());
    Poll::Ready(out)
}

struct Chan<T> {
    state: Mutex<State<T>>,
    /// Open send handles, counted outside the lock: cloning a send handle, and closing
    /// one that never waited and was not the last, take no lock (see
    /// [`SendStream::close`]). Never raised again once it is zero.
    senders: AtomicUsize,
    /// Notified (all listeners) when the last receive handle closes, for
    /// [`SendStream::closed`]. (A send handle that closes notifies its own
    /// [`SendStream::closing`].)
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

// # The waiter lists
//
// Every waiting send and receive is a node in a keyed arena (`list::Arena`), found by
// the id its future keeps, and linked on a few lists, so that each operation touches
// only the waiters it acts on:
//
// 1. Each node is on the list of its handle (`BY_HANDLE`), so closing a handle visits
//    that handle's waiters and no other, and dropping a clone that nobody waits on
//    visits none.
// 2. Send waiters: a send woken for room is *notified* (`Senders::notified` counts
//    them); the others are on `queue`, in FIFO order. Waking for room takes sends from
//    the front of `queue` until as many are notified as can complete. A `Sink` handle's
//    waiter is on `sinks` instead: it outlives the future that polled it (which may be
//    gone for good), so it takes no wake-up from the others. Whenever there is room,
//    every one of them is woken and removed (it registers again if it still waits).
// 3. Receive waiters: the *takers* (`takers`) are those a sender may send an item for:
//    no item handed to them yet, not a stream waiter served since its last poll, and
//    not known to be in a cancelled scope. A waiter whose scope is cancelled is taken
//    off `takers` when a sender or a wake-up finds it at the front (scopes are not
//    watched); so each node is passed over at most once per poll.
// 4. `Recv` takers not notified are on `recvs`, in FIFO order (`Receivers::notified`
//    counts the notified ones); stream waiters not woken since their last poll are on
//    `streams`.
// 5. A waiter that was passed over (woken but found nothing, or served, or in a
//    cancelled scope) and polled again goes back to the *front* of its lists: it has
//    waited longest.
//
// Nothing walks a list past a node it does not act on, so send, receive, close and
// the removal of a waiter are O(1) amortized (each node is visited a bounded number of
// times per poll of its future). The exceptions are final: the last send handle or
// receive handle closing, or the stream ending, wakes every waiter once.

/// The buffer keeps up to this many bytes of capacity however far it drains (and at
/// least [`BUFFER_KEEP_ITEMS`] items).
const BUFFER_KEEP_BYTES: usize = 16 * 1024;
const BUFFER_KEEP_ITEMS: usize = 4;

struct State<T> {
    buf: VecDeque<T>,
    /// Items that came back from receives that went away (see [`State::bounce`]), by
    /// their hand-over number. They come before every item in `buf`.
    returned: BTreeMap<u64, T>,
    cap: usize,
    bounded: bool,
    /// Every send handle has closed (set under the lock by the last one, once
    /// [`Chan::senders`] is zero).
    senders_gone: bool,
    /// Open receive handles.
    receivers: usize,
    send: Senders,
    recv: Receivers<T>,
    next_id: u64,
}

impl<T> State<T> {
    fn new(cap: usize) -> State<T> {
        State {
            buf: VecDeque::new(),
            returned: BTreeMap::new(),
            cap,
            bounded: cap != usize::MAX,
            senders_gone: false,
            receivers: 1,
            send: Senders {
                waiters: Arena::new(),
                lists: SendLists {
                    queue: List::EMPTY,
                    sinks: List::EMPTY,
                    handles: IdMap::default(),
                },
                notified: 0,
                sinks: 0,
            },
            recv: Receivers {
                waiters: Arena::new(),
                lists: RecvLists {
                    takers: List::EMPTY,
                    recvs: List::EMPTY,
                    streams: List::EMPTY,
                    handles: IdMap::default(),
                },
                notified: 0,
                in_flight: 0,
            },
            next_id: 2,
        }
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The items in the stream: buffered, and back from receives that went away.
    fn buffered(&self) -> usize {
        self.buf.len() + self.returned.len()
    }

    /// Whether the stream has ended for receivers: every sender is gone and no item is
    /// left, buffered or in flight (handed to a waiting receive, which may give it back).
    /// Final: nothing can send again.
    fn ended(&self) -> bool {
        self.senders_gone && self.buffered() == 0 && self.recv.in_flight == 0
    }

    /// Wakes every waiting receive, to see the end of the stream (or that it may end).
    /// Called at most three times in a stream's life: when the last send handle closes,
    /// and when the stream ends (by a receive or by a `try_recv`).
    fn wake_all_receivers(&self) {
        for w in self.recv.waiters.iter() {
            list::step();
            w.waker.wake_by_ref();
        }
    }

    /// Wakes waiting sends for the room there is. As many sends can complete now as
    /// there are free places in the buffer (plus, when it is empty, the receives waiting
    /// for an item); that many waiters are notified, the longest waiting first, each
    /// once: one woken and not polled since (perhaps kept without being polled: a paused
    /// wait) is not woken again, and counts. So each item taken wakes one more send,
    /// however many paused sends are ahead of it.
    ///
    /// Called whenever the room grows or a notified waiter leaves.
    ///
    /// `Sink` waiters take no part in this count: if there is any room, every one is
    /// woken and removed.
    fn wake_senders(&mut self) {
        let sinks = self.send.sinks;
        let waiting = self.send.waiters.len() - sinks;
        if self.send.notified >= waiting && sinks == 0 {
            return; // no waiter, or all woken
        }
        // Room for the queued sends, or for one if only `Sink`s wait.
        let wanted = waiting.max(usize::from(sinks > 0));
        let buffered = self.buffered();
        let mut room = self.cap.saturating_sub(buffered);
        if room < wanted && buffered == 0 {
            // Each waiting receive takes one item (handed over). (Those found in a
            // cancelled scope at the front are dropped from the count; one further back
            // may still be counted, and costs a send a spurious wake-up at most.)
            self.recv.first_taker();
            room += self.recv.lists.takers.len().min(wanted - room);
        }
        if room > 0 {
            while let Some(i) = self.send.lists.sinks.front() {
                list::step();
                self.send.remove(i).waker.wake();
            }
        }
        let target = room.min(waiting);
        while self.send.notified < target {
            let Some(i) = self.send.lists.queue.front() else {
                break;
            };
            list::step();
            self.send.waiters.unlink(&mut self.send.lists, QUEUE, i);
            let w = self.send.waiters.node_mut(i);
            w.notified = true;
            w.waker.wake_by_ref();
            self.send.notified += 1;
        }
    }

    /// Wakes the receivers that may take an item in the stream: as many waiting
    /// [`Recv`]s as there are items, the longest waiting first, each once: one woken and
    /// not polled since (a paused wait) keeps its wake-up, and the next item wakes the
    /// receive behind it. Those found in a cancelled scope are passed over (they take
    /// neither items nor wake-ups). And every stream waiter not woken since its last poll,
    /// since one of them may never be polled again.
    fn wake_receivers(&mut self) {
        let items = self.buffered();
        let recv = &mut self.recv;
        while recv.notified < items {
            let Some(i) = recv.lists.recvs.front() else {
                break;
            };
            list::step();
            if recv.waiters.node(i).in_cancelled_scope() {
                recv.leave_takers(i);
                continue;
            }
            recv.waiters.unlink(&mut recv.lists, WAKE, i);
            let w = recv.waiters.node_mut(i);
            w.notified = true;
            w.waker.wake_by_ref();
            recv.notified += 1;
        }
        while let Some(i) = recv.lists.streams.front() {
            list::step();
            recv.waiters.unlink(&mut recv.lists, WAKE, i);
            let w = recv.waiters.node_mut(i);
            w.notified = true;
            w.waker.wake_by_ref();
        }
    }

    /// Hands `item` to a waiting receiver or buffers it. Never waits.
    fn push(&mut self, item: T) -> Result<(), T> {
        if self.buffered() == 0 {
            if let Some(i) = self.recv.first_taker() {
                self.recv.leave_takers(i);
                if self.recv.waiters.node(i).stream {
                    // Sent for a waiting `next()`, even in a rendezvous stream, but
                    // buffered, for whichever receiver comes first.
                    self.recv.waiters.node_mut(i).served = true;
                    self.buf.push_back(item);
                    self.wake_receivers();
                } else {
                    let seq = self.id();
                    let w = self.recv.waiters.node_mut(i);
                    w.slot = Some((seq, item));
                    w.waker.wake_by_ref();
                    self.recv.in_flight += 1;
                }
                return Ok(());
            }
        }
        if self.buffered() < self.cap {
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

    /// Takes the next item (one that came back first), making room for a sender.
    fn pop(&mut self) -> Option<T> {
        let item = match self.returned.pop_first() {
            Some((_, item)) => item,
            None => {
                let item = self.buf.pop_front()?;
                self.shrink_buffer();
                item
            }
        };
        self.wake_senders();
        self.wake_after_take();
        Some(item)
    }

    /// After an item was taken: the next receiver, if there are more; if that was the
    /// last (one handed back, say, while receives waited for it to be taken or to come
    /// back), every receiver, which now sees the end.
    fn wake_after_take(&mut self) {
        if self.buffered() > 0 {
            self.wake_receivers();
        } else if self.ended() {
            self.wake_all_receivers();
        }
    }

    /// Gives memory back as the buffer drains: once it is at most a quarter full, down to
    /// twice the items in it (but no lower than [`BUFFER_KEEP_BYTES`]). So the next
    /// shrink comes after at least half of those are taken, which pay for copying the
    /// other half: O(1) amortized per item.
    fn shrink_buffer(&mut self) {
        let size = std::mem::size_of::<T>();
        if size == 0 {
            return; // a buffer of zero-sized items allocates nothing
        }
        let (len, capacity) = (self.buf.len(), self.buf.capacity());
        let keep = (BUFFER_KEEP_BYTES / size).max(BUFFER_KEEP_ITEMS);
        if capacity > keep && len * 4 <= capacity {
            self.buf.shrink_to((len * 2).max(keep));
        }
    }

    /// Removes a send waiter; nothing for `None` (a future that holds no place).
    #[inline]
    fn remove_sender(&mut self, id: Option<u64>) {
        if let Some(i) = id.and_then(|id| self.send.waiters.find(id)) {
            // Pass on a wake-up this waiter may have received and not used.
            if self.send.remove(i).notified {
                self.wake_senders();
            }
        }
    }

    /// Removes a receive waiter; an item already handed to it goes back to the front of
    /// the stream, so nothing is lost; nothing for `None`.
    #[inline]
    fn remove_receiver(&mut self, id: Option<u64>) {
        if let Some(i) = id.and_then(|id| self.recv.waiters.find(id)) {
            let w = self.recv.remove(i);
            if let Some((seq, item)) = w.slot {
                // A waiter belongs to an open receive handle (closing a handle removes
                // its waiters), so there is a receiver to take the item, and it is never
                // dropped here, under the lock.
                debug_assert!(self.receivers > 0, "a receive waiter outlived its handle");
                self.bounce(seq, item);
            }
            if self.buffered() > 0 {
                // The item that came back, or a wake-up this waiter had, for the next.
                self.wake_receivers();
            }
        }
    }

    /// Puts back an item that was handed to a waiter that is gone, where it belongs: a
    /// sender hands an item over only when the stream is empty, so it is older than every
    /// item buffered since; among the items that came back, hand-over order decides.
    /// O(log n) in the items that came back and are still in the stream.
    fn bounce(&mut self, seq: u64, item: T) {
        self.returned.insert(seq, item);
    }

    /// Closes the waits of send handle `handle`: they find their waiter gone and fail
    /// with `Closed`. Returns whether it had any.
    fn close_senders(&mut self, handle: u64) -> bool {
        let mut any = false;
        while let Some(i) = self.send.first_of(handle) {
            list::step();
            any = true;
            self.send.remove(i).waker.wake();
        }
        any
    }

    /// Closes the waits of receive handle `handle`: they find their waiter gone and fail
    /// with `Closed`; an item already handed to one of them goes back to the front of the
    /// stream. Returns whether it had any.
    fn close_receivers(&mut self, handle: u64) -> bool {
        let mut any = false;
        while let Some(i) = self.recv.first_of(handle) {
            list::step();
            any = true;
            let w = self.recv.remove(i);
            w.waker.wake();
            if let Some((seq, item)) = w.slot {
                self.bounce(seq, item);
            }
        }
        any
    }

    /// Registers (or updates) the waiter `id` of a send of `handle`; `sink` for a `Sink`
    /// handle's (see [`SendWaiter::sink`]).
    fn register_sender(&mut self, id: &mut Option<u64>, handle: u64, waker: &Waker, sink: bool) {
        if let Some(i) = id.and_then(|id| self.send.waiters.find(id)) {
            let w = self.send.waiters.node_mut(i);
            w.waker.clone_from(waker);
            // Polled, and no room: a wake-up it had is used up (a send polled before it
            // took the room), and it waits again at the front.
            if std::mem::replace(&mut w.notified, false) {
                self.send.notified -= 1;
                self.send.waiters.push_front(&mut self.send.lists, QUEUE, i);
            }
            return;
        }
        let new = *id.insert(self.id());
        let i = self.send.waiters.insert(
            new,
            SendWaiter {
                handle,
                waker: waker.clone(),
                notified: false,
                sink,
            },
        );
        let (waiters, lists) = (&mut self.send.waiters, &mut self.send.lists);
        waiters.push_back(lists, BY_HANDLE, i);
        waiters.push_back(lists, QUEUE, i);
        self.send.sinks += usize::from(sink);
    }

    fn poll_recv(
        &mut self,
        id: &mut Option<u64>,
        handle: u64,
        handle_closed: bool,
        waker: &Waker,
        stream: bool,
    ) -> Poll<Result<T, RecvError>> {
        let mine = id.and_then(|id| self.recv.waiters.find(id));
        if let Some(i) = mine.filter(|&i| self.recv.waiters.node(i).slot.is_some()) {
            let w = self.recv.remove(i);
            *id = None;
            self.wake_after_take();
            return Poll::Ready(Ok(w.slot.expect("checked").1));
        }
        let end = if handle_closed {
            Some(RecvError::Closed)
        } else if self.buffered() > 0 {
            None
        } else if self.ended() {
            Some(RecvError::EndOfStream)
        } else {
            // Wait: for a sender, or for an item in flight to be taken (the end) or to
            // come back.
            if let Some(i) = mine {
                let took = self.recv.waiters.linked(i, TAKERS);
                let w = self.recv.waiters.node_mut(i);
                w.waker.clone_from(waker);
                // Polled again, perhaps from another scope.
                let same = rt::with_current(|c| match (c, &w.scope) {
                    (Some(c), Some(n)) => Arc::ptr_eq(c.node, n),
                    (None, None) => true,
                    _ => false,
                });
                if !same {
                    w.scope = current_scope();
                }
                w.served = false;
                // Polled, and no item: a wake-up it had is used up (a receive polled
                // before it took the item); if it was passed over, it takes items again.
                self.recv.polled(i);
                // It may have been passed over while served, or while its old scope was
                // cancelled (a rendezvous sender then waits for a receiver): now that it
                // takes items again, let a waiting sender know, as a new receiver would.
                if !took {
                    self.wake_senders();
                }
                return Poll::Pending;
            }
            let new = *id.insert(self.id());
            let i = self.recv.waiters.insert(
                new,
                RecvWaiter {
                    handle,
                    waker: waker.clone(),
                    slot: None,
                    stream,
                    served: false,
                    scope: current_scope(),
                    notified: false,
                },
            );
            let (waiters, lists) = (&mut self.recv.waiters, &mut self.recv.lists);
            waiters.push_back(lists, BY_HANDLE, i);
            waiters.push_back(lists, TAKERS, i);
            waiters.push_back(lists, WAKE, i);
            // A rendezvous sender waits for a receiver to show up.
            self.wake_senders();
            return Poll::Pending;
        };
        *id = None;
        if let Some(i) = mine {
            // Its slot is empty (checked above): nothing to put back, and the wake-ups
            // for what is left in the stream are `pop`'s.
            self.recv.remove(i);
        }
        match end {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(self.pop().expect("stream not empty"))),
        }
    }
}

/// The innermost scope of the current task, if any.
fn current_scope() -> Option<Arc<Node>> {
    rt::with_current(|c| c.map(|c| c.node.clone()))
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// Tasks waiting in `send`, and send handles waiting for room as a `Sink` (such a
    /// handle counts even if the future that polled it is gone, until there is room, it
    /// is polled again, or it is dropped or closed).
    pub tasks_waiting_send: usize,
    /// Receivers a sender could hand an item to now: tasks waiting in `recv`, and receive
    /// handles registered by a `Stream` poll that is pending (such a handle counts even
    /// if the `next()` future that polled it is gone, until it is polled again, dropped
    /// or closed, or an item is sent for it). A wait whose scope is cancelled does not
    /// count: it will take nothing.
    pub tasks_waiting_receive: usize,
}

fn statistics<T>(chan: &Chan<T>) -> StreamStatistics {
    let st = chan.lock();
    StreamStatistics {
        current_buffer_used: st.buffered().min(st.cap),
        max_buffer_size: st.bounded.then_some(st.cap),
        open_send_streams: chan.senders.load(Ordering::Acquire),
        open_receive_streams: st.receivers,
        tasks_waiting_send: st.send.waiters.len(),
        tasks_waiting_receive: st.recv.live_takers(),
    }
}
