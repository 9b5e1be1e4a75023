//! `FusedFuture` and `FusedStream`: every named future that can tell it has returned says
//! so (`is_terminated` is false before, true after), so `select!`-style loops can keep
//! it without `.fuse()`, on every backend.

use std::future::Future;
use std::time::Duration;

use futures_core::future::FusedFuture;
use futures_core::FusedStream;
use futures_lite::future::poll_once;
use futures_lite::StreamExt;
use hatchery::sync::{CapacityLimiter, Condition, Event, Lock, Semaphore};
use hatchery::{
    as_completed, batches, fail_after, finally, memory_stream, move_on_after, nursery, retry,
    run_blocking, shield, sleep, CancelScope,
};
use hatchery_tests::HOUR;

/// Awaits `fut`, checking that it is not terminated before and is after.
async fn fused<F: FusedFuture + Unpin>(mut fut: F) -> F::Output {
    assert!(!fut.is_terminated(), "terminated before it ran");
    let out = (&mut fut).await;
    assert!(fut.is_terminated(), "not terminated after it returned");
    out
}

/// The same for a future that must be pinned.
async fn fused_pinned<F: FusedFuture>(fut: F) -> F::Output {
    fused(Box::pin(fut)).await
}

#[hatchery::test]
async fn nursery_start_and_join() {
    let v = fused_pinned(nursery(|n| async move {
        let started = fused(n.start(|status| async move {
            status.started(1);
            Ok(())
        }))
        .await
        .unwrap();
        let joined = fused(n.spawn(async { Ok(2) }).join()).await?;
        Ok::<_, std::io::Error>(started + joined)
    }))
    .await
    .unwrap();
    assert_eq!(v, 3);
}

/// A nursery that has not returned yet (its body waits) is not terminated.
#[hatchery::test(virtual_time)]
async fn a_waiting_nursery_is_not_terminated() {
    let mut n = Box::pin(nursery(|_| async {
        sleep(Duration::from_secs(1)).await;
        Ok::<_, std::io::Error>(())
    }));
    assert!(poll_once(n.as_mut()).await.is_none());
    assert!(!n.is_terminated());
    n.as_mut().await.unwrap();
    assert!(n.is_terminated());
}

#[hatchery::test(virtual_time)]
async fn scopes() {
    assert_eq!(
        fused_pinned(move_on_after(HOUR, async { 1 })).await,
        Some(1)
    );
    // One that caught its own cancellation has returned too.
    assert_eq!(
        fused_pinned(move_on_after(Duration::from_secs(1), sleep(HOUR))).await,
        None
    );
    assert_eq!(
        fused_pinned(CancelScope::new().fail(async { 2 })).await,
        Ok(Some(2))
    );
    assert!(
        fused_pinned(fail_after(Duration::from_secs(1), sleep(HOUR)))
            .await
            .is_err()
    );
    assert_eq!(fused_pinned(shield(async { 3 })).await, 3);
    assert_eq!(fused_pinned(finally(async { 4 }, async {})).await, 4);
}

#[hatchery::test]
async fn retry_and_run_blocking() {
    let v = fused_pinned(retry(|| async { Ok::<_, std::io::Error>(5) })).await;
    assert_eq!(v.unwrap(), 5);
    assert_eq!(fused(run_blocking(|| 6)).await, 6);
}

#[hatchery::test]
async fn stream_futures() {
    let (tx, rx) = memory_stream::<u32>(1);
    fused(tx.send(1)).await.unwrap();
    assert_eq!(fused(rx.recv()).await, Ok(1));
    // A send that fails has returned too: it gave its item back.
    let closed = tx.clone();
    closed.close();
    assert!(fused(closed.send(2)).await.is_err());
    let mut waiting = tx.closed();
    assert!(poll_once(&mut waiting).await.is_none());
    assert!(!waiting.is_terminated());
    drop(rx);
    fused(waiting).await;
}

#[hatchery::test]
async fn sync_futures() {
    let lock = Lock::new(0);
    drop(fused(lock.lock()).await);
    drop(fused(lock.lock_owned()).await);
    let sem = Semaphore::new(1);
    drop(fused(sem.acquire()).await);
    drop(fused(sem.acquire_owned()).await);
    let limiter = CapacityLimiter::new(1);
    drop(fused(limiter.acquire()).await);
    fused(limiter.acquire_on_behalf_of(7)).await.unwrap();
    limiter.release_on_behalf_of(7).unwrap();
    let event = Event::new();
    let mut wait = event.wait();
    assert!(poll_once(&mut wait).await.is_none());
    assert!(!wait.is_terminated());
    event.set();
    fused(wait).await;

    let cond = Condition::new();
    let guard = lock.lock().await;
    let (guard, ()) = futures_lite::future::zip(fused(cond.wait(guard)), async {
        drop(lock.lock().await);
        cond.notify_all();
    })
    .await;
    drop(guard);
}

#[hatchery::test(virtual_time)]
async fn streams() {
    let got = as_completed(
        (1..=2).map(|i| async move { i }),
        |mut outputs| async move {
            assert!(!outputs.is_terminated());
            let mut got = Vec::new();
            while let Some(v) = outputs.next().await {
                got.push(v);
            }
            assert!(outputs.is_terminated());
            got
        },
    )
    .await;
    assert_eq!(got.len(), 2);

    let mut b = Box::pin(batches(futures_lite::stream::iter(0u32..5), 2, HOUR));
    assert!(!b.is_terminated());
    let all: Vec<Vec<u32>> = b.as_mut().collect().await;
    assert_eq!(all, [vec![0, 1], vec![2, 3], vec![4]]);
    assert!(b.is_terminated());
}

/// `Enter` is fused when the future it wraps is.
#[test]
fn enter_is_fused_when_its_future_is() {
    fn fused<F: Future + FusedFuture>() {}
    fused::<hatchery::futures::Enter<hatchery::futures::Join<()>>>();
}
