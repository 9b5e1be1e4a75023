//! Fail fast, report everything: the first task of a nursery that fails cancels its
//! siblings (and the body), the nursery waits for all of them, then returns every error in
//! the order they happened as `NurseryError::Failed`. `?` turns that into `anyhow::Error`.
//!
//! ```text
//! cargo run --example fail_fast -- --backend tokio   # or tokio-current, smol
//! ```

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use hatchery::{now, nursery, sleep, NurseryError};

const MS: Duration = Duration::from_millis(1);

/// Prints when a task's future is dropped before it finished: that is what cancellation
/// looks like from inside (the future is dropped at the point where it was waiting).
struct Guard {
    name: String,
    t0: Instant,
    finished: bool,
}

impl Guard {
    fn new(name: impl Into<String>, t0: Instant) -> Guard {
        Guard {
            name: name.into(),
            t0,
            finished: false,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.finished {
            println!(
                "  [{:>3} ms] {}: cancelled",
                (now() - self.t0).as_millis(),
                self.name
            );
        }
    }
}

/// A step that takes `ms` milliseconds, then succeeds or fails.
async fn step(name: &'static str, ms: u32, fail: bool, t0: Instant) -> anyhow::Result<()> {
    let mut guard = Guard::new(name, t0);
    sleep(MS * ms).await;
    guard.finished = true;
    println!(
        "  [{:>3} ms] {name}: {}",
        (now() - t0).as_millis(),
        if fail { "FAILED" } else { "done" }
    );
    if fail {
        return Err(anyhow!("{name}: connection reset"));
    }
    Ok(())
}

/// Parses every input in parallel and sums the numbers. Two inputs are bad: both parse
/// errors happen at once, before the good jobs get far, and both are reported (in the
/// order they happened: on several threads, either may come first).
async fn sum_inputs(inputs: &[&'static str], t0: Instant) -> anyhow::Result<u32> {
    let total = nursery(|n| async move {
        let mut handles = Vec::new();
        for (i, input) in inputs.iter().copied().enumerate() {
            handles.push(n.spawn(async move {
                // Fails right away, at the task's first poll, for a bad input.
                let v: u32 = input
                    .parse()
                    .with_context(|| format!("job {i}: bad input {input:?}"))?;
                let mut guard = Guard::new(format!("job {i} ({input})"), t0);
                sleep(MS * 50).await; // the real work
                guard.finished = true;
                Ok(v)
            }));
        }
        let mut sum = 0;
        for h in handles {
            // Under a sibling's failure the body is cancelled here, not handed a JoinError.
            sum += h.join().await?;
        }
        Ok::<_, anyhow::Error>(sum)
    })
    .await?; // NurseryError<anyhow::Error> -> anyhow::Error
    Ok(total)
}

/// What each section ended with: the errors, and when the nursery returned.
#[derive(Debug, Default)]
struct Summary {
    one_failure: Vec<String>,
    one_failure_at: Duration,
    several: Vec<String>,
    several_at: Duration,
    sum: u32,
}

async fn app() -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let t0 = now(); // hatchery's clock: virtual in the test
    println!("1. one task fails at 20 ms; its siblings and the body are cancelled");
    let r = nursery(|n| async move {
        n.spawn(step("download", 100, false, t0));
        n.spawn(step("resize", 60, false, t0));
        n.spawn(step("upload", 20, true, t0));
        let _guard = Guard::new("body", t0);
        sleep(MS * 1000).await;
        Ok::<_, anyhow::Error>(())
    })
    .await;
    match r {
        Ok(()) => println!("  nursery: ok"),
        Err(NurseryError::Failed(errors)) => {
            summary.one_failure_at = now() - t0;
            println!(
                "  [{:>3} ms] nursery returned {} error(s):",
                (now() - t0).as_millis(),
                errors.len()
            );
            for e in &errors {
                println!("    - {e}");
                summary.one_failure.push(e.to_string());
            }
        }
        Err(NurseryError::Cancelled) => println!("  nursery: cancelled"),
    }

    println!("2. several tasks fail; every error is reported, in the order they happened");
    let t0 = now();
    match sum_inputs(&["42", "x", "7", "-"], t0).await {
        Ok(sum) => println!("  sum = {sum}"),
        Err(e) => {
            // `?` kept the whole NurseryError: print it, or downcast to walk the errors.
            summary.several_at = now() - t0;
            println!(
                "  [{:>3} ms] sum_inputs failed: {e}",
                (now() - t0).as_millis()
            );
            if let Some(NurseryError::Failed(errors)) =
                e.downcast_ref::<NurseryError<anyhow::Error>>()
            {
                for (k, e) in errors.iter().enumerate() {
                    println!("    error {}: {e:#}", k + 1);
                    summary.several.push(format!("{e:#}"));
                }
            }
        }
    }

    println!("3. no failure: the value comes back");
    summary.sum = sum_inputs(&["1", "2", "3"], now()).await?;
    println!("  sum = {}", summary.sum);
    Ok(summary)
}

fn main() -> anyhow::Result<()> {
    examples::run(app()).map(drop)
}

#[cfg(test)]
mod tests {
    use super::MS;
    use hatchery::testing::elapsed;
    use std::time::Duration;

    /// The errors each nursery returned, and when: at the first failure, not when the
    /// slowest sibling would have finished (it was cancelled).
    #[hatchery::test(virtual_time)]
    async fn runs() {
        let mut s = super::app().await.unwrap();
        assert_eq!(s.one_failure, ["upload: connection reset"]);
        assert_eq!(s.one_failure_at, MS * 20); // not 100 ms: download was cancelled
        s.several.sort(); // jobs 1 and 3 fail at once: either may come first
        let bad = "invalid digit found in string";
        assert_eq!(
            s.several,
            [
                format!("job 1: bad input \"x\": {bad}"),
                format!("job 3: bad input \"-\": {bad}"),
            ]
        );
        assert_eq!(s.several_at, Duration::ZERO); // the good jobs' 50 ms were cut
        assert_eq!(s.sum, 6);
        assert_eq!(elapsed(), MS * 70); // 20 + 0 + 50
    }
}
