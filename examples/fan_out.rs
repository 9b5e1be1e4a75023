//! A concurrency-limited fan-out, as anyio code writes it with `anyio.Semaphore`
//! (`async with semaphore:` around each fetch) and `CapacityLimiter`: start one task per
//! URL, but let at most N of them fetch at once. The results are collected behind a
//! `Lock` (anyio's "counters behind a lock").
//!
//! ```text
//! cargo run --example fan_out -- --backend tokio   # or tokio-current, smol
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hatchery::sync::{CapacityLimiter, Lock, Semaphore};
use hatchery::{nursery, sleep};

/// A pretend HTTP fetch.
async fn fetch_url(url: &str) -> anyhow::Result<usize> {
    sleep(Duration::from_millis(10)).await;
    Ok(url.len())
}

/// anyio: `rate_limited_fetch(urls, max_concurrent=5)` with a `Semaphore`.
async fn rate_limited_fetch(
    urls: Vec<String>,
    max_concurrent: usize,
) -> anyhow::Result<Vec<usize>> {
    let semaphore = Arc::new(Semaphore::new(max_concurrent));
    let results = Arc::new(Lock::new(Vec::new()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, pk) = (results.clone(), peak.clone());
    nursery(|n| async move {
        for url in urls {
            let (semaphore, results) = (semaphore.clone(), r.clone());
            let (in_flight, peak) = (in_flight.clone(), pk.clone());
            n.spawn(async move {
                let _permit = semaphore.acquire().await; // `async with semaphore:`
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let size = fetch_url(&url).await;
                in_flight.fetch_sub(1, Ordering::SeqCst); // failed or not, it is over
                results.lock().await.push(size?);
                anyhow::Ok(())
            });
        }
        Ok(())
    })
    .await
    .context("fan-out failed")?;
    println!("  at most {} fetches at once", peak.load(Ordering::SeqCst));
    let results = results.lock().await;
    Ok(results.clone())
}

async fn app() -> anyhow::Result<()> {
    let urls: Vec<String> = (0..50)
        .map(|i| format!("https://example.com/{i}"))
        .collect();

    println!("50 fetches of 10 ms, at most 5 at once (Semaphore):");
    let start = Instant::now();
    let sizes = rate_limited_fetch(urls.clone(), 5).await?;
    println!(
        "  {} results in {:?} (about 10 rounds of 10 ms)",
        sizes.len(),
        start.elapsed()
    );

    println!("the same with a CapacityLimiter, widened from 5 to 25 half-way:");
    let limiter = Arc::new(CapacityLimiter::new(5));
    let start = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let (lim, d) = (limiter.clone(), done.clone());
    nursery(|n| async move {
        for url in urls {
            let (lim, d) = (lim.clone(), d.clone());
            n.spawn(async move {
                let _token = lim.acquire().await;
                fetch_url(&url).await?;
                if d.fetch_add(1, Ordering::SeqCst) + 1 == 25 {
                    lim.set_total_tokens(25); // wakes 20 waiters at once
                }
                anyhow::Ok(())
            });
        }
        Ok(())
    })
    .await
    .context("fan-out failed")?;
    println!(
        "  {} fetches in {:?}; tokens now {:?}",
        done.load(Ordering::SeqCst),
        start.elapsed(),
        limiter.statistics()
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
