//! Bad input and failures give clear errors, never a hang: refused and unanswered
//! connections, names that do not resolve, invalid address strings, addresses in use,
//! writing to a closed connection (without SIGPIPE), accepting on a shut-down
//! listener, sockets whose runtime is gone, runtimes without a reactor, reads into an
//! empty buffer.

use crate::common;

use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{pair, Blackhole, V4};
use hatchery::net::{ConnectError, TcpConnector, TcpListener, TcpStream, UdpSocket, UnixStream};
use hatchery::rt::{Runtime, Sleep, Task};
use hatchery_tests::ms;

/// A port on loopback where nothing listens (one just freed).
async fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[hatchery::test]
async fn connection_refused_names_the_target() {
    let port = free_port().await;
    let err = TcpStream::connect(("127.0.0.1", port)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    let failed: &ConnectError = err.get_ref().unwrap().downcast_ref().unwrap();
    assert_eq!(
        failed.attempts()[0].1.kind(),
        io::ErrorKind::ConnectionRefused
    );
}

/// An address that never answers (its SYNs are dropped) is bounded by the enclosing
/// deadline, as every wait is; the attempt's socket is closed.
#[hatchery::test]
async fn an_unanswered_address_ends_at_the_deadline() {
    let hole = Blackhole::new(V4);
    let started = Instant::now();
    let out = hatchery::fail_after(ms(150), TcpStream::connect(hole.addr())).await;
    assert!(out.is_err(), "connected to a full backlog: {out:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    hole.assert_no_attempt_left(started).await;
}

#[hatchery::test]
async fn a_name_that_does_not_resolve_is_named() {
    let failing = TcpConnector::new().resolver(|host: &str, _port: u16| {
        let msg = format!("no such host {host} (fake)");
        async move { Err(io::Error::new(io::ErrorKind::NotFound, msg)) }
    });
    let err = failing.connect(("nowhere.example", 80)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        "cannot resolve \"nowhere.example\": no such host nowhere.example (fake)"
    );
    let empty = TcpConnector::new().resolver(|_: &str, _: u16| async { Ok(Vec::new()) });
    let err = empty.connect("empty.example:80").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        "cannot resolve \"empty.example\": no addresses"
    );
}

#[hatchery::test]
async fn invalid_address_strings_are_refused_before_anything_is_tried() {
    let asked = hatchery_tests::Counter::new();
    let a = asked.clone();
    let connector = TcpConnector::new().resolver(move |_: &str, _: u16| {
        a.incr();
        async { Ok(Vec::new()) }
    });
    for bad in [
        "localhost",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:http",
        ":80",
        "[::1:80",
        "::1]:80",
        "",
        "host name:80",
        "a/b:80",
    ] {
        let err = connector.connect(bad).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}: {err}");
        assert!(
            err.to_string()
                .starts_with(&format!("invalid socket address {bad:?}: ")),
            "{bad:?}: {err}"
        );
        let err = TcpListener::bind(bad).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}: {err}");
        let err = UdpSocket::bind(bad).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}: {err}");
    }
    assert_eq!(asked.get(), 0);
    let err = connector.connect(&[][..]).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[hatchery::test]
async fn an_address_in_use_is_named() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let err = TcpListener::bind(addr).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(
        err.to_string()
            .starts_with(&format!("cannot bind to {addr}: ")),
        "{err}"
    );
    let socket = UdpSocket::bind("[::1]:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let err = UdpSocket::bind(addr).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[hatchery::test]
async fn a_datagram_to_the_other_family_is_an_error() {
    let v4 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let err = v4
        .send_to(b"x", "[::1]:9".parse().unwrap())
        .await
        .unwrap_err();
    assert!(err.raw_os_error().is_some(), "{err:?}");
}

/// Writing to a connection the peer has closed fails (no hang, no signal).
#[hatchery::test]
async fn writing_to_a_closed_connection_fails() {
    let (mut client, server) = pair(V4).await;
    drop(server);
    let chunk = vec![0; 64 * 1024];
    let mut result = Ok(());
    for _ in 0..1000 {
        result = client.write_all(&chunk).await;
        if result.is_err() {
            break;
        }
    }
    let err = result.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ),
        "{err:?}"
    );
}

/// With SIGPIPE's default action (the process ends), as in a program that restored it
/// or a non-Rust one, writing to a closed connection is still only an error: sends use
/// MSG_NOSIGNAL. Runs in a child process, since failing would end the test binary.
#[test]
fn writing_to_a_closed_connection_raises_no_sigpipe() {
    hatchery_tests::in_child_process(
        "errors::writing_to_a_closed_connection_raises_no_sigpipe",
        "HATCHERY_TEST_SIGPIPE_CHILD",
        || {
            // SAFETY: `signal` with `SIG_DFL` only sets the signal's disposition back to
            // the default; no handler runs, and nothing else in this process uses it.
            #[allow(unsafe_code)]
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            }
            for run in [
                hatchery_tokio::run_current_thread::<Pin<Box<dyn std::future::Future<Output = ()>>>>,
                hatchery_smol::run_current_thread,
            ] {
                run(Box::pin(async {
                    let (mut client, server) = pair(V4).await;
                    drop(server);
                    let chunk = vec![0; 64 * 1024];
                    let mut failed = false;
                    for _ in 0..1000 {
                        if client.write_all(&chunk).await.is_err() {
                            failed = true;
                            break;
                        }
                    }
                    assert!(failed);
                }));
            }
        },
    );
}

#[hatchery::test]
async fn accepting_on_a_shut_down_listener_fails() {
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
    // An accept waiting when the socket is shut down is woken with the error...
    let l = listener.clone();
    let out = hatchery::nursery(|n| async move {
        let waiting = n.spawn(async move { Ok::<_, io::Error>(l.accept().await.map(drop)) });
        hatchery::sleep(ms(30)).await;
        rustix::net::shutdown(listener.as_fd(), rustix::net::Shutdown::Read).unwrap();
        let first = waiting.join().await?;
        // ...and so is a new one, at once.
        let second = listener.accept().await.map(drop);
        Ok::<_, io::Error>((first, second))
    })
    .await
    .unwrap();
    for err in [out.0.unwrap_err(), out.1.unwrap_err()] {
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("no longer listens"), "{err}");
    }
}

/// Opening a socket outside hatchery panics with the instructions, as other functions
/// that need a runtime do.
#[test]
fn a_socket_outside_a_runtime_panics_with_instructions() {
    let panic = std::panic::catch_unwind(|| {
        futures_lite::future::block_on(TcpListener::bind("127.0.0.1:0"))
    })
    .unwrap_err();
    let msg = hatchery_tests::panic_message(&*panic);
    assert!(
        msg.starts_with("hatchery: no runtime in this context"),
        "{msg}"
    );
}

/// A runtime bound without a reactor runs everything else; a socket fails with an
/// `Unsupported` error that says what is missing.
#[test]
fn a_runtime_without_a_reactor_says_so() {
    struct NoReactor(hatchery_tokio::TokioRuntime);
    impl Runtime for NoReactor {
        fn spawn(&self, task: Task) {
            self.0.spawn(task)
        }
        fn now(&self) -> Instant {
            self.0.now()
        }
        fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
            self.0.sleep_until(deadline)
        }
        fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
            self.0.spawn_blocking(work)
        }
        // `reactor` left at its default: none.
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Arc::new(NoReactor(hatchery_tokio::TokioRuntime::new(
        rt.handle().clone(),
    )));
    assert!(runtime.reactor().is_none());
    let errors = rt.block_on(hatchery::rt::enter_root(runtime, async {
        hatchery::sleep(ms(1)).await; // the rest works
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap_err();
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap_err();
        let connect = TcpStream::connect("127.0.0.1:9").await.unwrap_err();
        let path = std::env::temp_dir().join(format!("hatchery-no-reactor-{}", std::process::id()));
        let unix = hatchery::net::UnixListener::bind(&path).unwrap_err();
        assert!(!path.exists(), "a socket file was left behind");
        let unix_connect = hatchery::net::UnixStream::connect(&path).await.unwrap_err();
        [tcp, udp, connect, unix, unix_connect]
    }));
    for err in errors {
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.to_string().contains("no I/O reactor"), "{err}");
        assert!(err.to_string().contains("AsyncIoReactor"), "{err}");
    }
}

/// A socket of a tokio runtime that has shut down fails with an error that says so,
/// whether it was waiting then or is used later.
#[test]
fn a_socket_after_its_tokio_runtime_is_gone_fails_clearly() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let runtime = Arc::new(hatchery_tokio::TokioRuntime::new(rt.handle().clone()));
    // Each with its peer kept open, so that only the runtime's end can stop a read.
    let ((mut waiting, _waiting_peer), (mut later, _later_peer)) =
        rt.block_on(hatchery::rt::enter_root(runtime, async {
            (pair(V4).await, pair(V4).await)
        }));
    let started = Instant::now();
    let reader = std::thread::spawn(move || {
        let mut buf = [0; 8];
        futures_lite::future::block_on(waiting.read(&mut buf))
    });
    std::thread::sleep(ms(50));
    rt.shutdown_timeout(Duration::from_secs(5));
    let err = reader.join().unwrap().unwrap_err();
    assert!(err.to_string().contains("has shut down"), "{err}");
    let mut buf = [0; 8];
    let err = futures_lite::future::block_on(later.read(&mut buf)).unwrap_err();
    assert!(err.to_string().contains("has shut down"), "{err}");
    let err = futures_lite::future::block_on(later.write_all(b"x")).unwrap_err();
    assert!(err.to_string().contains("has shut down"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Reads `want.len()` bytes from `stream`, and asserts they are `want`.
async fn read_some(stream: &mut (impl futures_io::AsyncRead + Unpin), want: &[u8]) {
    let mut got = vec![0; want.len()];
    futures_lite::AsyncReadExt::read_exact(stream, &mut got)
        .await
        .unwrap();
    assert_eq!(got, want);
}

/// A read into an empty buffer returns 0 at once, on a TCP and a Unix stream and a
/// stream's read half, through `read`, futures-io's `poll_read` and tokio's (a `ReadBuf`
/// with no room): with no data there (it does not wait for data it cannot take), and
/// with data there (which it leaves for the next read). In a cancelled scope it is a
/// checkpoint, as every operation is. Bounded by `fail_after`: a read that waits for
/// data fails the test instead of hanging it.
#[hatchery::test]
async fn e5_a_zero_length_read_returns_at_once() {
    let (mut tcp, mut tcp_peer) = pair(V4).await;
    let (mut unix, mut unix_peer) = UnixStream::pair().unwrap();
    hatchery::fail_after(Duration::from_secs(10), async {
        for data_waiting in [false, true] {
            if data_waiting {
                tcp_peer.write_all(b"kept").await.unwrap();
                unix_peer.write_all(b"kept").await.unwrap();
                hatchery::sleep(ms(20)).await; // arrived
            }
            assert_eq!(tcp.read(&mut []).await.unwrap(), 0);
            assert_eq!(unix.read(&mut []).await.unwrap(), 0);
            let futures_io = futures_lite::AsyncReadExt::read(&mut tcp, &mut []).await;
            assert_eq!(futures_io.unwrap(), 0);
            let futures_io = futures_lite::AsyncReadExt::read(&mut unix, &mut []).await;
            assert_eq!(futures_io.unwrap(), 0);
            let mut full = tokio::io::ReadBuf::new(&mut []);
            let tokio_io = std::future::poll_fn(|cx| {
                tokio::io::AsyncRead::poll_read(Pin::new(&mut tcp), cx, &mut full)
            });
            tokio_io.await.unwrap();
            assert_eq!(
                tokio::io::AsyncReadExt::read(&mut unix, &mut [])
                    .await
                    .unwrap(),
                0
            );
        }
        // The data is still there, all of it.
        read_some(&mut tcp, b"kept").await;
        read_some(&mut unix, b"kept").await;
        // A read half too.
        let (mut half, _write) = tcp.into_split();
        assert_eq!(half.read(&mut []).await.unwrap(), 0);
    })
    .await
    .expect("a read into an empty buffer waited");

    // A checkpoint all the same: in a cancelled scope it does not complete.
    let scope = hatchery::CancelScope::new();
    let handle = scope.handle();
    handle.cancel();
    assert!(scope.run(unix.read(&mut [])).await.is_none());
    assert!(handle.cancelled_caught());
}
