//! UDP on every backend, on loopback: datagrams both ways, connected mode, a socket
//! shared by several receiving and sending tasks.

use std::io;
use std::sync::{Arc, Mutex};

use hatchery::net::UdpSocket;
use hatchery::{move_on_after, nursery};
use hatchery_tests::ms;

#[hatchery::test]
async fn datagrams_over_ipv4_and_ipv6() {
    for host in ["127.0.0.1:0", "[::1]:0"] {
        let a = UdpSocket::bind(host).await.unwrap();
        let b = UdpSocket::bind(host).await.unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        assert_eq!(a.send_to(b"ping", b_addr).await.unwrap(), 4);
        let mut buf = [0; 64];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"ping"[..], a_addr));
        b.send_to(b"pong", from).await.unwrap();
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"pong"[..], b_addr));
    }
}

#[hatchery::test]
async fn connected_mode_sends_and_receives_from_its_peer_only() {
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    a.connect(b.local_addr().unwrap()).await.unwrap();
    assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
    // A datagram from someone else is filtered out by the system.
    stranger
        .send_to(b"noise", a.local_addr().unwrap())
        .await
        .unwrap();
    b.send_to(b"hello", a.local_addr().unwrap()).await.unwrap();
    let mut buf = [0; 16];
    let n = a.recv(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"hello");
    a.send(b"back").await.unwrap();
    let (n, from) = b.recv_from(&mut buf).await.unwrap();
    assert_eq!((&buf[..n], from), (&b"back"[..], a.local_addr().unwrap()));
    assert!(move_on_after(ms(50), a.recv(&mut buf)).await.is_none());
    // Unconnected: `send` has nowhere to go.
    let err = b.send(b"x").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotConnected, "{err}");
    assert!(err.to_string().contains("not connected"), "{err}");
    assert_eq!(
        b.peer_addr().unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
}

/// Four tasks receive from one socket at once: every datagram reaches exactly one of
/// them, and none waits for good.
#[hatchery::test]
async fn receivers_sharing_a_socket_take_turns() {
    const DATAGRAMS: u8 = 40;
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = socket.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    nursery(|n| async move {
        let mut receivers = Vec::new();
        for _ in 0..4 {
            let (socket, got) = (socket.clone(), g.clone());
            receivers.push(n.spawn(async move {
                let mut buf = [0; 4];
                loop {
                    let (len, _) = socket.recv_from(&mut buf).await?;
                    assert_eq!(len, 1);
                    got.lock().unwrap().push(buf[0]);
                }
                #[allow(unreachable_code)]
                Ok::<(), io::Error>(())
            }));
        }
        let sender = UdpSocket::bind("127.0.0.1:0").await?;
        for i in 0..DATAGRAMS {
            sender.send_to(&[i], addr).await?;
            hatchery::checkpoint().await;
        }
        hatchery_tests::until(|| g.lock().unwrap().len() == DATAGRAMS as usize).await;
        for r in receivers {
            r.cancel();
        }
        Ok::<_, io::Error>(())
    })
    .await
    .unwrap();
    let mut got = got.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, (0..DATAGRAMS).collect::<Vec<_>>());
}

#[hatchery::test]
async fn senders_sharing_a_socket() {
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let sink = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = sink.local_addr().unwrap();
    nursery(|n| async move {
        for t in 0..4u8 {
            let socket = socket.clone();
            n.spawn(async move {
                for i in 0..10u8 {
                    socket.send_to(&[t, i], to).await?;
                }
                Ok::<_, io::Error>(())
            });
        }
        Ok(())
    })
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 8];
    for _ in 0..40 {
        let (n, _) = sink.recv_from(&mut buf).await.unwrap();
        got.push((buf[0], buf[1], n));
    }
    got.sort_unstable();
    let want: Vec<_> = (0..4u8)
        .flat_map(|t| (0..10u8).map(move |i| (t, i, 2)))
        .collect();
    assert_eq!(got, want);
}

#[hatchery::test]
async fn a_datagram_larger_than_the_buffer_is_cut() {
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    a.send_to(&[7; 1000], b.local_addr().unwrap())
        .await
        .unwrap();
    a.send_to(b"next", b.local_addr().unwrap()).await.unwrap();
    let mut small = [0; 10];
    let (n, _) = b.recv_from(&mut small).await.unwrap();
    assert_eq!((n, small), (10, [7; 10]));
    // The rest is gone, not delivered as a datagram of its own.
    let (n, _) = b.recv_from(&mut small).await.unwrap();
    assert_eq!(&small[..n], b"next");
}

#[hatchery::test]
async fn udp_from_std() {
    let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = UdpSocket::from_std(std_socket).unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    b.send_to(b"std", a.local_addr().unwrap()).await.unwrap();
    let mut buf = [0; 3];
    let (n, _) = a.recv_from(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"std");
    assert!(format!("{a:?}").starts_with("UdpSocket"));
}

/// A receive into an empty buffer is a receive like any other: a datagram is taken, cut
/// to nothing (as a datagram larger than the buffer is cut to the buffer), and its
/// length and sender reported as 0 and its address; with none there, it waits for one.
/// It does not return 0 at once without one: a datagram may be empty, so that 0 would
/// report one that never came. Bounded by `fail_after`, with the datagrams already there.
#[hatchery::test]
async fn a_zero_length_receive_takes_one_datagram() {
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = b.local_addr().unwrap();
    for datagram in [&b"first"[..], b"second", b"", b"third", b"fourth"] {
        a.send_to(datagram, to).await.unwrap();
    }
    b.connect(a.local_addr().unwrap()).await.unwrap();
    hatchery::fail_after(std::time::Duration::from_secs(10), async {
        let mut buf = [0; 16];
        assert_eq!(b.recv(&mut []).await.unwrap(), 0); // "first", taken
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"second");
        assert_eq!(b.recv(&mut buf).await.unwrap(), 0); // the empty one
        let (n, from) = b.recv_from(&mut []).await.unwrap(); // "third", taken
        assert_eq!((n, from), (0, a.local_addr().unwrap()));
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"fourth");
    })
    .await
    .unwrap();
    // With nothing there, it waits.
    let waited = hatchery::move_on_after(hatchery_tests::ms(50), b.recv(&mut [])).await;
    assert!(waited.is_none());
}
