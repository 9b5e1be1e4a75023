//! `Semaphore`: a FIFO-fair counting semaphore.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use super::fifo::{Fifo, Mark};
use super::poll_once;
use crate::context as rt;

/// A counting semaphore with FIFO-fair permits (anyio's `Semaphore`).
///
/// *Fair* means a released permit goes to the task that has waited longest, before any
/// later [`try_acquire`](Semaphore::try_acquire) or [`acquire`](Semaphore::acquire) can
/// take it: nobody starves, and permits are handed out in the order asked for. A permit
/// is released when its guard ([`SemaphorePermit`] or [`OwnedSemaphorePermit`]) is
/// dropped.
///
/// (async-lock's `Semaphore` lets a new `try_acquire` overtake a waiter, so this one is
/// hatchery's own: an atomic count, and a queue behind a mutex that taking or returning
/// a free permit never touches.)
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use hatchery::{nursery, sync::Semaphore};
///
/// # hatchery_smol::run(async {
/// let sem = Arc::new(Semaphore::new(2));
/// let running = Arc::new(AtomicUsize::new(0));
/// nursery(|n| async move {
///     for _ in 0..10 {
///         let (sem, running) = (sem.clone(), running.clone());
///         n.spawn(async move {
///             let _permit = sem.acquire().await;
///             assert!(running.fetch_add(1, Ordering::SeqCst) < 2);
///             hatchery::checkpoint().await;
///             running.fetch_sub(1, Ordering::SeqCst);
///             Ok::<_, std::io::Error>(())
///         });
///     }
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
pub struct Semaphore {
    inner: Arc<Inner>,
}

/// The count and the queue, shared with [`Lock`](super::Lock), which is a semaphore of
/// one permit around its value.
///
/// The count is an atomic, so that taking and returning a permit nobody waits for costs
/// one compare-exchange and no lock. The queue is behind a mutex. The count is
/// [`WAITING`] exactly while the queue holds a task not yet granted a permit; it enters
/// and leaves that state only under the mutex. So:
/// - a permit is taken or returned without the mutex only while the count is not
///   `WAITING`, that is, while nobody waits: no one is overtaken;
/// - a return that finds the count `WAITING` takes the mutex and hands the permit to the
///   longest waiter (FIFO);
/// - a task queues itself only under the mutex, after turning a count of 0 into
///   `WAITING`; the compare-exchange fails if a permit came back just before;
/// - a waiter granted a permit has left the queue, and learns it from `granted` without
///   the mutex (the queue's [`Mark`]).
pub(super) struct Inner {
    count: AtomicUsize,
    /// The queue's mark, read without the mutex.
    granted: Mark,
    queue: Mutex<Queue>,
}

/// The count's value while a task waits for a permit not granted yet (there are no
/// permits then). Hence the most permits a semaphore can count, [`Semaphore::MAX_PERMITS`],
/// is one less than `usize::MAX`.
const WAITING: usize = usize::MAX;

/// The tasks waiting for a permit, in FIFO order (see [`Fifo`]).
type Queue = Fifo<()>;

impl Inner {
    pub(super) fn new(permits: usize) -> Inner {
        assert!(
            permits <= Semaphore::MAX_PERMITS,
            "hatchery: a Semaphore can count at most Semaphore::MAX_PERMITS \
             (usize::MAX - 1) permits, not {permits}"
        );
        Inner {
            count: AtomicUsize::new(permits),
            granted: Mark::new(),
            queue: Mutex::new(Fifo::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns a permit: to the longest waiter if a task waits, else to the count, which
    /// stops at `MAX_PERMITS` (a permit returned to a full count is absorbed: the
    /// semaphore is as good as unlimited).
    #[inline]
    pub(super) fn release(&self) {
        let raised = self
            .count
            .fetch_update(Ordering::Release, Ordering::Relaxed, |c| {
                (c != WAITING).then(|| c.saturating_add(1).min(Semaphore::MAX_PERMITS))
            });
        if raised.is_err() {
            self.release_to_waiter();
        }
    }

    /// A returned permit, with a task waiting: to the longest waiter. Out of line, so
    /// that a permit nobody waits for is returned in a few instructions.
    #[inline(never)]
    fn release_to_waiter(&self) {
        let mut queue = self.lock();
        self.give(&mut queue, 1, false);
    }

    /// Gives `n` permits, with the mutex held: to the longest-waiting tasks first, the
    /// rest to the count. With `checked`, panics if the count would pass `MAX_PERMITS`,
    /// before adding to it (waiters are granted first); else the count stops there.
    fn give(&self, queue: &mut Queue, mut n: usize, checked: bool) {
        // `WAITING` is entered and left only under the mutex, which we hold.
        if self.count.load(Ordering::Acquire) == WAITING {
            let granted_all = queue.grant(&self.granted, |()| {
                let left = n > 0;
                n = n.saturating_sub(1);
                left
            });
            if !granted_all {
                return;
            }
            // Nobody is left to grant: the count leaves `WAITING`.
            self.count.store(0, Ordering::Release);
        }
        if n == 0 {
            return;
        }
        // Not `WAITING`, and it cannot become so while we hold the mutex; permits taken
        // without the mutex can only lower it meanwhile (the update then tries again; it
        // never fails).
        let _ = self
            .count
            .fetch_update(Ordering::Release, Ordering::Relaxed, |c| {
                let new = c.checked_add(n).filter(|&m| m <= Semaphore::MAX_PERMITS);
                assert!(
                    new.is_some() || !checked,
                    "hatchery: Semaphore::add_permits would pass Semaphore::MAX_PERMITS \
                     (usize::MAX - 1): {c} available, {n} more"
                );
                Some(new.unwrap_or(Semaphore::MAX_PERMITS))
            });
    }

    /// Takes a permit if one is available. A count above 0 means no task is waiting (a
    /// release serves waiters first), so this never overtakes one.
    pub(super) fn try_take(&self) -> bool {
        let taken = self
            .count
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |c| {
                (c != 0 && c != WAITING).then(|| c - 1)
            });
        taken.is_ok()
    }

    /// Leaves the queue (an acquire dropped while it waited); a permit already granted
    /// to it goes to the next waiter.
    #[inline]
    pub(super) fn withdraw(&self, id: Option<u64>) {
        if let Some(id) = id {
            self.withdraw_queued(id);
        }
    }

    /// [`withdraw`](Inner::withdraw) of an acquire that was queued. Out of line: most
    /// acquires that end were not.
    #[inline(never)]
    fn withdraw_queued(&self, id: u64) {
        if self.granted.granted(id) {
            // Its permit, never taken: returned as a permit is.
            return self.release();
        }
        let mut queue = self.lock();
        let Some(granted) = queue.remove(&self.granted, id) else {
            return;
        };
        if granted {
            // Granted since we looked.
            self.give(&mut queue, 1, false);
        } else if !queue.any_ungranted() {
            // It was the last task waiting for a grant.
            self.count.store(0, Ordering::Release);
        }
    }

    pub(super) fn available(&self) -> usize {
        match self.count.load(Ordering::Acquire) {
            WAITING => 0,
            c => c,
        }
    }

    /// Waiters not granted a permit yet.
    pub(super) fn waiting(&self) -> usize {
        self.lock().ungranted()
    }
}

impl Semaphore {
    /// The most permits a semaphore counts: `usize::MAX - 1`. A permit returned to a
    /// count at this value is absorbed (the semaphore is as good as unlimited).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::sync::Semaphore;
    ///
    /// let sem = Semaphore::new(Semaphore::MAX_PERMITS);
    /// let permit = sem.try_acquire().unwrap();
    /// sem.add_permits(1);
    /// drop(permit); // absorbed
    /// assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS);
    /// ```
    pub const MAX_PERMITS: usize = usize::MAX - 1;

    /// A semaphore with `permits` permits available, zero included (then tasks wait
    /// until [`add_permits`](Semaphore::add_permits)).
    ///
    /// # Panics
    ///
    /// If `permits` is more than [`MAX_PERMITS`](Semaphore::MAX_PERMITS).
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = hatchery::sync::Semaphore::new(3);
    /// assert_eq!(sem.available_permits(), 3);
    /// ```
    pub fn new(permits: usize) -> Semaphore {
        Semaphore {
            inner: Arc::new(Inner::new(permits)),
        }
    }

    /// Takes a permit if one is available and no task is waiting for one.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = hatchery::sync::Semaphore::new(1);
    /// let p = sem.try_acquire();
    /// assert!(p.is_some());
    /// assert!(sem.try_acquire().is_none());
    /// drop(p);
    /// assert!(sem.try_acquire().is_some());
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.inner.try_take().then(|| SemaphorePermit { sem: self })
    }

    /// As [`try_acquire`](Semaphore::try_acquire), with an owned (`'static`) permit.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = hatchery::sync::Semaphore::new(1);
    /// let p = sem.try_acquire_owned().unwrap();
    /// assert_eq!(sem.available_permits(), 0);
    /// drop(p);
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    pub fn try_acquire_owned(&self) -> Option<OwnedSemaphorePermit> {
        self.inner.try_take().then(|| OwnedSemaphorePermit {
            inner: self.inner.clone(),
        })
    }

    /// Waits for a permit and takes it. Waiters are served in FIFO order.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it completes, it holds no permit (a
    /// permit already granted to it goes to the next waiter, or back to the count). If
    /// the enclosing scope is cancelled while it waits, it withdraws and never completes;
    /// the scope drops it.
    ///
    /// # Panics
    ///
    /// When polled after it returned.
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let sem = hatchery::sync::Semaphore::new(1);
    /// let p = sem.acquire().await;
    /// assert_eq!(sem.available_permits(), 0);
    /// drop(p);
    /// # });
    /// ```
    pub fn acquire(&self) -> SemaphoreAcquire<'_> {
        SemaphoreAcquire {
            sem: self,
            id: None,
            done: false,
        }
    }

    /// As [`acquire`](Semaphore::acquire), with an owned (`'static`) permit that can
    /// move into a spawned task.
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](Semaphore::acquire).
    ///
    /// # Panics
    ///
    /// When polled after it returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use hatchery::nursery;
    /// use hatchery::sync::{OwnedSemaphorePermit, Semaphore};
    ///
    /// # hatchery_smol::run(async {
    /// let sem = Arc::new(Semaphore::new(1));
    /// let s = sem.clone();
    /// nursery(|n| async move {
    ///     let permit: OwnedSemaphorePermit = s.acquire_owned().await;
    ///     // `'static`: the permit moves into the child, and is released when it ends.
    ///     n.spawn(async move {
    ///         let _permit = permit;
    ///         Ok::<_, std::io::Error>(())
    ///     });
    ///     let again = s.acquire().await; // waits until the child has let go of it
    ///     drop(again);
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(sem.available_permits(), 1);
    /// # });
    /// ```
    pub fn acquire_owned(&self) -> SemaphoreAcquireOwned {
        SemaphoreAcquireOwned {
            inner: self.inner.clone(),
            id: None,
            done: false,
        }
    }

    /// Takes a permit, blocking this thread until one is granted (in FIFO order with the
    /// async waiters). For threads outside the executor (a plain thread, or
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
    /// let sem = hatchery::sync::Semaphore::new(1);
    /// let p = sem.acquire_blocking();
    /// assert_eq!(sem.available_permits(), 0);
    /// drop(p);
    /// ```
    pub fn acquire_blocking(&self) -> SemaphorePermit<'_> {
        super::block_on(self.acquire())
    }

    /// Adds `n` permits, waking up to `n` waiters (longest-waiting first).
    ///
    /// # Panics
    ///
    /// If the count of available permits would pass
    /// [`MAX_PERMITS`](Semaphore::MAX_PERMITS). Waiting tasks are granted their permits
    /// first; the rest is not added.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = hatchery::sync::Semaphore::new(0);
    /// sem.add_permits(2);
    /// assert_eq!(sem.available_permits(), 2);
    /// ```
    pub fn add_permits(&self, n: usize) {
        let mut queue = self.inner.lock();
        self.inner.give(&mut queue, n, true);
    }

    /// Permits available right now (not counting permits granted to waiting tasks that
    /// have not woken up yet).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(hatchery::sync::Semaphore::new(4).available_permits(), 4);
    /// ```
    pub fn available_permits(&self) -> usize {
        self.inner.available()
    }

    /// How many acquisitions wait for a permit right now ([`acquire`](Semaphore::acquire),
    /// [`acquire_owned`](Semaphore::acquire_owned),
    /// [`acquire_blocking`](Semaphore::acquire_blocking)): a snapshot, like
    /// [`available_permits`](Semaphore::available_permits) (anyio's
    /// `SemaphoreStatistics.tasks_waiting`).
    ///
    /// A wait counts from its first poll that finds no permit until a permit is handed
    /// to it (it then counts in neither this nor `available_permits` until it wakes), or
    /// it is dropped, or polled in a cancelled scope.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_lite::future;
    /// use hatchery::sync::Semaphore;
    ///
    /// # hatchery_smol::run(async {
    /// let sem = Semaphore::new(0);
    /// let mut waiter = Box::pin(sem.acquire());
    /// assert!(future::poll_once(&mut waiter).await.is_none()); // no permit
    /// assert_eq!(sem.tasks_waiting(), 1);
    /// drop(waiter); // a wait that is dropped withdraws
    /// assert_eq!(sem.tasks_waiting(), 0);
    /// # });
    /// ```
    pub fn tasks_waiting(&self) -> usize {
        self.inner.waiting()
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available_permits", &self.available_permits())
            .field("tasks_waiting", &self.tasks_waiting())
            .finish()
    }
}

/// Polls an acquire of one permit: `id` is its place in the queue while it waits.
pub(super) fn poll_acquire(inner: &Inner, id: &mut Option<u64>, cx: &mut Context<'_>) -> Poll<()> {
    if rt::current_cancelled() {
        // Checked before taking a permit: a cancelled wait takes nothing.
        inner.withdraw(id.take());
        return Poll::Pending;
    }
    let Some(my) = *id else {
        // A free permit is taken without the mutex.
        if inner.try_take() {
            return Poll::Ready(());
        }
        let mut queue = inner.lock();
        let mut c = inner.count.load(Ordering::Acquire);
        loop {
            let cas = |new, order| {
                inner
                    .count
                    .compare_exchange_weak(c, new, order, Ordering::Relaxed)
            };
            c = match c {
                WAITING => break,
                // A permit came back since `try_take`.
                1.. => match cas(c - 1, Ordering::Acquire) {
                    Ok(_) => return Poll::Ready(()),
                    Err(actual) => actual,
                },
                // None: the first waiter turns the count into `WAITING`.
                0 => match cas(WAITING, Ordering::Relaxed) {
                    Ok(_) => break,
                    Err(actual) => actual,
                },
            };
        }
        *id = Some(queue.push((), cx.waker()));
        return Poll::Pending;
    };
    // Granted: it has left the queue, and the mark says so without the mutex.
    if inner.granted.granted(my) || inner.lock().poll(&inner.granted, my, cx.waker()) {
        *id = None;
        return Poll::Ready(());
    }
    Poll::Pending
}

/// Future returned by [`Semaphore::acquire`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::futures::SemaphoreAcquire;
/// use hatchery::move_on_after;
/// use hatchery::sync::Semaphore;
///
/// # hatchery_smol::run(async {
/// let sem = Semaphore::new(1);
/// let held = sem.try_acquire().unwrap();
/// let acquire: SemaphoreAcquire<'_> = sem.acquire();
/// assert!(move_on_after(Duration::from_millis(5), acquire).await.is_none());
/// assert_eq!(sem.tasks_waiting(), 0); // the cancelled wait withdrew
/// drop(held);
/// assert_eq!(sem.available_permits(), 1);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct SemaphoreAcquire<'a> {
    sem: &'a Semaphore,
    id: Option<u64>,
    /// It returned its permit: polling again would take another.
    done: bool,
}

impl<'a> Future for SemaphoreAcquire<'a> {
    type Output = SemaphorePermit<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let sem = this.sem;
        poll_once(&mut this.done, "SemaphoreAcquire", || {
            poll_acquire(&sem.inner, &mut this.id, cx)
        })
        .map(|()| SemaphorePermit { sem })
    }
}

impl Drop for SemaphoreAcquire<'_> {
    fn drop(&mut self) {
        self.sem.inner.withdraw(self.id.take());
    }
}

waiting_future_impls!(impl SemaphoreAcquire<'_>, finish);

/// Future returned by [`Semaphore::acquire_owned`].
///
/// # Examples
///
/// ```
/// use hatchery::futures::SemaphoreAcquireOwned;
/// use hatchery::nursery;
/// use hatchery::sync::Semaphore;
///
/// # hatchery_smol::run(async {
/// let sem = Semaphore::new(1);
/// let acquire: SemaphoreAcquireOwned = sem.acquire_owned(); // does not borrow `sem`
/// let permit = nursery(|n| async move {
///     let h = n.spawn(async move { Ok::<_, std::io::Error>(acquire.await) });
///     Ok(h.join().await?)
/// })
/// .await
/// .unwrap();
/// assert_eq!(sem.available_permits(), 0);
/// drop(permit);
/// assert_eq!(sem.available_permits(), 1);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct SemaphoreAcquireOwned {
    inner: Arc<Inner>,
    id: Option<u64>,
    /// As in [`SemaphoreAcquire`].
    done: bool,
}

impl Future for SemaphoreAcquireOwned {
    type Output = OwnedSemaphorePermit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        poll_once(&mut this.done, "SemaphoreAcquireOwned", || {
            poll_acquire(&this.inner, &mut this.id, cx)
        })
        .map(|()| OwnedSemaphorePermit {
            inner: this.inner.clone(),
        })
    }
}

impl Drop for SemaphoreAcquireOwned {
    fn drop(&mut self) {
        self.inner.withdraw(self.id.take());
    }
}

waiting_future_impls!(impl SemaphoreAcquireOwned, finish);

/// A permit of a [`Semaphore`]; released (to the longest waiter first) when dropped.
///
/// # Examples
///
/// ```
/// use hatchery::sync::{Semaphore, SemaphorePermit};
///
/// let sem = Semaphore::new(1);
/// let permit: SemaphorePermit<'_> = sem.try_acquire().unwrap();
/// assert_eq!(sem.available_permits(), 0);
/// drop(permit); // nobody waits: back to the count
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[must_use = "the permit is released at once if not kept"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.inner.release();
    }
}

opaque_debug!(impl SemaphorePermit<'_>);

/// An owned (`'static`) permit of a [`Semaphore`]; released when dropped.
///
/// # Examples
///
/// ```
/// use hatchery::sync::{OwnedSemaphorePermit, Semaphore};
///
/// let sem = Semaphore::new(1);
/// let permit: OwnedSemaphorePermit = sem.try_acquire_owned().unwrap();
/// std::thread::spawn(move || drop(permit)).join().unwrap(); // `'static`: it can go anywhere
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[must_use = "the permit is released at once if not kept"]
pub struct OwnedSemaphorePermit {
    /// Also a [`Lock`](super::Lock)'s, in its owned guard.
    pub(super) inner: Arc<Inner>,
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        self.inner.release();
    }
}

opaque_debug!(impl OwnedSemaphorePermit);
