//! Structured streams (Y): `produce`, a producer task feeding a consumer through a
//! bounded stream, both inside one nursery.

use hatchery::testing::elapsed;
use hatchery::{
    finally, move_on_after, nursery, produce, shield, sleep, Nursery, NurseryError, SendStream,
};

use crate::support::{catch_panic, collect, next, secs, Counter, Log, Oops, HOUR};

/// Sends 0, 1, 2, ... one second apart, until cancelled.
async fn count_up(tx: SendStream<u32>) -> Result<(), Oops> {
    for i in 0.. {
        tx.send(i).await.map_err(|_| Oops("consumer gone"))?;
        sleep(secs(1)).await;
    }
    Ok(())
}

fn producer_panics() -> Result<(), Oops> {
    panic!("producer panicked")
}

fn consumer_panics() -> Result<(), Oops> {
    panic!("consumer panicked")
}

/// Y1: the consumer reads the items in the order they were sent, then the producer's
/// error, then the end; a producer that returns `Ok` ends the stream. A send waits for
/// room: the producer is at most `capacity` items ahead of the consumer (0: none).
pub async fn y1_items_then_the_error_in_order() {
    for capacity in [0, 2] {
        let sent = Counter::new();
        let s = sent.clone();
        let out = produce(
            capacity,
            move |tx| async move {
                for i in 0..5u32 {
                    tx.send(i).await.map_err(|_| Oops("consumer gone"))?;
                    s.incr();
                }
                Err(Oops("producer"))
            },
            |mut items| async move {
                let mut got = Vec::new();
                loop {
                    sleep(secs(1)).await;
                    // The producer ran ahead as far as the stream let it, no further.
                    assert_eq!(sent.get(), (got.len() + capacity).min(5));
                    match next(&mut items).await {
                        Some(item) => got.push(item),
                        None => break,
                    }
                }
                Ok(got)
            },
        )
        .await;
        let mut expected: Vec<_> = (0..5u32).map(Ok).collect();
        expected.push(Err(Oops("producer")));
        // The consumer read the error: it is handled, `produce` returns the value.
        assert_eq!(out, Ok(expected));
    }
    assert_eq!(elapsed(), secs(14));
    let out = produce(
        1,
        |tx| async move {
            for i in 1..=3u32 {
                tx.send(i).await.map_err(|_| Oops("consumer gone"))?;
            }
            Ok(())
        },
        |mut items| async move { Ok::<_, Oops>(collect(&mut items).await) },
    )
    .await;
    assert_eq!(out, Ok(vec![Ok(1), Ok(2), Ok(3)]));
}

/// Y2: a consumer that stops reading early ends the producer: its children are cancelled
/// and its shielded cleanup finishes, all before the line after `produce` runs. A
/// producer stopped this way reports nothing: it was cancelled.
pub async fn y2_breaking_early_cancels_and_awaits_the_producer() {
    let log = Log::new();
    let l = log.clone();
    let out = produce(
        0,
        move |tx| async move {
            nursery(|n: Nursery<Oops>| async move {
                for _ in 0..2 {
                    let gone = l.on_drop("a child is gone");
                    n.spawn(async move {
                        let _gone = gone;
                        sleep(HOUR).await;
                        Ok(())
                    });
                }
                let cleanup = async move {
                    sleep(secs(2)).await;
                    l.push("cleaned up");
                };
                finally(count_up(tx), cleanup).await
            })
            .await
            .map_err(|e| e.into_first().unwrap_or(Oops("cancelled")))
        },
        |mut items| async move {
            let mut sum = 0;
            while let Some(item) = next(&mut items).await {
                sum += item?;
                if sum >= 3 {
                    break; // 0 + 1 + 2
                }
            }
            Ok(sum)
        },
    )
    .await;
    assert_eq!(out, Ok(3));
    assert_eq!(
        log.events(),
        ["a child is gone", "a child is gone", "cleaned up"]
    );
    assert_eq!(elapsed(), secs(4)); // read at 0, 1 and 2 s; 2 s of cleanup
}

/// Y2: dropping the stream inside the consumer cancels the producer at once; an
/// enclosing scope's cancellation stops both, waits for the producer's cleanup, and the
/// scope returns.
pub async fn y2_an_enclosing_cancellation_stops_both() {
    let log = Log::new();
    let l = log.clone();
    let out = produce(
        0,
        move |tx| async move {
            let _gone = l.on_drop("producer gone");
            count_up(tx).await
        },
        |mut items| {
            let l = log.clone();
            async move {
                let first = next(&mut items).await;
                drop(items);
                // Cancelled, not left to find the stream gone: its next send would fail,
                // and `produce` would report that error.
                sleep(secs(10)).await;
                assert_eq!(l.events(), ["producer gone"]);
                Ok::<_, Oops>(first)
            }
        },
    )
    .await;
    assert_eq!(out, Ok(Some(Ok(0))));
    assert_eq!(elapsed(), secs(10));

    let log = Log::new();
    let (lp, lc) = (log.clone(), log.clone());
    let out = move_on_after(
        secs(5),
        produce(
            1,
            move |tx| async move {
                let cleanup = async move {
                    sleep(secs(1)).await;
                    lp.push("producer cleaned up");
                };
                finally(count_up(tx), cleanup).await
            },
            move |mut items| async move {
                let _gone = lc.on_drop("consumer gone");
                while let Some(item) = next(&mut items).await {
                    item?;
                }
                Ok(())
            },
        ),
    )
    .await;
    assert_eq!(out, None);
    assert_eq!(log.count("consumer gone"), 1);
    assert_eq!(log.count("producer cleaned up"), 1);
    assert_eq!(elapsed(), secs(16));
}

/// Y3: no error is lost. The consumer's error is returned; a producer's error the
/// consumer did not read is reported before it, and one the producer returned once the
/// consumer had ended after it; under an enclosing cancellation, an unread error is
/// still reported.
pub async fn y3_errors_are_not_lost() {
    // The consumer's error; the producer, cancelled, reports nothing.
    let out = produce(1, count_up, |mut items| async move {
        next(&mut items).await;
        Err::<(), _>(Oops("consumer"))
    })
    .await;
    assert_eq!(out, Err(NurseryError::Failed(vec![Oops("consumer")])));

    // The producer failed, and the consumer stopped reading before the error.
    let fails = |tx: SendStream<u32>| async move {
        tx.send(1).await.map_err(|_| Oops("consumer gone"))?;
        Err(Oops("producer"))
    };
    let out = produce(4, fails, |mut items| async move {
        let first = next(&mut items).await;
        sleep(secs(1)).await; // the producer fails meanwhile
        Ok(first)
    })
    .await;
    assert_eq!(out, Err(NurseryError::Failed(vec![Oops("producer")])));
    let out = produce(4, fails, |mut items| async move {
        next(&mut items).await;
        sleep(secs(1)).await;
        Err::<(), _>(Oops("consumer"))
    })
    .await;
    let both = vec![Oops("producer"), Oops("consumer")];
    assert_eq!(out, Err(NurseryError::Failed(both)));

    // An error the producer returns once the consumer is gone: a send in a shield fails.
    let out = produce(
        0,
        |tx| {
            shield(async move {
                sleep(secs(1)).await;
                tx.send(1u32).await.map_err(|_| Oops("late"))
            })
        },
        |items| async move {
            drop(items);
            Err::<(), _>(Oops("consumer"))
        },
    )
    .await;
    let both = vec![Oops("consumer"), Oops("late")];
    assert_eq!(out, Err(NurseryError::Failed(both)));

    // Under an enclosing cancellation, an error the consumer never read.
    let out = move_on_after(
        secs(1),
        produce(
            0,
            |_tx: SendStream<u32>| async { Err::<(), _>(Oops("producer")) },
            |_items| async {
                sleep(HOUR).await;
                Ok(())
            },
        ),
    )
    .await;
    assert_eq!(out, Some(Err(NurseryError::Failed(vec![Oops("producer")]))));
    assert_eq!(elapsed(), secs(4));
}

/// Y4: a panic of the producer or of the consumer cancels the other, and is resumed
/// once both have stopped. A consumer the panic cancels never sees the stream end; one
/// that reads in a shield sees the end, without an error.
pub async fn y4_panics_are_resumed_after_both_stop() {
    let log = Log::new();
    let l = log.clone();
    let out = catch_panic(produce(
        1,
        |tx| async move {
            tx.send(1u32).await.map_err(|_| Oops("consumer gone"))?;
            sleep(secs(1)).await;
            producer_panics()
        },
        move |mut items| async move {
            let _gone = l.on_drop("consumer gone");
            assert_eq!(next(&mut items).await, Some(Ok(1)));
            next(&mut items).await; // cancelled here by the panic
            l.push("consumer saw the end");
            Ok(())
        },
    ))
    .await;
    assert_eq!(out.unwrap_err(), "producer panicked");
    assert_eq!(log.events(), ["consumer gone"]);
    assert_eq!(elapsed(), secs(1));

    let log = Log::new();
    let l = log.clone();
    let out = catch_panic(produce(
        1,
        |tx| async move {
            tx.send(1u32).await.map_err(|_| Oops("consumer gone"))?;
            producer_panics()
        },
        move |mut items| async move {
            let got = shield(async move { collect(&mut items).await }).await;
            if got == [Ok(1)] {
                l.push("the shielded reader saw the end");
            }
            Ok(())
        },
    ))
    .await;
    assert_eq!(out.unwrap_err(), "producer panicked");
    assert_eq!(log.events(), ["the shielded reader saw the end"]);

    let log = Log::new();
    let l = log.clone();
    let out = catch_panic(produce(
        0,
        move |tx| async move {
            let cleanup = async move {
                sleep(secs(1)).await;
                l.push("producer cleaned up");
            };
            finally(count_up(tx), cleanup).await
        },
        |mut items| async move {
            next(&mut items).await;
            consumer_panics()
        },
    ))
    .await;
    assert_eq!(out.unwrap_err(), "consumer panicked");
    assert_eq!(log.events(), ["producer cleaned up"]);
    assert_eq!(elapsed(), secs(2));
}
