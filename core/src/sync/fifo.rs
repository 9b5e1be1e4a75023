//! The first-in, first-out queue of the tasks that wait for a [`Semaphore`]'s permit or
//! a [`CapacityLimiter`]'s token: the fairness both promise, and the queue's half of the
//! book's rules W3 and W5 (a grant made to a waiter that is then dropped goes to the
//! next one; a paused waiter keeps its place and may be granted), written once.
//!
//! A waiter is queued with an id (ids only grow) and the waker of its last poll; grants
//! go in queue order ([`Fifo::grant`]), and a granted waiter leaves the queue at once and
//! is woken. Since grants go in the order of the ids, every waiter whose id is below the
//! last one granted has been granted too, or has left: whether a waiter was granted is
//! one comparison with that mark, which the owner keeps beside its lock ([`Mark`]), so
//! that a granted waiter can take its grant without the lock (as tokio's fair semaphore's
//! woken waiter reads an atomic: the lock taken again by every woken waiter would cost
//! an acquisition on two threads more than tokio's). A waiter far back is found by a
//! binary search
//! (a waiter dropped far back costs no more than the first). The queue lives under its
//! owner's lock, where it wakes the granted waiters.
//!
//! [`Semaphore`]: super::Semaphore
//! [`CapacityLimiter`]: super::CapacityLimiter

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;

/// The queue of waiters; `T` is what the owner keeps of each (a limiter's borrower).
pub(super) struct Fifo<T> {
    /// The waiters not granted yet, in queue order, which is the order of their ids.
    waiters: VecDeque<Waiter<T>>,
    next_id: u64,
}

struct Waiter<T> {
    id: u64,
    waker: Waker,
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
            data,
        });
        id
    }

    /// Waiter `id` is polled again: whether it was granted (`mark`, the owner's, says so:
    /// it has left the queue then); if not, it keeps `waker` (the one of this poll) and
    /// stays.
    ///
    /// # Panics
    ///
    /// If waiter `id` was neither granted nor is queued (an internal error: a waiter
    /// leaves only when granted or through [`remove`](Fifo::remove)).
    #[inline]
    pub(super) fn poll(&mut self, mark: &Mark, id: u64, waker: &Waker) -> bool {
        if mark.granted(id) {
            return true;
        }
        let i = self
            .find(id)
            .expect("hatchery: internal error: a queued waiter lost");
        self.waiters[i].waker.clone_from(waker);
        false
    }

    /// Waiter `id` leaves (dropped while it waited): whether it had been granted (what it
    /// was granted then goes to the next waiter, the owner's part). `None` if it was
    /// neither granted nor is queued.
    pub(super) fn remove(&mut self, mark: &Mark, id: u64) -> Option<bool> {
        if mark.granted(id) {
            return Some(true);
        }
        let i = self.find(id)?;
        self.waiters.remove(i);
        Some(false)
    }

    /// Grants the waiters, in queue order, for as long as `take` agrees to give the next
    /// one what it waits for (it is told the waiter's data, and returns `false` when
    /// nothing is left to give); each one granted leaves the queue, and is woken once the
    /// owner's `mark` says it is granted. Returns whether every waiter is granted now
    /// (nobody is left waiting).
    #[inline]
    pub(super) fn grant(&mut self, mark: &Mark, mut take: impl FnMut(&T) -> bool) -> bool {
        while let Some(w) = self.waiters.front() {
            if !take(&w.data) {
                return false;
            }
            let w = self.waiters.pop_front().expect("a front waiter");
            mark.0.store(w.id + 1, Ordering::Release);
            w.waker.wake();
        }
        true
    }

    /// Whether a waiter is not granted yet.
    pub(super) fn any_ungranted(&self) -> bool {
        !self.waiters.is_empty()
    }

    /// How many waiters are not granted yet.
    pub(super) fn ungranted(&self) -> usize {
        self.waiters.len()
    }

    /// Where waiter `id` is: usually the first (the longest waiter), else a binary search
    /// by id.
    #[inline]
    fn find(&self, id: u64) -> Option<usize> {
        match self.waiters.front() {
            Some(w) if w.id == id => Some(0),
            _ => self.waiters.binary_search_by_key(&id, |w| w.id).ok(),
        }
    }
}

/// A queue's mark: every waiter whose id is below it has been granted, or has left. Kept
/// by the queue's owner beside the lock that guards the queue (one per queue: the
/// queue's methods are given it), so that a waiter can learn it was granted without that
/// lock. Written only under the lock ([`Fifo::grant`]), before the granted waiter is
/// woken, with release; read with acquire: what the granter did before the grant (a
/// releaser's writes under a [`Lock`](super::Lock)'s permit) happens before what the
/// granted waiter does after. Read under the lock, it is exact.
pub(super) struct Mark(AtomicU64);

impl Mark {
    pub(super) fn new() -> Mark {
        Mark(AtomicU64::new(0))
    }

    /// Whether waiter `id` has been granted (it has left the queue then). Without the
    /// lock, `false` may be stale (a grant made since); under it, it is not.
    #[inline]
    pub(super) fn granted(&self, id: u64) -> bool {
        id < self.0.load(Ordering::Acquire)
    }
}
