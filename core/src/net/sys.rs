//! The system calls of `hatchery::net`, on a borrowed socket, through rustix (safe: a
//! plain `&mut [u8]` to receive into). What differs between platforms is here and only
//! here.

use std::io;
use std::net::SocketAddr;

use rustix::net::{self as rn, AddressFamily, SendFlags, SocketAddrAny, SocketType};

use crate::seam::{BorrowedSocket, OwnedSocket};

/// The items of the first block where `$cfg` holds, those of the second elsewhere.
macro_rules! cfg_else {
    (#[cfg($cfg:meta)] { $($yes:item)* } else { $($no:item)* }) => {
        $(#[cfg($cfg)] $yes)*
        $(#[cfg(not($cfg))] $no)*
    };
}

cfg_else! {
    // Platforms whose `socket` and `accept4` take `SOCK_NONBLOCK | SOCK_CLOEXEC`, saving
    // a system call per socket.
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly",
        target_os = "illumos",
    ))]
    {
        fn flags() -> rn::SocketFlags {
            rn::SocketFlags::NONBLOCK | rn::SocketFlags::CLOEXEC
        }

        /// A new non-blocking, close-on-exec socket.
        pub(crate) fn socket(family: AddressFamily, ty: SocketType) -> io::Result<OwnedSocket> {
            Ok(rn::socket_with(family, ty, flags(), None)?)
        }

        /// Accepts a connection: a non-blocking, close-on-exec socket, and the peer's address.
        pub(crate) fn accept(
            fd: BorrowedSocket<'_>,
        ) -> io::Result<(OwnedSocket, Option<SocketAddrAny>)> {
            Ok(rn::acceptfrom_with(fd, flags())?)
        }

        /// A connected pair of Unix stream sockets.
        #[cfg(unix)]
        pub(crate) fn pair() -> io::Result<(OwnedSocket, OwnedSocket)> {
            Ok(rn::socketpair(AddressFamily::UNIX, SocketType::STREAM, flags(), None)?)
        }
    } else {
        /// A new non-blocking, close-on-exec socket.
        pub(crate) fn socket(family: AddressFamily, ty: SocketType) -> io::Result<OwnedSocket> {
            #[cfg(windows)]
            startup()?;
            let fd = rn::socket(family, ty, None)?;
            prepare(&fd)?;
            Ok(fd)
        }

        /// Accepts a connection: a non-blocking, close-on-exec socket, and the peer's address.
        pub(crate) fn accept(
            fd: BorrowedSocket<'_>,
        ) -> io::Result<(OwnedSocket, Option<SocketAddrAny>)> {
            let (fd, addr) = rn::acceptfrom(fd)?;
            prepare(&fd)?;
            Ok((fd, addr))
        }

        /// A connected pair of Unix stream sockets.
        #[cfg(unix)]
        pub(crate) fn pair() -> io::Result<(OwnedSocket, OwnedSocket)> {
            let no_flags = rn::SocketFlags::empty();
            let (a, b) = rn::socketpair(AddressFamily::UNIX, SocketType::STREAM, no_flags, None)?;
            prepare(&a)?;
            prepare(&b)?;
            Ok((a, b))
        }

        /// Non-blocking, close-on-exec, and without SIGPIPE where a socket option is the
        /// only way (Apple's systems, which have no `MSG_NOSIGNAL`).
        fn prepare(fd: &OwnedSocket) -> io::Result<()> {
            rustix::io::ioctl_fionbio(fd, true)?;
            #[cfg(unix)]
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
            #[cfg(target_vendor = "apple")]
            rn::sockopt::set_socket_nosigpipe(fd, true)?;
            Ok(())
        }
    }
}

/// Winsock must be started before the first socket call (std does it for its own
/// sockets; rustix leaves it to its caller).
#[cfg(windows)]
fn startup() -> io::Result<()> {
    static STARTED: std::sync::OnceLock<Result<(), rustix::io::Errno>> = std::sync::OnceLock::new();
    Ok((*STARTED.get_or_init(|| rn::wsa_startup().map(drop)))?)
}

/// Makes `socket` non-blocking (one that the caller made, with std).
pub(crate) fn set_nonblocking(fd: &OwnedSocket) -> io::Result<()> {
    rustix::io::ioctl_fionbio(fd, true)?;
    #[cfg(target_vendor = "apple")]
    rn::sockopt::set_socket_nosigpipe(fd, true)?;
    Ok(())
}

/// The address family of `addr`.
pub(crate) fn family(addr: &SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    }
}

/// Receives into `buf`.
#[inline]
pub(crate) fn recv(fd: BorrowedSocket<'_>, buf: &mut [u8]) -> io::Result<usize> {
    Ok(rn::recv(fd, buf, rn::RecvFlags::empty())?.0)
}

/// Sends from `buf`, without SIGPIPE where the platform has a flag for it (elsewhere the
/// socket has the option; see `prepare`): writing to a connection the peer has closed
/// is an error (`BrokenPipe`), never a signal that ends the process.
#[inline]
pub(crate) fn send(fd: BorrowedSocket<'_>, buf: &[u8]) -> io::Result<usize> {
    Ok(rn::send(fd, buf, no_signal())?)
}

/// Receives a datagram into `buf`, with its sender's address.
pub(crate) fn recv_from(
    fd: BorrowedSocket<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Option<SocketAddrAny>)> {
    let (n, _, from) = rn::recvfrom(fd, buf, rn::RecvFlags::empty())?;
    Ok((n, from))
}

/// Sends a datagram to `addr`.
pub(crate) fn send_to(fd: BorrowedSocket<'_>, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
    Ok(rn::sendto(fd, buf, no_signal(), addr)?)
}

#[inline]
fn no_signal() -> SendFlags {
    #[cfg(not(any(windows, target_vendor = "apple")))]
    return SendFlags::NOSIGNAL;
    #[cfg(any(windows, target_vendor = "apple"))]
    return SendFlags::empty();
}

/// Starts connecting to `addr`: `Ok(true)` if connected already, `Ok(false)` if the
/// connection is under way (wait until writable, then [`connected`]).
///
/// Call it before the socket is registered with a reactor: Linux reports a stream
/// socket that is neither connected nor connecting as hung up, and a reactor that sees
/// that event (tokio's keeps "read closed" for good) never waits for reading on the
/// socket again: its reads would spin.
pub(crate) fn start_connect(
    fd: impl rustix::fd::AsFd,
    addr: &impl rn::addr::SocketAddrArg,
) -> io::Result<bool> {
    match rn::connect(fd, addr) {
        Ok(()) => Ok(true),
        #[cfg(unix)]
        Err(rustix::io::Errno::INPROGRESS) => Ok(false),
        #[cfg(windows)]
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether a connection under way has finished: `Ok` once connected, its error if it
/// failed, and `WouldBlock` while it is still under way (after a spurious wake-up).
pub(crate) fn connected(fd: BorrowedSocket<'_>) -> io::Result<usize> {
    if let Err(e) = rn::sockopt::socket_error(fd)? {
        return Err(e.into());
    }
    match rn::getpeername(fd) {
        Ok(_) => Ok(0),
        Err(rustix::io::Errno::NOTCONN) => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e.into()),
    }
}

/// The address of a TCP or UDP socket, from what the system returned.
pub(crate) fn inet(addr: Option<SocketAddrAny>) -> io::Result<SocketAddr> {
    addr.and_then(|a| SocketAddr::try_from(a).ok())
        .ok_or_else(|| io::Error::other("hatchery: the system returned no internet address"))
}

/// The local address of a TCP or UDP socket.
pub(crate) fn local_addr(fd: BorrowedSocket<'_>) -> io::Result<SocketAddr> {
    inet(Some(rn::getsockname(fd)?))
}

/// The peer address of a connected TCP or UDP socket.
pub(crate) fn peer_addr(fd: BorrowedSocket<'_>) -> io::Result<SocketAddr> {
    inet(rn::getpeername(fd)?)
}

/// Shuts down the write side (half-close): the peer reads the end of the stream.
pub(crate) fn shutdown_write(fd: BorrowedSocket<'_>) -> io::Result<()> {
    Ok(rn::shutdown(fd, rn::Shutdown::Write)?)
}

/// A new UDP socket bound to `addr`.
pub(crate) fn bind_udp(addr: &SocketAddr) -> io::Result<OwnedSocket> {
    let fd = socket(family(addr), SocketType::DGRAM)?;
    rn::bind(&fd, addr)?;
    Ok(fd)
}

/// A new listening TCP socket bound to `addr`, reusing the address of connections in
/// TIME_WAIT (as std's and tokio's listeners do on Unix); with `v6only`, an IPv6 one only
/// for IPv6 (`IPV6_V6ONLY`), so that the same port can be bound on IPv4 by another.
pub(crate) fn bind_listener(addr: &SocketAddr, v6only: bool) -> io::Result<OwnedSocket> {
    let fd = socket(family(addr), SocketType::STREAM)?;
    #[cfg(unix)]
    rn::sockopt::set_socket_reuseaddr(&fd, true)?;
    if v6only && addr.is_ipv6() {
        rn::sockopt::set_ipv6_v6only(&fd, true)?;
    }
    rn::bind(&fd, addr)?;
    listen(&fd)?;
    Ok(fd)
}

/// Whether `e`, from making or binding a socket, says that this machine lacks the
/// address family (no IPv6: the family is not supported, or its wildcard address is
/// not available).
pub(crate) fn family_missing(e: &io::Error) -> bool {
    is_errno(e, rustix::io::Errno::AFNOSUPPORT) || e.kind() == io::ErrorKind::AddrNotAvailable
}

/// The backlog of hatchery's listeners (as tokio's; the system may cap it lower, at
/// `net.core.somaxconn` on Linux).
pub(crate) const BACKLOG: i32 = 1024;

/// Starts listening.
pub(crate) fn listen(fd: impl rustix::fd::AsFd) -> io::Result<()> {
    Ok(rn::listen(fd, BACKLOG)?)
}

/// Whether `e` is an error of `accept` that concerns only the connection being accepted
/// (it was aborted, or refused by a firewall, before we took it), not the listener:
/// `accept` tries the next connection instead.
pub(crate) fn accept_skippable(e: &io::Error) -> bool {
    #[cfg(unix)]
    let also = is_errno(e, rustix::io::Errno::PROTO) || is_errno(e, rustix::io::Errno::PERM);
    #[cfg(windows)]
    let also = false;
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
    ) || also
}

/// Whether `e` is the system's error `errno`.
pub(crate) fn is_errno(e: &io::Error, errno: rustix::io::Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

/// `Nodelay` of a TCP socket.
pub(crate) fn set_nodelay(fd: BorrowedSocket<'_>, on: bool) -> io::Result<()> {
    Ok(rn::sockopt::set_tcp_nodelay(fd, on)?)
}

pub(crate) fn nodelay(fd: BorrowedSocket<'_>) -> io::Result<bool> {
    Ok(rn::sockopt::tcp_nodelay(fd)?)
}
