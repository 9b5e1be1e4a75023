//! A thousand concurrent connections on every backend, on loopback.

use std::io;
use std::sync::Arc;

use hatchery::net::{serve, TcpListener, TcpStream};
use hatchery::nursery;
use hatchery::sync::Event;
use hatchery_tests::{until, Counter};

const CONNECTIONS: usize = 1000;

/// Each connection takes two descriptors here (client and server side), and the three
/// backends run at once: raises the soft limit to the hard one if it is lower than
/// that needs, and says so clearly if even the hard one is.
fn enough_descriptors() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let needed = (3 * 2 * CONNECTIONS + 256) as u64;
    let mut limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    if current >= needed {
        return;
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= needed,
        "this test needs {needed} file descriptors; the hard limit (ulimit -Hn) is {hard}"
    );
    limit.current = Some(needed);
    setrlimit(Resource::Nofile, limit).expect("raise the soft limit on file descriptors");
}

#[hatchery::test]
async fn a_thousand_concurrent_connections() {
    enough_descriptors();
    let (open, closed) = (Counter::new(), Counter::new());
    let release = Arc::new(Event::new());
    let echoed = Counter::new();
    let (o, c, e) = (open.clone(), closed.clone(), echoed.clone());
    let (o2, c2) = (open.clone(), closed.clone());
    nursery(|n| async move {
        let addr = n
            .start(|ready| async move {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                ready.started(listener.local_addr()?);
                serve(listener, move |mut stream: TcpStream| {
                    let (o, c) = (o.clone(), c.clone());
                    async move {
                        o.incr();
                        let _closed = c.guard();
                        let mut id = [0; 8];
                        stream.read_exact(&mut id).await?;
                        stream.write_all(&id).await?;
                        let mut end = [0; 1];
                        stream.read(&mut end).await?; // until the client goes
                        Ok::<_, io::Error>(())
                    }
                })
                .await?;
                Ok(())
            })
            .await?;
        let clients = Counter::new();
        for i in 0..CONNECTIONS as u64 {
            let (release, echoed, clients) = (release.clone(), e.clone(), clients.clone());
            n.spawn(async move {
                let mut stream = TcpStream::connect(addr).await?;
                stream.write_all(&i.to_le_bytes()).await?;
                let mut back = [0; 8];
                stream.read_exact(&mut back).await?;
                assert_eq!(u64::from_le_bytes(back), i);
                echoed.incr();
                release.wait().await; // all stay open together
                drop(stream);
                clients.incr();
                Ok::<_, io::Error>(())
            });
        }
        until(|| e.get() == CONNECTIONS).await;
        // Every connection is open at once, on both sides.
        assert_eq!(o2.get() - c2.get(), CONNECTIONS);
        release.set();
        until(|| clients.get() == CONNECTIONS).await;
        n.cancel(); // the server
        Ok::<_, io::Error>(())
    })
    .await
    .or_else(|e| if e.is_cancelled() { Ok(()) } else { Err(e) })
    .unwrap();
    assert_eq!(echoed.get(), CONNECTIONS);
    assert_eq!((open.get(), closed.get()), (CONNECTIONS, CONNECTIONS));
}
