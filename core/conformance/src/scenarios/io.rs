//! The reactor (R6): an event that carries an error or a hang-up ends the wait of the
//! operation, which returns the system's error. Each scenario opens loopback sockets
//! through `hatchery::net`; on a runtime without a reactor, opening one fails with
//! `Unsupported`, and the scenario passes at once (there is nothing to check).

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hatchery::net::{TcpListener, TcpStream, UdpSocket};
use hatchery::{fail_after, nursery, sleep, Nursery};

use crate::support::{ms, Counter};

/// Each scenario's bound on its waits (real time): far above what any takes, so that a
/// binding that leaves an operation waiting fails instead of hanging.
const BOUND: Duration = Duration::from_secs(5);

/// `Some(socket)`, or `None` on a runtime without a reactor; panics on another error.
fn opened<T>(socket: io::Result<T>) -> Option<T> {
    match socket {
        Ok(socket) => Some(socket),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => None,
        Err(e) => panic!("cannot open a loopback socket: {e}"),
    }
}

/// A UDP socket on loopback connected to a port where nothing listens (one just freed),
/// or `None` without a reactor.
async fn connected_to_a_closed_port() -> Option<UdpSocket> {
    let gone = opened(UdpSocket::bind("127.0.0.1:0").await)?;
    let closed = gone.local_addr().unwrap();
    drop(gone);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(closed).await.unwrap();
    Some(socket)
}

/// The ICMP answer to a datagram sent to a closed port: `ConnectionRefused` (Unix), or
/// `ConnectionReset` (Windows).
#[track_caller]
fn assert_refused(out: io::Result<usize>) {
    let err = out.expect_err("a receive on a refused UDP socket returned a datagram");
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
        ),
        "{err:?}"
    );
}

/// A TCP connection on loopback: (client, server), or `None` without a reactor.
async fn tcp_pair() -> Option<(TcpStream, TcpStream)> {
    let listener = opened(TcpListener::bind("127.0.0.1:0").await)?;
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    Some((client, server))
}

/// R6: a receive waiting on a connected UDP socket whose datagram met a closed port ends
/// with the error, not a hang. On Linux the ICMP answer is an event that carries an
/// error and nothing else to read (`EPOLLERR`): a reactor that waits for "readable" only
/// fails here.
pub async fn r6_an_error_event_ends_a_waiting_receive() {
    let Some(socket) = connected_to_a_closed_port().await else {
        return;
    };
    let socket = Arc::new(socket);
    let out = fail_after(
        BOUND,
        nursery(|n: Nursery<Infallible>| async move {
            let s = socket.clone();
            let waiting = n.spawn(async move { Ok(s.recv(&mut [0; 16]).await) });
            sleep(ms(20)).await; // waiting now
            socket.send(b"anyone?").await.unwrap();
            Ok(waiting.join().await.unwrap())
        }),
    )
    .await
    .expect("R6: a receive waiting on a refused UDP socket hung (the binding's reactor does not end a wait on an event that carries an error)");
    assert_refused(out.unwrap());
}

/// R6: the same error, pending before the receive starts (the answer came while nothing
/// waited), is returned at once; the socket works on after it.
pub async fn r6_an_error_pending_before_the_receive_is_returned() {
    let Some(socket) = connected_to_a_closed_port().await else {
        return;
    };
    fail_after(BOUND, async {
        socket.send(b"anyone?").await.unwrap();
        sleep(ms(50)).await; // the answer is in
        assert_refused(socket.recv(&mut [0; 16]).await);

        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(peer.local_addr().unwrap()).await.unwrap();
        peer.send_to(b"here", socket.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0; 16];
        let n = socket.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"here");
    })
    .await
    .expect("R6: a receive with an error pending hung");
}

/// R6: a read waiting on a TCP connection ends when the peer resets it (it closes with
/// bytes it never read, so the system sends a reset): an error, not a hang.
pub async fn r6_a_reset_ends_a_waiting_read() {
    let Some((mut client, mut server)) = tcp_pair().await else {
        return;
    };
    let out = fail_after(
        BOUND,
        nursery(|n: Nursery<Infallible>| async move {
            client.write_all(b"never read").await.unwrap();
            let mut buf = [0; 1];
            server.read_exact(&mut buf).await.unwrap(); // the rest stays unread
            let waiting = n.spawn(async move { Ok(client.read(&mut [0; 16]).await) });
            sleep(ms(20)).await;
            drop(server); // a reset
            Ok(waiting.join().await.unwrap())
        }),
    )
    .await
    .expect("R6: a read waiting on a reset connection hung");
    let err = out.unwrap().expect_err("a read on a reset connection read");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err:?}");
}

/// R6: a write waiting for room (the peer reads nothing) ends when the peer resets the
/// connection: an error, not a hang.
pub async fn r6_a_reset_ends_a_waiting_write() {
    let Some((client, server)) = tcp_pair().await else {
        return;
    };
    let written = Counter::new();
    let (w, seen) = (written.clone(), written.clone());
    let out = fail_after(
        BOUND,
        nursery(|n: Nursery<Infallible>| async move {
            let waiting = n.spawn(async move {
                let mut client = client;
                let chunk = vec![7; 64 * 1024];
                loop {
                    match client.write(&chunk).await {
                        Ok(k) => w.raise_to(w.get() + k),
                        Err(e) => return Ok(e),
                    }
                }
            });
            // Until the writes stop: the buffers are full, a write waits.
            let mut last = usize::MAX;
            while seen.get() != last {
                last = seen.get();
                sleep(ms(50)).await;
            }
            drop(server); // bytes unread: a reset
            Ok(waiting.join().await.unwrap())
        }),
    )
    .await
    .expect("R6: a write waiting on a reset connection hung");
    let err = out.unwrap();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{err:?}"
    );
    assert!(written.get() > 0);
}
