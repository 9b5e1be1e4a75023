//! The transitions of the cancel tree, node by node, without a runtime: cancellation
//! marks, shields, holds, linking and unlinking, finishing, moving a parent, and moving
//! deadlines. The invariants they check are numbered in the [module docs](super).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::fixtures::{linked, root, task, Count};
use super::{keep_taken, make_room, Detail, Due, Hold, Node, Reason};

#[test]
fn cancel_marks_the_linked_subtree_and_wakes_it() {
    let root = root();
    let a = linked(&root, false);
    let b = linked(&a, false);
    let (woken, waker) = Count::waker();
    b.register(&waker);
    root.cancel(Reason::Explicit);
    assert!(
        a.is_marked() && b.is_marked(),
        "the whole linked subtree is marked"
    );
    assert_eq!(woken.get(), 1, "the runner below is woken");
    // Invariant 1: only the node cancelled itself has a reason, and the first one sticks.
    assert_eq!(root.reason(), Some(Reason::Explicit));
    assert_eq!((a.reason(), b.reason()), (None, None));
    root.cancel(Reason::Deadline);
    assert_eq!(root.reason(), Some(Reason::Explicit));
    // Invariants 3 and 4: the marked children left the cancelled lists, taken out (not
    // "never linked", so they do not link again).
    assert!(!a.is_linked() && !a.never_linked());
    assert!(!b.is_linked() && !b.never_linked());
}

#[test]
fn a_walk_makes_room_for_its_leaves_once_and_the_tree_still_sees_them() {
    let root = root();
    let leaves: Vec<_> = (0..40).map(|_| linked(&root, false)).collect();
    root.cancel(Reason::Explicit);
    // The walk made room for its 40 leaves in one step, rather than growing the list by
    // doubling (4, 8, .., 64), with a prune at each step.
    let room = root.lock().rare.as_ref().map_or(0, |r| r.taken.capacity());
    assert!(
        (40..64).contains(&room),
        "room for the walk made once: {room}"
    );
    // The taken leaves stay visible to the task tree while they live.
    assert_eq!(root.children().len(), 40);
    drop(leaves);
    assert!(root.children().is_empty(), "an ended leaf leaves the tree");

    // Room is made once, pruning what has ended; the pushes then never prune again
    // (a prune reads every kept node).
    let kept: Vec<_> = (0..4).map(|_| super::fixtures::root()).collect();
    let mut taken: Vec<Weak<Node>> = kept.iter().map(Arc::downgrade).collect();
    taken.push(Arc::downgrade(&super::fixtures::root()));
    taken.shrink_to_fit();
    make_room(&mut taken, 10);
    assert_eq!(taken.len(), 4, "the ended entry is pruned");
    let room = taken.capacity();
    assert!(room >= 14);
    for _ in 0..10 {
        keep_taken(&mut taken, Arc::downgrade(&kept[0]));
    }
    assert_eq!((taken.len(), taken.capacity()), (14, room));
    // With room to spare, nothing is pruned or grown.
    make_room(&mut taken, room - 14);
    assert_eq!(taken.capacity(), room);
}

#[test]
fn an_unlinked_scope_follows_its_ancestors_and_refresh_marks_it() {
    let root = root();
    let a = Node::entered(&root, false, Due::Never);
    let b = Node::entered(&a, false, Due::Never);
    root.cancel(Reason::Explicit);
    // Invariant 7: the flag lags, the effective state does not.
    assert!(!a.is_marked() && !b.is_marked());
    assert!(a.is_cancelled() && b.is_cancelled());
    b.refresh();
    assert!(b.is_marked());
    // A scope entered under a cancelled parent takes the cancellation on entry.
    let c = Node::entered(&root, false, Due::Never);
    assert!(c.is_marked());
}

#[test]
fn refresh_cancelled_answers_is_cancelled_in_one_walk() {
    let root = root();
    let a = Node::entered(&root, false, Due::Never);
    let b = Node::entered(&a, false, Due::Never);
    let shield = Node::entered(&a, true, Due::Never);
    // Nothing cancelled: false, and no flag set.
    assert!(!b.refresh_cancelled() && !b.is_marked());
    // An ancestor's cancellation that has not reached the flag (invariant 7): the answer
    // is `is_cancelled`'s, and the flag now says it too.
    root.cancel(Reason::Explicit);
    assert!(!b.is_marked() && b.is_cancelled());
    assert!(b.refresh_cancelled());
    assert!(b.is_marked());
    // A shield stops it, and its own cancellation still counts.
    assert!(!shield.refresh_cancelled() && !shield.is_marked());
    shield.cancel(Reason::Explicit);
    assert!(shield.refresh_cancelled());
}

#[test]
fn a_shield_stops_its_ancestors_cancellation_but_not_its_own() {
    let root = root();
    let shield = linked(&root, true);
    let inside = linked(&shield, false);
    let unlinked = Node::entered(&shield, false, Due::Never);
    root.cancel(Reason::Explicit);
    assert!(!shield.is_marked() && !shield.is_cancelled());
    assert!(!inside.is_marked() && !unlinked.is_cancelled());
    // Invariant 4: a cancelled list keeps its shields.
    assert!(shield.is_linked());
    shield.cancel(Reason::Explicit);
    assert!(inside.is_marked() && unlinked.is_cancelled());
}

#[test]
fn a_child_that_links_into_a_cancelled_parent_takes_the_cancellation() {
    let root = root();
    root.cancel(Reason::Explicit);
    // Invariant 5, the child's half: a nursery attached under a cancelled scope.
    let nursery = Node::attached(false, &root);
    assert!(nursery.is_marked());
    // Invariant 4: and it does not stay in the cancelled list.
    assert!(!nursery.is_linked() && !nursery.never_linked());
    // A shield links all the same, and stays uncancelled.
    let shield = Node::attached(true, &root);
    assert!(shield.is_linked() && !shield.is_marked());
}

#[test]
fn a_task_links_at_its_first_suspension_and_its_walk_stops_there() {
    let nursery = root();
    let child = task(&nursery, false);
    let scope = Node::entered(&child, false, Due::Never);
    // Before it is linked, the walk goes on past the task's root into the nursery.
    nursery.cancel(Reason::Explicit);
    assert!(scope.is_cancelled());
    let nursery = root();
    let child = task(&nursery, false);
    child.link();
    assert!(child.is_linked());
    let scope = Node::entered(&child, false, Due::Never);
    nursery.cancel(Reason::Explicit);
    // Linked: the nursery's cancellation marked the root, where the walk now stops.
    assert!(child.is_marked() && scope.is_cancelled());
}

#[test]
fn is_cancelled_here_answers_as_is_cancelled_for_every_kind_of_node() {
    // Each kind of node, under a nursery that is then cancelled: the inline test of
    // `is_cancelled_here` must say what the walk says, before and after.
    let nursery = Node::attached(false, &root());
    let first_poll = task(&nursery, false);
    let linked_root = task(&nursery, false);
    linked_root.link();
    let started = task(&nursery, true);
    let run_root = root();
    let scope = Node::entered(&first_poll, false, Due::Never);
    let shield = Node::entered(&first_poll, true, Due::Never);
    let nodes = [
        &first_poll,
        &linked_root,
        &started,
        &run_root,
        &scope,
        &shield,
    ];
    let agree = |when: &str| {
        for (i, node) in nodes.iter().enumerate() {
            assert_eq!(
                node.is_cancelled_here(),
                node.is_cancelled(),
                "node {i}, {when}"
            );
        }
    };
    agree("before the cancellation");
    nursery.cancel(Reason::Explicit);
    agree("after the nursery's cancellation");
    // The task in its first poll sees it through the walk, the linked one through its
    // flag (the nursery's list marked it), the shield not at all.
    assert!(first_poll.is_cancelled_here() && !first_poll.is_marked());
    assert!(linked_root.is_cancelled_here() && linked_root.is_marked());
    assert!(scope.is_cancelled_here() && !shield.is_cancelled_here());
    run_root.cancel(Reason::Explicit);
    agree("after the run root's own cancellation");
}

#[test]
fn the_walks_step_inline_answers_as_the_walk_under_a_root() {
    // A scope directly under a task's root (linked) or a run's: `is_cancelled_here` and
    // `refresh` take the walk's one step inline (`ancestors_cancelled_near`); they must
    // say what the walk (`is_cancelled`) says, for a scope and a shield, before and
    // after each root's cancellation, and once the root has finished (invariant 9).
    let nursery = Node::attached(false, &root());
    let linked_root = task(&nursery, false);
    linked_root.link();
    let run_root = root();
    let finished_root = root();
    let make = |parent: &Arc<Node>| {
        [
            Node::entered(parent, false, Due::Never),
            Node::entered(parent, true, Due::Never),
        ]
    };
    let under = [make(&linked_root), make(&run_root), make(&finished_root)];
    let agree = |when: &str| {
        for (i, pair) in under.iter().enumerate() {
            for (j, node) in pair.iter().enumerate() {
                assert_eq!(
                    node.is_cancelled_here(),
                    node.is_cancelled(),
                    "root {i}, node {j}, {when}"
                );
            }
        }
    };
    agree("before any cancellation");
    nursery.cancel(Reason::Explicit);
    run_root.cancel(Reason::Explicit);
    finished_root.cancel(Reason::Explicit);
    agree("with every root cancelled");
    assert!(under[0][0].is_cancelled_here() && under[1][0].is_cancelled_here());
    assert!(!under[0][1].is_cancelled_here() && !under[1][1].is_cancelled_here());
    finished_root.finish();
    agree("with a root finished");
    assert!(!under[2][0].is_cancelled_here());
    // `refresh` takes the same step: the scopes under a cancelled root catch up, those
    // under a finished one or behind a shield do not.
    for (i, pair) in under.iter().enumerate() {
        for node in pair {
            node.refresh();
        }
        assert_eq!(pair[0].is_marked(), i < 2, "root {i}");
        assert!(!pair[1].is_marked(), "root {i}");
    }
}

#[test]
fn detach_leaves_the_list_and_the_cancellation_walk_then_misses_the_node() {
    let root = root();
    let a = linked(&root, false);
    a.detach();
    // Invariant 2: left by itself, `NO_KEY` again.
    assert!(!a.is_linked() && a.never_linked());
    root.cancel(Reason::Explicit);
    // Not in the list: not marked, but still cancelled in effect through its fixed parent.
    assert!(!a.is_marked() && a.is_cancelled());
    a.detach(); // idempotent
    assert!(a.never_linked());
}

#[test]
fn a_finished_node_cancels_nothing_and_no_longer_reaches_down() {
    let root = root();
    let a = linked(&root, false);
    let kept = Node::entered(&a, false, Due::Never);
    a.cancel(Reason::Explicit);
    assert!(kept.is_cancelled());
    a.finish();
    // Invariant 9: its flag stays set but no longer reaches the scope kept past it.
    assert!(a.is_marked() && !kept.is_cancelled());
    assert!(!kept.outer_cancelled(Instant::now()));
    assert_eq!(kept.orphan_reason(), Reason::Explicit);
    // A `cancel` after it finished only records the reason.
    let b = linked(&root, false);
    let under_b = linked(&b, false);
    b.finish();
    b.cancel(Reason::Deadline);
    assert_eq!(b.reason(), Some(Reason::Deadline));
    assert!(!b.is_marked() && !under_b.is_marked());
}

#[test]
fn holds_count_up_to_the_task_root_and_the_last_release_wakes() {
    let root = root();
    let a = Node::entered(&root, false, Due::Never);
    let b = Node::entered(&a, false, Due::Never);
    let hold = Hold::new(&b);
    assert!(b.has_holds() && a.has_holds() && root.has_holds());
    let (woken, waker) = Count::waker();
    a.register(&waker);
    a.cancel(Reason::Explicit);
    assert_eq!(woken.get(), 1);
    // A cancelled runner keeps its body while something inside must finish.
    assert!(a.is_cancelled() && !a.should_drop());
    a.register(&waker);
    // Invariant 8: released on the same nodes; the last release of a marked node wakes.
    drop(hold);
    assert!(!b.has_holds() && !a.has_holds() && !root.has_holds());
    assert!(a.should_drop());
    assert_eq!(woken.get(), 2);
}

#[test]
fn holds_stop_at_a_shield_and_at_a_task_root() {
    let nursery = root();
    let child = task(&nursery, false);
    let shield = Node::entered(&child, true, Due::Never);
    let inside = Node::entered(&shield, false, Due::Never);
    let hold = Hold::new(&inside);
    assert!(inside.has_holds() && shield.has_holds());
    assert!(
        !child.has_holds(),
        "a shield holds the scopes around it itself"
    );
    drop(hold);
    let hold = Hold::new(&child);
    assert!(
        child.has_holds() && !nursery.has_holds(),
        "holds never cross a task"
    );
    drop(hold);
    assert!(!child.has_holds());
}

/// `holds_up_to` (which the hold warnings use to find a scope's holders) answers for
/// exactly the nodes a hold reaches.
#[test]
fn holds_up_to_names_the_nodes_a_hold_reaches() {
    let nursery = root();
    let child = task(&nursery, false);
    let scope = Node::entered(&child, false, Due::Never);
    let shield = Node::entered(&scope, true, Due::Never);
    let inside = Node::entered(&shield, false, Due::Never);
    let _hold = Hold::new(&inside);
    for (node, held) in [
        (&inside, true),
        (&shield, true),
        (&scope, false),
        (&child, false),
    ] {
        assert_eq!(inside.holds_up_to(node), held);
        assert_eq!(node.has_holds(), held);
    }
    let _hold = Hold::new(&scope);
    for (node, held) in [
        (&scope, true),
        (&child, true),
        (&nursery, false),
        (&inside, false),
    ] {
        assert_eq!(scope.holds_up_to(node), held);
    }
    assert!(!nursery.has_holds());
}

#[test]
fn reparent_moves_a_started_task_unless_either_side_is_cancelled() {
    let caller = root();
    let nursery = root();
    let started = task(&caller, true);
    started.link();
    assert!(started.reparent(&nursery));
    // Invariant 2: the entry moved with the key.
    assert!(started.is_linked());
    caller.cancel(Reason::Explicit);
    assert!(!started.is_marked(), "the old parent no longer reaches it");
    nursery.cancel(Reason::Explicit);
    assert!(started.is_marked());
    // Invariant 6: a cancelled task is not moved.
    let other = root();
    assert!(!started.reparent(&other));
    // Nor one whose old parent is cancelled: it takes that cancellation instead (its walk
    // may never reach it).
    let caller = root();
    caller.cancel(Reason::Explicit);
    let late = task(&caller, true);
    assert!(!late.is_marked());
    assert!(!late.reparent(&root()));
    assert!(late.is_marked());
}

#[test]
fn deadlines_move_exactly_near_and_far() {
    let root = root();
    let now = Instant::now();
    let scope = Node::entered(&root, false, Due::At(now + Duration::from_secs(5)));
    assert_eq!(scope.deadline(), Some(now + Duration::from_secs(5)));
    assert!(!scope.deadline_was_set());
    scope.set_deadline(Some(now + Duration::from_secs(1)));
    assert!(scope.deadline_was_set());
    assert_eq!(scope.deadline(), Some(now + Duration::from_secs(1)));
    // Invariant 11: an instant too far for the word is kept exactly under the lock.
    let far = now + Duration::from_secs(400 * 365 * 24 * 3600);
    scope.set_deadline(Some(far));
    assert_eq!(scope.deadline(), Some(far));
    scope.set_deadline(None);
    assert_eq!(scope.deadline(), None);
    // A timeout stored on entry never overwrites a deadline a handle set.
    scope.set_deadline(Some(now));
    scope.init_deadline_unless_set(now + Duration::from_secs(60));
    assert_eq!(scope.deadline(), Some(now));
    scope.forget_deadline_set();
    scope.init_deadline_unless_set(now + Duration::from_secs(60));
    assert_eq!(scope.deadline(), Some(now + Duration::from_secs(60)));
}

#[test]
fn a_word_counted_from_a_readings_word_is_the_deadlines_word() {
    use super::{deadline_word, word_after, AtomicDeadline, FAR, NO_DEADLINE};
    let now = Instant::now();
    // Before the words' instant: a negative word.
    let earlier = AtomicDeadline::base()
        .checked_sub(Duration::from_secs(1))
        .expect("a second before the process's first deadline");
    assert!(deadline_word(earlier).expect("a word") < 0);
    let year = 365 * 24 * 3600;
    for at in [earlier, now, now + Duration::from_secs(3600)] {
        let w = deadline_word(at).expect("a near instant has a word");
        for after in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::new(1, 999_999_999),
            Duration::from_secs(100 * year),
            Duration::from_secs(300 * year),
            Duration::MAX,
        ] {
            let expected = at.checked_add(after).and_then(deadline_word);
            assert_eq!(word_after(w, after), expected, "{at:?} + {after:?}");
        }
    }
    // Never a word that means something else, nor a sum out of range.
    assert_eq!(word_after(FAR - 2, Duration::from_nanos(1)), Some(FAR - 1));
    assert_eq!(word_after(FAR - 1, Duration::from_nanos(1)), None);
    assert_eq!(word_after(FAR - 1, Duration::from_nanos(2)), None);
    assert_eq!(word_after(NO_DEADLINE, Duration::ZERO), None);
    // A node takes a word as it is.
    let root = Node::new(false, true);
    let w = deadline_word(now).unwrap();
    let scope = Node::entered(&root, false, Due::Word(w + 5));
    assert_eq!(scope.deadline(), Some(now + Duration::from_nanos(5)));
    assert_eq!(scope.deadline_word(), Some(w + 5));
}

#[test]
fn the_effective_deadline_is_the_earliest_up_to_the_nearest_shield() {
    let root = root();
    let now = Instant::now();
    let at = |secs| Some(now + Duration::from_secs(secs));
    let outer = Node::entered(&root, false, Due::At(now + Duration::from_secs(10)));
    let inner = Node::entered(&outer, false, Due::At(now + Duration::from_secs(60)));
    assert_eq!(inner.effective_deadline(), at(10));
    let shield = Node::entered(&inner, true, Due::Never);
    let below = Node::entered(&shield, false, Due::At(now + Duration::from_secs(30)));
    assert_eq!(below.effective_deadline(), at(30));
    // A finished scope's deadline no longer counts.
    outer.finish();
    assert_eq!(inner.effective_deadline(), at(60));
}

#[test]
fn a_passed_deadline_cancels_the_nearest_scope_that_came_first() {
    let root = root();
    let now = Instant::now();
    let outer = Node::entered(&root, false, Due::At(now));
    let inner = Node::entered(&outer, false, Due::At(now + Duration::from_secs(1)));
    // The inner scope's deadline came later: the outer one is cancelled, for its
    // deadline, and nothing else.
    assert!(inner.cancel_deadlines_before(now));
    assert_eq!(outer.reason(), Some(Reason::Deadline));
    assert_eq!(inner.reason(), None);
    // Polled late, past both: the outer one catches (it is cancelled from inside).
    let root2 = self::root();
    let outer = Node::entered(&root2, false, Due::At(now));
    let inner = Node::entered(&outer, false, Due::At(now));
    assert!(inner.outer_cancelled(now + Duration::from_secs(1)));
    assert_eq!(outer.reason(), Some(Reason::Deadline));
}

#[test]
fn a_node_is_reused_only_when_nothing_else_can_see_it() {
    let root = root();
    let scope = Node::entered(&root, false, Due::Never);
    assert!(scope.recyclable());
    let other = scope.clone();
    assert!(!scope.recyclable(), "another reference");
    drop(other);
    let child = linked(&scope, false);
    assert!(!scope.recyclable(), "it has had a child");
    drop(child);
    let fresh = Node::entered(&root, false, Due::Never);
    let detail = Detail::Failed {
        task: None,
        name: None,
        panicked: false,
    };
    fresh.cancel_with(Reason::Failure, detail.clone());
    assert_eq!(fresh.reason_detail(), Some((Reason::Failure, Some(detail))));
    fresh.set_caught();
    fresh.finish();
    assert!(fresh.recyclable());
    // Invariants 1 and 10: entered again, it starts over.
    fresh.reenter(false, Due::Never);
    assert!(!fresh.is_marked() && !fresh.caught() && !fresh.is_finished());
    assert_eq!(fresh.reason(), None);
    assert_eq!(fresh.reason_detail(), None);
    fresh.cancel(Reason::Deadline);
    assert_eq!(fresh.reason_detail(), Some((Reason::Deadline, None)));
}

#[test]
fn is_under_walks_up_through_task_roots() {
    let nursery = root();
    let child = task(&nursery, false);
    let scope = Node::entered(&child, false, Due::Never);
    let inner = Node::entered(&scope, true, Due::Never);
    let at = |node: &Arc<Node>| Arc::as_ptr(node).cast::<()>();
    assert!(inner.is_under(at(&child)) && child.is_under(at(&child)));
    assert!(
        inner.is_under(at(&nursery)),
        "the walk goes on above the task's root"
    );
    let sibling = task(&nursery, false);
    assert!(!inner.is_under(at(&sibling)));
    let started = task(&nursery, true);
    let deep = Node::entered(&started, false, Due::Never);
    assert!(
        !deep.is_under(at(&nursery)),
        "the walk stops at a root that `start` may move"
    );
}

/// The runner's waker (`waker.rs`): a registration with the waker kept keeps it, one with
/// another waker replaces it (only the new one is woken), a wake takes it out so that
/// the same waker registered again is kept again (the lock-free check must not find it
/// there), and the node lets go of the waker it keeps when it goes.
#[test]
fn the_runners_waker_is_kept_replaced_taken_and_let_go() {
    let root = root();
    let a = linked(&root, false);
    let (first, first_waker) = Count::waker();
    let (second, second_waker) = Count::waker();
    a.register(&first_waker);
    a.register(&first_waker);
    assert_eq!(
        Arc::strong_count(&first),
        3,
        "kept once: ours, the waker, the node's"
    );
    a.register(&second_waker);
    assert_eq!(
        Arc::strong_count(&first),
        2,
        "replaced: the node let go of the first"
    );
    a.set_deadline(None);
    assert_eq!(
        (first.get(), second.get()),
        (0, 1),
        "only the waker kept is woken"
    );
    assert_eq!(Arc::strong_count(&second), 2, "a wake takes the waker out");
    a.register(&second_waker);
    assert_eq!(
        Arc::strong_count(&second),
        3,
        "registered again after the wake"
    );
    root.cancel(Reason::Explicit);
    assert_eq!(second.get(), 2, "and woken by the cancellation");
    a.register(&second_waker);
    drop(root);
    drop(a);
    assert_eq!(
        Arc::strong_count(&second),
        2,
        "the node's drop lets its waker go"
    );
}
