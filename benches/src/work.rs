//! The workloads, each written three times: with hatchery (the same code on every
//! backend), with raw tokio, and with raw smol (`async-executor` + `async-io`).
//!
//! Every function times only the operation itself, from inside the executor, and returns
//! the elapsed time. Child futures are the same on every side; only the machinery that
//! spawns, waits for or cancels them differs.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use async_executor::{Executor, Task};
use hatchery::Nursery;
use tokio::task::JoinSet;

use crate::raw_smol;
pub(crate) use crate::raw_smol::smol_spawn_handles;
use crate::rss::rss;
pub(crate) use crate::yield_once::yield_once;
use crate::ALLOCATOR;

/// The timeout of the timeout workload: long enough never to fire.
const TIMEOUT: Duration = Duration::from_secs(1);
/// The deadline around a whole loop of checkpoints: far enough never to pass.
const LONG_TIMEOUT: Duration = Duration::from_secs(3600);

// ----- spawn + join of N trivial children -----

/// A nursery spawns `n` children returning `Ok(())` and waits for them by returning.
pub(crate) async fn hatchery_spawn_join(n: usize) -> Duration {
    let start = Instant::now();
    hatchery::nursery(|nursery: Nursery<Infallible>| async move {
        for _ in 0..n {
            drop(nursery.spawn(async { Ok(()) }));
        }
        Ok(())
    })
    .await
    .expect("nursery failed");
    start.elapsed()
}

/// The context value that `spawn_join_ctx` sets around the nursery: every child
/// inherits it.
static REQUEST: hatchery::ContextKey<u64> = hatchery::ContextKey::new("request");

/// [`hatchery_spawn_join`] with one context value set around the nursery, which every
/// child inherits (and reads once, so that the inheritance is not for nothing).
pub(crate) async fn hatchery_spawn_join_ctx(n: usize) -> Duration {
    REQUEST
        .scope(7, async move {
            let start = Instant::now();
            hatchery::nursery(|nursery: Nursery<Infallible>| async move {
                for _ in 0..n {
                    drop(nursery.spawn(async {
                        std::hint::black_box(REQUEST.with(|r| r.is_some()));
                        Ok(())
                    }));
                }
                Ok(())
            })
            .await
            .expect("nursery failed");
            start.elapsed()
        })
        .await
}

/// A `JoinSet` spawns `n` children and is drained with `join_next`. With `ballast`,
/// each child also carries a [`Ballast`] (the reference row).
pub(crate) async fn tokio_spawn_join(n: usize, ballast: bool) -> Duration {
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..n {
        if ballast {
            set.spawn(carry());
        } else {
            set.spawn(async {});
        }
    }
    while let Some(res) = set.join_next().await {
        res.expect("task failed");
    }
    start.elapsed()
}

/// `n` tasks spawned on the executor, kept in a `Vec<Task>` and awaited in order. With
/// `ballast`, each child also carries a [`Ballast`] (the reference row).
pub(crate) async fn smol_spawn_join(ex: &Executor<'static>, n: usize, ballast: bool) -> Duration {
    match ballast {
        true => raw_smol::smol_spawn_join(ex, n, carry).await,
        false => raw_smol::smol_spawn_join(ex, n, || async {}).await,
    }
}

// ----- spawn + join of N children whose futures hold 1 KiB -----

/// What the children of the `spawn_join_1k` rows hold across their suspension.
const LARGE: usize = 1024;

/// A child of the `spawn_join_1k` rows: 1 KiB held across a yield, then read, so that
/// its future is larger than the room hatchery keeps a future in place in (256 bytes):
/// hatchery boxes it, and frees the box when the child ends.
async fn large_child() {
    let room = [1u8; LARGE];
    yield_once().await;
    black_box(&room);
}

/// [`hatchery_spawn_join`] with children whose futures hold 1 KiB.
pub(crate) async fn hatchery_spawn_join_large(n: usize) -> Duration {
    let start = Instant::now();
    hatchery::nursery(|nursery: Nursery<Infallible>| async move {
        for _ in 0..n {
            drop(nursery.spawn(async {
                large_child().await;
                Ok(())
            }));
        }
        Ok(())
    })
    .await
    .expect("nursery failed");
    start.elapsed()
}

/// [`tokio_spawn_join`] with children whose futures hold 1 KiB (with `ballast`, one
/// more allocation each).
pub(crate) async fn tokio_spawn_join_large(n: usize, ballast: bool) -> Duration {
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..n {
        let carried = ballast.then(carry);
        set.spawn(async move {
            if let Some(carried) = carried {
                carried.await;
            }
            large_child().await;
        });
    }
    while let Some(res) = set.join_next().await {
        res.expect("task failed");
    }
    start.elapsed()
}

/// [`smol_spawn_join`] with children whose futures hold 1 KiB (with `ballast`, one more
/// allocation each).
pub(crate) async fn smol_spawn_join_large(
    ex: &Executor<'static>,
    n: usize,
    ballast: bool,
) -> Duration {
    let start = Instant::now();
    let tasks: Vec<Task<()>> = (0..n)
        .map(|_| {
            let carried = ballast.then(carry);
            ex.spawn(async move {
                if let Some(carried) = carried {
                    carried.await;
                }
                large_child().await;
            })
        })
        .collect();
    for task in tasks {
        task.await;
    }
    start.elapsed()
}

// ----- spawn + join through handles, collecting a value -----

/// A nursery spawns `n` children returning their index and joins every handle in order.
pub(crate) async fn hatchery_spawn_handles(n: usize) -> Duration {
    let start = Instant::now();
    let sum = hatchery::nursery(|nursery: Nursery<Infallible>| async move {
        let handles: Vec<_> = (0..n)
            .map(|i| nursery.spawn(async move { Ok(i) }))
            .collect();
        let mut sum = 0;
        for handle in handles {
            sum += handle.join().await.expect("join failed");
        }
        Ok(sum)
    })
    .await
    .expect("nursery failed");
    black_box(sum);
    start.elapsed()
}

/// `n` `tokio::spawn`ed tasks returning their index, `JoinHandle`s awaited in order.
pub(crate) async fn tokio_spawn_handles(n: usize) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
    let mut sum = 0;
    for handle in handles {
        sum += handle.await.expect("task failed");
    }
    black_box(sum);
    start.elapsed()
}

// ----- reference: raw spawn + join through handles, plus hatchery's second allocation -----

/// What a hatchery child allocates besides the executor's task, for the reference rows:
/// one shared allocation of about the size of hatchery's (184 bytes with its counts),
/// shared by the child and whoever else reaches it (its joiner, its canceller).
type Ballast = Arc<Mutex<[u8; 160]>>;

fn ballast() -> Ballast {
    Arc::new(Mutex::new([0; 160]))
}

/// Reads a ballast, as hatchery reads a child's node or result slot.
fn touch(b: &Ballast) {
    black_box(b.lock().expect("ballast lock")[0]);
}

/// The child of the raw `spawn_join` reference rows: it carries a [`Ballast`] that its
/// spawner also held for a moment (as a dropped `TaskHandle` does) and that the child
/// touches when it runs and frees when it finishes, as hatchery's runner does. (The main
/// rows spawn `async {}` itself: their children must stay the size they were.)
fn carry() -> impl Future<Output = ()> + Send + 'static {
    let theirs = ballast();
    drop(theirs.clone());
    async move { touch(&theirs) }
}

/// [`tokio_spawn_handles`] with a [`Ballast`] per child: how far hatchery's second
/// allocation alone takes the raw side.
pub(crate) async fn tokio_spawn_handles_ballast(n: usize) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let mine = ballast();
            let theirs = mine.clone();
            let handle = tokio::spawn(async move { i + usize::from(theirs.lock().unwrap()[0]) });
            (handle, mine)
        })
        .collect();
    let mut sum = 0;
    for (handle, mine) in handles {
        sum += handle.await.expect("task failed") + usize::from(mine.lock().unwrap()[1]);
    }
    black_box(sum);
    start.elapsed()
}

/// [`smol_spawn_handles`] with a [`Ballast`] per child.
pub(crate) async fn smol_spawn_handles_ballast(ex: &Executor<'static>, n: usize) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let mine = ballast();
            let theirs = mine.clone();
            let task = ex.spawn(async move { i + usize::from(theirs.lock().unwrap()[0]) });
            (task, mine)
        })
        .collect();
    let mut sum = 0;
    for (task, mine) in tasks {
        sum += task.await + usize::from(mine.lock().unwrap()[1]);
    }
    black_box(sum);
    start.elapsed()
}

// ----- a timeout that does not fire around a future that yields once -----

/// `move_on_after(1s, yield_once())`, `iters` times in a row.
pub(crate) async fn hatchery_timeout(iters: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let out = hatchery::move_on_after(TIMEOUT, yield_once()).await;
        out.expect("timed out");
    }
    start.elapsed()
}

/// `tokio::time::timeout(1s, yield_once())`, `iters` times in a row.
pub(crate) async fn tokio_timeout(iters: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let out = tokio::time::timeout(TIMEOUT, yield_once()).await;
        out.expect("timed out");
    }
    start.elapsed()
}

/// smol's idiom: `future::or(yield_once(), Timer::after(1s))`, `iters` times in a row.
pub(crate) async fn smol_timeout(iters: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let out = futures_lite::future::or(
            async {
                yield_once().await;
                Some(())
            },
            async {
                async_io::Timer::after(TIMEOUT).await;
                None
            },
        )
        .await;
        out.expect("timed out");
    }
    start.elapsed()
}

// ----- N parked children: memory, then cancellation -----

/// How long a child parked in a sleep sleeps: long enough never to wake.
const PARK: Duration = Duration::from_secs(3600);

/// What parked children wait on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// `std::future::pending()`: no timer at all.
    Pending,
    /// The side's own sleep of an hour: `hatchery::sleep`, `tokio::time::sleep`, or
    /// `async_io::Timer::after`.
    Sleep,
}

impl Wait {
    /// The row name's suffix.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Wait::Pending => "pending()",
            Wait::Sleep => "sleep",
        }
    }
}

/// Whether a parked-children run counts the bytes its children allocate (the memory and
/// `cancel_parked` rows, as before) or nothing, so that its spawn phase is timed without
/// the counter (`spawn_parked`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Count {
    Bytes,
    Nothing,
}

/// What a parked-children run measured.
#[derive(Clone, Copy)]
pub(crate) struct Parked {
    /// Bytes allocated while the children were parked, per child.
    pub(crate) bytes_per_child: f64,
    /// Growth of the resident set while the children were parked, per child.
    pub(crate) rss_per_child: f64,
    /// From the first spawn until every child was parked (polled once).
    pub(crate) spawn: Duration,
    /// From the cancel request until every child's future was dropped.
    pub(crate) cancel: Duration,
}

/// Counts the parked children: how many were polled, how many are still alive; and
/// measures the memory they hold.
struct Park {
    polled: AtomicUsize,
    live: AtomicUsize,
    waker: Mutex<Option<Waker>>,
    /// The resident set size when the count started.
    rss: Mutex<f64>,
}

impl Park {
    fn new() -> Arc<Park> {
        Arc::new(Park {
            polled: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            waker: Mutex::new(None),
            rss: Mutex::new(0.0),
        })
    }

    /// Starts counting allocated bytes and notes the resident set size, if `count`
    /// (the memory rows; the timed spawn phase counts nothing).
    fn start(&self, count: Count) {
        if count == Count::Bytes {
            *self.rss.lock().expect("park lock") = rss();
            ALLOCATOR.start();
        }
    }

    /// Stops the count started by [`start`](Park::start); bytes allocated and resident
    /// set growth per child (zero if nothing was counted).
    fn measure(&self, n: usize, count: Count) -> (f64, f64) {
        if count == Count::Nothing {
            return (0.0, 0.0);
        }
        let bytes = ALLOCATOR.stop() as f64 / n as f64;
        let grown = rss() - *self.rss.lock().expect("park lock");
        (bytes, grown / n as f64)
    }

    /// A child that records its first poll and then waits forever in what `wait` makes
    /// (called in that first poll, as a child's own code would).
    fn child<T, W>(
        self: &Arc<Self>,
        wait: impl FnOnce() -> W + Send + 'static,
    ) -> impl Future<Output = T> + Send + 'static
    where
        T: Send + 'static,
        W: Future<Output = ()> + Send,
    {
        self.live.fetch_add(1, Ordering::Relaxed);
        let guard = Alive(self.clone());
        async move {
            guard.0.polled.fetch_add(1, Ordering::Release);
            wait().await;
            unreachable!("a parked child woke up")
        }
    }

    /// [`child`](Park::child) carrying `ballast`, touched in its first poll (the
    /// reference rows). A separate future, so that the main rows' children stay the size
    /// they were.
    fn child_with<T, W>(
        self: &Arc<Self>,
        ballast: Ballast,
        wait: impl FnOnce() -> W + Send + 'static,
    ) -> impl Future<Output = T> + Send + 'static
    where
        T: Send + 'static,
        W: Future<Output = ()> + Send,
    {
        let child = self.child::<T, W>(wait);
        async move {
            touch(&ballast);
            child.await
        }
    }

    /// Yields until all `n` children have been polled once.
    async fn all_polled(&self, n: usize) {
        while self.polled.load(Ordering::Acquire) < n {
            yield_once().await;
        }
    }

    /// Waits until every child's future has been dropped.
    async fn all_dropped(&self) {
        std::future::poll_fn(|cx| {
            if self.live.load(Ordering::Acquire) == 0 {
                return Poll::Ready(());
            }
            *self.waker.lock().expect("park lock") = Some(cx.waker().clone());
            if self.live.load(Ordering::Acquire) == 0 {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await;
    }
}

/// Held by a child's future; counts the child as alive until the future is dropped.
struct Alive(Arc<Park>);

impl Drop for Alive {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(waker) = self.0.waker.lock().expect("park lock").take() {
                waker.wake();
            }
        }
    }
}

/// A nursery with `n` children parked in `wait`; the body measures, then calls
/// `cancel` and returns; timed until the nursery has returned.
pub(crate) async fn hatchery_parked(n: usize, wait: Wait, count: Count) -> Parked {
    match wait {
        Wait::Pending => hatchery_parked_in(n, std::future::pending::<()>, count).await,
        Wait::Sleep => hatchery_parked_in(n, || hatchery::sleep(PARK), count).await,
    }
}

async fn hatchery_parked_in<W>(n: usize, wait: fn() -> W, count: Count) -> Parked
where
    W: Future<Output = ()> + Send + 'static,
{
    let park = Park::new();
    park.start(count);
    let (measured, spawn, start) = hatchery::nursery(|nursery: Nursery<Infallible>| {
        let park = park.clone();
        async move {
            let spawning = Instant::now();
            for _ in 0..n {
                drop(nursery.spawn(park.child::<Result<(), Infallible>, W>(wait)));
            }
            park.all_polled(n).await;
            let spawn = spawning.elapsed();
            let measured = park.measure(n, count);
            let start = Instant::now();
            nursery.cancel();
            Ok((measured, spawn, start))
        }
    })
    .await
    .expect("nursery failed");
    let cancel = start.elapsed();
    assert_eq!(park.live.load(Ordering::Acquire), 0, "children left alive");
    Parked {
        bytes_per_child: measured.0,
        rss_per_child: measured.1,
        spawn,
        cancel,
    }
}

/// The reference rows' side of a parked child's second allocation: the canceller keeps
/// a reference to each child's [`Ballast`], as a nursery's child list does, and reaches
/// every one of them when it cancels (hatchery's cancellation marks each child's node and
/// takes its waker from there before it wakes the child's task).
/// `None` in the main rows.
struct Reach(Option<Vec<Ballast>>);

impl Reach {
    fn new(ballast: bool, n: usize) -> Reach {
        Reach(ballast.then(|| Vec::with_capacity(n)))
    }

    /// A ballast for a new child, if this is a reference row; keeps a reference to it.
    fn ballast(&mut self) -> Option<Ballast> {
        let kept = self.0.as_mut()?;
        let b = ballast();
        kept.push(b.clone());
        Some(b)
    }
}

/// A `JoinSet` with `n` children parked in `wait` (`tokio::time::sleep` for a sleep),
/// cancelled with `JoinSet::shutdown`. With `ballast`, each child also carries a
/// [`Ballast`] that the cancellation reaches first (the reference rows; see [`Reach`]).
pub(crate) async fn tokio_parked(n: usize, ballast: bool, wait: Wait, count: Count) -> Parked {
    match wait {
        Wait::Pending => tokio_parked_in(n, ballast, std::future::pending::<()>, count).await,
        Wait::Sleep => tokio_parked_in(n, ballast, || tokio::time::sleep(PARK), count).await,
    }
}

async fn tokio_parked_in<W>(n: usize, ballast: bool, wait: fn() -> W, count: Count) -> Parked
where
    W: Future<Output = ()> + Send + 'static,
{
    let park = Park::new();
    park.start(count);
    let spawning = Instant::now();
    let mut reach = Reach::new(ballast, n);
    let mut set = JoinSet::new();
    for _ in 0..n {
        match reach.ballast() {
            Some(b) => set.spawn(park.child_with::<(), W>(b, wait)),
            None => set.spawn(park.child::<(), W>(wait)),
        };
    }
    park.all_polled(n).await;
    let spawn = spawning.elapsed();
    let (bytes_per_child, rss_per_child) = park.measure(n, count);
    let start = Instant::now();
    // Every child's ballast is reached before the cancellation, which is one call here.
    reach.0.into_iter().flatten().for_each(|b| touch(&b));
    set.shutdown().await;
    let cancel = start.elapsed();
    assert_eq!(park.live.load(Ordering::Acquire), 0, "children left alive");
    Parked {
        bytes_per_child,
        rss_per_child,
        spawn,
        cancel,
    }
}

/// A `Vec<Task>` of `n` children parked in `wait` (`async_io::Timer::after` for a
/// sleep), cancelled by dropping it; timed until the executor has dropped every child's
/// future (dropping a `Task` only schedules that). With `ballast`, each child also
/// carries a [`Ballast`] that the cancellation reaches just before it drops the child's
/// task (the reference rows; see [`Reach`]).
pub(crate) async fn smol_parked(
    ex: &Executor<'static>,
    n: usize,
    ballast: bool,
    wait: Wait,
    count: Count,
) -> Parked {
    async fn timer() {
        async_io::Timer::after(PARK).await;
    }
    match wait {
        Wait::Pending => smol_parked_in(ex, n, ballast, std::future::pending::<()>, count).await,
        Wait::Sleep => smol_parked_in(ex, n, ballast, timer, count).await,
    }
}

async fn smol_parked_in<W>(
    ex: &Executor<'static>,
    n: usize,
    ballast: bool,
    wait: fn() -> W,
    count: Count,
) -> Parked
where
    W: Future<Output = ()> + Send + 'static,
{
    let park = Park::new();
    park.start(count);
    let spawning = Instant::now();
    let mut reach = Reach::new(ballast, n);
    let tasks: Vec<Task<()>> = (0..n)
        .map(|_| match reach.ballast() {
            Some(b) => ex.spawn(park.child_with::<(), W>(b, wait)),
            None => ex.spawn(park.child::<(), W>(wait)),
        })
        .collect();
    park.all_polled(n).await;
    let spawn = spawning.elapsed();
    let (bytes_per_child, rss_per_child) = park.measure(n, count);
    let start = Instant::now();
    match reach.0 {
        Some(kept) => {
            for (b, task) in kept.into_iter().zip(tasks) {
                touch(&b);
                drop(b);
                drop(task);
            }
        }
        None => drop(tasks),
    }
    park.all_dropped().await;
    let cancel = start.elapsed();
    Parked {
        bytes_per_child,
        rss_per_child,
        spawn,
        cancel,
    }
}

// ----- the floor under the timeout row: bare yields -----

/// `yield_once()`, `iters` times in a row: what the timeout row's body costs without the
/// timeout, on each side (a hatchery task's poll against the executor's own).
pub(crate) async fn yield_loop(iters: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        yield_once().await;
    }
    start.elapsed()
}

// ----- checkpoints, without and with a deadline around them -----

/// `hatchery::checkpoint()`, `iters` times in a row: the yield row's body with
/// hatchery's checkpoint, with no deadline around it.
pub(crate) async fn checkpoint_loop(iters: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        hatchery::checkpoint().await;
    }
    start.elapsed()
}

/// `iters` checkpoints in one `move_on_after(1h, ..)`: each reads the clock for the
/// deadline around it.
pub(crate) async fn checkpoints_in_timeout(iters: usize) -> Duration {
    let start = Instant::now();
    let out = hatchery::move_on_after(LONG_TIMEOUT, async {
        for _ in 0..iters {
            hatchery::checkpoint().await;
        }
    })
    .await;
    out.expect("timed out");
    start.elapsed()
}

/// `iters` yields in one `tokio::time::timeout(1h, ..)`.
pub(crate) async fn tokio_yields_in_timeout(iters: usize) -> Duration {
    let start = Instant::now();
    let out = tokio::time::timeout(LONG_TIMEOUT, async {
        for _ in 0..iters {
            yield_once().await;
        }
    })
    .await;
    out.expect("timed out");
    start.elapsed()
}

/// smol's idiom: `iters` yields raced against `Timer::after(1h)`.
pub(crate) async fn smol_yields_in_timeout(iters: usize) -> Duration {
    let start = Instant::now();
    let out = futures_lite::future::or(
        async {
            for _ in 0..iters {
                yield_once().await;
            }
            Some(())
        },
        async {
            async_io::Timer::after(LONG_TIMEOUT).await;
            None
        },
    )
    .await;
    out.expect("timed out");
    start.elapsed()
}

/// `n` children of a [`Local`](hatchery::Local) nursery, spawned and joined (their
/// handles dropped), on the thread's local executor.
pub(crate) async fn hatchery_local_spawn_join(n: usize) -> Duration {
    let start = Instant::now();
    hatchery::Local::nursery(|nursery: Nursery<Infallible, hatchery::Local>| async move {
        for _ in 0..n {
            drop(nursery.spawn(async { Ok(()) }));
        }
        Ok(())
    })
    .await
    .expect("nursery failed");
    start.elapsed()
}

/// `n` tasks spawned with `tokio::task::spawn_local` on the running `LocalSet` and
/// joined; with `ballast`, each carries a [`Ballast`] (the reference row).
pub(crate) async fn tokio_local_spawn_join(n: usize, ballast: bool) -> Duration {
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..n {
        if ballast {
            set.spawn_local(carry());
        } else {
            set.spawn_local(async {});
        }
    }
    while let Some(res) = set.join_next().await {
        res.expect("a task failed");
    }
    start.elapsed()
}

/// A local executor's own spawn (smol's `LocalExecutor`, compio's runtime), for the raw
/// side of the local rows: a task and the handle that awaits it, or cancels it when
/// dropped.
pub(crate) trait LocalSpawn {
    /// The handle of a task whose output is `T`.
    type Handle<T>: Future;
    /// Spawns `fut` on this thread's executor.
    fn spawn<F: Future + 'static>(&self, fut: F) -> Self::Handle<F::Output>;
}

impl LocalSpawn for async_executor::LocalExecutor<'static> {
    type Handle<T> = Task<T>;
    fn spawn<F: Future + 'static>(&self, fut: F) -> Task<F::Output> {
        async_executor::LocalExecutor::spawn(self, fut)
    }
}

/// compio's runtime on this thread.
pub(crate) struct Compio;

impl LocalSpawn for Compio {
    type Handle<T> = compio_runtime::JoinHandle<T>;
    fn spawn<F: Future + 'static>(&self, fut: F) -> compio_runtime::JoinHandle<F::Output> {
        compio_runtime::spawn(fut)
    }
}

/// `n` tasks of a local executor (smol's `LocalExecutor`, compio), spawned and awaited.
pub(crate) async fn local_spawn_join(ex: &impl LocalSpawn, n: usize, ballast: bool) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| match ballast {
            true => ex.spawn(carry()),
            false => ex.spawn(async {}),
        })
        .collect();
    for t in tasks {
        drop(t.await);
    }
    start.elapsed()
}

/// `n` children of a [`Local`](hatchery::Local) nursery parked in `pending()`, then
/// cancelled (as [`hatchery_parked`]).
pub(crate) async fn hatchery_local_parked(n: usize, count: Count) -> Parked {
    let park = Park::new();
    park.start(count);
    let p = park.clone();
    let (measured, spawn, start) =
        hatchery::Local::nursery(|nursery: Nursery<Infallible, hatchery::Local>| async move {
            let spawning = Instant::now();
            for _ in 0..n {
                drop(nursery.spawn(p.child::<Result<(), Infallible>, _>(std::future::pending)));
            }
            p.all_polled(n).await;
            let spawn = spawning.elapsed();
            let measured = p.measure(n, count);
            let start = Instant::now();
            nursery.cancel();
            Ok((measured, spawn, start))
        })
        .await
        .expect("nursery failed");
    let cancel = start.elapsed();
    assert_eq!(park.live.load(Ordering::Acquire), 0, "children left alive");
    Parked {
        bytes_per_child: measured.0,
        rss_per_child: measured.1,
        spawn,
        cancel,
    }
}

/// `n` tasks of the running `LocalSet` parked in `pending()`, cancelled with
/// `JoinSet::shutdown` (as [`tokio_parked`]).
pub(crate) async fn tokio_local_parked(n: usize, ballast: bool, count: Count) -> Parked {
    let park = Park::new();
    park.start(count);
    let spawning = Instant::now();
    let mut reach = Reach::new(ballast, n);
    let mut set = JoinSet::new();
    for _ in 0..n {
        match reach.ballast() {
            Some(b) => set.spawn_local(park.child_with::<(), _>(b, std::future::pending)),
            None => set.spawn_local(park.child::<(), _>(std::future::pending)),
        };
    }
    park.all_polled(n).await;
    let spawn = spawning.elapsed();
    let (bytes_per_child, rss_per_child) = park.measure(n, count);
    let start = Instant::now();
    reach.0.into_iter().flatten().for_each(|b| touch(&b));
    set.shutdown().await;
    let cancel = start.elapsed();
    assert_eq!(park.live.load(Ordering::Acquire), 0, "children left alive");
    Parked {
        bytes_per_child,
        rss_per_child,
        spawn,
        cancel,
    }
}

/// `n` tasks of a local executor (smol's `LocalExecutor`, compio) parked in `pending()`, cancelled by dropping
/// them (as [`smol_parked`]).
pub(crate) async fn local_parked(
    ex: &impl LocalSpawn,
    n: usize,
    ballast: bool,
    count: Count,
) -> Parked {
    let park = Park::new();
    park.start(count);
    let spawning = Instant::now();
    let mut reach = Reach::new(ballast, n);
    let tasks: Vec<_> = (0..n)
        .map(|_| match reach.ballast() {
            Some(b) => ex.spawn(park.child_with::<(), _>(b, std::future::pending)),
            None => ex.spawn(park.child::<(), _>(std::future::pending)),
        })
        .collect();
    park.all_polled(n).await;
    let spawn = spawning.elapsed();
    let (bytes_per_child, rss_per_child) = park.measure(n, count);
    let start = Instant::now();
    reach.0.into_iter().flatten().for_each(|b| touch(&b));
    drop(tasks);
    park.all_dropped().await;
    let cancel = start.elapsed();
    Parked {
        bytes_per_child,
        rss_per_child,
        spawn,
        cancel,
    }
}
