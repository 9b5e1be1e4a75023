//! A way for a runner to poll the code it drives with less than an install per poll: a
//! [`Deferred`] node, made only if the code it polls in the current scope asks for its
//! context. The context offers it to any runner; it does not know who uses it (the
//! fixed groups of `join!(Polled: ..)` defer their node, and so do scopes with a timeout
//! and nothing else, whose node is then made with their deadline: each says there what
//! it saves).

use std::sync::Arc;
use std::task::Waker;

use super::{with_current, Current, CURRENT, DEFERRED, DEFERRED_DUE, NO_RUNTIME};
use crate::node::{Due, Node};
use crate::seam::Runtime;

/// The caller's node that a deferred node replaced as the current one, once made (put
/// back when the deferral is resolved; the deferred node is the current one until then).
pub(super) type Made = Arc<Node>;

/// A runner's node, deferred: the runner polls code in the current scope, without a node
/// of its own, until that code asks for its context (to enter a scope, open a nursery,
/// take a hold, read the clock; [`with_current`](super::with_current),
/// [`current`](super::current)). Then, before that access, the runner's node is made
/// under the current scope and installed as the current one, for the rest of that poll
/// ([`Deferred::resolve`] then puts the caller's node back and hands the runner's over):
/// whatever the code keeps of its context is the runner's, so that the runner can cancel
/// it. Code that never asks (a computation, a foreign future, a hatchery wait, which only
/// reads whether its scope is cancelled) needs no node, and a runner of such code makes
/// none.
///
/// Deferred inside the code of another deferred node, the outer node is made first: the
/// inner one goes under it.
///
/// A runner that defers does so on every poll, so deferring ([`defer`](Deferred::defer)),
/// asking whether the node was made ([`deferred_made`]) and resolving each reach the
/// thread-local once, in code small enough for the compiler to inline into the runner's
/// poll, with no closure around the code's polls and nothing to move but two words:
/// what an enclosing deferral had, put back when ours is resolved. If the polls unwind, a
/// [`ResolveOnUnwind`] guard over it resolves it all the same.
pub(crate) struct Deferred {
    /// The scope an enclosing deferral was made in, if any (zero: none).
    prev_deferred: usize,
    /// The caller's node of an enclosing deferral whose node was made in this poll.
    prev_made: Option<Made>,
}

/// A scope's deferral ([`Deferred::defer_scope`]).
pub(crate) struct ScopeDeferral {
    pub(crate) deferred: Deferred,
    /// The current node, on the scope's first poll: the scope's parent, kept for the
    /// polls after it.
    pub(crate) caller: Option<Arc<Node>>,
    /// The deadline of an enclosing scope's deferral, put back when this one is resolved.
    prev_due: Option<i64>,
}

impl ScopeDeferral {
    /// [`Deferred::resolve`], and the deadline of the enclosing deferral put back.
    #[inline(always)]
    pub(crate) fn resolve(&mut self) -> Option<Arc<Node>> {
        let made = self.deferred.resolve();
        DEFERRED_DUE.set(self.prev_due);
        made
    }
}

/// Resolves a [`ScopeDeferral`] whose polls unwound (see [`ResolveOnUnwind`]).
pub(crate) struct ResolveScopeOnUnwind<'a>(pub(crate) &'a mut ScopeDeferral);

impl Drop for ResolveScopeOnUnwind<'_> {
    fn drop(&mut self) {
        drop(self.0.resolve());
    }
}

impl Deferred {
    /// Defers a node in the current scope; also returns whether that scope is cancelled.
    ///
    /// # Panics
    ///
    /// Outside a hatchery context.
    #[inline(always)]
    pub(crate) fn defer() -> (Deferred, bool) {
        make_enclosing();
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
        // (A scope's deadline is set only while its deferral is the innermost one and its
        // node not made: the node was made above, which took it.)
        let armed = Deferred {
            prev_deferred: DEFERRED.replace(at),
            prev_made,
        };
        (armed, cancelled)
    }

    /// Defers the node of a scope with a deadline (`scope::engine`), whose node would be
    /// made with the deadline's word `due` gives (given the runtime, so that a first poll
    /// reads the clock in this same access), under `caller` (its first poll: the current
    /// node, returned to be kept). Deferred only where the code is polled with the waker
    /// of the current node's runner (whose wake-up then reaches it), in `caller` itself
    /// after the first poll, that node is not cancelled, and `due` gives a word; `None`
    /// otherwise (also outside a hatchery context), and nothing is deferred.
    #[inline(always)]
    pub(crate) fn defer_scope(
        waker: &Waker,
        caller: Option<&Arc<Node>>,
        due: impl FnOnce(&dyn Runtime) -> Option<i64>,
    ) -> Option<ScopeDeferral> {
        make_enclosing();
        let (at, word, first, prev_made) = CURRENT.with(|c| {
            if !std::ptr::eq(c.waker.get(), waker) {
                return None;
            }
            let slots = c.slots.borrow();
            let (Some(node), Some(rt)) = (&slots.node, &slots.rt) else {
                return None;
            };
            let at = Arc::as_ptr(node).cast::<u8>() as usize;
            if caller.is_some_and(|caller| Arc::as_ptr(caller).cast::<u8>() as usize != at)
                || node.is_cancelled_here()
            {
                return None;
            }
            let word = due(&**rt)?;
            // The parent, kept from the first poll on.
            let first = caller.is_none().then(|| node.clone());
            Some((at, word, first, c.made.take()))
        })?;
        let deferred = Deferred {
            prev_deferred: DEFERRED.replace(at),
            prev_made,
        };
        Some(ScopeDeferral {
            deferred,
            caller: first,
            prev_due: DEFERRED_DUE.replace(Some(word)),
        })
    }

    /// Resolves the deferral: the caller's node is the current one again, and an
    /// enclosing deferral is back. Returns the deferred node, if it was made. Once
    /// only (a [`ResolveOnUnwind`] over it is forgotten then).
    #[inline(always)]
    pub(crate) fn resolve(&mut self) -> Option<Arc<Node>> {
        // Still deferred: our node was not made (a deferral inside ours puts back
        // what it found).
        let made = DEFERRED.get() == 0;
        DEFERRED.set(self.prev_deferred);
        if made || self.prev_made.is_some() {
            return restore(made, self.prev_made.take());
        }
        None
    }
}

/// Inside another deferral's code: makes its node first, for the one being made to go
/// under it (see [`Deferred::defer`]).
#[inline(always)]
fn make_enclosing() {
    if DEFERRED.get() != 0 {
        CURRENT.with(make_deferred_node);
    }
}

/// Outside a hatchery context, nothing can be deferred.
#[cold]
#[inline(never)]
fn no_runtime() -> ! {
    panic!("{}", NO_RUNTIME)
}

/// Whether the innermost deferred node has been made (and is the current node): the code
/// asked for its context since the deferral began.
#[inline(always)]
pub(crate) fn deferred_made() -> bool {
    DEFERRED.get() == 0
}

/// The innermost deferred node: made now if it was not, and installed as the
/// current node.
#[cold]
pub(crate) fn make_deferred() -> Arc<Node> {
    with_current(|c| c.map(|c| c.node.clone()))
        .expect("hatchery: internal error: a deferral without its node")
}

/// Resolves a [`Deferred`] whose polls unwound before [`Deferred::resolve`]: the
/// caller's context is put back all the same. Dropped only on unwind: forgotten once
/// the deferral is resolved.
pub(crate) struct ResolveOnUnwind<'a>(pub(crate) &'a mut Deferred);

impl Drop for ResolveOnUnwind<'_> {
    fn drop(&mut self) {
        drop(self.0.resolve());
    }
}

/// What a resolved deferral puts back besides the deferred scope: the caller's node, if
/// the deferred node was `made` and installed (returned then), and an enclosing one's
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

/// Makes the deferred node (see [`Deferred`]) and installs it, if the current node is
/// the one the deferral began in (not a scope installed inside the deferred code since,
/// which has its own parent).
#[cold]
#[inline(never)]
pub(super) fn make_deferred_node(c: &Current) {
    let deferred = DEFERRED.get();
    let Ok(mut slots) = c.slots.try_borrow_mut() else {
        return;
    };
    let Some(caller) = slots.node.as_ref() else {
        return;
    };
    if Arc::as_ptr(caller).cast::<u8>() as usize != deferred {
        return;
    }
    // A fixed group's node has no deadline; a scope's has its own, taken: only an
    // unmade scope deferral that is the innermost one has a deadline set.
    let due = DEFERRED_DUE.take().map_or(Due::Never, Due::Word);
    // A done scope's node under the same parent, if this task poll let one go.
    let group = match c.spare_node.take() {
        Some(spare) if spare.is_child_of(caller) => {
            spare.reenter(false, due);
            spare
        }
        other => {
            c.spare_node.set(other);
            Node::entered(caller, false, due)
        }
    };
    let caller = slots.node.replace(group);
    drop(slots);
    DEFERRED.set(0);
    let old = c.made.replace(caller);
    debug_assert!(old.is_none());
}
