//! Stack per nested timeout: recursive code with a timeout around each level (each level
//! boxed, as recursion needs), polled down to a given depth; the stack pointer read in
//! the innermost poll at two depths gives the bytes each level takes while it is polled.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) type Level = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The timeout of every level: long enough never to fire.
const HOUR: Duration = Duration::from_secs(3600);

/// The address of a local of this (never inlined) function: where the stack is now.
#[inline(never)]
fn stack_pointer() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// What the innermost level does: records the stack pointer, and yields once (so that
/// every level around it is polled twice, as a level that waits is).
fn innermost(sp: Arc<AtomicUsize>) -> Level {
    Box::pin(async move {
        sp.store(stack_pointer(), Ordering::Relaxed);
        crate::work::yield_once().await;
    })
}

/// `depth` levels of plain nesting (the baseline: a boxed async block per level).
fn plain(depth: usize, sp: Arc<AtomicUsize>) -> Level {
    if depth == 0 {
        return innermost(sp);
    }
    Box::pin(async move { plain(depth - 1, sp).await })
}

/// `depth` levels, each inside `tokio::time::timeout`.
fn tokio_timeouts(depth: usize, sp: Arc<AtomicUsize>) -> Level {
    if depth == 0 {
        return innermost(sp);
    }
    Box::pin(async move {
        let _ = tokio::time::timeout(HOUR, tokio_timeouts(depth - 1, sp)).await;
    })
}

/// `depth` levels, each inside `hatchery::move_on_after`.
fn hatchery_timeouts(depth: usize, sp: Arc<AtomicUsize>) -> Level {
    if depth == 0 {
        return innermost(sp);
    }
    Box::pin(async move {
        let _ = hatchery::move_on_after(HOUR, hatchery_timeouts(depth - 1, sp)).await;
    })
}

/// The size of one level's timeout future around a boxed level, for the record.
pub(crate) fn future_sizes() -> (usize, usize) {
    (
        std::mem::size_of::<tokio::time::Timeout<Level>>(),
        std::mem::size_of::<hatchery::futures::Run<Level>>(),
    )
}

/// Bytes of stack per level of `make`, run by `run` (which polls what it is given in a
/// spawned task): the stack pointer at two depths, apart.
pub(crate) fn per_level(run: impl Fn(Level), make: fn(usize, Arc<AtomicUsize>) -> Level) -> f64 {
    const SHALLOW: usize = 10;
    const DEEP: usize = 110;
    let at = |depth| {
        let sp = Arc::new(AtomicUsize::new(0));
        run(make(depth, sp.clone()));
        sp.load(Ordering::Relaxed)
    };
    let (shallow, deep) = (at(SHALLOW), at(DEEP));
    shallow.abs_diff(deep) as f64 / (DEEP - SHALLOW) as f64
}

pub(crate) fn plain_levels(depth: usize, sp: Arc<AtomicUsize>) -> Level {
    plain(depth, sp)
}

pub(crate) fn tokio_levels(depth: usize, sp: Arc<AtomicUsize>) -> Level {
    tokio_timeouts(depth, sp)
}

pub(crate) fn hatchery_levels(depth: usize, sp: Arc<AtomicUsize>) -> Level {
    hatchery_timeouts(depth, sp)
}
