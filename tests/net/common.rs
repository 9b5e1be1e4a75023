//! Helpers of the networking tests (`#[path]`-included by each): loopback only.

#![allow(dead_code, unreachable_pub)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use hatchery::net::{Listener, SplitStream, TcpListener, TcpStream};

/// 127.0.0.1.
pub const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// ::1.
pub const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// A loopback address where a connection attempt hangs: a listener with a backlog of
/// zero whose one place is taken, so that Linux drops further SYNs (and the client
/// sends them again after 1 s, 3 s, ...).
pub struct Blackhole {
    listener: std::net::TcpListener,
    filler: std::net::TcpStream,
    addr: SocketAddr,
}

impl Blackhole {
    pub fn new(ip: IpAddr) -> Blackhole {
        use rustix::net::{self as rn, AddressFamily, SocketType};
        let family = if ip.is_ipv6() {
            AddressFamily::INET6
        } else {
            AddressFamily::INET
        };
        let fd: OwnedFd = rn::socket(family, SocketType::STREAM, None).unwrap();
        rn::bind(&fd, &SocketAddr::new(ip, 0)).unwrap();
        rn::listen(&fd, 0).unwrap();
        let listener = std::net::TcpListener::from(fd);
        let addr = listener.local_addr().unwrap();
        let filler = std::net::TcpStream::connect(addr).unwrap();
        Blackhole {
            listener,
            filler,
            addr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Asserts that no connection attempt to the blackhole is still alive: frees the
    /// queue's place, waits until 1.6 s after `started` (when an attempt started then
    /// would have sent its SYN again, at 1 s, and connected), and finds no connection.
    pub async fn assert_no_attempt_left(self, started: Instant) {
        let (filler, _) = self.listener.accept().unwrap();
        drop((filler, self.filler));
        let until = started + Duration::from_millis(1600);
        hatchery::sleep(until.saturating_duration_since(Instant::now())).await;
        self.listener.set_nonblocking(true).unwrap();
        match self.listener.accept() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept failed: {e}"),
            Ok((_, peer)) => panic!("a connection attempt was left behind: {peer} connected"),
        }
    }
}

/// A connected pair on loopback: (client, server).
pub async fn pair(ip: IpAddr) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, peer) = listener.accept().await.unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    (client, server)
}

/// The byte at `i` of the test pattern (not periodic in any power of two).
pub fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// Reads until the end of the stream.
pub async fn read_to_end(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match stream.read(&mut buf).await? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A checksum of a byte stream fed in parts of any length (FNV-1a over the stream's
/// 8-byte words, so that 64 MiB take a moment in a debug build).
pub struct Checksum {
    hash: u64,
    pending: Vec<u8>,
}

impl Checksum {
    pub fn new() -> Checksum {
        Checksum {
            hash: 0xcbf2_9ce4_8422_2325,
            pending: Vec::with_capacity(8),
        }
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        while !self.pending.is_empty() && !bytes.is_empty() {
            self.pending.push(bytes[0]);
            bytes = &bytes[1..];
            if self.pending.len() == 8 {
                let word = u64::from_le_bytes(self.pending[..].try_into().unwrap());
                self.pending.clear();
                self.mix(word);
            }
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.mix(u64::from_le_bytes(w.try_into().unwrap()));
        }
        self.pending.extend_from_slice(words.remainder());
    }

    fn mix(&mut self, word: u64) {
        self.hash = (self.hash ^ word).wrapping_mul(0x100_0000_01b3);
    }

    pub fn finish(mut self) -> u64 {
        let tail = std::mem::take(&mut self.pending);
        for b in tail {
            self.mix(u64::from(b));
        }
        self.hash
    }
}

/// The test pattern from `offset` on, `len` bytes (from a table: cheap in debug builds).
pub fn pattern_at(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len).map(pattern).collect()
}

/// Fresh connections from `connect`, each read and written from one task at once (as
/// hyper's connection driver does), against an echo server on `listener`: the write
/// must go through while the read waits. Generic over the stream type: both halves'
/// methods are.
pub async fn read_and_write_from_one_task<L, F, Fut>(listener: L, connect: F)
where
    L: Listener,
    L::Stream: SplitStream,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<L::Stream>>,
{
    hatchery::nursery(|n| async move {
        n.spawn(async move {
            loop {
                let (mut reader, mut writer) = listener.accept_stream().await?.into_halves();
                let mut buf = [0; 4];
                reader.read_exact(&mut buf).await?;
                writer.write_all(&buf).await?;
            }
            #[allow(unreachable_code)]
            Ok::<(), io::Error>(())
        });
        for _ in 0..100 {
            let (mut reader, mut writer) = connect().await?.into_halves();
            let mut buf = [0; 4];
            let exchange = futures_lite::future::zip(reader.read_exact(&mut buf), async {
                hatchery::checkpoint().await; // the read waits first
                writer.write_all(b"ping").await
            });
            let (read, wrote) = hatchery::fail_after(Duration::from_secs(5), exchange)
                .await
                .expect("the write never got a turn");
            read?;
            wrote?;
            assert_eq!(&buf, b"ping");
        }
        n.cancel();
        Ok::<_, io::Error>(())
    })
    .await
    .or_else(|e| if e.is_cancelled() { Ok(()) } else { Err(e) })
    .unwrap();
}
