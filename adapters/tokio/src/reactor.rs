//! tokio's reactor behind hatchery's [`Reactor`]: each socket is a
//! `tokio::io::unix::AsyncFd`, the registration `tokio::net` uses.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::task::{Context, Poll};

use hatchery::rt::{Reactor, Readiness, Registration};
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

use crate::TokioRuntime;

impl Reactor for TokioRuntime {
    fn register(&self, socket: OwnedFd) -> io::Result<Box<dyn Registration>> {
        let _guard = self.handle.enter();
        let interest = tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE;
        // `with_interest` is deprecated since tokio 1.53 for an `AsRawFd` that could
        // change its descriptor (in favour of an `unsafe` constructor, which this crate
        // forbids); an `OwnedFd` owns one descriptor for its whole life, as asked. It
        // works on every tokio 1.x this crate accepts.
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(socket, interest).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("hatchery-tokio: cannot register a socket with tokio's reactor: {e}"),
            )
        })?;
        Ok(Box::new(TokioRegistration { fd }))
    }
}

/// A socket registered with tokio's reactor.
struct TokioRegistration {
    fd: AsyncFd<OwnedFd>,
}

impl AsFd for TokioRegistration {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}

/// tokio's own pattern (`AsyncFd::async_io`): wait for readiness, try, and on
/// `WouldBlock` clear the readiness the guard saw.
impl Readiness for TokioRegistration {
    type Ready<'a> = AsyncFdReadyGuard<'a, OwnedFd>;

    #[inline]
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Ready<'_>>> {
        self.fd.poll_read_ready(cx).map_err(shut_down)
    }

    #[inline]
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Ready<'_>>> {
        self.fd.poll_write_ready(cx).map_err(shut_down)
    }

    #[inline]
    fn clear_ready(&self, mut ready: Self::Ready<'_>) {
        ready.clear_ready();
    }
}

/// tokio fails a readiness wait only once its reactor has shut down.
fn shut_down(e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("hatchery-tokio: the tokio runtime this socket was opened on has shut down ({e})"),
    )
}
