//! Rule R6: what a reactor binding reports. An event that carries an error or a hang-up
//! ends the wait of an operation, which tries its system call and returns what the
//! system says: a socket error is never a hang, on any backend. Loopback only; every
//! wait bounded by `fail_after` (generously: a regression fails instead of hanging).

use crate::common;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use common::{pair, V4};
use hatchery::net::UdpSocket;
use hatchery::{fail_after, nursery, sleep};
use hatchery_tests::ms;

/// The bound on each test's waits: far above what any takes on a loaded machine.
const BOUND: Duration = Duration::from_secs(10);

/// A UDP socket connected to a port of loopback where nothing listens (one just freed).
async fn connected_to_a_closed_port() -> UdpSocket {
    let gone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let closed = gone.local_addr().unwrap();
    drop(gone);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(closed).await.unwrap();
    socket
}

fn assert_refused(err: &io::Error) {
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err:?}");
}

/// A receive waiting on a connected UDP socket whose datagram met a closed port fails
/// with `ConnectionRefused` (the ICMP answer), instead of waiting for good: the answer
/// comes as an error-only event (`EPOLLERR` on Linux, without `EPOLLIN`).
#[hatchery::test]
async fn r6_a_receive_waiting_on_a_refused_udp_socket_fails() {
    let socket = Arc::new(connected_to_a_closed_port().await);
    let err = fail_after(BOUND, async {
        nursery(|n| async move {
            // The receive waits first; the datagram goes out while it waits.
            let s = socket.clone();
            let waiting = n.spawn(async move {
                let mut buf = [0; 16];
                Ok(s.recv(&mut buf).await)
            });
            sleep(ms(20)).await;
            socket.send(b"anyone?").await?;
            Ok::<_, io::Error>(waiting.join().await.unwrap())
        })
        .await
        .unwrap()
    })
    .await
    .expect("a receive on a refused UDP socket hung")
    .unwrap_err();
    assert_refused(&err);
}

/// The same error, already pending when the receive is called (the ICMP answer came
/// before anyone waited), is returned at once; `recv_from` too. The socket works on.
#[hatchery::test]
async fn r6_an_error_pending_before_the_receive_is_returned() {
    let socket = connected_to_a_closed_port().await;
    fail_after(BOUND, async {
        let mut buf = [0; 16];
        socket.send(b"anyone?").await.unwrap();
        sleep(ms(50)).await; // the answer is in
        assert_refused(&socket.recv(&mut buf).await.unwrap_err());
        socket.send(b"anyone?").await.unwrap();
        sleep(ms(50)).await;
        assert_refused(&socket.recv_from(&mut buf).await.unwrap_err());

        // Taken once: with a peer there now, the socket receives.
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(peer.local_addr().unwrap()).await.unwrap();
        peer.send_to(b"here", socket.local_addr().unwrap())
            .await
            .unwrap();
        let n = socket.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"here");
    })
    .await
    .expect("a receive with an error pending hung");
}

/// A read waiting on a TCP connection that the peer resets fails with
/// `ConnectionReset`. The peer resets by closing with `SO_LINGER` 0.
#[hatchery::test]
async fn r6_a_reset_while_a_read_waits_fails_the_read() {
    let (mut client, server) = pair(V4).await;
    let err = fail_after(BOUND, async {
        nursery(|n| async move {
            let waiting = n.spawn(async move {
                let mut buf = [0; 16];
                Ok(client.read(&mut buf).await)
            });
            sleep(ms(20)).await;
            rustix::net::sockopt::set_socket_linger(&server, Some(Duration::ZERO))?;
            drop(server); // a reset
            Ok::<_, io::Error>(waiting.join().await.unwrap())
        })
        .await
        .unwrap()
    })
    .await
    .expect("a read on a reset connection hung")
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err:?}");
}

/// A write waiting for room, while the peer half-closes (shuts down its writing side),
/// waits on: the peer may still read. The end of the stream reaches a read at once
/// meanwhile. When the peer then closes with bytes unread (a reset), the write fails.
#[hatchery::test]
async fn r6_a_peer_that_half_closes_while_a_write_waits() {
    let (client, mut server) = pair(V4).await;
    // Small buffers, so that the write waits soon.
    rustix::net::sockopt::set_socket_send_buffer_size(&client, 4096).unwrap();
    rustix::net::sockopt::set_socket_recv_buffer_size(&server, 4096).unwrap();
    let (mut reader, mut writer) = client.into_split();
    fail_after(BOUND, async {
        nursery(|n| async move {
            let waiting = n.spawn(async move {
                let big = vec![7; 32 << 20]; // far more than the buffers hold
                Ok(writer.write_all(&big).await)
            });
            sleep(ms(50)).await;
            assert!(!waiting.is_finished(), "the write did not wait");

            server.shutdown().await?; // the half-close
            let mut buf = [0; 16];
            assert_eq!(reader.read(&mut buf).await?, 0); // the end, at once
            sleep(ms(50)).await;
            assert!(!waiting.is_finished(), "the half-close ended the write");

            drop(server); // bytes unread: a reset
            let err = waiting.join().await.unwrap().unwrap_err();
            assert!(
                matches!(
                    err.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                ),
                "{err:?}"
            );
            Ok::<_, io::Error>(())
        })
        .await
        .unwrap()
    })
    .await
    .expect("a write on a reset connection hung");
}

/// Polls `fut` until it completes or `within` passes, and returns how many times it was
/// polled.
async fn polls_within<F: std::future::Future>(within: Duration, fut: F) -> usize {
    let mut fut = std::pin::pin!(fut);
    let mut polls = 0;
    let counted = std::future::poll_fn(|cx| {
        polls += 1;
        fut.as_mut().poll(cx)
    });
    let _ = hatchery::move_on_after(within, counted).await;
    polls
}

/// Waiting is not polling: a receive on a UDP socket (always writable) waits for an
/// event, before an error and after one was returned (its readiness is cleared, and
/// the socket's lasting hang-up of writing does not end a read's wait), instead of being
/// woken again and again. (A binding that never cleared an error's readiness would
/// spin inside one poll, which no timer can end: this test would hang, for CI's time
/// limit to catch.)
#[hatchery::test]
async fn r6_a_waiting_receive_does_not_spin() {
    let socket = connected_to_a_closed_port().await;
    let mut buf = [0; 16];
    let polls = polls_within(ms(300), socket.recv(&mut buf)).await;
    assert!(polls <= 10, "polled {polls} times while waiting");
    fail_after(BOUND, async {
        socket.send(b"anyone?").await.unwrap();
        assert_refused(&socket.recv(&mut buf).await.unwrap_err());
    })
    .await
    .unwrap();
    let polls = polls_within(ms(300), socket.recv(&mut buf)).await;
    assert!(
        polls <= 10,
        "polled {polls} times while waiting, after an error"
    );
}
