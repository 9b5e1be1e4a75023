//! Entry points and the runtime seam: running on each backend, using hatchery inside an
//! executor that is already running, the runtime's clock, blocking work, and the clear
//! failure outside any runtime.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, UnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use futures_lite::future::{self, block_on};
use hatchery::rt::{Runtime, Sleep, Task};
use hatchery::{
    checkpoint, current_effective_deadline, move_on_after, now, nursery, run_blocking, sleep,
    Nursery,
};
use hatchery_tests::{backend, catch_panic, ms, panic_message, secs, ShutDown, TestError, HOUR};

const NO_RUNTIME: &str = "hatchery: no runtime in this context";

/// Runs `f`, expecting it to panic with the "no runtime" message.
fn expect_no_runtime<R>(what: &str, f: impl FnOnce() -> R + UnwindSafe) {
    let err = catch_unwind(f)
        .err()
        .unwrap_or_else(|| panic!("{what} did not panic"));
    let msg = panic_message(&*err);
    assert!(msg.starts_with(NO_RUNTIME), "{what}: {msg}");
    assert!(
        msg.contains("hatchery_tokio::run"),
        "{what}: says what to do: {msg}"
    );
}

#[test]
fn no_runtime_panics_with_a_clear_message() {
    assert!(!hatchery::rt::is_entered());
    expect_no_runtime("now()", now);
    expect_no_runtime("current_effective_deadline()", current_effective_deadline);
    expect_no_runtime("polling sleep", || block_on(sleep(ms(1))));
    expect_no_runtime("polling move_on_after", || {
        block_on(move_on_after(ms(1), async {}))
    });
    expect_no_runtime("polling nursery", || {
        block_on(nursery(|_n: Nursery<TestError>| async { Ok(()) }))
    });
    expect_no_runtime("polling a CancelScope", || {
        block_on(hatchery::CancelScope::new().run(async {}))
    });
    expect_no_runtime("polling run_blocking", || block_on(run_blocking(|| 1)));
}

#[test]
fn checkpoint_outside_runtime_only_yields() {
    block_on(checkpoint());
}

#[test]
fn executor_task_outside_hatchery_gets_the_message() {
    hatchery_tokio::run_current_thread(async {
        let r = tokio::spawn(async { hatchery::now() }).await;
        let p = r.unwrap_err().into_panic();
        assert!(panic_message(&*p).starts_with(NO_RUNTIME));
    });
}

#[test]
fn tokio_enter_inside_a_running_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let out = rt.block_on(async {
        assert!(!hatchery::rt::is_entered());
        hatchery_tokio::enter(async {
            assert!(hatchery::rt::is_entered());
            nursery(|n| async move {
                let h = n.spawn(async {
                    sleep(ms(1)).await;
                    Ok::<_, TestError>(20)
                });
                Ok(h.join().await.unwrap() + 1)
            })
            .await
        })
        .await
    });
    assert_eq!(out, Ok(21));
}

/// An `enter` future first polled outside hatchery code is a root, and stays one when it
/// is polled inside hatchery code later (from an audit: each poll decided again, so its
/// code moved into the enclosing scope for that poll, deadline and all).
#[test]
fn an_enter_root_stays_a_root_when_polled_inside_hatchery_later() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seen = rt.block_on(async {
        let mut root = Box::pin(hatchery_tokio::enter(async {
            let first = current_effective_deadline();
            checkpoint().await;
            (first, current_effective_deadline())
        }));
        assert!(future::poll_once(&mut root).await.is_none());
        hatchery_tokio::enter(async move {
            move_on_after(HOUR, async move {
                assert!(matches!(
                    current_effective_deadline(),
                    hatchery::Deadline::At(_)
                ));
                root.await
            })
            .await
        })
        .await
    });
    assert_eq!(
        seen,
        Some((hatchery::Deadline::Never, hatchery::Deadline::Never))
    );
}

#[test]
fn smol_enter_inside_a_running_executor() {
    let ex = Arc::new(async_executor::Executor::new());
    let out = block_on(ex.run(hatchery_smol::enter(&ex, async {
        assert_eq!(move_on_after(ms(2), sleep(HOUR)).await, None);
        nursery(|n| async move {
            let h = n.spawn(async {
                sleep(ms(1)).await;
                Ok::<_, TestError>(30)
            });
            Ok(h.join().await.unwrap() + 1)
        })
        .await
    })));
    assert_eq!(out, Ok(31));
}

#[test]
fn time_follows_a_paused_tokio_clock() {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all().start_paused(true);
    let wall = Instant::now();
    let (virtual_elapsed, out) = hatchery_tokio::run_with(builder, async {
        let start = now();
        let out = move_on_after(HOUR, sleep(2 * HOUR)).await;
        (now() - start, out)
    });
    assert_eq!(out, None);
    assert!(
        virtual_elapsed >= HOUR,
        "the deadline is on the virtual clock"
    );
    assert!(
        wall.elapsed() < Duration::from_secs(10),
        "no real hour passed"
    );
}

#[test]
fn default_run_functions_return_the_root_value() {
    assert_eq!(
        hatchery_tokio::run(async {
            sleep(ms(1)).await;
            1
        }),
        1
    );
    assert_eq!(hatchery_tokio::run_current_thread(async { 2 }), 2);
    assert_eq!(
        hatchery_smol::run(async {
            sleep(ms(1)).await;
            3
        }),
        3
    );
    assert_eq!(hatchery_smol::run_current_thread(async { 4 }), 4);
    assert_eq!(hatchery_smol::run_with_threads(0, async { 5 }), 5);
}

/// The root future runs inside a hatchery context on every backend.
#[hatchery::test]
async fn root_is_entered() {
    assert!(hatchery::rt::is_entered());
    assert!(["tokio_current", "tokio_multi", "smol"].contains(&backend()));
}

/// `rt::current()` hands code the runtime it runs on, named after its executor, also in
/// a child task and inside the test run (whose runtime forwards the backend's name);
/// nothing outside hatchery, nor in a plain thread spawned from hatchery code.
#[hatchery::test]
async fn current_runtime_names_its_executor() {
    let expected = if backend().starts_with("tokio") {
        "tokio"
    } else {
        "smol"
    };
    let rt = hatchery::rt::current().expect("inside hatchery");
    assert_eq!(rt.name(), expected);
    let child = nursery(|n: Nursery<TestError>| async move {
        let h = n.spawn(async { Ok(hatchery::rt::current().map(|rt| rt.name())) });
        Ok(h.join().await.unwrap())
    })
    .await
    .unwrap();
    assert_eq!(child, Some(expected));
    let outside = std::thread::spawn(|| hatchery::rt::current().is_none());
    assert!(run_blocking(move || outside.join().unwrap()).await);
}

/// A thread-to-async helper built on `rt::current()`: a plain thread runs async code
/// bound to its caller's runtime, whose nursery spawns its children on the caller's
/// executor (so they count in the test run, and virtual time waits for them), and the
/// caller's clock is the one that code reads.
#[hatchery::test(virtual_time)]
async fn current_runtime_binds_a_thread_to_the_callers_executor() {
    let rt = hatchery::rt::current().expect("inside hatchery");
    let start = now();
    // Not `run_blocking` to wait for the thread: blocking work keeps virtual time still.
    let (tx, rx) = hatchery::memory_stream(1);
    let thread = std::thread::spawn(move || {
        let out = block_on(hatchery::rt::enter(
            rt,
            nursery(|n: Nursery<TestError>| async move {
                let h = n.spawn(async {
                    sleep(secs(5)).await;
                    Ok(hatchery::testing::is_virtual_time())
                });
                Ok((h.join().await.unwrap(), now()))
            }),
        ));
        tx.try_send(out).unwrap();
    });
    let (virtual_child, end) = rx.recv().await.unwrap().unwrap();
    thread.join().unwrap();
    assert!(virtual_child);
    assert_eq!(end - start, secs(5));
}

/// A runtime that names nothing reports its type's name (a wrapper that does not forward
/// `name` is its own); the adapters name their executors.
#[test]
fn runtime_name_defaults_to_the_type_name() {
    assert!(hatchery::rt::current().is_none());
    assert!(ThreadPerTask::new(Instant::now())
        .name()
        .ends_with("::ThreadPerTask"));
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tokio = hatchery_tokio::TokioRuntime::new(tokio_rt.handle().clone());
    assert_eq!(tokio.name(), "tokio");
    assert!(ShortTimers(tokio, ms(1)).name().ends_with("::ShortTimers"));
    let ex = Arc::new(async_executor::Executor::new());
    assert_eq!(hatchery_smol::SmolRuntime::new(&ex).name(), "smol");
}

/// `sleep` waits at least its duration on the runtime clock; `now` is monotonic. (Real
/// time on purpose: this is the backend's own timer.)
#[hatchery::test]
async fn sleep_and_now() {
    let a = now();
    sleep(ms(5)).await;
    let b = now();
    assert!(b - a >= ms(5));
    let at = b + ms(3);
    hatchery::sleep_until(at).await;
    assert!(now() >= at);
    // A sleep until a past instant completes at once.
    hatchery::sleep_until(a).await;
}

/// `run_blocking` returns the function's result, and resumes its panic.
#[hatchery::test]
async fn run_blocking_result_and_panic() {
    let thread = std::thread::current().id();
    let (v, other) = run_blocking(move || {
        (
            (1..=10u64).product::<u64>(),
            std::thread::current().id() != thread,
        )
    })
    .await;
    assert_eq!(v, 3_628_800);
    assert!(other, "ran on another thread");
    let p = catch_panic(run_blocking(|| -> u8 { panic!("blocking boom") })).await;
    assert_eq!(p.unwrap_err(), "blocking boom");
}

/// `run_blocking` in a cancelled scope: the scope does not wait for the thread, and
/// the result is dropped. (Real time: under virtual time blocking work keeps the clock
/// still, so the deadline could not pass while the thread works.) The function returns
/// only once the scope is over, so the outcome does not depend on how fast threads run.
#[hatchery::test]
async fn run_blocking_cancelled() {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let out = move_on_after(
        ms(5),
        run_blocking(move || {
            // A scope that waited for the thread would wait a minute, then fail below.
            let _ = released.recv_timeout(Duration::from_secs(60));
            1
        }),
    )
    .await;
    drop(release);
    assert_eq!(out, None);
}

/// A limiter token moved into `run_blocking`'s function stays borrowed after the wait
/// is cancelled, until the thread is done: the limit holds for threads, not waiters.
#[hatchery::test]
async fn run_blocking_token_outlives_cancelled_wait() {
    let limiter = std::sync::Arc::new(hatchery::sync::CapacityLimiter::new(1));
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (finished, thread_done) = std::sync::mpsc::channel::<()>();
    let token = limiter.acquire().await;
    let out = move_on_after(
        ms(5),
        run_blocking(move || {
            let _token = token;
            let _ = released.recv_timeout(Duration::from_secs(60));
            drop(_token);
            let _ = finished.send(());
        }),
    )
    .await;
    assert_eq!(out, None);
    assert_eq!(limiter.borrowed_tokens(), 1, "the thread still holds it");
    assert!(limiter.try_acquire().is_none());
    drop(release);
    thread_done.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(limiter.borrowed_tokens(), 0);
    assert!(limiter.try_acquire().is_some());
}

/// A runtime for the tests below: every task on a thread of its own, polled with a waker
/// the runtime keeps track of, and a clock that reads a fixed instant, so that tests can
/// tell two runtimes apart. Its [`Handles`] say what it does with the handles of the
/// threads it spawns.
struct ThreadPerTask {
    clock: Instant,
    handles: Handles,
    threads: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
    wakers: Arc<Mutex<Vec<Weak<Unpark>>>>,
    records: Mutex<Vec<Arc<Record>>>,
}

/// What a [`ThreadPerTask`] runtime does with a task's handle, a [`Record`] of it.
#[derive(Clone, Copy)]
enum Handles {
    /// Drops it at once.
    Drop,
    /// Hands hatchery a one-word handle with `Task::spawn_with`.
    Keep,
    /// The same with a handle too big for the slot.
    KeepBig,
    /// Calls `spawn_with` inside `spawn_with`: the inner handle is kept, and the outer
    /// one must be dropped at once.
    KeepTwice,
}

/// A task's waker: unparks the task's thread.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

impl ThreadPerTask {
    fn new(clock: Instant) -> Arc<ThreadPerTask> {
        ThreadPerTask::with(clock, Handles::Drop)
    }

    fn keeping(handles: Handles) -> Arc<ThreadPerTask> {
        ThreadPerTask::with(Instant::now(), handles)
    }

    fn with(clock: Instant, handles: Handles) -> Arc<ThreadPerTask> {
        Arc::new(ThreadPerTask {
            clock,
            handles,
            threads: Arc::default(),
            wakers: Arc::default(),
            records: Mutex::default(),
        })
    }

    /// Runs `task` on a new thread; returns the record of its handle.
    fn start(&self, task: Task) -> Arc<Record> {
        let record = Arc::new(Record::default());
        let (r, wakers) = (record.clone(), self.wakers.clone());
        let thread = std::thread::spawn(move || {
            let unpark = Arc::new(Unpark(std::thread::current()));
            wakers.lock().unwrap().push(Arc::downgrade(&unpark));
            let waker = Waker::from(unpark);
            let mut cx = Context::from_waker(&waker);
            let mut task = Box::pin(task);
            while task.as_mut().poll(&mut cx).is_pending() {
                std::thread::park();
            }
            r.done.store(true, Ordering::SeqCst);
            drop(task);
        });
        self.threads.lock().unwrap().push(thread);
        self.records.lock().unwrap().push(record.clone());
        record
    }

    /// Waits until every task spawned so far has finished and its thread has ended.
    fn join_threads(&self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap());
        for thread in threads {
            thread.join().unwrap();
        }
    }

    /// How many of the tasks' wakers something still holds.
    fn live_wakers(&self) -> usize {
        let wakers = self.wakers.lock().unwrap();
        wakers.iter().filter(|w| w.strong_count() > 0).count()
    }

    /// Every task's handle record: (done, drops, drops before done).
    fn records(&self) -> Vec<(bool, usize, usize)> {
        let records = self.records.lock().unwrap();
        records
            .iter()
            .map(|r| {
                (
                    r.done.load(Ordering::SeqCst),
                    r.drops.load(Ordering::SeqCst),
                    r.early.load(Ordering::SeqCst),
                )
            })
            .collect()
    }
}

impl Runtime for ThreadPerTask {
    fn spawn(&self, task: Task) {
        match self.handles {
            Handles::Drop => drop(Small(self.start(task))),
            Handles::Keep => task.spawn_with(|task| Small(self.start(task))),
            Handles::KeepBig => task.spawn_with(|task| Big(self.start(task), [1, 2, 3, 4])),
            Handles::KeepTwice => {
                let outer = Arc::new(Record::default());
                let o = outer.clone();
                task.spawn_with(|task| {
                    task.spawn_with(|task| Small(self.start(task)));
                    Small(o)
                });
                assert_eq!(
                    outer.drops.load(Ordering::SeqCst),
                    1,
                    "outer dropped at once"
                );
            }
        }
    }

    fn now(&self) -> Instant {
        self.clock
    }

    fn sleep_until(&self, _deadline: Instant) -> Pin<Box<dyn Sleep>> {
        unreachable!("these tests use no timers")
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        std::thread::spawn(work);
    }
}

/// Threads keep the runtime they last polled for between polls (to spare a reference
/// count per poll), but nothing keeps it once the root is gone and its threads are done:
/// the runtime is dropped when the application's `run` would return.
#[test]
fn the_runtime_is_released_when_the_root_goes() {
    let runtime = ThreadPerTask::new(Instant::now());
    let (weak, threads) = (Arc::downgrade(&runtime), runtime.threads.clone());
    let out = block_on(hatchery::rt::enter(
        runtime,
        nursery(|n| async move {
            let a = n.spawn(async { Ok::<_, TestError>(now()) });
            let b = n.spawn(async { Ok(1) });
            let _ = a.join().await.unwrap();
            Ok(b.join().await.unwrap() + 1)
        }),
    ));
    assert_eq!(out, Ok(2));
    for thread in std::mem::take(&mut *threads.lock().unwrap()) {
        thread.join().unwrap();
    }
    assert!(weak.upgrade().is_none(), "a thread still holds the runtime");
    assert!(!hatchery::rt::is_entered());
}

/// One root on `rt`, with one child that suspends once (so that it is polled by the
/// executor's thread, not inline).
fn one_root_with_a_child(rt: Arc<dyn Runtime>) -> u32 {
    block_on(hatchery::rt::enter_root(
        rt,
        nursery(|n: Nursery<TestError>| async move {
            let h = n.spawn(async {
                sleep(ms(1)).await;
                Ok(1)
            });
            Ok(h.join().await.unwrap())
        }),
    ))
    .unwrap()
}

/// A thread keeps the runtime it last polled for, and lets go of the one before (from an
/// audit: it kept the first one for as long as it lived, and every later poll for another
/// runtime cloned that one's handle and dropped it again).
#[test]
fn a_thread_lets_go_of_a_runtime_once_it_polls_for_another() {
    let ex = Arc::new(async_executor::Executor::new());
    let stop = Arc::new(hatchery::sync::Event::new());
    let (e, s) = (ex.clone(), stop.clone());
    // One executor thread polls every child.
    let worker = std::thread::spawn(move || block_on(e.run(s.wait())));
    // Waits until the worker has finished every poll it started before.
    let settle = |ex: &Arc<async_executor::Executor<'static>>| block_on(ex.spawn(async {}));

    let a: Arc<dyn Runtime> = Arc::new(hatchery_smol::SmolRuntime::new(&ex));
    let weak_a = Arc::downgrade(&a);
    assert_eq!(one_root_with_a_child(a), 1);
    settle(&ex);
    assert_eq!(
        weak_a.strong_count(),
        1,
        "the worker keeps A: it last polled for it"
    );

    let b: Arc<dyn Runtime> = Arc::new(hatchery_smol::SmolRuntime::new(&ex));
    let weak_b = Arc::downgrade(&b);
    assert_eq!(one_root_with_a_child(b), 1);
    settle(&ex);
    let kept = (weak_a.strong_count(), weak_b.strong_count());

    stop.set();
    worker.join().unwrap();
    assert_eq!(kept, (0, 1), "the worker should keep B, and only B");
    assert_eq!(weak_b.strong_count(), 0, "gone with the thread");
}

/// A root of one runtime entered inside a poll for another (a nested `block_on`): each
/// sees its own clock, and the outer one gets its runtime back afterwards.
#[test]
fn a_nested_runtime_sees_its_own_clock_and_gives_the_outer_one_back() {
    let base = Instant::now();
    let (a, b) = (
        ThreadPerTask::new(base + HOUR),
        ThreadPerTask::new(base + 2 * HOUR),
    );
    let weak_b = Arc::downgrade(&b);
    let (outer, inner, outer_again) = block_on(hatchery::rt::enter(a, async move {
        let outer = now();
        let inner = block_on(hatchery::rt::enter(b, async { now() }));
        (outer, inner, now())
    }));
    assert_eq!(outer, base + HOUR);
    assert_eq!(inner, base + 2 * HOUR);
    assert_eq!(outer_again, base + HOUR, "the outer runtime is back");
    assert!(
        weak_b.upgrade().is_none(),
        "nothing keeps the inner runtime"
    );
}

/// A root of its own (`enter_root`) on one runtime, blocked on inside a poll for another:
/// the outer root gets its runtime and its scope back after it, also after a poll of it
/// that panics (caught by the outer root's code), and the thread keeps nothing of the
/// inner runtime.
#[test]
fn a_nested_root_of_another_runtime_gives_the_outer_one_back_also_on_panic() {
    let base = Instant::now();
    let (a, b) = (
        ThreadPerTask::new(base + HOUR),
        ThreadPerTask::new(base + 2 * HOUR),
    );
    let weak_b = Arc::downgrade(&b);
    let (inner, caught, outer_again, reached) = block_on(hatchery::rt::enter(a, async move {
        let scope = hatchery::CancelScope::new();
        let handle = scope.handle();
        let mut outer_again = Vec::new();
        let mut inner = None;
        let mut caught = None;
        let reached = scope
            .run(async {
                inner = Some(block_on(hatchery::rt::enter_root(b.clone(), async {
                    checkpoint().await;
                    now()
                })));
                outer_again.push(now());
                caught = catch_unwind(AssertUnwindSafe(|| {
                    block_on(hatchery::rt::enter_root(b, async {
                        assert_eq!(now(), base + 2 * HOUR);
                        panic!("inner root");
                    }))
                }))
                .err()
                .map(|p| panic_message(&*p));
                outer_again.push(now());
                // The scope is the current one again: its cancellation reaches this wait.
                handle.cancel();
                checkpoint().await;
            })
            .await;
        (inner, caught, outer_again, reached)
    }));
    assert_eq!(inner, Some(base + 2 * HOUR));
    assert_eq!(caught.as_deref(), Some("inner root"));
    assert_eq!(outer_again, [base + HOUR; 2], "the outer runtime is back");
    assert_eq!(reached, None, "the outer scope is the current one again");
    assert!(
        weak_b.upgrade().is_none(),
        "nothing keeps the inner runtime"
    );
}

/// A child that finishes on another thread than its nursery's is freed by the nursery's
/// thread, on its next spawn (`Shared::bury` in the core). Its node keeps the executor's
/// waker it last registered, so the runtime's live wakers show what is kept: never more
/// than 63 children, and nothing once the nursery has returned, even with a `Nursery`
/// clone outliving it.
#[test]
fn children_finished_on_other_threads_are_freed_by_the_nursery() {
    let runtime = ThreadPerTask::new(Instant::now());
    let (rt, watch) = (runtime.clone(), runtime.clone());
    let kept = Arc::new(Mutex::new(None));
    let keep = kept.clone();
    let go = Arc::new(hatchery::sync::Event::new());
    let out = block_on(hatchery::rt::enter(
        runtime,
        nursery(|n: Nursery<TestError>| async move {
            *keep.lock().unwrap() = Some(n.clone());
            let child = |go: Arc<hatchery::sync::Event>| async move {
                // Suspends, so that the child's node registers the runtime's waker...
                checkpoint().await;
                // ...and finishes only once every sibling has been spawned.
                go.wait().await;
                Ok(())
            };
            for _ in 0..100 {
                drop(n.spawn(child(go.clone())));
            }
            go.set();
            rt.join_threads();
            // 63 kept, the 64th freed all of them on its own thread, and 36 kept since.
            assert_eq!(
                rt.live_wakers(),
                36,
                "what is kept for the nursery's thread"
            );
            // The nursery's next spawn frees them. (This child, too, finishes only once
            // its handle is gone, so that it is left to the nursery's thread.)
            let go = Arc::new(hatchery::sync::Event::new());
            drop(n.spawn(child(go.clone())));
            go.set();
            rt.join_threads();
            assert_eq!(rt.live_wakers(), 1, "only the last child is kept");
            Ok(())
        }),
    ));
    assert_eq!(out, Ok(()));
    assert!(
        kept.lock().unwrap().is_some(),
        "a clone outlives the nursery"
    );
    assert_eq!(watch.live_wakers(), 0, "nothing kept past the nursery");
}

/// What a [`ThreadPerTask`] runtime's handle of a task sees.
#[derive(Default)]
struct Record {
    /// Set by the executor thread once the task's poll returned `Ready`, before it
    /// drops the task.
    done: AtomicBool,
    /// How many times the handle was dropped.
    drops: AtomicUsize,
    /// How many of those drops came before the task was done.
    early: AtomicUsize,
}

impl Record {
    fn dropped(&self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if !self.done.load(Ordering::SeqCst) {
            self.early.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A one-word executor handle (kept in place).
struct Small(Arc<Record>);

impl Drop for Small {
    fn drop(&mut self) {
        self.0.dropped();
    }
}

/// A handle too big for the slot (kept in a box).
struct Big(Arc<Record>, [u64; 4]);

impl Drop for Big {
    fn drop(&mut self) {
        assert_eq!(self.1, [1, 2, 3, 4], "the handle's bytes survive");
        self.0.dropped();
    }
}

/// `Task::spawn_with`: hatchery keeps the executor's handle with its own state of the
/// task and drops it once, after the task has finished, whether the child was joined,
/// left to the nursery, cancelled or failed; a handle too big for the slot is kept in a
/// box and dropped all the same.
#[test]
fn kept_executor_handles_are_dropped_once_after_their_task() {
    for handles in [Handles::Keep, Handles::KeepBig] {
        let runtime = ThreadPerTask::keeping(handles);
        let rt = runtime.clone();
        let out = block_on(hatchery::rt::enter(
            runtime.clone(),
            nursery(|n: Nursery<TestError>| async move {
                let joined = n.spawn(async { Ok(1) });
                drop(n.spawn(async {
                    checkpoint().await;
                    Ok(())
                }));
                let cancelled = n.spawn(std::future::pending::<Result<(), _>>());
                assert_eq!(joined.join().await, Ok(1));
                cancelled.cancel();
                assert!(cancelled.join().await.unwrap_err().is_cancelled());
                rt.join_threads();
                Ok(())
            }),
        ));
        assert_eq!(out, Ok(()));
        runtime.join_threads();
        assert_eq!(
            runtime.records(),
            vec![(true, 1, 0); 3],
            "(done, drops, drops before done) per task"
        );

        let runtime = ThreadPerTask::keeping(handles);
        let out = block_on(hatchery::rt::enter(
            runtime.clone(),
            nursery(|n: Nursery<TestError>| async move {
                drop(n.spawn(async { Err::<(), _>(TestError("failed")) }));
                Ok(())
            }),
        ));
        assert!(out.is_err());
        runtime.join_threads();
        assert_eq!(runtime.records(), vec![(true, 1, 0)], "failed");
    }
}

/// Only the first handle is kept: spawning the same task again from inside `spawn`
/// keeps the inner handle and drops the outer one at once; a task made by
/// `Task::from_future` keeps nothing, so its handle is dropped at once too.
#[test]
fn only_the_first_kept_handle_stays() {
    let runtime = ThreadPerTask::keeping(Handles::KeepTwice);
    let out = block_on(hatchery::rt::enter(
        runtime.clone(),
        nursery(|n: Nursery<TestError>| async move {
            Ok(n.spawn(async { Ok(2) }).join().await.unwrap())
        }),
    ));
    assert_eq!(out, Ok(2));
    runtime.join_threads();
    assert_eq!(runtime.records(), vec![(true, 1, 0)], "the inner handle");

    let record = Arc::new(Record::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let task = Task::from_future(async move { tx.send(()).unwrap() });
    let r = record.clone();
    let thread = Mutex::new(None);
    task.spawn_with(|task| {
        *thread.lock().unwrap() = Some(std::thread::spawn(move || block_on(task)));
        Small(r)
    });
    assert_eq!(record.drops.load(Ordering::SeqCst), 1, "dropped at once");
    rx.recv().unwrap();
    thread.into_inner().unwrap().unwrap().join().unwrap();
}

/// Runs `f` on a plain thread; panics if it has not finished within 10 s (a hang, even
/// one that blocks its thread).
fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("hangs: did not finish within 10 s")
}

/// Starts a task on `rt` and reports whether `start` failed (its task was dropped).
fn start_on(rt: Arc<dyn Runtime>) -> Result<bool, hatchery::NurseryError<TestError>> {
    block_on(hatchery::rt::enter(
        rt,
        nursery(|n: Nursery<TestError>| async move {
            let spawned = n.spawn(async { Ok(1) }).join().await;
            let started = n
                .start(|status: hatchery::TaskStatus<u8>| async move {
                    status.started(1);
                    Ok(())
                })
                .await;
            Ok(spawned.is_err() && matches!(started, Err(hatchery::StartError::NotStarted)))
        }),
    ))
}

/// A task the executor drops inside `spawn` (the seam allows it) counts as cancelled, for
/// `start` as for `spawn`: `start` fails with `NotStarted` instead of deadlocking.
#[test]
fn start_on_an_executor_that_drops_tasks_in_spawn() {
    assert_eq!(within_10s(|| start_on(Arc::new(ShutDown))), Ok(true));
}

/// The same with the tokio adapter once its runtime has shut down: tokio drops a task
/// spawned then inside `Handle::spawn`.
#[test]
fn start_after_the_tokio_runtime_shut_down() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let tokio_rt = rt.block_on(async { hatchery_tokio::TokioRuntime::current() });
    drop(rt);
    assert_eq!(within_10s(move || start_on(Arc::new(tokio_rt))), Ok(true));
}

/// A zero sleep suspends once, as `checkpoint` does (trio's `sleep(0)`), so a loop of
/// them ends at its timeout on every runtime (smol's timer is ready at once, and smol has
/// no budget that would make it yield).
#[hatchery::test]
async fn a_zero_sleep_is_a_checkpoint() {
    assert_eq!(future::poll_once(sleep(Duration::ZERO)).await, None);
    let mut zero = Box::pin(hatchery::sleep_until(now()));
    assert_eq!(future::poll_once(&mut zero).await, None);
    assert_eq!(future::poll_once(&mut zero).await, Some(()));
    // The loop ends at its timeout (before the fix it spun forever on smol).
    let out = move_on_after(ms(10), async {
        loop {
            sleep(Duration::ZERO).await;
        }
    })
    .await;
    assert_eq!(out, None);
}

/// A runtime whose timers are all due when first polled: a machine so slow (valgrind)
/// that a short sleep's deadline has passed by the time its timer is armed.
struct DueTimers(hatchery_tokio::TokioRuntime);

/// A timer that is due.
struct Due;

impl Future for Due {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Ready(())
    }
}

impl Sleep for Due {
    fn reset(self: Pin<&mut Self>, _: Instant) {}
}

impl Runtime for DueTimers {
    fn spawn(&self, task: Task) {
        self.0.spawn(task);
    }
    fn now(&self) -> Instant {
        self.0.now()
    }
    fn sleep_until(&self, _: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(Due)
    }
    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        self.0.spawn_blocking(work);
    }
}

/// D9: a sleep suspends once even when its timer is due at its first poll (the clock
/// passed its deadline between the sleep's reading it and its timer's first poll, as a
/// 1 ms sleep did under valgrind). It completed in that first poll.
#[test]
fn d9_a_sleep_whose_timer_is_due_at_its_first_poll_still_suspends() {
    hatchery_tokio::run(async {
        let rt = Arc::new(DueTimers(hatchery_tokio::TokioRuntime::current()));
        hatchery::rt::enter(rt, async {
            // Polled with a waker of its own (a combinator's, say), a sleep arms a timer
            // of the runtime's: due at once here.
            let woken = Arc::new(hatchery_tests::Flag(AtomicBool::new(false)));
            let waker = Waker::from(woken.clone());
            let mut cx = Context::from_waker(&waker);
            let mut nap = std::pin::pin!(sleep(ms(1)));
            assert!(
                nap.as_mut().poll(&mut cx).is_pending(),
                "the sleep completed in its first poll"
            );
            assert!(woken.0.load(Ordering::SeqCst), "it asks to be polled again");
            assert!(nap.as_mut().poll(&mut cx).is_ready());
            // Polled in its task, the same.
            assert_eq!(future::poll_once(sleep(ms(1))).await, None);
        })
        .await;
    });
}

/// A runtime whose timers reach its horizon at most (1 ms at least): they fire early, at
/// the horizon, when asked for more; hatchery arms longer waits in steps.
struct ShortTimers(hatchery_tokio::TokioRuntime, Duration);

impl Runtime for ShortTimers {
    fn spawn(&self, task: Task) {
        self.0.spawn(task);
    }
    fn now(&self) -> Instant {
        self.0.now()
    }
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        let reach = self.0.now() + self.1.max(Duration::from_millis(1));
        self.0.sleep_until(deadline.min(reach))
    }
    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        self.0.spawn_blocking(work);
    }
    fn timer_horizon(&self) -> Duration {
        self.1
    }
}

/// Sleeps and timeouts longer than the runtime's timer horizon are armed in steps and end
/// on time, not at the first step.
#[test]
fn waits_beyond_the_timer_horizon_end_on_time() {
    hatchery_tokio::run(async {
        let rt = Arc::new(ShortTimers(hatchery_tokio::TokioRuntime::current(), ms(1)));
        hatchery::rt::enter(rt, async {
            let start = now();
            sleep(ms(30)).await;
            assert!(now() - start >= ms(30), "{:?}", now() - start);
            let start = now();
            assert_eq!(
                move_on_after(ms(30), std::future::pending::<()>()).await,
                None
            );
            assert!(now() - start >= ms(30), "{:?}", now() - start);
        })
        .await;
    });
}

/// A test run's deadlock timeout longer than the runtime's timer horizon is waited for in
/// steps, in full (it panicked at the first step, after the horizon).
#[test]
fn a_deadlock_timeout_past_the_timer_horizon_is_waited_in_full() {
    hatchery_tokio::run(async {
        let rt = Arc::new(ShortTimers(hatchery_tokio::TokioRuntime::current(), ms(1)));
        let run = hatchery::testing::virtual_time(std::future::pending::<()>())
            .with_deadlock_timeout(Some(ms(500)));
        let start = Instant::now();
        let msg = catch_panic(hatchery::rt::enter(rt, run)).await.unwrap_err();
        assert!(msg.contains("deadlock in a virtual-time test run"), "{msg}");
        assert!(start.elapsed() >= ms(500), "{:?}", start.elapsed());
    });
}

/// A root that panics after a `run_blocking` it cancelled: the panic comes out of `run`
/// without waiting for the blocking work (which waits here until the test ends), on
/// every backend, as a root that returns does.
#[test]
fn a_root_panic_does_not_wait_for_cancelled_blocking_work() {
    type Run = fn(Pin<Box<dyn Future<Output = ()> + Send>>);
    let runs: [(&str, Run); 3] = [
        ("tokio", |f| hatchery_tokio::run(f)),
        ("tokio current-thread", |f| {
            hatchery_tokio::run_current_thread(f)
        }),
        ("smol", |f| hatchery_smol::run(f)),
    ];
    for (name, run) in runs {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let panicked = within_10s(move || {
            catch_unwind(move || {
                run(Box::pin(async move {
                    let out = move_on_after(
                        ms(5),
                        run_blocking(move || {
                            let _ = released.recv_timeout(Duration::from_secs(60));
                        }),
                    )
                    .await;
                    assert_eq!(out, None);
                    panic!("root failed");
                }));
            })
            .map_err(|p| panic_message(&*p).to_string())
        });
        assert_eq!(panicked, Err("root failed".to_string()), "{name}");
        drop(release);
    }
}

/// A sleep first polled inside hatchery (so armed) may be polled later from outside
/// hatchery: only its *first* poll needs a runtime (see `sleep`'s "Panics"). Armed in
/// steps of the runtime's timer horizon, it must still end at its deadline, not at the
/// first step.
#[test]
fn a_stepped_sleep_polled_outside_hatchery_ends_on_time() {
    hatchery_tokio::run(async {
        let rt = Arc::new(ShortTimers(hatchery_tokio::TokioRuntime::current(), ms(1)));
        hatchery::rt::enter(rt, async {
            let start = Instant::now();
            let mut nap = Box::pin(sleep(ms(100)));
            // First poll inside hatchery: armed (for 1 ms, the horizon, then re-armed).
            assert_eq!(future::poll_once(&mut nap).await, None);
            // The rest of the wait on a plain tokio task: no hatchery context there.
            tokio::spawn(nap).await.unwrap();
            let waited = start.elapsed();
            assert!(waited >= ms(100), "a 100 ms sleep ended after {waited:?}");
        })
        .await;
    });
}

/// `run_blocking` does nothing until polled: a job never awaited never runs, and one
/// first reached in a cancelled scope is not started. (Passing cannot be flaky: the
/// sleeps only give a wrongly started job time to show.)
#[hatchery::test]
async fn run_blocking_starts_at_its_first_poll() {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let job = run_blocking(move || r.store(true, Ordering::SeqCst));
    sleep(ms(100)).await;
    assert!(!ran.load(Ordering::SeqCst), "ran before it was polled");
    drop(job);

    let scope = hatchery::CancelScope::new();
    scope.handle().cancel();
    let r = ran.clone();
    let out = scope
        .run(async move { run_blocking(move || r.store(true, Ordering::SeqCst)).await })
        .await;
    assert_eq!(out, None);
    sleep(ms(100)).await;
    assert!(!ran.load(Ordering::SeqCst), "ran in a cancelled scope");

    let r = ran.clone();
    run_blocking(move || r.store(true, Ordering::SeqCst)).await;
    assert!(ran.load(Ordering::SeqCst));
}

/// smol's executor drops the tasks left in it when it goes, hatchery's too: the runtime
/// handle that hatchery's tasks hold does not keep the executor (and so the tasks) alive.
mod smol_leak {
    use std::sync::Arc;

    use futures_lite::future;
    use hatchery::{nursery, sleep, Nursery};
    use hatchery_tests::{Counter, TestError, HOUR};

    /// A root that opens a nursery with one parked child, then drops the nursery from
    /// outside (C8) and returns.
    async fn root_dropping_its_nursery(dropped: Counter) {
        let guard = dropped.guard();
        let mut n = Box::pin(nursery(move |n: Nursery<TestError>| async move {
            n.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
                Ok(())
            });
            std::future::pending::<()>().await;
            Ok(())
        }));
        assert!(future::poll_once(&mut n).await.is_none());
        // Let the child run to its suspension point (one thread: the executor polls it).
        for _ in 0..10 {
            future::yield_now().await;
        }
        drop(n); // C8: the child is cancelled, not awaited
    }

    #[test]
    fn run_drops_children_left_by_a_foreign_drop() {
        let dropped = Counter::new();
        hatchery_tokio::run_current_thread(root_dropping_its_nursery(dropped.clone()));
        assert_eq!(dropped.get(), 1, "tokio");
        // smol drops them with its executor, before `run` returns.
        let dropped = Counter::new();
        hatchery_smol::run_current_thread(root_dropping_its_nursery(dropped.clone()));
        assert_eq!(
            dropped.get(),
            1,
            "smol: the cancelled child's future leaked"
        );
        let dropped = Counter::new();
        hatchery_smol::run_with_threads(2, root_dropping_its_nursery(dropped.clone()));
        assert_eq!(dropped.get(), 1, "smol, 2 threads");
    }

    #[test]
    fn dropping_the_executor_drops_a_parked_hatchery_root() {
        let dropped = Counter::new();
        let ex = Arc::new(async_executor::Executor::new());
        let guard = dropped.guard();
        ex.spawn(hatchery_smol::enter(&ex, async move {
            let _guard = guard;
            sleep(HOUR).await;
        }))
        .detach();
        future::block_on(ex.run(async {
            for _ in 0..10 {
                future::yield_now().await;
            }
        }));
        drop(ex);
        assert_eq!(dropped.get(), 1, "the parked root's future leaked");
    }

    /// The same without hatchery: smol drops the task with the executor.
    #[test]
    fn control_plain_smol_task_is_dropped_with_the_executor() {
        let dropped = Counter::new();
        let ex = Arc::new(async_executor::Executor::new());
        let guard = dropped.guard();
        ex.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        })
        .detach();
        future::block_on(ex.run(async {
            for _ in 0..10 {
                future::yield_now().await;
            }
        }));
        drop(ex);
        assert_eq!(dropped.get(), 1);
    }
}

/// `run_blocking` whose work the runtime drops unrun panics in its caller instead of
/// waiting for good.
mod run_blocking_dropped {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::Arc;

    use futures_lite::future::block_on;
    use hatchery::run_blocking;
    use hatchery_tests::panic_message;

    use super::{within_10s, ShutDown};

    /// Runs `run_blocking(|| 1)` as a root on `rt`; Ok(value) or Err(panic message).
    fn blocking_on(rt: Arc<dyn hatchery::rt::Runtime>) -> Result<i32, String> {
        within_10s(move || {
            catch_unwind(AssertUnwindSafe(move || {
                block_on(hatchery::rt::enter(rt, run_blocking(|| 1)))
            }))
            .map_err(|p| panic_message(&*p))
        })
    }

    /// An executor that drops blocking work it cannot run.
    #[test]
    fn on_an_executor_that_drops_blocking_work() {
        let out = blocking_on(Arc::new(ShutDown));
        assert!(out
            .unwrap_err()
            .contains("dropped the work of `run_blocking`"));
    }

    /// The tokio adapter once its runtime has shut down.
    #[test]
    fn after_the_tokio_runtime_shut_down() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let tokio_rt = rt.block_on(async { hatchery_tokio::TokioRuntime::current() });
        drop(rt);
        let out = blocking_on(Arc::new(tokio_rt));
        assert!(out
            .unwrap_err()
            .contains("dropped the work of `run_blocking`"));
    }
}

/// A runtime whose timer horizon is zero: its timers are re-armed in steps of the
/// shortest horizon hatchery uses, not spun on at once for good.
#[test]
fn zero_timer_horizon_does_not_hang() {
    within_10s(|| {
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.enable_all().start_paused(true);
        hatchery_tokio::run_with(builder, async {
            let rt = Arc::new(ShortTimers(
                hatchery_tokio::TokioRuntime::current(),
                Duration::ZERO,
            ));
            hatchery::rt::enter(rt, async {
                sleep(ms(10)).await;
                assert_eq!(move_on_after(ms(10), sleep(HOUR)).await, None);
            })
            .await;
        });
    });
}

/// `hatchery_tokio::enter` inside hatchery code (a library that enters to be safe) runs
/// in the enclosing scope, not as a root of its own that an enclosing scope could only
/// drop: a shield inside it is not cut, a nursery inside it waits for its children, and
/// the caller's deadline is seen.
mod nested_enter {
    use super::*;
    use hatchery::{current_effective_deadline, move_on_after, nursery, shield, sleep, Deadline};
    use hatchery_tests::{ms, Log, TestError};

    /// A shield inside a nested `hatchery_tokio::enter` is not cut by the enclosing timeout.
    #[hatchery::test(backends(tokio_current, tokio_multi))]
    async fn nested_enter_keeps_a_shield() {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let out = move_on_after(
            ms(10),
            hatchery_tokio::enter(async move {
                shield(async move {
                    sleep(ms(200)).await;
                    d.store(true, Ordering::SeqCst);
                })
                .await;
            }),
        )
        .await;
        assert!(
            done.load(Ordering::SeqCst),
            "the shield was cut: the outer scope returned before it ended"
        );
        // As without `enter`: no suspension point follows the shield (C6).
        assert_eq!(out, Some(()));
    }

    /// A nursery inside a nested `hatchery_tokio::enter` waits for its children (and their
    /// `finally` cleanup) when the enclosing scope is cancelled (N1), instead of being
    /// dropped from outside (C8), which returns at once and leaves the cleanup running.
    #[hatchery::test(backends(tokio_current, tokio_multi))]
    async fn nested_enter_nursery_awaits_its_children() {
        let log = Log::new();
        let l = log.clone();
        let out = move_on_after(
            ms(10),
            hatchery_tokio::enter(nursery(move |n| async move {
                let l2 = l.clone();
                n.spawn(hatchery::finally(
                    async move {
                        std::future::pending::<()>().await;
                        Ok::<_, TestError>(())
                    },
                    async move {
                        // Async cleanup that takes a while: N1 says the nursery waits for it.
                        sleep(ms(200)).await;
                        l2.push("child cleaned up");
                    },
                ));
                std::future::pending::<()>().await;
                Ok(())
            })),
        )
        .await;
        assert!(out.is_none());
        assert!(
            log.contains("child cleaned up"),
            "nursery returned before its child finished: {:?}",
            log.events()
        );
    }

    /// The caller's deadline is visible inside a nested `hatchery_tokio::enter` (C7).
    #[hatchery::test(backends(tokio_current, tokio_multi))]
    async fn nested_enter_sees_the_callers_deadline() {
        let d = move_on_after(
            Duration::from_secs(5),
            hatchery_tokio::enter(async { current_effective_deadline() }),
        )
        .await
        .unwrap();
        assert!(matches!(d, Deadline::At(_)), "{d:?}");
    }
}

/// The runtime of a test run (`testing::tracked`, `virtual_time`, `#[hatchery::test]`)
/// wraps every task to watch it, and still lets the base runtime keep its handle with
/// the task: the handle is dropped once, after the task, as outside a test run. (It
/// was dropped at once, so the tests never ran the kept-handle path.)
#[test]
fn a_test_run_keeps_the_base_runtimes_handles_too() {
    let runtime = ThreadPerTask::keeping(Handles::Keep);
    let rt = runtime.clone();
    let out = block_on(hatchery::rt::enter(
        runtime.clone(),
        hatchery::testing::tracked(nursery(|n: Nursery<TestError>| async move {
            let joined = n.spawn(async { Ok(1) });
            drop(n.spawn(async {
                checkpoint().await;
                Ok(())
            }));
            assert_eq!(joined.join().await, Ok(1));
            rt.join_threads();
            Ok(())
        })),
    ));
    assert_eq!(out, Ok(()));
    runtime.join_threads();
    assert_eq!(
        runtime.records(),
        vec![(true, 1, 0); 2],
        "(done, drops, drops before done) per task"
    );
}

/// `run_blocking` polled again after it returned panics with its message, as hatchery's
/// other futures do (it stayed pending for good).
#[hatchery::test]
async fn run_blocking_polled_after_completion_panics() {
    let mut work = Box::pin(hatchery::run_blocking(|| 7));
    assert_eq!(work.as_mut().await, 7);
    let again = catch_panic(future::poll_once(work.as_mut())).await;
    assert_eq!(
        again,
        Err("hatchery: `RunBlocking` polled after completion".to_owned())
    );
}

/// A consumer that always finds an item ready: tokio's cooperative budget runs out in
/// every poll (a receive returns `Pending` after 128 items, and the task is woken again
/// after its poll).
async fn budget_hog() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
    loop {
        tx.send(1).unwrap();
        rx.recv().await;
    }
}

/// A hatchery timeout fires around code that spends tokio's budget in every poll, as
/// tokio's own `timeout` does. The scope polls its timer after its body, whose spent
/// budget kept tokio's sleep from ever completing.
#[test]
fn move_on_after_fires_around_a_budget_hog() {
    for multi in [false, true] {
        let out = within_10s(move || {
            let fut = move_on_after(ms(20), budget_hog());
            if multi {
                hatchery_tokio::run(fut)
            } else {
                hatchery_tokio::run_current_thread(fut)
            }
        });
        assert_eq!(out, None, "multi-thread: {multi}");
    }
}

/// A test run keeps tokio's cooperative budget, as production does: code that relies on
/// it to let other tasks run (here tokio's own timer, around a budget hog) behaves the
/// same under `#[hatchery::test]`. (Lifting the budget in test runs hung this.)
#[test]
fn a_test_run_keeps_tokios_budget() {
    let out = within_10s(|| {
        hatchery_tokio::run_current_thread(hatchery::testing::tracked(async {
            tokio::time::timeout(ms(20), budget_hog()).await.is_err()
        }))
    });
    assert!(out, "tokio's timeout fired");
}

/// A cancelled scope whose body, before its next suspension, makes a blocking call that
/// runs async code on an executor of its own (`f`).
async fn blocking_call_in_a_cancelled_scope<T>(f: impl FnOnce() -> T) -> Option<T> {
    let scope = hatchery::CancelScope::new();
    let handle = scope.handle();
    scope
        .run(async move {
            handle.cancel(); // the body goes on until its next suspension (C1)...
            f() // ...and this sync call has none
        })
        .await
}

/// An adapter's blocking `run`, called from hatchery code (a sync library function that
/// runs its async code so), is a root of its own: the calling task's cancelled scope does
/// not reach it. (Nested in that scope, its first wait never completed, and the thread
/// hung, blocked on it.)
#[test]
fn an_adapters_run_inside_hatchery_code_is_a_root_of_its_own() {
    let tokio_smol = within_10s(|| {
        hatchery_tokio::run(blocking_call_in_a_cancelled_scope(|| {
            hatchery_smol::run_current_thread(async {
                sleep(ms(1)).await;
                7
            })
        }))
    });
    assert_eq!(tokio_smol, Some(7));
    let smol_tokio = within_10s(|| {
        hatchery_smol::run(blocking_call_in_a_cancelled_scope(|| {
            hatchery_tokio::run_current_thread(async {
                sleep(ms(1)).await;
                7
            })
        }))
    });
    assert_eq!(smol_tokio, Some(7));
}

/// The documented way to block on async code from a hatchery task: on another thread,
/// with `run_blocking`. It works, and in a cancelled scope it does not start.
#[test]
fn blocking_on_async_code_from_a_task_goes_through_run_blocking() {
    let out = within_10s(|| {
        hatchery_tokio::run(async {
            let handle = tokio::runtime::Handle::current();
            let fut = async {
                sleep(ms(1)).await;
                7
            };
            let ran = run_blocking(move || handle.block_on(hatchery_tokio::enter(fut))).await;
            let handle = tokio::runtime::Handle::current();
            let scope = hatchery::CancelScope::new();
            let cancel = scope.handle();
            let cancelled = scope
                .run(async move {
                    cancel.cancel();
                    run_blocking(move || handle.block_on(hatchery_tokio::enter(async { 8 }))).await
                })
                .await;
            (ran, cancelled)
        })
    });
    assert_eq!(out, (7, None));
}

/// A test run blocked on from code whose tokio budget is spent still lets its virtual
/// clock jump.
#[test]
fn a_test_run_blocked_on_with_a_spent_budget_does_not_spin() {
    let out = within_10s(|| {
        hatchery_tokio::run_current_thread(async {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
            for i in 0..128 {
                tx.send(i).unwrap();
            }
            for _ in 0..128 {
                rx.recv().await; // all ready: the task's budget is now 0
            }
            futures_lite::future::block_on(hatchery::testing::virtual_time(async {
                sleep(secs(1)).await;
                7
            }))
        })
    });
    assert_eq!(out, 7);
}

/// R4: a future that another executor polls while hatchery code is being polled on the
/// same thread (here async code a task blocks on) runs in the scope of the hatchery code
/// around it: it sees that scope's deadline, and its scopes are children of that scope.
#[hatchery::test(virtual_time)]
async fn r4_code_blocked_on_inside_hatchery_runs_in_its_scope() {
    let (outside, inside) = move_on_after(HOUR, async {
        let outside = current_effective_deadline();
        let inside = block_on(async {
            move_on_after(secs(2 * 3600), async { current_effective_deadline() }).await
        });
        (outside, inside)
    })
    .await
    .unwrap();
    assert!(matches!(outside, hatchery::Deadline::At(_)), "{outside:?}");
    assert_eq!(
        inside,
        Some(outside),
        "the enclosing scope's earlier deadline counts"
    );
}
