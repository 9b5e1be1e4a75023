//! The recipe: a client's connect and handshake, a server's accept loop, and a
//! certificate for tests. The book includes the parts between the `ANCHOR` lines.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_rustls::client::TlsStream as ClientTls;
use futures_rustls::rustls::crypto::ring;
use futures_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use futures_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use futures_rustls::server::TlsStream as ServerTls;
use futures_rustls::{TlsAcceptor, TlsConnector};
use hatchery::net::{serve, TcpListener, TcpStream, ToSocketAddrs};
use hatchery::{fail_after, NurseryError};

/// How long [`serve_tls`] gives a client to finish its handshake.
///
/// # Examples
///
/// ```
/// assert!(hatchery_tls_example::HANDSHAKE_TIMEOUT.as_secs() >= 1);
/// ```
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `addr` and makes a TLS handshake with it as the server `name`.
///
/// No timeout of its own: the caller's deadline covers the connect and the handshake,
/// as it covers any hatchery code (`fail_after(d, connect(..))`, or a scope around
/// more work).
///
/// # Cancel safety
///
/// Not cancel safe, and nothing is lost: dropped, or cancelled by the enclosing scope
/// while it waits (for the connection or for the server's half of the handshake), it
/// closes the socket it opened, and no connection is left behind.
///
/// # Errors
///
/// `InvalidInput` for a `name` that is no DNS name or IP address; the connect's
/// errors; the handshake's, of kind `InvalidData` (a certificate the client does not
/// trust, a name it is not for) or the socket's.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use hatchery::net::TcpListener;
/// use hatchery_tls_example::{connect, self_signed, serve_tls};
///
/// # hatchery_smol::run(async {
/// let (client, server) = self_signed(&["localhost", "127.0.0.1"])?;
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// hatchery::nursery(|n| async move {
///     n.spawn(async move {
///         serve_tls(listener, server, |mut tls| async move {
///             tls.write_all(b"hello over TLS").await?;
///             tls.close().await // close_notify, then the socket's write side
///         })
///         .await?;
///         Ok(())
///     });
///     // The connect and the handshake under the caller's deadline.
///     let deadline = Duration::from_secs(10);
///     let mut tls = hatchery::fail_after(deadline, connect(&client, addr, "localhost")).await??;
///     let mut got = String::new();
///     tls.read_to_string(&mut got).await?;
///     assert_eq!(got, "hello over TLS");
///     n.cancel(); // stops the server
///     Ok::<_, std::io::Error>(())
/// })
/// .await
/// .or_else(|e| if e.is_cancelled() { Ok(()) } else { Err(e) })?;
/// # Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
/// # }).unwrap();
/// ```
// ANCHOR: connect
// A TCP connect and a TLS handshake; the caller's deadline covers both.
pub async fn connect(
    config: &Arc<ClientConfig>,
    addr: impl ToSocketAddrs,
    name: &str,
) -> io::Result<ClientTls<TcpStream>> {
    let name = ServerName::try_from(name.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    TlsConnector::from(config.clone()).connect(name, tcp).await
}
// ANCHOR_END: connect

/// Serves TLS connections from `listener`, each in a task of its own: its handshake,
/// under [`HANDSHAKE_TIMEOUT`], then `handler` on the TLS stream.
///
/// A failed or slow handshake is the client's problem, not the server's: that
/// connection is closed and the error dropped (`hatchery::net::serve` stops at a
/// handler's error, rule N2, and a client that sends garbage must not stop the server).
/// A handler's own error stops it, as with `serve`: catch in the handler what should
/// not.
///
/// # Cancel safety
///
/// As `hatchery::net::serve`: when the enclosing scope is cancelled, it stops accepting,
/// every connection's handshake or handler is cancelled (their sockets closed), and it
/// returns once they have all ended.
///
/// # Errors
///
/// The errors of the handlers and the listener, as `serve`'s (it never returns
/// otherwise).
///
/// # Examples
///
/// See [`connect`].
// ANCHOR: serve
// Each connection's handshake, under a timeout, then `handler`, in a task of its own.
pub async fn serve_tls<H, Fut>(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    handler: H,
) -> Result<Infallible, NurseryError<io::Error>>
where
    H: Fn(ServerTls<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<()>> + Send + 'static,
{
    let acceptor = TlsAcceptor::from(config);
    let handler = Arc::new(handler);
    serve(listener, move |tcp: TcpStream| {
        // In the connection's task, not here: `serve` accepts the next connection
        // while this one makes its handshake.
        let (acceptor, handler) = (acceptor.clone(), handler.clone());
        async move {
            match fail_after(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => handler(tls).await,
                Ok(Err(_)) | Err(_) => Ok(()), // a failed or timed-out handshake
            }
        }
    })
    .await
}
// ANCHOR_END: serve

/// A certificate for `names` (DNS names or IP addresses), made now with rcgen, and a
/// client and a server configuration that use it: the server presents it, and the
/// client trusts it and nothing else. For tests over loopback; a real server loads its
/// certificate and key from files, and a real client trusts the system's roots
/// (rustls-native-certs) or webpki-roots.
///
/// Both use rustls with the *ring* crypto provider, TLS 1.3 and 1.2.
///
/// # Errors
///
/// `InvalidInput` for a name rcgen cannot put in a certificate; rustls' errors, as
/// `Other`.
///
/// # Examples
///
/// See [`connect`].
pub fn self_signed(names: &[&str]) -> io::Result<(Arc<ClientConfig>, Arc<ServerConfig>)> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let key = rcgen::generate_simple_self_signed(names)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let cert = key.cert.der().clone();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let provider = Arc::new(ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).map_err(io::Error::other)?;
    let client = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .map_err(io::Error::other)?;
    Ok((Arc::new(client), Arc::new(server)))
}
