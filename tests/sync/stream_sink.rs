//! `SendStream` as a futures `Sink`: `SinkExt::send`, `send_all` and `StreamExt::forward`
//! deliver every item once and in order, a cancelled send sends nothing, `poll_close`
//! closes one handle, and an item accepted after another sender took the room is kept
//! and sent by the next flush, on every backend.

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use futures_lite::future::poll_once;
use futures_util::{stream, Sink, SinkExt, StreamExt};
use hatchery::sync::{RecvError, SendError, TryRecvError};
use hatchery::testing::wait_all_tasks_blocked;
use hatchery::{memory_stream, move_on_after, nursery, CancelScope, SendStream};
use hatchery_tests::{Counter, DropGuard};

const HOUR: Duration = Duration::from_secs(3600);

fn ready<T>(
    tx: &mut SendStream<T>,
) -> impl std::future::Future<Output = Result<(), SendError<T>>> + '_ {
    poll_fn(move |cx| Pin::new(&mut *tx).poll_ready(cx))
}

fn flush<T>(
    tx: &mut SendStream<T>,
) -> impl std::future::Future<Output = Result<(), SendError<T>>> + '_ {
    poll_fn(move |cx| Pin::new(&mut *tx).poll_flush(cx))
}

/// `SinkExt::send` then `forward`: every item arrives in order, and `forward` closes the
/// handle at the end of its stream (the last one: the receiver sees the end).
#[hatchery::test(virtual_time)]
async fn send_and_forward() {
    for capacity in [0, 1, 16] {
        let (mut tx, rx) = memory_stream::<u32>(capacity);
        let got = nursery(|n| async move {
            n.spawn(async move {
                SinkExt::send(&mut tx, 0).await?;
                stream::iter(1..200).map(Ok).forward(tx).await?;
                Ok(())
            });
            let mut got = Vec::new();
            while let Ok(v) = rx.recv().await {
                got.push(v);
            }
            Ok::<_, SendError<u32>>(got)
        })
        .await
        .unwrap();
        assert_eq!(got, (0..200).collect::<Vec<_>>(), "capacity {capacity}");
    }
}

/// `send_all` waits for room item by item (a slow receiver) and leaves the handle open.
#[hatchery::test(virtual_time)]
async fn send_all_under_backpressure() {
    let (mut tx, rx) = memory_stream::<u32>(1);
    let got = nursery(|n| async move {
        n.spawn(async move {
            let mut items = stream::iter(0..50).map(Ok);
            tx.send_all(&mut items).await?;
            assert!(!tx.is_closed()); // `send_all` does not close
            Ok(())
        });
        let mut got = Vec::new();
        while let Ok(v) = rx.recv().await {
            got.push(v);
            hatchery::sleep(Duration::from_millis(10)).await;
            assert!(rx.statistics().current_buffer_used <= 1);
        }
        Ok::<_, SendError<u32>>(got)
    })
    .await
    .unwrap();
    assert_eq!(got, (0..50).collect::<Vec<_>>());
}

/// On a rendezvous stream, a sink send completes only when a receive takes the item.
#[hatchery::test(virtual_time)]
async fn rendezvous_send_waits_for_a_receiver() {
    let (mut tx, rx) = memory_stream::<&str>(0);
    let mut send = SinkExt::send(&mut tx, "hello");
    assert!(poll_once(&mut send).await.is_none());
    assert_eq!(rx.statistics().tasks_waiting_send, 1);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    let ((), got) = futures_lite::future::zip(async { send.await.unwrap() }, rx.recv()).await;
    assert_eq!(got, Ok("hello"));
}

/// A sink send ended by a timeout while it waits for room sent nothing, leaves no waiter,
/// and the stream still works.
#[hatchery::test(virtual_time)]
async fn cancelled_send_sent_nothing() {
    let items = Counter::new();
    let (mut tx, rx) = memory_stream::<DropGuard>(0);
    assert!(move_on_after(HOUR, SinkExt::send(&mut tx, items.guard()))
        .await
        .is_none());
    assert_eq!(items.get(), 1, "the item is dropped with the send");
    // The handle stays registered (its future is gone, it cannot tell) until its next
    // poll, room, or its close.
    assert_eq!(tx.statistics().tasks_waiting_send, 1);
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    nursery(|n| async move {
        n.spawn(async move {
            SinkExt::send(&mut tx, items.guard())
                .await
                .map_err(|_| "send")?;
            Ok(())
        });
        assert!(rx.recv().await.is_ok());
        Ok::<_, &str>(())
    })
    .await
    .unwrap();
}

/// A sink whose send was dropped while it waited takes no wake-up from the other
/// senders: a send waiting behind it is woken for the room, and completes.
#[hatchery::test(virtual_time)]
async fn a_dropped_sink_send_is_in_nobodys_way() {
    for capacity in [0, 1] {
        let (mut tx, rx) = memory_stream::<u32>(capacity);
        if capacity == 1 {
            tx.try_send(0).unwrap();
        }
        // Registered first, then dropped without being polled again.
        assert!(move_on_after(HOUR, SinkExt::send(&mut tx, 1))
            .await
            .is_none());
        let tx2 = tx.clone();
        let out = hatchery::fail_after(HOUR, async {
            nursery(|n| async move {
                n.spawn(async move {
                    tx2.send(2).await?;
                    Ok(())
                });
                wait_all_tasks_blocked().await;
                if capacity == 1 {
                    assert_eq!(rx.recv().await, Ok(0));
                }
                assert_eq!(rx.recv().await, Ok(2));
                Ok::<_, SendError<u32>>(())
            })
            .await
        })
        .await;
        assert!(matches!(out, Ok(Ok(()))), "capacity {capacity}: {out:?}");
        drop(tx);
    }
}

/// In a cancelled scope, `poll_ready` never completes, even with room in the stream:
/// the send sends nothing (as `SendStream::send`).
#[hatchery::test]
async fn no_send_in_a_cancelled_scope() {
    let (mut tx, rx) = memory_stream::<u32>(4);
    let scope = CancelScope::new();
    scope.handle().cancel();
    assert_eq!(scope.run(SinkExt::send(&mut tx, 1)).await, None);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    // Closing is no wait: it completes in a cancelled scope too.
    let scope = CancelScope::new();
    scope.handle().cancel();
    let closed = scope
        .run(async {
            let out = SinkExt::close(&mut tx).await;
            hatchery::checkpoint().await; // where the scope ends the body
            out
        })
        .await;
    assert_eq!(closed, None);
    assert!(tx.is_closed());
    assert_eq!(rx.recv().await, Err(RecvError::EndOfStream));
}

/// The errors give the item back: `Closed` for a closed handle, `Broken` once every
/// receiver is gone.
#[hatchery::test]
async fn errors_give_the_item_back() {
    let (mut tx, rx) = memory_stream::<u32>(4);
    let mut tx2 = tx.clone();
    tx2.close();
    assert_eq!(SinkExt::send(&mut tx2, 1).await, Err(SendError::Closed(1)));
    drop(rx);
    assert_eq!(SinkExt::send(&mut tx, 2).await, Err(SendError::Broken(2)));
    let mut items = stream::iter([3, 4]).map(Ok);
    assert_eq!(tx.send_all(&mut items).await, Err(SendError::Broken(3)));
}

/// `poll_close` closes this handle only: a clone keeps sending, and the receiver sees the
/// end once every handle is closed.
#[hatchery::test]
async fn close_closes_one_handle() {
    let (mut tx, rx) = memory_stream::<u32>(4);
    let tx2 = tx.clone();
    SinkExt::send(&mut tx, 1).await.unwrap();
    SinkExt::close(&mut tx).await.unwrap();
    assert!(tx.is_closed());
    assert!(!tx2.is_closed());
    tx2.try_send(2).unwrap();
    drop(tx2);
    assert_eq!(rx.recv().await, Ok(1));
    assert_eq!(rx.recv().await, Ok(2));
    assert_eq!(rx.recv().await, Err(RecvError::EndOfStream));
    // Closed twice: nothing to do.
    SinkExt::close(&mut tx).await.unwrap();
}

/// Readiness is not a reservation: if another sender takes the room between `poll_ready`
/// and `start_send`, the item waits in the handle, and the next flush sends it (first:
/// the items of one handle stay in order).
#[hatchery::test(virtual_time)]
async fn an_item_that_lost_the_room_waits_for_a_flush() {
    let (mut tx, rx) = memory_stream::<u32>(1);
    let tx2 = tx.clone();
    ready(&mut tx).await.unwrap();
    tx2.try_send(1).unwrap(); // takes the room
    Pin::new(&mut tx).start_send(2).unwrap(); // accepted: it waits in the handle
    assert_eq!(rx.statistics().current_buffer_used, 1);
    assert!(poll_once(flush(&mut tx)).await.is_none(), "no room yet");
    assert_eq!(rx.statistics().tasks_waiting_send, 1);
    // `poll_ready` sends it first, too.
    assert!(poll_once(ready(&mut tx)).await.is_none());
    assert_eq!(rx.try_recv(), Ok(1));
    flush(&mut tx).await.unwrap();
    assert_eq!(rx.statistics().tasks_waiting_send, 0);
    assert_eq!(rx.try_recv(), Ok(2));
    // And the handle goes on as a sink.
    SinkExt::send(&mut tx, 3).await.unwrap();
    assert_eq!(rx.try_recv(), Ok(3));
}

/// A flush of a kept item in a cancelled scope withdraws and keeps it: the next flush
/// outside that scope sends it, and a handle dropped with it drops it.
#[hatchery::test(virtual_time)]
async fn a_kept_item_survives_a_cancelled_flush() {
    let items = Counter::new();
    let (mut tx, rx) = memory_stream::<DropGuard>(1);
    let tx2 = tx.clone();
    ready(&mut tx).await.unwrap();
    tx2.try_send(items.guard()).unwrap();
    Pin::new(&mut tx).start_send(items.guard()).unwrap();
    assert!(move_on_after(HOUR, flush(&mut tx)).await.is_none());
    assert_eq!(items.get(), 0, "kept");
    drop(rx.try_recv().unwrap());
    flush(&mut tx).await.map_err(|_| "flush").unwrap();
    drop(rx.try_recv().unwrap());
    assert_eq!(items.get(), 2);

    // Lost the room again, then the handle is dropped: the item with it.
    ready(&mut tx).await.map_err(|_| "ready").unwrap();
    tx2.try_send(items.guard()).unwrap();
    Pin::new(&mut tx).start_send(items.guard()).unwrap();
    drop(tx);
    assert_eq!(items.get(), 3);
    drop(rx.try_recv().unwrap());
    assert_eq!(items.get(), 4);
}

/// `start_send` while an item still waits in the handle breaks the `Sink` contract (a
/// `poll_ready` would have sent it first): it panics and says so.
#[test]
#[should_panic(expected = "call `poll_ready` (until it is ready) before each `start_send`")]
fn start_send_without_poll_ready_panics() {
    let (mut tx, rx) = memory_stream::<u32>(1);
    let tx2 = tx.clone();
    tx2.try_send(1).unwrap();
    Pin::new(&mut tx).start_send(2).unwrap(); // no room: kept
    let _keep = rx;
    let _ = Pin::new(&mut tx).start_send(3);
}

/// Producers forward into clones of one stream at once, several items in flight: each
/// item arrives exactly once, and each producer's items in order. On multi-thread
/// backends, producers race for the room between `poll_ready` and `start_send`.
#[hatchery::test]
async fn many_producers_forward_at_once() {
    const PRODUCERS: u32 = 4;
    const ITEMS: u32 = 2000;
    let (tx, rx) = memory_stream::<(u32, u32)>(2);
    let got = nursery(|n| async move {
        for p in 0..PRODUCERS {
            let tx = tx.clone();
            n.spawn(async move {
                stream::iter(0..ITEMS)
                    .map(move |i| Ok((p, i)))
                    .forward(tx)
                    .await?;
                Ok(())
            });
        }
        drop(tx);
        let mut got = Vec::new();
        while let Ok(v) = rx.recv().await {
            got.push(v);
        }
        Ok::<_, SendError<(u32, u32)>>(got)
    })
    .await
    .unwrap();
    assert_eq!(got.len(), (PRODUCERS * ITEMS) as usize);
    for p in 0..PRODUCERS {
        let mine: Vec<u32> = got
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(mine, (0..ITEMS).collect::<Vec<_>>(), "producer {p}");
    }
}
