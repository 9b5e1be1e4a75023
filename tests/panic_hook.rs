//! Panics that hatchery raises itself reach the panic hook, so that they are printed (a
//! panic re-raised with `resume_unwind` is not), with the location that caused them. The
//! tests set the process-wide hook, one at a time.

use std::panic::{catch_unwind, set_hook, take_hook, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hatchery::Nursery;
use hatchery_tests::ShutDown;

/// The hook is the process's: one test sets it at a time.
static HOOK: Mutex<()> = Mutex::new(());

/// The runtime dropped the work of `run_blocking` unrun: the waiter's panic says so where
/// it can be read (a `main` would otherwise exit with an empty stderr).
#[test]
fn dropped_blocking_work_panics_through_the_hook() {
    let _hook = HOOK.lock().unwrap_or_else(PoisonError::into_inner);
    static SHOWN: AtomicUsize = AtomicUsize::new(0);
    let prev = take_hook();
    set_hook(Box::new(|info| {
        if info
            .to_string()
            .contains("dropped the work of `run_blocking`")
        {
            SHOWN.fetch_add(1, Ordering::SeqCst);
        }
    }));
    let r = catch_unwind(|| {
        futures_lite::future::block_on(hatchery::rt::enter(
            Arc::new(ShutDown),
            hatchery::run_blocking(|| 1),
        ))
    });
    set_hook(prev);
    assert!(r.is_err());
    assert_eq!(
        SHOWN.load(Ordering::SeqCst),
        1,
        "the panic message never reached the panic hook"
    );
}

/// A spawn into a closed nursery panics at the line that called `spawn` or
/// `spawn_named`, not inside hatchery: the location a user reads first.
#[test]
fn a_refused_spawn_panics_at_the_callers_line() {
    let _hook = HOOK.lock().unwrap_or_else(PoisonError::into_inner);
    static AT: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());
    let prev = take_hook();
    set_hook(Box::new(|info| {
        if info
            .to_string()
            .contains("use `Nursery::try_spawn` to handle this")
        {
            if let Some(at) = info.location() {
                let mut seen = AT.lock().unwrap_or_else(PoisonError::into_inner);
                seen.push((at.file().to_owned(), at.line()));
            }
        }
    }));
    let closed: Nursery<()> =
        hatchery_smol::run(hatchery::nursery(|n| async move { Ok(n) })).expect("the nursery ends");
    let spawn_line = line!() + 1;
    let spawned = catch_unwind(AssertUnwindSafe(|| closed.spawn(async { Ok(()) })));
    let named_line = line!() + 2; // the call's own line, inside the closure
    let named = catch_unwind(AssertUnwindSafe(|| {
        closed.spawn_named("x", async { Ok(()) })
    }));
    set_hook(prev);
    assert!(spawned.is_err() && named.is_err());
    assert_eq!(
        *AT.lock().unwrap_or_else(PoisonError::into_inner),
        [
            (file!().to_owned(), spawn_line),
            (file!().to_owned(), named_line)
        ]
    );
}
