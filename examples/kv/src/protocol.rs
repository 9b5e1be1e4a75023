//! The line protocol, and a connection that speaks it.
//!
//! One request a line, one response a line, UTF-8, each ended by `\n`:
//!
//! | request | response |
//! |---|---|
//! | `GET key` | `VALUE value`, or `NONE` |
//! | `SET key value` (the value runs to the end of the line) | `OK` |
//! | `DEL key` | `DELETED`, or `NONE` |
//! | `PING` | `PONG` |
//! | `WAIT ms` (a slow request: the server waits, then answers) | `OK` |
//! | `QUIT` | (the server closes the connection) |
//!
//! A request may start with `@ms `: the client waits at most `ms` milliseconds more for
//! the answer (its caller's deadline, or the library's own bound, whichever is sooner),
//! so the server stops working on it then ([`Call`]). A request the server does not
//! understand gets `ERR message`, and the connection stays open. Keys are one word; lines
//! are at most [`MAX_LINE`] bytes.

use std::fmt;
use std::io;
use std::time::Duration;

use hatchery::net::TcpStream;

/// The longest line either side accepts, `\n` included.
///
/// # Examples
///
/// ```
/// assert_eq!(hatchery_kv_example::protocol::MAX_LINE, 65536);
/// ```
pub const MAX_LINE: usize = 64 * 1024;

/// A request of the protocol; its `Display` is its line.
///
/// # Examples
///
/// ```
/// use hatchery_kv_example::protocol::Request;
///
/// let set = Request::Set("k".into(), "two words".into());
/// assert_eq!(set.to_string(), "SET k two words");
/// assert_eq!(Request::parse("SET k two words"), Ok(set));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `GET key`.
    Get(String),
    /// `SET key value`.
    Set(String, String),
    /// `DEL key`.
    Del(String),
    /// `PING`.
    Ping,
    /// `WAIT ms`: the server answers `OK` after this long.
    Wait(Duration),
    /// `QUIT`: the server closes the connection.
    Quit,
}

/// A request, with the time its client will wait for the answer, if it said: a line
/// `@ms request`, or `request`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery_kv_example::protocol::{Call, Request};
///
/// let call = Call::parse("@250 GET k")?;
/// assert_eq!(call.budget, Some(Duration::from_millis(250)));
/// assert_eq!(call.request, Request::Get("k".into()));
/// assert_eq!(call.to_string(), "@250 GET k");
/// assert_eq!(Call::parse("GET k")?.budget, None);
/// # Ok::<_, String>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// How long the client will wait for the answer, from when it sent the request.
    pub budget: Option<Duration>,
    /// The request.
    pub request: Request,
}

impl Call {
    /// A call of `request` whose client waits `budget` (rounded up to whole
    /// milliseconds on the line).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery_kv_example::protocol::{Call, Request};
    ///
    /// let call = Call::new(Request::Ping, Some(Duration::from_micros(1500)));
    /// assert_eq!(call.to_string(), "@2 PING");
    /// ```
    pub fn new(request: Request, budget: Option<Duration>) -> Call {
        Call { budget, request }
    }

    /// Parses one line (without its `\n`).
    ///
    /// # Errors
    ///
    /// A message for the client (sent back as `ERR message`).
    ///
    /// # Examples
    ///
    /// See [`Call`].
    pub fn parse(line: &str) -> Result<Call, String> {
        let Some(rest) = line.strip_prefix('@') else {
            return Request::parse(line).map(|request| Call::new(request, None));
        };
        let (ms, request) = rest.split_once(' ').unwrap_or((rest, ""));
        let ms: u64 = ms
            .parse()
            .map_err(|_| format!("@ takes milliseconds, not {ms:?}"))?;
        let request = Request::parse(request)?;
        Ok(Call::new(request, Some(Duration::from_millis(ms))))
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.budget {
            // Rounded up: a client that waits 0.4 ms more must not be told 0.
            Some(budget) => write!(
                f,
                "@{} {}",
                budget.as_nanos().div_ceil(1_000_000),
                self.request
            ),
            None => self.request.fmt(f),
        }
    }
}

/// A response of the protocol; its `Display` is its line.
///
/// # Examples
///
/// ```
/// use hatchery_kv_example::protocol::Response;
///
/// assert_eq!(Response::Value("v".into()).to_string(), "VALUE v");
/// assert_eq!(Response::parse("NONE"), Some(Response::None));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `VALUE value`.
    Value(String),
    /// `NONE`: no such key.
    None,
    /// `OK`.
    Ok,
    /// `DELETED`.
    Deleted,
    /// `PONG`.
    Pong,
    /// `ERR message`: the server did not understand the request.
    Err(String),
}

impl Request {
    /// Parses one line (without its `\n`).
    ///
    /// # Errors
    ///
    /// A message for the client (sent back as `ERR message`).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery_kv_example::protocol::Request;
    ///
    /// assert_eq!(Request::parse("GET k"), Ok(Request::Get("k".into())));
    /// assert!(Request::parse("GET").unwrap_err().contains("needs a key"));
    /// ```
    pub fn parse(line: &str) -> Result<Request, String> {
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        let key = |rest: &str| match rest {
            "" => Err(format!("{verb} needs a key")),
            k if k.contains(' ') => Err(format!("a key is one word, not {k:?}")),
            k => Ok(k.to_string()),
        };
        match verb {
            "GET" => Ok(Request::Get(key(rest)?)),
            "DEL" => Ok(Request::Del(key(rest)?)),
            "SET" => {
                let (k, value) = rest.split_once(' ').unwrap_or((rest, ""));
                Ok(Request::Set(key(k)?, value.to_string()))
            }
            "PING" if rest.is_empty() => Ok(Request::Ping),
            "QUIT" if rest.is_empty() => Ok(Request::Quit),
            "WAIT" => rest
                .parse()
                .map(|ms| Request::Wait(Duration::from_millis(ms)))
                .map_err(|_| format!("WAIT takes milliseconds, not {rest:?}")),
            _ => Err(format!("unknown request {line:?}")),
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Get(k) => write!(f, "GET {k}"),
            Request::Set(k, v) => write!(f, "SET {k} {v}"),
            Request::Del(k) => write!(f, "DEL {k}"),
            Request::Ping => f.write_str("PING"),
            Request::Wait(d) => write!(f, "WAIT {}", d.as_millis()),
            Request::Quit => f.write_str("QUIT"),
        }
    }
}

impl Response {
    /// Parses one line (without its `\n`); `None` if it is not a response.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery_kv_example::protocol::Response;
    ///
    /// assert_eq!(Response::parse("ERR no"), Some(Response::Err("no".into())));
    /// assert_eq!(Response::parse("MAYBE"), None);
    /// ```
    pub fn parse(line: &str) -> Option<Response> {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        Some(match (word, rest) {
            ("VALUE", v) => Response::Value(v.to_string()),
            ("NONE", "") => Response::None,
            ("OK", "") => Response::Ok,
            ("DELETED", "") => Response::Deleted,
            ("PONG", "") => Response::Pong,
            ("ERR", message) => Response::Err(message.to_string()),
            _ => return None,
        })
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Response::Value(v) => write!(f, "VALUE {v}"),
            Response::None => f.write_str("NONE"),
            Response::Ok => f.write_str("OK"),
            Response::Deleted => f.write_str("DELETED"),
            Response::Pong => f.write_str("PONG"),
            Response::Err(message) => write!(f, "ERR {message}"),
        }
    }
}

/// A TCP connection that reads and writes lines.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    /// Bytes read past the last line returned.
    buf: Vec<u8>,
    /// A read or write failed (an error, or the end of the stream): the connection is of
    /// no more use.
    failed: bool,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            failed: false,
        }
    }

    /// Whether a read or write failed on it (an error, or the end of the stream).
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// The next line, without its `\n`; `None` at the end of the stream (between lines).
    ///
    /// Cancel safe: a read that did not complete took nothing, and the bytes of a line
    /// read in part stay here for the next call.
    pub(crate) async fn read_line(&mut self) -> io::Result<Option<String>> {
        let line = self.next_line().await;
        self.failed |= !matches!(line, Ok(Some(_)));
        line
    }

    async fn next_line(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).take(end).collect();
                return String::from_utf8(line).map(Some).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "a line not in UTF-8")
                });
            }
            if self.buf.len() >= MAX_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a line longer than {MAX_LINE} bytes"),
                ));
            }
            let mut chunk = [0; 4096];
            match self.stream.read(&mut chunk).await? {
                0 if self.buf.is_empty() => return Ok(None),
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection ended in the middle of a line",
                    ))
                }
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Writes `line` and its `\n`.
    ///
    /// Not cancel safe: cut short, it may have written part of the line; the connection
    /// is then out of step and must not be used again.
    pub(crate) async fn write_line(&mut self, line: impl fmt::Display) -> io::Result<()> {
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        let written = self.stream.write_all(&bytes).await;
        self.failed |= written.is_err();
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_their_lines() {
        for request in [
            Request::Get("a".into()),
            Request::Set("a".into(), "one two".into()),
            Request::Set("a".into(), String::new()),
            Request::Del("a".into()),
            Request::Ping,
            Request::Wait(Duration::from_millis(250)),
            Request::Quit,
        ] {
            assert_eq!(Request::parse(&request.to_string()), Ok(request));
        }
        assert!(Request::parse("GET").unwrap_err().contains("needs a key"));
        assert!(Request::parse("GET a b").unwrap_err().contains("one word"));
        assert!(Request::parse("FLY")
            .unwrap_err()
            .contains("unknown request"));
        assert!(Request::parse("WAIT soon")
            .unwrap_err()
            .contains("milliseconds"));
    }

    #[test]
    fn calls_carry_the_clients_budget() {
        let call = Call::new(
            Request::Wait(Duration::from_secs(1)),
            Some(Duration::from_nanos(1)),
        );
        assert_eq!(call.to_string(), "@1 WAIT 1000");
        assert_eq!(
            Call::parse("@1 WAIT 1000"),
            Ok(Call {
                budget: Some(Duration::from_millis(1)),
                ..call
            })
        );
        assert_eq!(Call::parse("@0 PING").unwrap().budget, Some(Duration::ZERO));
        assert!(Call::parse("@soon PING")
            .unwrap_err()
            .contains("milliseconds"));
        assert!(Call::parse("@5").unwrap_err().contains("unknown request"));
        assert!(Call::parse("@5 FLY")
            .unwrap_err()
            .contains("unknown request"));
    }

    #[test]
    fn responses_round_trip_through_their_lines() {
        for response in [
            Response::Value("x y".into()),
            Response::None,
            Response::Ok,
            Response::Deleted,
            Response::Pong,
            Response::Err("no".into()),
        ] {
            assert_eq!(Response::parse(&response.to_string()), Some(response));
        }
        assert_eq!(Response::parse("MAYBE"), None);
    }
}
