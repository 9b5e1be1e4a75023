//! A loom model of [`KeepSlot`]'s compare-exchange: two threads hand the executor's
//! handle to the same task's slot at once, as two `spawn_with` calls racing to keep it
//! would, and the last reference to the slot goes on whichever thread lets go last.
//!
//! Built only with `--cfg hatchery_loom`, which makes the slot's destructor pointer a
//! loom atomic and its value a loom `UnsafeCell` (`slot_sync` in the parent module), so
//! that loom explores every interleaving of the writers and the drop (up to its
//! preemption bound) and fails one where the value is written twice, or written and
//! dropped without the write happening before the drop:
//!
//! ```text
//! RUSTFLAGS="--cfg hatchery_loom" cargo test -p hatchery --lib --release loom
//! ```
//!
//! Each model checks the module docs' claims: **one writer** (exactly one value is moved
//! in, the other stays in its `Handoff` for its owner to drop), **read only in `Drop`**
//! (the slot drops the value it keeps exactly once, and loom's cell sees the write
//! happen before that drop, through the reference count's release and acquire), and no
//! value dropped twice or leaked.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use super::{KeepSlot, Keeping};
use crate::node::loom::model;

/// A handle as an executor would hand it over: one word (a `std` `Arc`), which counts
/// its drops in a loom atomic of its own.
struct Probe(std::sync::Arc<AtomicUsize>);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A writer's thread: hands its probe to the slot, lets go of its reference to the slot
/// (maybe the last one, so the slot's drop may run here), and says whether its value was
/// moved in. A value left behind is dropped here, by its owner.
fn writer(slot: Arc<KeepSlot>, drops: std::sync::Arc<AtomicUsize>) -> thread::JoinHandle<bool> {
    thread::spawn(move || {
        let mut handoff = Some(Probe(drops));
        slot.put(&mut handoff);
        drop(slot);
        handoff.is_none()
    })
}

/// Two writers race for an empty slot, and the slot goes with the last reference: one
/// value moved in and dropped by the slot, once; the other dropped by its owner, once.
#[test]
fn loom_keep_slot_two_writers() {
    model("keep_slot_two_writers", || {
        let slot = Arc::new(KeepSlot::new());
        let first = std::sync::Arc::new(AtomicUsize::new(0));
        let second = std::sync::Arc::new(AtomicUsize::new(0));
        let a = writer(slot.clone(), first.clone());
        let b = writer(slot.clone(), second.clone());
        drop(slot);
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert!(a != b, "one writer: exactly one value is moved in");
        // Both threads have let go of the slot, so it is gone, and so is what it kept.
        assert_eq!(
            first.load(Ordering::SeqCst),
            1,
            "each value is dropped once"
        );
        assert_eq!(
            second.load(Ordering::SeqCst),
            1,
            "each value is dropped once"
        );
    });
}

/// One writer against the slot's drop on the other thread: the write happens before
/// the drop whichever thread holds the last reference, and the value is dropped once.
#[test]
fn loom_keep_slot_write_then_drop_elsewhere() {
    model("keep_slot_write_then_drop_elsewhere", || {
        let slot = Arc::new(KeepSlot::new());
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let kept = writer(slot.clone(), drops.clone());
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
