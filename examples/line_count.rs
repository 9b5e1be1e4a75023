//! Files and child processes, the same code on every backend: write a directory of
//! files (`hatchery::fs`), list it as a stream, count each file's lines with `wc -l`
//! fed through its stdin (`hatchery::process`, at most four at once), write a report
//! and read it back; then a slow program cut by a deadline, terminated and reaped.
//!
//! ```text
//! cargo run --example line_count -- --backend tokio   # or tokio-current, smol
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_lite::StreamExt;
use hatchery::fs::{self, File};
use hatchery::process::Command;
use hatchery::{map, move_on_after};

/// What the run found (printed as it happens; returned for the test).
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
struct Summary {
    /// `(file name, lines)`, sorted by name.
    counts: Vec<(String, usize)>,
    /// The report, as read back.
    report: String,
    /// Whether `sleep 60` was cut by its deadline.
    cut: bool,
    /// How long the cut run took, termination and reaping included.
    cut_after: Duration,
}

/// The files: `notes-NN.txt` with NN + 1 lines each.
const FILES: usize = 12;

async fn app() -> anyhow::Result<Summary> {
    // A directory of its own (the tests run the app on three backends at once).
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let name = format!("hatchery-line-count-{}-{run}", std::process::id());
    let dir = std::env::temp_dir().join(name);
    fs::create_dir_all(&dir).await?;
    let summary = count_in(&dir).await;
    fs::remove_dir_all(&dir).await?; // also when counting failed
    summary
}

async fn count_in(dir: &std::path::Path) -> anyhow::Result<Summary> {
    for i in 0..FILES {
        let text: String = (0..=i).map(|l| format!("line {l} of file {i}\n")).collect();
        fs::write(dir.join(format!("notes-{i:02}.txt")), text).await?;
    }

    // The directory as a stream of entries.
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut entries = fs::read_dir(dir).await?;
    while let Some(entry) = entries.next().await {
        paths.push(entry?.path());
    }
    paths.sort();

    // Each file read with hatchery::fs and fed to `wc -l` through its stdin while its
    // stdout is read; at most four children at once; the first failure cancels the rest.
    let mut counts = map(4, paths, |path| async move {
        let text = fs::read(&path).await?;
        let out = Command::new("wc").arg("-l").run_with_input(&text).await?;
        let lines = String::from_utf8_lossy(&out.stdout).trim().parse()?;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        anyhow::Ok((name, lines))
    })
    .try_join()
    .await
    .context("counting failed")?;
    counts.sort();
    for (name, lines) in &counts {
        println!("{name}: {lines} lines");
    }

    // A report written piece by piece, closed (flushed: the bytes are written, or an
    // error says why not), and read back.
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let mut report = File::create(dir.join("report.txt")).await?;
    for (name, lines) in &counts {
        report
            .write_all(format!("{name}\t{lines}\n").as_bytes())
            .await?;
    }
    report
        .write_all(format!("total\t{total}\n").as_bytes())
        .await?;
    report.close().await?;
    let report = fs::read_to_string(dir.join("report.txt")).await?;
    println!("report: {} lines, total {total}", report.lines().count());

    // A program slower than its deadline: SIGTERM when the deadline passes, then reaped
    // before `move_on_after` returns. Nothing is left running, and no zombie.
    let start = Instant::now();
    let mut slow = Command::new("sleep");
    slow.arg("60").terminate_grace(Duration::from_secs(5));
    let cut = move_on_after(Duration::from_millis(100), slow.run())
        .await
        .is_none();
    let cut_after = start.elapsed();
    println!("sleep 60 with a deadline of 100 ms: cut {cut}, terminated and reaped");

    Ok(Summary {
        counts,
        report,
        cut,
        cut_after,
    })
}

fn main() -> anyhow::Result<()> {
    examples::run(app())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// Every file counted once, right; the report as written; the slow child cut, and
    /// well before its 60 s (SIGTERM ends `sleep` at once).
    #[hatchery::test]
    async fn runs() {
        let s = super::app().await.unwrap();
        assert_eq!(s.counts.len(), super::FILES);
        for (i, (name, lines)) in s.counts.iter().enumerate() {
            assert_eq!(name, &format!("notes-{i:02}.txt"));
            assert_eq!(*lines, i + 1);
        }
        let total: usize = (1..=super::FILES).sum();
        assert!(
            s.report.ends_with(&format!("total\t{total}\n")),
            "{}",
            s.report
        );
        assert_eq!(s.report.lines().count(), super::FILES + 1);
        assert!(s.cut);
        assert!(s.cut_after < Duration::from_secs(30), "{:?}", s.cut_after);
    }
}
