//! Loom models of the handle protocol ([`Output`]'s invariants): a handle let go of as
//! its task ends, on two threads, through the real `Output` and `Node` (whose bits and
//! whose lock, which guards the slot, are loom's under `--cfg hatchery_loom`,
//! `node::sync`, and the slot a loom cell, whose every access loom checks is under that
//! lock: invariant 4):
//!
//! ```text
//! RUSTFLAGS="--cfg hatchery_loom" cargo test -p hatchery --lib --release loom
//! ```
//!
//! Each model checks, in every interleaving (up to loom's preemption bound), that the
//! result is dropped exactly once by the time both sides are done, never left in the
//! slot (invariant 1), and that a join's waker does not stay behind it (invariant 2).

use std::panic::Location;
use std::sync::Arc;
use std::task::Waker;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::{Output, Slot};
// A task's value, which counts its drops (in a loom atomic).
use crate::child::Label;
use crate::node::fixtures::{Count, Probe as Value};
use crate::node::loom::model;
use crate::node::Node;

/// A task's node (under a nursery's) and its output, as a spawned task has them.
fn task() -> (Arc<Node>, Arc<Node>, Arc<Output<Value>>) {
    let nursery = Node::new(false, true);
    let node: Arc<Node> = Arc::new(Node::task_root(&nursery, ()));
    let output = Arc::new(Output::new(Label::new(Location::caller(), None)));
    (nursery, node, output)
}

/// The task's end on another thread: puts its value, and drops it if handed back.
fn end(
    node: &Arc<Node>,
    output: &Arc<Output<Value>>,
    drops: &Arc<AtomicUsize>,
) -> thread::JoinHandle<()> {
    let (node, output, value) = (node.clone(), output.clone(), Value(drops.clone()));
    thread::spawn(move || drop(output.put(&node, Ok(value))))
}

/// Whether the slot still holds a value, or the join's waker `waker`.
fn left(output: &Output<Value>, node: &Node, waker: Option<&Waker>) -> (bool, bool) {
    output.slot(node, |slot| {
        (
            matches!(slot, Slot::Done(Ok(_))),
            matches!((&*slot, waker), (Slot::Open(w), Some(join)) if w.will_wake(join)),
        )
    })
}

/// A handle dropped as its task ends (`TaskHandle`'s drop, no lock): the value is dropped
/// once, by whichever side came second, and not left in the slot.
#[test]
fn loom_handle_dropped_as_the_task_ends() {
    model("handle_dropped_as_the_task_ends", || {
        let (_nursery, node, output) = task();
        let drops = Arc::new(AtomicUsize::new(0));
        let ending = end(&node, &output, &drops);
        drop(output.abandon(&node));
        ending.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1, "invariant 1: dropped once");
        assert!(
            !left(&output, &node, None).0,
            "invariant 1: not left in the slot"
        );
    });
}

/// A join polled once (its waker left in the slot, or the value taken if the task was
/// done), then dropped as the task ends: the value is dropped once and not left, and the
/// waker does not stay in the slot.
#[test]
fn loom_join_dropped_as_the_task_ends() {
    model("join_dropped_as_the_task_ends", || {
        let (_nursery, node, output) = task();
        let drops = Arc::new(AtomicUsize::new(0));
        let (_, waker) = Count::waker();
        let ending = end(&node, &output, &drops);
        match output.take_or_wait(&node, &waker) {
            Ok(result) => drop(result),
            Err(replaced) => {
                drop(replaced);
                drop(output.abandon_join(&node));
            }
        }
        ending.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1, "invariant 1: dropped once");
        let (done, waiting) = left(&output, &node, Some(&waker));
        assert!(!done, "invariant 1: not left in the slot");
        assert!(!waiting, "invariant 2: the join's waker goes with it");
    });
}
