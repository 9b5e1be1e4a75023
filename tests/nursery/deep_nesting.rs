//! Deep nesting: a chain of nested nurseries thousands of levels deep (each level a task
//! that opens a nursery and spawns the next) is freed without stack in proportion to its
//! depth when its last reference goes.
//!
//! A plain `#[test]` that re-runs itself in a child process: a stack overflow aborts the
//! whole process, so the parent asserts on the child's exit status instead.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use hatchery::{nursery, TaskHandle};

const DEPTH: u32 = 5_000;
const CHILD_ENV: &str = "HATCHERY_DEEP_CHAIN_CHILD";

type Slot = Arc<Mutex<Option<TaskHandle<()>>>>;

/// One level: a task that opens a nursery and spawns the next level into it. The
/// second-to-last level keeps the innermost child's handle in `slot`.
fn level(d: u32, slot: Slot) -> Pin<Box<dyn Future<Output = Result<(), ()>> + Send>> {
    Box::pin(async move {
        nursery(|n| async move {
            if d > 0 {
                let h = n.spawn(level(d - 1, slot.clone()));
                if d == 1 {
                    *slot.lock().unwrap() = Some(h);
                }
            }
            Ok::<_, ()>(())
        })
        .await
        .map_err(|_| ())
    })
}

/// The child process's scenario: the whole tree finishes normally (no cancellation,
/// current-thread runtime, fully deterministic), then the kept handle is dropped.
fn child() {
    let slot: Slot = Arc::new(Mutex::new(None));
    let s2 = slot.clone();
    hatchery_tokio::run_current_thread(async move {
        level(DEPTH, s2).await.unwrap();
    });
    let handle = slot.lock().unwrap().take().expect("innermost handle");
    assert!(handle.is_finished());
    // The tree has finished and every task future is gone; this handle is the last
    // reference to the innermost task, and through the parent links to every level.
    // Dropped on a thread with a small stack (128 KiB): freeing the chain (about two
    // nodes per level) must need a bounded amount of stack, whatever the depth.
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || drop(handle))
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn dropping_a_deep_chain_does_not_overflow_the_stack() {
    hatchery_tests::in_child_process(
        "deep_nesting::dropping_a_deep_chain_does_not_overflow_the_stack",
        CHILD_ENV,
        child,
    );
}
