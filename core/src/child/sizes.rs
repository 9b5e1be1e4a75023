//! What a child holds, in bytes, as the book's performance chapter ("What a child
//! holds") gives it: the chapter's table is these figures, kept true here.

use std::convert::Infallible;
use std::future::Pending;
use std::mem::size_of;

use super::cell::{Cell, KeepSlot, Label, NoKeep, Output, Queued};
use super::{Apart, ChildBody, RunState, Shown, Unshown};
use crate::node::Node;

/// A child with an empty future (no state at all).
type Empty = Pending<Result<(), Infallible>>;
type Body<D> = ChildBody<Option<Empty>, (), Infallible, (), D>;
type State = RunState<Option<Empty>, Infallible, ()>;
/// An `Arc`'s two counts, before its value.
const COUNTS: usize = 16;

/// `T` takes `bytes`, for the reason `why` gives.
#[track_caller]
fn holds<T>(bytes: usize, why: &str) {
    assert_eq!(size_of::<T>(), bytes, "{why}");
}

#[test]
fn a_child_with_an_empty_future() {
    holds::<Node<()>>(
        64,
        "the node: parent link 16, lock over its box and the runner's waker 32, counts and flags 16",
    );
    holds::<Node<crate::node::AtomicDeadline>>(
        72,
        "a scope's node: the same and its deadline's word, which a child's root does not carry",
    );
    holds::<Output<()>>(
        24,
        "the result slot with a join's waker (16, under the node's lock) and the label (8)",
    );
    holds::<State>(
        24,
        "the future 8 (an empty one: the `Option`'s flag), group 8, deadlines 8",
    );
    holds::<KeepSlot>(
        8,
        "the executor's handle alone: whether it is there is in the node's bits",
    );
    assert_eq!(size_of::<NoKeep>(), 0);
    holds::<Queued>(
        16,
        "a polled child's key and flag (8) and its group's queue (8)",
    );
    // The whole allocation: where the runtime keeps no executor handle (tokio's
    // current-thread runtime, smol), where it does (tokio's multi-thread one), and a
    // child its group polls.
    assert_eq!(COUNTS + size_of::<Node<Cell<Body<Shown>, NoKeep>>>(), 128);
    assert_eq!(COUNTS + size_of::<Node<Cell<Body<Shown>, KeepSlot>>>(), 136);
    assert_eq!(COUNTS + size_of::<Node<Cell<Body<Unshown>, Queued>>>(), 144);
}

#[test]
fn a_large_future_takes_a_word_of_the_allocation() {
    // Larger than `IN_PLACE_MAX`: in a box of its own, whose pointer is what the run
    // state keeps, and a handle kept after the child's end no more than that.
    type Large = std::future::Ready<Result<[u8; 4096], Infallible>>;
    assert!(size_of::<Large>() > super::IN_PLACE_MAX);
    assert_eq!(
        size_of::<RunState<Apart<Large>, Infallible, ()>>(),
        size_of::<State>(),
        "the box's pointer, where an empty future's flag is"
    );
}

#[test]
fn a_result_and_a_join_share_the_nodes_lock() {
    // A value of a word: the slot is no bigger than for none.
    assert_eq!(size_of::<Output<usize>>(), 32);
    assert_eq!(size_of::<Output<[usize; 4]>>(), 48);
}

#[test]
fn a_label_is_one_word() {
    holds::<Label>(8, "a location, or a box with a name");
    assert_eq!(size_of::<Option<Label>>(), 8);
}

#[test]
fn the_executor_task_and_a_sleep() {
    holds::<crate::seam::Task>(16, "one `Arc<dyn Run>` in every executor task");
    holds::<crate::time::Sleep>(
        40,
        "a sleep in a child's future: its deadline as a word beside its registration",
    );
    holds::<crate::timer::Reg>(32, "its registration, with its executor timer in place");
    holds::<crate::timer::Private>(80, "a scope's timer of its own, boxed");
}
