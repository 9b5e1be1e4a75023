//! The queue through which the children of a polled group ask to be polled ([`Ready`]):
//! the keys of the children that were woken, and the new children not placed yet, which
//! the group's task takes in rounds (`kind::polled`).
//!
//! A child is placed in its group's slab under a key, and its waker (its node) puts that
//! key here ([`Ready::wake`]) and wakes the task that polls the group. A child woken on
//! the thread that runs its group's round (by its own poll or a sibling's: most wake-ups)
//! queues itself in a thread-local list instead, with no lock and no read-modify-write
//! ([`LOCAL`]).
//!
//! # Invariants
//!
//! 1. **Queued once.** A child is polled from a key only if its `queued` flag was set (by
//!    its waker, or from birth), and its poll clears the flag first ([`Ready::polling`]):
//!    a stale key (its child finished and the key went to another) polls nobody twice.
//! 2. **Born queued.** A new child's flag is set from its birth, so that a wake-up before
//!    its group placed it queues nothing: the round that places it polls it.

use std::cell::{Cell, RefCell};

use crate::node::sync::{AtomicBool, AtomicU32, AtomicWaker, Mutex, MutexGuard, Ordering};
use crate::seam::RawTask;

#[cfg(all(test, hatchery_loom))]
mod loom;

/// The queue of a polled group, shared by the group and every child's cell (see the
/// [module docs](self)).
pub(crate) struct Ready {
    queue: Mutex<Queue>,
    /// The task that polls the group.
    pub(crate) waker: AtomicWaker,
}

/// The key of a child that is not in its group yet.
pub(crate) const UNPLACED: u32 = u32::MAX;

/// What the group takes out of its [`Ready`] in a round.
#[derive(Default)]
pub(crate) struct Queue {
    /// The keys of the children woken since the last round.
    pub(crate) keys: Vec<u32>,
    /// The children spawned (or started) since the last round.
    pub(crate) new: Vec<RawTask>,
}

#[cfg(not(all(test, hatchery_loom)))]
std::thread_local! {
    /// The group whose round this thread is running, if any, the keys of its children
    /// woken on this thread during the round, and the key of the child the round is
    /// placing (see [`Ready::polling`]).
    static LOCAL: Local = const {
        Local {
            group: Cell::new(0),
            keys: RefCell::new(Vec::new()),
            placing: Cell::new(UNPLACED),
        }
    };
}

#[cfg(all(test, hatchery_loom))]
::loom::thread_local! {
    static LOCAL: Local = Local {
        group: Cell::new(0),
        keys: RefCell::new(Vec::new()),
        placing: Cell::new(UNPLACED),
    };
}

struct Local {
    /// The group's queue, by address; zero outside a round.
    group: Cell<usize>,
    keys: RefCell<Vec<u32>>,
    placing: Cell<u32>,
}

impl Default for Ready {
    fn default() -> Ready {
        Ready {
            queue: Mutex::new(Queue::default()),
            waker: AtomicWaker::new(),
        }
    }
}

impl Ready {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // No user code runs under this lock (children are moved, and dropped outside it).
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues the child whose key and flag these are, unless it is queued already
    /// (invariant 1), and wakes the group's task.
    #[inline]
    pub(crate) fn wake(&self, key: &AtomicU32, queued: &AtomicBool) {
        let local = LOCAL.try_with(|l| {
            if l.group.get() != self.addr() {
                return false;
            }
            // Woken in its group's round, on the thread running it: queued with no lock,
            // and no read-modify-write (a wake-up racing from another thread may queue
            // the child twice, and the round polls it once: invariant 1).
            if !queued.load(Ordering::Acquire) {
                queued.store(true, Ordering::Release);
                l.keys.borrow_mut().push(key.load(Ordering::Acquire));
            }
            true
        });
        if matches!(local, Ok(true)) || queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut queue = self.lock();
        let first = queue.keys.is_empty();
        queue.keys.push(key.load(Ordering::Acquire));
        drop(queue);
        // Woken once per batch, by whoever found the queue empty: the round that takes
        // the batch takes every key pushed after it too.
        if first {
            self.waker.wake();
        }
    }

    /// A new child for the group (born queued, invariant 2).
    pub(crate) fn push(&self, child: RawTask) {
        let mut queue = self.lock();
        let first = queue.new.is_empty();
        queue.new.push(child);
        drop(queue);
        // The task that polls the group takes the inbox at its next round; spawned from
        // elsewhere than its poll, it may be parked. Woken once per batch.
        if first {
            self.waker.wake();
        }
    }

    /// Swaps what was queued since the last round with `into` (empty, kept for its
    /// capacity).
    pub(crate) fn take(&self, into: &mut Queue) {
        std::mem::swap(&mut *self.lock(), into);
    }

    /// A child whose key and flag these are is about to be polled: `None` if it was not
    /// queued (a stale key, invariant 1), else whether this is its first poll. Its flag is
    /// cleared now; a new child takes its key here, in the round that places it
    /// ([`Round::placing`]).
    #[inline]
    pub(crate) fn polling(&self, key: &AtomicU32, queued: &AtomicBool) -> Option<bool> {
        let first = key.load(Ordering::Relaxed) == UNPLACED;
        if first {
            key.store(LOCAL.with(|l| l.placing.get()), Ordering::Release);
        }
        queued.swap(false, Ordering::AcqRel).then_some(first)
    }

    fn addr(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}

/// A group's round in [`LOCAL`], and what it replaced there (an enclosing group's round
/// on this thread), put back when it leaves, also on unwind.
pub(crate) struct Round {
    outer: Option<(usize, Vec<u32>, u32)>,
}

impl Round {
    /// Makes `ready`'s group the one whose children queue themselves in [`LOCAL`], with
    /// `keys` (an empty vector, kept for its capacity) to queue in.
    #[inline]
    pub(crate) fn enter(ready: &Ready, keys: Vec<u32>) -> Round {
        let outer = LOCAL.with(|l| {
            let group = l.group.replace(ready.addr());
            let keys = std::mem::replace(&mut *l.keys.borrow_mut(), keys);
            (group, keys, l.placing.get())
        });
        Round { outer: Some(outer) }
    }

    /// The child polled next is new, placed under `key`.
    #[inline]
    pub(crate) fn placing(&self, key: u32) {
        LOCAL.with(|l| l.placing.set(key));
    }

    /// Puts back what the round replaced; returns the keys its children queued.
    #[inline]
    pub(crate) fn leave(&mut self) -> Vec<u32> {
        let (group, keys, placing) = self.outer.take().expect("a round leaves once");
        LOCAL
            .try_with(|l| {
                l.group.set(group);
                l.placing.set(placing);
                std::mem::replace(&mut *l.keys.borrow_mut(), keys)
            })
            .unwrap_or_default()
    }
}

impl Drop for Round {
    fn drop(&mut self) {
        // Only when the round unwinds: the keys queued are lost with the group.
        if self.outer.is_some() {
            drop(self.leave());
        }
    }
}
