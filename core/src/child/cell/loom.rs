//! A loom model of [`KeepSlot`]'s claim: two threads hand the executor's handle to the
//! same task's slot at once, as two `spawn_with` calls racing to keep it would, and the
//! last reference to the task goes on whichever thread lets go last, whose drop of the
//! node drops the handle kept (the node's own `Drop`, through `Tag::drop_kept`).
//!
//! Built only with `--cfg hatchery_loom`, which makes the node's bits loom atomics and
//! the slot's value a loom `UnsafeCell` (`slot_sync` in the parent module), so that loom
//! explores every interleaving of the writers and the drop (up to its preemption bound)
//! and fails one where the value is written twice, or written and dropped without the
//! write happening before the drop:
//!
//! ```text
//! RUSTFLAGS="--cfg hatchery_loom" cargo test -p hatchery --lib --release loom
//! ```
//!
//! Each model checks the module docs' claims: **one writer** (exactly one value is moved
//! in, the other stays in its `Handoff` for its owner to drop), **read only in the node's
//! drop** (the value kept is dropped exactly once, and loom's cell sees the write happen
//! before that drop, through the reference count's release and acquire and the node's
//! bit), and no value dropped twice or leaked.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use super::{Kept, Sched};
use crate::node::fixtures::{OtherProbe, Probe};
use crate::node::loom::model;
use crate::node::Node;

/// A task's root with an empty slot.
fn task() -> Arc<Node<Kept>> {
    Arc::new(Kept::root())
}

/// A writer's thread: hands its handle to the task's slot, lets go of its reference to
/// the task (maybe the last one, so the node's drop may run here), and says whether its
/// value was moved in. A value left behind is dropped here, by its owner.
fn writer<H: Send + 'static>(task: Arc<Node<Kept>>, handle: H) -> thread::JoinHandle<bool> {
    thread::spawn(move || {
        let mut handoff = Some(handle);
        task.ext.0.keep(task.keep_bits(), &mut handoff);
        drop(task);
        handoff.is_none()
    })
}

/// Two writers race for an empty slot, with handles of two types (one kept in place, the
/// other in a box), and the slot goes with the last reference: one value moved in and
/// dropped by the node's drop, once; the other dropped by its owner, once.
#[test]
fn loom_keep_slot_two_writers() {
    model("keep_slot_two_writers", || {
        let slot = task();
        let first = std::sync::Arc::new(AtomicUsize::new(0));
        let second = std::sync::Arc::new(AtomicUsize::new(0));
        let a = writer(slot.clone(), Probe(first.clone()));
        let b = writer(
            slot.clone(),
            OtherProbe {
                _probe: Probe(second.clone()),
            },
        );
        drop(slot);
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert!(a != b, "one writer: exactly one value is moved in");
        // Both threads have let go of the slot, so it is gone, and so is what it kept.
        let drops = (first.load(Ordering::SeqCst), second.load(Ordering::SeqCst));
        assert_eq!(drops, (1, 1), "each value is dropped once");
    });
}

/// One writer against the slot's drop on the other thread: the write happens before
/// the drop whichever thread holds the last reference, and the value is dropped once.
#[test]
fn loom_keep_slot_write_then_drop_elsewhere() {
    model("keep_slot_write_then_drop_elsewhere", || {
        let slot = task();
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let kept = writer(slot.clone(), Probe(drops.clone()));
        let other = slot.clone();
        let dropper = thread::spawn(move || drop(other));
        drop(slot);
        assert!(kept.join().unwrap(), "an empty slot takes the value");
        dropper.join().unwrap();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "the kept value is dropped once"
        );
    });
}
