//! Loom models of the cancel tree's races: every interleaving (up to loom's preemption
//! bound) of a few threads that cancel, link, unlink, finish, hold, move deadlines and
//! move parents, each checked against the invariants it exercises (numbered in the
//! [module docs](super)).
//!
//! Built only with `--cfg hatchery_loom`, which swaps the tree's atomics, locks and wakers
//! for loom's ([`super::sync`], which also says what is modelled and what is not):
//!
//! ```text
//! RUSTFLAGS="--cfg hatchery_loom" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test -p hatchery --lib --release loom
//! ```
//!
//! Every model checks, besides what it names:
//!
//! * no deadlock: loom fails an execution where every thread waits on a lock;
//! * no lost wake-up: a runner registers its waker, then checks the node (as the scope
//!   engine and the task runner do); if that check did not see what the other threads did
//!   (a cancellation, a released hold, a moved deadline), its waker was woken after it
//!   was registered;
//! * no use after free, no leak: nodes are `std::sync::Arc`s (safe code throughout), and
//!   each model ends by checking, through weak references, that every node it dropped is
//!   freed (a reference cycle or a reference left in a list would keep one).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use loom::sync::atomic::Ordering;
use loom::thread;

use super::fixtures::{self, linked, root, Count};
use super::{AtomicDeadline, Due, Hold, Node, Reason, SharedLink, DROPPED_KEY};

/// Runs `f` under loom (its preemption bound from `LOOM_MAX_PREEMPTIONS`, 3 if unset)
/// and prints how many executions it took. The other loom models of the crate
/// (`child::cell`'s, `child::handle`'s, `group::ready`'s) run through it too.
pub(crate) fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    let started = Instant::now();
    builder.check(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    println!(
        "loom model {name}: {} executions in {:.1?} (preemption bound {:?})",
        runs.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed(),
        builder.preemption_bound,
    );
}

/// A task root under `parent` (its nursery), linked (it has suspended once).
fn task(parent: &Arc<Node>, movable: bool) -> Arc<Node> {
    let node = fixtures::task(parent, movable);
    node.link();
    node
}

/// The live children in `parent`'s list, checking invariant 2 on the way: each entry's
/// node has that entry's slot as its key. (Released before the nodes are dropped:
/// deadlock safety 3.)
fn listed(parent: &Node) -> Vec<Arc<Node>> {
    let children: Vec<(usize, Arc<Node>)> = {
        let inner = parent.lock();
        inner.rare.as_ref().map_or_else(Vec::new, |rare| {
            rare.children
                .iter()
                .filter_map(|(key, weak)| weak.upgrade().map(|child| (key, child)))
                .collect()
        })
    };
    for (key, child) in &children {
        assert_eq!(
            child.key.load(Ordering::SeqCst) as usize,
            *key,
            "invariant 2: a listed node's key is its slot"
        );
    }
    children.into_iter().map(|(_, child)| child).collect()
}

/// Whether `child` is in `parent`'s list.
fn is_listed(parent: &Node, child: &Arc<Node>) -> bool {
    listed(parent).iter().any(|c| Arc::ptr_eq(c, child))
}

/// Invariant 4: the list of a cancelled node keeps its shields only.
fn only_shields(parent: &Node) {
    assert!(
        listed(parent).iter().all(|c| c.is_shield()),
        "invariant 4: a cancelled list keeps only shields"
    );
}

/// Every node behind `weak` has been freed.
fn freed(weak: &[Weak<Node>]) {
    for w in weak {
        assert!(w.upgrade().is_none(), "a dropped node is freed");
    }
}

/// A nursery's cancellation (a failure) against its tasks finishing: one task with a
/// scope of its own (so the walk pushes it, and takes it out after walking it) ends and
/// drops its last reference while the walk runs, and its sibling, still running, must
/// be marked and woken once.
#[test]
fn loom_cancel_against_child_finish() {
    model("cancel_against_child_finish", || {
        let root = root();
        let nursery = Node::attached(false, &root);
        let done = task(&nursery, false);
        let inside = linked(&done, false);
        let running = task(&nursery, false);
        let (woken, w) = Count::waker();
        running.register(&w);
        let weak = vec![Arc::downgrade(&done), Arc::downgrade(&inside)];

        let n = nursery.clone();
        let r = running.clone();
        let canceller = thread::spawn(move || {
            n.cancel(Reason::Failure);
            // Invariant 3: when `cancel` returns, every node still in the subtree is
            // marked.
            assert!(r.is_marked(), "a running task is left uncancelled");
        });
        // The task's runner: its scope ends, then the task (as `Scoped` and the task
        // runner do), and its last reference goes.
        inside.detach_unless_kept();
        inside.finish();
        drop(inside);
        done.detach();
        done.finish();
        drop(done);
        canceller.join().unwrap();

        assert!(running.is_marked());
        assert_eq!(woken.get(), 1, "the running task is woken once");
        assert_eq!(nursery.reason(), Some(Reason::Failure));
        only_shields(&nursery);
        freed(&weak);
    });
}

/// A scope polled through a combinator (its parent's runner would not wake it) links
/// itself into its parent's list while an ancestor is cancelled, and its runner
/// registers and checks: invariant 5, "linked or told", at the level where the parent
/// may have had no children when the walk passed it.
#[test]
fn loom_cancel_against_lazy_link() {
    model("cancel_against_lazy_link", || {
        let root = root();
        let parent = linked(&root, false);
        let scope = Node::entered(&parent, false, Due::Never);
        let (woken, w) = Count::waker();

        let r = root.clone();
        let canceller = thread::spawn(move || r.cancel(Reason::Explicit));
        // The scope's runner, as `Scoped::poll_scoped` after its body suspends.
        scope.link_scope();
        scope.register(&w);
        let seen = scope.should_drop();
        canceller.join().unwrap();

        // Invariant 5: the walk found it in the list, or it found the parent cancelled.
        assert!(scope.is_marked(), "a linked scope is left unmarked");
        assert!(seen || woken.get() >= 1, "lost wake-up");
        only_shields(&root);
        only_shields(&parent);
        assert!(!scope.is_linked());
    });
}

/// A scope leaves its parent's list (it ended) while an ancestor's cancellation walks
/// that list, and a sibling links in right after, perhaps into the slot it freed: the
/// key is removed once (invariant 2), so the sibling's entry stays until the walk or the
/// sibling's own check marks it (invariant 5).
#[test]
fn loom_cancel_against_unlink_and_relink() {
    model("cancel_against_unlink_and_relink", || {
        let root = root();
        let parent = linked(&root, false);
        // `parent` has a child, so the walk pushes it and walks its list later.
        let leaving = linked(&parent, false);
        let weak = [Arc::downgrade(&leaving)];

        let r = root.clone();
        let canceller = thread::spawn(move || r.cancel(Reason::Explicit));
        leaving.detach_unless_kept();
        leaving.finish();
        drop(leaving);
        let sibling = Node::entered(&parent, false, Due::Never);
        sibling.link_scope();
        canceller.join().unwrap();

        assert!(sibling.is_marked(), "a sibling's entry was lost");
        only_shields(&root);
        only_shields(&parent);
        freed(&weak);
    });
}

/// Two threads cancel overlapping subtrees (the root, and a scope inside): each `cancel`
/// returns only once its whole subtree is marked (invariant 3), also where the other
/// thread marks part of it; each runner is woken exactly once (by whoever marked it);
/// the shield stays listed and unmarked, with the scope inside it (invariant 4); each
/// reason is its own canceller's (invariant 1).
#[test]
fn loom_overlapping_cancels() {
    model("overlapping_cancels", || {
        let root = root();
        let a = linked(&root, false);
        let b = linked(&a, false);
        let c = linked(&b, false);
        let shield = linked(&a, true);
        let guarded = linked(&shield, false);
        let counts: Vec<_> = [&a, &b, &c, &guarded]
            .into_iter()
            .map(|node| {
                let (count, w) = Count::waker();
                node.register(&w);
                count
            })
            .collect();

        let (r, a2, b2, c2) = (root.clone(), a.clone(), b.clone(), c.clone());
        let outer = thread::spawn(move || {
            r.cancel(Reason::Explicit);
            assert!(
                a2.is_marked() && b2.is_marked() && c2.is_marked(),
                "the root's cancellation returned before its subtree was marked"
            );
        });
        b.cancel(Reason::Deadline);
        assert!(
            b.is_marked() && c.is_marked(),
            "an inner cancellation returned before its subtree was marked"
        );
        outer.join().unwrap();

        for (i, count) in counts[..3].iter().enumerate() {
            assert_eq!(count.get(), 1, "node {i} is woken once");
        }
        assert_eq!(counts[3].get(), 0, "the shielded scope is not woken");
        assert!(!shield.is_cancelled() && !guarded.is_cancelled());
        assert_eq!(
            (root.reason(), a.reason(), b.reason(), c.reason()),
            (Some(Reason::Explicit), None, Some(Reason::Deadline), None)
        );
        only_shields(&root);
        assert!(is_listed(&a, &shield) && listed(&a).len() == 1);
        only_shields(&b);
        assert!(is_listed(&shield, &guarded));
    });
}

/// A cancellation walks while the last hold on the cancelled scope goes in another thread
/// (a kept shield that finished elsewhere): the scope's runner, which registered and
/// found it still held, is woken by the release (invariant 8), or saw it free.
#[test]
fn loom_hold_released_while_cancel_walks() {
    model("hold_released_while_cancel_walks", || {
        let root = root();
        let scope = linked(&root, false);
        // A shield inside holds the scopes around it (its hold is on its parent).
        let hold = Hold::new(&scope);
        let (woken, w) = Count::waker();

        let r = root.clone();
        let canceller = thread::spawn(move || r.cancel(Reason::Explicit));
        let releaser = thread::spawn(move || drop(hold));
        // The scope's runner, as `Scoped::poll_scoped` waiting for its holds.
        scope.register(&w);
        let seen = scope.should_drop();
        canceller.join().unwrap();
        releaser.join().unwrap();

        assert!(scope.should_drop());
        assert!(
            seen || woken.get() >= 1,
            "lost wake-up: held and cancelled for good"
        );
    });
}

/// `start` hands its task to the nursery (`reparent`) while the caller's scope is
/// cancelled: either the move is refused and the task takes the cancellation, or it
/// moved out of the old list before the walk came, and the old cancellation does not
/// reach it (invariant 6); the task is in exactly one list, its key that entry's
/// (invariant 2).
#[test]
fn loom_reparent_against_cancel() {
    model("reparent_against_cancel", || {
        let root = root();
        let caller = linked(&root, false);
        let nursery = Node::attached(false, &root);
        let started = task(&caller, true);

        let c = caller.clone();
        let canceller = thread::spawn(move || c.cancel(Reason::Explicit));
        let moved = started.reparent(&nursery);
        canceller.join().unwrap();

        if moved {
            assert!(
                !started.is_cancelled(),
                "the old parent's cancellation followed"
            );
            assert!(is_listed(&nursery, &started));
        } else {
            assert!(
                started.is_marked(),
                "a refused move leaves the task uncancelled"
            );
            assert!(!is_listed(&nursery, &started));
        }
        only_shields(&caller);
        assert!(!is_listed(&caller, &started));
    });
}

/// `started` came before the task's first poll: the runner links the task (`link`, its
/// first poll beginning) while `start` moves it, and the nursery is cancelled meanwhile:
/// the task ends in one list at most, the new parent's, and takes its cancellation.
#[test]
fn loom_reparent_against_first_link() {
    model("reparent_against_first_link", || {
        let root = root();
        let caller = linked(&root, false);
        let nursery = Node::attached(false, &root);
        let started = fixtures::task(&caller, true);

        let (s, n) = (started.clone(), nursery.clone());
        let mover = thread::spawn(move || {
            assert!(s.reparent(&n), "nothing is cancelled: the move is taken");
        });
        let n = nursery.clone();
        let canceller = thread::spawn(move || n.cancel(Reason::Explicit));
        started.link();
        mover.join().unwrap();
        canceller.join().unwrap();

        assert!(!is_listed(&caller, &started), "left in the old list");
        assert!(!is_listed(&nursery, &started));
        assert_eq!(started.key.load(Ordering::SeqCst), DROPPED_KEY);
        // The new parent is cancelled: the task took its cancellation (linked after the
        // move and walked, or told on linking).
        assert!(started.is_marked(), "the new parent's cancellation is lost");
    });
}

/// A scope's deadline passes and its timer fires (the timer reads the deadline, finds it
/// passed and cancels) while a handle moves the deadline later: whichever comes first
/// wins, the handle's deadline is kept, a cancellation sticks with its reason
/// (invariant 1), and the runner learns of the outcome: it saw it, or was woken.
#[test]
fn loom_deadline_moved_while_it_fires() {
    let now = Instant::now();
    for later in [
        Duration::from_secs(3600),
        Duration::from_secs(400 * 365 * 86_400),
    ] {
        model("deadline_moved_while_it_fires", move || {
            let root = root();
            let scope = Node::entered(&root, false, Due::At(now));
            let (woken, w) = Count::waker();
            let moved = now + later;

            let s = scope.clone();
            let timer = thread::spawn(move || {
                // `scope::engine::Timer::poll` once its sleep is ready.
                if s.deadline().is_some_and(|d| d <= now) {
                    s.cancel(Reason::Deadline);
                }
            });
            let s = scope.clone();
            let handle = thread::spawn(move || s.set_deadline(Some(moved)));
            // The runner: registers, then reads what its timer must follow.
            scope.register(&w);
            let seen = (scope.deadline(), scope.is_cancelled());
            timer.join().unwrap();
            handle.join().unwrap();

            assert_eq!(
                scope.deadline(),
                Some(moved),
                "the handle's deadline is lost"
            );
            if scope.is_marked() {
                assert_eq!(scope.reason(), Some(Reason::Deadline));
            }
            let current = (scope.deadline(), scope.is_cancelled());
            assert!(seen == current || woken.get() >= 1, "lost wake-up");
        });
    }
}

/// A scope with a handle is entered with a timeout (its deadline stored on entry) while
/// the handle sets a deadline from another thread: the handle's is never overwritten
/// (invariant 11), with either deadline near (the atomic word) or far (under the lock).
#[test]
fn loom_timeout_on_entry_against_handle_deadline() {
    let now = Instant::now();
    let near = now + Duration::from_secs(60);
    let far = now + Duration::from_secs(400 * 365 * 86_400);
    for (timeout, set) in [
        (near, far),
        (far, near),
        (far, far + Duration::from_secs(1)),
    ] {
        model("timeout_on_entry_against_handle_deadline", move || {
            let root = root();
            let handle: Arc<Node> = Arc::new(Node::with_ext(
                false,
                false,
                (SharedLink::default(), AtomicDeadline::default()),
            ));
            let mut entered = handle.clone();

            let h = handle.clone();
            let setter = thread::spawn(move || h.set_deadline(Some(set)));
            let exclusive = Node::enter(&mut entered, &root, Some(timeout));
            setter.join().unwrap();

            assert!(!exclusive);
            assert_eq!(
                entered.deadline(),
                Some(set),
                "the handle's deadline is lost"
            );
        });
    }
}
