//! Bounded concurrency: `map` and `map_stream`, and the engine that `join`, `try_join` and
//! `settle` share with them.

use std::convert::Infallible;
use std::fmt;
use std::future::{poll_fn, Future};
use std::panic::Location;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::error::NurseryError;
use crate::nursery::nursery_at;

/// Maps `f` over `inputs` concurrently, with at most `limit` futures in flight: the
/// semaphore-limited fan-out (Python's `gather_with_concurrency`).
///
/// `map` only describes the work; pick what to collect with [`Map::join`] (any output),
/// [`Map::try_join`] (fail fast on the first `Err`) or [`Map::settle`] (every `Ok` and
/// `Err`). Results come in input order, or in completion order after
/// [`unordered`](Map::unordered).
///
/// * Each future `f` returns is spawned into a nursery as its own task (`Send + 'static`),
///   so on a multi-threaded runtime up to `limit` of them run in parallel.
/// * **Backpressure**: the next input is taken from `inputs`, and `f` is called on it, only
///   when a slot is free. Nothing is read ahead, so `inputs` may be endless or expensive to
///   produce (for an async source, see [`map_stream`]).
/// * `f` runs in the caller's task, between the children; it may borrow (only the futures
///   it returns must be `'static`).
///
/// # Panics
///
/// If `limit` is zero.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use hatchery::sleep;
/// use hatchery::testing::{elapsed, virtual_time};
///
/// # hatchery_smol::run(virtual_time(async {
/// let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
/// // 20 fetches of one second each, at most 5 at a time, results in input order.
/// let items = hatchery::map(5, 0..20, |id| {
///     let (running, peak) = (running.clone(), peak.clone());
///     async move {
///         peak.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
///         sleep(Duration::from_secs(1)).await; // a slow fetch
///         running.fetch_sub(1, Ordering::SeqCst);
///         Ok::<_, std::io::Error>(format!("item {id}"))
///     }
/// })
/// .try_join()
/// .await?;
/// assert_eq!(items.len(), 20);
/// assert_eq!(items[3], "item 3");
/// assert_eq!(peak.load(Ordering::SeqCst), 5); // never more than 5 in flight...
/// assert_eq!(elapsed(), Duration::from_secs(4)); // ...so 20 take 4 s, not 1 s
/// # Ok::<_, anyhow::Error>(())
/// # })).unwrap();
/// ```
#[track_caller]
pub fn map<I, F, Fut>(limit: usize, inputs: I, f: F) -> Map<InputIter<I::IntoIter>, F>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future,
{
    map_stream(
        limit,
        InputIter {
            iter: inputs.into_iter(),
        },
        f,
    )
}

/// Like [`map`], for an async source of inputs: a [`Stream`](futures_core::Stream).
///
/// The stream is polled for its next item only when a slot is free, so a slow or endless
/// producer is never drained ahead of the work. Waiting for the stream is a suspension
/// point of the caller's task.
///
/// # Panics
///
/// If `limit` is zero.
///
/// # Examples
///
/// ```
/// use futures_lite::stream;
///
/// # hatchery_smol::run(async {
/// let inputs = stream::iter(1..=4u64);
/// let squares = hatchery::map_stream(2, inputs, |x| async move { x * x }).join().await;
/// assert_eq!(squares, [1, 4, 9, 16]);
/// # });
/// ```
#[track_caller]
pub fn map_stream<S, F, Fut>(limit: usize, inputs: S, f: F) -> Map<S, F>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
{
    assert!(limit > 0, "hatchery: `map` needs a limit of at least 1");
    Map {
        limit,
        inputs,
        f,
        ordered: true,
        all: false,
        site: Location::caller(),
    }
}

/// Concurrent work over many inputs with at most `limit` in flight; made by [`map`] and
/// [`map_stream`]. Choose the output with [`join`](Map::join),
/// [`try_join`](Map::try_join) or [`settle`](Map::settle).
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use hatchery::futures::Map;
///
/// # hatchery_smol::run(async {
/// let calls = AtomicUsize::new(0);
/// let work: Map<_, _> = hatchery::map(2, 1..=3, |x| {
///     calls.fetch_add(1, Ordering::SeqCst);
///     async move { x * 10 }
/// });
/// assert_eq!(calls.load(Ordering::SeqCst), 0); // only described so far
/// assert_eq!(work.join().await, [10, 20, 30]);
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
/// # });
/// ```
#[must_use = "`Map` does nothing until one of `join`, `try_join` or `settle` is awaited"]
pub struct Map<S, F> {
    limit: usize,
    inputs: S,
    f: F,
    ordered: bool,
    // Every input is spawned, even in a cancelled scope, as into any nursery: `join`,
    // `try_join` and `settle`, whose futures exist already.
    all: bool,
    // Where `map` (or `join`, ...) was called: the place of its nursery and tasks in the
    // task tree and the hold warnings (`diagnostics`).
    site: &'static Location<'static>,
}

impl<S, F> fmt::Debug for Map<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("limit", &self.limit)
            .field("ordered", &self.ordered)
            .finish_non_exhaustive()
    }
}

impl<S: Stream, F> Map<S, F> {
    /// Collects results in the order they complete instead of the input order.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::sleep;
    /// use hatchery::testing::virtual_time;
    ///
    /// # hatchery_smol::run(virtual_time(async {
    /// let order = hatchery::map(3, [60u64, 1, 25], |secs| async move {
    ///     sleep(Duration::from_secs(secs)).await;
    ///     secs
    /// })
    /// .unordered()
    /// .join()
    /// .await;
    /// assert_eq!(order, [1, 25, 60]);
    /// # }));
    /// ```
    pub fn unordered(mut self) -> Self {
        self.ordered = false;
        self
    }

    /// Spawns every input, even in a cancelled scope (see `Map::all`).
    pub(crate) fn spawn_all(mut self) -> Self {
        self.all = true;
        self
    }

    /// Runs the work and returns every output (of any type): in input order, or in
    /// completion order after [`unordered`](Map::unordered).
    ///
    /// # Cancel safety
    ///
    /// If the enclosing scope is cancelled, every running child is cancelled, no further
    /// input is taken, and this future waits for the children to finish, then never
    /// completes (the cancelled scope returns). Dropping it from outside hatchery cancels
    /// the children without waiting for them (see [`nursery`](crate::nursery)).
    ///
    /// # Panics
    ///
    /// When first polled outside a hatchery runtime. If a child panics: the others are
    /// cancelled and, once all have finished, the panic is resumed here. When kept past
    /// the scope it was first polled in, cancelled by that scope while it ran, and
    /// awaited after that scope has finished: its outputs are gone (see
    /// [Combinators](crate#combinators)).
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let lens = hatchery::map(2, ["a", "bb", "ccc"], |s| async move { s.len() }).join().await;
    /// assert_eq!(lens, [1, 2, 3]);
    /// # });
    /// ```
    pub fn join<Fut>(self) -> impl Future<Output = Vec<Fut::Output>>
    where
        F: FnMut(S::Item) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let Map {
            limit,
            inputs,
            f,
            ordered,
            all,
            site,
        } = self;
        async move {
            let out = Collector::new(ordered);
            let sink = out.clone();
            let spawned = drive::<Infallible, _, _, _, _, _>(
                "join",
                site,
                limit,
                all,
                inputs,
                f,
                move |i, fut| {
                    let sink = sink.clone();
                    async move {
                        sink.put(i, fut.await);
                        Ok(())
                    }
                },
            )
            .await;
            match spawned {
                Ok(n) => out.finish(n),
                Err(_) => unreachable!(
                    "hatchery: `join` children cannot fail, and `drive` \
                    is not cancelled"
                ),
            }
        }
    }

    /// Runs the work and returns every value, failing fast: the first `Err` cancels the
    /// other children (running ones are cancelled, no further input is taken), and once
    /// all have finished, every error that happened is returned, in the order they
    /// happened.
    ///
    /// Values come in input order, or in completion order after
    /// [`unordered`](Map::unordered).
    ///
    /// # Errors
    ///
    /// [`NurseryError::Failed`] with every error. It is never
    /// [`NurseryError::Cancelled`]: the work does not cancel itself.
    ///
    /// # Cancel safety
    ///
    /// As for [`join`](Map::join), except that errors are reported even when the
    /// enclosing scope is cancelled: a child that failed before or while being cancelled
    /// makes this return its errors once every child has finished (see
    /// [`try_join`](fn@crate::try_join)).
    ///
    /// # Panics
    ///
    /// As for [`join`](Map::join).
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let r = hatchery::map(4, 0..10, |i| async move {
    ///     if i == 7 { Err(format!("item {i} is bad")) } else { Ok(i) }
    /// })
    /// .try_join()
    /// .await;
    /// assert_eq!(r.unwrap_err().errors(), ["item 7 is bad"]);
    /// # });
    /// ```
    pub fn try_join<Fut, T, E>(self) -> impl Future<Output = Result<Vec<T>, NurseryError<E>>>
    where
        F: FnMut(S::Item) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let Map {
            limit,
            inputs,
            f,
            ordered,
            all,
            site,
        } = self;
        async move {
            let out = Collector::new(ordered);
            let sink = out.clone();
            let n = drive("try_join", site, limit, all, inputs, f, move |i, fut| {
                let sink = sink.clone();
                async move {
                    sink.put(i, fut.await?);
                    Ok(())
                }
            })
            .await?;
            Ok(out.finish(n))
        }
    }

    /// Runs the work and returns every result, `Ok` or `Err`: one error does not cancel
    /// the rest (Python's `gather(..., return_exceptions=True)`).
    ///
    /// Results come in input order, or in completion order after
    /// [`unordered`](Map::unordered).
    ///
    /// # Cancel safety
    ///
    /// As for [`join`](Map::join).
    ///
    /// # Panics
    ///
    /// As for [`join`](Map::join).
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let r = hatchery::map(4, 0..4, |i| async move {
    ///     if i % 2 == 1 { Err(i) } else { Ok(i) }
    /// })
    /// .settle()
    /// .await;
    /// assert_eq!(r, [Ok(0), Err(1), Ok(2), Err(3)]);
    /// # });
    /// ```
    pub fn settle<Fut, T, E>(self) -> impl Future<Output = Vec<Result<T, E>>>
    where
        F: FnMut(S::Item) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        self.join()
    }
}

pin_project! {
    /// The input of [`map`]: an iterator, seen as a stream that is always ready.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::ops::Range;
    /// use hatchery::futures::{InputIter, Map};
    ///
    /// # hatchery_smol::run(async {
    /// // `map` wraps its iterator in an `InputIter`: it shows in the type of the `Map`.
    /// let work: Map<InputIter<Range<u32>>, _> = hatchery::map(4, 0..3, |i| async move { i + 1 });
    /// assert_eq!(work.join().await, [1, 2, 3]);
    /// # });
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct InputIter<I> {
        iter: I,
    }
}

impl<I: Iterator> Stream for InputIter<I> {
    type Item = I::Item;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<I::Item>> {
        Poll::Ready(self.project().iter.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

impl<I> fmt::Debug for InputIter<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputIter").finish_non_exhaustive()
    }
}

/// Counts the children in flight and wakes the body when one finishes.
struct Gate {
    in_flight: AtomicUsize,
    /// A child failed or panicked. Set before its slot comes free: the nursery hears of
    /// the failure only after the child's future is gone, and a freed slot must not take
    /// more input meanwhile.
    stopped: AtomicBool,
    waker: AtomicWaker,
}

impl Gate {
    fn poll_free(&self, limit: usize, cx: &mut Context<'_>) -> Poll<()> {
        if self.in_flight.load(Ordering::Acquire) < limit {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.in_flight.load(Ordering::Acquire) < limit {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Frees a slot when the child's future is dropped (it finished or was cancelled).
struct Slot(Arc<Gate>);

impl Slot {
    /// The child failed: no more input is taken.
    fn stop(&self) {
        self.0.stopped.store(true, Ordering::Release);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.stop();
        }
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.waker.wake();
    }
}

/// Spawns `wrap(index, f(item))` for every input, with at most `limit` in flight, and
/// waits for all of them. Returns how many were spawned. Once the work is cancelled it
/// takes no more input, unless `all`.
pub(crate) async fn drive<E, S, F, Fut, W, C>(
    what: &str,
    site: &'static Location<'static>,
    limit: usize,
    all: bool,
    inputs: S,
    mut f: F,
    mut wrap: W,
) -> Result<usize, NurseryError<E>>
where
    E: Send + 'static,
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    W: FnMut(usize, Fut) -> C,
    C: Future<Output = Result<(), E>> + Send + 'static,
{
    let gate = Arc::new(Gate {
        in_flight: AtomicUsize::new(0),
        stopped: AtomicBool::new(false),
        waker: AtomicWaker::new(),
    });
    let done = nursery_at(site, |n| async move {
        let mut inputs = pin!(inputs);
        let mut index = 0;
        loop {
            poll_fn(|cx| gate.poll_free(limit, cx)).await;
            if !all && (gate.stopped.load(Ordering::Acquire) || n.is_cancelled()) {
                // Slots came free because the work is cancelled (a child failed, or an
                // enclosing scope was cancelled, perhaps before we started): take no
                // more input, even if this poll has not been stopped yet, and produce no
                // value, which would claim that every input was spawned: wait to be
                // dropped. With `all` (`join`, `try_join`, `settle`) every future given is
                // spawned, as into any nursery, cancelled or not.
                return std::future::pending().await;
            }
            let Some(item) = poll_fn(|cx| inputs.as_mut().poll_next(cx)).await else {
                break;
            };
            gate.in_flight.fetch_add(1, Ordering::AcqRel);
            let slot = Slot(gate.clone());
            let child = wrap(index, f(item));
            index += 1;
            n.spawn_at(site, async move {
                let out = child.await;
                if out.is_err() {
                    slot.stop();
                }
                drop(slot);
                out
            });
        }
        Ok(index)
    })
    .await;
    super::not_kept(what, done)
}

/// Where children put their outputs: by input index, or in completion order.
pub(crate) struct Collector<T> {
    ordered: bool,
    items: Mutex<Vec<Option<T>>>,
}

impl<T> Collector<T> {
    pub(crate) fn new(ordered: bool) -> Arc<Collector<T>> {
        Arc::new(Collector {
            ordered,
            items: Mutex::new(Vec::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<T>>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn put(&self, index: usize, value: T) {
        let mut items = self.lock();
        if self.ordered {
            if items.len() <= index {
                items.resize_with(index + 1, || None);
            }
            items[index] = Some(value);
        } else {
            items.push(Some(value));
        }
    }

    /// The `n` outputs, once every child has finished.
    pub(crate) fn finish(&self, n: usize) -> Vec<T> {
        let items = std::mem::take(&mut *self.lock());
        let out: Vec<T> = items.into_iter().flatten().collect();
        assert_eq!(
            out.len(),
            n,
            "hatchery: a child task was dropped by the executor before it finished \
             (is the runtime shutting down?)"
        );
        out
    }
}
