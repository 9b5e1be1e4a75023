//! `serve` and `serve_in` on every backend: a cancelled server closes every connection
//! and waits for every handler; a handler's error stops the server; a graceful stop.

use crate::common;

use std::io;
use std::sync::Arc;

use common::read_to_end;
use hatchery::net::{serve, serve_in, TcpListener, TcpStream};
use hatchery::sync::Event;
use hatchery::{nursery, CancelScope, NurseryError};
use hatchery_tests::{until, Counter};

const CLIENTS: usize = 20;

/// Connects `CLIENTS` clients to `addr`, then each sends one byte (its number). (The
/// connections are made before the first byte: a server stopped by one of them closes
/// its listener.) A byte that cannot be sent any more is not an error here.
async fn clients(addr: std::net::SocketAddr) -> Vec<TcpStream> {
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(TcpStream::connect(addr).await.unwrap());
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let _ = c.write_all(&[i as u8]).await;
    }
    clients
}

/// Whether `stream` reads the end of the stream (or a reset): its peer closed it.
async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    match read_to_end(stream).await {
        Ok(rest) => rest.is_empty(),
        Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
    }
}

#[hatchery::test]
async fn a_cancelled_server_closes_every_connection_after_every_handler_finished() {
    let (started, finished) = (Counter::new(), Counter::new());
    let (s, f) = (started.clone(), finished.clone());
    let (st, fi) = (started.clone(), finished.clone());
    let mut conns = nursery(|n| async move {
        let addr = n
            .start(|ready| async move {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                ready.started(listener.local_addr()?);
                serve(listener, move |mut stream: TcpStream| {
                    let (s, f) = (s.clone(), f.clone());
                    async move {
                        let _finished = f.guard();
                        let mut id = [0; 1];
                        stream.read_exact(&mut id).await?;
                        s.incr();
                        read_to_end(&mut stream).await?; // waits for good
                        Ok::<_, io::Error>(())
                    }
                })
                .await?;
                Ok(())
            })
            .await?;
        let conns = clients(addr).await;
        until(|| st.get() == CLIENTS).await;
        assert_eq!(fi.get(), 0);
        n.cancel(); // the server, with its 20 connections open
        Ok::<_, io::Error>(conns)
    })
    .await
    .unwrap();
    assert_eq!(finished.get(), CLIENTS, "a handler had not finished");
    for c in &mut conns {
        assert!(closed_by_peer(c).await, "a connection was left open");
    }
}

/// A handler's error stops the server: the other connections are cancelled and
/// closed, and `serve` returns the error.
#[hatchery::test]
async fn a_handler_error_stops_the_server() {
    let finished = Counter::new();
    let f = finished.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let out = nursery(|n| async move {
        let server = n.spawn(async move {
            let r = serve(listener, move |mut stream: TcpStream| {
                let f = f.clone();
                async move {
                    let _finished = f.guard();
                    let mut id = [0; 1];
                    stream.read_exact(&mut id).await?;
                    if id[0] == 7 {
                        return Err(io::Error::other("client 7 is bad"));
                    }
                    read_to_end(&mut stream).await?;
                    Ok(())
                }
            })
            .await;
            Ok::<_, io::Error>(r)
        });
        let mut conns = clients(addr).await;
        let r = server.join().await?;
        for (i, c) in conns.iter_mut().enumerate() {
            assert!(closed_by_peer(c).await, "connection {i} left open");
        }
        Ok::<_, io::Error>(r)
    })
    .await
    .unwrap();
    match out {
        Err(NurseryError::Failed(errors)) => {
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].to_string(), "client 7 is bad");
        }
        other => panic!("the server returned {other:?}"),
    }
    // Every handler that started has finished; client 7's and those cancelled.
    assert!(finished.get() >= 8, "{}", finished.get());
}

/// A graceful stop with `serve_in`: accepting stops, and the connections being served
/// finish their work.
#[hatchery::test]
async fn serve_in_stops_accepting_and_the_handlers_finish() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let go_on = Arc::new(Event::new());
    let (started, answered) = (Counter::new(), Counter::new());
    let accepting = CancelScope::new();
    let stop = accepting.handle();
    let (g, s, a) = (go_on.clone(), started.clone(), answered.clone());
    nursery(|n| async move {
        let client_side = n.spawn(async move {
            let mut conns = clients(addr).await;
            until(|| s.get() == CLIENTS).await;
            stop.cancel(); // stop accepting...
            g.set(); // ...then let the handlers answer
            for c in &mut conns {
                let mut answer = [0; 1];
                c.read_exact(&mut answer).await?;
                assert_eq!(&answer, b"!");
            }
            Ok::<_, io::Error>(())
        });
        let out = accepting
            .run(serve_in(&n, listener, move |mut stream: TcpStream| {
                let (g, started, a) = (go_on.clone(), started.clone(), a.clone());
                async move {
                    let mut id = [0; 1];
                    stream.read_exact(&mut id).await?;
                    started.incr();
                    g.wait().await;
                    stream.write_all(b"!").await?;
                    a.incr();
                    Ok(())
                }
            }))
            .await;
        assert!(out.is_none(), "serve_in returned {out:?}");
        // The listener is closed: `serve_in` owned it.
        let late = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(late.kind(), io::ErrorKind::ConnectionRefused);
        drop(client_side);
        Ok::<_, io::Error>(())
    })
    .await
    .unwrap();
    assert_eq!(answered.get(), CLIENTS);
}

/// `serve` takes any `Listener`: a Unix one too.
#[cfg(unix)]
#[hatchery::test]
async fn serve_on_a_unix_listener() {
    use hatchery::net::{UnixListener, UnixStream};
    let path = std::env::temp_dir().join(format!(
        "hatchery-test-serve-{}-{}",
        std::process::id(),
        hatchery_tests::backend()
    ));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let p = path.clone();
    nursery(|n| async move {
        n.spawn(async move {
            serve(listener, |mut stream: UnixStream| async move {
                let mut buf = [0; 4];
                stream.read_exact(&mut buf).await?;
                stream.write_all(&buf).await
            })
            .await?;
            Ok(())
        });
        let mut c = UnixStream::connect(&p).await?;
        c.write_all(b"unix").await?;
        let mut buf = [0; 4];
        c.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"unix");
        n.cancel();
        Ok::<_, io::Error>(())
    })
    .await
    .map_err(io::Error::from)
    .or_else(|e| {
        match e
            .get_ref()
            .and_then(|e| e.downcast_ref::<NurseryError<io::Error>>())
        {
            Some(NurseryError::Cancelled) => Ok(()),
            _ => Err(e),
        }
    })
    .unwrap();
    std::fs::remove_file(&path).unwrap();
}
