//! Networking on every backend, loopback only: TCP, UDP, Unix sockets, listeners, `serve`, happy eyeballs, errors, readiness, cancellation, the interop traits, many connections, and any descriptor (`hatchery::io::Async`) (rules E and R).
//!
//! One test binary per family of rules (a binary links once; each file is a module).

mod common;

mod cancel;
mod errors;
mod happy_eyeballs;
mod interop;
mod io_async;
mod listeners;
mod many;
mod readiness;
mod serve;
mod sim;
mod tcp;
mod udp;
mod unix;
