//! The network part of the runtime seam, re-exported from `hatchery::rt`: see `Network`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

/// A network of the runtime's own, beside its reactor: what [`hatchery::net`](crate::net)'s
/// TCP and UDP sockets talk to instead of the operating system's, when a runtime has one
/// (the network part of the runtime seam).
///
/// A [`Reactor`](crate::rt::Reactor) registers the system's sockets and reports when
/// they may be ready; the core does every system call itself. A runtime whose network is
/// not the system's (a simulator's network of named hosts, a user-space stack) has no
/// descriptors to register, so it provides the leaf operations themselves: name
/// resolution, binding a listener, starting a connection, binding a datagram socket,
/// and the I/O of the sockets it made ([`NetStream`], [`NetListener`], [`NetDatagram`]),
/// as poll functions. A runtime offers it through
/// [`Runtime::network`](crate::rt::Runtime::network); `hatchery::net` then asks it, and
/// not the system, for every socket it opens: the public types
/// ([`TcpStream`](crate::net::TcpStream), [`TcpListener`](crate::net::TcpListener),
/// [`UdpSocket`](crate::net::UdpSocket)) and library code stay as they are.
///
/// The semantics stay in the core, the same for both kinds of socket: every operation
/// is a checkpoint (a cancelled scope stops it before it calls the provider), happy
/// eyeballs races the resolved addresses, [`serve`](crate::net::serve) runs connections
/// in a nursery, and the cancel safety of each operation is the one its docs state. What
/// a provider must keep for that is the contract of its poll functions:
///
/// * **All or nothing.** A poll function either does its work (reads bytes, sends a
///   datagram, accepts a connection) and returns `Ready`, or does nothing and returns
///   `Pending`, with `cx`'s waker to be woken when it may complete. A caller that got
///   `Pending` knows that nothing was done; hatchery drops operations at any `Pending`.
/// * **One waiter per direction.** hatchery has at most one task waiting to read (or
///   receive, or accept) and one waiting to write (or send) on a socket at a time, so
///   keeping the last waker of each is enough. The two directions are independent.
/// * **Errors, never a hang.** A reset, a peer that closed, a socket that is gone: the
///   waiting operation is woken and returns the error (rule R6 for a reactor). A wait
///   ends only when the operation can complete or fail; a peer that is silent (a network
///   partition) leaves it waiting, and the enclosing scope's deadline ends it.
/// * **Dropping a socket closes it**, at once: the peer sees what it would see when a
///   socket of the system closes (the end of the stream, or a reset if unread data was
///   left).
///
/// Sockets of the system under a runtime that has a network (`from_std`, Unix sockets,
/// [`io::Async`](crate::io::Async), child processes' pipes) are the reactor's business:
/// a runtime with a network and no reactor refuses them with an error of kind
/// [`Unsupported`](io::ErrorKind::Unsupported), as any runtime without a reactor does.
///
/// `hatchery-sim` is the one implementation in this workspace: a deterministic network of
/// named hosts with latency, partitions, loss and crashes (the book's chapter
/// *Simulation testing*).
///
/// # Examples
///
/// A network that is down: every connection attempt and every bind fails at once. A
/// library's error paths can be tested on it, on any executor.
///
/// ```
/// use std::io;
/// use std::net::SocketAddr;
/// use std::pin::Pin;
/// use std::sync::Arc;
/// use std::time::Instant;
/// use hatchery::rt::{self, NetDatagram, NetListener, NetStream, Network, Runtime, Sleep, Task};
/// use hatchery_tokio::TokioRuntime;
///
/// struct Down;
///
/// fn down() -> io::Error {
///     io::Error::new(io::ErrorKind::NetworkUnreachable, "the network is down")
/// }
///
/// impl Network for Down {
///     fn resolve(&self, _host: &str, _port: u16) -> io::Result<Vec<SocketAddr>> {
///         Err(down())
///     }
///     fn bind_tcp(&self, _addr: SocketAddr) -> io::Result<Box<dyn NetListener>> {
///         Err(down())
///     }
///     fn connect_tcp(&self, _addr: SocketAddr) -> io::Result<Box<dyn NetStream>> {
///         Err(down())
///     }
///     fn bind_udp(&self, _addr: SocketAddr) -> io::Result<Box<dyn NetDatagram>> {
///         Err(down())
///     }
/// }
///
/// /// tokio's executor and clock, and the network that is down.
/// struct Offline(TokioRuntime);
///
/// impl Runtime for Offline {
///     fn spawn(&self, task: Task) {
///         self.0.spawn(task)
///     }
///     fn now(&self) -> Instant {
///         self.0.now()
///     }
///     fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
///         self.0.sleep_until(deadline)
///     }
///     fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
///         self.0.spawn_blocking(work)
///     }
///     fn network(&self) -> Option<&dyn Network> {
///         Some(&Down)
///     }
/// }
///
/// # hatchery_tokio::run(async {
/// let offline = Arc::new(Offline(TokioRuntime::current()));
/// let err = rt::enter(offline, hatchery::net::TcpStream::connect("127.0.0.1:80"))
///     .await
///     .unwrap_err();
/// assert_eq!(err.kind(), io::ErrorKind::NetworkUnreachable);
/// # });
/// ```
pub trait Network: Send + Sync {
    /// The addresses of `host`, each with `port`, in the order to try them: what the
    /// system's resolver would answer. It answers at once (a network that needs time to
    /// resolve a name answers with the addresses of a name it knows, and fails others).
    ///
    /// hatchery asks it for every host name that a connect, bind or UDP connect is
    /// given, unless a [`TcpConnector`](crate::net::TcpConnector) has a resolver of its
    /// own. An IP address is never resolved.
    ///
    /// # Errors
    ///
    /// A name it does not know: kind [`NotFound`](io::ErrorKind::NotFound), with a
    /// message that names it (hatchery adds the name too).
    ///
    /// # Examples
    ///
    /// See [`Network`].
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;

    /// A listener bound to `addr` (port 0: a free port), listening.
    ///
    /// # Errors
    ///
    /// As the system's `bind`: `AddrInUse`, `AddrNotAvailable` for an address that is
    /// not the caller's.
    ///
    /// # Examples
    ///
    /// See [`Network`].
    fn bind_tcp(&self, addr: SocketAddr) -> io::Result<Box<dyn NetListener>>;

    /// Starts a connection to `addr`: a stream that is connecting. hatchery then waits
    /// for [`NetStream::poll_connect`]; dropping the stream before it is connected
    /// abandons the attempt (a connection the peer has accepted meanwhile is closed).
    ///
    /// # Errors
    ///
    /// What fails at once (an address of a family the caller has not); what the peer
    /// answers (refused, unreachable) comes from `poll_connect`.
    ///
    /// # Examples
    ///
    /// See [`Network`].
    fn connect_tcp(&self, addr: SocketAddr) -> io::Result<Box<dyn NetStream>>;

    /// A datagram socket bound to `addr` (port 0: a free port).
    ///
    /// # Errors
    ///
    /// As [`bind_tcp`](Network::bind_tcp).
    ///
    /// # Examples
    ///
    /// See [`Network`].
    fn bind_udp(&self, addr: SocketAddr) -> io::Result<Box<dyn NetDatagram>>;
}

/// A TCP connection of a [`Network`]: what a [`TcpStream`](crate::net::TcpStream) of that
/// network holds. Its poll functions keep the contract stated on [`Network`]: all or
/// nothing, one waiter per direction, errors rather than hangs.
///
/// Dropping it closes the connection: the peer reads the end of the stream once it has
/// read the data sent before, or a reset if data this side had not read was left.
///
/// # Examples
///
/// A stream of `hatchery-sim`'s network, through the public type that holds it:
///
/// ```
/// use hatchery::net::{TcpListener, TcpStream};
///
/// hatchery_sim::Sim::new(1).run(async {
///     let listener = TcpListener::bind("127.0.0.1:0").await?; // on the simulated host
///     let mut client = TcpStream::connect(listener.local_addr()?).await?;
///     let (mut server, _) = listener.accept().await?;
///     client.write_all(b"ping").await?;
///     let mut buf = [0; 4];
///     server.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"ping");
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub trait NetStream: Send + Sync {
    /// Waits until the connection started by [`Network::connect_tcp`] is established:
    /// `Ready(Ok(()))` once it is (and at once for an accepted stream), or its error.
    ///
    /// # Errors
    ///
    /// `ConnectionRefused` when nothing listens there, and the like.
    ///
    /// # Examples
    ///
    /// See [`NetStream`].
    fn poll_connect(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Reads into `buf` (never empty): the bytes that have arrived, `0` at the end of the
    /// stream; `Pending` while none have.
    ///
    /// # Errors
    ///
    /// `ConnectionReset` after a reset.
    ///
    /// # Examples
    ///
    /// See [`NetStream`].
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// Writes some of `buf` (never empty): how many bytes it took; `Pending` while it can
    /// take none (the peer's window is full).
    ///
    /// # Errors
    ///
    /// `BrokenPipe` after a shutdown of this side, `ConnectionReset` after a reset.
    ///
    /// # Examples
    ///
    /// See [`NetStream`].
    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;

    /// Shuts down the writing side: the peer reads the end of the stream after what was
    /// written before. At once; a second shutdown does nothing.
    ///
    /// # Errors
    ///
    /// `NotConnected` when the connection is gone.
    ///
    /// # Examples
    ///
    /// See [`NetStream`].
    fn shutdown_write(&self) -> io::Result<()>;

    /// This end's address.
    ///
    /// # Errors
    ///
    /// The network's.
    ///
    /// # Examples
    ///
    /// See [`NetStream`].
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// `NotConnected` once the connection is gone, or before it is established.
    ///
    /// # Examples
    ///
    /// See [`NetStream`].
    fn peer_addr(&self) -> io::Result<SocketAddr>;

    /// Sets `TCP_NODELAY` (a network that gathers no small writes keeps it and reads it
    /// back).
    ///
    /// # Errors
    ///
    /// The network's.
    ///
    /// # Examples
    ///
    /// See [`NetStream`].
    fn set_nodelay(&self, nodelay: bool) -> io::Result<()>;

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    ///
    /// The network's.
    ///
    /// # Examples
    ///
    /// See [`NetStream`].
    fn nodelay(&self) -> io::Result<bool>;
}

/// A TCP listener of a [`Network`]: what a [`TcpListener`](crate::net::TcpListener) of
/// that network holds. Dropping it stops listening: connections not yet accepted are
/// reset.
///
/// # Examples
///
/// See [`NetStream`].
pub trait NetListener: Send + Sync {
    /// Accepts a connection that is waiting (established), with the peer's address;
    /// `Pending` while none is.
    ///
    /// # Errors
    ///
    /// The network's; hatchery returns them from `accept`.
    ///
    /// # Examples
    ///
    /// See [`NetListener`].
    #[allow(clippy::type_complexity)]
    fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Box<dyn NetStream>, SocketAddr)>>;

    /// The address it listens on (the port picked for port 0).
    ///
    /// # Errors
    ///
    /// The network's.
    ///
    /// # Examples
    ///
    /// See [`NetListener`].
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// A UDP socket of a [`Network`]: what a [`UdpSocket`](crate::net::UdpSocket) of that
/// network holds. hatchery sends and receives through `send_to` and `recv_from` (a
/// connected socket's `send` sends to its peer; its `recv` receives what came from it).
///
/// # Examples
///
/// ```
/// use hatchery::net::UdpSocket;
///
/// hatchery_sim::Sim::new(1).run(async {
///     let a = UdpSocket::bind("127.0.0.1:0").await?;
///     let b = UdpSocket::bind("127.0.0.1:0").await?;
///     a.send_to(b"ping", b.local_addr()?).await?;
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf).await?;
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub trait NetDatagram: Send + Sync {
    /// Sends the datagram `buf` to `target`: its length; `Pending` while it cannot be
    /// sent now.
    ///
    /// # Errors
    ///
    /// An address of the other family, a datagram too large.
    ///
    /// # Examples
    ///
    /// See [`NetDatagram`].
    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>>;

    /// Receives a datagram into `buf` (cut to its length, the rest lost, as the system
    /// does), with its sender; `Pending` while none has come. A connected socket
    /// receives only its peer's.
    ///
    /// # Errors
    ///
    /// The network's.
    ///
    /// # Examples
    ///
    /// See [`NetDatagram`].
    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>>;

    /// Connects the socket to `addr`: only its datagrams are received from now on.
    ///
    /// # Errors
    ///
    /// An address of the other family.
    ///
    /// # Examples
    ///
    /// See [`NetDatagram`].
    fn connect(&self, addr: SocketAddr) -> io::Result<()>;

    /// The address it is bound to.
    ///
    /// # Errors
    ///
    /// The network's.
    ///
    /// # Examples
    ///
    /// See [`NetDatagram`].
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// The address it is connected to.
    ///
    /// # Errors
    ///
    /// `NotConnected` if it is not.
    ///
    /// # Examples
    ///
    /// See [`NetDatagram`].
    fn peer_addr(&self) -> io::Result<SocketAddr>;
}

impl fmt::Debug for dyn Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Network")
    }
}

/// A socket's `Debug`: `name` with those of `addrs` it can tell.
fn debug_socket(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    addrs: &[(&str, io::Result<SocketAddr>)],
) -> fmt::Result {
    let mut d = f.debug_struct(name);
    for (field, addr) in addrs {
        if let Ok(a) = addr {
            d.field(field, a);
        }
    }
    d.finish()
}

impl fmt::Debug for dyn NetStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addrs = [("local", self.local_addr()), ("peer", self.peer_addr())];
        debug_socket(f, "NetStream", &addrs)
    }
}

impl fmt::Debug for dyn NetListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_socket(f, "NetListener", &[("local", self.local_addr())])
    }
}

impl fmt::Debug for dyn NetDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_socket(f, "NetDatagram", &[("local", self.local_addr())])
    }
}
