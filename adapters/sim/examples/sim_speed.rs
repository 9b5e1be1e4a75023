//! How fast the simulator runs: seeds per second of a small scenario, simulated seconds
//! per wall second, polls per second with many tasks ready at once, a network of three
//! hosts (simulated seconds and messages per wall second), and a disk (synced appends
//! per wall second). The figures in the book's
//! chapter *Simulation testing* come from
//! `cargo run --release -p hatchery-sim --example sim_speed`.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use hatchery::net::{TcpListener, TcpStream};
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

/// A server that answers each 64-byte request with 64 bytes, one task per connection.
async fn server() -> std::io::Result<()> {
    let listener = TcpListener::bind("0.0.0.0:80").await?;
    hatchery::net::serve(listener, |mut conn: TcpStream| async move {
        let mut buf = [0; 64];
        while conn.read_exact(&mut buf).await.is_ok() {
            conn.write_all(&buf).await?;
        }
        Ok::<_, std::io::Error>(())
    })
    .await
    .map(drop)
    .map_err(std::io::Error::other)
}

/// A client host: four connections to the server, each a request every 10 ms (and its
/// answer), for as long as the run goes.
async fn client() -> std::io::Result<()> {
    nursery(|n| async move {
        for _ in 0..4 {
            n.spawn(async {
                let mut conn = TcpStream::connect(("server", 80)).await?;
                let mut buf = [7; 64];
                for _ in 0..u64::MAX {
                    conn.write_all(&buf).await?;
                    conn.read_exact(&mut buf).await?;
                    sleep(Duration::from_millis(10)).await;
                }
                Ok::<_, std::io::Error>(())
            });
        }
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)
}

/// Three hosts (a server and two clients) for `simulated` of simulated time: the
/// messages delivered, and the simulated time.
fn three_hosts(seed: u64, simulated: Duration) -> (u64, Duration) {
    let (_, trace) = Sim::new(seed).run_traced(async move {
        let net = hatchery_sim::net();
        net.host("server", server);
        net.host("client-a", client);
        net.host("client-b", client);
        sleep(simulated).await;
    });
    (trace.messages(), trace.elapsed())
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

        let start = Instant::now();
        let appends = 10_000;
        let simulated = Sim::new(1).run(async move {
            let t0 = hatchery::now();
            let mut log = hatchery::fs::File::create("/log").await.unwrap();
            for _ in 0..appends {
                log.write_all(&[7; 64]).await.unwrap();
                log.sync_data().await.unwrap();
            }
            hatchery::now() - t0
        });
        let wall = start.elapsed();
        println!(
            "  {appends} appends of 64 bytes, each synced: {simulated:.2?} simulated in {wall:.2?} \
             ({:.0} synced appends a wall second)",
            f64::from(appends) / wall.as_secs_f64()
        );

        let start = Instant::now();
        let (messages, simulated) = three_hosts(1, Duration::from_secs(60));
        let wall = start.elapsed();
        println!(
            "  3 hosts, 8 connections, a request every 10 ms on each: {simulated:?} simulated in \
             {wall:.2?} ({:.0} simulated seconds a wall second, {messages} messages, {:.0} \
             messages a wall second)",
            simulated.as_secs_f64() / wall.as_secs_f64(),
            messages as f64 / wall.as_secs_f64()
        );
    }
}
