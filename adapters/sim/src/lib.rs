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
//!   clock jumps, messages, disk operations and faults, with their bytes and times) has
//!   a [hash](Trace::hash) to compare two runs by, and the determinism check
//!   ([`Seeds::check_determinism`], [`CHECK_VAR`]) compares them event by event;
//! * **the thread's own generator** (`fastrand`'s, which `hatchery::Backoff`'s jitter
//!   draws from) is seeded from the run's seed too, for the run;
//! * **local children**: the children of a [`Local`](hatchery::Local) nursery, which
//!   need not be `Send`, are tasks of the simulator like any other (the simulator is the
//!   thread's local runtime for the whole run, every host included): drawn by the seed,
//!   replayed by it, and dropped with their host when it crashes (see [`Sim::run`]);
//! * **a simulated network** ([`Net`]): [`hatchery::net`]'s TCP and UDP sockets, and
//!   host-name resolution, talk to an in-memory network of named hosts, each with its own
//!   address, over links whose latency and jitter are drawn from the seed. A test injects
//!   faults (partitions, resets, crashes and restarts of hosts, lossy links) or lets the
//!   seed draw them ([`Net::random_faults`]). Library code does not change: the same
//!   `hatchery::net` types route to this network when the simulator runs them;
//! * **a simulated disk per host** ([`Disk`]): `hatchery::fs` works on it, with latency,
//!   writes that a crash of the host loses unless synced (torn at sector boundaries),
//!   and read errors and full disks drawn from the seed.
//!
//! A test runs a scenario under many seeds to find the interleaving that breaks it, and
//! one seed to replay it: [`check_seeds`] (or [`Seeds`], with a time limit and the
//! determinism check), or `#[hatchery::test(sim(seeds = 1000))]`, which prints the failing
//! seed and the whole command that replays it (`HATCHERY_SIM_SEED=<seed> cargo test -p
//! <package> --features <..> --test <target> -- <test> --exact`).
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
//! # What is refused, and what is not caught
//!
//! What reaches the simulator through hatchery but cannot be simulated is refused,
//! loudly:
//!
//! * **real threads**: blocking work ([`run_blocking`](hatchery::run_blocking),
//!   [`to_thread::run_sync`](hatchery::to_thread::run_sync), a blocking portal) panics
//!   in the task that asked, with a message that says why ([`Runtime::spawn_blocking`]
//!   is refused);
//! * **wake-ups and spawns of hatchery tasks from another thread** (a thread the test
//!   started itself, say): the run panics at its next step, naming what came from
//!   outside (when nothing else could run meanwhile, it waits 200 ms of real time for such
//!   a wake-up before it calls the run a deadlock);
//! * **sockets, descriptors and files of the system** through hatchery (`from_std`, a
//!   Unix socket, `hatchery::io::Async`, a child process's pipes, `File::from_std`) fail
//!   with an error of kind [`Unsupported`](std::io::ErrorKind::Unsupported) that names the
//!   runtime, `hatchery-sim`, and says it has a network (or a file system) of its own; a
//!   simulated socket has no descriptor (`AsFd` panics, saying so);
//! * **tokio's own timers, sockets and spawn** fail with tokio's panic, to which the
//!   simulator adds a line that says what it means here;
//! * **a deadlock** (every task blocked, no timer set) and **a run past its time limit**
//!   ([`Sim::time_limit`]) panic, with the seed and the simulated time.
//!
//! What code does behind hatchery's back is not seen, and so not caught: the real clock
//! (`std::time::Instant::now`, `SystemTime::now`), `std::thread::sleep` and threads that
//! never touch hatchery, blocking `std::net` sockets and `std::fs` files, random
//! generators other than the thread's `fastrand`, and the iteration order of a `HashMap`
//! or `HashSet`, whose keys are random in each map (so the order changes between two runs
//! in one process, not only between processes). The determinism check catches such a
//! leak when it changes what a run does (the bytes sent, the events' order or times), and
//! the crate ships `simulation.clippy.toml`, a `disallowed-methods` list for clippy that
//! refuses those calls in a crate tested under simulation (the book's chapter *Simulation
//! testing* shows it).
//!
//! # When not to use this
//!
//! To run an application: it runs one thread, and its network is a simulation. Use `hatchery-tokio` or
//! `hatchery-smol`; the simulator is for tests, and its value is the same test body on
//! all three (`#[hatchery::test(sim(seeds = 100))]` runs it on tokio, smol and the
//! simulator).

#![forbid(unsafe_code)]

use std::future::Future;
use std::panic::resume_unwind;
use std::time::Duration;

use hatchery::rt::Runtime;

mod check;
mod disk;
mod executor;
mod net;
mod trace;

pub use check::{check_seeds, Outcome, Seeds};
pub use disk::Disk;
pub use net::{net, Faults, Host, HostOutput, Link, Net};
pub use trace::{Event, Step, Trace};

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

/// The environment variable that turns the determinism check of [`check_seeds`] on:
/// `1` (or `on`) checks a failing seed and 8 passing ones, a number `N` checks the
/// failing seed and `N` passing ones (spread over the seeds tried), `0` (or `off`)
/// none. A checked seed runs again (a failing one twice again), keeping its whole
/// trace, and each replay must be the same run ([`Seeds::check_determinism`]).
///
/// # Examples
///
/// ```
/// assert_eq!(hatchery_sim::CHECK_VAR, "HATCHERY_SIM_CHECK");
/// ```
pub const CHECK_VAR: &str = "HATCHERY_SIM_CHECK";

/// The environment variable that sets the limit of simulated time of every run of
/// [`run`] and [`check_seeds`], in seconds (`90`, `0.5`), over the limit in the code: a
/// run whose clock would pass it fails, saying so ([`Sim::time_limit`]).
///
/// # Examples
///
/// ```
/// assert_eq!(hatchery_sim::TIME_LIMIT_VAR, "HATCHERY_SIM_TIME_LIMIT");
/// ```
pub const TIME_LIMIT_VAR: &str = "HATCHERY_SIM_TIME_LIMIT";

/// A simulated run's settings: its seed, its network's links, its time limit, and
/// whether its trace keeps its events.
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
    disk: Disk,
    time_limit: Option<Duration>,
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
            disk: Disk::default(),
            time_limit: None,
        }
    }

    /// A run with the seed in [`SEED_VAR`] if it is set, else `default`, and the time
    /// limit in [`TIME_LIMIT_VAR`] if it is set.
    ///
    /// # Panics
    ///
    /// If a variable is set but is not a number.
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
        let sim = Sim::new(env_seed().unwrap_or(default));
        match env_time_limit() {
            Some(limit) => sim.time_limit(limit),
            None => sim,
        }
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

    /// Keeps every event of the run in its [`Trace`] ([`Trace::events`],
    /// [`Trace::steps`]), not only their hash and counts: for a look at an interleaving,
    /// at the cost of memory.
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

    /// The most simulated time the run may take: a run whose clock would pass it (its
    /// next timer is due later) fails with a panic that says so, with its seed. A
    /// retry loop that never gives up, a heartbeat that never stops, tasks that wake
    /// each other forever on timers: without a limit, such a run goes on as long as
    /// the machine lets it, since simulated time costs nothing. None by default
    /// ([`TIME_LIMIT_VAR`] sets one for [`run`] and [`check_seeds`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery_sim::Sim;
    ///
    /// let heartbeat = async {
    ///     loop {
    ///         hatchery::sleep(Duration::from_secs(1)).await; // never ends
    ///     }
    /// };
    /// let sim = Sim::new(0).time_limit(Duration::from_secs(60));
    /// let run = std::panic::AssertUnwindSafe(|| sim.run(heartbeat));
    /// let failed = std::panic::catch_unwind(run).unwrap_err();
    /// let message = failed.downcast_ref::<String>().unwrap();
    /// assert!(message.contains("passed its limit of simulated time, 60s"), "{message}");
    /// ```
    pub fn time_limit(mut self, limit: Duration) -> Sim {
        self.time_limit = Some(limit);
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

    /// The disk of every host, unless [`Net::set_disk`] sets one for a host:
    /// [`Disk::default`] (20 to 100 µs a call, 1 ms more a sync, no faults, half of
    /// what is not synced kept in a crash) unless this says otherwise. Each host has a
    /// disk of its own, behind `hatchery::fs`, which its restarts keep.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery_sim::{Disk, Sim};
    ///
    /// let strict = Disk { crash_keeps: 0.0, ..Disk::default() }; // a crash loses every write not synced
    /// let text = Sim::new(0).disk(strict).run(async {
    ///     hatchery::fs::write("/greeting", "hello").await?;
    ///     hatchery::fs::read_to_string("/greeting").await
    /// });
    /// assert_eq!(text.unwrap(), "hello");
    /// ```
    pub fn disk(mut self, disk: Disk) -> Sim {
        self.disk = disk;
        self
    }

    /// Runs `fut` as the root of a hatchery task tree on the simulator, and returns its
    /// output.
    ///
    /// The simulator is the thread's local runtime ([`hatchery::rt::LocalRuntime`])
    /// meanwhile: the children of a [`Local`](hatchery::Local) nursery, which need not
    /// be `Send`, are its tasks, scheduled by the seed as the others are.
    ///
    /// When it returns, the tasks left (children of a nursery dropped from outside
    /// hatchery, C8) have been dropped.
    ///
    /// # Panics
    ///
    /// If `fut` panics, with its payload. If the run refuses something that cannot be
    /// simulated (a wake-up from another thread; see the [crate docs](crate)),
    /// deadlocks, or passes its [time limit](Sim::time_limit), with a message that says
    /// so.
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
    ///
    /// Local children, and the order in which they run, drawn from the seed:
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use hatchery::{checkpoint, Local, Nursery};
    /// use hatchery_sim::Sim;
    ///
    /// async fn order() -> Vec<u32> {
    ///     let log = Rc::new(RefCell::new(Vec::new())); // not `Send`
    ///     let l = log.clone();
    ///     Local::nursery(|n: Nursery<(), Local>| async move {
    ///         for i in 0..4 {
    ///             let l = l.clone();
    ///             n.spawn(async move {
    ///                 checkpoint().await;
    ///                 l.borrow_mut().push(i);
    ///                 Ok(())
    ///             });
    ///         }
    ///         Ok(())
    ///     })
    ///     .await
    ///     .unwrap();
    ///     log.take()
    /// }
    ///
    /// assert_eq!(Sim::new(5).run(order()), Sim::new(5).run(order())); // the same seed, the same order
    /// let orders: std::collections::BTreeSet<_> = (0..20).map(|seed| Sim::new(seed).run(order())).collect();
    /// assert!(orders.len() > 1); // other seeds, other orders
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
        let (out, trace) = self.run_caught(fut);
        match out {
            Ok(out) => (out, trace),
            Err(panic) => resume_unwind(panic),
        }
    }

    /// Runs `fut`, and returns its output or its panic, with the trace either way.
    pub(crate) fn run_caught<F: Future>(&self, fut: F) -> (std::thread::Result<F::Output>, Trace) {
        executor::block_on(
            executor::Setup {
                seed: self.seed,
                record: self.record,
                time_limit: self.time_limit,
                link: self.link,
                disk: self.disk,
            },
            |runtime: std::sync::Arc<dyn Runtime>| hatchery::rt::enter_root(runtime, fut),
        )
    }
}

/// Runs `fut` as the root of a hatchery task tree on the simulator, with the seed in
/// [`SEED_VAR`] if it is set, else seed 0 (and the time limit in [`TIME_LIMIT_VAR`] if
/// it is set), and returns its output: the simulator's `run`, as `hatchery_smol::run`
/// is smol's (the conformance kit and
/// `#[hatchery::test(backends(mine = hatchery_sim::run))]` take it).
///
/// # Panics
///
/// As [`Sim::run`]; and if [`SEED_VAR`] or [`TIME_LIMIT_VAR`] is set but is not a
/// number.
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

/// The seed in [`SEED_VAR`], if set.
fn env_seed() -> Option<u64> {
    env_u64(SEED_VAR)
}

/// The time limit in [`TIME_LIMIT_VAR`], if set.
fn env_time_limit() -> Option<Duration> {
    let value = std::env::var(TIME_LIMIT_VAR).ok()?;
    match value.trim().parse::<f64>() {
        Ok(secs) if secs >= 0.0 && secs.is_finite() => Some(Duration::from_secs_f64(secs)),
        _ => panic!(
            "hatchery-sim: {TIME_LIMIT_VAR}={value:?} is not a number of seconds (`90`, `0.5`)"
        ),
    }
}

fn env_u64(var: &str) -> Option<u64> {
    let value = std::env::var(var).ok()?;
    match value.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("hatchery-sim: {var}={value:?} is not a number (a u64, in decimal)"),
    }
}

/// Not public API: what `#[hatchery::test(sim)]` expands to.
#[doc(hidden)]
pub mod __private {
    pub use crate::check::{Replay, Target};
}
