//! The client: a pool of connections bounded by a `CapacityLimiter`, requests bounded by
//! the caller's deadline and by one of the library's own, retries with backoff, and a
//! graceful close.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hatchery::net::TcpStream;
use hatchery::sync::{CapacityLimiter, CapacityToken};
use hatchery::{
    current_effective_deadline, fail_after, join, move_on_after, now, retry, shield, Backoff,
};

use crate::protocol::{Call, Conn, Request, Response};
use crate::Error;

/// How long [`Client::close`] spends saying goodbye on its idle connections.
const GOODBYE: Duration = Duration::from_millis(100);

/// The client's settings.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery_kv_example::Config;
///
/// let config = Config {
///     pool_size: 16,
///     request_timeout: Duration::from_millis(250),
///     ..Config::default()
/// };
/// assert_eq!(config.attempts, 3);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// At most this many connections are open (and requests in flight) at once; more
    /// requests wait for one. 4 by default.
    pub pool_size: usize,
    /// The library's own bound on one attempt of a request: connecting (if no idle
    /// connection is at hand), sending and receiving. 1 s by default. The caller's
    /// deadline bounds the whole request besides.
    pub request_timeout: Duration,
    /// Attempts per request, the first included: connection failures and timeouts are
    /// retried, answers are not. 3 by default.
    pub attempts: usize,
    /// The delays between attempts: 50 ms doubling, with jitter, by default.
    pub backoff: Backoff,
    /// A deliberately broken variant, for the simulation tests only (`tests/sim.rs`):
    /// with `true`, a connection cut in the middle of an exchange (its attempt timed out,
    /// or its caller's deadline passed, while it waited for the answer) goes back to the
    /// pool if nothing failed on it, out of step, so that the next request on it reads
    /// the cut request's answer. `false` by default; never set it.
    #[doc(hidden)]
    pub keep_cut_connections: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            pool_size: 4,
            request_timeout: Duration::from_secs(1),
            attempts: 3,
            backoff: Backoff::new().with_min_delay(Duration::from_millis(50)),
            keep_cut_connections: false,
        }
    }
}

/// What a client has done so far: see [`Client::stats`].
///
/// # Examples
///
/// ```
/// use hatchery_kv_example::ClientStats;
///
/// let fresh = ClientStats::default();
/// assert_eq!((fresh.connections, fresh.attempts, fresh.retries), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientStats {
    /// Connections opened.
    pub connections: usize,
    /// Attempts made, first attempts and retries.
    pub attempts: usize,
    /// Attempts that were retries.
    pub retries: usize,
}

/// A client of the key-value server. Cheap to clone; clones share the pool.
///
/// It spawns nothing: every request runs in its caller's task, under its caller's
/// scopes, so the caller's deadlines and cancellations reach it (and its connection
/// attempts and socket operations) with no timeout parameter.
///
/// # Examples
///
/// See the [crate's](crate) example, and each method's.
///
/// ```
/// use std::net::SocketAddr;
/// use hatchery_kv_example::{Client, Config};
///
/// let addr: SocketAddr = "127.0.0.1:7878".parse().unwrap();
/// let client = Client::new(addr, Config::default()); // connects on its first request
/// let shared = client.clone(); // the same pool
/// assert_eq!(shared.stats().connections, 0);
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    addr: SocketAddr,
    config: Config,
    /// One token per open connection: the pool's bound.
    slots: CapacityLimiter,
    idle: Mutex<Vec<Conn>>,
    closed: AtomicBool,
    connections: AtomicUsize,
    attempts: AtomicUsize,
    retries: AtomicUsize,
}

/// A connection on loan from the pool, with its slot. Dropped, it goes back to the pool
/// if [`keep`](Lease::keep) was called (a whole exchange: the connection is in step), or
/// is closed.
struct Lease<'a> {
    inner: &'a Inner,
    conn: Option<Conn>,
    keep: bool,
    _slot: CapacityToken,
}

impl Client {
    /// A client of the server at `addr`. It connects when a request needs a connection.
    ///
    /// # Panics
    ///
    /// If `config.pool_size` or `config.attempts` is zero.
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use hatchery_kv_example::{Client, Config, Server};
    /// # hatchery_smol::run(async {
    /// # let listener = hatchery::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let addr = listener.local_addr()?;
    /// # let server = Server::new();
    /// # let s = server.clone();
    /// # hatchery::nursery(|n| async move {
    /// # n.spawn(hatchery::err_into(async move { s.run(listener, Duration::ZERO).await.map(drop) }));
    /// let client = Client::new(addr, Config { pool_size: 2, ..Config::default() });
    /// client.set("k", "v").await?; // connects now
    /// # server.shutdown();
    /// # anyhow::Ok(())
    /// # })
    /// # .await?;
    /// # anyhow::Ok(())
    /// # })
    /// # .unwrap();
    /// ```
    pub fn new(addr: SocketAddr, config: Config) -> Client {
        assert!(config.pool_size > 0, "kv: a pool of no connections");
        assert!(config.attempts > 0, "kv: no attempts");
        Client {
            inner: Arc::new(Inner {
                addr,
                slots: CapacityLimiter::new(config.pool_size),
                config,
                idle: Mutex::default(),
                closed: AtomicBool::new(false),
                connections: AtomicUsize::new(0),
                attempts: AtomicUsize::new(0),
                retries: AtomicUsize::new(0),
            }),
        }
    }

    /// The value of `key`, if it has one.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe as a read: nothing is changed on the server. If the caller's scope is
    /// cancelled meanwhile, the request stops where it waits and never returns; a
    /// connection left in the middle of the exchange is closed, never reused.
    ///
    /// # Errors
    ///
    /// [`Error`], after the attempts allowed.
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use hatchery_kv_example::{Client, Config, Server};
    /// # hatchery_smol::run(async {
    /// # let listener = hatchery::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let addr = listener.local_addr()?;
    /// # let server = Server::new();
    /// # let s = server.clone();
    /// # hatchery::nursery(|n| async move {
    /// # n.spawn(hatchery::err_into(async move { s.run(listener, Duration::ZERO).await.map(drop) }));
    /// let client = Client::new(addr, Config::default());
    /// assert_eq!(client.get("k").await?, None);
    /// client.set("k", "v").await?;
    /// assert_eq!(client.get("k").await?.as_deref(), Some("v"));
    /// # server.shutdown();
    /// # anyhow::Ok(())
    /// # })
    /// # .await?;
    /// # anyhow::Ok(())
    /// # })
    /// # .unwrap();
    /// ```
    pub async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        match self.call(Request::Get(key.to_string())).await? {
            Response::Value(v) => Ok(Some(v)),
            Response::None => Ok(None),
            other => Err(unexpected(other)),
        }
    }

    /// Sets `key` to `value`.
    ///
    /// # Cancel safety
    ///
    /// Cut short, the value may or may not have been set (the request may have reached
    /// the server), and the connection is closed, never reused out of step. If the
    /// caller's scope is cancelled meanwhile, the request stops where it waits and never
    /// returns.
    ///
    /// # Errors
    ///
    /// [`Error`], after the attempts allowed.
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use hatchery_kv_example::{Client, Config, Server};
    /// # hatchery_smol::run(async {
    /// # let listener = hatchery::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let addr = listener.local_addr()?;
    /// # let server = Server::new();
    /// # let s = server.clone();
    /// # hatchery::nursery(|n| async move {
    /// # n.spawn(hatchery::err_into(async move { s.run(listener, Duration::ZERO).await.map(drop) }));
    /// let client = Client::new(addr, Config::default());
    /// client.set("greeting", "hello, world").await?; // the value runs to the end of the line
    /// assert_eq!(client.get("greeting").await?.as_deref(), Some("hello, world"));
    /// # server.shutdown();
    /// # anyhow::Ok(())
    /// # })
    /// # .await?;
    /// # anyhow::Ok(())
    /// # })
    /// # .unwrap();
    /// ```
    pub async fn set(&self, key: &str, value: &str) -> Result<(), Error> {
        match self
            .call(Request::Set(key.to_string(), value.to_string()))
            .await?
        {
            Response::Ok => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes `key`; whether it had a value.
    ///
    /// # Cancel safety
    ///
    /// As [`set`](Client::set).
    ///
    /// # Errors
    ///
    /// [`Error`], after the attempts allowed.
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use hatchery_kv_example::{Client, Config, Server};
    /// # hatchery_smol::run(async {
    /// # let listener = hatchery::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let addr = listener.local_addr()?;
    /// # let server = Server::new();
    /// # let s = server.clone();
    /// # hatchery::nursery(|n| async move {
    /// # n.spawn(hatchery::err_into(async move { s.run(listener, Duration::ZERO).await.map(drop) }));
    /// let client = Client::new(addr, Config::default());
    /// client.set("k", "v").await?;
    /// assert!(client.del("k").await?);
    /// assert!(!client.del("k").await?); // gone already
    /// # server.shutdown();
    /// # anyhow::Ok(())
    /// # })
    /// # .await?;
    /// # anyhow::Ok(())
    /// # })
    /// # .unwrap();
    /// ```
    pub async fn del(&self, key: &str) -> Result<bool, Error> {
        match self.call(Request::Del(key.to_string())).await? {
            Response::Deleted => Ok(true),
            Response::None => Ok(false),
            other => Err(unexpected(other)),
        }
    }

    /// Asks the server to wait `delay` before it answers: a slow request, to try
    /// deadlines with.
    ///
    /// # Cancel safety
    ///
    /// As [`get`](Client::get).
    ///
    /// # Errors
    ///
    /// [`Error`], after the attempts allowed.
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use hatchery_kv_example::{Client, Config, Server};
    /// # hatchery_smol::run(async {
    /// # let listener = hatchery::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let addr = listener.local_addr()?;
    /// # let server = Server::new();
    /// # let s = server.clone();
    /// # hatchery::nursery(|n| async move {
    /// # n.spawn(hatchery::err_into(async move { s.run(listener, Duration::ZERO).await.map(drop) }));
    /// let client = Client::new(addr, Config::default());
    /// // The caller's deadline cuts it: no error, no value.
    /// let cut = hatchery::move_on_after(Duration::from_millis(10), client.wait(Duration::from_secs(1)));
    /// assert!(cut.await.is_none());
    /// # server.shutdown();
    /// # anyhow::Ok(())
    /// # })
    /// # .await?;
    /// # anyhow::Ok(())
    /// # })
    /// # .unwrap();
    /// ```
    pub async fn wait(&self, delay: Duration) -> Result<(), Error> {
        match self.call(Request::Wait(delay)).await? {
            Response::Ok => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// What the client has done so far.
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use hatchery_kv_example::{Client, Config, Server};
    /// # hatchery_smol::run(async {
    /// # let listener = hatchery::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let addr = listener.local_addr()?;
    /// # let server = Server::new();
    /// # let s = server.clone();
    /// # hatchery::nursery(|n| async move {
    /// # n.spawn(hatchery::err_into(async move { s.run(listener, Duration::ZERO).await.map(drop) }));
    /// let client = Client::new(addr, Config::default());
    /// client.get("a").await?;
    /// client.get("b").await?;
    /// let stats = client.stats();
    /// assert_eq!((stats.connections, stats.attempts, stats.retries), (1, 2, 0));
    /// # server.shutdown();
    /// # anyhow::Ok(())
    /// # })
    /// # .await?;
    /// # anyhow::Ok(())
    /// # })
    /// # .unwrap();
    /// ```
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            connections: self.inner.connections.load(Ordering::SeqCst),
            attempts: self.inner.attempts.load(Ordering::SeqCst),
            retries: self.inner.retries.load(Ordering::SeqCst),
        }
    }

    /// Closes the client: later requests fail with [`Error::Closed`], and the idle
    /// connections say `QUIT` to the server (all at once, within 100 ms) and close.
    /// Connections on loan close when their requests end.
    ///
    /// # Cancel safety
    ///
    /// The goodbye runs in a shield, bounded: a close in a cancelled scope still says
    /// it, and returns within 100 ms.
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use hatchery_kv_example::{Client, Config, Server};
    /// # hatchery_smol::run(async {
    /// # let listener = hatchery::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let addr = listener.local_addr()?;
    /// # let server = Server::new();
    /// # let s = server.clone();
    /// # hatchery::nursery(|n| async move {
    /// # n.spawn(hatchery::err_into(async move { s.run(listener, Duration::ZERO).await.map(drop) }));
    /// let client = Client::new(addr, Config::default());
    /// client.set("k", "v").await?;
    /// client.close().await;
    /// assert!(matches!(client.get("k").await, Err(hatchery_kv_example::Error::Closed)));
    /// # server.shutdown();
    /// # anyhow::Ok(())
    /// # })
    /// # .await?;
    /// # anyhow::Ok(())
    /// # })
    /// # .unwrap();
    /// ```
    // ANCHOR: close
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let idle = std::mem::take(&mut *self.inner.idle.lock().unwrap());
        let goodbyes = idle.into_iter().map(|mut conn| async move {
            // A server that is gone cannot be told: nothing to do about it.
            let _ = conn.write_line(&Request::Quit).await;
        });
        shield(move_on_after(GOODBYE, join(goodbyes))).await;
    }
    // ANCHOR_END: close

    // ANCHOR: call
    /// One request, with its retries.
    async fn call(&self, request: Request) -> Result<Response, Error> {
        let inner = &*self.inner;
        if inner.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        let (config, request) = (&inner.config, &request);
        let attempt = move || async move {
            inner.attempts.fetch_add(1, Ordering::SeqCst);
            // The library's own bound on one attempt: `Elapsed` becomes `Error::Timeout`.
            fail_after(config.request_timeout, inner.attempt(request)).await?
        };
        let retries = retry(attempt)
            .when(Error::is_retryable)
            .notify(|_, _| {
                inner.retries.fetch_add(1, Ordering::SeqCst);
            })
            .backoff(config.backoff.clone())
            .max_attempts(config.attempts);
        // The caller's deadline bounds the whole call: its scope cancels it. Retries that
        // would start after it are not started, so that the caller gets the last error
        // (with time to act on it) rather than nothing.
        match current_effective_deadline().remaining(now()) {
            Some(left) => retries.max_elapsed(left).await,
            None => retries.await,
        }
    }
    // ANCHOR_END: call
}

// ANCHOR: pool
impl Inner {
    // ANCHOR: attempt
    /// One attempt: a connection from the pool, one exchange on it.
    async fn attempt(&self, request: &Request) -> Result<Response, Error> {
        let mut lease = self.lease().await?;
        let conn = lease.conn.as_mut().expect("a lease holds its connection");
        // The time this attempt has left: the earliest deadline around it, the caller's
        // or the library's own bound. The server is told, and stops working then.
        let budget = current_effective_deadline().remaining(now());
        conn.write_line(Call::new(request.clone(), budget)).await?;
        let line = conn.read_line().await?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection before it answered",
            )
        })?;
        let response = Response::parse(&line).ok_or_else(|| Error::Protocol(line.clone()))?;
        // A whole exchange: the connection is in step, and goes back to the pool.
        lease.keep = true;
        Ok(response)
    }
    // ANCHOR_END: attempt

    /// A connection on loan: an idle one, or a new one, once a slot is free.
    async fn lease(&self) -> Result<Lease<'_>, Error> {
        // Cancelled while it waits for a slot: it took none.
        let slot = self.slots.acquire().await;
        let idle = self.idle.lock().unwrap().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                // Cancelled mid-connect: the socket is closed, and the slot returns.
                let stream = TcpStream::connect(self.addr).await?;
                stream.set_nodelay(true)?;
                self.connections.fetch_add(1, Ordering::SeqCst);
                Conn::new(stream)
            }
        };
        Ok(Lease {
            inner: self,
            conn: Some(conn),
            keep: false,
            _slot: slot,
        })
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let conn = self.conn.take();
        // (`keep_cut_connections`: the deliberately broken variant of the tests, which
        // keeps a connection cut in the middle of an exchange, if nothing failed on it.)
        let cut = conn.as_ref().is_some_and(|c| !c.failed());
        let keep = self.keep || (self.inner.config.keep_cut_connections && cut);
        if keep && !self.inner.closed.load(Ordering::SeqCst) {
            self.inner.idle.lock().unwrap().extend(conn);
        }
        // Otherwise `conn` is dropped here, which closes it: cut in the middle of an
        // exchange, it could answer the next request with the last one's response.
    }
}

// ANCHOR_END: pool

/// An answer that does not fit the request.
fn unexpected(response: Response) -> Error {
    match response {
        Response::Err(message) => Error::Server(message),
        other => Error::Protocol(format!("unexpected answer {other}")),
    }
}
