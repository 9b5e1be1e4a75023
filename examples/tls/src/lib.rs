//! TLS over hatchery's TCP streams, with rustls: no TLS in hatchery, and none needed.
//!
//! hatchery's [`TcpStream`] implements futures-io's `AsyncRead` and `AsyncWrite`, which
//! is all [futures-rustls](https://docs.rs/futures-rustls) asks of a transport; with
//! hatchery's `tokio-io` feature it implements tokio's traits too, for tokio-rustls. So
//! TLS is a library choice of the application, and works unchanged on every runtime
//! hatchery runs on (the tests use tokio-rustls too, through the `tokio-io` traits). This crate is the recipe of the book's networking chapter ("TLS
//! with rustls"), and its tests prove it on tokio (both flavours) and smol.
//!
//! Everything here is behind the `rustls` feature (off by default, so that the
//! workspace's `cargo test` does not build rustls): `cargo test -p hatchery-tls-example
//! --features rustls`.
//!
//! What the recipe shows:
//!
//! * `connect`: a TCP connect and a TLS handshake as one operation with no timeout of
//!   its own: **the caller's deadline covers the handshake** (`fail_after`,
//!   `move_on_after`, or any enclosing scope), and a cancelled handshake closes its
//!   socket, since cancelling drops the future that owns it ([C1]);
//! * `serve_tls`: `hatchery::net::serve` with the handshake in each connection's
//!   task, under a timeout of its own, and a failed handshake dropped there rather than
//!   returned: an error returned by a handler cancels the whole server ([N2]), and a
//!   client that sends garbage must not stop it;
//! * `self_signed`: a certificate made at run time (rcgen), trusted by one client
//!   configuration alone: for tests over loopback.
//!
//! [C1]: https://hatchery-rs.github.io/hatchery/semantics.html#c1
//! [N2]: https://hatchery-rs.github.io/hatchery/semantics.html#n2
//! [`TcpStream`]: hatchery::net::TcpStream

#[cfg(feature = "rustls")]
mod tls;

#[cfg(feature = "rustls")]
pub use tls::{connect, self_signed, serve_tls, HANDSHAKE_TIMEOUT};
