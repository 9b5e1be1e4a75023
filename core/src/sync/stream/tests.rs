//! The complexity and memory claims of the stream's docs, checked by counting: every
//! lookup, link, unlink and node visited on the waiter lists is a step (see
//! [`list::step`]), so a test can bound the work per waiter without timing it. Futures
//! are polled by hand, outside any runtime.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::list::steps;
use super::*;
use crate::node::fixtures::Count;

/// Waiters per test: enough that O(waiters) work per operation (n² in all) would
/// pass any bound of a constant per waiter by far.
const N: usize = 4096;
/// The steps each test allows per waiter (the measured figures are 7.5 to 9.5).
const PER_WAITER: u64 = 24;

fn poll<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

/// Runs `f` and returns the steps it took.
fn counted(f: impl FnOnce()) -> u64 {
    let before = steps();
    f();
    steps() - before
}

/// Polls each of `futures` once, each pending.
fn all_pending<F: Future + Unpin>(futures: &mut [F]) {
    for f in futures {
        assert!(poll(f).is_pending());
    }
}

fn bound(what: &str, n: usize, work: u64) {
    assert!(
        work <= PER_WAITER * n as u64,
        "{what}: {work} steps for {n} waiters, more than {PER_WAITER} each"
    );
}

/// `n` tasks wait in `recv`, each on its own clone; `n` items are sent, one for each
/// (a sender hands each to the longest waiting receive, past those that hold one);
/// each receive takes its item and its handle is dropped while the others wait.
#[test]
fn serving_waiting_receivers_is_linear() {
    let (tx, rx) = memory_stream_unbounded::<usize>();
    let handles: Vec<_> = (0..N).map(|_| rx.clone()).collect();
    let mut recvs: Vec<_> = handles.iter().map(ReceiveStream::recv).collect();
    let work = counted(|| {
        all_pending(&mut recvs);
        for i in 0..N {
            tx.try_send(i).unwrap();
        }
        // (`close` is what dropping a handle does.)
        for (i, (mut r, h)) in recvs.drain(..).zip(&handles).enumerate() {
            assert_eq!(poll(&mut r), Poll::Ready(Ok(i)));
            h.close();
        }
    });
    bound("serving receivers", N, work);
}

/// `n` tasks wait in `send` on a full stream, each on its own clone; the receiver
/// takes an item at a time, and the send woken for it completes and drops its handle
/// while the others wait.
#[test]
fn draining_waiting_senders_is_linear() {
    let (tx, rx) = memory_stream::<usize>(1);
    tx.try_send(0).unwrap();
    let handles: Vec<_> = (0..N).map(|_| tx.clone()).collect();
    let mut sends: Vec<_> = handles.iter().zip(1..).map(|(h, i)| h.send(i)).collect();
    let work = counted(|| {
        all_pending(&mut sends);
        for (i, (mut s, h)) in sends.drain(..).zip(&handles).enumerate() {
            assert_eq!(rx.try_recv(), Ok(i));
            assert_eq!(poll(&mut s), Poll::Ready(Ok(())));
            h.close();
        }
        assert_eq!(rx.try_recv(), Ok(N));
    });
    bound("draining senders", N, work);
}

/// Dropping a clone that nobody waits on does not visit the waiters of the others,
/// on either side.
#[test]
fn dropping_a_clone_does_not_touch_the_waiters() {
    let (tx, rx) = memory_stream::<usize>(1);
    tx.try_send(0).unwrap();
    let mut sends: Vec<_> = (0..N).map(|i| tx.send(i)).collect();
    all_pending(&mut sends);
    let (tx2, rx2) = memory_stream::<usize>(0);
    let mut recvs: Vec<_> = (0..N).map(|_| rx2.recv()).collect();
    all_pending(&mut recvs);
    let work = counted(|| {
        for _ in 0..N {
            drop(tx.clone());
            drop(rx.clone());
            drop(tx2.clone());
            drop(rx2.clone());
        }
    });
    assert_eq!(work, 0, "dropping clones visited waiters");
    drop((sends, recvs));
}

/// Dropping a send handle wakes the `closed()` futures of that handle only, not
/// those of the other clones (which would poll again, each, for every clone dropped).
#[test]
fn dropping_a_clone_wakes_no_other_closed_future() {
    let (tx, rx) = memory_stream::<usize>(1);
    let handles: Vec<_> = (0..N).map(|_| tx.clone()).collect();
    let (count, waker) = Count::waker();
    let mut closed: Vec<_> = handles.iter().map(SendStream::closed).collect();
    for c in &mut closed {
        assert!(Pin::new(c)
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
    }
    for _ in 0..N {
        drop(tx.clone());
    }
    handles[0].close();
    assert_eq!(count.get(), 1, "other closed() futures woken");
    drop(rx); // the last receiver: every one of them
    assert_eq!(count.get(), N + 1);
    for c in &mut closed {
        assert!(poll(c).is_ready());
    }
}

/// Closing a handle visits that handle's waiters only.
#[test]
fn closing_a_handle_visits_its_own_waiters() {
    let (tx, rx) = memory_stream::<usize>(0);
    let mut others: Vec<_> = (0..N).map(|_| rx.recv()).collect();
    all_pending(&mut others);
    let mine = rx.clone();
    let mut waits: Vec<_> = (0..8).map(|_| mine.recv()).collect();
    all_pending(&mut waits);
    let work = counted(|| mine.close());
    assert!(
        work <= PER_WAITER * 8,
        "closing a handle of 8 waiters: {work} steps"
    );
    for r in &mut waits {
        assert_eq!(poll(r), Poll::Ready(Err(RecvError::Closed)));
    }
    drop((others, tx));
}

/// Waiters that go away in any order, from the back, from the middle, cost the same
/// as from the front: a waiter is found by its id.
#[test]
fn removing_waiters_in_any_order_is_linear() {
    let (tx, rx) = memory_stream::<usize>(0);
    let (tx1, rx1) = memory_stream::<usize>(1);
    tx1.try_send(0).unwrap();
    let mut recvs: Vec<_> = (0..N).map(|_| rx.recv()).collect();
    let mut sends: Vec<_> = (0..N).map(|i| tx1.send(i)).collect();
    let work = counted(|| {
        all_pending(&mut recvs);
        all_pending(&mut sends);
        // From the back, then every other one from the middle out.
        while let Some(r) = recvs.pop() {
            drop(r);
        }
        while !sends.is_empty() {
            drop(sends.remove(sends.len() / 2));
        }
    });
    bound("removing waiters", 2 * N, work);
    drop((tx, rx1));
}

/// Items sent while `n` handles wait in `next()`: each waiting handle is woken once
/// per poll, not once per item.
#[test]
fn stream_waiters_are_woken_once_per_poll() {
    use futures_core::Stream;

    let (tx, rx) = memory_stream_unbounded::<usize>();
    let mut streams: Vec<_> = (0..N).map(|_| rx.clone()).collect();
    let work = counted(|| {
        for s in &mut streams {
            let next = Pin::new(s).poll_next(&mut Context::from_waker(Waker::noop()));
            assert!(next.is_pending());
        }
        for i in 0..N {
            tx.try_send(i).unwrap();
        }
        for (i, s) in streams.iter_mut().enumerate() {
            let next = Pin::new(s).poll_next(&mut Context::from_waker(Waker::noop()));
            assert_eq!(next, Poll::Ready(Some(i)));
        }
    });
    bound("stream waiters", N, work);
}

/// A drained buffer gives its memory back: at most a quarter empty... as it drains,
/// and down to [`BUFFER_KEEP_BYTES`] once empty.
#[test]
fn a_draining_buffer_shrinks() {
    let (tx, rx) = memory_stream_unbounded::<[u8; 64]>();
    let items = 100_000;
    for _ in 0..items {
        tx.try_send([0; 64]).unwrap();
    }
    assert!(rx.chan.lock().buf.capacity() >= items);
    let keep = BUFFER_KEEP_BYTES / 64;
    for left in (0..items).rev() {
        rx.try_recv().unwrap();
        let capacity = rx.chan.lock().buf.capacity();
        assert!(
            capacity <= keep.max(4 * left),
            "{left} items left in a buffer of {capacity}"
        );
    }
    assert!(rx.chan.lock().buf.capacity() <= keep);
}

/// After a burst of waiters, on both sides and on many handles, the waiter storage
/// comes back to its small starting size.
#[test]
fn waiter_storage_shrinks_after_a_burst() {
    let (tx, rx) = memory_stream::<usize>(0);
    let bytes = |st: &State<usize>| st.send.waiters.bytes() + st.recv.waiters.bytes();
    let handles =
        |st: &State<usize>| st.send.lists.handles.capacity() + st.recv.lists.handles.capacity();
    let empty = bytes(&tx.chan.lock());
    for _ in 0..2 {
        let senders: Vec<_> = (0..N).map(|_| tx.clone()).collect();
        let receivers: Vec<_> = (0..N).map(|_| rx.clone()).collect();
        let mut sends: Vec<_> = senders.iter().zip(0..).map(|(h, i)| h.send(i)).collect();
        let mut recvs: Vec<_> = receivers.iter().map(ReceiveStream::recv).collect();
        // The receives first: each send completes at once, handing its item over.
        all_pending(&mut recvs);
        for s in &mut sends {
            assert!(poll(s).is_ready());
        }
        drop(sends);
        let mut sends: Vec<_> = senders.iter().zip(0..).map(|(h, i)| h.send(i)).collect();
        all_pending(&mut sends);
        assert!(bytes(&tx.chan.lock()) > 100 * N);
        for (i, mut r) in recvs.into_iter().enumerate() {
            assert_eq!(poll(&mut r), Poll::Ready(Ok(i)));
        }
        drop(sends);
        drop((senders, receivers));
        let st = tx.chan.lock();
        assert!(
            bytes(&st) <= empty.max(8 * 1024),
            "{} bytes of waiter storage kept after the waiters left",
            bytes(&st)
        );
        assert!(handles(&st) <= 64, "{} handle lists kept", handles(&st));
    }
}
