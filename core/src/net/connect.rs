//! Connecting: `TcpConnector`, happy eyeballs, `ConnectError`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::net::SocketType;

use super::addr::{describe, resolve, Resolve, ToSocketAddrs};
use super::io::{current_network, enter, Io};
use super::{sys, TcpStream};
use crate::nursery::{nursery, Nursery};
use crate::scope::move_on_after;
use crate::sync::Event;

/// The default delay between the connection attempts of happy eyeballs: 250 ms, as
/// RFC 8305 recommends and trio uses.
pub const HAPPY_EYEBALLS_DELAY: Duration = Duration::from_millis(250);

/// Connects TCP streams, with options: how names are resolved, and the happy eyeballs
/// delay. [`TcpStream::connect`] is `TcpConnector::new().connect(..)`.
///
/// A host name is resolved (with the system's resolver unless [`resolver`] says
/// otherwise), and the addresses are tried with [`happy_eyeballs`]: IPv6 and IPv4
/// interleaved, a new attempt every [`happy_eyeballs_delay`] or as soon as the one
/// before failed, the first to connect wins, and the others are cancelled and closed.
///
/// Deadlines come from the enclosing cancel scopes, as for every hatchery operation:
/// wrap the connect in [`fail_after`](crate::fail_after) or
/// [`move_on_after`](crate::move_on_after), or let the caller's deadline apply.
///
/// A library that opens connections can take a `TcpConnector` in its configuration, so
/// that its users (and its tests) choose how names are resolved.
///
/// [`resolver`]: TcpConnector::resolver
/// [`happy_eyeballs_delay`]: TcpConnector::happy_eyeballs_delay
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::net::{TcpConnector, TcpListener};
///
/// # hatchery_smol::run(async {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let port = listener.local_addr()?.port();
/// let connector = TcpConnector::new().happy_eyeballs_delay(Duration::from_millis(100));
/// // "localhost" may be ::1 and 127.0.0.1: whichever connects first wins.
/// let stream = hatchery::fail_after(Duration::from_secs(10), connector.connect(("localhost", port)))
///     .await??;
/// assert_eq!(stream.peer_addr()?.port(), port);
/// # Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct TcpConnector {
    /// `None`: the system's.
    resolver: Option<Arc<dyn Resolve>>,
    delay: Duration,
}

impl TcpConnector {
    /// A connector with the system's resolver and a delay of [`HAPPY_EYEBALLS_DELAY`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::net::TcpConnector;
    ///
    /// # hatchery_smol::run(async {
    /// # let listener = hatchery::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let addr = listener.local_addr()?;
    /// let stream = TcpConnector::new().connect(addr).await?;
    /// # drop(stream);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn new() -> TcpConnector {
        TcpConnector {
            resolver: None,
            delay: HAPPY_EYEBALLS_DELAY,
        }
    }

    /// Resolves host names with `resolver` (see [`Resolve`]).
    ///
    /// # Examples
    ///
    /// See [`Resolve`].
    pub fn resolver(mut self, resolver: impl Resolve) -> TcpConnector {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// Starts the next connection attempt after `delay` if the one before has neither
    /// connected nor failed by then ([`HAPPY_EYEBALLS_DELAY`] by default). `Duration::ZERO`
    /// starts them all at once; `Duration::MAX`, one after the other.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::net::TcpConnector;
    ///
    /// // Try the addresses strictly one after the other.
    /// let sequential = TcpConnector::new().happy_eyeballs_delay(Duration::MAX);
    /// # drop(sequential);
    /// ```
    pub fn happy_eyeballs_delay(mut self, delay: Duration) -> TcpConnector {
        self.delay = delay;
        self
    }

    /// Connects to `addr`: an address, several (tried as happy eyeballs), or a host
    /// name and a port (resolved, then tried as happy eyeballs); see
    /// [`ToSocketAddrs`].
    ///
    /// A checkpoint: in a cancelled scope it does nothing.
    ///
    /// # Cancel safety
    ///
    /// Dropped before it completed (or when the enclosing scope is cancelled, which
    /// stops it at once, wherever it waits), no connection is made: every attempt under
    /// way is cancelled and its socket closed, and a name lookup of the system's
    /// resolver runs on to its end on its thread, its answer dropped (it cannot be
    /// interrupted). A connection a peer has already accepted is closed (the peer
    /// reads the end of the stream).
    ///
    /// # Panics
    ///
    /// Outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// * an invalid address string: `InvalidInput`, with the string;
    /// * a name that cannot be resolved: the resolver's error, with the name;
    /// * when every attempt failed: an error whose payload is a [`ConnectError`] with
    ///   each attempt's error (its kind is theirs if they all agree, as
    ///   `ConnectionRefused`, else `Other`);
    /// * a runtime without an I/O reactor: `Unsupported`, saying so.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::net::{ConnectError, TcpConnector, TcpListener};
    ///
    /// # hatchery_smol::run(async {
    /// // Nothing listens on a port just freed.
    /// let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
    /// let err = TcpConnector::new().connect(("127.0.0.1", port)).await.unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    /// assert!(err.to_string().starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")));
    /// let attempts = err.get_ref().and_then(|e| e.downcast_ref::<ConnectError>()).unwrap();
    /// assert_eq!(attempts.attempts().len(), 1);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        enter().await;
        let target = addr.target()?;
        let (addrs, name) = resolve(target, self.resolver.as_deref()).await?;
        race(name, addrs, self.delay, connect_addr).await
    }
}

impl Default for TcpConnector {
    fn default() -> TcpConnector {
        TcpConnector::new()
    }
}

impl fmt::Debug for TcpConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpConnector")
            .field(
                "resolver",
                &self.resolver.as_ref().map_or("system", |_| "custom"),
            )
            .field("happy_eyeballs_delay", &self.delay)
            .finish()
    }
}

/// Connects to one address: a socket of its family, a non-blocking connect, and a wait
/// until it is done. Dropped meanwhile, it closes the socket.
pub(crate) async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
    enter().await;
    if let Some(rt) = current_network() {
        let network = rt.network().expect("a runtime with a network");
        // Dropped before it is connected (cancelled), the stream abandons the attempt.
        let io = Io::Stream(network.connect_tcp(addr)?);
        io.connected().await?;
        return Ok(TcpStream::from_io(io));
    }
    Io::check_reactor()?;
    let fd = sys::socket(sys::family(&addr), SocketType::STREAM)?;
    // Registered once connecting, not before (see `start_connect`).
    let done = sys::start_connect(&fd, &addr)?;
    let io = Io::new(fd)?;
    if !done {
        io.connected().await?;
    }
    Ok(TcpStream::from_io(io))
}

/// Happy eyeballs (RFC 8305, as trio's `open_tcp_stream`): tries `addrs` with
/// `attempt`, starting the next attempt every `delay` or as soon as the latest one
/// failed, and returns the first success; the other attempts are cancelled and their
/// values (a second success) dropped.
///
/// The addresses are tried in the order of RFC 8305, section 4: the family of the first
/// address first, then IPv6 and IPv4 alternately, each family in its given order (a
/// resolver's order, which `getaddrinfo` has sorted by preference). Attempts run as
/// tasks of a [`nursery`], so they run in parallel and every one has ended when this
/// returns. One address is attempted inline, without a nursery.
///
/// [`TcpConnector::connect`] is this with `attempt` a TCP connect; use it directly to
/// race other kinds of connection by address (a connect and a handshake, say).
///
/// # Cancel safety
///
/// Dropped before it completed, or when the enclosing scope is cancelled (which stops
/// it at once), every attempt under way is cancelled; none is left behind, and nothing
/// is returned.
///
/// # Panics
///
/// Outside a hatchery runtime (with two or more addresses). If `attempt` or an attempt
/// panics, the other attempts are cancelled and the panic is resumed here.
///
/// # Errors
///
/// When every attempt failed: an error whose payload is a [`ConnectError`] with each
/// attempt's error in the order they were started. No address: `InvalidInput`.
///
/// # Examples
///
/// Which address wins when the first one hangs (on virtual time: no real wait):
///
/// ```
/// use std::time::Duration;
/// use hatchery::net::happy_eyeballs;
/// use hatchery::testing::{elapsed, virtual_time};
///
/// # hatchery_smol::run(virtual_time(async {
/// let addrs = ["[::1]:80".parse()?, "127.0.0.1:80".parse()?]; // never contacted
/// let winner = happy_eyeballs(addrs, Duration::from_millis(250), |addr| async move {
///     if addr.is_ipv6() {
///         std::future::pending::<()>().await; // hangs, and is cancelled
///     }
///     Ok(addr)
/// })
/// .await?;
/// assert!(winner.is_ipv4());
/// assert_eq!(elapsed(), Duration::from_millis(250)); // started after one delay
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # })).unwrap();
/// ```
pub async fn happy_eyeballs<T, F, Fut>(
    addrs: impl IntoIterator<Item = SocketAddr>,
    delay: Duration,
    attempt: F,
) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let addrs: Vec<SocketAddr> = addrs.into_iter().collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "happy eyeballs: no address to connect to",
        ));
    }
    race(None, addrs, delay, attempt).await
}

/// Happy eyeballs over at least one address; `name` (`host:port`) names the target in
/// errors, else the addresses do.
async fn race<T, F, Fut>(
    name: Option<String>,
    addrs: Vec<SocketAddr>,
    delay: Duration,
    mut attempt: F,
) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    if let [addr] = addrs[..] {
        return attempt(addr).await.map_err(|e| {
            let what = describe(name.as_deref(), &addrs);
            ConnectError::new(what, vec![(addr, e)]).into()
        });
    }
    let what = describe(name.as_deref(), &addrs);
    let addrs = interleave(addrs);
    let state = Arc::new(Mutex::new(Race {
        winner: None,
        failures: Vec::new(),
    }));
    let shared = state.clone();
    // Ends with `Cancelled` when a winner cancelled it before the body was done.
    let _ = nursery(|n: Nursery<Infallible>| async move {
        let last = addrs.len() - 1;
        for (i, addr) in addrs.into_iter().enumerate() {
            let fut = attempt(addr);
            let failed = Arc::new(Event::new());
            let (state, this_failed, group) = (shared.clone(), failed.clone(), n.clone());
            n.spawn(async move {
                match fut.await {
                    Ok(value) => {
                        let mut race = lock(&state);
                        if race.winner.is_some() {
                            drop(race);
                            // Lost to a winner that connected at the same time: closed.
                            drop(value);
                        } else {
                            race.winner = Some(value);
                            drop(race);
                            // The losers still under way are cancelled (and closed).
                            group.cancel();
                        }
                    }
                    Err(e) => {
                        lock(&state).failures.push((i, addr, e));
                        this_failed.set();
                    }
                }
                Ok(())
            });
            if i < last {
                // The next attempt starts after the delay, or as soon as this one fails.
                move_on_after(delay, failed.wait()).await;
            }
        }
        Ok(())
    })
    .await;
    let mut race = lock(&state);
    if let Some(winner) = race.winner.take() {
        return Ok(winner);
    }
    let mut failures = std::mem::take(&mut race.failures);
    drop(race);
    failures.sort_by_key(|f| f.0);
    let attempts = failures.into_iter().map(|(_, a, e)| (a, e)).collect();
    Err(ConnectError::new(what, attempts).into())
}

/// What the attempts of one race share.
struct Race<T> {
    winner: Option<T>,
    /// Each failed attempt: its place in the order, its address, its error.
    failures: Vec<(usize, SocketAddr, io::Error)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The order of RFC 8305, section 4: the first address's family first, then the two
/// families alternately, each in its own order.
fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first_v6) = addrs.first().map(SocketAddr::is_ipv6) else {
        return addrs;
    };
    let mut out = Vec::with_capacity(addrs.len());
    let (mut first, mut second): (VecDeque<SocketAddr>, VecDeque<SocketAddr>) =
        addrs.into_iter().partition(|a| a.is_ipv6() == first_v6);
    loop {
        match (first.pop_front(), second.pop_front()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

/// Every attempt to connect failed: the payload of the `io::Error` that
/// [`TcpConnector::connect`], [`TcpStream::connect`] and [`happy_eyeballs`] return then.
///
/// Its message names the target and gives each attempt's error, in the order the
/// attempts were started. The `io::Error`'s kind is the attempts' kind when they agree
/// (`ConnectionRefused`, `TimedOut`, ...), else `Other`; reach the attempts with
/// `get_ref()` and `downcast_ref`.
///
/// # Examples
///
/// ```
/// use hatchery::net::{ConnectError, TcpListener, TcpStream};
///
/// # hatchery_smol::run(async {
/// let a = TcpListener::bind("127.0.0.1:0").await?.local_addr()?; // closed at once
/// let b = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
/// let err = TcpStream::connect(&[a, b][..]).await.unwrap_err();
/// let failed: &ConnectError = err.get_ref().unwrap().downcast_ref().unwrap();
/// let tried: Vec<_> = failed.attempts().iter().map(|(addr, _)| *addr).collect();
/// assert_eq!(tried, [a, b]);
/// assert!(failed.attempts().iter().all(|(_, e)| e.kind() == std::io::ErrorKind::ConnectionRefused));
/// assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct ConnectError {
    target: String,
    attempts: Vec<(SocketAddr, io::Error)>,
}

impl ConnectError {
    fn new(target: String, attempts: Vec<(SocketAddr, io::Error)>) -> ConnectError {
        ConnectError { target, attempts }
    }

    /// Each attempt's address and error, in the order the attempts were started.
    ///
    /// # Examples
    ///
    /// See [`ConnectError`].
    pub fn attempts(&self) -> &[(SocketAddr, io::Error)] {
        &self.attempts
    }

    /// What was connected to: `host:port` as given, the one address, or "N addresses".
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::net::{ConnectError, TcpListener, TcpStream};
    ///
    /// # hatchery_smol::run(async {
    /// let addr = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    /// let err = TcpStream::connect(addr).await.unwrap_err();
    /// let failed: &ConnectError = err.get_ref().unwrap().downcast_ref().unwrap();
    /// assert_eq!(failed.target(), addr.to_string());
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The kind shared by every attempt's error, else `Other`.
    fn kind(&self) -> io::ErrorKind {
        let mut kinds = self.attempts.iter().map(|(_, e)| e.kind());
        let first = kinds.next().unwrap_or(io::ErrorKind::Other);
        match kinds.all(|k| k == first) {
            true => first,
            false => io::ErrorKind::Other,
        }
    }
}

impl fmt::Debug for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectError")
            .field("target", &self.target)
            .field("attempts", &self.attempts)
            .finish()
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.attempts[..] {
            [(_, e)] => write!(f, "cannot connect to {}: {e}", self.target),
            attempts => {
                write!(
                    f,
                    "cannot connect to {}: {} attempts failed",
                    self.target,
                    attempts.len()
                )?;
                for (i, (addr, e)) in attempts.iter().enumerate() {
                    let sep = if i == 0 { ": " } else { "; " };
                    write!(f, "{sep}{addr}: {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConnectError {}

impl From<ConnectError> for io::Error {
    fn from(e: ConnectError) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::interleave;

    #[test]
    fn interleaves_families_from_the_first() {
        // The addresses in a string, a space apart.
        let order = |addrs: &str| {
            let addrs = addrs.split(' ').map(|a| a.parse().unwrap()).collect();
            let out: Vec<String> = interleave(addrs).iter().map(|a| a.to_string()).collect();
            out.join(" ")
        };
        let v6_first = "[::1]:1 [::2]:1 [::3]:1 127.0.0.1:1 127.0.0.2:1";
        let interleaved = "[::1]:1 127.0.0.1:1 [::2]:1 127.0.0.2:1 [::3]:1";
        assert_eq!(order(v6_first), interleaved);
        let v4_first = "127.0.0.1:1 [::1]:1 [::2]:1";
        assert_eq!(order(v4_first), v4_first);
    }
}
