//! TCP on every backend, on loopback: echo, half-close, a 64 MiB transfer, owned halves,
//! addresses and options, a listener shared by several tasks.

use crate::common;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::{pair, pattern_at, read_to_end, Checksum, V4, V6};
use hatchery::net::{TcpListener, TcpStream};
use hatchery::nursery;

/// An echo server for one connection: writes back what it reads, until the end.
async fn echo_once(listener: TcpListener) -> io::Result<()> {
    let (mut stream, _) = listener.accept().await?;
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf).await? {
            0 => return Ok(()),
            n => stream.write_all(&buf[..n]).await?,
        }
    }
}

async fn echo_on(ip: std::net::IpAddr) {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert_eq!(addr.ip(), ip);
    nursery(|n| async move {
        n.spawn(echo_once(listener));
        let mut client = TcpStream::connect(addr).await?;
        let mut sent = Vec::new();
        for i in 0..50u32 {
            let msg = format!("message {i}\n");
            client.write_all(msg.as_bytes()).await?;
            sent.extend_from_slice(msg.as_bytes());
        }
        client.shutdown().await?;
        let got = read_to_end(&mut client).await?;
        assert_eq!(got, sent);
        Ok::<_, io::Error>(())
    })
    .await
    .unwrap();
}

#[hatchery::test]
async fn echo_over_ipv4() {
    echo_on(V4).await;
}

#[hatchery::test]
async fn echo_over_ipv6() {
    echo_on(V6).await;
}

#[hatchery::test]
async fn half_close_lets_the_peer_answer() {
    let (mut client, mut server) = pair(V4).await;
    client.write_all(b"request").await.unwrap();
    client.shutdown().await.unwrap();
    // The server reads the request, then the end of the stream...
    assert_eq!(read_to_end(&mut server).await.unwrap(), b"request");
    // ...and can still answer on its own side.
    server.write_all(b"response").await.unwrap();
    drop(server);
    assert_eq!(read_to_end(&mut client).await.unwrap(), b"response");
    // Writing after the shutdown is an error, not a hang.
    let err = client.write_all(b"more").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
}

/// 64 MiB out and back through an echo server, the client writing from one task and
/// reading from another (its owned halves) at once, checksummed both ways.
#[hatchery::test]
async fn sixty_four_mib_echoed_with_a_checksum() {
    const TOTAL: usize = 64 << 20;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sums = nursery(|n| async move {
        n.spawn(echo_once(listener));
        let client = TcpStream::connect(addr).await?;
        let (mut reader, mut writer) = client.into_split();
        let sent = n.spawn(async move {
            // A chunk of 251 * 400 bytes: the pattern repeats every 251, so every chunk
            // is this one (cut short at the end).
            let chunk = pattern_at(0, 251 * 400);
            let (mut offset, mut sum) = (0, Checksum::new());
            while offset < TOTAL {
                let len = chunk.len().min(TOTAL - offset);
                sum.update(&chunk[..len]);
                writer.write_all(&chunk[..len]).await?;
                offset += len;
            }
            drop(writer); // shuts down the writing side: the server's echo ends
            Ok(sum.finish())
        });
        let expected = pattern_at(0, 65_536 + 251);
        let mut buf = vec![0; 65_536];
        let (mut count, mut sum) = (0, Checksum::new());
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            let at = count % 251;
            assert!(
                buf[..n] == expected[at..at + n],
                "corrupted data after {count} bytes"
            );
            sum.update(&buf[..n]);
            count += n;
        }
        assert_eq!(count, TOTAL);
        let hash = sum.finish();
        Ok::<_, io::Error>((sent.join().await?, hash))
    })
    .await
    .unwrap();
    assert_eq!(sums.0, sums.1);
}

#[hatchery::test]
async fn owned_halves_reunite_and_the_write_half_shuts_down_when_dropped() {
    let (client, mut server) = pair(V4).await;
    let (reader, writer) = client.into_split();
    assert_eq!(
        reader.as_ref().local_addr().unwrap(),
        writer.as_ref().local_addr().unwrap()
    );
    // Reunited: no half-close happened.
    let mut client = reader.reunite(writer).unwrap();
    client.write_all(b"one").await.unwrap();
    let mut buf = [0; 3];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"one");
    // Halves of two streams do not reunite; the error gives them back.
    let (other, _other_server) = pair(V4).await;
    let (r1, w1) = client.into_split();
    let (r2, w2) = other.into_split();
    let err = r1.reunite(w2).unwrap_err();
    let (r1, w2) = (err.0, err.1);
    drop((r2, w2));
    // Dropping the write half shuts down the writing side: the server reads the end.
    drop(w1);
    assert_eq!(read_to_end(&mut server).await.unwrap(), b"");
    server.write_all(b"still").await.unwrap();
    let mut r1 = r1;
    let mut buf = [0; 5];
    r1.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"still");
}

#[hatchery::test]
async fn addresses_and_nodelay() {
    let (client, server) = pair(V6).await;
    assert_eq!(client.peer_addr().unwrap(), server.local_addr().unwrap());
    assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
    assert!(client.local_addr().unwrap().is_ipv6());
    assert!(!client.nodelay().unwrap());
    client.set_nodelay(true).unwrap();
    assert!(client.nodelay().unwrap());
    let debug = format!("{client:?}");
    assert!(
        debug.starts_with("TcpStream") && debug.contains("peer"),
        "{debug}"
    );
}

#[hatchery::test]
async fn from_std_sockets() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let listener = TcpListener::from_std(std_listener).unwrap();
    let std_client = std::net::TcpStream::connect(addr).unwrap();
    let mut client = TcpStream::from_std(std_client).unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    client.write_all(b"std").await.unwrap();
    let mut buf = [0; 3];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"std");
}

/// Several tasks accept from one listener: every connection goes to exactly one of
/// them, and none waits for good.
#[hatchery::test]
async fn a_listener_shared_by_accepting_tasks() {
    const CONNECTIONS: usize = 40;
    const ACCEPTORS: usize = 4;
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    nursery(|n| async move {
        let mut acceptors = Vec::new();
        for _ in 0..ACCEPTORS {
            let (listener, seen) = (listener.clone(), seen.clone());
            acceptors.push(n.spawn(async move {
                loop {
                    let (mut stream, _) = listener.accept().await?;
                    let mut id = [0; 1];
                    stream.read_exact(&mut id).await?;
                    seen.lock().unwrap().push(id[0]);
                    stream.write_all(b"k").await?;
                }
                #[allow(unreachable_code)]
                Ok::<(), io::Error>(())
            }));
        }
        for id in 0..CONNECTIONS as u8 {
            let mut client = TcpStream::connect(addr).await?;
            client.write_all(&[id]).await?;
            let mut ack = [0; 1];
            client.read_exact(&mut ack).await?;
        }
        for a in acceptors {
            a.cancel();
        }
        let mut ids = seen.lock().unwrap().clone();
        ids.sort_unstable();
        assert_eq!(ids, (0..CONNECTIONS as u8).collect::<Vec<_>>());
        Ok::<_, io::Error>(())
    })
    .await
    .unwrap();
}

/// A socket opened in hatchery code works in a future polled outside hatchery (a plain
/// executor task): it needs no hatchery context once opened.
#[hatchery::test(backends(tokio_current, tokio_multi))]
async fn a_socket_works_in_a_plain_tokio_task() {
    let (mut client, mut server) = pair(V4).await;
    let plain = tokio::spawn(async move {
        assert!(!hatchery::rt::is_entered());
        let mut buf = [0; 5];
        server.read_exact(&mut buf).await.unwrap();
        server.write_all(&buf).await.unwrap();
    });
    client.write_all(b"plain").await.unwrap();
    let mut buf = [0; 5];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"plain");
    plain.await.unwrap();
}

/// A fresh connection read and written from one task at once (as hyper's connection
/// driver does): the write goes through while the read waits. The sockets of a connect
/// used to be registered before the connect started, when Linux reports an unconnected
/// TCP socket as hung up; tokio keeps "read closed" for good once seen, so on its
/// multi-thread runtime (whose other worker could see that event) reads spun on a
/// readiness that never cleared, spent the task's cooperative budget in every poll, and
/// the write never got a turn.
#[hatchery::test]
async fn a_new_connection_reads_and_writes_from_one_task() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    common::read_and_write_from_one_task(listener, || TcpStream::connect(addr)).await;
}
