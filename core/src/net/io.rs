//! A socket: registered with its runtime's reactor, or one of the runtime's own network
//! (`rt::Network`); and the operations every socket type shares: each one a checkpoint,
//! done inside one poll.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::context as rt;
use crate::seam::Runtime;
use crate::seam::{
    BorrowedSocket, Interest, NetDatagram, NetListener, NetStream, OwnedSocket, Registration,
};

use super::sys;

/// A socket: a registered descriptor (the registration owns it, and closes it when
/// dropped), or a socket of the runtime's own network (dropping it closes it).
///
/// `pub` only for the sealed trait of the stream types (`SplitStream`), which returns
/// it; the module is private.
#[allow(unreachable_pub)]
pub enum Io {
    /// A descriptor registered with the runtime's reactor.
    Sys(Box<dyn Registration>),
    /// A TCP connection of the runtime's network.
    Stream(Box<dyn NetStream>),
    /// A TCP listener of the runtime's network.
    Listener(Box<dyn NetListener>),
    /// A UDP socket of the runtime's network.
    Datagram(Box<dyn NetDatagram>),
}

/// Why `rt` cannot open sockets of the system: it names the runtime (`hatchery-sim`, the
/// simulator, says so), and says whether it has a network of its own.
fn no_reactor(rt: &dyn Runtime) -> io::Error {
    let name = rt.name();
    let why = match rt.network() {
        Some(_) => format!(
            "hatchery: this runtime (`{name}`) has a network of its own and no I/O \
             reactor: TCP and UDP sockets opened with `bind` and `connect` talk to its \
             network, but a socket or descriptor of the system (`from_std`, a Unix \
             socket, `io::Async`, a child process's pipes) cannot be used on it"
        ),
        None => format!(
            "hatchery: this runtime (`{name}`) has no I/O reactor, so it cannot open \
             sockets (its `Runtime::reactor` returns `None`). Run on an adapter that \
             provides one (`hatchery_tokio` on Unix, `hatchery_smol`), or, in a runtime \
             binding of your own, return `hatchery_smol::AsyncIoReactor` (async-io's \
             reactor, which runs on any executor) from `Runtime::reactor`."
        ),
    };
    io::Error::new(io::ErrorKind::Unsupported, why)
}

/// The current runtime, if it has a network of its own (`Runtime::network`).
///
/// # Panics
///
/// Outside a hatchery runtime.
pub(crate) fn current_network() -> Option<Arc<dyn Runtime>> {
    rt::with_current(|c| {
        let rt = c.expect(rt::NO_RUNTIME).rt;
        rt.network().is_some().then(|| rt.clone())
    })
}

/// The message of a descriptor asked of a socket of a runtime's own network.
const NO_DESCRIPTOR: &str = "hatchery: this socket belongs to the runtime's own network \
(`Runtime::network`: the simulator's, under `hatchery-sim`), which has no descriptors: \
`AsFd`, `AsRawFd` and socket options of the system cannot reach it";

impl Io {
    /// Registers `fd` with the reactor of the runtime of the code being polled.
    ///
    /// # Panics
    ///
    /// Outside a hatchery runtime.
    pub(crate) fn new(fd: OwnedSocket) -> io::Result<Io> {
        rt::with_current(|c| Io::with_runtime(&**c.expect(rt::NO_RUNTIME).rt, fd))
    }

    /// Fails as [`Io::new`] would, before a socket is made (so that a connect with
    /// nothing to register its socket with sends nothing).
    ///
    /// # Panics
    ///
    /// Outside a hatchery runtime.
    pub(crate) fn check_reactor() -> io::Result<()> {
        rt::with_current(|c| {
            let rt = &**c.expect(rt::NO_RUNTIME).rt;
            rt.reactor().map(drop).ok_or_else(|| no_reactor(rt))
        })
    }

    /// Registers `fd` with `rt`'s reactor.
    pub(crate) fn with_runtime(rt: &dyn Runtime, fd: OwnedSocket) -> io::Result<Io> {
        let reactor = rt.reactor().ok_or_else(|| no_reactor(rt))?;
        Ok(Io::Sys(reactor.register(fd)?))
    }

    /// The socket, for system calls.
    ///
    /// # Panics
    ///
    /// For a socket of the runtime's own network, which has none.
    #[inline]
    pub(crate) fn fd(&self) -> BorrowedSocket<'_> {
        match self {
            Io::Sys(reg) => reg.socket(),
            _ => panic!("{NO_DESCRIPTOR}"),
        }
    }

    /// The local address of a TCP or UDP socket.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Io::Sys(reg) => sys::local_addr(reg.socket()),
            Io::Stream(s) => s.local_addr(),
            Io::Listener(l) => l.local_addr(),
            Io::Datagram(d) => d.local_addr(),
        }
    }

    /// The peer address of a connected TCP or UDP socket.
    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Io::Sys(reg) => sys::peer_addr(reg.socket()),
            Io::Stream(s) => s.peer_addr(),
            Io::Datagram(d) => d.peer_addr(),
            Io::Listener(_) => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// `TCP_NODELAY` of a TCP stream.
    pub(crate) fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self {
            Io::Stream(s) => s.set_nodelay(on),
            _ => sys::set_nodelay(self.fd(), on),
        }
    }

    pub(crate) fn nodelay(&self) -> io::Result<bool> {
        match self {
            Io::Stream(s) => s.nodelay(),
            _ => sys::nodelay(self.fd()),
        }
    }

    /// One operation: a checkpoint (a cancelled scope stops it before `op` runs), then
    /// `op` once the socket may be ready for `interest`, inside this one poll.
    #[inline]
    pub(crate) fn poll_op(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        op: &mut dyn FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        // Nothing done in a cancelled scope, which drops the operation here.
        checked(|| match self {
            Io::Sys(reg) => reg.poll_io(cx, interest, op),
            _ => panic!("{NO_DESCRIPTOR}"),
        })
    }

    /// [`Io::poll_op`] with a value of any type (the seam's operations return a `usize`).
    pub(crate) fn poll_with<R>(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let mut out = None;
        let done = self.poll_op(cx, interest, &mut || {
            out = Some(op()?);
            Ok(0)
        });
        done.map_ok(|_| out.expect("an operation that succeeded left its value"))
    }

    /// Reads into `buf` (a stream's read: datagram sockets receive through
    /// [`Shared::op`]).
    #[inline]
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            // Nothing to read into: 0 at once, nothing consumed. (A non-blocking
            // `recv` of zero bytes from a stream answers `EAGAIN` while no data is
            // there, so the system call would make it wait for data it cannot take.)
            return checked(|| Poll::Ready(Ok(0)));
        }
        match self {
            Io::Stream(s) => checked(|| s.poll_read(cx, buf)),
            _ => {
                let fd = self.fd();
                self.poll_op(cx, Interest::Read, &mut || sys::recv(fd, buf))
            }
        }
    }

    /// Writes from `buf`.
    #[inline]
    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            // A zero-length send is a no-op; don't wait for writability to do nothing.
            return checked(|| Poll::Ready(Ok(0)));
        }
        match self {
            Io::Stream(s) => checked(|| s.poll_write(cx, buf)),
            _ => {
                let fd = self.fd();
                self.poll_op(cx, Interest::Write, &mut || sys::send(fd, buf))
            }
        }
    }

    /// Shuts down the write side: a checkpoint, then at once.
    pub(crate) fn poll_shutdown(&self) -> Poll<io::Result<()>> {
        checked(|| Poll::Ready(self.shutdown_now()))
    }

    /// Shuts down the write side, at once (no checkpoint: a dropped write half's).
    pub(crate) fn shutdown_now(&self) -> io::Result<()> {
        match self {
            Io::Stream(s) => s.shutdown_write(),
            _ => sys::shutdown_write(self.fd()),
        }
    }

    /// Waits for a connection under way (of the runtime's network, or a registered socket
    /// whose connect did not complete at once) to be established: a checkpoint at each
    /// poll.
    pub(crate) async fn connected(&self) -> io::Result<()> {
        match self {
            Io::Stream(s) => poll_fn(|cx| checked(|| s.poll_connect(cx))).await,
            _ => {
                let fd = self.fd();
                poll_fn(|cx| self.poll_op(cx, Interest::Write, &mut || sys::connected(fd))).await?;
                Ok(())
            }
        }
    }

    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    pub(crate) async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        read_exact_with(buf, |cx, buf| self.poll_read(cx, buf)).await
    }

    pub(crate) async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_write(cx, buf)).await
    }

    pub(crate) async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        write_all_with(buf, |cx, buf| self.poll_write(cx, buf)).await
    }

    pub(crate) async fn shutdown(&self) -> io::Result<()> {
        poll_fn(|_| self.poll_shutdown()).await
    }
}

/// A checkpoint (`Pending`, and nothing done, in a cancelled scope), then `op`: one
/// operation, or a stream operation on an empty buffer (`Ok(0)` at once, with no system
/// call).
#[inline]
fn checked<T>(op: impl FnOnce() -> Poll<T>) -> Poll<T> {
    if rt::current_cancelled() {
        return Poll::Pending;
    }
    op()
}

/// The `Debug` of a socket type: `name`, those of its `addrs` it has, its socket.
pub(crate) fn fmt_socket<A: fmt::Debug, const N: usize>(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    addrs: [(&str, io::Result<A>); N],
    io: &Io,
) -> fmt::Result {
    let mut d = f.debug_struct(name);
    for (field, addr) in addrs {
        if let Ok(addr) = addr {
            d.field(field, &addr);
        }
    }
    d.field("socket", io).finish()
}

impl fmt::Debug for Io {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Io::Sys(reg) => fmt::Debug::fmt(&reg.socket(), f),
            Io::Stream(s) => fmt::Debug::fmt(&**s, f),
            Io::Listener(l) => fmt::Debug::fmt(&**l, f),
            Io::Datagram(d) => fmt::Debug::fmt(&**d, f),
        }
    }
}

/// Reads until `buf` is full, one `poll` (a read) after another: `UnexpectedEof` if one
/// reads nothing. The sockets' and the files' `read_exact`.
pub(crate) async fn read_exact_with(
    mut buf: &mut [u8],
    mut poll: impl FnMut(&mut Context<'_>, &mut [u8]) -> Poll<io::Result<usize>>,
) -> io::Result<()> {
    while !buf.is_empty() {
        match poll_fn(|cx| poll(cx, buf)).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => buf = &mut buf[n..],
        }
    }
    Ok(())
}

/// Writes all of `buf`, one `poll` (a write) after another: `WriteZero` if one writes
/// nothing. The sockets', the files' and the pipes' `write_all`.
pub(crate) async fn write_all_with(
    mut buf: &[u8],
    mut poll: impl FnMut(&mut Context<'_>, &[u8]) -> Poll<io::Result<usize>>,
) -> io::Result<()> {
    while !buf.is_empty() {
        match poll_fn(|cx| poll(cx, buf)).await? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => buf = &buf[n..],
        }
    }
    Ok(())
}

/// A checkpoint that never yields: `Pending` for good in a cancelled scope (which drops
/// the operation there), `Ready` at once otherwise. Every async operation of
/// `hatchery::net` starts with one, so that a cancelled scope stops it before it does
/// anything (opens a socket, sends a SYN).
#[inline]
pub(crate) fn enter() -> impl Future<Output = ()> {
    poll_fn(|_| checked(|| Poll::Ready(())))
}

/// Operations on a socket that several tasks may share (`&self`: accepting, sending
/// and receiving datagrams). A reactor keeps one waiter per interest, so the waiters of
/// one interest take turns: a FIFO lock each, held while waiting for readiness.
pub(crate) struct Shared {
    pub(crate) io: Io,
    read: async_lock::Mutex<()>,
    write: async_lock::Mutex<()>,
}

impl Shared {
    pub(crate) fn new(io: Io) -> Shared {
        Shared {
            io,
            read: async_lock::Mutex::new(()),
            write: async_lock::Mutex::new(()),
        }
    }

    /// Runs `op` as an operation for `interest`, after the tasks that were waiting for
    /// the same interest before.
    pub(crate) async fn op<R>(
        &self,
        interest: Interest,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        let _turn = self.turn(interest).await;
        poll_fn(|cx| self.io.poll_with(cx, interest, &mut op)).await
    }

    /// Runs `op`, an operation on a socket of the runtime's network, as [`Shared::op`]
    /// does: a checkpoint, then its turn among the tasks waiting for `interest`, then
    /// `op` polled (a checkpoint at each poll) until it completes.
    pub(crate) async fn net_op<T>(
        &self,
        interest: Interest,
        mut op: impl FnMut(&mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> io::Result<T> {
        let _turn = self.turn(interest).await;
        poll_fn(|cx| checked(|| op(cx))).await
    }

    /// A checkpoint, then this task's turn among the tasks waiting for `interest`.
    async fn turn(&self, interest: Interest) -> async_lock::MutexGuard<'_, ()> {
        enter().await;
        match interest {
            Interest::Write => self.write.lock().await,
            _ => self.read.lock().await,
        }
    }
}

impl Shared {
    /// Accepts a connection (skipping those aborted before they could be), inside one
    /// poll: an accept that returns `Pending` took none.
    pub(crate) async fn accept(
        &self,
    ) -> io::Result<(OwnedSocket, Option<rustix::net::SocketAddrAny>)> {
        let fd = self.io.fd();
        self.op(Interest::Read, || loop {
            match sys::accept(fd) {
                Err(e) if sys::accept_skippable(&e) => continue,
                Err(e) if sys::is_errno(&e, rustix::io::Errno::INVAL) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "accept on a listener that no longer listens (its socket was shut down)",
                    ))
                }
                accepted => return accepted,
            }
        })
        .await
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.io, f)
    }
}

/// Implements `futures_io::AsyncRead` or `AsyncWrite`, and tokio's with the `tokio-io`
/// feature, for an `Unpin` type, from closure-like expressions over `this: &mut Self`:
///
/// ```text
/// impl_async_io!(read #[doc = ".."]* [generics] Type, |this, cx, buf| poll_read);
/// impl_async_io!(write #[doc = ".."]* [generics] Type,
///     |this, cx, buf| poll_write,
///     flush |this, cx| poll_flush,
///     shutdown |this, cx| poll_close_or_shutdown,
/// );
/// ```
///
/// The attributes (the impls' docs) go on both traits' impls. Tokio's `poll_read` reads
/// into the unfilled part of its buffer through the futures impl.
macro_rules! impl_async_io {
    (
        read $(#[$attr:meta])* [$($gen:tt)*] $ty:ty,
        |$this:ident, $cx:ident, $buf:ident| $read:expr
    ) => {
        $(#[$attr])*
        impl<$($gen)*> futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                $cx: &mut std::task::Context<'_>,
                $buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = self.get_mut();
                $read
            }
        }

        $(#[$attr])*
        #[cfg(feature = "tokio-io")]
        impl<$($gen)*> tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let unfilled = buf.initialize_unfilled();
                let n = std::task::ready!(futures_io::AsyncRead::poll_read(self, cx, unfilled))?;
                buf.advance(n);
                std::task::Poll::Ready(Ok(()))
            }
        }
    };
    (
        write $(#[$attr:meta])* [$($gen:tt)*] $ty:ty,
        |$this:ident, $cx:ident, $buf:ident| $write:expr,
        flush |$fthis:ident, $fcx:ident| $flush:expr,
        shutdown |$sthis:ident, $scx:ident| $shutdown:expr $(,)?
    ) => {
        $crate::net::impl_async_io!(
            @write $(#[$attr])* futures_io::AsyncWrite, poll_close, [$($gen)*] $ty,
            |$this, $cx, $buf| $write, |$fthis, $fcx| $flush, |$sthis, $scx| $shutdown
        );
        $crate::net::impl_async_io!(
            @write $(#[$attr])* #[cfg(feature = "tokio-io")] tokio::io::AsyncWrite,
            poll_shutdown, [$($gen)*] $ty,
            |$this, $cx, $buf| $write, |$fthis, $fcx| $flush, |$sthis, $scx| $shutdown
        );
    };
    // The write traits, which differ only in the name of the method that shuts down.
    (
        @write $(#[$attr:meta])* $trait:path, $shutdown_fn:ident, [$($gen:tt)*] $ty:ty,
        |$this:ident, $cx:ident, $buf:ident| $write:expr,
        |$fthis:ident, $fcx:ident| $flush:expr,
        |$sthis:ident, $scx:ident| $shutdown:expr
    ) => {
        $(#[$attr])*
        impl<$($gen)*> $trait for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                $cx: &mut std::task::Context<'_>,
                $buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = self.get_mut();
                $write
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                $fcx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let $fthis = self.get_mut();
                $flush
            }

            fn $shutdown_fn(
                self: std::pin::Pin<&mut Self>,
                $scx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let $sthis = self.get_mut();
                $shutdown
            }
        }
    };
}

pub(crate) use impl_async_io;
