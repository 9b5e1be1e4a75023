//! A link checker over an in-memory fake web: crawl from a start page and report every
//! broken link. It puts the book's patterns together:
//!
//! * spawning from children: each fetch spawns the fetches of the links it finds, and
//!   the nursery ends when no fetch is left;
//! * at most `in_flight` fetches at a time (a `Semaphore`, raced against the stop signal
//!   with a plain select, as leaf waits may be), a timeout on each (`fail_after`), and
//!   retries with a seeded backoff for transient errors (`retry`);
//! * a deadline on the whole crawl, told apart from a stop by `CancelScope::fail`;
//! * a graceful stop on a signal (an `Event`): no new fetch starts, the fetches in flight
//!   get a grace period, then they are cancelled. A watcher next to the crawl does that,
//!   and an inner nursery cancels it once the crawl is over;
//! * one writer task fed by a memory stream, which prints the progress every second of
//!   the runtime's clock (receiving with ticks);
//! * virtual-time tests: `cargo test -p examples --example link_check`.
//!
//! ```text
//! cargo run --example link_check -- --backend tokio [--stop-after-ms 300] [--deadline-ms 1500]
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::future::or;
use hatchery::backon::ExponentialBuilder;
use hatchery::sync::{Event, Semaphore};
use hatchery::{
    fail_after, memory_stream, move_on_at, now, nursery, retry, sleep, CancelScope, Elapsed,
    Nursery, ReceiveStream, SendStream,
};

const MS: Duration = Duration::from_millis(1);
const TICK: Duration = Duration::from_secs(1);
#[cfg(test)]
const EXACT: Duration = Duration::from_nanos(4_080_917_690);

/// How a page of the fake web answers.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    Ok,
    /// Fails with a 503 on the first `n` attempts, then answers.
    Flaky(u32),
    /// Always answers with this HTTP status.
    Status(u16),
    /// Never answers.
    Hangs,
}

/// url -> (latency, links, behaviour). A URL that is not in the map is a 404.
#[derive(Default)]
struct Web {
    pages: HashMap<String, (Duration, Vec<String>, Behaviour)>,
    attempts: Mutex<HashMap<String, u32>>,
}

impl Web {
    /// `links`: the page's links, separated by spaces.
    fn add(&mut self, url: &str, latency_ms: u32, links: &str, behaviour: Behaviour) {
        let links = links.split_whitespace().map(String::from).collect();
        self.pages
            .insert(url.into(), (MS * latency_ms, links, behaviour));
    }

    async fn get(&self, url: &str) -> Result<Vec<String>, FetchError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let a = attempts.entry(url.to_string()).or_default();
            *a += 1;
            *a
        };
        let Some((latency, links, behaviour)) = self.pages.get(url) else {
            sleep(MS * 20).await;
            return Err(FetchError::Status(404));
        };
        sleep(*latency).await;
        match *behaviour {
            Behaviour::Flaky(n) if attempt <= n => Err(FetchError::Status(503)),
            Behaviour::Ok | Behaviour::Flaky(_) => Ok(links.clone()),
            Behaviour::Status(code) => Err(FetchError::Status(code)),
            Behaviour::Hangs => std::future::pending().await,
        }
    }
}

/// 26 pages: a few broken links, flaky pages, a page that hangs, and a slow corner.
fn sample_web() -> Web {
    use Behaviour::*;
    let mut web = Web::default();
    web.add("/", 50, "/docs /blog /about /missing", Ok);
    web.add("/about", 30, "/ /team /jobs", Ok);
    web.add("/team", 40, "/about", Flaky(2));
    web.add("/jobs", 40, "/jobs/closed", Ok);
    web.add("/jobs/closed", 10, "", Status(410));
    web.add("/docs", 80, "/docs/1 /docs/2 /docs/3 /docs/4 /docs/5", Ok);
    for i in 1..=5 {
        let api = format!("/docs/{i}/api");
        let links = format!("/docs/{} {api} /", i + 1);
        web.add(&format!("/docs/{i}"), 60 + 10 * i, &links, Ok);
        web.add(&api, 120, "", if i == 3 { Flaky(5) } else { Ok });
    }
    web.add("/docs/6", 30, "/docs/1", Hangs);
    web.add("/blog", 70, "/blog/a /blog/b /blog/c /blog/archive", Ok);
    web.add("/blog/a", 45, "/blog /blog/b", Ok);
    web.add("/blog/b", 45, "/blog/gone", Flaky(1));
    web.add("/blog/c", 500, "/blog/c/comments", Ok);
    web.add("/blog/c/comments", 300, "", Status(500));
    web.add(
        "/blog/archive",
        200,
        "/blog/archive/2019 /blog/archive/2020",
        Ok,
    );
    web.add("/blog/archive/2019", 700, "/blog/archive/2018", Ok);
    web.add("/blog/archive/2020", 700, "", Ok);
    web.add("/blog/archive/2018", 700, "", Ok);
    web
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FetchError {
    Status(u16),
    Timeout,
}

impl From<Elapsed> for FetchError {
    fn from(_: Elapsed) -> Self {
        FetchError::Timeout
    }
}

#[derive(Debug, Clone)]
struct Config {
    in_flight: usize,
    fetch_timeout: Duration,
    attempts: usize,
    deadline: Duration,
    grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            in_flight: 4,
            fetch_timeout: MS * 1000,
            attempts: 3,
            deadline: MS * 10_000,
            grace: MS * 100,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Ending {
    #[default]
    Complete,
    Deadline,
    Stopped,
}

#[derive(Debug, Default)]
struct Report {
    ending: Ending,
    ok: BTreeSet<String>,
    /// url -> (linked from, error).
    broken: BTreeMap<String, (Option<String>, FetchError)>,
    retried: usize,
    /// Found, never fetched (deadline or stop).
    unchecked: BTreeSet<String>,
    /// Cancelled in flight (deadline, or the end of the grace period).
    interrupted: BTreeSet<String>,
    elapsed: Duration,
    ticks: usize,
    /// Every fetch slot came back.
    slots_back: bool,
}

/// One fetch's outcome, for the writer: (url, linked from, attempts, result).
type Outcome = (String, Option<String>, u32, Result<(), FetchError>);

/// What every fetch task shares.
struct Crawl {
    web: Arc<Web>,
    cfg: Config,
    limit: Arc<Semaphore>,
    stop: Arc<Event>,
    seen: Mutex<HashSet<String>>,
    started: Mutex<HashSet<String>>,
    results: SendStream<Outcome>,
}

/// Fetches `url`, with a timeout per attempt and retries for transient errors. `None` if
/// the stop signal came before a fetch slot.
async fn check(crawl: &Crawl, url: &str) -> Option<(u32, Result<Vec<String>, FetchError>)> {
    // A slot, unless the stop signal comes first: two leaf waits, raced in this task.
    let stop = async {
        crawl.stop.wait().await;
        None
    };
    let _permit = or(async { Some(crawl.limit.acquire().await) }, stop).await?;
    if crawl.stop.is_set() {
        return None; // the slot came at the same time as the signal
    }
    crawl.started.lock().unwrap().insert(url.to_string());
    let mut attempts = 0;
    let result = retry(|| {
        attempts += 1;
        async { fail_after(crawl.cfg.fetch_timeout, crawl.web.get(url)).await? }
    })
    .max_attempts(crawl.cfg.attempts)
    .when(|e| matches!(e, FetchError::Timeout | FetchError::Status(500..)) && !crawl.stop.is_set())
    // A seeded jitter: the same delays on every run.
    .backoff(
        ExponentialBuilder::new()
            .with_min_delay(MS * 50)
            .with_max_delay(MS * 400)
            .with_jitter()
            .with_jitter_seed(7)
            .without_max_times(),
    )
    .await;
    Some((attempts, result))
}

/// Spawns the check of `url`, unless it was seen already; the check visits the links it
/// finds. A plain function: it spawns, and the task it spawns calls it again.
fn visit(n: &Nursery<anyhow::Error>, crawl: &Arc<Crawl>, url: String, from: Option<String>) {
    if !crawl.seen.lock().unwrap().insert(url.clone()) {
        return;
    }
    let (n2, crawl) = (n.clone(), crawl.clone());
    n.spawn(async move {
        let Some((attempts, result)) = check(&crawl, &url).await else {
            return Ok(()); // stopped before it started
        };
        for link in result.iter().flatten() {
            if !crawl.stop.is_set() {
                visit(&n2, &crawl, link.clone(), Some(url.clone()));
            }
        }
        crawl
            .results
            .send((url, from, attempts, result.map(drop)))
            .await?;
        Ok(())
    });
}

/// The one writer: records every outcome, and prints the progress every second.
async fn writer(rx: ReceiveStream<Outcome>, limit: Arc<Semaphore>, slots: usize) -> Report {
    let (start, mut report) = (now(), Report::default());
    let record = |(url, from, attempts, result): Outcome, report: &mut Report| {
        report.retried += usize::from(attempts > 1);
        match result {
            Ok(()) => drop(report.ok.insert(url)),
            Err(e) => drop(report.broken.insert(url, (from, e))),
        }
    };
    let mut next_tick = start + TICK;
    loop {
        // What is there already: a tick that is due would not let `recv` take it (so a
        // plain `recv` loop will not do here; see the book's "Receiving with ticks").
        while let Ok(outcome) = rx.try_recv() {
            record(outcome, &mut report);
        }
        match move_on_at(next_tick, rx.recv()).await {
            Some(Ok(outcome)) => record(outcome, &mut report),
            Some(Err(_)) => break, // every sender is gone: the crawl is over
            None => {
                report.ticks += 1;
                let (done, broken) = (report.ok.len() + report.broken.len(), report.broken.len());
                let in_flight = slots - limit.available_permits();
                let t = (now() - start).as_secs_f64();
                println!("[{t:>4.1}s] checked {done:>2}, broken {broken}, in flight {in_flight}");
                next_tick += TICK;
                if next_tick <= now() {
                    next_tick = now() + TICK; // a late tick: skip the missed ones
                }
            }
        }
    }
    report.elapsed = now() - start;
    report
}

/// Checks every page reachable from `start`; `stop` ends the crawl gracefully.
async fn link_check(
    web: Arc<Web>,
    start: &str,
    cfg: Config,
    stop: Arc<Event>,
) -> anyhow::Result<Report> {
    let (tx, rx) = memory_stream::<Outcome>(16);
    let limit = Arc::new(Semaphore::new(cfg.in_flight));
    let crawl = Arc::new(Crawl {
        web,
        cfg: cfg.clone(),
        limit: limit.clone(),
        stop: stop.clone(),
        seen: Mutex::default(),
        started: Mutex::default(),
        results: tx,
    });
    let start = start.to_string();
    let report = nursery(|n| async move {
        let (l, slots) = (limit.clone(), cfg.in_flight);
        let writer = n.spawn(async move { Ok(writer(rx, l, slots).await) });
        let scope = CancelScope::new().with_timeout(cfg.deadline);
        let cancel = scope.handle();
        let c = crawl.clone();
        // The crawl, and next to it a watcher: on the stop signal, a grace period, then
        // cancel the crawl. The watcher never ends by itself: cancel it with its nursery
        // once the crawl is over.
        let finished = nursery(|helpers| async move {
            helpers.spawn(async move {
                stop.wait().await;
                sleep(cfg.grace).await;
                cancel.cancel();
                Ok(())
            });
            let finished = scope
                .fail(nursery(|n| async move {
                    visit(&n, &c, start, None);
                    Ok(())
                }))
                .await;
            helpers.cancel();
            Ok::<_, anyhow::Error>(finished)
        })
        .await?;
        let ending = match finished {
            Err(_elapsed) => Ending::Deadline,
            Ok(None) => Ending::Stopped, // cancelled by the watcher
            Ok(Some(crawled)) => {
                crawled?;
                if crawl.stop.is_set() {
                    Ending::Stopped
                } else {
                    Ending::Complete
                }
            }
        };
        let seen = std::mem::take(&mut *crawl.seen.lock().unwrap());
        let started = std::mem::take(&mut *crawl.started.lock().unwrap());
        drop(crawl); // the last sender: the writer sees the end of the stream
        let mut report = writer.join().await?;
        report.ending = ending;
        report.slots_back = limit.available_permits() == cfg.in_flight;
        report.unchecked = seen.difference(&started).cloned().collect();
        report.interrupted = started
            .into_iter()
            .filter(|u| !report.ok.contains(u) && !report.broken.contains_key(u))
            .collect();
        Ok::<_, anyhow::Error>(report)
    })
    .await?;
    Ok(report)
}

fn print(report: &Report) {
    println!("link check: {:?} after {:?}", report.ending, report.elapsed);
    println!("  ok: {}, retried: {}", report.ok.len(), report.retried);
    println!("  broken: {}", report.broken.len());
    for (url, (from, e)) in &report.broken {
        println!(
            "    {url} ({e:?}), linked from {}",
            from.as_deref().unwrap_or("-")
        );
    }
    println!("  unchecked: {:?}", report.unchecked);
    println!("  interrupted: {:?}", report.interrupted);
}

/// Crawls the sample web from "/", with a stop signal after `stop_after` if given.
async fn crawl(cfg: Config, stop_after: Option<Duration>) -> anyhow::Result<Report> {
    let stop = Arc::new(Event::new());
    nursery(|n| async move {
        // The signal: a timer here, Ctrl-C in a real program. A helper next to the
        // work: keep its handle, and cancel it when the work is done.
        let signal = stop_after.map(|after| {
            let stop = stop.clone();
            n.spawn(async move {
                sleep(after).await;
                println!("-- stop signal --");
                stop.set();
                Ok(())
            })
        });
        let report = link_check(Arc::new(sample_web()), "/", cfg, stop).await?;
        if let Some(signal) = signal {
            signal.cancel();
        }
        Ok::<_, anyhow::Error>(report)
    })
    .await
    .map_err(Into::into)
}

fn main() -> anyhow::Result<()> {
    let args = examples::Args::parse(&["--stop-after-ms", "--deadline-ms"]);
    let stop_after: Option<u32> = args.get("--stop-after-ms").map(str::parse).transpose()?;
    let mut cfg = Config::default();
    if let Some(ms) = args.get("--deadline-ms") {
        cfg.deadline = MS * ms.parse()?;
    }
    let report = args.run(crawl(cfg, stop_after.map(|ms| MS * ms)))?;
    print(&report);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hatchery::testing::elapsed;

    /// On every backend: outcomes that do not depend on the order of the fetches.
    #[hatchery::test(virtual_time)]
    async fn complete_crawl() {
        let report = crawl(Config::default(), None).await.unwrap();
        assert_eq!(report.ending, Ending::Complete);
        let broken: Vec<_> = report
            .broken
            .iter()
            .map(|(u, (_, e))| (u.as_str(), *e))
            .collect();
        assert_eq!(
            broken,
            [
                ("/blog/c/comments", FetchError::Status(500)),
                ("/blog/gone", FetchError::Status(404)),
                ("/docs/3/api", FetchError::Status(503)),
                ("/docs/6", FetchError::Timeout),
                ("/jobs/closed", FetchError::Status(410)),
                ("/missing", FetchError::Status(404)),
            ]
        );
        assert_eq!(report.ok.len(), 22);
        assert!(report.unchecked.is_empty() && report.interrupted.is_empty());
        assert!(report.slots_back);
        assert_eq!(report.elapsed, elapsed());
        assert!(report.ticks >= 3);
    }

    /// Exact times need one thread: on several, the fetches get their slots in another
    /// order from run to run.
    #[hatchery::test(virtual_time, backends(tokio_current))]
    async fn complete_crawl_exact_time() {
        let report = crawl(Config::default(), None).await.unwrap();
        assert_eq!(report.ending, Ending::Complete);
        assert_eq!(elapsed(), EXACT);
    }

    #[hatchery::test(virtual_time)]
    async fn deadline_cuts_the_crawl() {
        let cfg = Config {
            deadline: MS * 1500,
            ..Config::default()
        };
        let report = crawl(cfg, None).await.unwrap();
        assert_eq!(report.ending, Ending::Deadline);
        assert_eq!(elapsed(), MS * 1500);
        assert!(!report.interrupted.is_empty());
        assert!(report.slots_back);
    }

    #[hatchery::test(virtual_time)]
    async fn stop_is_graceful() {
        let report = crawl(Config::default(), Some(MS * 300)).await.unwrap();
        assert_eq!(report.ending, Ending::Stopped);
        assert!(elapsed() <= MS * 400, "{:?}", elapsed()); // the signal, then the grace
        assert!(!report.unchecked.is_empty());
        assert!(report.slots_back);
    }
}
