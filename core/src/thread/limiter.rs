//! The default thread limiter of each runtime binding (see `to_thread::default_limiter`).
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
use crate::rt::Runtime;
use crate::sync::CapacityLimiter;

/// The default number of tokens: anyio's.
pub(super) const DEFAULT_TOKENS: usize = 40;

type Entry = (Weak<dyn Runtime>, Arc<CapacityLimiter>);

static DEFAULTS: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

thread_local! {
    static CACHE: RefCell<Option<Entry>> = const { RefCell::new(None) };
}

fn is_of(entry: &Entry, rt: &Arc<dyn Runtime>) -> bool {
    // By address only: two vtables for one type may differ between codegen units.
    entry.0.as_ptr().cast::<u8>() == Arc::as_ptr(rt).cast::<u8>()
}

/// The default limiter of `rt`, made on first use.
pub(super) fn default_of(rt: &Arc<dyn Runtime>) -> Arc<CapacityLimiter> {
    let cached = CACHE
        .try_with(|c| {
            c.borrow()
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
        let mut defaults = lock(&DEFAULTS);
        match defaults.iter().find(|e| is_of(e, rt)) {
            Some(e) => (e.0.clone(), e.1.clone()),
            None => {
                defaults.retain(|e| e.0.strong_count() > 0);
                let e = (
                    Arc::downgrade(rt),
                    Arc::new(CapacityLimiter::new(DEFAULT_TOKENS)),
                );
                defaults.push((e.0.clone(), e.1.clone()));
                e
            }
        }
    };
    let limiter = entry.1.clone();
    // The old entry is dropped outside the borrow: the last `Weak` of a runtime frees
    // its allocation, which runs no code of ours, but keep it simple.
    let old = CACHE
        .try_with(|c| c.borrow_mut().replace(entry))
        .ok()
        .flatten();
    drop(old);
    limiter
}
