//! `produce`: a producer task feeding its consumer a stream, both inside one nursery
//! (rules Y1-Y4; the conformance kit runs the main scenarios on every backend).

use futures_lite::StreamExt;
use hatchery::futures::Items;
use hatchery::{nursery, produce, Nursery};
use hatchery_tests::{catch_panic, Counter, TestError};

/// Y1: the producer may clone its sender into tasks of its own nursery; the stream ends
/// once the producer has returned, so every item of every task arrives first.
#[hatchery::test]
async fn y1_the_producers_own_tasks_send_too() {
    let mut got = produce(
        2,
        |tx| async move {
            nursery(|n: Nursery<TestError>| async move {
                for t in 0..3u32 {
                    let tx = tx.clone();
                    n.spawn(async move {
                        for i in 0..10 {
                            tx.send(t * 100 + i).await.map_err(|_| TestError("gone"))?;
                        }
                        Ok(())
                    });
                }
                Ok(())
            })
            .await
            .map_err(|e| e.into_first().unwrap_or(TestError("cancelled")))
        },
        |items| async move { items.try_collect::<_, _, Vec<u32>>().await },
    )
    .await
    .unwrap();
    got.sort_unstable();
    let mut expected: Vec<u32> = (0..3)
        .flat_map(|t| (0..10).map(move |i| t * 100 + i))
        .collect();
    expected.sort_unstable();
    assert_eq!(got, expected);
}

/// Y2: the consumer runs in the caller's task and may borrow from it; once `produce`
/// has returned, the producer has stopped and the borrow has ended.
#[hatchery::test]
async fn y2_the_consumer_borrows_and_the_producer_has_stopped() {
    let stopped = Counter::new();
    let guard = stopped.guard();
    let mut seen = Vec::new();
    let out = produce(
        0,
        move |tx| async move {
            let _guard = guard;
            for i in 0u32.. {
                tx.send(i).await.map_err(|_| TestError("gone"))?;
            }
            Ok(())
        },
        |mut items: Items<u32, TestError>| {
            let seen = &mut seen;
            async move {
                while let Some(i) = items.next().await {
                    seen.push(i?);
                    if seen.len() == 4 {
                        break;
                    }
                }
                Ok(seen.len())
            }
        },
    )
    .await;
    assert_eq!(out, Ok(4));
    assert_eq!(stopped.get(), 1);
    seen.push(99); // the borrow ended with the call
    assert_eq!(seen, [0, 1, 2, 3, 99]);
}

/// Y2: a stream kept past the call (returned by the consumer) is over: it ends at once,
/// rather than wait for a producer that has stopped.
#[hatchery::test]
async fn y2_a_stream_kept_past_the_call_ends() {
    let mut items = produce(
        1,
        |tx| async move {
            for i in 0u32.. {
                tx.send(i).await.map_err(|_| TestError("gone"))?;
            }
            Ok(())
        },
        |items: Items<u32, TestError>| async move { Ok(items) },
    )
    .await
    .unwrap();
    let mut rest = Vec::new();
    while let Some(item) = items.next().await {
        rest.push(item.unwrap());
    }
    assert!(rest.len() <= 1, "{rest:?}"); // at most what the buffer held
}

/// Y4: a panic in the closure that makes the producer is resumed; the consumer never
/// runs.
#[hatchery::test]
async fn y4_a_panic_making_the_producer() {
    let ran = Counter::new();
    let r = ran.clone();
    let out = catch_panic(produce(
        0,
        |_tx: hatchery::SendStream<u8>| -> std::future::Ready<Result<(), TestError>> {
            panic!("no producer")
        },
        move |_items| async move {
            r.incr();
            Ok(())
        },
    ))
    .await;
    assert_eq!(out.unwrap_err(), "no producer");
    assert_eq!(ran.get(), 0);
}
