//! Unix domain sockets: `UnixStream`, `UnixListener`, `UnixSocketAddr`.

use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::net::{self as rn, AddressFamily, SocketAddrUnix, SocketType};

use super::addr::cannot;
use super::io::{enter, fmt_socket, Io, Shared};
use super::stream::{impl_stream, read_methods, write_methods};
use super::stream::{ReadHalf, Sealed, SplitStream, WriteHalf};
use super::sys;
use crate::context as rt;
use crate::seam::{OwnedSocket, Runtime};

/// A connection on a Unix domain socket (Unix only).
///
/// The same reading, writing and cancellation rules as [`TcpStream`](super::TcpStream):
/// see there. Open one with [`connect`](UnixStream::connect), get one from
/// [`UnixListener::accept`], or make a connected [`pair`](UnixStream::pair).
///
/// # Examples
///
/// ```
/// use hatchery::net::UnixStream;
///
/// # hatchery_smol::run(async {
/// let (mut a, mut b) = UnixStream::pair()?;
/// a.write_all(b"ping").await?;
/// let mut buf = [0; 4];
/// b.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"ping");
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct UnixStream {
    io: Io,
}

impl UnixStream {
    /// Connects to the listener at `path`.
    ///
    /// A checkpoint: in a cancelled scope it does nothing.
    ///
    /// # Cancel safety
    ///
    /// Dropped, or stopped by the enclosing scope's cancellation, it leaves no
    /// connection behind (its socket is closed).
    ///
    /// # Panics
    ///
    /// Outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// With the path in the message: `NotFound` if nothing is there,
    /// `ConnectionRefused` if nothing listens there, `ResourceBusy` if the listener's
    /// backlog is full (a Unix socket's connect fails at once then, where TCP's would
    /// wait); `InvalidInput` for a path too long for a socket address.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::net::{UnixListener, UnixStream};
    ///
    /// # hatchery_smol::run(async {
    /// let dir = std::env::temp_dir().join(format!("hatchery-doc-connect-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&dir);
    /// let listener = UnixListener::bind(&dir)?;
    /// let stream = UnixStream::connect(&dir).await?;
    /// assert_eq!(stream.peer_addr()?.as_pathname(), Some(dir.as_path()));
    /// # drop(listener);
    /// # std::fs::remove_file(&dir)?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        enter().await;
        let path = path.as_ref();
        let named = |e| cannot("connect", path.display(), e);
        let addr = unix_addr(path)?;
        Io::check_reactor()?;
        let fd = sys::socket(AddressFamily::UNIX, SocketType::STREAM)?;
        // Registered once connecting, not before (see `start_connect`).
        let started = sys::start_connect(&fd, &addr);
        let io = Io::new(fd)?;
        match started {
            Ok(true) => {}
            Ok(false) => io.connected().await.map_err(named)?,
            // A Unix socket's connect does not wait: a full backlog is an error at once.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let full = "the listener's backlog is full";
                return Err(named(io::Error::new(io::ErrorKind::ResourceBusy, full)));
            }
            Err(e) => return Err(named(e)),
        }
        Ok(UnixStream { io })
    }

    /// A pair of connected streams, each the other's peer (`socketpair`).
    ///
    /// # Panics
    ///
    /// Outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// The system's; a runtime without an I/O reactor: `Unsupported`.
    ///
    /// # Examples
    ///
    /// See [`UnixStream`].
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = sys::pair()?;
        Ok((
            UnixStream { io: Io::new(a)? },
            UnixStream { io: Io::new(b)? },
        ))
    }

    /// Takes a connected `std::os::unix::net::UnixStream` (made non-blocking here) and
    /// registers it with the current runtime's reactor.
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
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let stream = hatchery::net::UnixStream::from_std(a)?;
    /// assert!(stream.local_addr()?.is_unnamed());
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        let fd = OwnedSocket::from(stream);
        sys::set_nonblocking(&fd)?;
        Ok(UnixStream { io: Io::new(fd)? })
    }

    read_methods!(
        "# hatchery_smol::run(async {\n\
         # let (mut a, mut b) = hatchery::net::UnixStream::pair()?;\n"
    );
    write_methods!(
        "# hatchery_smol::run(async {\n\
         # let (mut a, mut b) = hatchery::net::UnixStream::pair()?;\n"
    );

    /// Splits the stream into owned halves, for reading and writing from two tasks at
    /// once (see [`ReadHalf`]). Dropping the write half shuts down the writing side;
    /// [`ReadHalf::reunite`] puts the stream back together.
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let (a, mut b) = hatchery::net::UnixStream::pair()?;
    /// let (mut reader, writer) = a.into_split();
    /// drop(writer); // b reads the end of the stream
    /// let mut buf = [0; 1];
    /// assert_eq!(b.read(&mut buf).await?, 0);
    /// b.write_all(b"!").await?;
    /// reader.read_exact(&mut buf).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn into_split(self) -> (ReadHalf<UnixStream>, WriteHalf<UnixStream>) {
        self.into_halves()
    }

    /// The local address (usually unnamed, for a stream that connected).
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Examples
    ///
    /// See [`from_std`](UnixStream::from_std).
    pub fn local_addr(&self) -> io::Result<UnixSocketAddr> {
        UnixSocketAddr::from_any(Some(rn::getsockname(self.io.fd())?))
    }

    /// The peer's address (the listener's path, for a stream that connected).
    ///
    /// # Errors
    ///
    /// The system's: `NotConnected` once the connection is gone.
    ///
    /// # Examples
    ///
    /// See [`connect`](UnixStream::connect).
    pub fn peer_addr(&self) -> io::Result<UnixSocketAddr> {
        UnixSocketAddr::from_any(rn::getpeername(self.io.fd())?)
    }
}

impl_stream!(UnixStream);

/// A Unix domain socket that listens for connections (Unix only).
///
/// The same rules as [`TcpListener`](super::TcpListener): see there. The socket file
/// stays after the listener is dropped (as with std and tokio): remove it yourself.
///
/// # Examples
///
/// ```
/// use hatchery::net::{UnixListener, UnixStream};
///
/// # hatchery_smol::run(async {
/// let path = std::env::temp_dir().join(format!("hatchery-doc-listener-{}", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// let listener = UnixListener::bind(&path)?;
/// let mut client = UnixStream::connect(&path).await?;
/// let (mut server, _) = listener.accept().await?;
/// client.write_all(b"hi").await?;
/// let mut buf = [0; 2];
/// server.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"hi");
/// std::fs::remove_file(&path)?;
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct UnixListener {
    shared: Shared,
    /// Whose reactor the accepted connections are registered with.
    rt: Arc<dyn Runtime>,
}

impl UnixListener {
    /// Creates a socket file at `path` and listens there (backlog 1024, capped by the
    /// system).
    ///
    /// # Panics
    ///
    /// Outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// With the path in the message: `AddrInUse` if the file exists (a socket left
    /// behind: remove it first), `NotFound` if its directory does not exist,
    /// `InvalidInput` for a path too long for a socket address; a runtime without an I/O
    /// reactor: `Unsupported`.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::net::UnixListener;
    ///
    /// # hatchery_smol::run(async {
    /// let path = std::env::temp_dir().join(format!("hatchery-doc-bind-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path)?;
    /// let err = UnixListener::bind(&path).unwrap_err(); // the file is there
    /// assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    /// std::fs::remove_file(&path)?;
    /// # drop(listener);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let path = path.as_ref();
        let addr = unix_addr(path)?;
        Io::check_reactor()?;
        let fd = sys::socket(AddressFamily::UNIX, SocketType::STREAM)?;
        rn::bind(&fd, &addr)
            .map_err(io::Error::from)
            .and_then(|()| sys::listen(&fd))
            .map_err(|e| cannot("bind", path.display(), e))?;
        UnixListener::from_fd(fd)
    }

    /// Takes a listening `std::os::unix::net::UnixListener` (made non-blocking here) and
    /// registers it with the current runtime's reactor.
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
    /// let path = std::env::temp_dir().join(format!("hatchery-doc-from-std-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let std_listener = std::os::unix::net::UnixListener::bind(&path)?;
    /// let listener = hatchery::net::UnixListener::from_std(std_listener)?;
    /// assert_eq!(listener.local_addr()?.as_pathname(), Some(path.as_path()));
    /// std::fs::remove_file(&path)?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        let fd = OwnedSocket::from(listener);
        sys::set_nonblocking(&fd)?;
        UnixListener::from_fd(fd)
    }

    fn from_fd(fd: OwnedSocket) -> io::Result<UnixListener> {
        let rt = rt::with_current(|c| c.expect(rt::NO_RUNTIME).rt.clone());
        let io = Io::with_runtime(&*rt, fd)?;
        Ok(UnixListener {
            shared: Shared::new(io),
            rt,
        })
    }

    fn io(&self) -> &Io {
        &self.shared.io
    }

    /// Waits for a connection and accepts it: the stream, and the peer's address
    /// (usually unnamed).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`TcpListener::accept`](super::TcpListener::accept): an accept that
    /// did not complete took no connection. If the enclosing scope is cancelled, it
    /// does not start, or stops waiting: it never completes, and no connection is lost.
    ///
    /// # Errors
    ///
    /// As [`TcpListener::accept`](super::TcpListener::accept).
    ///
    /// # Examples
    ///
    /// See [`UnixListener`].
    pub async fn accept(&self) -> io::Result<(UnixStream, UnixSocketAddr)> {
        let (fd, addr) = self.shared.accept().await?;
        let io = Io::with_runtime(&*self.rt, fd)?;
        Ok((UnixStream { io }, UnixSocketAddr::from_any(addr)?))
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Examples
    ///
    /// See [`from_std`](UnixListener::from_std).
    pub fn local_addr(&self) -> io::Result<UnixSocketAddr> {
        UnixSocketAddr::from_any(Some(rn::getsockname(self.io().fd())?))
    }
}

impl super::Listener for UnixListener {
    type Stream = UnixStream;

    async fn accept_stream(&self) -> io::Result<UnixStream> {
        Ok(self.accept().await?.0)
    }
}

super::impl_as_socket!(UnixListener);

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_socket(f, "UnixListener", [("local", self.local_addr())], self.io())
    }
}

/// The address of a Unix domain socket: a path, an abstract name (Linux), or unnamed.
///
/// # Examples
///
/// ```
/// # hatchery_smol::run(async {
/// let (a, _b) = hatchery::net::UnixStream::pair()?;
/// let addr = a.local_addr()?;
/// assert!(addr.is_unnamed() && addr.as_pathname().is_none());
/// assert_eq!(format!("{addr:?}"), "(unnamed)");
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UnixSocketAddr {
    kind: AddrKind,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum AddrKind {
    Path(PathBuf),
    Abstract(Vec<u8>),
    Unnamed,
}

impl UnixSocketAddr {
    fn from_any(addr: Option<rn::SocketAddrAny>) -> io::Result<UnixSocketAddr> {
        let Some(addr) = addr else {
            return Ok(UnixSocketAddr {
                kind: AddrKind::Unnamed,
            });
        };
        let addr = SocketAddrUnix::try_from(addr)
            .map_err(|_| io::Error::other("hatchery: the system returned no Unix address"))?;
        let kind = if let Some(path) = addr.path_bytes() {
            AddrKind::Path(PathBuf::from(std::ffi::OsStr::from_bytes(path)))
        } else if let Some(name) = abstract_name(&addr).filter(|n| !n.is_empty()) {
            // (An empty one is how rustix reads an unnamed address on Linux.)
            AddrKind::Abstract(name.to_vec())
        } else {
            AddrKind::Unnamed
        };
        Ok(UnixSocketAddr { kind })
    }

    /// The path, if the address is one.
    ///
    /// # Examples
    ///
    /// See [`UnixListener::from_std`].
    pub fn as_pathname(&self) -> Option<&Path> {
        match &self.kind {
            AddrKind::Path(p) => Some(p),
            _ => None,
        }
    }

    /// The name in Linux's abstract namespace, if the address is one.
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let (a, _b) = hatchery::net::UnixStream::pair()?;
    /// assert_eq!(a.local_addr()?.as_abstract_name(), None);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn as_abstract_name(&self) -> Option<&[u8]> {
        match &self.kind {
            AddrKind::Abstract(n) => Some(n),
            _ => None,
        }
    }

    /// Whether the address is unnamed (a socket that never bound, as a client's).
    ///
    /// # Examples
    ///
    /// See [`UnixSocketAddr`].
    pub fn is_unnamed(&self) -> bool {
        self.kind == AddrKind::Unnamed
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_name(addr: &SocketAddrUnix) -> Option<&[u8]> {
    addr.abstract_name()
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_name(_: &SocketAddrUnix) -> Option<&[u8]> {
    None
}

impl fmt::Debug for UnixSocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            AddrKind::Path(p) => write!(f, "{p:?} (pathname)"),
            AddrKind::Abstract(n) => write!(f, "\"{}\" (abstract)", n.escape_ascii()),
            AddrKind::Unnamed => f.write_str("(unnamed)"),
        }
    }
}

/// The socket address of `path`.
fn unix_addr(path: &Path) -> io::Result<SocketAddrUnix> {
    SocketAddrUnix::new(path.as_os_str().as_bytes()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "invalid Unix socket path {}: {e} (too long?)",
                path.display()
            ),
        )
    })
}
