//! Loom models of a polled group's queue: the real [`Ready`] (its lock, its flags' swaps,
//! its waker and its thread-local round are loom's under `--cfg hatchery_loom`,
//! `node::sync`), with children woken from other threads while the group's task takes
//! the queue and polls what it found, as `kind::polled`'s round does through
//! [`Ready::take`] and [`Ready::polling`]:
//!
//! ```text
//! RUSTFLAGS="--cfg hatchery_loom" cargo test -p hatchery --lib --release loom
//! ```
//!
//! Every model checks, besides what it names:
//!
//! * **no lost wake-up**: once every thread is done and the group has run a round for
//!   each wake-up of its task, no key is left in the queue and no child is left queued
//!   unpolled;
//! * **queued once** (invariant 1): a child is polled no more often than it was queued,
//!   and a stale or duplicate key polls nobody.

use std::sync::Arc;
use std::task::Waker;

use loom::sync::atomic::{AtomicUsize, Ordering as O};
use loom::thread;

use super::{Queue, Ready, Round};
use crate::node::fixtures::Count;
use crate::node::loom::model;
use crate::node::sync::{AtomicBool, AtomicU32, Ordering};

/// A polled child as its cell keeps it: its key and flag, and how often it was polled.
struct Child {
    key: AtomicU32,
    queued: AtomicBool,
    polls: AtomicUsize,
}

impl Child {
    /// A child placed at `key`, polled once already (its flag clear).
    fn placed(key: u32) -> Arc<Child> {
        Arc::new(Child {
            key: AtomicU32::new(key),
            queued: AtomicBool::new(false),
            polls: AtomicUsize::new(0),
        })
    }

    /// Its waker's `wake`.
    fn wake(&self, ready: &Ready) {
        ready.wake(&self.key, &self.queued);
    }
}

/// One round of the group's task: takes the queue (in a `Round`, as the group does) and
/// polls each child whose key it found, if it was queued. Whether it found anything.
fn round(ready: &Ready, children: &[Arc<Child>], taken: &mut Queue) -> bool {
    ready.take(taken);
    let mut round = Round::enter(ready, Vec::new());
    let found = !taken.keys.is_empty();
    for key in taken.keys.drain(..) {
        let child = &children[key as usize];
        if ready.polling(&child.key, &child.queued).is_some() {
            child.polls.fetch_add(1, O::SeqCst);
        }
    }
    let local = round.leave();
    assert!(local.is_empty(), "nothing woke on the round's thread");
    found
}

/// Rounds until the queue is empty, then checks that nothing is left queued.
fn drain(ready: &Ready, children: &[Arc<Child>]) {
    let mut taken = Queue::default();
    while round(ready, children, &mut taken) {}
    for child in children {
        assert!(
            !child.queued.load(Ordering::SeqCst),
            "a child left queued with no key in the queue"
        );
    }
}

/// Two threads wake the same child while the group takes the queue: it is polled at
/// least once after the wake-ups, and never more often than it was queued.
#[test]
fn loom_a_child_woken_twice_while_the_group_polls() {
    model("ready_woken_twice", || {
        let ready = Arc::new(Ready::default());
        let (wakes, waker) = Count::waker();
        ready.waker.register(&waker);
        let children = vec![Child::placed(0)];
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (ready, child) = (ready.clone(), children[0].clone());
                thread::spawn(move || child.wake(&ready))
            })
            .collect();
        let mut taken = Queue::default();
        round(&ready, &children, &mut taken);
        for t in threads {
            t.join().unwrap();
        }
        drain(&ready, &children);
        let polls = children[0].polls.load(O::SeqCst);
        assert!((1..=2).contains(&polls), "polled {polls} times");
        assert!(wakes.get() >= 1, "the group's task was woken");
        drop(waker);
    });
}

/// Two children woken from two threads: each is polled once, and the group's task is
/// woken for the batch.
#[test]
fn loom_two_children_woken_from_two_threads() {
    model("ready_two_children", || {
        let ready = Arc::new(Ready::default());
        let (wakes, waker) = Count::waker();
        ready.waker.register(&waker);
        let children = vec![Child::placed(0), Child::placed(1)];
        let threads: Vec<_> = children
            .iter()
            .map(|child| {
                let (ready, child) = (ready.clone(), child.clone());
                thread::spawn(move || child.wake(&ready))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(wakes.get() >= 1, "the group's task was woken");
        drain(&ready, &children);
        for child in &children {
            assert_eq!(child.polls.load(O::SeqCst), 1);
        }
        drop::<Waker>(waker);
    });
}
