//! Time and checkpoints: `sleep`, `sleep_until`, `now`, `checkpoint`,
//! `current_effective_deadline`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::context;
use crate::node::{deadline_word, word_deadline, Node};
use crate::timer::Reg;

/// The current time on the runtime's clock.
///
/// Deadlines, timeouts and sleeps are all measured on this clock; use it instead of
/// `Instant::now()` so that code also works on a virtual clock.
///
/// # Panics
///
/// Outside a hatchery runtime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// # hatchery_smol::run(async {
/// let start = hatchery::now();
/// hatchery::sleep(Duration::from_millis(5)).await;
/// assert!(hatchery::now() - start >= Duration::from_millis(5));
/// # });
/// ```
pub fn now() -> Instant {
    context::now()
}

/// Waits until `duration` has passed (counted from the first poll).
///
/// `Duration::MAX` sleeps forever. Every sleep suspends at least once, as [`checkpoint`]
/// does: `Duration::ZERO` too (trio's `sleep(0)`), so a loop of zero sleeps lets other
/// tasks and cancellation in on every runtime, and so does a sleep whose deadline has
/// passed by the time its timer is first polled (rule D9).
///
/// # Cancel safety
///
/// Cancel safe: dropping it just stops waiting. If the enclosing scope is cancelled, the
/// sleep never completes and the scope drops it; the code after it does not run. That
/// includes a scope whose deadline came before the sleep's end, or with it, when the
/// clock moved past both at once (a thread kept busy, `testing::advance`, a virtual
/// clock's jump): `move_on_after(d, sleep(d))` is `None`, as in trio.
///
/// # Panics
///
/// When first polled outside a hatchery runtime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::testing::{elapsed, virtual_time};
/// use hatchery::{move_on_after, sleep};
///
/// # hatchery_smol::run(virtual_time(async {
/// sleep(Duration::from_secs(60)).await; // a virtual minute: no real wait
/// assert_eq!(elapsed(), Duration::from_secs(60));
/// // A deadline that comes with the sleep's end wins the tie.
/// let d = Duration::from_secs(1);
/// assert_eq!(move_on_after(d, sleep(d)).await, None);
/// # }));
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        state: State::After(duration),
    }
}

/// Waits until `deadline` on the runtime's clock.
///
/// Any instant is valid, however far ahead. A deadline that has passed still suspends
/// once, as [`checkpoint`] does.
///
/// # Cancel safety
///
/// As for [`sleep`].
///
/// # Panics
///
/// When first polled outside a hatchery runtime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// # hatchery_smol::run(async {
/// let at = hatchery::now() + Duration::from_millis(2);
/// hatchery::sleep_until(at).await;
/// assert!(hatchery::now() >= at);
/// # });
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        state: State::at(deadline),
    }
}

/// Where a sleep is, and how it is woken once it waits. A deadline is kept as its word
/// (`node::deadline_word`: nanoseconds from an instant taken once per process, which gives
/// the instant back exactly); one without a word (about 292 years away, in practice never)
/// is a boxed `Instant` until the first poll, and then kept by its registration alone, a
/// timer of its own ([`Reg::Private`], which keeps its deadline). So the registration (32
/// bytes) is beside a word in one variant only, and a sleep takes 40 bytes in every future
/// that holds one (a parked child's: `child/sizes.rs`), where a state beside the
/// registration took 48.
#[derive(Debug)]
enum State {
    /// Counted from the first poll.
    After(Duration),
    /// Until this deadline, not yet polled.
    At(i64),
    /// The same, for a deadline without a word.
    AtFar(Box<Instant>),
    Forever,
    /// Waiting for this deadline, woken through the registration: an entry in the
    /// deadlines of the task that polls it, or a timer of its own where it is polled with
    /// another waker (see [`crate::timer`]).
    Waiting(i64, Reg),
    /// Waiting for a deadline without a word: the registration is a timer of its own
    /// ([`Reg::Private`]), which keeps the deadline.
    WaitingFar(Reg),
    /// The deadline had passed at the first poll, which yielded once (a checkpoint); or
    /// it came when an enclosing deadline did, which cancelled the scope instead.
    Passed,
}

impl State {
    /// Until `deadline`, not yet polled.
    fn at(deadline: Instant) -> State {
        match deadline_word(deadline) {
            Some(word) => State::At(word),
            None => State::AtFar(Box::new(deadline)),
        }
    }

    /// Done without the timer (see [`Sleep::poll`]), or dropped: lets go of the
    /// registration of a sleep that waits.
    fn passed(&mut self) {
        if let State::Waiting(_, reg) | State::WaitingFar(reg) = self {
            context::disarm(reg);
        }
        *self = State::Passed;
    }
}

/// Future returned by [`sleep`] and [`sleep_until`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::futures::Sleep;
/// use hatchery::sleep;
/// use hatchery::testing::{elapsed, virtual_time};
///
/// hatchery_smol::run(virtual_time(async {
///     let nap: Sleep = sleep(Duration::from_secs(10));
///     sleep(Duration::from_secs(60)).await;
///     nap.await; // counted from its first poll, not from its creation
///     assert_eq!(elapsed(), Duration::from_secs(70));
/// }));
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    state: State,
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.state.passed();
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let (word, far, reg) = match &mut this.state {
            State::After(_) | State::At(_) | State::AtFar(_) => return this.first_poll(cx),
            _ if context::current_cancelled() => return Poll::Pending,
            State::Forever => return Poll::Pending,
            State::Passed => return Poll::Ready(()),
            State::Waiting(word, reg) => (Some(*word), None, reg),
            State::WaitingFar(reg) => {
                let far = reg.private_deadline().expect(LOST);
                (None, Some(far), reg)
            }
        };
        // The instant of a word is made only where it is needed (a registration, the end).
        let deadline = || far.unwrap_or_else(|| word_deadline(word.expect("a word")));
        let (poll, released) = context::with_here(cx.waker(), false, |here| {
            reg.poll::<true>(word, deadline, here, None, cx)
        });
        released.release();
        if poll.is_pending() {
            return Poll::Pending;
        }
        let deadline = deadline();
        // The clock may have moved past an enclosing scope's deadline and ours at once
        // (a thread kept busy, `testing::advance`, both on one instant of a virtual
        // clock): if that deadline came first, or with ours, the scope was cancelled by
        // the time we were due, whichever timer fired first (rule D7).
        if context::cancel_deadlines_before(deadline) {
            // Our time has come all the same: polled again where no scope is cancelled (a
            // sleep kept past that scope), we are done, without the spent timer (which
            // some executors never complete twice).
            this.state.passed();
            return Poll::Pending;
        }
        Poll::Ready(())
    }
}

/// The panic of a sleep whose far deadline went with a registration that failed (the
/// executor's timer panicked, and the sleep was polled again).
const LOST: &str = "hatchery: internal error: a sleep's far deadline was lost";

impl Sleep {
    /// The first poll: the deadline fixed, the timer registered, and pending (a sleep
    /// suspends at least once). Whether the scope is cancelled and what the thread's
    /// context offers are read in one access to it
    /// ([`context::with_here_unless_cancelled`], which also says when the runner's check
    /// just before this poll is taken instead of another walk up the tree: a first poll
    /// is pending either way).
    fn first_poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let out = context::with_here_unless_cancelled(cx.waker(), |here| {
            let rt = here.rt.expect(context::NO_RUNTIME);
            let now = rt.now();
            let (deadline, word) = match &self.state {
                State::After(d) => {
                    let deadline = now.checked_add(*d);
                    (deadline, deadline.and_then(deadline_word))
                }
                State::At(word) => (Some(word_deadline(*word)), Some(*word)),
                State::AtFar(deadline) => (Some(**deadline), None),
                _ => unreachable!(),
            };
            match deadline {
                None => (State::Forever, Poll::Pending, Reg::Idle, None),
                // A sleep that is due at once still suspends once, as trio's
                // `sleep(0)`: a loop of them is a loop of checkpoints (a timer
                // may be ready at once, and smol has no budget that yields).
                Some(d) if d <= now => (State::Passed, Poll::Pending, Reg::Idle, Some(now)),
                Some(d) => {
                    let mut reg = Reg::Idle;
                    let (poll, released) = reg.poll::<true>(word, || d, here, Some(now), cx);
                    let state = match word {
                        Some(word) => State::Waiting(word, reg),
                        None => State::WaitingFar(reg),
                    };
                    (state, poll, released, Some(d))
                }
            }
        });
        let Ok((state, poll, released, deadline)) = out else {
            if let State::After(d) = self.state {
                // Counted from the first poll all the same: a sleep kept past a
                // cancelled scope may be awaited later.
                if let Some(now) = context::with_current(|c| c.map(|c| c.rt.now())) {
                    self.state = now.checked_add(d).map_or(State::Forever, State::at);
                }
            }
            return Poll::Pending;
        };
        released.release();
        self.state = state;
        match (&self.state, poll, deadline) {
            // Due at once: a checkpoint, which a deadline around that has passed cancels
            // here (rule D12), with the clock read above.
            (State::Passed, _, now) => {
                let passed = passed_deadline(now).ok().flatten();
                if !passed.is_some_and(context::cancel_deadlines_before) {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            (State::Waiting(..) | State::WaitingFar(_), Poll::Ready(()), Some(d)) => {
                // Due at its first poll all the same: the clock passed the
                // deadline between our reading it and the timer's first poll (a
                // short sleep on a slow machine). A sleep still suspends once
                // (D9), as one due at once does; an enclosing deadline that came
                // first, or with it, cancels its scope now (D7).
                self.state.passed();
                if !context::cancel_deadlines_before(d) {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            _ => Poll::Pending,
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A suspension point: lets other tasks run, and lets a cancelled scope stop here.
///
/// Code that never suspends is never interrupted; call `checkpoint().await` in long CPU
/// loops so that cancellation (and the rest of the executor) gets a chance.
///
/// Where a scope around it has a deadline, a checkpoint reads the clock: the first
/// checkpoint after the deadline stops the code, without waiting for the executor to
/// fire the scope's timer (rule D12 of the book's semantics chapter).
///
/// # Cancel safety
///
/// Cancel safe. If the enclosing scope is cancelled, it never completes and the scope
/// drops it.
///
/// # Panics
///
/// Never; outside a hatchery runtime it only yields.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{checkpoint, move_on_after};
///
/// # hatchery_smol::run(async {
/// let mut spins = 0u64;
/// let out = move_on_after(Duration::from_millis(5), async {
///     loop {
///         spins += 1; // CPU work
///         checkpoint().await;
///     }
/// })
/// .await;
/// assert_eq!(out, None);
/// assert!(spins > 0);
/// # });
/// ```
pub fn checkpoint() -> Checkpoint {
    Checkpoint { yielded: false }
}

/// Future returned by [`checkpoint`].
///
/// # Examples
///
/// ```
/// use futures_lite::future::poll_once;
/// use hatchery::futures::Checkpoint;
///
/// # hatchery_smol::run(async {
/// let mut cp: Checkpoint = hatchery::checkpoint();
/// assert_eq!(poll_once(&mut cp).await, None); // the first poll yields to the executor...
/// assert_eq!(poll_once(&mut cp).await, Some(())); // ...the next one completes
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Checkpoint {
    yielded: bool,
}

impl Future for Checkpoint {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return match context::current_cancelled() {
                true => Poll::Pending,
                false => Poll::Ready(()),
            };
        }
        // Not cancelled, unless a deadline around has passed: then it cancels its scope
        // here, before the executor gets round to its timer (rule D12).
        match passed_deadline(None) {
            Err(()) => return Poll::Pending,
            Ok(Some(now)) if context::cancel_deadlines_before(now) => return Poll::Pending,
            Ok(_) => {}
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// For a checkpoint (rule D12): `Err(())` if the code being polled is cancelled;
/// otherwise the clock's reading if the earliest deadline of the scopes around the code,
/// up to the nearest shield, has passed by it. The clock is read (or `now` taken) only
/// if one of them has a deadline. `Ok(None)` outside a hatchery context.
#[inline]
fn passed_deadline(now: Option<Instant>) -> Result<Option<Instant>, ()> {
    let passed = context::unless_cancelled(|node, rt, due| {
        let earliest = earlier(due, earliest_word(node, false))?;
        let now = now.unwrap_or_else(|| rt.now());
        (word_deadline(earliest) <= now).then_some(now)
    })?;
    Ok(passed.flatten())
}

/// The earliest deadline, as its word, of `node` (unless it is an `ancestor` that has
/// finished) and of its ancestors up to the nearest shield, finished ones left out: the
/// scopes [`current_effective_deadline`] counts (rule D10).
///
/// The walk reads each deadline word with one load and follows the fixed parent links,
/// as the walk of `Node::is_cancelled` does (no lock, no reference count), from a task
/// into the scopes around its nursery; past the root of a `start`ed task, whose link can
/// move, it takes that link's lock. A deadline without a word (about 292 years away) is
/// left to its timer.
#[inline]
fn earliest_word(node: &Node, ancestor: bool) -> Option<i64> {
    let mut earliest = match ancestor && node.is_finished() {
        true => None,
        false => deadline_of(node),
    };
    let mut cur = node;
    while !cur.is_shield() {
        match cur.fixed_parent() {
            Some(parent) => {
                if !parent.is_finished() {
                    earliest = earlier(earliest, deadline_of(parent));
                }
                cur = parent;
            }
            None if cur.is_task_root() => return earlier(earliest, above_root(cur)),
            None => break,
        }
    }
    earliest
}

/// The earliest deadline word above a task's root with no fixed parent: a `start`ed
/// task's, whose parent link can move (read under its lock), or a run's, which has no
/// parent.
#[inline(never)]
fn above_root(root: &Node) -> Option<i64> {
    earliest_word(&root.parent()?, true)
}

/// A node's deadline word; a task's root has none (read without asking its ext).
#[inline(always)]
fn deadline_of(node: &Node) -> Option<i64> {
    match node.is_task_root() {
        true => None,
        false => node.deadline_word(),
    }
}

/// The earlier of two deadline words, either of which may be missing.
fn earlier(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The deadline that applies to the current code: see [`current_effective_deadline`].
///
/// Deadlines are ordered by how soon they come: `Cancelled` first, then `At` by instant,
/// then `Never`, so the earlier of two is their `min`:
///
/// ```
/// use std::time::{Duration, Instant};
/// use hatchery::Deadline;
///
/// let soon = Instant::now();
/// let later = soon + Duration::from_secs(1);
/// assert_eq!(Deadline::At(later).min(Deadline::At(soon)), Deadline::At(soon));
/// assert!(Deadline::Cancelled < Deadline::At(soon) && Deadline::At(later) < Deadline::Never);
/// ```
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{checkpoint, current_effective_deadline, move_on_after, CancelScope, Deadline};
///
/// # hatchery_smol::run(async {
/// assert_eq!(current_effective_deadline(), Deadline::Never);
/// move_on_after(Duration::from_secs(10), async {
///     assert!(matches!(current_effective_deadline(), Deadline::At(_)));
/// })
/// .await;
/// let scope = CancelScope::new();
/// let handle = scope.handle();
/// scope
///     .run(async {
///         handle.cancel();
///         assert_eq!(current_effective_deadline(), Deadline::Cancelled);
///         checkpoint().await; // the work ends here
///     })
///     .await;
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Deadline {
    /// An enclosing scope has already been cancelled: the next suspension point ends
    /// the work.
    Cancelled,
    /// The earliest deadline of the enclosing scopes.
    At(Instant),
    /// No enclosing scope has a deadline.
    Never,
}

impl Deadline {
    /// The instant to pass to an I/O call: `Cancelled` becomes `now`, `Never` is `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use hatchery::Deadline;
    ///
    /// let now = Instant::now();
    /// let at = now + Duration::from_secs(1);
    /// assert_eq!(Deadline::At(at).instant(now), Some(at));
    /// assert_eq!(Deadline::Cancelled.instant(now), Some(now)); // due at once
    /// assert_eq!(Deadline::Never.instant(now), None);
    /// ```
    pub fn instant(self, now: Instant) -> Option<Instant> {
        match self {
            Deadline::Cancelled => Some(now),
            Deadline::At(i) => Some(i),
            Deadline::Never => None,
        }
    }

    /// Time left until the deadline, as of `now`: zero if passed or cancelled, `None` if
    /// there is no deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use hatchery::Deadline;
    /// let now = Instant::now();
    /// assert_eq!(Deadline::Never.remaining(now), None);
    /// assert_eq!(Deadline::Cancelled.remaining(now), Some(Duration::ZERO));
    /// assert_eq!(Deadline::At(now + Duration::from_secs(2)).remaining(now), Some(Duration::from_secs(2)));
    /// ```
    pub fn remaining(self, now: Instant) -> Option<Duration> {
        self.instant(now).map(|i| i.saturating_duration_since(now))
    }

    /// Whether an enclosing scope is already cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::{checkpoint, current_effective_deadline, CancelScope};
    ///
    /// # hatchery_smol::run(async {
    /// assert!(!current_effective_deadline().is_cancelled());
    /// let scope = CancelScope::new();
    /// scope.handle().cancel(); // before entry: the body runs to its first suspension point
    /// scope
    ///     .run(async {
    ///         // Don't start work that cannot finish.
    ///         assert!(current_effective_deadline().is_cancelled());
    ///         checkpoint().await;
    ///     })
    ///     .await;
    /// # });
    /// ```
    pub fn is_cancelled(self) -> bool {
        self == Deadline::Cancelled
    }
}

/// The earliest deadline of the enclosing cancel scopes, up to the nearest shield, or
/// [`Deadline::Cancelled`] if one of them is already cancelled.
///
/// Libraries pass this to the I/O they do, so that a whole call tree honours the
/// deadline set by its caller. Inside a nursery's child task, the scopes around the
/// nursery count too.
///
/// # Panics
///
/// Outside a hatchery runtime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::testing::virtual_time;
/// use hatchery::{current_effective_deadline, move_on_after, now, CancelScope, Deadline};
///
/// # hatchery_smol::run(virtual_time(async {
/// assert_eq!(current_effective_deadline(), Deadline::Never);
/// let start = now();
/// move_on_after(Duration::from_secs(10), async {
///     move_on_after(Duration::from_secs(60), async {
///         // The earliest of the two, the outer one:
///         let d = current_effective_deadline();
///         assert_eq!(d, Deadline::At(start + Duration::from_secs(10)));
///         assert_eq!(d.remaining(now()), Some(Duration::from_secs(10)));
///         // Up to the nearest shield: the deadlines outside it do not count inside.
///         let shielded = CancelScope::new().with_shield(true);
///         let inside = shielded.run(async { current_effective_deadline() }).await;
///         assert_eq!(inside, Some(Deadline::Never));
///     })
///     .await;
/// })
/// .await;
/// # }));
/// ```
pub fn current_effective_deadline() -> Deadline {
    context::with_current(|c| {
        let node = &c.expect(context::NO_RUNTIME).node;
        if node.is_cancelled() {
            return Deadline::Cancelled;
        }
        node.effective_deadline()
            .map_or(Deadline::Never, Deadline::At)
    })
}
