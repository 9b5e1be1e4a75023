//! Where a group keeps the allocations of its tasks that finished on another thread than
//! the one that spawns into it, for that thread to free ([`Graves`]).
//!
//! Why: a task is allocated by the thread that spawns it and, on a multi-threaded
//! runtime, usually finishes on another. glibc's free of memory from another thread's
//! arena takes that arena's lock, which the spawning thread's mallocs contend for, and
//! the memory is not reused where it is wanted. Freed by the spawning thread instead,
//! between its spawns, it goes back to that thread's cache.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::context;
use crate::node::Node;

/// How many finished tasks' allocations other threads may leave for the group's thread
/// to free ([`Graves::bury`]) before they free them themselves.
const DEAD_MAX: usize = 64;

/// The allocations of a group's finished tasks, kept for the group's thread to free. See
/// the [module docs](self).
pub(crate) struct Graves {
    /// The thread that last spawned into the group ([`context::thread_mark`]), where
    /// tasks' allocations are freed.
    home: AtomicUsize,
    /// How many allocations `dead` holds, read without its lock.
    dead_len: AtomicUsize,
    /// Allocations of finished tasks let go of on another thread than `home`.
    dead: Mutex<Vec<Arc<Node>>>,
}

impl Graves {
    /// A group's, made on its thread.
    pub(crate) fn new() -> Graves {
        Graves {
            home: AtomicUsize::new(context::thread_mark()),
            dead_len: AtomicUsize::new(0),
            dead: Mutex::new(Vec::new()),
        }
    }

    /// Keeps the allocation of a finished task that nothing but its runner holds any
    /// more, about to go: on the group's thread (the one that last spawned into it), it
    /// does nothing, and the runner's reference, the last, frees it as usual; on another
    /// thread it keeps a reference to it (`cell`, called only then) for the group's
    /// thread to free ([`reap`](Graves::reap)).
    ///
    /// At most [`DEAD_MAX`] are kept: past that, the finishing thread frees them itself.
    /// Nothing of the task's is kept but the memory: its future, value and group
    /// reference were dropped when it finished.
    ///
    /// The check is inline, and all a task that finishes on the group's thread pays (a
    /// load and a comparison: the thread's mark is an address, read without a call).
    #[inline]
    pub(crate) fn bury(&self, cell: impl FnOnce() -> Arc<Node>) {
        if self.home.load(Ordering::Relaxed) != context::thread_mark() {
            self.keep(cell());
        }
    }

    /// Keeps `cell` for the group's thread ([`bury`](Graves::bury) on another thread).
    #[cold]
    #[inline(never)]
    fn keep(&self, cell: Arc<Node>) {
        let mut dead = self.dead.lock().unwrap_or_else(|e| e.into_inner());
        dead.push(cell);
        self.dead_len.store(dead.len(), Ordering::Relaxed);
        if dead.len() >= DEAD_MAX {
            // Nobody came to free them: free them here after all.
            drop(dead);
            self.free_dead();
        }
    }

    /// Frees what tasks that finished on other threads left ([`bury`](Graves::bury)),
    /// and makes the calling thread (`key`, from [`context::thread_mark`]) the group's.
    /// Called on every spawn and when the group finishes, so nothing is kept past it.
    /// Inline: on one thread, two loads and two comparisons.
    #[inline]
    pub(crate) fn reap(&self, key: usize) {
        if self.home.load(Ordering::Relaxed) != key {
            self.home.store(key, Ordering::Relaxed);
        }
        if self.dead_len.load(Ordering::Relaxed) != 0 {
            self.free_dead();
        }
    }

    /// Frees what [`keep`](Graves::keep) kept.
    #[cold]
    #[inline(never)]
    fn free_dead(&self) {
        let batch = {
            let mut dead = self.dead.lock().unwrap_or_else(|e| e.into_inner());
            self.dead_len.store(0, Ordering::Relaxed);
            std::mem::take(&mut *dead)
        };
        // Outside the lock: a task's last reference may drop executor wakers.
        drop(batch);
    }
}
