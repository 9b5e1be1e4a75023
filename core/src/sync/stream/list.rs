//! The waiter storage of the memory streams: nodes with stable ids in a dense arena, each
//! on up to `K` doubly linked lists, so that finding a node by id, linking and unlinking
//! it, and removing it are O(1) (expected: the id lookup is a hash map's), and storage
//! shrinks as nodes leave.
//!
//! A waiting future keeps the id of its node (ids never repeat). The nodes are kept dense
//! in a `Vec`: removing one moves the last into its place, and the moved node's
//! neighbours (or the heads and tails of its lists) are pointed at its new place. The
//! lists themselves live outside the arena, with whoever owns them; the arena asks for a
//! node's list through [`Lists`].
//!
//! Memory: both the `Vec` and the id map shrink once they are mostly empty (see
//! [`Arena::shrink`]), so after a burst of waiters the storage comes back to a small
//! multiple of the waiters left. Each shrink copies the nodes left, which the removals
//! since the last one pay for: O(1) amortized per removal.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// "No node": the end of a list.
const NIL: u32 = u32::MAX;

/// Capacity (in nodes) that storage keeps however empty it gets.
const KEEP: usize = 16;

/// A node's place on one list.
#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
    on: bool,
}

impl Link {
    const OFF: Link = Link {
        prev: NIL,
        next: NIL,
        on: false,
    };
}

/// The ends and the length of one list of nodes.
#[derive(Clone, Copy, Debug)]
pub(super) struct List {
    head: u32,
    tail: u32,
    len: usize,
}

impl List {
    pub(super) const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        len: 0,
    };

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The first node, if any.
    pub(super) fn front(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }
}

/// Where the lists of an arena's nodes are.
pub(super) trait Lists<N> {
    /// The list that link `k` of `node` belongs to (created empty if it can be missing).
    fn list(&mut self, k: usize, node: &N) -> &mut List;

    /// Empties the list of link `k` of `node`, whose only node it was (a list that can
    /// be missing is removed; [`list`](Lists::list) makes it again).
    fn empty(&mut self, k: usize, node: &N) {
        *self.list(k, node) = List::EMPTY;
    }
}

struct Slot<N, const K: usize> {
    id: u64,
    links: [Link; K],
    node: N,
}

/// Nodes with stable ids, each on up to `K` lists.
pub(super) struct Arena<N, const K: usize> {
    slots: Vec<Slot<N, K>>,
    index: IdMap<u32>,
}

impl<N, const K: usize> Arena<N, K> {
    pub(super) fn new() -> Self {
        Arena {
            slots: Vec::new(),
            index: IdMap::default(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Where node `id` is, if it is still here.
    pub(super) fn find(&self, id: u64) -> Option<u32> {
        step();
        self.index.get(&id).copied()
    }

    /// Adds a node, on no list yet.
    pub(super) fn insert(&mut self, id: u64, node: N) -> u32 {
        step();
        let i = u32::try_from(self.slots.len())
            .ok()
            .filter(|&i| i != NIL)
            .expect("hatchery: more than 4 billion tasks waiting on one memory stream");
        self.slots.push(Slot {
            id,
            links: [Link::OFF; K],
            node,
        });
        self.index.insert(id, i);
        i
    }

    pub(super) fn node(&self, i: u32) -> &N {
        &self.slots[i as usize].node
    }

    pub(super) fn node_mut(&mut self, i: u32) -> &mut N {
        &mut self.slots[i as usize].node
    }

    /// Whether node `i` is on its list `k`.
    pub(super) fn linked(&self, i: u32, k: usize) -> bool {
        self.slots[i as usize].links[k].on
    }

    /// The node after `i` on list `k`.
    pub(super) fn next(&self, i: u32, k: usize) -> Option<u32> {
        let next = self.slots[i as usize].links[k].next;
        (next != NIL).then_some(next)
    }

    /// Every node, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &N> {
        self.slots.iter().map(|s| &s.node)
    }

    /// Puts node `i` (not on list `k`) at the back of its list `k`.
    pub(super) fn push_back(&mut self, lists: &mut impl Lists<N>, k: usize, i: u32) {
        step();
        let slot = &self.slots[i as usize];
        debug_assert!(!slot.links[k].on, "already linked");
        let list = lists.list(k, &slot.node);
        let tail = list.tail;
        list.tail = i;
        if tail == NIL {
            list.head = i;
        } else {
            self.slots[tail as usize].links[k].next = i;
        }
        list.len += 1;
        self.slots[i as usize].links[k] = Link {
            prev: tail,
            next: NIL,
            on: true,
        };
    }

    /// Puts node `i` (not on list `k`) at the front of its list `k`.
    pub(super) fn push_front(&mut self, lists: &mut impl Lists<N>, k: usize, i: u32) {
        step();
        let slot = &self.slots[i as usize];
        debug_assert!(!slot.links[k].on, "already linked");
        let list = lists.list(k, &slot.node);
        let head = list.head;
        list.head = i;
        if head == NIL {
            list.tail = i;
        } else {
            self.slots[head as usize].links[k].prev = i;
        }
        list.len += 1;
        self.slots[i as usize].links[k] = Link {
            prev: NIL,
            next: head,
            on: true,
        };
    }

    /// Takes node `i` off its list `k`, if it is on it.
    pub(super) fn unlink(&mut self, lists: &mut impl Lists<N>, k: usize, i: u32) {
        let slot = &self.slots[i as usize];
        let Link { prev, next, on } = slot.links[k];
        if !on {
            return;
        }
        step();
        if prev == NIL && next == NIL {
            // The only node on its list.
            lists.empty(k, &slot.node);
        } else {
            let list = lists.list(k, &slot.node);
            if prev == NIL {
                list.head = next;
            } else {
                self.slots[prev as usize].links[k].next = next;
            }
            if next == NIL {
                list.tail = prev;
            } else {
                self.slots[next as usize].links[k].prev = prev;
            }
            list.len -= 1;
        }
        self.slots[i as usize].links[k] = Link::OFF;
    }

    /// Removes node `i` from every list and from the arena. The last node moves into its
    /// place.
    pub(super) fn remove(&mut self, lists: &mut impl Lists<N>, i: u32) -> N {
        for k in 0..K {
            self.unlink(lists, k, i);
        }
        let removed = self.slots.swap_remove(i as usize);
        self.index.remove(&removed.id);
        if let Some(moved) = self.slots.get(i as usize) {
            // The node that was last is now at `i`: point its neighbours (or its lists'
            // ends) at its new place.
            step();
            let (id, links) = (moved.id, moved.links);
            for (k, link) in links.iter().enumerate().filter(|(_, l)| l.on) {
                if link.prev != NIL {
                    self.slots[link.prev as usize].links[k].next = i;
                }
                if link.next != NIL {
                    self.slots[link.next as usize].links[k].prev = i;
                }
                if link.prev == NIL || link.next == NIL {
                    let list = lists.list(k, &self.slots[i as usize].node);
                    if link.prev == NIL {
                        list.head = i;
                    }
                    if link.next == NIL {
                        list.tail = i;
                    }
                }
            }
            self.index.insert(id, i);
        }
        self.shrink();
        removed.node
    }

    /// Gives memory back once the storage is at most a quarter full (the `Vec`) or an
    /// eighth (the map, whose capacity is rounded up to a power of two): down to twice
    /// the nodes left. So the next shrink comes after at least half of those have left,
    /// and pays for copying the other half.
    fn shrink(&mut self) {
        let len = self.slots.len();
        if self.slots.capacity() > KEEP && len * 4 <= self.slots.capacity() {
            self.slots.shrink_to((len * 2).max(KEEP));
        }
        shrink_map(&mut self.index);
    }

    /// Bytes held by the storage (not counting what the nodes point to).
    #[cfg(all(test, not(hatchery_loom)))]
    pub(super) fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<N, K>>()
            + self.index.capacity() * std::mem::size_of::<(u64, u32)>()
    }
}

/// A hash map keyed by the stream's ids: they are distinct counters, so a multiplicative
/// hash spreads them well and costs one multiplication.
pub(super) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Shrinks `map` once it is at most an eighth full (see [`Arena::shrink`]).
pub(super) fn shrink_map<V>(map: &mut IdMap<V>) {
    let len = map.len();
    if map.capacity() > KEEP && len * 8 <= map.capacity() {
        map.shrink_to((len * 2).max(KEEP));
    }
}

/// Fibonacci hashing of a `u64` id.
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
thread_local! {
    static STEPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts one step of work on the waiter storage, in unit tests (on this thread); nothing
/// otherwise. Every lookup, link, unlink, move and every node a loop visits is a step.
#[inline]
pub(super) fn step() {
    #[cfg(test)]
    STEPS.with(|s| s.set(s.get() + 1));
}

/// The steps counted on this thread so far.
#[cfg(all(test, not(hatchery_loom)))]
pub(super) fn steps() -> u64 {
    STEPS.with(std::cell::Cell::get)
}
