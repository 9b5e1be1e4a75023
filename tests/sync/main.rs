//! Synchronisation and memory streams: lock, semaphore, condition, event, limiter, the traits, and streams as sinks and their memory (rules O).
//!
//! One test binary per family of rules (a binary links once; each file is a module).

mod condition;
mod event;
mod limiter;
mod lock;
mod semaphore;
mod stream_memory;
mod stream_sink;
mod traits;
