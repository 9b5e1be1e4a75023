//! A short tour of hatchery: nurseries, `start`, task handles, timeouts, failure,
//! cancellation and shielding. Runs in well under a second.
//!
//! ```text
//! cargo run --release --example demo                      # smol
//! cargo run --release --example demo -- --backend tokio   # or tokio-current
//! ```

use std::time::{Duration, Instant};

use anyhow::anyhow;
use hatchery::{fail_after, move_on_after, nursery, shield, sleep, CancelScope, NurseryError};

const MS: Duration = Duration::from_millis(1);

/// A pretend network call: waits `ms` milliseconds, then returns `ms`.
async fn fetch(ms: u64) -> anyhow::Result<u64> {
    sleep(MS * ms as u32).await;
    Ok(ms)
}

async fn app() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let at = move || format!("[{:>3} ms]", t0.elapsed().as_millis());

    println!("1. A nursery runs children in parallel and returns when all are done");
    let sum = nursery(|n| async move {
        let a = n.spawn(fetch(30)); // TaskHandle<u64>
        let b = n.spawn(fetch(20));
        n.spawn(async move {
            println!("{} a child whose handle was dropped still runs", at());
            Ok(())
        });
        Ok::<_, anyhow::Error>(a.join().await? + b.join().await?)
    })
    .await?;
    println!(
        "{} sum = {sum}, after 30 ms rather than 50: the children ran at the same time",
        at()
    );

    println!("2. start() waits until a child says it is ready");
    nursery(|n| async move {
        let port = n
            .start(|ready| async move {
                sleep(MS * 5).await; // bind a socket...
                ready.started(8080);
                sleep(Duration::MAX).await; // ...and serve forever
                Ok(())
            })
            .await?;
        println!("{} server is listening on port {port}", at());
        n.cancel(); // stop the server: the nursery cancels and waits for it
        Ok::<_, anyhow::Error>(())
    })
    .await?;
    println!("{} server stopped", at());

    println!("3. Timeouts: a fallback value, or an error");
    let v = move_on_after(MS * 10, fetch(1000))
        .await
        .transpose()?
        .unwrap_or(0);
    println!("{} move_on_after(10 ms, 1 s call) -> fallback {v}", at());
    let r = fail_after(MS * 10, fetch(1000)).await;
    println!(
        "{} fail_after(10 ms, 1 s call) -> {:?}",
        at(),
        r.map_err(|e| e.to_string())
    );

    println!("4. The first failure cancels the siblings; every error is reported");
    let r = nursery(|n| async move {
        n.spawn(async move {
            fetch(500).await?;
            println!("never printed");
            Ok(())
        });
        // Two tasks fail at their first poll; both errors are kept, in the order they happened.
        n.spawn(async move { Err::<(), _>(anyhow!("bad input")) });
        n.spawn(async move { Err::<(), _>(anyhow!("disk full")) });
        Ok(())
    })
    .await;
    if let Err(NurseryError::Failed(errors)) = &r {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        println!(
            "{} nursery failed with {errors:?}; the 500 ms sibling was cancelled",
            at()
        );
    }

    println!("5. Cancel a scope from another task; shielded cleanup still runs");
    let scope = CancelScope::new();
    let handle = scope.handle();
    let work = async move {
        sleep(MS * 15).await;
        // Cleanup that must finish: the cancellation (at 20 ms) waits for it.
        shield(async move {
            println!("{} shielded cleanup: starting", at());
            sleep(MS * 15).await;
            println!("{} shielded cleanup: done", at());
        })
        .await;
        sleep(Duration::MAX).await; // the cancellation lands here, at the next .await
        "finished"
    };
    let out = nursery(|n| async move {
        n.spawn(async move {
            sleep(MS * 20).await;
            println!("{} cancelling the work", at());
            handle.cancel();
            Ok::<_, anyhow::Error>(())
        });
        Ok(scope.run(work).await)
    })
    .await?;
    println!(
        "{} scope.run -> {out:?}: the scope caught its cancellation",
        at()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    examples::run(app())
}

#[cfg(test)]
mod tests {
    #[hatchery::test(virtual_time)]
    async fn runs() {
        super::app().await.unwrap();
    }
}
