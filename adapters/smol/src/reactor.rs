//! async-io's reactor behind hatchery's [`Reactor`]: each socket is an
//! `async_io::Async`, the registration `async-net` uses.

use std::io;
use std::task::{Context, Poll};

use async_io::Async;
use hatchery::rt::{AsSocket, BorrowedSocket, OwnedSocket, Reactor, Readiness, Registration};

/// async-io's reactor, as hatchery's [`Reactor`]: what `hatchery-smol` registers
/// [`hatchery::net`]'s sockets with, and a ready I/O provider for any other runtime
/// binding.
///
/// It needs nothing from the executor: async-io's reactor is one per process, driven by
/// whichever thread is in `async_io::block_on` (as `hatchery_smol::run`'s threads are),
/// or, when none is, by a thread of async-io's own. So a runtime bound by a third party
/// (see [`hatchery::rt`]) gets networking by returning it from
/// [`Runtime::reactor`](hatchery::rt::Runtime::reactor); the [`hatchery::rt::Reactor`]
/// docs show a complete binding. Sockets registered with it keep working for as long
/// as they live, whatever happens to the executor.
///
/// # Examples
///
/// ```
/// use std::pin::Pin;
/// use std::time::Instant;
/// use hatchery::rt::{Reactor, Runtime, Sleep, Task};
/// use hatchery_smol::{AsyncIoReactor, SmolRuntime};
///
/// /// A runtime of your own, here one that wraps smol's, with async-io's reactor.
/// struct Mine(SmolRuntime);
///
/// impl Runtime for Mine {
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
///     fn reactor(&self) -> Option<&dyn Reactor> {
///         Some(&AsyncIoReactor)
///     }
/// }
/// # let ex = std::sync::Arc::new(async_executor::Executor::new());
/// # let mine = std::sync::Arc::new(Mine(SmolRuntime::new(&ex)));
/// # let addr = async_io::block_on(ex.run(hatchery::rt::enter_root(mine, async {
/// #     hatchery::net::UdpSocket::bind("127.0.0.1:0").await?.local_addr()
/// # }))).unwrap();
/// # assert!(addr.ip().is_loopback());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncIoReactor;

impl Reactor for AsyncIoReactor {
    fn register(&self, socket: OwnedSocket) -> io::Result<Box<dyn Registration>> {
        // Non-blocking already (the seam's contract): no `fcntl` again.
        let io = Async::new_nonblocking(socket)?;
        Ok(Box::new(AsyncIoRegistration { io }))
    }
}

/// A socket registered with async-io's reactor.
struct AsyncIoRegistration {
    io: Async<OwnedSocket>,
}

impl AsSocket for AsyncIoRegistration {
    #[cfg(unix)]
    fn as_fd(&self) -> BorrowedSocket<'_> {
        self.io.get_ref().as_fd()
    }

    #[cfg(windows)]
    fn as_socket(&self) -> BorrowedSocket<'_> {
        self.io.get_ref().as_socket()
    }
}

/// async-io's own pattern (`Async::read_with`): try first, and on `WouldBlock` wait for
/// an event that came after the try (so there is nothing to clear).
impl Readiness for AsyncIoRegistration {
    type Ready<'a> = ();
    const TRY_FIRST: bool = true;

    #[inline]
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_readable(cx)
    }

    #[inline]
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_writable(cx)
    }

    #[inline]
    fn clear_ready(&self, (): ()) {}
}
