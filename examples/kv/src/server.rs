//! The server: a task per connection in a nursery, and a graceful stop.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use hatchery::net::{serve_in, TcpListener, TcpStream};
use hatchery::sync::{Event, Lock};
use hatchery::{move_on_after, now, nursery, shield, sleep, CancelScope};

use crate::log::{Log, Record};
use crate::protocol::{Call, Conn, Request, Response};

/// How long a connection whose request ran out of budget waits for its client to close
/// it (see `Server::serve`).
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A key-value server: one map, shared by every connection.
///
/// # Examples
///
/// A server on a loopback port, in a nursery, with a client of it; then a graceful stop:
///
/// ```
/// use std::time::Duration;
/// use hatchery::net::TcpListener;
/// use hatchery_kv_example::{Client, Config, Server, Stopped};
///
/// # hatchery_smol::run(async {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let server = Server::new();
/// let stopped = hatchery::nursery(|n| async move {
///     let running = n.spawn(hatchery::err_into(
///         server.clone().run(listener, Duration::from_secs(1)),
///     ));
///     let client = Client::new(addr, Config::default());
///     client.set("k", "v").await?;
///     server.shutdown();
///     Ok::<_, anyhow::Error>(running.join().await?)
/// })
/// .await?;
/// assert_eq!(stopped, Stopped::Gracefully); // the idle connection closed at once
/// # anyhow::Ok(())
/// # })
/// # .unwrap();
/// ```
#[derive(Default)]
pub struct Server {
    store: Mutex<BTreeMap<String, String>>,
    /// The write-ahead log, if the server keeps one ([`Server::open`]).
    log: Option<Lock<Log>>,
    /// Acknowledge a change before its log record is synced: a bug, planted for the
    /// crash tests to catch.
    ack_before_sync: AtomicBool,
    stop: Event,
    /// Requests still to be answered by closing the connection instead (a fault, for
    /// tests and demonstrations of retries).
    faults: AtomicUsize,
    connections: AtomicUsize,
    open: AtomicUsize,
    most_open: AtomicUsize,
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    expired: AtomicUsize,
    client_failures: AtomicUsize,
}

/// What a server has done so far: see [`Server::stats`].
///
/// # Examples
///
/// ```
/// use hatchery_kv_example::ServerStats;
///
/// assert_eq!(ServerStats::default().most_open, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub connections: usize,
    /// The most connections open at once.
    pub most_open: usize,
    /// Requests received.
    pub requests: usize,
    /// Requests received and not yet answered (or dropped). A request leaves this count
    /// as its answer is written, so a client that has read its answer never finds it
    /// counted here.
    pub in_flight: usize,
    /// Requests given up when their client's budget ran out (see
    /// [`Call`](crate::protocol::Call)).
    pub expired: usize,
    /// Connections that ended in an error of the client's (a reset, a bad line).
    pub client_failures: usize,
}

/// How a server's [`run`](Server::run) ended.
///
/// # Examples
///
/// See [`Server`]: a stop with nothing in hand ends `Gracefully`.
///
/// ```
/// use hatchery_kv_example::Stopped;
///
/// assert_ne!(Stopped::Gracefully, Stopped::AfterGrace);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection finished the request in hand, within the grace period.
    Gracefully,
    /// The grace period ended first: the connections still busy were cut.
    AfterGrace,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("keys", &self.store.lock().unwrap().len())
            .field("logged", &self.log.is_some())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server with an empty map.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = hatchery_kv_example::Server::new();
    /// assert_eq!(server.stats().connections, 0);
    /// ```
    pub fn new() -> Arc<Server> {
        Arc::default()
    }

    /// A server that keeps its map in a write-ahead log at `path` (made if missing): it
    /// starts with the map that the log's records make, and from then on appends every
    /// change to the log and syncs it before it answers `OK`, so that a change it
    /// acknowledged survives a crash. A record a crash tore is cut off when the log is
    /// opened again (it was never acknowledged). A change that cannot be logged (a full
    /// disk, an I/O error) is answered `ERR` and not made.
    ///
    /// # Cancel safety
    ///
    /// Dropped or cancelled, the log it opened is closed; it changes nothing but cutting
    /// a torn record off the log's end.
    ///
    /// # Errors
    ///
    /// The log cannot be opened, or read (after a few tries), or cut.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery_kv_example::Server;
    ///
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("kv-doc-open-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// let path = dir.join("kv.log");
    /// let server = Server::open(&path).await?;
    /// server.set("k", "v").await?; // what a `SET k v` request does: logged, synced
    /// drop(server);
    /// let again = Server::open(&path).await?; // a restart reads it back
    /// assert_eq!(again.get("k").as_deref(), Some("v"));
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # std::io::Result::Ok(())
    /// # })
    /// # .unwrap();
    /// ```
    pub async fn open(path: impl AsRef<Path>) -> io::Result<Arc<Server>> {
        let (log, map) = Log::open(path.as_ref()).await?;
        Ok(Arc::new(Server {
            store: Mutex::new(map),
            log: Some(Lock::new(log)),
            ..Server::default()
        }))
    }

    /// The value of `key` in the map, as a `GET` would answer.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = hatchery_kv_example::Server::new();
    /// assert_eq!(server.get("k"), None);
    /// ```
    pub fn get(&self, key: &str) -> Option<String> {
        self.store.lock().unwrap().get(key).cloned()
    }

    /// Sets `key` to `value`, as a `SET` would: logged and synced first, if the server
    /// keeps a log.
    ///
    /// # Cancel safety
    ///
    /// Cancelled while it waits for the log, nothing is done. Once it appends, it
    /// finishes (shielded): the change is logged and made, or, failing, neither.
    ///
    /// # Errors
    ///
    /// The log's (the disk is full, an I/O error): the change is not made.
    ///
    /// # Examples
    ///
    /// See [`Server::open`].
    pub async fn set(&self, key: &str, value: &str) -> io::Result<()> {
        self.change(Record::Set(key.to_owned(), value.to_owned()))
            .await
    }

    /// Plants a bug, for tests: answers a change before its log record is synced
    /// (synced just after the answer), so that a crash in between loses a change that
    /// was acknowledged.
    #[doc(hidden)]
    pub fn ack_before_sync(&self, on: bool) {
        self.ack_before_sync.store(on, Ordering::SeqCst);
    }

    /// Logs `record` (synced, unless the planted bug is on), then makes the change.
    async fn change(&self, record: Record) -> io::Result<()> {
        let Some(log) = &self.log else {
            record.apply(&mut self.store.lock().unwrap());
            return Ok(());
        };
        // A hatchery wait: cancelled here, nothing is done.
        let mut log = log.lock().await;
        let sync = !self.ack_before_sync.load(Ordering::SeqCst);
        // Once the append starts it finishes, whatever the caller's deadline, so that a
        // record is never left half written for the next one to follow.
        shield(async {
            log.append(&record, sync).await?;
            record.apply(&mut self.store.lock().unwrap());
            Ok(())
        })
        .await
    }

    /// Syncs the log (the planted bug's late sync).
    async fn sync_log(&self) -> io::Result<()> {
        match &self.log {
            Some(log) => shield(async { log.lock().await.sync().await }).await,
            None => Ok(()),
        }
    }

    /// Serves `listener` until [`shutdown`](Server::shutdown): then it stops accepting,
    /// closes the idle connections, lets the busy ones finish the request in hand (for
    /// up to `grace`, after which they are cut), and returns.
    ///
    /// Each connection is a task of a nursery of its own. A connection's failure (a
    /// client that resets, a line too long) ends that connection only, and is counted.
    ///
    /// # Cancel safety
    ///
    /// When the caller's scope is cancelled, every connection is cancelled where it
    /// waits, its socket closed, and this returns only once all have ended (as any
    /// nursery): the caller's scope then ends the work.
    ///
    /// # Errors
    ///
    /// The error of `accept` that stopped the server (other than running out of file
    /// descriptors, which it waits out).
    ///
    /// # Examples
    ///
    /// See [`Server`].
    // ANCHOR: run
    pub async fn run(
        self: Arc<Self>,
        listener: TcpListener,
        grace: Duration,
    ) -> io::Result<Stopped> {
        let serving = CancelScope::new();
        let grace_deadline = serving.handle();
        let served = serving
            .run(nursery(|n| async move {
                // Accepting is a scope of its own: the stop cancels it, and the nursery
                // still waits for the connections.
                let accepting = CancelScope::new();
                let stop_accepting = accepting.handle();
                let server = self.clone();
                n.spawn(async move {
                    server.stop.wait().await;
                    stop_accepting.cancel();
                    grace_deadline.set_deadline(now() + grace);
                    Ok(())
                });
                let server = self.clone();
                let handler = move |stream| server.clone().connection(stream);
                match accepting.run(serve_in(&n, listener, handler)).await {
                    None => Ok(()), // stopped: the nursery waits for the connections
                    Some(Err(e)) => Err(e),
                    Some(Ok(never)) => match never {},
                }
            }))
            .await;
        match served {
            Some(Ok(())) => Ok(Stopped::Gracefully),
            Some(Err(e)) => Err(e.into()),
            None => Ok(Stopped::AfterGrace),
        }
    }
    // ANCHOR_END: run

    /// Stops the server: see [`run`](Server::run). Idempotent; a server stopped before it
    /// runs returns at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery_kv_example::{Server, Stopped};
    ///
    /// # hatchery_smol::run(async {
    /// let listener = hatchery::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let server = Server::new();
    /// server.shutdown();
    /// assert_eq!(server.run(listener, Duration::from_secs(1)).await?, Stopped::Gracefully);
    /// # std::io::Result::Ok(())
    /// # })
    /// # .unwrap();
    /// ```
    pub fn shutdown(&self) {
        self.stop.set();
    }

    /// Answers the next `requests` requests by closing their connections without an
    /// answer, as a server that crashes would: what clients' retries are for.
    ///
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
    /// server.fail_next(1);
    /// assert_eq!(client.get("k").await?, None); // on the second attempt
    /// assert_eq!(client.stats().retries, 1);
    /// # server.shutdown();
    /// # anyhow::Ok(())
    /// # })
    /// # .await?;
    /// # anyhow::Ok(())
    /// # })
    /// # .unwrap();
    /// ```
    pub fn fail_next(&self, requests: usize) {
        self.faults.store(requests, Ordering::SeqCst);
    }

    /// What the server has done so far.
    ///
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
    /// client.get("k").await?;
    /// let stats = server.stats();
    /// assert_eq!((stats.connections, stats.requests, stats.in_flight), (1, 2, 0));
    /// # server.shutdown();
    /// # anyhow::Ok(())
    /// # })
    /// # .await?;
    /// # anyhow::Ok(())
    /// # })
    /// # .unwrap();
    /// ```
    pub fn stats(&self) -> ServerStats {
        ServerStats {
            connections: self.connections.load(Ordering::SeqCst),
            most_open: self.most_open.load(Ordering::SeqCst),
            requests: self.requests.load(Ordering::SeqCst),
            in_flight: self.in_flight.load(Ordering::SeqCst),
            expired: self.expired.load(Ordering::SeqCst),
            client_failures: self.client_failures.load(Ordering::SeqCst),
        }
    }

    /// Serves one connection. A failure of the client's ends it, not the server: the
    /// nursery's rule (a task's error fails it all) is for failures of the server's.
    async fn connection(self: Arc<Self>, stream: TcpStream) -> io::Result<()> {
        self.connections.fetch_add(1, Ordering::SeqCst);
        // Uncounted when the connection ends, cancelled (past the grace period) or not.
        let (_open, open) = Gauge::up(&self.open);
        self.most_open.fetch_max(open, Ordering::SeqCst);
        let served = self.serve(Conn::new(stream)).await;
        if served.is_err() {
            self.client_failures.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    // ANCHOR: serve
    async fn serve(&self, mut conn: Conn) -> io::Result<()> {
        loop {
            if self.stop.is_set() {
                return Ok(()); // stopping: no new request on this connection
            }
            // The next request, or the stop: an idle connection closes at once. A plain
            // race of two of hatchery's waits, the loser dropped: allowed (rule F5), and
            // both are cancel safe (a read that did not complete took nothing).
            let line = match first(conn.read_line(), self.stop.wait()).await {
                Some(line) => line?,
                None => return Ok(()),
            };
            let Some(line) = line else {
                return Ok(()); // the client closed the connection
            };
            self.requests.fetch_add(1, Ordering::SeqCst);
            // Counted until answered, cut or dropped: a guard, so that a cancellation
            // (the grace period's end) uncounts it too. Uncounted before its answer is
            // written: a client that has read the answer never finds it counted.
            let (in_flight, _) = Gauge::up(&self.in_flight);
            let call = match Call::parse(&line) {
                Ok(call) => call,
                Err(message) => {
                    drop(in_flight);
                    conn.write_line(&Response::Err(message)).await?;
                    continue;
                }
            };
            if self.take_fault() {
                return Ok(()); // closes the connection without an answer
            }
            // No longer than the client waits: past its budget, nobody reads the answer.
            // (No budget: `Duration::MAX`, no deadline, rule D3.)
            let budget = call.budget.unwrap_or(Duration::MAX);
            let Some(response) = move_on_after(budget, self.respond(call.request)).await else {
                self.expired.fetch_add(1, Ordering::SeqCst);
                drop(in_flight);
                // The client gives up now too, and closes the connection (out of step).
                // Let it close first: closed by the server, the client could see an error
                // an instant before its own deadline fired. A client that does not close
                // it gets a moment, then the connection closes all the same.
                let _ = move_on_after(CLOSE_WAIT, conn.read_line()).await;
                return Ok(());
            };
            let Some(response) = response else {
                return Ok(()); // QUIT
            };
            drop(in_flight);
            conn.write_line(&response).await?;
            if self.ack_before_sync.load(Ordering::SeqCst) {
                self.sync_log().await?; // the planted bug: synced after the answer
            }
        }
    }
    // ANCHOR_END: serve

    /// The answer to `request`; `None` for `QUIT`.
    async fn respond(&self, request: Request) -> Option<Response> {
        Some(match request {
            Request::Get(key) => match self.store.lock().unwrap().get(&key) {
                Some(value) => Response::Value(value.clone()),
                None => Response::None,
            },
            Request::Set(key, value) => match self.change(Record::Set(key, value)).await {
                Ok(()) => Response::Ok,
                Err(e) => Response::Err(format!("not saved: {e}")),
            },
            Request::Del(key) => {
                if !self.store.lock().unwrap().contains_key(&key) {
                    return Some(Response::None);
                }
                match self.change(Record::Del(key)).await {
                    Ok(()) => Response::Deleted,
                    Err(e) => Response::Err(format!("not saved: {e}")),
                }
            }
            Request::Ping => Response::Pong,
            Request::Wait(delay) => {
                sleep(delay).await;
                Response::Ok
            }
            Request::Quit => return None,
        })
    }

    /// Whether to fail this request (see [`fail_next`](Server::fail_next)).
    fn take_fault(&self) -> bool {
        self.faults
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// One more in a count of things in progress (open connections, requests in hand), for
/// as long as it lives.
struct Gauge<'a>(&'a AtomicUsize);

impl<'a> Gauge<'a> {
    /// Counts one more; the guard, and the count with it.
    fn up(counter: &'a AtomicUsize) -> (Gauge<'a>, usize) {
        let now = counter.fetch_add(1, Ordering::SeqCst) + 1;
        (Gauge(counter), now)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The output of `a`, or `None` if `b` completes first; the other is dropped.
async fn first<A: Future, B: Future>(a: A, b: B) -> Option<A::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        b.as_mut().poll(cx).map(|_| None)
    })
    .await
}
