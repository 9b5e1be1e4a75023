//! The application of the `kv_tokio` and `kv_smol` examples, written once: it uses the
//! executor-independent key-value library (`hatchery-kv-example`) and hatchery, and no
//! executor. Each example's `main` only picks the executor; both print the same lines.
//!
//! It runs a server and a client of it on loopback, and shows the library's pool, a
//! caller's deadline, the library's own timeout, retries, and a graceful stop.

use std::time::Duration;

use hatchery::net::TcpListener;
use hatchery::{err_into, fail_after, map, move_on_after, now, nursery, sleep, Backoff};
use hatchery_kv_example::{Client, Config, Error, Server};

/// The application: a server and a client, in one nursery.
pub(crate) async fn main() -> anyhow::Result<()> {
    let server = Server::new();
    nursery(|n| async move {
        // The server is a task of this nursery; `start` hands back its address once it
        // listens, and a handle to how it stopped.
        let s = server.clone();
        let (addr, running) = n
            .start_with_handle(|ready| {
                err_into(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await?;
                    ready.started(listener.local_addr()?);
                    s.run(listener, Duration::from_secs(1)).await
                })
            })
            .await?;
        println!("server: listening on loopback");

        let client = Client::new(
            addr,
            Config {
                pool_size: 4,
                request_timeout: Duration::from_millis(200),
                attempts: 3,
                backoff: Backoff::new().with_min_delay(Duration::from_millis(20)),
                ..Config::default()
            },
        );

        client.set("language", "rust").await?;
        println!("get language -> {:?}", client.get("language").await?);
        println!("del language -> {}", client.del("language").await?);
        println!("get language -> {:?}", client.get("language").await?);

        // Sixteen tasks at once, each with a request that takes the server 20 ms, through
        // a pool of four connections: four at a time, so four rounds at least.
        let start = now();
        let squares = map(16, 0..16u32, |i| {
            let client = client.clone();
            async move {
                client.wait(Duration::from_millis(20)).await?;
                client.set(&format!("k{i}"), &(i * i).to_string()).await?;
                client.get(&format!("k{i}")).await
            }
        })
        .try_join()
        .await?;
        let squares: Vec<String> = squares.into_iter().flatten().collect();
        println!("16 tasks at once -> {}", squares.join(" "));
        // Both hold whatever the scheduling (the second is the peak the server saw).
        assert!(
            now() - start >= Duration::from_millis(4 * 20),
            "the pool's bound"
        );
        assert!(server.stats().most_open <= 4, "the pool's bound");
        println!("  through 4 connections: 4 rounds of 20 ms or more, never 5 connections");

        // The caller's deadline: no timeout parameter, and no error: the caller's scope
        // ends the request where it waits.
        let cut = move_on_after(
            Duration::from_millis(50),
            client.wait(Duration::from_millis(300)),
        )
        .await;
        println!(
            "a 300 ms request under a 50 ms deadline -> {}",
            match cut {
                None => "cut by the caller's deadline".to_string(),
                Some(r) => format!("{r:?}"),
            }
        );
        // The client told the server the time it had left: the server gave up too.
        until(|| server.stats().expired == 1).await?;
        println!("  the server, told the time left, stopped working on it too");

        // The library's own bound on each attempt, 200 ms: an error, after three attempts.
        let before = client.stats().attempts;
        let slow = client.wait(Duration::from_millis(500)).await;
        println!(
            "a 500 ms request, 200 ms allowed an attempt -> {} ({} attempts)",
            slow.map_or_else(|e| e.to_string(), |()| "answered".to_string()),
            client.stats().attempts - before
        );

        // Retries: the server drops the next two requests without an answer.
        server.fail_next(2);
        let before = client.stats().retries;
        let value = client.get("k3").await?;
        println!(
            "get k3, the server dropping two requests -> {value:?} after {} retries",
            client.stats().retries - before
        );

        // A graceful stop: the request in hand is answered, then the server returns.
        let c = client.clone();
        let received = server.stats().requests;
        let in_hand = n.spawn(err_into(
            async move { c.wait(Duration::from_millis(100)).await },
        ));
        // Once the server has it in hand (watched from outside, for the demonstration:
        // a real server is stopped by a signal, whatever it has in hand).
        until(|| server.stats().requests > received).await?;
        server.shutdown();
        in_hand.join().await?;
        println!("a request in hand when the server stops -> answered");
        let stopped = running.join().await?;
        let stats = server.stats();
        println!(
            "server: stopped {stopped:?}, after {} requests ({} given up at their client's deadline)",
            stats.requests, stats.expired
        );
        println!(
            "client: a request after the stop -> {}",
            describe(client.get("k3").await)
        );
        client.close().await;
        Ok::<_, anyhow::Error>(())
    })
    .await?;
    Ok(())
}

/// Waits until `condition` holds, polling it (for at most 10 s): how the demonstration
/// watches the server from outside.
async fn until(condition: impl Fn() -> bool) -> Result<(), hatchery::Elapsed> {
    fail_after(Duration::from_secs(10), async {
        while !condition() {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await
}

/// A request's outcome, as a line of output.
fn describe(outcome: Result<Option<String>, Error>) -> String {
    match outcome {
        Ok(v) => format!("{v:?}"),
        Err(Error::Io(e)) => format!("connection failed ({:?})", e.kind()),
        Err(e) => e.to_string(),
    }
}

/// The backend named on the command line (`--backend NAME`), one of `allowed`, or the
/// first of them. Exits with a message on anything else.
pub(crate) fn backend(allowed: &[&'static str]) -> &'static str {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = match args.as_slice() {
        [] => return allowed[0],
        [flag, name] if flag == "--backend" => name.as_str(),
        [arg] if arg.starts_with("--backend=") => &arg["--backend=".len()..],
        _ => "",
    };
    match allowed.iter().find(|a| **a == name) {
        Some(a) => a,
        None => {
            eprintln!("usage: [--backend {}]", allowed.join("|"));
            std::process::exit(2)
        }
    }
}
