//! Threads and async code: work sent to a thread ([`to_thread`]), calls back into the
//! runtime from such a thread and from any thread ([`from_thread`]).
//!
//! This module holds what they share: the [`Link`] between a thread that
//! `to_thread::run_sync` started and the task that waits for it (where the thread's calls
//! back go, and the scope that `check_cancelled` reads), the one-shot [`Reply`] a
//! blocked thread waits on, and [`block_on`], the wait itself.
//!
//! # Invariants
//!
//! 1. **One reply.** A [`Reply`] is filled at most once: the first of the value, a
//!    panic or a cancellation wins, and what comes later is dropped. A call's future
//!    sends its value; dropped before that (its scope cancelled, the waiting task gone),
//!    it sends `Cancelled` ([`ReplySender`]'s drop). So a blocked thread always gets an
//!    answer.
//! 2. **Closed links take no calls.** A [`Link`] closes when the waiting future goes or
//!    the thread has finished; closing drops the calls queued in it (each then replies
//!    `Cancelled`, invariant 1), and a call submitted after that fails at once.
//! 3. **Counted busy before the wait ends.** In a test run, a thread blocked in
//!    [`block_on`] counts as idle; the waker that ends the wait counts it busy again
//!    before it returns, so the run never sees every task blocked while the thread is
//!    about to go on (see `rt::BlockingClock`, through which a test run's clock reaches
//!    the thread).

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;

use crate::context;
use crate::node::Node;
use crate::seam::BlockingClock;
use crate::values::Values;

pub mod from_thread;
pub(crate) mod limiter;
pub(crate) mod pool;
mod portal;
pub mod to_thread;

/// A panic's payload, carried from one thread to another.
type Panic = Box<dyn Any + Send>;

/// Locks `m`, ignoring poisoning: no user code runs under these locks.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What ended a call without its value.
pub(crate) enum Failed {
    /// Its future was dropped before it finished: its scope was cancelled, or nobody
    /// was left to poll it.
    Cancelled,
    /// It panicked: the payload, to resume on the thread that waits.
    Panicked(Panic),
}

enum ReplyState<T> {
    Empty,
    Full(Result<T, Failed>),
    Taken,
}

/// The answer a blocked thread waits for (invariant 1).
pub(crate) struct Reply<T> {
    state: Mutex<ReplyState<T>>,
    waker: AtomicWaker,
}

impl<T> Reply<T> {
    fn new() -> Reply<T> {
        Reply {
            state: Mutex::new(ReplyState::Empty),
            waker: AtomicWaker::new(),
        }
    }

    /// Fills the reply, unless it has been already (invariant 1): `r` is then dropped on
    /// return, after the lock (a parameter outlives the body's locals), as it may run
    /// user code.
    fn send(&self, r: Result<T, Failed>) {
        let mut state = lock(&self.state);
        if let ReplyState::Empty = *state {
            *state = ReplyState::Full(r);
            drop(state);
            self.waker.wake();
        }
    }

    /// Waits for the reply.
    fn wait(&self) -> impl Future<Output = Result<T, Failed>> + '_ {
        std::future::poll_fn(|cx| {
            self.waker.register(cx.waker());
            let mut state = lock(&self.state);
            match std::mem::replace(&mut *state, ReplyState::Taken) {
                ReplyState::Full(r) => Poll::Ready(r),
                ReplyState::Empty => {
                    *state = ReplyState::Empty;
                    Poll::Pending
                }
                ReplyState::Taken => unreachable!("a reply is waited for once"),
            }
        })
    }
}

/// A reply of any type, as the task that polls a call sees it.
trait Answer: Send + Sync {
    /// Whether the reply has been filled (the call's future may still be around: a
    /// cancelled scope that dropped its body stays pending).
    fn is_done(&self) -> bool;
    /// Fills the reply with a failure (invariant 1).
    fn fail(&self, failed: Failed);
}

impl<T: Send> Answer for Reply<T> {
    fn is_done(&self) -> bool {
        !matches!(*lock(&self.state), ReplyState::Empty)
    }

    fn fail(&self, failed: Failed) {
        self.send(Err(failed));
    }
}

/// Sends a call's value; dropped without sending (the call's future dropped), it sends
/// `Cancelled` (invariant 1), unless it is dropped by a panic of the call, which the
/// [`Call`] sends instead.
struct ReplySender<T: Send>(Arc<Reply<T>>);

impl<T: Send> ReplySender<T> {
    fn send(self, value: T) {
        self.0.send(Ok(value));
    }
}

impl<T: Send> Drop for ReplySender<T> {
    fn drop(&mut self) {
        // A panic of the call unwinds through its future, which drops what it holds: the
        // panic is the answer, and `Call::poll` catches and sends it.
        if !std::thread::panicking() {
            self.0.fail(Failed::Cancelled);
        }
    }
}

/// A call back from a thread: a future that the waiting task polls inline, in its own
/// context, and the reply the thread waits on.
struct Call {
    fut: Pin<Box<dyn Future<Output = ()> + Send>>,
    reply: Arc<dyn Answer>,
}

impl Call {
    /// Polls the call in the current context; whether it is still pending. A panic is
    /// caught and sent to the thread that waits, to resume there.
    fn poll(&mut self, cx: &mut Context<'_>) -> bool {
        match catch_unwind(AssertUnwindSafe(|| self.fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(())) => false,
            // The body of a cancelled scope was dropped, which replied: the scope stays
            // pending (an enclosing one catches), and nothing is left to wait for.
            Ok(Poll::Pending) => !self.reply.is_done(),
            Err(panic) => {
                self.reply.fail(Failed::Panicked(panic));
                false
            }
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // Whatever happened to the future (its scope dropped it, a panic): the thread
        // gets an answer (invariant 1; a no-op if it has one).
        self.reply.fail(Failed::Cancelled);
    }
}

#[derive(Default)]
struct Calls {
    queue: Vec<Call>,
    closed: bool,
}

/// What a thread started by `to_thread::run_sync` knows of the task that waits for it:
/// where its calls back go ([`from_thread`]), and the scope whose cancellation
/// [`from_thread::check_cancelled`] reports.
#[derive(Default)]
pub(crate) struct Link {
    /// The waiting future's waker: woken when a call comes, and when the thread is done.
    waker: AtomicWaker,
    /// The scope the waiting future started the thread in, set before the thread starts.
    node: OnceLock<Arc<Node>>,
    /// The context values of the waiting task, if any, set before the thread starts: the
    /// work runs with them (rule V3).
    values: OnceLock<Values>,
    calls: Mutex<Calls>,
}

impl Link {
    /// Queues `call` for the waiting task and wakes it; fails if the link is closed
    /// (invariant 2).
    fn submit(&self, call: Call) -> Result<(), Call> {
        let mut calls = lock(&self.calls);
        if calls.closed {
            return Err(call);
        }
        calls.queue.push(call);
        drop(calls);
        self.waker.wake();
        Ok(())
    }

    /// Takes no more calls, and drops those queued (invariant 2).
    fn close(&self) {
        let queued = {
            let mut calls = lock(&self.calls);
            calls.closed = true;
            std::mem::take(&mut calls.queue)
        };
        // Outside the lock: dropping a call replies, and drops user code.
        drop(queued);
    }

    /// Whether the scope the thread was started in is cancelled, or its waiter gone.
    fn is_cancelled(&self) -> bool {
        lock(&self.calls).closed || self.node.get().is_some_and(|n| n.is_cancelled())
    }
}

/// A link of any type of result (see `to_thread`'s shared state).
pub(crate) trait Caller: Send + Sync {
    fn link(&self) -> &Link;
}

thread_local! {
    /// The link of the `to_thread` work this thread runs, while it runs it.
    static CALLER: RefCell<Option<Arc<dyn Caller>>> = const { RefCell::new(None) };
}

/// Makes `caller` this thread's link until dropped (the `to_thread` work runs meanwhile).
struct OnCaller(Option<Arc<dyn Caller>>);

impl OnCaller {
    fn set(caller: Arc<dyn Caller>) -> OnCaller {
        OnCaller(CALLER.with(|c| c.borrow_mut().replace(caller)))
    }
}

impl Drop for OnCaller {
    fn drop(&mut self) {
        let prev = self.0.take();
        let _ = CALLER.try_with(|c| *c.borrow_mut() = prev);
    }
}

/// The link of the `to_thread` work this thread runs, if any.
fn current_caller() -> Option<Arc<dyn Caller>> {
    CALLER.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// Whether async code inside hatchery is being polled on this thread, where blocking
/// would hold up an executor thread (or deadlock).
fn in_async_code() -> bool {
    context::with_current(|c| c.is_some())
}

/// Polls `fut` to completion on this thread, parking it in between, for a thread outside
/// the executor. In a test run, a thread that runs the run's blocking work counts as idle
/// while it is parked (invariant 3).
fn block_on<F: Future>(fut: F) -> F::Output {
    debug_assert!(!in_async_code(), "the callers check it");
    let signal = Arc::new(Signal {
        thread: std::thread::current(),
        clock: BlockingClock::current(),
        state: Mutex::default(),
    });
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        signal.wait();
    }
}

/// The waker of [`block_on`].
struct Signal {
    thread: std::thread::Thread,
    clock: Option<BlockingClock>,
    state: Mutex<SignalState>,
}

#[derive(Default)]
struct SignalState {
    /// Woken since the last poll.
    notified: bool,
    /// The thread counts as idle, and the waker must count it busy (invariant 3).
    idle: bool,
}

impl Signal {
    /// Parks until woken (at once if woken since the last poll).
    fn wait(&self) {
        let mut state = lock(&self.state);
        if std::mem::take(&mut state.notified) {
            return;
        }
        state.idle = self.clock.is_some();
        drop(state);
        if let Some(clock) = &self.clock {
            // After `idle` is set: a waker that comes now counts the thread busy again,
            // and the two cancel out whichever comes first.
            clock.idle();
        }
        loop {
            std::thread::park();
            if std::mem::take(&mut lock(&self.state).notified) {
                return;
            }
        }
    }
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let idle = {
            let mut state = lock(&self.state);
            state.notified = true;
            std::mem::take(&mut state.idle)
        };
        if let Some(clock) = self.clock.as_ref().filter(|_| idle) {
            clock.busy();
        }
        self.thread.unpark();
    }
}

/// Polls `fut` to its end, catching its panics: `Ok` with its output, or `Err` with a
/// panic's payload.
async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, Panic> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx).map(Ok)))
            .unwrap_or_else(|panic| Poll::Ready(Err(panic)))
    })
    .await
}
