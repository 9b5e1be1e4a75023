//! A waker that runs a callback whenever it is cloned: a test's way to act at a precise
//! point inside a poll (a registration clones the waker it is given), for orderings
//! that threads alone cannot force.
#![allow(unsafe_code)]

use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Waker};

/// What a [`waker`] wakes, and what it runs when cloned.
pub struct Data {
    /// The waker that waking wakes.
    pub inner: Waker,
    /// Runs on every clone, before the clone is made.
    pub on_clone: Box<dyn Fn() + Send + Sync>,
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Data")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

static VT: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_it);

unsafe fn clone(p: *const ()) -> RawWaker {
    // SAFETY: `p` comes from `Arc::into_raw` of an `Arc<Data>` (see `waker`).
    // Not dropped, even if `on_clone` panics: the caller's waker keeps its reference.
    let a = ManuallyDrop::new(unsafe { Arc::from_raw(p.cast::<Data>()) });
    (a.on_clone)();
    RawWaker::new(Arc::into_raw(Arc::clone(&a)).cast(), &VT)
}

unsafe fn wake(p: *const ()) {
    // SAFETY: as in `clone`; this consumes the reference.
    let a = unsafe { Arc::from_raw(p.cast::<Data>()) };
    a.inner.wake_by_ref();
}

unsafe fn wake_by_ref(p: *const ()) {
    // SAFETY: as in `clone`; the reference is kept.
    let a = unsafe { Arc::from_raw(p.cast::<Data>()) };
    a.inner.wake_by_ref();
    std::mem::forget(a);
}

unsafe fn drop_it(p: *const ()) {
    // SAFETY: as in `clone`; this consumes the reference.
    drop(unsafe { Arc::from_raw(p.cast::<Data>()) });
}

/// A waker that wakes `data.inner`, and runs `data.on_clone` whenever it is cloned.
pub fn waker(data: Data) -> Waker {
    let raw = RawWaker::new(Arc::into_raw(Arc::new(data)).cast(), &VT);
    // SAFETY: the vtable functions above uphold the `RawWaker` contract.
    unsafe { Waker::from_raw(raw) }
}
