//! The simulated network (`hatchery-sim`): `hatchery::net` on a network of named hosts,
//! with latency from the seed, partitions, crashes and restarts, resets, and lossy links
//! (rules Z1-Z7).

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hatchery::net::{TcpConnector, TcpListener, TcpStream, UdpSocket};
use hatchery::{move_on_after, nursery, sleep};
use hatchery_sim::{Event, Faults, Link, Sim};

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// The message of a panic payload.
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Echoes every connection on `port`, one task per connection (a connection's error,
/// a reset, ends that connection only).
async fn echo_server(port: u16) -> io::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", port)).await?;
    hatchery::net::serve(listener, |mut conn: TcpStream| async move {
        let mut buf = [0; 1024];
        while let Ok(n @ 1..) = conn.read(&mut buf).await {
            if conn.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        Ok::<_, io::Error>(())
    })
    .await
    .map(drop)
    .map_err(io::Error::other)
}

/// Echoes datagrams on `port`.
async fn udp_echo(port: u16) -> io::Result<()> {
    let socket = UdpSocket::bind(("0.0.0.0", port)).await?;
    let mut buf = [0; 64];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await?;
        socket.send_to(&buf[..n], from).await?;
    }
}

/// Library code: a round trip through an echo server, on whatever runtime runs it.
async fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> io::Result<Vec<u8>> {
    stream.write_all(msg).await?;
    let mut back = vec![0; msg.len()];
    stream.read_exact(&mut back).await?;
    Ok(back)
}

/// Three hosts: two clients that talk to a server over TCP, and over UDP to each other,
/// on lossy links with random partitions, crashes and resets for 3 simulated seconds.
async fn three_hosts() -> u64 {
    let net = hatchery_sim::net();
    net.host("server", || echo_server(7));
    net.host("peer", || udp_echo(9));
    let lossy = Link {
        loss: 0.2,
        duplicate: 0.1,
        reorder: 0.1,
        ..Link::default()
    };
    net.set_link("main", "peer", lossy);
    let done = Arc::new(AtomicU32::new(0));
    let counted = done.clone();
    move_on_after(Duration::from_secs(3), async move {
        nursery(|n| async move {
            n.spawn(async move {
                net.random_faults(Faults::between(["main", "server"]).every(ms(100)..ms(400)))
                    .await;
                Ok::<_, io::Error>(())
            });
            n.spawn(async move {
                let socket = UdpSocket::bind("0.0.0.0:0").await?;
                let peer = TcpConnector::new(); // resolves "peer" on the simulated network
                drop(peer);
                socket.connect(("peer", 9)).await?;
                for i in 0..u32::MAX {
                    socket.send(&i.to_le_bytes()).await?;
                    let _ = move_on_after(ms(20), socket.recv(&mut [0; 64])).await;
                }
                Ok(())
            });
            for _ in 0..u32::MAX {
                let Ok(mut stream) = TcpStream::connect(("server", 7)).await else {
                    sleep(ms(50)).await;
                    continue;
                };
                while let Some(Ok(back)) =
                    move_on_after(ms(500), round_trip(&mut stream, b"ping")).await
                {
                    assert_eq!(back, b"ping");
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok::<_, io::Error>(())
        })
        .await
    })
    .await;
    u64::from(done.load(Ordering::SeqCst))
}

/// Z1: a run with a network, lossy links and random faults replays from its seed: the
/// same trace (every delivery, loss and fault included), the same outcome; other seeds
/// differ.
#[test]
fn z1_the_seed_decides_the_network_too() {
    let mut hashes = std::collections::BTreeSet::new();
    for seed in 0..8 {
        let (trips, first) = Sim::new(seed).run_traced(three_hosts());
        let (again, second) = Sim::new(seed).run_traced(three_hosts());
        assert_eq!(first.hash(), second.hash(), "seed {seed}");
        assert_eq!(trips, again, "seed {seed}");
        assert!(trips > 10, "seed {seed}: {trips} round trips");
        assert!(first.messages() > 100, "seed {seed}: {}", first.messages());
        assert_eq!(first.elapsed(), Duration::from_secs(3));
        hashes.insert(first.hash());
    }
    assert_eq!(hashes.len(), 8, "every seed another run");
}

/// Z1: the faults and deliveries are events of the trace.
#[test]
fn z1_faults_and_deliveries_are_traced() {
    let (_, trace) = Sim::new(1).record_events(true).run_traced(async {
        let net = hatchery_sim::net();
        let server = net.host("server", || echo_server(7));
        let mut stream = TcpStream::connect(("server", 7)).await.unwrap();
        round_trip(&mut stream, b"x").await.unwrap();
        net.partition("main", "server");
        net.heal("main", "server");
        server.crash();
        server.restart();
    });
    let events = trace.events();
    let delivered = events
        .iter()
        .filter(|e| matches!(e, Event::Deliver(_)))
        .count();
    // SYN, SYN-ACK, the byte there and back.
    assert_eq!(delivered, 4, "{events:?}");
    for fault in [
        Event::Partition(0, 1),
        Event::Heal(0, 1),
        Event::Crash(1),
        Event::Restart(1),
    ] {
        assert!(events.contains(&fault), "{fault:?} in {events:?}");
    }
}

/// Z2: one body, library code that knows nothing of the simulator, on tokio, smol and
/// the simulated network: a listener on loopback, a connection, a round trip, a
/// half-close.
#[hatchery::test(sim(seeds = 20))]
async fn z2_library_code_runs_unchanged() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    nursery(|n| async move {
        n.spawn(async move {
            let (mut conn, peer) = listener.accept().await?;
            assert!(peer.ip().is_loopback());
            let mut buf = [0; 5];
            conn.read_exact(&mut buf).await?;
            conn.write_all(&buf).await?;
            conn.shutdown().await
        });
        let mut client = TcpStream::connect(addr).await?;
        assert_eq!(client.peer_addr()?, addr);
        assert_eq!(round_trip(&mut client, b"hello").await?, b"hello");
        assert_eq!(client.read(&mut [0; 8]).await?, 0, "the end of the stream");
        let udp = UdpSocket::bind("127.0.0.1:0").await?;
        udp.send_to(b"self", udp.local_addr()?).await?;
        let mut buf = [0; 8];
        let (n, from) = udp.recv_from(&mut buf).await?;
        assert_eq!((&buf[..n], from), (&b"self"[..], udp.local_addr()?));
        Ok::<_, io::Error>(())
    })
    .await
    .unwrap();
}

/// Z2: every operation is a checkpoint with its cancel safety: a read cut by its scope
/// reads nothing, and the bytes wait for the next read; an accept cut takes no
/// connection; a cancelled scope's connect sends nothing.
#[test]
fn z2_operations_keep_their_cancel_safety() {
    Sim::new(3)
        .run(async {
            let net = hatchery_sim::net();
            let listener = TcpListener::bind("0.0.0.0:80").await?;
            net.host("client", || async {
                let mut stream = TcpStream::connect(("main", 80)).await?;
                sleep(ms(100)).await;
                stream.write_all(b"late").await?;
                sleep(Duration::from_secs(3600)).await;
                Ok::<_, io::Error>(())
            });
            assert!(move_on_after(ms(1), listener.accept()).await.is_none());
            let (mut conn, _) = listener.accept().await?; // not lost to the cut accept
            assert!(move_on_after(ms(50), conn.read(&mut [0; 8]))
                .await
                .is_none());
            let mut buf = [0; 4];
            conn.read_exact(&mut buf).await?; // every byte, to the next read
            assert_eq!(&buf, b"late");
            // In a cancelled scope, a connect does not start: no SYN reaches the listener.
            let scope = hatchery::CancelScope::new();
            scope.handle().cancel();
            assert!(scope.run(TcpStream::connect(("main", 80))).await.is_none());
            assert!(move_on_after(ms(100), listener.accept()).await.is_none());
            Ok::<_, io::Error>(())
        })
        .unwrap();
}

/// Z2: host names resolve on the simulated network (with no blocking thread), and
/// `localhost` is the caller's own host; an unknown name is an error that names it.
#[test]
fn z2_names_resolve_to_simulated_hosts() {
    Sim::new(0)
        .run(async {
            let net = hatchery_sim::net();
            let db = net.host("db", || echo_server(5432));
            let mut stream = TcpStream::connect(("db", 5432)).await?;
            assert_eq!(stream.peer_addr()?.ip(), db.addr());
            assert_eq!(stream.local_addr()?.ip(), net.lookup("main").addr());
            assert_eq!(round_trip(&mut stream, b"q").await?, b"q");
            let mine = TcpListener::bind("localhost:0").await?;
            assert!(mine.local_addr()?.ip().is_loopback());
            let err = TcpStream::connect(("nowhere", 1)).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
            assert!(err.to_string().contains("\"nowhere\""), "{err}");
            let addrs = hatchery::net::SystemResolver;
            let found = hatchery::net::Resolve::resolve(&addrs, "db", 1).await?;
            assert_eq!(found, [std::net::SocketAddr::new(db.addr(), 1)]);
            Ok::<_, io::Error>(())
        })
        .unwrap();
}

/// Z3: what the simulated network cannot hold is refused clearly: a socket of the
/// system (`from_std`), a Unix socket; and a simulated socket has no descriptor.
#[test]
fn z3_real_sockets_are_refused() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let std_udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let errors = Sim::new(0).run(async move {
        let tcp = TcpListener::from_std(std_listener).unwrap_err();
        let udp = UdpSocket::from_std(std_udp).unwrap_err();
        let unix = hatchery::net::UnixListener::bind(
            std::env::temp_dir().join(format!("hatchery-z3-{}.sock", std::process::id())),
        )
        .unwrap_err();
        [tcp, udp, unix]
    });
    for err in errors {
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        let msg = err.to_string();
        assert!(
            msg.contains("(`hatchery-sim`) has a network of its own"),
            "{msg}"
        );
    }
    let panic = std::panic::catch_unwind(|| {
        Sim::new(0).run(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            std::os::fd::AsRawFd::as_raw_fd(&listener)
        })
    })
    .unwrap_err();
    let msg = message(&*panic);
    assert!(msg.contains("has no descriptors"), "{msg}");
}

/// Z4: TCP between hosts: bytes arrive once and in order whatever the jitter, after the
/// link's latency; a write waits when the peer's window is full and goes on when it
/// reads.
#[test]
fn z4_tcp_keeps_order_and_takes_the_links_latency() {
    let link = Link {
        latency: ms(10),
        jitter: ms(30),
        ..Link::default()
    };
    for seed in 0..10 {
        Sim::new(seed)
            .link(link)
            .run(async {
                let net = hatchery_sim::net();
                net.host("sink", || async {
                    let listener = TcpListener::bind("0.0.0.0:1").await?;
                    let (mut conn, _) = listener.accept().await?;
                    // Reads slowly: the writer fills the window and waits.
                    sleep(Duration::from_secs(1)).await;
                    let mut all = Vec::new();
                    let mut buf = [0; 4096];
                    loop {
                        match conn.read(&mut buf).await? {
                            0 => break,
                            n => all.extend_from_slice(&buf[..n]),
                        }
                    }
                    let expected: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
                    assert!(all == expected, "bytes out of order or lost");
                    conn.write_all(b"ok").await
                });
                let start = hatchery::now();
                let mut stream = TcpStream::connect(("sink", 1)).await?;
                let rtt = hatchery::now() - start;
                assert!(rtt >= ms(20) && rtt <= ms(80), "seed {seed}: {rtt:?}");
                let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
                for chunk in data.chunks(1000) {
                    stream.write_all(chunk).await?;
                }
                // The window held the writer until the sink read.
                assert!(hatchery::now() - start >= Duration::from_secs(1));
                stream.shutdown().await?;
                let mut ok = [0; 2];
                stream.read_exact(&mut ok).await?;
                assert_eq!(&ok, b"ok");
                Ok::<_, io::Error>(())
            })
            .unwrap();
    }
}

/// Z4: the errors of the system's TCP: refused where nothing listens, a port taken, an
/// address of another host, a reset when a peer closes with data unread, a broken pipe
/// after a shutdown.
#[test]
fn z4_tcp_errors_are_the_systems() {
    Sim::new(2)
        .run(async {
            let net = hatchery_sim::net();
            net.host("other", std::future::pending::<()>);
            let refused = TcpStream::connect(("other", 80)).await.unwrap_err();
            assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
            let listener = TcpListener::bind("0.0.0.0:80").await?;
            let taken = TcpListener::bind("127.0.0.1:80").await.unwrap_err();
            assert_eq!(taken.kind(), io::ErrorKind::AddrInUse);
            let theirs = net.lookup("other").addr();
            let not_mine = TcpListener::bind((theirs, 81)).await.unwrap_err();
            assert_eq!(not_mine.kind(), io::ErrorKind::AddrNotAvailable);
            let unreachable = TcpStream::connect("203.0.113.9:80").await.unwrap_err();
            assert_eq!(unreachable.kind(), io::ErrorKind::HostUnreachable);

            let mut client = TcpStream::connect("127.0.0.1:80").await?;
            let (server, _) = listener.accept().await?;
            client.write_all(b"unread").await?;
            sleep(ms(10)).await;
            drop(server); // with data unread: a reset
            let err = client.read(&mut [0; 8]).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);

            let mut client = TcpStream::connect("127.0.0.1:80").await?;
            let (mut server, _) = listener.accept().await?;
            client.shutdown().await?;
            let err = client.write_all(b"x").await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
            assert_eq!(server.read(&mut [0; 8]).await?, 0);
            drop(listener);
            let gone = TcpStream::connect("127.0.0.1:80").await.unwrap_err();
            assert_eq!(gone.kind(), io::ErrorKind::ConnectionRefused);
            Ok::<_, io::Error>(())
        })
        .unwrap();
}

/// Z5: a partition: TCP hears nothing (a read waits, a connect waits), and what was sent
/// arrives once it heals; datagrams sent across it are lost.
#[test]
fn z5_a_partition_holds_tcp_and_loses_datagrams() {
    Sim::new(5)
        .run(async {
            let net = hatchery_sim::net();
            net.host("server", || echo_server(7));
            net.host("udp", || udp_echo(9));
            let mut stream = TcpStream::connect(("server", 7)).await?;
            net.partition("main", "server");
            stream.write_all(b"held").await?;
            let mut buf = [0; 4];
            assert!(
                move_on_after(Duration::from_secs(60), stream.read_exact(&mut buf))
                    .await
                    .is_none()
            );
            let connect = move_on_after(Duration::from_secs(60), TcpStream::connect(("server", 7)));
            assert!(connect.await.is_none(), "no answer across a partition");
            net.heal("main", "server");
            let healed = hatchery::now();
            let mut buf = [0; 4];
            stream.read_exact(&mut buf).await?;
            assert_eq!(&buf, b"held", "sent during the partition, arrived after it");
            assert!(hatchery::now() - healed < ms(10));

            let socket = UdpSocket::bind("0.0.0.0:0").await?;
            socket.connect(("udp", 9)).await?;
            net.partition("main", "udp");
            socket.send(b"lost").await?;
            net.heal("main", "udp");
            let mut buf = [0; 8];
            assert!(
                move_on_after(Duration::from_secs(1), socket.recv(&mut buf))
                    .await
                    .is_none(),
                "a datagram across a partition is lost"
            );
            socket.send(b"found").await?;
            let n = socket.recv(&mut buf).await?;
            assert_eq!(&buf[..n], b"found");
            Ok::<_, io::Error>(())
        })
        .unwrap();
}

/// Z5: a partition silences resets too: a peer that closes with data unread during a
/// partition resets the other side only once the partition heals (the reset is a message
/// of the link, as any other).
#[test]
fn z5_a_reset_waits_out_the_partition() {
    for seed in 0..10 {
        Sim::new(seed)
            .run(async {
                let net = hatchery_sim::net();
                net.host("server", || async {
                    let listener = TcpListener::bind("0.0.0.0:7").await?;
                    let (conn, _) = listener.accept().await?;
                    sleep(ms(100)).await;
                    drop(conn); // with the client's bytes unread: a reset
                    std::future::pending::<io::Result<()>>().await
                });
                let mut stream = TcpStream::connect(("server", 7)).await?;
                stream.write_all(b"unread").await?;
                sleep(ms(50)).await;
                net.partition("main", "server");
                let mut buf = [0; 4];
                let silent = move_on_after(Duration::from_secs(5), stream.read(&mut buf)).await;
                assert!(silent.is_none(), "nothing crosses a partition: {silent:?}");
                net.heal("main", "server");
                let healed = hatchery::now();
                let err = stream.read(&mut buf).await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
                assert!(
                    hatchery::now() - healed <= ms(2),
                    "a link's delay after the heal"
                );
                Ok::<_, io::Error>(())
            })
            .unwrap();
    }
}

/// Z6: a crashed host sends nothing more: what it wrote into a partition, and had not
/// delivered when it crashed, is gone with it, and does not arrive when the partition
/// heals.
#[test]
fn z6_a_crashed_host_sends_nothing_more() {
    for seed in 0..10 {
        Sim::new(seed)
            .run(async {
                let net = hatchery_sim::net();
                let write = Arc::new(hatchery::sync::Event::new());
                let w = write.clone();
                let server = net.host("server", move || {
                    let w = w.clone();
                    async move {
                        let listener = TcpListener::bind("0.0.0.0:7").await?;
                        let (mut conn, _) = listener.accept().await?;
                        w.wait().await;
                        conn.write_all(b"from the dead").await?;
                        std::future::pending::<io::Result<()>>().await
                    }
                });
                let mut stream = TcpStream::connect(("server", 7)).await?;
                net.partition("main", "server");
                write.set();
                sleep(ms(10)).await; // written into the partition
                server.crash();
                net.heal("main", "server");
                let mut buf = [0; 13];
                let heard = move_on_after(Duration::from_secs(5), stream.read(&mut buf)).await;
                assert!(
                    heard.is_none(),
                    "a dead host retransmits nothing: {heard:?}"
                );
                Ok::<_, io::Error>(())
            })
            .unwrap();
    }
}

/// Z8: a hold keeps every message between two hosts, TCP and datagrams alike, and the
/// release sends them on: none is lost (a partition would lose the datagrams).
#[test]
fn z8_a_hold_keeps_messages_until_released() {
    for seed in 0..10 {
        Sim::new(seed)
            .run(async {
                let net = hatchery_sim::net();
                net.host("server", || echo_server(7));
                net.host("udp", || udp_echo(9));
                let mut stream = TcpStream::connect(("server", 7)).await?;
                let socket = UdpSocket::bind("0.0.0.0:0").await?;
                socket.connect(("udp", 9)).await?;
                net.hold("main", "server");
                net.hold("main", "udp");
                stream.write_all(b"tcp").await?;
                for i in 0..5u8 {
                    socket.send(&[i]).await?;
                }
                let mut buf = [0; 3];
                let held = move_on_after(Duration::from_secs(10), stream.read_exact(&mut buf));
                assert!(held.await.is_none(), "held: nothing comes back");
                net.release("main", "server");
                net.release("main", "udp");
                stream.read_exact(&mut buf).await?;
                assert_eq!(&buf, b"tcp");
                let mut got = Vec::new();
                for _ in 0..5 {
                    let mut one = [0; 1];
                    socket.recv(&mut one).await?;
                    got.push(one[0]);
                }
                got.sort_unstable();
                assert_eq!(got, [0, 1, 2, 3, 4], "every datagram, once");
                Ok::<_, io::Error>(())
            })
            .unwrap();
    }
}

/// Z8: a one-way partition cuts one direction only: the client's bytes wait, the
/// server's reach it; healed, the client's arrive.
#[test]
fn z8_a_oneway_partition_cuts_one_direction() {
    Sim::new(2)
        .run(async {
            let net = hatchery_sim::net();
            net.host("server", || async {
                let listener = TcpListener::bind("0.0.0.0:7").await?;
                let (mut conn, _) = listener.accept().await?;
                conn.write_all(b"hi").await?;
                let mut buf = [0; 3];
                conn.read_exact(&mut buf).await?;
                conn.write_all(&buf).await?;
                std::future::pending::<io::Result<()>>().await
            });
            let mut stream = TcpStream::connect(("server", 7)).await?;
            net.partition_oneway("main", "server");
            stream.write_all(b"abc").await?;
            let mut hi = [0; 2];
            stream.read_exact(&mut hi).await?; // the other way goes
            assert_eq!(&hi, b"hi");
            let mut back = [0; 3];
            let cut = move_on_after(Duration::from_secs(10), stream.read_exact(&mut back));
            assert!(cut.await.is_none(), "the client's bytes wait");
            net.heal_oneway("main", "server");
            stream.read_exact(&mut back).await?;
            assert_eq!(&back, b"abc");
            Ok::<_, io::Error>(())
        })
        .unwrap();
}

/// Z9: a paused host's tasks do not run, while its network goes on: a request to it
/// waits (its bytes wait in its socket), and is answered once it resumes; a pause is not
/// a crash (nothing is lost).
#[test]
fn z9_a_paused_host_answers_once_resumed() {
    for seed in 0..10 {
        Sim::new(seed)
            .run(async {
                let net = hatchery_sim::net();
                let server = net.host("server", || echo_server(7));
                let mut stream = TcpStream::connect(("server", 7)).await?;
                assert_eq!(round_trip(&mut stream, b"a").await?, b"a");
                server.pause();
                assert!(server.is_paused() && server.is_up());
                let frozen = move_on_after(Duration::from_secs(30), round_trip(&mut stream, b"b"));
                assert!(frozen.await.is_none(), "a paused host answers nothing");
                server.resume();
                let resumed = hatchery::now();
                let mut buf = [0; 1];
                stream.read_exact(&mut buf).await?; // the cut round trip's answer
                assert_eq!(&buf, b"b");
                assert!(hatchery::now() - resumed < ms(5));
                assert_eq!(round_trip(&mut stream, b"c").await?, b"c");
                Ok::<_, io::Error>(())
            })
            .unwrap();
    }
}

/// Z10: random faults overlap: a crash strikes during a partition, and a partition
/// starts during a crash, under some seeds of a few.
#[test]
fn z10_random_faults_overlap() {
    let (mut crash_in_partition, mut partition_in_crash) = (false, false);
    for seed in 0..20 {
        let (_, trace) = Sim::new(seed).record_events(true).run_traced(async {
            let net = hatchery_sim::net();
            net.host("server", || echo_server(7));
            let faults = Faults::between(["main", "server"])
                .only()
                .partitions(1)
                .crashes(1)
                .every(ms(100)..ms(300))
                .lasting(ms(200)..ms(1000));
            move_on_after(Duration::from_secs(10), net.random_faults(faults)).await;
        });
        let (mut partitioned, mut down) = (false, false);
        for event in trace.events() {
            match *event {
                Event::Partition(..) => {
                    partition_in_crash |= down;
                    partitioned = true;
                }
                Event::Heal(..) => partitioned = false,
                Event::Crash(_) => {
                    crash_in_partition |= partitioned;
                    down = true;
                }
                Event::Restart(_) => down = false,
                _ => {}
            }
        }
        assert!(!partitioned && !down, "seed {seed}: repaired when dropped");
    }
    assert!(crash_in_partition, "a crash during a partition");
    assert!(partition_in_crash, "a partition during a crash");
}

/// Z6: a crash drops the host's tasks where they stand (no cleanup runs, shielded or
/// not), its sockets go silently (the peer's read waits), and after a restart the host
/// runs again and the peer's next segment meets a reset.
#[test]
fn z6_a_crash_drops_the_hosts_tasks_and_a_restart_resets_its_peers() {
    Sim::new(6)
        .run(async {
            let net = hatchery_sim::net();
            let starts = Arc::new(AtomicU32::new(0));
            let cleanups = Arc::new(AtomicU32::new(0));
            let ticks = Arc::new(AtomicU32::new(0));
            let (s, c, t) = (starts.clone(), cleanups.clone(), ticks.clone());
            let server = net.host("server", move || {
                let (c, t) = (c.clone(), t.clone());
                s.fetch_add(1, Ordering::SeqCst);
                async move {
                    nursery(|n| async move {
                        n.spawn(async move {
                            while t.fetch_add(1, Ordering::SeqCst) < u32::MAX {
                                sleep(ms(10)).await;
                            }
                            Ok(())
                        });
                        hatchery::finally(echo_server(7), async move {
                            c.fetch_add(1, Ordering::SeqCst);
                        })
                        .await
                    })
                    .await
                    .map_err(io::Error::other)
                }
            });
            let mut stream = TcpStream::connect(("server", 7)).await?;
            assert_eq!(round_trip(&mut stream, b"a").await?, b"a");
            server.crash();
            let ticked = ticks.load(Ordering::SeqCst);
            stream.write_all(b"b").await?; // taken: TCP does not know yet
            let mut buf = [0; 1];
            let silence = move_on_after(Duration::from_secs(10), stream.read_exact(&mut buf)).await;
            assert!(silence.is_none(), "a crashed peer is silent");
            assert_eq!(ticks.load(Ordering::SeqCst), ticked, "its tasks are gone");
            assert_eq!(
                cleanups.load(Ordering::SeqCst),
                0,
                "no cleanup runs in a crash"
            );
            let refused = move_on_after(Duration::from_secs(1), TcpStream::connect(("server", 7)));
            assert!(
                refused.await.is_none(),
                "a host that is down does not answer"
            );
            server.restart();
            let err = stream.read_exact(&mut buf).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
            assert_eq!(starts.load(Ordering::SeqCst), 2);
            let mut again = TcpStream::connect(("server", 7)).await?;
            assert_eq!(round_trip(&mut again, b"c").await?, b"c");
            assert!(ticks.load(Ordering::SeqCst) > ticked);
            Ok::<_, io::Error>(())
        })
        .unwrap();
}

/// Z6: a reset between two hosts reaches both ends at once, waiting or not.
#[test]
fn z6_a_reset_reaches_both_ends() {
    Sim::new(0)
        .run(async {
            let net = hatchery_sim::net();
            net.host("server", || echo_server(7));
            let mut stream = TcpStream::connect(("server", 7)).await?;
            assert_eq!(round_trip(&mut stream, b"1").await?, b"1");
            let reader = async {
                let mut buf = [0; 1];
                stream.read(&mut buf).await
            };
            let (read, ()) = hatchery::join!(Polled: reader, async {
                sleep(ms(5)).await;
                net.reset("server", "main");
            });
            assert_eq!(read.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
            Ok::<_, io::Error>(())
        })
        .unwrap();
}

/// Counts what one socket of `main` receives of `count` datagrams (a number each) sent
/// by a host over `link`.
fn datagrams(seed: u64, link: Link, count: u32) -> Vec<u32> {
    Sim::new(seed).run(async move {
        let net = hatchery_sim::net();
        let socket = UdpSocket::bind("0.0.0.0:9").await.unwrap();
        net.host("sender", move || async move {
            let socket = UdpSocket::bind("0.0.0.0:0").await?;
            for i in 0..count {
                socket
                    .send_to(&i.to_le_bytes(), "198.18.0.1:9".parse().unwrap())
                    .await?;
                sleep(ms(1)).await;
            }
            std::future::pending::<io::Result<()>>().await
        });
        net.set_link("main", "sender", link);
        let mut got = Vec::new();
        let mut buf = [0; 4];
        while let Some(Ok((4, _))) =
            move_on_after(Duration::from_secs(1), socket.recv_from(&mut buf)).await
        {
            got.push(u32::from_le_bytes(buf));
        }
        got
    })
}

/// Z7: a link's loss, duplication and reordering are drawn for each datagram (from the
/// seed); a link without them delivers every datagram once, in order.
#[test]
fn z7_links_lose_duplicate_and_reorder_datagrams() {
    let steady = Link {
        jitter: Duration::ZERO,
        ..Link::default()
    };
    assert_eq!(datagrams(0, steady, 500), (0..500).collect::<Vec<_>>());

    let lossy = datagrams(
        0,
        Link {
            loss: 0.3,
            ..steady
        },
        1000,
    );
    assert!((600..800).contains(&lossy.len()), "{} of 1000", lossy.len());
    assert!(lossy.windows(2).all(|w| w[0] < w[1]), "lost, not reordered");

    let doubled = datagrams(
        0,
        Link {
            duplicate: 0.3,
            ..steady
        },
        1000,
    );
    assert!((1200..1400).contains(&doubled.len()), "{}", doubled.len());

    let shuffled = datagrams(
        0,
        Link {
            reorder: 0.3,
            ..steady
        },
        1000,
    );
    assert_eq!(shuffled.len(), 1000);
    let overtaken = shuffled.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(overtaken > 50, "{overtaken} overtaken");
    let mut sorted = shuffled.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>(), "each once");

    assert_eq!(
        datagrams(
            9,
            Link {
                loss: 0.3,
                ..steady
            },
            200
        ),
        datagrams(
            9,
            Link {
                loss: 0.3,
                ..steady
            },
            200
        ),
        "the same seed loses the same datagrams"
    );
}

/// Z6: a host whose future fails fails the run, naming it.
#[test]
fn z6_a_failing_host_fails_the_run() {
    let panic = std::panic::catch_unwind(|| {
        Sim::new(0).run(async {
            hatchery_sim::net().host("broken", || async {
                Err::<(), _>(io::Error::other("no config"))
            });
            sleep(ms(1)).await;
        })
    })
    .unwrap_err();
    let msg = message(&*panic);
    assert!(
        msg.contains("host `broken` failed") && msg.contains("no config"),
        "{msg}"
    );
}

/// Z7: a datagram to a port where nothing receives is lost, and the host's answer ("port
/// unreachable") fails a connected sender's next receive, as the system's does; an
/// unconnected sender hears nothing.
#[test]
fn z7_a_closed_port_answers_a_connected_sender() {
    Sim::new(0)
        .run(async {
            let net = hatchery_sim::net();
            net.host("quiet", std::future::pending::<()>);
            let connected = UdpSocket::bind("0.0.0.0:0").await?;
            connected.connect(("quiet", 9)).await?;
            connected.send(b"anyone?").await?;
            let err = connected.recv(&mut [0; 8]).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
            let loose = UdpSocket::bind("0.0.0.0:0").await?;
            let quiet = std::net::SocketAddr::new(net.lookup("quiet").addr(), 9);
            loose.send_to(b"anyone?", quiet).await?;
            let heard = move_on_after(Duration::from_secs(1), loose.recv_from(&mut [0; 8])).await;
            assert!(heard.is_none(), "an unconnected socket gets no error");
            Ok::<_, io::Error>(())
        })
        .unwrap();
}

/// Z4: a connection closed at both ends is forgotten once its last segment has arrived
/// (a long run does not grow); one end still open keeps it.
#[test]
fn z4_closed_connections_are_forgotten() {
    Sim::new(4)
        .run(async {
            let net = hatchery_sim::net();
            net.host("server", || echo_server(7));
            for _ in 0..100 {
                let mut stream = TcpStream::connect(("server", 7)).await?;
                assert_eq!(round_trip(&mut stream, b"x").await?, b"x");
            }
            sleep(ms(100)).await;
            assert_eq!(net.connections(), 0, "every one closed at both ends");
            let kept = TcpStream::connect(("server", 7)).await?;
            sleep(ms(100)).await;
            assert_eq!(net.connections(), 1);
            drop(kept);
            sleep(ms(100)).await;
            assert_eq!(net.connections(), 0);
            Ok::<_, io::Error>(())
        })
        .unwrap();
}

/// Prints the trace hashes of [`three_hosts`] for `z1_another_process_replays_the_network`.
#[test]
#[ignore = "run by z1_another_process_replays_the_network, in a process of its own"]
fn print_network_trace_hashes() {
    for seed in 0..3 {
        let (_, trace) = Sim::new(seed).run_traced(three_hosts());
        println!("trace {seed} {:016x}", trace.hash());
    }
}

/// Z1: another process (other addresses, another heap, another start of the real clock)
/// replays the same network runs: nothing of the process leaks into a simulated network.
#[test]
fn z1_another_process_replays_the_network() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "sim::print_network_trace_hashes",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for seed in 0..3 {
        let (_, trace) = Sim::new(seed).run_traced(three_hosts());
        let line = format!("trace {seed} {:016x}", trace.hash());
        assert!(stdout.contains(&line), "{line} not in:\n{stdout}");
    }
}
