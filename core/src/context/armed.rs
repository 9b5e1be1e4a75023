//! Inline groups armed in the current scope ([`ArmedGroup`]): the futures of an inline
//! combinator polled in the caller's scope until one of them asks for its context; and
//! the children of an inline nursery polled in a row, each in its own context
//! ([`with_children`]).

use std::sync::Arc;
use std::task::Waker;

use super::{with_runtime, Current, CURRENT, NO_RUNTIME};
use crate::node::Node;
use crate::rt::Runtime;

/// An armed group's node, made, and the caller's node it replaced as the current one.
pub(super) type Made = (Arc<Node>, Arc<Node>);

/// An inline group (an inline combinator's futures) polling its futures in the current
/// scope, without a node of its own: the futures run in the caller's scope, as
/// `futures::join!`'s do, until one of them asks for its context (to enter a scope, open
/// a nursery, take a hold, read the clock; [`with_current`](super::with_current),
/// [`current`](super::current)). Then, before that access, the group's node is made
/// under the current scope and installed as the current one, for the rest of that poll
/// of the group ([`with_armed_group`] then puts the caller's node back and hands the
/// group's over): whatever a future keeps of its context is the group's, so that the
/// group can cancel it. A future that never asks (a computation, a foreign future, a
/// hatchery wait, which only reads whether its scope is cancelled) needs no node, and a
/// group of such futures makes none.
///
/// Armed inside the futures of another armed group, the outer group's node is made
/// first: the inner group's goes under it.
pub(crate) struct ArmedGroup<'a> {
    c: &'a Current,
}

impl ArmedGroup<'_> {
    /// Whether the group's node has been made (and is the current node).
    #[inline]
    pub(crate) fn is_made(&self) -> bool {
        self.c.armed.get() == 0
    }

    /// The group's node: made now if it was not, and installed as the current node.
    pub(crate) fn make(&self) -> Arc<Node> {
        let c = self.c;
        if c.armed.get() != 0 {
            make_group(c);
        }
        let made = c.made.take();
        let group = made.as_ref().map(|(group, _)| group.clone());
        c.made.set(made);
        group.expect("hatchery: internal error: an armed group without its node")
    }
}

/// Runs `f` (the polls of a group's futures) with an [`ArmedGroup`] armed in the current
/// scope, and whether that scope is cancelled; then the caller's node is the current one
/// again, even on panic. Returns `f`'s result and the group's node, if it was made.
///
/// # Panics
///
/// Outside a hatchery context.
pub(crate) fn with_armed_group<R>(
    f: impl FnOnce(&ArmedGroup<'_>, bool) -> R,
) -> (R, Option<Arc<Node>>) {
    /// Puts back what the group replaced: an enclosing group's state, and the caller's
    /// node if the group's was made and installed.
    struct Restore<'a> {
        c: &'a Current,
        prev: Option<(usize, Option<Made>)>,
    }
    impl Restore<'_> {
        #[inline]
        fn restore(&mut self) -> Option<Arc<Node>> {
            let (armed, made) = self.prev.take()?;
            let c = self.c;
            // Still armed: our group's node was not made (a group armed inside ours puts
            // back what it found).
            let ours = c.armed.get() == 0;
            c.armed.set(armed);
            if !ours {
                if made.is_some() {
                    c.made.set(made);
                }
                return None;
            }
            let (group, caller) = c.made.replace(made)?;
            let replaced = c.slots.borrow_mut().node.replace(caller);
            // Not the last reference: `group` is the same node.
            drop(replaced);
            Some(group)
        }
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            // Only when unwinding out of `f`: the caller's context is put back all the
            // same.
            drop(self.restore());
        }
    }
    CURRENT.with(|c| {
        if c.armed.get() != 0 {
            // Inside an armed group's future: that group's node first, ours under it.
            make_group(c);
        }
        let (at, cancelled) = {
            let slots = c.slots.borrow();
            let node = slots.node.as_ref().expect(NO_RUNTIME);
            (Arc::as_ptr(node).cast::<u8>() as usize, node.is_cancelled())
        };
        let mut restore = Restore {
            c,
            prev: Some((c.armed.replace(at), c.made.take())),
        };
        let out = f(&ArmedGroup { c }, cancelled);
        let group = restore.restore();
        (out, group)
    })
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
    let armed = c.armed.get();
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
    let caller = slots.node.replace(group.clone());
    drop(slots);
    c.armed.set(0);
    let caller = caller.expect("the current node");
    let old = c.made.replace(Some((group, caller)));
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
