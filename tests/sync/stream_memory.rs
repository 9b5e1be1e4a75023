//! Memory streams: delivery order, closing rules, statistics and cancellation (no ghost
//! waiters, nothing lost or sent twice), on every backend.

use std::sync::Arc;
use std::time::Duration;

use futures_lite::{future, StreamExt};
use hatchery::sync::{RecvError, SendError, TryRecvError, TrySendError};
use hatchery::testing::wait_all_tasks_blocked;
use hatchery::{
    fail_after, memory_stream, memory_stream_unbounded, move_on_after, nursery, CancelScope,
};

const HOUR: Duration = Duration::from_secs(3600);

/// A rendezvous stream delivers in the order sent, and each send completes only once a
/// receiver has taken its item.
#[hatchery::test(virtual_time)]
async fn rendezvous_delivery_order() {
    let (tx, rx) = memory_stream::<u32>(0);
    assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
    let got = nursery(|n| async move {
        n.spawn(async move {
            for i in 0..100 {
                tx.send(i).await?;
                // A rendezvous buffers nothing.
                assert_eq!(tx.statistics().current_buffer_used, 0);
            }
            Ok::<_, anyhow::Error>(())
        });
        let mut got = Vec::new();
        while let Ok(v) = rx.recv().await {
            got.push(v);
        }
        Ok(got)
    })
    .await
    .unwrap();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

/// Two rendezvous senders blocked in turn are served in FIFO order.
#[hatchery::test(virtual_time)]
async fn rendezvous_senders_fifo() {
    let (tx, rx) = memory_stream::<&'static str>(0);
    nursery(|n| async move {
        for name in ["a", "b", "c"] {
            let tx = tx.clone();
            n.spawn(async move {
                tx.send(name).await?;
                Ok::<_, anyhow::Error>(())
            });
            wait_all_tasks_blocked().await;
        }
        drop(tx);
        assert_eq!(rx.statistics().tasks_waiting_send, 3);
        assert_eq!(rx.recv().await, Ok("a"));
        assert_eq!(rx.recv().await, Ok("b"));
        assert_eq!(rx.recv().await, Ok("c"));
        assert_eq!(rx.recv().await, Err(RecvError::EndOfStream));
        Ok(())
    })
    .await
    .unwrap();
}

/// A cancelled rendezvous send sent nothing and leaves no waiter.
#[hatchery::test(virtual_time)]
async fn cancelled_rendezvous_send_sent_nothing() {
    let (tx, rx) = memory_stream::<u32>(0);
    assert_eq!(move_on_after(HOUR, tx.send(1)).await, None);
    assert_eq!(tx.statistics().tasks_waiting_send, 0);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    // The stream still works.
    nursery(|n| async move {
        n.spawn(async move {
            tx.send(2).await?;
            Ok::<_, anyhow::Error>(())
        });
        assert_eq!(rx.recv().await, Ok(2));
        Ok(())
    })
    .await
    .unwrap();
}

/// End-of-stream comes only after the buffer has drained.
#[hatchery::test]
async fn buffer_drains_before_end_of_stream() {
    let (tx, rx) = memory_stream(8);
    let tx2 = tx.clone();
    for i in 0..5 {
        tx.send(i).await.unwrap();
    }
    drop(tx);
    tx2.try_send(5).unwrap();
    tx2.close();
    assert_eq!(rx.statistics().open_send_streams, 0);
    let got: Vec<i32> = rx.clone().collect().await;
    assert_eq!(got, [0, 1, 2, 3, 4, 5]);
    assert_eq!(rx.recv().await, Err(RecvError::EndOfStream));
    assert_eq!(rx.try_recv(), Err(TryRecvError::EndOfStream));
}

/// A sender gets `Broken` once every receiver is gone, even with room in the buffer.
#[hatchery::test]
async fn broken_when_receivers_gone() {
    let (tx, rx) = memory_stream_unbounded();
    let rx2 = rx.clone();
    drop(rx);
    tx.send(1).await.unwrap();
    rx2.close();
    assert_eq!(tx.send(2).await, Err(SendError::Broken(2)));
    assert_eq!(tx.try_send(3), Err(TrySendError::Broken(3)));
    assert_eq!(tx.statistics().current_buffer_used, 0);
}

/// `SendStream::closed` waits until no send through the handle can succeed: it stays
/// pending while any receiver is open (a clone too), completes when the last one goes
/// or when the handle itself is closed, and never completes in a cancelled scope.
#[hatchery::test(virtual_time)]
async fn send_closed_waits_for_the_last_receiver() {
    let (tx, rx) = memory_stream::<u32>(1);
    let rx2 = rx.clone();
    let tx = Arc::new(tx);
    let tx2 = Arc::new((*tx).clone());
    let t = tx.clone();
    let order = nursery(|n| async move {
        let (events, log) = memory_stream_unbounded();
        for (name, tx) in [("tx", t.clone()), ("tx2", tx2.clone())] {
            let log = events.clone();
            n.spawn(async move {
                tx.closed().await;
                log.try_send(name)?;
                Ok::<_, anyhow::Error>(())
            });
        }
        // A wait in a cancelled scope does not complete, even once the stream breaks.
        let scope = CancelScope::new();
        let handle = scope.handle();
        let cancelled = n.spawn({
            let t = t.clone();
            async move { Ok(scope.run(t.closed()).await) }
        });
        wait_all_tasks_blocked().await;
        handle.cancel();
        assert_eq!(cancelled.join().await?, None);
        drop(rx); // rx2 is still open: nothing completes
        wait_all_tasks_blocked().await;
        assert_eq!(log.try_recv(), Err(TryRecvError::Empty));
        rx2.close(); // the last receiver: both complete
        drop(events);
        // (A bound, so that a missed wake-up fails instead of hanging.)
        let mut got: Vec<_> = hatchery::fail_after(Duration::from_secs(60), log.collect()).await?;
        got.sort();
        Ok(got)
    })
    .await
    .unwrap();
    assert_eq!(order, ["tx", "tx2"]);
    tx.closed().await; // already broken: at once

    // Closing the handle itself completes its own waits only.
    let (tx, _rx) = memory_stream::<u32>(1);
    let tx = Arc::new(tx);
    let tx2 = Arc::new((*tx).clone());
    nursery(|n| async move {
        let own = n.spawn({
            let tx = tx.clone();
            async move {
                tx.closed().await;
                Ok::<_, anyhow::Error>(())
            }
        });
        let other = n.spawn({
            let tx2 = tx2.clone();
            async move {
                tx2.closed().await;
                Ok(())
            }
        });
        wait_all_tasks_blocked().await;
        tx.close();
        hatchery::fail_after(Duration::from_secs(60), own.join()).await??;
        wait_all_tasks_blocked().await;
        assert!(!other.is_finished(), "another handle's wait completed");
        n.cancel(); // ends the other wait
        Ok(())
    })
    .await
    .unwrap();
}

/// Items dropped because the stream broke are dropped outside the stream's lock, so an
/// item's destructor may use the stream (here: close a send handle it carries).
#[hatchery::test]
async fn items_dropped_by_a_broken_stream_may_use_it() {
    struct Item(#[allow(dead_code)] hatchery::SendStream<Item>);
    let (tx, rx) = memory_stream::<Item>(4);
    tx.try_send(Item(tx.clone())).unwrap();
    tx.try_send(Item(tx.clone())).unwrap();
    assert_eq!(tx.statistics().open_send_streams, 3);
    drop(rx); // drops both items, whose handles close
    assert_eq!(tx.statistics().open_send_streams, 1);
    assert_eq!(tx.statistics().current_buffer_used, 0);
    tx.closed().await;
}

/// Closing wakes blocked peers with the right error: the receive handle's own waiter
/// gets `Closed`, senders blocked on a full stream get `Broken` when the last receiver
/// goes, a receiver gets `EndOfStream` when the last sender goes, and a send handle's own
/// waiter gets `Closed`.
#[hatchery::test(virtual_time)]
async fn closing_wakes_blocked_peers() {
    // Receive handle closed under its own waiting receive.
    let (tx, rx) = memory_stream::<u32>(1);
    let rx = Arc::new(rx);
    let rx2 = (*rx).clone();
    nursery(|n| {
        let rx = rx.clone();
        async move {
            let waiting = n.spawn({
                let rx = rx.clone();
                async move { Ok::<_, anyhow::Error>(rx.recv().await) }
            });
            wait_all_tasks_blocked().await;
            rx.close();
            assert_eq!(waiting.join().await?, Err(RecvError::Closed));
            Ok(())
        }
    })
    .await
    .unwrap();
    // The other clone still receives.
    tx.try_send(1).unwrap();
    assert_eq!(rx2.recv().await, Ok(1));

    // Last receiver gone: a blocked sender gets `Broken`.
    tx.try_send(2).unwrap();
    let tx = Arc::new(tx);
    nursery(|n| {
        let tx = tx.clone();
        async move {
            let waiting = n.spawn({
                let tx = tx.clone();
                async move { Ok::<_, anyhow::Error>(tx.send(3).await) }
            });
            wait_all_tasks_blocked().await;
            assert_eq!(tx.statistics().tasks_waiting_send, 1);
            drop(rx2);
            drop(rx);
            assert_eq!(waiting.join().await?, Err(SendError::Broken(3)));
            Ok(())
        }
    })
    .await
    .unwrap();

    // Last sender gone: a blocked receiver gets `EndOfStream`.
    let (tx, rx) = memory_stream::<u32>(0);
    nursery(|n| async move {
        let waiting = n.spawn(async move { Ok::<_, anyhow::Error>(rx.recv().await) });
        wait_all_tasks_blocked().await;
        drop(tx);
        assert_eq!(waiting.join().await?, Err(RecvError::EndOfStream));
        Ok(())
    })
    .await
    .unwrap();

    // Send handle closed under its own waiting send; its clone is unaffected.
    let (tx, rx) = memory_stream::<u32>(0);
    let tx = Arc::new(tx);
    let tx2 = (*tx).clone();
    nursery(|n| {
        let tx = tx.clone();
        async move {
            let waiting = n.spawn({
                let tx = tx.clone();
                async move { Ok::<_, anyhow::Error>(tx.send(4).await) }
            });
            wait_all_tasks_blocked().await;
            tx.close();
            assert_eq!(waiting.join().await?, Err(SendError::Closed(4)));
            assert_eq!(tx.try_send(5), Err(TrySendError::Closed(5)));
            n.spawn(async move {
                tx2.send(6).await?;
                Ok(())
            });
            assert_eq!(rx.recv().await, Ok(6));
            Ok(())
        }
    })
    .await
    .unwrap();
}

/// Cancelled receives and sends leave no ghost waiter: the next item goes to a live
/// receiver, and statistics count no waiting task.
#[hatchery::test(virtual_time)]
async fn no_ghost_waiter_after_cancel() {
    for cap in [0, 1] {
        let (tx, rx) = memory_stream::<u32>(cap);
        assert_eq!(move_on_after(HOUR, rx.recv()).await, None);
        let s = rx.statistics();
        assert_eq!((s.tasks_waiting_receive, s.tasks_waiting_send), (0, 0));
        if cap == 0 {
            // No receiver waits, so a rendezvous cannot take the item.
            assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
        } else {
            tx.try_send(1).unwrap();
            assert_eq!(rx.try_recv(), Ok(1));
            tx.try_send(2).unwrap();
            // Full, then a cancelled send.
            assert_eq!(move_on_after(HOUR, tx.send(3)).await, None);
            assert_eq!(tx.statistics().tasks_waiting_send, 0);
            assert_eq!(rx.try_recv(), Ok(2));
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        }
        // A live receiver still gets the next item.
        let (tx2, rx2) = (tx.clone(), rx.clone());
        nursery(|n| async move {
            let h = n.spawn(async move { Ok::<_, anyhow::Error>(rx2.recv().await) });
            tx2.send(9).await?;
            assert_eq!(h.join().await?, Ok(9));
            Ok::<_, anyhow::Error>(())
        })
        .await
        .unwrap();
    }
}

/// A receiver's scope cancelled while a sender hands it an item: the item is either
/// received or stays in the stream, never lost.
#[hatchery::test(virtual_time)]
async fn no_item_lost_when_receiver_cancelled_during_handover() {
    for round in 0..50u32 {
        let (tx, rx) = memory_stream::<u32>(0);
        let rx = Arc::new(rx);
        let scope = CancelScope::new();
        let handle = scope.handle();
        let got = nursery(|n| {
            let rx = rx.clone();
            async move {
                let receiver = n.spawn({
                    let rx = rx.clone();
                    async move { Ok::<_, anyhow::Error>(scope.run(rx.recv()).await) }
                });
                wait_all_tasks_blocked().await;
                // Hand the item over and cancel the receiver's scope at once.
                tx.try_send(round).unwrap();
                handle.cancel();
                Ok::<_, anyhow::Error>(receiver.join().await?)
            }
        })
        .await
        .unwrap();
        match got {
            Some(v) => {
                assert_eq!(v, Ok(round));
                assert_eq!(rx.try_recv(), Err(TryRecvError::EndOfStream));
            }
            None => assert_eq!(rx.try_recv(), Ok(round)),
        }
    }
}

/// The same with a deadline firing at the moment of the handover (virtual time makes
/// the deadline and the send coincide).
#[hatchery::test(virtual_time)]
async fn no_item_lost_when_deadline_fires_during_handover() {
    let (tx, rx) = memory_stream::<u32>(0);
    let total = nursery(|n| async move {
        n.spawn(async move {
            for i in 0..200 {
                hatchery::sleep(Duration::from_millis(10)).await;
                tx.send(i).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
        let mut got = Vec::new();
        loop {
            match move_on_after(Duration::from_millis(10), rx.recv()).await {
                Some(Ok(v)) => got.push(v),
                Some(Err(_)) => break,
                None => {}
            }
        }
        Ok(got)
    })
    .await
    .unwrap();
    assert_eq!(total, (0..200).collect::<Vec<_>>());
}

/// Statistics count buffer, open ends and waiting tasks.
#[hatchery::test(virtual_time)]
async fn statistics() {
    let (tx, rx) = memory_stream::<u32>(2);
    let s = tx.statistics();
    assert_eq!(s.max_buffer_size, Some(2));
    assert_eq!((s.open_send_streams, s.open_receive_streams), (1, 1));
    let rx2 = rx.clone();
    rx2.close();
    assert_eq!(tx.statistics().open_receive_streams, 1);
    let (utx, _urx) = memory_stream_unbounded::<u32>();
    assert_eq!(utx.statistics().max_buffer_size, None);
    let rx = Arc::new(rx);
    nursery(|n| {
        let rx = rx.clone();
        async move {
            for _ in 0..2 {
                let rx = rx.clone();
                n.spawn(async move { Ok::<_, anyhow::Error>(rx.recv().await.is_ok()) });
            }
            wait_all_tasks_blocked().await;
            assert_eq!(tx.statistics().tasks_waiting_receive, 2);
            tx.send(1).await?;
            tx.send(2).await?;
            Ok(())
        }
    })
    .await
    .unwrap();
    assert_eq!(rx.statistics().tasks_waiting_receive, 0);
}

/// A `Stream` poll cut off by its scope leaves no waiter that could swallow an item: the
/// next item goes to a live receiver.
#[hatchery::test(virtual_time)]
async fn cancelled_stream_poll_leaves_no_ghost() {
    let (tx, rx) = memory_stream::<u32>(0);
    let mut rx_stream = rx.clone();
    assert_eq!(move_on_after(HOUR, rx_stream.next()).await, None);
    assert_eq!(rx.statistics().tasks_waiting_receive, 0);
    nursery(|n| async move {
        let h = n.spawn(async move { Ok::<_, anyhow::Error>(rx.recv().await) });
        tx.send(5).await?;
        assert_eq!(h.join().await?, Ok(5));
        // The stream handle still works afterwards.
        n.spawn(async move {
            tx.send(6).await?;
            Ok(())
        });
        assert_eq!(rx_stream.next().await, Some(6));
        Ok::<_, anyhow::Error>(())
    })
    .await
    .unwrap();
}

/// The blocking methods bridge threads and tasks, from `run_blocking`; called from async
/// code they panic with a message instead of blocking the executor.
#[hatchery::test]
async fn blocking_methods() {
    let (tx, rx) = memory_stream::<u32>(0);
    let got = nursery(|n| async move {
        n.spawn(async move {
            hatchery::run_blocking(move || {
                for i in 0..10 {
                    tx.send_blocking(i).unwrap();
                }
            })
            .await;
            Ok::<_, anyhow::Error>(())
        });
        let mut got = Vec::new();
        while let Ok(v) = rx.recv().await {
            got.push(v);
        }
        Ok(got)
    })
    .await
    .unwrap();
    assert_eq!(got, (0..10).collect::<Vec<_>>());

    let (tx, _rx) = memory_stream::<u32>(1);
    let err =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tx.send_blocking(1))).unwrap_err();
    let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("called from async code"), "{msg}");
}

/// Items handed to waiting receives that are then dropped go back in the order they were
/// sent, before the items buffered since.
#[hatchery::test]
async fn items_of_dropped_receives_keep_their_order() {
    let (tx, rx) = memory_stream::<u32>(4);
    let mut r1 = Box::pin(rx.recv());
    let mut r2 = Box::pin(rx.recv());
    assert!(future::poll_once(&mut r1).await.is_none());
    assert!(future::poll_once(&mut r2).await.is_none());
    tx.try_send(1).unwrap(); // handed to r1
    tx.try_send(2).unwrap(); // handed to r2
    tx.try_send(3).unwrap(); // buffered
    drop(r1);
    drop(r2);
    let got: Vec<u32> = (0..3).map(|_| rx.try_recv().unwrap()).collect();
    assert_eq!(got, [1, 2, 3]);
}

/// The same when the receives fail because their handle is closed; and with a receive
/// that took an item meanwhile, so that the items come back out of the order of their
/// waiters.
#[hatchery::test]
async fn items_of_closed_receives_keep_their_order() {
    let (tx, rx) = memory_stream::<u32>(4);
    let rx2 = rx.clone();
    let mut r1 = Box::pin(rx2.recv());
    let mut r2 = Box::pin(rx2.recv());
    assert!(future::poll_once(&mut r1).await.is_none());
    assert!(future::poll_once(&mut r2).await.is_none());
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    tx.try_send(3).unwrap();
    rx2.close();
    assert_eq!(r1.await, Err(RecvError::Closed));
    assert_eq!(r2.await, Err(RecvError::Closed));
    let got: Vec<u32> = (0..3).map(|_| rx.try_recv().unwrap()).collect();
    assert_eq!(got, [1, 2, 3]);

    let mut r1 = Box::pin(rx.recv());
    assert!(future::poll_once(&mut r1).await.is_none());
    tx.try_send(4).unwrap(); // handed to r1
    tx.try_send(5).unwrap(); // buffered
    assert_eq!(rx.try_recv(), Ok(5));
    let mut r3 = Box::pin(rx.recv());
    assert!(future::poll_once(&mut r3).await.is_none());
    tx.try_send(6).unwrap(); // handed to r3
    drop(r3);
    drop(r1);
    assert_eq!(rx.try_recv(), Ok(4));
    assert_eq!(rx.try_recv(), Ok(6));
}

/// A `next()` dropped after it registered (a lost `select!` branch) leaves its handle
/// registered; an item sent for it is still received by a receive waiting on another
/// handle, in a rendezvous and in a buffered stream. (A failure times out.)
#[hatchery::test(virtual_time)]
async fn an_idle_stream_handle_holds_no_item_back() {
    for capacity in [0, 4] {
        let (tx, mut rx) = memory_stream::<u32>(capacity);
        let rx2 = rx.clone();
        fail_after(
            HOUR,
            nursery(|n| async move {
                assert!(future::poll_once(rx.next()).await.is_none());
                let h = n.spawn(async move { Ok::<_, anyhow::Error>(rx2.recv().await) });
                wait_all_tasks_blocked().await;
                // `rx` registered first: the item is sent for it, yet `rx2` receives it.
                tx.send(1).await?;
                assert_eq!(h.join().await?, Ok(1));
                drop(rx);
                Ok::<_, anyhow::Error>(())
            }),
        )
        .await
        .unwrap()
        .unwrap();
    }
}

/// The same between two `Stream` consumers: the one whose `next()` was dropped does not
/// keep the other from being woken. (A failure times out.)
#[hatchery::test(virtual_time)]
async fn an_idle_stream_handle_does_not_starve_another_stream() {
    let (tx, mut rx) = memory_stream::<u32>(0);
    let mut rx2 = rx.clone();
    fail_after(
        HOUR,
        nursery(|n| async move {
            assert!(future::poll_once(rx.next()).await.is_none());
            let h = n.spawn(async move {
                let mut got = Vec::new();
                while let Some(v) = rx2.next().await {
                    got.push(v);
                }
                Ok::<_, anyhow::Error>(got)
            });
            wait_all_tasks_blocked().await;
            for i in 0..3 {
                tx.send(i).await?;
            }
            drop(tx);
            assert_eq!(h.join().await?, [0, 1, 2]);
            drop(rx);
            Ok::<_, anyhow::Error>(())
        }),
    )
    .await
    .unwrap()
    .unwrap();
}

/// In a rendezvous stream an idle handle counts as a receiver for one send at most: the
/// next send waits for a real receive, and the handle counts again once polled again.
#[hatchery::test]
async fn an_idle_stream_handle_lets_one_rendezvous_send_through() {
    let (tx, mut rx) = memory_stream::<u32>(0);
    assert!(future::poll_once(rx.next()).await.is_none());
    tx.try_send(1).unwrap();
    assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
    assert_eq!(rx.try_recv(), Ok(1));
    assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
    assert!(future::poll_once(rx.next()).await.is_none());
    tx.try_send(2).unwrap();
    assert_eq!(rx.next().await, Some(2));
    // Taking the item ended the wait: nothing registered, nothing sent.
    assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
    assert_eq!(rx.statistics().tasks_waiting_receive, 0);
}

/// Items sent for stream waiters and items back from dropped receives keep the order in
/// which they were sent.
#[hatchery::test]
async fn items_sent_for_a_stream_keep_their_order() {
    let (tx, mut rx) = memory_stream::<u32>(4);
    let rx2 = rx.clone();
    let mut r = Box::pin(rx2.recv());
    assert!(future::poll_once(&mut r).await.is_none());
    assert!(future::poll_once(rx.next()).await.is_none());
    tx.try_send(1).unwrap(); // handed to `r`
    tx.try_send(2).unwrap(); // buffered, for `rx`'s stream waiter
    tx.try_send(3).unwrap();
    drop(r);
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.next().await, Some(2));
    assert_eq!(rx2.recv().await, Ok(3));
}

/// A rendezvous stream holds no items (`max_buffer_size == Some(0)`): an item sent for a
/// waiting `next()` is being handed over, which `current_buffer_used` does not count.
#[hatchery::test]
async fn rendezvous_statistics_with_a_waiting_next() {
    let (tx, mut rx) = memory_stream::<u32>(0);
    let mut next = rx.next();
    assert!(future::poll_once(&mut next).await.is_none()); // waiting, not dropped
    assert_eq!(tx.statistics().tasks_waiting_receive, 1);
    tx.try_send(1).unwrap();
    let s = tx.statistics();
    assert!(
        s.current_buffer_used <= s.max_buffer_size.unwrap(),
        "{s:?}: more items buffered than the capacity"
    );
    assert_eq!(next.await, Some(1));
}
/// `EndOfStream` is final: a receiver does not see it while an item is still being
/// handed over to another receive that may give it back.
#[hatchery::test]
async fn end_of_stream_waits_for_items_in_flight() {
    let (tx, rx) = memory_stream::<u32>(0);
    let rx_b = rx.clone();
    // Worker A waits in a receive in its own scope.
    let scope = CancelScope::new();
    let a_scope = scope.handle();
    let mut a = Box::pin(scope.run(rx.recv()));
    assert!(future::poll_once(a.as_mut()).await.is_none());
    tx.try_send(1).unwrap(); // the last item, handed to A
    drop(tx); // the producer is done
    a_scope.cancel(); // A's deadline fires during the hand-over: A gives the item back
                      // Worker B is polled first, then A.
    let (b, a) = future::zip(rx_b.recv(), a).await;
    assert_eq!(a, None);
    let later = rx_b.try_recv();
    assert_eq!(
        b,
        Ok(1),
        "EndOfStream while item 1 was being handed over (a later try_recv gave {later:?})"
    );
    assert_eq!(later, Err(TryRecvError::EndOfStream));
}

/// While the last item is in flight, other receivers wait (`try_recv` says `Empty`);
/// once it is taken, a parked `recv` and a parked `next()` are woken and see the end, and
/// `try_recv` says `EndOfStream`.
#[hatchery::test(virtual_time)]
async fn end_of_stream_comes_once_the_item_in_flight_is_taken() {
    let (tx, rx) = memory_stream::<u32>(0);
    let (rx_b, mut rx_c) = (rx.clone(), rx.clone());
    let mut a = Box::pin(rx.recv());
    assert!(future::poll_once(a.as_mut()).await.is_none());
    tx.try_send(1).unwrap(); // handed to A, not yet taken
    drop(tx);
    assert_eq!(rx_b.try_recv(), Err(TryRecvError::Empty));
    let ends = fail_after(
        HOUR,
        nursery(|n| async move {
            let b = n.spawn(async move { Ok::<_, RecvError>(rx_b.recv().await) });
            let c = n.spawn(async move { Ok(rx_c.next().await) });
            wait_all_tasks_blocked().await; // both parked
            assert_eq!(a.await, Ok(1));
            Ok((b.join().await.unwrap(), c.join().await.unwrap()))
        }),
    )
    .await;
    // A lost wake-up would leave them parked until the hour is up.
    assert_eq!(ends, Ok(Ok((Err(RecvError::EndOfStream), None))));
    assert_eq!(rx.try_recv(), Err(TryRecvError::EndOfStream));
}

/// A `Recv` polled again after it returned panics instead of taking a second item.
#[hatchery::test]
async fn recv_polled_after_completion_panics() {
    let (tx, rx) = memory_stream::<u32>(2);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    let mut recv = std::pin::pin!(rx.recv());
    assert_eq!((&mut recv).await, Ok(1));
    let again = hatchery_tests::catch_panic(recv).await;
    assert!(again
        .unwrap_err()
        .contains("`Recv` polled after completion"));
    assert_eq!(rx.try_recv(), Ok(2), "the second item is still there");
}

/// `is_terminated` (`FusedStream`): not while an item is buffered or in flight, and
/// for good once the stream has ended or the handle is closed.
#[hatchery::test]
async fn receive_stream_is_terminated() {
    use futures_core::FusedStream;
    let (tx, rx) = memory_stream::<u32>(0);
    let rx2 = rx.clone();
    assert!(!rx.is_terminated());
    let mut a = Box::pin(rx.recv());
    assert!(future::poll_once(a.as_mut()).await.is_none());
    tx.try_send(1).unwrap(); // in flight to `a`
    drop(tx);
    assert!(!rx2.is_terminated(), "the item may come back");
    assert_eq!(a.await, Ok(1));
    assert!(rx.is_terminated() && rx2.is_terminated());
    let (_tx, rx3) = memory_stream::<u32>(1);
    rx3.close();
    assert!(rx3.is_terminated());
}

/// End-of-stream reaches every parked receive after the last item in flight came back
/// and was taken.
#[hatchery::test(virtual_time)]
async fn eos_reaches_every_parked_receive_after_bounce() {
    let (tx, rx) = memory_stream::<u32>(0);
    let (rx_b, rx_c) = (rx.clone(), rx.clone());
    let mut a = Box::pin(rx.recv());
    assert!(future::poll_once(a.as_mut()).await.is_none()); // A waits first
    let out = fail_after(
        HOUR,
        nursery(|n| async move {
            let b = n.spawn(async move { Ok::<_, RecvError>(rx_b.recv().await) });
            let c = n.spawn(async move { Ok::<_, RecvError>(rx_c.recv().await) });
            wait_all_tasks_blocked().await; // B and C parked
            tx.try_send(1).unwrap(); // handed to A, the longest waiter
            drop(tx); // the producer is done: B and C see the item in flight and wait
            wait_all_tasks_blocked().await;
            drop(a); // A is cancelled: the item goes back to the stream
            let (b, c) = (b.join().await.unwrap(), c.join().await.unwrap());
            Ok::<_, RecvError>((b, c))
        }),
    )
    .await;
    let (b, c) = out
        .expect("a receive never saw end-of-stream (lost wake-up)")
        .unwrap();
    let mut got = [b, c];
    got.sort_by_key(|r| r.is_err());
    assert_eq!(got, [Ok(1), Err(RecvError::EndOfStream)]);
}

/// A rendezvous send does not complete for a receive whose scope is already cancelled.
#[hatchery::test]
async fn rendezvous_send_skips_a_cancelled_recv() {
    // A `next()` in a cancelled scope is not a receiver:
    let (tx, mut rx) = memory_stream::<u32>(0);
    let scope = CancelScope::new();
    let h = scope.handle();
    let mut w = Box::pin(scope.run(rx.next()));
    assert!(future::poll_once(w.as_mut()).await.is_none());
    h.cancel();
    assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)), "next() case");
    drop(w);
    // Nor is a `recv()`:
    let scope = CancelScope::new();
    let h = scope.handle();
    let mut r = Box::pin(scope.run(rx.recv()));
    assert!(future::poll_once(r.as_mut()).await.is_none());
    h.cancel(); // the receiver is cancelled: it will never take an item
    assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)), "recv() case");
}

/// Panics when dropped (unless already unwinding).
struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("PanicOnDrop dropped");
        }
    }
}

/// A `tx.closed()` that waits completes when the last receiver goes, even if a buffered
/// item's destructor panics while the broken stream drops it.
#[hatchery::test]
async fn closed_wakes_even_if_a_dropped_item_panics() {
    let (tx, rx) = memory_stream::<PanicOnDrop>(1);
    assert!(tx.try_send(PanicOnDrop).is_ok());
    nursery(|n| async move {
        let waiter = n.spawn(async move {
            tx.closed().await;
            Ok::<_, anyhow::Error>(())
        });
        wait_all_tasks_blocked().await; // `closed()` is parked
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(rx)));
        assert!(r.is_err(), "the item's destructor panicked out of the drop");
        wait_all_tasks_blocked().await;
        let woken = waiter.is_finished();
        waiter.cancel(); // so that the nursery ends either way
        assert!(
            woken,
            "tx.closed() still waits although no receiver is left"
        );
        Ok::<_, anyhow::Error>(())
    })
    .await
    .unwrap();
}

/// A paused send at the front of the queue does not keep the sends behind it from the
/// room that the receiver made for them.
#[hatchery::test(virtual_time)]
async fn a_paused_send_does_not_stall_the_sends_behind_it() {
    let (tx, rx) = memory_stream::<u32>(2);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap(); // full
                             // A waits first, then is kept without being polled (paused).
    let mut a = Box::pin(tx.send(10));
    assert!(future::poll_once(a.as_mut()).await.is_none());
    let tx_b = tx.clone();
    let rx = &rx;
    let out = fail_after(
        HOUR,
        nursery(|n| async move {
            let b = n.spawn(async move { Ok::<_, anyhow::Error>(tx_b.send(20).await.is_ok()) });
            wait_all_tasks_blocked().await; // B waits behind A
            assert_eq!(rx.statistics().tasks_waiting_send, 2);
            // Two items taken: room for A and for B.
            assert_eq!(rx.try_recv(), Ok(1));
            assert_eq!(rx.try_recv(), Ok(2));
            let sent = b.join().await?;
            Ok::<_, anyhow::Error>(sent)
        }),
    )
    .await;
    let sent = out
        .expect("the send behind a paused send never woke, although the buffer had room")
        .unwrap();
    assert!(sent);
    assert_eq!(rx.try_recv(), Ok(20));
    drop(a);
}

/// An item that comes back to the stream wakes a receive that can take it, not a paused
/// receive in a finished, cancelled scope that nobody polls.
#[hatchery::test(virtual_time)]
async fn a_paused_recv_does_not_swallow_the_wake_up_for_a_returned_item() {
    let (tx, rx) = memory_stream::<u32>(0);
    let (rx_b, rx_c) = (rx.clone(), rx.clone());
    // A: lent to a timeout, which fires; A is kept (paused) to be awaited later.
    let mut a = Box::pin(rx.recv());
    assert!(move_on_after(Duration::from_secs(1), &mut a)
        .await
        .is_none());
    // C: waits next (not cancelled).
    let mut c = Box::pin(rx_c.recv());
    assert!(future::poll_once(c.as_mut()).await.is_none());
    let out = fail_after(
        HOUR,
        nursery(|n| async move {
            // B: waits last, in its own task.
            let b = n.spawn(async move { Ok::<_, anyhow::Error>(rx_b.recv().await) });
            wait_all_tasks_blocked().await;
            tx.try_send(1).unwrap(); // skips paused A, handed to C
            drop(c); // C gives up: the item goes back to the front of the stream
            Ok::<_, anyhow::Error>(b.join().await?)
        }),
    )
    .await;
    let got = out
        .expect("the item came back but the waiting receive was never woken")
        .unwrap();
    assert_eq!(got, Ok(1));
    drop(a);
}

/// A paused receive (not cancelled) takes one wake-up for the items in the stream, not
/// all of them: with two items back in the stream, the receive behind it is woken for
/// the second.
#[hatchery::test(virtual_time)]
async fn a_paused_recv_takes_one_wake_up_not_all() {
    let (tx, rx) = memory_stream::<u32>(0);
    let rx_b = rx.clone();
    let (mut c1, mut c2) = (Box::pin(rx.recv()), Box::pin(rx.recv()));
    assert!(future::poll_once(c1.as_mut()).await.is_none());
    assert!(future::poll_once(c2.as_mut()).await.is_none());
    // A waits next, and is kept without being polled.
    let mut a = Box::pin(rx.recv());
    assert!(future::poll_once(a.as_mut()).await.is_none());
    let out = fail_after(
        HOUR,
        nursery(|n| async move {
            let b = n.spawn(async move { Ok::<_, anyhow::Error>(rx_b.recv().await) });
            wait_all_tasks_blocked().await; // B waits behind A
            tx.try_send(1).unwrap(); // handed to C1
            tx.try_send(2).unwrap(); // handed to C2
                                     // Both give up: the two items go back to the stream, one for A, one for B.
            drop(c1);
            drop(c2);
            Ok::<_, anyhow::Error>(b.join().await?)
        }),
    )
    .await;
    let got = out
        .expect("the receive behind a paused receive was not woken for the second item")
        .unwrap();
    assert_eq!(got, Ok(1));
    assert_eq!(a.await, Ok(2));
}

/// A paused send that was woken for room and is then dropped passes its wake-up on to
/// the send behind it.
#[hatchery::test(virtual_time)]
async fn a_dropped_paused_send_passes_its_wake_up_on() {
    let (tx, rx) = memory_stream::<u32>(1);
    tx.try_send(1).unwrap(); // full
    let mut a = Box::pin(tx.send(10));
    assert!(future::poll_once(a.as_mut()).await.is_none());
    let tx_b = tx.clone();
    let rx = &rx;
    let out = fail_after(
        HOUR,
        nursery(|n| async move {
            let b = n.spawn(async move { Ok::<_, anyhow::Error>(tx_b.send(20).await.is_ok()) });
            wait_all_tasks_blocked().await; // B waits behind A
            assert_eq!(rx.try_recv(), Ok(1)); // room for one: A is woken, not B
            wait_all_tasks_blocked().await;
            assert!(!b.is_finished());
            drop(a); // A gives up its place, and the wake-up with it
            Ok::<_, anyhow::Error>(b.join().await?)
        }),
    )
    .await;
    let sent = out
        .expect("the send behind a dropped paused send was never woken")
        .unwrap();
    assert!(sent);
    assert_eq!(rx.try_recv(), Ok(20));
}
