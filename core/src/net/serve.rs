//! Serving connections: the `Listener` trait, `serve` and `serve_in`.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::task::Poll;
use std::time::Duration;

use crate::error::NurseryError;
use crate::nursery::{nursery, Nursery};
use crate::time::sleep;

/// How long [`serve_in`] waits before accepting again when the system is out of
/// resources (too many open files): trio's choice.
const OUT_OF_RESOURCES_PAUSE: Duration = Duration::from_millis(100);

/// Something that accepts connections, for [`serve`]: [`TcpListener`](super::TcpListener),
/// [`UnixListener`](super::UnixListener), or a listener of your own (a TLS acceptor
/// around one of those, say).
///
/// # Examples
///
/// A listener that hands out connections with `TCP_NODELAY` set:
///
/// ```
/// use hatchery::net::{Listener, TcpListener, TcpStream};
///
/// struct NoDelay(TcpListener);
///
/// impl Listener for NoDelay {
///     type Stream = TcpStream;
///
///     async fn accept_stream(&self) -> std::io::Result<TcpStream> {
///         let (stream, _peer) = self.0.accept().await?;
///         stream.set_nodelay(true)?;
///         Ok(stream)
///     }
/// }
/// # hatchery_smol::run(async {
/// # let listener = NoDelay(TcpListener::bind("127.0.0.1:0").await?);
/// # let _client = TcpStream::connect(listener.0.local_addr()?).await?;
/// # assert!(listener.accept_stream().await?.nodelay()?);
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub trait Listener: Send + Sync + 'static {
    /// The connections it accepts.
    type Stream: Send + 'static;

    /// Waits for the next connection and accepts it.
    ///
    /// Implementations should keep to the rules of hatchery's own listeners: a
    /// checkpoint, and cancel safe (a connection is not lost when the future is dropped
    /// before it completes). Do slow work per connection (a handshake) in the handler,
    /// not here: `serve` accepts one connection at a time.
    ///
    /// # Cancel safety
    ///
    /// hatchery's listeners: cancel safe (see [`TcpListener::accept`](super::TcpListener::accept)).
    ///
    /// # Errors
    ///
    /// As the listener's `accept`.
    ///
    /// # Examples
    ///
    /// See [`Listener`].
    fn accept_stream(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Several listeners as one (those of [`open_tcp_listeners`](super::open_tcp_listeners)
/// or [`TcpListener::bind_all`](super::TcpListener::bind_all), or a TCP and a Unix
/// listener of one stream type): [`accept_stream`](Listener::accept_stream) waits on all
/// of them at once and returns the first connection, so [`serve`] serves them all (trio's
/// `serve_listeners`).
///
/// Each accept looks at the listeners starting from one picked at random, so that a busy
/// listener does not starve the others. When one accept completes, the
/// others are dropped: an accept that did not complete took no connection, so none is
/// lost. An empty `Vec` is an error, never a wait for good.
///
/// # Examples
///
/// ```
/// use hatchery::net::{serve, Listener, TcpListener, TcpStream};
///
/// # hatchery_smol::run(async {
/// let listeners = vec![
///     TcpListener::bind("127.0.0.1:0").await?,
///     TcpListener::bind("127.0.0.1:0").await?,
/// ];
/// let second = listeners[1].local_addr()?;
/// let _client = TcpStream::connect(second).await?;
/// let stream = listeners.accept_stream().await?; // from whichever has one
/// assert_eq!(stream.local_addr()?, second);
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
impl<L: Listener> Listener for Vec<L> {
    type Stream = L::Stream;

    async fn accept_stream(&self) -> io::Result<L::Stream> {
        match &self[..] {
            [] => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "hatchery: accept on an empty list of listeners",
            )),
            [one] => one.accept_stream().await,
            many => {
                let mut accepts: Vec<_> =
                    many.iter().map(|l| Box::pin(l.accept_stream())).collect();
                let first = fastrand::usize(..many.len());
                poll_fn(|cx| {
                    let n = accepts.len();
                    for i in 0..n {
                        if let Poll::Ready(r) = accepts[(first + i) % n].as_mut().poll(cx) {
                            return Poll::Ready(r);
                        }
                    }
                    Poll::Pending
                })
                .await
            }
        }
    }
}

/// Serves connections: accepts them from `listener` for as long as it runs, and runs
/// `handler` on each as a task of a nursery of its own (so connections are served in
/// parallel). Returns only on an error.
///
/// **A handler's error stops the server**, as in trio's `serve_listeners`: the
/// nursery's rule (N2) applies, so every other connection is cancelled and closed,
/// and `serve` returns every error. That is a choice: no error is dropped silently,
/// and what a server does with a failed connection is written in its handler, where
/// it knows which failures are expected (a client that went away) and can log them. A
/// server that must outlive its clients' failures (most do) handles them there and
/// returns `Ok`; see the example. A panic in a handler stops the server too, and is
/// resumed in the caller. (The error type `E` also takes `accept`'s errors, hence
/// `From<io::Error>`: `io::Error`, `anyhow::Error`, or an error type of your own.)
///
/// Accepting goes on through errors that concern one connection only (one aborted
/// before it was accepted), and waits 100 ms and tries again when the system is out of
/// resources (`EMFILE`: too many open files); any other error of `accept` stops the
/// server and is returned, converted with `E::from`.
///
/// When the enclosing scope is cancelled (a graceful stop, a deadline), every
/// connection's handler is cancelled where it waits and its stream closed, and `serve`
/// returns once every handler has finished (as a nursery does, it then never completes:
/// the scope returns). To stop accepting but let the handlers finish, use [`serve_in`]
/// with a nursery of your own.
///
/// # Cancel safety
///
/// Like a [`nursery`]: when the enclosing scope is cancelled, accepting stops, and every
/// handler is cancelled and awaited (and its connection closed). Dropped from outside
/// hatchery, the handlers are cancelled without being awaited.
///
/// # Panics
///
/// Outside a hatchery runtime; to resume a handler's panic.
///
/// # Errors
///
/// [`NurseryError::Failed`] with the handlers' errors, or the error of `accept` that
/// stopped it.
///
/// # Examples
///
/// An echo server, run for a while with its address handed back through
/// [`Nursery::start`]:
///
/// ```
/// use std::time::Duration;
/// use hatchery::net::{serve, TcpListener, TcpStream};
///
/// async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
///     let mut buf = [0; 1024];
///     loop {
///         match stream.read(&mut buf).await? {
///             0 => return Ok(()),
///             n => stream.write_all(&buf[..n]).await?,
///         }
///     }
/// }
///
/// # hatchery_smol::run(async {
/// hatchery::nursery(|n| async move {
///     let addr = n
///         .start(|ready| async move {
///             let listener = TcpListener::bind("127.0.0.1:0").await?;
///             ready.started(listener.local_addr()?);
///             serve(listener, |stream| async move {
///                 // Keep serving others when one client fails: log and go on.
///                 if let Err(e) = echo(stream).await {
///                     eprintln!("client failed: {e}");
///                 }
///                 Ok::<_, std::io::Error>(())
///             })
///             .await?;
///             Ok(())
///         })
///         .await?;
///     let mut client = TcpStream::connect(addr).await?;
///     client.write_all(b"hello").await?;
///     let mut buf = [0; 5];
///     client.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hello");
///     n.cancel(); // stops the server, closing its connections
///     Ok::<_, std::io::Error>(())
/// })
/// .await?;
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn serve<L, H, Fut, E>(listener: L, handler: H) -> Result<Infallible, NurseryError<E>>
where
    L: Listener,
    H: FnMut(L::Stream) -> Fut + Send,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: From<io::Error> + Send + 'static,
{
    nursery(|n| async move { serve_in(&n, listener, handler).await.map_err(E::from) }).await
}

/// Accepts connections from `listener` and spawns `handler` on each into `nursery`:
/// [`serve`] with a nursery of your own (trio's `handler_nursery`).
///
/// The accepting runs in the caller; the handlers belong to `nursery`, under its
/// rules. So a scope around `serve_in` alone stops accepting and leaves the
/// connections being served: a graceful shutdown, with whatever deadline the
/// nursery's scope gives them (see the example). Errors of `accept` are handled as by
/// [`serve`] and returned; handler errors are the nursery's.
///
/// # Cancel safety
///
/// Cancel safe: when the enclosing scope is cancelled, or the future dropped, it stops
/// accepting (losing no connection: see [`TcpListener::accept`](super::TcpListener::accept));
/// the handlers it spawned are not affected, unless the nursery is in that scope.
///
/// # Errors
///
/// The error of `accept` that stopped it, or the nursery's refusal of a new task
/// (closed: its body has returned and every child has finished).
///
/// # Examples
///
/// A graceful stop: stop accepting at a signal, then give the connections being served
/// up to 5 seconds to finish.
///
/// ```
/// use std::time::Duration;
/// use hatchery::net::{serve_in, TcpListener, TcpStream};
/// use hatchery::CancelScope;
///
/// # hatchery_smol::run(async {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let accepting = CancelScope::new();
/// let stop_accepting = accepting.handle();
/// let served = hatchery::move_on_after(Duration::from_secs(5), hatchery::nursery(|n| async move {
///     n.spawn(async move {
///         let mut client = TcpStream::connect(addr).await?;
///         let mut answer = [0; 1];
///         client.write_all(b"?").await?;
///         client.read_exact(&mut answer).await?; // served
///         stop_accepting.cancel(); // a signal handler would
///         client.write_all(b"?").await?;
///         client.read_exact(&mut answer).await?; // still served
///         Ok(()) // the connection closes
///     });
///     let stopped = accepting
///         .run(serve_in(&n, listener, |mut stream: TcpStream| async move {
///             let mut question = [0; 1];
///             while stream.read(&mut question).await? == 1 {
///                 hatchery::sleep(Duration::from_millis(10)).await; // slow work
///                 stream.write_all(b"!").await?;
///             }
///             Ok(())
///         }))
///         .await;
///     assert!(stopped.is_none()); // stopped, not failed
///     Ok::<_, std::io::Error>(()) // the nursery waits for the handlers
/// }))
/// .await;
/// served.expect("finished within the 5 seconds")?;
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn serve_in<L, H, Fut, E>(
    nursery: &Nursery<E>,
    listener: L,
    mut handler: H,
) -> io::Result<Infallible>
where
    L: Listener,
    H: FnMut(L::Stream) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    loop {
        match listener.accept_stream().await {
            Ok(stream) => {
                nursery.try_spawn(handler(stream))?;
            }
            Err(e) if out_of_resources(&e) => sleep(OUT_OF_RESOURCES_PAUSE).await,
            Err(e) => return Err(e),
        }
    }
}

/// Whether `e` says the system is out of resources for now (file descriptors, buffer
/// space, memory): accepting may work again once some connections are gone.
fn out_of_resources(e: &io::Error) -> bool {
    use rustix::io::Errno;
    #[cfg(unix)]
    let errnos = [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM];
    #[cfg(windows)]
    let errnos = [Errno::MFILE, Errno::NOBUFS];
    e.kind() == io::ErrorKind::OutOfMemory
        || errnos.iter().any(|&errno| super::sys::is_errno(e, errno))
}
