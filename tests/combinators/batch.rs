//! `batches`: batches cut by size and by the age of their first item (on hatchery's clock),
//! the last partial batch, and cancellation.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use futures_lite::{stream, StreamExt};
use hatchery::testing::virtual_time;
use hatchery::{batches, move_on_after};
use hatchery_tests::{ms, HOUR};

/// The items, whether the feed is closed, and who waits.
type FeedState = (VecDeque<u32>, bool, Option<std::task::Waker>);

/// A stream fed by hand: `push` items, `close` to end it.
#[derive(Clone, Default)]
struct Feed(Arc<Mutex<FeedState>>);

impl Feed {
    fn push(&self, v: u32) {
        let mut s = self.0.lock().unwrap();
        s.0.push_back(v);
        if let Some(w) = s.2.take() {
            w.wake();
        }
    }
    fn close(&self) {
        let mut s = self.0.lock().unwrap();
        s.1 = true;
        if let Some(w) = s.2.take() {
            w.wake();
        }
    }
    fn stream(&self) -> impl futures_lite::Stream<Item = u32> + Send + Unpin + 'static {
        let feed = self.clone();
        stream::poll_fn(move |cx| {
            let mut s = feed.0.lock().unwrap();
            if let Some(v) = s.0.pop_front() {
                return Poll::Ready(Some(v));
            }
            if s.1 {
                return Poll::Ready(None);
            }
            s.2 = Some(cx.waker().clone());
            Poll::Pending
        })
    }
}

/// A flood is cut into full batches; the last one is partial.
#[hatchery::test]
async fn cut_by_size() {
    let all: Vec<Vec<u32>> = batches(stream::iter(1..=7), 3, HOUR).collect().await;
    assert_eq!(all, [vec![1, 2, 3], vec![4, 5, 6], vec![7]]);
}

/// A trickle is cut by time: a batch is delivered once its first item is `max_wait`
/// old, even if it is not full and the source has not ended.
#[hatchery::test]
async fn cut_by_time() {
    let feed = Feed::default();
    let mut b = batches(feed.stream(), 100, ms(10));
    feed.push(1);
    feed.push(2);
    assert_eq!(b.next().await, Some(vec![1, 2]));
    feed.push(3);
    assert_eq!(b.next().await, Some(vec![3]));
    feed.close();
    assert_eq!(b.next().await, None);
    assert_eq!(b.next().await, None);
}

/// On a virtual clock the time cut is exact: a batch comes out when its first item is
/// `max_wait` old, measured from that item, not from the call.
#[hatchery::test]
async fn time_cut_on_virtual_time() {
    virtual_time(async {
        let feed = Feed::default();
        let mut b = batches(feed.stream(), 100, HOUR);
        let t0 = hatchery::now();
        let pusher = {
            let feed = feed.clone();
            async move {
                hatchery::sleep(ms(600_000)).await; // 10 minutes
                feed.push(1);
                hatchery::sleep(ms(600_000)).await;
                feed.push(2);
            }
        };
        let (batch, ()) = futures_lite::future::zip(b.next(), pusher).await;
        assert_eq!(batch, Some(vec![1, 2]));
        assert_eq!((hatchery::now() - t0).as_secs(), 600 + 3600);
    })
    .await;
}

/// Empty and single-item sources; batches are never empty.
#[hatchery::test]
async fn empty_and_single() {
    let none: Vec<Vec<u8>> = batches(stream::empty(), 4, ms(1)).collect().await;
    assert!(none.is_empty());
    let one: Vec<Vec<u8>> = batches(stream::once(5), 4, HOUR).collect().await;
    assert_eq!(one, [vec![5]]);
    let exact: Vec<Vec<u8>> = batches(stream::iter([1, 2]), 2, HOUR).collect().await;
    assert_eq!(exact, [vec![1, 2]]);
}

/// Waiting for a batch is cancel safe: items taken into a pending batch stay there
/// when the wait is cancelled, and come out with the next batch.
#[hatchery::test]
async fn a_cancelled_wait_keeps_the_pending_batch() {
    let feed = Feed::default();
    let mut b = batches(feed.stream(), 3, HOUR);
    feed.push(1);
    assert_eq!(move_on_after(ms(5), b.next()).await, None);
    feed.push(2);
    assert_eq!(move_on_after(ms(5), b.next()).await, None);
    feed.push(3);
    assert_eq!(b.next().await, Some(vec![1, 2, 3]));
    feed.push(4);
    feed.close();
    assert_eq!(b.next().await, Some(vec![4]));
    assert_eq!(b.next().await, None);
}

/// A batch size of zero could never be delivered: a clear panic.
#[test]
#[should_panic(expected = "max_size of at least 1")]
fn zero_size_panics() {
    let _ = batches(stream::iter([1]), 0, HOUR);
}

/// `usize::MAX` is a valid limit ("cut by time only"), and a large limit is not
/// allocated up front.
#[hatchery::test]
async fn a_huge_limit_cuts_by_time_only() {
    let out: Vec<Vec<u32>> = batches(stream::iter([1u32, 2, 3]), usize::MAX, ms(10))
        .collect()
        .await;
    assert_eq!(out, [vec![1, 2, 3]]);
    let mut b = batches(stream::iter([[0u8; 1024]]), 1 << 16, ms(10));
    let batch = b.next().await.unwrap();
    assert_eq!(batch.len(), 1);
    assert!(
        batch.capacity() <= 64,
        "room for {} items",
        batch.capacity()
    );
}

/// A stream that is always ready but takes a millisecond of (manual) time to produce each
/// item, `count` items in all.
struct SlowReady(u32);

impl futures_core::Stream for SlowReady {
    type Item = u32;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<u32>> {
        if self.0 == 0 {
            return Poll::Ready(None);
        }
        self.0 -= 1;
        hatchery::testing::advance(ms(1));
        Poll::Ready(Some(self.0))
    }
}

/// The time cut applies while the stream stays ready too: a batch is cut at the first
/// item that arrives once the batch is `max_wait` old, not when the stream first waits.
#[hatchery::test(manual_time)]
async fn time_cut_while_the_stream_stays_ready() {
    let sizes: Vec<usize> = batches(SlowReady(60), 1000, ms(10))
        .map(|b| b.len())
        .collect()
        .await;
    // The first item arrives at 1 ms, the batch is 10 ms old at the 11th: 11 per batch.
    assert_eq!(sizes, [11, 11, 11, 11, 11, 5]);
}

/// `Duration::ZERO`: every batch is cut at its first item, even in a flood.
#[hatchery::test]
async fn a_zero_wait_makes_batches_of_one() {
    let out: Vec<Vec<u32>> = batches(stream::iter(1..=3), 10, std::time::Duration::ZERO)
        .collect()
        .await;
    assert_eq!(out, [vec![1], vec![2], vec![3]]);
}

/// In a cancelled scope the next batch never completes, like every hatchery wait, also
/// once the stream has ended (found by an audit: the end came out, and the code after a
/// `while let` loop ran on to its next suspension).
#[hatchery::test(virtual_time)]
async fn an_ended_stream_waits_in_a_cancelled_scope_too() {
    let mut b = batches(stream::iter([1, 2]), 10, HOUR);
    assert_eq!(b.next().await, Some(vec![1, 2]));
    assert_eq!(b.next().await, None);
    let scope = hatchery::CancelScope::new();
    scope.handle().cancel();
    assert_eq!(scope.run(b.next()).await, None);
    // Outside the cancelled scope, the end again.
    assert_eq!(b.next().await, None);
}
