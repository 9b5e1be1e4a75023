//! `hatchery::io::Async`, any descriptor on the reactor, on every backend: pipes and an
//! eventfd wrapped, waits that are checkpoints (X10), the object given back, and a
//! descriptor the system cannot wait on refused clearly.
#![cfg(unix)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use hatchery::io::Async;
use hatchery::{move_on_after, CancelScope};
use hatchery_tests::{ms, secs};

/// A pipe: its read end and its write end, as files (close-on-exec).
fn pipe() -> (File, File) {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    (File::from(r), File::from(w))
}

/// A scope cancelled before it runs `fut`.
async fn in_cancelled_scope<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let scope = CancelScope::new();
    scope.handle().cancel();
    scope.run(fut).await
}

#[hatchery::test]
async fn x10_a_wait_in_a_cancelled_scope_never_completes_even_when_ready() {
    let (r, mut w) = pipe();
    let r = Async::new(r).unwrap();
    w.write_all(b"abc").unwrap();
    r.readable().await.unwrap(); // ready
    assert!(in_cancelled_scope(r.readable()).await.is_none());
    let mut calls = 0;
    let out = in_cancelled_scope(r.read_with(|mut f| {
        calls += 1;
        f.read(&mut [0; 3])
    }))
    .await;
    assert!(out.is_none());
    assert_eq!(calls, 0, "the operation ran in a cancelled scope");
    let w = Async::new(w).unwrap();
    assert!(in_cancelled_scope(w.writable()).await.is_none());
    // Nothing was consumed.
    let mut buf = [0; 3];
    r.read_with(|mut f| f.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"abc");
}

#[hatchery::test]
async fn x10_a_wait_cancelled_while_waiting_did_nothing() {
    let (r, w) = pipe();
    let r = Async::new(r).unwrap();
    assert!(move_on_after(ms(30), r.readable()).await.is_none());
    let mut buf = [0; 8];
    let out = move_on_after(ms(30), r.read_with(|mut f| f.read(&mut buf))).await;
    assert!(out.is_none());
    (&w).write_all(b"later").unwrap();
    let mut got = [0; 5];
    r.read_with(|mut f| f.read_exact(&mut got)).await.unwrap();
    assert_eq!(&got, b"later");
}

#[hatchery::test]
async fn a_pipe_is_read_as_another_task_writes() {
    let (r, w) = pipe();
    let mut r = Async::new(r).unwrap();
    let mut w = Async::new(w).unwrap();
    const LEN: usize = 1 << 20; // more than a pipe's buffer: the writer waits
    let data: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
    let expected = data.clone();
    hatchery::nursery(|n| async move {
        n.spawn(async move {
            w.write_all(&data).await?;
            w.close().await?;
            drop(w); // the end of the stream
            Ok(())
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await?;
        assert!(got == expected, "the bytes differ");
        Ok::<_, io::Error>(())
    })
    .await
    .unwrap();
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
#[hatchery::test]
async fn an_eventfd_wakes_its_reader() {
    use rustix::event::{eventfd, EventfdFlags};
    let efd = Async::new(eventfd(0, EventfdFlags::CLOEXEC).unwrap()).unwrap();
    let efd = std::sync::Arc::new(efd);
    let count = hatchery::nursery(|n| {
        let efd = efd.clone();
        async move {
            let writer = efd.clone();
            n.spawn(async move {
                hatchery::sleep(ms(20)).await;
                rustix::io::write(writer.get_ref(), &5u64.to_ne_bytes())?;
                Ok(())
            });
            efd.readable().await?;
            let mut buf = [0; 8];
            efd.read_with(|fd| Ok(rustix::io::read(fd, &mut buf)?))
                .await?;
            Ok::<_, io::Error>(u64::from_ne_bytes(buf))
        }
    })
    .await
    .unwrap();
    assert_eq!(count, 5);
    // Read: not readable any more.
    assert!(move_on_after(ms(20), efd.readable()).await.is_none());
}

#[hatchery::test]
async fn readable_reports_the_end_of_a_pipe() {
    let (r, w) = pipe();
    let r = Async::new(r).unwrap();
    drop(w);
    hatchery::fail_after(secs(10), r.readable())
        .await
        .unwrap()
        .unwrap();
    let n = r.read_with(|mut f| f.read(&mut [0; 4])).await.unwrap();
    assert_eq!(n, 0);
}

#[hatchery::test]
async fn writing_to_a_pipe_whose_reader_is_gone_is_an_error() {
    let (r, w) = pipe();
    let w = Async::new(w).unwrap();
    drop(r);
    // Rust ignores SIGPIPE in its programs: the write fails with EPIPE.
    let e = w.write_with(|mut f| f.write(b"x")).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
}

#[hatchery::test]
async fn several_tasks_wait_on_one_descriptor_and_each_gets_a_byte() {
    let (r, w) = pipe();
    let r = std::sync::Arc::new(Async::new(r).unwrap());
    hatchery::nursery(|n| async move {
        for _ in 0..4 {
            let r = r.clone();
            n.spawn(async move {
                let mut b = [0; 1];
                let got = r.read_with(|mut f| f.read(&mut b)).await?;
                assert_eq!(got, 1);
                Ok(())
            });
        }
        hatchery::sleep(ms(20)).await;
        for _ in 0..4 {
            (&w).write_all(b"x").unwrap();
            hatchery::sleep(ms(5)).await;
        }
        Ok::<_, io::Error>(())
    })
    .await
    .unwrap();
}

#[hatchery::test]
async fn x11_into_inner_gives_the_object_back_still_open() {
    let (r, mut w) = pipe();
    let r = Async::new(r).unwrap();
    let mut r: File = r.into_inner();
    w.write_all(b"z").unwrap();
    let mut buf = [0; 1];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"z");
    // And it can be registered again.
    let r = Async::new(r).unwrap();
    w.write_all(b"y").unwrap();
    r.read_with(|mut f| f.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"y");
}

#[hatchery::test]
async fn an_owned_fd_from_elsewhere_works_through_the_poll_forms() {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let r: Async<OwnedFd> = Async::new(r).unwrap();
    let w: Async<OwnedFd> = Async::new(w).unwrap();
    let n =
        std::future::poll_fn(|cx| w.poll_write_with(cx, |fd| Ok(rustix::io::write(fd, b"hello")?)))
            .await
            .unwrap();
    assert_eq!(n, 5);
    let mut buf = [0; 5];
    let n =
        std::future::poll_fn(|cx| r.poll_read_with(cx, |fd| Ok(rustix::io::read(fd, &mut buf)?)))
            .await
            .unwrap();
    assert_eq!(&buf[..n], b"hello");
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[hatchery::test]
async fn x11_a_regular_file_is_refused_with_a_clear_error() {
    let path = std::env::temp_dir().join(format!(
        "hatchery-io-async-{}-{}",
        std::process::id(),
        hatchery_tests::backend()
    ));
    let file = File::create(&path).unwrap();
    let e = Async::new(file).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    let msg = e.to_string();
    assert!(msg.contains("regular file"), "{msg}");
}
