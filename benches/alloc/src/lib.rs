//! A global allocator that wraps [`System`] and counts the bytes currently allocated
//! (and the allocations made), but only while switched on.
//!
//! hatchery's benchmark needs a byte count for its memory rows and undisturbed timings
//! for all the others. A counter that is always on (one shared atomic updated by every
//! allocation and free) slows multi-threaded spawning down by half on a 2-core machine,
//! and more for the side that allocates more. Switched off, [`Counting`] costs one
//! relaxed load of a flag that nobody writes.
//!
//! ```
//! use hatchery_bench_alloc::Counting;
//!
//! #[global_allocator]
//! static ALLOCATOR: Counting = Counting::new();
//!
//! ALLOCATOR.start();
//! let v = vec![0u8; 1000];
//! assert_eq!(ALLOCATOR.stop(), 1000);
//! assert_eq!(ALLOCATOR.allocations(), 1);
//! drop(v);
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};

/// The system allocator with a switchable count of net allocated bytes and of
/// allocations.
#[derive(Debug, Default)]
pub struct Counting {
    on: AtomicBool,
    bytes: AtomicIsize,
    peak: AtomicIsize,
    allocations: AtomicUsize,
}

impl Counting {
    /// A counter, switched off.
    pub const fn new() -> Counting {
        Counting {
            on: AtomicBool::new(false),
            bytes: AtomicIsize::new(0),
            peak: AtomicIsize::new(0),
            allocations: AtomicUsize::new(0),
        }
    }

    /// Resets the counts to zero and starts counting, on every thread.
    pub fn start(&self) {
        self.bytes.store(0, Ordering::SeqCst);
        self.peak.store(0, Ordering::SeqCst);
        self.allocations.store(0, Ordering::SeqCst);
        self.on.store(true, Ordering::SeqCst);
    }

    /// The allocations (and reallocations) made between [`start`](Counting::start) and
    /// [`stop`](Counting::stop), whether freed since or not.
    pub fn allocations(&self) -> usize {
        self.allocations.load(Ordering::SeqCst)
    }

    /// The most bytes allocated (minus freed) at any moment since
    /// [`start`](Counting::start): the peak of the heap's growth, counting or stopped.
    ///
    /// ```
    /// use hatchery_bench_alloc::Counting;
    ///
    /// #[global_allocator]
    /// static ALLOCATOR: Counting = Counting::new();
    ///
    /// ALLOCATOR.start();
    /// drop(vec![0u8; 1000]);
    /// let _small = vec![0u8; 10];
    /// assert_eq!((ALLOCATOR.stop(), ALLOCATOR.peak()), (10, 1000));
    /// ```
    pub fn peak(&self) -> isize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Stops counting and returns the bytes allocated minus the bytes freed since
    /// [`start`](Counting::start) (negative if more was freed).
    pub fn stop(&self) -> isize {
        self.on.store(false, Ordering::SeqCst);
        self.bytes.load(Ordering::SeqCst)
    }

    #[inline]
    fn add(&self, bytes: isize) {
        if self.on.load(Ordering::Relaxed) {
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    #[inline]
    fn allocated(&self, bytes: isize) {
        if self.on.load(Ordering::Relaxed) {
            let now = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
            self.peak.fetch_max(now, Ordering::Relaxed);
            self.allocations.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and
// returns its result; counting touches only our own atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we forward.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            self.allocated(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            self.allocated(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator with this `layout`.
        unsafe { System.dealloc(ptr, layout) };
        self.add(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` through this allocator with this `layout`;
        // the caller upholds the rest of `GlobalAlloc::realloc`'s contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            self.allocated(new_size as isize - layout.size() as isize);
        }
        new
    }
}
