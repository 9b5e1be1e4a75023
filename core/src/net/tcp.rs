//! TCP: `TcpStream` and `TcpListener`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use super::addr::{cannot, resolve, ToSocketAddrs};
use super::io::{enter, fmt_socket, Io, Shared};
use super::stream::{impl_stream, read_methods, write_methods};
use super::stream::{ReadHalf, Sealed, SplitStream, WriteHalf};
use super::{sys, TcpConnector};
use crate::context as rt;
use crate::seam::{Interest, NetListener, OwnedSocket, Runtime};

/// A TCP connection.
///
/// Open one with [`connect`](TcpStream::connect) (an address or a host name: happy
/// eyeballs, see [`TcpConnector`]) or get one from [`TcpListener::accept`]. Read with
/// [`read`](TcpStream::read) and [`read_exact`](TcpStream::read_exact), write with
/// [`write`](TcpStream::write) and [`write_all`](TcpStream::write_all), half-close with
/// [`shutdown`](TcpStream::shutdown); dropping it closes the connection. To read and
/// write from two tasks at once, [`into_split`](TcpStream::into_split) it.
///
/// It implements `futures_io`'s `AsyncRead` and `AsyncWrite` (and tokio's, with the
/// `tokio-io` feature), for codecs and protocol crates; `AsFd` (`AsSocket` on Windows),
/// for socket options with `socket2` or `rustix`.
///
/// Every operation is a checkpoint, and says what a cancellation leaves behind: see the
/// [module docs](super#cancellation).
///
/// # Examples
///
/// ```
/// use hatchery::net::{TcpListener, TcpStream};
///
/// # hatchery_smol::run(async {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let mut client = TcpStream::connect(listener.local_addr()?).await?;
/// let (mut server, peer) = listener.accept().await?;
/// assert_eq!(peer, client.local_addr()?);
///
/// client.write_all(b"ping").await?;
/// let mut buf = [0; 4];
/// server.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"ping");
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct TcpStream {
    io: Io,
}

impl TcpStream {
    /// Connects to `addr`: an address, several, or a host name and a port (see
    /// [`ToSocketAddrs`]), with the system's resolver and happy eyeballs. The same as
    /// [`TcpConnector::new().connect(addr)`](TcpConnector::connect), which documents it.
    ///
    /// There is no timeout parameter: the enclosing scopes' deadlines apply (see the
    /// example).
    ///
    /// # Cancel safety
    ///
    /// As [`TcpConnector::connect`]: dropped, or stopped by the enclosing scope's
    /// cancellation, it leaves no connection behind (every socket it opened is closed).
    ///
    /// # Panics
    ///
    /// Outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// As [`TcpConnector::connect`]: the message names the target, and the error's
    /// payload is a [`ConnectError`](super::ConnectError) when the connection failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::net::{TcpListener, TcpStream};
    ///
    /// # hatchery_smol::run(async {
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let addr = listener.local_addr()?;
    /// // The deadline of a scope around it, not a parameter:
    /// let stream = hatchery::fail_after(Duration::from_secs(5), TcpStream::connect(addr)).await??;
    /// assert_eq!(stream.peer_addr()?, addr);
    /// # Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    /// # }).unwrap();
    /// ```
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        TcpConnector::new().connect(addr).await
    }

    /// Takes a connected `std::net::TcpStream` (made non-blocking here) and registers it
    /// with the current runtime's reactor.
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
    /// use hatchery::net::TcpStream;
    ///
    /// # hatchery_smol::run(async {
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let std_stream = std::net::TcpStream::connect(listener.local_addr()?)?;
    /// let stream = TcpStream::from_std(std_stream)?;
    /// assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        let fd = OwnedSocket::from(stream);
        sys::set_nonblocking(&fd)?;
        Ok(TcpStream::from_io(Io::new(fd)?))
    }

    pub(crate) fn from_io(io: Io) -> TcpStream {
        TcpStream { io }
    }

    read_methods!(
        "# hatchery_smol::run(async {\n\
         # use hatchery::net::{TcpListener, TcpStream};\n\
         # let listener = TcpListener::bind(\"127.0.0.1:0\").await?;\n\
         # let mut a = TcpStream::connect(listener.local_addr()?).await?;\n\
         # let (mut b, _) = listener.accept().await?;\n"
    );
    write_methods!(
        "# hatchery_smol::run(async {\n\
         # use hatchery::net::{TcpListener, TcpStream};\n\
         # let listener = TcpListener::bind(\"127.0.0.1:0\").await?;\n\
         # let mut a = TcpStream::connect(listener.local_addr()?).await?;\n\
         # let (mut b, _) = listener.accept().await?;\n"
    );

    /// Splits the stream into owned halves, for reading and writing from two tasks at
    /// once (see [`ReadHalf`]). Dropping the write half shuts down the writing side;
    /// [`ReadHalf::reunite`] puts the stream back together.
    ///
    /// # Examples
    ///
    /// See [`ReadHalf`].
    pub fn into_split(self) -> (ReadHalf<TcpStream>, WriteHalf<TcpStream>) {
        self.into_halves()
    }

    /// The local address of the connection.
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Examples
    ///
    /// ```
    /// # use hatchery::net::{TcpListener, TcpStream};
    /// # hatchery_smol::run(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// assert!(stream.local_addr()?.ip().is_loopback());
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// The address of the peer.
    ///
    /// # Errors
    ///
    /// The system's: `NotConnected` once the connection is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// # use hatchery::net::{TcpListener, TcpStream};
    /// # hatchery_smol::run(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.peer_addr()
    }

    /// Sets `TCP_NODELAY`: with `true`, small writes are sent at once rather than
    /// gathered (Nagle's algorithm off), which request/response protocols want. Off by
    /// default, as with std and tokio.
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Examples
    ///
    /// ```
    /// # use hatchery::net::{TcpListener, TcpStream};
    /// # hatchery_smol::run(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// stream.set_nodelay(true)?;
    /// assert!(stream.nodelay()?);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set (see [`set_nodelay`](TcpStream::set_nodelay)).
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Examples
    ///
    /// ```
    /// # use hatchery::net::{TcpListener, TcpStream};
    /// # hatchery_smol::run(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// assert!(!stream.nodelay()?); // the system's default
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.nodelay()
    }
}

impl_stream!(TcpStream);

/// A TCP socket that listens for connections.
///
/// [`bind`](TcpListener::bind) it, then [`accept`](TcpListener::accept) connections,
/// or hand it to [`serve`](super::serve), which runs a handler for each connection in a
/// nursery. Several tasks may accept from one listener (behind an `Arc`); each
/// connection goes to one of them, in the order they started waiting.
///
/// # Examples
///
/// ```
/// use hatchery::net::{TcpListener, TcpStream};
///
/// # hatchery_smol::run(async {
/// let listener = TcpListener::bind("127.0.0.1:0").await?; // port 0: any free port
/// let addr = listener.local_addr()?;
/// hatchery::nursery(|n| async move {
///     n.spawn(async move {
///         let (mut conn, _peer) = listener.accept().await?;
///         conn.write_all(b"welcome").await
///     });
///     let mut client = TcpStream::connect(addr).await?;
///     let mut buf = [0; 7];
///     client.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"welcome");
///     Ok::<_, std::io::Error>(())
/// })
/// .await?;
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct TcpListener {
    shared: Shared,
    /// Whose reactor the accepted connections are registered with.
    rt: Arc<dyn Runtime>,
}

impl TcpListener {
    /// Binds a listener to `addr` (see [`ToSocketAddrs`]; port 0 picks a free port). A
    /// host name is resolved with the system's resolver, and the first address that
    /// can be bound is.
    ///
    /// The socket reuses the address of connections still in `TIME_WAIT` (on Unix, as
    /// std's and tokio's listeners do), and listens with a backlog of 1024 (capped by
    /// the system). For other options, make a `std::net::TcpListener` (with `socket2`,
    /// say) and take it with [`from_std`](TcpListener::from_std).
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
    /// With the address in the message: `AddrInUse` when something else listens
    /// there, `AddrNotAvailable` for an address that is not this machine's; an invalid
    /// address string: `InvalidInput`; a runtime without an I/O reactor: `Unsupported`.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::net::TcpListener;
    ///
    /// # hatchery_smol::run(async {
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let addr = listener.local_addr()?;
    /// let err = TcpListener::bind(addr).await.unwrap_err(); // taken
    /// assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    /// assert!(err.to_string().contains(&addr.to_string()));
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        enter().await;
        let (addrs, _) = resolve(addr.target()?, None).await?;
        let rt = rt::with_current(|c| c.expect(rt::NO_RUNTIME).rt.clone());
        let mut last = None;
        for addr in addrs {
            match rt.network() {
                Some(network) => match network.bind_tcp(addr) {
                    Ok(listener) => return Ok(TcpListener::from_net(rt, listener)),
                    Err(e) => last = Some(cannot("bind", addr, e)),
                },
                None => match sys::bind_listener(&addr, false) {
                    Ok(fd) => return TcpListener::with_runtime(rt, fd),
                    Err(e) => last = Some(cannot("bind", addr, e)),
                },
            }
        }
        Err(last.expect("at least one address"))
    }

    /// Binds a listener to every address `addrs` resolves to (see [`ToSocketAddrs`]), on
    /// one port: several listeners, for [`serve`](super::serve) to serve at once (a `Vec`
    /// of listeners is a [`Listener`](super::Listener)).
    ///
    /// Port 0 picks **one port free on every address**: the system picks it for the
    /// first address, and it is tried on the others; if it is taken on one of them, every
    /// socket is closed and another port is tried (up to 16 times). An IPv6 socket is
    /// bound with `IPV6_V6ONLY`, so that `[::]:p` and `0.0.0.0:p` are two listeners that
    /// do not collide, as trio's `open_tcp_listeners` does. Duplicate addresses are bound
    /// once. Otherwise as [`bind`](TcpListener::bind); [`open_tcp_listeners`] binds every
    /// interface of both families.
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
    /// As [`bind`](TcpListener::bind), for the first address that cannot be bound (the
    /// others are closed then): every address must be bound.
    ///
    /// # Examples
    ///
    /// IPv6 and IPv4 loopback on one port:
    ///
    /// ```
    /// use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// use hatchery::net::TcpListener;
    ///
    /// # hatchery_smol::run(async {
    /// # if std::net::TcpListener::bind("[::1]:0").is_err() { return Ok(()); } // no IPv6
    /// let addrs = [
    ///     SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
    ///     SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    /// ];
    /// let listeners = TcpListener::bind_all(&addrs[..]).await?;
    /// assert_eq!(listeners.len(), 2);
    /// assert_eq!(listeners[0].local_addr()?.port(), listeners[1].local_addr()?.port());
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn bind_all(addrs: impl ToSocketAddrs) -> io::Result<Vec<TcpListener>> {
        enter().await;
        let (addrs, _) = resolve(addrs.target()?, None).await?;
        let rt = rt::with_current(|c| c.expect(rt::NO_RUNTIME).rt.clone());
        bind_on_one_port(&rt, &addrs, false)
    }

    /// Takes a listening `std::net::TcpListener` (made non-blocking here) and registers
    /// it with the current runtime's reactor.
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
    /// use hatchery::net::TcpListener;
    ///
    /// # hatchery_smol::run(async {
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = std_listener.local_addr()?;
    /// let listener = TcpListener::from_std(std_listener)?;
    /// assert_eq!(listener.local_addr()?, addr);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        let fd = OwnedSocket::from(listener);
        sys::set_nonblocking(&fd)?;
        let rt = rt::with_current(|c| c.expect(rt::NO_RUNTIME).rt.clone());
        TcpListener::with_runtime(rt, fd)
    }

    fn with_runtime(rt: Arc<dyn Runtime>, fd: OwnedSocket) -> io::Result<TcpListener> {
        let io = Io::with_runtime(&*rt, fd)?;
        Ok(TcpListener {
            shared: Shared::new(io),
            rt,
        })
    }

    /// A listener of the runtime's network.
    fn from_net(rt: Arc<dyn Runtime>, listener: Box<dyn NetListener>) -> TcpListener {
        TcpListener {
            shared: Shared::new(Io::Listener(listener)),
            rt,
        }
    }

    fn io(&self) -> &Io {
        &self.shared.io
    }

    /// Waits for a connection and accepts it: the stream, and the peer's address.
    ///
    /// Connections that were aborted before they could be accepted are skipped. The
    /// stream is registered with the reactor of the runtime the listener was made on.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a connection is accepted inside the one poll that returns it, so
    /// an accept that did not complete took none, and the connection waits for the
    /// next accept. If the enclosing scope is cancelled, the accept does not start, or
    /// stops waiting: it never completes, the scope drops it, and no connection is
    /// lost.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when the listener no longer listens (its socket was shut down);
    /// the system's when it is out of resources (`EMFILE`: too many open files;
    /// [`serve`](super::serve) waits and tries again); the reactor's if it has shut down.
    ///
    /// # Examples
    ///
    /// See [`TcpListener`].
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        if let Io::Listener(listener) = self.io() {
            let (stream, peer) = self
                .shared
                .net_op(Interest::Read, |cx| listener.poll_accept(cx))
                .await?;
            return Ok((TcpStream::from_io(Io::Stream(stream)), peer));
        }
        let (fd, addr) = self.shared.accept().await?;
        let io = Io::with_runtime(&*self.rt, fd)?;
        Ok((TcpStream { io }, sys::inet(addr)?))
    }

    /// The address the listener is bound to (with the port the system picked for port
    /// 0).
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let listener = hatchery::net::TcpListener::bind("127.0.0.1:0").await?;
    /// assert_ne!(listener.local_addr()?.port(), 0);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io().local_addr()
    }
}

impl super::Listener for TcpListener {
    type Stream = TcpStream;

    async fn accept_stream(&self) -> io::Result<TcpStream> {
        Ok(self.accept().await?.0)
    }
}

super::impl_as_socket!(TcpListener);

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_socket(f, "TcpListener", [("local", self.local_addr())], self.io())
    }
}

/// Binds a listener to every interface of both families, `[::]:port` (with
/// `IPV6_V6ONLY`) and `0.0.0.0:port`, on one port (port 0: one free on both), skipping a
/// family this machine does not have: trio's `open_tcp_listeners`.
///
/// The listeners go to [`serve`](super::serve) as they are (a `Vec` of listeners is a
/// [`Listener`](super::Listener)). For other addresses (loopback only, say), see
/// [`TcpListener::bind_all`].
///
/// A checkpoint: in a cancelled scope it does nothing.
///
/// # Cancel safety
///
/// It does not wait: dropped before it completed, or in a cancelled scope, it has bound
/// nothing.
///
/// # Panics
///
/// Outside a hatchery runtime.
///
/// # Errors
///
/// As [`TcpListener::bind`] (`AddrInUse` when the port is taken on either family);
/// `AddrNotAvailable` when neither family can be bound.
///
/// # Examples
///
/// ```no_run
/// use hatchery::net::{open_tcp_listeners, serve, TcpStream};
///
/// # hatchery_smol::run(async {
/// let listeners = open_tcp_listeners(8080).await?; // [::]:8080 and 0.0.0.0:8080
/// serve(listeners, |mut stream: TcpStream| async move {
///     stream.write_all(b"hello\n").await
/// })
/// .await?;
/// # Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
/// # }).unwrap();
/// ```
pub async fn open_tcp_listeners(port: u16) -> io::Result<Vec<TcpListener>> {
    enter().await;
    let rt = rt::with_current(|c| c.expect(rt::NO_RUNTIME).rt.clone());
    let addrs = [
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
    ];
    bind_on_one_port(&rt, &addrs, true)
}

/// How many ports [`bind_on_one_port`] tries for port 0 before it gives up.
const PORT_TRIES: usize = 16;

/// Binds a listener to each of `addrs` (without duplicates), the port-0 ones on one port;
/// with `skip_missing`, an address of a family this machine lacks is skipped.
fn bind_on_one_port(
    rt: &Arc<dyn Runtime>,
    addrs: &[SocketAddr],
    skip_missing: bool,
) -> io::Result<Vec<TcpListener>> {
    let mut unique: Vec<SocketAddr> = Vec::with_capacity(addrs.len());
    for a in addrs {
        if !unique.contains(a) {
            unique.push(*a);
        }
    }
    let mut tries = 1;
    'again: loop {
        let mut bound = Vec::with_capacity(unique.len());
        // The port the system picked for the first port-0 address.
        let mut picked: Option<u16> = None;
        for &addr in &unique {
            let mut at = addr;
            if let (0, Some(port)) = (addr.port(), picked) {
                at.set_port(port);
            }
            // The runtime's network, or the system's.
            let listener = match rt.network() {
                Some(network) => network
                    .bind_tcp(at)
                    .map(|l| TcpListener::from_net(rt.clone(), l)),
                None => sys::bind_listener(&at, true)
                    .and_then(|fd| TcpListener::with_runtime(rt.clone(), fd)),
            };
            match listener {
                Ok(listener) => {
                    if addr.port() == 0 && picked.is_none() {
                        picked = Some(listener.local_addr()?.port());
                    }
                    bound.push(listener);
                }
                Err(e) if skip_missing && sys::family_missing(&e) => {}
                // The picked port is taken on this address: try another (the sockets
                // bound so far close).
                Err(e)
                    if addr.port() == 0
                        && picked.is_some()
                        && e.kind() == io::ErrorKind::AddrInUse
                        && tries < PORT_TRIES =>
                {
                    tries += 1;
                    continue 'again;
                }
                Err(e) => return Err(cannot("bind", at, e)),
            }
        }
        if bound.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "cannot bind a listener: this machine has neither IPv6 nor IPv4",
            ));
        }
        return Ok(bound);
    }
}
