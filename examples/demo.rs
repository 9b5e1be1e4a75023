//! A short tour of hatchery: nurseries, `start`, task handles, timeouts, failure,
//! cancellation and shielding. Runs in well under a second.
//!
//! ```text
//! cargo run --release --example demo                      # smol
//! cargo run --release --example demo -- --backend tokio   # or tokio-current
//! ```

use std::fmt::Display;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use hatchery::{fail_after, move_on_after, now, nursery, shield, sleep, CancelScope, NurseryError};

const MS: Duration = Duration::from_millis(1);

/// Prints a line with the time since the tour began, on hatchery's clock (virtual in the
/// test), and keeps it: the lines are what the tour returns.
#[derive(Clone)]
struct Log(Instant, Arc<Mutex<Vec<String>>>);

impl Log {
    fn say(&self, msg: impl Display) {
        let line = format!("[{:>3} ms] {msg}", (now() - self.0).as_millis());
        println!("{line}");
        self.1.lock().unwrap().push(line);
    }
}

/// A pretend network call: waits `ms` milliseconds, then returns `ms`.
async fn fetch(ms: u64) -> anyhow::Result<u64> {
    sleep(MS * ms as u32).await;
    Ok(ms)
}

/// The tour; returns the timed lines it printed.
async fn app() -> anyhow::Result<Vec<String>> {
    let log = Log(now(), Arc::default());

    println!("1. A nursery runs children in parallel and returns when all are done");
    let l = log.clone();
    let sum = nursery(|n| async move {
        let a = n.spawn(fetch(30)); // TaskHandle<u64>
        let b = n.spawn(fetch(20));
        n.spawn(async move {
            l.say("a child whose handle was dropped still runs");
            Ok(())
        });
        Ok::<_, anyhow::Error>(a.join().await? + b.join().await?)
    })
    .await?;
    log.say(format_args!(
        "sum = {sum}, after 30 ms rather than 50: the children ran at the same time"
    ));

    println!("2. start() waits until a child says it is ready");
    let l = log.clone();
    nursery(|n| async move {
        let port = n
            .start(|ready| async move {
                sleep(MS * 5).await; // bind a socket...
                ready.started(8080);
                sleep(Duration::MAX).await; // ...and serve forever
                Ok(())
            })
            .await?;
        l.say(format_args!("server is listening on port {port}"));
        n.cancel(); // stop the server: the nursery cancels and waits for it
        Ok::<_, anyhow::Error>(())
    })
    .await?;
    log.say("server stopped");

    println!("3. Timeouts: a fallback value, or an error");
    let v = move_on_after(MS * 10, fetch(1000))
        .await
        .transpose()?
        .unwrap_or(0);
    log.say(format_args!(
        "move_on_after(10 ms, 1 s call) -> fallback {v}"
    ));
    let r = fail_after(MS * 10, fetch(1000)).await;
    log.say(format_args!(
        "fail_after(10 ms, 1 s call) -> {:?}",
        r.map_err(|e| e.to_string())
    ));

    println!("4. The first failure cancels the siblings; every error is reported");
    let r = nursery(|n| async move {
        n.spawn(async move {
            fetch(500).await?;
            println!("never printed");
            Ok(())
        });
        // Two tasks fail at their first poll. The nursery keeps both errors, in the order
        // it saw them; on several threads that order varies from run to run, as the two
        // failed at the same moment.
        n.spawn(async move { Err::<(), _>(anyhow!("bad input")) });
        n.spawn(async move { Err::<(), _>(anyhow!("disk full")) });
        Ok(())
    })
    .await;
    match r {
        Err(NurseryError::Failed(errors)) => {
            let mut errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            errors.sort(); // the same output on every run
            log.say(format_args!(
                "nursery failed with {errors:?} (sorted); the 500 ms sibling was cancelled"
            ));
        }
        other => anyhow::bail!("expected two errors, got {other:?}"),
    }

    println!("5. Cancel a scope from another task; shielded cleanup still runs");
    let scope = CancelScope::new();
    let handle = scope.handle();
    let l = log.clone();
    let work = async move {
        sleep(MS * 15).await;
        // Cleanup that must finish: the cancellation (at 20 ms) waits for it.
        shield(async move {
            l.say("shielded cleanup: starting");
            sleep(MS * 15).await;
            l.say("shielded cleanup: done");
        })
        .await;
        sleep(Duration::MAX).await; // the cancellation lands here, at the next .await
        "finished"
    };
    let (l, h) = (log.clone(), handle.clone());
    let out = nursery(|n| async move {
        n.spawn(async move {
            sleep(MS * 20).await;
            l.say("cancelling the work");
            h.cancel();
            Ok::<_, anyhow::Error>(())
        });
        Ok(scope.run(work).await)
    })
    .await?;
    log.say(format_args!(
        "scope.run -> {out:?}: the scope caught its cancellation (cancel_called={}, cancelled_caught={})",
        handle.cancel_called(),
        handle.cancelled_caught()
    ));
    let lines = std::mem::take(&mut *log.1.lock().unwrap());
    Ok(lines)
}

fn main() -> anyhow::Result<()> {
    examples::run(app()).map(drop)
}

#[cfg(test)]
mod tests {
    /// The whole tour on virtual time: the values, the order of the events, and when each
    /// happened, to the millisecond.
    #[hatchery::test(virtual_time)]
    async fn runs() {
        let lines = super::app().await.unwrap();
        assert_eq!(
            lines,
            [
                "[  0 ms] a child whose handle was dropped still runs",
                "[ 30 ms] sum = 50, after 30 ms rather than 50: the children ran at the same time",
                "[ 35 ms] server is listening on port 8080",
                "[ 35 ms] server stopped",
                "[ 45 ms] move_on_after(10 ms, 1 s call) -> fallback 0",
                "[ 55 ms] fail_after(10 ms, 1 s call) -> Err(\"deadline elapsed\")",
                "[ 55 ms] nursery failed with [\"bad input\", \"disk full\"] (sorted); the 500 ms sibling was cancelled",
                "[ 70 ms] shielded cleanup: starting",
                "[ 75 ms] cancelling the work",
                "[ 85 ms] shielded cleanup: done",
                "[ 85 ms] scope.run -> None: the scope caught its cancellation (cancel_called=true, cancelled_caught=true)",
            ]
        );
        assert_eq!(hatchery::testing::elapsed(), super::MS * 85);
    }
}
