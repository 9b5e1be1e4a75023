//! Compile-time checks of the auto traits (`Send`, `Sync`, `Unpin`) of hatchery's public
//! types, and of `Debug` on every public type (the lint-level promise of the style guide).
//!
//! These assertions are checked by the compiler; the `#[test]`s only make them show up
//! in the test list.

use std::fmt::Debug;
use std::future::Future;

use hatchery::futures::{Checkpoint, Join, Sleep};
use hatchery::{
    CancelHandle, CancelScope, Deadline, Elapsed, JoinError, Nursery, NurseryError, SpawnError,
    StartError, TaskHandle, TaskStatus,
};

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn unpin<T: Unpin>() {}
fn send_sync_static<T: Send + Sync + 'static>() {}
fn error<T: std::error::Error + Send + Sync + 'static>() {}
fn debug<T: Debug>() {}
fn send_val<T: Send>(_: &T) {}

/// `Nursery<E>` is `Send + Sync` for every `E: Send`, with no other bound on `E`.
fn nursery_is_send_sync<E: Send + 'static>() {
    send::<Nursery<E>>();
    sync::<Nursery<E>>();
    unpin::<Nursery<E>>();
    send::<StartError<E>>();
    debug::<Nursery<E>>();
}

/// `TaskHandle<T>` is `Send + Sync` for every `T: Send`.
fn task_handle_is_send_sync<T: Send + 'static>() {
    send::<TaskHandle<T>>();
    sync::<TaskHandle<T>>();
    unpin::<TaskHandle<T>>();
    send::<Join<T>>();
    debug::<TaskHandle<T>>();
    debug::<Join<T>>();
}

/// `TaskStatus<V>` moves into a spawned task, so it must be `Send`.
fn task_status_is_send<V: Send + 'static>() {
    send::<TaskStatus<V>>();
    debug::<TaskStatus<V>>();
}

/// Error types work with `?` into boxed errors and `anyhow` (`Error + Send + Sync +
/// 'static`) whenever the user's error type does.
fn errors_are_send_sync<E: std::error::Error + Send + Sync + 'static>() {
    error::<NurseryError<E>>();
    error::<StartError<E>>();
}

#[test]
fn cancel_handle_and_scope() {
    send_sync_static::<CancelHandle>();
    unpin::<CancelHandle>();
    send_sync_static::<CancelScope>();
    unpin::<CancelScope>();
    debug::<CancelHandle>();
    debug::<CancelScope>();
    fn clone<T: Clone>() {}
    clone::<CancelHandle>();
}

#[test]
fn nursery_and_task_handle() {
    nursery_is_send_sync::<std::sync::mpsc::Sender<()>>(); // Send, not Sync
    nursery_is_send_sync::<std::io::Error>();
    task_handle_is_send_sync::<std::cell::Cell<u8>>(); // Send, not Sync
    task_handle_is_send_sync::<String>();
    task_status_is_send::<std::cell::Cell<u8>>();
}

#[test]
fn error_types() {
    error::<JoinError>();
    error::<SpawnError>();
    error::<Elapsed>();
    errors_are_send_sync::<std::io::Error>();
    send_sync_static::<Deadline>();
    fn copy<T: Copy>() {}
    copy::<Deadline>();
    copy::<Elapsed>();
    copy::<JoinError>();
    debug::<NurseryError<std::io::Error>>();
}

#[test]
fn futures_are_send_when_their_contents_are() {
    send::<Sleep>();
    sync::<Sleep>();
    unpin::<Sleep>();
    send::<Checkpoint>();
    unpin::<Checkpoint>();
    debug::<Sleep>();
    debug::<Checkpoint>();
    send::<hatchery::futures::RunBlocking<u8>>();
    sync::<hatchery::futures::RunBlocking<u8>>();

    // Built, never polled: no runtime is needed to check the types.
    let scope = hatchery::move_on_after(
        std::time::Duration::from_secs(1),
        hatchery::sleep(std::time::Duration::from_secs(1)),
    );
    send_val(&scope);
    let fail = hatchery::fail_after(std::time::Duration::from_secs(1), async { 1 });
    send_val(&fail);
    let shielded = hatchery::shield(async { 1 });
    send_val(&shielded);
    let run = CancelScope::new().run(hatchery::checkpoint());
    send_val(&run);
    // A nursery future is `Send` when its body is: nurseries can be opened in children.
    let n = hatchery::nursery(|n: Nursery<std::io::Error>| async move {
        let h = n.spawn(async { Ok(1) });
        let v = h.join().await.map_err(std::io::Error::from)?;
        let started = n
            .start(|status| async move {
                status.started(2);
                Ok(())
            })
            .await
            .map_err(|_| std::io::Error::other("start"))?;
        Ok(v + started)
    });
    send_val(&n);
    assert_send_future(n);
}

fn assert_send_future<F: Future + Send + 'static>(_: F) {}

/// A `Task` lives inside every executor task, so its size is part of the memory per
/// child (DESIGN.md §6): three words, whatever the task (hatchery's own, a boxed future,
/// one wrapped by a test run).
#[test]
fn a_task_is_three_words() {
    assert_eq!(
        std::mem::size_of::<hatchery::rt::Task>(),
        3 * std::mem::size_of::<usize>()
    );
}
