//! How fast the simulator runs: seeds per second of a small scenario, simulated seconds
//! per wall second, and polls per second with many tasks ready at once. The figures in
//! the book's chapter *Simulation testing* come from
//! `cargo run --release -p hatchery-sim --example sim_speed`.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use hatchery::{checkpoint, memory_stream, move_on_after, nursery, sleep, Nursery};
use hatchery_sim::Sim;

/// Three producers and a consumer on a bounded stream, sleeps, and a timeout that fires.
async fn pipeline() -> usize {
    nursery(|n: Nursery<Infallible>| async move {
        let (tx, rx) = memory_stream::<u32>(2);
        for producer in 0..3u32 {
            let tx = tx.clone();
            n.spawn(async move {
                for i in 0..4 {
                    sleep(Duration::from_millis(u64::from(producer * 3 + i))).await;
                    tx.send(producer * 10 + i).await.unwrap();
                    checkpoint().await;
                }
                Ok(())
            });
        }
        drop(tx);
        let consumer = n.spawn(async move {
            let mut got = Vec::new();
            while let Ok(v) = rx.recv().await {
                got.push(v);
            }
            Ok(got)
        });
        let timeout = move_on_after(Duration::from_secs(1), sleep(Duration::from_secs(5))).await;
        assert_eq!(timeout, None);
        Ok(consumer.join().await.unwrap().len())
    })
    .await
    .unwrap()
}

fn main() {
    for round in 1..=3 {
        println!("round {round}");
        let start = Instant::now();
        let mut polls = 0;
        for seed in 0..1000 {
            let (n, trace) = Sim::new(seed).run_traced(pipeline());
            assert_eq!(n, 12);
            polls += trace.polls();
        }
        let wall = start.elapsed();
        println!(
            "  1000 seeds of the pipeline: {wall:.2?} ({:.1} us a run, {:.0} ns a poll)",
            wall.as_secs_f64() * 1e6 / 1000.0,
            wall.as_nanos() as f64 / polls as f64
        );

        let start = Instant::now();
        let simulated = Sim::new(1).run(async {
            let t0 = hatchery::now();
            for _ in 0..100_000 {
                sleep(Duration::from_secs(1)).await;
            }
            hatchery::now() - t0
        });
        let wall = start.elapsed();
        println!(
            "  100,000 sleeps of 1 s: {simulated:?} simulated in {wall:.2?} ({:.0} simulated seconds a wall second)",
            simulated.as_secs_f64() / wall.as_secs_f64()
        );

        let start = Instant::now();
        let (_, trace) = Sim::new(1).run_traced(nursery(|n: Nursery<Infallible>| async move {
            let handles: Vec<_> = (0..10_000u64)
                .map(|i| n.spawn(async move { Ok(i) }))
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.join().await.unwrap();
            }
            Ok(sum)
        }));
        let wall = start.elapsed();
        println!(
            "  10,000 tasks spawned and joined: {wall:.2?} ({:.0} ns a task, {} polls)",
            wall.as_nanos() as f64 / 10_000.0,
            trace.polls()
        );
    }
}
