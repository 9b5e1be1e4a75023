//! Networking on any executor: TCP, UDP and Unix domain sockets whose operations are
//! checkpoints and follow hatchery's cancellation rules.
//!
//! A library that opens sockets through `hatchery::net` depends on `hatchery` alone and
//! runs unchanged on every runtime hatchery is bound to: on `hatchery-tokio` its sockets
//! are registered with tokio's own reactor (as `tokio::net`'s are), on `hatchery-smol`
//! with async-io's (as `async-net`'s are). All the socket work (the system calls, happy
//! eyeballs, serving, the cancellation rules below) is done here, once; a runtime only
//! waits for readiness (see [`rt::Reactor`](crate::rt::Reactor)).
//!
//! # What is here
//!
//! | | |
//! |---|---|
//! | [`TcpStream`] | a TCP connection: [`connect`](TcpStream::connect) (an address, or a host name with happy eyeballs), read, write, half-close, owned halves |
//! | [`TcpListener`] | [`bind`](TcpListener::bind), [`accept`](TcpListener::accept); [`bind_all`](TcpListener::bind_all) for several addresses on one port |
//! | [`open_tcp_listeners`] | every interface, IPv6 and IPv4, on one port (trio's) |
//! | [`serve`], [`serve_in`] | run a handler per connection as a task of a nursery; over several listeners at once (a `Vec`) |
//! | [`TcpConnector`] | connect options: a [`Resolve`]r of your own (or a fake one for tests), the happy eyeballs delay |
//! | [`happy_eyeballs`] | race connection attempts by address (RFC 8305), for any kind of connection |
//! | [`UdpSocket`] | datagrams: `send_to`/`recv_from`, or `connect` then `send`/`recv` |
//! | [`UnixStream`], [`UnixListener`] | Unix domain sockets (Unix only) |
//! | [`ReadHalf`], [`WriteHalf`] | a stream's halves, to read and write from two tasks |
//!
//! ```
//! use hatchery::net::{TcpListener, TcpStream};
//!
//! # hatchery_smol::run(async {
//! let listener = TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! hatchery::nursery(|n| async move {
//!     n.spawn(async move {
//!         let (mut conn, _) = listener.accept().await?;
//!         let mut buf = [0; 4];
//!         conn.read_exact(&mut buf).await?;
//!         conn.write_all(b"pong").await
//!     });
//!     let mut client = TcpStream::connect(addr).await?;
//!     client.write_all(b"ping").await?;
//!     let mut buf = [0; 4];
//!     client.read_exact(&mut buf).await?;
//!     assert_eq!(&buf, b"pong");
//!     Ok::<_, std::io::Error>(())
//! })
//! .await?;
//! # Ok::<_, std::io::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Cancellation
//!
//! **Every operation is a checkpoint.** In a cancelled scope an operation does not
//! start: it returns `Pending` without doing anything, and the scope drops it there
//! (level-triggered, as trio: a read in a cancelled scope never reads). An operation
//! that waits (for data, for buffer space, for a connection) stops waiting when the
//! enclosing scope is cancelled, and the scope drops it. What that leaves behind:
//!
//! | operation | cancelled or dropped before it completed |
//! |---|---|
//! | `read`, `recv`, `recv_from` | nothing read: data is read inside the one poll that returns it, so none is lost |
//! | `accept` | no connection taken: it waits for the next `accept` |
//! | `write`, `send`, `send_to` | nothing written (the same: one poll) |
//! | `write_all`, `read_exact` | **a prefix may have been written (read)**, and how long one is not reported: treat the stream as broken (drop it), or loop over `write` (`read`) yourself, which reports each part |
//! | `connect` | no connection: every socket it opened is closed (the peer, if it had accepted, reads the end of the stream); a name lookup on a blocking thread runs on to its end, its answer dropped |
//! | `bind` (a name to resolve) | nothing bound |
//! | [`serve`] | every connection's handler cancelled where it waits, and its stream closed |
//!
//! Completed operations are never undone: a read that completed in the same poll in
//! which another thread cancelled the scope returns its data, and the code after it runs
//! up to its next suspension point (rule C1).
//!
//! `AsyncRead`/`AsyncWrite` (below) follow the same rules: `poll_read` and `poll_write`
//! in a cancelled scope return `Pending` and do nothing.
//!
//! # Deadlines
//!
//! No operation takes a timeout: the deadlines of the enclosing scopes reach it, as
//! they reach every hatchery wait. Give a connect five seconds with
//! `fail_after(Duration::from_secs(5), TcpStream::connect(addr))`, or let a library's
//! call inherit its caller's deadline, which [`current_effective_deadline`](crate::current_effective_deadline)
//! tells (to pass on to a protocol that wants one, as a server-side timeout).
//!
//! # Errors
//!
//! Errors are `std::io::Error`s of the system's kinds, and the ones hatchery adds say
//! what they are about: a failed connect names its target, and its payload, a
//! [`ConnectError`], holds each attempt's error; a failed bind names its address; a name
//! that does not resolve is named; an invalid address string is quoted (kind
//! `InvalidInput`, before anything is tried). Writing to a connection that the peer
//! closed is an error (`BrokenPipe` or `ConnectionReset`), never a `SIGPIPE` that ends
//! the process (sends use `MSG_NOSIGNAL`, or `SO_NOSIGPIPE` on Apple's systems). An
//! accept on a listener whose socket was shut down fails with `InvalidInput`. Nothing
//! hangs: an operation that cannot complete fails, or waits for something that will
//! come, under the enclosing deadline.
//!
//! # Runtimes
//!
//! Sockets are registered with the reactor of the runtime that opens them
//! ([`Runtime::reactor`](crate::rt::Runtime::reactor)), which their operations wait on;
//! they need no hatchery context afterwards (a plain tokio task may use one). Opening
//! one outside a hatchery runtime panics, as other hatchery functions that need the
//! runtime do. A runtime without a reactor runs everything else; opening a socket there
//! fails with an error of kind `Unsupported` that says what is missing.
//!
//! | adapter | reactor | after the runtime is gone |
//! |---|---|---|
//! | `hatchery-tokio` (Unix) | tokio's (`AsyncFd`) | operations fail with an error that says the runtime has shut down |
//! | `hatchery-tokio` (Windows) | none: tokio offers no readiness for sockets there | (use `hatchery-smol`, or wrap `TokioRuntime` with async-io's reactor: see [`rt::Reactor`](crate::rt::Reactor)) |
//! | `hatchery-smol` | async-io's (`Async`) | sockets keep working: async-io's reactor is global |
//! | `hatchery-sim` | none: a simulated network of its own | (the run's network goes with it) |
//!
//! A runtime may have a network of its own instead
//! ([`Runtime::network`](crate::rt::Runtime::network)): the simulator's, a network of named
//! hosts with latency and faults. TCP and UDP sockets opened with `bind` and `connect`,
//! and host names, then go to that network, with the same types, methods, errors and
//! cancellation rules (rule Z2 of the book's semantics chapter); a socket of the system
//! (`from_std`, a Unix socket) fails with `Unsupported`, and a socket of the network has no
//! descriptor (`AsFd` and `AsRawFd` panic, saying so).
//!
//! Windows builds (sockets through Winsock), but is not tested.
//!
//! # Interoperability
//!
//! The streams and halves implement `futures_io::AsyncRead` and `AsyncWrite`, which
//! `futures`, `futures-lite`, `async-compression` and `asynchronous-codec` use. With the
//! cargo feature **`tokio-io`**, they also implement tokio's `AsyncRead` and
//! `AsyncWrite` (tokio's traits only, no tokio runtime: the feature depends on tokio
//! without its default features), for `tokio-util`'s codecs and hyper (through
//! `hyper_util::rt::TokioIo`) on any runtime. `hatchery`'s default features do not
//! include it. Every socket type implements `AsFd` (`AsSocket` on Windows), for socket
//! options with `socket2` or `rustix`, and has `from_std` to take a socket made with
//! std (or `socket2`).
//!
//! # Testing
//!
//! Fake name resolution with a [`Resolve`] of your own in a [`TcpConnector`]. Virtual
//! time does not see the network: a task waiting for a socket looks blocked, so the
//! clock may jump meanwhile. Test real sockets on real time, on loopback; race fake
//! connections with [`happy_eyeballs`] on virtual time. Or run the test on the simulator
//! (`#[hatchery::test(sim(seeds = N))]`), whose clock sees its network: the same test
//! body, over a simulated network, with partitions, crashes and lossy links if the test
//! asks (the book's chapter *Simulation testing*).

mod addr;
mod connect;
mod io;
mod serve;
mod stream;
mod sys;
mod tcp;
mod udp;
#[cfg(unix)]
mod unix;

pub use addr::{Resolve, Resolving, SystemResolver, ToSocketAddrs};
pub use connect::{happy_eyeballs, ConnectError, TcpConnector, HAPPY_EYEBALLS_DELAY};
// `signal` (Unix), `io::Async`.
pub(crate) use io::{enter, impl_async_io, read_exact_with, write_all_with, Io, Shared};
pub use serve::{serve, serve_in, Listener};
pub use stream::{ReadHalf, ReuniteError, SplitStream, WriteHalf};
pub use tcp::{open_tcp_listeners, TcpListener, TcpStream};
pub use udp::UdpSocket;
#[cfg(unix)]
pub use unix::{UnixListener, UnixSocketAddr, UnixStream};

/// Implements `AsFd` and `AsRawFd` (Unix), `AsSocket` and `AsRawSocket` (Windows) for a
/// type with `fn io(&self) -> &Io`.
macro_rules! impl_as_socket {
    ($ty:ty) => {
        #[cfg(unix)]
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.io().fd()
            }
        }

        #[cfg(unix)]
        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&self.io().fd())
            }
        }

        #[cfg(windows)]
        impl std::os::windows::io::AsSocket for $ty {
            fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
                self.io().fd()
            }
        }

        #[cfg(windows)]
        impl std::os::windows::io::AsRawSocket for $ty {
            fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
                std::os::windows::io::AsRawSocket::as_raw_socket(&self.io().fd())
            }
        }
    };
}

pub(crate) use impl_as_socket;
