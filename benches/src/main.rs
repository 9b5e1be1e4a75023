//! Benchmarks hatchery against the raw idiomatic equivalent on the same executor, side
//! by side in one run, and prints a Markdown table of medians and ratios (DESIGN.md §6).
//!
//! ```text
//! cargo run --release -p hatchery-benches -- [--quick] [--reps N] [--side S] [--out PATH] [FILTER]
//! ```
//!
//! `FILTER` keeps the rows whose `workload/backend` contains it (`spawn`, `timeout/smol`,
//! `tokio-ct`, ...). Backends: `tokio-mt` (multi-thread, one worker per core), `tokio-ct`
//! (current-thread), `smol` (an `async-executor` run by the calling thread plus one
//! thread per further core, as `hatchery_smol::run` sets it up) and `smol-ct` (one
//! thread). Each backend is built once; the raw and the hatchery side of a row run on
//! that same instance, alternating, each as the future given to `block_on`.

mod backend;
mod sync_work;
mod work;

use std::fmt::Write as _;
use std::time::Duration;

use backend::{Backend, Kind};
use hatchery_bench_alloc::Counting;
use work::Parked;

/// Counts allocated bytes for the memory rows; switched off while anything is timed.
#[global_allocator]
static ALLOCATOR: Counting = Counting::new();

const USAGE: &str = "\
usage: hatchery-benches [--quick] [--reps N] [--out PATH] [FILTER]

  --quick     small sizes and few repetitions (a smoke run for CI)
  --reps N    timed repetitions per side (default 11, quick 5); the median is reported
  --out PATH  also write the Markdown report to PATH
  --side S    run only the `raw` or only the `hatchery` side (for profiling one)
  FILTER      run only the rows whose `workload/backend` contains FILTER

workloads: spawn_join, spawn_handles, move_on_after, cancel_parked, memory_parked,
           channel, semaphore, lock (uncontended lock/unlock pairs)
           (reference rows: `(raw+alloc)` for spawn_join, spawn_handles and
           cancel_parked, whose raw side also makes the second allocation per child that
           hatchery makes, and on smol `semaphore (fair raw)`, against a FIFO-fair raw
           semaphore)
backends:  tokio-mt, tokio-ct, smol, smol-ct";

struct Config {
    /// Children per spawn / parked workload.
    children: usize,
    /// Iterations of the timeout workload.
    timeouts: usize,
    /// Messages of the channel workload.
    messages: usize,
    /// Timed repetitions per side (after one untimed warm-up run).
    reps: usize,
    filter: Option<String>,
    out: Option<String>,
    quick: bool,
    /// Run the raw side, the hatchery side.
    sides: (bool, bool),
}

impl Config {
    fn from_args() -> Result<Config, String> {
        let mut quick = false;
        let mut reps = None;
        let mut out = None;
        let mut filter = None;
        let mut sides = (true, true);
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--reps" => {
                    let n = args.next().ok_or("--reps needs a number")?;
                    let n: usize = n.parse().map_err(|_| format!("bad --reps value {n:?}"))?;
                    reps = Some(n.max(1));
                }
                "--out" => out = Some(args.next().ok_or("--out needs a path")?),
                "--side" => match args.next().as_deref() {
                    Some("raw") => sides = (true, false),
                    Some("hatchery") => sides = (false, true),
                    _ => return Err("--side needs `raw` or `hatchery`".to_owned()),
                },
                "-h" | "--help" => return Err(String::new()),
                // `cargo bench` passes `--bench`; ignore it like libtest does.
                "--bench" => {}
                s if s.starts_with('-') => return Err(format!("unknown option {s}")),
                s if filter.is_none() => filter = Some(s.to_owned()),
                s => return Err(format!("more than one filter: {s}")),
            }
        }
        let (children, timeouts, default_reps) = if quick {
            (10_000, 20_000, 5)
        } else {
            (100_000, 200_000, 11)
        };
        Ok(Config {
            children,
            timeouts,
            messages: if quick { 100_000 } else { 1_000_000 },
            reps: reps.unwrap_or(default_reps),
            filter,
            out,
            quick,
            sides,
        })
    }

    fn wants(&self, workload: &str, backend: &str) -> bool {
        match &self.filter {
            Some(f) => format!("{workload}/{backend}").contains(f.as_str()),
            None => true,
        }
    }
}

/// One cell of the table.
#[derive(Clone, Copy)]
enum Value {
    /// A median time for `ops` operations.
    Time { total: Duration, ops: usize },
    /// Bytes per child.
    Bytes(f64),
}

impl Value {
    fn amount(self) -> f64 {
        match self {
            Value::Time { total, .. } => total.as_secs_f64(),
            Value::Bytes(b) => b,
        }
    }

    fn show(value: Option<Value>) -> String {
        let Some(value) = value else {
            return "-".to_owned();
        };
        match value {
            Value::Time { total, ops } => {
                let per_op = total.as_secs_f64() * 1e9 / ops as f64;
                format!("{} ({per_op:.0} ns/op)", show_duration(total))
            }
            Value::Bytes(b) => format!("{b:.0} B/child"),
        }
    }
}

fn show_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

struct Row {
    workload: String,
    backend: &'static str,
    raw: Option<Value>,
    hatchery: Option<Value>,
}

impl Row {
    fn ratio(&self) -> String {
        match (self.raw, self.hatchery) {
            (Some(raw), Some(hatchery)) => {
                let ratio = hatchery.amount() / raw.amount();
                let flag = if ratio > 1.25 { " ⚠" } else { "" };
                format!("{ratio:.2}x{flag}")
            }
            _ => "-".to_owned(),
        }
    }
}

/// The median sample by `key`, if there are any.
fn median<T: Copy>(mut xs: Vec<T>, key: impl Fn(&T) -> f64) -> Option<T> {
    xs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    xs.get(xs.len() / 2).copied()
}

/// Runs `raw` and `hatchery` alternately, one untimed warm-up each and then `reps` timed
/// runs each, and returns the samples of each side (none for a side `--side` left out).
fn alternate<T>(
    cfg: &Config,
    mut raw: impl FnMut() -> T,
    mut hatchery: impl FnMut() -> T,
) -> (Vec<T>, Vec<T>) {
    let (run_raw, run_hatchery) = cfg.sides;
    let mut raw = move |samples: &mut Vec<T>| {
        if run_raw {
            samples.push(raw());
        }
    };
    let mut hatchery = move |samples: &mut Vec<T>| {
        if run_hatchery {
            samples.push(hatchery());
        }
    };
    let (mut r, mut h) = (Vec::new(), Vec::new());
    raw(&mut r);
    hatchery(&mut h);
    r.clear();
    h.clear();
    for i in 0..cfg.reps {
        // Alternate which side goes first, so neither always runs right after the other.
        if i % 2 == 0 {
            raw(&mut r);
            hatchery(&mut h);
        } else {
            hatchery(&mut h);
            raw(&mut r);
        }
    }
    (r, h)
}

fn time_row(
    cfg: &Config,
    workload: &str,
    b: &Backend,
    ops: usize,
    raw: impl FnMut() -> Duration,
    hatchery: impl FnMut() -> Duration,
) -> Row {
    let (r, h) = alternate(cfg, raw, hatchery);
    let value =
        |xs: Vec<Duration>| median(xs, |d| d.as_secs_f64()).map(|total| Value::Time { total, ops });
    Row {
        workload: workload.to_owned(),
        backend: b.name,
        raw: value(r),
        hatchery: value(h),
    }
}

fn run_backend(cfg: &Config, b: &Backend, rows: &mut Vec<Row>) {
    let n = cfg.children;
    let name = b.name;

    // Each raw side once as it is and once carrying a second allocation per child, as
    // hatchery's children do (the reference rows, "raw+alloc").
    for (ballast, suffix) in [(false, ""), (true, REFERENCE)] {
        let workload = format!("spawn_join {}{suffix}", count(n));
        if cfg.wants("spawn_join", name) {
            let raw = || match &b.kind {
                Kind::Tokio(rt) => rt.block_on(work::tokio_spawn_join(n, ballast)),
                Kind::Smol(p) => p.block_on(work::smol_spawn_join(&p.executor, n, ballast)),
            };
            let hatchery = || b.hatchery(work::hatchery_spawn_join(n));
            rows.push(time_row(cfg, &workload, b, n, raw, hatchery));
            report(rows);
        }
    }

    let workload = format!("spawn_handles {}", count(n));
    if cfg.wants("spawn_handles", name) {
        let raw = || match &b.kind {
            Kind::Tokio(rt) => rt.block_on(work::tokio_spawn_handles(n)),
            Kind::Smol(p) => p.block_on(work::smol_spawn_handles(&p.executor, n)),
        };
        let hatchery = || b.hatchery(work::hatchery_spawn_handles(n));
        rows.push(time_row(cfg, &workload, b, n, raw, hatchery));
        report(rows);
    }

    let workload = format!("spawn_handles {}{REFERENCE}", count(n));
    if cfg.wants("spawn_handles", name) {
        let raw = || match &b.kind {
            Kind::Tokio(rt) => rt.block_on(work::tokio_spawn_handles_ballast(n)),
            Kind::Smol(p) => p.block_on(work::smol_spawn_handles_ballast(&p.executor, n)),
        };
        let hatchery = || b.hatchery(work::hatchery_spawn_handles(n));
        rows.push(time_row(cfg, &workload, b, n, raw, hatchery));
        report(rows);
    }

    let iters = cfg.timeouts;
    let workload = format!("move_on_after x{}", count(iters));
    if cfg.wants("move_on_after", name) {
        let raw = || match &b.kind {
            Kind::Tokio(rt) => rt.block_on(work::tokio_timeout(iters)),
            Kind::Smol(p) => p.block_on(work::smol_timeout(iters)),
        };
        let hatchery = || b.hatchery(work::hatchery_timeout(iters));
        rows.push(time_row(cfg, &workload, b, iters, raw, hatchery));
        report(rows);
    }

    for (ballast, suffix) in [(false, ""), (true, REFERENCE)] {
        parked_rows(cfg, b, rows, ballast, suffix);
    }
}

/// The `cancel_parked` and `memory_parked` rows, which come from the same runs; with
/// `ballast`, the `cancel_parked` reference row.
fn parked_rows(cfg: &Config, b: &Backend, rows: &mut Vec<Row>, ballast: bool, suffix: &str) {
    let (n, name) = (cfg.children, b.name);
    // The memory rows have no reference: a raw side with a second allocation per child
    // would only show the size picked for it.
    let (cancel, memory) = (
        cfg.wants("cancel_parked", name),
        !ballast && cfg.wants("memory_parked", name),
    );
    if cancel || memory {
        let raw = || match &b.kind {
            Kind::Tokio(rt) => rt.block_on(work::tokio_parked(n, ballast)),
            Kind::Smol(p) => p.block_on(work::smol_parked(&p.executor, n, ballast)),
        };
        let hatchery = || b.hatchery(work::hatchery_parked(n));
        let (r, h) = alternate(cfg, raw, hatchery);
        if cancel {
            let time = |xs: &[Parked]| {
                median(xs.to_vec(), |p| p.cancel.as_secs_f64()).map(|p| Value::Time {
                    total: p.cancel,
                    ops: n,
                })
            };
            rows.push(Row {
                workload: format!("cancel_parked {}{suffix}", count(n)),
                backend: name,
                raw: time(&r),
                hatchery: time(&h),
            });
            report(rows);
        }
        if memory {
            let bytes = |xs: &[Parked]| {
                median(xs.to_vec(), |p| p.bytes_per_child).map(|p| Value::Bytes(p.bytes_per_child))
            };
            rows.push(Row {
                workload: format!("memory_parked {}", count(n)),
                backend: name,
                raw: bytes(&r),
                hatchery: bytes(&h),
            });
            report(rows);
        }
    }
}

/// The suffix of a reference row: its raw side carries a second allocation per child,
/// as hatchery's children do.
const REFERENCE: &str = " (raw+alloc)";

/// The synchronization rows: channel throughput, semaphore fan-out and locking.
fn run_sync(cfg: &Config, b: &Backend, rows: &mut Vec<Row>) {
    let name = b.name;
    let messages = cfg.messages;
    let workload = format!("channel {}", count(messages));
    if cfg.wants("channel", name) {
        let raw = || match &b.kind {
            Kind::Tokio(rt) => rt.block_on(sync_work::tokio_channel(messages)),
            Kind::Smol(p) => p.block_on(sync_work::smol_channel(&p.executor, messages)),
        };
        let hatchery = || b.hatchery(sync_work::hatchery_channel(messages));
        rows.push(time_row(cfg, &workload, b, messages, raw, hatchery));
        report(rows);
    }

    let acquisitions = cfg.children;
    let workload = format!("semaphore {}", count(acquisitions));
    if cfg.wants("semaphore", name) {
        let raw = || match &b.kind {
            Kind::Tokio(rt) => rt.block_on(sync_work::tokio_semaphore(acquisitions)),
            Kind::Smol(p) => p.block_on(sync_work::smol_semaphore(&p.executor, acquisitions)),
        };
        let hatchery = || b.hatchery(sync_work::hatchery_semaphore(acquisitions));
        rows.push(time_row(cfg, &workload, b, acquisitions, raw, hatchery));
        report(rows);
    }

    // Reference on smol: a fair raw semaphore (the tokio rows' raw side already is one).
    let workload = format!("semaphore {} (fair raw)", count(acquisitions));
    if let Kind::Smol(p) = &b.kind {
        if cfg.wants("semaphore", name) {
            let raw = || p.block_on(sync_work::smol_fair_semaphore(&p.executor, acquisitions));
            let hatchery = || b.hatchery(sync_work::hatchery_semaphore(acquisitions));
            rows.push(time_row(cfg, &workload, b, acquisitions, raw, hatchery));
            report(rows);
        }
    }

    let pairs = cfg.messages;
    let workload = format!("lock {}", count(pairs));
    if cfg.wants("lock", name) {
        let raw = || match &b.kind {
            Kind::Tokio(rt) => rt.block_on(sync_work::tokio_lock(pairs)),
            Kind::Smol(p) => p.block_on(sync_work::smol_lock(pairs)),
        };
        let hatchery = || b.hatchery(sync_work::hatchery_lock(pairs));
        rows.push(time_row(cfg, &workload, b, pairs, raw, hatchery));
        report(rows);
    }
}

/// `100000` as `100k`.
fn count(n: usize) -> String {
    if n >= 1000 && n % 1000 == 0 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// Prints the newest row to stderr as progress.
fn report(rows: &[Row]) {
    if let Some(row) = rows.last() {
        eprintln!(
            "  {:<30} {:<9} raw {:<26} hatchery {:<26} {}",
            row.workload,
            row.backend,
            Value::show(row.raw),
            Value::show(row.hatchery),
            row.ratio()
        );
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn markdown(cfg: &Config, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "hatchery vs raw, same executor instance per row; median of {} runs per side{}.",
        cfg.reps,
        if cfg.quick { " (--quick)" } else { "" }
    );
    let _ = writeln!(
        s,
        "Machine: {} cores, {}. Ratio = hatchery / raw (lower is better; target <= 1.25).",
        backend::cores(),
        cpu_model()
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "| workload | backend | raw | hatchery | ratio |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|");
    for row in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            row.workload,
            row.backend,
            Value::show(row.raw),
            Value::show(row.hatchery),
            row.ratio()
        );
    }
    s
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
    let workloads = [
        "spawn_join",
        "spawn_handles",
        "move_on_after",
        "cancel_parked",
        "memory_parked",
        "channel",
        "semaphore",
        "lock",
    ];
    let mut rows = Vec::new();
    for name in backend::NAMES {
        if !workloads.iter().any(|w| cfg.wants(w, name)) {
            continue;
        }
        eprintln!("{name}:");
        let b = Backend::new(name);
        run_backend(&cfg, &b, &mut rows);
        run_sync(&cfg, &b, &mut rows);
    }
    if rows.is_empty() {
        eprintln!("hatchery-benches: no workload matches the filter\n\n{USAGE}");
        std::process::exit(2);
    }
    let table = markdown(&cfg, &rows);
    println!("\n{table}");
    if let Some(path) = &cfg.out {
        if let Err(e) = std::fs::write(path, &table) {
            eprintln!("hatchery-benches: cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
}
