//! Memory streams give memory back as they drain: the bytes a stream keeps after a burst
//! of items or of waiting tasks, counted by this test binary's own global allocator, on
//! every backend. And what closing handles and setting an event allocate when nobody
//! waits for them: nothing.
//!
//! The count is of every thread, so each test takes a lock before it builds its runtimes
//! (one per backend, in turn), and no other test of this binary allocates meanwhile.

use std::future::Future;
use std::time::Duration;

use crate::{ALLOCATOR, TURN};
use futures_lite::future;
use hatchery::{memory_stream, memory_stream_unbounded};

/// Runs `body` on every backend in turn (given the backend's name), with no other test
/// of this binary running.
fn on_every_backend<F: Future<Output = ()>>(body: fn(&'static str) -> F) {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    hatchery_tokio::run_current_thread(body("tokio_current"));
    hatchery_tokio::run(body("tokio_multi"));
    hatchery_smol::run(body("smol"));
}

/// Lets a runtime's threads start up (and allocate what they keep) before counting.
async fn settle() {
    hatchery::sleep(Duration::from_millis(50)).await;
}

/// 1M items of 64 bytes through an unbounded stream: the buffer takes 64 MiB while they
/// are all in it, at most four times the items left while it drains, and at most 16 KiB
/// once it is empty.
#[test]
fn an_unbounded_stream_gives_memory_back_as_it_drains() {
    on_every_backend(drain);
}

async fn drain(backend: &str) {
    const ITEMS: usize = 1 << 20;
    let (tx, rx) = memory_stream_unbounded::<[u8; 64]>();
    settle().await;
    ALLOCATOR.start();
    for _ in 0..ITEMS {
        tx.try_send([7; 64]).unwrap();
    }
    let full = ALLOCATOR.stop();
    assert!(
        full >= (ITEMS * 60) as isize,
        "{backend}: {full} bytes for {ITEMS} items"
    );
    ALLOCATOR.start();
    for _ in 0..ITEMS - ITEMS / 8 {
        rx.try_recv().unwrap();
    }
    let eighth = full + ALLOCATOR.stop();
    assert!(
        eighth <= (ITEMS / 8 * 64 * 4) as isize,
        "{backend}: {eighth} bytes kept for {} items of 64 bytes",
        ITEMS / 8
    );
    ALLOCATOR.start();
    for _ in 0..ITEMS / 8 {
        rx.recv().await.unwrap();
    }
    let empty = eighth + ALLOCATOR.stop();
    assert!(
        empty <= 32 * 1024,
        "{backend}: {empty} bytes kept by a drained stream (it held {full})"
    );
}

/// 64k tasks waiting in `recv` (each on its own clone) and served, then 64k waiting in
/// `send` and dropped: the stream keeps at most a few KiB of waiter storage afterwards.
#[test]
fn a_stream_gives_waiter_storage_back_after_a_burst() {
    on_every_backend(burst);
}

async fn burst(backend: &str) {
    const WAITERS: u32 = 1 << 16;
    let (tx, rx) = memory_stream::<u32>(0);
    settle().await;
    ALLOCATOR.start();
    {
        let handles: Vec<_> = (0..WAITERS).map(|_| rx.clone()).collect();
        let mut recvs: Vec<_> = handles.iter().map(|h| h.recv()).collect();
        for r in &mut recvs {
            assert!(future::poll_once(r).await.is_none());
        }
        assert_eq!(tx.statistics().tasks_waiting_receive, WAITERS as usize);
        for i in 0..WAITERS {
            tx.try_send(i).unwrap(); // handed to the receive that waited longest
        }
        for (i, r) in (0..).zip(recvs) {
            assert_eq!(r.await, Ok(i));
        }
    }
    {
        let handles: Vec<_> = (0..WAITERS).map(|_| tx.clone()).collect();
        let mut sends: Vec<_> = handles.iter().zip(0..).map(|(h, i)| h.send(i)).collect();
        for s in &mut sends {
            assert!(future::poll_once(s).await.is_none());
        }
        assert_eq!(tx.statistics().tasks_waiting_send, WAITERS as usize);
    }
    let kept = ALLOCATOR.stop();
    assert!(
        kept <= 16 * 1024,
        "{backend}: {kept} bytes kept by a stream after {WAITERS} waiters on each side left"
    );
    assert_eq!(tx.statistics().tasks_waiting_send, 0);
}

/// Cloning a send handle and dropping (or closing) the clone allocates nothing and takes
/// no lock when no send of the clone waited: a worker's clone costs what the executor's
/// own channels' cost (the `clone_drops` benchmark row).
#[test]
fn a_send_clone_made_and_dropped_allocates_nothing() {
    on_every_backend(clone_drops);
}

async fn clone_drops(backend: &str) {
    let (tx, rx) = memory_stream::<u32>(1);
    settle().await;
    ALLOCATOR.start();
    for i in 0..1000 {
        let clone = tx.clone();
        if i % 2 == 0 {
            clone.close();
        }
        drop(clone);
    }
    ALLOCATOR.stop();
    assert_eq!(
        ALLOCATOR.allocations(),
        0,
        "{backend}: allocations by 1000 clones"
    );
    let s = tx.statistics();
    assert_eq!((s.open_send_streams, s.open_receive_streams), (1, 1));
    drop(tx);
    assert_eq!(rx.recv().await, Err(hatchery::sync::RecvError::EndOfStream));
}

/// Closing the last receive handle of a stream nobody waits on, and setting an
/// `Event` nobody waits for, allocate nothing: there is no one to notify (the event
/// listener's state is made by the first listener, not by a notification).
#[test]
fn closing_and_setting_unwatched_allocates_nothing() {
    on_every_backend(unwatched);
}

async fn unwatched(backend: &str) {
    let streams: Vec<_> = (0..100).map(|_| memory_stream::<u32>(1)).collect();
    let events: Vec<_> = (0..100).map(|_| hatchery::sync::Event::new()).collect();
    settle().await;
    ALLOCATOR.start();
    for (tx, rx) in &streams {
        rx.close();
        tx.close();
    }
    for e in &events {
        e.set();
    }
    ALLOCATOR.stop();
    assert_eq!(
        ALLOCATOR.allocations(),
        0,
        "{backend}: allocations by closing 100 streams and setting 100 events"
    );
    for (tx, _) in &streams {
        assert_eq!(tx.try_send(1), Err(hatchery::sync::TrySendError::Closed(1)));
    }
    // A waiter that comes later sees the state at once.
    for e in &events {
        e.wait().await;
    }
}
