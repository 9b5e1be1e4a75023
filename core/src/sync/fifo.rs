//! The first-in, first-out queue of the tasks that wait for a [`Semaphore`]'s permit or
//! a [`CapacityLimiter`]'s token: the fairness both promise, and the queue's half of the
//! book's rules W3 and W5 (a grant made to a waiter that is then dropped goes to the
//! next one; a paused waiter keeps its place and may be granted), written once.
//!
//! A waiter is queued with an id (ids only grow) and the waker of its last poll; grants
//! go in queue order ([`Fifo::grant`]: marked and woken), and a waiter leaves when its
//! next poll takes its grant ([`Fifo::poll`]) or when it is dropped ([`Fifo::remove`]).
//! So the granted waiters are the front of the queue and the rest stays sorted by id:
//! the first waiter not granted, and a waiter by its id, are found by binary searches
//! (handing n permits to n waiters that have not woken yet is not n² steps, and a
//! waiter far back costs no more than the first). The queue lives under its owner's
//! lock, where it wakes wakers with `wake_by_ref`, as both owners did.
//!
//! [`Semaphore`]: super::Semaphore
//! [`CapacityLimiter`]: super::CapacityLimiter

use std::collections::VecDeque;
use std::task::Waker;

/// The queue of waiters; `T` is what the owner keeps of each (a limiter's borrower).
pub(super) struct Fifo<T> {
    /// In queue order, which is the order of their ids; the granted ones first.
    waiters: VecDeque<Waiter<T>>,
    next_id: u64,
}

struct Waiter<T> {
    id: u64,
    waker: Waker,
    granted: bool,
    data: T,
}

impl<T> Fifo<T> {
    pub(super) fn new() -> Fifo<T> {
        Fifo {
            waiters: VecDeque::new(),
            next_id: 0,
        }
    }

    /// Queues a waiter at the back, woken by `waker`; its id.
    #[inline]
    pub(super) fn push(&mut self, data: T, waker: &Waker) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.waiters.push_back(Waiter {
            id,
            waker: waker.clone(),
            granted: false,
            data,
        });
        id
    }

    /// Waiter `id` is polled again: if it was granted, it leaves the queue with its data;
    /// if not, it keeps `waker` (the one of this poll) and stays.
    ///
    /// # Panics
    ///
    /// If no waiter `id` is queued (an internal error: a waiter leaves only through this
    /// call or [`remove`](Fifo::remove)).
    #[inline]
    pub(super) fn poll(&mut self, id: u64, waker: &Waker) -> Option<T> {
        let i = self
            .find(id)
            .expect("hatchery: internal error: a queued waiter lost");
        let w = &mut self.waiters[i];
        if w.granted {
            return self.waiters.remove(i).map(|w| w.data);
        }
        if !w.waker.will_wake(waker) {
            w.waker = waker.clone();
        }
        None
    }

    /// Takes waiter `id` out of the queue (dropped while it waited): its data, and
    /// whether it had been granted (what it was granted then goes to the next waiter,
    /// the owner's part). `None` if it is not queued.
    pub(super) fn remove(&mut self, id: u64) -> Option<(T, bool)> {
        let i = self.find(id)?;
        let w = self.waiters.remove(i).expect("index in range");
        Some((w.data, w.granted))
    }

    /// Grants the waiters not granted yet, in queue order, for as long as `take` agrees
    /// to give the next one what it waits for (it is told the waiter's data, and returns
    /// `false` when nothing is left to give); each one granted is woken. Returns whether
    /// every waiter is granted now (nobody is left waiting).
    #[inline]
    pub(super) fn grant(&mut self, mut take: impl FnMut(&T) -> bool) -> bool {
        let first = self.first_ungranted();
        for w in self.waiters.range_mut(first..) {
            if !take(&w.data) {
                return false;
            }
            w.granted = true;
            w.waker.wake_by_ref();
        }
        true
    }

    /// Whether a waiter is not granted yet.
    pub(super) fn any_ungranted(&self) -> bool {
        self.waiters.back().is_some_and(|w| !w.granted)
    }

    /// How many waiters are not granted yet.
    pub(super) fn ungranted(&self) -> usize {
        self.waiters.len() - self.first_ungranted()
    }

    /// The first waiter not granted (or the queue's length): usually the first (a
    /// granted waiter leaves the queue when it wakes), else a binary search.
    #[inline]
    fn first_ungranted(&self) -> usize {
        match self.waiters.front() {
            Some(w) if w.granted => self.waiters.partition_point(|w| w.granted),
            _ => 0,
        }
    }

    /// Where waiter `id` is: usually the first (the longest waiter, woken by its grant),
    /// else a binary search by id.
    #[inline]
    fn find(&self, id: u64) -> Option<usize> {
        match self.waiters.front() {
            Some(w) if w.id == id => Some(0),
            _ => self.waiters.binary_search_by_key(&id, |w| w.id).ok(),
        }
    }
}
