//! The polled kind of children: futures a group owns and polls in its own task, which
//! may therefore borrow from the caller and need not be `Send` ([`Polled`],
//! [`PolledLocal`]).
//!
//! # How it works
//!
//! A child is the same cell as a task's (`child`), whose owner, its [`RawTask`], the
//! group keeps in a slab instead of handing it to the executor. Its waker is its node:
//! waking it puts its key in the group's queue ([`Ready`]) and wakes the task that polls
//! the group. A poll of the group runs [`Rounds`]: each takes the keys of the woken
//! children and the new children out of the queue (one lock, the buffers swapped so that
//! neither allocates again), places the new ones, and polls each woken child once,
//! through the same driver as a task of the executor. A round costs in proportion to the
//! children woken, not to the children alive: 100,000 children cost no more per wake-up
//! than ten.
//!
//! # Invariants
//!
//! 1. **Owned, not shared.** The group (and so its future) owns every child once it is
//!    placed, and the queue owns it before: wakers and handles reach a child's node and
//!    output only, never its future. A group future that is forgotten leaves its
//!    children unpolled for good, and nothing can poll them or reach what they borrow.
//! 2. **Dropped in order.** A child's future is dropped when it finishes, or when it is
//!    cancelled at a suspension point (rule C1), or with the group, each ended in its own
//!    context (C8). Each is dropped before the group reports its end, so every borrow a
//!    child holds is released before the nursery returns.
//! 3. **On one thread.** The children of a [`PolledLocal`] nursery need not be `Send`:
//!    its future and its handle are not `Send` either, so every child is polled and
//!    dropped on the thread that awaits the nursery.

use std::marker::PhantomData;
use std::sync::Arc;
use std::task::Context;

use slab::Slab;

use super::Kind;
use crate::group::{Group, Queue, Ready, Round, UNPLACED};
use crate::seam::RawTask;

/// The children of a nursery that polls them in its own task (rule I1): futures that may
/// borrow for `'env`, and are `Send`. The nursery's future is `Send` when its body is: it
/// can be awaited in a task of a multi-threaded runtime. See [`Children`](crate::Children).
///
/// A nursery's handle is invariant in `'env`: one whose children may borrow for `'env`
/// does not pass for one whose children borrow for less, which would let a child borrow
/// what ends before the nursery does.
///
/// ```compile_fail
/// use hatchery::{Nursery, Polled};
///
/// fn shorten<'short, 'long: 'short>(n: Nursery<(), Polled<'long>>) -> Nursery<(), Polled<'short>> {
///     n
/// }
/// ```
///
/// # Examples
///
/// ```
/// use hatchery::{Nursery, Polled};
///
/// fn spawn_lens<'env>(n: &Nursery<std::io::Error, Polled<'env>>, words: &'env [&str]) {
///     for w in words {
///         n.spawn(async move { Ok(w.len()) });
///     }
/// }
///
/// # hatchery_smol::run(async {
/// let words = ["a", "bb"];
/// let w = &words;
/// Polled::nursery(|n| async move { spawn_lens(&n, w); Ok(()) }).await.unwrap();
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Polled<'env>(PhantomData<Invariant<'env>>);

/// The children of a nursery that polls them in its own task and that need not be `Send`
/// (an `Rc`, a `RefCell` borrow): [`Polled`]'s, but neither the nursery's future nor its
/// handle is `Send`. Await it in a task that stays on one thread (the future given to
/// `hatchery_tokio::run_current_thread` or `hatchery_smol::run_current_thread`, or a
/// local task of the executor). See [`Children`](crate::Children).
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use hatchery::{Nursery, PolledLocal};
///
/// fn spawn_rc<'env>(n: &Nursery<std::io::Error, PolledLocal<'env>>) {
///     let shared = Rc::new(5);
///     n.spawn(async move { Ok(*shared) });
/// }
///
/// # hatchery_smol::run_current_thread(async {
/// PolledLocal::nursery(|n| async move { spawn_rc(&n); Ok(()) }).await.unwrap();
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PolledLocal<'env>(PhantomData<(Invariant<'env>, *const ())>);

/// Makes a kind invariant in `'env` (see [`Polled`]).
type Invariant<'env> = fn(&'env ()) -> &'env ();

/// The children of a polled group, owned by its future (see the [module docs](self)):
/// `M` is `PhantomData<*const ()>` for children that need not be `Send`, which makes the
/// group's future `!Send` (invariant 3).
#[allow(unreachable_pub, missing_debug_implementations)]
pub struct Rounds<M> {
    ready: Arc<Ready>,
    children: Slab<RawTask>,
    /// What the last round took out of the queue, kept for its capacity.
    taken: Queue,
    /// The keys of children woken on this thread during the last round, for the next.
    local: Vec<u32>,
    _send: PhantomData<M>,
}

/// Rounds of children polled in one poll of the group before it yields to the executor,
/// if children keep waking each other (a group must not starve its task's neighbours, as
/// `FuturesUnordered` yields too).
const ROUNDS: usize = 32;

impl<M> Rounds<M> {
    pub(crate) fn new() -> Self {
        Rounds {
            ready: Arc::default(),
            children: Slab::new(),
            taken: Queue::default(),
            local: Vec::new(),
            _send: PhantomData,
        }
    }

    /// One round: places the new children and polls each woken child once. Whether any
    /// child was polled.
    fn round(&mut self, cx: &mut Context<'_>) -> bool {
        self.ready.take(&mut self.taken);
        if !self.local.is_empty() {
            self.taken.keys.append(&mut self.local);
        }
        if self.taken.keys.is_empty() && self.taken.new.is_empty() {
            return false;
        }
        // Children woken on this thread during the round queue themselves here, with no
        // lock; an inner group's round keeps its own meanwhile.
        let mut round = Round::enter(&self.ready, std::mem::take(&mut self.local));
        for mut child in self.taken.new.drain(..) {
            let entry = self.children.vacant_entry();
            let key = u32::try_from(entry.key())
                .ok()
                .filter(|&k| k != UNPLACED)
                .expect("hatchery: more than 4 billion children in one nursery");
            // Born queued: its first poll takes its key.
            round.placing(key);
            if child.poll(cx).is_pending() {
                entry.insert(child);
            }
        }
        for key in self.taken.keys.drain(..) {
            if let Some(child) = self.children.get_mut(key as usize) {
                if child.poll(cx).is_ready() {
                    self.children.remove(key as usize);
                }
            }
        }
        self.local = round.leave();
        true
    }
}

#[allow(private_interfaces)]
impl<M> Kind for Rounds<M> {
    fn ready(&self) -> Option<Arc<Ready>> {
        Some(self.ready.clone())
    }

    #[inline]
    fn run<E>(&mut self, _: &Group<E>, cx: &mut Context<'_>) {
        self.ready.waker.register(cx.waker());
        for _ in 0..ROUNDS {
            if !self.round(cx) {
                return;
            }
        }
        // Children keep waking each other: let the executor run others first.
        cx.waker().wake_by_ref();
    }

    fn abort<E>(&mut self, _: &Group<E>) {
        // Every child ends cancelled, in its own context: its owner goes (invariant 2).
        let mut queue = Queue::default();
        self.ready.take(&mut queue);
        drop(queue.new);
        drop(std::mem::take(&mut self.children));
    }

    // It owns its children: none runs on after it.
    const FINISH_WHEN_DROPPED: bool = true;
}

/// The kind of children of a polled combinator's group (`Polled::join` of many, `map`):
/// its group is `Send` exactly when the combinator's futures `F` are (they are the only
/// children spawned into it). Not public: the combinators make it.
#[allow(unreachable_pub, missing_debug_implementations)]
pub struct PolledOf<F>(PhantomData<F>);
