//! Memory object streams: in-process channels with clonable ends, a rendezvous kind, and
//! exact behaviour under cancellation.

mod list;
mod sink;

use std::collections::{BTreeMap, VecDeque};
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use self::list::{Arena, IdMap, List, Lists};
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

/// A waiter's place in the list of its handle's waiters.
const BY_HANDLE: usize = 0;
/// A send waiter's place in `Senders::queue` (a `Sink` waiter's: in `sinks`).
const QUEUE: usize = 1;
/// A receive waiter's place in `Receivers::takers`.
const TAKERS: usize = 1;
/// A receive waiter's place in `recvs` (a `Recv`) or `streams` (a stream waiter).
const WAKE: usize = 2;

struct SendWaiter {
    handle: u64,
    waker: Waker,
    /// Woken for room, and not polled since (see [`State::wake_senders`]).
    notified: bool,
    /// A `Sink` handle's waiter (on `SendLists::sinks`, never notified).
    sink: bool,
}

struct RecvWaiter<T> {
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
    /// Woken (for a buffered item), and not polled since.
    notified: bool,
}

impl<T> RecvWaiter<T> {
    fn in_cancelled_scope(&self) -> bool {
        self.scope.as_ref().is_some_and(|n| n.is_cancelled())
    }
}

/// The lists of the send waiters.
struct SendLists {
    /// Waiters not notified, longest waiting first.
    queue: List,
    /// The waiters of `Sink` handles.
    sinks: List,
    handles: IdMap<List>,
}

impl Lists<SendWaiter> for SendLists {
    fn list(&mut self, k: usize, w: &SendWaiter) -> &mut List {
        match k {
            BY_HANDLE => self.handles.entry(w.handle).or_insert(List::EMPTY),
            _ if w.sink => &mut self.sinks,
            _ => &mut self.queue,
        }
    }

    fn empty(&mut self, k: usize, w: &SendWaiter) {
        if k == BY_HANDLE {
            self.handles.remove(&w.handle);
            list::shrink_map(&mut self.handles);
        } else {
            *self.list(k, w) = List::EMPTY;
        }
    }
}

struct Senders {
    waiters: Arena<SendWaiter, 2>,
    lists: SendLists,
    /// The notified waiters: every waiter but a `Sink`'s is either notified or on `queue`.
    notified: usize,
    /// The `Sink` waiters (on `lists.sinks`).
    sinks: usize,
}

impl Senders {
    fn remove(&mut self, i: u32) -> SendWaiter {
        let w = self.waiters.remove(&mut self.lists, i);
        if w.notified {
            self.notified -= 1;
        }
        if w.sink {
            self.sinks -= 1;
        }
        w
    }

    /// The first waiter of `handle`, if it has any.
    fn first_of(&self, handle: u64) -> Option<u32> {
        self.lists.handles.get(&handle).and_then(List::front)
    }
}

/// The lists of the receive waiters.
struct RecvLists {
    takers: List,
    /// `Recv` takers not notified.
    recvs: List,
    /// Stream waiters not woken since their last poll.
    streams: List,
    handles: IdMap<List>,
}

impl<T> Lists<RecvWaiter<T>> for RecvLists {
    fn list(&mut self, k: usize, w: &RecvWaiter<T>) -> &mut List {
        match k {
            BY_HANDLE => self.handles.entry(w.handle).or_insert(List::EMPTY),
            TAKERS => &mut self.takers,
            _ if w.stream => &mut self.streams,
            _ => &mut self.recvs,
        }
    }

    fn empty(&mut self, k: usize, w: &RecvWaiter<T>) {
        if k == BY_HANDLE {
            self.handles.remove(&w.handle);
            list::shrink_map(&mut self.handles);
        } else {
            *self.list(k, w) = List::EMPTY;
        }
    }
}

struct Receivers<T> {
    waiters: Arena<RecvWaiter<T>, 3>,
    lists: RecvLists,
    /// The notified `Recv` takers: every `Recv` taker is either notified or on `recvs`.
    notified: usize,
    /// Waiters holding an item handed to them.
    in_flight: usize,
}

impl<T> Receivers<T> {
    /// Takes waiter `i` off the takers, if it is one.
    fn leave_takers(&mut self, i: u32) {
        if !self.waiters.linked(i, TAKERS) {
            return;
        }
        let w = self.waiters.node(i);
        if !w.stream {
            if w.notified {
                self.notified -= 1;
            } else {
                self.waiters.unlink(&mut self.lists, WAKE, i);
            }
        }
        self.waiters.unlink(&mut self.lists, TAKERS, i);
    }

    /// The first taker whose scope is not cancelled; those found cancelled in front of it
    /// stop being takers (until they are polled again).
    fn first_taker(&mut self) -> Option<u32> {
        loop {
            let i = self.lists.takers.front()?;
            list::step();
            if !self.waiters.node(i).in_cancelled_scope() {
                return Some(i);
            }
            self.leave_takers(i);
        }
    }

    /// Waiter `i` was polled and waits on: a wake-up it had is used up, and if it was
    /// passed over, it is a taker again, at the front.
    fn polled(&mut self, i: u32) {
        let taker = self.waiters.linked(i, TAKERS);
        let w = self.waiters.node_mut(i);
        let notified = std::mem::replace(&mut w.notified, false);
        if w.stream {
            if notified {
                self.waiters.push_back(&mut self.lists, WAKE, i);
            }
            if !taker {
                self.waiters.push_front(&mut self.lists, TAKERS, i);
            }
        } else if !taker {
            self.waiters.push_front(&mut self.lists, TAKERS, i);
            self.waiters.push_front(&mut self.lists, WAKE, i);
        } else if notified {
            self.notified -= 1;
            self.waiters.push_front(&mut self.lists, WAKE, i);
        }
    }

    fn remove(&mut self, i: u32) -> RecvWaiter<T> {
        self.leave_takers(i);
        let w = self.waiters.remove(&mut self.lists, i);
        if w.slot.is_some() {
            self.in_flight -= 1;
        }
        w
    }

    /// The first waiter of `handle`, if it has any.
    fn first_of(&self, handle: u64) -> Option<u32> {
        self.lists.handles.get(&handle).and_then(List::front)
    }

    /// The takers whose scope is not cancelled (a walk over the takers).
    fn live_takers(&self) -> usize {
        let mut n = 0;
        let mut at = self.lists.takers.front();
        while let Some(i) = at {
            n += usize::from(!self.waiters.node(i).in_cancelled_scope());
            at = self.waiters.next(i, TAKERS);
        }
        n
    }
}

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
        if self.buffered() > 0 {
            self.wake_receivers();
        } else if self.ended() {
            // That was the last item (one handed back, say, while receives waited for it
            // to come back or not): the others learn that the stream has ended.
            self.wake_all_receivers();
        }
        Some(item)
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

    fn remove_sender(&mut self, id: u64) {
        if let Some(i) = self.send.waiters.find(id) {
            // Pass on a wake-up this waiter may have received and not used.
            if self.send.remove(i).notified {
                self.wake_senders();
            }
        }
    }

    /// Removes a receive waiter; an item already handed to it goes back to the front of
    /// the stream, so nothing is lost.
    fn remove_receiver(&mut self, id: u64) {
        if let Some(i) = self.recv.waiters.find(id) {
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
            if !w.waker.will_wake(waker) {
                w.waker = waker.clone();
            }
            // Polled, and no room: a wake-up it had is used up (a send polled before it
            // took the room), and it waits again at the front.
            if std::mem::replace(&mut w.notified, false) {
                self.send.notified -= 1;
                self.send.waiters.push_front(&mut self.send.lists, QUEUE, i);
            }
            return;
        }
        let new = self.id();
        *id = Some(new);
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
        if let Some(i) = mine {
            if self.recv.waiters.node(i).slot.is_some() {
                let w = self.recv.remove(i);
                *id = None;
                if self.buffered() > 0 {
                    self.wake_receivers();
                } else if self.ended() {
                    // That was the last item: receives that waited for it to be taken
                    // or to come back now see the end.
                    self.wake_all_receivers();
                }
                return Poll::Ready(Ok(w.slot.expect("checked").1));
            }
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
                if !w.waker.will_wake(waker) {
                    w.waker = waker.clone();
                }
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
            let new = self.id();
            *id = Some(new);
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
        if id.take().is_some() {
            if let Some(i) = mine {
                // Its slot is empty (checked above): nothing to put back, and the
                // wake-ups for what is left in the stream are `pop`'s.
                self.recv.remove(i);
            }
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
    chan: Arc<Chan<T>>,
    /// This handle's id on the waiters' lists: [`NO_HANDLE`] until a send of it first
    /// waits (given then, under the stream's lock; see [`wait_registered`]).
    handle: AtomicU64,
    closed: AtomicBool,
    /// Whether a send of this handle ever waited (set under the stream's lock, before
    /// that send reads `closed` again): closing a handle that never did has no waiter to
    /// look for, and takes no lock for it (see [`SendStream::close`]).
    waited: AtomicBool,
    /// Notified (all listeners) when this handle closes, for [`SendStream::closed`]: the
    /// `closed()` futures of the other handles are not woken.
    closing: event_listener::Event,
    /// Whether a [`SendStream::closed`] future of this handle was ever polled: only then
    /// does closing it notify `closing`.
    watched: AtomicBool,
    /// The state of the [`Sink`](futures_sink::Sink) impl, made by its first use.
    sink: Option<Box<sink::SinkState<T>>>,
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
    /// Whether a receive of this handle ever waited (as [`SendStream::waited`]).
    waited: AtomicBool,
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
            if let Some(id) = this.id.take() {
                st.remove_sender(id);
            }
            return Poll::Pending;
        }
        let item = this.item.take().expect("`Send` polled after completion");
        let out = match st.try_send(this.stream.closed.load(Ordering::Acquire), item) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(item)) => {
                let stream = this.stream;
                let flags = (&stream.handle, &stream.closed, &stream.waited);
                if wait_registered(&mut st, flags, &mut this.id, cx.waker(), false) {
                    this.item = Some(item);
                    return Poll::Pending;
                }
                Err(SendError::Closed(item))
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
        // Each listener is made before the check that follows it, so a notification
        // between the two is not missed.
        loop {
            if stream.cannot_send() {
                this.listeners = [None, None];
                this.done = true;
                return Poll::Ready(());
            }
            let mut again = false;
            for (listener, event) in this.listeners.iter_mut().zip(events) {
                match listener {
                    None => {
                        *listener = Some(event.listen());
                        again = true;
                    }
                    Some(l) => {
                        if Pin::new(l).poll(cx).is_ready() {
                            *listener = None;
                            again = true;
                        }
                    }
                }
            }
            if !again {
                return Poll::Pending;
            }
        }
    }
}

/// Terminated once it has returned. (Polled again, it returns at once: a handle that
/// cannot send never can again.)
impl<T> futures_core::future::FusedFuture for SendClosed<'_, T> {
    fn is_terminated(&self) -> bool {
        self.done
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
            super::notify_listeners(&self.chan.closing);
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
        if let Some(id) = self.id.take() {
            self.stream.chan.lock().remove_receiver(id);
        }
    }
}

/// Terminated once it has returned.
impl<T> futures_core::future::FusedFuture for Recv<'_, T> {
    fn is_terminated(&self) -> bool {
        self.done
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
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// The complexity and memory claims of the stream's docs, checked by counting: every
/// lookup, link, unlink and node visited on the waiter lists is a step (see
/// [`list::step`]), so a test can bound the work per waiter without timing it. Futures
/// are polled by hand, outside any runtime.
#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use super::list::steps;
    use super::*;

    /// Waiters per test: enough that O(waiters) work per operation (n² in all) would
    /// pass any bound of a constant per waiter by far.
    const N: usize = 4096;
    /// The steps each test allows per waiter (the measured figures are 7.5 to 9.5).
    const PER_WAITER: u64 = 24;

    fn poll<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
    }

    /// Runs `f` and returns the steps it took.
    fn counted(f: impl FnOnce()) -> u64 {
        let before = steps();
        f();
        steps() - before
    }

    fn bound(what: &str, n: usize, work: u64) {
        assert!(
            work <= PER_WAITER * n as u64,
            "{what}: {work} steps for {n} waiters, more than {PER_WAITER} each"
        );
    }

    /// `n` tasks wait in `recv`, each on its own clone; `n` items are sent, one for each
    /// (a sender hands each to the longest waiting receive, past those that hold one);
    /// each receive takes its item and its handle is dropped while the others wait.
    #[test]
    fn serving_waiting_receivers_is_linear() {
        let (tx, rx) = memory_stream_unbounded::<usize>();
        let handles: Vec<_> = (0..N).map(|_| rx.clone()).collect();
        let mut recvs: Vec<_> = handles.iter().map(ReceiveStream::recv).collect();
        let work = counted(|| {
            for r in &mut recvs {
                assert!(poll(r).is_pending());
            }
            for i in 0..N {
                tx.try_send(i).unwrap();
            }
            // (`close` is what dropping a handle does.)
            for (i, (mut r, h)) in recvs.drain(..).zip(&handles).enumerate() {
                assert_eq!(poll(&mut r), Poll::Ready(Ok(i)));
                h.close();
            }
        });
        bound("serving receivers", N, work);
    }

    /// `n` tasks wait in `send` on a full stream, each on its own clone; the receiver
    /// takes an item at a time, and the send woken for it completes and drops its handle
    /// while the others wait.
    #[test]
    fn draining_waiting_senders_is_linear() {
        let (tx, rx) = memory_stream::<usize>(1);
        tx.try_send(0).unwrap();
        let handles: Vec<_> = (0..N).map(|_| tx.clone()).collect();
        let mut sends: Vec<_> = handles.iter().zip(1..).map(|(h, i)| h.send(i)).collect();
        let work = counted(|| {
            for s in &mut sends {
                assert!(poll(s).is_pending());
            }
            for (i, (mut s, h)) in sends.drain(..).zip(&handles).enumerate() {
                assert_eq!(rx.try_recv(), Ok(i));
                assert_eq!(poll(&mut s), Poll::Ready(Ok(())));
                h.close();
            }
            assert_eq!(rx.try_recv(), Ok(N));
        });
        bound("draining senders", N, work);
    }

    /// Dropping a clone that nobody waits on does not visit the waiters of the others,
    /// on either side.
    #[test]
    fn dropping_a_clone_does_not_touch_the_waiters() {
        let (tx, rx) = memory_stream::<usize>(1);
        tx.try_send(0).unwrap();
        let mut sends: Vec<_> = (0..N).map(|i| tx.send(i)).collect();
        for s in &mut sends {
            assert!(poll(s).is_pending());
        }
        let (tx2, rx2) = memory_stream::<usize>(0);
        let mut recvs: Vec<_> = (0..N).map(|_| rx2.recv()).collect();
        for r in &mut recvs {
            assert!(poll(r).is_pending());
        }
        let work = counted(|| {
            for _ in 0..N {
                drop(tx.clone());
                drop(rx.clone());
                drop(tx2.clone());
                drop(rx2.clone());
            }
        });
        assert_eq!(work, 0, "dropping clones visited waiters");
        drop((sends, recvs));
    }

    /// A waker that counts its wake-ups.
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Dropping a send handle wakes the `closed()` futures of that handle only, not
    /// those of the other clones (which would poll again, each, for every clone dropped).
    #[test]
    fn dropping_a_clone_wakes_no_other_closed_future() {
        let (tx, rx) = memory_stream::<usize>(1);
        let handles: Vec<_> = (0..N).map(|_| tx.clone()).collect();
        let count = Arc::new(Count(Default::default()));
        let waker = Waker::from(count.clone());
        let mut closed: Vec<_> = handles.iter().map(SendStream::closed).collect();
        for c in &mut closed {
            assert!(Pin::new(c)
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
        }
        for _ in 0..N {
            drop(tx.clone());
        }
        handles[0].close();
        assert_eq!(
            count.0.load(Ordering::Relaxed),
            1,
            "other closed() futures woken"
        );
        drop(rx); // the last receiver: every one of them
        assert_eq!(count.0.load(Ordering::Relaxed), N + 1);
        for c in &mut closed {
            assert!(poll(c).is_ready());
        }
    }

    /// Closing a handle visits that handle's waiters only.
    #[test]
    fn closing_a_handle_visits_its_own_waiters() {
        let (tx, rx) = memory_stream::<usize>(0);
        let mut others: Vec<_> = (0..N).map(|_| rx.recv()).collect();
        for r in &mut others {
            assert!(poll(r).is_pending());
        }
        let mine = rx.clone();
        let mut waits: Vec<_> = (0..8).map(|_| mine.recv()).collect();
        for r in &mut waits {
            assert!(poll(r).is_pending());
        }
        let work = counted(|| mine.close());
        assert!(
            work <= PER_WAITER * 8,
            "closing a handle of 8 waiters: {work} steps"
        );
        for r in &mut waits {
            assert_eq!(poll(r), Poll::Ready(Err(RecvError::Closed)));
        }
        drop((others, tx));
    }

    /// Waiters that go away in any order, from the back, from the middle, cost the same
    /// as from the front: a waiter is found by its id.
    #[test]
    fn removing_waiters_in_any_order_is_linear() {
        let (tx, rx) = memory_stream::<usize>(0);
        let (tx1, rx1) = memory_stream::<usize>(1);
        tx1.try_send(0).unwrap();
        let mut recvs: Vec<_> = (0..N).map(|_| rx.recv()).collect();
        let mut sends: Vec<_> = (0..N).map(|i| tx1.send(i)).collect();
        let work = counted(|| {
            for r in &mut recvs {
                assert!(poll(r).is_pending());
            }
            for s in &mut sends {
                assert!(poll(s).is_pending());
            }
            // From the back, then every other one from the middle out.
            while let Some(r) = recvs.pop() {
                drop(r);
            }
            while !sends.is_empty() {
                drop(sends.remove(sends.len() / 2));
            }
        });
        bound("removing waiters", 2 * N, work);
        drop((tx, rx1));
    }

    /// Items sent while `n` handles wait in `next()`: each waiting handle is woken once
    /// per poll, not once per item.
    #[test]
    fn stream_waiters_are_woken_once_per_poll() {
        use futures_core::Stream;

        let (tx, rx) = memory_stream_unbounded::<usize>();
        let mut streams: Vec<_> = (0..N).map(|_| rx.clone()).collect();
        let work = counted(|| {
            for s in &mut streams {
                let next = Pin::new(s).poll_next(&mut Context::from_waker(Waker::noop()));
                assert!(next.is_pending());
            }
            for i in 0..N {
                tx.try_send(i).unwrap();
            }
            for (i, s) in streams.iter_mut().enumerate() {
                let next = Pin::new(s).poll_next(&mut Context::from_waker(Waker::noop()));
                assert_eq!(next, Poll::Ready(Some(i)));
            }
        });
        bound("stream waiters", N, work);
    }

    /// A drained buffer gives its memory back: at most a quarter empty... as it drains,
    /// and down to [`BUFFER_KEEP_BYTES`] once empty.
    #[test]
    fn a_draining_buffer_shrinks() {
        let (tx, rx) = memory_stream_unbounded::<[u8; 64]>();
        let items = 100_000;
        for _ in 0..items {
            tx.try_send([0; 64]).unwrap();
        }
        assert!(rx.chan.lock().buf.capacity() >= items);
        let keep = BUFFER_KEEP_BYTES / 64;
        for left in (0..items).rev() {
            rx.try_recv().unwrap();
            let capacity = rx.chan.lock().buf.capacity();
            assert!(
                capacity <= keep.max(4 * left),
                "{left} items left in a buffer of {capacity}"
            );
        }
        assert!(rx.chan.lock().buf.capacity() <= keep);
    }

    /// After a burst of waiters, on both sides and on many handles, the waiter storage
    /// comes back to its small starting size.
    #[test]
    fn waiter_storage_shrinks_after_a_burst() {
        let (tx, rx) = memory_stream::<usize>(0);
        let bytes = |st: &State<usize>| st.send.waiters.bytes() + st.recv.waiters.bytes();
        let handles =
            |st: &State<usize>| st.send.lists.handles.capacity() + st.recv.lists.handles.capacity();
        let empty = bytes(&tx.chan.lock());
        for _ in 0..2 {
            let senders: Vec<_> = (0..N).map(|_| tx.clone()).collect();
            let receivers: Vec<_> = (0..N).map(|_| rx.clone()).collect();
            let mut sends: Vec<_> = senders.iter().zip(0..).map(|(h, i)| h.send(i)).collect();
            let mut recvs: Vec<_> = receivers.iter().map(ReceiveStream::recv).collect();
            // The receives first: each send completes at once, handing its item over.
            for r in &mut recvs {
                assert!(poll(r).is_pending());
            }
            for s in &mut sends {
                assert!(poll(s).is_ready());
            }
            drop(sends);
            let mut sends: Vec<_> = senders.iter().zip(0..).map(|(h, i)| h.send(i)).collect();
            for s in &mut sends {
                assert!(poll(s).is_pending());
            }
            assert!(bytes(&tx.chan.lock()) > 100 * N);
            for (i, mut r) in recvs.into_iter().enumerate() {
                assert_eq!(poll(&mut r), Poll::Ready(Ok(i)));
            }
            drop(sends);
            drop((senders, receivers));
            let st = tx.chan.lock();
            assert!(
                bytes(&st) <= empty.max(8 * 1024),
                "{} bytes of waiter storage kept after the waiters left",
                bytes(&st)
            );
            assert!(handles(&st) <= 64, "{} handle lists kept", handles(&st));
        }
    }
}
