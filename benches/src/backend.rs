//! The executors under test, each built once and shared by the raw and the hatchery side.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::thread::JoinHandle;

use std::rc::Rc;

use async_executor::{Executor, LocalExecutor};
use hatchery_tokio::TokioRuntime;

/// One executor setup. Both sides of every comparison run on the same instance.
pub(crate) struct Backend {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
}

pub(crate) enum Kind {
    Tokio(tokio::runtime::Runtime),
    Smol(SmolPool),
    /// compio's thread-per-core runtime: the local rows only.
    Compio(compio_runtime::Runtime),
}

/// The backends in table order.
pub(crate) const NAMES: [&str; 5] = ["tokio-mt", "tokio-ct", "smol", "smol-ct", "compio"];

/// Whether `workload` runs on `backend`: every workload on tokio and smol, only the
/// local rows on compio (a thread-per-core runtime: its tasks are local ones).
pub(crate) fn runs(workload: &str, backend: &str) -> bool {
    backend != "compio" || workload.starts_with("local_")
}

impl Backend {
    /// Builds the backend called `name` (one of [`NAMES`]).
    pub(crate) fn new(name: &'static str) -> Backend {
        let kind = match name {
            // What `hatchery_tokio::run` builds: one worker per core.
            "tokio-mt" => Kind::Tokio(build(tokio::runtime::Builder::new_multi_thread())),
            "tokio-ct" => Kind::Tokio(build(tokio::runtime::Builder::new_current_thread())),
            // What `hatchery_smol::run` builds: the calling thread plus one per further core.
            "smol" => Kind::Smol(SmolPool::new(cores())),
            "smol-ct" => Kind::Smol(SmolPool::new(1)),
            "compio" => {
                Kind::Compio(compio_runtime::Runtime::new().expect("cannot build a compio runtime"))
            }
            _ => unreachable!("unknown backend {name}"),
        };
        Backend { name, kind }
    }

    /// Runs `fut` as a hatchery root in a task spawned on this backend, the way an
    /// application's code runs: the `block_on` root only awaits that task. (A timed
    /// future that is the root of `block_on` pays the executor's park and reactor poll
    /// around every yield, on both sides, which hides the difference between them; smol's
    /// `block_on` also polls its root at every wake-up of the thread.)
    pub(crate) fn hatchery<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.kind {
            Kind::Tokio(rt) => {
                let runtime = Arc::new(TokioRuntime::new(rt.handle().clone()));
                let task = rt.spawn(hatchery::rt::enter(runtime, fut));
                rt.block_on(task).expect("the benchmark task failed")
            }
            Kind::Smol(pool) => {
                let task = pool
                    .executor
                    .spawn(hatchery_smol::enter(&pool.executor, fut));
                pool.block_on(task)
            }
            Kind::Compio(_) => unreachable!("compio runs the local rows only"),
        }
    }

    /// Runs a raw workload in a task spawned on this backend: the future `tokio` makes
    /// on the tokio backends, the one `smol` makes (given the executor) on the smol ones.
    pub(crate) fn raw<T, S, FT, FS, O>(&self, tokio: T, smol: S) -> O
    where
        T: FnOnce() -> FT,
        S: FnOnce(Arc<Executor<'static>>) -> FS,
        FT: Future<Output = O> + Send + 'static,
        FS: Future<Output = O> + Send + 'static,
        O: Send + 'static,
    {
        match &self.kind {
            Kind::Tokio(rt) => {
                let task = rt.spawn(tokio());
                rt.block_on(task).expect("the benchmark task failed")
            }
            Kind::Smol(pool) => {
                let task = pool.executor.spawn(smol(pool.executor.clone()));
                pool.block_on(task)
            }
            Kind::Compio(_) => unreachable!("compio runs the local rows only"),
        }
    }
}

impl Backend {
    /// Runs a raw workload in a local task of this backend's thread (tokio: a task of a
    /// `LocalSet`, smol: of a `LocalExecutor` run beside the executor, compio: of its
    /// runtime), as [`raw`](Backend::raw): the future `tokio` makes on tokio, the one `smol`
    /// makes (given the executor) on smol, the one `compio` makes on compio.
    pub(crate) fn local_raw<T, S, C, FT, FS, FC, O>(&self, tokio: T, smol: S, compio: C) -> O
    where
        T: FnOnce() -> FT,
        S: FnOnce(Rc<LocalExecutor<'static>>) -> FS,
        C: FnOnce() -> FC,
        FT: Future<Output = O> + 'static,
        FS: Future<Output = O> + 'static,
        FC: Future<Output = O> + 'static,
        O: 'static,
    {
        match &self.kind {
            Kind::Tokio(rt) => {
                let local = tokio::task::LocalSet::new();
                let task = local.spawn_local(tokio());
                local.block_on(rt, task).expect("the benchmark task failed")
            }
            Kind::Smol(pool) => {
                let ex = Rc::new(LocalExecutor::new());
                let task = ex.spawn(smol(ex.clone()));
                pool.block_on(ex.run(task))
            }
            Kind::Compio(rt) => {
                let task = rt.spawn(compio());
                rt.block_on(task).expect("the benchmark task failed")
            }
        }
    }

    /// Runs `fut` as a hatchery root in a local task of this backend's thread, with that
    /// local executor bound as the thread's local runtime (`Local` children are its
    /// tasks), as [`hatchery`](Backend::hatchery).
    pub(crate) fn local_hatchery<F>(&self, fut: F) -> F::Output
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        match &self.kind {
            Kind::Tokio(rt) => {
                let runtime = Arc::new(TokioRuntime::new(rt.handle().clone()));
                let local = tokio::task::LocalSet::new();
                let _local = hatchery::rt::enter_local(Rc::new(hatchery_tokio::TokioLocal));
                let task = local.spawn_local(hatchery::rt::enter(runtime, fut));
                local.block_on(rt, task).expect("the benchmark task failed")
            }
            Kind::Smol(pool) => {
                let ex = Rc::new(LocalExecutor::new());
                let _local = hatchery_smol::enter_local(&ex);
                let task = ex.spawn(hatchery_smol::enter(&pool.executor, fut));
                pool.block_on(ex.run(task))
            }
            // `run_local_on` binds compio's two faces to it for the thread; the timed code
            // runs in a task spawned there, under the runtime the root was given.
            Kind::Compio(rt) => hatchery_compio::run_local_on(rt, async move {
                let runtime = hatchery::rt::current().expect("inside the root");
                compio_runtime::spawn(hatchery::rt::enter(runtime, fut))
                    .await
                    .expect("the benchmark task failed")
            }),
        }
    }
}

fn build(mut builder: tokio::runtime::Builder) -> tokio::runtime::Runtime {
    builder
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime")
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// An `async-executor` run by the calling thread (inside [`SmolPool::block_on`]) and by
/// `threads - 1` worker threads: the same setup as `hatchery_smol::run_with_threads`.
pub(crate) struct SmolPool {
    pub(crate) executor: Arc<Executor<'static>>,
    stop: Arc<Stop>,
    workers: Vec<JoinHandle<()>>,
}

impl SmolPool {
    fn new(threads: usize) -> SmolPool {
        let executor = Arc::new(Executor::new());
        let stop = Arc::new(Stop::default());
        let workers = (1..threads.max(1))
            .map(|i| {
                let (executor, stop) = (executor.clone(), stop.clone());
                std::thread::Builder::new()
                    .name(format!("bench-smol-{i}"))
                    .spawn(move || async_io::block_on(executor.run(stop.wait())))
                    .expect("cannot spawn an executor thread")
            })
            .collect();
        SmolPool {
            executor,
            stop,
            workers,
        }
    }

    /// Runs `fut` on the calling thread while it also runs the executor's tasks.
    pub(crate) fn block_on<F: Future>(&self, fut: F) -> F::Output {
        async_io::block_on(self.executor.run(fut))
    }
}

impl Drop for SmolPool {
    fn drop(&mut self) {
        self.stop.stop();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// Tells the worker threads of a [`SmolPool`] to return.
#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl Stop {
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        for waker in self.wakers.lock().expect("stop lock").drain(..) {
            waker.wake();
        }
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            let mut wakers = self.wakers.lock().expect("stop lock");
            if self.stopped.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            // Polled again every time the executor yields: keep one waker per thread.
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
    }
}
