//! Unix domain sockets on every backend: echo, pairs, half-close, halves from two
//! tasks, addresses, and the errors of bad paths.

#![cfg(unix)]

use crate::common;

use std::io;
use std::path::PathBuf;

use hatchery::net::{UnixListener, UnixStream};
use hatchery::{move_on_after, nursery};
use hatchery_tests::{backend, ms};

/// A fresh socket path for this test and backend (removed if left behind).
fn path(test: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "hatchery-{test}-{}-{}",
        std::process::id(),
        backend()
    ));
    let _ = std::fs::remove_file(&p);
    p
}

#[hatchery::test]
async fn echo_over_a_unix_socket() {
    let path = path("unix-echo");
    let listener = UnixListener::bind(&path).unwrap();
    assert_eq!(
        listener.local_addr().unwrap().as_pathname(),
        Some(path.as_path())
    );
    let p = path.clone();
    nursery(|n| async move {
        n.spawn(async move {
            let (mut conn, peer) = listener.accept().await?;
            assert!(peer.is_unnamed());
            let mut buf = [0; 1024];
            loop {
                match conn.read(&mut buf).await? {
                    0 => return Ok(()),
                    k => conn.write_all(&buf[..k]).await?,
                }
            }
        });
        let mut client = UnixStream::connect(&p).await?;
        assert_eq!(client.peer_addr()?.as_pathname(), Some(p.as_path()));
        client.write_all(b"over unix").await?;
        client.shutdown().await?;
        let mut got = Vec::new();
        let mut buf = [0; 64];
        loop {
            match client.read(&mut buf).await? {
                0 => break,
                k => got.extend_from_slice(&buf[..k]),
            }
        }
        assert_eq!(got, b"over unix");
        Ok::<_, io::Error>(())
    })
    .await
    .unwrap();
    std::fs::remove_file(&path).unwrap();
}

#[hatchery::test]
async fn a_pair_split_between_two_tasks() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let (mut reader, mut writer) = a.into_split();
    nursery(|n| async move {
        n.spawn(async move {
            for i in 0..100u8 {
                writer.write_all(&[i]).await?;
            }
            Ok::<_, io::Error>(()) // dropping the write half: b reads the end
        });
        n.spawn(async move {
            let mut buf = [0; 100];
            b.read_exact(&mut buf).await?;
            assert!(buf.iter().enumerate().all(|(i, &x)| x == i as u8));
            let mut end = [0; 1];
            assert_eq!(b.read(&mut end).await?, 0);
            b.write_all(b"reply").await?;
            Ok(())
        });
        let mut buf = [0; 5];
        reader.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"reply");
        Ok::<_, io::Error>(())
    })
    .await
    .unwrap();
}

#[hatchery::test]
async fn a_unix_accept_cancelled_loses_no_connection() {
    let path = path("unix-accept-cancel");
    let listener = UnixListener::bind(&path).unwrap();
    assert!(move_on_after(ms(30), listener.accept()).await.is_none());
    let mut client = UnixStream::connect(&path).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    client.write_all(b"x").await.unwrap();
    let mut buf = [0; 1];
    server.read_exact(&mut buf).await.unwrap();
    std::fs::remove_file(&path).unwrap();
}

#[hatchery::test]
async fn bad_unix_paths_give_clear_errors() {
    let path = path("unix-errors");
    // Nothing there.
    let err = UnixStream::connect(&path).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    // A socket file nobody listens on any more.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let err = UnixStream::connect(&path).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    // Taken.
    let err = UnixListener::bind(&path).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
    // Too long for a socket address.
    let long = std::env::temp_dir().join("x".repeat(200));
    let err = UnixListener::bind(&long).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    let err = UnixStream::connect(&long).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    // A directory that does not exist.
    let err = UnixListener::bind("/nonexistent-hatchery-dir/socket").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
}

#[hatchery::test]
async fn unix_from_std() {
    let path = path("unix-from-std");
    let listener =
        UnixListener::from_std(std::os::unix::net::UnixListener::bind(&path).unwrap()).unwrap();
    let client =
        UnixStream::from_std(std::os::unix::net::UnixStream::connect(&path).unwrap()).unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    let mut client = client;
    client.write_all(b"s").await.unwrap();
    let mut buf = [0; 1];
    server.read_exact(&mut buf).await.unwrap();
    assert!(format!("{listener:?}").contains("pathname"));
    std::fs::remove_file(&path).unwrap();
}

/// As `net_tcp`'s test of the same name: a fresh connection read and written from one
/// task at once (its socket is registered once connecting, not before).
#[hatchery::test]
async fn a_new_unix_connection_reads_and_writes_from_one_task() {
    let path = path("unix-one-task");
    let listener = UnixListener::bind(&path).unwrap();
    common::read_and_write_from_one_task(listener, || UnixStream::connect(&path)).await;
    std::fs::remove_file(&path).unwrap();
}

/// A Unix listener whose backlog is full: the connect fails at once with a clear
/// error (a Unix socket's non-blocking connect cannot wait, as TCP's can).
#[hatchery::test]
async fn a_full_unix_backlog_is_an_error_not_a_hang() {
    use rustix::net::{self as rn, AddressFamily, SocketAddrUnix, SocketType};
    use std::os::unix::ffi::OsStrExt;
    let path = path("unix-backlog");
    let fd = rn::socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap();
    rn::bind(
        &fd,
        &SocketAddrUnix::new(path.as_os_str().as_bytes()).unwrap(),
    )
    .unwrap();
    rn::listen(&fd, 0).unwrap();
    let mut fillers = Vec::new();
    let err = loop {
        match UnixStream::connect(&path).await {
            Ok(s) => fillers.push(s),
            Err(e) => break e,
        }
        assert!(fillers.len() < 64, "the backlog never filled");
    };
    assert_eq!(err.kind(), io::ErrorKind::ResourceBusy, "{err}");
    assert!(err.to_string().contains("backlog is full"), "{err}");
    drop(fd);
    std::fs::remove_file(&path).unwrap();
}
