//! A loom model of the inline nurseries' ready queue: how a child's waker queues the
//! child ([`engine`](super::engine)'s `ChildWaker`, `queue` and `Ready::push`), and how a
//! round takes the queue and polls each woken child once (`Group::round`, invariant 3 of
//! the engine's module docs, "queued once").
//!
//! **This is a replica, not the engine itself.** The engine's queue is built from the
//! standard atomics, a standard `Mutex`, `atomic-waker`'s `AtomicWaker` and a
//! thread-local, and its round polls real children under a runtime: swapping all of
//! that for loom's would restructure the engine. So this module copies the protocol,
//! line for line in its atomic operations and their orderings, onto loom's types, and
//! model-checks the copy. A change to those functions of `engine.rs` (the flag's swap,
//! load and store, the push under the lock and the wake-up of whoever found the queue
//! empty, the round's swap of the queue and its clearing of the flag) must be made here
//! too.
//!
//! Built only with `--cfg hatchery_loom` (the `loom` step of `.ci/run`):
//!
//! ```text
//! RUSTFLAGS="--cfg hatchery_loom" cargo test -p hatchery --lib --release loom
//! ```
//!
//! Every model checks, besides what it names:
//!
//! * **no lost wake-up**: once every thread is done and the nursery has run a round for
//!   each wake-up of its task, no key is left in the queue and no child is left queued
//!   unpolled;
//! * **queued once**: a child is polled no more often than its flag was set (a stale or
//!   duplicate key polls nobody), and never twice for one wake-up.

use std::cell::RefCell;
use std::sync::Arc;
use std::task::Waker;

use loom::future::AtomicWaker;
use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use loom::sync::Mutex;
use loom::thread;

use crate::node::fixtures::Count;
use crate::node::loom::model;

/// The engine's `Ready`: the keys of woken children, and the task that polls the group.
struct Ready {
    keys: Mutex<Vec<u32>>,
    waker: AtomicWaker,
}

impl Ready {
    /// `Ready::push`: woken once per batch, by whoever found the queue empty.
    fn push(&self, key: u32) {
        let mut keys = self.keys.lock().unwrap();
        let first = keys.is_empty();
        keys.push(key);
        drop(keys);
        if first {
            self.waker.wake();
        }
    }
}

/// The engine's `ChildWaker`, with the count of its flag's sets and of its polls.
struct Child {
    key: AtomicU32,
    queued: AtomicBool,
    /// How often the flag went from clear to set (the queuing that a poll answers).
    sets: AtomicUsize,
    polls: AtomicUsize,
}

impl Child {
    /// A child placed at `key`, polled once already (its flag clear).
    fn placed(key: u32) -> Child {
        Child {
            key: AtomicU32::new(key),
            queued: AtomicBool::new(false),
            sets: AtomicUsize::new(0),
            polls: AtomicUsize::new(0),
        }
    }

    /// The engine's `queue`: a wake-up from another thread than the round's.
    fn wake(&self, ready: &Ready) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.sets.fetch_add(1, Ordering::SeqCst);
            let key = self.key.load(Ordering::Acquire);
            ready.push(key);
        }
    }

    /// `wake_by_ref`'s path for a wake-up on the thread running the group's round: no
    /// lock and no read-modify-write, the key pushed to the round's own list.
    fn wake_local(&self, local: &RefCell<Vec<u32>>) {
        if !self.queued.load(Ordering::Acquire) {
            self.queued.store(true, Ordering::Release);
            self.sets.fetch_add(1, Ordering::SeqCst);
            local.borrow_mut().push(self.key.load(Ordering::Acquire));
        }
    }
}

/// The nursery's side: its task registered, then `Group::round` over `children` (indexed
/// by key), each poll running `poll` (which may wake children locally).
struct Group {
    ready: Arc<Ready>,
    /// The nursery's task: counts its wake-ups (a loom atomic, so that reading it is
    /// modelled).
    task: Arc<Count>,
    waker: Waker,
    local: RefCell<Vec<u32>>,
    /// Wake-ups of the task answered by a round so far.
    answered: usize,
}

impl Group {
    /// A group with an empty queue.
    fn new() -> Group {
        let (task, waker) = Count::waker();
        Group {
            ready: Arc::new(Ready {
                keys: Mutex::new(Vec::new()),
                waker: AtomicWaker::new(),
            }),
            task,
            waker,
            local: RefCell::new(Vec::new()),
            answered: 0,
        }
    }

    /// A wake-up of `child` from another thread than the round's (`Child::wake`).
    fn wake_from_thread(&self, child: &Arc<Child>) -> thread::JoinHandle<()> {
        let (child, ready) = (child.clone(), self.ready.clone());
        thread::spawn(move || child.wake(&ready))
    }

    /// One poll of the nursery: registers its task, then one round.
    fn poll(&self, children: &[Arc<Child>], poll: impl Fn(&Child, &RefCell<Vec<u32>>)) {
        self.ready.waker.register_by_ref(&self.waker);
        let mut keys = std::mem::take(&mut *self.ready.keys.lock().unwrap());
        keys.append(&mut self.local.borrow_mut());
        for key in keys {
            let child = &children[key as usize];
            // Invariant 3.
            if !child.queued.swap(false, Ordering::AcqRel) {
                continue;
            }
            child.polls.fetch_add(1, Ordering::SeqCst);
            poll(child, &self.local);
        }
    }

    /// After every other thread is done: polls again for each wake-up of the task not
    /// answered yet, and for keys queued locally, as the executor and the round would.
    fn settle(&mut self, children: &[Arc<Child>]) {
        loop {
            let woken = self.task.get();
            if woken == self.answered && self.local.borrow().is_empty() {
                break;
            }
            self.answered = woken;
            self.poll(children, |_, _| {});
        }
        assert!(
            self.ready.keys.lock().unwrap().is_empty(),
            "no lost wake-up: a key left in the queue with the task not woken"
        );
        for child in children {
            assert!(
                !child.queued.load(Ordering::SeqCst),
                "no lost wake-up: a child left queued and unpolled"
            );
            assert!(
                child.polls.load(Ordering::SeqCst) <= child.sets.load(Ordering::SeqCst),
                "queued once: polled more often than queued"
            );
        }
    }
}

/// A wake-up from another thread against the round: the child is polled for it, in the
/// round that runs meanwhile or in one its task's wake-up brings.
#[test]
fn loom_inline_ready_wake_against_round() {
    model("inline_ready_wake_against_round", || {
        let children = [Arc::new(Child::placed(0))];
        let mut group = Group::new();
        let other = group.wake_from_thread(&children[0]);
        group.poll(&children, |_, _| {});
        other.join().unwrap();
        group.settle(&children);
        assert!(
            children[0].polls.load(Ordering::SeqCst) >= 1,
            "the wake-up is answered"
        );
    });
}

/// Two children woken from two threads at once, one batch: whoever finds the queue
/// empty wakes the task, and both children are polled, each once per queuing.
#[test]
fn loom_inline_ready_two_wakers_one_batch() {
    model("inline_ready_two_wakers_one_batch", || {
        let children = [Arc::new(Child::placed(0)), Arc::new(Child::placed(1))];
        let mut group = Group::new();
        let threads: Vec<_> = children.iter().map(|c| group.wake_from_thread(c)).collect();
        group.poll(&children, |_, _| {});
        for t in threads {
            t.join().unwrap();
        }
        group.settle(&children);
        for child in &children {
            assert_eq!(
                child.polls.load(Ordering::SeqCst),
                1,
                "each woken once, polled once"
            );
        }
    });
}

/// A child that wakes itself while polled (the local path, a plain load and store)
/// against a wake-up of it from another thread (a swap): the child may be queued twice,
/// and is still polled no more than its flag was set, and at least once after its poll.
#[test]
fn loom_inline_ready_local_wake_against_remote() {
    model("inline_ready_local_wake_against_remote", || {
        let children = [Arc::new(Child::placed(0))];
        // Queued already, as a new child is (born queued, its key in the round).
        children[0].queued.store(true, Ordering::SeqCst);
        children[0].sets.fetch_add(1, Ordering::SeqCst);
        let mut group = Group::new();
        group.local.borrow_mut().push(0);
        let other = group.wake_from_thread(&children[0]);
        // Its first poll wakes it again, on the round's thread.
        let first = std::cell::Cell::new(true);
        group.poll(&children, |child, local| {
            if first.replace(false) {
                child.wake_local(local);
            }
        });
        other.join().unwrap();
        group.settle(&children);
        assert!(
            children[0].polls.load(Ordering::SeqCst) >= 2,
            "the wake-up in its poll is answered"
        );
    });
}
