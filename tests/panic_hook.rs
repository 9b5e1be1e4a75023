//! Panics that hatchery raises itself reach the panic hook, so that they are printed (a
//! panic re-raised with `resume_unwind` is not). One test per binary: it sets the
//! process-wide hook.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hatchery_tests::ShutDown;

/// The runtime dropped the work of `run_blocking` unrun: the waiter's panic says so where
/// it can be read (a `main` would otherwise exit with an empty stderr).
#[test]
fn dropped_blocking_work_panics_through_the_hook() {
    static SHOWN: AtomicUsize = AtomicUsize::new(0);
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        if info
            .to_string()
            .contains("dropped the work of `run_blocking`")
        {
            SHOWN.fetch_add(1, Ordering::SeqCst);
        }
    }));
    let r = std::panic::catch_unwind(|| {
        futures_lite::future::block_on(hatchery::rt::enter(
            Arc::new(ShutDown),
            hatchery::run_blocking(|| 1),
        ))
    });
    std::panic::set_hook(prev);
    assert!(r.is_err());
    assert_eq!(
        SHOWN.load(Ordering::SeqCst),
        1,
        "the panic message never reached the panic hook"
    );
}
