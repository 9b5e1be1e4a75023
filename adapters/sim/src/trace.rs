//! The trace of a simulated run: its events, each at its simulated time and with the
//! bytes it carried, hashed as they happen.

use std::fmt;
use std::time::Duration;

/// One step of a simulated run, as its [`Trace`] records it.
///
/// Tasks are numbered in the order they were spawned, from 1; the root future (the one
/// given to [`run`](crate::run)) is 0. A task of a nursery, a task handle's task and a
/// task an adapter would spawn are all tasks here.
///
/// # Examples
///
/// ```
/// use hatchery_sim::{Event, Sim};
///
/// let (_, trace) = Sim::new(7).record_events(true).run_traced(async {
///     hatchery::nursery(|n| async move {
///         n.spawn(async { Ok::<_, std::io::Error>(()) });
///         Ok(())
///     })
///     .await
///     .unwrap();
/// });
/// assert_eq!(trace.events().first(), Some(&Event::Poll(0))); // the root runs first
/// assert!(trace.events().contains(&Event::Spawn(1)));
/// assert!(trace.events().contains(&Event::Done(1)));
/// assert_eq!(trace.events().last(), Some(&Event::Done(0)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Event {
    /// A task was spawned (and is ready to run).
    Spawn(u64),
    /// A task was chosen among the ready ones, and polled.
    Poll(u64),
    /// A task was woken, and is ready to run (a wake-up of a task already ready is not
    /// an event: it changes nothing).
    Wake(u64),
    /// A task finished (its poll returned `Ready`).
    Done(u64),
    /// Nothing could run: the clock jumped to the earliest timer, now this long after
    /// the run started, and woke the timers due then.
    Jump(Duration),
    /// A message of the simulated network (a TCP segment or reset, a datagram; numbered
    /// in the order they were made) reached its destination.
    Deliver(u64),
    /// A datagram was lost: the link's loss, a partition, a host down, nothing bound
    /// where it went, or a full receive buffer.
    Lost(u64),
    /// A partition between two hosts (numbered in the order they were added, `main`
    /// first, from 0).
    Partition(u64, u64),
    /// A partition healed.
    Heal(u64, u64),
    /// The TCP connections between two hosts were reset.
    Reset(u64, u64),
    /// A host crashed.
    Crash(u64),
    /// A host restarted.
    Restart(u64),
    /// Messages from the first host to the second are cut (a one-way partition).
    PartitionOneway(u64, u64),
    /// A one-way partition healed.
    HealOneway(u64, u64),
    /// Messages between two hosts are held (both ways).
    Hold(u64, u64),
    /// Held messages between two hosts are released.
    Release(u64, u64),
    /// A host was paused: its tasks do not run.
    Pause(u64),
    /// A paused host was resumed.
    Resume(u64),
    /// An operation of a host's simulated disk ran (numbered in the order they ran; the
    /// bytes it wrote or read are the step's payload).
    Disk(u64),
    /// A fault of a host's simulated disk: a read error, a full disk, or, at a crash,
    /// writes that had not been synced lost (numbered as [`Disk`](Event::Disk)).
    DiskFault(u64),
}

/// One event of a run with the simulated time it happened at and the bytes it carried
/// (a TCP segment's or a datagram's data, a disk operation's bytes; empty for the
/// others): what [`Trace::steps`] keeps, and what the determinism check compares.
///
/// # Examples
///
/// ```
/// use hatchery::net::UdpSocket;
/// use hatchery_sim::{Event, Sim};
///
/// let (_, trace) = Sim::new(0).record_events(true).run_traced(async {
///     let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
///     a.send_to(b"one", b.local_addr().unwrap()).await.unwrap();
///     b.recv_from(&mut [0; 8]).await.unwrap();
/// });
/// let delivered = trace.steps().iter().find(|s| matches!(s.event, Event::Deliver(_))).unwrap();
/// assert_eq!(delivered.payload, b"one");
/// assert!(delivered.at > std::time::Duration::ZERO); // after the loopback's latency
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Step {
    /// The simulated time of the event, from the start of the run.
    pub at: Duration,
    /// The event.
    pub event: Event,
    /// The bytes it carried; empty if none.
    pub payload: Vec<u8>,
}

impl fmt::Display for Step {
    /// `at 1.2ms: Deliver(3) 5 bytes "hello"` (the bytes shown up to 32, escaped).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {:?}: {:?}", self.at, self.event)?;
        if !self.payload.is_empty() {
            let shown = &self.payload[..self.payload.len().min(32)];
            let more = if shown.len() < self.payload.len() {
                "..."
            } else {
                ""
            };
            write!(
                f,
                " {} bytes \"{}\"{more}",
                self.payload.len(),
                shown.escape_ascii()
            )?;
        }
        Ok(())
    }
}

/// What happened in one simulated run: a hash of its events in order, counts, and the
/// events themselves if they were kept ([`Sim::record_events`](crate::Sim::record_events)).
///
/// Two runs with the same seed of the same program have the same trace: that is what
/// the simulator promises, and [`hash`](Trace::hash) is the cheap way to check it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery_sim::Sim;
///
/// let scenario = || async {
///     hatchery::nursery(|n| async move {
///         for i in 1..=3u64 {
///             n.spawn(async move {
///                 hatchery::sleep(Duration::from_secs(i)).await;
///                 Ok::<_, std::io::Error>(())
///             });
///         }
///         Ok(())
///     })
///     .await
///     .unwrap();
/// };
/// let (_, first) = Sim::new(42).run_traced(scenario());
/// let (_, again) = Sim::new(42).run_traced(scenario());
/// assert_eq!(first.hash(), again.hash());
/// assert_eq!(first.elapsed(), Duration::from_secs(3)); // simulated, not real, time
/// assert_eq!(first.jumps(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    seed: u64,
    hash: u64,
    polls: u64,
    wakes: u64,
    spawns: u64,
    jumps: u64,
    messages: u64,
    elapsed: Duration,
    events: Vec<Event>,
    steps: Vec<Step>,
}

impl Trace {
    /// The seed of the run.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_, trace) = hatchery_sim::Sim::new(5).run_traced(async {});
    /// assert_eq!(trace.seed(), 5);
    /// ```
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A hash of every event of the run, in order, with the bytes it carried (a message's
    /// data, a disk operation's) and the simulated time it happened at (64-bit FNV-1a,
    /// stable across builds and platforms): equal for two runs of one program with one
    /// seed. Two runs that sent different bytes, or at other times, differ here even if
    /// their events are the same kinds with the same ids.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery_sim::Sim;
    ///
    /// let (_, a) = Sim::new(1).run_traced(async { hatchery::checkpoint().await });
    /// let (_, b) = Sim::new(1).run_traced(async { hatchery::checkpoint().await });
    /// assert_eq!(a.hash(), b.hash());
    /// ```
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// How many polls of tasks (the root's included) the run made.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_, trace) = hatchery_sim::Sim::new(0).run_traced(async {});
    /// assert_eq!(trace.polls(), 1); // the root, once
    /// ```
    pub fn polls(&self) -> u64 {
        self.polls
    }

    /// How many wake-ups of tasks that were not already ready the run had.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_, trace) = hatchery_sim::Sim::new(0).run_traced(hatchery::checkpoint());
    /// assert_eq!(trace.wakes(), 1); // the checkpoint yields once: the root is woken
    /// ```
    pub fn wakes(&self) -> u64 {
        self.wakes
    }

    /// How many tasks were spawned.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_, trace) = hatchery_sim::Sim::new(0).run_traced(async {
    ///     hatchery::nursery(|n| async move {
    ///         n.spawn(async { Ok::<_, std::io::Error>(()) });
    ///         n.spawn(async { Ok(()) });
    ///         Ok(())
    ///     })
    ///     .await
    ///     .unwrap()
    /// });
    /// assert_eq!(trace.spawns(), 2);
    /// ```
    pub fn spawns(&self) -> u64 {
        self.spawns
    }

    /// How many times the clock jumped to the next timer.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (_, trace) = hatchery_sim::Sim::new(0).run_traced(async {
    ///     hatchery::sleep(Duration::from_secs(1)).await;
    ///     hatchery::sleep(Duration::from_secs(1)).await;
    /// });
    /// assert_eq!(trace.jumps(), 2);
    /// ```
    pub fn jumps(&self) -> u64 {
        self.jumps
    }

    /// How many messages of the simulated network reached their destination: TCP
    /// segments (data, connection set-up, end of stream, resets) and datagrams.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::net::UdpSocket;
    ///
    /// let (_, trace) = hatchery_sim::Sim::new(0).run_traced(async {
    ///     let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    ///     let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    ///     a.send_to(b"one", b.local_addr().unwrap()).await.unwrap();
    ///     b.recv_from(&mut [0; 8]).await.unwrap();
    /// });
    /// assert_eq!(trace.messages(), 1);
    /// ```
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// The simulated time the run took.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let day = Duration::from_secs(86_400);
    /// let (_, trace) = hatchery_sim::Sim::new(0).run_traced(hatchery::sleep(day));
    /// assert_eq!(trace.elapsed(), day);
    /// ```
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The events of the run, in order, if they were kept
    /// ([`Sim::record_events`](crate::Sim::record_events)); else empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery_sim::{Event, Sim};
    ///
    /// let (_, kept) = Sim::new(0).record_events(true).run_traced(async {});
    /// assert_eq!(kept.events(), [Event::Poll(0), Event::Done(0)]);
    /// let (_, hashed) = Sim::new(0).run_traced(async {});
    /// assert!(hashed.events().is_empty());
    /// assert_eq!(kept.hash(), hashed.hash());
    /// ```
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The events of the run with their simulated times and bytes ([`Step`]), in
    /// order, if they were kept ([`Sim::record_events`](crate::Sim::record_events));
    /// else empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery_sim::{Event, Sim};
    ///
    /// let (_, trace) = Sim::new(0)
    ///     .record_events(true)
    ///     .run_traced(hatchery::sleep(Duration::from_secs(2)));
    /// let last = trace.steps().last().unwrap();
    /// assert_eq!((last.at, last.event), (Duration::from_secs(2), Event::Done(0)));
    /// ```
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The first step where this trace and `other` differ, with its index: each side's
    /// step there, `None` for a trace that ended before it. `None` if they are the same.
    /// Both must have kept their events.
    pub(crate) fn first_difference<'a>(
        &'a self,
        other: &'a Trace,
    ) -> Option<(usize, Option<&'a Step>, Option<&'a Step>)> {
        let n = self.steps.len().max(other.steps.len());
        (0..n).find_map(|i| {
            let (a, b) = (self.steps.get(i), other.steps.get(i));
            (a != b).then_some((i, a, b))
        })
    }
}

/// Hashes events as they happen, and keeps them if asked to.
pub(crate) struct Recorder {
    trace: Trace,
    keep: bool,
    /// The simulated time of the events now (the last jump's).
    now: Duration,
}

/// Two numbers as one, for the hash.
fn pair(a: u64, b: u64) -> u128 {
    (u128::from(a) << 64) | u128::from(b)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(hash: &mut u64, bytes: impl IntoIterator<Item = u8>) {
    for byte in bytes {
        *hash = (*hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
    }
}

impl Recorder {
    pub(crate) fn new(seed: u64, keep: bool) -> Recorder {
        Recorder {
            trace: Trace {
                seed,
                hash: FNV_OFFSET,
                polls: 0,
                wakes: 0,
                spawns: 0,
                jumps: 0,
                messages: 0,
                elapsed: Duration::ZERO,
                events: Vec::new(),
                steps: Vec::new(),
            },
            keep,
            now: Duration::ZERO,
        }
    }

    /// Records `event`, which carried no bytes.
    pub(crate) fn push(&mut self, event: Event) {
        self.push_with(event, &[]);
    }

    /// Records `event` with the bytes it carried. The time is in the hash through the
    /// jumps: every event between two jumps happens at the first one's time.
    pub(crate) fn push_with(&mut self, event: Event, payload: &[u8]) {
        let t = &mut self.trace;
        let (tag, value): (u8, u128) = match event {
            Event::Spawn(id) => {
                t.spawns += 1;
                (1, id.into())
            }
            Event::Poll(id) => {
                t.polls += 1;
                (2, id.into())
            }
            Event::Wake(id) => {
                t.wakes += 1;
                (3, id.into())
            }
            Event::Done(id) => (4, id.into()),
            Event::Jump(at) => {
                t.jumps += 1;
                self.now = at;
                (5, at.as_nanos())
            }
            Event::Deliver(id) => {
                t.messages += 1;
                (6, id.into())
            }
            Event::Lost(id) => (7, id.into()),
            Event::Partition(a, b) => (8, pair(a, b)),
            Event::Heal(a, b) => (9, pair(a, b)),
            Event::Reset(a, b) => (10, pair(a, b)),
            Event::Crash(host) => (11, host.into()),
            Event::Restart(host) => (12, host.into()),
            Event::PartitionOneway(a, b) => (13, pair(a, b)),
            Event::HealOneway(a, b) => (14, pair(a, b)),
            Event::Hold(a, b) => (15, pair(a, b)),
            Event::Release(a, b) => (16, pair(a, b)),
            Event::Pause(host) => (17, host.into()),
            Event::Resume(host) => (18, host.into()),
            Event::Disk(id) => (19, id.into()),
            Event::DiskFault(id) => (20, id.into()),
        };
        fnv(&mut t.hash, std::iter::once(tag).chain(value.to_le_bytes()));
        if !payload.is_empty() {
            let len = payload.len() as u64;
            fnv(
                &mut t.hash,
                len.to_le_bytes().into_iter().chain(payload.iter().copied()),
            );
        }
        if self.keep {
            t.events.push(event);
            t.steps.push(Step {
                at: self.now,
                event,
                payload: payload.to_vec(),
            });
        }
    }

    /// The trace so far, of a run that has simulated `elapsed`.
    pub(crate) fn finish(&mut self, elapsed: Duration) -> Trace {
        let events = std::mem::take(&mut self.trace.events);
        let steps = std::mem::take(&mut self.trace.steps);
        Trace {
            elapsed,
            events,
            steps,
            ..self.trace.clone()
        }
    }
}
