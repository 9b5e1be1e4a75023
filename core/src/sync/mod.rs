//! Synchronization primitives and memory streams that honour cancel scopes.
//!
//! These are anyio's primitives in Rust form, on every backend:
//!
//! | anyio | hatchery |
//! |---|---|
//! | `create_memory_object_stream(n)` | [`memory_stream`](crate::memory_stream) (`0` = rendezvous), [`memory_stream_unbounded`](crate::memory_stream_unbounded) |
//! | `Event` | [`Event`] (`set`, `is_set`, `wait`; no `clear`) |
//! | `Lock` | [`Lock<T>`](Lock) (FIFO-fair; holds the data; guard and owned guard) |
//! | `Semaphore` | [`Semaphore`] (FIFO-fair; permits and owned permits) |
//! | `CapacityLimiter` | [`CapacityLimiter`] (borrowers tracked; `total_tokens` settable) |
//! | `Condition` | [`Condition`] (with a [`Lock`]; `wait(guard) -> guard`) |
//!
//! # Cancellation
//!
//! Every wait here is a hatchery wait: it never completes inside a cancelled scope, and
//! the scope drops it where it stands. Each one checks for cancellation *before* it takes
//! anything (an item, a permit, a token), never after, so that a cancelled wait has
//! taken nothing and a completed wait has lost nothing. Each async method's
//! `# Cancel safety` section says exactly what happens when its future is dropped and
//! when the enclosing scope is cancelled while it waits.
//!
//! A wait kept past a timeout that only borrowed it (`move_on_after(d, &mut acquire)`,
//! then `acquire.await` later) was not dropped: a queued acquire keeps its place, may be
//! granted while nobody polls it (the permit, lock or token is then its own), and
//! completes when awaited. Drop it to give its place up.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use hatchery::sync::{Event, TryRecvError};
//! use hatchery::{memory_stream, move_on_after, CancelScope};
//!
//! # hatchery_smol::run(async {
//! // A wait that a timeout ends...
//! let ready = Event::new();
//! assert_eq!(move_on_after(Duration::from_millis(5), ready.wait()).await, None);
//!
//! // ...and a receive in a cancelled scope: it takes nothing, so the item stays.
//! let (tx, rx) = memory_stream(1);
//! tx.try_send("item").unwrap();
//! let scope = CancelScope::new();
//! scope.handle().cancel();
//! assert_eq!(scope.run(rx.recv()).await, None);
//! assert_eq!(rx.try_recv(), Ok("item"));
//! assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
//! # });
//! ```

/// `FusedFuture` and `Debug` for a future that may wait in a queue (`id`: its place
/// there) and returns once (`done`, kept by [`poll_once`]); `$finish` ends its `Debug`
/// (`finish` or `finish_non_exhaustive`, as that type's always has).
macro_rules! waiting_future_impls {
    (impl$(<$gen:ident>)? $name:ident$(<$($arg:tt),*>)?, $finish:ident) => {
        /// Terminated once it has returned.
        impl$(<$gen>)? futures_core::future::FusedFuture for $name$(<$($arg),*>)? {
            fn is_terminated(&self) -> bool {
                self.done
            }
        }

        impl$(<$gen>)? std::fmt::Debug for $name$(<$($arg),*>)? {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("waiting", &self.id.is_some())
                    .$finish()
            }
        }
    };
}

/// `Debug` that shows the type's name only (`Name { .. }`): for guards, permits and
/// futures whose fields tell nothing.
macro_rules! opaque_debug {
    (impl$(<$gen:ident>)? $name:ident$(<$($arg:tt),*>)?) => {
        impl$(<$gen>)? std::fmt::Debug for $name$(<$($arg),*>)? {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}

mod condition;
mod event;
mod fifo;
mod limiter;
mod lock;
mod semaphore;
pub(crate) mod stream;

pub use condition::Condition;
pub use event::Event;
pub(crate) use limiter::LimiterAcquireOwned;
pub use limiter::{CapacityLimiter, CapacityToken, LimiterError, LimiterStatistics};
pub use lock::{Lock, LockGuard, OwnedLockGuard};
pub use semaphore::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
// The streams themselves are at the crate's root (`hatchery::memory_stream`, ...), their
// errors and statistics here: one public path each.
pub use stream::{RecvError, SendError, StreamStatistics, TryRecvError, TrySendError};

/// Polls `fut` to completion on this thread, parking it between polls: the `_blocking`
/// methods, for threads outside the executor.
///
/// # Panics
///
/// When called while a hatchery task is being polled on this thread.
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    assert!(
        !crate::context::with_current(|c| c.is_some()),
        "hatchery: a `_blocking` method was called from async code inside hatchery, where it \
         would block an executor thread (and never finish in a cancelled scope); use the \
         async method with `.await`, or call it from `run_blocking` or a plain thread (in a \
         `Drop`, spawn the cleanup with `Nursery::try_spawn`, or use `finally`)"
    );
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Notifies every listener of `event`, if it has any, after the caller's store of what
/// they wait for. Every waiter of this crate makes its listener with [`listen`], which
/// fences after making it, before it reads that again (see [`poll_until`]); with a fence
/// here between the store and the look at the listeners, either the waiter sees the
/// store, or this sees its listener. Without listeners, nothing is notified: `notify`
/// would make the event's state, an allocation, for nobody.
pub(crate) fn notify_listeners(event: &event_listener::Event) {
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    if event.total_listeners() != 0 {
        event.notify(usize::MAX);
    }
}

/// A listener of `event`, made before the caller looks (again) at what it waits for.
///
/// Then a `SeqCst` fence, the waiter's half of the pair that [`notify_listeners`] (or
/// `Event::notify`) completes: the waiter stores its listener and then loads the
/// condition, the notifier stores the condition and then loads the listeners, and without
/// a fence on both sides each may read the other's old value (store buffering), so that
/// the waiter waits and nobody is notified. event-listener's `listen` says it fences, but
/// its version 5 does not; its list's lock orders the two sides only once the event's
/// state exists: the first listener makes that state (a compare-exchange of a pointer),
/// and a notifier that reads the pointer as still null looks no further. Found by Miri
/// (its weak memory, some seeds): a fresh `Event` set as a thread began to wait on it
/// left the waiter asleep (tests/sync/event.rs).
pub(crate) fn listen(event: &event_listener::Event) -> event_listener::EventListener {
    let listener = event.listen();
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    listener
}

/// Polls until `done()` holds, listening on `events` in between (`listeners`: one for
/// each). A listener is made before the check that follows it, so a notification
/// between the two is not missed.
fn poll_until<const N: usize>(
    events: [&event_listener::Event; N],
    listeners: &mut [Option<event_listener::EventListener>; N],
    cx: &mut std::task::Context<'_>,
    mut done: impl FnMut() -> bool,
) -> std::task::Poll<()> {
    use std::task::Poll;
    loop {
        if done() {
            listeners.fill_with(|| None);
            return Poll::Ready(());
        }
        let mut again = false;
        for (listener, event) in listeners.iter_mut().zip(events) {
            match listener {
                None => *listener = Some(listen(event)),
                Some(l) => {
                    if std::future::Future::poll(std::pin::Pin::new(l), cx).is_pending() {
                        continue;
                    }
                    *listener = None;
                }
            }
            again = true;
        }
        if !again {
            return Poll::Pending;
        }
    }
}

/// Polls an acquiring future's `poll`, which must not run again once it returned `Ready`
/// (it would take a second permit or token): polling `name` after that panics.
#[inline]
fn poll_once<T>(
    done: &mut bool,
    name: &str,
    poll: impl FnOnce() -> std::task::Poll<T>,
) -> std::task::Poll<T> {
    assert!(!*done, "`{name}` polled after completion");
    let out = poll();
    *done = out.is_ready();
    out
}

/// The named futures of this module (also in [`crate::futures`]).
pub(crate) mod futures {
    pub use super::condition::ConditionWait;
    pub use super::event::EventWait;
    pub use super::limiter::{LimiterAcquire, LimiterAcquireFor};
    pub use super::lock::{LockAcquire, LockAcquireOwned};
    pub use super::semaphore::{SemaphoreAcquire, SemaphoreAcquireOwned};
    pub use super::stream::{Recv, Send, SendClosed};
}
