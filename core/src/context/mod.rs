//! The ambient context: what the code being polled finds without being handed it, the
//! runtime it runs on and the innermost cancel scope around it.
//!
//! Every runner hatchery polls on a task's behalf (a nursery child's, a scope, a
//! nursery's body, a root made by [`enter`](crate::rt::enter)) installs its runtime and
//! its node in a thread-local for the duration of its `poll`, and puts back what was
//! there afterwards, also on panic ([`enter_with`], [`enter_node`]). That is how
//! `sleep()` or `nursery()` work with no runtime argument, on any executor, without a
//! global (rules R1, R2 of the book's semantics chapter).
//!
//! The runner that the executor polls (a nursery's task, a root) also installs its
//! deadlines for the duration of its poll ([`enter_task`]): the scopes and sleeps polled
//! with its waker keep their deadlines there, and the runner arms one executor timer for
//! the earliest (see [`crate::timer`]).
//!
//! A task poll also keeps a done scope's node that nothing else holds, dropped when the
//! poll ends, for the next scope entered under the same parent ([`recycle_node`]). A loop
//! of timeouts then allocates nothing.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use crate::node::Node;
use crate::seam::Runtime;
use crate::timer::{runtime_id, Here, Reg, TimerSlot, Timers};

mod deferred;
mod enter;

pub(crate) use self::deferred::{
    deferred_made, make_deferred, Deferred, ResolveOnUnwind, ResolveScopeOnUnwind,
};
use self::deferred::{make_deferred_node, Made};
pub use self::enter::{current as current_runtime, enter, enter_root, is_entered, Enter};

/// What every hatchery future finds while it is polled: the runtime and the innermost
/// cancel scope (an owned copy, see [`current`]).
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) rt: Arc<dyn Runtime>,
    pub(crate) node: Arc<Node>,
}

/// The current context, borrowed from the thread-local (see [`with_current`]).
#[derive(Clone, Copy)]
pub(crate) struct CtxRef<'a> {
    pub(crate) rt: &'a Arc<dyn Runtime>,
    pub(crate) node: &'a Arc<Node>,
    spare_node: &'a Cell<Option<Arc<Node>>>,
}

impl CtxRef<'_> {
    /// The node a scope let go of during the current task poll ([`recycle_node`]), if
    /// its parent is the current node: a new scope entered here can take it.
    #[inline]
    pub(crate) fn take_spare_node(&self) -> Option<Arc<Node>> {
        let spare = self.spare_node.take()?;
        if spare.is_child_of(self.node) {
            Some(spare)
        } else {
            self.spare_node.set(Some(spare));
            None
        }
    }
}

/// What the current thread is polling.
struct Current {
    slots: RefCell<Slots>,
    /// A done scope's node that nothing else holds, let go of during the current task
    /// poll, for the next scope entered under the same parent in that poll (see
    /// [`recycle_node`]). Dropped when the poll ends, so that it keeps its parent alive no
    /// longer than the poll.
    spare_node: Cell<Option<Arc<Node>>>,
    /// The deadlines of the runner being polled (a task's, a root's: [`enter_task`]),
    /// moved in for its poll and back out after; made when a scope or a sleep first
    /// needs them. (`None` also while [`with_here`] lends them out.)
    timers: Cell<Option<Box<Timers>>>,
    /// The waker that runner was polled with, by address; null outside its poll. Only a
    /// scope or a sleep polled with this very waker keeps its deadline in `timers`: that
    /// runner's poll reaches it (timer invariant 1).
    owner_waker: Cell<*const Waker>,
    /// That runner's runtime, by address: code nested in it on another runtime (an
    /// [`enter`](crate::rt::enter) of another one) has another clock.
    owner_rt: Cell<usize>,
    /// A test run's virtual clock runs the code being polled: deadlines are re-armed
    /// exactly ([`with_exact_timers`]).
    exact_timers: Cell<bool>,
    /// The waker of the runner that installed the node (a task, a nursery,
    /// [`enter`](crate::rt::enter)), by address only: a scope polled with this very waker,
    /// from its parent's body, is polled whenever its parent is (see [`enter_node`]).
    waker: Cell<*const Waker>,
    /// While cancelled code is dropped (a task's future, [`drop_cancelled`]; a scope's
    /// or a nursery's body, [`drop_cancelled_body`]), the node of the context it is
    /// dropped in, by address: a hatchery wait under it would never complete once that
    /// node is cancelled.
    dropping: Cell<*const ()>,
    /// Once a deferred node is made (the code polled in the current scope asked for its
    /// context, and the deferred node is the current node), the caller's node it replaced
    /// as the current one: put back when the deferral is resolved.
    made: Cell<Option<Made>>,
}

struct Slots {
    /// The innermost scope of the task being polled; `None` outside hatchery.
    node: Option<Arc<Node>>,
    /// The runtime of the task being polled, valid while `node` is set.
    ///
    /// It stays behind after the poll (it is only read while `node` is set): a thread
    /// polls the tasks of one runtime, and keeping the handle saves every task poll a
    /// reference count on a line that every thread shares. A poll for another runtime
    /// swaps its own in and puts the old one back; [`Enter`] clears it when it goes.
    /// Changed only through [`Slots::replace_rt`], which keeps `rt_id`.
    rt: Option<Arc<dyn Runtime>>,
    /// `rt`'s identity ([`runtime_id`]), zero without one: a poll tells whether its
    /// runtime is the one installed with one comparison.
    rt_id: usize,
}

impl Slots {
    /// Whether the runtime installed is the one whose identity is `id`.
    #[inline]
    fn has_runtime(&self, id: usize) -> bool {
        self.rt_id == id
    }

    /// Installs `rt` as the runtime, returning the one it replaces.
    fn replace_rt(&mut self, rt: Option<Arc<dyn Runtime>>) -> Option<Arc<dyn Runtime>> {
        self.rt_id = rt.as_ref().map_or(0, |rt| runtime_id(&**rt));
        std::mem::replace(&mut self.rt, rt)
    }
}

/// Lets go of a done scope's node: if nothing else holds it
/// ([`Node::recyclable`](crate::node::Node::recyclable)) and a task is being polled, it is
/// kept for the next scope entered under the same parent in this poll
/// ([`CtxRef::take_spare_node`]); a loop of timeouts then reuses one node, with no
/// allocation and no reference counts. The caller must know that the node's waker was
/// never registered.
pub(crate) fn recycle_node(node: Arc<Node>) {
    // Node invariant 10.
    if !node.recyclable() {
        return;
    }
    let mut node = Some(node);
    let mut old = None;
    let _ = CURRENT.try_with(|c| {
        if c.slots.try_borrow().is_ok_and(|s| s.node.is_some()) {
            old = c.spare_node.replace(node.take());
        }
    });
    // Outside the thread-local: a node's last reference may drop its parent's.
    drop(old);
    drop(node);
}

/// An identity of the calling thread, cheaper to read than `std::thread::current().id()`:
/// the address of its thread-local context (unique among running threads). Zero while
/// the thread's locals are being destroyed.
pub(crate) fn thread_key() -> usize {
    CURRENT
        .try_with(|c| c as *const Current as usize)
        .unwrap_or(0)
}

/// An identity of the calling thread for [`Graves`](crate::task::Graves), cheaper still
/// than [`thread_key`]: the address of a thread-local without a destructor, which needs
/// no check of its state (so it is never zero, also while the thread's locals are being
/// destroyed), unique among running threads.
#[inline(always)]
pub(crate) fn thread_mark() -> usize {
    MARK.with(|m| std::ptr::from_ref(m) as usize)
}

thread_local! {
    /// Its address is the thread's mark ([`thread_mark`]); its value is never read.
    static MARK: u8 = const { 0 };

    /// The node, by address, that the runner being polled found not cancelled just
    /// before this poll, or zero (see [`mark_checked`]). No destructor: a plain load and
    /// store.
    static CHECKED: Cell<usize> = const { Cell::new(0) };

    /// While a runner polls code in the current scope with its node deferred
    /// ([`Deferred`]), the address of that scope's node; zero otherwise. A thread-local
    /// of its own, with no destructor: reading and writing it is a plain load and store,
    /// and every hatchery context access reads it.
    static DEFERRED: Cell<usize> = const { Cell::new(0) };

    /// The deadline, as its word (`node::deadline_word`), that the innermost deferred
    /// node is made with, while that is a scope's ([`Deferred::defer_scope`]) and not
    /// made yet: taken where it is made, and put back by the scope's resolve. `None`
    /// otherwise: a fixed group's node has no deadline.
    static DEFERRED_DUE: Cell<Option<i64>> = const { Cell::new(None) };

    static CURRENT: Current = const {
        Current {
            slots: RefCell::new(Slots {
                node: None,
                rt: None,
                rt_id: 0,
            }),
            spare_node: Cell::new(None),
            timers: Cell::new(None),
            owner_waker: Cell::new(std::ptr::null()),
            owner_rt: Cell::new(0),
            exact_timers: Cell::new(false),
            waker: Cell::new(std::ptr::null()),
            dropping: Cell::new(std::ptr::null()),
            made: Cell::new(None),
        }
    };
}

pub(crate) const NO_RUNTIME: &str = "hatchery: no runtime in this context. \
Run your code inside `hatchery_tokio::run(..)`, `hatchery_smol::run(..)` or, under \
simulation, `hatchery_sim::run(..)`, or, in an \
application that already runs an executor, wrap the future once with \
`hatchery_tokio::enter(..)` or `hatchery_smol::enter(..)`. Futures spawned directly on \
the executor (`tokio::spawn`, `smol::spawn`) are outside hatchery: spawn them into a \
nursery instead.";

/// The current time on the clock of the runtime of the code being polled; panics with
/// instructions outside hatchery.
pub(crate) fn now() -> Instant {
    with_current(|c| c.expect(NO_RUNTIME).rt.now())
}

/// The current context; panics with instructions if there is none.
pub(crate) fn current() -> Ctx {
    try_current().expect(NO_RUNTIME)
}

pub(crate) fn try_current() -> Option<Ctx> {
    with_current(|c| {
        c.map(|c| Ctx {
            rt: c.rt.clone(),
            node: c.node.clone(),
        })
    })
}

/// Calls `f` with the current context, if any, without cloning it.
///
/// Inside code whose runner [deferred](Deferred) its node, this first makes that node
/// and installs it: whatever `f` keeps of the context (a scope's parent, a hold) is then
/// the runner's.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<CtxRef<'_>>) -> R) -> R {
    CURRENT.with(|c| {
        if DEFERRED.get() != 0 {
            make_deferred_node(c);
        }
        let slots = c.slots.borrow();
        f(match (&slots.node, &slots.rt) {
            (Some(node), Some(rt)) => Some(CtxRef {
                rt,
                node,
                spare_node: &c.spare_node,
            }),
            _ => None,
        })
    })
}

/// For a checkpoint, in one access to the thread's context: `Err(())` if the innermost
/// scope is cancelled (as [`current_cancelled`] tells); otherwise `f` called with the
/// current node, the runtime, and the deadline word of the scope around the code being
/// polled whose node is deferred and not made yet ([`Deferred::defer_scope`]), if any,
/// without making that node (as [`with_current`] would). `Ok(None)` outside a hatchery
/// context. `time::passed_deadline` reads the deadlines around the code with it.
#[inline]
pub(crate) fn unless_cancelled<R>(
    f: impl FnOnce(&Node, &dyn Runtime, Option<i64>) -> R,
) -> Result<Option<R>, ()> {
    CURRENT.with(|c| {
        let slots = c.slots.borrow();
        let Some(node) = slots.node.as_ref() else {
            return Ok(None);
        };
        if node.is_cancelled_here() {
            if in_cancelled_drop(c, node) {
                drop(slots);
                waited_in_drop();
            }
            return Err(());
        }
        let Some(rt) = slots.rt.as_ref() else {
            return Ok(None);
        };
        // The deferral's deadline is the innermost scope's if the deferral began in the
        // current node (not in a scope installed inside the deferred code since).
        let deferred = DEFERRED.get();
        let due = match deferred != 0 && deferred == Arc::as_ptr(node).cast::<u8>() as usize {
            true => DEFERRED_DUE.get(),
            false => None,
        };
        Ok(Some(f(node, &**rt, due)))
    })
}

/// Whether the innermost scope of the current task is cancelled. Every hatchery wait
/// asks this first, and stays pending if so.
pub(crate) fn current_cancelled() -> bool {
    CURRENT.with(|c| {
        let slots = c.slots.borrow();
        let Some(node) = slots.node.as_ref().filter(|n| n.is_cancelled_here()) else {
            return false;
        };
        if in_cancelled_drop(c, node) {
            drop(slots);
            waited_in_drop();
        }
        true
    })
}

/// Whether cancelled `node`'s code is polled where code it cancelled is dropped.
#[inline]
fn in_cancelled_drop(c: &Current, node: &Node) -> bool {
    !c.dropping.get().is_null() && node.cancelled_from(c.dropping.get())
}

/// A hatchery wait polled in the drop of cancelled code, under the cancellation (see
/// [`current_cancelled`]).
#[cold]
#[inline(never)]
fn waited_in_drop() -> ! {
    panic!(
        "hatchery: a hatchery wait polled in a `Drop` that runs as cancelled code is \
         dropped (a cancelled task's future, or a cancelled scope's body): it can never \
         complete (the code around it is cancelled), and blocking on it would hang the \
         thread. Spawn async cleanup into a nursery instead (`Nursery::try_spawn`), or use \
         `finally`"
    );
}

/// Called just before the first poll of a spawned task whose runner has just found its
/// root not cancelled (its own flag, and its nursery's [`Node::is_cancelled`], which walks
/// up the tree): a sleep first polled in the root's own context during that poll takes
/// that answer rather than walk the tree again ([`with_here_unless_cancelled`]). The mark
/// goes when the poll's context is put back ([`Entered::restore`], also on unwind), and
/// with that of any runner polled inside it (which then only costs a walk): a stale mark
/// could name another node at the same address.
#[inline(always)]
pub(crate) fn mark_checked(root: &Node) {
    let at = std::ptr::from_ref(root).cast::<()>() as usize;
    CHECKED.with(|c| c.set(at));
}

/// For a sleep's first poll, which stays pending whatever it finds: [`current_cancelled`]
/// and then, if not cancelled, [`with_here`] (without `make`), in one access to the
/// thread's context. `Err(())` if cancelled.
///
/// Where the innermost scope is the root of the task being polled and its runner found
/// it not cancelled just before this poll ([`mark_checked`]), that answer is taken without
/// a walk up the tree. It may be stale: a cancellation from another thread, or from the
/// task's own code earlier in this poll, may have come since. That is as if it had come
/// just after this check, which it always can: the sleep arms its timer and stays
/// pending, and the runner's checks after the poll (the link into the nursery's list,
/// node invariant 5, then `should_drop`) find the cancellation and drop the future, or
/// its wake-up comes after them. The answer is not taken for a scope inside the task (its
/// own deadline or `cancel` may have come in this poll), nor for a sleep's later polls,
/// which may complete.
pub(crate) fn with_here_unless_cancelled<R>(
    waker: &Waker,
    f: impl FnOnce(Here<'_>) -> R,
) -> Result<R, ()> {
    CURRENT.with(|c| {
        let slots = c.slots.borrow();
        if let Some(node) = &slots.node {
            let checked = CHECKED.with(Cell::get) == Arc::as_ptr(node).cast::<()>() as usize;
            if !checked && node.is_cancelled() {
                if in_cancelled_drop(c, node) {
                    drop(slots);
                    waited_in_drop();
                }
                return Err(());
            }
        }
        Ok(here_in(c, &slots, waker, false, f))
    })
}

/// For a scope whose node is deferred (`scope::engine`), after its body's poll: [`with_here`]
/// (the deadlines made if need be), unless the current node, the scope's parent, is
/// cancelled: then `None`, and `f` is not called.
pub(crate) fn with_here_unless_cancelled_here<R>(
    waker: &Waker,
    f: impl FnOnce(Here<'_>) -> R,
) -> Option<R> {
    CURRENT.with(|c| {
        let slots = c.slots.borrow();
        if slots.node.as_ref().is_some_and(|n| n.is_cancelled_here()) {
            return None;
        }
        Some(here_in(c, &slots, waker, true, f))
    })
}

/// Cancels the scopes around the code being polled whose deadline is not later than
/// `deadline`, which has just passed (up to the nearest shield, across nurseries; see
/// [`Node::cancel_deadlines_before`]). Whether one was.
#[cold]
pub(crate) fn cancel_deadlines_before(deadline: Instant) -> bool {
    let node = with_current(|c| c.map(|c| c.node.clone()));
    node.is_some_and(|node| node.cancel_deadlines_before(deadline))
}

/// Drops a cancelled task's future with `drop`, in the task's context (`slot` holds its
/// node), so that a `Drop` in it can read the clock or spawn; a hatchery wait polled
/// there, unless inside a shield, panics rather than stay pending for good (see
/// [`current_cancelled`]). Without a thread-local context any more (the thread is
/// exiting), just drops it.
pub(crate) fn drop_cancelled<R>(
    slot: &mut Option<Arc<Node>>,
    rt: &Arc<dyn Runtime>,
    waker: &Waker,
    drop: impl FnOnce() -> R,
) -> R {
    if thread_key() == 0 {
        return drop();
    }
    // Entered, the task's node is the current one, which marks the drop.
    enter_with(slot, rt, waker, || drop_cancelled_body(drop))
}

/// Drops the body of a cancelled scope or nursery with `drop`, in the current context
/// (the scope's parent): a hatchery wait polled in a `Drop` there panics, as in
/// [`drop_cancelled`], if that context is cancelled too, rather than stay pending for
/// good; one that can complete (the scope cancelled itself) works.
pub(crate) fn drop_cancelled_body<R>(drop: impl FnOnce() -> R) -> R {
    if thread_key() == 0 {
        return drop();
    }
    CURRENT.with(|c| {
        let node = c
            .slots
            .borrow()
            .node
            .as_ref()
            .map_or(std::ptr::null(), |n| Arc::as_ptr(n).cast::<()>());
        // The marker of the code around is put back after (see [`Current::dropping`]).
        let _reset = PutBack(&c.dropping, c.dropping.replace(node));
        drop()
    })
}

/// Puts a value back into a cell of the thread's context when it goes, also on unwind.
struct PutBack<'a, T: Copy>(&'a Cell<T>, T);

impl<T: Copy> Drop for PutBack<'_, T> {
    fn drop(&mut self) {
        self.0.set(self.1);
    }
}

/// Polls `f` with `node` (taken out of `slot`) as the current node and `rt` as the
/// runtime, moving the node into the thread-local and back (no reference counts change
/// when the thread last polled for the same runtime), and restoring the previous context
/// even on panic.
pub(crate) fn enter_with<R>(
    slot: &mut Option<Arc<Node>>,
    rt: &Arc<dyn Runtime>,
    waker: &Waker,
    f: impl FnOnce() -> R,
) -> R {
    poll_entered(slot, rt, runtime_id(&**rt), waker, (), f).0
}

/// Polls `f` as [`enter_with`] does, for a runner that the executor polls (a nursery's
/// task, a root): with its deadlines `timers` installed for the poll (see
/// [`crate::timer`]). Before the poll, the deadlines that are due fire; after it, the
/// runner's executor timer is armed for the earliest one.
#[inline(always)]
pub(crate) fn enter_task<R>(
    slot: &mut Option<Arc<Node>>,
    rt: &Arc<dyn Runtime>,
    waker: &Waker,
    timers: &mut TimerSlot,
    f: impl FnOnce() -> R,
) -> R {
    let runtime = &**rt;
    timers.fire(runtime);
    let owner = Owner {
        timers: &mut *timers,
        prev_waker: std::ptr::null(),
        prev_rt: 0,
    };
    let (out, exact) = poll_entered(slot, rt, runtime_id(runtime), waker, owner, f);
    timers.settle(runtime, waker, exact);
    out
}

/// Polls `f` with the node taken out of `slot`, the runtime `rt` (whose identity is
/// `rt_id`) and `waker` installed, and what `owner` installs besides, and puts back the
/// context around afterwards, also on unwind. Returns `f`'s output and whether deadlines
/// are re-armed exactly ([`with_exact_timers`]).
///
/// The thread-local is reached here, in a function generic over the runner's poll,
/// rather than in `Entered`'s methods: each runner's poll has accesses of its own,
/// which the compiler inlines into it (see [`Entered`]).
#[inline(always)]
fn poll_entered<O: Installed, R>(
    slot: &mut Option<Arc<Node>>,
    rt: &Arc<dyn Runtime>,
    rt_id: usize,
    waker: &Waker,
    mut owner: O,
    f: impl FnOnce() -> R,
) -> (R, bool) {
    let (mut entered, same_rt) = CURRENT.with(|c| {
        owner.install(c, rt_id, waker);
        Entered::install(c, slot, rt_id, waker, owner)
    });
    let unwind = OnUnwind(&mut entered);
    if !same_rt {
        unwind.0.switch_runtime(rt);
    }
    let out = f();
    let (spare, exact) = CURRENT.with(|c| (unwind.0.restore(c), c.exact_timers.get()));
    // Restored: the guard is not needed any more.
    std::mem::forget(unwind);
    entered.done(spare);
    (out, exact)
}

/// What a runner's poll installs in the thread-local ([`enter_with`], [`enter_task`]),
/// and what it replaced, put back after the poll ([`Entered::restore`], then
/// [`Entered::done`]), or on unwind ([`OnUnwind`]).
///
/// The runner's node is swapped with the thread-local's: while the runner is polled, its
/// slot holds the node of the code around (none, outside hatchery), and the swap back
/// puts each where it was. A task's deadlines are swapped the same way ([`Owner`]). So
/// entering and leaving drop no node and change no reference count, and the guard holds
/// nothing to drop but, inside a poll for another runtime, the runtime to put back.
///
/// This is every task poll's cost, so it is kept to the fields a poll sets and puts back,
/// with no call and no closure around the future's poll: installing and restoring each
/// reach the thread-local once, in code small enough for the compiler to inline into the
/// runner's poll, and what is rare (another runtime than the one the thread keeps, a
/// spare node to drop) is done out of line, after the thread-local access. What a task
/// installs besides is a type parameter (`O`), not an `Option`, so that each kind of
/// runner has code of its own, with no branch on it.
struct Entered<'a, O: Installed> {
    slot: &'a mut Option<Arc<Node>>,
    prev_waker: *const Waker,
    /// The other runtime that was installed before, to put back: only inside a poll for
    /// another runtime (see [`Slots::rt`]).
    prev_rt: Option<Arc<dyn Runtime>>,
    /// What the runner installed besides: a task's deadlines ([`Owner`]), or nothing.
    owner: O,
}

/// What a runner installs besides its node, runtime and waker, put back with them.
trait Installed {
    /// Installs it for a runner polled with `waker` on the runtime `rt_id`.
    fn install(&mut self, c: &Current, rt_id: usize, waker: &Waker);
    /// Puts back what [`install`](Installed::install) replaced.
    fn restore(&mut self, c: &Current);
}

impl Installed for () {
    #[inline(always)]
    fn install(&mut self, _: &Current, _: usize, _: &Waker) {}
    #[inline(always)]
    fn restore(&mut self, _: &Current) {}
}

/// The deadlines of a runner that the executor polls, installed for its poll, and what
/// they replaced (see [`Current::timers`]).
struct Owner<'a> {
    /// The runner's queue while it is not polled; during its poll, the one of the runner
    /// around (if any).
    timers: &'a mut TimerSlot,
    prev_waker: *const Waker,
    prev_rt: usize,
}

impl Installed for Owner<'_> {
    #[inline(always)]
    fn install(&mut self, c: &Current, rt_id: usize, waker: &Waker) {
        self.timers.swap(&c.timers);
        self.prev_waker = c.owner_waker.replace(waker);
        self.prev_rt = c.owner_rt.replace(rt_id);
    }

    #[inline(always)]
    fn restore(&mut self, c: &Current) {
        self.timers.swap(&c.timers);
        c.owner_waker.set(self.prev_waker);
        c.owner_rt.set(self.prev_rt);
    }
}

impl<'a, O: Installed> Entered<'a, O> {
    /// Installs a runner's node and waker, and `owner`. Also returns whether the runtime
    /// installed is the runner's (identity `rt_id`); if not, the caller installs it with
    /// [`switch_runtime`](Self::switch_runtime) before the poll.
    #[inline(always)]
    fn install(
        c: &Current,
        slot: &'a mut Option<Arc<Node>>,
        rt_id: usize,
        waker: &Waker,
        owner: O,
    ) -> (Self, bool) {
        let mut slots = c.slots.borrow_mut();
        std::mem::swap(&mut slots.node, slot);
        let same_rt = slots.has_runtime(rt_id);
        drop(slots);
        let entered = Entered {
            slot,
            prev_waker: c.waker.replace(waker),
            prev_rt: None,
            owner,
        };
        (entered, same_rt)
    }

    /// Installs `rt` as the thread's runtime for a poll whose runtime is not the one the
    /// thread keeps. Inside a poll for another runtime, the one it replaced is put back
    /// after the poll ([`done`](Self::done)); with no poll in progress, the thread keeps
    /// `rt` from now on (the last runtime it polled for), and lets go of the one it kept
    /// before.
    #[cold]
    #[inline(never)]
    fn switch_runtime(&mut self, rt: &Arc<dyn Runtime>) {
        // The runner's slot holds the node of the code around: with one, a poll is in
        // progress.
        let polling = self.slot.is_some();
        let old = CURRENT.with(|c| c.slots.borrow_mut().replace_rt(Some(rt.clone())));
        match polling {
            true => self.prev_rt = old,
            // Outside the borrow: it may be the last handle to a runtime.
            false => drop(old),
        }
    }

    /// Puts back what was installed, after the runner's poll (then [`done`](Self::done)),
    /// or on unwind. Returns the spare node the poll left ([`recycle_node`]), to be
    /// dropped outside the thread-local.
    #[inline(always)]
    fn restore(&mut self, c: &Current) -> Option<Arc<Node>> {
        // The first poll's mark (`mark_checked`) lasts for the poll only.
        CHECKED.with(|c| c.set(0));
        c.waker.set(self.prev_waker);
        self.owner.restore(c);
        std::mem::swap(&mut c.slots.borrow_mut().node, self.slot);
        // The poll is over: no spare node survives it.
        c.spare_node.take()
    }

    /// Once [`restore`](Self::restore) has put its fields back: puts back the runtime
    /// [`switch_runtime`](Self::switch_runtime) replaced, and drops the poll's spare node.
    #[inline(always)]
    fn done(&mut self, spare: Option<Arc<Node>>) {
        if self.prev_rt.is_some() || spare.is_some() {
            after_poll(self.prev_rt.take(), spare);
        }
    }
}

/// Puts back what a runner's poll installed ([`Entered`]) if the poll unwinds; forgotten
/// otherwise. A guard of its own, holding the installed state by reference: letting go
/// of it moves nothing.
struct OnUnwind<'e, 'a, O: Installed>(&'e mut Entered<'a, O>);

impl<O: Installed> Drop for OnUnwind<'_, '_, O> {
    /// The thread-local outlives every poll on its thread.
    fn drop(&mut self) {
        let spare = CURRENT.try_with(|c| self.0.restore(c)).ok().flatten();
        self.0.done(spare);
    }
}

/// What a poll leaves to put back or drop, rarely: the runtime that
/// [`Entered::switch_runtime`] replaced, and a spare node ([`recycle_node`]).
#[cold]
#[inline(never)]
fn after_poll(rt: Option<Arc<dyn Runtime>>, spare: Option<Arc<Node>>) {
    if let Some(rt) = rt {
        let ours = CURRENT.try_with(|c| c.slots.borrow_mut().replace_rt(Some(rt)));
        // Dropped outside the borrow: it may be the last handle to a runtime.
        drop(ours);
    }
    // Its last reference may drop its parent's.
    drop(spare);
}

/// Polls `f` with `rt` as the runtime of the current context, whose scope stays the
/// current one (an [`enter`](crate::rt::enter) nested in a hatchery context), and puts
/// the runtime back afterwards, even on panic.
fn with_runtime<R>(rt: &Arc<dyn Runtime>, f: impl FnOnce() -> R) -> R {
    struct Restore<'a> {
        current: &'a Current,
        prev: Option<Arc<dyn Runtime>>,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            if let Some(prev) = self.prev.take() {
                let ours = self.current.slots.borrow_mut().replace_rt(Some(prev));
                // Dropped outside the borrow: this may be the last handle to a runtime.
                drop(ours);
            }
        }
    }
    CURRENT.with(|current| {
        let prev = {
            let mut slots = current.slots.borrow_mut();
            match slots.has_runtime(runtime_id(&**rt)) {
                true => None,
                false => install(&mut slots, rt),
            }
        };
        let _restore = Restore { current, prev };
        f()
    })
}

/// Installs `rt` as the thread's runtime, returning the one it replaces.
#[cold]
fn install(slots: &mut Slots, rt: &Arc<dyn Runtime>) -> Option<Arc<dyn Runtime>> {
    slots.replace_rt(Some(rt.clone()))
}

/// Calls `f` with what a scope or a sleep polled with `waker` finds here: the deadlines
/// of the runner being polled if `waker` is that runner's (and the runtime its own), and
/// the runtime (see [`Here`]). With `make`, the runner's deadlines are made if it has
/// none yet; without, a runner with none offers none (see [`crate::timer`]: a sleep
/// alone in its task keeps a timer of its own).
pub(crate) fn with_here<R>(waker: &Waker, make: bool, f: impl FnOnce(Here<'_>) -> R) -> R {
    CURRENT.with(|c| here_in(c, &c.slots.borrow(), waker, make, f))
}

/// [`with_here`] with the thread's context reached, and its slots borrowed.
#[inline(always)]
fn here_in<R>(
    c: &Current,
    slots: &Slots,
    waker: &Waker,
    make: bool,
    f: impl FnOnce(Here<'_>) -> R,
) -> R {
    /// Puts the deadlines back where they were lent from, also on unwind.
    struct Lent<'a> {
        cell: &'a Cell<Option<Box<Timers>>>,
        timers: Option<Box<Timers>>,
    }
    impl Drop for Lent<'_> {
        #[inline]
        fn drop(&mut self) {
            self.cell.set(self.timers.take());
        }
    }
    // Measured: this body without its block, `rt` read as `slots.node.as_ref().and(..)`,
    // counts 0.25% more instructions in move_on_after/tokio-ct.
    {
        let rt = match (&slots.node, &slots.rt) {
            (Some(_), Some(rt)) => Some(rt),
            _ => None,
        };
        let owned = rt.is_some_and(|rt| {
            std::ptr::eq(c.owner_waker.get(), waker) && c.owner_rt.get() == runtime_id(&**rt)
        });
        if !owned {
            return f(Here { owner: None, rt });
        }
        let timers = match c.timers.take() {
            Some(timers) => timers,
            None if make => Timers::new(),
            None => return f(Here { owner: None, rt }),
        };
        let mut lent = Lent {
            cell: &c.timers,
            timers: Some(timers),
        };
        f(Here {
            owner: lent.timers.as_deref_mut(),
            rt,
        })
    }
}

/// Lets go of what a scope or a sleep has armed ([`Reg`]): takes its entry out of the
/// deadlines of the runner being polled if it is there (else it stays behind, stale:
/// timer invariant 2), or drops its timer of its own, after the thread's context is let
/// go of (that drop runs the executor's code).
#[inline]
pub(crate) fn disarm(reg: &mut Reg) {
    if reg.is_armed() {
        let released = match CURRENT.try_with(|c| {
            let mut timers = c.timers.take();
            let released = reg.clear(timers.as_deref_mut());
            // What it replaces is the `None` just left there: no drop glue to call.
            std::mem::forget(c.timers.replace(timers));
            released
        }) {
            Ok(released) => released,
            // The thread is exiting: no runner is polled.
            Err(_) => reg.clear(None),
        };
        released.release();
    }
}

/// Runs `f` with deadlines re-armed exactly (`exact`) or lazily, for the code that a
/// test run polls: on a virtual clock, a timer left armed for an instant nobody waits
/// for any more would make the clock jump there (rule D11).
pub(crate) fn with_exact_timers<R>(exact: bool, f: impl FnOnce() -> R) -> R {
    CURRENT.with(|c| {
        let _reset = PutBack(&c.exact_timers, c.exact_timers.replace(exact));
        f()
    })
}

/// The runtime for an [`enter`](crate::rt::enter) of `rt` nested in a hatchery context,
/// if not `rt` itself: what the current runtime makes of it ([`Runtime::nested`]; inside
/// a test run, `rt`'s executor under the run's clock and task tracking, which the test
/// would otherwise lose there).
#[cold]
fn nested_runtime(rt: &Arc<dyn Runtime>) -> Option<Arc<dyn Runtime>> {
    let current = current_runtime()?;
    // By address only (`runtime_id`): two vtables for one type may differ between
    // codegen units.
    match runtime_id(&*current) == runtime_id(&**rt) {
        true => None,
        false => Some(current.nested(rt.clone())),
    }
}

/// Lets go of the runtime handle the thread keeps after polling, if it is `rt`'s and
/// nothing is being polled (called when a root made by [`enter`](crate::rt::enter) goes).
fn forget_runtime(rt: &Arc<dyn Runtime>) {
    let kept = CURRENT.try_with(|c| {
        let mut slots = c.slots.try_borrow_mut().ok()?;
        match slots.node.is_none() && slots.has_runtime(runtime_id(&**rt)) {
            true => slots.replace_rt(None),
            false => None,
        }
    });
    drop(kept);
}

/// Polls `f` with `node` as the innermost scope of the current context, swapping it in
/// and back out (no reference counts change), even on panic.
///
/// Also returns whether the scope is polled directly by its parent's body, with the
/// waker of the runner that polls the parent (`waker` is the scope's): then that
/// runner's wake-up reaches the scope, and the scope need not be in its parent's child
/// list. The waker is compared by address: a combinator that polls its futures with
/// wakers of its own hands them other `Waker` values (a false "no" only costs a link).
///
/// # Panics
///
/// Outside a hatchery context.
pub(crate) fn enter_node<R>(
    node: &mut Arc<Node>,
    waker: &Waker,
    f: impl FnOnce() -> R,
) -> (R, bool) {
    struct Restore<'a> {
        current: &'a Current,
        node: &'a mut Arc<Node>,
    }
    impl Drop for Restore<'_> {
        #[inline]
        fn drop(&mut self) {
            swap_node(self.current, self.node);
        }
    }
    // One thread-local access for the whole poll.
    CURRENT.with(|current| {
        swap_node(current, node);
        let restore = Restore { current, node };
        let out = f();
        drop(restore);
        let by_parent = polled_by_parent_in(current, node, waker);
        (out, by_parent)
    })
}

/// Installs `node` as the innermost scope of the current context, swapping it with the
/// one installed (no reference counts change), for a scope future that polls its body
/// in its own frame: [`node_left`] swaps it back. Unlike [`enter_node`], no closure and
/// no frame of this function stays on the stack while the body is polled, which recursive
/// code with a scope per level feels at every level. The caller swaps back on unwind too.
///
/// # Panics
///
/// Outside a hatchery context.
#[inline(never)]
pub(crate) fn node_entered(node: &mut Arc<Node>) {
    CURRENT.with(|current| swap_node(current, node));
}

/// Swaps back what [`node_entered`] installed, and returns whether the scope was polled
/// directly by its parent's body, with the waker of the runner that polls the parent (as
/// [`enter_node`] does).
#[inline(never)]
pub(crate) fn node_left(node: &mut Arc<Node>, waker: &Waker) -> bool {
    CURRENT.with(|current| {
        swap_node(current, node);
        polled_by_parent_in(current, node, waker)
    })
}

/// Swaps back what [`node_entered`] installed, on unwind (the thread may be exiting).
#[cold]
#[inline(never)]
pub(crate) fn node_left_on_unwind(node: &mut Arc<Node>) {
    let _ = CURRENT.try_with(|current| swap_node(current, node));
}

/// Whether a scope `node`, whose parent is the current node of `current`, is polled with
/// `waker` by the runner of that parent: then the runner's wake-up reaches it, and it need
/// not be in its parent's child list. The one check behind [`enter_node`], [`node_left`]
/// and [`polled_by_parent`].
#[inline]
fn polled_by_parent_in(current: &Current, node: &Node, waker: &Waker) -> bool {
    std::ptr::eq(current.waker.get(), waker)
        && current
            .slots
            .borrow()
            .node
            .as_ref()
            .is_some_and(|caller| node.is_child_of(caller))
}

/// Whether a scope `node`, whose parent is the current node, is polled with `waker` by
/// the runner of that parent (see [`enter_node`], which tells the same of a scope being
/// polled).
pub(crate) fn polled_by_parent(node: &Node, waker: &Waker) -> bool {
    CURRENT.with(|current| polled_by_parent_in(current, node, waker))
}

#[inline]
fn swap_node(current: &Current, node: &mut Arc<Node>) {
    let mut slots = current.slots.borrow_mut();
    let installed = slots.node.as_mut().expect(NO_RUNTIME);
    std::mem::swap(installed, node);
}
