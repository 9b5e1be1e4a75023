//! Which handle [`KeepSlot`] keeps in place: the one type of the process ([`IN_PLACE`]:
//! the first kept), whose destructor is noted once; a handle of any other type goes in a
//! box with its own. Each handle kept is dropped once, by its node's drop.

use std::any::TypeId;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{Kept, Sched, IN_PLACE};
use crate::node::fixtures::{OtherProbe, Probe};
use crate::node::Node;

/// Keeps `handle` in a new task's slot (which takes it: asserted); whether in a box.
fn keep<H: Send + 'static>(handle: H) -> (Arc<Node<Kept>>, bool) {
    let task = Arc::new(Kept::root());
    let mut handoff = Some(handle);
    task.ext.0.keep(task.keep_bits(), &mut handoff);
    assert!(handoff.is_none(), "an empty slot takes the handle");
    assert!(task.keep_bits().is_kept());
    let boxed = task.keep_bits().is_kept_boxed();
    (task, boxed)
}

#[test]
fn the_first_type_kept_is_kept_in_place_and_any_other_in_a_box() {
    // No other test of this binary keeps a handle: the first here is the process's first,
    // unless the order changes, which the relation below still checks.
    let first = IN_PLACE.get().is_none();
    let (probes, others) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (a, a_boxed) = keep(Probe(probes.clone()));
    let (b, b_boxed) = keep(OtherProbe {
        _probe: Probe(others.clone()),
    });
    let (c, c_boxed) = keep(Probe(probes.clone()));
    let in_place = IN_PLACE.get().expect("set by the first handle kept").0;
    if first {
        assert_eq!(
            in_place,
            TypeId::of::<Probe>(),
            "the first type kept is the one"
        );
    }
    assert_eq!(a_boxed, in_place != TypeId::of::<Probe>());
    assert_eq!(b_boxed, in_place != TypeId::of::<OtherProbe>());
    assert_eq!(c_boxed, a_boxed, "the type kept in place stays so");
    assert!(a_boxed || b_boxed, "two types are never both in place");
    // A second handle offered to a full slot stays with its owner.
    let mut late = Some(Probe(probes.clone()));
    a.ext.0.keep(a.keep_bits(), &mut late);
    assert!(late.is_some());
    drop(late);
    assert_eq!(
        probes.load(Ordering::SeqCst),
        1,
        "the one left with its owner"
    );
    // Each kept handle is dropped once, by its node's drop.
    drop((a, c));
    assert_eq!(probes.load(Ordering::SeqCst), 3);
    assert_eq!(others.load(Ordering::SeqCst), 0);
    drop(b);
    assert_eq!(others.load(Ordering::SeqCst), 1);
}
