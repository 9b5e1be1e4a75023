//! The simulated network: named hosts, TCP and UDP between them over links with latency,
//! and the faults a test injects (or the seed draws).
//!
//! # Invariants
//!
//! 1. Everything here is in the executor's state, under its one lock, and every choice
//!    (a latency, a loss, which fault) is drawn from the network's own generator, seeded
//!    from the run's seed, in the order the operations happen: with one thread, that order
//!    is the schedule's, so the seed decides the network too. Maps are `BTreeMap`s keyed
//!    by ids given in order, never hashed.
//! 2. A message in flight is a timer of the executor (`State::arm`) whose waker delivers
//!    it: the clock jumps to it like to any timer, and its delivery is an event of the
//!    trace. Wakers of tasks are woken after the lock is let go (the executor's invariant
//!    4): every function that wakes collects them in a `Vec<Waker>`.
//! 3. TCP keeps order: each direction of a connection is a queue of segments, and only
//!    its head has a timer. A head whose link is down (a partition or a hold in its
//!    direction, or a host that is down) stalls, with the queue behind it, until the link
//!    is back: TCP retransmits, so nothing is lost, only late. A reset is a message too,
//!    and waits for its link the same way. UDP datagrams each have their own timer; a
//!    partition or a host that is down loses them, a hold keeps them until released.
//! 4. A socket belongs to its host's life (incarnation): once the host has crashed, the
//!    socket is dead, silently (its drop sends nothing, its peers hear nothing). A segment
//!    that reaches a dead end of a host that is up again is answered with a reset, as a
//!    restarted host's kernel answers a connection it does not know.
//! 5. A crashed host sends nothing more: the TCP segments its sockets had queued and not
//!    delivered go with it (the kernel's buffers), and so do the resets it had sent;
//!    only its datagrams already on their way still arrive.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use hatchery::rt::{NetDatagram, NetListener, NetStream, Network, Runtime, Task};

use crate::executor::{Shared, State, ROOT_HOST};
use crate::trace::Event;

/// How many bytes a TCP connection has on the way (sent, not yet read by the peer) before
/// a write waits: the receive window.
const WINDOW: usize = 64 * 1024;

/// The largest UDP datagram (as over IPv4).
const MAX_DATAGRAM: usize = 65_507;

/// How many datagrams a UDP socket keeps unread before it drops more (its receive
/// buffer).
const UDP_QUEUE: usize = 1024;

/// The first port handed out for port 0.
const EPHEMERAL: u16 = 49_152;

/// The addresses of hosts: a range reserved for benchmarking (198.18.0.0/15, RFC 2544),
/// which no real network routes, so that an address that leaks out of the simulation
/// reaches nothing.
fn host_ip(index: usize) -> Ipv4Addr {
    let n = u32::try_from(index + 1).expect("fewer than 2^17 hosts");
    assert!(n < (1 << 17), "hatchery-sim: more than 131,071 hosts");
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + n)
}

/// The properties of a link between two hosts: how long a message takes, and how often a
/// datagram is lost, duplicated or reordered. Each message's delay is `latency` plus a
/// jitter drawn from the seed, uniformly between zero and `jitter`.
///
/// Loss, duplication and reordering apply to UDP datagrams only: TCP delivers every
/// byte, in order, once (its retransmissions are what the jitter stands for).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery_sim::{Link, Sim};
///
/// let lossy = Link { loss: 0.5, ..Link::default() };
/// let sim = Sim::new(1).link(lossy);
/// assert_eq!(Link::default().latency, Duration::from_millis(1));
/// # drop(sim);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// The delay every message takes, at least. 1 ms by default.
    pub latency: Duration,
    /// The most a message's delay adds to `latency`, drawn for each. 1 ms by default.
    pub jitter: Duration,
    /// The chance that a datagram is lost, from 0 to 1. None by default.
    pub loss: f64,
    /// The chance that a datagram is delivered twice. None by default.
    pub duplicate: f64,
    /// The chance that a datagram is held back (up to four times the link's latency and
    /// jitter more), so that later ones overtake it. None by default.
    pub reorder: f64,
}

impl Default for Link {
    fn default() -> Link {
        Link {
            latency: Duration::from_millis(1),
            jitter: Duration::from_millis(1),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
        }
    }
}

/// A host's loopback: a host talking to itself.
const LOOPBACK: Link = Link {
    latency: Duration::from_micros(20),
    jitter: Duration::from_micros(10),
    loss: 0.0,
    duplicate: 0.0,
    reorder: 0.0,
};

/// What a host runs, again at each restart.
type Make = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A host of the network.
struct HostState {
    name: String,
    ip: Ipv4Addr,
    /// Its life: one more at each crash (invariant 4).
    life: u64,
    up: bool,
    /// What is bound on it: by protocol, address (unspecified: every address of its
    /// family) and port.
    ports: BTreeMap<(Proto, IpAddr, u16), Bound>,
    next_port: u16,
    /// What it runs (none for `main`, the test's root), and the runtime to run it on.
    make: Option<(Make, Arc<dyn Runtime>)>,
}

/// What cuts one direction between two hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Cut {
    /// A partition: TCP waits, datagrams are lost.
    partitioned: bool,
    /// A hold: TCP and datagrams wait, until released.
    held: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Proto {
    Tcp,
    Udp,
}

/// A socket bound to a port, in the life of its host that bound it.
#[derive(Debug, Clone, Copy)]
struct Bound {
    id: u64,
    life: u64,
}

/// The simulated network's state, in the executor's (invariant 1).
pub(crate) struct NetState {
    hosts: Vec<HostState>,
    default_link: Link,
    links: BTreeMap<(usize, usize), Link>,
    /// Directions between hosts (from, to) that are cut or held.
    cuts: BTreeMap<(usize, usize), Cut>,
    conns: BTreeMap<u64, Conn>,
    listeners: BTreeMap<u64, Listener>,
    udps: BTreeMap<u64, Udp>,
    datagrams: BTreeMap<u64, Datagram>,
    /// Directions of connections whose head waits for its link (invariant 3).
    stalled: BTreeSet<(u64, usize)>,
    /// Resets that wait for their link (invariant 3): to `side` of `conn`, from its
    /// other side's host in its life `life`.
    stalled_resets: BTreeSet<(u64, usize, u64)>,
    /// Datagrams held by a hold, in the order they were sent.
    held: Vec<u64>,
    next_id: u64,
    rng: fastrand::Rng,
}

impl NetState {
    pub(crate) fn new(seed: u64) -> NetState {
        let mut net = NetState {
            hosts: Vec::new(),
            default_link: Link::default(),
            links: BTreeMap::new(),
            cuts: BTreeMap::new(),
            conns: BTreeMap::new(),
            listeners: BTreeMap::new(),
            udps: BTreeMap::new(),
            datagrams: BTreeMap::new(),
            stalled: BTreeSet::new(),
            stalled_resets: BTreeSet::new(),
            held: Vec::new(),
            next_id: 0,
            // Another stream than the schedule's and the thread's, from the same seed.
            rng: fastrand::Rng::with_seed(seed ^ 0x6A09_E667_F3BC_C908),
        };
        net.add_host("main", None);
        net
    }

    pub(crate) fn set_default_link(&mut self, link: Link) {
        self.default_link = link;
    }

    fn add_host(&mut self, name: &str, make: Option<(Make, Arc<dyn Runtime>)>) -> usize {
        assert!(
            !self.hosts.iter().any(|h| h.name == name),
            "hatchery-sim: there is a host named `{name}` already"
        );
        assert!(
            !name.is_empty()
                && name != "localhost"
                && name.parse::<IpAddr>().is_err()
                && !name.contains(|c: char| c.is_whitespace() || c == ':' || c == '/'),
            "hatchery-sim: `{name}` is not a host name (a word, not an address or `localhost`)"
        );
        let index = self.hosts.len();
        self.hosts.push(HostState {
            name: name.to_owned(),
            ip: host_ip(index),
            life: 0,
            up: true,
            ports: BTreeMap::new(),
            next_port: EPHEMERAL,
            make,
        });
        index
    }

    /// The name of `host`, if there is one.
    pub(crate) fn host_name(&self, host: usize) -> Option<String> {
        self.hosts.get(host).map(|h| h.name.clone())
    }

    /// Whether `host` is up (the root's always is).
    pub(crate) fn is_up(&self, host: usize) -> bool {
        self.hosts.get(host).is_some_and(|h| h.up)
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Two distinct hosts by name, for a fault of `what` between them.
    fn link_between(&self, a: &str, b: &str, what: &str) -> (usize, usize) {
        let (a, b) = (self.host_named(a), self.host_named(b));
        assert_ne!(
            a, b,
            "hatchery-sim: {what} is between two hosts (a host's loopback is not a link)"
        );
        (a, b)
    }

    fn host_named(&self, name: &str) -> usize {
        self.hosts
            .iter()
            .position(|h| h.name == name)
            .unwrap_or_else(|| {
                let names: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
                panic!(
                    "hatchery-sim: no host named `{name}` in the simulated network (its hosts: \
                     {})",
                    names.join(", ")
                )
            })
    }

    /// The host an address of `from`'s reaches: itself for loopback (and the unspecified
    /// address), the host with that address, or none.
    fn host_of(&self, from: usize, ip: IpAddr) -> Option<usize> {
        if ip.is_loopback() || ip.is_unspecified() {
            return Some(from);
        }
        match ip {
            IpAddr::V4(v4) => self.hosts.iter().position(|h| h.ip == v4),
            IpAddr::V6(_) => None,
        }
    }

    /// The address `from` sends from to reach `to` at `ip`.
    fn source_ip(&self, from: usize, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) if v4.is_loopback() => IpAddr::V4(v4),
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V4(_) => IpAddr::V4(self.hosts[from].ip),
        }
    }

    fn link(&self, a: usize, b: usize) -> Link {
        if a == b {
            return LOOPBACK;
        }
        self.links
            .get(&(a.min(b), a.max(b)))
            .copied()
            .unwrap_or(self.default_link)
    }

    /// A message's delay from `a` to `b`, drawn (invariant 1).
    fn delay(&mut self, a: usize, b: usize) -> Duration {
        let link = self.link(a, b);
        let jitter = u64::try_from(link.jitter.as_nanos()).unwrap_or(u64::MAX);
        link.latency + Duration::from_nanos(self.rng.u64(0..=jitter))
    }

    /// A draw of `chance` (0 to 1).
    fn chance(&mut self, chance: f64) -> bool {
        chance > 0.0 && self.rng.f64() < chance
    }

    /// What cuts the direction from `a` to `b`.
    fn cut(&self, a: usize, b: usize) -> Cut {
        self.cuts.get(&(a, b)).copied().unwrap_or_default()
    }

    /// Whether a message from `a` cannot reach `b` now: a partition or a hold in that
    /// direction, or `b` is down (invariant 3).
    fn blocked(&self, a: usize, b: usize) -> bool {
        let cut = self.cut(a, b);
        !self.hosts[b].up || cut.partitioned || cut.held
    }

    /// Whether a datagram from `a` to `b` is lost now: a partition in that direction, or
    /// `b` is down (a hold keeps it).
    fn loses(&self, a: usize, b: usize) -> bool {
        !self.hosts[b].up || self.cut(a, b).partitioned
    }

    /// Sets or clears what cuts the direction from `a` to `b`.
    fn set_cut(&mut self, a: usize, b: usize, f: impl FnOnce(&mut Cut)) {
        let cut = self.cuts.entry((a, b)).or_default();
        f(cut);
        if *cut == Cut::default() {
            self.cuts.remove(&(a, b));
        }
    }

    /// The life of `host` now (invariant 4).
    pub(crate) fn life(&self, host: usize) -> u64 {
        self.hosts[host].life
    }

    /// Whether a socket of `host` made in its life `life` is still alive (invariant 4).
    pub(crate) fn alive(&self, host: usize, life: u64) -> bool {
        let h = &self.hosts[host];
        h.up && h.life == life
    }

    /// Binds `addr` on `host` for `proto`: the address (with the port picked for port 0).
    fn bind(
        &mut self,
        host: usize,
        proto: Proto,
        addr: SocketAddr,
        id: u64,
    ) -> io::Result<SocketAddr> {
        let h = &self.hosts[host];
        let ip = addr.ip();
        let ours = ip.is_unspecified() || ip.is_loopback() || ip == IpAddr::V4(h.ip);
        if !ours {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!(
                    "{ip} is not an address of the simulated host `{}` ({})",
                    h.name, h.ip
                ),
            ));
        }
        let taken = |ports: &BTreeMap<(Proto, IpAddr, u16), Bound>, life: u64, port: u16| {
            ports.iter().any(|(&(p, other, q), b)| {
                p == proto
                    && q == port
                    && b.life == life
                    && other.is_ipv4() == ip.is_ipv4()
                    && (other == ip || other.is_unspecified() || ip.is_unspecified())
            })
        };
        let life = h.life;
        let port = match addr.port() {
            0 => {
                let mut port = None;
                let mut next = h.next_port;
                for _ in 0..=(u16::MAX - EPHEMERAL) {
                    let candidate = next;
                    next = if next == u16::MAX {
                        EPHEMERAL
                    } else {
                        next + 1
                    };
                    if !taken(&h.ports, life, candidate) {
                        port = Some(candidate);
                        break;
                    }
                }
                self.hosts[host].next_port = next;
                port.ok_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free port left"))?
            }
            port if taken(&h.ports, life, port) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("address in use on the simulated host `{}`", h.name),
                ))
            }
            port => port,
        };
        self.hosts[host]
            .ports
            .insert((proto, ip, port), Bound { id, life });
        Ok(SocketAddr::new(ip, port))
    }

    /// What listens (or receives) at `ip:port` of `host` now: the address itself, or the
    /// unspecified address of its family.
    fn bound_at(&self, host: usize, proto: Proto, ip: IpAddr, port: u16) -> Option<u64> {
        let h = &self.hosts[host];
        let any = match ip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        [ip, any]
            .iter()
            .filter_map(|&at| h.ports.get(&(proto, at, port)))
            .find(|b| b.life == h.life && h.up)
            .map(|b| b.id)
    }

    fn unbind(&mut self, host: usize, proto: Proto, addr: SocketAddr, id: u64) {
        let key = (proto, addr.ip(), addr.port());
        if self.hosts[host].ports.get(&key).is_some_and(|b| b.id == id) {
            self.hosts[host].ports.remove(&key);
        }
    }

    /// An ephemeral port for an outgoing connection of `host`.
    fn ephemeral(&mut self, host: usize) -> u16 {
        let h = &mut self.hosts[host];
        let port = h.next_port;
        h.next_port = if port == u16::MAX {
            EPHEMERAL
        } else {
            port + 1
        };
        port
    }
}

// ---------------------------------------------------------------------------------------
// TCP

/// One end of a TCP connection.
struct End {
    host: usize,
    life: u64,
    local: SocketAddr,
    peer: SocketAddr,
    established: bool,
    /// A reset came (or a refusal, before it was established).
    reset: bool,
    /// Bytes delivered and not read yet.
    recv: VecDeque<u8>,
    /// The peer's end of stream came.
    eof: bool,
    /// This side shut down writing (its end of stream is queued).
    shut: bool,
    /// Its socket was dropped.
    closed: bool,
    /// Bytes this end sent that the peer has not read yet (the window).
    unread: usize,
    /// Segments to the peer, in order; only the head has a timer (invariant 3).
    out: VecDeque<Segment>,
    armed: bool,
    read_waker: Option<Waker>,
    /// The writer's, or the connect's.
    write_waker: Option<Waker>,
    nodelay: bool,
}

impl End {
    fn new(host: usize, life: u64, local: SocketAddr, peer: SocketAddr) -> End {
        End {
            host,
            life,
            local,
            peer,
            established: false,
            reset: false,
            recv: VecDeque::new(),
            eof: false,
            shut: false,
            closed: false,
            unread: 0,
            out: VecDeque::new(),
            armed: false,
            read_waker: None,
            write_waker: None,
            nodelay: false,
        }
    }

    fn wake_all(&mut self, wake: &mut Vec<Waker>) {
        wake.extend(self.read_waker.take());
        wake.extend(self.write_waker.take());
    }
}

struct Segment {
    kind: SegmentKind,
    /// When it arrives, unless its link is down then (invariant 3).
    due: Instant,
}

enum SegmentKind {
    Syn,
    SynAck,
    Data(Vec<u8>),
    Fin,
}

/// A connection: its connecting end (0) and its accepted end (1).
struct Conn {
    ends: [End; 2],
    /// The listener whose backlog holds it, until accepted.
    listener: Option<u64>,
}

struct Listener {
    host: usize,
    life: u64,
    local: SocketAddr,
    /// Connections established and not accepted yet.
    backlog: VecDeque<u64>,
    waker: Option<Waker>,
}

/// What a delivery timer delivers (invariant 2).
#[derive(Clone, Copy)]
enum Due {
    /// The head segment of one direction of a connection: from `side` to the other.
    Tcp { conn: u64, side: usize },
    /// A reset to `side` of a connection, out of band, from the other side's host in
    /// its life `life` (invariant 5).
    Reset { conn: u64, side: usize, life: u64 },
    /// A datagram.
    Udp { id: u64 },
    /// The answer to a datagram that met a port where nothing receives (ICMP's "port
    /// unreachable"), back to its sender.
    Unreachable { id: u64 },
}

struct Delivery {
    shared: Weak<Shared>,
    due: Due,
}

impl Wake for Delivery {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let mut wake = Vec::new();
        {
            let mut s = shared.lock();
            deliver(&mut s, &shared, self.due, &mut wake);
        }
        wake.into_iter().for_each(Waker::wake);
    }
}

fn arm(s: &mut State, shared: &Arc<Shared>, at: Instant, due: Due) {
    let waker = Waker::from(Arc::new(Delivery {
        shared: Arc::downgrade(shared),
        due,
    }));
    s.arm(at, waker);
}

/// Queues `kind` on `side`'s direction of `conn`, and arms its head.
fn send_segment(s: &mut State, shared: &Arc<Shared>, conn: u64, side: usize, kind: SegmentKind) {
    let now = s.now();
    let (from, to) = {
        let c = &s.net.conns[&conn];
        (c.ends[side].host, c.ends[1 - side].host)
    };
    let delay = s.net.delay(from, to);
    let end = &mut s.net.conns.get_mut(&conn).expect("a connection").ends[side];
    // Never before the segment ahead of it (invariant 3).
    let due = end
        .out
        .back()
        .map_or(now + delay, |last| last.due.max(now + delay));
    end.out.push_back(Segment { kind, due });
    arm_head(s, shared, conn, side);
}

/// Arms the timer of the head of `side`'s direction of `conn`, if it has none.
fn arm_head(s: &mut State, shared: &Arc<Shared>, conn: u64, side: usize) {
    let Some(c) = s.net.conns.get_mut(&conn) else {
        return;
    };
    let end = &mut c.ends[side];
    if end.armed {
        return;
    }
    let Some(head) = end.out.front() else {
        return;
    };
    end.armed = true;
    let at = head.due;
    arm(s, shared, at, Due::Tcp { conn, side });
}

/// Sends a reset to `side` of `conn`, out of band (after a link's delay), from the
/// other side's host as it is now (its kernel's answer).
fn send_reset(s: &mut State, shared: &Arc<Shared>, conn: u64, side: usize) {
    let (from, to) = {
        let c = &s.net.conns[&conn];
        (c.ends[1 - side].host, c.ends[side].host)
    };
    let life = s.net.hosts[from].life;
    let at = s.now() + s.net.delay(from, to);
    arm(s, shared, at, Due::Reset { conn, side, life });
}

/// A reset reaches `side` of `conn`: it resets that end, unless its link is down, when it
/// waits (invariant 3), or its sender has crashed since, when it is gone (invariant 5).
fn deliver_reset(s: &mut State, conn: u64, side: usize, life: u64, wake: &mut Vec<Waker>) {
    let net = &mut s.net;
    let Some(c) = net.conns.get(&conn) else {
        return;
    };
    let (from, end) = (c.ends[1 - side].host, &c.ends[side]);
    if !net.alive(from, life) {
        return; // its sender crashed: nothing more comes from it
    }
    if !net.alive(end.host, end.life) || end.closed || end.reset {
        return;
    }
    if net.blocked(from, end.host) {
        net.stalled_resets.insert((conn, side, life));
        return;
    }
    let id = net.id();
    let end = &mut net.conns.get_mut(&conn).expect("a connection").ends[side];
    end.reset = true;
    end.recv.clear();
    end.out.clear();
    end.wake_all(wake);
    s.recorder.push(Event::Deliver(id));
}

fn deliver(s: &mut State, shared: &Arc<Shared>, due: Due, wake: &mut Vec<Waker>) {
    match due {
        Due::Tcp { conn, side } => deliver_segment(s, shared, conn, side, wake),
        Due::Reset { conn, side, life } => deliver_reset(s, conn, side, life, wake),
        Due::Udp { id } => deliver_datagram(s, shared, id, wake),
        Due::Unreachable { id } => deliver_unreachable(s, id, wake),
    }
}

/// The head of `side`'s direction of `conn` is due: delivered, or stalled if its link is
/// down (invariant 3).
fn deliver_segment(
    s: &mut State,
    shared: &Arc<Shared>,
    conn: u64,
    side: usize,
    wake: &mut Vec<Waker>,
) {
    let Some(c) = s.net.conns.get_mut(&conn) else {
        return;
    };
    c.ends[side].armed = false;
    let (from, to) = (c.ends[side].host, c.ends[1 - side].host);
    if c.ends[side].out.is_empty() {
        return;
    }
    if s.net.blocked(from, to) {
        s.net.stalled.insert((conn, side));
        return;
    }
    let id = s.net.id();
    let c = s.net.conns.get_mut(&conn).expect("a connection");
    let segment = c.ends[side].out.pop_front().expect("a head");
    match &segment.kind {
        SegmentKind::Data(bytes) => s.recorder.push_with(Event::Deliver(id), bytes),
        _ => s.recorder.push(Event::Deliver(id)),
    }
    let c = s.net.conns.get_mut(&conn).expect("a connection");
    let to_side = 1 - side;
    match segment.kind {
        SegmentKind::Syn => {
            // At the listener's host, in its life now.
            let peer = c.ends[0].peer;
            let life = s.net.hosts[to].life;
            match s.net.bound_at(to, Proto::Tcp, peer.ip(), peer.port()) {
                Some(listener) if s.net.listeners.contains_key(&listener) => {
                    let c = s.net.conns.get_mut(&conn).expect("a connection");
                    let end = &mut c.ends[1];
                    end.life = life;
                    end.established = true;
                    c.listener = Some(listener);
                    let l = s.net.listeners.get_mut(&listener).expect("a listener");
                    l.backlog.push_back(conn);
                    wake.extend(l.waker.take());
                    send_segment(s, shared, conn, 1, SegmentKind::SynAck);
                }
                // Nothing listens there: refused.
                _ => {
                    let end = &mut s.net.conns.get_mut(&conn).expect("a connection").ends[1];
                    end.life = life;
                    end.closed = true; // never handed out
                    send_reset(s, shared, conn, 0);
                }
            }
        }
        kind => {
            let (host, life) = (c.ends[to_side].host, c.ends[to_side].life);
            let dead = !s.net.alive(host, life);
            let c = s.net.conns.get_mut(&conn).expect("a connection");
            let end = &mut c.ends[to_side];
            if dead || end.closed {
                // A socket that is gone (invariant 4), or closed: a reset answers.
                if !end.reset {
                    send_reset(s, shared, conn, side);
                }
            } else if !end.reset {
                match kind {
                    SegmentKind::SynAck => {
                        end.established = true;
                        wake.extend(end.write_waker.take());
                    }
                    SegmentKind::Data(bytes) => {
                        end.recv.extend(bytes);
                        wake.extend(end.read_waker.take());
                    }
                    SegmentKind::Fin => {
                        end.eof = true;
                        wake.extend(end.read_waker.take());
                    }
                    SegmentKind::Syn => unreachable!("handled above"),
                }
            }
        }
    }
    arm_head(s, shared, conn, side);
    collect(s, conn);
}

/// Re-arms the stalled directions and resets whose links are back (a partition healed,
/// a hold released, a host restarted), from now, and sends the datagrams a released
/// hold kept (invariant 3).
fn unstall(s: &mut State, shared: &Arc<Shared>) {
    let stalled: Vec<(u64, usize)> = s.net.stalled.iter().copied().collect();
    for (conn, side) in stalled {
        let Some(c) = s.net.conns.get(&conn) else {
            s.net.stalled.remove(&(conn, side));
            continue;
        };
        let (from, to) = (c.ends[side].host, c.ends[1 - side].host);
        if s.net.blocked(from, to) {
            continue;
        }
        s.net.stalled.remove(&(conn, side));
        let at = s.now() + s.net.delay(from, to);
        let end = &mut s.net.conns.get_mut(&conn).expect("a connection").ends[side];
        if let Some(head) = end.out.front_mut() {
            head.due = head.due.max(at);
        }
        arm_head(s, shared, conn, side);
    }
    let resets: Vec<(u64, usize, u64)> = s.net.stalled_resets.iter().copied().collect();
    for (conn, side, life) in resets {
        let Some(c) = s.net.conns.get(&conn) else {
            s.net.stalled_resets.remove(&(conn, side, life));
            continue;
        };
        let (from, to) = (c.ends[1 - side].host, c.ends[side].host);
        if s.net.blocked(from, to) {
            continue;
        }
        s.net.stalled_resets.remove(&(conn, side, life));
        let at = s.now() + s.net.delay(from, to);
        arm(s, shared, at, Due::Reset { conn, side, life });
    }
    let held = std::mem::take(&mut s.net.held);
    for id in held {
        let Some(d) = s.net.datagrams.get(&id) else {
            continue;
        };
        let (from, to) = (d.from_host, d.to_host);
        if s.net.blocked(from, to) && !s.net.loses(from, to) {
            s.net.held.push(id); // still held
            continue;
        }
        let at = s.now() + s.net.delay(from, to);
        arm(s, shared, at, Due::Udp { id });
    }
}

/// Drops what `host`, crashed, had queued and not delivered: the TCP segments of its
/// sockets of the life `life` (invariant 5). Its resets in flight are dropped as they
/// arrive ([`deliver_reset`]).
fn drop_queued(s: &mut State, host: usize, life: u64) {
    let ids: Vec<u64> = s.net.conns.keys().copied().collect();
    for id in ids {
        let c = s.net.conns.get_mut(&id).expect("a connection");
        for side in 0..2 {
            let end = &mut c.ends[side];
            if end.host == host && end.life == life && !end.out.is_empty() {
                end.out.clear();
                s.net.stalled.remove(&(id, side));
            }
        }
        collect(s, id);
    }
}

/// The simulator's side of the seam: [`Network`] (invariant 1: under the executor's lock).
pub(crate) struct SimNetwork {
    shared: Arc<Shared>,
}

impl SimNetwork {
    pub(crate) fn new(shared: Arc<Shared>) -> SimNetwork {
        SimNetwork { shared }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .on_thread("a socket of the simulated network was used from another thread");
        self.shared.lock()
    }
}

impl Network for SimNetwork {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let s = self.lock();
        if host.eq_ignore_ascii_case("localhost") {
            return Ok(vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))]);
        }
        match s.net.hosts.iter().find(|h| h.name == host) {
            Some(h) => Ok(vec![SocketAddr::from((h.ip, port))]),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no host named {host:?} in the simulated network"),
            )),
        }
    }

    fn bind_tcp(&self, addr: SocketAddr) -> io::Result<Box<dyn NetListener>> {
        let mut s = self.lock();
        let host = s.current_host;
        let id = s.net.id();
        let local = s.net.bind(host, Proto::Tcp, addr, id)?;
        let life = s.net.hosts[host].life;
        s.net.listeners.insert(
            id,
            Listener {
                host,
                life,
                local,
                backlog: VecDeque::new(),
                waker: None,
            },
        );
        Ok(Box::new(SimListener {
            shared: self.shared.clone(),
            id,
        }))
    }

    fn connect_tcp(&self, addr: SocketAddr) -> io::Result<Box<dyn NetStream>> {
        let mut s = self.lock();
        let from = s.current_host;
        let Some(to) = s.net.host_of(from, addr.ip()) else {
            return Err(io::Error::new(
                io::ErrorKind::HostUnreachable,
                format!(
                    "no host of the simulated network has the address {}",
                    addr.ip()
                ),
            ));
        };
        let target = match addr.ip() {
            ip if ip.is_unspecified() => SocketAddr::new(s.net.source_ip(from, ip), addr.port()),
            _ => addr,
        };
        let local = SocketAddr::new(s.net.source_ip(from, target.ip()), s.net.ephemeral(from));
        let life = s.net.hosts[from].life;
        let to_life = s.net.hosts[to].life;
        let id = s.net.id();
        s.net.conns.insert(
            id,
            Conn {
                ends: [
                    End::new(from, life, local, target),
                    End::new(to, to_life, target, local),
                ],
                listener: None,
            },
        );
        send_segment(&mut s, &self.shared, id, 0, SegmentKind::Syn);
        Ok(Box::new(SimStream {
            shared: self.shared.clone(),
            conn: id,
            side: 0,
        }))
    }

    fn bind_udp(&self, addr: SocketAddr) -> io::Result<Box<dyn NetDatagram>> {
        let mut s = self.lock();
        let host = s.current_host;
        let id = s.net.id();
        let local = s.net.bind(host, Proto::Udp, addr, id)?;
        let life = s.net.hosts[host].life;
        s.net.udps.insert(
            id,
            Udp {
                host,
                life,
                local,
                peer: None,
                queue: VecDeque::new(),
                waker: None,
                error: None,
            },
        );
        Ok(Box::new(SimDatagram {
            shared: self.shared.clone(),
            id,
        }))
    }
}

/// A simulated TCP connection's end, as `hatchery::net::TcpStream` holds it.
struct SimStream {
    shared: Arc<Shared>,
    conn: u64,
    side: usize,
}

/// The error of an operation on a socket whose host has crashed.
fn crashed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the simulated host of this socket has crashed",
    )
}

impl SimStream {
    /// Runs `f` on this end, under the lock; then wakes what it woke.
    fn with<T>(&self, f: impl FnOnce(&mut State, &mut Vec<Waker>) -> T) -> T {
        self.shared
            .on_thread("a socket of the simulated network was used from another thread");
        let mut wake = Vec::new();
        let out = {
            let mut s = self.shared.lock();
            f(&mut s, &mut wake)
        };
        wake.into_iter().for_each(Waker::wake);
        out
    }
}

impl NetStream for SimStream {
    fn poll_connect(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s, _| {
            let net = &mut s.net;
            let end = &mut net.conns.get_mut(&self.conn).expect("a connection").ends[self.side];
            if end.established {
                Poll::Ready(Ok(()))
            } else if end.reset {
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("connection refused by {} (simulated)", end.peer),
                )))
            } else {
                end.write_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.with(|s, wake| {
            let c = s.net.conns.get(&self.conn).expect("a connection");
            let end = &c.ends[self.side];
            if !s.net.alive(end.host, end.life) {
                return Poll::Ready(Err(crashed()));
            }
            let c = s.net.conns.get_mut(&self.conn).expect("a connection");
            let [a, b] = &mut c.ends;
            let (end, peer) = if self.side == 0 { (a, b) } else { (b, a) };
            if end.reset {
                return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
            }
            if !end.recv.is_empty() {
                let n = buf.len().min(end.recv.len());
                for (to, from) in buf.iter_mut().zip(end.recv.drain(..n)) {
                    *to = from;
                }
                // The window opens for the peer's writer.
                peer.unread = peer.unread.saturating_sub(n);
                wake.extend(peer.write_waker.take());
                return Poll::Ready(Ok(n));
            }
            if end.eof {
                return Poll::Ready(Ok(0));
            }
            end.read_waker = Some(cx.waker().clone());
            Poll::Pending
        })
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let shared = &self.shared;
        self.with(|s, _| {
            let c = s.net.conns.get(&self.conn).expect("a connection");
            let end = &c.ends[self.side];
            if !s.net.alive(end.host, end.life) {
                return Poll::Ready(Err(crashed()));
            }
            let end = &mut s.net.conns.get_mut(&self.conn).expect("a connection").ends[self.side];
            if end.reset {
                return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
            }
            if end.shut {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "write after shutdown",
                )));
            }
            if !end.established {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            }
            let room = WINDOW.saturating_sub(end.unread);
            if room == 0 {
                end.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = room.min(buf.len());
            end.unread += n;
            send_segment(
                s,
                shared,
                self.conn,
                self.side,
                SegmentKind::Data(buf[..n].to_vec()),
            );
            Poll::Ready(Ok(n))
        })
    }

    fn shutdown_write(&self) -> io::Result<()> {
        let shared = &self.shared;
        self.with(|s, _| {
            let end = &mut s.net.conns.get_mut(&self.conn).expect("a connection").ends[self.side];
            if end.reset {
                return Err(io::ErrorKind::NotConnected.into());
            }
            if !end.shut {
                end.shut = true;
                send_segment(s, shared, self.conn, self.side, SegmentKind::Fin);
            }
            Ok(())
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.with(|s, _| Ok(s.net.conns[&self.conn].ends[self.side].local))
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.with(|s, _| {
            let end = &s.net.conns[&self.conn].ends[self.side];
            match end.established && !end.reset {
                true => Ok(end.peer),
                false => Err(io::ErrorKind::NotConnected.into()),
            }
        })
    }

    fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.with(|s, _| {
            s.net.conns.get_mut(&self.conn).expect("a connection").ends[self.side].nodelay =
                nodelay;
            Ok(())
        })
    }

    fn nodelay(&self) -> io::Result<bool> {
        self.with(|s, _| Ok(s.net.conns[&self.conn].ends[self.side].nodelay))
    }
}

impl Drop for SimStream {
    /// Closes this end: the peer reads the end of the stream, or a reset if data was left
    /// unread here; nothing at all if the host has crashed (invariant 4).
    fn drop(&mut self) {
        let shared = self.shared.clone();
        self.with(|s, _| close_end(s, &shared, self.conn, self.side));
    }
}

fn close_end(s: &mut State, shared: &Arc<Shared>, conn: u64, side: usize) {
    let Some(c) = s.net.conns.get_mut(&conn) else {
        return;
    };
    let end = &mut c.ends[side];
    end.closed = true;
    end.read_waker = None;
    end.write_waker = None;
    let (host, life) = (end.host, end.life);
    if !s.net.alive(host, life) {
        // Its host crashed: silence (invariant 4).
        collect(s, conn);
        return;
    }
    let end = &mut s.net.conns.get_mut(&conn).expect("a connection").ends[side];
    if end.reset || !end.established {
        // Nothing to tell (an abandoned connect: its answer will be reset).
        collect(s, conn);
        return;
    }
    if !end.recv.is_empty() {
        // Closed with data unread: a reset, at once, instead of the rest.
        end.recv.clear();
        end.out.clear();
        send_reset(s, shared, conn, 1 - side);
    } else if !end.shut {
        end.shut = true;
        send_segment(s, shared, conn, side, SegmentKind::Fin);
    }
    collect(s, conn);
}

/// Forgets `conn` once nothing can happen on it any more: both ends closed (their
/// sockets dropped, or never handed out), nothing queued or on its way. A reset still on
/// its way finds no connection, and does nothing.
fn collect(s: &mut State, conn: u64) {
    let Some(c) = s.net.conns.get(&conn) else {
        return;
    };
    let done = c.listener.is_none()
        && c.ends
            .iter()
            .all(|e| e.closed && e.out.is_empty() && !e.armed);
    if done {
        s.net.conns.remove(&conn);
        s.net.stalled.remove(&(conn, 0));
        s.net.stalled.remove(&(conn, 1));
    }
}

impl fmt::Debug for SimStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimStream")
            .field("conn", &self.conn)
            .finish()
    }
}

/// A simulated TCP listener.
struct SimListener {
    shared: Arc<Shared>,
    id: u64,
}

impl NetListener for SimListener {
    fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Box<dyn NetStream>, SocketAddr)>> {
        self.shared
            .on_thread("a socket of the simulated network was used from another thread");
        let mut s = self.shared.lock();
        let l = &s.net.listeners[&self.id];
        if !s.net.alive(l.host, l.life) {
            return Poll::Ready(Err(crashed()));
        }
        let l = s.net.listeners.get_mut(&self.id).expect("a listener");
        match l.backlog.pop_front() {
            Some(conn) => {
                let c = s.net.conns.get_mut(&conn).expect("a connection");
                c.listener = None;
                let peer = c.ends[1].peer;
                Poll::Ready(Ok((
                    Box::new(SimStream {
                        shared: self.shared.clone(),
                        conn,
                        side: 1,
                    }) as Box<dyn NetStream>,
                    peer,
                )))
            }
            None => {
                l.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.shared.lock().net.listeners[&self.id].local)
    }
}

impl Drop for SimListener {
    /// Stops listening; the connections not accepted yet are reset.
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        let Some(l) = s.net.listeners.remove(&self.id) else {
            return;
        };
        if !s.net.alive(l.host, l.life) {
            return;
        }
        s.net.unbind(l.host, Proto::Tcp, l.local, self.id);
        for conn in l.backlog {
            let end = &mut s.net.conns.get_mut(&conn).expect("a connection").ends[1];
            end.closed = true;
            end.reset = true;
            send_reset(&mut s, &self.shared, conn, 0);
        }
    }
}

impl fmt::Debug for SimListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimListener").field("id", &self.id).finish()
    }
}

// ---------------------------------------------------------------------------------------
// UDP

struct Udp {
    host: usize,
    life: u64,
    local: SocketAddr,
    peer: Option<SocketAddr>,
    queue: VecDeque<(Vec<u8>, SocketAddr)>,
    waker: Option<Waker>,
    /// The error a datagram of this connected socket met (its peer's port closed): the
    /// next receive returns it, as the system does.
    error: Option<io::ErrorKind>,
}

struct Datagram {
    from_host: usize,
    to_host: usize,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

fn deliver_datagram(s: &mut State, shared: &Arc<Shared>, id: u64, wake: &mut Vec<Waker>) {
    let Some(d) = s.net.datagrams.get(&id) else {
        return;
    };
    if s.net.loses(d.from_host, d.to_host) {
        s.net.datagrams.remove(&id);
        s.recorder.push(Event::Lost(id));
        return;
    }
    if s.net.blocked(d.from_host, d.to_host) {
        s.net.held.push(id); // a hold: sent on when released
        return;
    }
    let target = s
        .net
        .bound_at(d.to_host, Proto::Udp, d.to.ip(), d.to.port());
    if !target.is_some_and(|t| s.net.udps.contains_key(&t)) {
        // Nothing receives there: lost, and the host answers "port unreachable" (the
        // datagram, kept, says where to).
        s.recorder.push(Event::Lost(id));
        let at = s.now() + s.net.delay(d.to_host, d.from_host);
        arm(s, shared, at, Due::Unreachable { id });
        return;
    }
    let d = s.net.datagrams.remove(&id).expect("a datagram");
    let socket = s
        .net
        .udps
        .get_mut(&target.expect("bound"))
        .expect("a socket");
    if socket.peer.is_some_and(|p| p != d.from) || socket.queue.len() >= UDP_QUEUE {
        s.recorder.push(Event::Lost(id)); // not its peer's, or its buffer is full
        return;
    }
    s.recorder.push_with(Event::Deliver(id), &d.bytes);
    socket.queue.push_back((d.bytes, d.from));
    wake.extend(socket.waker.take());
}

/// The "port unreachable" answer to datagram `id` reaches its sender: a connected socket
/// gets the error, for its next receive.
fn deliver_unreachable(s: &mut State, id: u64, wake: &mut Vec<Waker>) {
    let Some(d) = s.net.datagrams.remove(&id) else {
        return;
    };
    if s.net.blocked(d.to_host, d.from_host) {
        return;
    }
    let sender = s
        .net
        .bound_at(d.from_host, Proto::Udp, d.from.ip(), d.from.port());
    if let Some(socket) = sender.and_then(|t| s.net.udps.get_mut(&t)) {
        if socket.peer == Some(d.to) {
            socket.error = Some(io::ErrorKind::ConnectionRefused);
            wake.extend(socket.waker.take());
        }
    }
}

/// A simulated UDP socket.
struct SimDatagram {
    shared: Arc<Shared>,
    id: u64,
}

impl SimDatagram {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .on_thread("a socket of the simulated network was used from another thread");
        self.shared.lock()
    }
}

impl NetDatagram for SimDatagram {
    fn poll_send_to(
        &self,
        _cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        let mut s = self.lock();
        let u = &s.net.udps[&self.id];
        if !s.net.alive(u.host, u.life) {
            return Poll::Ready(Err(crashed()));
        }
        if u.local.is_ipv4() != target.is_ipv4() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot send to {target} from a socket bound to {}", u.local),
            )));
        }
        if buf.len() > MAX_DATAGRAM {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a datagram of {} bytes is too large", buf.len()),
            )));
        }
        let (from_host, local) = (u.host, u.local);
        let Some(to_host) = s.net.host_of(from_host, target.ip()) else {
            return Poll::Ready(Ok(buf.len())); // no route: lost, as the system does
        };
        let from = match local.ip().is_unspecified() {
            true => SocketAddr::new(s.net.source_ip(from_host, target.ip()), local.port()),
            false => local,
        };
        let link = s.net.link(from_host, to_host);
        let copies = if s.net.chance(link.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let id = s.net.id();
            // Lost to the link, or to a partition (or a host down) now or on arrival; a
            // hold keeps it (on arrival).
            if s.net.chance(link.loss) || s.net.loses(from_host, to_host) {
                s.recorder.push(Event::Lost(id));
                continue;
            }
            let mut delay = s.net.delay(from_host, to_host);
            if s.net.chance(link.reorder) {
                let spread = (link.latency + link.jitter) * 4;
                let spread = u64::try_from(spread.as_nanos()).unwrap_or(u64::MAX);
                delay += Duration::from_nanos(s.net.rng.u64(0..=spread));
            }
            s.net.datagrams.insert(
                id,
                Datagram {
                    from_host,
                    to_host,
                    from,
                    to: target,
                    bytes: buf.to_vec(),
                },
            );
            let at = s.now() + delay;
            arm(&mut s, &self.shared, at, Due::Udp { id });
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        let mut s = self.lock();
        let u = &s.net.udps[&self.id];
        if !s.net.alive(u.host, u.life) {
            return Poll::Ready(Err(crashed()));
        }
        let u = s.net.udps.get_mut(&self.id).expect("a socket");
        if let Some(kind) = u.error.take() {
            let peer = u.peer.map_or_else(String::new, |p| p.to_string());
            return Poll::Ready(Err(io::Error::new(
                kind,
                format!("the port of {peer} is closed (simulated)"),
            )));
        }
        match u.queue.pop_front() {
            Some((bytes, from)) => {
                let n = buf.len().min(bytes.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                Poll::Ready(Ok((n, from)))
            }
            None => {
                u.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        let mut s = self.lock();
        let u = s.net.udps.get_mut(&self.id).expect("a socket");
        if u.local.is_ipv4() != addr.is_ipv4() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot connect a socket bound to {} to {addr}", u.local),
            ));
        }
        u.peer = Some(addr);
        u.error = None;
        Ok(())
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.lock().net.udps[&self.id].local)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.lock().net.udps[&self.id]
            .peer
            .ok_or_else(|| io::ErrorKind::NotConnected.into())
    }
}

impl Drop for SimDatagram {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        if let Some(u) = s.net.udps.remove(&self.id) {
            s.net.unbind(u.host, Proto::Udp, u.local, self.id);
        }
    }
}

impl fmt::Debug for SimDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimDatagram").field("id", &self.id).finish()
    }
}

// ---------------------------------------------------------------------------------------
// The test's handles: `Net`, `Host`, `Faults`.

/// The simulated network of the run that the calling code runs in: its hosts, and the
/// faults a test injects.
///
/// Under the simulator, [`hatchery::net`]'s TCP and UDP sockets talk to this network
/// instead of the system's, and library code does not change. It starts with one host,
/// `main`, where the run's root future (the test's body) runs; [`host`](Net::host) adds
/// others, each a named group of tasks with its own address. Host names resolve to their
/// addresses (`TcpStream::connect(("server", 80))`), `localhost` and loopback addresses
/// reach the caller's own host, and the addresses of hosts are taken in order from a
/// range that no real network routes (`198.18.0.1` is `main`'s).
///
/// Faults are methods: [`partition`](Net::partition) and [`heal`](Net::heal) between
/// hosts, [`reset`](Net::reset) of the TCP connections between two hosts,
/// [`crash`](Net::crash) and [`restart`](Net::restart) of a host, and a [`Link`] with
/// latency, jitter, loss, duplication and reordering ([`set_link`](Net::set_link));
/// [`random_faults`](Net::random_faults) draws faults from the seed.
///
/// Its methods must be called from the run's tasks (the simulator's thread).
///
/// # Examples
///
/// A server on its own host, and a client on `main` that reaches it by name:
///
/// ```
/// use hatchery::net::{TcpListener, TcpStream};
/// use hatchery_sim::Sim;
///
/// async fn greeter() -> std::io::Result<()> {
///     let listener = TcpListener::bind("0.0.0.0:80").await?;
///     loop {
///         let (mut conn, _) = listener.accept().await?;
///         conn.write_all(b"hello").await?;
///     }
/// }
///
/// Sim::new(7).run(async {
///     let net = hatchery_sim::net();
///     net.host("server", greeter);
///     let mut conn = TcpStream::connect(("server", 80)).await?;
///     let mut buf = [0; 5];
///     conn.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hello");
///     assert_eq!(conn.peer_addr()?, "198.18.0.2:80".parse().unwrap());
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Net {
    shared: Arc<Shared>,
}

/// The simulated network of the run the calling code runs in.
///
/// # Panics
///
/// Outside a simulated run ([`Sim::run`](crate::Sim::run)), or on another thread than
/// the run's.
///
/// # Examples
///
/// See [`Net`].
pub fn net() -> Net {
    let shared = crate::executor::current().expect(
        "hatchery-sim: `hatchery_sim::net()` outside a simulated run: call it from the tasks \
         of `Sim::run` (or a `#[hatchery::test(sim)]` test)",
    );
    Net { shared }
}

/// A host of the simulated network: see [`Net::host`].
///
/// # Examples
///
/// ```
/// hatchery_sim::Sim::new(0).run(async {
///     let db = hatchery_sim::net().host("db", || std::future::pending::<()>());
///     assert_eq!(db.name(), "db");
///     assert_eq!(db.addr().to_string(), "198.18.0.2");
///     assert!(db.is_up());
/// });
/// ```
#[derive(Clone)]
pub struct Host {
    net: Net,
    index: usize,
}

/// What a host's future may return: `()`, or a `Result` whose `Err` fails the run (it
/// panics, naming the host and the error).
///
/// # Examples
///
/// ```
/// use hatchery_sim::HostOutput;
///
/// fn host_ok<T: HostOutput>(_: &T) {}
/// host_ok(&());
/// host_ok(&Ok::<(), std::io::Error>(()));
/// ```
pub trait HostOutput {
    /// Panics if this is a failure, naming the host.
    fn check(self, host: &str);
}

impl HostOutput for () {
    fn check(self, _host: &str) {}
}

impl<T, E: fmt::Debug> HostOutput for Result<T, E> {
    fn check(self, host: &str) {
        if let Err(e) = self {
            panic!("hatchery-sim: the simulated host `{host}` failed: {e:?}");
        }
    }
}

impl Net {
    fn with<T>(&self, f: impl FnOnce(&mut State, &mut Vec<Waker>) -> T) -> T {
        assert!(
            self.shared
                .on_thread("the simulated network was used from another thread"),
            "hatchery-sim: the simulated network is used from the run's tasks only"
        );
        let mut wake = Vec::new();
        let out = {
            let mut s = self.shared.lock();
            f(&mut s, &mut wake)
        };
        wake.into_iter().for_each(Waker::wake);
        out
    }

    /// Adds a host named `name` with an address of its own, and starts it: `make()`'s
    /// future runs as the root of the host's tasks (every task it spawns, and theirs,
    /// belongs to the host), on the runtime of the caller. A [`restart`](Net::restart)
    /// calls `make` again.
    ///
    /// The future's output is checked ([`HostOutput`]): an `Err` fails the run, as a
    /// panic in it does.
    ///
    /// # Panics
    ///
    /// If a host has that name already, or `name` is not a word (an address,
    /// `localhost`, a name with spaces or colons).
    ///
    /// # Examples
    ///
    /// See [`Net`].
    pub fn host<F, Fut>(&self, name: &str, make: F) -> Host
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HostOutput,
    {
        let rt = hatchery::rt::current()
            .expect("hatchery-sim: a host is added from the run's tasks (inside `Sim::run`)");
        let owned = name.to_owned();
        let make: Make = Arc::new(move || {
            let fut = make();
            let name = owned.clone();
            Box::pin(async move { fut.await.check(&name) })
        });
        let index = self.with(|s, _| s.net.add_host(name, Some((make, rt))));
        let host = Host {
            net: self.clone(),
            index,
        };
        host.start();
        host
    }

    /// The host named `name`.
    ///
    /// # Panics
    ///
    /// If there is none.
    ///
    /// # Examples
    ///
    /// ```
    /// hatchery_sim::Sim::new(0).run(async {
    ///     let net = hatchery_sim::net();
    ///     assert_eq!(net.lookup("main").addr().to_string(), "198.18.0.1");
    /// });
    /// ```
    pub fn lookup(&self, name: &str) -> Host {
        let index = self.with(|s, _| s.net.host_named(name));
        Host {
            net: self.clone(),
            index,
        }
    }

    /// The host of the calling task.
    ///
    /// # Examples
    ///
    /// ```
    /// hatchery_sim::Sim::new(0).run(async {
    ///     assert_eq!(hatchery_sim::net().current_host().name(), "main");
    /// });
    /// ```
    pub fn current_host(&self) -> Host {
        let index = self.with(|s, _| s.current_host);
        Host {
            net: self.clone(),
            index,
        }
    }

    /// The names of the hosts, in the order they were added (`main` first).
    ///
    /// # Examples
    ///
    /// ```
    /// hatchery_sim::Sim::new(0).run(async {
    ///     let net = hatchery_sim::net();
    ///     net.host("a", || std::future::pending::<()>());
    ///     assert_eq!(net.hosts(), ["main", "a"]);
    /// });
    /// ```
    pub fn hosts(&self) -> Vec<String> {
        self.with(|s, _| s.net.hosts.iter().map(|h| h.name.clone()).collect())
    }

    /// How many TCP connections the network still holds: those with an end open (its
    /// socket not dropped, or not accepted yet) or a segment on its way. A test checks
    /// with it that a library closes what it opens; the network forgets the others, so
    /// a long run does not grow.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::net::{TcpListener, TcpStream};
    ///
    /// hatchery_sim::Sim::new(0).run(async {
    ///     let net = hatchery_sim::net();
    ///     let listener = TcpListener::bind("127.0.0.1:0").await?;
    ///     let client = TcpStream::connect(listener.local_addr()?).await?;
    ///     let (server, _) = listener.accept().await?;
    ///     assert_eq!(net.connections(), 1);
    ///     drop((client, server));
    ///     hatchery::sleep(std::time::Duration::from_millis(1)).await; // the ends of stream
    ///     assert_eq!(net.connections(), 0);
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    pub fn connections(&self) -> usize {
        self.with(|s, _| s.net.conns.len())
    }

    /// The link between hosts `a` and `b` (both ways) from now on: its latency, jitter,
    /// and datagrams' loss, duplication and reordering. Messages already on their way keep
    /// their delays.
    ///
    /// # Panics
    ///
    /// If a host does not exist, or `a` is `b` (a host's loopback is not a link).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery_sim::Link;
    ///
    /// hatchery_sim::Sim::new(0).run(async {
    ///     let net = hatchery_sim::net();
    ///     net.host("far", || std::future::pending::<()>());
    ///     net.set_link("main", "far", Link { latency: Duration::from_millis(80), ..Link::default() });
    /// });
    /// ```
    pub fn set_link(&self, a: &str, b: &str, link: Link) {
        self.with(|s, _| {
            let (a, b) = (s.net.host_named(a), s.net.host_named(b));
            assert_ne!(a, b, "hatchery-sim: a link is between two hosts");
            s.net.links.insert((a.min(b), a.max(b)), link);
        });
    }

    /// Cuts hosts `a` and `b` off from each other, both ways, until
    /// [`heal`](Net::heal)ed: datagrams between them are lost, and TCP segments (and
    /// connection attempts) wait, as TCP retransmits, to arrive once the partition is
    /// healed. A peer on the other side hears nothing: an operation that waits for it
    /// waits until the partition heals, or until the enclosing scope's deadline.
    ///
    /// # Panics
    ///
    /// If a host does not exist, or `a` is `b`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::net::{TcpListener, TcpStream};
    ///
    /// hatchery_sim::Sim::new(3).run(async {
    ///     let net = hatchery_sim::net();
    ///     net.host("server", || async {
    ///         let listener = TcpListener::bind("0.0.0.0:80").await?;
    ///         let (_conn, _) = listener.accept().await?;
    ///         std::future::pending::<std::io::Result<()>>().await
    ///     });
    ///     net.partition("main", "server");
    ///     let cut = hatchery::move_on_after(Duration::from_secs(5), TcpStream::connect(("server", 80)));
    ///     assert!(cut.await.is_none()); // no answer: the deadline ends it
    ///     net.heal("main", "server");
    ///     assert!(TcpStream::connect(("server", 80)).await.is_ok());
    /// });
    /// ```
    pub fn partition(&self, a: &str, b: &str) {
        self.with(|s, _| {
            let (a, b) = s.net.link_between(a, b, "a partition");
            s.net.set_cut(a, b, |c| c.partitioned = true);
            s.net.set_cut(b, a, |c| c.partitioned = true);
            s.recorder.push(Event::Partition(a as u64, b as u64));
        });
    }

    /// Cuts the messages from host `from` to host `to`, and only those, until
    /// [`heal_oneway`](Net::heal_oneway) (or [`heal`](Net::heal)): a one-way partition,
    /// as a firewall rule or a broken route in one direction makes. `to` hears nothing
    /// from `from` (its TCP segments and connection attempts wait, its datagrams are
    /// lost), while `to`'s messages reach `from`.
    ///
    /// # Panics
    ///
    /// If a host does not exist, or `from` is `to`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::net::UdpSocket;
    ///
    /// hatchery_sim::Sim::new(0).run(async {
    ///     let net = hatchery_sim::net();
    ///     net.host("peer", || async {
    ///         let socket = UdpSocket::bind("0.0.0.0:9").await?;
    ///         let mut buf = [0; 16];
    ///         loop {
    ///             let (n, from) = socket.recv_from(&mut buf).await?;
    ///             socket.send_to(&buf[..n], from).await?;
    ///         }
    ///         #[allow(unreachable_code)]
    ///         std::io::Result::Ok(())
    ///     });
    ///     let socket = UdpSocket::bind("0.0.0.0:0").await?;
    ///     socket.connect(("peer", 9)).await?;
    ///     net.partition_oneway("peer", "main"); // the answers are lost
    ///     socket.send(b"ping").await?;
    ///     let mut buf = [0; 16];
    ///     let answer = hatchery::move_on_after(Duration::from_secs(1), socket.recv(&mut buf));
    ///     assert!(answer.await.is_none());
    ///     net.heal_oneway("peer", "main");
    ///     socket.send(b"ping").await?;
    ///     assert_eq!(socket.recv(&mut [0; 16]).await?, 4);
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn partition_oneway(&self, from: &str, to: &str) {
        self.with(|s, _| {
            let (a, b) = s.net.link_between(from, to, "a partition");
            s.net.set_cut(a, b, |c| c.partitioned = true);
            s.recorder.push(Event::PartitionOneway(a as u64, b as u64));
        });
    }

    /// Ends a partition between `a` and `b`, both ways (a one-way one included): the TCP
    /// segments that waited are on their way again (after a link's delay).
    ///
    /// # Panics
    ///
    /// If a host does not exist.
    ///
    /// # Examples
    ///
    /// See [`partition`](Net::partition).
    pub fn heal(&self, a: &str, b: &str) {
        let shared = self.shared.clone();
        self.with(|s, _| {
            let (a, b) = (s.net.host_named(a), s.net.host_named(b));
            s.net.set_cut(a, b, |c| c.partitioned = false);
            s.net.set_cut(b, a, |c| c.partitioned = false);
            s.recorder.push(Event::Heal(a as u64, b as u64));
            unstall(s, &shared);
        });
    }

    /// Ends the one-way partition from `from` to `to` (see
    /// [`partition_oneway`](Net::partition_oneway)); the other direction stays as it is.
    ///
    /// # Panics
    ///
    /// If a host does not exist.
    ///
    /// # Examples
    ///
    /// See [`partition_oneway`](Net::partition_oneway).
    pub fn heal_oneway(&self, from: &str, to: &str) {
        let shared = self.shared.clone();
        self.with(|s, _| {
            let (a, b) = (s.net.host_named(from), s.net.host_named(to));
            s.net.set_cut(a, b, |c| c.partitioned = false);
            s.recorder.push(Event::HealOneway(a as u64, b as u64));
            unstall(s, &shared);
        });
    }

    /// Holds every message between hosts `a` and `b`, both ways, until
    /// [`release`](Net::release)d: TCP segments, connection attempts and datagrams wait,
    /// none is lost, and all go on their way at the release (each after a link's delay:
    /// TCP in order, datagrams in any order the jitter gives). A network that stalls
    /// (a congested switch, a long GC pause of a middlebox) rather than one that drops.
    ///
    /// # Panics
    ///
    /// If a host does not exist, or `a` is `b`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::net::UdpSocket;
    ///
    /// hatchery_sim::Sim::new(0).run(async {
    ///     let net = hatchery_sim::net();
    ///     net.host("echo", || async {
    ///         let socket = UdpSocket::bind("0.0.0.0:7").await?;
    ///         let mut buf = [0; 16];
    ///         loop {
    ///             let (n, from) = socket.recv_from(&mut buf).await?;
    ///             socket.send_to(&buf[..n], from).await?;
    ///         }
    ///         #[allow(unreachable_code)]
    ///         std::io::Result::Ok(())
    ///     });
    ///     let socket = UdpSocket::bind("0.0.0.0:0").await?;
    ///     socket.connect(("echo", 7)).await?;
    ///     net.hold("main", "echo");
    ///     socket.send(b"later").await?;
    ///     let mut buf = [0; 16];
    ///     let held = hatchery::move_on_after(Duration::from_secs(5), socket.recv(&mut buf));
    ///     assert!(held.await.is_none()); // nothing comes back while held
    ///     net.release("main", "echo");
    ///     assert_eq!(socket.recv(&mut [0; 16]).await?, 5); // not lost: on its way now
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn hold(&self, a: &str, b: &str) {
        self.with(|s, _| {
            let (a, b) = s.net.link_between(a, b, "a hold");
            s.net.set_cut(a, b, |c| c.held = true);
            s.net.set_cut(b, a, |c| c.held = true);
            s.recorder.push(Event::Hold(a as u64, b as u64));
        });
    }

    /// Releases the messages held between `a` and `b` (see [`hold`](Net::hold)): each
    /// goes on its way, arriving after a link's delay.
    ///
    /// # Panics
    ///
    /// If a host does not exist.
    ///
    /// # Examples
    ///
    /// See [`hold`](Net::hold).
    pub fn release(&self, a: &str, b: &str) {
        let shared = self.shared.clone();
        self.with(|s, _| {
            let (a, b) = (s.net.host_named(a), s.net.host_named(b));
            s.net.set_cut(a, b, |c| c.held = false);
            s.net.set_cut(b, a, |c| c.held = false);
            s.recorder.push(Event::Release(a as u64, b as u64));
            unstall(s, &shared);
        });
    }

    /// Ends every partition, one-way ones included (holds stay).
    ///
    /// # Examples
    ///
    /// ```
    /// hatchery_sim::Sim::new(0).run(async {
    ///     let net = hatchery_sim::net();
    ///     net.host("a", || std::future::pending::<()>());
    ///     net.partition("main", "a");
    ///     net.heal_all();
    /// });
    /// ```
    pub fn heal_all(&self) {
        let shared = self.shared.clone();
        self.with(|s, _| {
            let cut: Vec<(usize, usize)> = s
                .net
                .cuts
                .iter()
                .filter(|(_, c)| c.partitioned)
                .map(|(&k, _)| k)
                .collect();
            for (a, b) in cut {
                s.net.set_cut(a, b, |c| c.partitioned = false);
                s.recorder.push(Event::HealOneway(a as u64, b as u64));
            }
            unstall(s, &shared);
        });
    }

    /// Resets every TCP connection between hosts `a` and `b` (either way; `a` may be
    /// `b`, for a host's connections to itself): both ends see `ConnectionReset` from
    /// their next read or write, and a read or write that waits is woken with it.
    ///
    /// # Panics
    ///
    /// If a host does not exist.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::net::{TcpListener, TcpStream};
    ///
    /// hatchery_sim::Sim::new(0).run(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0").await?;
    ///     let mut client = TcpStream::connect(listener.local_addr()?).await?;
    ///     let (_server, _) = listener.accept().await?;
    ///     hatchery_sim::net().reset("main", "main");
    ///     let err = client.read(&mut [0; 8]).await.unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    pub fn reset(&self, a: &str, b: &str) {
        self.with(|s, wake| {
            let (a, b) = (s.net.host_named(a), s.net.host_named(b));
            s.recorder.push(Event::Reset(a as u64, b as u64));
            let net = &mut s.net;
            let ids: Vec<u64> = net.conns.keys().copied().collect();
            for id in ids {
                let c = &net.conns[&id];
                let hosts = (c.ends[0].host, c.ends[1].host);
                if hosts != (a, b) && hosts != (b, a) {
                    continue;
                }
                let alive: Vec<bool> = c
                    .ends
                    .iter()
                    .map(|e| net.alive(e.host, e.life) && !e.closed)
                    .collect();
                let c = net.conns.get_mut(&id).expect("a connection");
                for (end, alive) in c.ends.iter_mut().zip(alive) {
                    if alive && !end.reset {
                        end.reset = true;
                        end.recv.clear();
                        end.out.clear();
                        end.wake_all(wake);
                    }
                }
            }
        });
    }

    /// Crashes `host` (see [`Host::crash`]).
    ///
    /// # Panics
    ///
    /// As [`Host::crash`].
    ///
    /// # Examples
    ///
    /// See [`Host::crash`].
    pub fn crash(&self, host: &str) {
        self.lookup(host).crash();
    }

    /// The disk of `host` from now on (see [`Disk`](crate::Disk)); what it holds stays.
    ///
    /// # Panics
    ///
    /// If there is no such host.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery_sim::Disk;
    ///
    /// hatchery_sim::Sim::new(0).run(async {
    ///     let net = hatchery_sim::net();
    ///     net.host("db", || std::future::pending::<()>());
    ///     net.set_disk("db", Disk { full: 0.01, ..Disk::default() });
    /// });
    /// ```
    pub fn set_disk(&self, host: &str, disk: crate::Disk) {
        self.with(|s, _| {
            let host = s.net.host_named(host);
            s.disks.set(host, disk);
        });
    }

    /// Pauses `host` (see [`Host::pause`]).
    ///
    /// # Panics
    ///
    /// As [`Host::pause`].
    ///
    /// # Examples
    ///
    /// See [`Host::pause`].
    pub fn pause(&self, host: &str) {
        self.lookup(host).pause();
    }

    /// Resumes `host` (see [`Host::resume`]).
    ///
    /// # Panics
    ///
    /// If there is no such host.
    ///
    /// # Examples
    ///
    /// See [`Host::pause`].
    pub fn resume(&self, host: &str) {
        self.lookup(host).resume();
    }

    /// Restarts `host` (see [`Host::restart`]).
    ///
    /// # Panics
    ///
    /// As [`Host::restart`].
    ///
    /// # Examples
    ///
    /// See [`Host::crash`].
    pub fn restart(&self, host: &str) {
        self.lookup(host).restart();
    }

    /// Injects faults drawn from the seed among the hosts that `faults` names, for as
    /// long as it runs: a future to run beside the scenario (spawn it into the test's
    /// nursery, and cancel it when the scenario is done). A fault starts every drawn
    /// pause ([`Faults::every`], counted from the start of the one before), lasts a drawn
    /// time ([`Faults::lasting`]), and is then repaired (a partition healed, a hold
    /// released, a crashed host restarted, a paused one resumed); a reset is over at
    /// once. Faults overlap: one that lasts longer than the pause before the next is
    /// still in force when the next starts, so a host crashes during a partition, a
    /// partition starts during a crash, a paused host is partitioned. A fault that would
    /// repeat one in force (the same pair partitioned or held again, a host that is down
    /// crashed, a paused one paused) is not injected. Those in force when the future is
    /// dropped are repaired then.
    ///
    /// # Cancel safety
    ///
    /// Meant to be cancelled: dropped or cancelled where it waits, it repairs the faults
    /// in force (heals the partitions, releases the holds, restarts and resumes the
    /// hosts) and injects no more.
    ///
    /// # Panics
    ///
    /// If a host it names does not exist, or it names fewer than two hosts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery_sim::Faults;
    ///
    /// hatchery_sim::Sim::new(4).run(async {
    ///     let net = hatchery_sim::net();
    ///     net.host("server", || std::future::pending::<()>());
    ///     let faults = Faults::between(["main", "server"]).every(Duration::from_millis(100)..Duration::from_secs(1));
    ///     // One minute of simulated faults, at once in real time.
    ///     hatchery::move_on_after(Duration::from_secs(60), net.random_faults(faults)).await;
    /// });
    /// ```
    pub async fn random_faults(&self, faults: Faults) {
        assert!(
            faults.hosts.len() >= 2,
            "hatchery-sim: random faults need two hosts at least"
        );
        let hosts: Vec<usize> = faults
            .hosts
            .iter()
            .map(|name| self.lookup(name).index)
            .collect();
        let weights = faults.weights();
        let total: u32 = weights.iter().sum();
        if total == 0 {
            return std::future::pending().await;
        }
        let mut active = InForce {
            net: self.clone(),
            faults: Vec::new(),
        };
        let first = self.with(|s, _| draw(&mut s.net.rng, &faults.every));
        let mut next = hatchery::now() + first;
        loop {
            let end = active.faults.iter().map(|(end, _)| *end).min();
            let wake = end.map_or(next, |end| end.min(next));
            hatchery::sleep_until(wake).await;
            let now = hatchery::now();
            active.repair_until(now);
            if now < next {
                continue;
            }
            let (kind, a, b, length, pause) = self.with(|s, _| {
                let rng = &mut s.net.rng;
                let mut pick = rng.u32(0..total);
                let kind = weights
                    .iter()
                    .position(|&w| {
                        let hit = pick < w;
                        pick = pick.saturating_sub(w);
                        hit
                    })
                    .expect("a kind under the total");
                let a = rng.usize(0..hosts.len());
                let mut b = rng.usize(0..hosts.len() - 1);
                if b >= a {
                    b += 1;
                }
                (
                    kind,
                    hosts[a],
                    hosts[b],
                    draw(rng, &faults.lasting),
                    draw(rng, &faults.every),
                )
            });
            next = now + pause;
            // A crash or a pause strikes the one of the two that is not `main`.
            let victim = if a == ROOT_HOST { b } else { a };
            let fault = match kind {
                0 => Fault::Partition(a, b),
                1 => Fault::Oneway(a, b),
                2 => Fault::Hold(a, b),
                3 => Fault::Crash(victim),
                4 => Fault::Pause(victim),
                _ => {
                    let (a, b) = self
                        .with(|s, _| (s.net.hosts[a].name.clone(), s.net.hosts[b].name.clone()));
                    self.reset(&a, &b);
                    continue;
                }
            };
            if active.admits(&fault) {
                active.inject(fault, now + length);
            }
        }
    }
}

/// A fault of [`Net::random_faults`] that lasts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Partition(usize, usize),
    /// From the first host to the second.
    Oneway(usize, usize),
    Hold(usize, usize),
    Crash(usize),
    Pause(usize),
}

impl Fault {
    /// The pair of hosts of a fault of a link, lower first.
    fn pair(self) -> Option<(usize, usize)> {
        match self {
            Fault::Partition(a, b) | Fault::Oneway(a, b) | Fault::Hold(a, b) => {
                Some((a.min(b), a.max(b)))
            }
            _ => None,
        }
    }
}

/// The faults of [`Net::random_faults`] in force, with their ends: repaired when they
/// end, or all at once when dropped.
struct InForce {
    net: Net,
    faults: Vec<(Instant, Fault)>,
}

impl InForce {
    /// Whether `fault` may start now: it does not repeat one in force, and its host is
    /// there to strike.
    fn admits(&self, fault: &Fault) -> bool {
        let net = &self.net;
        match *fault {
            Fault::Crash(h) if h == ROOT_HOST => false,
            Fault::Pause(h) if h == ROOT_HOST => false,
            Fault::Crash(h) => net.with(|s, _| s.net.is_up(h)),
            Fault::Pause(h) => net.with(|s, _| s.net.is_up(h) && !s.is_paused(h)),
            f => !self.faults.iter().any(|(_, g)| g.pair() == f.pair()),
        }
    }

    fn inject(&mut self, fault: Fault, end: Instant) {
        let name = |h: usize| self.net.with(|s, _| s.net.hosts[h].name.clone());
        match fault {
            Fault::Partition(a, b) => self.net.partition(&name(a), &name(b)),
            Fault::Oneway(a, b) => self.net.partition_oneway(&name(a), &name(b)),
            Fault::Hold(a, b) => self.net.hold(&name(a), &name(b)),
            Fault::Crash(h) => self.net.lookup(&name(h)).crash(),
            Fault::Pause(h) => self.net.lookup(&name(h)).pause(),
        }
        self.faults.push((end, fault));
    }

    fn repair(&self, fault: Fault) {
        let name = |h: usize| self.net.with(|s, _| s.net.hosts[h].name.clone());
        match fault {
            Fault::Partition(a, b) => self.net.heal(&name(a), &name(b)),
            Fault::Oneway(a, b) => self.net.heal_oneway(&name(a), &name(b)),
            Fault::Hold(a, b) => self.net.release(&name(a), &name(b)),
            Fault::Crash(h) => {
                let host = self.net.lookup(&name(h));
                if !host.is_up() {
                    host.restart();
                }
            }
            Fault::Pause(h) => self.net.lookup(&name(h)).resume(),
        }
    }

    /// Repairs the faults that end by `now`, in the order of their ends (then of their
    /// starts).
    fn repair_until(&mut self, now: Instant) {
        loop {
            let due = self
                .faults
                .iter()
                .enumerate()
                .filter(|(_, (end, _))| *end <= now)
                .min_by_key(|(i, (end, _))| (*end, *i))
                .map(|(i, _)| i);
            let Some(i) = due else {
                return;
            };
            let (_, fault) = self.faults.remove(i);
            self.repair(fault);
        }
    }
}

impl Drop for InForce {
    fn drop(&mut self) {
        for (_, fault) in std::mem::take(&mut self.faults) {
            self.repair(fault);
        }
    }
}

fn draw(rng: &mut fastrand::Rng, range: &Range<Duration>) -> Duration {
    let lo = u64::try_from(range.start.as_nanos()).unwrap_or(u64::MAX);
    let hi = u64::try_from(range.end.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(if hi > lo { rng.u64(lo..hi) } else { lo })
}

impl fmt::Debug for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Net")
            .field("seed", &self.shared.seed())
            .finish_non_exhaustive()
    }
}

impl Host {
    fn start(&self) {
        let (make, rt) = self.net.with(|s, _| {
            s.net.hosts[self.index]
                .make
                .clone()
                .expect("a host with a future")
        });
        let fut = make();
        let root = rt.clone();
        let task = Task::from_future(async move {
            hatchery::rt::enter_root(root, fut).await;
        });
        // Spawned as the host's (the executor's invariant 5).
        let caller = self
            .net
            .with(|s, _| std::mem::replace(&mut s.current_host, self.index));
        rt.spawn(task);
        self.net.with(|s, _| s.current_host = caller);
    }

    /// The host's name.
    ///
    /// # Examples
    ///
    /// See [`Host`].
    pub fn name(&self) -> String {
        self.net.with(|s, _| s.net.hosts[self.index].name.clone())
    }

    /// The host's address.
    ///
    /// # Examples
    ///
    /// See [`Host`].
    pub fn addr(&self) -> IpAddr {
        self.net.with(|s, _| IpAddr::V4(s.net.hosts[self.index].ip))
    }

    /// Whether the host is up: not crashed, or restarted since.
    ///
    /// # Examples
    ///
    /// See [`Host::crash`].
    pub fn is_up(&self) -> bool {
        self.net.with(|s, _| s.net.hosts[self.index].up)
    }

    /// Crashes the host, as a machine that loses its power: its tasks are dropped where
    /// they stand (before the simulator polls another task; no cleanup runs, shielded or
    /// not, as in a foreign drop, rule C8), its sockets are gone and its ports free (what
    /// they had sent is still on its way). Its peers hear nothing: their reads wait,
    /// their writes and connects wait for a host that is down (TCP retransmits), and
    /// their datagrams to it are lost. Once it [`restart`](Host::restart)s, a segment of
    /// theirs that reaches it is answered with a reset, as a rebooted machine answers
    /// a connection it does not know. A crash of a host that is down does nothing.
    ///
    /// # Panics
    ///
    /// For `main`, the host of the test's root, which cannot crash.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    ///
    /// hatchery_sim::Sim::new(0).run(async {
    ///     let starts = Arc::new(AtomicU32::new(0));
    ///     let counted = starts.clone();
    ///     let host = hatchery_sim::net().host("worker", move || {
    ///         counted.fetch_add(1, Ordering::SeqCst);
    ///         std::future::pending::<()>()
    ///     });
    ///     hatchery::checkpoint().await;
    ///     host.crash();
    ///     assert!(!host.is_up());
    ///     host.restart(); // runs its future again
    ///     hatchery::checkpoint().await;
    ///     assert_eq!(starts.load(Ordering::SeqCst), 2);
    /// });
    /// ```
    pub fn crash(&self) {
        assert_ne!(
            self.index, ROOT_HOST,
            "hatchery-sim: `main`, the host of the test's root, cannot crash"
        );
        self.net.with(|s, _| {
            let h = &mut s.net.hosts[self.index];
            if !h.up {
                return;
            }
            h.up = false;
            let life = h.life;
            h.life += 1;
            h.ports.clear();
            s.recorder.push(Event::Crash(self.index as u64));
            s.doom_host(self.index);
            drop_queued(s, self.index, life);
            crate::disk::crash(s, self.index);
        });
    }

    /// Pauses the host, as a process stopped (`SIGSTOP`) or a virtual machine frozen:
    /// its tasks stay where they are but do not run, until [`resume`](Host::resume)d.
    /// Its network goes on, as the kernel's does: messages to it arrive and wait in its
    /// sockets, what it had sent is on its way, its peers see it answer nothing. Its
    /// timers fire meanwhile, and their tasks run at the resume. Pausing a host that is
    /// paused, or down, does nothing.
    ///
    /// # Panics
    ///
    /// For `main`, the host of the test's root.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// hatchery_sim::Sim::new(0).run(async {
    ///     let ticks = Arc::new(AtomicU32::new(0));
    ///     let t = ticks.clone();
    ///     let host = hatchery_sim::net().host("ticker", move || {
    ///         let t = t.clone();
    ///         async move {
    ///             for _ in 0.. {
    ///                 hatchery::sleep(Duration::from_secs(1)).await;
    ///                 t.fetch_add(1, Ordering::SeqCst);
    ///             }
    ///         }
    ///     });
    ///     hatchery::sleep(Duration::from_millis(3500)).await;
    ///     host.pause();
    ///     assert!(host.is_paused());
    ///     hatchery::sleep(Duration::from_secs(10)).await;
    ///     assert_eq!(ticks.load(Ordering::SeqCst), 3); // frozen
    ///     host.resume();
    ///     assert!(!host.is_paused());
    ///     hatchery::sleep(Duration::from_millis(1500)).await;
    ///     assert_eq!(ticks.load(Ordering::SeqCst), 5); // the late tick, then the next
    /// });
    /// ```
    pub fn pause(&self) {
        assert_ne!(
            self.index, ROOT_HOST,
            "hatchery-sim: `main`, the host of the test's root, cannot be paused"
        );
        self.net.with(|s, _| {
            if !s.net.is_up(self.index) || s.is_paused(self.index) {
                return;
            }
            s.pause_host(self.index);
            s.recorder.push(Event::Pause(self.index as u64));
        });
    }

    /// Resumes a paused host (see [`pause`](Host::pause)): its tasks that became ready
    /// meanwhile run. Resuming a host that is not paused does nothing.
    ///
    /// # Examples
    ///
    /// See [`Host::pause`].
    pub fn resume(&self) {
        self.net.with(|s, _| {
            if !s.is_paused(self.index) {
                return;
            }
            s.resume_host(self.index);
            s.recorder.push(Event::Resume(self.index as u64));
        });
    }

    /// Whether the host is paused.
    ///
    /// # Examples
    ///
    /// See [`Host::pause`].
    pub fn is_paused(&self) -> bool {
        self.net.with(|s, _| s.is_paused(self.index))
    }

    /// Restarts a host that crashed: with a new life (its old sockets stay dead), it runs
    /// the future its [`make`](Net::host) function makes, again; TCP segments that waited
    /// for it are on their way.
    ///
    /// # Panics
    ///
    /// If the host is up.
    ///
    /// # Examples
    ///
    /// See [`Host::crash`].
    pub fn restart(&self) {
        let shared = self.net.shared.clone();
        self.net.with(|s, _| {
            let h = &mut s.net.hosts[self.index];
            assert!(
                !h.up,
                "hatchery-sim: the host `{}` is up: crash it before a restart",
                h.name
            );
            h.up = true;
            s.recorder.push(Event::Restart(self.index as u64));
            unstall(s, &shared);
        });
        self.start();
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host").field("index", &self.index).finish()
    }
}

/// Faults for [`Net::random_faults`] to draw from the seed: which hosts, how often, how
/// long each lasts, and the weights of the kinds (partitions, one-way partitions, holds,
/// crashes, pauses, resets).
///
/// By default: a fault every 0.5 to 2 s (from the start of the one before), lasting 0.1
/// to 1 s, every kind drawn alike (weights 1). Faults overlap when one lasts longer than
/// the pause before the next.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery_sim::Faults;
///
/// let partitions_only = Faults::between(["main", "server"])
///     .only()
///     .partitions(1)
///     .lasting(Duration::from_millis(50)..Duration::from_millis(500));
/// # drop(partitions_only);
/// ```
#[derive(Debug, Clone)]
pub struct Faults {
    hosts: Vec<String>,
    every: Range<Duration>,
    lasting: Range<Duration>,
    partition: u32,
    oneway: u32,
    hold: u32,
    crash: u32,
    pause: u32,
    reset: u32,
}

impl Faults {
    /// Faults among these hosts (by name): partitions, holds and resets between two of
    /// them, crashes and pauses of one of them (never `main`).
    ///
    /// # Examples
    ///
    /// See [`Faults`].
    pub fn between<I, S>(hosts: I) -> Faults
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Faults {
            hosts: hosts.into_iter().map(Into::into).collect(),
            every: Duration::from_millis(500)..Duration::from_secs(2),
            lasting: Duration::from_millis(100)..Duration::from_secs(1),
            partition: 1,
            oneway: 1,
            hold: 1,
            crash: 1,
            pause: 1,
            reset: 1,
        }
    }

    /// The weights of the kinds, in the order `random_faults` draws them.
    fn weights(&self) -> [u32; 6] {
        [
            self.partition,
            self.oneway,
            self.hold,
            self.crash,
            self.pause,
            self.reset,
        ]
    }

    /// Every kind's weight set to 0: to name the kinds wanted after it.
    ///
    /// # Examples
    ///
    /// See [`Faults`].
    pub fn only(self) -> Faults {
        Faults {
            partition: 0,
            oneway: 0,
            hold: 0,
            crash: 0,
            pause: 0,
            reset: 0,
            ..self
        }
    }

    /// The pause before each fault, from the start of the one before, drawn in this
    /// range.
    ///
    /// # Examples
    ///
    /// See [`Net::random_faults`].
    pub fn every(mut self, range: Range<Duration>) -> Faults {
        self.every = range;
        self
    }

    /// How long a fault lasts (all but a reset, which is over at once), drawn in this
    /// range.
    ///
    /// # Examples
    ///
    /// See [`Faults`].
    pub fn lasting(mut self, range: Range<Duration>) -> Faults {
        self.lasting = range;
        self
    }

    /// The weight of partitions (both ways) among the faults (0: none).
    ///
    /// # Examples
    ///
    /// ```
    /// let only_partitions = hatchery_sim::Faults::between(["a", "b"]).only().partitions(1);
    /// # drop(only_partitions);
    /// ```
    pub fn partitions(mut self, weight: u32) -> Faults {
        self.partition = weight;
        self
    }

    /// The weight of one-way partitions ([`Net::partition_oneway`]) among the faults
    /// (0: none).
    ///
    /// # Examples
    ///
    /// ```
    /// let one_way = hatchery_sim::Faults::between(["a", "b"]).only().one_way_partitions(1);
    /// # drop(one_way);
    /// ```
    pub fn one_way_partitions(mut self, weight: u32) -> Faults {
        self.oneway = weight;
        self
    }

    /// The weight of holds ([`Net::hold`]) among the faults (0: none).
    ///
    /// # Examples
    ///
    /// ```
    /// let no_holds = hatchery_sim::Faults::between(["a", "b"]).holds(0);
    /// # drop(no_holds);
    /// ```
    pub fn holds(mut self, weight: u32) -> Faults {
        self.hold = weight;
        self
    }

    /// The weight of crashes (each followed by a restart) among the faults (0: none).
    ///
    /// # Examples
    ///
    /// ```
    /// let no_crashes = hatchery_sim::Faults::between(["a", "b"]).crashes(0);
    /// # drop(no_crashes);
    /// ```
    pub fn crashes(mut self, weight: u32) -> Faults {
        self.crash = weight;
        self
    }

    /// The weight of pauses ([`Host::pause`], each followed by a resume) among the
    /// faults (0: none).
    ///
    /// # Examples
    ///
    /// ```
    /// let no_pauses = hatchery_sim::Faults::between(["a", "b"]).pauses(0);
    /// # drop(no_pauses);
    /// ```
    pub fn pauses(mut self, weight: u32) -> Faults {
        self.pause = weight;
        self
    }

    /// The weight of connection resets among the faults (0: none).
    ///
    /// # Examples
    ///
    /// ```
    /// let no_resets = hatchery_sim::Faults::between(["a", "b"]).resets(0);
    /// # drop(no_resets);
    /// ```
    pub fn resets(mut self, weight: u32) -> Faults {
        self.reset = weight;
        self
    }
}
