//! The waker of a node's runner, kept as its two raw words (`Waker::data` and
//! `Waker::vtable`) in two atomics: the one place of `node` with `unsafe`, so that a
//! runner that suspends again with the waker it registered last can tell so without the
//! node's lock.
//!
//! Every task's runner registers its waker after each poll that suspends, and the waker
//! is nearly always the one it registered before. Under the node's lock that took two
//! atomic read-modify-writes a poll to compare two words; without it the semaphore's
//! fan-out took 8 to 10% longer an acquisition on the one-thread backends (147 ns against
//! 163 on tokio-ct, 172 against 187 on smol-ct, the binaries alternated three times: the
//! measured need rule E4 of the book asks for; `docs/src/performance.md`, the semaphore
//! row). The slot takes the 16 bytes the waker took under the lock, beside it: no byte
//! more a node.
//!
//! # Why this is sound
//!
//! * **One owner of the waker.** The words are those of a `Waker` moved in by
//!   [`WakerSlot::replace`] and forgotten there (`ManuallyDrop`); a `Waker` is rebuilt
//!   from them (`Waker::new`) only where they leave the slot: by the next `replace`, which
//!   overwrites them first, or by the slot's `Drop`, with exclusive access. Every write
//!   happens under the node's lock (the writing methods take the lock's data as a token),
//!   so two writers never rebuild the same words, and each rebuilt waker is woken or
//!   dropped once.
//! * **Reads without the lock only compare.** [`WakerSlot::holds`] loads the two words and
//!   compares them with a waker's, never rebuilding nor dereferencing them. A load racing
//!   a write returns one word of each (a torn pair); that can only make `holds` answer
//!   wrongly, never touch memory. Why its answer is right for the one caller that acts on
//!   it, [`Node::register`](super::Node::register): only the node's runner registers,
//!   one poll after another (a future is polled through `&mut`, and moved between
//!   threads only with synchronization), so its own last write happened before its read,
//!   and between two of its polls the slot is written only by a wake, a `forget_waker` or
//!   the runner's end, each of which takes the waker out (both words null). A read that
//!   finds the runner's waker finds it there, or taken by a wake since, which polls the
//!   runner again; a read torn by such a take mixes the waker's words with nulls, which
//!   equal no waker whose words are both non-null. A no-op waker (a null data pointer)
//!   could seem kept when it was taken: it wakes nothing either way.

use std::ptr;
use std::task::{RawWakerVTable, Waker};

use super::sync::{AtomicPtr, Ordering};
use super::Inner;

/// A waker's data pointer and vtable, or two nulls (no waker). Written only under the
/// node's lock (the writing methods take its data as a token); read without it only by
/// [`holds`](WakerSlot::holds), which compares.
pub(super) struct WakerSlot {
    data: AtomicPtr<()>,
    vtable: AtomicPtr<RawWakerVTable>,
}

impl WakerSlot {
    pub(super) fn new() -> WakerSlot {
        WakerSlot {
            data: AtomicPtr::new(ptr::null_mut()),
            vtable: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Whether the waker kept is `waker` (the same data pointer and vtable, what
    /// `Waker::will_wake` compares), read without the lock.
    #[inline]
    pub(super) fn holds(&self, waker: &Waker) -> bool {
        self.vtable.load(Ordering::Acquire) == vtable_ptr(waker)
            && self.data.load(Ordering::Acquire) == waker.data().cast_mut()
    }

    /// Whether the kept waker is the placeholder of a registration under way (a waker
    /// whose data pointer is null). Under the lock.
    #[inline]
    pub(super) fn holds_placeholder(&self, _locked: &Inner) -> bool {
        !self.vtable.load(Ordering::Relaxed).is_null()
            && self.data.load(Ordering::Relaxed).is_null()
    }

    /// Keeps `waker` (or none), and returns the waker it replaces. Under the lock.
    #[inline]
    pub(super) fn replace(&self, _locked: &mut Inner, waker: Option<Waker>) -> Option<Waker> {
        let old = self.words();
        let (data, vtable) = match waker {
            Some(waker) => {
                let waker = std::mem::ManuallyDrop::new(waker);
                (waker.data().cast_mut(), vtable_ptr(&waker))
            }
            None => (ptr::null_mut(), ptr::null_mut()),
        };
        self.data.store(data, Ordering::Release);
        self.vtable.store(vtable, Ordering::Release);
        // SAFETY: the words were those of a waker moved in by an earlier `replace` and
        // not dropped (`ManuallyDrop`); they were overwritten above, under the lock that
        // every writer holds, so this is their one owner.
        old.map(|(data, vtable)| unsafe { Waker::new(data, &*vtable) })
    }

    /// Whether no waker is kept, read without the lock: only compares, as
    /// [`holds`](WakerSlot::holds) does (a racing write that takes the waker out only makes
    /// it empty sooner).
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.vtable.load(Ordering::Acquire).is_null()
    }

    /// Takes the waker out. Under the lock.
    #[inline]
    pub(super) fn take(&self, locked: &mut Inner) -> Option<Waker> {
        self.replace(locked, None)
    }

    fn words(&self) -> Option<(*const (), *const RawWakerVTable)> {
        let vtable = self.vtable.load(Ordering::Relaxed);
        (!vtable.is_null()).then(|| {
            (
                self.data.load(Ordering::Relaxed).cast_const(),
                vtable.cast_const(),
            )
        })
    }
}

impl Drop for WakerSlot {
    fn drop(&mut self) {
        // Loads, not `get_mut`: under loom the node's `Arc` is the standard library's, whose
        // ordering of the last drop after every other access loom does not see (a plain
        // load on every machine hatchery targets, as `get_mut`'s read).
        if let Some((data, vtable)) = self.words() {
            // SAFETY: as in `replace`: the words of a waker moved in and not dropped, with
            // exclusive access here.
            drop(unsafe { Waker::new(data, &*vtable) });
        }
    }
}

fn vtable_ptr(waker: &Waker) -> *mut RawWakerVTable {
    ptr::from_ref(waker.vtable()).cast_mut()
}
