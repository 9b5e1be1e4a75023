//! How a test run's virtual clock reaches the threads that run its blocking work,
//! without the thread layer knowing of test runs: the run's runtime marks each such
//! thread with its count of busy work ([`Busy`]) while the work runs
//! ([`OnBlockingThread`]), and a thread that then blocks until a task of the run answers
//! it (`hatchery::from_thread`) counts as idle while it waits ([`BlockingClock`]), so that
//! the clock can move for the task it waits for. Outside a test run no thread is marked,
//! and all of this does nothing.
//!
//! Part of the seam: it imports nothing else of the crate.

use std::cell::RefCell;
use std::sync::Arc;

/// What keeps a test run's virtual clock still: its count of busy work.
pub(crate) trait Busy: Send + Sync {
    /// One more thing is busy.
    fn busy(&self);

    /// One thing less is busy.
    fn unbusy(&self);
}

thread_local! {
    /// The count of the test run whose blocking work this thread runs, while it runs it.
    static BLOCKING: RefCell<Option<Arc<dyn Busy>>> = const { RefCell::new(None) };
}

/// Marks this thread as running a test run's blocking work, until dropped.
pub(crate) struct OnBlockingThread(Option<Arc<dyn Busy>>);

impl OnBlockingThread {
    /// Marks this thread with `count`, the run's.
    pub(crate) fn set(count: Arc<dyn Busy>) -> OnBlockingThread {
        OnBlockingThread(BLOCKING.with(|b| b.borrow_mut().replace(count)))
    }
}

impl Drop for OnBlockingThread {
    fn drop(&mut self) {
        let _ = BLOCKING.try_with(|b| *b.borrow_mut() = self.0.take());
    }
}

/// The count of the test run whose blocking work runs on this thread (which counts as
/// busy while it runs), for a thread that blocks until a task of the run answers it: it
/// counts as idle while it waits, so that the clock can move for the task it waits for.
#[derive(Clone)]
pub(crate) struct BlockingClock(Arc<dyn Busy>);

impl BlockingClock {
    /// The count of the run whose blocking work this thread runs, if any.
    pub(crate) fn current() -> Option<BlockingClock> {
        BLOCKING
            .try_with(|b| b.borrow().clone())
            .ok()
            .flatten()
            .map(BlockingClock)
    }

    /// The thread stops counting as busy (it waits for a task of the run, which the
    /// waker of its wait counts busy again with [`BlockingClock::busy`] first).
    pub(crate) fn idle(&self) {
        self.0.unbusy();
    }

    /// The thread counts as busy again.
    pub(crate) fn busy(&self) {
        self.0.busy();
    }
}
