//! Deadlines kept by hatchery: each task keeps the deadlines of the scopes and sleeps it
//! polls in a queue of its own ([`Timers`]), and arms one timer of the executor, for the
//! earliest of them. trio keeps its deadlines in its run loop the same way, and sleeps
//! in the loop's I/O wait until the first one.
//!
//! So entering and leaving a scope whose deadline does not fire costs an entry in a small
//! sorted vector, and touches no executor timer: in a loop of timeouts, or with a timeout
//! around each step of a task, the one executor timer of the task stays armed. It is
//! re-armed only when a deadline comes before the instant it is armed for, or after it
//! fired.
//!
//! # Owners and registrants
//!
//! A *registrant* is a scope with a deadline, or a sleep ([`Reg`]). An *owner* is what
//! the executor polls: a nursery's task, or a root made by [`rt::enter`](crate::rt::enter)
//! ([`TimerSlot`]). While an owner is polled, its queue is installed in the thread's
//! context (`context::enter_task`), with the waker it was polled with. A registrant
//! polled with that very waker (by address), on the owner's runtime, is reached whenever
//! the owner is polled: it takes an entry in the owner's queue, and on each of its polls
//! checks that its entry is still there.
//!
//! The executor timer wakes the owner. Before the owner polls its future, it takes out
//! the entries that are due ([`TimerSlot::fire`]); a registrant that finds its entry gone
//! reads the clock, and its deadline has passed: a scope cancels itself, a sleep
//! completes. That is where they saw their deadline before hatchery kept them (a scope
//! after polling its body, a sleep when polled), so the rules of the book's semantics
//! chapter that order deadlines and sleeps (D6 to D8) hold as they did. After the poll,
//! the owner arms its executor timer for the earliest entry, unless it is armed for an
//! instant no later than that ([`TimerSlot::settle`]).
//!
//! A registrant polled with another waker (a combinator that polls its futures with
//! wakers of its own, a `block_on` inside a poll), on another runtime, or outside any
//! owner arms a timer of its own instead, polled with its own waker, as all of them did
//! before hatchery kept its deadlines. So does a sleep in an owner that has no queue yet
//! (no scope with a deadline was polled there): a task whose one deadline is a sleep (a
//! child parked in `sleep`) makes one executor timer and nothing else, where a queue
//! would cost it three allocations more (the queue, its vector, the alarm). Scopes make
//! the queue; sleeps join it once it is there.
//!
//! # Invariants
//!
//! 1. **An entry's registrant is reached by its owner's poll.** An entry goes into an
//!    owner's queue only from a registrant polled with the owner's waker, inside the
//!    owner's poll. So when the owner's timer fires and wakes the owner, its poll reaches
//!    the registrant (as it reaches a scope for its parent's cancellation, node
//!    invariant 7), which finds its entry gone.
//! 2. **Only the owner touches its queue.** The queue is a plain value: the owner moves it
//!    into the thread's context for its poll and back after, so it is reached from one
//!    thread at a time, by the owner and by registrants polled inside the owner's poll.
//!    A registrant dropped or polled anywhere else leaves its entry behind (a *stale*
//!    entry), which fires in its time and wakes the owner once for nothing.
//! 3. **A missing entry is checked on the clock.** A registrant whose entry is gone
//!    (taken out as due, or the queue it was in is not the one polling it now) reads the
//!    clock: a deadline that has passed is done, one that has not is registered again.
//!    So an entry taken out early (a clock read before the deadline) only costs a new
//!    entry, never a missed deadline.
//! 4. **The timer is never later than the earliest entry.** After each poll of the owner
//!    its executor timer is armed for the earliest entry or earlier, at most
//!    [`Runtime::timer_horizon`] ahead. It may be armed for an instant whose entry has
//!    gone (a scope that finished): it then fires early, the owner finds nothing due, and
//!    re-arms it for the earliest entry. With no entry left, it stays as it is but wakes
//!    nobody (the alarm forgets the owner's waker; a fire only sets the flag, seen when
//!    the owner registers again). On a test run's virtual clock it is re-armed for the
//!    earliest entry exactly, and dropped with no entry, so that the clock never jumps to
//!    an instant that no deadline or sleep waits for (rule D11).
//! 5. **The alarm is set before the owner is woken.** The executor timer is polled with
//!    the owner's alarm ([`Alarm`]), which records that it fired and then wakes the owner:
//!    the owner polls its executor timer only when the alarm has fired, not on each poll
//!    (on a virtual clock, also once the clock has reached the instant it is armed for,
//!    which a jump may wake the owner for through another timer first:
//!    [`TimerSlot::fire`]).
//! 6. **The alarm keeps the owner's waker.** A fire wakes the owner's waker and leaves it
//!    in the alarm; only the owner replaces it (registering another) or takes it out (no
//!    entry left). So what the owner remembers having registered (`Exec::registered`) is
//!    what the alarm holds, whatever fires meanwhile, and the owner registers again only
//!    when its waker changes. The alarm may fire at any moment of the owner's poll (the
//!    executor's timer runs on another thread; a virtual clock jumps on the thread of the
//!    last task to block, and may wake the owner through another of its timers first),
//!    also after [`TimerSlot::fire`] has looked and before [`TimerSlot::settle`] re-arms
//!    the timer and clears the flag of that fire. (An alarm whose wake took the waker
//!    out, as `AtomicWaker`'s does, lost the owner there: re-armed, the timer woke
//!    nobody when it fired, and the owner slept through its deadlines for good.)
//!
//! A registrant that finds the queue full ([`MAX_ENTRIES`]) arms a timer of its own.
//!
//! # What it buys
//!
//! Measured with the benchmark's `move_on_after` row, this queue against a timer of its own for every scope, built both
//! ways and run alternately (three runs each, hatchery / raw): 1.5x-2.0x against
//! 2.4x-3.0x on tokio, 1.0x-1.3x against 1.7x-2.1x on smol. A sleep alone in its task
//! keeping a timer of its own (not the queue) buys `cancel_parked` in a sleep about 10%
//! (0.98x against 1.28x of raw on tokio-mt, 0.70x against 0.81x on tokio-ct, 1.95x
//! against 2.10x on smol): the queue, its vector and the alarm are three allocations a
//! task that sleeps once does not need.

use std::cell::Cell;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use crate::node::{deadline_word, word_deadline};
use crate::seam::{self, Runtime, Sleep};

/// The most entries an owner's queue keeps; a registrant that finds it full arms a timer
/// of its own. The queue is a sorted vector, fast for the few deadlines a task waits for
/// at once (nested scopes, a `select!` of a few sleeps), not for thousands.
pub(crate) const MAX_ENTRIES: usize = 256;

/// The deadlines of one owner (a task, or a root), and the one executor timer it arms for
/// the earliest. See the [module docs](self).
pub(crate) struct Timers {
    /// Never the id of another queue, so a registrant can tell whether it is registered
    /// here.
    id: u64,
    next_seq: u64,
    /// `(deadline, seq)`, the deadline as its word (`node::deadline_word`), sorted the
    /// latest first: the earliest entry is the last one.
    entries: Vec<(i64, u64)>,
    /// The executor timer, with the alarm it is polled with; made when first armed.
    exec: Option<Exec>,
    /// The deadline the executor timer is armed for (it wakes at that instant, or at the
    /// timer horizon before it), as its word; `None` while it is not armed (not made yet,
    /// or fired).
    armed: Option<i64>,
}

/// An owner's executor timer, polled with its alarm.
struct Exec {
    timer: Pin<Box<dyn Sleep>>,
    alarm: Arc<Alarm>,
    /// `alarm` as a waker, to poll `timer` with.
    waker: Waker,
    /// The owner's waker registered in the alarm, which keeps it (invariant 6), to tell
    /// whether a new one must be (`Waker::will_wake`).
    registered: Option<Waker>,
    /// Armed on a test run's virtual clock (`settle`'s `exact`): then the deadline it is
    /// armed for has come once the clock says so, fired or not (see [`TimerSlot::fire`]).
    exact: bool,
}

/// What the executor timer wakes: it records that the timer fired, then wakes the owner
/// (invariant 5), whose waker it keeps (invariant 6).
struct Alarm {
    fired: AtomicBool,
    /// The owner's waker; `None` while the owner has no entry (a fire then only sets
    /// `fired`). Under the lock, a waker is only moved in or out, or cloned: it is woken,
    /// and an old one dropped, after the lock (as node locks keep no foreign code under
    /// them, `node` deadlock safety 3; a clone of an executor's waker takes no lock of
    /// hatchery's).
    owner: Mutex<Option<Waker>>,
}

impl Alarm {
    fn owner(&self) -> MutexGuard<'_, Option<Waker>> {
        self.owner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Wake for Alarm {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        // Woken, not taken out (invariant 6). A registration the lock orders before this
        // read is woken here; one after it reads `fired` (see `Exec::register`).
        let owner = self.owner().clone();
        if let Some(owner) = owner {
            owner.wake();
        }
    }
}

impl Timers {
    pub(crate) fn new() -> Box<Timers> {
        Box::new(Timers {
            id: next_id(),
            next_seq: 0,
            entries: Vec::new(),
            exec: None,
            armed: None,
        })
    }

    /// The position of the entry `(deadline, seq)` if it is there (`Ok`), or where it goes
    /// (`Err`).
    fn find(&self, deadline: i64, seq: u64) -> Result<usize, usize> {
        // Sorted latest first.
        self.entries.binary_search_by(|e| (deadline, seq).cmp(e))
    }

    /// Adds an entry for `deadline`; its sequence number, or `None` if the queue is full.
    fn insert(&mut self, deadline: i64) -> Option<u64> {
        if self.entries.len() >= MAX_ENTRIES {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let at = self.find(deadline, seq).unwrap_or_else(|at| at);
        self.entries.insert(at, (deadline, seq));
        Some(seq)
    }

    /// Takes out the entry `(deadline, seq)`, if it is still there.
    #[inline]
    fn remove(&mut self, deadline: i64, seq: u64) {
        // Usually the earliest (the innermost scope, the one registered last).
        if self.entries.last() == Some(&(deadline, seq)) {
            self.entries.pop();
        } else if let Ok(at) = self.find(deadline, seq) {
            self.entries.remove(at);
        }
    }

    #[inline]
    fn contains(&self, deadline: i64, seq: u64) -> bool {
        // The entry of the one registrant that registered last is usually the earliest.
        self.entries.last() == Some(&(deadline, seq)) || self.find(deadline, seq).is_ok()
    }

    /// Takes out the entries due by `now`. Returns whether there were any.
    fn take_due(&mut self, now: Instant) -> bool {
        // The clock never reaches an instant without a word.
        let now = deadline_word(now).unwrap_or(i64::MAX);
        let before = self.entries.len();
        while self.entries.last().is_some_and(|e| e.0 <= now) {
            self.entries.pop();
        }
        self.entries.len() != before
    }
}

impl fmt::Debug for Timers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timers")
            .field("entries", &self.entries.len())
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

/// A new queue id: a block of ids is taken from a global counter per thread, so that
/// tasks made on several threads at once do not contend on one counter.
fn next_id() -> u64 {
    const BLOCK: u64 = 1 << 16;
    static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    IDS.with(|ids| {
        let (mut next, mut end) = ids.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
            end = next + BLOCK;
        }
        ids.set((next + 1, end));
        next
    })
}

/// An owner's deadlines (a task's, a root's): made when a registrant first needs them,
/// and dropped with the owner's future.
#[derive(Default)]
pub(crate) struct TimerSlot(Option<Box<Timers>>);

/// Most owners never make a queue (a child with no scope and no sleep in it): dropping an
/// empty slot is then a test, inlined where the owner goes, and only a queue is dropped
/// out of line. (Without this impl the slot's drop glue, with the queue's inlined into it,
/// was a call of its own: 13 instructions for an empty slot, twice a spawned task.)
impl Drop for TimerSlot {
    #[inline]
    fn drop(&mut self) {
        if let Some(timers) = self.0.take() {
            drop_out_of_line(timers);
        }
    }
}

/// Drops what is rarely there to drop ([`TimerSlot`]'s queue, [`Reg::release`]'s timer of
/// its own) in a call of its own, so that the test for it is all that is inlined.
#[inline(never)]
fn drop_out_of_line<T>(value: T) {
    drop(value);
}

impl TimerSlot {
    /// Swaps the queue with the one in `cell`: moves it into the thread's context for the
    /// owner's poll, and back after (perhaps made meanwhile; see `context::enter_task`).
    #[inline]
    pub(crate) fn swap(&mut self, cell: &Cell<Option<Box<Timers>>>) {
        let ours = self.0.take();
        self.0 = cell.replace(ours);
    }

    /// Before the owner's poll: if the executor timer has fired, takes out the entries
    /// that are due (their registrants see it when the poll reaches them).
    #[inline]
    pub(crate) fn fire(&mut self, rt: &dyn Runtime) {
        let Some(t) = self.0.as_deref_mut() else {
            return;
        };
        let (Some(exec), Some(armed)) = (t.exec.as_mut(), t.armed) else {
            return;
        };
        // Read before it is taken: a read-modify-write (about 3 ns uncontended, on the
        // machine of the performance chapter) at every poll of an owner whose timer is
        // armed, where a load (nearly always false) is under 1. A fire that comes after
        // the load wakes the owner again (invariant 5).
        if !exec.alarm.fired.load(Ordering::Acquire)
            || !exec.alarm.fired.swap(false, Ordering::AcqRel)
        {
            // On a virtual clock, the deadline it is armed for (exactly, invariant 4) may
            // have come all the same: the clock's jump wakes the timers due at that
            // instant one after another, and another timer of the owner's (a sleep's
            // own) may have woken it, and it may be polled on another thread, before the
            // jump reaches the alarm. The deadlines due at one instant are all seen in
            // the first poll at it, as when the alarm is first: a deadline wins its tie
            // with a sleep, and cancels a `sleep(0)` or a checkpoint at that instant (D7,
            // D9). So it reads the clock. (On real time no two timers are due at once
            // for sure, and the clock is not read on every poll.)
            if !exec.exact || word_deadline(armed) > rt.now() {
                return;
            }
        }
        // (The alarm still holds the owner's waker: invariant 6; a fire still to come
        // only wakes the owner once more.)
        let mut cx = Context::from_waker(&exec.waker);
        if exec.timer.as_mut().poll(&mut cx).is_pending() {
            return;
        }
        // Spent: an executor need not complete a timer twice; reset before it is polled
        // again (in `settle`, after this poll).
        t.armed = None;
        t.take_due(rt.now());
    }

    /// After the owner's poll: arms the executor timer for the earliest entry if it is not
    /// armed early enough (invariant 4); with no entry, it wakes nobody. With `exact`
    /// (a virtual clock), re-arms it for the earliest entry whenever that differs. Entries
    /// due already are taken out, and the owner woken to poll its registrants again.
    #[inline]
    pub(crate) fn settle(&mut self, rt: &dyn Runtime, waker: &Waker, exact: bool) {
        // A task with no queue (no scope with a deadline polled yet) has nothing to arm.
        if let Some(t) = self.0.as_deref_mut() {
            t.settle(rt, waker, exact);
        }
    }
}

impl Timers {
    /// What [`TimerSlot::settle`] does with a queue.
    fn settle(&mut self, rt: &dyn Runtime, waker: &Waker, exact: bool) {
        let t = self;
        loop {
            let Some(&(word, _)) = t.entries.last() else {
                if exact {
                    // Nothing to wait for: no timer stays behind, for a virtual clock to
                    // jump to (rule D11).
                    t.armed = None;
                    drop(t.exec.take());
                } else if let Some(exec) = t.exec.as_mut() {
                    // Nothing to wait for: the timer stays as it is, but wakes nobody
                    // (rule D11). Kept, not dropped: a task that alternates a timeout
                    // with an await outside any deadline would otherwise make, arm and
                    // drop an executor timer per round, which is what keeping the
                    // deadlines here saves.
                    exec.unregister();
                }
                return;
            };
            let early_enough = match t.armed {
                Some(armed) if exact => armed == word,
                Some(armed) => armed <= word,
                None => false,
            };
            if early_enough {
                break;
            }
            let earliest = word_deadline(word);
            let now = rt.now();
            if earliest <= now {
                // Due already (the clock moved during the poll): the registrants see it
                // at the next poll.
                t.armed = None;
                t.take_due(now);
                waker.wake_by_ref();
                continue;
            }
            let at = seam::wake_at(rt, earliest, now);
            let exec = match &mut t.exec {
                Some(exec) => {
                    // A wake-up of the timer as it was is no news any more (a fire of the
                    // new one shows when it is polled below). One that came during this
                    // poll woke the owner and left its waker registered (invariant 6):
                    // clearing its flag loses nobody.
                    exec.alarm.fired.store(false, Ordering::Release);
                    exec.timer.as_mut().reset(at);
                    exec
                }
                None => t.exec.insert(Exec::new(rt.sleep_until(at), exact)),
            };
            t.armed = Some(word);
            // The owner is registered before the timer can fire (invariant 5).
            exec.register(waker);
            if exec
                .timer
                .as_mut()
                .poll(&mut Context::from_waker(&exec.waker))
                .is_pending()
            {
                return;
            }
            // Due already, or a step of a far wait is over: checked on the clock above.
            t.armed = None;
        }
        if let Some(exec) = t.exec.as_mut() {
            // Registered anew (the alarm had no owner while there was no entry): a fire
            // in between woke nobody, so the owner wakes itself to see it.
            if exec.register(waker) && exec.alarm.fired.load(Ordering::Acquire) {
                waker.wake_by_ref();
            }
        }
    }
}

impl Exec {
    fn new(timer: Pin<Box<dyn Sleep>>, exact: bool) -> Exec {
        let alarm = Arc::new(Alarm {
            fired: AtomicBool::new(false),
            owner: Mutex::new(None),
        });
        Exec {
            timer,
            waker: Waker::from(alarm.clone()),
            alarm,
            registered: None,
            exact,
        }
    }

    /// Makes the alarm wake `waker` (the owner's), unless it does already. Returns whether
    /// it registered it anew.
    #[inline]
    fn register(&mut self, waker: &Waker) -> bool {
        // The alarm keeps what was registered (invariant 6): the same waker is there.
        if self.registered.as_ref().is_some_and(|w| w.will_wake(waker)) {
            return false;
        }
        // Cloned and dropped outside the lock. The lock orders this with the alarm's
        // wake: a fire that read the slot before found the old waker (or none) and set
        // `fired` before, which the caller reads after; one after wakes this waker.
        let new = waker.clone();
        let old = self.alarm.owner().replace(new);
        drop(old);
        self.registered = Some(waker.clone());
        true
    }

    /// The alarm wakes nobody from now on (a fire only sets `fired`).
    #[inline]
    fn unregister(&mut self) {
        if self.registered.take().is_some() {
            let old = self.alarm.owner().take();
            drop(old);
        }
    }
}

impl fmt::Debug for TimerSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TimerSlot").field(&self.0).finish()
    }
}

/// What a registrant finds where it is polled (see `context::with_here`).
pub(crate) struct Here<'a> {
    /// The owner's queue, if the registrant is polled with the owner's waker on the
    /// owner's runtime (invariant 1).
    pub(crate) owner: Option<&'a mut Timers>,
    /// The runtime of the code being polled; `None` outside hatchery.
    pub(crate) rt: Option<&'a Arc<dyn Runtime>>,
}

/// How a scope or a sleep is woken at its deadline: an entry in an owner's queue, or a
/// timer of its own.
#[derive(Default)]
pub(crate) enum Reg {
    /// Nothing armed.
    #[default]
    Idle,
    /// The entry `(word, seq)` in the queue `id` (the deadline as its word,
    /// `node::deadline_word`).
    Shared { id: u64, word: i64, seq: u64 },
    /// A timer of its own for a deadline that never moves (a sleep's), armed for that
    /// deadline itself: the executor's timer, kept here rather than in a [`Private`] box,
    /// so that a child parked in a sleep keeps no more than its executor timer (see
    /// [`Reg::poll`] with `FIXED`). The caller keeps the deadline.
    Own {
        timer: Pin<Box<dyn Sleep>>,
        /// The runtime that made the timer ([`runtime_id`]): polled under another one (a
        /// kept future), the registrant arms a new timer there.
        rt: usize,
        /// The deadline has come: the timer is spent, and not polled again.
        done: bool,
    },
    /// A timer of its own, armed for `deadline` (or a step towards it).
    Private(Box<Private>),
}

/// A registrant's own executor timer.
pub(crate) struct Private {
    deadline: Instant,
    /// `deadline`'s word, if it has one.
    word: Option<i64>,
    timer: Pin<Box<dyn Sleep>>,
    /// The runtime that made the timer, by address: polled under another one (a kept
    /// future), the registrant arms a new timer there.
    rt: usize,
    /// Armed for a step towards `deadline`, which is further away than the runtime's
    /// timer horizon: that runtime's clock says when the deadline has come.
    stepped: Option<Arc<dyn Runtime>>,
    /// The deadline has come: the timer is spent, and not polled again.
    done: bool,
}

impl Reg {
    /// Waits for a deadline, given as its word (`node::deadline_word`; `None` for one
    /// without) and as an instant (made only when needed, so perhaps twice): `Ready` once it has passed.
    /// `now` is a reading of the clock taken by the caller, if any (saving another).
    /// Returns what it let go of, for the caller to drop outside the context (it runs the
    /// executor's code).
    ///
    /// Registered with this owner for this deadline already, it only checks that its
    /// entry is still there; gone (taken out as due), or registered elsewhere (a future
    /// moved to another task) or for another deadline, it reads the clock and registers
    /// again if the deadline has not passed (invariant 3). A deadline without a word
    /// (centuries away) gets a timer of its own.
    ///
    /// `FIXED` is for a registrant whose deadline never changes once it is first polled
    /// (a sleep): a timer of its own is then kept in place ([`Reg::Own`]), without the box
    /// of [`Private`] around it, as its deadline is the caller's. A scope, whose deadline a
    /// handle may move, keeps its word in the box; so does a deadline without a word, whose
    /// box keeps it for the sleep ([`Reg::private_deadline`]).
    ///
    /// # Panics
    ///
    /// Outside hatchery, when it must register (a sleep first polled inside a task and
    /// then moved out of hatchery; a scope panics before, as it has no context).
    #[inline]
    pub(crate) fn poll<const FIXED: bool>(
        &mut self,
        word: Option<i64>,
        deadline: impl Fn() -> Instant,
        here: Here<'_>,
        now: Option<Instant>,
        cx: &mut Context<'_>,
    ) -> (Poll<()>, Reg) {
        match self {
            Reg::Shared { id, word: w, seq } if word == Some(*w) => {
                if let Some(owner) = here.owner.as_deref() {
                    if owner.id == *id && owner.contains(*w, *seq) {
                        return (Poll::Pending, Reg::Idle);
                    }
                }
            }
            // Only a registrant of a fixed deadline makes one, and its deadline is the
            // one this timer was armed for.
            Reg::Own { timer, rt, done }
                if FIXED && here.rt.is_none_or(|here| runtime_id(&**here) == *rt) =>
            {
                return (poll_own(timer, done, cx), Reg::Idle);
            }
            Reg::Private(p)
                if p.word == word
                    && here.rt.is_none_or(|rt| runtime_id(&**rt) == p.rt)
                    && (word.is_some() || p.deadline == deadline()) =>
            {
                return (p.poll(cx), Reg::Idle);
            }
            _ => {}
        }
        self.register(FIXED, word, deadline(), here, now, cx)
    }

    /// [`poll`](Reg::poll) of a deadline that is known to be its word, with the clock's
    /// reading as a word too (a scope's timeout, counted from its entry's reading as a
    /// word, `node::word_after`): the two words compare as their instants do, and an
    /// entry in the owner's queue needs no instant, which is made (the deadline's and the
    /// reading's, from their words) only for a timer of the registrant's own, through
    /// [`poll`](Reg::poll). Registered already, or due, it is `poll` too.
    #[inline(never)]
    pub(crate) fn poll_word(
        &mut self,
        word: i64,
        now: i64,
        mut here: Here<'_>,
        cx: &mut Context<'_>,
    ) -> (Poll<()>, Reg) {
        if !self.is_armed() && word > now {
            if let Some(owner) = here.owner.as_deref_mut() {
                if self.queue(owner, word) {
                    return (Poll::Pending, Reg::Idle);
                }
            }
        }
        let (deadline, now) = (word_deadline(word), word_deadline(now));
        self.poll::<false>(Some(word), || deadline, here, Some(now), cx)
    }

    /// The slow path of [`poll`](Reg::poll): registers anew.
    #[inline(never)]
    fn register(
        &mut self,
        fixed: bool,
        word: Option<i64>,
        deadline: Instant,
        mut here: Here<'_>,
        now: Option<Instant>,
        cx: &mut Context<'_>,
    ) -> (Poll<()>, Reg) {
        // (Checked before anything is let go of: a sleep polled again after this panic
        // still has what it registered, and panics again.)
        let rt = here.rt.expect(MOVED_OUT);
        let released = self.clear(here.owner.as_deref_mut());
        let now = now.unwrap_or_else(|| rt.now());
        if deadline <= now {
            return (Poll::Ready(()), released);
        }
        if let (Some(owner), Some(word)) = (here.owner, word) {
            if self.queue(owner, word) {
                return (Poll::Pending, released);
            }
        }
        let at = seam::wake_at(&**rt, deadline, now);
        // (A deadline without a word gets a `Private`, which keeps it: see `poll`.)
        if fixed && word.is_some() && at == deadline {
            let mut timer = rt.sleep_until(at);
            let mut done = false;
            let poll = poll_own(&mut timer, &mut done, cx);
            std::mem::replace(
                self,
                Reg::Own {
                    timer,
                    rt: runtime_id(&**rt),
                    done,
                },
            )
            .release();
            return (poll, released);
        }
        let mut private = Box::new(Private {
            deadline,
            word,
            timer: rt.sleep_until(at),
            rt: runtime_id(&**rt),
            stepped: (at < deadline).then(|| rt.clone()),
            done: false,
        });
        let poll = private.poll(cx);
        std::mem::replace(self, Reg::Private(private)).release();
        (poll, released)
    }

    /// Puts an idle registrant's entry for `word` in `owner`'s queue; `false` if the queue
    /// is full.
    #[inline]
    fn queue(&mut self, owner: &mut Timers, word: i64) -> bool {
        debug_assert!(!self.is_armed());
        let Some(seq) = owner.insert(word) else {
            return false;
        };
        // `self` is idle: replaced without its drop glue.
        std::mem::replace(
            self,
            Reg::Shared {
                id: owner.id,
                word,
                seq,
            },
        )
        .release();
        true
    }

    /// Lets go of what is armed: takes the entry out of `owner`'s queue if it is there
    /// (else leaves it behind, stale: invariant 2), or returns the timer of its own, for
    /// the caller to drop outside the context.
    #[inline]
    pub(crate) fn clear(&mut self, owner: Option<&mut Timers>) -> Reg {
        if let Reg::Shared { id, word, seq } = *self {
            // An entry owns nothing: overwritten without a call of the enum's drop glue
            // (see `release`).
            std::mem::forget(std::mem::replace(self, Reg::Idle));
            if let Some(owner) = owner.filter(|o| o.id == id) {
                owner.remove(word, seq);
            }
            return Reg::Idle;
        }
        std::mem::take(self)
    }

    /// The deadline of a timer of its own in a box ([`Reg::Private`]: a scope's, or a
    /// sleep's whose deadline has no word), which keeps it; `None` for any other
    /// registration.
    pub(crate) fn private_deadline(&self) -> Option<Instant> {
        match self {
            Reg::Private(p) => Some(p.deadline),
            _ => None,
        }
    }

    /// Whether something is armed.
    #[inline]
    pub(crate) fn is_armed(&self) -> bool {
        !matches!(self, Reg::Idle)
    }

    /// Drops what a registrant let go of ([`clear`](Reg::clear), [`poll`](Reg::poll)),
    /// where the caller would `drop` it: nothing or an entry of a queue (nearly always)
    /// needs no drop, and is a test inlined here; a timer of its own is dropped out of
    /// line. (A plain `drop` called the enum's drop glue, which is not inlined: about 13
    /// instructions a call, five calls for a `move_on_after` that does not fire.)
    #[inline]
    pub(crate) fn release(self) {
        match self {
            // They own nothing: forgotten, as dropping them would call the glue.
            Reg::Idle | Reg::Shared { .. } => std::mem::forget(self),
            timer => drop_out_of_line(timer),
        }
    }
}

impl fmt::Debug for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reg::Idle => f.write_str("Idle"),
            Reg::Shared { word, .. } => f
                .debug_tuple("Shared")
                .field(&word_deadline(*word))
                .finish(),
            Reg::Own { done, .. } => f.debug_struct("Own").field("done", done).finish(),
            Reg::Private(p) => f.debug_tuple("Private").field(&p.deadline).finish(),
        }
    }
}

impl Private {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while !self.done {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let Some(rt) = &self.stepped else {
                self.done = true;
                break;
            };
            // A step of the wait is over: on to the next, or done.
            let now = rt.now();
            if now >= self.deadline {
                self.done = true;
                break;
            }
            let at = seam::wake_at(&**rt, self.deadline, now);
            self.timer.as_mut().reset(at);
        }
        Poll::Ready(())
    }
}

/// Polls a timer of its own ([`Reg::Own`]) that is armed for its deadline itself: once it
/// has completed, it is not polled again (`done`).
#[inline]
fn poll_own(timer: &mut Pin<Box<dyn Sleep>>, done: &mut bool, cx: &mut Context<'_>) -> Poll<()> {
    if !*done {
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        *done = true;
    }
    Poll::Ready(())
}

/// The panic of a registrant that must arm its deadline outside hatchery.
const MOVED_OUT: &str = "hatchery: a sleep first polled in hatchery code was polled outside \
it (moved into a future spawned directly on the executor?): it needs the runtime's clock and \
timers. Await it in hatchery code, or use the executor's own sleep there";

/// Identifies a runtime by its address.
pub(crate) fn runtime_id(rt: &dyn Runtime) -> usize {
    (rt as *const dyn Runtime).cast::<u8>() as usize
}

// Not under `--cfg hatchery_loom`, whose atomics (those of `node::fixtures::Count` too)
// work only inside a loom model.
#[cfg(all(test, not(hatchery_loom)))]
mod tests {
    //! The owner's queue driven by hand, on a runtime whose one timer the test fires: the
    //! interleavings of the alarm with the owner's poll, one at a time.

    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Waker};
    use std::time::{Duration, Instant};

    use super::{TimerSlot, Timers};
    use crate::node::deadline_word;
    use crate::node::fixtures::Count;
    use crate::seam::{Runtime, Sleep, Task};

    /// A clock the test moves, and the timers made on it (the executor's side).
    struct Manual {
        now: Mutex<Instant>,
        timers: Mutex<Vec<Arc<Mutex<Armed>>>>,
    }

    #[derive(Default)]
    struct Armed {
        deadline: Option<Instant>,
        waker: Option<Waker>,
    }

    struct ManualSleep {
        rt: Arc<Manual>,
        armed: Arc<Mutex<Armed>>,
    }

    impl Future for ManualSleep {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let now = *self.rt.now.lock().unwrap();
            let mut armed = self.armed.lock().unwrap();
            if armed.deadline.is_some_and(|d| d <= now) {
                armed.waker = None;
                return Poll::Ready(());
            }
            armed.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    impl Sleep for ManualSleep {
        fn reset(self: Pin<&mut Self>, deadline: Instant) {
            let mut armed = self.armed.lock().unwrap();
            armed.deadline = Some(deadline);
            armed.waker = None;
        }
    }

    /// The runtime seam over a [`Manual`] clock.
    struct ManualRt(Arc<Manual>);

    impl Runtime for ManualRt {
        fn spawn(&self, _: Task) {
            unreachable!("no task is spawned here")
        }

        fn now(&self) -> Instant {
            *self.0.now.lock().unwrap()
        }

        fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
            let armed = Arc::new(Mutex::new(Armed {
                deadline: Some(deadline),
                waker: None,
            }));
            self.0.timers.lock().unwrap().push(armed.clone());
            Box::pin(ManualSleep {
                rt: self.0.clone(),
                armed,
            })
        }

        fn spawn_blocking(&self, _: Box<dyn FnOnce() + Send>) {
            unreachable!("no blocking work here")
        }
    }

    impl ManualRt {
        fn new(start: Instant) -> ManualRt {
            ManualRt(Arc::new(Manual {
                now: Mutex::new(start),
                timers: Mutex::new(Vec::new()),
            }))
        }

        /// Moves the clock to `to`, and fires what is due, as an executor's timer does:
        /// wakes the waker it was polled with.
        fn advance(&self, to: Instant) {
            *self.0.now.lock().unwrap() = to;
            let due: Vec<Waker> = self
                .0
                .timers
                .lock()
                .unwrap()
                .iter()
                .filter_map(|armed| {
                    let mut armed = armed.lock().unwrap();
                    match armed.deadline {
                        Some(d) if d <= to => armed.waker.take(),
                        _ => None,
                    }
                })
                .collect();
            due.into_iter().for_each(Waker::wake);
        }
    }

    fn word(at: Instant) -> i64 {
        deadline_word(at).expect("a near deadline has a word")
    }

    fn queue(slot: &mut TimerSlot) -> &mut Timers {
        slot.0.as_deref_mut().expect("a queue")
    }

    /// The alarm fires while the owner is polled, after `fire` has looked (the timer's
    /// thread, or a virtual clock's jump on another thread), and in the same poll the
    /// owner's timer is re-armed for another deadline: the owner must still be woken when
    /// that one comes. (The alarm used to take the owner's waker out as it woke it, and
    /// the re-arm cleared the flag that said so: the owner kept a timer that woke nobody,
    /// the lost wake-up behind a deadlock of `deadline_model` on `TokioMulti`.)
    fn rearmed_after_a_fire_in_the_poll(exact: bool) {
        let start = Instant::now();
        let rt = ManualRt::new(start);
        let (count, waker) = Count::waker();
        let (t1, t2) = (
            start + Duration::from_secs(2),
            start + Duration::from_secs(3),
        );
        let mut slot = TimerSlot(Some(Timers::new()));

        // Poll 1: a deadline at t1; the timer is armed for it.
        slot.fire(&rt);
        let seq1 = queue(&mut slot).insert(word(t1)).expect("room");
        slot.settle(&rt, &waker, exact);
        assert_eq!(count.get(), 0);

        // Poll 2, woken by something else: `fire` finds nothing yet.
        slot.fire(&rt);
        // Meanwhile the clock reaches t1 and the timer fires: the owner is woken.
        rt.advance(t1);
        assert_eq!(count.get(), 1);
        // Still in poll 2: the registrant of t1 goes (it saw its deadline on the clock),
        // another comes for t2. The timer is re-armed for t2.
        queue(&mut slot).remove(word(t1), seq1);
        queue(&mut slot).insert(word(t2)).expect("room");
        slot.settle(&rt, &waker, exact);

        // Poll 3, for the wake-up of the fire: nothing due.
        slot.fire(&rt);
        slot.settle(&rt, &waker, exact);
        let before = count.get();

        // t2 comes: the timer fires, and the owner must hear of it.
        rt.advance(t2);
        assert!(
            count.get() > before,
            "the owner's timer fired at its deadline, and nobody was woken (exact: {exact})"
        );
        slot.fire(&rt);
        assert!(
            queue(&mut slot).entries.is_empty(),
            "t2 was taken out as due"
        );
    }

    #[test]
    fn rearmed_after_a_fire_in_the_poll_virtual() {
        rearmed_after_a_fire_in_the_poll(true);
    }

    #[test]
    fn rearmed_after_a_fire_in_the_poll_real() {
        rearmed_after_a_fire_in_the_poll(false);
    }

    /// On a virtual clock, the deadline the timer is armed for has come when the owner is
    /// polled, but its alarm has not fired yet (the clock's jump woke the owner through
    /// another timer first): the poll takes the entry out all the same, so that a
    /// deadline and a sleep due at one instant are seen in one poll (D7). On real time it
    /// waits for the alarm.
    #[test]
    fn a_virtual_deadline_is_due_by_the_clock_before_its_alarm() {
        for exact in [true, false] {
            let start = Instant::now();
            let rt = ManualRt::new(start);
            let (_, waker) = Count::waker();
            let t1 = start + Duration::from_secs(1);
            let mut slot = TimerSlot(Some(Timers::new()));

            slot.fire(&rt);
            queue(&mut slot).insert(word(t1)).expect("room");
            slot.settle(&rt, &waker, exact);

            // The clock is at t1; the timer has not fired yet.
            *rt.0.now.lock().unwrap() = t1;
            slot.fire(&rt);
            assert_eq!(queue(&mut slot).entries.is_empty(), exact, "exact: {exact}");
            slot.settle(&rt, &waker, exact);
            // Then it fires: a wake-up more, nothing lost.
            rt.advance(t1);
            slot.fire(&rt);
            slot.settle(&rt, &waker, exact);
            assert!(queue(&mut slot).entries.is_empty(), "exact: {exact}");
        }
    }

    /// The same on real time, through the other re-arm: the fire comes in the poll, an
    /// entry earlier than the armed one has come meanwhile and is found due, with the
    /// armed one, when the poll settles; the timer is re-armed for the next entry.
    #[test]
    fn rearmed_after_due_entries_in_the_poll() {
        let start = Instant::now();
        let rt = ManualRt::new(start);
        let (count, waker) = Count::waker();
        let t0 = start + Duration::from_secs(1);
        let (t1, t2) = (
            start + Duration::from_secs(2),
            start + Duration::from_secs(3),
        );
        let mut slot = TimerSlot(Some(Timers::new()));

        slot.fire(&rt);
        queue(&mut slot).insert(word(t1)).expect("room");
        queue(&mut slot).insert(word(t2)).expect("room");
        slot.settle(&rt, &waker, false);

        // Poll 2: an earlier deadline comes; the poll runs past t1, and the timer fires.
        slot.fire(&rt);
        queue(&mut slot).insert(word(t0)).expect("room");
        rt.advance(t1);
        slot.settle(&rt, &waker, false);

        // Polls for the wake-ups: nothing more is due.
        slot.fire(&rt);
        slot.settle(&rt, &waker, false);
        let before = count.get();

        rt.advance(t2);
        assert!(
            count.get() > before,
            "the owner's timer fired at its deadline, and nobody was woken"
        );
    }
}
