//! Happy eyeballs (RFC 8305): the order and timing of attempts and the cleanup of the
//! losers, with fake attempts on virtual time; then the TCP connector with a fake
//! resolver on real loopback sockets.

use crate::common;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Blackhole, V6};
use hatchery::net::{happy_eyeballs, ConnectError, TcpConnector, TcpListener};
use hatchery::testing::elapsed;
use hatchery::{move_on_after, sleep};
use hatchery_tests::{ms, Counter, DropGuard, HOUR};

const DELAY: Duration = Duration::from_millis(250);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// What a fake attempt does.
#[derive(Clone, Copy)]
enum Plan {
    /// Succeeds after this long.
    Connect(Duration),
    /// Fails after this long, with this kind.
    Fail(Duration, io::ErrorKind),
    /// Never finishes.
    Hang,
}

/// A fake connection: counts its drop.
struct Conn {
    addr: SocketAddr,
    _guard: DropGuard,
}

/// Fake attempts: each records its address and start time, follows its plan, and
/// counts the drop of its future (cancelled or done) in `ended`.
#[derive(Clone, Default)]
struct Fake {
    starts: Arc<Mutex<Vec<(SocketAddr, Duration)>>>,
    ended: Counter,
    conns_made: Counter,
    conns_dropped: Counter,
}

impl Fake {
    fn attempt(
        &self,
        plans: Vec<(SocketAddr, Plan)>,
    ) -> impl FnMut(
        SocketAddr,
    )
        -> std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<Conn>> + Send>> {
        let fake = self.clone();
        move |a| {
            let plan = plans
                .iter()
                .find(|(p, _)| *p == a)
                .expect("a planned address")
                .1;
            let fake = fake.clone();
            Box::pin(async move {
                fake.starts.lock().unwrap().push((a, elapsed()));
                let _ended = fake.ended.guard();
                match plan {
                    Plan::Connect(after) => {
                        sleep(after).await;
                        fake.conns_made.incr();
                        Ok(Conn {
                            addr: a,
                            _guard: fake.conns_dropped.guard(),
                        })
                    }
                    Plan::Fail(after, kind) => {
                        sleep(after).await;
                        Err(io::Error::new(kind, format!("{a} failed")))
                    }
                    Plan::Hang => std::future::pending().await,
                }
            })
        }
    }

    fn starts(&self) -> Vec<(SocketAddr, Duration)> {
        self.starts.lock().unwrap().clone()
    }
}

#[hatchery::test(virtual_time)]
async fn attempts_start_a_delay_apart_with_the_families_interleaved() {
    let (v6a, v6b, v6c) = (addr("[::1]:1"), addr("[::1]:2"), addr("[::1]:3"));
    let (v4a, v4b) = (addr("127.0.0.1:1"), addr("127.0.0.1:2"));
    let fake = Fake::default();
    let plans = vec![
        (v6a, Plan::Hang),
        (v6b, Plan::Hang),
        (v6c, Plan::Connect(Duration::ZERO)),
        (v4a, Plan::Hang),
        (v4b, Plan::Hang),
    ];
    let conn = happy_eyeballs([v6a, v6b, v6c, v4a, v4b], DELAY, fake.attempt(plans))
        .await
        .unwrap();
    assert_eq!(conn.addr, v6c);
    assert_eq!(
        fake.starts(),
        [
            (v6a, ms(0)),
            (v4a, ms(250)),
            (v6b, ms(500)),
            (v4b, ms(750)),
            (v6c, ms(1000)),
        ]
    );
    assert_eq!(elapsed(), ms(1000));
    // Every attempt has ended when it returns: the four losers were cancelled.
    assert_eq!(fake.ended.get(), 5);
}

#[hatchery::test(virtual_time)]
async fn a_failed_attempt_starts_the_next_at_once() {
    let (a, b, c) = (
        addr("127.0.0.1:1"),
        addr("127.0.0.1:2"),
        addr("127.0.0.1:3"),
    );
    let fake = Fake::default();
    let plans = vec![
        (a, Plan::Fail(ms(100), io::ErrorKind::ConnectionRefused)),
        (b, Plan::Fail(ms(0), io::ErrorKind::ConnectionRefused)),
        (c, Plan::Connect(ms(300))),
    ];
    let conn = happy_eyeballs([a, b, c], DELAY, fake.attempt(plans))
        .await
        .unwrap();
    assert_eq!(conn.addr, c);
    assert_eq!(fake.starts(), [(a, ms(0)), (b, ms(100)), (c, ms(100))]);
    assert_eq!(elapsed(), ms(400));
}

#[hatchery::test(virtual_time)]
async fn the_first_success_wins_and_the_attempts_under_way_are_cancelled() {
    let (a, b, c) = (addr("[::1]:1"), addr("127.0.0.1:1"), addr("[::1]:2"));
    let fake = Fake::default();
    let plans = vec![
        (a, Plan::Connect(ms(600))), // would connect at 600
        (b, Plan::Connect(ms(100))), // started at 250: connects at 350, and wins
        (c, Plan::Hang),             // started at 500
    ];
    let conn = happy_eyeballs([a, b, c], DELAY, fake.attempt(plans))
        .await
        .unwrap();
    assert_eq!(conn.addr, b);
    assert_eq!(elapsed(), ms(350));
    assert_eq!(fake.starts(), [(a, ms(0)), (b, ms(250))]); // c never started
    assert_eq!(fake.ended.get(), 2);
    assert_eq!(fake.conns_dropped.get(), 0); // a was cancelled before it connected
}

/// Two attempts due to connect at the same instant: whichever order the executor runs
/// them in, exactly one connection is returned, and any other that was made is closed
/// (dropped) by the time `happy_eyeballs` returns.
#[hatchery::test(virtual_time)]
async fn a_second_success_at_the_same_time_is_closed() {
    let (a, b) = (addr("127.0.0.1:1"), addr("[::1]:1"));
    let fake = Fake::default();
    let plans = vec![(a, Plan::Connect(ms(250))), (b, Plan::Connect(ms(0)))];
    let conn = happy_eyeballs([a, b], DELAY, fake.attempt(plans))
        .await
        .unwrap();
    assert_eq!(elapsed(), ms(250));
    assert_eq!(fake.ended.get(), fake.starts().len());
    assert_eq!(fake.conns_made.get() - fake.conns_dropped.get(), 1);
    drop(conn);
    assert_eq!(fake.conns_made.get(), fake.conns_dropped.get());
}

#[hatchery::test(virtual_time)]
async fn when_every_attempt_fails_every_error_is_reported_in_start_order() {
    let (a, b, c) = (addr("[::1]:1"), addr("127.0.0.1:1"), addr("[::1]:2"));
    let fake = Fake::default();
    let plans = vec![
        (a, Plan::Fail(ms(900), io::ErrorKind::TimedOut)),
        (b, Plan::Fail(ms(100), io::ErrorKind::ConnectionRefused)), // fails at 350
        (c, Plan::Fail(ms(0), io::ErrorKind::ConnectionRefused)),   // started at 350
    ];
    let err = happy_eyeballs([a, b, c], DELAY, fake.attempt(plans))
        .await
        .map(|c| c.addr)
        .unwrap_err();
    assert_eq!(elapsed(), ms(900));
    assert_eq!(err.kind(), io::ErrorKind::Other); // the kinds differ
    let failed: &ConnectError = err.get_ref().unwrap().downcast_ref().unwrap();
    let attempts: Vec<_> = failed
        .attempts()
        .iter()
        .map(|(addr, e)| (*addr, e.kind()))
        .collect();
    assert_eq!(
        attempts,
        [
            (a, io::ErrorKind::TimedOut),
            (b, io::ErrorKind::ConnectionRefused),
            (c, io::ErrorKind::ConnectionRefused),
        ]
    );
    assert_eq!(
        err.to_string(),
        "cannot connect to 3 addresses: 3 attempts failed: \
         [::1]:1: [::1]:1 failed; 127.0.0.1:1: 127.0.0.1:1 failed; [::1]:2: [::1]:2 failed"
    );
    // All of one kind: that kind.
    let plans = vec![
        (a, Plan::Fail(ms(0), io::ErrorKind::ConnectionRefused)),
        (b, Plan::Fail(ms(0), io::ErrorKind::ConnectionRefused)),
    ];
    let err = happy_eyeballs([a, b], DELAY, fake.attempt(plans))
        .await
        .map(|c| c.addr)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

#[hatchery::test(virtual_time)]
async fn a_cancelled_caller_cancels_every_attempt() {
    let addrs = [addr("[::1]:1"), addr("127.0.0.1:1"), addr("[::1]:2")];
    let fake = Fake::default();
    let plans = addrs.iter().map(|a| (*a, Plan::Hang)).collect();
    let out = move_on_after(ms(600), happy_eyeballs(addrs, DELAY, fake.attempt(plans))).await;
    assert!(out.is_none());
    assert_eq!(fake.starts().len(), 3);
    assert_eq!(fake.ended.get(), 3);
    assert_eq!(elapsed(), ms(600));
}

#[hatchery::test]
async fn no_address_is_an_error() {
    let err = happy_eyeballs(Vec::<SocketAddr>::new(), DELAY, |_| async {
        Ok::<(), io::Error>(())
    })
    .await
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

// ----- the TCP connector, on real loopback sockets -----

/// The resolver says `[::1]` (hanging) first, then 127.0.0.1 (listening): the IPv4
/// attempt starts after the delay and wins, and the IPv6 one is closed.
#[hatchery::test]
async fn the_connector_races_resolved_addresses_and_closes_the_loser() {
    let hole = Blackhole::new(V6);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let answer = vec![hole.addr(), listener.local_addr().unwrap()];
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    let connector =
        TcpConnector::new()
            .happy_eyeballs_delay(ms(100))
            .resolver(move |host: &str, port: u16| {
                log.lock().unwrap().push((host.to_owned(), port));
                let answer = answer.clone();
                async move { Ok(answer) }
            });
    let started = Instant::now();
    let stream = connector.connect(("db.example", 5432)).await.unwrap();
    assert!(started.elapsed() >= ms(100));
    assert_eq!(stream.peer_addr().unwrap(), listener.local_addr().unwrap());
    assert_eq!(*asked.lock().unwrap(), [("db.example".to_owned(), 5432)]);
    hole.assert_no_attempt_left(started).await;
}

/// A refused attempt does not wait for the delay: the next starts at once.
#[hatchery::test]
async fn the_connector_moves_on_at_once_from_a_refused_address() {
    let refused = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let listener = TcpListener::bind("[::1]:0").await.unwrap();
    let answer = vec![refused, listener.local_addr().unwrap()];
    let connector =
        TcpConnector::new()
            .happy_eyeballs_delay(HOUR)
            .resolver(move |_: &str, _: u16| {
                let answer = answer.clone();
                async move { Ok(answer) }
            });
    let stream = hatchery::fail_after(Duration::from_secs(10), connector.connect(("x", 1)))
        .await
        .expect("waited for the delay after a refused attempt")
        .unwrap();
    assert_eq!(stream.peer_addr().unwrap(), listener.local_addr().unwrap());
}

/// The system resolver: "localhost" (from the hosts file) reaches a listener on
/// 127.0.0.1 whichever of ::1 and 127.0.0.1 it lists first.
#[hatchery::test]
async fn localhost_through_the_system_resolver() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stream = hatchery::fail_after(
        Duration::from_secs(10),
        hatchery::net::TcpStream::connect(("localhost", port)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(stream.peer_addr().unwrap(), listener.local_addr().unwrap());
    let stream = hatchery::net::TcpStream::connect(format!("localhost:{port}"))
        .await
        .unwrap();
    assert_eq!(stream.peer_addr().unwrap().port(), port);
}
