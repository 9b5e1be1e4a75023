//! The cancel-scope tree.
//!
//! Every cancel scope, every nursery and every task hatchery runs owns one [`Node`]. Nodes
//! form a tree through parent links (child to parent, strong) and child lists (parent to
//! child, weak). Cancelling a node marks its linked subtree as cancelled, stopping at
//! shields, and wakes every node's runner so that it can drop its body at its current
//! suspension point.
//!
//! Not every node is in its parent's child list. Nurseries are (their tasks run
//! elsewhere), and so is every task once it first suspends, or opens a nursery or polls
//! a `start` before that (a `start`ed task from its first poll on). A scope is linked
//! only when its parent's runner would not poll it (when it is polled through a
//! combinator with wakers of its own, or from another task:
//! [`enter_node`](crate::context::enter_node)), or when a nursery is opened or a `start`
//! first polled inside it (their tasks run elsewhere). Any other scope is polled
//! whenever its parent is, so the wake-up of the runner above reaches it, and it takes
//! on its ancestors' cancellation on each poll ([`Node::refresh`]). Entering and leaving
//! such a scope takes no lock.
//!
//! Two kinds of state live here:
//!
//! * `cancelled`: a flag set when the node is cancelled itself (it has a [`Reason`]) or its
//!   cancellation reached it from an ancestor. It only ever goes from `false` to `true`.
//!   The *effective* state ([`Node::is_cancelled`]) also reads the flags of the
//!   ancestors within the node's task, up to the nearest shield, since an unlinked
//!   scope's flag lags until its next poll.
//! * `holds`: how many things inside this node, in the same task, must not be dropped
//!   yet: open nurseries (they first drain their children), active shields, `finally`
//!   futures until their cleanup is done, and pending `start` calls, each counted up to
//!   the task's root or the nearest shield. A cancelled runner drops its body only when
//!   its node has no holds.
//!
//! # Invariants
//!
//! These hold at all times, except inside the critical section (under the lock named)
//! that restores one. The code that relies on one cites it (`// Invariant 3:`).
//!
//! 1. **Flags only rise.** `cancelled`, `caught`, `has_children` and `finished` go from
//!    `false` to `true`, never back (so do the bits of a task's root that share
//!    `caught`'s byte, [`HANDLE_GONE`] and [`RESULT_PUT`] of its handle (the handle
//!    protocol of `task::handle`) and [`KEEP_CLAIMED`], [`KEPT`] and [`KEPT_BOXED`] of
//!    its slot for the executor's handle (`task::raw`), set by one read-modify-write
//!    each), and `reason` is set once: the first reason sticks (a compare-exchange from
//!    none). The one exception is a done scope's
//!    node entered again by a new scope ([`Node::reenter`]), which nobody else can see
//!    (invariant 10).
//! 2. **One key, one entry.** A node's `key` is `NO_KEY` (in no child list: never linked,
//!    or it left by itself), a slot key below `DROPPED_KEY` (its weak reference is in that
//!    slot of its parent's list), or `DROPPED_KEY` (its parent's cancellation, or
//!    [`Node::reparent`], took it out). A node gets a slot key only under its parent's
//!    lock, as its entry goes in; it loses it through one atomic exchange, its own
//!    [`Node::detach`] or, under the parent's lock, the cancellation walk, `take_out` or
//!    `reparent`; the one that wins the exchange removes the entry, and nobody else.
//! 3. **Marked before it leaves.** A node leaves its parent's list through the parent's
//!    cancellation only once it is marked (under the parent's lock), and, if it has
//!    children, once its whole subtree is marked too (it leaves after the walk). So a walk
//!    that finds a child gone knows its subtree is marked, and one that finds a child
//!    still listed walks it, marked or not: when [`Node::cancel`] returns, the subtree is
//!    marked, also while another thread marks part of it.
//! 4. **A cancelled list keeps only shields.** When the cancellation of a node has
//!    returned, its list holds shields only: the walk takes the other children out, and a
//!    child that links into a cancelled parent takes itself out again, with the
//!    cancellation (invariant 5).
//! 5. **Linked or told.** A child joining a list sets the parent's `has_children` (under
//!    the parent's lock), then reads the parent's flags; a cancellation sets the flag,
//!    then reads `has_children`; both sequentially consistent. So either the walk finds
//!    the new child in the list, or the child finds the parent cancelled and takes the
//!    cancellation itself ([`Node::inherit`]): never neither.
//! 6. **Fixed parents.** The parent link of a scope, a nursery or a spawned task is set
//!    once, when it is entered or spawned, before anyone else follows it, and never
//!    changes, so it is read without a lock ([`Node::fixed_parent`]); so is the shield
//!    flag, fixed before entry. Only the root of a `start`ed task moves (its
//!    [`MovableLink`], in its ext), under its own mutex, and never once it or its old
//!    parent is cancelled ([`Node::reparent`] refuses then). Parent links are strong and
//!    child lists weak, so the tree holds no reference cycle.
//! 7. **Effective cancellation.** A node is cancelled in effect when its own flag is set,
//!    or the flag of an ancestor within its task, up to the nearest shield
//!    ([`Node::is_cancelled`]; an unlinked scope's own flag lags until
//!    [`Node::refresh`]). The walk up stops at a shield and at a task root in its
//!    parent's list (the parent's cancellation sets that root's flag, invariants 3 and
//!    5), and skips the flags of finished nodes (invariant 9).
//! 8. **Holds are released where they were counted.** A [`Hold`] counts one on its node
//!    and on every ancestor up to the task's root or the nearest shield, and releases the
//!    same nodes: the walk follows fixed links only (invariant 6). A runner drops its
//!    cancelled body only when its node has no holds, and the release that takes a marked
//!    node to none wakes its runner. The release (the decrement, then the read of the
//!    flag) and the runner's check after registering its waker (the read of the count)
//!    are sequentially consistent, like the cancellation's mark: else the release could
//!    miss a mark that the runner saw, while the runner missed the release.
//! 9. **A finished node is inert.** Once [`Node::finish`]ed, a node cancels nothing more
//!    (`cancel` only records its reason), catches nothing, and its flag no longer reaches
//!    the nodes below it.
//! 10. **Reuse only unseen.** A done scope's node is entered again ([`Node::reenter`])
//!     only when nothing else can see it ([`Node::recyclable`]: the last strong
//!     reference, no weak one, no list entry, never a child, no holds, and a waker never
//!     registered), so its plain stores need no ordering.
//! 11. **A far deadline lives under the lock.** The deadline word says `FAR` only when the
//!     instant is kept under the node's lock, stored there first, under the same lock.
//!     `deadline_set` is set under the lock with the deadline a handle sets, and a
//!     timeout stored on entry checks it under that lock, so it never overwrites a
//!     handle's deadline.
//!
//! The races between these handshakes are model-checked with loom (`loom.rs` beside this
//! file, built with `--cfg hatchery_loom`); the transitions one at a time are unit-tested
//! in `tests.rs`.
//!
//! # Deadlock safety
//!
//! The locks are each node's `inner` lock (its child list and a far deadline, and beside
//! it what it guards too: its runner's waker, written under it and compared without it,
//! `waker.rs`, and a task's result slot, [`Node::with_lock`]) and the
//! mutex of a movable parent link ([`MovableLink`], the root of a `start`ed task).
//!
//! 1. **One node lock at a time.** No thread takes a node's `inner` lock while it holds
//!    another's. Walks over the tree visit one node at a time, and what they read under
//!    a lock (flags, keys, fixed parent links, invariant 6) needs no other lock.
//! 2. **Movable link, then node.** A movable link's mutex may be held while taking one
//!    `inner` lock at a time (the old or the new parent's, in [`Node::link`] and
//!    [`Node::reparent`], or a parent's while a node dropped there leaves its list),
//!    never the other way round, and never two movable mutexes at once.
//! 3. **Nothing foreign under a node lock.** Under an `inner` lock no waker is woken,
//!    cloned or dropped, no user code runs, and no node's last strong reference is
//!    dropped (a node's `Drop` takes its parent's lock to leave its list, rule 1): what
//!    must be woken or dropped is moved out, and handled once the lock is released. So a
//!    node's own waker is woken with no lock held ([`Node::wake`]: every caller holds
//!    none, so taking the node's lock for it keeps rule 1). (A weak reference may be
//!    dropped there: that frees memory, and runs no `Drop` of a node.)

use std::any::Any;
use std::borrow::Cow;
use std::panic::Location;
use std::sync::{Arc, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use slab::Slab;

use self::waker::WakerSlot;

use self::sync::{
    fence, AtomicBool, AtomicI64, AtomicU32, AtomicU8, Mutex, MutexGuard, OnceLock, Ordering,
    ReadMut,
};

#[cfg(all(test, hatchery_loom))]
pub(crate) mod loom;
pub(crate) mod sync;
#[cfg(all(test, not(hatchery_loom)))]
mod tests;
#[allow(unsafe_code)]
mod waker;

/// Why a node was cancelled itself: its own `cancel()`, its deadline, or a failure of one
/// of its tasks. The first reason sticks; until then a node has none.
///
/// Kept in one atomic byte ([`Reason::encode`]), zero for "none". What more a reason
/// says (a message, where `cancel` was called, which task failed) is a [`Detail`], kept
/// under the node's lock and boxed only when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Reason {
    /// An explicit `cancel()` of a scope's or a task's handle.
    Explicit = 1,
    /// Its deadline passed.
    Deadline = 2,
    /// A task of the nursery failed or panicked.
    Failure = 3,
    /// The nursery's own `cancel()`.
    Nursery = 4,
    /// A future dropped from outside hatchery cancelling what it started.
    Dropped = 5,
}

/// What a reason says besides its kind, kept with the node that was cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Detail {
    /// Where `cancel` was called, and the message it was given.
    Said {
        at: &'static Location<'static>,
        message: Option<Cow<'static, str>>,
    },
    /// Where the task that failed was spawned and its name (`None`: the nursery's
    /// body), and whether it panicked.
    Failed {
        task: Option<&'static Location<'static>>,
        name: Option<Cow<'static, str>>,
        panicked: bool,
    },
}

/// The byte of "no reason": not cancelled itself.
const NO_REASON: u8 = 0;

impl Reason {
    /// The reason's byte (never [`NO_REASON`]).
    fn encode(self) -> u8 {
        self as u8
    }

    /// The reason a byte stands for.
    fn decode(byte: u8) -> Option<Reason> {
        match byte {
            NO_REASON => None,
            1 => Some(Reason::Explicit),
            2 => Some(Reason::Deadline),
            3 => Some(Reason::Failure),
            4 => Some(Reason::Nursery),
            5 => Some(Reason::Dropped),
            _ => unreachable!("hatchery: internal error: no reason has the byte {byte}"),
        }
    }
}

/// The `key` of a node that is in no child list.
const NO_KEY: u32 = u32::MAX;

/// The bit of `caught` that says a scope or nursery caught its cancellation.
const CAUGHT: u8 = 1;
/// The bit of a task root's `caught` byte that says its handle is gone (see
/// [`Node::let_go_handle`]).
const HANDLE_GONE: u8 = 2;
/// The bit of a task root's `caught` byte that says the task put its result for its
/// handle (see [`Node::result_put`]).
const RESULT_PUT: u8 = 4;
/// The bit of a task root's `caught` byte that says a thread claimed the task's slot for
/// the executor's handle, to fill it (see [`KeepBits`]).
const KEEP_CLAIMED: u8 = 8;
/// The bit of a task root's `caught` byte that says the task's slot for the executor's
/// handle holds one, moved in before the bit was set (see [`KeepBits`]).
const KEPT: u8 = 16;
/// The same, for a handle that the slot holds in a box of its own.
const KEPT_BOXED: u8 = 32;
/// The `key` of a node that its parent's cancellation took out of the child list (see
/// [`Node::cancel_children`]): in no child list, but linked before. Keys of a list are
/// below it.
const DROPPED_KEY: u32 = u32::MAX - 1;

/// What a node may carry besides its scope state (see [`Node::ext`]).
pub(crate) type Ext = dyn Tag;

/// What a node carries besides its scope state: reachable as `Any`, and saying what the
/// node is and is called, for the task tree
/// ([`diagnostics::tree`](crate::diagnostics::tree)). Read only when someone asks.
pub(crate) trait Tag: Send + Sync {
    /// The ext as `Any`, for the exts that are `'static` and asked for by type
    /// ([`Node::ext_ref`]): a group's tag, a scope's. (A polled child's cell may borrow:
    /// it is reached through this trait's methods only.)
    fn as_any(&self) -> Option<&dyn Any> {
        None
    }

    /// Wakes the runner of a node that is its own waker: a polled child's node, which
    /// queues the child with its group (`child::cell::Queued`). Nothing for every other
    /// node.
    fn wake(&self) {}

    /// What the node is and is called (`None`: a scope without a name or a handle, a
    /// subgroup, or a run's root).
    fn label(&self) -> Option<Labelled<'_>> {
        None
    }

    /// The parent link of a `start`ed task's root, which can move
    /// ([`Node::reparent`]): kept here, in what only such a root carries, so that every
    /// other node's link is a plain `Option<Arc<Node>>` (16 bytes, where an enum of the
    /// three kinds of link took 32 in every node). `None` for every other node.
    fn movable_link(&self) -> Option<&MovableLink> {
        None
    }

    /// The parent link of a scope that may be entered while a handle can see it (so
    /// that it is set through a shared reference): kept here for the same reason, in
    /// what only such a scope carries. `None` for every other node.
    fn shared_link(&self) -> Option<&SharedLink> {
        None
    }

    /// [`shared_link`](Tag::shared_link), through exclusive access (a node's drop).
    fn shared_link_mut(&mut self) -> Option<&mut SharedLink> {
        None
    }

    /// The deadline of a node that can have one, a scope's: kept here, in what only a
    /// scope carries, so that the nodes that never have one (a task's root, a nursery's,
    /// a polled child's) do not carry its word (8 bytes of every child). `None` for
    /// every other node, whose deadline is none.
    fn deadline(&self) -> Option<&AtomicDeadline> {
        None
    }

    /// Drops the executor's handle that a task's ext keeps (`task::raw::KeepSlot`), when
    /// its node says one was kept ([`KEPT`], or [`KEPT_BOXED`]: `boxed`): called by the
    /// node's drop, with exclusive access, before the ext's own fields drop. Nothing for
    /// every other node.
    fn drop_kept(&mut self, _boxed: bool) {}
}

/// The parent link of a scope entered while a handle could see it: set once, at entry,
/// through a shared reference (invariant 6), in the scope's ext ([`Tag::shared_link`]).
#[derive(Default)]
pub(crate) struct SharedLink(OnceLock<Arc<Node>>);

/// A shared link with a deadline is the ext of a scope a handle can see, as the tree's
/// unit tests and loom models make one.
#[cfg(test)]
impl Tag for (SharedLink, AtomicDeadline) {
    fn shared_link(&self) -> Option<&SharedLink> {
        Some(&self.0)
    }

    fn shared_link_mut(&mut self) -> Option<&mut SharedLink> {
        Some(&mut self.0)
    }

    fn deadline(&self) -> Option<&AtomicDeadline> {
        Some(&self.1)
    }
}

/// A shared link alone is an ext too (the tree's unit tests and loom models).
#[cfg(test)]
impl Tag for SharedLink {
    fn shared_link(&self) -> Option<&SharedLink> {
        Some(self)
    }

    fn shared_link_mut(&mut self) -> Option<&mut SharedLink> {
        Some(self)
    }
}

/// The parent link of a root that `start` may move: under its own mutex (deadlock
/// safety 2), in the root's ext ([`Tag::movable_link`]).
#[derive(Default)]
pub(crate) struct MovableLink(Mutex<Option<Arc<Node>>>);

impl MovableLink {
    fn lock(&self) -> MutexGuard<'_, Option<Arc<Node>>> {
        // No user code runs under this lock.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A movable link alone is an ext too: a root with nothing else to carry (the tree's
/// unit tests and loom models).
#[cfg(test)]
impl Tag for MovableLink {
    fn movable_link(&self) -> Option<&MovableLink> {
        Some(self)
    }
}

impl Tag for () {}

/// A deadline alone is the ext of a scope's node that nothing else can see
/// ([`Node::entered`]).
impl Tag for AtomicDeadline {
    fn deadline(&self) -> Option<&AtomicDeadline> {
        Some(self)
    }
}

/// What a labelled node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Task,
    Nursery,
    Scope,
    /// A polled child: a child of a polled nursery or combinator, polled by its parent's
    /// task.
    Polled,
}

/// What a node says it is ([`Tag::label`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Labelled<'a> {
    pub(crate) kind: Kind,
    pub(crate) site: Option<&'static Location<'static>>,
    pub(crate) name: Option<&'a str>,
    /// When the named work began (only named work reads the clock for it).
    pub(crate) since: Option<Instant>,
}

/// A scope of the tree. `Node` (with the default `X`) is the type-erased node every
/// scope, nursery and task shares; a task allocates its node together with its own state
/// as `Node<Cell<TaskBody<..>>>`, one allocation that coerces to `Node`.
pub(crate) struct Node<X: ?Sized + Tag = Ext> {
    // Fields are laid out in the order written (the tail `ext` may be unsized): largest
    // alignment first, so that no padding is wasted in every task's allocation.
    /// The parent link, set once with exclusive access (invariant 6), but for the rare
    /// kinds of [`Link`] that keep theirs in the ext.
    parent: Option<Arc<Node>>,
    /// The child list, a far deadline and what a reason said; it guards `waker` too.
    inner: Mutex<Inner>,
    /// The waker of the node's runner, registered last ([`Node::register`]); taken out
    /// to be woken after the lock ([`Node::wake`]). Written under `inner`'s lock only,
    /// and read without it only to compare ([`WakerSlot::holds`]).
    waker: WakerSlot,
    holds: AtomicU32,
    /// This node's key in its parent's child list.
    key: AtomicU32,
    /// Shields stop cancellation coming from ancestors.
    shield: AtomicBool,
    /// Whether this is a task's root, and how it holds its parent link. Task roots end
    /// the walk of holds: holds never cross a task boundary.
    link: Link,
    cancelled: AtomicBool,
    reason: AtomicU8,
    /// [`CAUGHT`], for a scope or nursery; for a task's root (which catches nothing), the
    /// bits its handle and its end agree through: [`HANDLE_GONE`] and [`RESULT_PUT`]
    /// (`task::handle`'s invariants). Bits of one byte, so that the task takes no room
    /// of its own for them.
    caught: AtomicU8,
    /// Whether this node has ever had a child (set under `inner`'s lock, never cleared),
    /// so that cancelling a leaf does not take its lock.
    has_children: AtomicBool,
    /// Whether the deadline was set since [`forget_deadline_set`](Node::forget_deadline_set).
    deadline_set: AtomicBool,
    /// The scope, nursery or task is over ([`finish`](Node::finish)): it no longer
    /// cancels anything, nor catches anything. Only a scope future kept past the scope
    /// it was first polled in can still see it, as an ancestor.
    finished: AtomicBool,
    /// State that lives in the same allocation as the node (a task's future and result).
    pub(crate) ext: X,
}

/// How a node holds its parent link. Only the roots of `start`ed tasks ever move (when
/// `start` hands the task to its nursery); every other node gets its parent once, when it
/// is entered or spawned, and keeps it, so reading it takes no lock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Link {
    /// A scope not entered yet, or given its parent through a shared reference (a
    /// handle could see it then): its link is its ext's [`SharedLink`], and `parent`
    /// stays empty.
    Shared,
    /// A scope given its parent while nobody else could see it (set through
    /// `Arc::get_mut`, or made on entry, [`Node::entered`]): one that may be recycled
    /// (invariant 10).
    Owned,
    /// A nursery's or subgroup's node, made with its parent ([`Node::attach`]).
    Attached,
    /// A task's root, whose parent never moves (none: a run's root).
    Root,
    /// The root of a task that `start` may move: its parent link is its ext's
    /// [`MovableLink`], and `parent` stays empty.
    Movable,
}

impl<X: ?Sized + Tag> Drop for Node<X> {
    /// Frees the ancestors that this node alone kept alive in a loop rather than by
    /// recursion: a chain of nested nurseries thousands deep (each level a task that
    /// opens a nursery) must not need stack in proportion to its depth when its last
    /// reference goes (a kept `TaskHandle` of the innermost task, say).
    fn drop(&mut self) {
        // A task's slot for the executor's handle, filled (`KeepBits`): the handle goes
        // first, as it went with the slot's own drop.
        let bits = self.caught.read_mut();
        if bits & (KEPT | KEPT_BOXED) != 0 {
            self.ext.drop_kept(bits & KEPT_BOXED != 0);
        }
        // Invariant 2: a slot key still here means the entry is ours to remove. Deadlock
        // safety 3: whoever drops the last reference holds no node lock.
        let mut next = match &self.parent {
            // The common case, the link in the node: most parents have other references
            // (the scope, nursery or task above still runs), and then the fields drop as
            // usual.
            Some(parent) => {
                leave_list(self.key.read_mut(), Some(parent));
                if Arc::strong_count(parent) != 1 {
                    return;
                }
                self.parent.take()
            }
            None => self.leave_and_take_parent(),
        };
        while let Some(mut node) = next {
            // An ancestor with other references only loses ours (a load first: `get_mut`
            // takes a read-modify-write). Only the one we hold the last reference to goes
            // now (and no weak one: nobody can upgrade it meanwhile); its own parent is
            // taken out first, so dropping it does not recurse.
            if Arc::strong_count(&node) != 1 {
                return;
            }
            next = match Arc::get_mut(&mut node) {
                Some(n) => n.leave_and_take_parent(),
                None => None,
            };
            drop(node);
        }
    }
}

impl<X: ?Sized + Tag> Node<X> {
    /// Through exclusive access (a node being dropped): leaves the parent's child list
    /// if still in it (see [`leave_list`]) and takes the parent link out.
    #[inline]
    fn leave_and_take_parent(&mut self) -> Option<Arc<Node>> {
        let key = self.key.read_mut();
        let parent = match self.parent.take() {
            Some(parent) => Some(parent),
            None if matches!(self.link, Link::Shared | Link::Movable) => self.take_rare_link(),
            None => None,
        };
        leave_list(key, parent.as_ref());
        parent
    }

    /// Takes out a parent link kept in the ext (see [`Link`]), if any.
    #[inline(never)]
    fn take_rare_link(&mut self) -> Option<Arc<Node>> {
        match self.link {
            Link::Movable => self.ext.movable_link().and_then(|link| link.lock().take()),
            Link::Shared => self.ext.shared_link_mut().and_then(|link| link.0.take()),
            Link::Owned | Link::Attached | Link::Root => None,
        }
    }
}

/// A node freed while still in its parent's child list leaves it: a finished scope or
/// nursery stays in the list for as long as a future kept past it is in its own (see
/// [`Node::detach_unless_kept`]). Any other node has left by then.
#[inline]
fn leave_list(key: u32, parent: Option<&Arc<Node>>) {
    if key < DROPPED_KEY {
        if let Some(parent) = parent {
            parent.remove_child(key);
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Boxed lazily: most nodes (tasks, leaf scopes) never have children, nor a deadline
    /// too far away for the atomic word.
    rare: Option<Box<Rare>>,
}

impl Drop for Inner {
    /// The common case, nothing boxed, inline in the node's drop; what is boxed goes out
    /// of line.
    #[inline]
    fn drop(&mut self) {
        if let Some(rare) = self.rare.take() {
            drop_rare(rare);
        }
    }
}

#[cold]
#[inline(never)]
fn drop_rare(rare: Box<Rare>) {
    drop(rare);
}

#[derive(Default)]
struct Rare {
    children: Slab<Weak<Node>>,
    /// The deadline, when the word says [`FAR`].
    far_deadline: Option<Instant>,
    /// What the first reason said, if it said more than its kind (set with it, under the
    /// lock: see [`Node::cancel_with`]).
    detail: Option<Detail>,
    /// The children this node's cancellation took out of `children` (and those that
    /// joined after it and took themselves out again), for the task tree alone
    /// ([`Node::children`]): a cancelled scope's subtree still runs until it has wound
    /// down, and a snapshot must show it. Filled only on cancellation; nothing reads it
    /// on the paths that run tasks. Its entries are weak: an ended child's frees nothing
    /// but its slot, pruned as the list grows.
    taken: Vec<Weak<Node>>,
}

impl Inner {
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Default::default)
    }
}

/// Keeps `child` in a `taken` list (see [`Rare::taken`]), with room for it made as
/// [`make_room`] makes it.
fn keep_taken(taken: &mut Vec<Weak<Node>>, child: Weak<Node>) {
    make_room(taken, 1);
    taken.push(child);
}

/// Makes room in a `taken` list for `more` entries, pruning the entries of nodes that
/// are gone first if it is short of room. A walk that takes many children out makes
/// room for them all at once: pruning at each doubling would read every kept node again.
fn make_room(taken: &mut Vec<Weak<Node>>, more: usize) {
    if taken.capacity() - taken.len() < more {
        taken.retain(|w| w.strong_count() > 0);
        taken.reserve(more);
    }
}

/// A deadline in one atomic word, read without a lock: signed nanoseconds from an
/// instant taken once per process. An instant more than about 292 years away from it
/// (in practice: "never") is kept exactly under the node's lock, the word saying [`FAR`].
/// In the ext of the nodes that can have a deadline ([`Tag::deadline`]).
pub(crate) struct AtomicDeadline(AtomicI64);

impl Default for AtomicDeadline {
    /// No deadline.
    fn default() -> AtomicDeadline {
        AtomicDeadline(AtomicI64::new(NO_DEADLINE))
    }
}

/// The bits of a task root's `caught` byte that its slot for the executor's handle
/// (`task::raw::KeepSlot`, one word: the handle alone) agrees through, so that the slot
/// takes no word of its own to say whether it holds one. One thread claims the slot
/// ([`claim`](KeepBits::claim), one read-modify-write: the first to set
/// [`KEEP_CLAIMED`]), moves the handle in, then publishes it ([`kept`](KeepBits::kept),
/// release: [`KEPT`], or [`KEPT_BOXED`] for a handle in a box of its own); the node's
/// drop, with exclusive access, finds the bit and has its ext drop the handle
/// ([`Tag::drop_kept`]). A thread that does not win the claim leaves its
/// handle to its owner.
pub(crate) struct KeepBits<'a>(&'a AtomicU8);

impl KeepBits<'_> {
    /// Whether this caller is the first to claim the slot, and so the one to fill it.
    pub(crate) fn claim(&self) -> bool {
        self.0.fetch_or(KEEP_CLAIMED, Ordering::AcqRel) & KEEP_CLAIMED == 0
    }

    /// The claimed slot holds the handle now (moved in before this), in place or, if
    /// `boxed`, in a box of its own.
    pub(crate) fn kept(&self, boxed: bool) {
        let bit = if boxed { KEPT_BOXED } else { KEPT };
        self.0.fetch_or(bit, Ordering::Release);
    }

    /// Whether the slot holds a handle (read by the thread that filled it, right after).
    pub(crate) fn is_kept(&self) -> bool {
        self.0.load(Ordering::Relaxed) & (KEPT | KEPT_BOXED) != 0
    }

    /// Whether the handle the slot holds is in a box of its own (tests).
    #[cfg(all(test, not(hatchery_loom)))]
    pub(crate) fn is_kept_boxed(&self) -> bool {
        self.0.load(Ordering::Relaxed) & KEPT_BOXED != 0
    }
}

/// The word of "no deadline".
const NO_DEADLINE: i64 = i64::MIN;
/// The word of "the deadline is under the lock".
const FAR: i64 = i64::MAX;

impl AtomicDeadline {
    fn base() -> Instant {
        // The standard `OnceLock` also under loom: a `static`, shared by every node.
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *BASE.get_or_init(Instant::now)
    }

    /// The word for `deadline`; `FAR` if it does not fit.
    fn encode(deadline: Option<Instant>) -> i64 {
        let Some(deadline) = deadline else {
            return NO_DEADLINE;
        };
        let base = Self::base();
        let word = match deadline.checked_duration_since(base) {
            Some(after) => i64::try_from(after.as_nanos()).ok(),
            None => i64::try_from((base - deadline).as_nanos())
                .ok()
                .map(|before| -before),
        };
        match word {
            Some(w) if w != NO_DEADLINE && w != FAR => w,
            _ => FAR,
        }
    }

    /// The deadline a word other than `FAR` stands for.
    fn decode(word: i64) -> Option<Instant> {
        if word == NO_DEADLINE {
            return None;
        }
        let base = Self::base();
        let nanos = Duration::from_nanos(word.unsigned_abs());
        match word {
            0.. => base.checked_add(nanos),
            // Encoded from an instant that exists, so the subtraction cannot fail.
            _ => base.checked_sub(nanos),
        }
    }
}

/// A deadline as the word a node keeps it in (nanoseconds from an instant taken once per
/// process), if it has one (not one about 292 years away from that instant): words
/// compare as their instants do, and cost less to compare.
pub(crate) fn deadline_word(deadline: Instant) -> Option<i64> {
    match AtomicDeadline::encode(Some(deadline)) {
        FAR => None,
        word => Some(word),
    }
}

/// The word of the deadline `after` from the instant whose word is `now`
/// ([`deadline_word`]), if it has one: the same word as `deadline_word(now + after)`, as
/// both count nanoseconds from the same instant, without adding to an instant (a
/// timeout's entry encodes its clock reading instead of the sum, and keeps both words:
/// see `scope::engine`). `None` where the sum leaves the words' range or lands on a word
/// that means something else: the caller then takes the instant's way.
#[inline]
pub(crate) fn word_after(now: i64, after: Duration) -> Option<i64> {
    let nanos = i64::try_from(after.as_nanos()).ok()?;
    now.checked_add(nanos)
        .filter(|&word| word != NO_DEADLINE && word != FAR)
}

/// A scope's deadline as its node takes it on entry ([`Node::entered`],
/// [`Node::reenter`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// No deadline.
    Never,
    /// An instant, encoded as the node stores it.
    At(Instant),
    /// A deadline's word already ([`deadline_word`], [`word_after`]): a timeout counted
    /// from a clock reading whose word its scope took.
    Word(i64),
}

impl From<Option<Instant>> for Due {
    fn from(deadline: Option<Instant>) -> Due {
        deadline.map_or(Due::Never, Due::At)
    }
}

/// The instant of a word made by [`deadline_word`] or [`Node::deadline_word`].
pub(crate) fn word_deadline(word: i64) -> Instant {
    AtomicDeadline::decode(word).expect("hatchery: internal error: not a deadline's word")
}

impl Node {
    pub(crate) fn new(shield: bool, root: bool) -> Arc<Node> {
        Arc::new(Node::with_ext(shield, root, ()))
    }
}

impl<X: Tag> Node<X> {
    /// A task root under `parent` carrying `ext`, to be put in an `Arc` and coerced to
    /// `Arc<Node>`. It is not linked into `parent`'s child list yet (see
    /// [`link`](Node::link)). Only one whose `ext` has a [`MovableLink`] can be
    /// [`reparent`](Node::reparent)ed; the parent link of any other is read without a
    /// lock.
    #[inline]
    pub(crate) fn task_root(parent: &Arc<Node>, ext: X) -> Node<X> {
        let mut node = Node::with_ext(false, true, ext);
        match node.ext.movable_link() {
            Some(link) => {
                *link.lock() = Some(parent.clone());
                node.link = Link::Movable;
            }
            None => node.parent = Some(parent.clone()),
        }
        node
    }

    /// A node carrying `ext`, to be put in an `Arc` and coerced to `Arc<Node>`.
    pub(crate) fn with_ext(shield: bool, root: bool, ext: X) -> Node<X> {
        Node {
            shield: AtomicBool::new(shield),
            link: if root { Link::Root } else { Link::Shared },
            cancelled: AtomicBool::new(false),
            reason: AtomicU8::new(NO_REASON),
            caught: AtomicU8::new(0),
            holds: AtomicU32::new(0),
            deadline_set: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            parent: None,
            key: AtomicU32::new(NO_KEY),
            inner: Mutex::new(Inner::default()),
            waker: WakerSlot::new(),
            has_children: AtomicBool::new(false),
            ext,
        }
    }
}

impl<X: ?Sized + Tag> Node<X> {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Deadlock safety 3: no user code runs under this lock, so a poisoned lock still
        // holds valid state.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` under this node's lock: for state kept beside the node that the node's
    /// lock guards as well (a task's result slot, `task::handle`'s invariant 4), where a
    /// lock of its own would take 8 more bytes of every child. `f` keeps to the rules of
    /// deadlock safety (the module docs) as the node's own code does: it takes no other
    /// lock, and nothing foreign runs in it (no waker cloned, woken or dropped, no user
    /// value dropped).
    #[inline]
    pub(crate) fn with_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        let _locked = self.lock();
        f()
    }

    /// [`with_lock`](Node::with_lock) for the end of the node's runner, which takes out
    /// the waker it registered last in the same locked step, to be dropped after the lock
    /// (deadlock safety 3): nothing wakes a runner that is done, and a node kept after
    /// its runner (a task's, by the task's handle) would keep its waker, and so the
    /// executor's task, alive with it.
    #[inline]
    pub(crate) fn with_lock_ending<R>(&self, f: impl FnOnce() -> R) -> (R, Option<Waker>) {
        let mut inner = self.lock();
        (f(), self.waker.take(&mut inner))
    }

    pub(crate) fn is_shield(&self) -> bool {
        self.shield.load(Ordering::Relaxed)
    }

    pub(crate) fn set_shield(&self, shield: bool) {
        // Invariant 6: only before the node is entered (a builder's), so relaxed.
        self.shield.store(shield, Ordering::Relaxed);
    }

    /// Effectively cancelled: by itself or by an unshielded ancestor.
    ///
    /// A scope's flag can lag behind its ancestors' (an unlinked scope learns of their
    /// cancellation when it is next polled, see [`refresh`](Node::refresh)), so this also
    /// reads the flags up to the task's root (past it in the task's first poll) or the
    /// nearest shield. The walk follows parent links that never change, without locks or
    /// reference counts.
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire) || self.ancestors_cancelled()
    }

    /// [`is_cancelled`](Node::is_cancelled), with the walk's first test
    /// ([`stops_walk`](Node::stops_walk)) inline: for a task's root that its nursery's
    /// list holds (every poll of a task but its first), a run's root, or a started
    /// task's, the answer is the node's own flag, without the walk's call (about 20
    /// instructions a check). For the hot checks of the node a task polls with (its
    /// runner's, a wait's); elsewhere the smaller `is_cancelled` keeps its callers small
    /// enough to inline.
    #[inline(always)]
    pub(crate) fn is_cancelled_here(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
            || !self.stops_walk() && self.ancestors_cancelled_near()
    }

    /// [`ancestors_cancelled`](Node::ancestors_cancelled), with its one step inline where
    /// the walk ends at the parent (the caller has ruled out a node whose walk stops at
    /// itself): a scope directly under its task's root, or a run's, the common case (a
    /// timeout in a task's body), whose parent's own flag is the answer (invariant 7):
    /// the out-of-line walk's call and loop cost about 12 instructions more there
    /// (`move_on_after` asks three times a timeout: 42 instructions fewer on smol-ct, 35
    /// on tokio-ct, counted with callgrind). Deeper nodes, and a parent that is a
    /// shield, take the walk.
    #[inline(always)]
    fn ancestors_cancelled_near(&self) -> bool {
        match &self.parent {
            // The walk's own tests, in its order (the caller has ruled out a node that
            // stops its own walk, so only its shield is left to test).
            Some(parent) if parent.stops_walk() => !self.is_shield() && parent.cancels_below(),
            _ => self.ancestors_cancelled(),
        }
    }

    /// This node's own flag: cancelled itself, or marked by an ancestor's cancellation
    /// that reached it.
    #[inline]
    pub(crate) fn is_marked(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Whether an ancestor up to the nearest shield has its flag set (this node's own
    /// flag aside): within this node's task, and past its root into the nursery while
    /// the root is not in the nursery's child list yet (the task's first poll), where the
    /// nursery's cancellation cannot reach it. Always false for a shield. Out of line: the
    /// flag of the node itself, read first, is what callers inline.
    #[inline(never)]
    fn ancestors_cancelled(&self) -> bool {
        if self.ends_walk() {
            return false;
        }
        // Invariant 7, through fixed links only (invariant 6): no lock, no reference
        // count, so it may be read under a node's lock (deadlock safety 1).
        let mut cur = self.fixed_parent();
        while let Some(node) = cur {
            if node.cancels_below() {
                return true;
            }
            if node.ends_walk() {
                return false;
            }
            cur = node.fixed_parent();
        }
        false
    }

    /// The walk's test of an ancestor it reaches: its flag reaches down, unless it has
    /// finished (invariant 9: a finished node's flag no longer reaches down).
    #[inline(always)]
    fn cancels_below(&self) -> bool {
        self.cancelled.load(Ordering::Acquire) && !self.is_finished()
    }

    /// The walk's test of where it ends: nothing above a shield reaches it, nor above a
    /// task root that [`stops_walk`](Node::stops_walk).
    #[inline(always)]
    fn ends_walk(&self) -> bool {
        self.is_shield() || self.stops_walk()
    }

    /// Whether the node at `ancestor` (by address) is cancelled and its cancellation
    /// reaches this node: it is this node, or an ancestor with no shield in between.
    /// (Below a shield, or under an ancestor that is not cancelled, a cancellation comes
    /// from a scope in between, which catches it.)
    pub(crate) fn cancelled_from(&self, ancestor: *const ()) -> bool {
        if self.is_at(ancestor) {
            return self.is_cancelled();
        }
        let found = |node: &Node| node.is_at(ancestor).then(|| node.is_cancelled());
        !self.is_shield() && self.find_up(Node::is_shield, found) == Some(true)
    }

    /// Whether this is the node at `addr`.
    #[inline]
    fn is_at(&self, addr: *const ()) -> bool {
        std::ptr::eq((self as *const Self).cast::<()>(), addr)
    }

    /// Visits the ancestors (through [`parent`](Node::parent)), nearest first, until `f`
    /// returns `Some`, or up to the first that `last` holds for. What `f` returned.
    #[inline]
    fn find_up<R>(
        &self,
        last: impl Fn(&Node) -> bool,
        mut f: impl FnMut(&Node) -> Option<R>,
    ) -> Option<R> {
        let mut cur = self.parent();
        while let Some(node) = cur {
            if let Some(found) = f(&node) {
                return Some(found);
            }
            if last(&node) {
                return None;
            }
            cur = node.parent();
        }
        None
    }

    /// Marks the scope, nursery or task of this node as over, once its body is gone.
    ///
    /// Nothing inside it is left then, except a scope future that was first polled in
    /// it and kept to be awaited elsewhere (the loser of a select, say). For such a
    /// future this node stays an ancestor, but a finished one: its flag (if a
    /// cancellation came while it ran) no longer reaches down, a `cancel` through a
    /// handle or a deadline passing from now on changes nothing, and it catches nothing
    /// (see [`outer_cancelled`](Node::outer_cancelled)). The kept future follows the
    /// scopes around this one that are still running. (One that this node's
    /// cancellation reached while it ran is cancelled itself, by its own flag.)
    pub(crate) fn finish(&self) {
        self.finished.store(true, Ordering::Release);
    }

    /// Whether [`finish`](Node::finish) was called.
    #[inline]
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Whether an upward walk of flags ends at this node: a task root in its parent's
    /// child list (the parent's cancellation marks it), or one with no fixed parent (a
    /// run's root; a `start`ed task's, whose parent can move and is not walked). (A
    /// spawned task's root joins the list when the task first suspends, or opens a
    /// nursery or polls a `start` before that; a `start`ed task's when its first poll
    /// begins.)
    #[inline(always)]
    fn stops_walk(&self) -> bool {
        self.is_task_root() && (self.parent.is_none() || self.key.load(Ordering::Acquire) != NO_KEY)
    }

    /// The parent of a scope or nursery node, once entered (`None` for a task root).
    #[inline]
    pub(crate) fn fixed_parent(&self) -> Option<&Arc<Node>> {
        // The common case first: a link set with exclusive access is in `parent`; only a
        // shared link is elsewhere, and a movable one is not fixed.
        match &self.parent {
            Some(parent) => Some(parent),
            None if self.link == Link::Shared => self.shared_parent(),
            None => None,
        }
    }

    /// The parent link of a scope entered through a shared reference.
    #[inline(never)]
    fn shared_parent(&self) -> Option<&Arc<Node>> {
        self.ext.shared_link().and_then(|link| link.0.get())
    }

    /// Whether this is a task's root (or a run's, which has no parent).
    #[inline]
    pub(crate) fn is_task_root(&self) -> bool {
        matches!(self.link, Link::Root | Link::Movable)
    }

    /// Brings an unlinked scope's flag up to date with its ancestors (on every poll: the
    /// ancestors' cancellation does not reach a scope that is not in their child lists),
    /// marking its linked subtree too.
    #[inline]
    pub(crate) fn refresh(&self) {
        // Invariant 7: the flag catches up with what `is_cancelled` reads.
        if !self.cancelled.load(Ordering::Acquire)
            && !self.stops_walk()
            && self.ancestors_cancelled_near()
        {
            self.propagate();
        }
    }

    /// Whether this node is in its parent's child list.
    #[inline]
    pub(crate) fn is_linked(&self) -> bool {
        self.key.load(Ordering::Acquire) < DROPPED_KEY
    }

    /// Whether this node has never been in its parent's child list (or has left it
    /// itself), as opposed to having been taken out by its parent's cancellation.
    #[inline]
    pub(crate) fn never_linked(&self) -> bool {
        self.key.load(Ordering::Acquire) == NO_KEY
    }

    /// Why this node was cancelled itself (`None` if it was not).
    pub(crate) fn reason(&self) -> Option<Reason> {
        Reason::decode(self.reason.load(Ordering::Acquire))
    }

    /// Why this node was cancelled itself, with what the reason said besides its kind.
    /// Takes the node's lock only when there is a reason.
    pub(crate) fn reason_detail(&self) -> Option<(Reason, Option<Detail>)> {
        let reason = self.reason()?;
        // `cancel_with` sets the byte and the detail under the lock: a detail of the
        // reason read above is there once the lock is ours.
        let detail = self.lock().rare.as_ref().and_then(|r| r.detail.clone());
        Some((reason, detail))
    }

    /// Whether something inside must finish first. Sequentially consistent: a runner
    /// that registers its waker and then finds its node held pairs with the release of
    /// the last hold (see `add_hold`).
    #[inline]
    pub(crate) fn has_holds(&self) -> bool {
        self.holds.load(Ordering::SeqCst) != 0
    }

    /// How many holds count on this node now: read before and after polling one of the
    /// futures that share a node (a fixed group's), to tell which of them holds.
    #[inline]
    pub(crate) fn hold_count(&self) -> u32 {
        self.holds.load(Ordering::Acquire)
    }

    /// Cancelled, and nothing inside needs to finish first: the runner may drop its body.
    #[inline]
    pub(crate) fn should_drop(&self) -> bool {
        self.is_cancelled_here() && !self.has_holds()
    }

    /// [`refresh`](Node::refresh), then [`is_cancelled`](Node::is_cancelled), with one
    /// walk up the tree where the two took two: once refreshed, the node's own flag is
    /// what `is_cancelled` reads (invariant 7: `refresh` sets it if an ancestor's is
    /// set). For the runners that refresh a node they poll (a scope that is not linked,
    /// polled again: `move_on_after`'s poll walked four times, a walk about 43
    /// instructions; a polled group's children; a fixed group's node).
    #[inline]
    pub(crate) fn refresh_cancelled(&self) -> bool {
        self.refresh();
        self.is_marked()
    }

    /// [`refresh`](Node::refresh), then [`should_drop`](Node::should_drop), with one walk
    /// ([`refresh_cancelled`](Node::refresh_cancelled)).
    #[inline]
    pub(crate) fn refresh_should_drop(&self) -> bool {
        self.refresh_cancelled() && !self.has_holds()
    }

    pub(crate) fn caught(&self) -> bool {
        self.caught.load(Ordering::Acquire) & CAUGHT != 0
    }

    pub(crate) fn set_caught(&self) {
        self.caught.fetch_or(CAUGHT, Ordering::Release);
    }

    /// A task's handle is gone (sets [`HANDLE_GONE`]): whether the task had put its
    /// result before ([`RESULT_PUT`]), which the handle then drops. The handle protocol
    /// of `task::handle` (its invariant 1): exactly one of this and
    /// [`result_put`](Node::result_put) sees the other's bit.
    #[inline]
    pub(crate) fn let_go_handle(&self) -> bool {
        self.caught.fetch_or(HANDLE_GONE, Ordering::AcqRel) & RESULT_PUT != 0
    }

    /// A task has put its result for its handle (sets [`RESULT_PUT`]): whether the
    /// handle was gone before ([`HANDLE_GONE`]), and the task takes the result back to
    /// drop it. See [`let_go_handle`](Node::let_go_handle).
    #[inline]
    pub(crate) fn result_put(&self) -> bool {
        self.caught.fetch_or(RESULT_PUT, Ordering::AcqRel) & HANDLE_GONE != 0
    }

    /// The bits of a task's root that its slot for the executor's handle agrees through.
    pub(crate) fn keep_bits(&self) -> KeepBits<'_> {
        KeepBits(&self.caught)
    }

    /// Keeps `waker` as the runner's, to be woken when the node is cancelled, its last
    /// hold goes while it is, or its deadline moves. A runner registers, then checks the
    /// node: whatever changes after the check wakes the waker registered before it (the
    /// lock orders the two; invariants 5 and 8).
    ///
    /// The waker is cloned outside the lock (deadlock safety 3: a clone is the executor's
    /// code), and only when the one kept would not wake the same task. Meanwhile the slot
    /// holds a placeholder (`Waker::noop`): a wake that comes between the two locks takes
    /// it, and the new waker is woken here instead, as `AtomicWaker::register` wakes the
    /// waker it registers when a wake comes during the registration.
    #[inline]
    pub(crate) fn register(&self, waker: &Waker) {
        // Only the node's runner registers, one poll after another, and between two of
        // its polls a wake only takes the waker out: a read of the two words that finds
        // the runner's waker finds it there (or taken by a wake since, which polls the
        // runner again), and a read torn by such a wake mixes it with an empty slot, which
        // never equals a waker but a no-op one (which wakes nothing anyway).
        if self.waker.holds(waker) {
            return;
        }
        let old = {
            let mut inner = self.lock();
            self.waker.replace(&mut inner, Some(Waker::noop().clone()))
        };
        self.register_new(old, waker);
    }

    /// [`register`](Node::register) for a runner that has registered no waker on this
    /// node before (a task's first suspension) and checks the node after it, as every
    /// runner does (invariants 5 and 8): the waker is cloned first, and kept in one
    /// locked step. A wake before that step finds no waker, as it would before an
    /// `AtomicWaker::register`, and what it was for is what the check after this reads
    /// (the wake's lock comes before ours).
    #[inline]
    pub(crate) fn register_first(&self, waker: &Waker) {
        let new = waker.clone();
        let old = self.waker.replace(&mut self.lock(), Some(new));
        // After the lock: a waker's drop is foreign code.
        drop(old);
    }

    /// The rest of [`register`](Node::register) for a waker that is not the one kept
    /// (`old`, now replaced by the placeholder).
    #[cold]
    #[inline(never)]
    fn register_new(&self, old: Option<Waker>, waker: &Waker) {
        // Outside the lock: a waker's drop and clone are foreign code.
        drop(old);
        let new = waker.clone();
        let woken = {
            let mut inner = self.lock();
            // The placeholder is still there: nothing woke the runner meanwhile. (Told by
            // its null data pointer: `will_wake` may not know two no-op wakers for one,
            // their vtables being constants, and an executor's waker points to its task.)
            if self.waker.holds_placeholder(&inner) {
                drop(self.waker.replace(&mut inner, Some(new)));
                None
            } else {
                // A wake took the placeholder (or a `forget_waker`, or another register
                // replaced it): wake the new waker rather than keep it.
                Some(new)
            }
        };
        if let Some(new) = woken {
            new.wake();
        }
    }

    /// Wakes the runner's waker, taken out under the lock and woken after it (deadlock
    /// safety 3), if one is registered: as `AtomicWaker::wake` did, a wake takes it, and
    /// the runner registers again when it suspends. Never called under a node's lock.
    fn wake(&self) {
        let waker = self.waker.take(&mut self.lock());
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Takes out the waker registered last, if any: a node that keeps its runner's waker
    /// lets go of it when the runner is done (a polled child's waker is its own node).
    #[inline]
    pub(crate) fn forget_waker(&self) {
        // A child that never waited never registered one: no lock to take.
        if self.waker.is_empty() {
            return;
        }
        let waker = self.waker.take(&mut self.lock());
        drop(waker);
    }

    /// The parent link, as it is now (a movable one under its mutex, briefly: deadlock
    /// safety 2). Never called under a node's lock.
    pub(crate) fn parent(&self) -> Option<Arc<Node>> {
        match self.link {
            Link::Movable => self.movable().lock().clone(),
            _ => self.fixed_parent().cloned(),
        }
    }

    /// True when an enclosing scope is cancelled, so this node's own cancellation (if any)
    /// is shadowed by an outer one and must not be caught here (C3).
    ///
    /// An ancestor (up to the nearest shield) whose deadline has passed by `now` counts
    /// as cancelled even if its timer has not fired yet: it is cancelled here and now, so
    /// that when deadlines race, the outermost scope still wins.
    pub(crate) fn outer_cancelled(&self, now: Instant) -> bool {
        let outer = |node: &Node| {
            // Invariant 9: a finished scope catches nothing any more: the walk goes past
            // it. Its own flag only: the walk visits every ancestor up to the shield,
            // which is all that `is_cancelled` would read.
            if node.is_finished() {
                return None;
            }
            if node.is_marked() {
                return Some(());
            }
            let passed = node.deadline().is_some_and(|d| d <= now);
            if passed {
                node.cancel(Reason::Deadline);
            }
            passed.then_some(())
        };
        !self.is_shield() && self.find_up(Node::is_shield, outer).is_some()
    }

    /// Cancels the nearest running scope, from this node up to the nearest shield, whose
    /// deadline is not later than `deadline`, which has passed: so it has too, and it
    /// came first (at the same instant the scope wins, as in trio, where a scope's
    /// deadline is set before the wait inside starts). Whether one was found.
    pub(crate) fn cancel_deadlines_before(&self, deadline: Instant) -> bool {
        let cancelled = |node: &Node| node.cancel_if_before(deadline).then_some(());
        self.cancel_if_before(deadline)
            || !self.is_shield() && self.find_up(Node::is_shield, cancelled).is_some()
    }

    fn cancel_if_before(&self, deadline: Instant) -> bool {
        let before = !self.is_finished() && self.deadline().is_some_and(|d| d <= deadline);
        if before {
            self.cancel(Reason::Deadline);
        }
        before
    }

    /// Why the cancellation that reached this node came, when no running scope around
    /// it will catch it: the reason of the nearest finished ancestor cancelled itself
    /// ([`Reason::Explicit`] if none is found). See [`finish`](Node::finish).
    pub(crate) fn orphan_reason(&self) -> Reason {
        self.find_up(
            |_| false,
            |node| node.reason().filter(|_| node.is_finished()),
        )
        .unwrap_or(Reason::Explicit)
    }

    /// Unlinks this node from its parent's child list. Idempotent. The parent link of a
    /// scope or a spawned task stays (it is only followed upwards, and children are held
    /// weakly, so no cycle); a movable task root lets go of its parent.
    pub(crate) fn detach(&self) {
        match self.link {
            Link::Shared | Link::Owned | Link::Attached | Link::Root => {
                // Only the owning runner links a scope, a nursery or a spawned task, so
                // an unlinked one stays unlinked here. Invariant 2: the parent's
                // cancellation may unlink it meanwhile, and exactly one of us gets the
                // key.
                if !self.is_linked() {
                    return;
                }
                let key = self.key.swap(NO_KEY, Ordering::AcqRel);
                if key < DROPPED_KEY {
                    if let Some(parent) = self.fixed_parent() {
                        parent.remove_child(key);
                    }
                }
            }
            Link::Movable => {
                // Under the mutex, to serialize with `link` and `reparent` (invariant 2),
                // released before the parent's lock is taken (deadlock safety 2), and the
                // parent dropped after (deadlock safety 3).
                let (parent, key) = {
                    let mut p = self.movable().lock();
                    (p.take(), self.key.swap(NO_KEY, Ordering::AcqRel))
                };
                if let (Some(parent), true) = (parent, key < DROPPED_KEY) {
                    parent.remove_child(key);
                }
            }
        }
    }

    /// Leaves the parent's child list as this scope or nursery ends (see
    /// [`detach`](Node::detach)), unless a future first polled in it and kept past it
    /// (a nursery, or a scope with one open inside) is still in its own list: then it
    /// stays, so that the cancellation of the scopes around it still reaches that
    /// future's tasks, and leaves when it is freed.
    pub(crate) fn detach_unless_kept(&self) {
        // Deadlock safety 1: our lock is released before `detach` takes the parent's.
        if self.has_children.load(Ordering::Acquire)
            && self
                .lock()
                .rare
                .as_ref()
                .is_some_and(|r| !r.children.is_empty())
        {
            return;
        }
        self.detach();
    }

    fn remove_child(&self, key: u32) {
        if let Some(rare) = &mut self.lock().rare {
            rare.children.try_remove(key as usize);
        }
    }

    fn movable(&self) -> &MovableLink {
        match self.link {
            Link::Movable => self.ext.movable_link(),
            _ => None,
        }
        .expect("hatchery: internal error: a fixed parent link moved")
    }

    /// Cancels this node itself. The first reason sticks. A finished node only records
    /// the call (trio's `cancel_called`): nothing is left to cancel.
    pub(crate) fn cancel(&self, reason: Reason) {
        // Invariant 9: a finished node records the reason and marks nothing.
        self.set_reason(reason);
        if !self.is_finished() {
            self.propagate();
        }
    }

    /// [`cancel`](Node::cancel) with what the reason says besides its kind, kept if this
    /// reason is the first (invariant 1). The byte and the detail are set under the lock
    /// (released before the walk: deadlock safety 1), so whoever reads the byte and then
    /// takes the lock finds the detail.
    pub(crate) fn cancel_with(&self, reason: Reason, detail: Detail) {
        {
            let mut inner = self.lock();
            if self.set_reason(reason) {
                inner.rare().detail = Some(detail);
            }
        }
        if !self.is_finished() {
            self.propagate();
        }
    }

    /// Sets the reason unless there is one already (invariant 1: the first reason
    /// sticks). Whether it was the first.
    fn set_reason(&self, reason: Reason) -> bool {
        self.reason
            .compare_exchange(
                NO_REASON,
                reason.encode(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Marks this node and its unshielded subtree cancelled and wakes their runners.
    ///
    /// When it returns, the whole subtree is marked, also where another thread marks
    /// part of it at the same time (a second `cancel`, an unlinked scope's `refresh`):
    /// a marked node leaves its parent's list only once its own subtree is marked, so a
    /// walk that finds a child gone knows it is done, and one that finds a marked child
    /// still there walks it too. Lists of cancelled nodes are left with their shields
    /// only (a child that links into a cancelled parent does not stay), so walking a
    /// cancelled node again costs next to nothing.
    fn propagate(&self) {
        // Invariant 5: set (sequentially consistent) before `cancel_children` reads
        // `has_children`. Woken outside any lock (deadlock safety 3).
        if !self.cancelled.swap(true, Ordering::SeqCst) {
            self.wake();
        }
        // Nodes whose lists are still to walk, and the marked children with children of
        // their own, to take out of their parents' lists once the whole walk is done.
        let mut stack = Vec::new();
        let mut later = Vec::new();
        self.cancel_children(None, &mut stack, &mut later);
        while let Some(node) = stack.pop() {
            node.cancel_children(Some(&node), &mut stack, &mut later);
        }
        // Invariant 3: a child with children leaves its parent's list only now, its whole
        // subtree marked.
        for (parent, child, key) in later {
            match &parent {
                Some(parent) => parent.take_out(&child, key),
                None => self.take_out(&child, key),
            }
        }
    }

    /// Marks this node's live, unshielded children cancelled and wakes those it marked.
    /// A child without children of its own leaves the list at once, under the one lock
    /// taken here, so that it does not take that lock again to unlink itself when it
    /// finishes: a cancelled child has nothing more to learn from its parent. A child
    /// with children is pushed on `stack`, to be walked, and on `later`, to leave the
    /// list once that walk is done. Shields stay. (`me` is this node, for `later`; `None`
    /// for the node the walk started from.)
    fn cancel_children(
        &self,
        me: Option<&Arc<Node>>,
        stack: &mut Vec<Arc<Node>>,
        later: &mut Vec<TakeOut>,
    ) {
        // Invariant 5: reading the flag after our caller set `cancelled` pairs with
        // `insert_into`, which sets it under the lock and then reads `cancelled`: a new
        // child either is in the list we read, or sees the flag.
        if !self.has_children.load(Ordering::SeqCst) {
            return;
        }
        // Each child with whether we marked it (and so wake it), and its key if it is
        // to leave the list after its walk.
        let mut children = Vec::new();
        {
            let mut inner = self.lock();
            let Some(rare) = &mut inner.rare else {
                return;
            };
            // An empty list costs nothing to walk again (its slots are not visited).
            if rare.children.is_empty() {
                return;
            }
            children.reserve(rare.children.len());
            make_room(&mut rare.taken, rare.children.len());
            rare.children.retain(|key, weak| {
                let Some(child) = weak.upgrade() else {
                    return true;
                };
                if child.is_shield() {
                    // Invariant 4: a shield stays. Deadlock safety 3: `child` is dropped
                    // after the lock, in `children`.
                    children.push((child, false, None));
                    return true;
                }
                // Invariant 3: marked under the lock, before it leaves the list: code
                // that finds it gone finds it marked.
                let marked = !child.cancelled.swap(true, Ordering::SeqCst);
                // Invariant 5: read after marking: pairs with `insert_into`, which sets
                // the flag and then reads ours. A grandchild either is in the child's list
                // when the child is walked, or sees the child marked.
                if child.has_children.load(Ordering::SeqCst) {
                    children.push((child, marked, Some(key as u32)));
                    return true;
                }
                // Invariant 2: exactly one of this and the child's own `detach` takes the
                // key. (Invariant 6: a marked `start`ed root is never moved.)
                let leaves = child
                    .key
                    .compare_exchange(key as u32, DROPPED_KEY, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
                // A weak reference that leaves frees nothing: `children` holds the node.
                if leaves {
                    keep_taken(&mut rare.taken, weak.clone());
                }
                children.push((child, marked, None));
                !leaves
            });
            if rare.children.is_empty() {
                // Let its slots go (all of them: a nursery of 100k children had 100k),
                // now rather than with the node; and a later walk of a few new entries
                // would visit every slot.
                rare.children = Slab::new();
            }
        }
        // Deadlock safety 3: wake outside the lock (a waker is foreign code), and drop
        // the children here (the last reference to one takes our lock to leave).
        for (child, marked, walk) in children {
            if marked {
                child.wake();
            }
            if let Some(key) = walk {
                later.push((me.cloned(), child.clone(), key));
                stack.push(child);
            }
        }
    }

    /// Takes `child` (marked, its subtree too) out of this node's list, unless it left
    /// by itself (`detach`) or another walk took it out.
    fn take_out(&self, child: &Node, key: u32) {
        let mut inner = self.lock();
        // Invariant 2: under our lock, against the child's own `detach`.
        if child
            .key
            .compare_exchange(key, DROPPED_KEY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            if let Some(rare) = &mut inner.rare {
                // The weak reference frees nothing: the caller holds `child`.
                if let Some(weak) = rare.children.try_remove(key as usize) {
                    keep_taken(&mut rare.taken, weak);
                }
            }
        }
    }

    // ----- deadlines -----

    /// The deadline as the word it is kept in ([`deadline_word`]), read with one atomic
    /// load; `None` if there is no deadline, or one kept under the lock (invariant 11),
    /// which [`deadline`](Node::deadline) tells apart.
    #[inline]
    pub(crate) fn deadline_word(&self) -> Option<i64> {
        match self.ext.deadline()?.0.load(Ordering::Acquire) {
            FAR | NO_DEADLINE => None,
            word => Some(word),
        }
    }

    #[inline]
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.ext.deadline()?.0.load(Ordering::Acquire) {
            // Invariant 11.
            FAR => self.lock().rare.as_ref().and_then(|r| r.far_deadline),
            word => AtomicDeadline::decode(word),
        }
    }

    /// Stores the word of the deadline ([`Tag::deadline`]: only a scope's node has one).
    fn store_word(&self, word: i64) {
        let cell = self.ext.deadline();
        cell.expect("hatchery: internal error: a deadline given to a node that cannot have one")
            .0
            .store(word, Ordering::Release);
    }

    /// [`store_deadline`](Node::store_deadline) for a deadline that may be its word
    /// already, stored as it is.
    #[inline(always)]
    fn store_due(&self, due: Due) {
        match due {
            Due::Word(word) => {
                debug_assert!(word != NO_DEADLINE && word != FAR);
                self.store_word(word);
            }
            Due::At(deadline) => self.store_deadline(Some(deadline)),
            Due::Never => self.store_deadline(None),
        }
    }

    fn store_deadline(&self, deadline: Option<Instant>) {
        match AtomicDeadline::encode(deadline) {
            FAR => self.store_deadline_locked(&mut self.lock(), deadline),
            word => self.store_word(word),
        }
    }

    /// [`store_deadline`](Node::store_deadline) with the lock held.
    fn store_deadline_locked(&self, inner: &mut Inner, deadline: Option<Instant>) {
        let word = AtomicDeadline::encode(deadline);
        if word == FAR {
            // Invariant 11: the word is written under the lock too, after the instant, so
            // a reader that sees `FAR` finds this instant (or a later one) there.
            inner.rare().far_deadline = deadline;
        }
        self.store_word(word);
    }

    /// Sets the deadline of a scope not entered yet, not through `set_deadline` (so a
    /// timeout set later still applies): nobody waits on it yet.
    pub(crate) fn init_deadline(&self, deadline: Instant) {
        self.store_deadline(Some(deadline));
    }

    /// Sets a timeout's deadline on entry, unless a deadline was set through
    /// [`set_deadline`](Node::set_deadline) since the timeout was: under the lock that
    /// `set_deadline` takes, so that one racing the entry on another thread is never
    /// overwritten.
    fn init_deadline_unless_set(&self, deadline: Instant) {
        // Invariant 11.
        let mut inner = self.lock();
        if !self.deadline_set.load(Ordering::Acquire) {
            self.store_deadline_locked(&mut inner, Some(deadline));
        }
    }

    /// Moves the deadline (through a handle or a builder) and wakes the runner, so that
    /// its timer follows.
    pub(crate) fn set_deadline(&self, deadline: Option<Instant>) {
        {
            // Invariant 11: under the lock, see `init_deadline_unless_set`.
            let mut inner = self.lock();
            self.store_deadline_locked(&mut inner, deadline);
            self.deadline_set.store(true, Ordering::Release);
        }
        // Deadlock safety 3: woken after the lock.
        self.wake();
    }

    /// Whether [`set_deadline`](Node::set_deadline) was called since the last
    /// [`forget_deadline_set`](Node::forget_deadline_set).
    pub(crate) fn deadline_was_set(&self) -> bool {
        self.deadline_set.load(Ordering::Acquire)
    }

    pub(crate) fn forget_deadline_set(&self) {
        self.deadline_set.store(false, Ordering::Release);
    }

    /// The earliest deadline from this node up to (and including) the nearest shield.
    pub(crate) fn effective_deadline(&self) -> Option<Instant> {
        let mut best = self.deadline();
        if !self.is_shield() {
            self.find_up(Node::is_shield, |node| {
                if let Some(d) = node.deadline().filter(|_| !node.is_finished()) {
                    best = Some(best.map_or(d, |b| b.min(d)));
                }
                None::<()>
            });
        }
        best
    }

    // ----- holds -----

    /// Counts a hold on this node and its ancestors up to its task's root, or up to the
    /// nearest shield: a shield holds the scopes around it itself, wherever it is polled
    /// (see `Scoped`), so what it holds inside stays inside.
    fn add_holds(&self, up: bool) {
        self.add_hold(up);
        // Invariant 8: the walk stops at the task's root, before its parent link (which may
        // move), and at a shield; the links it follows are fixed (invariant 6), so the
        // release walks the same nodes.
        if !self.ends_holds() {
            self.find_up(Node::ends_holds, |node| {
                node.add_hold(up);
                None::<()>
            });
        }
    }

    /// Whether the holds counted from below end at this node: a task's root or a shield.
    #[inline]
    fn ends_holds(&self) -> bool {
        self.is_task_root() || self.is_shield()
    }

    /// Whether a hold counted from this node counts on `node` too: it is this node, or an
    /// ancestor that [`add_holds`](Node::add_holds) reaches (up to the task's root or the
    /// nearest shield).
    pub(crate) fn holds_up_to(&self, node: &Node) -> bool {
        let target = (node as *const Node).cast::<()>();
        let found = |n: &Node| n.is_at(target).then_some(());
        self.is_at(target) || !self.ends_holds() && self.find_up(Node::ends_holds, found).is_some()
    }

    /// Takes on the cancellation of a parent that is cancelled (unless a shield).
    pub(crate) fn inherit(&self, parent_cancelled: bool) {
        // Invariant 5: the child's half of "linked or told".
        if parent_cancelled && !self.is_shield() {
            self.propagate();
        }
    }

    fn add_hold(&self, up: bool) {
        if up {
            self.holds.fetch_add(1, Ordering::AcqRel);
        } else if self.holds.fetch_sub(1, Ordering::SeqCst) == 1
            && self.cancelled.load(Ordering::SeqCst)
        {
            // Invariant 8: a cancelled runner may be waiting for its last hold to go, and
            // this one may go elsewhere (a kept shield that moved on, or finished in
            // another task): wake it to drop its body. (Spurious when it goes in that runner's
            // own poll, which then ends the body anyway.) Both sequentially consistent,
            // with the mark's swap and `has_holds`: with acquire and release only, this
            // read could miss a mark that a runner saw before it read the count we are
            // taking away, and neither would wake the runner (found by the loom model
            // `hold_released_while_cancel_walks`).
            self.wake();
        }
    }
}

impl<X: Tag + 'static> Node<X> {
    /// A nursery's (or subgroup's, or polled group's) new node `node`, put under
    /// `parent` on entry and linked there, inheriting its cancellation. The nursery's
    /// tasks run elsewhere, so a cancellation must find the nursery through `parent`'s
    /// child list.
    pub(crate) fn attach(mut node: Node<X>, parent: &Arc<Node>) -> Arc<Node<X>> {
        debug_assert!(node.link == Link::Shared && node.parent.is_none());
        // Invariant 6: set before anyone else can follow it.
        node.parent = Some(parent.clone());
        node.link = Link::Attached;
        let node = Arc::new(node);
        // The scopes between here and the task's root join their parents' lists too:
        // left out, they would learn of an enclosing cancellation only when this task
        // next polls them, and the nursery's tasks, which run elsewhere, not until then.
        parent.link_ancestors();
        let erased: Arc<Node> = node.clone();
        erased.inherit(erased.insert_into(parent));
        node
    }
}

impl Node {
    /// A node with nothing else to carry, [attached](Node::attach) under `parent`.
    pub(crate) fn attached(shield: bool, parent: &Arc<Node>) -> Arc<Node> {
        Node::attach(Node::with_ext(shield, false, ()), parent)
    }

    /// Links this scope and its unlinked ancestors in the same task, up to the nearest
    /// linked one or shield, each into its parent's child list (as
    /// [`link_scope`](Node::link_scope) does), and the task's root too if it is a
    /// spawned task in its first poll (not in its nursery's list yet): else a
    /// cancellation of that nursery would not reach the new nursery's children, which
    /// run elsewhere and whose walk up stops at their own roots. Called when a nursery is
    /// entered or a `start` first polled, by the task that polls these scopes (their own
    /// runner, unless a scope future was moved to another task after its first poll).
    pub(crate) fn link_ancestors(self: &Arc<Self>) {
        self.link_up(true);
    }

    /// [`link_ancestors`](Node::link_ancestors), stopping at a shield only if
    /// `stop_at_shield`.
    #[inline]
    fn link_up(self: &Arc<Self>, stop_at_shield: bool) {
        let mut cur = self.clone();
        while !(stop_at_shield && cur.is_shield()) && cur.never_linked() {
            // A `start`ed task's root has no fixed parent: it is linked from its first
            // poll on. A run's root has no parent at all.
            let Some(parent) = cur.fixed_parent().cloned() else {
                return;
            };
            cur.inherit(cur.insert_into(&parent));
            if cur.is_task_root() {
                return;
            }
            cur = parent;
        }
    }

    /// Enters a scope under `parent`, setting its first deadline and inheriting its
    /// cancellation, without linking it into `parent`'s child list: a scope polled by
    /// its parent's own runner learns of the parent's cancellation on its next poll
    /// ([`refresh`](Node::refresh)); one polled through a combinator with its own waker
    /// links itself ([`link_scope`](Node::link_scope)).
    ///
    /// Returns whether the caller held the only reference to the node (no
    /// [`CancelHandle`](crate::CancelHandle) exists): such a scope is set up without
    /// locks, and can only be cancelled by its own deadline or its ancestors.
    pub(crate) fn enter(
        this: &mut Arc<Node>,
        parent: &Arc<Node>,
        deadline: Option<Instant>,
    ) -> bool {
        let exclusive = match Arc::get_mut(this) {
            Some(node) => {
                assert!(
                    node.link == Link::Shared && node.fixed_parent().is_none(),
                    "hatchery: internal error: scope entered twice, or a task root as a scope"
                );
                // Invariant 6: set before anyone else can follow it.
                node.parent = Some(parent.clone());
                node.link = Link::Owned;
                if deadline.is_some() {
                    node.store_deadline(deadline);
                }
                true
            }
            None => {
                // A handle exists, and may set a deadline from another thread right now
                // (invariant 11).
                if let Some(d) = deadline {
                    this.init_deadline_unless_set(d);
                }
                this.set_parent_once(parent);
                false
            }
        };
        this.refresh();
        exclusive
    }

    /// A scope node entered under `parent` as it is made (nobody else has seen it): no
    /// lock, no exclusivity check. It inherits `parent`'s cancellation like
    /// [`enter`](Node::enter), and is not linked into `parent`'s child list either.
    pub(crate) fn entered(parent: &Arc<Node>, shield: bool, deadline: Due) -> Arc<Node> {
        let mut node = Node::with_ext(shield, false, AtomicDeadline::default());
        node.parent = Some(parent.clone());
        node.link = Link::Owned;
        let node: Arc<Node> = Arc::new(node);
        if deadline != Due::Never {
            node.store_due(deadline);
        }
        node.refresh();
        node
    }

    /// Whether a done scope's node can be entered again by a new scope
    /// ([`reenter`](Node::reenter)): nothing else holds it (no handle, no child, no
    /// child list entry), it never had children, holds nothing, and has a fixed parent.
    /// The caller must also know that its waker was never registered.
    pub(crate) fn recyclable(self: &Arc<Self>) -> bool {
        let alone = Arc::strong_count(self) == 1
            && Arc::weak_count(self) == 0
            && self.link == Link::Owned
            && self.never_linked()
            && !self.has_children.load(Ordering::Relaxed)
            && self.holds.load(Ordering::Relaxed) == 0;
        if alone {
            // Invariant 10. Pairs with the release decrement of whoever dropped the last
            // other reference: its writes to the node come before ours.
            fence(Ordering::Acquire);
        }
        alone
    }

    /// Whether `ancestor` is this node or one of its ancestors.
    pub(crate) fn is_within(&self, ancestor: &Arc<Node>) -> bool {
        let target = Arc::as_ptr(ancestor).cast::<()>();
        let found = |node: &Node| node.is_at(target).then_some(());
        self.is_at(target) || self.find_up(|_| false, found).is_some()
    }

    /// Whether this node is the node at `ancestor` (by address), or below it: the walk
    /// follows fixed links only (invariant 6), without locks or reference counts, so it
    /// stops at the root of a task that `start` may move.
    pub(crate) fn is_under(&self, ancestor: *const ()) -> bool {
        std::iter::successors(Some(self), |node| node.fixed_parent().map(|p| &**p))
            .any(|node| node.is_at(ancestor))
    }

    /// Whether `parent` is this node's parent.
    #[inline]
    pub(crate) fn is_child_of(&self, parent: &Arc<Node>) -> bool {
        self.fixed_parent().is_some_and(|p| Arc::ptr_eq(p, parent))
    }

    /// Enters a [recyclable](Node::recyclable) node again, for a new scope under the
    /// same parent: as if [`entered`](Node::entered) had made it.
    pub(crate) fn reenter(&self, shield: bool, deadline: Due) {
        // Invariants 1 and 10: only the caller can see the node, so its flags may fall,
        // and the stores need no ordering of their own. Whoever it is shared with later
        // synchronizes through that sharing.
        self.shield.store(shield, Ordering::Relaxed);
        self.cancelled.store(false, Ordering::Relaxed);
        // A load, and a store only where there is a reason (rarely): no read-modify-write
        // at every timeout's entry.
        if self.reason.load(Ordering::Relaxed) != NO_REASON {
            self.reason.store(NO_REASON, Ordering::Relaxed);
            if let Some(rare) = &mut self.lock().rare {
                rare.detail = None;
            }
        }
        self.caught.store(0, Ordering::Relaxed);
        self.deadline_set.store(false, Ordering::Relaxed);
        self.finished.store(false, Ordering::Relaxed);
        self.store_due(deadline);
        self.refresh();
    }

    /// Gives a scope or nursery node its parent, through a shared reference.
    fn set_parent_once(&self, parent: &Arc<Node>) {
        // Invariant 6: once, at entry.
        let link = match self.link {
            Link::Shared => self.ext.shared_link(),
            _ => None,
        }
        .expect(
            "hatchery: internal error: entered through a shared reference without a shared link",
        );
        if link.0.set(parent.clone()).is_err() {
            panic!("hatchery: internal error: scope entered twice");
        }
    }

    /// Links an entered scope into its parent's child list, if it is not linked yet, so
    /// that the parent's cancellation marks and wakes it. Only the scope's own runner
    /// calls this.
    pub(crate) fn link_scope(self: &Arc<Self>) {
        // Invariant 3: a scope its parent's cancellation unlinked is cancelled already:
        // it stays out.
        if !self.never_linked() {
            return;
        }
        if let Some(parent) = self.fixed_parent() {
            self.inherit(self.insert_into(parent));
        }
    }

    /// Adds this node to `parent`'s child list. Returns whether `parent` is cancelled.
    fn insert_into(self: &Arc<Self>, parent: &Node) -> bool {
        let mut p = parent.lock();
        // Invariant 2: the slot key is given under the parent's lock, with the entry.
        let key = p.rare().children.insert(Arc::downgrade(self));
        let key = u32::try_from(key)
            .ok()
            .filter(|&k| k < DROPPED_KEY)
            .expect("hatchery: more than 4 billion children in one scope");
        self.key.store(key, Ordering::Release);
        // Invariant 5: pairs with `cancel_children`, which sets the flag, then reads
        // `has_children`. (A flag already set was set under this lock, which orders it for
        // us.)
        if !parent.has_children.load(Ordering::Relaxed) {
            parent.has_children.store(true, Ordering::SeqCst);
        }
        // Invariant 7: the parent may itself be an unlinked scope whose flag lags: read up
        // the tree (fixed links only, no other lock: deadlock safety 1).
        let cancelled = (parent.cancelled.load(Ordering::SeqCst) && !parent.is_finished())
            || parent.ancestors_cancelled();
        if cancelled && !self.is_shield() {
            // Invariant 4: a cancelled parent's list keeps only its shields: we take its
            // cancellation ourselves (our caller inherits it), as its walk would.
            let rare = p.rare();
            if let Some(weak) = rare.children.try_remove(key as usize) {
                keep_taken(&mut rare.taken, weak);
            }
            self.key.store(DROPPED_KEY, Ordering::Release);
        }
        cancelled
    }

    /// Links a task root into its parent's child list if it is not linked yet, and
    /// inherits the parent's cancellation. Until then the task only runs inside a poll,
    /// and cancellation reaches it at the latest here, when it suspends (a spawned task,
    /// whose walk up goes on into the nursery meanwhile, unless
    /// [`link_ancestors`](Node::link_ancestors) linked it first) or when its first poll
    /// begins (a `start`ed one).
    #[inline(always)]
    pub(crate) fn link(self: &Arc<Self>) {
        // Inline, the test that finds it linked already (a runner asks after every poll
        // that suspends): about 30 instructions a call less than a call of the whole.
        if self.key.load(Ordering::Acquire) != NO_KEY {
            return;
        }
        self.link_now();
    }

    /// [`link`](Node::link), for a node not linked yet.
    #[inline(never)]
    fn link_now(self: &Arc<Self>) {
        let inherit = match self.link {
            // Under the mutex, to serialize with `reparent` (invariant 2), and then the
            // parent's lock (deadlock safety 2).
            Link::Movable => {
                let p = self.movable().lock();
                match &*p {
                    Some(parent) if self.key.load(Ordering::Acquire) == NO_KEY => {
                        self.insert_into(parent)
                    }
                    _ => false,
                }
            }
            // Only the task's own runner links and unlinks it. (A run's root has no
            // parent.)
            Link::Root => match &self.parent {
                Some(parent) => self.insert_into(parent),
                None => false,
            },
            Link::Shared | Link::Owned | Link::Attached => {
                unreachable!("hatchery: internal error: a scope linked as a task")
            }
        };
        self.inherit(inherit);
    }

    /// Moves a task root to a new parent (used when `start` hands a task to its nursery,
    /// and when a kept `start` is awaited under another scope than before),
    /// unless the task or its old parent is cancelled already: then it stays where it is
    /// and this returns false (trio ignores such a `started` too). Checked under the old
    /// parent's lock, so a cancellation of the old parent either is seen here or does not
    /// reach the moved task.
    pub(crate) fn reparent(self: &Arc<Self>, parent: &Arc<Node>) -> bool {
        let inherit = {
            // Deadlock safety 2: our mutex, then one node lock at a time (the old parent's,
            // then the new one's in `insert_into`).
            let mut p = self.movable().lock();
            // Invariant 6: a cancelled root is never moved.
            if self.is_marked() {
                return false;
            }
            let mut linked = false;
            if let Some(old) = p.as_ref() {
                let mut inner = old.lock();
                if old.cancelled.load(Ordering::SeqCst) || old.ancestors_cancelled() {
                    // Deadlock safety 3: the cancellation is taken outside the locks.
                    drop(inner);
                    drop(p);
                    // Its walk may never reach us (a finished scope of a kept `start`
                    // is in no list): take the cancellation ourselves.
                    self.inherit(true);
                    return false;
                }
                // A linked task is "taken out" (not "never linked") until it is in its
                // new parent's list: its runner, polling on another thread meanwhile,
                // must not take the poll for its first and skip the cancellation check.
                // Invariant 2: the walk of the old parent and `take_out` take its lock,
                // and `link` and `detach` our mutex: the key is ours here.
                let key = self.key.load(Ordering::Acquire);
                linked = key != NO_KEY;
                if linked {
                    self.key.store(DROPPED_KEY, Ordering::Release);
                }
                if key < DROPPED_KEY {
                    if let Some(rare) = &mut inner.rare {
                        rare.children.try_remove(key as usize);
                    }
                }
            }
            // The old parent may go here: its `Drop` takes node locks one at a time
            // (deadlock safety 2).
            *p = Some(parent.clone());
            // A task not linked yet (its first poll has not begun: `started` came early)
            // links under its new parent when its first poll begins; it takes that
            // parent's cancellation from now on all the same.
            if linked {
                self.insert_into(parent)
            } else {
                parent.is_cancelled()
            }
        };
        self.inherit(inherit);
        true
    }
}

/// Reading the tree for [`diagnostics::tree`](crate::diagnostics::tree): only when
/// someone asks, never on the paths that run tasks and scopes.
impl Node {
    /// The ext, if it is a `T`.
    pub(crate) fn ext_ref<T: 'static>(&self) -> Option<&T> {
        self.ext.as_any()?.downcast_ref()
    }

    /// Links this node and its unlinked ancestors in its task, shields too, each into its
    /// parent's child list, and the task's root if it is not linked yet, so that a walk
    /// down from the run's root finds it: [`link_ancestors`](Node::link_ancestors)
    /// without its stop at shields (a shield in a list is kept there, invariant 4, and
    /// takes no cancellation from it). For a named scope, on entry, by its own runner.
    pub(crate) fn link_path(self: &Arc<Self>) {
        self.link_up(false);
    }

    /// The nodes in this node's child list now, in the order they joined it (slab order),
    /// then those that this node's cancellation took out of it and that have not
    /// finished (see [`Rare::taken`]).
    ///
    /// A node leaves the list when it ends, and joins lazily (see the module docs). The
    /// weak references are copied under the lock and upgraded after it (deadlock safety
    /// 3: the last strong reference of a child that ends meanwhile may be ours, and is
    /// dropped by the caller, under no lock).
    pub(crate) fn children(&self) -> Vec<Arc<Node>> {
        let (weak, listed): (Vec<Weak<Node>>, usize) = match &self.lock().rare {
            Some(rare) => {
                let listed = rare.children.iter().map(|(_, w)| w.clone());
                let weak = listed.chain(rare.taken.iter().cloned()).collect();
                (weak, rare.children.len())
            }
            None => return Vec::new(),
        };
        weak.iter()
            .enumerate()
            .filter_map(|(i, w)| w.upgrade().filter(|c| i < listed || !c.is_finished()))
            .collect()
    }
}

/// A marked child with children of its own, to take out of its parent's list (`None`:
/// the node the walk started from) under its key once the walk is done.
type TakeOut = (Option<Arc<Node>>, Arc<Node>, u32);

/// Keeps a node and its ancestors within the same task (up to the nearest shield, which
/// holds the rest itself) from dropping their bodies: while a `Hold` lives, something
/// inside them still has to finish its own work first (a nursery draining its children,
/// an active shield, a pending `start`).
pub(crate) struct Hold {
    from: Arc<Node>,
}

impl Hold {
    /// Holds `from` and every ancestor of it up to its task's root or nearest shield.
    pub(crate) fn new(from: &Arc<Node>) -> Hold {
        from.add_holds(true);
        Hold { from: from.clone() }
    }

    /// Whether this holds `node` (and its ancestors).
    pub(crate) fn is_on(&self, node: &Arc<Node>) -> bool {
        Arc::ptr_eq(&self.from, node)
    }

    /// Runs `f`, and releases `hold` (a [`Hold`], or something that owns one) if `f`
    /// unwinds: a future whose panic was caught and that is kept rather than dropped must
    /// not hold the scopes around it, or a cancelled one could never end its body.
    #[inline]
    pub(crate) fn release_on_unwind<H, R>(hold: &mut Option<H>, f: impl FnOnce() -> R) -> R {
        struct Release<'a, H>(&'a mut Option<H>);
        impl<H> Drop for Release<'_, H> {
            fn drop(&mut self) {
                self.0.take();
            }
        }
        let release = Release(hold);
        let out = f();
        std::mem::forget(release);
        out
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.from.add_holds(false);
    }
}

/// The fixtures that the cancel tree's unit tests (`tests.rs`) and loom models
/// (`loom.rs`) share, and the other tests of the crate with them: a counting waker, the
/// nodes of a small tree, a handle that counts its drops. Their atomics are loom's under
/// `--cfg hatchery_loom` (so that reading them is modelled), the standard library's
/// otherwise.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    #[cfg(hatchery_loom)]
    use loom::sync::atomic::{AtomicUsize, Ordering};
    #[cfg(not(hatchery_loom))]
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{Due, MovableLink, Node};

    /// A waker that counts its wake-ups.
    pub(crate) struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Count {
        /// A runner's waker, and its count of wake-ups.
        pub(crate) fn waker() -> (Arc<Count>, Waker) {
            let count = Arc::new(Count(AtomicUsize::new(0)));
            (count.clone(), Waker::from(count))
        }

        pub(crate) fn get(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// The root of a run: a task root with no parent.
    pub(crate) fn root() -> Arc<Node> {
        Node::new(false, true)
    }

    /// A scope entered under `parent` and linked into its child list.
    pub(crate) fn linked(parent: &Arc<Node>, shield: bool) -> Arc<Node> {
        let node = Node::entered(parent, shield, Due::Never);
        node.link_scope();
        node
    }

    /// A spawned task's root under `parent` (its nursery), not linked yet.
    pub(crate) fn task(parent: &Arc<Node>, movable: bool) -> Arc<Node> {
        match movable {
            true => Arc::new(Node::task_root(parent, MovableLink::default())),
            false => Arc::new(Node::task_root(parent, ())),
        }
    }

    /// A handle of a word (a `std` `Arc`), which counts its drops.
    pub(crate) struct Probe(pub(crate) Arc<AtomicUsize>);

    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A handle of another type than [`Probe`], also a word.
    pub(crate) struct OtherProbe {
        pub(crate) _probe: Probe,
    }
}
