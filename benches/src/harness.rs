//! The harness: runs every cell (a workload on a backend) in fresh processes of this
//! same binary, round after round, and reduces what they report to one table row per
//! row name: the median over the processes and their range.

use std::fmt::Write as _;
use std::process::Command;

use crate::{backend, chart, Config, Row, Value, SIDE_SPLIT, WORKLOADS};

/// The median of some numbers and their range.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
}

impl Spread {
    fn of(mut xs: Vec<f64>) -> Option<Spread> {
        if xs.is_empty() {
            return None;
        }
        xs.sort_by(f64::total_cmp);
        let n = xs.len();
        let median = if n % 2 == 1 {
            xs[n / 2]
        } else {
            (xs[n / 2 - 1] + xs[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            lo: xs[0],
            hi: xs[n - 1],
        })
    }
}

/// What a row is judged by.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// hatchery / raw (or / reference) at most `max`.
    Ratio { reference: bool, max: f64 },
    /// Allocated bytes per child at most `max` over raw.
    Over(f64),
}

impl Target {
    /// The target of row `workload` (a row name, which starts with its workload's name)
    /// on `backend`.
    pub(crate) fn of(workload: &str, backend: &str) -> Target {
        let single = backend.ends_with("-ct");
        let name = workload.split(' ').next().unwrap_or(workload);
        match name {
            // A hatchery child is the executor's task plus one allocation: judged against
            // raw children that carry one more allocation each.
            "spawn_join" | "spawn_join_ctx" | "spawn_join_1k" | "spawn_handles"
            | "cancel_parked" | "spawn_parked" => Target::Ratio {
                reference: true,
                max: if single { 1.10 } else { 1.25 },
            },
            "memory_sleep" => Target::Over(192.0),
            "memory_pending" => Target::Over(128.0),
            // Local children against the local executor's own `spawn_local`: as every
            // spawn and cancel row, judged against raw children that carry one more
            // allocation each, with the room of a child parked in a sleep.
            "local_spawn_join" | "local_cancel_parked" => Target::Ratio {
                reference: true,
                max: 1.25,
            },
            "local_memory_pending" => Target::Over(192.0),
            // Against tokio's fair semaphore; a call back from a thread against the same
            // hand-off to the task done by hand (the raw side, `block_on`, polls on the
            // thread itself, outside any task).
            "semaphore" | "limiter" | "from_thread" => Target::Ratio {
                reference: true,
                max: 1.25,
            },
            // A two-way join against `futures::join!`, which polls two futures in place.
            "polled_join2" | "polled_join2_vec" => Target::Ratio {
                reference: false,
                max: 1.5,
            },
            // Networking, processes and files, against the executor's own (`tokio::net`,
            // async-io; `tokio::process`, async-process; `tokio::fs`, async-fs).
            "ping_pong" | "echo" | "accept" | "spawn_wait" | "fs_read" | "fs_write"
            | "fs_metadata" => Target::Ratio {
                reference: false,
                max: 1.10,
            },
            // Cheaper than the executor's own timeout; no more stack per nested level.
            "move_on_after" | "stack" => Target::Ratio {
                reference: false,
                max: 1.0,
            },
            _ => Target::Ratio {
                reference: false,
                max: 1.25,
            },
        }
    }

    fn show(self) -> String {
        match self {
            Target::Ratio { reference, max } => {
                format!("≤ {max:.2}x {}", if reference { "ref" } else { "raw" })
            }
            Target::Over(max) => format!("≤ +{max:.0} B"),
        }
    }
}

/// One row of the table: what every process reported for it.
pub(crate) struct Line {
    pub(crate) workload: String,
    pub(crate) backend: &'static str,
    /// One row per round, the sides of split processes merged.
    rounds: Vec<Row>,
}

type Pick = fn(&Row) -> Option<Value>;

pub(crate) const RAW: Pick = |r| r.raw;
pub(crate) const REFERENCE: Pick = |r| r.reference;
pub(crate) const HATCHERY: Pick = |r| r.hatchery;

impl Line {
    pub(crate) fn is_bytes(&self) -> bool {
        self.rounds
            .iter()
            .flat_map(|r| [r.raw, r.reference, r.hatchery])
            .flatten()
            .any(|v| matches!(v, Value::Bytes { .. }))
    }

    pub(crate) fn is_stack(&self) -> bool {
        self.rounds
            .iter()
            .flat_map(|r| [r.raw, r.reference, r.hatchery])
            .flatten()
            .any(|v| matches!(v, Value::Stack(_)))
    }

    /// One side per operation (nanoseconds or allocated bytes) over the processes.
    fn side(&self, pick: Pick) -> Option<Spread> {
        Spread::of(
            self.rounds
                .iter()
                .filter_map(pick)
                .map(Value::per_op)
                .collect(),
        )
    }

    /// One side's resident set growth per child over the processes.
    fn rss(&self, pick: Pick) -> Option<Spread> {
        let rss = |v: Value| match v {
            Value::Bytes { rss, .. } => Some(rss),
            Value::Time { .. } | Value::Stack(_) => None,
        };
        Spread::of(
            self.rounds
                .iter()
                .filter_map(pick)
                .filter_map(rss)
                .collect(),
        )
    }

    /// hatchery / `against`, per process.
    pub(crate) fn ratio(&self, against: Pick) -> Option<Spread> {
        let ratios = self.rounds.iter().filter_map(|r| {
            let (a, h) = (against(r)?, r.hatchery?);
            Some(h.per_op() / a.per_op())
        });
        Spread::of(ratios.collect())
    }

    /// hatchery - raw, per process: allocated bytes, or with `rss` resident set growth.
    fn over(&self, rss: bool) -> Option<Spread> {
        let bytes = |v: Value| match v {
            Value::Bytes { alloc, rss: r } => Some(if rss { r } else { alloc }),
            Value::Time { .. } | Value::Stack(_) => None,
        };
        let over = self.rounds.iter().filter_map(|r| {
            let (raw, h) = (bytes(r.raw?)?, bytes(r.hatchery?)?);
            Some(h - raw)
        });
        Spread::of(over.collect())
    }

    pub(crate) fn target(&self) -> Target {
        Target::of(&self.workload, self.backend)
    }

    /// Whether the median meets the target (`None` if the row lacks a side for it).
    fn met(&self) -> Option<bool> {
        match self.target() {
            Target::Ratio { reference, max } => {
                let against = if reference { REFERENCE } else { RAW };
                Some(self.ratio(against)?.median <= max)
            }
            Target::Over(max) => Some(self.over(false)?.median <= max),
        }
    }
}

/// Runs the cells that `cfg` keeps, `cfg.procs` rounds of one process each (one per
/// side for the [`SIDE_SPLIT`] workloads), and prints the table; also writes it and the
/// chart where asked.
pub(crate) fn run(cfg: &Config) {
    let cells: Vec<(&str, &str)> = WORKLOADS
        .iter()
        .flat_map(|&w| backend::NAMES.into_iter().map(move |b| (w, b)))
        .filter(|&(w, b)| backend::runs(w, b) && cfg.wants(w, b))
        .collect();
    if cells.is_empty() {
        eprintln!(
            "hatchery-benches: no workload matches the filter\n\n{}",
            crate::USAGE
        );
        std::process::exit(2);
    }
    let (taken, lines) = match &cfg.load {
        Some(path) => load(path),
        None => {
            let taken = Taken::now(cfg);
            (taken.clone(), measure(cfg, &taken, &cells))
        }
    };
    // The processes per row, as measured (a loaded file may hold another number).
    let procs = lines.iter().map(|l| l.rounds.len()).max().unwrap_or(0);
    let table = markdown(&taken, procs, &lines);
    println!("\n{table}");
    if let Some(path) = &cfg.out {
        write(path, &table);
    }
    if let Some(path) = &cfg.svg {
        write(path, &chart::svg(&lines, &subtitle(&taken, procs)));
    }
}

/// Adds a process's `row` to its line of the table.
fn add(lines: &mut Vec<Line>, row: Row) {
    let line = match lines
        .iter()
        .position(|l| l.workload == row.workload && l.backend == row.backend)
    {
        Some(i) => &mut lines[i],
        None => {
            lines.push(Line {
                workload: row.workload.clone(),
                backend: row.backend,
                rounds: Vec::new(),
            });
            lines.last_mut().expect("just pushed")
        }
    };
    line.rounds.push(row);
    crate::report(&line.rounds);
}

/// When, where and how a run measured: the table and the chart say it, and `--save`
/// keeps it with the rows, so that `--load` gives the run's own date and machine.
#[derive(Clone, Debug)]
struct Taken {
    /// The day the run began (UTC), as `2026-11-23`.
    date: String,
    cores: usize,
    cpu: String,
    /// Timed runs per side in each process.
    reps: usize,
    quick: bool,
}

impl Taken {
    /// A run that begins now, on this machine.
    fn now(cfg: &Config) -> Taken {
        Taken {
            date: today(),
            cores: backend::cores(),
            cpu: cpu_model(),
            reps: cfg.reps,
            quick: cfg.quick,
        }
    }

    /// The line that `--save` writes first (a tab in the CPU's name becomes a space).
    fn encode(&self) -> String {
        let mode = if self.quick { "quick" } else { "full" };
        format!(
            "@taken\t{}\t{}\t{}\t{}\t{mode}",
            self.date,
            self.cores,
            self.cpu.replace('\t', " "),
            self.reps
        )
    }

    /// A line written by [`encode`](Taken::encode), or `None` for any other line.
    fn decode(line: &str) -> Option<Result<Taken, String>> {
        let rest = line.strip_prefix("@taken\t")?;
        let f: Vec<&str> = rest.split('\t').collect();
        let bad = || format!("bad run line {line:?}");
        let [date, cores, cpu, reps, mode] = f[..] else {
            return Some(Err(bad()));
        };
        let (Ok(cores), Ok(reps)) = (cores.parse(), reps.parse()) else {
            return Some(Err(bad()));
        };
        let quick = match mode {
            "quick" => true,
            "full" => false,
            _ => return Some(Err(bad())),
        };
        Some(Ok(Taken {
            date: date.to_owned(),
            cores,
            cpu: cpu.to_owned(),
            reps,
            quick,
        }))
    }
}

/// The rows saved by an earlier run's `--save`, and when and where that run measured
/// them.
fn load(path: &str) -> (Taken, Vec<Line>) {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| fail(&format!("cannot read {path}: {e}")));
    let (taken, rows) = parse_saved(&text).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    let mut lines = Vec::new();
    for row in rows {
        add(&mut lines, row);
    }
    (taken, lines)
}

/// The text of a `--save` file: its `@taken` line and its rows. A file without the
/// `@taken` line (one saved before it existed) is refused: the table would name the
/// day and machine it was loaded on.
fn parse_saved(text: &str) -> Result<(Taken, Vec<Row>), String> {
    let taken = text.lines().find_map(Taken::decode).unwrap_or_else(|| {
        Err("no line says when and where the rows were measured \
             (`@taken<TAB>date<TAB>cores<TAB>cpu<TAB>runs per side<TAB>full|quick`)"
            .to_owned())
    })?;
    let rows = text
        .lines()
        .filter_map(Row::decode)
        .collect::<Result<_, _>>()?;
    Ok((taken, rows))
}

/// Runs the cells, round after round, and collects what the processes report (also
/// into `--save`'s file, as they come).
fn measure(cfg: &Config, taken: &Taken, cells: &[(&str, &str)]) -> Vec<Line> {
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("no executable: {e}")));
    let mut save = cfg.save.as_ref().map(|path| {
        let mut file = std::fs::File::create(path)
            .unwrap_or_else(|e| fail(&format!("cannot write {path}: {e}")));
        use std::io::Write as _;
        if let Err(e) = writeln!(file, "{}", taken.encode()) {
            fail(&format!("cannot write {path}: {e}"));
        }
        file
    });
    let mut lines: Vec<Line> = Vec::new();
    for round in 1..=cfg.procs {
        eprintln!("round {round} of {}:", cfg.procs);
        for &(w, b) in cells {
            let runs: Vec<Option<&str>> = if SIDE_SPLIT.contains(&w) && cfg.side_arg.is_none() {
                vec![Some("raw"), Some("hatchery")]
            } else {
                vec![cfg.side_arg.as_deref()]
            };
            let mut merged: Vec<Row> = Vec::new();
            for side in runs {
                for row in run_child(cfg, &exe, &format!("{w}/{b}"), side) {
                    match merged.iter_mut().find(|m| m.workload == row.workload) {
                        Some(m) => {
                            m.raw = m.raw.or(row.raw);
                            m.reference = m.reference.or(row.reference);
                            m.hatchery = m.hatchery.or(row.hatchery);
                        }
                        None => merged.push(row),
                    }
                }
            }
            for row in merged {
                if let Some(file) = &mut save {
                    use std::io::Write as _;
                    if let Err(e) = writeln!(file, "{}", row.encode()) {
                        fail(&format!("cannot save a row: {e}"));
                    }
                }
                add(&mut lines, row);
            }
        }
    }
    lines
}

/// Runs one cell in a fresh process and returns the rows it reports.
fn run_child(cfg: &Config, exe: &std::path::Path, cell: &str, side: Option<&str>) -> Vec<Row> {
    let mut cmd = Command::new(exe);
    cmd.args(["--child", cell, "--reps", &cfg.reps.to_string()]);
    if cfg.quick {
        cmd.arg("--quick");
    }
    if let Some(side) = side {
        cmd.args(["--side", side]);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", exe.display())));
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        fail(&format!("the process for {cell} failed: {}", out.status));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(Row::decode)
        .map(|row| row.unwrap_or_else(|e| fail(&e)))
        .collect()
}

fn fail(msg: &str) -> ! {
    eprintln!("hatchery-benches: {msg}");
    std::process::exit(1);
}

fn write(path: &str, contents: &str) {
    if let Err(e) = std::fs::write(path, contents) {
        fail(&format!("cannot write {path}: {e}"));
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

/// Today's date (UTC), as `2026-11-23`.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Days to a civil date, after Howard Hinnant's `civil_from_days`.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year}-{month:02}-{day:02}")
}

/// Date, machine and method in one line, for the chart.
fn subtitle(taken: &Taken, procs: usize) -> String {
    format!(
        "{}, {} cores ({}); median of {} processes per cell, {} runs per side in each{}",
        taken.date,
        taken.cores,
        taken.cpu,
        procs,
        taken.reps,
        if taken.quick { " (--quick)" } else { "" }
    )
}

/// `1.12x (1.05-1.20)`.
fn show_ratio(s: Option<Spread>) -> String {
    match s {
        Some(s) if s.lo == s.hi => format!("{:.2}x", s.median),
        Some(s) => format!("{:.2}x ({:.2}–{:.2})", s.median, s.lo, s.hi),
        None => "-".to_owned(),
    }
}

/// A side's median per operation: `312 ns`, or `357 B` with the resident set growth.
fn show_side(line: &Line, pick: Pick) -> String {
    let Some(s) = line.side(pick) else {
        return "-".to_owned();
    };
    if line.is_bytes() {
        match line.rss(pick) {
            Some(rss) => format!("{:.0} B (RSS {:.0} B)", s.median, rss.median),
            None => format!("{:.0} B", s.median),
        }
    } else if line.is_stack() {
        format!("{:.0} B/level", s.median)
    } else if s.median >= 10_000.0 {
        format!("{:.1} µs", s.median / 1000.0)
    } else if s.median < 10.0 {
        format!("{:.1} ns", s.median)
    } else {
        format!("{:.0} ns", s.median)
    }
}

/// Bytes over raw: `+173 B (RSS +160 B, 120–200)`.
fn show_over(line: &Line) -> String {
    let Some(alloc) = line.over(false) else {
        return "-".to_owned();
    };
    let mut s = format!("{:+.0} B", alloc.median);
    if alloc.hi - alloc.lo >= 1.0 {
        let _ = write!(s, " ({:+.0}–{:+.0})", alloc.lo, alloc.hi);
    }
    if let Some(rss) = line.over(true) {
        let _ = write!(
            s,
            "; RSS {:+.0} B ({:+.0}–{:+.0})",
            rss.median, rss.lo, rss.hi
        );
    }
    s
}

/// The Markdown report: a line saying when, where and how the rows were taken, then one
/// table per backend (the performance chapter's results are this text as it is).
fn markdown(taken: &Taken, procs: usize, lines: &[Line]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Measured {} on {} cores ({}): every cell in {} fresh processes, {} timed runs per \
         side in each{}.",
        taken.date,
        taken.cores,
        taken.cpu,
        procs,
        taken.reps,
        if taken.quick { " (--quick)" } else { "" }
    );
    for backend in backend::NAMES {
        let rows: Vec<&Line> = lines.iter().filter(|l| l.backend == backend).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n### {backend}\n");
        let _ = writeln!(
            s,
            "| workload | raw | reference | hatchery | / raw | / reference | target |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|");
        for line in rows {
            let (vs_raw, vs_ref) = if line.is_bytes() {
                (show_over(line), "-".to_owned())
            } else {
                (
                    show_ratio(line.ratio(RAW)),
                    show_ratio(line.ratio(REFERENCE)),
                )
            };
            let verdict = match line.met() {
                Some(true) => " ✓",
                Some(false) => " ✗",
                None => "",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {}{} |",
                line.workload,
                show_side(line, RAW),
                show_side(line, REFERENCE),
                show_side(line, HATCHERY),
                vs_raw,
                vs_ref,
                line.target().show(),
                verdict
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken() -> Taken {
        Taken {
            date: "2026-11-24".to_owned(),
            cores: 2,
            cpu: "AMD\tEPYC".to_owned(),
            reps: 3,
            quick: false,
        }
    }

    #[test]
    fn a_saved_file_gives_back_its_run_and_rows() {
        let text = format!(
            "{}\n@row\tchannel 1M\tsmol-ct\tt:70:1\t-\tt:42:1\nround 1 of 1:\n",
            taken().encode()
        );
        let (back, rows) = parse_saved(&text).unwrap();
        assert_eq!(
            (back.date.as_str(), back.cores, back.cpu.as_str()),
            ("2026-11-24", 2, "AMD EPYC")
        );
        assert_eq!((back.reps, back.quick), (3, false));
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].workload.as_str(), rows[0].backend),
            ("channel 1M", "smol-ct")
        );
    }

    #[test]
    fn a_saved_file_without_its_run_line_is_refused() {
        let err = parse_saved("@row\tchannel 1M\tsmol-ct\tt:70:1\t-\tt:42:1\n").unwrap_err();
        assert!(err.contains("@taken"), "{err}");
        let bad = parse_saved("@taken\t2026-11-24\ttwo\tcpu\t3\tfull\n").unwrap_err();
        assert!(bad.contains("bad run line"), "{bad}");
    }

    #[test]
    fn networking_and_process_rows_are_judged_at_one_point_one_of_raw() {
        for row in [
            "ping_pong x20k",
            "echo 64x4 KiB x200",
            "accept x2k",
            "spawn_wait x50",
            "spawn_wait cpu x50",
            "spawn_wait in spawn x50",
        ] {
            for backend in backend::NAMES {
                assert!(
                    matches!(
                        Target::of(row, backend),
                        Target::Ratio { reference: false, max } if max == 1.10
                    ),
                    "{row} on {backend}"
                );
            }
        }
    }
}
