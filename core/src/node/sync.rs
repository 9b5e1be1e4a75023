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

/// Reads an atomic through exclusive access (no synchronization).
pub(crate) trait ReadMut<T> {
    fn read_mut(&mut self) -> T;
}

#[cfg(not(all(test, hatchery_loom)))]
mod imp {
    pub(crate) use atomic_waker::AtomicWaker;
    pub(crate) use std::sync::atomic::{
        fence, AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU8, Ordering,
    };
    pub(crate) use std::sync::{Mutex, MutexGuard, OnceLock};

    impl super::ReadMut<u32> for AtomicU32 {
        #[inline]
        fn read_mut(&mut self) -> u32 {
            *self.get_mut()
        }
    }

    impl super::ReadMut<u8> for AtomicU8 {
        #[inline]
        fn read_mut(&mut self) -> u8 {
            *self.get_mut()
        }
    }
}

#[cfg(all(test, hatchery_loom))]
mod imp {
    pub(crate) use loom::future::AtomicWaker;
    pub(crate) use loom::sync::atomic::{fence, Ordering};
    pub(crate) use loom::sync::{Mutex, MutexGuard};

    /// What an atomic access does: whether a `SeqCst` fence goes before it (a load) and
    /// after it (a store).
    #[derive(Clone, Copy, PartialEq)]
    enum Access {
        Load,
        Store,
        Rmw,
    }

    /// The ordering loom applies for `order` on an access.
    fn weaken(order: Ordering, access: Access) -> Ordering {
        match (order, access) {
            (Ordering::SeqCst, Access::Rmw) => Ordering::AcqRel,
            (Ordering::SeqCst, Access::Load) => Ordering::Acquire,
            (Ordering::SeqCst, Access::Store) => Ordering::Release,
            (order, _) => order,
        }
    }

    /// Runs `f` with the ordering loom applies for `order`, and, for `SeqCst`, the fences
    /// that `access` asks for.
    fn fenced<R>(order: Ordering, access: Access, f: impl FnOnce(Ordering) -> R) -> R {
        let seq_cst = order == Ordering::SeqCst;
        if seq_cst && access != Access::Store {
            fence(Ordering::SeqCst);
        }
        let out = f(weaken(order, access));
        if seq_cst && access != Access::Load {
            fence(Ordering::SeqCst);
        }
        out
    }

    /// A wrapper of loom's `$name` with the fenced mapping of `SeqCst`, with the
    /// read-modify-writes `$op`.
    macro_rules! atomic {
        ($name:ident $(<$g:ident>)?, $t:ty $(, $op:ident)*) => {
            pub(crate) struct $name$(<$g>)?(loom::sync::atomic::$name$(<$g>)?);

            #[allow(dead_code)]
            impl$(<$g>)? $name$(<$g>)? {
                pub(crate) fn new(v: $t) -> Self {
                    Self(loom::sync::atomic::$name::new(v))
                }

                pub(crate) fn load(&self, order: Ordering) -> $t {
                    fenced(order, Access::Load, |o| self.0.load(o))
                }

                pub(crate) fn store(&self, v: $t, order: Ordering) {
                    fenced(order, Access::Store, |o| self.0.store(v, o))
                }

                pub(crate) fn swap(&self, v: $t, order: Ordering) -> $t {
                    fenced(order, Access::Rmw, |o| self.0.swap(v, o))
                }

                pub(crate) fn compare_exchange(
                    &self,
                    current: $t,
                    new: $t,
                    success: Ordering,
                    failure: Ordering,
                ) -> Result<$t, $t> {
                    let failure = weaken(failure, Access::Load);
                    fenced(success, Access::Rmw, |s| {
                        self.0.compare_exchange(current, new, s, failure)
                    })
                }

                $(
                    pub(crate) fn $op(&self, v: $t, order: Ordering) -> $t {
                        fenced(order, Access::Rmw, |o| self.0.$op(v, o))
                    }
                )*
            }

            // A load, not loom's `with_mut`: `read_mut` is called where the last `Arc` of a
            // node goes (its `Drop`), and the node's `Arc` is the standard library's, whose
            // ordering of the last drop after every other access loom does not see.
            impl$(<$g>)? super::ReadMut<$t> for $name$(<$g>)? {
                fn read_mut(&mut self) -> $t {
                    self.0.load(Ordering::Acquire)
                }
            }
        };
    }

    atomic!(AtomicBool, bool);
    atomic!(AtomicPtr<T>, *mut T);
    atomic!(AtomicU8, u8, fetch_add, fetch_sub, fetch_or);
    atomic!(AtomicU32, u32, fetch_add, fetch_sub, fetch_or);
    atomic!(AtomicI64, i64, fetch_add, fetch_sub, fetch_or);

    /// `std::sync::OnceLock`, its publication seen by loom (see the module docs).
    pub(crate) struct OnceLock<T> {
        set: loom::sync::atomic::AtomicBool,
        value: std::sync::OnceLock<T>,
    }

    impl<T> Default for OnceLock<T> {
        fn default() -> Self {
            OnceLock {
                set: loom::sync::atomic::AtomicBool::new(false),
                value: std::sync::OnceLock::new(),
            }
        }
    }

    impl<T> OnceLock<T> {
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
