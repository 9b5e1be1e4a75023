//! An independent second harness for issue 44's rows, written apart from the benchmark
//! (`hatchery-benches`, `src/main.rs`; it shares none of its code), to check its figures.
//!
//! ```text
//! cargo run --release -p hatchery-benches --bin crosscheck -- [--quick] [--procs P]
//!     [--reps R] [FILTER]
//! ```
//!
//! Rows (each per child, per acquisition or per timeout):
//!
//! * `spawn_join`: spawn N children that return at once, wait for all (a nursery; a tokio
//!   `JoinSet`; a `Vec` of smol `Task`s awaited in order).
//! * `spawn_handles`: spawn N children that return their index, join every handle in order.
//! * `cancel_spawn` and `cancel_exit`, the two phases of one run: spawn N children that
//!   park in a sleep of an hour (`hatchery::sleep`; `tokio::time::sleep`; async-io's
//!   `Timer`) until every one has been polled; then cancel them all (`Nursery::cancel`;
//!   `JoinSet::shutdown`; dropping the `Task`s) until every child's future is dropped.
//! * `sem_fanout`: 64 tasks share 8 permits; N acquisitions in all, each held across one
//!   yield (`hatchery::sync::Semaphore`; async-lock's).
//! * `move_on_after`: N times `move_on_after(1 s, f)` with `f` a future that yields once
//!   (`tokio::time::timeout`; a race of `f` with async-io's `Timer`).
//!
//! Three sides per row, on one executor instance, taking turns: `raw`, `floor` and
//! `hatchery`. The floor of the spawn and cancel rows is the raw side with one more
//! allocation per child (192 bytes, about hatchery's), made by the spawner and read and
//! freed by the child; of `sem_fanout`, tokio's FIFO-fair semaphore on the same executor
//! (hatchery's is fair, async-lock's is not); `move_on_after` has none.
//!
//! Measured as applications run: the timed code is a task spawned on the executor (never
//! the future given to `block_on`), and takes its own time. Every cell (a workload on a
//! backend) runs in `--procs` fresh processes of this binary (`--child`), round after round
//! over the cells; in each, every side runs once untimed, then `--reps` times timed, the
//! sides taking turns, and the process reports each side's median. The table gives the
//! median over the processes and, for the ratios, the lowest and highest process.
//!
//! Backends: `tokio-ct` (current-thread), `tokio-mt` (one worker per core), `smol-ct` (an
//! `async-executor` run by the calling thread alone) and `smol` (the calling thread and
//! one more thread per further core).

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_executor::Executor;
use hatchery::Nursery;

const USAGE: &str = "\
usage: crosscheck [--quick] [--procs P] [--reps R] [FILTER]
       crosscheck --child WORKLOAD BACKEND [--quick] [--reps R] [--side SIDE]

  --quick   10,000 children (20,000 timeouts) instead of 100,000 (200,000); 2 processes
  --procs P fresh processes per cell (default 5)
  --reps R  timed runs per side in each process, after one untimed (default 3)
  --side S  in a child process, run only side S (raw, floor or hatchery): for a profiler
  FILTER    only the cells whose `workload/backend` contains FILTER

workloads: spawn_join, spawn_handles, cancel (rows cancel_spawn, cancel_exit),
           sem_fanout, move_on_after
backends:  tokio-ct, tokio-mt, smol-ct, smol";

const WORKLOADS: [&str; 5] = [
    "spawn_join",
    "spawn_handles",
    "cancel",
    "sem_fanout",
    "move_on_after",
];
const BACKENDS: [&str; 4] = ["tokio-ct", "tokio-mt", "smol-ct", "smol"];
const SIDES: [&str; 3] = ["raw", "floor", "hatchery"];

/// A parked child's sleep: never ends during a run.
const HOUR: Duration = Duration::from_secs(3600);
/// The timeout of `move_on_after`: never fires during a run.
const SECOND: Duration = Duration::from_secs(1);
/// `sem_fanout`'s tasks and permits.
const TASKS: usize = 64;
const PERMITS: usize = 8;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("--child") => child(&args[1..]),
        _ => parent(&args),
    };
    if let Err(e) = result {
        eprintln!("{e}\n\n{USAGE}");
        std::process::exit(2);
    }
}

/// Options common to both modes.
struct Opts {
    quick: bool,
    procs: usize,
    reps: usize,
    side: Option<String>,
    rest: Vec<String>,
}

fn opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        quick: false,
        procs: 0,
        reps: 3,
        side: None,
        rest: Vec::new(),
    };
    let mut it = args.iter();
    let num = |v: Option<&String>| -> Result<usize, String> {
        v.and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| "a positive number expected".to_owned())
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--procs" => o.procs = num(it.next())?,
            "--reps" => o.reps = num(it.next())?,
            "--side" => o.side = it.next().cloned(),
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => o.rest.push(s.to_owned()),
        }
    }
    if o.procs == 0 {
        o.procs = if o.quick { 2 } else { 5 };
    }
    Ok(o)
}

// ----- the parent: runs the cells in fresh processes, prints the table -----

/// One process's medians: (row, side, ns per operation).
type Sample = (String, String, f64);

fn parent(args: &[String]) -> Result<(), String> {
    let o = opts(args)?;
    let filter = o.rest.first().cloned().unwrap_or_default();
    let cells: Vec<(&str, &str)> = WORKLOADS
        .iter()
        .flat_map(|w| BACKENDS.iter().map(move |b| (*w, *b)))
        .filter(|(w, b)| format!("{w}/{b}").contains(&filter))
        .collect();
    if cells.is_empty() {
        return Err(format!("no cell matches {filter:?}"));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "crosscheck: {} cores, load {}, {} processes per cell, {} timed runs per side",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        o.procs,
        o.reps
    );
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // (backend, samples of every process) per cell, in the order run.
    let mut got: Vec<(&str, Vec<Vec<Sample>>)> = cells.iter().map(|c| (c.1, Vec::new())).collect();
    for round in 0..o.procs {
        for (i, (w, b)) in cells.iter().enumerate() {
            let mut cmd = Command::new(&exe);
            cmd.args(["--child", w, b, "--reps", &o.reps.to_string()]);
            if o.quick {
                cmd.arg("--quick");
            }
            let out = cmd.output().map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "{w}/{b} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let samples: Vec<Sample> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.strip_prefix("@ ")?.split(' ').collect();
                    Some((f[0].to_owned(), f[1].to_owned(), f[2].parse().ok()?))
                })
                .collect();
            eprintln!("round {}/{}: {w}/{b} done", round + 1, o.procs);
            got[i].1.push(samples);
        }
    }
    println!();
    println!("| row | backend | raw | floor | hatchery | / raw | / floor | target |");
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for (backend, procs) in &got {
        let mut rows: Vec<&str> = Vec::new();
        for s in &procs[0] {
            if !rows.contains(&s.0.as_str()) {
                rows.push(&s.0);
            }
        }
        for row in rows {
            print_row(row, backend, procs);
        }
    }
    Ok(())
}

/// One line of the table: medians over the processes, and each ratio's median and range.
fn print_row(row: &str, backend: &str, procs: &[Vec<Sample>]) {
    let side = |p: &[Sample], s: &str| p.iter().find(|x| x.0 == row && x.1 == s).map(|x| x.2);
    let each = |s: &str| -> Vec<f64> { procs.iter().filter_map(|p| side(p, s)).collect() };
    let ratio = |s: &str| -> Vec<f64> {
        procs
            .iter()
            .filter_map(|p| Some(side(p, "hatchery")? / side(p, s)?))
            .collect()
    };
    let ns = |v: Vec<f64>| median(v).map_or("-".to_owned(), |x| format!("{x:.0} ns"));
    let (to_raw, to_floor) = (ratio("raw"), ratio("floor"));
    let show = |v: &[f64]| match median(v.to_vec()) {
        Some(m) => format!("{m:.2}x ({:.2}–{:.2})", min(v), max(v)),
        None => "-".to_owned(),
    };
    // Issue 44: 1.25x of raw on one thread, of the floor on several; a timeout 1.00x.
    let one_thread = backend.ends_with("-ct");
    let (limit, against, what) = match row {
        "move_on_after" => (1.0, &to_raw, "raw"),
        _ if one_thread => (1.25, &to_raw, "raw"),
        "sem_fanout" => (1.25, &to_raw, "raw"),
        _ => (1.25, &to_floor, "floor"),
    };
    let target = match median(against.clone()) {
        Some(m) => format!(
            "≤ {limit:.2}x {what} {}",
            if m <= limit { "✓" } else { "✗" }
        ),
        None => "-".to_owned(),
    };
    println!(
        "| {row} | {backend} | {} | {} | {} | {} | {} | {target} |",
        ns(each("raw")),
        ns(each("floor")),
        ns(each("hatchery")),
        show(&to_raw),
        show(&to_floor),
    );
}

/// The middle value (of an even count, the mean of the two in the middle).
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[m]),
        _ => Some((v[m - 1] + v[m]) / 2.0),
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

// ----- a child process: one cell -----

/// What one timed run of a side measured: a time per row (cancel has two rows).
type Run = Vec<(&'static str, Duration)>;

fn child(args: &[String]) -> Result<(), String> {
    let o = opts(args)?;
    let [workload, backend] = &o.rest[..] else {
        return Err("--child needs a workload and a backend".into());
    };
    let workload = WORKLOADS
        .into_iter()
        .find(|w| w == workload)
        .ok_or(format!("unknown workload {workload}"))?;
    let exec = Exec::new(backend)?;
    let n = match (workload, o.quick) {
        ("move_on_after", false) => 200_000,
        ("move_on_after", true) => 20_000,
        (_, false) => 100_000,
        (_, true) => 10_000,
    };
    let sides: Vec<&str> = SIDES
        .into_iter()
        .filter(|s| o.side.as_deref().is_none_or(|only| only == *s))
        .filter(|s| *s != "floor" || workload != "move_on_after")
        .collect();
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); sides.len()];
    // One untimed run per side, then the timed ones, each round starting one side later.
    for i in 0..=o.reps {
        for k in 0..sides.len() {
            let j = (i + k) % sides.len();
            let run = exec.side(workload, sides[j], n);
            if i > 0 {
                runs[j].push(run);
            }
        }
    }
    for (side, runs) in sides.iter().zip(runs) {
        for (r, (row, _)) in runs[0].iter().enumerate() {
            let times: Vec<f64> = runs.iter().map(|run| run[r].1.as_secs_f64()).collect();
            let ns = median(times).unwrap_or(0.0) * 1e9 / n as f64;
            println!("@ {row} {side} {ns:.1}");
        }
    }
    Ok(())
}

/// An executor, built once per process; every side runs on it.
enum Exec {
    Tokio(tokio::runtime::Runtime),
    Smol {
        ex: Arc<Executor<'static>>,
        /// Dropped to stop the other threads.
        stop: Option<async_channel::Sender<()>>,
        threads: Vec<std::thread::JoinHandle<()>>,
    },
}

impl Exec {
    fn new(backend: &str) -> Result<Exec, String> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut builder = match backend {
            "tokio-ct" => tokio::runtime::Builder::new_current_thread(),
            "tokio-mt" => tokio::runtime::Builder::new_multi_thread(),
            "smol-ct" => return Ok(Exec::smol(1)),
            "smol" => return Ok(Exec::smol(cores)),
            _ => return Err(format!("unknown backend {backend}")),
        };
        let rt = builder.enable_all().build().map_err(|e| e.to_string())?;
        Ok(Exec::Tokio(rt))
    }

    fn smol(threads: usize) -> Exec {
        let ex = Arc::new(Executor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let threads = (1..threads)
            .map(|_| {
                let (ex, stopped) = (ex.clone(), stopped.clone());
                std::thread::spawn(move || {
                    async_io::block_on(ex.run(async move { stopped.recv().await.ok() }));
                })
            })
            .collect();
        Exec::Smol {
            ex,
            stop: Some(stop),
            threads,
        }
    }

    /// Runs one side of `workload` once, in a task spawned on the executor.
    fn side(&self, workload: &'static str, side: &str, n: usize) -> Run {
        match self {
            Exec::Tokio(rt) => {
                let task = match side {
                    "hatchery" => {
                        let body = hatchery_side(workload, n);
                        rt.spawn(async move { hatchery_tokio::enter(body).await })
                    }
                    _ => rt.spawn(tokio_side(workload, side == "floor", n)),
                };
                rt.block_on(task).expect("the timed task failed")
            }
            Exec::Smol { ex, .. } => {
                let task = match side {
                    "hatchery" => ex.spawn(hatchery_smol::enter(ex, hatchery_side(workload, n))),
                    _ => ex.spawn(smol_side(ex.clone(), workload, side == "floor", n)),
                };
                async_io::block_on(ex.run(task))
            }
        }
    }
}

impl Drop for Exec {
    fn drop(&mut self) {
        if let Exec::Smol { stop, threads, .. } = self {
            drop(stop.take());
            for t in threads.drain(..) {
                t.join().expect("an executor thread panicked");
            }
        }
    }
}

// ----- what the sides share -----

/// Pending once (waking itself at once), then ready.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn yield_once() -> YieldOnce {
    YieldOnce(false)
}

/// The floor's second allocation per child: about the size of hatchery's.
type Extra = Box<[u8; 192]>;

fn extra() -> Extra {
    Box::new([1; 192])
}

/// How many parked children have been polled, and how many futures are still alive.
#[derive(Default)]
struct Count {
    polled: AtomicUsize,
    alive: AtomicUsize,
}

/// Held by a parked child's future: counts it alive until it is dropped.
struct Alive(Arc<Count>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::Release);
    }
}

impl Count {
    /// A parked child: counts its first poll, then sleeps in what `sleep` makes in that
    /// poll (with `extra` if the floor: read in that poll and freed with the future).
    fn child<M, S>(
        self: &Arc<Self>,
        extra: Option<Extra>,
        sleep: M,
    ) -> impl Future<Output = ()> + Send + use<M, S>
    where
        M: FnOnce() -> S + Send,
        S: Future + Send,
    {
        self.alive.fetch_add(1, Ordering::Relaxed);
        let alive = Alive(self.clone());
        async move {
            black_box(extra.as_ref().map(|e| e[7]));
            alive.0.polled.fetch_add(1, Ordering::Relaxed);
            sleep().await;
        }
    }

    /// Yields until `done` says so.
    async fn until(&self, done: impl Fn(&Count) -> bool) {
        while !done(self) {
            yield_once().await;
        }
    }
}

// ----- hatchery's side (the same code on every backend) -----

type Body = Pin<Box<dyn Future<Output = Run> + Send>>;

fn hatchery_side(workload: &str, n: usize) -> Body {
    use hatchery::nursery;
    match workload {
        "spawn_join" => Box::pin(async move {
            let t = Instant::now();
            nursery(|s: Nursery<Infallible>| async move {
                for _ in 0..n {
                    drop(s.spawn(async { Ok(()) }));
                }
                Ok(())
            })
            .await
            .expect("nursery");
            vec![("spawn_join", t.elapsed())]
        }),
        "spawn_handles" => Box::pin(async move {
            let t = Instant::now();
            let sum = nursery(|s: Nursery<Infallible>| async move {
                let hs: Vec<_> = (0..n).map(|i| s.spawn(async move { Ok(i) })).collect();
                let mut sum = 0;
                for h in hs {
                    sum += h.join().await.expect("join");
                }
                Ok(sum)
            })
            .await;
            black_box(sum.expect("nursery"));
            vec![("spawn_handles", t.elapsed())]
        }),
        "cancel" => Box::pin(async move {
            let count = Arc::new(Count::default());
            let c = count.clone();
            let t = Instant::now();
            let spawned = nursery(|s: Nursery<Infallible>| async move {
                for _ in 0..n {
                    let child = c.child(None, || hatchery::sleep(HOUR));
                    drop(s.spawn(async move {
                        child.await;
                        Ok(())
                    }));
                }
                c.until(|c| c.polled.load(Ordering::Relaxed) == n).await;
                let spawned = t.elapsed();
                s.cancel();
                Ok(spawned)
            })
            .await
            .expect("nursery");
            let all = t.elapsed();
            assert_eq!(count.alive.load(Ordering::Acquire), 0);
            vec![("cancel_spawn", spawned), ("cancel_exit", all - spawned)]
        }),
        "sem_fanout" => Box::pin(async move {
            let sem = Arc::new(hatchery::sync::Semaphore::new(PERMITS));
            let t = Instant::now();
            nursery(|s: Nursery<Infallible>| async move {
                for _ in 0..TASKS {
                    let sem = sem.clone();
                    drop(s.spawn(async move {
                        for _ in 0..n / TASKS {
                            let _permit = sem.acquire().await;
                            yield_once().await;
                        }
                        Ok(())
                    }));
                }
                Ok(())
            })
            .await
            .expect("nursery");
            vec![("sem_fanout", t.elapsed())]
        }),
        _ => Box::pin(async move {
            let t = Instant::now();
            for _ in 0..n {
                let out = hatchery::move_on_after(SECOND, yield_once()).await;
                out.expect("timed out");
            }
            vec![("move_on_after", t.elapsed())]
        }),
    }
}

// ----- tokio's side -----

async fn tokio_side(workload: &'static str, floor: bool, n: usize) -> Run {
    use tokio::task::JoinSet;
    match workload {
        "spawn_join" => {
            let t = Instant::now();
            let mut set = JoinSet::new();
            for _ in 0..n {
                let e = floor.then(extra);
                set.spawn(async move {
                    black_box(e.map(|e| e[7]));
                });
            }
            while let Some(r) = set.join_next().await {
                r.expect("child");
            }
            vec![("spawn_join", t.elapsed())]
        }
        "spawn_handles" => {
            let t = Instant::now();
            let hs: Vec<_> = (0..n)
                .map(|i| {
                    let e = floor.then(extra);
                    tokio::spawn(async move { i + e.map_or(0, |e| usize::from(e[7])) })
                })
                .collect();
            let mut sum = 0;
            for h in hs {
                sum += h.await.expect("child");
            }
            black_box(sum);
            vec![("spawn_handles", t.elapsed())]
        }
        "cancel" => {
            let count = Arc::new(Count::default());
            let t = Instant::now();
            let mut set = JoinSet::new();
            for _ in 0..n {
                set.spawn(count.child(floor.then(extra), || tokio::time::sleep(HOUR)));
            }
            count.until(|c| c.polled.load(Ordering::Relaxed) == n).await;
            let spawned = t.elapsed();
            set.shutdown().await;
            let all = t.elapsed();
            assert_eq!(count.alive.load(Ordering::Acquire), 0);
            vec![("cancel_spawn", spawned), ("cancel_exit", all - spawned)]
        }
        "sem_fanout" => {
            let t = Instant::now();
            let mut set = JoinSet::new();
            if floor {
                let sem = Arc::new(tokio::sync::Semaphore::new(PERMITS));
                for _ in 0..TASKS {
                    let sem = sem.clone();
                    set.spawn(async move {
                        for _ in 0..n / TASKS {
                            let _permit = sem.acquire().await.expect("closed");
                            yield_once().await;
                        }
                    });
                }
            } else {
                let sem = Arc::new(async_lock::Semaphore::new(PERMITS));
                for _ in 0..TASKS {
                    let sem = sem.clone();
                    set.spawn(async move {
                        for _ in 0..n / TASKS {
                            let _permit = sem.acquire().await;
                            yield_once().await;
                        }
                    });
                }
            }
            while let Some(r) = set.join_next().await {
                r.expect("child");
            }
            vec![("sem_fanout", t.elapsed())]
        }
        _ => {
            let t = Instant::now();
            for _ in 0..n {
                let out = tokio::time::timeout(SECOND, yield_once()).await;
                out.expect("timed out");
            }
            vec![("move_on_after", t.elapsed())]
        }
    }
}

// ----- smol's side -----

async fn smol_side(
    ex: Arc<Executor<'static>>,
    workload: &'static str,
    floor: bool,
    n: usize,
) -> Run {
    match workload {
        "spawn_join" => {
            let t = Instant::now();
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let e = floor.then(extra);
                    ex.spawn(async move {
                        black_box(e.map(|e| e[7]));
                    })
                })
                .collect();
            for task in tasks {
                task.await;
            }
            vec![("spawn_join", t.elapsed())]
        }
        "spawn_handles" => {
            let t = Instant::now();
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    let e = floor.then(extra);
                    ex.spawn(async move { i + e.map_or(0, |e| usize::from(e[7])) })
                })
                .collect();
            let mut sum = 0;
            for task in tasks {
                sum += task.await;
            }
            black_box(sum);
            vec![("spawn_handles", t.elapsed())]
        }
        "cancel" => {
            let count = Arc::new(Count::default());
            let t = Instant::now();
            let tasks: Vec<_> = (0..n)
                .map(|_| ex.spawn(count.child(floor.then(extra), || async_io::Timer::after(HOUR))))
                .collect();
            count.until(|c| c.polled.load(Ordering::Relaxed) == n).await;
            let spawned = t.elapsed();
            // Dropping a task cancels it: the executor drops its future when it runs it.
            drop(tasks);
            count.until(|c| c.alive.load(Ordering::Acquire) == 0).await;
            let all = t.elapsed();
            vec![("cancel_spawn", spawned), ("cancel_exit", all - spawned)]
        }
        "sem_fanout" => {
            let t = Instant::now();
            let tasks: Vec<_> = if floor {
                let sem = Arc::new(tokio::sync::Semaphore::new(PERMITS));
                (0..TASKS)
                    .map(|_| {
                        let sem = sem.clone();
                        ex.spawn(async move {
                            for _ in 0..n / TASKS {
                                let _permit = sem.acquire().await.expect("closed");
                                yield_once().await;
                            }
                        })
                    })
                    .collect()
            } else {
                let sem = Arc::new(async_lock::Semaphore::new(PERMITS));
                (0..TASKS)
                    .map(|_| {
                        let sem = sem.clone();
                        ex.spawn(async move {
                            for _ in 0..n / TASKS {
                                let _permit = sem.acquire().await;
                                yield_once().await;
                            }
                        })
                    })
                    .collect()
            };
            for task in tasks {
                task.await;
            }
            vec![("sem_fanout", t.elapsed())]
        }
        _ => {
            let t = Instant::now();
            for _ in 0..n {
                let out = futures_lite::future::or(
                    async {
                        yield_once().await;
                        Some(())
                    },
                    async {
                        async_io::Timer::after(SECOND).await;
                        None
                    },
                )
                .await;
                out.expect("timed out");
            }
            vec![("move_on_after", t.elapsed())]
        }
    }
}
