//! `Condition`: wait for a notification while releasing a [`Lock`](super::Lock).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use event_listener::{EventListener, IntoNotification};

use super::lock::{Lock, LockAcquire, LockGuard};
use crate::context as rt;

/// A condition variable for [`Lock`](super::Lock) (anyio's `Condition`, in the shape of
/// `std::sync::Condvar`): [`wait`](Condition::wait) releases the lock, waits for a
/// notification, re-acquires the lock and gives the guard back.
///
/// As with every condition variable, check your predicate in a loop: a notification says
/// "something changed", not "your condition holds" (and a wait polled again in a scope
/// that was cancelled returns without one).
///
/// # Cancellation and the guard
///
/// trio's `Condition.wait` re-acquires the lock before returning "even when cancelled",
/// so that the caller's `async with lock:` never releases a lock it does not hold. In
/// hatchery the guard *moves into* [`wait`](Condition::wait) and comes back in its
/// output, so the same guarantee holds by ownership: either `wait` returns, and the lock
/// is held again, or the enclosing scope was cancelled, `wait` never returns, and no code
/// of the caller runs again with the guard. There is no state in which the caller has a
/// guard for a lock it does not hold.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use hatchery::nursery;
/// use hatchery::sync::{Condition, Lock};
///
/// # hatchery_smol::run(async {
/// let state = Arc::new((Lock::new(false), Condition::new()));
/// nursery(|n| {
///     let state = state.clone();
///     async move {
///         let s = state.clone();
///         n.spawn(async move {
///             *s.0.lock().await = true;
///             s.1.notify_all();
///             Ok::<_, std::io::Error>(())
///         });
///         let (lock, cond) = &*state;
///         let mut ready = lock.lock().await;
///         while !*ready {
///             ready = cond.wait(ready).await;
///         }
///         Ok(())
///     }
/// })
/// .await
/// .unwrap();
/// # });
/// ```
pub struct Condition {
    event: event_listener::Event,
}

impl Condition {
    /// A new condition with no waiters.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::sync::{Condition, Lock};
    /// use hatchery::testing::virtual_time;
    ///
    /// # hatchery_smol::run(virtual_time(async {
    /// let (lock, cond) = (Lock::new(()), Condition::new());
    /// cond.notify(1); // nobody waits: nothing happens, and nothing is stored
    /// let guard = lock.lock().await;
    /// let woken = hatchery::move_on_after(Duration::from_secs(1), cond.wait(guard)).await;
    /// assert!(woken.is_none()); // the later wait did not see it
    /// # }));
    /// ```
    pub fn new() -> Condition {
        Condition {
            event: event_listener::Event::new(),
        }
    }

    /// Wakes up to `n` waiting tasks, longest-waiting first. A notification is not
    /// stored: tasks that start waiting later do not see it. A woken task whose wait is
    /// cancelled before it took the notification passes it to the next waiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use hatchery::nursery;
    /// use hatchery::sync::{Condition, Lock};
    /// use hatchery::testing::{tracked, wait_all_tasks_blocked};
    ///
    /// # hatchery_smol::run(tracked(async {
    /// let shared = Arc::new((Lock::new(()), Condition::new(), AtomicUsize::new(0)));
    /// let sh = shared.clone();
    /// nursery(|n| async move {
    ///     for _ in 0..3 {
    ///         let s = sh.clone();
    ///         n.spawn(async move {
    ///             let (lock, cond, woken) = &*s;
    ///             let guard = lock.lock().await;
    ///             let _guard = cond.wait(guard).await;
    ///             woken.fetch_add(1, Ordering::SeqCst);
    ///             Ok::<_, std::io::Error>(())
    ///         });
    ///     }
    ///     wait_all_tasks_blocked().await; // all three wait
    ///     let (_, cond, woken) = &*sh;
    ///     cond.notify(1);
    ///     wait_all_tasks_blocked().await;
    ///     assert_eq!(woken.load(Ordering::SeqCst), 1); // one woke, two still wait
    ///     cond.notify(2);
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(shared.2.load(Ordering::SeqCst), 3);
    /// # }));
    /// ```
    pub fn notify(&self, n: usize) {
        self.event.notify(n.additional());
    }

    /// Wakes every waiting task.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use hatchery::nursery;
    /// use hatchery::sync::{Condition, Lock};
    /// use hatchery::testing::{tracked, wait_all_tasks_blocked};
    ///
    /// # hatchery_smol::run(tracked(async {
    /// let shared = Arc::new((Lock::new(0), Condition::new()));
    /// let sh = shared.clone();
    /// nursery(|n| async move {
    ///     for _ in 0..3 {
    ///         let s = sh.clone();
    ///         n.spawn(async move {
    ///             let (lock, cond) = &*s;
    ///             let guard = lock.lock().await;
    ///             let mut woken = cond.wait(guard).await;
    ///             *woken += 1;
    ///             Ok::<_, std::io::Error>(())
    ///         });
    ///     }
    ///     wait_all_tasks_blocked().await; // all three wait
    ///     sh.1.notify_all(); // the nursery returns: every waiter woke
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(*shared.0.lock().await, 3);
    /// # }));
    /// ```
    pub fn notify_all(&self) {
        self.event.notify(usize::MAX);
    }

    /// Releases the lock held by `guard`, waits for a notification, re-acquires the
    /// lock and returns the guard.
    ///
    /// The wait starts listening before it releases the lock, so a notification sent by
    /// whoever takes the lock next is not missed.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the lock is released (if it is held by the future at
    /// that moment) and the guard is gone with it; a notification it had received but not
    /// consumed goes to the next waiter. If the enclosing scope is cancelled, it never
    /// completes and the scope drops it (see
    /// [Cancellation and the guard](Condition#cancellation-and-the-guard)), whatever it
    /// was doing: polled in the cancelled scope, it releases the lock if it still holds
    /// it, stops waiting for a notification or for the lock, and passes a notification it
    /// had taken to the next waiter, at once, even if something next to it (a shield)
    /// keeps the cancelled code alive. So a `notify(1)` is never lost to a cancelled
    /// waiter. (Polled again later outside a cancelled scope, it goes on as after a
    /// wake-up without a notification: it takes the lock back and returns.)
    ///
    /// # Panics
    ///
    /// When polled after it returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::sync::{Condition, Lock};
    ///
    /// # hatchery_smol::run(async {
    /// let (lock, cond) = (Lock::new(0), Condition::new());
    /// let guard = lock.lock().await;
    /// // Nobody notifies: the timeout cancels the wait, and the lock is free again.
    /// let out = hatchery::move_on_after(Duration::from_millis(5), cond.wait(guard)).await;
    /// assert!(out.is_none());
    /// assert!(!lock.is_locked());
    /// # });
    /// ```
    pub fn wait<'a, T>(&self, guard: LockGuard<'a, T>) -> ConditionWait<'_, 'a, T> {
        ConditionWait {
            cond: self,
            state: State::Start(guard),
        }
    }

    /// [`wait`](Condition::wait), blocking this thread: releases the lock held by
    /// `guard`, blocks until notified, re-acquires the lock and returns the guard. For
    /// threads outside the executor (a plain thread, or
    /// [`run_blocking`](crate::run_blocking)); never call it from async code, where it
    /// would block an executor thread.
    ///
    /// # Panics
    ///
    /// When called from async code inside hatchery (a task or scope being polled on this
    /// thread), with a message that says to use the async method instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use hatchery::sync::{Condition, Lock};
    ///
    /// let shared = Arc::new((Lock::new(false), Condition::new()));
    /// let waiter = std::thread::spawn({
    ///     let shared = shared.clone();
    ///     move || {
    ///         let (lock, cond) = &*shared;
    ///         let mut ready = lock.lock_blocking();
    ///         while !*ready {
    ///             ready = cond.wait_blocking(ready);
    ///         }
    ///     }
    /// });
    /// let (lock, cond) = &*shared;
    /// *lock.lock_blocking() = true;
    /// cond.notify_all();
    /// waiter.join().unwrap();
    /// ```
    pub fn wait_blocking<'a, T>(&self, guard: LockGuard<'a, T>) -> LockGuard<'a, T> {
        super::block_on(self.wait(guard))
    }
}

impl Default for Condition {
    fn default() -> Self {
        Condition::new()
    }
}

opaque_debug!(impl Condition);

enum State<'a, T> {
    Start(LockGuard<'a, T>),
    Waiting {
        // `None` once a cancelled poll dropped it (see `poll`).
        listener: Option<EventListener>,
        lock: &'a Lock<T>,
    },
    // Counts in `Lock::tasks_waiting` while it waits for the lock.
    Reacquire(LockAcquire<'a, T>),
    Done,
}

/// Future returned by [`Condition::wait`].
///
/// # Examples
///
/// ```
/// use futures_lite::future;
/// use hatchery::futures::ConditionWait;
/// use hatchery::sync::{Condition, Lock};
///
/// # hatchery_smol::run(async {
/// let (lock, cond) = (Lock::new(0), Condition::new());
/// let wait: ConditionWait<'_, '_, i32> = cond.wait(lock.lock().await);
/// assert!(lock.is_locked()); // released only once the wait is polled
/// let (guard, ()) = future::zip(wait, async {
///     *lock.lock().await += 1; // the wait released the lock
///     cond.notify_all();
/// })
/// .await;
/// assert_eq!(*guard, 1); // re-acquired after the notification
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct ConditionWait<'c, 'a, T> {
    cond: &'c Condition,
    state: State<'a, T>,
}

impl<'a, T> Future for ConditionWait<'_, 'a, T> {
    type Output = LockGuard<'a, T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Start(_) => {
                    // In a cancelled scope the wait releases the lock and never listens:
                    // it stops as a wait that was not notified does (below), and does
                    // not hold the lock while a shield next to it keeps the cancelled
                    // body alive.
                    let cancelled = rt::current_cancelled();
                    let listener = (!cancelled).then(|| super::listen(&this.cond.event));
                    let State::Start(guard) = std::mem::replace(&mut this.state, State::Done)
                    else {
                        unreachable!()
                    };
                    let lock = guard.lock();
                    drop(guard);
                    this.state = State::Waiting { listener, lock };
                    if cancelled {
                        return Poll::Pending;
                    }
                }
                State::Waiting { listener, lock } => {
                    // Not notified yet: a cancelled wait stops here, and stops listening
                    // at once, which passes on a notification it may have received, even
                    // while something next to it keeps the cancelled body alive (a
                    // shield). Polled again outside a cancelled scope, it goes on as if
                    // woken up without a notification, which callers allow for.
                    if rt::current_cancelled() {
                        *listener = None;
                        return Poll::Pending;
                    }
                    if let Some(listener) = listener {
                        if Pin::new(listener).poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                    }
                    this.state = State::Reacquire(LockAcquire::new(lock));
                }
                State::Reacquire(fut) => {
                    // Notified, but cancelled before it had the lock again: it leaves the
                    // lock's queue and passes its notification on at once (not only when
                    // dropped: a shield next to it may keep the cancelled body alive), and
                    // polled again outside a cancelled scope, it goes on as if woken up
                    // without a notification.
                    if rt::current_cancelled() {
                        let lock = fut.lock();
                        this.state = State::Waiting {
                            listener: None,
                            lock,
                        };
                        this.cond.event.notify(1.additional());
                        return Poll::Pending;
                    }
                    let guard = std::task::ready!(Pin::new(fut).poll(cx));
                    this.state = State::Done;
                    return Poll::Ready(guard);
                }
                State::Done => panic!("`ConditionWait` polled after completion"),
            }
        }
    }
}

/// Terminated once it has returned the guard.
impl<T> futures_core::future::FusedFuture for ConditionWait<'_, '_, T> {
    fn is_terminated(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

impl<T> Drop for ConditionWait<'_, '_, T> {
    fn drop(&mut self) {
        // Notified, then dropped (its scope cancelled, say) while taking the lock back:
        // the notification was ours and is lost with us, so pass it on. At worst another
        // waiter wakes up without a reason, which callers allow for.
        if let State::Reacquire(_) = self.state {
            self.cond.event.notify(1.additional());
        }
    }
}

impl<T> fmt::Debug for ConditionWait<'_, '_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Start(_) => "start",
            State::Waiting { .. } => "waiting",
            State::Reacquire(_) => "reacquiring",
            State::Done => "done",
        };
        f.debug_struct("ConditionWait")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
