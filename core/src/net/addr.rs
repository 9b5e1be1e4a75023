//! Addresses and name resolution: `ToSocketAddrs`, `Resolve`, `SystemResolver`.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::pin::Pin;

/// What `connect` and `bind` take: one or more socket addresses, or a host name and a
/// port to resolve.
///
/// Implemented for [`SocketAddr`] (and its V4 and V6 forms), `(IpAddr, u16)` (and
/// `Ipv4Addr`, `Ipv6Addr`), `(&str, u16)` and `(String, u16)` (a host name or an IP
/// address, and a port), `&str` and `String` (`"host:port"`, `"127.0.0.1:80"`,
/// `"[::1]:80"`), and `&[SocketAddr]` and `Vec<SocketAddr>` (several addresses, tried
/// as happy eyeballs). Sealed, as std's and tokio's traits of the same name are not: the
/// way names are resolved is a [`Resolve`] of the [`TcpConnector`](super::TcpConnector).
///
/// A string that is not `host:port` is an error of kind
/// [`InvalidInput`](io::ErrorKind::InvalidInput) that quotes it, returned before any
/// resolution or connection is tried.
///
/// # Examples
///
/// ```
/// use std::net::{Ipv4Addr, SocketAddr};
/// use hatchery::net::{TcpListener, ToSocketAddrs};
///
/// async fn listen(addr: impl ToSocketAddrs) -> std::io::Result<SocketAddr> {
///     TcpListener::bind(addr).await?.local_addr()
/// }
///
/// # hatchery_smol::run(async {
/// assert!(listen("127.0.0.1:0").await?.is_ipv4());
/// assert!(listen((Ipv4Addr::LOCALHOST, 0)).await?.is_ipv4());
/// assert!(listen(("localhost", 0)).await?.ip().is_loopback()); // resolved
/// let err = listen("localhost").await.unwrap_err(); // no port
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub trait ToSocketAddrs: sealed::Sealed {}

#[allow(unreachable_pub)]
mod sealed {
    use std::net::SocketAddr;

    pub trait Sealed {
        /// The addresses, or the name to resolve.
        fn target(&self) -> std::io::Result<Target>;
    }

    /// What a [`ToSocketAddrs`](super::ToSocketAddrs) stands for.
    #[derive(Debug)]
    pub enum Target {
        /// Addresses, in order.
        Addrs(Vec<SocketAddr>),
        /// A name to resolve, with the port.
        Host(String, u16),
    }
}

pub(crate) use sealed::Target;

/// Implements `ToSocketAddrs` for each type, with the target that the closure-like body
/// makes of `self`.
macro_rules! targets {
    ($($ty:ty => |$this:ident| $body:expr;)*) => {$(
        impl ToSocketAddrs for $ty {}
        impl sealed::Sealed for $ty {
            fn target(&self) -> io::Result<Target> {
                let $this = self;
                $body
            }
        }
    )*};
}

targets! {
    SocketAddr => |a| Ok(Target::Addrs(vec![*a]));
    SocketAddrV4 => |a| Ok(Target::Addrs(vec![SocketAddr::V4(*a)]));
    SocketAddrV6 => |a| Ok(Target::Addrs(vec![SocketAddr::V6(*a)]));
    (IpAddr, u16) => |a| Ok(Target::Addrs(vec![SocketAddr::new(a.0, a.1)]));
    (Ipv4Addr, u16) => |a| Ok(Target::Addrs(vec![SocketAddr::new(a.0.into(), a.1)]));
    (Ipv6Addr, u16) => |a| Ok(Target::Addrs(vec![SocketAddr::new(a.0.into(), a.1)]));
    [SocketAddr] => |a| Ok(Target::Addrs(a.to_vec()));
    Vec<SocketAddr> => |a| Ok(Target::Addrs(a.clone()));
    (&str, u16) => |a| host_port(a.0, a.1);
    (String, u16) => |a| host_port(&a.0, a.1);
    String => |a| a.as_str().target();
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrs + ?Sized> sealed::Sealed for &T {
    fn target(&self) -> io::Result<Target> {
        (**self).target()
    }
}

impl ToSocketAddrs for str {}
impl sealed::Sealed for str {
    fn target(&self) -> io::Result<Target> {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return Ok(Target::Addrs(vec![addr]));
        }
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid socket address {self:?}: {why} (expected host:port)"),
            )
        };
        let (host, port) = self.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port = port.parse::<u16>().map_err(|_| bad("invalid port"))?;
        if host.starts_with('[') || host.ends_with(']') {
            return Err(bad("invalid IPv6 address"));
        }
        host_port(host, port).map_err(|_| bad("invalid host name"))
    }
}

/// A host (a name or an IP address) and a port.
fn host_port(host: &str, port: u16) -> io::Result<Target> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Target::Addrs(vec![SocketAddr::new(ip, port)]));
    }
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid host name {host:?}"),
        ));
    }
    Ok(Target::Host(host.to_owned(), port))
}

/// The future of [`Resolve::resolve`].
pub type Resolving = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static>>;

/// Resolves host names to socket addresses, for [`TcpConnector`](super::TcpConnector).
///
/// The default is [`SystemResolver`] (the system's `getaddrinfo`). Implement it to look
/// names up another way (a DNS client of your own, a cache), or to fake resolution in
/// tests. A closure `Fn(&str, u16) -> impl Future<Output = io::Result<Vec<SocketAddr>>>`
/// is one.
///
/// # Examples
///
/// A fake resolver that maps every name to loopback, for a test:
///
/// ```
/// use std::net::{Ipv4Addr, SocketAddr};
/// use hatchery::net::{TcpConnector, TcpListener};
///
/// # hatchery_smol::run(async {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let port = listener.local_addr()?.port();
/// let connector = TcpConnector::new().resolver(|_host: &str, port: u16| async move {
///     Ok(vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))])
/// });
/// let stream = connector.connect(("db.example.com", port)).await?;
/// assert_eq!(stream.peer_addr()?, listener.local_addr()?);
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `host`, each with `port`, in the order to try them.
    ///
    /// An empty list is taken as "no such host" (an error of kind `NotFound`).
    ///
    /// # Cancel safety
    ///
    /// It is awaited as part of a connect: if the enclosing scope is cancelled, or the
    /// connect dropped, the returned future is dropped where it waits. (The system
    /// resolver's lookup runs on to its end on a blocking thread; see
    /// [`SystemResolver`].)
    ///
    /// # Errors
    ///
    /// When the name cannot be resolved; a connect passes the error on, with the host
    /// name added to its message.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::net::{Resolve, SystemResolver};
    ///
    /// # hatchery_smol::run(async {
    /// let addrs = SystemResolver.resolve("localhost", 80).await?;
    /// assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    fn resolve(&self, host: &str, port: u16) -> Resolving;
}

impl<F, Fut> Resolve for F
where
    F: Fn(&str, u16) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static,
{
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        Box::pin(self(host, port))
    }
}

/// The system's resolver: `getaddrinfo` (std's `ToSocketAddrs`), run on the runtime's
/// blocking threads ([`run_blocking`](crate::run_blocking)); on a runtime with a network
/// of its own ([`Runtime::network`](crate::rt::Runtime::network): the simulator's), that
/// network's resolver, which answers at once.
///
/// `getaddrinfo` cannot be interrupted: when the enclosing scope is cancelled (or its
/// deadline passes) during a lookup, the connect stops at once, and the lookup goes on
/// to its end on its thread, its answer dropped. Each such lookup holds a blocking
/// thread meanwhile (the system's resolver timeout, typically some seconds per server).
///
/// # Examples
///
/// ```
/// use hatchery::net::{Resolve, SystemResolver};
///
/// # hatchery_smol::run(async {
/// let addrs = SystemResolver.resolve("127.0.0.1", 443).await?;
/// assert_eq!(addrs, ["127.0.0.1:443".parse().unwrap()]);
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        let host = host.to_owned();
        Box::pin(async move {
            // Asked when polled, in the runtime that awaits it.
            let network = crate::context::with_current(|c| {
                c.and_then(|c| c.rt.network().is_some().then(|| c.rt.clone()))
            });
            if let Some(rt) = network {
                let network = rt.network().expect("a runtime with a network");
                return network.resolve(&host, port);
            }
            crate::run_blocking(move || {
                std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
                    .map(Iterator::collect)
            })
            .await
        })
    }
}

/// Resolves `target` with `resolver` (names only; addresses as they are). The errors
/// name the host.
pub(crate) async fn resolve(
    target: Target,
    resolver: Option<&dyn Resolve>,
) -> io::Result<(Vec<SocketAddr>, Option<String>)> {
    match target {
        Target::Addrs(addrs) if addrs.is_empty() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no address to connect to or bind to",
        )),
        Target::Addrs(addrs) => Ok((addrs, None)),
        Target::Host(host, port) => {
            let found = match resolver {
                Some(r) => r.resolve(&host, port).await,
                None => SystemResolver.resolve(&host, port).await,
            };
            match found {
                Ok(addrs) if addrs.is_empty() => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("cannot resolve {host:?}: no addresses"),
                )),
                Ok(addrs) => Ok((addrs, Some(format!("{host}:{port}")))),
                Err(e) => Err(io::Error::new(
                    e.kind(),
                    format!("cannot resolve {host:?}: {e}"),
                )),
            }
        }
    }
}

/// `e`, of its kind, with a message that says what failed: "cannot `verb` to `target`".
pub(crate) fn cannot(verb: &str, target: impl fmt::Display, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot {verb} to {target}: {e}"))
}

/// What an error message calls the target: `host:port`, or the one address.
pub(crate) fn describe(name: Option<&str>, addrs: &[SocketAddr]) -> String {
    match (name, addrs) {
        (Some(name), _) => name.to_owned(),
        (None, [one]) => one.to_string(),
        (None, _) => format!("{} addresses", addrs.len()),
    }
}

impl fmt::Debug for dyn Resolve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolve")
    }
}
