//! An executor-independent library on `hatchery` alone: a key-value store over a line
//! protocol, its [`Client`] and its [`Server`].
//!
//! It depends on `hatchery` and nothing else, so it runs on whichever executor its user
//! binds: the applications `kv_tokio` and `kv_smol` (in the workspace's `examples/`) run
//! it unchanged on `hatchery-tokio` and `hatchery-smol`, and its tests run on both. The
//! book's chapter *Writing an executor-independent library* walks through it.
//!
//! * The [`Client`] keeps a pool of connections bounded by a
//!   [`CapacityLimiter`](hatchery::sync::CapacityLimiter); a connection cut in the middle
//!   of an exchange is closed, never lent out again. It takes no timeout parameters:
//!   the caller's deadline bounds every request, and the client reads it to tell the
//!   server how long it will wait and to stop retrying in time. Each attempt has a
//!   bound of the library's own ([`Config::request_timeout`]), and failed connections
//!   are retried with backoff. [`Client::close`] says goodbye to the server.
//! * The [`Server`] runs a task per connection in a nursery ([`hatchery::net::serve_in`]),
//!   stops working on a request when its client's time runs out, and stops gracefully:
//!   it stops accepting, closes idle connections, and lets busy ones finish within a
//!   grace period. Opened on a file ([`Server::open`]), it keeps a write-ahead log,
//!   synced before it acknowledges a change, and reads it back when it starts again.
//!
//! ```
//! use std::time::Duration;
//! use hatchery::net::TcpListener;
//! use hatchery_kv_example::{Client, Config, Server, Stopped};
//!
//! async fn demo() -> anyhow::Result<()> {
//!     let server = Server::new();
//!     let stopped = hatchery::nursery(|n| {
//!         let server = server.clone();
//!         async move {
//!             // The server is a task of this nursery; `start_with_handle` hands back
//!             // its address once it listens, and a handle to how it stopped.
//!             let s = server.clone();
//!             let (addr, running) = n
//!                 .start_with_handle(|ready| {
//!                     hatchery::err_into(async move {
//!                         let listener = TcpListener::bind("127.0.0.1:0").await?;
//!                         ready.started(listener.local_addr()?);
//!                         s.run(listener, Duration::from_secs(1)).await
//!                     })
//!                 })
//!                 .await?;
//!             let client = Client::new(addr, Config::default());
//!             client.set("greeting", "hello").await?;
//!             assert_eq!(client.get("greeting").await?.as_deref(), Some("hello"));
//!             client.close().await;
//!             server.shutdown();
//!             Ok::<_, anyhow::Error>(running.join().await?)
//!         }
//!     })
//!     .await?;
//!     assert_eq!(stopped, Stopped::Gracefully);
//!     Ok(())
//! }
//!
//! # fn main() -> anyhow::Result<()> {
//! hatchery_smol::run(demo())?; // or hatchery_tokio::run(demo())
//! # hatchery_tokio::run(demo())
//! # }
//! ```

mod client;
mod error;
mod log;
pub mod protocol;
mod server;

pub use client::{Client, ClientStats, Config};
pub use error::Error;
pub use server::{Server, ServerStats, Stopped};
