//! The kit on the third-party runtime of `hatchery::rt::Runtime`'s docs: every task a
//! thread with a tiny `block_on`, every timer a thread that sleeps. The code below is
//! that example's, as it stands there (keep the two the same).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use hatchery::rt::{self, Runtime, Sleep, Task};

/// Runs a future to completion on the current thread.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(Mutex<bool>, Condvar);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            *self.0.lock().unwrap() = true;
            self.1.notify_one();
        }
    }
    let unpark = Arc::new(Unpark(Mutex::new(false), Condvar::new()));
    let waker = Waker::from(unpark.clone());
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
            return v;
        }
        let mut woken = unpark.0.lock().unwrap();
        while !*woken {
            woken = unpark.1.wait(woken).unwrap();
        }
        *woken = false;
    }
}

/// A timer: a thread that sleeps, then wakes whoever polled last.
struct ThreadSleep {
    deadline: Instant,
    waker: Arc<Mutex<Option<Waker>>>,
    armed: bool,
}

impl Future for ThreadSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        if !self.armed {
            self.armed = true;
            let (deadline, waker) = (self.deadline, self.waker.clone());
            std::thread::spawn(move || {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                if let Some(w) = waker.lock().unwrap().take() {
                    w.wake();
                }
            });
        }
        Poll::Pending
    }
}

impl Sleep for ThreadSleep {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        *self = ThreadSleep {
            deadline,
            waker: Arc::default(),
            armed: false,
        };
    }
}

#[derive(Debug)]
struct Threads;

impl Runtime for Threads {
    fn spawn(&self, task: Task) {
        std::thread::spawn(move || block_on(task));
    }
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(ThreadSleep {
            deadline,
            waker: Arc::default(),
            armed: false,
        })
    }
    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        std::thread::spawn(work);
    }
}

// The application's `run`: the whole adapter is the code above plus these lines.
// `enter_root`, not `enter`: a sync library may call `run` from hatchery code, and
// nested in the caller's scope, it would block for good once that scope is cancelled.
fn run<F: Future>(fut: F) -> F::Output {
    block_on(rt::enter_root(Arc::new(Threads), fut))
}

hatchery_conformance::tests!(run);
