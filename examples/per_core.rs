//! A per-core server: one thread per core, each with its own local runtime and its own
//! listener on the same port (`SO_REUSEPORT`: the kernel spreads the connections), its
//! state in `Rc<RefCell<..>>` with no lock, its connections `Local` children that need
//! not be `Send`, and a graceful stop through one cancel scope per thread. The same code
//! runs on tokio's `LocalSet`, on smol's `LocalExecutor` and on compio's thread-per-core
//! runtime.
//!
//! ```text
//! cargo run --example per_core -- --backend compio   # or tokio, smol; --threads N, --clients N
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use examples::Args;
use hatchery::net::{TcpListener, TcpStream};
use hatchery::{finally, move_on_after, nursery, CancelHandle, CancelScope, Local, Nursery};
use rustix::net::{sockopt, AddressFamily, SocketType};

/// What one thread knows, behind an `Rc<RefCell<..>>`: no other thread ever sees it.
#[derive(Default, Debug)]
struct Core {
    /// Bytes echoed on each open connection, by its number.
    open: BTreeMap<u64, u64>,
    served: u64,
    bytes: u64,
}

/// A listener on `addr` that shares its port with the other threads' (`SO_REUSEPORT`).
fn reuse_port_listener(addr: SocketAddr) -> io::Result<StdListener> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let socket = rustix::net::socket(family, SocketType::STREAM, None)?;
    sockopt::set_socket_reuseaddr(&socket, true)?;
    sockopt::set_socket_reuseport(&socket, true)?;
    rustix::net::bind(&socket, &addr)?;
    rustix::net::listen(&socket, 128)?;
    Ok(StdListener::from(socket))
}

/// Echoes lines back until the client closes, counting in the thread's state.
async fn echo(mut stream: TcpStream, id: u64, core: Rc<RefCell<Core>>) -> io::Result<()> {
    core.borrow_mut().open.insert(id, 0);
    let c = core.clone();
    let served = async move {
        let mut buf = [0u8; 1024];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            stream.write_all(&buf[..n]).await?;
            *c.borrow_mut().open.get_mut(&id).expect("open") += n as u64;
        }
    };
    // Cleanup runs whether the client closed or the thread is stopping.
    finally(served, async move {
        let mut core = core.borrow_mut();
        let bytes = core.open.remove(&id).unwrap_or(0);
        core.served += 1;
        core.bytes += bytes;
    })
    .await
}

/// One thread's server: accepts on its own listener, each connection a `Local` child,
/// until its scope is cancelled; returns what it served.
async fn serve(listener: StdListener, stop: mpsc::Sender<CancelHandle>) -> Core {
    let core = Rc::new(RefCell::new(Core::default()));
    let scope = CancelScope::new();
    stop.send(scope.handle()).expect("main is waiting");
    let c = core.clone();
    let stopped = scope
        .run(Local::nursery(|n: Nursery<io::Error, Local>| async move {
            let listener = TcpListener::from_std(listener)?;
            for id in 0.. {
                let (stream, _) = listener.accept().await?;
                n.spawn(echo(stream, id, c.clone()));
            }
            Ok(())
        }))
        .await;
    // `None`: stopped by its scope, every connection closed (their cleanup done).
    if let Some(Err(e)) = stopped {
        eprintln!("a thread's server failed: {e}");
    }
    Rc::try_unwrap(core)
        .expect("every connection is done")
        .into_inner()
}

/// `clients` clients at once, each sending `lines` lines and reading them back.
async fn clients(addr: SocketAddr, clients: u64, lines: u64) -> io::Result<u64> {
    nursery(|n| async move {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                n.spawn(async move {
                    let mut stream = TcpStream::connect(addr).await?;
                    let mut echoed = 0;
                    for l in 0..lines {
                        let line = format!("client {i} line {l}\n");
                        let mut back = vec![0; line.len()];
                        stream.write_all(line.as_bytes()).await?;
                        stream.read_exact(&mut back).await?;
                        assert_eq!(back, line.as_bytes());
                        echoed += back.len() as u64;
                    }
                    Ok::<_, io::Error>(echoed)
                })
            })
            .collect();
        let mut total = 0;
        for h in handles {
            total += h.join().await?;
        }
        Ok(total)
    })
    .await
    .map_err(|e| io::Error::other(e.to_string()))
}

fn main() -> io::Result<()> {
    let args = Args::parse(&["--threads", "--clients"]);
    let number = |name: &str, default: u64| {
        args.get(name)
            .map_or(Ok(default), str::parse)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u64);
    let threads = number("--threads", cores.max(2));
    let (clients_n, lines) = (number("--clients", 40), 20);

    // The first listener picks the port; the others share it.
    let first = reuse_port_listener("127.0.0.1:0".parse().expect("an address"))?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(reuse_port_listener(addr)?);
    }
    println!("{threads} threads serve {addr}, each on its own local runtime");

    let (stop_tx, stop_rx) = mpsc::channel();
    let workers: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, listener)| {
            let (stop_tx, backend) = (stop_tx.clone(), args.backend().to_string());
            std::thread::Builder::new()
                .name(format!("core-{i}"))
                .spawn(move || examples::run_local(&backend, serve(listener, stop_tx)))
                .expect("a thread")
        })
        .collect();
    let stops: Vec<CancelHandle> = (0..threads)
        .map(|_| stop_rx.recv().expect("a scope"))
        .collect();

    let echoed = args.run(async move {
        move_on_after(Duration::from_secs(30), clients(addr, clients_n, lines))
            .await
            .expect("the clients took over 30 s")
    })?;
    // The graceful stop: each thread's scope, cancelled; each thread returns once its
    // connections have closed.
    for stop in &stops {
        stop.cancel();
    }
    let mut served = 0;
    for (i, w) in workers.into_iter().enumerate() {
        let core = w.join().expect("a server thread panicked");
        println!(
            "core-{i}: {} connections, {} bytes",
            core.served, core.bytes
        );
        assert!(core.open.is_empty());
        served += core.served;
    }
    println!("{served} connections, {echoed} bytes echoed");
    assert_eq!(served, clients_n);
    Ok(())
}

#[test]
fn every_connection_is_served_and_closed() {
    // The command line of the test harness is not the example's.
    let (threads, clients_n) = (2, 8);
    let first = reuse_port_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = first.local_addr().unwrap();
    let second = reuse_port_listener(addr).unwrap();
    for backend in ["tokio", "smol", "compio"] {
        let (first, second) = (first.try_clone().unwrap(), second.try_clone().unwrap());
        let (stop_tx, stop_rx) = mpsc::channel();
        let workers: Vec<_> = [first, second]
            .into_iter()
            .map(|l| {
                let stop_tx = stop_tx.clone();
                std::thread::spawn(move || examples::run_local(backend, serve(l, stop_tx)))
            })
            .collect();
        let stops: Vec<CancelHandle> = (0..threads).map(|_| stop_rx.recv().unwrap()).collect();
        let echoed = hatchery_smol::run(clients(addr, clients_n, 3)).unwrap();
        stops.iter().for_each(CancelHandle::cancel);
        let served: u64 = workers.into_iter().map(|w| w.join().unwrap().served).sum();
        assert_eq!(served, clients_n, "on {backend}");
        assert!(echoed > 0);
    }
}
