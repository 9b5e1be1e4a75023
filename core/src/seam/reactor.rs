//! The I/O part of the runtime seam, re-exported from `hatchery::rt`: see `Reactor`.

use std::fmt;
use std::io;
use std::task::{ready, Context, Poll};

/// A socket, owned, borrowed, or lent: on Unix a file descriptor (`OwnedFd`,
/// `BorrowedFd`, `AsFd` under these names), on Windows Winsock's (`OwnedSocket`,
/// `BorrowedSocket`, `AsSocket`). The seam's signatures are the same on both.
#[cfg(unix)]
pub use std::os::fd::{AsFd as AsSocket, BorrowedFd as BorrowedSocket, OwnedFd as OwnedSocket};
/// A socket, owned, borrowed, or lent: on Unix a file descriptor (`OwnedFd`,
/// `BorrowedFd`, `AsFd` under these names), on Windows Winsock's (`OwnedSocket`,
/// `BorrowedSocket`, `AsSocket`). The seam's signatures are the same on both.
#[cfg(windows)]
pub use std::os::windows::io::{AsSocket, BorrowedSocket, OwnedSocket};

/// A runtime's I/O reactor: registers sockets so that their readiness can be awaited
/// (the I/O part of the runtime seam).
///
/// [`hatchery::net`](crate::net) does all its socket work itself, once, in the core:
/// creating sockets, the system calls, options, happy eyeballs, serving connections,
/// the cancellation rules. What it needs from a runtime is only this: register a
/// non-blocking socket with the runtime's reactor ([`Reactor::register`]), and wait
/// until the socket may be ready for reading or writing ([`Registration::poll_io`]).
/// A runtime offers its reactor through [`Runtime::reactor`](crate::rt::Runtime::reactor).
///
/// | adapter | reactor |
/// |---|---|
/// | `hatchery-tokio` | tokio's own (`tokio::io::unix::AsyncFd`, the registration `tokio::net` uses) |
/// | `hatchery-smol` | async-io's (`async_io::Async`, the one `async-net` uses): `hatchery_smol::AsyncIoReactor` |
/// | a runtime without one | none: opening a socket fails with an error of kind [`Unsupported`](std::io::ErrorKind::Unsupported) that says so |
///
/// # Providing I/O in a binding of your own
///
/// A runtime bound by a third party need not write a reactor: `hatchery_smol::AsyncIoReactor`
/// works on any executor. It registers sockets with async-io's reactor, which a thread
/// of async-io's own drives when no `async_io::block_on` does (so nothing else is
/// needed). Return it from [`Runtime::reactor`](crate::rt::Runtime::reactor):
///
/// ```
/// use std::pin::Pin;
/// use std::sync::Arc;
/// use std::time::Instant;
/// use futures_lite::future::block_on;
/// use hatchery::net::{TcpListener, TcpStream};
/// use hatchery::rt::{self, Reactor, Runtime, Sleep, Task};
///
/// /// A thread per task; no timers. Its I/O: async-io's reactor.
/// struct ThreadPerTask;
///
/// impl Runtime for ThreadPerTask {
///     fn spawn(&self, task: Task) {
///         std::thread::spawn(move || block_on(task));
///     }
///     fn now(&self) -> Instant {
///         Instant::now()
///     }
///     fn sleep_until(&self, _deadline: Instant) -> Pin<Box<dyn Sleep>> {
///         unimplemented!("no timers in this example")
///     }
///     fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
///         std::thread::spawn(work);
///     }
///     fn reactor(&self) -> Option<&dyn Reactor> {
///         Some(&hatchery_smol::AsyncIoReactor)
///     }
/// }
///
/// let echoed = block_on(rt::enter_root(Arc::new(ThreadPerTask), async {
///     let listener = TcpListener::bind("127.0.0.1:0").await?;
///     let addr = listener.local_addr()?;
///     hatchery::nursery(|n| async move {
///         n.spawn(async move {
///             let (mut conn, _) = listener.accept().await?;
///             let mut buf = [0; 5];
///             conn.read_exact(&mut buf).await?;
///             conn.write_all(&buf).await
///         });
///         let mut client = TcpStream::connect(addr).await?;
///         client.write_all(b"hello").await?;
///         let mut buf = [0; 5];
///         client.read_exact(&mut buf).await?;
///         Ok::<_, std::io::Error>(buf)
///     })
///     .await
///     .map_err(std::io::Error::from)
/// }));
/// assert_eq!(&echoed.unwrap(), b"hello");
/// ```
///
/// What a reactor must report is rule R6 of the book's semantics chapter: every event
/// that may let an operation complete, and an event that carries an error or a hang-up
/// to both a waiting read and a waiting write (see [`Registration::poll_io`]). The
/// conformance kit's `r6_` scenarios check it.
///
/// To write a reactor of your own, implement [`Reactor`], and [`Readiness`] for its
/// registrations: hatchery runs [`Registration::poll_io`]'s contract on top of it, and
/// the reactor only says how to wait until a socket may be ready and how to forget a
/// readiness that turned out stale (both adapters do so). [`Registration`] itself, whose
/// contract is in its docs, is for a reactor that does not fit that shape.
///
/// # Examples
///
/// A reactor that counts the sockets hatchery registers, around another one:
///
/// ```
/// use std::io;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use hatchery::rt::{OwnedSocket, Reactor, Registration};
///
/// struct Counting<R> {
///     inner: R,
///     sockets: AtomicUsize,
/// }
///
/// impl<R: Reactor> Reactor for Counting<R> {
///     fn register(&self, socket: OwnedSocket) -> io::Result<Box<dyn Registration>> {
///         self.sockets.fetch_add(1, Ordering::Relaxed);
///         self.inner.register(socket)
///     }
/// }
///
/// let reactor = Counting { inner: hatchery_smol::AsyncIoReactor, sockets: AtomicUsize::new(0) };
/// let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// socket.set_nonblocking(true).unwrap();
/// # #[cfg(unix)]
/// let registration = reactor.register(socket.into()).unwrap();
/// # #[cfg(unix)]
/// assert_eq!(reactor.sockets.load(Ordering::Relaxed), 1);
/// ```
pub trait Reactor: Send + Sync {
    /// Registers `socket` with the reactor, for [`Registration::poll_io`] to wait on.
    ///
    /// The socket is already non-blocking (and close-on-exec where the platform has
    /// it); the registration owns it from now on: dropping the registration deregisters
    /// the socket and closes it. It may be called from any thread, in or outside the
    /// runtime's own threads, and the registration may be used and dropped on any
    /// thread too, also after the runtime has gone (then its `poll_io` should fail with
    /// an error that says so, rather than wait for good).
    ///
    /// # Errors
    ///
    /// When the reactor cannot take the socket (it has shut down; the system is out
    /// of resources). hatchery returns the error to the code that opened the socket,
    /// which is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use hatchery::rt::{Reactor, Registration};
    ///
    /// let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let addr = socket.local_addr().unwrap();
    /// socket.set_nonblocking(true).unwrap();
    /// let registration = hatchery_smol::AsyncIoReactor.register(socket.into()).unwrap();
    /// // The registration owns the socket now; it lends it out.
    /// let fd = registration.socket();
    /// let local = std::net::SocketAddr::try_from(rustix::net::getsockname(fd).unwrap()).unwrap();
    /// assert_eq!(local, addr);
    /// # }
    /// ```
    fn register(&self, socket: OwnedSocket) -> io::Result<Box<dyn Registration>>;
}

/// A socket registered with a [`Reactor`].
///
/// hatchery calls it from its sockets' operations. The contract of
/// [`poll_io`](Registration::poll_io) is what makes an operation correct under
/// cancellation (a read that returns `Pending` has consumed nothing), so keep to it
/// exactly.
///
/// # Examples
///
/// Reading a datagram through a registration by hand, as `hatchery::net` does:
///
/// ```
/// # #[cfg(unix)] {
/// use std::future::poll_fn;
/// use hatchery::rt::{Interest, Reactor};
///
/// # futures_lite::future::block_on(async {
/// let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// let addr = socket.local_addr().unwrap();
/// socket.set_nonblocking(true).unwrap();
/// let registration = hatchery_smol::AsyncIoReactor.register(socket.into()).unwrap();
///
/// std::net::UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"ping", addr).unwrap();
/// let mut buf = [0; 16];
/// let n = poll_fn(|cx| {
///     registration.poll_io(cx, Interest::Read, &mut || {
///         rustix::net::recv(registration.socket(), &mut buf[..], rustix::net::RecvFlags::empty())
///             .map(|(n, _)| n)
///             .map_err(Into::into)
///     })
/// })
/// .await
/// .unwrap();
/// assert_eq!(&buf[..n], b"ping");
/// # });
/// # }
/// ```
pub trait Registration: Send + Sync {
    /// The registered socket, for the system calls of an operation.
    ///
    /// # Examples
    ///
    /// See [`Reactor::register`].
    fn socket(&self) -> BorrowedSocket<'_>;

    /// Runs `op`, one non-blocking system call on the socket, once the socket may be
    /// ready for `interest`, and returns its result; `Pending` while it is not ready.
    ///
    /// The contract:
    ///
    /// * `op` may be called when the socket is not ready (speculatively, or on a
    ///   spurious event): it then returns [`WouldBlock`](io::ErrorKind::WouldBlock).
    /// * An event that carries an error or a hang-up (`EPOLLERR`, `EPOLLHUP`,
    ///   `EPOLLRDHUP`) makes the socket "may be ready" for both interests, whatever else
    ///   it carries: run `op`, which returns the error (rule R6 of the book's semantics
    ///   chapter). Some errors come as nothing else: the ICMP answer to a connected UDP
    ///   socket's datagram is `EPOLLERR` without `EPOLLIN` on Linux, so a reactor that
    ///   waits for "readable" only leaves that receive waiting for good. The conformance
    ///   kit (`hatchery-conformance`) checks it.
    /// * When `op` returns `WouldBlock`, clear the readiness for `interest` that was seen
    ///   *before* that call (never a readiness event that came after it: that would be
    ///   a lost wake-up), and wait for the next event: return `Pending`, with `cx`'s
    ///   waker to be woken by that event (or loop at once if it has come already).
    /// * Any other result of `op`, `Ok` or `Err`, is returned as it is, at once: `op`
    ///   did its work (read bytes, accepted a connection) and must not be called again.
    ///   Every call of `op` happens inside one `poll_io` call, so a caller that gets
    ///   `Pending` knows that nothing was done.
    /// * An error of the reactor itself (it has shut down) is returned as `Ready(Err)`,
    ///   with a message that names the cause; never wait for good.
    /// * The two interests are independent: a task may wait to read while another
    ///   waits to write, on two threads at once. For one interest hatchery has at most
    ///   one task waiting at a time, so keeping only the last waker per interest (as
    ///   `AsyncFd::poll_read_ready` and `Async::poll_readable` do) is enough.
    /// * It may return `Pending` after waking `cx` (a cooperative budget, as tokio's).
    ///
    /// A [`Readiness`] has this written for it.
    ///
    /// # Errors
    ///
    /// The error of `op`, or of the reactor.
    ///
    /// # Examples
    ///
    /// See [`Registration`].
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        op: &mut dyn FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>>;
}

/// A socket registered with a reactor that reports readiness: implement this (and
/// [`AsSocket`], which lends the socket out), and hatchery implements [`Registration`] on
/// top of it, keeping [`poll_io`](Registration::poll_io)'s contract.
///
/// `poll_io` then runs `op` once the socket may be ready for the interest
/// ([`poll_read_ready`](Readiness::poll_read_ready) or
/// [`poll_write_ready`](Readiness::poll_write_ready) says so), and on
/// [`WouldBlock`](io::ErrorKind::WouldBlock) hands that readiness back to
/// [`clear_ready`](Readiness::clear_ready) and waits again; any other result of `op` is
/// returned at once. With [`TRY_FIRST`](Readiness::TRY_FIRST) it runs `op` once before
/// the first wait.
///
/// | adapter | `poll_read_ready` | `Ready` | `clear_ready` | `TRY_FIRST` |
/// |---|---|---|---|---|
/// | `hatchery-tokio` | `AsyncFd::poll_read_ready`, or tokio's error readiness (rule R6) | its guard, or "an error" | the guard's `clear_ready` (the error's is cleared when seen) | no |
/// | `hatchery-smol` | `Async::poll_readable` (an error or hang-up is readable, and writable) | `()` | nothing (async-io's next wait waits for a new event) | yes |
///
/// Both waits must end on an event that carries an error or a hang-up, as well as on
/// their interest's own readiness (rule R6 of the book's semantics chapter): see
/// [`Registration::poll_io`].
///
/// # Examples
///
/// A registration that waits by yielding: every wait ends at the task's next turn. (A
/// busy poll, for illustration: a real reactor wakes the task on an event.)
///
/// ```
/// # #[cfg(unix)] {
/// use std::future::poll_fn;
/// use std::io;
/// use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
/// use std::task::{Context, Poll};
/// use hatchery::rt::{Interest, Readiness, Registration};
///
/// struct Yielding(OwnedFd);
///
/// impl AsFd for Yielding {
///     fn as_fd(&self) -> BorrowedFd<'_> {
///         self.0.as_fd()
///     }
/// }
///
/// impl Yielding {
///     fn next_turn(cx: &mut Context<'_>) -> Poll<io::Result<()>> {
///         cx.waker().wake_by_ref();
///         Poll::Pending
///     }
/// }
///
/// impl Readiness for Yielding {
///     type Ready<'a> = ();
///     const TRY_FIRST: bool = true;
///
///     fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
///         Self::next_turn(cx)
///     }
///     fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
///         Self::next_turn(cx)
///     }
///     fn clear_ready(&self, _ready: ()) {}
/// }
///
/// # futures_lite::future::block_on(async {
/// let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// let addr = socket.local_addr().unwrap();
/// socket.set_nonblocking(true).unwrap();
/// let registration = Yielding(socket.into());
///
/// let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// let ping = std::thread::spawn(move || sender.send_to(b"ping", addr));
/// let mut buf = [0; 16];
/// let n = poll_fn(|cx| {
///     registration.poll_io(cx, Interest::Read, &mut || {
///         rustix::net::recv(registration.socket(), &mut buf[..], rustix::net::RecvFlags::empty())
///             .map(|(n, _)| n)
///             .map_err(Into::into)
///     })
/// })
/// .await
/// .unwrap();
/// assert_eq!(&buf[..n], b"ping");
/// ping.join().unwrap().unwrap();
/// # });
/// # }
/// ```
pub trait Readiness: AsSocket + Send + Sync {
    /// A readiness seen: what [`clear_ready`](Readiness::clear_ready) takes back when
    /// the operation it let through would block.
    type Ready<'a>
    where
        Self: 'a;

    /// Whether `poll_io` runs `op` once before it first waits: for a reactor whose first
    /// wait on a socket ends only with an event that comes after it (as async-io's), so
    /// that a socket ready already is not waited on.
    const TRY_FIRST: bool = false;

    /// Waits until the socket may be ready for reading: `Pending`, with `cx`'s waker to
    /// be woken by the next event, until then. Only the last waker needs to be kept.
    /// An event that carries an error or a hang-up ends the wait (rule R6).
    ///
    /// # Errors
    ///
    /// An error of the reactor itself (it has shut down), with a message that names the
    /// cause: `poll_io` returns it.
    ///
    /// # Examples
    ///
    /// See [`Readiness`].
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Ready<'_>>>;

    /// As [`poll_read_ready`](Readiness::poll_read_ready), for writing: an event that
    /// carries an error or a hang-up ends this wait too.
    ///
    /// # Errors
    ///
    /// As [`poll_read_ready`](Readiness::poll_read_ready).
    ///
    /// # Examples
    ///
    /// See [`Readiness`].
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Ready<'_>>>;

    /// The operation that `ready` let through would block: forget that readiness (and
    /// no event that came after it), so that the next wait waits for a new event.
    ///
    /// # Examples
    ///
    /// See [`Readiness`].
    fn clear_ready(&self, ready: Self::Ready<'_>);
}

/// [`Registration::poll_io`]'s contract, kept once for every [`Readiness`].
impl<R: Readiness> Registration for R {
    fn socket(&self) -> BorrowedSocket<'_> {
        #[cfg(unix)]
        return self.as_fd();
        #[cfg(windows)]
        return self.as_socket();
    }

    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        op: &mut dyn FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        // One place that waits and one that tries (each inlined once), the first try
        // before any wait with `TRY_FIRST`.
        let mut wait = !R::TRY_FIRST;
        loop {
            let seen = match (wait, interest) {
                (false, _) => None,
                (true, Interest::Read) => Some(ready!(self.poll_read_ready(cx))?),
                (true, Interest::Write) => Some(ready!(self.poll_write_ready(cx))?),
            };
            wait = true;
            match op() {
                // Only the readiness seen before this try: one that came since wakes the
                // next wait.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(ready) = seen {
                        self.clear_ready(ready);
                    }
                }
                result => return Poll::Ready(result),
            }
        }
    }
}

/// What an operation waits for: see [`Registration::poll_io`].
///
/// Non-exhaustive: a reactor should answer an interest it does not know with an error of
/// kind [`Unsupported`](io::ErrorKind::Unsupported).
///
/// # Examples
///
/// ```
/// use hatchery::rt::Interest;
///
/// let interest = Interest::Read; // reading, receiving, accepting
/// assert_ne!(interest, Interest::Write); // writing, sending, connecting
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Interest {
    /// The socket may be read from: data, a datagram, a connection to accept, the
    /// peer's end of stream, or an error or hang-up (rule R6).
    Read,
    /// The socket may be written to: buffer space, a connection attempt that has
    /// finished (either way), or an error or hang-up (rule R6).
    Write,
}

impl fmt::Display for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Interest::Read => "read",
            Interest::Write => "write",
        })
    }
}
