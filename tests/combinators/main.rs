//! The combinators: join, race, map, batch, as_completed, produce, retry, service, their local kind, their panics, and fused futures (rules G).
//!
//! One test binary per family of rules (a binary links once; each file is a module).

mod as_completed;
mod batch;
mod futures_fused;
mod join;
mod local;
mod map;
mod panic;
mod produce;
mod race;
mod retry;
mod service;
