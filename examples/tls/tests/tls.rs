//! TLS (rustls, through futures-rustls) over hatchery's TCP streams, on every backend:
//! the recipe's `connect` and `serve_tls` with a certificate made at test time, over
//! loopback only. `cargo test -p hatchery-tls-example --features rustls`.
#![cfg(feature = "rustls")]

use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use hatchery::net::{TcpListener, TcpStream};
use hatchery::{fail_after, move_on_after, nursery, CancelScope, Nursery};
use hatchery_tls_example::{connect, self_signed, serve_tls};

/// Starts a TLS echo server on `addr` in `n` (until `n` is cancelled); its address.
async fn echo_server_with(
    n: &Nursery<io::Error>,
    addr: SocketAddr,
    server: std::sync::Arc<futures_rustls::rustls::ServerConfig>,
) -> io::Result<SocketAddr> {
    n.start(move |ready| async move {
        let listener = TcpListener::bind(addr).await?;
        ready.started(listener.local_addr()?);
        serve_tls(listener, server, |tls| async move {
            let (mut reader, mut writer) = futures_lite::io::split(tls);
            futures_lite::io::copy(&mut reader, &mut writer).await?;
            writer.close().await // the client closed: close_notify back
        })
        .await?;
        Ok(())
    })
    .await
    .map_err(|e| io::Error::other(format!("the server did not start: {e}")))
}

/// A handshake with the server of the same certificate, 64 KiB each way, and clean
/// closes on both sides (close_notify, then the end of the stream).
async fn echo_over(bind: SocketAddr, name: &'static str) {
    let (client, server) = self_signed(&["localhost", "127.0.0.1", "::1"]).unwrap();
    let result = nursery(|n| async move {
        let addr = echo_server_with(&n, bind, server).await?;
        let mut tls = fail_after(Duration::from_secs(30), connect(&client, addr, name)).await??;
        let sent: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        let (mut reader, mut writer) = futures_lite::io::split(&mut tls);
        let mut got = Vec::new();
        let (w, r) = future::zip(
            async {
                writer.write_all(&sent).await?;
                writer.close().await // close_notify: the server's copy ends
            },
            reader.read_to_end(&mut got),
        )
        .await;
        w?;
        r?; // the server's close_notify: a clean end, not UnexpectedEof
        assert!(got == sent, "the echo differs");
        n.cancel();
        Ok(())
    })
    .await;
    match result {
        Err(e) if e.is_cancelled() => {}
        other => other.unwrap(),
    }
}

#[hatchery::test]
async fn a_handshake_and_an_echo_over_ipv4_loopback() {
    echo_over("127.0.0.1:0".parse().unwrap(), "127.0.0.1").await;
    echo_over("127.0.0.1:0".parse().unwrap(), "localhost").await;
}

#[hatchery::test]
async fn a_handshake_and_an_echo_over_ipv6_loopback_where_the_machine_has_it() {
    // A machine without IPv6 loopback cannot bind [::1]: nothing to test there.
    if std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    echo_over("[::1]:0".parse().unwrap(), "::1").await;
}

#[hatchery::test]
async fn the_handshake_is_cut_by_the_callers_deadline_and_its_socket_closed() {
    // A server that accepts and never answers the client's hello.
    let (client, _) = self_signed(&["localhost"]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let attempt = async {
        move_on_after(
            Duration::from_millis(200),
            connect(&client, addr, "localhost"),
        )
        .await
    };
    let (accepted, cut) = future::zip(listener.accept(), attempt).await;
    let (mut silent, _) = accepted.unwrap();
    assert!(
        cut.is_none(),
        "the handshake finished against a silent server"
    );
    // The cancelled handshake closed its socket: the server reads the client's hello,
    // then the end of the stream (not a wait for good).
    let mut hello = Vec::new();
    let read = fail_after(Duration::from_secs(30), silent.read_to_end(&mut hello)).await;
    read.expect("the client's socket was left open").unwrap();
    assert!(!hello.is_empty(), "no ClientHello was sent");
    assert_eq!(hello[0], 0x16, "not a TLS handshake record");
    // `fail_after` gives the deadline as an error, for `?`.
    let (accepted, failed) = future::zip(
        listener.accept(),
        fail_after(
            Duration::from_millis(200),
            connect(&client, addr, "localhost"),
        ),
    )
    .await;
    let _silent = accepted.unwrap();
    let e = io::Error::from(failed.unwrap_err());
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
}

#[hatchery::test]
async fn a_slow_or_bad_client_does_not_stop_the_server() {
    let (client, _) = self_signed(&["localhost"]).unwrap();
    let result = nursery(|n| async move {
        // The server has a certificate of its own, which this client does not trust.
        let (trusting, server) = self_signed(&["localhost"])?;
        let addr = echo_server_with(&n, "127.0.0.1:0".parse().unwrap(), server).await?;
        // A client of another certificate: a clear error, on the client's side.
        let e = connect(&client, addr, "localhost").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
        // Garbage instead of a handshake, and a client that says nothing.
        let mut garbage = TcpStream::connect(addr).await?;
        garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").await?;
        let _silent = TcpStream::connect(addr).await?;
        // The server closed the garbage connection and serves on.
        let mut rest = Vec::new();
        let _ = fail_after(Duration::from_secs(30), garbage.read_to_end(&mut rest)).await?;
        let mut tls = connect(&trusting, addr, "localhost").await?;
        tls.write_all(b"still serving").await?;
        tls.close().await?;
        let mut got = String::new();
        tls.read_to_string(&mut got).await?;
        assert_eq!(got, "still serving");
        n.cancel();
        Ok(())
    })
    .await;
    match result {
        Err(e) if e.is_cancelled() => {}
        other => other.unwrap(),
    }
}

#[hatchery::test]
async fn fifty_connections_at_once() {
    let result = nursery(|n| async move {
        let (client, server) = self_signed(&["localhost"])?;
        let addr = echo_server_with(&n, "127.0.0.1:0".parse().unwrap(), server).await?;
        hatchery::map(50, 0..50u32, |i| {
            let client = client.clone();
            async move {
                let mut tls = connect(&client, addr, "localhost").await?;
                let msg = format!("connection {i}");
                tls.write_all(msg.as_bytes()).await?;
                tls.close().await?;
                let mut got = String::new();
                tls.read_to_string(&mut got).await?;
                assert_eq!(got, msg);
                Ok::<_, io::Error>(())
            }
        })
        .try_join()
        .await
        .map_err(io::Error::from)?;
        n.cancel();
        Ok(())
    })
    .await;
    match result {
        Err(e) if e.is_cancelled() => {}
        other => other.unwrap(),
    }
}

#[hatchery::test]
async fn a_cancelled_server_closes_its_connections() {
    let (client, server) = self_signed(&["localhost"]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let scope = CancelScope::new();
    let stop = scope.handle();
    let serving = scope.run(serve_tls(listener, server, |mut tls| async move {
        tls.write_all(b"hi").await?;
        hatchery::sleep(Duration::from_secs(3600)).await; // until cancelled
        Ok(())
    }));
    let client_side = async {
        let mut tls = connect(&client, addr, "localhost").await?;
        let mut hi = [0; 2];
        tls.read_exact(&mut hi).await?;
        assert_eq!(&hi, b"hi");
        // The server's scope ends: its handler is cancelled and the socket closed
        // (without close_notify: the peer sees the end of the stream, or an error).
        stop.cancel();
        let mut rest = Vec::new();
        let end = fail_after(Duration::from_secs(30), tls.read_to_end(&mut rest)).await;
        assert!(end.is_ok(), "the connection was left open");
        Ok::<_, io::Error>(())
    };
    let (served, client) = future::zip(serving, client_side).await;
    assert!(served.is_none());
    client.unwrap();
}

#[hatchery::test]
async fn tokio_rustls_over_the_tokio_io_traits_talks_to_futures_rustls() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_rustls::rustls::pki_types::ServerName;
    let result = nursery(|n| async move {
        let (client, server) = self_signed(&["localhost"])?;
        let addr = echo_server_with(&n, "127.0.0.1:0".parse().unwrap(), server).await?;
        // hatchery's stream through tokio's traits (the `tokio-io` feature), on any
        // backend: tokio-rustls needs no tokio runtime.
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        let connector = tokio_rustls::TlsConnector::from(client);
        let handshake = connector.connect(name, tcp);
        let mut tls = fail_after(Duration::from_secs(30), handshake).await??;
        tls.write_all(b"through tokio's traits").await?;
        tls.shutdown().await?; // close_notify
        let mut got = String::new();
        tls.read_to_string(&mut got).await?;
        assert_eq!(got, "through tokio's traits");
        n.cancel();
        Ok(())
    })
    .await;
    match result {
        Err(e) if e.is_cancelled() => {}
        other => other.unwrap(),
    }
}
