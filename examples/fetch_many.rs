//! Fetch 200 items from a slow, flaky service: asyncio's and anyio's everyday pattern, end
//! to end.
//!
//! * at most 5 requests in flight (`hatchery::map`, with backpressure: an id is taken only
//!   when a slot is free);
//! * a timeout on each call (`fail_after`), so a hung call costs 40 ms, not forever;
//! * retries with exponential backoff and jitter (`hatchery::retry`, on hatchery's clock),
//!   only for errors worth retrying;
//! * a fallback value when an item still fails;
//! * a summary at the end, checked: the example fails if more than 5 calls ever ran at
//!   once, or if a call was left running.
//!
//! The service is simulated in-process: each call takes 2 to 20 ms; some calls fail
//! ("unavailable"), some hang, and a few items do not exist. The outcome of each call is a
//! fixed function of the item and the attempt, so every run prints the same counts.
//!
//! ```text
//! cargo run --example fetch_many -- --backend tokio   # or tokio-current, smol
//! ```

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hatchery::backon::ExponentialBuilder;
use hatchery::{fail_after, map, now, retry, sleep, Elapsed};

const ITEMS: u32 = 200;
const IN_FLIGHT: usize = 5;
const TIMEOUT: Duration = Duration::from_millis(40);
const ATTEMPTS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FetchError {
    /// The service said no (worth retrying).
    Unavailable,
    /// The call took longer than `TIMEOUT` (worth retrying).
    Timeout,
    /// The item does not exist (final).
    NotFound,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FetchError::Unavailable => "unavailable",
            FetchError::Timeout => "timed out",
            FetchError::NotFound => "not found",
        })
    }
}

impl std::error::Error for FetchError {}

impl From<Elapsed> for FetchError {
    fn from(_: Elapsed) -> Self {
        FetchError::Timeout
    }
}

/// The simulated remote service.
#[derive(Default)]
struct Remote {
    /// Calls so far, per item.
    attempts: Mutex<Vec<u32>>,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A fixed pseudo-random number for (item, attempt): splitmix64.
fn dice(id: u32, attempt: u32) -> u64 {
    let mut z = (u64::from(id) << 32 | u64::from(attempt)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Counts a call in flight until it is dropped (finished or cancelled by its timeout).
struct InFlight<'a>(&'a Remote);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Remote {
    async fn get(&self, id: u32) -> Result<String, FetchError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            attempts[id as usize] += 1;
            attempts[id as usize]
        };
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let _in_flight = InFlight(self);

        let roll = dice(id, attempt);
        sleep(Duration::from_millis(2 + roll % 19)).await;
        if id % 41 == 40 {
            return Err(FetchError::NotFound);
        }
        // Items 96 and 193 are stuck: every call hangs.
        let stuck = id % 97 == 96;
        match if stuck { 20 } else { (roll >> 8) % 100 } {
            0..=14 => Err(FetchError::Unavailable),
            15..=21 => {
                sleep(Duration::from_secs(3600)).await; // hangs
                unreachable!("the timeout cancels a hung call")
            }
            _ => Ok(format!("item-{id}")),
        }
    }
}

/// One item: a call with a timeout, retried with backoff for errors worth retrying.
async fn fetch(
    remote: Arc<Remote>,
    retries: Arc<AtomicUsize>,
    id: u32,
) -> Result<String, FetchError> {
    retry(|| {
        let remote = remote.clone();
        async move { fail_after(TIMEOUT, remote.get(id)).await? }
    })
    .max_attempts(ATTEMPTS)
    .when(|e| *e != FetchError::NotFound)
    .backoff(
        ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(5))
            .with_max_delay(Duration::from_millis(40))
            .with_jitter()
            .without_max_times(),
    )
    .notify(move |_, _| {
        retries.fetch_add(1, Ordering::SeqCst);
    })
    .await
}

/// What `app` did, counted.
#[derive(Debug)]
struct Summary {
    items: Vec<String>,
    first_try: usize,
    /// The items that got a fallback value, and why.
    fallbacks: Vec<(u32, FetchError)>,
    calls: usize,
    retries: usize,
    max_in_flight: usize,
    /// Calls still running after `map` returned (none, if the timeouts did their job).
    left_running: usize,
    time: Duration,
}

impl Summary {
    fn fallbacks_for(&self, what: FetchError) -> usize {
        self.fallbacks.iter().filter(|(_, e)| *e == what).count()
    }
}

async fn app() -> Summary {
    let t0 = now();
    let remote = Arc::new(Remote {
        attempts: Mutex::new(vec![0; ITEMS as usize]),
        ..Remote::default()
    });
    let retries = Arc::new(AtomicUsize::new(0));

    let results = map(IN_FLIGHT, 0..ITEMS, |id| {
        let (remote, retries) = (remote.clone(), retries.clone());
        async move { (id, fetch(remote, retries, id).await) }
    })
    .join()
    .await;

    let attempts = remote.attempts.lock().unwrap().clone();
    let first_try = results
        .iter()
        .filter(|(id, r)| r.is_ok() && attempts[*id as usize] == 1)
        .count();

    // The fallback value for an item that could not be fetched.
    let mut fallbacks: Vec<(u32, FetchError)> = Vec::new();
    let items: Vec<String> = results
        .into_iter()
        .map(|(id, r)| {
            r.unwrap_or_else(|e| {
                fallbacks.push((id, e));
                format!("item-{id} (fallback)")
            })
        })
        .collect();

    Summary {
        items,
        first_try,
        fallbacks,
        calls: remote.calls.load(Ordering::SeqCst),
        retries: retries.load(Ordering::SeqCst),
        max_in_flight: remote.max_in_flight.load(Ordering::SeqCst),
        left_running: remote.in_flight.load(Ordering::SeqCst),
        time: now() - t0,
    }
}

fn main() -> anyhow::Result<()> {
    println!("fetching {ITEMS} items, at most {IN_FLIGHT} at a time, {TIMEOUT:?} per call, up to {ATTEMPTS} attempts");
    let s = examples::run(app());
    let fetched = s.items.len() - s.fallbacks.len();
    println!();
    println!("summary");
    println!("  items:              {}", s.items.len());
    println!("  fetched:            {fetched}");
    println!("    at the 1st try:   {}", s.first_try);
    println!("    after retries:    {}", fetched - s.first_try);
    println!("  fallback values:    {}", s.fallbacks.len());
    println!(
        "    not found:        {}",
        s.fallbacks_for(FetchError::NotFound)
    );
    println!(
        "    timed out:        {}",
        s.fallbacks_for(FetchError::Timeout)
    );
    println!(
        "    unavailable:      {}",
        s.fallbacks_for(FetchError::Unavailable)
    );
    println!("  calls:              {}", s.calls);
    println!("  retries:            {}", s.retries);
    println!("  most in flight:     {}", s.max_in_flight);
    println!("  time:               {} ms", s.time.as_millis());
    println!("  e.g.:               {}, {}", s.items[0], s.items[40]);

    anyhow::ensure!(s.items.len() == ITEMS as usize, "lost items");
    anyhow::ensure!(
        s.max_in_flight <= IN_FLIGHT,
        "more than {IN_FLIGHT} calls in flight"
    );
    let left = s.left_running;
    anyhow::ensure!(left == 0, "{left} calls still running after `map` returned");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{FetchError, ITEMS};
    use hatchery::testing::elapsed;

    /// The whole example on every backend, on virtual time. Each call's outcome is a fixed
    /// function of the item and the attempt, so the counts are exact whatever the order;
    /// the time depends on the backoff's random jitter.
    #[hatchery::test(virtual_time)]
    async fn runs() {
        let s = super::app().await;
        assert_eq!(s.items.len(), ITEMS as usize);
        assert_eq!(s.items[0], "item-0");
        assert_eq!(s.items[40], "item-40 (fallback)"); // not found
        assert_eq!(s.first_try, 157);
        assert_eq!(s.items.len() - s.fallbacks.len() - s.first_try, 37);
        let mut fallbacks = s.fallbacks.clone();
        fallbacks.sort_by_key(|f| f.0);
        let (nf, to) = (FetchError::NotFound, FetchError::Timeout);
        // Items 40, 81, 122, 163 do not exist; 96 and 193 always hang.
        assert_eq!(
            fallbacks,
            [
                (40, nf),
                (81, nf),
                (96, to),
                (122, nf),
                (163, nf),
                (193, to)
            ]
        );
        assert_eq!((s.calls, s.retries), (252, 52));
        assert_eq!(s.max_in_flight, 5);
        assert_eq!(s.left_running, 0);
        assert_eq!(s.time, elapsed());
    }
}
