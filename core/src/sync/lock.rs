//! `Lock`: a FIFO-fair async mutex: a semaphore of one permit around the value.

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::poll_once;
use super::semaphore::{self, poll_acquire, OwnedSemaphorePermit};

/// An async mutual-exclusion lock around a value of type `T` (anyio's `Lock`, holding
/// the data it protects, like `std::sync::Mutex`).
///
/// Acquiring is a hatchery wait: it never completes (never takes the lock) inside a
/// cancelled scope. The guard releases the lock when dropped; an [`OwnedLockGuard`]
/// (from [`Lock::lock_owned`]) is `'static` and can move into a spawned task.
///
/// The lock is *fair*, as trio's, anyio's and tokio's are: a released lock goes to the
/// task that has waited longest, before any later [`try_lock`](Lock::try_lock) or
/// [`lock`](Lock::lock) can take it, so nobody starves and the lock is handed out in the
/// order asked for. (async-lock's `Mutex` lets a newcomer take a lock that a waiting task
/// was woken for, so the queue is hatchery's own, that of
/// [`Semaphore`](super::Semaphore); async-lock's mutex only holds the value.)
///
/// Unlike `std::sync::Mutex` there is no poisoning (as with async-lock and tokio): a
/// panic while the guard is held releases the lock, and the value is available to the
/// next holder as the panicking code left it.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use hatchery::{nursery, sync::Lock};
///
/// # hatchery_smol::run(async {
/// let counter = Arc::new(Lock::new(0));
/// let inside = Arc::new(AtomicBool::new(false)); // whether a task holds the guard
/// nursery(|n| {
///     let (counter, inside) = (counter.clone(), inside.clone());
///     async move {
///         for _ in 0..10 {
///             let (counter, inside) = (counter.clone(), inside.clone());
///             n.spawn(async move {
///                 let mut c = counter.lock().await;
///                 assert!(!inside.swap(true, Ordering::SeqCst)); // alone in here...
///                 hatchery::checkpoint().await; // ...even while we suspend, holding it
///                 *c += 1;
///                 inside.store(false, Ordering::SeqCst);
///                 Ok::<_, std::io::Error>(())
///             });
///         }
///         Ok(())
///     }
/// })
/// .await
/// .unwrap();
/// assert_eq!(*counter.lock().await, 10);
/// # });
/// ```
pub struct Lock<T> {
    // The queue: a semaphore of one permit. Whoever holds the permit holds the lock.
    sem: Arc<semaphore::Inner>,
    // The value, in async-lock's mutex (for its guards), which only the permit's holder
    // locks: its `try_lock` always succeeds. A guard unlocks it before it releases the
    // permit.
    value: Arc<async_lock::Mutex<T>>,
}

impl<T> Lock<T> {
    /// A new, unlocked lock around `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = hatchery::sync::Lock::new(5);
    /// assert_eq!(*lock.try_lock().unwrap(), 5);
    /// ```
    pub fn new(value: T) -> Lock<T> {
        Lock {
            sem: Arc::new(semaphore::Inner::new(1)),
            value: Arc::new(async_lock::Mutex::new(value)),
        }
    }

    /// Takes the lock if it is free and no task is waiting for it, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = hatchery::sync::Lock::new(());
    /// let g = lock.try_lock();
    /// assert!(g.is_some());
    /// assert!(lock.try_lock().is_none());
    /// ```
    pub fn try_lock(&self) -> Option<LockGuard<'_, T>> {
        self.sem.try_take().then(|| LockGuard::new(self))
    }

    /// As [`try_lock`](Lock::try_lock), with an owned guard.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = hatchery::sync::Lock::new(1);
    /// let g = lock.try_lock_owned().unwrap();
    /// assert_eq!(*g, 1);
    /// ```
    pub fn try_lock_owned(&self) -> Option<OwnedLockGuard<T>> {
        self.sem.try_take().then(|| OwnedLockGuard::new(self))
    }

    /// Waits for the lock and takes it. Waiters are served in FIFO order.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it completes, it did not take the lock
    /// (a lock already handed to it goes to the next waiter). If the enclosing scope is
    /// cancelled while it waits, it leaves the queue, never takes the lock and never
    /// completes; the scope drops it.
    ///
    /// # Panics
    ///
    /// When polled after it returned.
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let lock = hatchery::sync::Lock::new(vec![1]);
    /// lock.lock().await.push(2);
    /// assert_eq!(*lock.lock().await, [1, 2]);
    /// # });
    /// ```
    pub fn lock(&self) -> LockAcquire<'_, T> {
        LockAcquire::new(self)
    }

    /// Waits for the lock and takes it, as an owned (`'static`) guard.
    ///
    /// # Cancel safety
    ///
    /// As for [`lock`](Lock::lock).
    ///
    /// # Panics
    ///
    /// When polled after it returned.
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let lock = hatchery::sync::Lock::new(0);
    /// let mut g = lock.lock_owned().await;
    /// *g += 1;
    /// drop(g);
    /// assert_eq!(*lock.lock().await, 1);
    /// # });
    /// ```
    pub fn lock_owned(&self) -> LockAcquireOwned<T> {
        LockAcquireOwned {
            lock: Lock {
                sem: self.sem.clone(),
                value: self.value.clone(),
            },
            id: None,
            done: false,
        }
    }

    /// Takes the lock, blocking this thread until it is free. For threads outside the
    /// executor (a plain thread, or [`run_blocking`](crate::run_blocking)); never call it
    /// from async code, where it would block an executor thread.
    ///
    /// # Panics
    ///
    /// When called from async code inside hatchery (a task or scope being polled on this
    /// thread), with a message that says to use the async method instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = hatchery::sync::Lock::new(1);
    /// *lock.lock_blocking() += 1;
    /// assert_eq!(*lock.lock_blocking(), 2);
    /// ```
    pub fn lock_blocking(&self) -> LockGuard<'_, T> {
        super::block_on(self.lock())
    }

    /// Whether the lock is held right now (or handed to a waiting task that has not woken
    /// up yet): a snapshot, which another task may change at once. Asking never takes the
    /// lock, so it cannot make anybody's `try_lock` fail.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = hatchery::sync::Lock::new(());
    /// let _g = lock.try_lock();
    /// assert!(lock.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        self.sem.available() == 0
    }

    /// How many acquisitions wait for the lock right now ([`lock`](Lock::lock),
    /// [`lock_owned`](Lock::lock_owned), [`lock_blocking`](Lock::lock_blocking), and
    /// [`Condition`](super::Condition) waits re-acquiring it after their notification):
    /// a snapshot, like
    /// [`is_locked`](Lock::is_locked) (anyio's `LockStatistics.tasks_waiting`).
    ///
    /// A wait counts from its first poll that finds the lock held until the lock is handed
    /// to it, or it is dropped, or polled in a cancelled scope (which it leaves the queue
    /// for, even if a shield next to it keeps it alive).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_lite::future;
    /// use hatchery::sync::Lock;
    ///
    /// # hatchery_smol::run(async {
    /// let lock = Lock::new(());
    /// let held = lock.lock().await;
    /// let mut waiter = Box::pin(lock.lock());
    /// assert!(future::poll_once(&mut waiter).await.is_none()); // the lock is held
    /// assert_eq!(lock.tasks_waiting(), 1);
    /// drop(held);
    /// let _guard = waiter.await;
    /// assert_eq!(lock.tasks_waiting(), 0);
    /// # });
    /// ```
    pub fn tasks_waiting(&self) -> usize {
        self.sem.waiting()
    }
}

impl<T: Default> Default for Lock<T> {
    fn default() -> Self {
        Lock::new(T::default())
    }
}

impl<T> fmt::Debug for Lock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.is_locked())
            .field("tasks_waiting", &self.tasks_waiting())
            .finish_non_exhaustive()
    }
}

/// Future returned by [`Lock::lock`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::futures::LockAcquire;
/// use hatchery::move_on_after;
/// use hatchery::sync::Lock;
///
/// # hatchery_smol::run(async {
/// let lock = Lock::new(1);
/// let held = lock.try_lock().unwrap();
/// let acquire: LockAcquire<'_, i32> = lock.lock();
/// // Held elsewhere: the timeout ends the wait, which never took the lock.
/// assert!(move_on_after(Duration::from_millis(5), acquire).await.is_none());
/// drop(held);
/// assert_eq!(*lock.lock().await, 1);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct LockAcquire<'a, T> {
    lock: &'a Lock<T>,
    // Its place in the queue while it waits.
    id: Option<u64>,
    // It returned its guard: polling again would take the lock again.
    done: bool,
}

impl<'a, T> LockAcquire<'a, T> {
    pub(super) fn new(lock: &'a Lock<T>) -> Self {
        LockAcquire {
            lock,
            id: None,
            done: false,
        }
    }

    /// The lock it waits for.
    pub(super) fn lock(&self) -> &'a Lock<T> {
        self.lock
    }
}

impl<'a, T> Future for LockAcquire<'a, T> {
    type Output = LockGuard<'a, T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let lock = this.lock;
        // Checks for cancellation first: a cancelled wait takes nothing, and leaves the
        // queue at once, even while something next to it keeps the cancelled body alive
        // (a shield).
        poll_once(&mut this.done, "LockAcquire", || {
            poll_acquire(&lock.sem, &mut this.id, cx)
        })
        .map(|()| LockGuard::new(lock))
    }
}

impl<T> Drop for LockAcquire<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.withdraw(self.id.take());
    }
}

waiting_future_impls!(impl<T> LockAcquire<'_, T>, finish_non_exhaustive);

/// Future returned by [`Lock::lock_owned`].
///
/// # Examples
///
/// ```
/// use hatchery::futures::LockAcquireOwned;
/// use hatchery::nursery;
/// use hatchery::sync::Lock;
///
/// # hatchery_smol::run(async {
/// let lock = Lock::new(Vec::new());
/// let acquire: LockAcquireOwned<Vec<u32>> = lock.lock_owned();
/// nursery(|n| async move {
///     // `'static`: the wait (and its guard) can move into a spawned task.
///     n.spawn(async move {
///         acquire.await.push(1);
///         Ok::<_, std::io::Error>(())
///     });
///     Ok(())
/// })
/// .await
/// .unwrap();
/// assert_eq!(*lock.lock().await, [1]);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct LockAcquireOwned<T> {
    // A second handle to the same lock (its two `Arc`s).
    lock: Lock<T>,
    // As in `LockAcquire`.
    id: Option<u64>,
    done: bool,
}

impl<T> Future for LockAcquireOwned<T> {
    type Output = OwnedLockGuard<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // As in `LockAcquire`.
        poll_once(&mut this.done, "LockAcquireOwned", || {
            poll_acquire(&this.lock.sem, &mut this.id, cx)
        })
        .map(|()| OwnedLockGuard::new(&this.lock))
    }
}

impl<T> Drop for LockAcquireOwned<T> {
    fn drop(&mut self) {
        self.lock.sem.withdraw(self.id.take());
    }
}

waiting_future_impls!(impl<T> LockAcquireOwned<T>, finish_non_exhaustive);

/// Holds a [`Lock`]; releases it when dropped. Dereferences to the protected value.
///
/// # Examples
///
/// ```
/// use hatchery::sync::{Lock, LockGuard};
///
/// # hatchery_smol::run(async {
/// let lock = Lock::new(String::from("a"));
/// {
///     let mut guard: LockGuard<'_, String> = lock.lock().await;
///     guard.push('b'); // a `&mut String`
///     assert!(lock.is_locked());
/// } // dropped: released
/// assert!(!lock.is_locked());
/// assert_eq!(*lock.lock().await, "ab");
/// # });
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a, T> {
    // Dropped first: the mutex is unlocked before the permit goes to the next holder.
    value: async_lock::MutexGuard<'a, T>,
    permit: Permit<'a, T>,
}

/// The message of a `try_lock` of the value that failed: only the permit's holder locks
/// it, and the last holder unlocked it before it released the permit.
const TAKEN: &str = "hatchery: internal error: a `Lock`'s value is locked without its permit";

/// Releases a lock's permit when dropped (to the longest waiter first).
struct Permit<'a, T>(&'a Lock<T>);

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        self.0.sem.release();
    }
}

impl<'a, T> LockGuard<'a, T> {
    /// The guard of a lock whose permit was just taken.
    fn new(lock: &'a Lock<T>) -> Self {
        LockGuard {
            value: lock.value.try_lock().expect(TAKEN),
            permit: Permit(lock),
        }
    }

    /// The lock it holds.
    pub(super) fn lock(&self) -> &'a Lock<T> {
        self.permit.0
    }
}

impl<T> Deref for LockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

opaque_debug!(impl<T> LockGuard<'_, T>);

/// Holds a [`Lock`] without borrowing it (`'static`); releases it when dropped.
///
/// # Examples
///
/// ```
/// use hatchery::sync::{Lock, OwnedLockGuard};
///
/// # hatchery_smol::run(async {
/// let lock = Lock::new(0);
/// let mut guard: OwnedLockGuard<i32> = lock.lock_owned().await;
/// std::thread::spawn(move || *guard += 1).join().unwrap(); // moved to another thread
/// assert_eq!(*lock.lock().await, 1);
/// # });
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct OwnedLockGuard<T> {
    // As in `LockGuard`: dropped first.
    value: async_lock::MutexGuardArc<T>,
    _permit: OwnedSemaphorePermit,
}

impl<T> OwnedLockGuard<T> {
    /// The guard of a lock whose permit was just taken.
    fn new(lock: &Lock<T>) -> Self {
        OwnedLockGuard {
            value: lock.value.try_lock_arc().expect(TAKEN),
            _permit: OwnedSemaphorePermit {
                inner: lock.sem.clone(),
            },
        }
    }
}

impl<T> Deref for OwnedLockGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for OwnedLockGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

opaque_debug!(impl<T> OwnedLockGuard<T>);
