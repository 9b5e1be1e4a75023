//! `CapacityLimiter`: a FIFO-fair token pool that knows who borrowed each token.

use std::collections::HashSet;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use super::fifo::{Fifo, Mark};
use super::poll_once;
use crate::context as rt;

/// Limits how many tasks may do something at once, tracking who holds each token
/// (anyio's and trio's `CapacityLimiter`).
///
/// Like a [`Semaphore`](super::Semaphore), but:
///
/// * each token is held by a *borrower*, and a borrower holds at most one token:
///   acquiring twice for the same borrower, or releasing a token a borrower does not
///   hold, is an error ([`LimiterError`]), never a hang or a silent miscount. (Each
///   anonymous [`acquire`](CapacityLimiter::acquire) is a borrower of its own: a task
///   that holds an anonymous token and acquires another one on a full limiter waits for
///   itself. Name the borrower, with
///   [`acquire_on_behalf_of`](CapacityLimiter::acquire_on_behalf_of), to get the error);
/// * the number of tokens can be changed while in use
///   ([`set_total_tokens`](CapacityLimiter::set_total_tokens)): raising it wakes that many
///   waiters at once; lowering it below the number borrowed keeps the current holders
///   (no one is interrupted) and makes new borrowers wait until enough tokens return.
///
/// Tokens are FIFO-fair: a returned token goes to the longest waiter before any new
/// `try_acquire`. Borrowers are either anonymous (each [`acquire`](CapacityLimiter::acquire)
/// gets a [`CapacityToken`] that returns itself when dropped) or named by a `u64` of your
/// choice ([`acquire_on_behalf_of`](CapacityLimiter::acquire_on_behalf_of) and
/// [`release_on_behalf_of`](CapacityLimiter::release_on_behalf_of), anyio's API).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use hatchery::{nursery, sync::CapacityLimiter};
///
/// # hatchery_smol::run(async {
/// let limiter = Arc::new(CapacityLimiter::new(2));
/// nursery(|n| async move {
///     for _ in 0..8 {
///         let limiter = limiter.clone();
///         n.spawn(async move {
///             let _token = limiter.acquire().await;
///             assert!(limiter.borrowed_tokens() <= 2);
///             hatchery::checkpoint().await;
///             Ok::<_, std::io::Error>(())
///         });
///     }
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
pub struct CapacityLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// The queue's mark, read without the lock by an anonymous borrower's wait (a
    /// user borrower's takes the lock anyway, to leave `queued`).
    granted: Mark,
}

/// Who borrows a token: a user's borrower id, or an anonymous [`CapacityToken`].
#[derive(Clone, Copy)]
enum Key {
    User(u64),
    /// Every anonymous borrower is a new one, so nothing needs to tell them apart: they
    /// are counted, not kept in the sets (hashing them was a third of `acquire`'s time
    /// in the benchmark's fan-out of 64 tasks over 8 tokens).
    Anonymous,
}

struct State {
    total: usize,
    /// The user borrowers holding a token.
    borrowers: HashSet<u64>,
    /// Tokens held by anonymous borrowers.
    anonymous: usize,
    /// The tasks waiting for a token, and who borrows for each.
    waiters: Fifo<Key>,
    /// The user borrowers of `waiters`: a borrower waits at most once, and looking it up must
    /// not scan the queue (a fan-out of n waiting tasks would take n² steps).
    queued: HashSet<u64>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `key`'s wait leaves the queue if it is in it (`id`: dropped, or cancelled, while it
    /// waited).
    #[inline]
    fn withdraw(&self, id: Option<u64>, key: Key) {
        if let Some(id) = id {
            self.lock().withdraw(id, key, &self.granted);
        }
    }
}

impl State {
    /// Hands free tokens to the longest waiters (`mark`: the limiter's [`Inner::granted`]).
    fn grant(&mut self, mark: &Mark) {
        let (total, borrowers, anonymous) = (self.total, &mut self.borrowers, &mut self.anonymous);
        self.waiters.grant(mark, |&key| {
            if borrowers.len() + *anonymous >= total {
                return false;
            }
            match key {
                Key::User(b) => {
                    borrowers.insert(b);
                }
                Key::Anonymous => *anonymous += 1,
            }
            true
        });
    }

    /// Gives back `key`'s token. A borrower whose wait was granted a token but has not
    /// returned yet does not hold it yet: its wait does (and gives it back if dropped).
    fn release(&mut self, key: Key, mark: &Mark) -> bool {
        let held = match key {
            Key::User(b) if self.queued.contains(&b) => false,
            Key::User(b) => self.borrowers.remove(&b),
            // Only a token or a granted wait gives an anonymous token back.
            Key::Anonymous => {
                self.anonymous -= 1;
                true
            }
        };
        if held {
            self.grant(mark);
        }
        held
    }

    /// A user borrower's wait has left the queue.
    fn unqueued(&mut self, key: Key) {
        if let Key::User(b) = key {
            self.queued.remove(&b);
        }
    }

    /// `key`'s wait `id` leaves the queue (dropped while it waited).
    fn withdraw(&mut self, id: u64, key: Key, mark: &Mark) {
        if let Some(granted) = self.waiters.remove(mark, id) {
            self.unqueued(key);
            if granted {
                self.release(key, mark);
            }
        }
    }

    fn try_take(&mut self, key: Key) -> Result<(), LimiterError> {
        if let Key::User(b) = key {
            if self.borrowers.contains(&b) || self.queued.contains(&b) {
                return Err(LimiterError::AlreadyBorrowing);
            }
        }
        // Free tokens imply no one is waiting: `grant` serves waiters first.
        if self.borrowed() >= self.total {
            return Err(LimiterError::WouldBlock);
        }
        match key {
            Key::User(b) => {
                self.borrowers.insert(b);
            }
            Key::Anonymous => self.anonymous += 1,
        }
        Ok(())
    }

    /// Tokens borrowed, by users and anonymously.
    fn borrowed(&self) -> usize {
        self.borrowers.len() + self.anonymous
    }
}

fn check_total(total: usize) {
    assert!(
        total >= 1,
        "hatchery: a CapacityLimiter needs at least one token (got 0)"
    );
}

impl CapacityLimiter {
    /// A limiter with `total_tokens` tokens.
    ///
    /// # Panics
    ///
    /// If `total_tokens` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = hatchery::sync::CapacityLimiter::new(4);
    /// assert_eq!(limiter.available_tokens(), 4);
    /// ```
    pub fn new(total_tokens: usize) -> CapacityLimiter {
        check_total(total_tokens);
        CapacityLimiter {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    total: total_tokens,
                    borrowers: HashSet::new(),
                    anonymous: 0,
                    waiters: Fifo::new(),
                    queued: HashSet::new(),
                }),
                granted: Mark::new(),
            }),
        }
    }

    /// The total number of tokens.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(hatchery::sync::CapacityLimiter::new(3).total_tokens(), 3);
    /// ```
    pub fn total_tokens(&self) -> usize {
        self.inner.lock().total
    }

    /// Changes the total number of tokens. Raising it hands the new tokens to waiting
    /// tasks at once (longest-waiting first); lowering it below the number borrowed
    /// keeps the current holders, and new borrowers wait until the count is below the
    /// new total.
    ///
    /// # Panics
    ///
    /// If `total_tokens` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = hatchery::sync::CapacityLimiter::new(2);
    /// let a = limiter.try_acquire().unwrap();
    /// let b = limiter.try_acquire().unwrap();
    /// limiter.set_total_tokens(1); // both keep their tokens
    /// assert_eq!(limiter.borrowed_tokens(), 2);
    /// drop(a);
    /// assert!(limiter.try_acquire().is_none()); // still 1 borrowed of 1
    /// drop(b);
    /// assert!(limiter.try_acquire().is_some());
    /// ```
    pub fn set_total_tokens(&self, total_tokens: usize) {
        check_total(total_tokens);
        let mut st = self.inner.lock();
        st.total = total_tokens;
        st.grant(&self.inner.granted);
    }

    /// Tokens borrowed right now (including tokens granted to waiters that have not
    /// woken up yet).
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = hatchery::sync::CapacityLimiter::new(2);
    /// let _t = limiter.try_acquire();
    /// assert_eq!(limiter.borrowed_tokens(), 1);
    /// ```
    pub fn borrowed_tokens(&self) -> usize {
        self.inner.lock().borrowed()
    }

    /// Tokens free right now (0 when more are borrowed than the total).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(hatchery::sync::CapacityLimiter::new(2).available_tokens(), 2);
    /// ```
    pub fn available_tokens(&self) -> usize {
        let st = self.inner.lock();
        st.total.saturating_sub(st.borrowed())
    }

    /// A snapshot of the limiter's state.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = hatchery::sync::CapacityLimiter::new(2);
    /// limiter.try_acquire_on_behalf_of(7).unwrap();
    /// let s = limiter.statistics();
    /// assert_eq!((s.borrowed_tokens, s.total_tokens, s.tasks_waiting), (1, 2, 0));
    /// assert_eq!(s.borrowers, [7]);
    /// ```
    pub fn statistics(&self) -> LimiterStatistics {
        let st = self.inner.lock();
        let mut borrowers: Vec<u64> = st.borrowers.iter().copied().collect();
        borrowers.sort_unstable();
        LimiterStatistics {
            borrowed_tokens: st.borrowed(),
            total_tokens: st.total,
            borrowers,
            tasks_waiting: st.waiters.ungranted(),
        }
    }

    /// Takes a token if one is free and no task is waiting, as an anonymous borrower.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = hatchery::sync::CapacityLimiter::new(1);
    /// let t = limiter.try_acquire();
    /// assert!(t.is_some());
    /// assert!(limiter.try_acquire().is_none());
    /// ```
    pub fn try_acquire(&self) -> Option<CapacityToken> {
        self.inner
            .lock()
            .try_take(Key::Anonymous)
            .ok()
            .map(|()| CapacityToken {
                inner: self.inner.clone(),
            })
    }

    /// Waits for a token and takes it, as an anonymous borrower; the token returns when
    /// the [`CapacityToken`] is dropped. Waiters are served in FIFO order.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it completes, it holds no token (a
    /// token already granted to it goes to the next waiter). If the enclosing scope is
    /// cancelled while it waits, it withdraws and never completes; the scope drops it.
    ///
    /// # Panics
    ///
    /// When polled after it returned.
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let limiter = hatchery::sync::CapacityLimiter::new(1);
    /// let token = limiter.acquire().await;
    /// assert_eq!(limiter.borrowed_tokens(), 1);
    /// drop(token);
    /// assert_eq!(limiter.borrowed_tokens(), 0);
    /// # });
    /// ```
    pub fn acquire(&self) -> LimiterAcquire<'_> {
        LimiterAcquire {
            limiter: self,
            id: None,
            done: false,
        }
    }

    /// [`acquire`](CapacityLimiter::acquire) as a wait that does not borrow the limiter
    /// (for `to_thread`, which owns its wait from construction to the thread's start).
    pub(crate) fn acquire_owned(&self) -> LimiterAcquireOwned {
        LimiterAcquireOwned {
            inner: self.inner.clone(),
            id: None,
            done: false,
        }
    }

    /// Takes a token as a new anonymous borrower, blocking this thread until one is free
    /// (in FIFO order with the async waiters). For threads outside the executor (a plain
    /// thread, or [`run_blocking`](crate::run_blocking)); never call it from async code,
    /// where it would block an executor thread.
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
    /// use hatchery::sync::CapacityLimiter;
    ///
    /// let limiter = Arc::new(CapacityLimiter::new(1));
    /// let held = limiter.try_acquire().unwrap();
    /// let worker = std::thread::spawn({
    ///     let limiter = limiter.clone();
    ///     move || {
    ///         let _token = limiter.acquire_blocking(); // waits for `held`
    ///         limiter.borrowed_tokens()
    ///     }
    /// });
    /// while limiter.statistics().tasks_waiting == 0 {
    ///     std::thread::yield_now();
    /// }
    /// drop(held);
    /// assert_eq!(worker.join().unwrap(), 1);
    /// ```
    pub fn acquire_blocking(&self) -> CapacityToken {
        super::block_on(self.acquire())
    }

    /// Takes a token for `borrower` if one is free and no task is waiting.
    ///
    /// # Errors
    ///
    /// [`LimiterError::AlreadyBorrowing`] if `borrower` already holds (or waits for) a
    /// token; [`LimiterError::WouldBlock`] if no token is free.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::sync::{CapacityLimiter, LimiterError};
    ///
    /// let limiter = CapacityLimiter::new(2);
    /// limiter.try_acquire_on_behalf_of(1).unwrap();
    /// assert_eq!(limiter.try_acquire_on_behalf_of(1), Err(LimiterError::AlreadyBorrowing));
    /// ```
    pub fn try_acquire_on_behalf_of(&self, borrower: u64) -> Result<(), LimiterError> {
        self.inner.lock().try_take(Key::User(borrower))
    }

    /// Waits for a token for `borrower` and takes it; give it back with
    /// [`release_on_behalf_of`](CapacityLimiter::release_on_behalf_of).
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](CapacityLimiter::acquire): a dropped or cancelled wait leaves
    /// `borrower` holding nothing.
    ///
    /// # Errors
    ///
    /// [`LimiterError::AlreadyBorrowing`] at once if `borrower` already holds (or waits
    /// for) a token.
    ///
    /// # Panics
    ///
    /// When polled after it returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::sync::{CapacityLimiter, LimiterError};
    ///
    /// # hatchery_smol::run(async {
    /// let limiter = CapacityLimiter::new(2);
    /// limiter.acquire_on_behalf_of(42).await.unwrap();
    /// assert_eq!(limiter.borrowed_tokens(), 1);
    /// // One token per borrower: a second one for 42 fails at once, though one is free.
    /// let again = limiter.acquire_on_behalf_of(42).await;
    /// assert_eq!(again, Err(LimiterError::AlreadyBorrowing));
    /// limiter.acquire_on_behalf_of(7).await.unwrap(); // another borrower
    /// limiter.release_on_behalf_of(42).unwrap();
    /// limiter.release_on_behalf_of(7).unwrap();
    /// assert_eq!(limiter.available_tokens(), 2);
    /// # });
    /// ```
    pub fn acquire_on_behalf_of(&self, borrower: u64) -> LimiterAcquireFor<'_> {
        LimiterAcquireFor {
            limiter: self,
            key: Key::User(borrower),
            id: None,
            done: false,
        }
    }

    /// Returns the token held by `borrower`, handing it to the longest waiter.
    ///
    /// # Errors
    ///
    /// [`LimiterError::NotBorrowing`] if `borrower` holds no token, which includes while
    /// its acquire has not returned yet (even if a token was already set aside for it).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::sync::{CapacityLimiter, LimiterError};
    ///
    /// let limiter = CapacityLimiter::new(1);
    /// assert_eq!(limiter.release_on_behalf_of(3), Err(LimiterError::NotBorrowing));
    /// ```
    pub fn release_on_behalf_of(&self, borrower: u64) -> Result<(), LimiterError> {
        let held = self
            .inner
            .lock()
            .release(Key::User(borrower), &self.inner.granted);
        held.then_some(()).ok_or(LimiterError::NotBorrowing)
    }
}

impl fmt::Debug for CapacityLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapacityLimiter")
            .field("statistics", &self.statistics())
            .finish()
    }
}

/// A snapshot of a [`CapacityLimiter`] (anyio's `CapacityLimiterStatistics`).
///
/// # Examples
///
/// ```
/// use hatchery::sync::{CapacityLimiter, LimiterStatistics};
///
/// let limiter = CapacityLimiter::new(3);
/// let _token = limiter.try_acquire().unwrap();
/// limiter.try_acquire_on_behalf_of(9).unwrap();
/// let s: LimiterStatistics = limiter.statistics();
/// assert_eq!((s.borrowed_tokens, s.total_tokens), (2, 3));
/// assert_eq!(s.borrowers, [9]); // anonymous borrowers are not listed
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct LimiterStatistics {
    /// Tokens borrowed (named and anonymous borrowers).
    pub borrowed_tokens: usize,
    /// The total number of tokens.
    pub total_tokens: usize,
    /// The named borrowers holding a token, in increasing order (anonymous borrowers,
    /// of [`acquire`](CapacityLimiter::acquire), are counted in `borrowed_tokens` only;
    /// trio and anyio list those too, as their task objects). Like
    /// `borrowed_tokens`, this includes a borrower whose wait was granted a token and
    /// has not returned yet.
    pub borrowers: Vec<u64>,
    /// Tasks waiting for a token.
    pub tasks_waiting: usize,
}

fn poll_acquire(
    inner: &Inner,
    key: Key,
    id: &mut Option<u64>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), LimiterError>> {
    if rt::current_cancelled() {
        // Checked before taking a token: a cancelled wait takes nothing.
        inner.withdraw(id.take(), key);
        return Poll::Pending;
    }
    if let (Some(my), Key::Anonymous) = (*id, key) {
        // Granted: it has left the queue, and an anonymous borrower is in no set.
        if inner.granted.granted(my) {
            *id = None;
            return Poll::Ready(Ok(()));
        }
    }
    let mut st = inner.lock();
    if let Some(my) = *id {
        if st.waiters.poll(&inner.granted, my, cx.waker()) {
            st.unqueued(key);
            *id = None;
            return Poll::Ready(Ok(()));
        }
        return Poll::Pending;
    }
    match st.try_take(key) {
        Err(LimiterError::WouldBlock) => {
            *id = Some(st.waiters.push(key, cx.waker()));
            if let Key::User(b) = key {
                st.queued.insert(b);
            }
            Poll::Pending
        }
        r => Poll::Ready(r),
    }
}

/// Polls an anonymous borrower's wait ([`LimiterAcquire`], [`LimiterAcquireOwned`]).
fn poll_token(
    inner: &Arc<Inner>,
    id: &mut Option<u64>,
    done: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<CapacityToken> {
    poll_once(done, "LimiterAcquire", || {
        poll_acquire(inner, Key::Anonymous, id, cx)
    })
    .map(|r| {
        r.expect("hatchery: internal error: anonymous borrower reused");
        CapacityToken {
            inner: inner.clone(),
        }
    })
}

/// Future returned by [`CapacityLimiter::acquire`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::futures::LimiterAcquire;
/// use hatchery::move_on_after;
/// use hatchery::sync::CapacityLimiter;
///
/// # hatchery_smol::run(async {
/// let limiter = CapacityLimiter::new(1);
/// let first = limiter.try_acquire().unwrap();
/// let acquire: LimiterAcquire<'_> = limiter.acquire();
/// // No token is free: the timeout ends the wait, which took nothing.
/// assert!(move_on_after(Duration::from_millis(5), acquire).await.is_none());
/// assert_eq!(limiter.statistics().tasks_waiting, 0);
/// drop(first);
/// let _token = limiter.acquire().await;
/// assert_eq!(limiter.borrowed_tokens(), 1);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct LimiterAcquire<'a> {
    limiter: &'a CapacityLimiter,
    id: Option<u64>,
    /// It returned its token: polling again would take another.
    done: bool,
}

impl Future for LimiterAcquire<'_> {
    type Output = CapacityToken;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CapacityToken> {
        let this = &mut *self;
        poll_token(&this.limiter.inner, &mut this.id, &mut this.done, cx)
    }
}

impl Drop for LimiterAcquire<'_> {
    fn drop(&mut self) {
        self.limiter.inner.withdraw(self.id.take(), Key::Anonymous);
    }
}

waiting_future_impls!(impl LimiterAcquire<'_>, finish);

/// [`LimiterAcquire`] without the borrow: see [`CapacityLimiter::acquire_owned`].
pub(crate) struct LimiterAcquireOwned {
    inner: Arc<Inner>,
    id: Option<u64>,
    done: bool,
}

impl Future for LimiterAcquireOwned {
    type Output = CapacityToken;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CapacityToken> {
        let this = &mut *self;
        poll_token(&this.inner, &mut this.id, &mut this.done, cx)
    }
}

impl Drop for LimiterAcquireOwned {
    fn drop(&mut self) {
        self.inner.withdraw(self.id.take(), Key::Anonymous);
    }
}

/// Future returned by [`CapacityLimiter::acquire_on_behalf_of`].
///
/// # Examples
///
/// ```
/// use hatchery::futures::LimiterAcquireFor;
/// use hatchery::sync::{CapacityLimiter, LimiterError};
///
/// # hatchery_smol::run(async {
/// let limiter = CapacityLimiter::new(2);
/// let acquire: LimiterAcquireFor<'_> = limiter.acquire_on_behalf_of(7);
/// assert_eq!(acquire.await, Ok(()));
/// // A borrower holds at most one token: asking again fails at once.
/// assert_eq!(limiter.acquire_on_behalf_of(7).await, Err(LimiterError::AlreadyBorrowing));
/// assert_eq!(limiter.statistics().borrowers, [7]);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct LimiterAcquireFor<'a> {
    limiter: &'a CapacityLimiter,
    key: Key,
    id: Option<u64>,
    /// As in [`LimiterAcquire`].
    done: bool,
}

impl Future for LimiterAcquireFor<'_> {
    type Output = Result<(), LimiterError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        poll_once(&mut this.done, "LimiterAcquireFor", || {
            poll_acquire(&this.limiter.inner, this.key, &mut this.id, cx)
        })
    }
}

impl Drop for LimiterAcquireFor<'_> {
    fn drop(&mut self) {
        self.limiter.inner.withdraw(self.id.take(), self.key);
    }
}

waiting_future_impls!(impl LimiterAcquireFor<'_>, finish);

/// An anonymous borrower's token of a [`CapacityLimiter`] (`'static`); returned (to the
/// longest waiter first) when dropped.
///
/// # Examples
///
/// ```
/// use hatchery::sync::{CapacityLimiter, CapacityToken};
///
/// let limiter = CapacityLimiter::new(1);
/// let token: CapacityToken = limiter.try_acquire().unwrap();
/// assert_eq!(limiter.available_tokens(), 0);
/// std::thread::spawn(move || drop(token)).join().unwrap(); // `'static`: it can go anywhere
/// assert_eq!(limiter.available_tokens(), 1);
/// ```
#[must_use = "the token is returned at once if not kept"]
pub struct CapacityToken {
    inner: Arc<Inner>,
}

impl Drop for CapacityToken {
    fn drop(&mut self) {
        self.inner
            .lock()
            .release(Key::Anonymous, &self.inner.granted);
    }
}

opaque_debug!(impl CapacityToken);

/// Misuse of a [`CapacityLimiter`], or a token that is not free.
///
/// # Examples
///
/// ```
/// use hatchery::sync::{CapacityLimiter, LimiterError};
///
/// let limiter = CapacityLimiter::new(1);
/// limiter.try_acquire_on_behalf_of(1).unwrap();
/// assert_eq!(limiter.try_acquire_on_behalf_of(2), Err(LimiterError::WouldBlock));
/// assert_eq!(limiter.try_acquire_on_behalf_of(1), Err(LimiterError::AlreadyBorrowing));
/// assert_eq!(limiter.release_on_behalf_of(2), Err(LimiterError::NotBorrowing));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimiterError {
    /// No token is free (from the `try_` methods only).
    WouldBlock,
    /// The borrower already holds or waits for a token; a borrower holds at most one.
    AlreadyBorrowing,
    /// The borrower holds no token to release.
    NotBorrowing,
}

impl fmt::Display for LimiterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimiterError::WouldBlock => f.write_str("no capacity token is free"),
            LimiterError::AlreadyBorrowing => {
                f.write_str("this borrower already holds a capacity token")
            }
            LimiterError::NotBorrowing => f.write_str("this borrower holds no capacity token"),
        }
    }
}

impl Error for LimiterError {}
