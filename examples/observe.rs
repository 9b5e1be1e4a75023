//! Observing a running service: a small echo server on 127.0.0.1 under load from its own
//! clients prints its live task tree (`hatchery::diagnostics::tree`) when it gets
//! `SIGUSR1`, on every backend: the named nurseries, tasks and scopes, where each was
//! made, their ages, deadlines, and which are cancelled or shielded.
//!
//! ```text
//! cargo run --example observe -- --backend tokio   # or tokio-current, smol
//! ```
//!
//! By default it runs for a moment, sends itself `SIGUSR1` (the dump under load), then
//! shuts down, each connection saying goodbye inside a shield, and dumps the tree once
//! more during the shutdown (cancelled scopes waiting for their shields), and exits. Run
//! it with `-- --serve-for 60` to keep it serving for a minute and send the signal
//! yourself (`kill -USR1 PID`; it prints its PID).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hatchery::diagnostics::tree;
use hatchery::net::{TcpListener, TcpStream};
use hatchery::signal::{Signal, Signals};
use hatchery::{nursery, sleep, CancelHandle, CancelScope, Nursery};

const MS: Duration = Duration::from_millis(1);
/// How many clients load the server.
const CLIENTS: usize = 3;

fn main() -> anyhow::Result<()> {
    let args = examples::Args::parse(&["--serve-for"]);
    let serve_for: Option<u64> = args.get("--serve-for").map(str::parse).transpose()?;
    args.run(service(serve_for))
}

/// The whole service: the server, its load, and the dumps on `SIGUSR1`.
async fn service(serve_for: Option<u64>) -> anyhow::Result<()> {
    // Ours from here on: `SIGUSR1` no longer ends the process.
    let signals = Signals::new([Signal::USR1])?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let echoed = Arc::new(AtomicU64::new(0));
    println!("echo server on {addr}, pid {}", std::process::id());

    let server = CancelScope::new().with_name("server");
    let shutdown = server.handle();
    nursery(|n| async move {
        n.spawn_named("dumper", dumper(signals));
        n.spawn_named("load", load(addr, echoed.clone()));
        n.spawn_named("operator", operator(serve_for, shutdown, echoed));
        server
            .run(nursery(|conns| serve(listener, conns)).named("connections"))
            .await;
        // The server has shut down: so does everything else.
        n.cancel();
        Ok::<_, anyhow::Error>(())
    })
    .named("main")
    .await?;
    println!("shut down");
    Ok(())
}

/// Prints the task tree on each `SIGUSR1`.
async fn dumper(mut signals: Signals) -> anyhow::Result<()> {
    loop {
        let signal = signals.recv().await?;
        println!("--- {signal}: the task tree ---\n{}", tree());
    }
}

/// Accepts connections until cancelled; each is served by a task of `conns`.
async fn serve(listener: TcpListener, conns: Nursery<anyhow::Error>) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        conns.spawn_named(format!("conn {peer}"), connection(stream));
    }
}

/// Echoes what a client sends, line by line; gives up on a client idle for 5 s; says
/// goodbye (shielded: a shutdown waits for it) when cancelled.
async fn connection(mut stream: TcpStream) -> anyhow::Result<()> {
    let mut buf = [0u8; 64];
    let serve = async {
        loop {
            let idle = CancelScope::new()
                .with_name("read")
                .with_timeout(Duration::from_secs(5));
            match idle.run(stream.read(&mut buf)).await {
                Some(Ok(0)) | None => return Ok::<_, io::Error>(()), // closed, or idle
                Some(Ok(n)) => stream.write_all(&buf[..n]).await?,
                Some(Err(e)) => return Err(e),
            }
        }
    };
    // Runs however `serve` ends, shielded: a shutdown waits for it.
    let goodbye = async {
        CancelScope::new()
            .with_name("goodbye")
            .with_timeout(MS * 500)
            .run(sleep(MS * 150)) // a polite last word to the client
            .await;
    };
    hatchery::finally(serve, goodbye).await?;
    Ok(())
}

/// The load: clients that each send a line every few milliseconds.
async fn load(addr: std::net::SocketAddr, echoed: Arc<AtomicU64>) -> anyhow::Result<()> {
    nursery(|n| async move {
        for id in 0..CLIENTS {
            let echoed = echoed.clone();
            n.spawn_named(format!("client {id}"), async move {
                let mut stream = TcpStream::connect(addr).await?;
                let mut buf = [0u8; 64];
                // Until the server hangs up (its shutdown), or this task is cancelled.
                while stream.write_all(b"ping\n").await.is_ok()
                    && stream.read_exact(&mut buf[..5]).await.is_ok()
                {
                    echoed.fetch_add(1, Ordering::Relaxed);
                    sleep(MS * (2 + id as u32)).await;
                }
                Ok::<_, anyhow::Error>(())
            });
        }
        Ok::<_, anyhow::Error>(())
    })
    .named("clients")
    .await?;
    Ok(())
}

/// Runs the script: dump under load, shut down, dump during the shutdown. With
/// `--serve-for`, serves that long first (send `SIGUSR1` yourself meanwhile).
async fn operator(
    serve_for: Option<u64>,
    shutdown: CancelHandle,
    echoed: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    sleep(Duration::from_secs(serve_for.unwrap_or(0)) + MS * 200).await;
    println!("{} lines echoed so far", echoed.load(Ordering::Relaxed));
    raise_usr1()?;
    sleep(MS * 50).await;
    shutdown.cancel_with("shutdown");
    sleep(MS * 50).await; // the connections are saying goodbye now
    raise_usr1()?;
    // Cancelled with the rest once the server has shut down.
    sleep(Duration::from_secs(3600)).await;
    Ok(())
}

/// Sends this process `SIGUSR1`, as `kill -USR1 PID` would.
fn raise_usr1() -> io::Result<()> {
    signal_hook::low_level::raise(Signal::USR1.as_raw())
}
