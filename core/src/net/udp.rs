//! UDP: `UdpSocket`.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use super::addr::{cannot, resolve, ToSocketAddrs};
use super::io::{current_network, enter, fmt_socket, Io, Shared};
use super::sys;
use crate::seam::{Interest, OwnedSocket};

/// A UDP socket: datagrams to and from any address, or, once
/// [`connect`](UdpSocket::connect)ed, to and from one peer.
///
/// Its methods take `&self`: share it between tasks (in an `Arc`), for instance one
/// that receives while others send. Tasks that wait to receive take turns, in the order
/// they started waiting (each datagram goes to one of them); so do tasks that wait to
/// send.
///
/// A datagram larger than the buffer given to [`recv_from`](UdpSocket::recv_from) or
/// [`recv`](UdpSocket::recv) is cut to the buffer's length, the rest lost (as the
/// system does); a datagram of up to 65,507 bytes fits a 64 KiB buffer. An empty
/// buffer is no exception: the receive waits for a datagram and takes it, cut to
/// nothing, as `std`'s and tokio's sockets do. (A stream's read of an empty buffer
/// returns 0 at once instead; for a datagram socket that 0 would report an empty
/// datagram that never came.)
///
/// # Examples
///
/// ```
/// use hatchery::net::UdpSocket;
///
/// # hatchery_smol::run(async {
/// let a = UdpSocket::bind("127.0.0.1:0").await?;
/// let b = UdpSocket::bind("127.0.0.1:0").await?;
/// a.send_to(b"ping", b.local_addr()?).await?;
/// let mut buf = [0; 64];
/// let (n, from) = b.recv_from(&mut buf).await?;
/// assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct UdpSocket {
    shared: Shared,
}

impl UdpSocket {
    /// Binds a UDP socket to `addr` (see [`ToSocketAddrs`]; port 0 picks a free port).
    /// A host name is resolved with the system's resolver, and the first address that
    /// can be bound is.
    ///
    /// A checkpoint: in a cancelled scope it does nothing.
    ///
    /// # Cancel safety
    ///
    /// Dropped, or stopped by the enclosing scope's cancellation (while it resolves a
    /// name), it has bound nothing.
    ///
    /// # Panics
    ///
    /// Outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// With the address in the message: `AddrInUse`, `AddrNotAvailable`; an invalid
    /// address string: `InvalidInput`; a runtime without an I/O reactor: `Unsupported`.
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let socket = hatchery::net::UdpSocket::bind("[::1]:0").await?;
    /// assert!(socket.local_addr()?.is_ipv6());
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        enter().await;
        let (addrs, _) = resolve(addr.target()?, None).await?;
        let network = current_network();
        let mut last = None;
        for addr in addrs {
            let bound = match &network {
                Some(rt) => rt
                    .network()
                    .expect("a runtime with a network")
                    .bind_udp(addr)
                    .map(|socket| UdpSocket {
                        shared: Shared::new(Io::Datagram(socket)),
                    }),
                None => sys::bind_udp(&addr).and_then(UdpSocket::from_fd),
            };
            match bound {
                Ok(socket) => return Ok(socket),
                Err(e) => last = Some(cannot("bind", addr, e)),
            }
        }
        Err(last.expect("at least one address"))
    }

    /// Takes a `std::net::UdpSocket` (made non-blocking here) and registers it with the
    /// current runtime's reactor.
    ///
    /// # Panics
    ///
    /// Outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking or registered; a runtime without an I/O
    /// reactor: `Unsupported`.
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let std_socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// std_socket.set_broadcast(false)?; // options std has
    /// let socket = hatchery::net::UdpSocket::from_std(std_socket)?;
    /// # drop(socket);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        let fd = OwnedSocket::from(socket);
        sys::set_nonblocking(&fd)?;
        UdpSocket::from_fd(fd)
    }

    fn from_fd(fd: OwnedSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            shared: Shared::new(Io::new(fd)?),
        })
    }

    fn io(&self) -> &Io {
        &self.shared.io
    }

    /// Sends the datagram `buf` to `target`, waiting for buffer space, and returns its
    /// length.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a datagram is sent inside the one poll that returns, so a send that
    /// did not complete sent nothing. If the enclosing scope is cancelled, the send does
    /// not start, or stops waiting: it never completes, the scope drops it, and nothing
    /// was sent.
    ///
    /// # Errors
    ///
    /// The system's: `InvalidInput` for an address of the other family (IPv6 to a
    /// socket bound to IPv4), a datagram too large (`EMSGSIZE`), an unreachable network.
    ///
    /// # Examples
    ///
    /// See [`UdpSocket`].
    pub async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        if let Io::Datagram(socket) = self.io() {
            return self
                .shared
                .net_op(Interest::Write, |cx| socket.poll_send_to(cx, buf, target))
                .await;
        }
        let fd = self.io().fd();
        self.shared
            .op(Interest::Write, || sys::send_to(fd, buf, &target))
            .await
    }

    /// Waits for a datagram and receives it into `buf`: its length (cut to `buf`'s)
    /// and its sender's address. With an empty `buf`, the datagram is taken all the
    /// same (see [`UdpSocket`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a datagram is received inside the one poll that returns it, so a
    /// receive that did not complete took none, and the next receive gets it. If the
    /// enclosing scope is cancelled, the receive does not start, or stops waiting: it
    /// never completes, the scope drops it, and no datagram is lost.
    ///
    /// # Errors
    ///
    /// The system's. On a connected socket, `ConnectionRefused` after a datagram sent
    /// to a port where nothing listened (the ICMP answer).
    ///
    /// # Examples
    ///
    /// See [`UdpSocket`].
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        if let Io::Datagram(socket) = self.io() {
            return self
                .shared
                .net_op(Interest::Read, |cx| socket.poll_recv_from(cx, buf))
                .await;
        }
        let fd = self.io().fd();
        let (n, from) = self
            .shared
            .op(Interest::Read, || sys::recv_from(fd, buf))
            .await?;
        Ok((n, sys::inet(from)?))
    }

    /// Connects the socket to `addr` (the first address of a name, resolved with the
    /// system's resolver): [`send`](UdpSocket::send) then sends there, and only
    /// datagrams from there are received. Nothing is sent over the network.
    ///
    /// A checkpoint: in a cancelled scope it does nothing.
    ///
    /// # Cancel safety
    ///
    /// Dropped, or stopped by the enclosing scope's cancellation (while it resolves a
    /// name), the socket is as it was.
    ///
    /// # Errors
    ///
    /// An invalid address string: `InvalidInput`; an address of the other family; a
    /// name that cannot be resolved.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::net::UdpSocket;
    ///
    /// # hatchery_smol::run(async {
    /// let a = UdpSocket::bind("127.0.0.1:0").await?;
    /// let b = UdpSocket::bind("127.0.0.1:0").await?;
    /// a.connect(b.local_addr()?).await?;
    /// b.connect(a.local_addr()?).await?;
    /// a.send(b"ping").await?;
    /// let mut buf = [0; 16];
    /// let n = b.recv(&mut buf).await?;
    /// assert_eq!(&buf[..n], b"ping");
    /// assert_eq!(a.peer_addr()?, b.local_addr()?);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        enter().await;
        let (addrs, _) = resolve(addr.target()?, None).await?;
        let addr = addrs[0];
        if let Io::Datagram(socket) = self.io() {
            return socket.connect(addr).map_err(|e| cannot("connect", addr, e));
        }
        sys::start_connect(self.io().fd(), &addr)
            .map(drop)
            .map_err(|e| cannot("connect", addr, e))
    }

    /// Sends the datagram `buf` to the connected peer; as [`send_to`](UdpSocket::send_to).
    ///
    /// # Cancel safety
    ///
    /// As [`send_to`](UdpSocket::send_to): cancel safe, nothing sent unless it
    /// completed; in a cancelled scope it does not start.
    ///
    /// # Errors
    ///
    /// `NotConnected` if the socket is not connected; as [`send_to`](UdpSocket::send_to).
    ///
    /// # Examples
    ///
    /// See [`connect`](UdpSocket::connect).
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        if let Io::Datagram(socket) = self.io() {
            let Ok(peer) = socket.peer_addr() else {
                return Err(not_connected());
            };
            return self
                .shared
                .net_op(Interest::Write, |cx| socket.poll_send_to(cx, buf, peer))
                .await;
        }
        let fd = self.io().fd();
        let sent = self.shared.op(Interest::Write, || sys::send(fd, buf)).await;
        #[cfg(unix)]
        if matches!(&sent, Err(e) if sys::is_errno(e, rustix::io::Errno::DESTADDRREQ)) {
            return Err(not_connected());
        }
        sent
    }

    /// Receives a datagram from the connected peer; as
    /// [`recv_from`](UdpSocket::recv_from).
    ///
    /// # Cancel safety
    ///
    /// As [`recv_from`](UdpSocket::recv_from): cancel safe, no datagram lost; in a
    /// cancelled scope it does not start.
    ///
    /// # Errors
    ///
    /// As [`recv_from`](UdpSocket::recv_from).
    ///
    /// # Examples
    ///
    /// See [`connect`](UdpSocket::connect).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        if let Io::Datagram(socket) = self.io() {
            // A connected socket of the network receives only its peer's datagrams.
            return self
                .shared
                .net_op(Interest::Read, |cx| socket.poll_recv_from(cx, buf))
                .await
                .map(|(n, _)| n);
        }
        let fd = self.io().fd();
        self.shared.op(Interest::Read, || sys::recv(fd, buf)).await
    }

    /// The address the socket is bound to.
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Examples
    ///
    /// See [`UdpSocket`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io().local_addr()
    }

    /// The address the socket is connected to.
    ///
    /// # Errors
    ///
    /// `NotConnected` if it is not.
    ///
    /// # Examples
    ///
    /// See [`connect`](UdpSocket::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io().peer_addr()
    }
}

/// `send` on a socket that is not connected.
fn not_connected() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "send on a UDP socket that is not connected (connect it, or use send_to)",
    )
}

super::impl_as_socket!(UdpSocket);

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addrs = [("local", self.local_addr()), ("peer", self.peer_addr())];
        fmt_socket(f, "UdpSocket", addrs, self.io())
    }
}
