//! The networking workloads, on loopback: one-connection ping-pong latency, echo
//! throughput over 64 connections, and the accept rate. Each is written with
//! `hatchery::net` (the same code on every backend), with raw `tokio::net`, and with raw
//! async-io (`Async<TcpStream>`, what `async-net` wraps) on smol's executor.
//!
//! The timed code runs in a spawned task, never as the `block_on` root: a coordinator
//! task sets up the sockets untimed, then times the exchange, with the peers in tasks of
//! their own. Every stream has `TCP_NODELAY` set on both sides (small messages).

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_executor::Executor;
use async_io::Async;
use futures_lite::{AsyncReadExt as _, AsyncWriteExt as _};
use hatchery::net::{TcpListener, TcpStream};
use hatchery::{nursery, Nursery};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Connections of the throughput workload.
pub(crate) const CONNECTIONS: usize = 64;
/// The message each throughput round trip sends and receives back.
pub(crate) const MESSAGE: usize = 4096;
/// Client tasks of the accept workload, connecting at the same time.
const CONNECTORS: usize = 4;

const LOOPBACK: &str = "127.0.0.1:0";

/// Runs `coordinator` as a child of a nursery (the timed code in a spawned task) and
/// returns what it returns.
async fn in_child<F>(coordinator: impl FnOnce(Nursery<io::Error>) -> F) -> Duration
where
    F: std::future::Future<Output = io::Result<Duration>> + Send + 'static,
{
    nursery(|n| async move {
        let timed = n.spawn(coordinator(n.clone()));
        Ok::<_, io::Error>(timed.join().await?)
    })
    .await
    .expect("the workload failed")
}

// ----- ping-pong: one byte there and back, `n` times, on one connection -----

pub(crate) async fn hatchery_ping_pong(n: usize) -> Duration {
    in_child(|tasks| async move {
        let listener = TcpListener::bind(LOOPBACK).await?;
        let addr = listener.local_addr()?;
        tasks.spawn(async move {
            let (mut s, _) = listener.accept().await?;
            s.set_nodelay(true)?;
            let mut b = [0u8; 1];
            while s.read(&mut b).await? == 1 {
                s.write_all(&b).await?;
            }
            Ok(())
        });
        let mut c = TcpStream::connect(addr).await?;
        c.set_nodelay(true)?;
        let mut b = [7u8; 1];
        let start = Instant::now();
        for _ in 0..n {
            c.write_all(&b).await?;
            c.read_exact(&mut b).await?;
        }
        Ok(start.elapsed())
    })
    .await
}

pub(crate) async fn tokio_ping_pong(n: usize) -> Duration {
    let timed = tokio::spawn(async move {
        let listener = tokio::net::TcpListener::bind(LOOPBACK).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await?;
            s.set_nodelay(true)?;
            let mut b = [0u8; 1];
            while s.read(&mut b).await? == 1 {
                s.write_all(&b).await?;
            }
            io::Result::Ok(())
        });
        let mut c = tokio::net::TcpStream::connect(addr).await?;
        c.set_nodelay(true)?;
        let mut b = [7u8; 1];
        let start = Instant::now();
        for _ in 0..n {
            c.write_all(&b).await?;
            c.read_exact(&mut b).await?;
        }
        let took = start.elapsed();
        drop(c);
        server.await.expect("server panicked")?;
        io::Result::Ok(took)
    });
    timed.await.expect("panicked").expect("the workload failed")
}

pub(crate) async fn smol_ping_pong(ex: &Arc<Executor<'static>>, n: usize) -> Duration {
    let spawner = ex.clone();
    let timed = ex.spawn(async move {
        let listener = Async::<StdListener>::bind(loopback())?;
        let addr = listener.get_ref().local_addr()?;
        let server = spawner.spawn(async move {
            let (mut s, _) = listener.accept().await?;
            s.get_ref().set_nodelay(true)?;
            let mut b = [0u8; 1];
            while s.read(&mut b).await? == 1 {
                s.write_all(&b).await?;
            }
            io::Result::Ok(())
        });
        let mut c = Async::<StdStream>::connect(addr).await?;
        c.get_ref().set_nodelay(true)?;
        let mut b = [7u8; 1];
        let start = Instant::now();
        for _ in 0..n {
            c.write_all(&b).await?;
            c.read_exact(&mut b).await?;
        }
        let took = start.elapsed();
        drop(c);
        server.await?;
        io::Result::Ok(took)
    });
    timed.await.expect("the workload failed")
}

fn loopback() -> SocketAddr {
    LOOPBACK.parse().expect("an address")
}

// ----- echo throughput: CONNECTIONS clients, `n` round trips of MESSAGE bytes each -----

pub(crate) async fn hatchery_echo(n: usize) -> Duration {
    in_child(|tasks| async move {
        let listener = TcpListener::bind(LOOPBACK).await?;
        let addr = listener.local_addr()?;
        let server_tasks = tasks.clone();
        tasks.spawn(async move {
            for _ in 0..CONNECTIONS {
                let (mut s, _) = listener.accept().await?;
                s.set_nodelay(true)?;
                server_tasks.spawn(async move {
                    let mut buf = vec![0u8; MESSAGE];
                    while s.read_exact(&mut buf).await.is_ok() {
                        s.write_all(&buf).await?;
                    }
                    Ok(())
                });
            }
            Ok(())
        });
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            let c = TcpStream::connect(addr).await?;
            c.set_nodelay(true)?;
            clients.push(c);
        }
        let start = Instant::now();
        nursery(|group: Nursery<io::Error>| async move {
            for mut c in clients {
                group.spawn(async move {
                    let mut buf = vec![1u8; MESSAGE];
                    for _ in 0..n {
                        c.write_all(&buf).await?;
                        c.read_exact(&mut buf).await?;
                    }
                    Ok(())
                });
            }
            Ok(())
        })
        .await
        .map_err(io::Error::from)?;
        Ok(start.elapsed())
    })
    .await
}

pub(crate) async fn tokio_echo(n: usize) -> Duration {
    let timed = tokio::spawn(async move {
        let listener = tokio::net::TcpListener::bind(LOOPBACK).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..CONNECTIONS {
                let (mut s, _) = listener.accept().await?;
                s.set_nodelay(true)?;
                set.spawn(async move {
                    let mut buf = vec![0u8; MESSAGE];
                    while s.read_exact(&mut buf).await.is_ok() {
                        s.write_all(&buf).await?;
                    }
                    io::Result::Ok(())
                });
            }
            while let Some(r) = set.join_next().await {
                r.expect("panicked")?;
            }
            io::Result::Ok(())
        });
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            let c = tokio::net::TcpStream::connect(addr).await?;
            c.set_nodelay(true)?;
            clients.push(c);
        }
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for mut c in clients {
            set.spawn(async move {
                let mut buf = vec![1u8; MESSAGE];
                for _ in 0..n {
                    c.write_all(&buf).await?;
                    c.read_exact(&mut buf).await?;
                }
                io::Result::Ok(())
            });
        }
        while let Some(r) = set.join_next().await {
            r.expect("panicked")?;
        }
        let took = start.elapsed();
        server.await.expect("panicked")?;
        io::Result::Ok(took)
    });
    timed.await.expect("panicked").expect("the workload failed")
}

pub(crate) async fn smol_echo(ex: &Arc<Executor<'static>>, n: usize) -> Duration {
    let spawner = ex.clone();
    let timed = ex.spawn(async move {
        let listener = Async::<StdListener>::bind(loopback())?;
        let addr = listener.get_ref().local_addr()?;
        let server_spawner = spawner.clone();
        let server = spawner.spawn(async move {
            let mut tasks = Vec::new();
            for _ in 0..CONNECTIONS {
                let (mut s, _) = listener.accept().await?;
                s.get_ref().set_nodelay(true)?;
                tasks.push(server_spawner.spawn(async move {
                    let mut buf = vec![0u8; MESSAGE];
                    while s.read_exact(&mut buf).await.is_ok() {
                        s.write_all(&buf).await?;
                    }
                    io::Result::Ok(())
                }));
            }
            for t in tasks {
                t.await?;
            }
            io::Result::Ok(())
        });
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            let c = Async::<StdStream>::connect(addr).await?;
            c.get_ref().set_nodelay(true)?;
            clients.push(c);
        }
        let start = Instant::now();
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|mut c| {
                spawner.spawn(async move {
                    let mut buf = vec![1u8; MESSAGE];
                    for _ in 0..n {
                        c.write_all(&buf).await?;
                        c.read_exact(&mut buf).await?;
                    }
                    io::Result::Ok(())
                })
            })
            .collect();
        for t in tasks {
            t.await?;
        }
        let took = start.elapsed();
        server.await?;
        io::Result::Ok(took)
    });
    timed.await.expect("the workload failed")
}

// ----- accept rate: `n` connections accepted while CONNECTORS tasks connect -----
//
// The server writes one byte on each connection it accepts and drops it; a client
// waits for that byte, then closes with `SO_LINGER` 0 (a reset). The byte keeps the
// connectors from running ahead of the accepting (a client's connect completes once
// the connection is queued, and a full queue drops the next SYN, sent again only a
// second later); the reset keeps thousands of connections to one port from leaving
// TIME_WAIT sockets behind, which a later SYN could run into.

/// Closes a connection with a reset (see above).
fn reset(stream: impl std::os::fd::AsFd) {
    rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO)).expect("SO_LINGER");
}

pub(crate) async fn hatchery_accept(n: usize) -> Duration {
    in_child(|_tasks| async move {
        let listener = TcpListener::bind(LOOPBACK).await?;
        let addr = listener.local_addr()?;
        let start = Instant::now();
        nursery(|group: Nursery<io::Error>| async move {
            for c in 0..CONNECTORS {
                group.spawn(async move {
                    for _ in 0..share(n, c) {
                        let mut s = TcpStream::connect(addr).await?;
                        s.read_exact(&mut [0]).await?;
                        reset(s);
                    }
                    Ok(())
                });
            }
            for _ in 0..n {
                listener.accept().await?.0.write_all(b"k").await?;
            }
            Ok(())
        })
        .await
        .map_err(io::Error::from)?;
        Ok(start.elapsed())
    })
    .await
}

pub(crate) async fn tokio_accept(n: usize) -> Duration {
    let timed = tokio::spawn(async move {
        let listener = tokio::net::TcpListener::bind(LOOPBACK).await?;
        let addr = listener.local_addr()?;
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for c in 0..CONNECTORS {
            set.spawn(async move {
                for _ in 0..share(n, c) {
                    let mut s = tokio::net::TcpStream::connect(addr).await?;
                    s.read_exact(&mut [0]).await?;
                    reset(s);
                }
                io::Result::Ok(())
            });
        }
        for _ in 0..n {
            listener.accept().await?.0.write_all(b"k").await?;
        }
        while let Some(r) = set.join_next().await {
            r.expect("panicked")?;
        }
        io::Result::Ok(start.elapsed())
    });
    timed.await.expect("panicked").expect("the workload failed")
}

pub(crate) async fn smol_accept(ex: &Arc<Executor<'static>>, n: usize) -> Duration {
    let spawner = ex.clone();
    let timed = ex.spawn(async move {
        let listener = Async::<StdListener>::bind(loopback())?;
        let addr = listener.get_ref().local_addr()?;
        let start = Instant::now();
        let tasks: Vec<_> = (0..CONNECTORS)
            .map(|c| {
                spawner.spawn(async move {
                    for _ in 0..share(n, c) {
                        let mut s = Async::<StdStream>::connect(addr).await?;
                        s.read_exact(&mut [0]).await?;
                        reset(s);
                    }
                    io::Result::Ok(())
                })
            })
            .collect();
        for _ in 0..n {
            listener.accept().await?.0.write_all(b"k").await?;
        }
        for t in tasks {
            t.await?;
        }
        io::Result::Ok(start.elapsed())
    });
    timed.await.expect("the workload failed")
}

/// The connections connector `c` of [`CONNECTORS`] makes, of `n` in all.
fn share(n: usize, c: usize) -> usize {
    n / CONNECTORS + usize::from(c < n % CONNECTORS)
}
