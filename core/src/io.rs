//! Any file descriptor on any executor: [`Async`] registers a descriptor that hatchery
//! did not open (a pipe, an eventfd, an inotify descriptor, a C library's socket) with
//! the runtime's reactor, and waits until it is readable or writable.
//!
//! This is hatchery's `tokio::io::unix::AsyncFd` and `async_io::Async`, for every runtime
//! hatchery is bound to: on `hatchery-tokio` the descriptor is registered with tokio's
//! reactor, on `hatchery-smol` with async-io's (see [`rt::Reactor`](crate::rt::Reactor)).
//! A library that wraps a C library's descriptor depends on `hatchery` alone.
//!
//! | | |
//! |---|---|
//! | [`Async::new`] | take an object that owns a descriptor, make it non-blocking, register it |
//! | [`Async::readable`], [`Async::writable`] | wait until it is readable, writable (trio's and anyio's `wait_readable`, `wait_writable`) |
//! | [`Async::read_with`], [`Async::write_with`] | run a non-blocking operation, waiting and trying again while it would block |
//! | [`Async::into_inner`] | the object back, the descriptor deregistered (still non-blocking) |
//!
//! `Async<T>` also implements futures-io's `AsyncRead` and `AsyncWrite` (and tokio's,
//! with the `tokio-io` feature) when `T` implements `std::io::Read` and `Write`.
//!
//! ```
//! # #[cfg(unix)] {
//! use std::io::{Read, Write};
//! use std::os::unix::net::UnixStream;
//! use hatchery::io::Async;
//!
//! # hatchery_smol::run(async {
//! let (a, mut b) = UnixStream::pair()?;
//! let a = Async::new(a)?;
//! b.write_all(b"ping")?;
//! let mut buf = [0; 4];
//! let n = a.read_with(|mut s| s.read(&mut buf)).await?;
//! assert_eq!(&buf[..n], b"ping");
//! # Ok::<_, std::io::Error>(())
//! # }).unwrap();
//! # }
//! ```
//!
//! # Cancellation
//!
//! Every operation is a checkpoint, as every other I/O operation (rule X10): in a
//! cancelled scope it does not start, and one that waits stops waiting when its scope is cancelled; the scope drops it
//! there. Since the operation closure runs only inside the one poll that returns its
//! result, an operation that did not complete did nothing.
//!
//! # Which descriptors
//!
//! Those the system can wait on: pipes, sockets, FIFOs, terminals, eventfd, timerfd,
//! signalfd, inotify, pidfd (Linux), and the like. A regular file or a directory is
//! always ready as far as the system is concerned, and Linux's epoll refuses them:
//! [`Async::new`] then fails with an error of kind
//! [`Unsupported`](std::io::ErrorKind::Unsupported) that says so (read files with
//! [`to_thread`](crate::to_thread), or with `hatchery::fs`). On Windows only sockets can
//! be registered.

use std::fmt;
use std::io;
use std::task::{Context, Poll};

use crate::net::{Io, Shared};
use crate::seam::{AsSocket, BorrowedSocket, Interest, OwnedSocket};

/// A descriptor registered with the runtime's reactor, for waiting until it is readable
/// or writable, and for running non-blocking operations on it.
///
/// `T` is any object that owns a descriptor ([`AsFd`](std::os::fd::AsFd) on Unix,
/// `AsSocket` on Windows): a `File` opened on a pipe or
/// FIFO, an `OwnedFd` from a C library, a std socket. [`Async::new`] makes the descriptor
/// non-blocking and registers a duplicate of it with the reactor, so that `T` stays yours:
/// [`into_inner`](Async::into_inner) deregisters the duplicate and gives `T` back. (The
/// duplicate shares the descriptor's open file, so the two see the same readiness; it
/// costs one more descriptor while registered.)
///
/// Several tasks may wait on one `Async` at once (it is `Sync` when `T` is): the waiters
/// of one interest take turns, first come first served.
///
/// # Examples
///
/// An eventfd (Linux), wrapped:
///
/// ```
/// # #[cfg(target_os = "linux")] {
/// use hatchery::io::Async;
/// use rustix::event::{eventfd, EventfdFlags};
///
/// # hatchery_smol::run(async {
/// let efd = Async::new(eventfd(0, EventfdFlags::CLOEXEC)?)?;
/// rustix::io::write(efd.get_ref(), &3u64.to_ne_bytes())?;
/// let mut count = [0; 8];
/// efd.read_with(|fd| Ok(rustix::io::read(fd, &mut count)?)).await?;
/// assert_eq!(u64::from_ne_bytes(count), 3);
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// # }
/// ```
pub struct Async<T> {
    /// The duplicate, registered (dropped first: deregistered before `inner` may close).
    shared: Shared,
    inner: T,
}

/// The descriptor of `io`.
fn borrow<T: AsSocket>(io: &T) -> BorrowedSocket<'_> {
    #[cfg(unix)]
    return io.as_fd();
    #[cfg(windows)]
    return io.as_socket();
}

impl<T: AsSocket> Async<T> {
    /// Makes `io`'s descriptor non-blocking and registers a duplicate of it with the
    /// current runtime's reactor.
    ///
    /// Non-blocking is a property of the open file, which the duplicate shares: `io`
    /// itself is non-blocking from now on (and stays so after
    /// [`into_inner`](Async::into_inner)).
    ///
    /// # Panics
    ///
    /// Outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// * a descriptor the system cannot wait on (a regular file or a directory, which
    ///   epoll refuses): [`Unsupported`](io::ErrorKind::Unsupported), with a message that
    ///   says so;
    /// * a runtime without an I/O reactor: `Unsupported`;
    /// * the system's, when the descriptor cannot be duplicated (too many open files) or
    ///   made non-blocking.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::os::unix::net::UnixStream;
    /// use hatchery::io::Async;
    ///
    /// # hatchery_smol::run(async {
    /// let (a, _b) = UnixStream::pair()?;
    /// let a = Async::new(a)?;
    /// a.writable().await?; // an empty socket buffer
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub fn new(io: T) -> io::Result<Async<T>> {
        let dup: OwnedSocket = borrow(&io).try_clone_to_owned()?;
        rustix::io::ioctl_fionbio(&dup, true)?;
        let io_reg = Io::new(dup).map_err(not_pollable)?;
        Ok(Async {
            shared: Shared::new(io_reg),
            inner: io,
        })
    }
}

/// The error of a reactor that refused a descriptor it cannot wait on (epoll's `EPERM`).
fn not_pollable(e: io::Error) -> io::Error {
    // epoll's only `EPERM` (which a reactor may pass on with its own message, keeping
    // the kind only, as hatchery-tokio does).
    #[cfg(unix)]
    if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error())
        || e.kind() == io::ErrorKind::PermissionDenied
    {
        return io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "hatchery::io::Async: the system cannot wait for this descriptor's readiness \
                 (a regular file or a directory is always ready, and epoll refuses it: {e}); \
                 do its I/O on a thread (`hatchery::to_thread`) instead"
            ),
        );
    }
    e
}

impl<T> Async<T> {
    /// The object, for operations that need no waiting (options, metadata, a write that
    /// never blocks).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::os::unix::net::UnixStream;
    /// use hatchery::io::Async;
    ///
    /// # hatchery_smol::run(async {
    /// let (a, _b) = UnixStream::pair()?;
    /// let a = Async::new(a)?;
    /// assert!(a.get_ref().peer_addr().is_ok());
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The object, mutably.
    ///
    /// Do not make it own another descriptor (a `dup2` over it, a new `OwnedFd` in it):
    /// the reactor would still wait on the old one. Nothing unsafe follows, but the waits
    /// would be wrong.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use hatchery::io::Async;
    ///
    /// # hatchery_smol::run(async {
    /// let (a, _b) = UnixStream::pair()?;
    /// let mut a = Async::new(a)?;
    /// a.get_mut().write_all(b"hi")?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Deregisters the descriptor and gives the object back. Its descriptor stays
    /// non-blocking (set it back if a blocking user needs it).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use hatchery::io::Async;
    ///
    /// # hatchery_smol::run(async {
    /// let (a, mut b) = UnixStream::pair()?;
    /// let a = Async::new(a)?;
    /// let mut a: UnixStream = a.into_inner();
    /// a.set_nonblocking(false)?;
    /// b.write_all(b"x")?;
    /// let mut buf = [0; 1];
    /// a.read_exact(&mut buf)?; // blocking again
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub fn into_inner(self) -> T {
        self.inner // `shared` drops as it returns: deregistered
    }

    /// Waits until the descriptor is readable: data, the end of a stream, a connection to
    /// accept, an error, a hang-up (what `poll(2)` reports as `POLLIN`, `POLLHUP` or
    /// `POLLERR`). trio's and anyio's `wait_readable`.
    ///
    /// It checks with `poll(2)` before it returns, so that a readiness the reactor
    /// remembers from before is not taken for a new one.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it reads nothing. If the enclosing scope is cancelled, it does not
    /// start, or stops waiting; the scope drops it.
    ///
    /// # Errors
    ///
    /// The system's, and the reactor's if it has shut down.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use hatchery::io::Async;
    ///
    /// # hatchery_smol::run(async {
    /// let (a, mut b) = UnixStream::pair()?;
    /// let a = Async::new(a)?;
    /// b.write_all(b"x")?;
    /// a.readable().await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        self.ready(Interest::Read).await
    }

    /// Waits until the descriptor is writable: buffer space, or an error or hang-up
    /// (`POLLOUT`, `POLLHUP` or `POLLERR`). trio's and anyio's `wait_writable`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it writes nothing. If the enclosing scope is cancelled, it does not
    /// start, or stops waiting; the scope drops it.
    ///
    /// # Errors
    ///
    /// The system's, and the reactor's if it has shut down.
    ///
    /// # Examples
    ///
    /// See [`Async::new`].
    pub async fn writable(&self) -> io::Result<()> {
        self.ready(Interest::Write).await
    }

    /// Runs `op`, a non-blocking operation that reads (or accepts, or receives) from the
    /// object, until it does not fail with [`WouldBlock`](io::ErrorKind::WouldBlock),
    /// waiting until the descriptor may be readable before each try but perhaps the
    /// first; returns what `op` returned.
    ///
    /// `op` must not block (the descriptor is non-blocking; an operation on it that
    /// cannot go on returns `WouldBlock`). It may be called any number of times.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe as far as this method goes: `op` runs only inside the poll that
    /// returns its result, so when `read_with` did not complete, every call of `op`
    /// failed with `WouldBlock`. If the enclosing scope is cancelled, `op` is not called
    /// again, and the scope drops the operation.
    ///
    /// # Errors
    ///
    /// The first error of `op` other than `WouldBlock`, and the reactor's if it has shut
    /// down.
    ///
    /// # Examples
    ///
    /// See [`Async`].
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.shared.op(Interest::Read, || op(&self.inner)).await
    }

    /// As [`read_with`](Async::read_with), for an operation that writes (or sends, or
    /// connects): it waits until the descriptor may be writable.
    ///
    /// # Cancel safety
    ///
    /// As [`read_with`](Async::read_with): when it did not complete, every call of `op`
    /// failed with `WouldBlock`. If the enclosing scope is cancelled, `op` is not called
    /// again, and the scope drops the operation.
    ///
    /// # Errors
    ///
    /// The first error of `op` other than `WouldBlock`, and the reactor's.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use hatchery::io::Async;
    ///
    /// # hatchery_smol::run(async {
    /// let (a, _b) = UnixStream::pair()?;
    /// let a = Async::new(a)?;
    /// let n = a.write_with(|mut s| s.write(b"hello")).await?;
    /// assert_eq!(n, 5);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.shared.op(Interest::Write, || op(&self.inner)).await
    }

    /// As [`read_with`](Async::read_with), with the object mutably (for a type that
    /// reads only through `&mut`).
    ///
    /// # Cancel safety
    ///
    /// As [`read_with`](Async::read_with). If the enclosing scope is cancelled, `op` is
    /// not called again, and the scope drops the operation.
    ///
    /// # Errors
    ///
    /// As [`read_with`](Async::read_with).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use hatchery::io::Async;
    ///
    /// # hatchery_smol::run(async {
    /// let (a, mut b) = UnixStream::pair()?;
    /// let mut a = Async::new(a)?;
    /// b.write_all(b"x")?;
    /// let mut buf = [0; 1];
    /// a.read_with_mut(|s| s.read(&mut buf)).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub async fn read_with_mut<R>(
        &mut self,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> io::Result<R> {
        let Async { shared, inner } = self;
        shared.op(Interest::Read, || op(inner)).await
    }

    /// As [`write_with`](Async::write_with), with the object mutably.
    ///
    /// # Cancel safety
    ///
    /// As [`write_with`](Async::write_with). If the enclosing scope is cancelled, `op`
    /// is not called again, and the scope drops the operation.
    ///
    /// # Errors
    ///
    /// As [`write_with`](Async::write_with).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use hatchery::io::Async;
    ///
    /// # hatchery_smol::run(async {
    /// let (a, _b) = UnixStream::pair()?;
    /// let mut a = Async::new(a)?;
    /// a.write_with_mut(|s| s.write(b"x")).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub async fn write_with_mut<R>(
        &mut self,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> io::Result<R> {
        let Async { shared, inner } = self;
        shared.op(Interest::Write, || op(inner)).await
    }

    /// The poll form of [`read_with`](Async::read_with), for implementing a poll-based
    /// trait (`AsyncRead`) on a type of your own: `op` once the descriptor may be
    /// readable, `Pending` (with `cx`'s waker to be woken) while it would block.
    ///
    /// The reactor keeps one waker per interest: poll one interest from one task at a
    /// time (the async methods take turns by themselves, this one does not: a second
    /// task polling the same interest at once may not be woken).
    ///
    /// # Cancel safety
    ///
    /// `Pending` means that every call of `op` would have blocked: nothing was done. In a
    /// cancelled scope it returns `Pending` without calling `op` (a checkpoint), and the
    /// scope drops the operation that polls it.
    ///
    /// # Errors
    ///
    /// As [`read_with`](Async::read_with).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::future::poll_fn;
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use hatchery::io::Async;
    ///
    /// # hatchery_smol::run(async {
    /// let (a, mut b) = UnixStream::pair()?;
    /// let a = Async::new(a)?;
    /// b.write_all(b"x")?;
    /// let mut buf = [0; 1];
    /// poll_fn(|cx| a.poll_read_with(cx, |mut s| s.read(&mut buf))).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub fn poll_read_with<R>(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.shared
            .io
            .poll_with(cx, Interest::Read, || op(&self.inner))
    }

    /// The poll form of [`write_with`](Async::write_with): see
    /// [`poll_read_with`](Async::poll_read_with).
    ///
    /// # Cancel safety
    ///
    /// `Pending` means that every call of `op` would have blocked: nothing was done. In a
    /// cancelled scope it returns `Pending` without calling `op` (a checkpoint), and the
    /// scope drops the operation that polls it.
    ///
    /// # Errors
    ///
    /// As [`write_with`](Async::write_with).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::future::poll_fn;
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use hatchery::io::Async;
    ///
    /// # hatchery_smol::run(async {
    /// let (a, _b) = UnixStream::pair()?;
    /// let a = Async::new(a)?;
    /// let n = poll_fn(|cx| a.poll_write_with(cx, |mut s| s.write(b"x"))).await?;
    /// assert_eq!(n, 1);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub fn poll_write_with<R>(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.shared
            .io
            .poll_with(cx, Interest::Write, || op(&self.inner))
    }

    /// `poll_read_with` with the object mutably (for the `AsyncRead` impl).
    fn poll_with_mut<R>(
        &mut self,
        cx: &mut Context<'_>,
        interest: Interest,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let Async { shared, inner } = self;
        shared.io.poll_with(cx, interest, || op(inner))
    }

    /// Waits until the descriptor is ready for `interest`, as `poll(2)` tells.
    async fn ready(&self, interest: Interest) -> io::Result<()> {
        let fd = self.shared.io.fd();
        self.shared.op(interest, || probe(fd, interest)).await?;
        Ok(())
    }
}

/// Whether `fd` is ready for `interest` now (`poll(2)` with no timeout): `Ok` if so,
/// `WouldBlock` if not.
pub(crate) fn probe(fd: BorrowedSocket<'_>, interest: Interest) -> io::Result<usize> {
    use rustix::event::{poll, PollFd, PollFlags};
    let flags = match interest {
        Interest::Write => PollFlags::OUT,
        _ => PollFlags::IN,
    };
    let mut fds = [PollFd::new(&fd, flags)];
    let zero = rustix::event::Timespec::default();
    loop {
        match poll(&mut fds, Some(&zero)) {
            Ok(0) => return Err(io::ErrorKind::WouldBlock.into()),
            Ok(_) if fds[0].revents().contains(PollFlags::NVAL) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "hatchery::io::Async: the descriptor is not open (poll reports POLLNVAL)",
                ))
            }
            Ok(_) => return Ok(0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Not `T: Debug`: the descriptor.
impl<T> fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Async")
            .field("fd", &self.shared.io.fd())
            .finish_non_exhaustive()
    }
}

#[cfg(unix)]
impl<T> std::os::fd::AsFd for Async<T> {
    /// The registered duplicate.
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.shared.io.fd()
    }
}

#[cfg(unix)]
impl<T> std::os::fd::AsRawFd for Async<T> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.shared.io.fd())
    }
}

#[cfg(windows)]
impl<T> std::os::windows::io::AsSocket for Async<T> {
    /// The registered duplicate.
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.shared.io.fd()
    }
}

crate::net::impl_async_io!(
    read
    /// Reads through `T`'s `Read`, waiting while it would block.
    [T: io::Read + Unpin] Async<T>,
    |this, cx, buf| this.poll_with_mut(cx, Interest::Read, |t| t.read(buf))
);

crate::net::impl_async_io!(
    write
    /// Writes through `T`'s `Write`, waiting while it would block; `close` (tokio's
    /// `shutdown`) flushes `T` (it does not close the descriptor: drop the `Async` for that).
    [T: io::Write + Unpin] Async<T>,
    |this, cx, buf| this.poll_with_mut(cx, Interest::Write, |t| t.write(buf)),
    flush |this, cx| this.poll_with_mut(cx, Interest::Write, |t| t.flush()),
    shutdown |this, cx| this.poll_with_mut(cx, Interest::Write, |t| t.flush()),
);
