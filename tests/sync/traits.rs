//! Auto traits of the `sync` types: handles and guards that must cross tasks are
//! `Send`/`Sync`, and every future is `Send` (so it can run in a spawned child).

use hatchery::futures::{
    ConditionWait, EventWait, LimiterAcquire, LimiterAcquireFor, LockAcquire, LockAcquireOwned,
    Recv, SemaphoreAcquire, SemaphoreAcquireOwned, Send as SendFut,
};
use hatchery::sync::{
    CapacityLimiter, CapacityToken, Condition, Event, Lock, LockGuard, OwnedLockGuard,
    OwnedSemaphorePermit, RecvError, Semaphore, SemaphorePermit, SendError,
};
use hatchery::{ReceiveStream, SendStream};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}
fn unpin<T: Unpin>() {}

/// A type that is `Send` but not `Sync`, as stream items may be.
type NotSync = std::cell::Cell<u32>;

#[test]
fn handles_are_send_and_sync() {
    send_sync::<SendStream<NotSync>>();
    send_sync::<ReceiveStream<NotSync>>();
    send_sync::<Event>();
    send_sync::<Lock<NotSync>>();
    send_sync::<Semaphore>();
    send_sync::<CapacityLimiter>();
    send_sync::<Condition>();
    send_sync::<SendError<u32>>();
    send_sync::<RecvError>();
    send_sync::<OwnedSemaphorePermit>();
    send_sync::<SemaphorePermit<'static>>();
    send_sync::<CapacityToken>();
    send::<LockGuard<'static, u32>>();
    send::<OwnedLockGuard<u32>>();
    unpin::<ReceiveStream<NotSync>>();
}

#[test]
fn futures_are_send() {
    send::<SendFut<'static, NotSync>>();
    send::<Recv<'static, NotSync>>();
    send::<EventWait<'static>>();
    send::<LockAcquire<'static, u32>>();
    send::<LockAcquireOwned<u32>>();
    send::<SemaphoreAcquire<'static>>();
    send::<SemaphoreAcquireOwned>();
    send::<LimiterAcquire<'static>>();
    send::<LimiterAcquireFor<'static>>();
    send::<ConditionWait<'static, 'static, u32>>();
    unpin::<SendFut<'static, NotSync>>();
    unpin::<Recv<'static, NotSync>>();
}
