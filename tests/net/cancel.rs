//! Cancellation of networking operations, on every backend: each operation is a
//! checkpoint, and what a cancellation mid-way leaves behind is what its docs say.

use crate::common;

use std::io;
use std::time::{Duration, Instant};

use common::{pair, pattern_at, read_to_end, Blackhole, V4, V6};
use hatchery::net::{TcpListener, TcpStream, UdpSocket};
use hatchery::{move_on_after, CancelScope};
use hatchery_tests::{ms, Counter};

/// A scope cancelled before it runs `fut`.
async fn in_cancelled_scope<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let scope = CancelScope::new();
    scope.handle().cancel();
    scope.run(fut).await
}

#[hatchery::test]
async fn a_read_in_a_cancelled_scope_reads_nothing_even_with_data_waiting() {
    let (mut client, mut server) = pair(V4).await;
    client.write_all(b"abc").await.unwrap();
    // Give the bytes time to arrive, so a read could take them at once.
    hatchery::sleep(ms(20)).await;
    let mut buf = [0; 3];
    assert!(in_cancelled_scope(server.read(&mut buf)).await.is_none());
    assert_eq!(buf, [0; 3]);
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"abc"); // nothing was consumed
}

#[hatchery::test]
async fn a_read_cancelled_while_waiting_consumed_nothing() {
    let (mut client, mut server) = pair(V6).await;
    let mut buf = [0; 8];
    let out = move_on_after(ms(30), server.read(&mut buf)).await;
    assert!(out.is_none());
    client.write_all(b"later").await.unwrap();
    let mut got = [0; 5];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"later");
}

#[hatchery::test]
async fn an_accept_cancelled_while_waiting_loses_no_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(move_on_after(ms(30), listener.accept()).await.is_none());
    // A connection that is already waiting is not taken by an accept in a cancelled
    // scope either.
    let client = TcpStream::connect(addr).await.unwrap();
    hatchery::sleep(ms(20)).await;
    assert!(in_cancelled_scope(listener.accept()).await.is_none());
    let (server, peer) = listener.accept().await.unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    drop(server);
}

#[hatchery::test]
async fn a_connect_cancelled_mid_way_closes_its_socket() {
    let hole = Blackhole::new(V4);
    let started = Instant::now();
    let out = move_on_after(ms(100), TcpStream::connect(hole.addr())).await;
    assert!(out.is_none(), "the connect to a full backlog completed");
    // Had the socket stayed open, its SYN sent again after 1 s would now connect.
    hole.assert_no_attempt_left(started).await;
}

#[hatchery::test]
async fn a_connect_in_a_cancelled_scope_opens_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(in_cancelled_scope(TcpStream::connect(addr)).await.is_none());
    hatchery::sleep(ms(20)).await;
    // No SYN was sent: no connection waits to be accepted.
    assert!(move_on_after(ms(50), listener.accept()).await.is_none());
}

/// A `write_all` cancelled while the peer does not read has written a prefix of its
/// buffer: what the peer then reads is exactly that, shorter than the whole.
#[hatchery::test]
async fn a_write_all_cancelled_mid_way_wrote_a_prefix() {
    const TOTAL: usize = 64 << 20; // far more than the socket buffers hold
    let (mut client, mut server) = pair(V4).await;
    let data = pattern_at(0, TOTAL);
    let started = Counter::new();
    let out = move_on_after(ms(200), async {
        started.incr();
        client.write_all(&data).await
    })
    .await;
    assert!(out.is_none(), "64 MiB fit in the socket buffers");
    assert_eq!(started.get(), 1);
    client.shutdown().await.unwrap();
    let got = read_to_end(&mut server).await.unwrap();
    assert!(!got.is_empty() && got.len() < TOTAL, "{} bytes", got.len());
    assert!(
        got[..] == data[..got.len()],
        "not a prefix of what was written"
    );
}

#[hatchery::test]
async fn a_write_in_a_cancelled_scope_writes_nothing() {
    let (mut client, mut server) = pair(V4).await;
    assert!(in_cancelled_scope(client.write(b"lost")).await.is_none());
    assert!(in_cancelled_scope(client.write_all(b"lost"))
        .await
        .is_none());
    assert!(in_cancelled_scope(client.shutdown()).await.is_none());
    client.write_all(b"kept").await.unwrap();
    drop(client);
    assert_eq!(read_to_end(&mut server).await.unwrap(), b"kept");
}

#[hatchery::test]
async fn a_datagram_receive_cancelled_loses_no_datagram() {
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = [0; 16];
    assert!(move_on_after(ms(30), b.recv_from(&mut buf)).await.is_none());
    a.send_to(b"one", b.local_addr().unwrap()).await.unwrap();
    hatchery::sleep(ms(20)).await;
    assert!(in_cancelled_scope(b.recv_from(&mut buf)).await.is_none());
    assert!(
        in_cancelled_scope(a.send_to(b"two", b.local_addr().unwrap()))
            .await
            .is_none()
    );
    let (n, from) = b.recv_from(&mut buf).await.unwrap();
    assert_eq!((&buf[..n], from), (&b"one"[..], a.local_addr().unwrap()));
    // "two" was never sent.
    assert!(move_on_after(ms(50), b.recv_from(&mut buf)).await.is_none());
}

/// The deadline of an enclosing scope reaches an operation without a parameter: a
/// library's read under its caller's `fail_after`.
#[hatchery::test]
async fn an_enclosing_deadline_ends_a_read() {
    async fn library_read(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; 16];
        let n = stream.read(&mut buf).await?;
        buf.truncate(n);
        Ok(buf)
    }
    let (_client, mut server) = pair(V4).await;
    let start = Instant::now();
    let out = hatchery::fail_after(ms(50), library_read(&mut server)).await;
    assert!(out.is_err(), "the read returned {out:?}");
    assert!(start.elapsed() >= ms(50) && start.elapsed() < Duration::from_secs(5));
}
