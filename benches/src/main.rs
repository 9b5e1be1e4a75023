//! Benchmarks hatchery against the raw idiomatic equivalent on the same executor, side
//! by side, and prints a Markdown table of medians, ratios and their spread over fresh
//! processes (rule E2 of the book's chapter *Semantics: the rules*,
//! `docs/src/semantics.md`).
//!
//! ```text
//! cargo run --release -p hatchery-benches -- [--quick] [--procs P] [--reps N] [--side S]
//!     [--out PATH] [--svg PATH] [FILTER]
//! ```
//!
//! The binary is its own harness: for every cell (a workload on a backend) it runs
//! itself again, `--procs` times, in fresh processes, one cell per process, round after
//! round over all cells, and reports per row the median over those processes and their
//! range. In a process, the raw side, the reference side (if the row has one) and the
//! hatchery side run on one executor instance, alternating, one untimed warm-up each
//! and then `--reps` timed runs each, and the process reports the median of each side.
//! Every timed workload runs inside a task spawned on the executor, as an application's
//! code does, never as the future given to `block_on`.
//!
//! Backends: `tokio-mt` (multi-thread, one worker per core), `tokio-ct`
//! (current-thread), `smol` (an `async-executor` run by the calling thread plus one
//! thread per further core, as `hatchery_smol::run` sets it up) and `smol-ct` (one
//! thread).
//!
//! # Adding a row
//!
//! Name the workload in [`WORKLOADS`], then in one of the `run_*` functions (or a new
//! one called from [`child`]): `if cfg.wants("name", b.name) { ... }`, make the row with
//! [`time_row`] (raw and hatchery) or [`time_row_ref`] (with a reference side too), whose
//! closures run a workload with [`Backend::raw`] and [`Backend::hatchery`], push it to
//! `rows` and call [`report`].

mod backend;
mod borrow_work;
mod chart;
mod fanout;
mod flat;
mod fs_work;
mod harness;
mod net_work;
mod process_work;
mod raw_smol;
mod rss;
mod stack;
mod sync_work;
mod thread_work;
mod work;
mod yield_once;

use std::time::Duration;

use backend::Backend;
use hatchery_bench_alloc::Counting;
use work::{Count, Parked, Wait};

/// Counts allocated bytes for the memory rows; switched off while anything is timed.
#[global_allocator]
static ALLOCATOR: Counting = Counting::new();

const USAGE: &str = "\
usage: hatchery-benches [--quick] [--procs P] [--reps N] [--side S] [--out PATH]
                        [--svg PATH] [FILTER]

  --quick     small sizes, few processes and repetitions (a smoke run for CI)
  --procs P   fresh processes per cell (default 5, quick 2); the table shows the
              median over them and their range
  --reps N    timed repetitions per side in each process (default 3, quick 2); each
              process reports the median of its repetitions
  --side S    run only the `raw`, `reference` or `hatchery` side (for profiling one)
  --out PATH  also write the Markdown report to PATH
  --svg PATH  also write a chart of the ratios to PATH (an SVG image)
  --save PATH also write every process's rows to PATH, as they come, after a line
              saying when, on what machine and with how many runs they were taken
  --load PATH run nothing: make the table and the chart from a file of --save, with
              the date, machine and runs it names
  --child C   run only cell C (`workload/backend`) in this process and print its rows
              as the harness reads them (for a profiler; with --side, one side)
  FILTER      run only the cells whose `workload/backend` contains FILTER

workloads: spawn_join, spawn_join_ctx (the same under a context value, which each
           child inherits), local_spawn_join, local_cancel_parked,
           local_memory_pending (Local children against the local executor's own
           spawn_local, on tokio-ct, smol-ct and compio), spawn_join_1k (children whose futures hold 1 KiB, which
           hatchery boxes), spawn_handles, cancel_parked, spawn_parked (the children of
           cancel_parked, spawned until all are parked), memory_pending, memory_sleep,
           move_on_after, yield (the floor under move_on_after: bare yields),
           checkpoint (hatchery::checkpoint against a bare yield), checkpoint_deadline
           (the same under a deadline, against the executor's timeout), stack
           (bytes of stack per nested timeout against tokio::time::timeout, tokio-ct
           only), channel, recv_waiters, send_waiters, clone_drops, semaphore,
           limiter, lock, polled_spawn_join, polled_join2, polled_join2_vec,
           join2_in_task (the floor under polled_join2: futures::join! in a hatchery
           task), ping_pong, echo, accept, spawn_wait (spawn `true` and wait:
           tokio::process, async-process; by the clock, by the process's CPU
           time, and by the clock inside the spawn calls), to_thread, run_blocking, from_thread,
           portal, fs_read, fs_write, fs_metadata
checks:    memory_flat (after the table; a million short children through each
           kind of nursery, and a million connections to `serve` (quick: 100,000),
           on tokio-mt, tokio-ct and smol: the heap's peak must stay flat, or the
           run fails; FILTER memory_flat runs it alone)
backends:  tokio-mt, tokio-ct, smol, smol-ct, compio (the local rows only)";

/// Every workload's name, in table order. The harness runs each on each backend in
/// processes of its own; a row's code asks [`Config::wants`] with one of these names.
pub(crate) const WORKLOADS: &[&str] = &[
    "spawn_join",
    "spawn_join_ctx",
    "spawn_join_1k",
    "local_spawn_join",
    "local_cancel_parked",
    "local_memory_pending",
    "spawn_handles",
    "cancel_parked",
    "spawn_parked",
    "memory_pending",
    "memory_sleep",
    "move_on_after",
    "yield",
    "checkpoint",
    "checkpoint_deadline",
    "stack",
    "channel",
    "recv_waiters",
    "send_waiters",
    "clone_drops",
    "semaphore",
    "limiter",
    "lock",
    "polled_spawn_join",
    "polled_join2",
    "polled_join2_vec",
    "join2_in_task",
    "ping_pong",
    "echo",
    "accept",
    "spawn_wait",
    "to_thread",
    "run_blocking",
    "from_thread",
    "portal",
    "fs_read",
    "fs_write",
    "fs_metadata",
];

/// Workloads whose sides each run in processes of their own: the memory rows, whose
/// resident set growth is only meaningful on a heap that nothing ran on before.
pub(crate) const SIDE_SPLIT: &[&str] = &["memory_pending", "memory_sleep"];

pub(crate) struct Config {
    /// Children per spawn / parked workload.
    children: usize,
    /// Iterations of the timeout workload.
    timeouts: usize,
    /// Messages of the channel workload.
    messages: usize,
    /// Round trips of the thread workloads.
    round_trips: usize,
    /// Waiting tasks of the stream-waiter workloads, one row each.
    waiters: &'static [usize],
    /// Round trips of the ping-pong workload.
    pings: usize,
    /// Round trips per connection of the echo workload.
    echoes: usize,
    /// Connections of the accept workload.
    accepts: usize,
    /// Children of the spawn_wait workload, one after the other.
    spawns: usize,
    /// Bytes of the file read and written by the file workloads.
    file_bytes: usize,
    /// Calls of the metadata workload.
    metadata_calls: usize,
    /// Timed repetitions per side in each process (after one untimed warm-up run).
    pub(crate) reps: usize,
    /// Fresh processes per cell.
    pub(crate) procs: usize,
    filter: Option<String>,
    /// In a child process: the one cell it runs, `workload/backend`.
    only: Option<String>,
    pub(crate) out: Option<String>,
    pub(crate) svg: Option<String>,
    pub(crate) save: Option<String>,
    pub(crate) load: Option<String>,
    pub(crate) quick: bool,
    pub(crate) sides: Sides,
    /// The `--side` argument, passed on to the child processes.
    pub(crate) side_arg: Option<String>,
}

/// The sides a process runs.
#[derive(Clone, Copy)]
pub(crate) struct Sides {
    raw: bool,
    reference: bool,
    hatchery: bool,
}

impl Config {
    fn from_args() -> Result<Config, String> {
        let mut quick = false;
        let (mut reps, mut procs) = (None, None);
        let (mut out, mut svg, mut filter, mut only) = (None, None, None, None);
        let (mut save, mut load) = (None, None);
        let mut side_arg = None;
        let mut args = std::env::args().skip(1);
        let number = |name: &str, v: Option<String>| -> Result<usize, String> {
            let v = v.ok_or(format!("{name} needs a number"))?;
            v.parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or(format!("bad {name} value {v:?}"))
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--reps" => reps = Some(number("--reps", args.next())?),
                "--procs" => procs = Some(number("--procs", args.next())?),
                "--out" => out = Some(args.next().ok_or("--out needs a path")?),
                "--svg" => svg = Some(args.next().ok_or("--svg needs a path")?),
                "--save" => save = Some(args.next().ok_or("--save needs a path")?),
                "--load" => load = Some(args.next().ok_or("--load needs a path")?),
                "--side" => match args.next() {
                    Some(s) if ["raw", "reference", "hatchery"].contains(&s.as_str()) => {
                        side_arg = Some(s)
                    }
                    _ => return Err("--side needs `raw`, `reference` or `hatchery`".into()),
                },
                // How the harness runs one cell in a fresh process.
                "--child" => only = Some(args.next().ok_or("--child needs a cell")?),
                "-h" | "--help" => return Err(String::new()),
                // `cargo bench` passes `--bench`; ignore it like libtest does.
                "--bench" => {}
                s if s.starts_with('-') => return Err(format!("unknown option {s}")),
                s if filter.is_none() => filter = Some(s.to_owned()),
                s => return Err(format!("more than one filter: {s}")),
            }
        }
        let side = |s: &str| side_arg.as_deref().is_none_or(|a| a == s);
        let sides = Sides {
            raw: side("raw"),
            reference: side("reference"),
            hatchery: side("hatchery"),
        };
        let (children, timeouts) = if quick {
            (10_000, 20_000)
        } else {
            (100_000, 200_000)
        };
        Ok(Config {
            children,
            timeouts,
            messages: if quick { 100_000 } else { 1_000_000 },
            round_trips: if quick { 1_000 } else { 10_000 },
            waiters: if quick {
                &[1_000, 4_000]
            } else {
                &[4_000, 16_000, 64_000]
            },
            pings: if quick { 2_000 } else { 20_000 },
            echoes: if quick { 20 } else { 200 },
            accepts: if quick { 500 } else { 2_000 },
            spawns: if quick { 20 } else { 50 },
            file_bytes: if quick { 8 << 20 } else { 64 << 20 },
            metadata_calls: if quick { 1_000 } else { 10_000 },
            reps: reps.unwrap_or(if quick { 2 } else { 3 }),
            procs: procs.unwrap_or(if quick { 2 } else { 5 }),
            filter,
            only,
            out,
            svg,
            save,
            load,
            quick,
            sides,
            side_arg,
        })
    }

    /// Whether to run the rows of `workload` (one of [`WORKLOADS`]) on `backend`: in a
    /// child process, whether that is its cell; in the harness, whether the filter
    /// keeps it.
    pub(crate) fn wants(&self, workload: &str, backend: &str) -> bool {
        assert!(
            WORKLOADS.contains(&workload),
            "workload {workload} is missing from WORKLOADS"
        );
        let cell = format!("{workload}/{backend}");
        match (&self.only, &self.filter) {
            (Some(only), _) => cell == *only,
            (None, Some(f)) => cell.contains(f.as_str()),
            (None, None) => true,
        }
    }
}

/// One side's measurement in a row, from one process.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Value {
    /// A median time for `ops` operations.
    Time { total: Duration, ops: usize },
    /// Bytes allocated per child, and resident set growth per child.
    Bytes { alloc: f64, rss: f64 },
    /// Bytes of stack per nested level.
    Stack(f64),
}

impl Value {
    /// The value as the child process prints it for the harness.
    fn encode(value: Option<Value>) -> String {
        match value {
            None => "-".to_owned(),
            Some(Value::Time { total, ops }) => format!("t:{}:{ops}", total.as_nanos()),
            Some(Value::Bytes { alloc, rss }) => format!("b:{alloc}:{rss}"),
            Some(Value::Stack(bytes)) => format!("s:{bytes}"),
        }
    }

    fn decode(s: &str) -> Result<Option<Value>, String> {
        let bad = || format!("bad value {s:?}");
        let parts: Vec<&str> = s.split(':').collect();
        match parts[..] {
            ["-"] => Ok(None),
            ["t", total, ops] => Ok(Some(Value::Time {
                total: Duration::from_nanos(total.parse().map_err(|_| bad())?),
                ops: ops.parse().map_err(|_| bad())?,
            })),
            ["b", alloc, rss] => Ok(Some(Value::Bytes {
                alloc: alloc.parse().map_err(|_| bad())?,
                rss: rss.parse().map_err(|_| bad())?,
            })),
            ["s", bytes] => Ok(Some(Value::Stack(bytes.parse().map_err(|_| bad())?))),
            _ => Err(bad()),
        }
    }

    /// Per operation: nanoseconds, allocated bytes, or bytes of stack per level.
    pub(crate) fn per_op(self) -> f64 {
        match self {
            Value::Time { total, ops } => total.as_secs_f64() * 1e9 / ops.max(1) as f64,
            Value::Bytes { alloc, .. } => alloc,
            Value::Stack(bytes) => bytes,
        }
    }

    /// For progress lines.
    fn show(value: Option<Value>) -> String {
        match value {
            None => "-".to_owned(),
            Some(v @ Value::Time { .. }) => format!("{:.0} ns/op", v.per_op()),
            Some(Value::Bytes { alloc, rss }) => format!("{alloc:.0} B (RSS {rss:.0})"),
            Some(Value::Stack(bytes)) => format!("{bytes:.0} B/level"),
        }
    }
}

/// One row of the table, as one process measured it.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) workload: String,
    pub(crate) backend: &'static str,
    /// The raw executor's idiom.
    pub(crate) raw: Option<Value>,
    /// A second side: what the row is judged against where that is not the raw side
    /// (raw plus the one allocation a hatchery child carries, a fair semaphore, a call
    /// handed to a task by hand), or, for the polled rows, a second crate's idiom shown
    /// beside the raw one (see [`harness::Target::of`]).
    pub(crate) reference: Option<Value>,
    pub(crate) hatchery: Option<Value>,
}

impl Row {
    /// The row as the child process prints it on stdout for the harness.
    pub(crate) fn encode(&self) -> String {
        format!(
            "@row\t{}\t{}\t{}\t{}\t{}",
            self.workload,
            self.backend,
            Value::encode(self.raw),
            Value::encode(self.reference),
            Value::encode(self.hatchery)
        )
    }

    /// A line printed by [`encode`](Row::encode), or `None` for any other line.
    pub(crate) fn decode(line: &str) -> Option<Result<Row, String>> {
        let rest = line.strip_prefix("@row\t")?;
        let parse = || {
            let f: Vec<&str> = rest.split('\t').collect();
            let [workload, backend, raw, reference, hatchery] = f[..] else {
                return Err(format!("bad row {line:?}"));
            };
            let backend = backend::NAMES
                .into_iter()
                .find(|&b| b == backend)
                .ok_or(format!("unknown backend in {line:?}"))?;
            Ok(Row {
                workload: workload.to_owned(),
                backend,
                raw: Value::decode(raw)?,
                reference: Value::decode(reference)?,
                hatchery: Value::decode(hatchery)?,
            })
        };
        Some(parse())
    }

    /// hatchery / raw in this process.
    fn ratio(&self) -> String {
        match (self.raw, self.hatchery) {
            (Some(raw), Some(h)) => format!("{:.2}x", h.per_op() / raw.per_op()),
            _ => "-".to_owned(),
        }
    }
}

/// The median sample by `key`, if there are any.
fn median<T: Copy>(mut xs: Vec<T>, key: impl Fn(&T) -> f64) -> Option<T> {
    xs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    xs.get(xs.len() / 2).copied()
}

/// A side of a row: runs the workload once and returns its measurement.
type Side<'a, T> = Option<&'a mut dyn FnMut() -> T>;

/// Runs the sides given (raw, reference, hatchery) in turn, one untimed warm-up each
/// and then `reps` timed runs each, starting each round with the next side so that no
/// side always runs right after another; returns each side's samples (none for a side
/// that is absent or that `--side` left out).
fn alternate<T>(cfg: &Config, reps: usize, sides: [Side<'_, T>; 3]) -> [Vec<T>; 3] {
    let wanted = [cfg.sides.raw, cfg.sides.reference, cfg.sides.hatchery];
    let mut sides = sides;
    for (side, wanted) in sides.iter_mut().zip(wanted) {
        if !wanted {
            *side = None;
        }
    }
    for side in sides.iter_mut().flatten() {
        side();
    }
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    for i in 0..reps {
        for k in 0..3 {
            let j = (i + k) % 3;
            if let Some(side) = &mut sides[j] {
                samples[j].push(side());
            }
        }
    }
    samples
}

fn time_value(xs: Vec<Duration>, ops: usize) -> Option<Value> {
    median(xs, |d| d.as_secs_f64()).map(|total| Value::Time { total, ops })
}

/// A row of `ops` operations timed on `b`, raw against hatchery.
pub(crate) fn time_row(
    cfg: &Config,
    workload: &str,
    b: &Backend,
    ops: usize,
    mut raw: impl FnMut() -> Duration,
    mut hatchery: impl FnMut() -> Duration,
) -> Row {
    time_row_reps(cfg, cfg.reps, workload, b, ops, &mut raw, &mut hatchery)
}

/// [`time_row`] with `reps` timed runs per side in each process, rather than `--reps`.
pub(crate) fn time_row_reps(
    cfg: &Config,
    reps: usize,
    workload: &str,
    b: &Backend,
    ops: usize,
    mut raw: impl FnMut() -> Duration,
    mut hatchery: impl FnMut() -> Duration,
) -> Row {
    let [r, _, h] = alternate(cfg, reps, [Some(&mut raw), None, Some(&mut hatchery)]);
    Row {
        workload: workload.to_owned(),
        backend: b.name,
        raw: time_value(r, ops),
        reference: None,
        hatchery: time_value(h, ops),
    }
}

/// [`time_row`] with a reference side (see [`Row::reference`]).
pub(crate) fn time_row_ref(
    cfg: &Config,
    workload: &str,
    b: &Backend,
    ops: usize,
    mut raw: impl FnMut() -> Duration,
    mut reference: impl FnMut() -> Duration,
    mut hatchery: impl FnMut() -> Duration,
) -> Row {
    let [r, f, h] = alternate(
        cfg,
        cfg.reps,
        [Some(&mut raw), Some(&mut reference), Some(&mut hatchery)],
    );
    Row {
        workload: workload.to_owned(),
        backend: b.name,
        raw: time_value(r, ops),
        reference: time_value(f, ops),
        hatchery: time_value(h, ops),
    }
}

/// Spawning, timeouts and parked children.
fn run_backend(cfg: &Config, b: &Backend, rows: &mut Vec<Row>) {
    let n = cfg.children;
    let name = b.name;

    // Each reference side is the raw side with a second allocation per child, as
    // hatchery's children carry (`ballast`).
    if cfg.wants("spawn_join", name) {
        let raw = |ballast| {
            b.raw(
                || work::tokio_spawn_join(n, ballast),
                |ex| async move { work::smol_spawn_join(&ex, n, ballast).await },
            )
        };
        let hatchery = || b.hatchery(work::hatchery_spawn_join(n));
        let workload = format!("spawn_join {}", count(n));
        let row = time_row_ref(cfg, &workload, b, n, || raw(false), || raw(true), hatchery);
        rows.push(row);
        report(rows);
    }

    // The same with a context value set around the nursery: each child inherits it.
    if cfg.wants("spawn_join_ctx", name) {
        let raw = |ballast| {
            b.raw(
                || work::tokio_spawn_join(n, ballast),
                |ex| async move { work::smol_spawn_join(&ex, n, ballast).await },
            )
        };
        let hatchery = || b.hatchery(work::hatchery_spawn_join_ctx(n));
        let workload = format!("spawn_join_ctx {}", count(n));
        let row = time_row_ref(cfg, &workload, b, n, || raw(false), || raw(true), hatchery);
        rows.push(row);
        report(rows);
    }

    // Local children, on the single-threaded backends: `Local::nursery` on the thread's
    // local executor against its own `spawn_local` (tokio's `LocalSet`, smol's
    // `LocalExecutor`, compio's runtime).
    let local = name.ends_with("-ct") || name == "compio";
    if local && cfg.wants("local_spawn_join", name) {
        let raw = |ballast| {
            b.local_raw(
                || work::tokio_local_spawn_join(n, ballast),
                |ex| async move { work::local_spawn_join(&*ex, n, ballast).await },
                || work::local_spawn_join(&work::Compio, n, ballast),
            )
        };
        let hatchery = || b.local_hatchery(work::hatchery_local_spawn_join(n));
        let workload = format!("local_spawn_join {}", count(n));
        let row = time_row_ref(cfg, &workload, b, n, || raw(false), || raw(true), hatchery);
        rows.push(row);
        report(rows);
    }
    let local_parked = |ballast, bytes| {
        b.local_raw(
            || work::tokio_local_parked(n, ballast, bytes),
            |ex| async move { work::local_parked(&*ex, n, ballast, bytes).await },
            || work::local_parked(&work::Compio, n, ballast, bytes),
        )
    };
    if local && cfg.wants("local_cancel_parked", name) {
        let workload = format!("local_cancel_parked {} pending()", count(n));
        let bytes = work::Count::Bytes;
        let mut raw = || local_parked(false, bytes).cancel;
        let mut reference = || local_parked(true, bytes).cancel;
        let mut hatchery = || {
            b.local_hatchery(work::hatchery_local_parked(n, bytes))
                .cancel
        };
        let row = time_row_ref(
            cfg,
            &workload,
            b,
            n,
            &mut raw,
            &mut reference,
            &mut hatchery,
        );
        rows.push(row);
        report(rows);
    }
    if local && cfg.wants("local_memory_pending", name) {
        let bytes = |p: work::Parked| Value::Bytes {
            alloc: p.bytes_per_child,
            rss: p.rss_per_child,
        };
        let s = cfg.sides;
        let count_bytes = work::Count::Bytes;
        rows.push(Row {
            workload: format!("local_memory_pending {}", count(n)),
            backend: name,
            raw: s.raw.then(|| bytes(local_parked(false, count_bytes))),
            reference: None,
            hatchery: s
                .hatchery
                .then(|| bytes(b.local_hatchery(work::hatchery_local_parked(n, count_bytes)))),
        });
        report(rows);
    }

    // The same with children whose futures hold 1 KiB, which hatchery keeps in a box of
    // their own (larger than 256 bytes), freed when the child ends.
    if cfg.wants("spawn_join_1k", name) {
        let raw = |ballast| {
            b.raw(
                || work::tokio_spawn_join_large(n, ballast),
                |ex| async move { work::smol_spawn_join_large(&ex, n, ballast).await },
            )
        };
        let hatchery = || b.hatchery(work::hatchery_spawn_join_large(n));
        let workload = format!("spawn_join_1k {}", count(n));
        let row = time_row_ref(cfg, &workload, b, n, || raw(false), || raw(true), hatchery);
        rows.push(row);
        report(rows);
    }

    if cfg.wants("spawn_handles", name) {
        let raw = || {
            b.raw(
                || work::tokio_spawn_handles(n),
                |ex| async move { work::smol_spawn_handles(&ex, n).await },
            )
        };
        let reference = || {
            b.raw(
                || work::tokio_spawn_handles_ballast(n),
                |ex| async move { work::smol_spawn_handles_ballast(&ex, n).await },
            )
        };
        let hatchery = || b.hatchery(work::hatchery_spawn_handles(n));
        let workload = format!("spawn_handles {}", count(n));
        rows.push(time_row_ref(cfg, &workload, b, n, raw, reference, hatchery));
        report(rows);
    }

    for wait in [Wait::Sleep, Wait::Pending] {
        parked_rows(cfg, b, rows, wait);
    }

    let iters = cfg.timeouts;
    if cfg.wants("move_on_after", name) {
        let raw = || b.raw(|| work::tokio_timeout(iters), |_| work::smol_timeout(iters));
        let hatchery = || b.hatchery(work::hatchery_timeout(iters));
        let workload = format!("move_on_after x{}", count(iters));
        rows.push(time_row(cfg, &workload, b, iters, raw, hatchery));
        report(rows);
    }
    // The floor under `move_on_after`: its body alone, a hatchery task's poll against
    // the executor's own.
    if cfg.wants("yield", name) {
        let raw = || b.raw(|| work::yield_loop(iters), |_| work::yield_loop(iters));
        let hatchery = || b.hatchery(work::yield_loop(iters));
        let workload = format!("yield x{}", count(iters));
        rows.push(time_row(cfg, &workload, b, iters, raw, hatchery));
        report(rows);
    }
    // `checkpoint()` in a hatchery task, against the executor's bare yield: no deadline
    // around it, then one (which the checkpoint reads the clock for), against the
    // executor's own timeout around the yields.
    if cfg.wants("checkpoint", name) {
        let raw = || b.raw(|| work::yield_loop(iters), |_| work::yield_loop(iters));
        let hatchery = || b.hatchery(work::checkpoint_loop(iters));
        let workload = format!("checkpoint x{}", count(iters));
        rows.push(time_row(cfg, &workload, b, iters, raw, hatchery));
        report(rows);
    }
    if cfg.wants("checkpoint_deadline", name) {
        let raw = || {
            b.raw(
                || work::tokio_yields_in_timeout(iters),
                |_| work::smol_yields_in_timeout(iters),
            )
        };
        let hatchery = || b.hatchery(work::checkpoints_in_timeout(iters));
        let workload = format!("checkpoint_deadline x{}", count(iters));
        rows.push(time_row(cfg, &workload, b, iters, raw, hatchery));
        report(rows);
    }
    // Deterministic (no timing): one run per side, on tokio's current-thread runtime
    // only (the raw side is `tokio::time::timeout`; one thread, so that both depths are
    // measured on the same stack).
    if cfg.wants("stack", name) && name == "tokio-ct" {
        let s = cfg.sides;
        let raw = |level: stack::Level| b.raw(|| level, |_| async {});
        let hatchery = |level: stack::Level| b.hatchery(level);
        let plain = stack::per_level(raw, stack::plain_levels);
        let (raw_size, hatchery_size) = stack::future_sizes();
        rows.push(Row {
            workload: format!(
                "stack per timeout level (plain nesting: {plain:.0} B; futures {raw_size} B, \
                 {hatchery_size} B)"
            ),
            backend: name,
            raw: s
                .raw
                .then(|| Value::Stack(stack::per_level(raw, stack::tokio_levels))),
            reference: None,
            hatchery: s
                .hatchery
                .then(|| Value::Stack(stack::per_level(hatchery, stack::hatchery_levels))),
        });
        report(rows);
    }
}

/// Runs `n` children parked in `wait` on the raw side (with a second allocation per
/// child if `ballast`) and returns what the run measured (its bytes if `bytes`).
fn raw_parked(b: &Backend, n: usize, ballast: bool, wait: Wait, bytes: Count) -> Parked {
    b.raw(
        || work::tokio_parked(n, ballast, wait, bytes),
        |ex| async move { work::smol_parked(&ex, n, ballast, wait, bytes).await },
    )
}

/// The `cancel_parked`, `spawn_parked` and `memory_pending` or `memory_sleep` rows of
/// children parked in `wait`.
fn parked_rows(cfg: &Config, b: &Backend, rows: &mut Vec<Row>, wait: Wait) {
    let (n, name) = (cfg.children, b.name);
    if cfg.wants("cancel_parked", name) {
        let workload = format!("cancel_parked {} {}", count(n), wait.label());
        let bytes = Count::Bytes;
        let mut raw = || raw_parked(b, n, false, wait, bytes).cancel;
        let mut reference = || raw_parked(b, n, true, wait, bytes).cancel;
        let mut hatchery = || b.hatchery(work::hatchery_parked(n, wait, bytes)).cancel;
        let row = time_row_ref(
            cfg,
            &workload,
            b,
            n,
            &mut raw,
            &mut reference,
            &mut hatchery,
        );
        rows.push(row);
        report(rows);
    }
    // The other phase of the same children: from the first spawn until every child is
    // parked (polled once), with the byte counter off.
    if cfg.wants("spawn_parked", name) {
        let workload = format!("spawn_parked {} {}", count(n), wait.label());
        let none = Count::Nothing;
        let mut raw = || raw_parked(b, n, false, wait, none).spawn;
        let mut reference = || raw_parked(b, n, true, wait, none).spawn;
        let mut hatchery = || b.hatchery(work::hatchery_parked(n, wait, none)).spawn;
        let row = time_row_ref(
            cfg,
            &workload,
            b,
            n,
            &mut raw,
            &mut reference,
            &mut hatchery,
        );
        rows.push(row);
        report(rows);
    }
    // One run per side and process: the resident set only grows on a fresh heap, so the
    // harness runs each side in processes of its own, and each wait has a workload of
    // its own. No reference: a raw side with a second allocation per child would only
    // show the size picked for it.
    let memory = match wait {
        Wait::Pending => "memory_pending",
        Wait::Sleep => "memory_sleep",
    };
    if cfg.wants(memory, name) {
        let bytes = |p: Parked| Value::Bytes {
            alloc: p.bytes_per_child,
            rss: p.rss_per_child,
        };
        let s = cfg.sides;
        rows.push(Row {
            workload: format!("{memory} {}", count(n)),
            backend: name,
            raw: s
                .raw
                .then(|| bytes(raw_parked(b, n, false, wait, Count::Bytes))),
            reference: None,
            hatchery: s
                .hatchery
                .then(|| bytes(b.hatchery(work::hatchery_parked(n, wait, Count::Bytes)))),
        });
        report(rows);
    }
}

/// The synchronization rows: channel throughput, waiters, semaphore fan-out, locking.
fn run_sync(cfg: &Config, b: &Backend, rows: &mut Vec<Row>) {
    let name = b.name;
    let messages = cfg.messages;
    if cfg.wants("channel", name) {
        let raw = || {
            b.raw(
                || sync_work::tokio_channel(messages),
                |ex| async move { sync_work::smol_channel(&ex, messages).await },
            )
        };
        let hatchery = || b.hatchery(sync_work::hatchery_channel(messages));
        let workload = format!("channel {}", count(messages));
        rows.push(time_row(cfg, &workload, b, messages, raw, hatchery));
        report(rows);
    }

    waiter_rows(cfg, b, rows);

    // Raw: async-lock's semaphore (not fair); reference: tokio's (fair, as hatchery's
    // are), on every backend.
    let n = cfg.children;
    type Unfair = async_lock::Semaphore;
    type Fair = tokio::sync::Semaphore;
    use hatchery::sync::{CapacityLimiter, Semaphore};
    for workload in ["semaphore", "limiter"] {
        if !cfg.wants(workload, name) {
            continue;
        }
        let raw = || {
            b.raw(
                || fanout::tokio_semaphore::<Unfair>(n),
                |ex| async move { fanout::smol_semaphore::<Unfair>(&ex, n).await },
            )
        };
        let reference = || {
            b.raw(
                || fanout::tokio_semaphore::<Fair>(n),
                |ex| async move { fanout::smol_semaphore::<Fair>(&ex, n).await },
            )
        };
        let hatchery = || match workload {
            "semaphore" => b.hatchery(fanout::hatchery_semaphore::<Semaphore>(n)),
            _ => b.hatchery(fanout::hatchery_semaphore::<CapacityLimiter>(n)),
        };
        let label = format!("{workload} {}", count(n));
        rows.push(time_row_ref(cfg, &label, b, n, raw, reference, hatchery));
        report(rows);
    }

    let pairs = cfg.messages;
    if cfg.wants("lock", name) {
        let raw = || {
            b.raw(
                || sync_work::tokio_lock(pairs),
                |_| sync_work::smol_lock(pairs),
            )
        };
        let hatchery = || b.hatchery(sync_work::hatchery_lock(pairs));
        let workload = format!("lock {}", count(pairs));
        rows.push(time_row(cfg, &workload, b, pairs, raw, hatchery));
        report(rows);
    }
}

/// Many tasks waiting on one stream at once, at each size of `cfg.waiters`, so that how
/// the cost grows with the number of waiters shows: tasks waiting in `recv` served,
/// tasks waiting in `send` drained, and clones of a send handle dropped while they wait.
/// The raw sides: async-channel (tokio has no channel with several receivers), and for
/// the send rows on tokio, `tokio::sync::mpsc`.
fn waiter_rows(cfg: &Config, b: &Backend, rows: &mut Vec<Row>) {
    let name = b.name;
    for &n in cfg.waiters {
        if cfg.wants("recv_waiters", name) {
            let raw = || {
                b.raw(
                    || sync_work::tokio_recv_waiters(n),
                    |ex| async move { sync_work::smol_recv_waiters(&ex, n).await },
                )
            };
            let hatchery = || b.hatchery(sync_work::hatchery_recv_waiters(n));
            let workload = format!("recv_waiters {}", count(n));
            rows.push(time_row(cfg, &workload, b, n, raw, hatchery));
            report(rows);
        }
    }
    for &n in cfg.waiters {
        if cfg.wants("send_waiters", name) {
            let raw = || {
                b.raw(
                    || sync_work::tokio_send_waiters(n),
                    |ex| async move { sync_work::smol_send_waiters(&ex, n).await },
                )
            };
            let hatchery = || b.hatchery(sync_work::hatchery_send_waiters(n));
            let workload = format!("send_waiters {}", count(n));
            rows.push(time_row(cfg, &workload, b, n, raw, hatchery));
            report(rows);
        }
    }
    for &n in cfg.waiters {
        if cfg.wants("clone_drops", name) {
            let raw = || {
                b.raw(
                    || sync_work::tokio_clone_drops(n),
                    |ex| async move { sync_work::smol_clone_drops(&ex, n).await },
                )
            };
            let hatchery = || b.hatchery(sync_work::hatchery_clone_drops(n));
            let workload = format!("clone_drops {}", count(n));
            rows.push(time_row(cfg, &workload, b, n, raw, hatchery));
            report(rows);
        }
    }
}

/// The networking rows: ping-pong latency, echo throughput, accept rate.
fn run_net(cfg: &Config, b: &Backend, rows: &mut Vec<Row>) {
    let name = b.name;
    let n = cfg.pings;
    if cfg.wants("ping_pong", name) {
        let raw = || {
            b.raw(
                || net_work::tokio_ping_pong(n),
                |ex| async move { net_work::smol_ping_pong(&ex, n).await },
            )
        };
        let hatchery = || b.hatchery(net_work::hatchery_ping_pong(n));
        let workload = format!("ping_pong x{}", count(n));
        rows.push(time_row(cfg, &workload, b, n, raw, hatchery));
        report(rows);
    }

    let n = cfg.echoes;
    if cfg.wants("echo", name) {
        let raw = || {
            b.raw(
                || net_work::tokio_echo(n),
                |ex| async move { net_work::smol_echo(&ex, n).await },
            )
        };
        let hatchery = || b.hatchery(net_work::hatchery_echo(n));
        let workload = format!(
            "echo {}x{} KiB x{}",
            net_work::CONNECTIONS,
            net_work::MESSAGE / 1024,
            count(n)
        );
        let ops = n * net_work::CONNECTIONS;
        rows.push(time_row(cfg, &workload, b, ops, raw, hatchery));
        report(rows);
    }

    let n = cfg.accepts;
    if cfg.wants("accept", name) {
        let raw = || {
            b.raw(
                || net_work::tokio_accept(n),
                |ex| async move { net_work::smol_accept(&ex, n).await },
            )
        };
        let hatchery = || b.hatchery(net_work::hatchery_accept(n));
        let workload = format!("accept x{}", count(n));
        rows.push(time_row(cfg, &workload, b, n, raw, hatchery));
        report(rows);
    }
}

/// The process rows: spawning `true` and waiting for it, timed by the clock, by the CPU
/// time of the benchmark's process (every thread, not the children), and by the clock
/// inside the `spawn` calls alone.
///
/// A spawn costs about a millisecond of the kernel's time (fork, exec, exit), far more
/// than either side's own work, and on a loaded machine the clock mostly measures the
/// load. So a run is short (`spawns` children, 50) and the sides take turns ten times as
/// often as in the other rows (`--reps` x 10 runs each per process); and the second row
/// times the same runs by the process's CPU time (`CLOCK_PROCESS_CPUTIME_ID`: user and
/// system time of the parent's threads, the spawning included, the children's own time
/// and the time spent waiting for a CPU not), which another program's load barely
/// moves. The third says which part of the clock's time is the spawn calls (the rest is
/// the waits for the exits).
fn run_process(cfg: &Config, b: &Backend, rows: &mut Vec<Row>) {
    let (name, n) = (b.name, cfg.spawns);
    if cfg.wants("spawn_wait", name) {
        let (mut raw_more, mut hatchery_more) = (Vec::new(), Vec::new());
        let raw = || {
            let times = b.raw(
                || process_work::tokio_spawn_wait(n),
                |_| process_work::smol_spawn_wait(n),
            );
            raw_more.push((times.cpu, times.spawning));
            times.wall
        };
        let hatchery = || {
            let times = b.hatchery(process_work::hatchery_spawn_wait(n));
            hatchery_more.push((times.cpu, times.spawning));
            times.wall
        };
        let reps = cfg.reps * 10;
        let workload = format!("spawn_wait x{}", count(n));
        rows.push(time_row_reps(cfg, reps, &workload, b, n, raw, hatchery));
        report(rows);
        // The same runs, by CPU time and inside `spawn` (the first of each side is the
        // warm-up).
        let part = |xs: &[(Duration, Duration)], pick: fn(&(Duration, Duration)) -> Duration| {
            time_value(xs.iter().skip(1).map(pick).collect(), n)
        };
        for (what, pick) in [
            ("cpu", (|t| t.0) as fn(&(Duration, Duration)) -> Duration),
            ("in spawn", |t| t.1),
        ] {
            rows.push(Row {
                workload: format!("spawn_wait {what} x{}", count(n)),
                backend: b.name,
                raw: part(&raw_more, pick),
                reference: None,
                hatchery: part(&hatchery_more, pick),
            });
            report(rows);
        }
    }
}

/// The thread rows: round trips to a blocking thread, calls back from one, and calls
/// through a blocking portal.
fn run_threads(cfg: &Config, b: &Backend, rows: &mut Vec<Row>) {
    let (name, n) = (b.name, cfg.round_trips);
    for (workload, limited) in [("to_thread", true), ("run_blocking", false)] {
        if cfg.wants(workload, name) {
            let raw = || {
                b.raw(
                    || thread_work::tokio_to_thread(n),
                    |_| thread_work::smol_to_thread(n),
                )
            };
            let hatchery = || b.hatchery(thread_work::hatchery_to_thread(n, limited));
            let row = format!("{workload} x{}", count(n));
            rows.push(time_row(cfg, &row, b, n, raw, hatchery));
            report(rows);
        }
    }
    // Raw: the executor's `block_on` on the blocking thread, which polls the future
    // there, outside any task (shown, not comparable); reference: the call handed to the
    // task that started the thread and answered, by hand, as `from_thread::run` does.
    if cfg.wants("from_thread", name) {
        let raw = || {
            b.raw(
                || thread_work::tokio_block_on(n),
                |_| thread_work::smol_block_on(n),
            )
        };
        let reference = || {
            b.raw(
                || thread_work::tokio_task_round_trip(n),
                |_| thread_work::smol_task_round_trip(n),
            )
        };
        let hatchery = || b.hatchery(thread_work::hatchery_from_thread(n));
        let row = format!("from_thread x{}", count(n));
        rows.push(time_row_ref(cfg, &row, b, n, raw, reference, hatchery));
        report(rows);
    }
    if cfg.wants("portal", name) {
        let raw = || {
            b.raw(
                || thread_work::tokio_portal(n),
                |ex| thread_work::smol_portal(ex, n),
            )
        };
        let hatchery = || b.hatchery(thread_work::hatchery_portal(n));
        let row = format!("portal x{}", count(n));
        rows.push(time_row(cfg, &row, b, n, raw, hatchery));
        report(rows);
    }
}

/// The file rows, against `tokio::fs` on tokio and `async-fs` on smol: a sequential read
/// and write in 64 KiB pieces (per piece), and metadata calls one after the other.
fn run_files(cfg: &Config, b: &Backend, rows: &mut Vec<Row>) {
    let (name, bytes) = (b.name, cfg.file_bytes);
    let pieces = bytes / fs_work::PIECE;
    let mib = bytes >> 20;
    if cfg.wants("fs_read", name) {
        let raw = || b.raw(|| fs_work::tokio_read(bytes), |_| fs_work::smol_read(bytes));
        let hatchery = || b.hatchery(fs_work::hatchery_read(bytes));
        let row = format!("fs_read {mib} MiB x64 KiB");
        rows.push(time_row(cfg, &row, b, pieces, raw, hatchery));
        report(rows);
    }
    if cfg.wants("fs_write", name) {
        let raw = || {
            b.raw(
                || fs_work::tokio_write(bytes),
                |_| fs_work::smol_write(bytes),
            )
        };
        let hatchery = || b.hatchery(fs_work::hatchery_write(bytes));
        let row = format!("fs_write {mib} MiB x64 KiB");
        rows.push(time_row(cfg, &row, b, pieces, raw, hatchery));
        report(rows);
    }
    let n = cfg.metadata_calls;
    if cfg.wants("fs_metadata", name) {
        let raw = || b.raw(|| fs_work::tokio_metadata(n), |_| fs_work::smol_metadata(n));
        let hatchery = || b.hatchery(fs_work::hatchery_metadata(n));
        let row = format!("fs_metadata x{}", count(n));
        rows.push(time_row(cfg, &row, b, n, raw, hatchery));
        report(rows);
    }
    fs_work::clean_up();
}

/// `100000` as `100k`, `1000000` as `1M`.
fn count(n: usize) -> String {
    if n >= 1_000_000 && n % 1_000_000 == 0 {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n % 1000 == 0 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// Prints the newest row to stderr as progress.
pub(crate) fn report(rows: &[Row]) {
    if let Some(row) = rows.last() {
        eprintln!(
            "  {:<32} {:<9} raw {:<22} ref {:<14} hatchery {:<22} {}",
            row.workload,
            row.backend,
            Value::show(row.raw),
            Value::show(row.reference),
            Value::show(row.hatchery),
            row.ratio()
        );
    }
}

/// A child process: runs the one cell `cell` (`workload/backend`) and prints its rows
/// for the harness.
fn child(cfg: &Config, cell: &str) {
    let backend = cell
        .rsplit_once('/')
        .and_then(|(_, b)| backend::NAMES.into_iter().find(|&n| n == b))
        .unwrap_or_else(|| {
            eprintln!("hatchery-benches: bad cell {cell:?}");
            std::process::exit(2);
        });
    let b = Backend::new(backend);
    let mut rows = Vec::new();
    run_backend(cfg, &b, &mut rows);
    run_sync(cfg, &b, &mut rows);
    borrow_work::run(cfg, &b, &mut rows);
    run_net(cfg, &b, &mut rows);
    run_process(cfg, &b, &mut rows);
    run_threads(cfg, &b, &mut rows);
    run_files(cfg, &b, &mut rows);
    for row in &rows {
        println!("{}", row.encode());
    }
}

fn main() {
    let cfg = match Config::from_args() {
        Ok(cfg) => cfg,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("hatchery-benches: {e}\n");
            }
            eprintln!("{USAGE}");
            std::process::exit(if e.is_empty() { 0 } else { 2 });
        }
    };
    match &cfg.only {
        Some(cell) => child(&cfg, cell),
        None if cfg.filter.as_deref() == Some("memory_flat") => flat_or_exit(&cfg),
        None => {
            harness::run(&cfg);
            if cfg.filter.is_none() && cfg.load.is_none() {
                flat_or_exit(&cfg);
            }
        }
    }
}

/// Runs the "memory stays flat" check ([`flat`]); exits with an error if it fails.
fn flat_or_exit(cfg: &Config) {
    if !flat::run(cfg.quick) {
        eprintln!("hatchery-benches: memory did not stay flat (see above)");
        std::process::exit(1);
    }
}
