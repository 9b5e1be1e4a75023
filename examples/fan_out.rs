//! A concurrency-limited fan-out, as anyio code writes it with `anyio.Semaphore`
//! (`async with semaphore:` around each fetch) and `CapacityLimiter`: start one task per
//! URL, but let at most N of them fetch at once. The results are collected behind a plain
//! `std::sync::Mutex`: anyio's "counters behind a lock" needs an async lock (hatchery's
//! `Lock`) only when the holder awaits while holding it.
//!
//! ```text
//! cargo run --example fan_out -- --backend tokio   # or tokio-current, smol
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use hatchery::sync::{CapacityLimiter, LimiterStatistics, Semaphore};
use hatchery::{now, nursery, sleep};

/// A pretend HTTP fetch.
async fn fetch_url(url: &str) -> anyhow::Result<usize> {
    sleep(Duration::from_millis(10)).await;
    Ok(url.len())
}

/// The sizes fetched (in completion order), and the most fetches that ran at once.
struct Fetched {
    sizes: Vec<usize>,
    peak: usize,
}

/// anyio: `rate_limited_fetch(urls, max_concurrent=5)` with a `Semaphore`.
async fn rate_limited_fetch(urls: Vec<String>, max_concurrent: usize) -> anyhow::Result<Fetched> {
    let semaphore = Arc::new(Semaphore::new(max_concurrent));
    // A std Mutex, not hatchery's `Lock`: it is held only for a `push`, never across an
    // `.await`, so no task ever waits for it while holding it, and an async lock would
    // only add a suspension point (and a cancellation point) to every push.
    let results = Arc::new(Mutex::new(Vec::new()));
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
                let size = size?;
                results.lock().unwrap().push(size);
                anyhow::Ok(())
            });
        }
        Ok(())
    })
    .await
    .context("fan-out failed")?;
    let peak = peak.load(Ordering::SeqCst);
    let sizes = std::mem::take(&mut *results.lock().unwrap());
    Ok(Fetched { sizes, peak })
}

/// What both fan-outs did.
struct Summary {
    semaphore: Fetched,
    semaphore_time: Duration,
    limited: usize,
    limited_time: Duration,
    limiter: LimiterStatistics,
}

async fn app() -> anyhow::Result<Summary> {
    let urls: Vec<String> = (0..50)
        .map(|i| format!("https://example.com/{i}"))
        .collect();

    let start = now();
    let semaphore = rate_limited_fetch(urls.clone(), 5).await?;
    let semaphore_time = now() - start;

    let limiter = Arc::new(CapacityLimiter::new(5));
    let start = now();
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
    let (limited, limited_time) = (done.load(Ordering::SeqCst), now() - start);
    Ok(Summary {
        semaphore,
        semaphore_time,
        limited,
        limited_time,
        limiter: limiter.statistics(),
    })
}

fn main() -> anyhow::Result<()> {
    let s = examples::run(app())?;
    println!("50 fetches of 10 ms, at most 5 at once (Semaphore):");
    println!("  at most {} fetches at once", s.semaphore.peak);
    println!(
        "  {} results in {:?} (about 10 rounds of 10 ms)",
        s.semaphore.sizes.len(),
        s.semaphore_time
    );
    println!("the same with a CapacityLimiter, widened from 5 to 25 half-way:");
    println!(
        "  {} fetches in {:?}; tokens now {:?}",
        s.limited, s.limited_time, s.limiter
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    /// Every URL fetched once, never more than 5 at a time, and the time that takes: 10
    /// rounds of 10 ms; then 5 rounds of 5 and one of 25.
    #[hatchery::test(virtual_time)]
    async fn runs() {
        let s = super::app().await.unwrap();
        let mut sizes = s.semaphore.sizes;
        sizes.sort();
        let mut expected: Vec<usize> = (0..50)
            .map(|i| format!("https://example.com/{i}").len())
            .collect();
        expected.sort();
        assert_eq!(sizes, expected);
        assert_eq!(s.semaphore.peak, 5);
        assert_eq!(s.semaphore_time, MS * 100);
        assert_eq!(s.limited, 50);
        assert_eq!(s.limited_time, MS * 60);
        assert_eq!(s.limiter.total_tokens, 25);
        assert_eq!(s.limiter.borrowed_tokens, 0);
        assert_eq!(hatchery::testing::elapsed(), MS * 160);
    }
}
