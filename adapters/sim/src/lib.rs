//! Runs [hatchery] structured concurrency on a deterministic simulator: one thread,
//! virtual time, and the order in which ready tasks run drawn from a seed.
//!
//! The simulator is one more runtime behind hatchery's seam ([`hatchery::rt::Runtime`]),
//! beside `hatchery-tokio` and `hatchery-smol`: code written on `hatchery` runs on it
//! unchanged. What it adds is a run you can replay:
//!
//! * **one thread**: every task is polled on the thread that called [`run`];
//! * **virtual time, always**: time stands still while any task can run; when none can,
//!   the clock jumps straight to the earliest timer (a sleep, a deadline, a retry's
//!   backoff) and wakes it. An hour of timeouts takes microseconds;
//! * **a seeded schedule**: whenever several tasks are ready, the one to poll next is
//!   drawn from a generator seeded with the run's seed. Another seed, another
//!   interleaving; the same seed, the same run: the same polls in the same order, the
//!   same clock, the same outcome. The run's [`Trace`] (task polls, wake-ups, spawns,
//!   clock jumps) has a [hash](Trace::hash) to compare two runs by;
//! * **the thread's own generator** (`fastrand`'s, which `hatchery::Backoff`'s jitter
//!   draws from) is seeded from the run's seed too, for the run;
//! * **a simulated network** ([`Net`]): [`hatchery::net`]'s TCP and UDP sockets, and
//!   host-name resolution, talk to an in-memory network of named hosts, each with its own
//!   address, over links whose latency and jitter are drawn from the seed. A test injects
//!   faults (partitions, resets, crashes and restarts of hosts, lossy links) or lets the
//!   seed draw them ([`Net::random_faults`]). Library code does not change: the same
//!   `hatchery::net` types route to this network when the simulator runs them.
//!
//! A test runs a scenario under many seeds to find the interleaving that breaks it, and
//! one seed to replay it: [`check_seeds`], or `#[hatchery::test(sim(seeds = 1000))]`,
//! which prints the failing seed and the line that replays it
//! (`HATCHERY_SIM_SEED=<seed> cargo test ...`).
//!
//! ```
//! use std::time::Duration;
//!
//! let (out, trace) = hatchery_sim::Sim::new(42).run_traced(async {
//!     hatchery::move_on_after(Duration::from_secs(3600), std::future::pending::<()>()).await
//! });
//! assert_eq!(out, None);
//! assert_eq!(trace.elapsed(), Duration::from_secs(3600)); // at once, in real time
//! ```
//!
//! # What is not simulated
//!
//! Whatever would make a run depend on more than its seed is refused, loudly:
//!
//! * **real threads**: blocking work ([`run_blocking`](hatchery::run_blocking),
//!   [`to_thread::run_sync`](hatchery::to_thread::run_sync), a blocking portal) panics
//!   in the task that asked, with a message that says why ([`Runtime::spawn_blocking`]
//!   is refused);
//! * **wake-ups and spawns from another thread** (a thread the test started itself,
//!   say): the run panics at its next step, naming what came from outside;
//! * **real sockets and descriptors**: the simulator has no reactor, so a socket of the
//!   system (`from_std`, a Unix socket, `hatchery::io::Async`, a child process's pipes)
//!   fails with an error of kind [`Unsupported`](std::io::ErrorKind::Unsupported) that
//!   names the runtime, `hatchery-sim`, and says it has a network of its own; a
//!   simulated socket has no descriptor (`AsFd` panics, saying so);
//! * **a deadlock** (every task blocked, no timer set): nothing could ever wake a task,
//!   so the run panics at once, with its seed and simulated time.
//!
//! Outside the simulation, and not caught: code that reads the real clock
//! (`std::time::Instant::now`), real files, or another random generator than the
//! thread's `fastrand`; and iteration over a `HashMap` with a random hasher, whose order
//! changes from one process to the next. Code under simulation reads time through
//! hatchery ([`hatchery::now`]).
//!
//! # When not to use this
//!
//! To run an application: it runs one thread, and its network is a simulation. Use `hatchery-tokio` or
//! `hatchery-smol`; the simulator is for tests, and its value is the same test body on
//! all three (`#[hatchery::test(sim(seeds = 100))]` runs it on tokio, smol and the
//! simulator).

#![forbid(unsafe_code)]

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use hatchery::rt::Runtime;

mod executor;
mod net;
mod trace;

pub use net::{net, Faults, Host, HostOutput, Link, Net};
pub use trace::{Event, Trace};

/// The environment variable that replays one seed: when it is set, [`run`] and
/// [`check_seeds`] run that seed alone.
///
/// # Examples
///
/// ```
/// assert_eq!(hatchery_sim::SEED_VAR, "HATCHERY_SIM_SEED");
/// ```
pub const SEED_VAR: &str = "HATCHERY_SIM_SEED";

/// The environment variable that sets how many seeds [`check_seeds`] tries (and so
/// `#[hatchery::test(sim(seeds = ..))]`), over the count in the code: more in a nightly
/// job, fewer on a slow machine.
///
/// # Examples
///
/// ```
/// assert_eq!(hatchery_sim::SEEDS_VAR, "HATCHERY_SIM_SEEDS");
/// ```
pub const SEEDS_VAR: &str = "HATCHERY_SIM_SEEDS";

/// A simulated run's settings: its seed, and whether its trace keeps its events.
///
/// # Examples
///
/// ```
/// use hatchery_sim::Sim;
///
/// let sum = Sim::new(3).run(hatchery::nursery(|n| async move {
///     let a = n.spawn(async { Ok::<_, std::io::Error>(1) });
///     let b = n.spawn(async { Ok(2) });
///     Ok(a.join().await? + b.join().await?)
/// }));
/// assert_eq!(sum.unwrap(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sim {
    seed: u64,
    record: bool,
    link: Link,
}

impl Sim {
    /// A run with this seed: the same seed, the same run.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(hatchery_sim::Sim::new(9).seed(), 9);
    /// ```
    pub fn new(seed: u64) -> Sim {
        Sim {
            seed,
            record: false,
            link: Link::default(),
        }
    }

    /// A run with the seed in [`SEED_VAR`] if it is set, else `default`.
    ///
    /// # Panics
    ///
    /// If the variable is set but is not a number (`u64`, decimal).
    ///
    /// # Examples
    ///
    /// ```
    /// // Unless HATCHERY_SIM_SEED says otherwise:
    /// # if std::env::var_os("HATCHERY_SIM_SEED").is_none() {
    /// assert_eq!(hatchery_sim::Sim::from_env_or(17).seed(), 17);
    /// # }
    /// ```
    pub fn from_env_or(default: u64) -> Sim {
        Sim::new(env_seed().unwrap_or(default))
    }

    /// The run's seed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(hatchery_sim::Sim::new(1).seed(), 1);
    /// ```
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Keeps every event of the run in its [`Trace`] ([`Trace::events`]), not only their
    /// hash and counts: for a look at an interleaving, at the cost of memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery_sim::{Event, Sim};
    ///
    /// let (_, trace) = Sim::new(0).record_events(true).run_traced(hatchery::checkpoint());
    /// assert_eq!(
    ///     trace.events(),
    ///     [Event::Poll(0), Event::Wake(0), Event::Poll(0), Event::Done(0)]
    /// );
    /// ```
    pub fn record_events(mut self, record: bool) -> Sim {
        self.record = record;
        self
    }

    /// The links between hosts of the simulated network, unless [`Net::set_link`] sets
    /// one between two of them: [`Link::default`] (1 ms of latency and up to 1 ms of
    /// jitter, nothing lost) unless this says otherwise. A host's loopback is not a link
    /// (it takes 20 to 30 µs).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::net::UdpSocket;
    /// use hatchery_sim::{Link, Sim};
    ///
    /// async fn echo() -> std::io::Result<()> {
    ///     let socket = UdpSocket::bind("0.0.0.0:7").await?;
    ///     let mut buf = [0; 64];
    ///     loop {
    ///         let (n, from) = socket.recv_from(&mut buf).await?;
    ///         socket.send_to(&buf[..n], from).await?;
    ///     }
    /// }
    ///
    /// let slow = Link { latency: Duration::from_millis(50), jitter: Duration::ZERO, ..Link::default() };
    /// let took = Sim::new(0).link(slow).run(async {
    ///     hatchery_sim::net().host("echo", echo);
    ///     let socket = UdpSocket::bind("0.0.0.0:0").await.unwrap();
    ///     let start = hatchery::now();
    ///     socket.send_to(b"ping", "198.18.0.2:7".parse().unwrap()).await.unwrap();
    ///     socket.recv_from(&mut [0; 64]).await.unwrap();
    ///     hatchery::now() - start
    /// });
    /// assert_eq!(took, Duration::from_millis(100)); // there and back
    /// ```
    pub fn link(mut self, link: Link) -> Sim {
        self.link = link;
        self
    }

    /// Runs `fut` as the root of a hatchery task tree on the simulator, and returns its
    /// output.
    ///
    /// When it returns, the tasks left (children of a nursery dropped from outside
    /// hatchery, C8) have been dropped.
    ///
    /// # Panics
    ///
    /// If `fut` panics, with its payload. If the run refuses something that cannot be
    /// simulated (a wake-up from another thread; see the [crate docs](crate)), or
    /// deadlocks, with a message that says so.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let slept = hatchery_sim::Sim::new(0).run(async {
    ///     let start = hatchery::now();
    ///     hatchery::sleep(Duration::from_secs(60)).await;
    ///     hatchery::now() - start
    /// });
    /// assert_eq!(slept, Duration::from_secs(60));
    /// ```
    pub fn run<F: Future>(&self, fut: F) -> F::Output {
        self.run_traced(fut).0
    }

    /// Like [`run`](Sim::run), and returns the run's [`Trace`] too.
    ///
    /// # Panics
    ///
    /// As [`run`](Sim::run).
    ///
    /// # Examples
    ///
    /// ```
    /// let (out, trace) = hatchery_sim::Sim::new(8).run_traced(async { 6 * 7 });
    /// assert_eq!(out, 42);
    /// assert_eq!((trace.seed(), trace.polls()), (8, 1));
    /// ```
    pub fn run_traced<F: Future>(&self, fut: F) -> (F::Output, Trace) {
        let link = self.link;
        executor::block_on(
            self.seed,
            self.record,
            |net| net.set_default_link(link),
            |runtime: std::sync::Arc<dyn Runtime>| hatchery::rt::enter_root(runtime, fut),
        )
    }
}

/// Runs `fut` as the root of a hatchery task tree on the simulator, with the seed in
/// [`SEED_VAR`] if it is set, else seed 0, and returns its output: the simulator's
/// `run`, as `hatchery_smol::run` is smol's (the conformance kit and
/// `#[hatchery::test(backends(mine = hatchery_sim::run))]` take it).
///
/// # Panics
///
/// As [`Sim::run`]; and if [`SEED_VAR`] is set but is not a number.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let out = hatchery_sim::run(async {
///     hatchery::fail_after(Duration::from_secs(5), std::future::pending::<()>()).await
/// });
/// assert!(out.is_err()); // five simulated seconds, at once
/// ```
pub fn run<F: Future>(fut: F) -> F::Output {
    Sim::from_env_or(0).run(fut)
}

/// The seed of the simulated run that the calling code runs in, if any.
///
/// # Examples
///
/// ```
/// assert_eq!(hatchery_sim::Sim::new(21).run(async { hatchery_sim::current_seed() }), Some(21));
/// assert_eq!(hatchery_sim::current_seed(), None);
/// ```
pub fn current_seed() -> Option<u64> {
    executor::current().map(|shared| shared.seed())
}

/// What a test run under many seeds returns: `()`, or a `Result` whose `Err` fails the
/// test (as `#[test]` functions return).
///
/// # Examples
///
/// ```
/// use hatchery_sim::Outcome;
///
/// assert!(!().is_failure());
/// assert!(Err::<(), _>("boom").is_failure());
/// ```
pub trait Outcome {
    /// Whether this outcome fails the test.
    fn is_failure(&self) -> bool;
}

impl Outcome for () {
    fn is_failure(&self) -> bool {
        false
    }
}

impl<T, E> Outcome for Result<T, E> {
    fn is_failure(&self) -> bool {
        self.is_err()
    }
}

/// Runs the scenario that `make` builds once for each seed from 0 to `seeds - 1`, each
/// on a fresh simulator, and stops at the first that fails (panics, or returns an
/// `Err`): it prints that seed and the line that replays it, then fails as the run did
/// (the panic goes on, the `Err` is returned). It returns the last run's outcome.
///
/// [`SEED_VAR`] set, it runs that seed alone (the replay); [`SEEDS_VAR`] set, it tries
/// that many seeds instead of `seeds`. `#[hatchery::test(sim(seeds = N))]` calls this.
///
/// # Panics
///
/// As the failing run did. If an environment variable above is set but is not a
/// number.
///
/// # Examples
///
/// A race that only some schedules lose: two tasks read a counter, yield, and write it
/// back plus one.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
///
/// async fn two_increments() -> u32 {
///     let counter = Arc::new(AtomicU32::new(0));
///     hatchery::nursery(|n| {
///         let counter = counter.clone();
///         async move {
///             for _ in 0..2 {
///                 let c = counter.clone();
///                 n.spawn(async move {
///                     let read = c.load(Ordering::SeqCst);
///                     hatchery::checkpoint().await; // another task may run here
///                     c.store(read + 1, Ordering::SeqCst);
///                     Ok::<_, std::io::Error>(())
///                 });
///             }
///             Ok(())
///         }
///     })
///     .await
///     .unwrap();
///     counter.load(Ordering::SeqCst)
/// }
///
/// // Some seeds lose an increment; `check_seeds` stops at the first and names it.
/// let lost = std::panic::catch_unwind(|| {
///     hatchery_sim::check_seeds(50, || async { assert_eq!(two_increments().await, 2) })
/// });
/// # if std::env::var_os("HATCHERY_SIM_SEED").is_none() {
/// assert!(lost.is_err());
/// # }
/// ```
pub fn check_seeds<Fut, M>(seeds: u64, mut make: M) -> Fut::Output
where
    M: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Outcome,
{
    let (first, count) = match env_seed() {
        Some(seed) => {
            eprintln!("hatchery-sim: replaying seed {seed} ({SEED_VAR})");
            (seed, 1)
        }
        None => (0, env_u64(SEEDS_VAR).unwrap_or(seeds).max(1)),
    };
    let mut last = None;
    for seed in (first..).take(usize::try_from(count).unwrap_or(usize::MAX)) {
        let sim = Sim::new(seed);
        match catch_unwind(AssertUnwindSafe(|| sim.run(make()))) {
            Ok(out) if !out.is_failure() => last = Some(out),
            Ok(out) => {
                report(seed, count);
                return out;
            }
            Err(panic) => {
                report(seed, count);
                resume_unwind(panic);
            }
        }
    }
    last.expect("at least one seed runs")
}

/// Prints the seed that failed and the line that replays it.
fn report(seed: u64, count: u64) {
    // libtest names a test's thread after the test (except with one test thread).
    let thread = std::thread::current();
    let test = thread.name().filter(|n| *n != "main");
    let package = std::env::var("CARGO_PKG_NAME").ok();
    let mut line = format!("{SEED_VAR}={seed} cargo test");
    if let Some(package) = package {
        line.push_str(&format!(" -p {package}"));
    }
    if let Some(test) = test {
        line.push_str(&format!(" -- {test} --exact"));
    }
    let of = match count {
        1 => String::new(),
        n => format!(" (of seeds 0..{n})"),
    };
    eprintln!("hatchery-sim: seed {seed} failed{of}; replay it with:\n    {line}");
}

/// The seed in [`SEED_VAR`], if set.
fn env_seed() -> Option<u64> {
    env_u64(SEED_VAR)
}

fn env_u64(var: &str) -> Option<u64> {
    let value = std::env::var(var).ok()?;
    match value.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("hatchery-sim: {var}={value:?} is not a number (a u64, in decimal)"),
    }
}
