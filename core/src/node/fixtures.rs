//! The fixtures that the cancel tree's unit tests (`tests.rs`) and loom models
//! (`loom.rs`) share, and the other tests of the crate with them: a counting waker, the
//! nodes of a small tree, a handle that counts its drops. Their atomics are loom's under
//! `--cfg hatchery_loom` (so that reading them is modelled), the standard library's
//! otherwise.

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
