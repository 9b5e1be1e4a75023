//! The default limiters of each runtime binding: its thread limiter (see
//! `to_thread::default_limiter`) and its file limiter (see `fs::limiter`), each with the
//! pool of threads it bounds (`super::pool`; the file operations run there).
//!
//! Kept by the runtime's identity, the address of its `Arc` (a run's: `hatchery_tokio::run`
//! makes one, each test run has its own), in a process-wide list with a `Weak` of each
//! runtime: a `Weak` keeps its allocation, so no other runtime can take that address
//! while the entry lives, and an entry whose runtime is gone is let go of at the next
//! insertion. Each thread caches the last one it looked up, so the list's lock is taken
//! once per thread and runtime.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, Weak};

use super::lock;
use super::pool::Pool;
use crate::seam::Runtime;
use crate::sync::CapacityLimiter;

/// The default number of tokens: anyio's.
pub(super) const DEFAULT_TOKENS: usize = 40;

/// Which of a runtime's limiters.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// `to_thread`'s.
    Threads = 0,
    /// `hatchery::fs`'s.
    Files = 1,
}

/// A runtime binding's limiter of one kind, and the pool of threads it bounds.
pub(crate) struct Limits {
    pub(crate) limiter: Arc<CapacityLimiter>,
    pub(crate) pool: Arc<Pool>,
}

type Entry = (Weak<dyn Runtime>, Arc<Limits>);

static DEFAULTS: [Mutex<Vec<Entry>>; 2] = [Mutex::new(Vec::new()), Mutex::new(Vec::new())];

thread_local! {
    static CACHE: RefCell<[Option<Entry>; 2]> = const { RefCell::new([None, None]) };
}

fn is_of(entry: &Entry, rt: &Arc<dyn Runtime>) -> bool {
    // By address only: two vtables for one type may differ between codegen units.
    entry.0.as_ptr().cast::<u8>() == Arc::as_ptr(rt).cast::<u8>()
}

/// The default limiter of `rt` of the `kind`, made on first use with
/// [`DEFAULT_TOKENS`].
pub(crate) fn default_of(rt: &Arc<dyn Runtime>, kind: Kind) -> Arc<CapacityLimiter> {
    limits_of(rt, kind).limiter.clone()
}

/// The default limiter of `rt` of the `kind` and its pool, made on first use.
pub(crate) fn limits_of(rt: &Arc<dyn Runtime>, kind: Kind) -> Arc<Limits> {
    let k = kind as usize;
    let cached = CACHE
        .try_with(|c| {
            c.borrow()[k]
                .as_ref()
                .filter(|e| is_of(e, rt))
                .map(|e| e.1.clone())
        })
        .ok()
        .flatten();
    if let Some(limiter) = cached {
        return limiter;
    }
    let entry = {
        let mut defaults = lock(&DEFAULTS[k]);
        match defaults.iter().find(|e| is_of(e, rt)) {
            Some(e) => e.clone(),
            None => {
                defaults.retain(|e| e.0.strong_count() > 0);
                let limits = Arc::new(Limits {
                    limiter: Arc::new(CapacityLimiter::new(DEFAULT_TOKENS)),
                    pool: Arc::new(Pool::new(Arc::downgrade(rt))),
                });
                defaults.push((Arc::downgrade(rt), limits.clone()));
                (Arc::downgrade(rt), limits)
            }
        }
    };
    let limiter = entry.1.clone();
    // The old entry is dropped outside the borrow: the last `Weak` of a runtime frees
    // its allocation, which runs no code of ours, but keep it simple.
    let old = CACHE
        .try_with(|c| c.borrow_mut()[k].replace(entry))
        .ok()
        .flatten();
    drop(old);
    limiter
}
