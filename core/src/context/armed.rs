//! Inline groups armed in the current scope ([`ArmedGroup`]): the futures of an inline
//! combinator polled in the caller's scope until one of them asks for its context; and
//! the children of an inline nursery polled in a row, each in its own context
//! ([`with_children`]).

use std::sync::Arc;
use std::task::Waker;

use super::{with_runtime, Current, ARMED, CURRENT, NO_RUNTIME};
use crate::node::Node;
use crate::rt::Runtime;

/// The caller's node that an armed group's node replaced as the current one, once made
/// (put back when the group is disarmed; the group's own node is the current one until
/// then).
pub(super) type Made = Arc<Node>;

/// An inline group (an inline combinator's futures) polling its futures in the current
/// scope, without a node of its own: the futures run in the caller's scope, as
/// `futures::join!`'s do, until one of them asks for its context (to enter a scope, open
/// a nursery, take a hold, read the clock; [`with_current`](super::with_current),
/// [`current`](super::current)). Then, before that access, the group's node is made
/// under the current scope and installed as the current one, for the rest of that poll
/// of the group ([`ArmedGroup::disarm`] then puts the caller's node back and hands the
/// group's over): whatever a future keeps of its context is the group's, so that the
/// group can cancel it. A future that never asks (a computation, a foreign future, a
/// hatchery wait, which only reads whether its scope is cancelled) needs no node, and a
/// group of such futures makes none.
///
/// Armed inside the futures of another armed group, the outer group's node is made
/// first: the inner group's goes under it.
///
/// This is every poll of an inline join, so arming ([`arm`](ArmedGroup::arm)), asking
/// whether the node was made ([`armed_made`]) and disarming each reach the thread-local
/// once, in code small enough for the compiler to inline into the group's poll, with
/// no closure around the futures' polls and nothing to move but two words: what an
/// enclosing group had armed, put back when ours is disarmed. If the polls unwind, a
/// [`DisarmOnUnwind`] guard over it disarms it all the same.
pub(crate) struct ArmedGroup {
    /// The scope an enclosing group armed, if any (zero: none).
    prev_armed: usize,
    /// The caller's node of an enclosing group whose node was made in this poll.
    prev_made: Option<Made>,
}

impl ArmedGroup {
    /// Arms a group in the current scope; also returns whether that scope is cancelled.
    ///
    /// # Panics
    ///
    /// Outside a hatchery context.
    #[inline(always)]
    pub(crate) fn arm() -> (ArmedGroup, bool) {
        if ARMED.get() != 0 {
            // Inside an armed group's future: that group's node first, ours under it.
            make_enclosing();
        }
        // Kept small, so that it is inlined: what is rare is out of it.
        let (at, cancelled, prev_made) = CURRENT.with(|c| {
            let slots = c.slots.borrow();
            let (at, cancelled) = match slots.node.as_deref() {
                Some(node) => (
                    (node as *const Node).cast::<u8>() as usize,
                    node.is_cancelled(),
                ),
                None => (0, false),
            };
            (at, cancelled, c.made.take())
        });
        if at == 0 {
            no_runtime();
        }
        let armed = ArmedGroup {
            prev_armed: ARMED.replace(at),
            prev_made,
        };
        (armed, cancelled)
    }

    /// Disarms the group: the caller's node is the current one again, and what an
    /// enclosing group had armed is back. Returns the group's node, if it was made. Once
    /// only (a [`DisarmOnUnwind`] over it is forgotten then).
    #[inline(always)]
    pub(crate) fn disarm(&mut self) -> Option<Arc<Node>> {
        // Still armed: our group's node was not made (a group armed inside ours puts back
        // what it found).
        let made = ARMED.get() == 0;
        ARMED.set(self.prev_armed);
        if made || self.prev_made.is_some() {
            return restore(made, self.prev_made.take());
        }
        None
    }
}

/// Makes the node of the group armed around the one being armed (see
/// [`ArmedGroup::arm`]).
#[cold]
#[inline(never)]
fn make_enclosing() {
    CURRENT.with(make_group);
}

/// Outside a hatchery context, an inline group cannot be armed.
#[cold]
#[inline(never)]
fn no_runtime() -> ! {
    panic!("{}", NO_RUNTIME)
}

/// Whether the node of the group armed innermost has been made (and is the current
/// node): a future asked for its context since the group was armed.
#[inline(always)]
pub(crate) fn armed_made() -> bool {
    ARMED.get() == 0
}

/// The node of the group armed innermost: made now if it was not, and installed as the
/// current node.
#[cold]
pub(crate) fn make_armed() -> Arc<Node> {
    CURRENT.with(|c| {
        if ARMED.get() != 0 {
            make_group(c);
        }
        c.slots
            .borrow()
            .node
            .clone()
            .expect("hatchery: internal error: an armed group without its node")
    })
}

/// Disarms an [`ArmedGroup`] whose polls unwound before [`ArmedGroup::disarm`]: the
/// caller's context is put back all the same. Dropped only on unwind: forgotten once
/// the group is disarmed.
pub(crate) struct DisarmOnUnwind<'a>(pub(crate) &'a mut ArmedGroup);

impl Drop for DisarmOnUnwind<'_> {
    fn drop(&mut self) {
        drop(self.0.disarm());
    }
}

/// What a disarmed group puts back besides the armed scope: the caller's node, if the
/// group's node was `made` and installed (returned then), and an enclosing group's
/// caller's node (`prev_made`).
#[cold]
#[inline(never)]
fn restore(made: bool, prev_made: Option<Made>) -> Option<Arc<Node>> {
    let restore = |c: &Current| {
        if !made {
            c.made.set(prev_made);
            return None;
        }
        let caller = c.made.replace(prev_made)?;
        c.slots.borrow_mut().node.replace(caller)
    };
    // The thread may be exiting (a guard unwinding): then nothing is installed.
    CURRENT.try_with(restore).ok().flatten()
}

/// Whether a scope `node`, whose parent is the current node, is polled with `waker` by
/// the runner of that parent: then the runner's wake-up reaches it, and it need not be
/// in its parent's child list (see [`enter_node`](super::enter_node), which tells the
/// same of a scope being polled).
pub(crate) fn polled_by_parent(node: &Node, waker: &Waker) -> bool {
    CURRENT.with(|current| {
        std::ptr::eq(current.waker.get(), waker)
            && node.fixed_parent().is_some_and(|parent| {
                current.slots.borrow().node.as_ref().is_some_and(|caller| {
                    std::ptr::eq(
                        Arc::as_ptr(caller).cast::<u8>(),
                        Arc::as_ptr(parent).cast::<u8>(),
                    )
                })
            })
    })
}

/// Makes the node of the armed group (see [`ArmedGroup`]) and installs it, if the
/// current node is the one the group was armed in (not a scope installed inside one of
/// its futures since, which has its own parent).
#[cold]
#[inline(never)]
pub(super) fn make_group(c: &Current) {
    let armed = ARMED.get();
    let Ok(mut slots) = c.slots.try_borrow_mut() else {
        return;
    };
    let Some(caller) = slots.node.as_ref() else {
        return;
    };
    if Arc::as_ptr(caller).cast::<u8>() as usize != armed {
        return;
    }
    // A done scope's node under the same parent, if this task poll let one go.
    let group = match c.spare_node.take() {
        Some(spare) if spare.is_child_of(caller) => {
            spare.reenter(false, None);
            spare
        }
        other => {
            c.spare_node.set(other);
            Node::entered(caller, false, None)
        }
    };
    let caller = slots.node.replace(group);
    drop(slots);
    ARMED.set(0);
    let old = c.made.replace(caller);
    debug_assert!(old.is_none());
}

/// The children of an inline nursery being polled in a row, in one thread-local access
/// and one install of their runtime (see [`with_children`]).
pub(crate) struct Children<'a> {
    c: &'a Current,
}

/// Runs `f` (a round of an inline nursery's children) with `rt` as the runtime of the
/// current context, and the same runtime and scope as before afterwards, even on panic.
/// Each child is polled in its own context through [`Children::poll`], which costs a
/// swap of the current node and waker only: the polls of a round are what
/// [`enter_with`](super::enter_with) would make of them one by one.
pub(crate) fn with_children<R>(rt: &Arc<dyn Runtime>, f: impl FnOnce(&Children<'_>) -> R) -> R {
    with_runtime(rt, || CURRENT.with(|c| f(&Children { c })))
}

impl Children<'_> {
    /// Polls `f` with `node` (taken out of `slot`) as the current node, and `waker` as the
    /// runner's, as [`enter_with`](super::enter_with) does, and puts back the node
    /// around it (and `slot`'s) afterwards, even on panic; the spare timer and node of
    /// the poll go with it.
    #[inline]
    pub(crate) fn poll<R>(
        &self,
        slot: &mut Option<Arc<Node>>,
        waker: &Waker,
        f: impl FnOnce() -> R,
    ) -> R {
        struct Restore<'a> {
            c: &'a Current,
            slot: &'a mut Option<Arc<Node>>,
            prev: Option<Arc<Node>>,
            prev_waker: *const Waker,
        }
        impl Drop for Restore<'_> {
            #[inline]
            fn drop(&mut self) {
                let c = self.c;
                c.waker.set(self.prev_waker);
                *self.slot = std::mem::replace(&mut c.slots.borrow_mut().node, self.prev.take());
                // The child's poll is over: no spare node survives it.
                drop(c.spare_node.take());
            }
        }
        let c = self.c;
        let prev = std::mem::replace(&mut c.slots.borrow_mut().node, slot.take());
        let _restore = Restore {
            c,
            slot,
            prev,
            prev_waker: c.waker.replace(waker),
        };
        f()
    }
}
