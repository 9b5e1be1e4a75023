//! tokio's reactor behind hatchery's [`Reactor`]: each socket is a
//! `tokio::io::unix::AsyncFd`, the registration `tokio::net` uses.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use hatchery::rt::{Reactor, Readiness, Registration};
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

use crate::TokioRuntime;

/// A socket registered with tokio's reactor.
struct TokioRegistration {
    fd: Arc<AsyncFd<OwnedFd>>,
    /// For each interest (read, write), a wait for an event that carries an error: see
    /// [`TokioRegistration::poll_ready`]. Made the first time an operation of that
    /// interest waits, then kept until such an event comes.
    errors: [Mutex<Option<ErrorWait>>; 2],
}

/// A wait for tokio's error readiness (`Ready::ERROR`): it ends once an event carrying an
/// error has come, with that readiness cleared.
type ErrorWait = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

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
        Ok(Box::new(TokioRegistration {
            fd: Arc::new(fd),
            errors: Default::default(),
        }))
    }
}

/// What a wait saw: tokio's readiness for the interest, or an error event.
enum Seen<'a> {
    Ready(AsyncFdReadyGuard<'a, OwnedFd>),
    /// An event that carried an error; its readiness is cleared already.
    Error,
}

impl TokioRegistration {
    /// Waits until the socket may be ready for the interest `i` (0 read, 1 write), as
    /// `poll_ready` (`AsyncFd::poll_read_ready` or `poll_write_ready`) says, or until an
    /// event carries an error: rule R6 of the book's semantics chapter.
    ///
    /// tokio's read readiness is readable or read-closed, its write readiness writable
    /// or write-closed; neither includes its error readiness. On Linux an ICMP answer
    /// to a connected UDP socket is an error-only event (`EPOLLERR`, and `EPOLLOUT`,
    /// which a UDP socket always has): the read waiting would wait for good, the error
    /// never read. So a wait that is pending also waits for tokio's `Interest::ERROR`
    /// (as tokio's own `UdpSocket::recv` does since 1.51.1). That wait's readiness is
    /// cleared when it ends, before `op` tries: an error that `op` does not take (a
    /// spurious event) does not end the next wait, and one that comes after the clear
    /// does. Nothing busy-loops on a socket that is always writable: the error wait is
    /// polled only while the interest's own readiness is not there.
    #[inline]
    fn poll_ready<'a>(
        &'a self,
        cx: &mut Context<'_>,
        i: usize,
        poll_ready: impl FnOnce(
            &'a AsyncFd<OwnedFd>,
            &mut Context<'_>,
        ) -> Poll<io::Result<AsyncFdReadyGuard<'a, OwnedFd>>>,
    ) -> Poll<io::Result<Seen<'a>>> {
        match poll_ready(&self.fd, cx) {
            Poll::Ready(Ok(guard)) => return Poll::Ready(Ok(Seen::Ready(guard))),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(shut_down(e))),
            Poll::Pending => {}
        }
        let mut slot = self.errors[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let wait = slot.get_or_insert_with(|| error_wait(self.fd.clone()));
        let seen = ready!(wait.as_mut().poll(cx));
        *slot = None;
        Poll::Ready(seen.map(|()| Seen::Error).map_err(shut_down))
    }
}

/// Waits for an event that carries an error, and clears that readiness.
fn error_wait(fd: Arc<AsyncFd<OwnedFd>>) -> ErrorWait {
    Box::pin(async move {
        let mut guard = fd.ready(tokio::io::Interest::ERROR).await?;
        guard.clear_ready_matching(tokio::io::Ready::ERROR);
        Ok(())
    })
}

impl AsFd for TokioRegistration {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}

/// tokio's own pattern (`AsyncFd::async_io`): wait for readiness, try, and on
/// `WouldBlock` clear the readiness the guard saw; an error event ends a wait too (see
/// [`TokioRegistration::poll_ready`]).
impl Readiness for TokioRegistration {
    type Ready<'a> = Seen<'a>;

    #[inline]
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Ready<'_>>> {
        self.poll_ready(cx, 0, AsyncFd::poll_read_ready)
    }

    #[inline]
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Ready<'_>>> {
        self.poll_ready(cx, 1, AsyncFd::poll_write_ready)
    }

    #[inline]
    fn clear_ready(&self, ready: Self::Ready<'_>) {
        if let Seen::Ready(mut guard) = ready {
            guard.clear_ready();
        }
    }
}

/// tokio fails a readiness wait only once its reactor has shut down.
fn shut_down(e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("hatchery-tokio: the tokio runtime this socket was opened on has shut down ({e})"),
    )
}
