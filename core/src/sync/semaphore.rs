//! `Semaphore`: a FIFO-fair counting semaphore.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::poll_once;
use crate::rt;

/// A counting semaphore with FIFO-fair permits (anyio's `Semaphore`).
///
/// *Fair* means a released permit goes to the task that has waited longest, before any
/// later [`try_acquire`](Semaphore::try_acquire) or [`acquire`](Semaphore::acquire) can
/// take it: nobody starves, and permits are handed out in the order asked for. A permit
/// is released when its guard ([`SemaphorePermit`] or [`OwnedSemaphorePermit`]) is
/// dropped.
///
/// (async-lock's `Semaphore` lets a new `try_acquire` overtake a waiter, so this one is
/// hatchery's own: a mutex-protected count and queue.)
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
pub(super) struct Inner {
    state: Mutex<State>,
}

struct Waiter {
    id: u64,
    waker: Waker,
    granted: bool,
}

struct State {
    permits: usize,
    waiters: VecDeque<Waiter>,
    next_id: u64,
}

impl Inner {
    pub(super) fn new(permits: usize) -> Inner {
        Inner {
            state: Mutex::new(State {
                permits,
                waiters: VecDeque::new(),
                next_id: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns one permit (from a permit's drop, which must not panic).
    pub(super) fn release(&self) {
        let mut st = self.lock();
        st.release(1);
    }

    /// Takes a permit if one is available. `permits > 0` implies no task is waiting (a
    /// release serves waiters first), so this never overtakes one.
    pub(super) fn try_take(&self) -> bool {
        let mut st = self.lock();
        if st.permits > 0 {
            st.permits -= 1;
            true
        } else {
            false
        }
    }

    /// Leaves the queue (an acquire dropped while it waited); a permit already granted
    /// to it goes to the next waiter.
    pub(super) fn withdraw(&self, id: Option<u64>) {
        if let Some(id) = id {
            self.lock().withdraw(id);
        }
    }

    pub(super) fn available(&self) -> usize {
        self.lock().permits
    }

    /// Waiters not granted a permit yet.
    pub(super) fn waiting(&self) -> usize {
        self.lock().waiters.iter().filter(|w| !w.granted).count()
    }
}

impl State {
    /// Gives `n` permits to the longest-waiting tasks first, the rest to the count. The
    /// count stops at `usize::MAX` (a permit returned to a full count is absorbed: the
    /// semaphore is as good as unlimited); `add_permits` checks for overflow first.
    fn release(&mut self, mut n: usize) {
        for w in self.waiters.iter_mut().filter(|w| !w.granted) {
            if n == 0 {
                return;
            }
            w.granted = true;
            w.waker.wake_by_ref();
            n -= 1;
        }
        self.permits = self.permits.saturating_add(n);
    }

    /// Removes a waiter; a permit already granted to it goes to the next one.
    fn withdraw(&mut self, id: u64) {
        if let Some(i) = self.waiters.iter().position(|w| w.id == id) {
            let w = self.waiters.remove(i).expect("index in range");
            if w.granted {
                self.release(1);
            }
        }
    }
}

impl Semaphore {
    /// A semaphore with `permits` permits available. Any count is valid, zero included
    /// (then tasks wait until [`add_permits`](Semaphore::add_permits)).
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
        self.try_take().then(|| SemaphorePermit { sem: self })
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
        self.try_take().then(|| OwnedSemaphorePermit {
            inner: self.inner.clone(),
        })
    }

    fn try_take(&self) -> bool {
        self.inner.try_take()
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
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let sem = hatchery::sync::Semaphore::new(1);
    /// let p: hatchery::sync::OwnedSemaphorePermit = sem.acquire_owned().await;
    /// drop(p);
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
    /// If the count of available permits would overflow `usize`.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = hatchery::sync::Semaphore::new(0);
    /// sem.add_permits(2);
    /// assert_eq!(sem.available_permits(), 2);
    /// ```
    pub fn add_permits(&self, n: usize) {
        let mut st = self.inner.lock();
        let ungranted = st.waiters.iter().filter(|w| !w.granted).count();
        assert!(
            st.permits
                .checked_add(n.saturating_sub(ungranted))
                .is_some(),
            "hatchery: Semaphore permit count overflow"
        );
        st.release(n);
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

    /// Tasks waiting in [`acquire`](Semaphore::acquire) right now.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(hatchery::sync::Semaphore::new(4).tasks_waiting(), 0);
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
    let mut st = inner.lock();
    if rt::current_cancelled() {
        // Checked before taking a permit: a cancelled wait takes nothing.
        if let Some(id) = id.take() {
            st.withdraw(id);
        }
        return Poll::Pending;
    }
    match *id {
        Some(my) => {
            let i = st
                .waiters
                .iter()
                .position(|w| w.id == my)
                .expect("hatchery: internal error: semaphore waiter lost");
            if st.waiters[i].granted {
                st.waiters.remove(i);
                *id = None;
                return Poll::Ready(());
            }
            if !st.waiters[i].waker.will_wake(cx.waker()) {
                st.waiters[i].waker = cx.waker().clone();
            }
            Poll::Pending
        }
        None => {
            if st.permits > 0 {
                st.permits -= 1;
                return Poll::Ready(());
            }
            let my = st.next_id;
            st.next_id += 1;
            st.waiters.push_back(Waiter {
                id: my,
                waker: cx.waker().clone(),
                granted: false,
            });
            *id = Some(my);
            Poll::Pending
        }
    }
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

impl fmt::Debug for SemaphoreAcquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreAcquire")
            .field("waiting", &self.id.is_some())
            .finish()
    }
}

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

impl fmt::Debug for SemaphoreAcquireOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreAcquireOwned")
            .field("waiting", &self.id.is_some())
            .finish()
    }
}

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

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}

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
    inner: Arc<Inner>,
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        self.inner.release();
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .finish_non_exhaustive()
    }
}
