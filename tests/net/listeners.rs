//! Listeners on every family, on every backend: IPv6 and IPv4 on one port
//! (`TcpListener::bind_all`, `open_tcp_listeners`), and `serve` over several listeners at
//! once. The dual-stack tests need IPv6 loopback; where the machine has none they say so
//! and pass.

use crate::common;

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use common::{V4, V6};
use hatchery::net::{open_tcp_listeners, serve, Listener, TcpListener, TcpStream};
use hatchery::{move_on_after, nursery};
use hatchery_tests::ms;

/// Whether this machine has IPv6 loopback; if not, says so (the test then passes
/// without checking anything).
fn has_ipv6(test: &str) -> bool {
    let ok = std::net::TcpListener::bind("[::1]:0").is_ok();
    if !ok {
        eprintln!("{test}: skipped, this machine has no IPv6 loopback (::1)");
    }
    ok
}

fn loopbacks(port: u16) -> [SocketAddr; 2] {
    [
        SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
    ]
}

/// Connects to `addr`, sends a byte, and reads the byte the echo server sends back.
async fn round_trip(addr: SocketAddr, byte: u8) -> io::Result<u8> {
    let mut client = TcpStream::connect(addr).await?;
    client.write_all(&[byte]).await?;
    let mut buf = [0; 1];
    client.read_exact(&mut buf).await?;
    Ok(buf[0])
}

async fn echo_one(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = [0; 1];
    stream.read_exact(&mut buf).await?;
    stream.write_all(&buf).await
}

#[hatchery::test]
async fn port_zero_picks_one_port_free_on_both_families() {
    if !has_ipv6("port_zero_picks_one_port_free_on_both_families") {
        return;
    }
    for _ in 0..20 {
        let listeners = TcpListener::bind_all(&loopbacks(0)[..]).await.unwrap();
        assert_eq!(listeners.len(), 2);
        let a = listeners[0].local_addr().unwrap();
        let b = listeners[1].local_addr().unwrap();
        assert!(a.is_ipv6() && b.is_ipv4(), "{a} {b}");
        assert_eq!(a.port(), b.port());
        assert_ne!(a.port(), 0);
    }
}

#[hatchery::test]
async fn a_connection_on_each_family_reaches_its_listener() {
    if !has_ipv6("a_connection_on_each_family_reaches_its_listener") {
        return;
    }
    let listeners = TcpListener::bind_all(&loopbacks(0)[..]).await.unwrap();
    let port = listeners[0].local_addr().unwrap().port();
    for (ip, listener) in [V6, V4].into_iter().zip(&listeners) {
        let client = TcpStream::connect((ip, port)).await.unwrap();
        let (_server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
    }
}

#[hatchery::test]
async fn the_ipv6_listener_is_ipv6_only() {
    if !has_ipv6("the_ipv6_listener_is_ipv6_only") {
        return;
    }
    // An IPv4 wildcard on the port of an IPv6 wildcard: only possible with IPV6_V6ONLY.
    // (Bound, never connected to from outside: the tests talk to loopback only.)
    let listeners = TcpListener::bind_all(
        &[
            SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        ][..],
    )
    .await
    .unwrap();
    let v6 = rustix::net::sockopt::ipv6_v6only(&listeners[0]).unwrap();
    assert!(v6, "IPV6_V6ONLY is not set");
}

// 127.0.0.2 is loopback on Linux only.
#[cfg(target_os = "linux")]
#[hatchery::test]
async fn a_taken_port_is_an_error_naming_the_address_and_closes_the_others() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    // A free IPv4 address on another loopback IP first, then the taken one.
    let addrs = [
        SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), port)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
    ];
    let e = TcpListener::bind_all(&addrs[..]).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    assert!(e.to_string().contains(&addrs[1].to_string()), "{e}");
    // The first listener was closed: its address can be bound again.
    drop(std::net::TcpListener::bind(addrs[0]).unwrap());
}

#[hatchery::test]
async fn duplicate_addresses_are_bound_once() {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let listeners = TcpListener::bind_all(&[addr, addr][..]).await.unwrap();
    assert_eq!(listeners.len(), 1);
}

#[hatchery::test]
async fn open_tcp_listeners_binds_every_family_the_machine_has_on_one_port() {
    let listeners = open_tcp_listeners(0).await.unwrap();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    assert!(!ports.is_empty());
    assert!(ports.iter().all(|&p| p == ports[0] && p != 0), "{ports:?}");
    let v4 = listeners.iter().any(|l| l.local_addr().unwrap().is_ipv4());
    assert!(v4, "no IPv4 listener");
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        assert_eq!(listeners.len(), 2);
    }
    // Reached on loopback.
    let client = TcpStream::connect((V4, ports[0])).await.unwrap();
    let got = listeners.accept_stream().await.unwrap();
    assert_eq!(got.peer_addr().unwrap(), client.local_addr().unwrap());
}

#[hatchery::test]
async fn serve_over_both_families_serves_each() {
    if !has_ipv6("serve_over_both_families_serves_each") {
        return;
    }
    let listeners = TcpListener::bind_all(&loopbacks(0)[..]).await.unwrap();
    let port = listeners[0].local_addr().unwrap().port();
    nursery(|n| async move {
        n.spawn(async move {
            serve(listeners, echo_one).await?;
            Ok(())
        });
        for i in 0..20u8 {
            let ip = if i % 2 == 0 { V6 } else { V4 };
            assert_eq!(round_trip(SocketAddr::new(ip, port), i).await?, i);
        }
        n.cancel();
        Ok::<_, anyhow::Error>(())
    })
    .await
    .or_else(|e| if e.is_cancelled() { Ok(()) } else { Err(e) })
    .unwrap();
}

#[hatchery::test]
async fn serving_several_listeners_starves_none() {
    // Three IPv4 listeners; clients connect to all of them, many at once, and every
    // connection is served.
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    nursery(|n| async move {
        n.spawn(async move {
            serve(listeners, echo_one).await?;
            Ok(())
        });
        hatchery::map(8, 0..60u8, |i| {
            let addr = addrs[usize::from(i) % 3];
            async move {
                assert_eq!(round_trip(addr, i).await?, i);
                Ok::<_, anyhow::Error>(())
            }
        })
        .try_join()
        .await?;
        n.cancel();
        Ok::<_, anyhow::Error>(())
    })
    .await
    .or_else(|e| if e.is_cancelled() { Ok(()) } else { Err(e) })
    .unwrap();
}

#[hatchery::test]
async fn an_accept_over_several_listeners_cancelled_loses_no_connection() {
    let listeners = vec![
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    ];
    assert!(move_on_after(ms(30), listeners.accept_stream())
        .await
        .is_none());
    let client = TcpStream::connect(listeners[1].local_addr().unwrap())
        .await
        .unwrap();
    hatchery::sleep(ms(20)).await;
    let scope = hatchery::CancelScope::new();
    scope.handle().cancel();
    assert!(scope.run(listeners.accept_stream()).await.is_none());
    let (server, peer) = listeners[1].accept().await.unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    drop(server);
}

#[hatchery::test]
async fn an_empty_list_of_listeners_is_an_error() {
    let none: Vec<TcpListener> = Vec::new();
    let e = none.accept_stream().await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}
