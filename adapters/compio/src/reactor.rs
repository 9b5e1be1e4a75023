//! compio's readiness behind hatchery's [`Reactor`]: each wait is compio's one-shot poll
//! operation (`PollOnce`), on io_uring or on the polling driver.

use std::io;
use std::mem;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use compio_driver::op::{Interest, PollOnce};
use compio_runtime::{Runtime as Compio, Submit};
use compio_send_wrapper::SendWrapper;
use hatchery::rt::{OwnedSocket, Reactor, Readiness, Registration};

/// compio's reactor: nothing to register, a socket is polled by the driver of the
/// thread that waits on it.
#[derive(Debug)]
pub(crate) struct CompioReactor;

impl Reactor for CompioReactor {
    fn register(&self, socket: OwnedSocket) -> io::Result<Box<dyn Registration>> {
        Ok(Box::new(CompioRegistration {
            fd: Arc::new(socket),
            waits: Default::default(),
        }))
    }
}

/// A wait for readiness, submitted to the driver of the thread that made it (compio's
/// operations are `!Send`).
type Wait = SendWrapper<Pin<Box<Submit<PollOnce<Arc<OwnedFd>>>>>>;

/// A socket, and for each interest (read, write) the wait in flight, if any. An
/// operation holds the socket too: it stays open until the driver is done with it.
struct CompioRegistration {
    fd: Arc<OwnedFd>,
    waits: [Mutex<Option<Wait>>; 2],
}

impl CompioRegistration {
    /// Waits until the socket may be ready for `interest` (at index `i`). The poll is
    /// one-shot and checks the socket's state when armed, so a readiness that came
    /// since the last try is seen; and the kernel reports an error or a hang-up to a
    /// poll for either interest (rule R6 of the book's semantics chapter).
    fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        i: usize,
        interest: Interest,
    ) -> Poll<io::Result<()>> {
        if Compio::try_with_current(|_| ()).is_err() {
            return Poll::Ready(Err(no_runtime()));
        }
        let mut slot = self.waits[i].lock().unwrap_or_else(PoisonError::into_inner);
        let wait = match &mut *slot {
            Some(wait) if wait.valid() => wait,
            other => {
                // One made on another thread can be neither polled nor dropped here.
                mem::forget(other.take());
                let op = PollOnce::new(self.fd.clone(), interest);
                let submit = Compio::with_current(|rt| Box::pin(rt.submit(op)));
                other.insert(SendWrapper::new(submit))
            }
        };
        let submit = wait.get_mut().expect("made on this thread");
        let done = std::task::ready!(submit.as_mut().poll(cx));
        *slot = None;
        Poll::Ready(done.0.map(drop))
    }
}

impl Drop for CompioRegistration {
    fn drop(&mut self) {
        for wait in &mut self.waits {
            let wait = wait
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            // Dropped on its thread, the operation is cancelled; elsewhere it is leaked.
            if wait.as_ref().is_some_and(|w| !w.valid()) {
                mem::forget(wait);
            }
        }
    }
}

fn no_runtime() -> io::Error {
    io::Error::other(
        "hatchery-compio: a socket opened on compio waits on a thread with no compio runtime \
         (the runtime has ended, or the socket went to another thread)",
    )
}

impl AsFd for CompioRegistration {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// async-io's pattern: try first, and on `WouldBlock` arm a one-shot poll, which sees
/// the state after the try (so there is nothing to clear).
impl Readiness for CompioRegistration {
    type Ready<'a> = ();
    const TRY_FIRST: bool = true;

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(cx, 0, Interest::Readable)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(cx, 1, Interest::Writable)
    }

    fn clear_ready(&self, (): ()) {}
}
