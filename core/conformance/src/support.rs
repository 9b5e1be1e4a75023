//! What the scenarios share: a log of events, drop counters, an error type, catching a
//! panic, and waiting for a condition on real time.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

/// An hour: "for ever" in a scenario, on a virtual clock or not.
pub(crate) const HOUR: Duration = Duration::from_secs(3600);

pub(crate) fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

pub(crate) fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// The error the scenarios' tasks return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Oops(pub(crate) &'static str);

impl fmt::Display for Oops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oops: {}", self.0)
    }
}

impl std::error::Error for Oops {}

/// Events in the order they happened, from any thread.
#[derive(Debug, Clone, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<&'static str>>>);

impl Log {
    pub(crate) fn new() -> Log {
        Log::default()
    }

    pub(crate) fn push(&self, event: &'static str) {
        self.lock().push(event);
    }

    pub(crate) fn events(&self) -> Vec<&'static str> {
        self.lock().clone()
    }

    pub(crate) fn count(&self, event: &str) -> usize {
        self.lock().iter().filter(|e| **e == event).count()
    }

    /// Logs `event` when the returned guard is dropped.
    pub(crate) fn on_drop(&self, event: &'static str) -> OnDrop {
        OnDrop(self.clone(), event)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<&'static str>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// See [`Log::on_drop`].
#[derive(Debug)]
pub(crate) struct OnDrop(Log, &'static str);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.push(self.1);
    }
}

/// Counts events from any thread.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub(crate) fn new() -> Counter {
        Counter::default()
    }

    pub(crate) fn incr(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn decr(&self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }

    /// Raises the count to `v` if it is lower.
    pub(crate) fn raise_to(&self, v: usize) {
        self.0.fetch_max(v, Ordering::SeqCst);
    }

    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Polls `fut`, catching a panic of any poll: its message, or its output.
pub(crate) async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, String> {
    let mut fut = pin!(fut);
    std::future::poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(message(&*payload))),
        },
    )
    .await
}

/// A panic's message.
pub(crate) fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a payload that is not a string".to_string())
}

/// Waits on real time until `cond` holds, polling every millisecond; panics after 10 s.
#[track_caller]
pub(crate) fn eventually(what: &str, mut cond: impl FnMut() -> bool) -> impl Future<Output = ()> {
    let location = std::panic::Location::caller();
    let what = what.to_string();
    async move {
        let start = Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < secs(10),
                "{location}: still not {what} after 10 s"
            );
            hatchery::sleep(ms(1)).await;
        }
    }
}

/// The next item of `s`.
pub(crate) async fn next<S: futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}

/// Every item left in `s`, until it ends.
pub(crate) async fn collect<S: futures_core::Stream + Unpin>(s: &mut S) -> Vec<S::Item> {
    let mut items = Vec::new();
    while let Some(item) = next(s).await {
        items.push(item);
    }
    items
}
