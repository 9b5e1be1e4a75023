//! Seeing what a running program does: the task tree, and warnings for a cancelled scope
//! that waits for good on something nobody polls.
//!
//! # The task tree
//!
//! [`tree`] takes a snapshot of the current run's nurseries, tasks and scopes: names,
//! where each was made, age, deadline, cancelled (and why) or shielded, and what a
//! cancelled one still waits for. Print it (`{}`) when a service seems stuck (on a
//! signal: the `observe` example of the repository does it on `SIGUSR1`), or walk it
//! ([`TaskTree::root`]). It costs nothing until it is called (rule O2 of the book).
//!
//! ```
//! use hatchery::diagnostics::tree;
//! use hatchery::nursery;
//!
//! # hatchery_smol::run(async {
//! nursery(|_| async {
//!     let dump = tree().to_string();
//!     assert!(dump.starts_with("run\n└── nursery \"server\" at "));
//!     Ok::<_, std::io::Error>(())
//! }).named("server")
//! .await
//! .unwrap();
//! # });
//! ```
//!
//! # Hold warnings
//!
//! A nursery, a shield, a `finally` until its cleanup is done and a pending `start` *hold*
//! the scopes around them: a cancelled scope waits for them before it drops its body
//! (rule K4 of the book's semantics chapter). Kept without being polled — the loser of a
//! `select!` in a loop, a `mem::forget` of a polled nursery — such a holder keeps its
//! scope waiting forever, and nothing else says so. This module watches for it (rule
//! K6): when a cancelled scope has waited on a holder that was not polled for longer than
//! a threshold, hatchery emits one [`StalledHold`] warning naming the holder's kind and
//! where it was created, to standard error or to a [hook](set_hold_warning_hook).
//!
//! A holder that is slow but polled (a shielded cleanup that takes a minute) is never
//! reported: the scope's body is polled whenever the scope is, and polls the holder in
//! turn.
//!
//! ## Cost
//!
//! **On in debug builds** (with a threshold of [`DEFAULT_THRESHOLD`]), **off in release
//! builds** unless turned on with [`set_hold_warnings`]. (The build is the `hatchery`
//! crate's: `debug_assertions`, as in Cargo's `dev` and `test` profiles.)
//!
//! * Off: a nursery, `finally` or `start` keeps where it was created (one pointer, from
//!   `#[track_caller]`) and one more word that stays empty; a shield's scope future
//!   keeps nothing more (its `CancelScope` keeps the place until it is entered), and
//!   each poll of an entered shield checks that its node is not watched. Nothing else.
//! * On: each holder also records itself in a process-wide list as it is created (a
//!   lock and an allocation) and counts its polls (a relaxed increment); a shield's
//!   node is made when the shield is, as for a scope with a
//!   [`CancelHandle`](crate::CancelHandle), to carry that record. Nothing is armed on the
//!   normal path: only a scope that is cancelled *and* still held arms a timer for the
//!   threshold, and only for holders it has not seen polled (a holder polled whenever
//!   the scope is, a slow shield, arms it once, when first seen).
//!
//! Holders created while the warnings are off are not watched when they are turned on:
//! turn them on at the start of the program. In a test run on a virtual clock
//! ([`testing`](crate::testing)) the default warnings stay off, since their timer would
//! move the clock; [`set_hold_warnings`] turns them on there too.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use hatchery::diagnostics::{set_hold_warning_hook, set_hold_warnings};
//!
//! // In a release build too, with a threshold of 10 s, into the application's log.
//! set_hold_warnings(Some(Duration::from_secs(10)));
//! set_hold_warning_hook(|warning| eprintln!("[warn] {warning}"));
//! ```

use std::fmt;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, Weak};
use std::task::Context;
use std::time::{Duration, Instant};

use crate::node::{Hold, Node};

use crate::seam::{Runtime, Sleep};
pub use crate::tree::{tree, NodeKind, TaskTree, TreeNode};

/// The threshold in debug builds until [`set_hold_warnings`] says otherwise: 10 seconds.
pub const DEFAULT_THRESHOLD: Duration = Duration::from_secs(10);

/// The threshold word of "off".
const OFF: u64 = u64::MAX;

/// The threshold in nanoseconds, or [`OFF`].
static THRESHOLD: AtomicU64 = AtomicU64::new(if cfg!(debug_assertions) {
    DEFAULT_THRESHOLD.as_secs() * 1_000_000_000
} else {
    OFF
});

/// Whether [`set_hold_warnings`] was called: then the warnings also run on a virtual clock.
static EXPLICIT: AtomicBool = AtomicBool::new(false);

/// Whether the code being polled runs on a virtual clock ([`crate::testing`] sets it when
/// a run on one starts): there the default warnings are off, as their timer would move
/// the clock.
static VIRTUAL: OnceLock<fn() -> bool> = OnceLock::new();

/// Lets the warnings ask whether the code being polled runs on a virtual clock.
pub(crate) fn set_virtual_probe(probe: fn() -> bool) {
    let _ = VIRTUAL.set(probe);
}

/// Where warnings go: `None` for standard error.
type Hook = Box<dyn Fn(&StalledHold) + Send + Sync>;
static HOOK: RwLock<Option<Hook>> = RwLock::new(None);

/// Turns the warnings on with a threshold (`Some`), or off (`None`), for the whole
/// process. On by default in debug builds ([`DEFAULT_THRESHOLD`]), off in release ones.
/// Once this is called, they also run in test runs on a virtual clock, where the threshold
/// is virtual time (by default they are off there).
///
/// Holders created while the warnings are off stay unwatched. A threshold too large to
/// count in nanoseconds (over 584 years) turns them off.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::diagnostics::{hold_warnings, set_hold_warnings};
///
/// set_hold_warnings(Some(Duration::from_secs(30)));
/// assert_eq!(hold_warnings(), Some(Duration::from_secs(30)));
/// ```
pub fn set_hold_warnings(threshold: Option<Duration>) {
    let word = threshold
        .and_then(|t| u64::try_from(t.as_nanos()).ok())
        .map_or(OFF, |n| n.min(OFF - 1));
    THRESHOLD.store(word, Ordering::Relaxed);
    EXPLICIT.store(true, Ordering::Relaxed);
}

/// The threshold of the warnings, `None` when they are off.
///
/// # Examples
///
/// ```
/// use hatchery::diagnostics::{hold_warnings, set_hold_warnings};
///
/// set_hold_warnings(None);
/// assert_eq!(hold_warnings(), None);
/// ```
pub fn hold_warnings() -> Option<Duration> {
    match THRESHOLD.load(Ordering::Relaxed) {
        OFF => None,
        nanos => Some(Duration::from_nanos(nanos)),
    }
}

/// Sends the warnings to `hook` instead of standard error, for the whole process (the
/// last hook set wins). The hook runs in the poll of the waiting scope: it must not block.
///
/// # Examples
///
/// ```
/// use hatchery::diagnostics::set_hold_warning_hook;
///
/// set_hold_warning_hook(|warning| {
///     eprintln!("{} created at {} is not polled", warning.kind(), warning.location())
/// });
/// ```
pub fn set_hold_warning_hook(hook: impl Fn(&StalledHold) + Send + Sync + 'static) {
    *HOOK.write().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(hook));
}

/// What holds a scope: the kinds of futures a cancelled scope waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HolderKind {
    /// A [`nursery`](crate::nursery()), until its tasks have finished.
    Nursery,
    /// A [`shield`](crate::shield()) or a scope made with
    /// [`with_shield(true)`](crate::CancelScope::with_shield).
    Shield,
    /// A [`finally`](crate::finally()), until its cleanup is done.
    Finally,
    /// A [`Nursery::start`](crate::Nursery::start), until its task has started.
    Start,
}

impl fmt::Display for HolderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HolderKind::Nursery => "nursery",
            HolderKind::Shield => "shield",
            HolderKind::Finally => "finally",
            HolderKind::Start => "start",
        })
    }
}

/// A warning: a cancelled scope has waited for `waited` on a holder that was not polled
/// meanwhile. Its `Display` is the message written to standard error.
///
/// # Examples
///
/// ```
/// use hatchery::diagnostics::{set_hold_warning_hook, HolderKind};
///
/// set_hold_warning_hook(|w| {
///     if w.kind() == HolderKind::Nursery {
///         eprintln!("nursery at {}:{} kept without polling", w.location().file(), w.location().line());
///     }
/// });
/// ```
#[derive(Debug, Clone)]
pub struct StalledHold {
    kind: HolderKind,
    location: &'static Location<'static>,
    waited: Duration,
}

impl StalledHold {
    /// The holder's kind.
    pub fn kind(&self) -> HolderKind {
        self.kind
    }

    /// Where the holder was created: the call of `nursery`, `shield`,
    /// `CancelScope::with_shield`, `finally` or `Nursery::start`.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// How long the scope had waited on the holder without the holder being polled.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl fmt::Display for StalledHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hatchery: a cancelled scope has waited {:?} for the {} created at {}, which is \
             kept but no longer polled: the scope cannot end until it is polled to its end \
             or dropped (rule K4)",
            self.waited, self.kind, self.location
        )
    }
}

/// Locks `m`, poisoned or not (as every lock of this module is taken).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether the warnings are on (holders created now are watched).
#[inline]
pub(crate) fn enabled() -> bool {
    THRESHOLD.load(Ordering::Relaxed) != OFF
}

/// A watched holder (only while the warnings are on).
pub(crate) struct Site {
    kind: HolderKind,
    location: &'static Location<'static>,
    /// The node its hold counts from (see [`Hold`]), once it holds; it moves with a
    /// shield polled in another scope.
    from: Mutex<Option<Weak<Node>>>,
    /// A shield's own node: the site is no longer watched once that node has finished.
    owner: OnceLock<Weak<Node>>,
    polls: AtomicU32,
    warned: AtomicBool,
}

impl Site {
    /// The holder now holds `from` (and the scopes its holds reach).
    pub(crate) fn hold(&self, from: &Arc<Node>) {
        *lock(&self.from) = Some(Arc::downgrade(from));
    }

    /// The site is a shield's whose node is `node`. (Its weak reference also keeps the
    /// node from being reused by another scope.)
    pub(crate) fn owned_by(&self, node: &Arc<Node>) {
        let _ = self.owner.set(Arc::downgrade(node));
    }

    /// The holder is being polled.
    #[inline]
    pub(crate) fn polled(&self) {
        let polls = self.polls.load(Ordering::Relaxed);
        self.polls.store(polls.wrapping_add(1), Ordering::Relaxed);
    }

    /// Whether the holder holds `node` now.
    fn holds(&self, node: &Node) -> bool {
        let live = self
            .owner
            .get()
            .is_none_or(|owner| owner.upgrade().is_some_and(|o| !o.is_finished()));
        let from = lock(&self.from).as_ref().and_then(Weak::upgrade);
        live && from.is_some_and(|from| from.holds_up_to(node))
    }
}

/// Every watched holder alive, and the length at which the dead ones are swept out.
struct Sites {
    list: Vec<Weak<Site>>,
    sweep_at: usize,
}

static SITES: Mutex<Sites> = Mutex::new(Sites {
    list: Vec::new(),
    sweep_at: 64,
});

/// A new holder of `kind` made at `location`, watched if the warnings are on.
pub(crate) fn site(kind: HolderKind, location: &'static Location<'static>) -> Option<Arc<Site>> {
    enabled().then(|| track(kind, location))
}

/// A [`Hold`] of a nursery, `finally` or `start`, watched while the warnings are on.
pub(crate) struct Held {
    hold: Hold,
    site: Option<Arc<Site>>,
}

impl Held {
    /// Holds `from` (see [`Hold::new`]) for a holder of `kind` created at `location`.
    #[inline]
    pub(crate) fn new(
        from: &Arc<Node>,
        kind: HolderKind,
        location: &'static Location<'static>,
    ) -> Held {
        let site = site(kind, location);
        if let Some(site) = &site {
            site.hold(from);
        }
        Held {
            hold: Hold::new(from),
            site,
        }
    }

    /// Whether this holds `node` (see [`Hold::is_on`]).
    pub(crate) fn is_on(&self, node: &Arc<Node>) -> bool {
        self.hold.is_on(node)
    }

    /// Whether the warnings watch this holder.
    #[inline]
    pub(crate) fn is_watched(&self) -> bool {
        self.site.is_some()
    }

    /// The holder is polled under `node` now, and holds it through something inside that
    /// moved there (a `finally`'s cleanup, whose shield holds the scope it is polled in):
    /// it is watched there, while its own hold stays where it was taken.
    pub(crate) fn watch_from(&self, node: &Arc<Node>) {
        if let Some(site) = &self.site {
            site.hold(node);
        }
    }

    /// The holder is being polled.
    #[inline]
    pub(crate) fn polled(&self) {
        if let Some(site) = &self.site {
            site.polled();
        }
    }

    /// Polls the holder of `held`: counts the poll, runs `f`, and releases the hold if
    /// `f` unwinds (see [`Hold::release_on_unwind`]).
    #[inline]
    pub(crate) fn poll<R>(held: &mut Option<Held>, f: impl FnOnce() -> R) -> R {
        if let Some(h) = held.as_ref() {
            h.polled();
        }
        Hold::release_on_unwind(held, f)
    }
}

/// Records a new holder in [`SITES`].
#[cold]
fn track(kind: HolderKind, location: &'static Location<'static>) -> Arc<Site> {
    let site = Arc::new(Site {
        kind,
        location,
        from: Mutex::new(None),
        owner: OnceLock::new(),
        polls: AtomicU32::new(0),
        warned: AtomicBool::new(false),
    });
    let mut sites = lock(&SITES);
    if sites.list.len() >= sites.sweep_at {
        sites.list.retain(|s| s.strong_count() > 0);
        sites.sweep_at = (sites.list.len() * 2).max(64);
    }
    sites.list.push(Arc::downgrade(&site));
    site
}

/// A scope that waits for its holds while cancelled: when it began to wait on each
/// holder without that holder being polled, and its timer for the next threshold.
struct Watch {
    node: Weak<Node>,
    seen: Vec<(Weak<Site>, u32, Instant)>,
    timer: Option<Pin<Box<dyn Sleep>>>,
}

static WATCHES: Mutex<Vec<Watch>> = Mutex::new(Vec::new());
/// How many scopes are watched: zero on the normal path, where [`unwatch`] returns at
/// once.
static WATCHING: AtomicUsize = AtomicUsize::new(0);

/// Called on each poll of a runner whose `node` is cancelled and still held, after its
/// body was polled: warns of each holder of `node` that was not polled for longer than
/// the threshold, and arms a timer (waking `cx`) for the next one that could be.
#[cold]
#[inline(never)]
pub(crate) fn held(node: &Arc<Node>, rt: &dyn Runtime, cx: &mut Context<'_>) {
    let Some(threshold) = hold_warnings() else {
        return;
    };
    if !EXPLICIT.load(Ordering::Relaxed)
        && VIRTUAL.get().is_some_and(|virtual_clock| virtual_clock())
    {
        return;
    }
    let mut report = Vec::new();
    {
        let mut watches = lock(&WATCHES);
        // Scopes that are gone or no longer wait (their timers would only wake them).
        watches.retain(|w| {
            w.node
                .upgrade()
                .is_some_and(|n| !n.is_finished() && n.has_holds())
        });
        let index = match watches
            .iter()
            .position(|w| std::ptr::eq(w.node.as_ptr(), Arc::as_ptr(node)))
        {
            // Watched already: nothing to do until its timer fires (the holders' polls are
            // counted, so a holder polled meanwhile is seen then).
            Some(i) => {
                if let Some(timer) = &mut watches[i].timer {
                    if timer.as_mut().poll(cx).is_pending() {
                        return;
                    }
                }
                i
            }
            None => {
                watches.push(Watch {
                    node: Arc::downgrade(node),
                    seen: Vec::new(),
                    timer: None,
                });
                watches.len() - 1
            }
        };
        let now = rt.now();
        // The holders of `node`: the watched ones whose holds count on it.
        let sites: Vec<Arc<Site>> = lock(&SITES)
            .list
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|s| s.holds(node))
            .collect();
        WATCHING.store(watches.len(), Ordering::Relaxed);
        let watch = &mut watches[index];
        let mut next: Option<Instant> = None;
        let seen = sites
            .iter()
            .map(|site| {
                let polls = site.polls.load(Ordering::Relaxed);
                let before = watch
                    .seen
                    .iter()
                    .find(|(s, _, _)| std::ptr::eq(s.as_ptr(), Arc::as_ptr(site)));
                // Not polled since it was last seen: waiting since then.
                let since = before
                    .filter(|&&(_, p, _)| p == polls)
                    .map_or(now, |&(_, _, since)| since);
                // Polled since it was last seen (by the poll the timer made, if nothing
                // else): it is polled whenever the scope is, as a slow holder is, and no
                // timer is armed for it. Re-armed, the timer would wake the scope, whose
                // poll polls the holder, again and again; and a virtual clock, whenever
                // every task is blocked (on a thread, say), would jump from one threshold
                // to the next at full speed. Should it stop being polled, the next poll
                // of the scope (whoever wakes it) sees that and arms the timer then.
                let polled = before.is_some_and(|&(_, p, _)| p != polls);
                let due = since.checked_add(threshold);
                if !site.warned.load(Ordering::Relaxed) && !polled {
                    match due {
                        Some(due) if due <= now => {
                            site.warned.store(true, Ordering::Relaxed);
                            report.push(StalledHold {
                                kind: site.kind,
                                location: site.location,
                                waited: now - since,
                            });
                        }
                        Some(due) => next = Some(next.map_or(due, |n| n.min(due))),
                        None => {}
                    }
                }
                (Arc::downgrade(site), polls, since)
            })
            .collect();
        watch.seen = seen;
        match next {
            Some(at) => {
                let timer = watch.timer.get_or_insert_with(|| rt.sleep_until(at));
                timer.as_mut().reset(at);
                if timer.as_mut().poll(cx).is_ready() {
                    cx.waker().wake_by_ref();
                }
            }
            None => watch.timer = None,
        }
    }
    for warning in report {
        emit(&warning);
    }
}

/// The scope of `node` no longer waits (its body is gone): forgets its watch.
#[inline]
pub(crate) fn unwatch(node: &Node) {
    if WATCHING.load(Ordering::Relaxed) != 0 {
        unwatch_slow(node);
    }
}

#[cold]
fn unwatch_slow(node: &Node) {
    let mut watches = lock(&WATCHES);
    watches.retain(|w| !std::ptr::eq(w.node.as_ptr().cast::<u8>(), (node as *const Node).cast()));
    WATCHING.store(watches.len(), Ordering::Relaxed);
}

fn emit(warning: &StalledHold) {
    match &*HOOK.read().unwrap_or_else(PoisonError::into_inner) {
        Some(hook) => hook(warning),
        None => eprintln!("{warning}"),
    }
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Held").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(hatchery_loom)))]
mod tests {
    use super::*;

    /// On with the default threshold in a debug build of this crate, off in a release
    /// one. (No other unit test sets the warnings: they are process-wide.)
    #[test]
    fn on_in_debug_builds_off_in_release_ones() {
        let default = cfg!(debug_assertions).then_some(DEFAULT_THRESHOLD);
        assert_eq!(hold_warnings(), default);
        assert_eq!(enabled(), default.is_some());
        assert!(!EXPLICIT.load(Ordering::Relaxed));
    }

    #[test]
    fn the_message_names_kind_place_and_rule() {
        let warning = StalledHold {
            kind: HolderKind::Nursery,
            location: Location::caller(),
            waited: Duration::from_secs(12),
        };
        let message = warning.to_string();
        assert!(message.starts_with("hatchery: a cancelled scope has waited 12s for the nursery created at core/src/diagnostics.rs:"), "{message}");
        assert!(message.ends_with("(rule K4)"), "{message}");
    }
}
