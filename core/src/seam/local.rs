//! The local face of the seam: a runtime whose tasks stay on the thread that spawned
//! them ([`LocalRuntime`]), for children that need not be `Send` ([`Local`](crate::Local)).
//!
//! A runtime binds it beside its [`Runtime`](super::Runtime), which keeps giving the
//! clock, the timers, blocking work and the reactor: the local face adds only the spawn
//! of a [`LocalTask`]. It is installed for a thread ([`enter_local`]), as a local executor
//! is: tokio's `LocalSet` and smol's `LocalExecutor` run the tasks of the thread that
//! runs them.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::RawTask;

/// What a runtime whose tasks stay on one thread provides to hatchery, beside its
/// [`Runtime`](super::Runtime): the spawn of a task that need not be `Send`.
///
/// The children of a [`Local`](crate::Local) nursery are spawned through the one
/// installed on the spawning thread by [`enter_local`] (an adapter's `run_local` does
/// it). As for [`Runtime::spawn`](super::Runtime::spawn): never poll the task inside
/// `spawn_local`, and poll and drop it on this thread only (a [`LocalTask`] is not
/// `Send`, so safe code cannot do otherwise).
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use hatchery::rt::{enter_local, LocalRuntime, LocalTask};
/// use hatchery::{Local, Nursery};
///
/// /// smol's local executor, bound by hand (`hatchery_smol::run_local` does this).
/// struct Mine(Rc<async_executor::LocalExecutor<'static>>);
///
/// impl LocalRuntime for Mine {
///     fn spawn_local(&self, task: LocalTask) {
///         self.0.spawn(task).detach();
///     }
/// }
///
/// let ex = Rc::new(async_executor::LocalExecutor::new());
/// let _local = enter_local(Rc::new(Mine(ex.clone())));
/// let shared = Rc::new(std::cell::Cell::new(0)); // not `Send`
/// let s = shared.clone();
/// hatchery_smol::run_current_thread(ex.run(Local::nursery(|n: Nursery<(), Local>| async move {
///     n.spawn(async move { s.set(42); Ok(()) });
///     Ok(())
/// })))
/// .unwrap();
/// assert_eq!(shared.get(), 42);
/// ```
pub trait LocalRuntime: 'static {
    /// Spawns `task` on this thread's executor, to run to completion in the background
    /// (or be dropped, unfinished, when the executor shuts down: it then counts as
    /// cancelled).
    fn spawn_local(&self, task: LocalTask);
}

/// A task of a [`Local`](crate::Local) nursery as the local executor runs it: a
/// `Future<Output = ()>` that is not `Send`, to be polled to completion on the thread
/// that spawned it.
pub struct LocalTask {
    run: Run,
    // Polled and dropped on its thread only.
    _local: PhantomData<*const ()>,
}

/// A child's allocation, or a future a runtime wrapped a task in ([`LocalTask::from_future`]).
enum Run {
    Raw(RawTask),
    Boxed(Pin<Box<dyn Future<Output = ()>>>),
}

impl LocalTask {
    pub(crate) fn raw(raw: RawTask) -> LocalTask {
        LocalTask {
            run: Run::Raw(raw),
            _local: PhantomData,
        }
    }

    /// A task of `fut`: for a runtime that wraps the tasks it is given (a test run that
    /// counts them) before it hands them on.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::rt::LocalTask;
    ///
    /// let task = LocalTask::from_future(async { println!("ran") });
    /// futures_lite::future::block_on(task); // what a local executor does with it
    /// ```
    pub fn from_future(fut: impl Future<Output = ()> + 'static) -> LocalTask {
        LocalTask {
            run: Run::Boxed(Box::pin(fut)),
            _local: PhantomData,
        }
    }
}

impl Future for LocalTask {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.get_mut().run {
            Run::Raw(raw) => raw.poll(cx),
            Run::Boxed(fut) => fut.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for LocalTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTask").finish_non_exhaustive()
    }
}

thread_local! {
    /// The local runtimes installed on this thread, the current one last.
    static LOCAL: RefCell<Vec<Rc<dyn LocalRuntime>>> = const { RefCell::new(Vec::new()) };
}

/// Makes `rt` this thread's local runtime, until the returned guard is dropped (which
/// puts back the one it replaced): the children of every [`Local`](crate::Local) nursery
/// spawned on this thread meanwhile are its tasks. For an adapter's `run_local`, or for
/// a local executor you run yourself.
///
/// # Examples
///
/// See [`LocalRuntime`].
pub fn enter_local(rt: Rc<dyn LocalRuntime>) -> LocalEntered {
    LocalEntered {
        depth: push_local(rt),
        _local: PhantomData,
    }
}

/// This thread's local runtime while it lives; made by [`enter_local`].
#[must_use = "the local runtime is installed only while this guard lives"]
pub struct LocalEntered {
    depth: usize,
    _local: PhantomData<*const ()>,
}

impl Drop for LocalEntered {
    fn drop(&mut self) {
        pop_local(self.depth);
    }
}

/// Installs `rt` as this thread's local runtime, returning how many were installed
/// before: [`pop_local`] of that puts them back.
pub(crate) fn push_local(rt: Rc<dyn LocalRuntime>) -> usize {
    LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        l.push(rt);
        l.len() - 1
    })
}

/// Uninstalls the local runtimes installed since there were `depth`.
pub(crate) fn pop_local(depth: usize) {
    let gone = LOCAL.try_with(|l| l.borrow_mut().split_off(depth));
    drop(gone);
}

/// This thread's local runtime, if one is installed.
pub(crate) fn try_local() -> Option<Rc<dyn LocalRuntime>> {
    LOCAL
        .try_with(|l| l.borrow().last().cloned())
        .ok()
        .flatten()
}

impl fmt::Debug for LocalEntered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalEntered").finish_non_exhaustive()
    }
}

const NO_LOCAL: &str = "hatchery: no local runtime on this thread: the children of a \
`Local` nursery are tasks of the thread's local executor. Run the code inside \
`hatchery_tokio::run_local(..)`, `hatchery_smol::run_local(..)` or \
`hatchery_compio::run_local(..)` (the simulator, `hatchery_sim::run(..)`, runs them in \
every run), or install the local executor you run \
yourself with `hatchery::rt::enter_local(..)`. Children that need not \
be `Send` can also be polled by their nursery's own task: `PolledLocal::nursery`";

/// This thread's local runtime; panics with instructions if there is none.
pub(crate) fn current_local() -> Rc<dyn LocalRuntime> {
    try_local().expect(NO_LOCAL)
}
