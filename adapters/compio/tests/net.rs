//! hatchery's sockets on compio's reactor: on both drivers, across threads, and after
//! the runtime has ended.

use std::io;
use std::time::Duration;

use hatchery::net::{TcpListener, TcpStream, UdpSocket};

/// A compio runtime with the polling driver forced, where io_uring would be chosen.
fn polling() -> compio_runtime::Runtime {
    let mut proactor = compio_driver::ProactorBuilder::new();
    proactor.driver_type(compio_driver::DriverType::Poll);
    let compio = compio_runtime::RuntimeBuilder::new()
        .with_proactor(proactor)
        .build()
        .unwrap();
    assert!(compio.driver_type().is_polling());
    compio
}

/// Clients echo through a server, each connection a child: accept, connect, reads and
/// writes that wait.
#[allow(unreachable_code)]
async fn echo() -> io::Result<u64> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    hatchery::nursery(|n| async move {
        let conns = n.clone();
        n.spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await?;
                conns.spawn(async move {
                    let mut buf = [0; 64];
                    loop {
                        let k = conn.read(&mut buf).await?;
                        if k == 0 {
                            return Ok(());
                        }
                        conn.write_all(&buf[..k]).await?;
                    }
                });
            }
            Ok::<(), io::Error>(()) // never: until cancelled
        });
        let clients: Vec<_> = (0..8u64)
            .map(|i| {
                n.spawn(async move {
                    let mut c = TcpStream::connect(addr).await?;
                    let line = format!("client {i}\n");
                    let mut back = vec![0; line.len()];
                    for _ in 0..10 {
                        c.write_all(line.as_bytes()).await?;
                        c.read_exact(&mut back).await?;
                        assert_eq!(back, line.as_bytes());
                    }
                    Ok(10 * line.len() as u64)
                })
            })
            .collect();
        let mut total = 0;
        for c in clients {
            total += c.join().await?;
        }
        n.cancel(); // the server
        Ok(total)
    })
    .await
    .map_err(io::Error::from)
}

#[test]
fn echo_on_the_default_driver() {
    assert_eq!(hatchery_compio::run(echo()).unwrap(), 80 * 9);
}

#[test]
fn echo_on_the_polling_driver() {
    let compio = polling();
    assert_eq!(
        hatchery_compio::run_local_on(&compio, echo()).unwrap(),
        80 * 9
    );
}

/// A socket whose read waited on one thread's runtime, moved to another's: it waits
/// there, on that thread's driver.
#[test]
fn a_socket_moves_to_another_runtime_thread() {
    let (socket, addr) = hatchery_compio::run(async {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let mut buf = [0; 8];
        // A read that waits, cut short: its wait stays armed on this thread.
        let cut = hatchery::move_on_after(Duration::from_millis(5), socket.recv(&mut buf));
        assert!(cut.await.is_none());
        Ok::<_, io::Error>((socket, addr))
    })
    .unwrap();
    let got = std::thread::spawn(move || {
        hatchery_compio::run(async move {
            let mut buf = [0; 8];
            let sender = std::net::UdpSocket::bind("127.0.0.1:0")?;
            sender.send_to(b"moved", addr)?;
            let (k, _) = socket.recv_from(&mut buf).await?;
            Ok::<_, io::Error>(buf[..k].to_vec())
        })
    })
    .join()
    .unwrap();
    assert_eq!(got.unwrap(), b"moved");
}

/// A socket that outlives its runtime fails to wait, with an error that says why,
/// rather than waiting for good.
#[test]
fn a_socket_after_its_runtime_has_ended_fails_clearly() {
    let socket = hatchery_compio::run(UdpSocket::bind("127.0.0.1:0")).unwrap();
    let mut buf = [0; 8];
    let err = futures_lite::future::block_on(socket.recv(&mut buf)).unwrap_err();
    assert!(err.to_string().contains("no compio runtime"), "{err}");
}
