//! The library's error: what crosses its boundary.

use std::fmt;
use std::io;

use hatchery::Elapsed;

/// What a request of the [`Client`](crate::Client) can fail with.
///
/// A deadline of the caller's is not among them: when the caller's scope is cancelled
/// (its timeout, its `cancel`), the request stops where it waits and never returns, and
/// the caller's scope does (hatchery's rule C3). `Timeout` is the library's own bound
/// on one request ([`Config::request_timeout`](crate::Config::request_timeout)).
///
/// # Examples
///
/// ```
/// use hatchery_kv_example::Error;
///
/// let e = Error::Server("unknown request \"FLY\"".into());
/// assert_eq!(e.to_string(), "server error: unknown request \"FLY\"");
/// assert!(!e.is_retryable()); // an answer
/// assert!(Error::Timeout.is_retryable());
/// ```
#[derive(Debug)]
pub enum Error {
    /// The connection failed: refused, reset, closed by the server mid-request.
    Io(io::Error),
    /// A request took longer than `Config::request_timeout`, on every attempt.
    Timeout,
    /// The server answered something the protocol does not allow.
    Protocol(String),
    /// The server did not understand the request (`ERR message`).
    Server(String),
    /// The client was closed.
    Closed,
}

impl Error {
    /// Whether another attempt may succeed: connection failures and timeouts, not
    /// answers.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io;
    /// use hatchery_kv_example::Error;
    ///
    /// assert!(Error::Io(io::ErrorKind::ConnectionReset.into()).is_retryable());
    /// assert!(!Error::Closed.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Io(_) | Error::Timeout)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "connection failed: {e}"),
            Error::Timeout => f.write_str("request timed out"),
            Error::Protocol(what) => write!(f, "protocol error: {what}"),
            Error::Server(message) => write!(f, "server error: {message}"),
            Error::Closed => f.write_str("client closed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// The library's own timeout (`fail_after` around one attempt).
impl From<Elapsed> for Error {
    fn from(_: Elapsed) -> Error {
        Error::Timeout
    }
}
