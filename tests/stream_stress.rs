//! Stress: 8 producers, 8 consumers, 100k items through a memory stream, with random
//! scope cancellations (deadlines already past, short deadlines, and a task cancelling
//! scopes from outside while sends and receives are in flight). Every item is counted:
//! nothing is lost and nothing is delivered twice. Seeded, on every backend.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hatchery::sync::{RecvError, SendError};
use hatchery::{checkpoint, memory_stream, nursery, CancelHandle, CancelScope};

const PRODUCERS: usize = 8;
const CONSUMERS: usize = 8;
const ITEMS: usize = 100_000;

/// xorshift64*: a small seeded generator, one per task.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A scope for one operation: no deadline, a deadline already past, or a short one; its
/// handle is published for the chaos task.
fn scope(rng: &mut Rng, slot: &Mutex<Option<CancelHandle>>) -> CancelScope {
    let scope = match rng.next() % 8 {
        0 => CancelScope::new().with_timeout(Duration::ZERO),
        1 => CancelScope::new().with_timeout(Duration::from_micros(rng.next() % 50)),
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
                let mut rng = Rng::new(seed ^ 0xC4A05);
                while !stop.load(Ordering::Relaxed) {
                    let i = (rng.next() % slots.len() as u64) as usize;
                    if let Some(h) = slots[i].lock().unwrap().take() {
                        h.cancel();
                    }
                    for _ in 0..rng.next() % 8 {
                        checkpoint().await;
                    }
                }
                Ok::<_, anyhow::Error>(())
            }
        });
        for p in 0..PRODUCERS {
            let (tx, slots, cancels) = (tx.clone(), slots.clone(), cancels.clone());
            n.spawn(async move {
                let mut rng = Rng::new(seed + p as u64);
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
                let mut rng = Rng::new(seed + 100 + k as u64);
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

/// A rendezvous stream: every handover can be cut by a cancellation.
#[hatchery::test(virtual_time)]
async fn rendezvous_nothing_lost_or_duplicated() {
    run(0, 0x5EED_0000).await;
}

/// A small buffer.
#[hatchery::test(virtual_time)]
async fn bounded_nothing_lost_or_duplicated() {
    run(16, 0x5EED_0016).await;
}
