//! `Lock`: an async mutex (async-lock's `Mutex`, with hatchery's cancellation rule).

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::rt;

/// An async mutual-exclusion lock around a value of type `T` (anyio's `Lock`, holding
/// the data it protects, like `std::sync::Mutex`).
///
/// Built on [`async_lock::Mutex`]; what hatchery adds is that acquiring is a hatchery
/// wait: it never completes (never takes the lock) inside a cancelled scope. The guard
/// releases the lock when dropped; an [`OwnedLockGuard`] (from [`Lock::lock_owned`]) is
/// `'static` and can move into a spawned task.
///
/// Unlike `std::sync::Mutex` there is no poisoning (as with async-lock and tokio): a
/// panic while the guard is held releases the lock, and the value is available to the
/// next holder as the panicking code left it.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use hatchery::{nursery, sync::Lock};
///
/// # hatchery_smol::run(async {
/// let counter = Arc::new(Lock::new(0));
/// nursery(|n| {
///     let counter = counter.clone();
///     async move {
///         for _ in 0..10 {
///             let counter = counter.clone();
///             n.spawn(async move {
///                 let mut c = counter.lock().await;
///                 *c += 1;
///                 hatchery::checkpoint().await; // still holding the lock
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
    inner: Arc<async_lock::Mutex<T>>,
    shared: Arc<Shared>,
}

/// What [`Lock`] keeps next to async-lock's mutex, which cannot be asked whether it is
/// held (except by trying to take it, which a concurrent `try_lock` would see fail) nor
/// how many wait for it.
pub(super) struct Shared {
    /// Whether a guard exists. A guard sets it after taking the lock and clears it
    /// before releasing it, so its order follows the lock's.
    pub(super) held: AtomicBool,
    /// Acquisitions that found the lock held and wait for it (counted by [`Waiting`]).
    waiting: AtomicUsize,
}

/// Counts one waiting acquisition while it lives. `P` is `&Shared` or `Arc<Shared>`.
pub(super) struct Waiting<P: Deref<Target = Shared>>(pub(super) P);

impl<P: Deref<Target = Shared>> Waiting<P> {
    pub(super) fn new(shared: P) -> Self {
        shared.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(shared)
    }
}

impl<P: Deref<Target = Shared>> Drop for Waiting<P> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
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
            inner: Arc::new(async_lock::Mutex::new(value)),
            shared: Arc::new(Shared {
                held: AtomicBool::new(false),
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    /// Takes the lock if it is free, without waiting.
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
        self.inner
            .try_lock()
            .map(|guard| LockGuard::new(guard, &self.shared))
    }

    /// Takes the lock if it is free, without waiting, as an owned guard.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = hatchery::sync::Lock::new(1);
    /// let g = lock.try_lock_owned().unwrap();
    /// assert_eq!(*g, 1);
    /// ```
    pub fn try_lock_owned(&self) -> Option<OwnedLockGuard<T>> {
        self.inner
            .try_lock_arc()
            .map(|guard| OwnedLockGuard::new(guard, self.shared.clone()))
    }

    /// Waits for the lock and takes it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it completes, it did not take the lock
    /// (and passes on a wake-up it received). If the enclosing scope is cancelled while it
    /// waits, it never takes the lock and never completes; the scope drops it.
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
        LockAcquire {
            mutex: Some(&self.inner),
            inner: None,
            shared: &self.shared,
            waiting: None,
        }
    }

    /// Waits for the lock and takes it, as an owned (`'static`) guard.
    ///
    /// # Cancel safety
    ///
    /// As for [`lock`](Lock::lock).
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
            mutex: self.inner.clone(),
            inner: None,
            shared: Some(self.shared.clone()),
            waiting: None,
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

    /// Whether the lock is held right now: a snapshot, which another task may change at
    /// once. Asking never takes the lock, so it cannot make anybody's `try_lock` fail.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = hatchery::sync::Lock::new(());
    /// let _g = lock.try_lock();
    /// assert!(lock.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        self.shared.held.load(Ordering::Acquire)
    }

    /// How many acquisitions wait for the lock right now ([`lock`](Lock::lock),
    /// [`lock_owned`](Lock::lock_owned), [`lock_blocking`](Lock::lock_blocking), and
    /// [`Condition`](super::Condition) waits re-acquiring it after their notification):
    /// a snapshot, like
    /// [`is_locked`](Lock::is_locked) (anyio's `LockStatistics.tasks_waiting`).
    ///
    /// A wait counts from its first poll that finds the lock held until it takes the lock,
    /// is dropped, or is polled in a cancelled scope (which it leaves the queue for, even
    /// if a shield next to it keeps it alive).
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
        self.shared.waiting.load(Ordering::Relaxed)
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

pin_project! {
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
        // `None` once the guard was returned.
        mutex: Option<&'a async_lock::Mutex<T>>,
        // The wait in async-lock's queue; `None` before the first poll and after a
        // cancelled one.
        #[pin]
        inner: Option<async_lock::futures::Lock<'a, T>>,
        shared: &'a Shared,
        // Set while the lock is held by someone else.
        waiting: Option<Waiting<&'a Shared>>,
    }
}

impl<'a, T> Future for LockAcquire<'a, T> {
    type Output = LockGuard<'a, T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // Checked before taking the lock: a cancelled wait takes nothing, and leaves
        // async-lock's queue at once, passing on a wake-up it was given, even while
        // something next to it keeps the cancelled body alive (a shield).
        if rt::current_cancelled() {
            this.inner.set(None);
            *this.waiting = None;
            return Poll::Pending;
        }
        if this.inner.is_none() {
            // Polled again after it returned a guard, it must not take the lock again.
            let mutex = this.mutex.expect("`LockAcquire` polled after completion");
            this.inner.set(Some(mutex.lock()));
        }
        let inner = this.inner.as_mut().as_pin_mut().expect("set above");
        match inner.poll(cx) {
            Poll::Ready(guard) => {
                this.inner.set(None);
                *this.mutex = None;
                *this.waiting = None;
                Poll::Ready(LockGuard::new(guard, this.shared))
            }
            Poll::Pending => {
                if this.waiting.is_none() {
                    *this.waiting = Some(Waiting::new(*this.shared));
                }
                Poll::Pending
            }
        }
    }
}

impl<T> fmt::Debug for LockAcquire<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockAcquire").finish_non_exhaustive()
    }
}

pin_project! {
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
        mutex: Arc<async_lock::Mutex<T>>,
        // As in `LockAcquire`.
        #[pin]
        inner: Option<async_lock::futures::LockArc<T>>,
        // Handed to the guard.
        shared: Option<Arc<Shared>>,
        waiting: Option<Waiting<Arc<Shared>>>,
    }
}

impl<T> Future for LockAcquireOwned<T> {
    type Output = OwnedLockGuard<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // As in `LockAcquire`.
        if rt::current_cancelled() {
            this.inner.set(None);
            *this.waiting = None;
            return Poll::Pending;
        }
        let shared = this
            .shared
            .as_ref()
            .expect("`LockAcquireOwned` polled after completion");
        if this.inner.is_none() {
            this.inner.set(Some(this.mutex.lock_arc()));
        }
        let inner = this.inner.as_mut().as_pin_mut().expect("set above");
        let Poll::Ready(guard) = inner.poll(cx) else {
            if this.waiting.is_none() {
                *this.waiting = Some(Waiting::new(shared.clone()));
            }
            return Poll::Pending;
        };
        *this.waiting = None;
        let shared = this.shared.take().expect("checked above");
        Poll::Ready(OwnedLockGuard::new(guard, shared))
    }
}

impl<T> fmt::Debug for LockAcquireOwned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockAcquireOwned").finish_non_exhaustive()
    }
}

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
pub struct LockGuard<'a, T> {
    pub(super) guard: async_lock::MutexGuard<'a, T>,
    pub(super) shared: &'a Shared,
}

impl<'a, T> LockGuard<'a, T> {
    /// Wraps a guard just taken, marking the lock held.
    pub(super) fn new(guard: async_lock::MutexGuard<'a, T>, shared: &'a Shared) -> Self {
        shared.held.store(true, Ordering::Release);
        LockGuard { guard, shared }
    }
}

impl<T> Drop for LockGuard<'_, T> {
    fn drop(&mut self) {
        // Before the mutex is released (with the field, after this): whoever takes it
        // next marks it held after this store.
        self.shared.held.store(false, Ordering::Release);
    }
}

impl<T> Deref for LockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> fmt::Debug for LockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

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
pub struct OwnedLockGuard<T> {
    guard: async_lock::MutexGuardArc<T>,
    shared: Arc<Shared>,
}

impl<T> OwnedLockGuard<T> {
    /// Wraps a guard just taken, marking the lock held.
    fn new(guard: async_lock::MutexGuardArc<T>, shared: Arc<Shared>) -> Self {
        shared.held.store(true, Ordering::Release);
        OwnedLockGuard { guard, shared }
    }
}

impl<T> Drop for OwnedLockGuard<T> {
    fn drop(&mut self) {
        // As for `LockGuard`.
        self.shared.held.store(false, Ordering::Release);
    }
}

impl<T> Deref for OwnedLockGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for OwnedLockGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> fmt::Debug for OwnedLockGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedLockGuard").finish_non_exhaustive()
    }
}
