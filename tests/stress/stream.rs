//! Stress: 8 producers, 8 consumers, 100k items through a memory stream, with random
//! scope cancellations (deadlines already past, short deadlines, and a task cancelling
//! scopes from outside while sends and receives are in flight). Every item is counted:
//! nothing is lost and nothing is delivered twice. Seeded (`hatchery_tests::seeded`), on
//! every backend. And send handles cloned, closed and waited on from several threads at
//! once (clones and closes that take no lock).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hatchery::sync::{RecvError, SendError, TryRecvError, TrySendError};
use hatchery::{checkpoint, memory_stream, nursery, CancelHandle, CancelScope};
use hatchery_tests::seeded::{self, Rng};

const PRODUCERS: usize = 8;
const CONSUMERS: usize = 8;
const ITEMS: usize = 100_000;

/// A scope for one operation: no deadline, a deadline already past, or a short one; its
/// handle is published for the chaos task.
fn scope(rng: &mut Rng, slot: &Mutex<Option<CancelHandle>>) -> CancelScope {
    let scope = match rng.next_u64() % 8 {
        0 => CancelScope::new().with_timeout(Duration::ZERO),
        1 => CancelScope::new().with_timeout(Duration::from_micros(rng.next_u64() % 50)),
        _ => CancelScope::new(),
    };
    *slot.lock().unwrap() = Some(scope.handle());
    scope
}

async fn run(capacity: usize, seed: u64) {
    let (tx, rx) = memory_stream::<u32>(capacity);
    let counts: Arc<Vec<AtomicU32>> = Arc::new((0..ITEMS).map(|_| AtomicU32::new(0)).collect());
    let slots: Arc<Vec<Mutex<Option<CancelHandle>>>> = Arc::new(
        (0..PRODUCERS + CONSUMERS)
            .map(|_| Mutex::new(None))
            .collect(),
    );
    let cancelled = Arc::new(AtomicUsize::new(0));
    let c = counts.clone();
    let cancels = cancelled.clone();
    nursery(|n| async move {
        let stop = Arc::new(AtomicBool::new(false));
        // Chaos: cancels a random in-flight send or receive now and then.
        n.spawn({
            let (stop, slots) = (stop.clone(), slots.clone());
            async move {
                let mut rng = Rng::seeded(seed ^ 0xC4A05);
                while !stop.load(Ordering::Relaxed) {
                    let i = (rng.next_u64() % slots.len() as u64) as usize;
                    if let Some(h) = slots[i].lock().unwrap().take() {
                        h.cancel();
                    }
                    for _ in 0..rng.next_u64() % 8 {
                        checkpoint().await;
                    }
                }
                Ok::<_, anyhow::Error>(())
            }
        });
        for p in 0..PRODUCERS {
            let (tx, slots, cancels) = (tx.clone(), slots.clone(), cancels.clone());
            n.spawn(async move {
                let mut rng = Rng::seeded(seed + p as u64);
                for item in (p..ITEMS).step_by(PRODUCERS) {
                    loop {
                        let s = scope(&mut rng, &slots[p]);
                        match s.run(tx.send(item as u32)).await {
                            Some(Ok(())) => break,
                            Some(Err(e @ SendError::Broken(_))) => return Err(e.into()),
                            Some(Err(e)) => return Err(e.into()),
                            // Cancelled: nothing was sent, so sending again is right.
                            None => {
                                cancels.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                Ok(())
            });
        }
        drop(tx);
        let mut consumers = Vec::new();
        for k in 0..CONSUMERS {
            let (rx, slots, c, cancels) = (rx.clone(), slots.clone(), c.clone(), cancels.clone());
            consumers.push(n.spawn(async move {
                let mut rng = Rng::seeded(seed + 100 + k as u64);
                let mut got = 0usize;
                loop {
                    let s = scope(&mut rng, &slots[PRODUCERS + k]);
                    match s.run(rx.recv()).await {
                        Some(Ok(v)) => {
                            c[v as usize].fetch_add(1, Ordering::Relaxed);
                            got += 1;
                        }
                        Some(Err(RecvError::EndOfStream)) => return Ok(got),
                        Some(Err(e)) => return Err(e.into()),
                        // Cancelled: nothing was taken.
                        None => {
                            cancels.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        drop(rx);
        let mut total = 0;
        for h in consumers {
            total += h.join().await?;
        }
        stop.store(true, Ordering::Relaxed);
        assert_eq!(total, ITEMS);
        Ok::<_, anyhow::Error>(())
    })
    .await
    .unwrap();
    let wrong: Vec<(usize, u32)> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| (i, c.load(Ordering::Relaxed)))
        .filter(|&(_, c)| c != 1)
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "items not delivered exactly once: {wrong:?}"
    );
    assert!(
        cancelled.load(Ordering::Relaxed) > 0,
        "the test cancelled nothing"
    );
}

/// A rendezvous stream: every handover can be cut by a cancellation. (One seed a run:
/// `HATCHERY_TEST_CASES` runs more, `hatchery_tests::seeded`.)
#[hatchery::test(virtual_time)]
async fn rendezvous_nothing_lost_or_duplicated() {
    seeded::check_async(1, |seed| run(0, seed)).await;
}

/// A small buffer.
#[hatchery::test(virtual_time)]
async fn bounded_nothing_lost_or_duplicated() {
    seeded::check_async(1, |seed| run(16, seed)).await;
}

/// Send handles cloned and closed on several threads at once (clones and closes take no
/// lock unless a send of the handle waited or it is the last): the count of open handles
/// is exact, the stream never ends while a handle is open, and a clone made from a
/// handle while another thread closes it is either open and counted, or closed.
#[test]
fn clones_closed_across_threads_keep_the_count() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 2_000;
    for round in 0..20 {
        let (tx, rx) = hatchery::memory_stream_unbounded::<usize>();
        let shared = Arc::new(tx);
        let keep = shared.clone();
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let mut kept = Vec::new();
                    for i in 0..ROUNDS {
                        let c = (*shared).clone();
                        if (i + t + round) % 7 == 0 {
                            // A clone kept for now, sent on later.
                            kept.push(c);
                        } else {
                            c.try_send(i).expect("an open clone sends");
                        }
                    }
                    for c in &kept {
                        c.try_send(usize::MAX).expect("a kept clone is open");
                    }
                    kept.len()
                })
            })
            .collect();
        let kept: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert!(kept > 0);
        // Every clone is gone: the original handle is the only one open.
        assert_eq!(keep.statistics().open_send_streams, 1);
        drop(shared);
        let mut items = 0;
        loop {
            match rx.try_recv() {
                Ok(_) => items += 1,
                Err(TryRecvError::Empty) => {
                    // `keep` is still open: no end of stream.
                    assert_eq!(items, THREADS * ROUNDS);
                    break;
                }
                Err(e) => panic!("the stream ended with a handle open: {e:?}"),
            }
        }
        drop(keep);
        assert_eq!(rx.try_recv(), Err(TryRecvError::EndOfStream));
    }
}

/// A handle cloned on one thread while another closes it (the only open handle): a
/// clone that is open keeps the stream from ending while it lives, and a clone made
/// after the close is closed, so nothing is sent once the stream has ended.
#[test]
fn a_clone_racing_the_last_close_is_closed_after_it() {
    for round in 0..2_000 {
        let (tx, rx) = hatchery::memory_stream_unbounded::<usize>();
        let tx = Arc::new(tx);
        let closer = {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for _ in 0..round % 4 {
                    std::thread::yield_now();
                }
                tx.close();
            })
        };
        let mut clones = 0;
        while !tx.is_closed() && clones < 100_000 {
            let c = (*tx).clone();
            clones += 1;
            if !c.is_closed() {
                // Open: it counts, so the stream has not ended (the close of `tx` alone
                // cannot end it now).
                assert_ne!(
                    rx.try_recv(),
                    Err(TryRecvError::EndOfStream),
                    "round {round}: an open clone of a stream that has ended"
                );
                c.try_send(clones).expect("an open clone sends");
            }
        }
        closer.join().unwrap();
        // Made after the close: closed.
        let last = (*tx).clone();
        assert!(last.is_closed(), "a clone of a closed handle is closed");
        assert!(matches!(last.try_send(0), Err(TrySendError::Closed(0))));
        assert_eq!(tx.statistics().open_send_streams, 0);
        while rx.try_recv().is_ok() {}
        assert_eq!(rx.try_recv(), Err(TryRecvError::EndOfStream));
    }
}

/// A send waiting on a full stream while another thread closes its handle (a close that
/// takes no lock when the handle never waited before): the send fails with `Closed`,
/// whichever comes first, and never waits for good.
#[hatchery::test(backends(tokio_multi, smol))]
async fn a_waiting_send_closed_from_another_thread_fails() {
    for i in 0..500 {
        let (tx, rx) = memory_stream::<usize>(1);
        tx.try_send(0).unwrap();
        let h = Arc::new(tx.clone());
        let closer = {
            let h = h.clone();
            std::thread::spawn(move || {
                for _ in 0..i % 3 {
                    std::thread::yield_now();
                }
                h.close();
            })
        };
        let sent = hatchery::fail_after(Duration::from_secs(10), h.send(i))
            .await
            .expect("a send on a closed handle waited for good");
        assert!(matches!(sent, Err(SendError::Closed(v)) if v == i));
        closer.join().unwrap();
        // The other handle is untouched, and nothing of the failed send is buffered.
        assert!(!tx.is_closed());
        assert_eq!(rx.try_recv(), Ok(0));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(tx.statistics().tasks_waiting_send, 0);
    }
}
