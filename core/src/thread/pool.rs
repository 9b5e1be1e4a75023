//! The worker threads of a runtime binding's file operations: at most as many as its
//! file limiter has tokens, each a loop on a thread of the runtime's blocking pool that
//! runs the operations handed to it, one after another.
//!
//! A thread per operation (`Runtime::spawn_blocking` for each) lets an executor's pool
//! grow past the limiter: the token goes back when the work returns, before the thread
//! is idle in the executor's pool, so the next operation, started at once with that
//! token, often finds no idle thread and gets a new one (tokio's pool grew to 150–317
//! threads for 1,000 tasks of 6 file operations each under a limiter of 40). Here the
//! thread that finishes an operation takes the next one itself.
//!
//! # Invariants
//!
//! 1. **Bounded.** A loop starts only when no loop is idle and fewer than `cap` run
//!    (`cap` is the limiter's total when the work comes: every queued work holds a
//!    token, so there is no more work than that); `threads` counts the loops, under the
//!    lock, from before their start to their end.
//! 2. **No work left behind.** A loop looks at the queue, under the lock, before it goes
//!    idle, and a submitter hands work to an idle loop (`notified`) or starts one, under
//!    the same lock: a queued work always has a loop that will take it. A loop the
//!    runtime drops unstarted gives its count back, and the last one drops the queue (each
//!    work then reports that it was dropped).
//! 3. **Idle counts as idle.** In a test run, a loop counts as idle for the run's clock
//!    while it waits for work (`rt::BlockingClock`), and the submitter that hands it
//!    work counts it busy first, so virtual time moves while loops wait, and never while
//!    one is about to run work.
//! 4. **Lingering ends.** An idle loop ends after [`LINGER`] without work, or as soon as
//!    its runtime is gone, so that a runtime that waits for its blocking threads when it
//!    shuts down (tokio's) waits little.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use super::lock;
use crate::seam::{BlockingClock, Runtime};

/// How long a loop waits for more work before it ends (invariant 4).
const LINGER: Duration = Duration::from_millis(100);

/// How often an idle loop looks whether its runtime is gone (invariant 4).
const LOOK: Duration = Duration::from_millis(10);

type Work = Box<dyn FnOnce() + Send>;

/// The loops of one runtime binding.
pub(crate) struct Pool {
    state: Mutex<State>,
    cond: Condvar,
    runtime: Weak<dyn Runtime>,
}

struct State {
    queue: VecDeque<Work>,
    /// Loops started and not ended (invariant 1).
    threads: usize,
    idle: usize,
    /// Idle loops handed work, not yet awake (invariant 2).
    notified: usize,
    /// The test run's clock of the loops, if any (invariant 3).
    clock: Option<BlockingClock>,
}

impl Pool {
    pub(crate) fn new(runtime: Weak<dyn Runtime>) -> Pool {
        Pool {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
                notified: 0,
                clock: None,
            }),
            cond: Condvar::new(),
            runtime,
        }
    }

    /// Runs `work` on a loop of `rt` (the pool's runtime), with at most `cap` loops.
    pub(crate) fn submit(self: &Arc<Self>, rt: &dyn Runtime, cap: usize, work: Work) {
        let mut s = lock(&self.state);
        s.queue.push_back(work);
        if s.idle > 0 {
            s.idle -= 1;
            s.notified += 1;
            if let Some(clock) = &s.clock {
                clock.busy(); // invariant 3
            }
            drop(s);
            self.cond.notify_one();
        } else if s.threads < cap.max(1) {
            s.threads += 1;
            drop(s);
            let mut start = Start {
                pool: Some(self.clone()),
            };
            rt.spawn_blocking(Box::new(move || {
                if let Some(pool) = start.pool.take() {
                    pool.work();
                }
            }));
        }
        // Else a loop that runs takes it when it is done (invariant 2).
    }

    /// A loop: the queued work, one after another, then a wait for more.
    fn work(self: Arc<Self>) {
        let clock = BlockingClock::current();
        let mut s = lock(&self.state);
        if s.clock.is_none() {
            s.clock.clone_from(&clock);
        }
        loop {
            if let Some(work) = s.queue.pop_front() {
                drop(s);
                work();
                s = lock(&self.state);
                continue;
            }
            s.idle += 1;
            if let Some(clock) = &clock {
                clock.idle(); // invariant 3
            }
            let until = Instant::now() + LINGER;
            loop {
                let wait = until.saturating_duration_since(Instant::now()).min(LOOK);
                s = self
                    .cond
                    .wait_timeout(s, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                if s.notified > 0 {
                    s.notified -= 1; // counted busy by the submitter (invariant 3)
                    break;
                }
                if Instant::now() >= until || self.runtime.strong_count() == 0 {
                    // Invariant 4: no work for a while, or nobody to bring any.
                    s.idle -= 1;
                    s.threads -= 1;
                    if let Some(clock) = &clock {
                        clock.busy(); // the run's wrapper counts this thread's end
                    }
                    return;
                }
            }
        }
    }
}

/// A loop handed to the runtime: if the runtime drops it unstarted, its count goes back,
/// and the last loop's queue with it (invariant 2).
struct Start {
    pool: Option<Arc<Pool>>,
}

impl Drop for Start {
    fn drop(&mut self) {
        let Some(pool) = self.pool.take() else {
            return;
        };
        let dropped = {
            let mut s = lock(&pool.state);
            s.threads -= 1;
            match s.threads {
                0 => std::mem::take(&mut s.queue),
                _ => VecDeque::new(),
            }
        };
        drop(dropped); // each work reports that it was dropped
    }
}
