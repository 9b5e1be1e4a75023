//! The waiters of a memory stream: each waiting send and receive, on the lists that
//! find it by its handle, in the queue's order, and among those to wake, and the per-side
//! bookkeeping over them ([`Senders`], [`Receivers`]).

use std::sync::Arc;
use std::task::Waker;

use super::list::{self, Arena, IdMap, List, Lists};
use crate::node::Node;

/// A waiter's place in the list of its handle's waiters.
pub(super) const BY_HANDLE: usize = 0;
/// A send waiter's place in `Senders::queue` (a `Sink` waiter's: in `sinks`).
pub(super) const QUEUE: usize = 1;
/// A receive waiter's place in `Receivers::takers`.
pub(super) const TAKERS: usize = 1;
/// A receive waiter's place in `recvs` (a `Recv`) or `streams` (a stream waiter).
pub(super) const WAKE: usize = 2;

pub(super) struct SendWaiter {
    pub(super) handle: u64,
    pub(super) waker: Waker,
    /// Woken for room, and not polled since (see [`State::wake_senders`]).
    pub(super) notified: bool,
    /// A `Sink` handle's waiter (on `SendLists::sinks`, never notified).
    pub(super) sink: bool,
}

pub(super) struct RecvWaiter<T> {
    pub(super) handle: u64,
    pub(super) waker: Waker,
    /// For a [`Recv`]: an item handed over directly by a sender (rendezvous, or an
    /// empty buffer), with its place in the order of hand-overs (see [`State::bounce`]).
    pub(super) slot: Option<(u64, T)>,
    /// Whether this is the waiter of a handle's `poll_next`. It stays registered between
    /// polls, and the `next()` future that polled it may be gone for good (a lost
    /// `select!` branch) while the handle lives on; so it is never handed an item: an
    /// item sent for it waits in the buffer, where any receiver takes it, and every
    /// stream waiter is woken for it (see [`State::wake_receivers`]).
    pub(super) stream: bool,
    /// For a stream waiter: an item was put in the buffer for it since its last poll. It
    /// stands for no further item until it is polled again, so a rendezvous sender does
    /// not count an idle handle as a receiver twice.
    pub(super) served: bool,
    /// The scope of its last poll. No item is sent for it once that scope is cancelled:
    /// it will never take one (a cancelled `Recv` withdraws at its next poll, and the
    /// scope may drop a stream's poller without polling it again).
    pub(super) scope: Option<Arc<Node>>,
    /// Woken (for a buffered item), and not polled since.
    pub(super) notified: bool,
}

impl<T> RecvWaiter<T> {
    pub(super) fn in_cancelled_scope(&self) -> bool {
        self.scope.as_ref().is_some_and(|n| n.is_cancelled())
    }
}

/// The lists of the send waiters.
pub(super) struct SendLists {
    /// Waiters not notified, longest waiting first.
    pub(super) queue: List,
    /// The waiters of `Sink` handles.
    pub(super) sinks: List,
    pub(super) handles: IdMap<List>,
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

pub(super) struct Senders {
    pub(super) waiters: Arena<SendWaiter, 2>,
    pub(super) lists: SendLists,
    /// The notified waiters: every waiter but a `Sink`'s is either notified or on `queue`.
    pub(super) notified: usize,
    /// The `Sink` waiters (on `lists.sinks`).
    pub(super) sinks: usize,
}

impl Senders {
    pub(super) fn remove(&mut self, i: u32) -> SendWaiter {
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
    pub(super) fn first_of(&self, handle: u64) -> Option<u32> {
        self.lists.handles.get(&handle).and_then(List::front)
    }
}

/// The lists of the receive waiters.
pub(super) struct RecvLists {
    pub(super) takers: List,
    /// `Recv` takers not notified.
    pub(super) recvs: List,
    /// Stream waiters not woken since their last poll.
    pub(super) streams: List,
    pub(super) handles: IdMap<List>,
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

pub(super) struct Receivers<T> {
    pub(super) waiters: Arena<RecvWaiter<T>, 3>,
    pub(super) lists: RecvLists,
    /// The notified `Recv` takers: every `Recv` taker is either notified or on `recvs`.
    pub(super) notified: usize,
    /// Waiters holding an item handed to them.
    pub(super) in_flight: usize,
}

impl<T> Receivers<T> {
    /// Takes waiter `i` off the takers, if it is one.
    pub(super) fn leave_takers(&mut self, i: u32) {
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
    pub(super) fn first_taker(&mut self) -> Option<u32> {
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
    pub(super) fn polled(&mut self, i: u32) {
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

    pub(super) fn remove(&mut self, i: u32) -> RecvWaiter<T> {
        self.leave_takers(i);
        let w = self.waiters.remove(&mut self.lists, i);
        if w.slot.is_some() {
            self.in_flight -= 1;
        }
        w
    }

    /// The first waiter of `handle`, if it has any.
    pub(super) fn first_of(&self, handle: u64) -> Option<u32> {
        self.lists.handles.get(&handle).and_then(List::front)
    }

    /// The takers whose scope is not cancelled (a walk over the takers).
    pub(super) fn live_takers(&self) -> usize {
        std::iter::successors(self.lists.takers.front(), |&i| self.waiters.next(i, TAKERS))
            .filter(|&i| !self.waiters.node(i).in_cancelled_scope())
            .count()
    }
}
