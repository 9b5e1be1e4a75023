//! The synchronization primitives of the cancel tree, all taken from here: its atomics,
//! its locks and the wakers of its runners, so that the tree's unit tests can swap them
//! for loom's and model-check its races (`--cfg hatchery_loom`, see `loom.rs`).
//!
//! `Arc` and `Weak` stay the standard library's: nodes are shared with every other layer
//! as `Arc<Node>`. So does the process-wide base instant of the deadline words (a
//! `static`, which loom's types cannot be).
//!
//! Under `cfg(all(test, hatchery_loom))`, what loom cannot take as it is has a stand-in
//! here:
//!
//! * **Atomics** are loom's, behind thin wrappers that map a `SeqCst` access to an
//!   acquire/release one with `fence(SeqCst)` around it (a load: the fence before it; a
//!   store: after it; a read-modify-write: both). Loom treats a `SeqCst` access as
//!   `AcqRel`, weaker than it is, and so reports executions no machine can produce (the
//!   store-buffer outcome of node invariant 5's handshake); it models `SeqCst` fences
//!   exactly. The fenced mapping is a correct compilation of `SeqCst` accesses (it is at
//!   least as strong), so the models may miss a bug that only a weaker-than-fenced
//!   `SeqCst` allows, never report one that cannot happen. They also give
//!   [`ReadMut::read_mut`] for `get_mut`: under loom an acquire load, not its
//!   `with_mut`, as a node's `Drop` reads through it, and loom does not see the standard
//!   `Arc`'s ordering of a node's last drop after every other access (which the
//!   runner's lock taken on every suspension used to stand in for, `waker.rs`).
//! * **`OnceLock`** (the fixed parent link) is a standard one whose value counts as set
//!   only once a loom flag, stored with release after the set and loaded with acquire
//!   before the get, says so: loom sees the publication and its ordering, which is what
//!   `OnceLock` guarantees (it is set once, by one thread: node invariant 6).
//! * **`Mutex`** is loom's, poisoning included. (A runner's waker is written under the
//!   node's mutex, in two atomics read without it to compare, `waker.rs`: so the models
//!   check the tree's use of it, register, then check; a wake after a change, through
//!   loom's lock and atomics.)

#[cfg(not(all(test, hatchery_loom)))]
mod imp {
    pub(crate) use std::sync::atomic::{
        fence, AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU8, Ordering,
    };
    pub(crate) use std::sync::{Mutex, MutexGuard, OnceLock};

    /// Reads an atomic through exclusive access (no synchronization).
    pub(crate) trait ReadMut<T> {
        fn read_mut(&mut self) -> T;
    }

    impl ReadMut<u32> for AtomicU32 {
        #[inline]
        fn read_mut(&mut self) -> u32 {
            *self.get_mut()
        }
    }

    impl ReadMut<u8> for AtomicU8 {
        #[inline]
        fn read_mut(&mut self) -> u8 {
            *self.get_mut()
        }
    }
}

#[cfg(all(test, hatchery_loom))]
mod imp {
    pub(crate) use loom::sync::atomic::{fence, Ordering};
    pub(crate) use loom::sync::{Mutex, MutexGuard};

    /// Reads an atomic through exclusive access (no synchronization).
    pub(crate) trait ReadMut<T> {
        fn read_mut(&mut self) -> T;
    }

    /// The ordering loom applies, and whether a `SeqCst` fence goes before and after.
    fn split(order: Ordering, load: bool, store: bool) -> (Ordering, bool, bool) {
        match order {
            Ordering::SeqCst => {
                let order = match (load, store) {
                    (true, true) => Ordering::AcqRel,
                    (true, false) => Ordering::Acquire,
                    _ => Ordering::Release,
                };
                (order, load, store)
            }
            order => (order, false, false),
        }
    }

    /// Runs `f` with the fences that `split` asks for.
    fn fenced<R>(before: bool, after: bool, f: impl FnOnce() -> R) -> R {
        if before {
            fence(Ordering::SeqCst);
        }
        let out = f();
        if after {
            fence(Ordering::SeqCst);
        }
        out
    }

    macro_rules! atomic {
        ($name:ident, $t:ty) => {
            pub(crate) struct $name(loom::sync::atomic::$name);

            #[allow(dead_code)]
            impl $name {
                pub(crate) fn new(v: $t) -> Self {
                    Self(loom::sync::atomic::$name::new(v))
                }

                pub(crate) fn load(&self, order: Ordering) -> $t {
                    let (o, before, _) = split(order, true, false);
                    fenced(before, false, || self.0.load(o))
                }

                pub(crate) fn store(&self, v: $t, order: Ordering) {
                    let (o, _, after) = split(order, false, true);
                    fenced(false, after, || self.0.store(v, o))
                }

                pub(crate) fn swap(&self, v: $t, order: Ordering) -> $t {
                    let (o, before, after) = split(order, true, true);
                    fenced(before, after, || self.0.swap(v, o))
                }

                pub(crate) fn compare_exchange(
                    &self,
                    current: $t,
                    new: $t,
                    success: Ordering,
                    failure: Ordering,
                ) -> Result<$t, $t> {
                    let (s, before, after) = split(success, true, true);
                    let (f, _, _) = split(failure, true, false);
                    fenced(before, after, || {
                        self.0.compare_exchange(current, new, s, f)
                    })
                }
            }
        };
    }

    macro_rules! atomic_int {
        ($name:ident, $t:ty) => {
            atomic!($name, $t);

            #[allow(dead_code)]
            impl $name {
                pub(crate) fn fetch_add(&self, v: $t, order: Ordering) -> $t {
                    let (o, before, after) = split(order, true, true);
                    fenced(before, after, || self.0.fetch_add(v, o))
                }

                pub(crate) fn fetch_sub(&self, v: $t, order: Ordering) -> $t {
                    let (o, before, after) = split(order, true, true);
                    fenced(before, after, || self.0.fetch_sub(v, o))
                }

                pub(crate) fn fetch_or(&self, v: $t, order: Ordering) -> $t {
                    let (o, before, after) = split(order, true, true);
                    fenced(before, after, || self.0.fetch_or(v, o))
                }
            }

            // A load, not loom's `with_mut`: `read_mut` is called where the last `Arc` of a
            // node goes (its `Drop`), and the node's `Arc` is the standard library's, whose
            // ordering of the last drop after every other access loom does not see.
            impl ReadMut<$t> for $name {
                fn read_mut(&mut self) -> $t {
                    self.0.load(Ordering::Acquire)
                }
            }
        };
    }

    /// `AtomicPtr`, as the other atomics (loom's, with the fenced mapping of `SeqCst`).
    pub(crate) struct AtomicPtr<T>(loom::sync::atomic::AtomicPtr<T>);

    impl<T> AtomicPtr<T> {
        pub(crate) fn new(v: *mut T) -> Self {
            Self(loom::sync::atomic::AtomicPtr::new(v))
        }

        pub(crate) fn load(&self, order: Ordering) -> *mut T {
            let (o, before, _) = split(order, true, false);
            fenced(before, false, || self.0.load(o))
        }

        pub(crate) fn store(&self, v: *mut T, order: Ordering) {
            let (o, _, after) = split(order, false, true);
            fenced(false, after, || self.0.store(v, o))
        }
    }

    atomic!(AtomicBool, bool);
    atomic_int!(AtomicU8, u8);
    atomic_int!(AtomicU32, u32);
    atomic_int!(AtomicI64, i64);

    /// `std::sync::OnceLock`, its publication seen by loom (see the module docs).
    pub(crate) struct OnceLock<T> {
        set: loom::sync::atomic::AtomicBool,
        value: std::sync::OnceLock<T>,
    }

    impl<T> OnceLock<T> {
        pub(crate) fn new() -> Self {
            OnceLock {
                set: loom::sync::atomic::AtomicBool::new(false),
                value: std::sync::OnceLock::new(),
            }
        }

        pub(crate) fn get(&self) -> Option<&T> {
            if self.set.load(Ordering::Acquire) {
                self.value.get()
            } else {
                None
            }
        }

        pub(crate) fn set(&self, value: T) -> Result<(), T> {
            self.value.set(value)?;
            self.set.store(true, Ordering::Release);
            Ok(())
        }

        pub(crate) fn take(&mut self) -> Option<T> {
            // Exclusive access: nobody can race this store.
            self.set.store(false, Ordering::Relaxed);
            self.value.take()
        }
    }
}

pub(crate) use imp::*;
