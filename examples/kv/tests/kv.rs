//! The key-value library on every backend (`#[hatchery::test(sim(seeds = ..))]`): on
//! tokio and smol over loopback sockets on real time (virtual time does not see the
//! network), and on the simulator over its simulated network, under many seeds. One body
//! for all: times are read on hatchery's clock (`hatchery::now`), the runtime's.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hatchery::net::{TcpListener, TcpStream};
use hatchery::{err_into, fail_after, move_on_after, now, nursery, sleep, Backoff};
use hatchery_kv_example::{Client, Config, Error, Server, Stopped};

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Quick retries, without jitter.
fn config() -> Config {
    Config {
        pool_size: 4,
        request_timeout: Duration::from_secs(5),
        attempts: 3,
        backoff: Backoff::new().with_min_delay(ms(10)).without_jitter(),
        ..Config::default()
    }
}

/// Waits until the server has `n` requests in hand (polled: a test's view from outside),
/// for at most 10 seconds.
async fn until_in_flight(server: &Server, n: usize) {
    fail_after(Duration::from_secs(10), async {
        while server.stats().in_flight < n {
            sleep(ms(1)).await;
        }
    })
    .await
    .expect("the requests reach the server");
}

/// Runs a server on a loopback port, and `f` with it and a client of it; then stops the
/// server (with a grace of `grace`) and returns how it stopped, with `f`'s output.
async fn with_server<T, F, Fut>(config: Config, grace: Duration, f: F) -> (T, Stopped)
where
    F: FnOnce(Arc<Server>, Client) -> Fut,
    Fut: Future<Output = T>,
{
    let server = Server::new();
    nursery(|n| async move {
        let s = server.clone();
        let (addr, running) = n
            .start_with_handle(|ready| {
                err_into(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await?;
                    ready.started(listener.local_addr()?);
                    s.run(listener, grace).await
                })
            })
            .await
            .expect("the server starts");
        let client = Client::new(addr, config);
        let out = f(server.clone(), client.clone()).await;
        client.close().await;
        server.shutdown();
        Ok::<_, Error>((out, running.join().await.expect("the server stops")))
    })
    .await
    .expect("no error")
}

/// Set, get and delete, over one connection reused throughout.
#[hatchery::test(sim(seeds = 20))]
async fn set_get_del() {
    let ((), stopped) = with_server(config(), ms(500), |server, client| async move {
        assert_eq!(client.get("a").await.unwrap(), None);
        client.set("a", "one two").await.unwrap();
        assert_eq!(client.get("a").await.unwrap().as_deref(), Some("one two"));
        assert!(client.del("a").await.unwrap());
        assert!(!client.del("a").await.unwrap());
        assert_eq!(client.stats().connections, 1);
        assert_eq!(server.stats().requests, 5);
    })
    .await;
    assert_eq!(stopped, Stopped::Gracefully);
}

/// A request leaves the server's `in_flight` count before its answer is written: a
/// client that has read its answer never finds it counted. The race needs the server's
/// task to run beside the client's, as it can on tokio's multi-threaded runtime and on
/// smol: not on the current-thread runtime or the simulator, which run one task at a
/// time (and where the request is uncounted before its task yields after the write).
#[hatchery::test(backends(tokio_multi, smol))]
async fn an_answered_request_is_no_longer_in_flight() {
    let ((), stopped) = with_server(config(), ms(500), |server, client| async move {
        for i in 0..2000 {
            client.set("k", &i.to_string()).await.unwrap();
            assert_eq!(server.stats().in_flight, 0, "after answer {i}");
        }
    })
    .await;
    assert_eq!(stopped, Stopped::Gracefully);
}

/// The pool is bounded: 32 tasks at once, each with a request that takes the server
/// 20 ms, never have more than `pool_size` connections open (the peak the server saw),
/// and take 32 / 4 rounds of 20 ms at least; all are answered.
#[hatchery::test(sim(seeds = 20))]
async fn the_pool_bounds_the_connections() {
    let ((), _) = with_server(config(), ms(500), |server, client| async move {
        let c = client.clone();
        let start = now();
        nursery(|n| async move {
            for i in 0..32 {
                let client = c.clone();
                n.spawn(async move {
                    let key = format!("k{i}");
                    client.wait(ms(20)).await?;
                    client.set(&key, &i.to_string()).await?;
                    assert_eq!(client.get(&key).await?, Some(i.to_string()));
                    Ok::<_, Error>(())
                });
            }
            Ok(())
        })
        .await
        .unwrap();
        assert!((now() - start) >= ms(32 / 4 * 20), "{:?}", (now() - start));
        assert!(server.stats().most_open <= 4, "{:?}", server.stats());
        assert!(client.stats().connections <= 4, "{:?}", client.stats());
        assert_eq!(server.stats().requests, 32 * 3);
    })
    .await;
}

/// A request that the caller's deadline cuts in the middle of its exchange never
/// returns (the caller's scope does), and its connection is closed rather than lent to
/// the next request, which would read the cut request's answer.
#[hatchery::test(sim(seeds = 20))]
async fn a_cut_exchange_does_not_poison_the_pool() {
    let ((), _) = with_server(config(), ms(500), |_server, client| async move {
        client.set("a", "1").await.unwrap();
        let cut = move_on_after(ms(20), client.wait(ms(300))).await;
        assert!(
            cut.is_none(),
            "the caller's deadline is not the library's error"
        );
        assert_eq!(client.get("a").await.unwrap().as_deref(), Some("1"));
        assert_eq!(
            client.stats().connections,
            2,
            "the cut connection was not reused"
        );
    })
    .await;
}

/// The caller's deadline reaches the server: told the time its client will wait, the
/// server stops working on the request then, rather than for the 5 s asked.
#[hatchery::test(sim(seeds = 20))]
async fn the_callers_deadline_reaches_the_server() {
    let ((), _) = with_server(config(), ms(500), |server, client| async move {
        let cut = move_on_after(ms(100), client.wait(ms(5000))).await;
        assert!(cut.is_none());
        let start = now();
        fail_after(Duration::from_secs(10), async {
            while server.stats().in_flight > 0 {
                sleep(ms(1)).await;
            }
        })
        .await
        .expect("the server gives up");
        assert!((now() - start) < ms(3000), "{:?}", (now() - start));
        assert_eq!(server.stats().expired, 1);
    })
    .await;
}

/// The library's own bound: an attempt that takes longer than `request_timeout` fails
/// with `Timeout`, after every attempt.
#[hatchery::test(sim(seeds = 20))]
async fn the_library_times_out_each_attempt() {
    let config = Config {
        request_timeout: ms(50),
        ..config()
    };
    let ((), _) = with_server(config, ms(500), |server, client| async move {
        let r = client.wait(ms(5000)).await;
        assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
        assert_eq!(client.stats().attempts, 3);
        assert_eq!(client.stats().retries, 2);
        // Each attempt told the server its bound: it gave up on all three.
        fail_after(Duration::from_secs(3), async {
            while server.stats().expired < 3 {
                sleep(ms(1)).await;
            }
        })
        .await
        .expect("the server gives up on every attempt");
    })
    .await;
}

/// Connection failures are retried with backoff, on a fresh connection: the server
/// closes two connections without answering, and the third attempt succeeds.
#[hatchery::test(sim(seeds = 20))]
async fn failed_connections_are_retried() {
    let ((), _) = with_server(config(), ms(500), |server, client| async move {
        client.set("a", "1").await.unwrap();
        server.fail_next(2);
        let start = now();
        assert_eq!(client.get("a").await.unwrap().as_deref(), Some("1"));
        assert!(
            (now() - start) >= ms(10 + 20),
            "backed off: {:?}",
            (now() - start)
        );
        assert_eq!(client.stats().retries, 2);
        assert_eq!(client.stats().connections, 3);
    })
    .await;
}

/// An answer is not retried: the server's `ERR` is the caller's error at once. (Here a
/// key of two words, which the client does not check.)
#[hatchery::test(sim(seeds = 20))]
async fn answers_are_not_retried() {
    let ((), _) = with_server(config(), ms(500), |_server, client| async move {
        let r = client.get("two words").await;
        assert!(
            matches!(&r, Err(Error::Server(m)) if m.contains("one word")),
            "{r:?}"
        );
        assert_eq!(client.stats().retries, 0);
    })
    .await;
}

/// Retries stop in time for the caller's deadline: the caller gets the library's last
/// error before its own deadline, rather than nothing.
#[hatchery::test(sim(seeds = 20))]
async fn retries_stop_before_the_callers_deadline() {
    let config = Config {
        attempts: 10,
        backoff: Backoff::new().with_min_delay(ms(400)).without_jitter(),
        ..config()
    };
    let ((), _) = with_server(config, ms(500), |server, client| async move {
        server.fail_next(usize::MAX);
        let r = move_on_after(ms(1000), client.get("a")).await;
        // Attempts at 0 and 400 ms; the next would start at 1200 ms, past the deadline.
        let r = r.expect("the library returned before the caller's deadline");
        assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
        assert_eq!(client.stats().attempts, 2);
        server.fail_next(0);
    })
    .await;
}

/// A graceful stop: the busy connection finishes its request, the idle one is closed,
/// and no new connection is accepted afterwards.
#[hatchery::test(sim(seeds = 20))]
async fn graceful_shutdown_finishes_the_request_in_hand() {
    let server = Server::new();
    let s = server.clone();
    let stopped = nursery(|n| async move {
        let (addr, running) = n
            .start_with_handle(|ready| {
                err_into(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await?;
                    ready.started(listener.local_addr()?);
                    s.run(listener, Duration::from_secs(5)).await
                })
            })
            .await?;
        let busy = Client::new(addr, config());
        let idle = Client::new(addr, config());
        idle.get("a").await?; // connected, then idle
        let request = n.spawn(err_into(async move { busy.wait(ms(100)).await }));
        until_in_flight(&server, 1).await;
        let stopping = now();
        server.shutdown();
        request.join().await.unwrap(); // answered
        let stopped = running.join().await.unwrap();
        // The idle connection was closed at once: the server did not wait the grace out.
        assert!(
            (now() - stopping) < Duration::from_secs(4),
            "{:?}",
            (now() - stopping)
        );
        assert_eq!(server.stats().in_flight, 0);
        let refused = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(
            refused.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "still accepting"
        );
        // The idle client's connection was closed by the server: its next request finds
        // it closed, retries, and is refused.
        let r = idle.get("a").await;
        assert!(
            matches!(&r, Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused),
            "{r:?}"
        );
        Ok::<_, anyhow::Error>(stopped)
    })
    .await
    .unwrap();
    assert_eq!(stopped, Stopped::Gracefully);
}

/// A request longer than the grace period is cut when it ends.
#[hatchery::test(sim(seeds = 20))]
async fn the_grace_period_ends_the_stop() {
    let ((), stopped) = with_server(config(), ms(50), |server, client| async move {
        nursery(|n| async move {
            let s = server.clone();
            n.spawn(async move {
                let start = now();
                // Cut when the grace period ends; retried, refused: the server is gone.
                let r = client.wait(ms(5000)).await;
                assert!(matches!(&r, Err(Error::Io(_))), "{r:?}");
                assert!((now() - start) < ms(4000), "{:?}", (now() - start));
                Ok::<_, Error>(())
            });
            until_in_flight(&s, 1).await;
            server.shutdown();
            Ok(())
        })
        .await
        .unwrap();
    })
    .await;
    assert_eq!(stopped, Stopped::AfterGrace);
}

/// A server that is not there: connections are refused, retried, and the error says so.
#[hatchery::test(sim(seeds = 20))]
async fn connection_refused() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }; // closed: nothing listens there now
    let client = Client::new(addr, config());
    let r = client.get("a").await;
    assert!(
        matches!(&r, Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{r:?}"
    );
    assert_eq!(client.stats().attempts, 3);
    client.close().await;
    assert!(matches!(client.get("a").await, Err(Error::Closed)));
}

/// A server opened on a log keeps its changes across restarts, on every backend (a
/// real file on tokio and smol, the simulated disk on the simulator): a change made
/// over the protocol is logged before it is acknowledged; a torn record at the log's
/// end (a crash in the middle of an append) is cut off, and the log goes on after it.
#[hatchery::test(sim(seeds = 20))]
async fn the_log_brings_changes_back_after_a_restart() {
    let dir = std::env::temp_dir().join(format!(
        "kv-log-{}-{}",
        std::process::id(),
        hatchery::testing::backend().unwrap_or("none")
    ));
    hatchery::fs::create_dir_all(&dir).await.unwrap();
    let path = dir.join("kv.log");
    let server = Server::open(&path).await.unwrap();
    server.set("a", "one").await.unwrap();
    server.set("b", "two words").await.unwrap();
    drop(server);
    let again = Server::open(&path).await.unwrap();
    assert_eq!(again.get("a").as_deref(), Some("one"));
    assert_eq!(again.get("b").as_deref(), Some("two words"));
    drop(again);
    // A torn record: a frame's header that promises more than follows.
    let mut log = hatchery::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .await
        .unwrap();
    log.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, b'S'])
        .await
        .unwrap();
    log.close().await.unwrap();
    let third = Server::open(&path).await.unwrap();
    assert_eq!(third.get("b").as_deref(), Some("two words"));
    // Over the protocol too: acknowledged means logged.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = third.clone();
    nursery(|n| async move {
        let running = n.spawn(err_into(s.clone().run(listener, ms(100))));
        let client = Client::new(addr, config());
        client.set("c", "three").await?;
        assert!(client.del("a").await?);
        client.close().await;
        s.shutdown();
        running.join().await?;
        Ok::<_, anyhow::Error>(())
    })
    .await
    .unwrap();
    drop(third);
    let fourth = Server::open(&path).await.unwrap();
    assert_eq!(fourth.get("a"), None);
    assert_eq!(fourth.get("b").as_deref(), Some("two words"));
    assert_eq!(fourth.get("c").as_deref(), Some("three"));
    hatchery::fs::remove_dir_all(&dir).await.unwrap();
}
