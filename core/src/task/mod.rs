//! Tasks of a nursery: the allocation that holds a task (`raw`), the runner that polls it
//! and reports its end (`run`), the handles that wait for its value (`handle`), and where
//! a finished task's allocation waits for its nursery's thread to free it (`graves`).
//!
//! A task belongs to a [`Group`] (its nursery, which implements it): it reports there
//! when it fails, panics or ends, so this layer does not name the nursery.

mod graves;
mod handle;
#[allow(unsafe_code)]
mod raw;
pub(crate) mod run;

pub(crate) use self::graves::Graves;
pub(crate) use self::handle::Output;
pub use self::handle::{Join, TaskHandle};
// For the sizes the performance chapter gives (nursery/sizes.rs).
#[cfg(all(test, target_pointer_width = "64", not(feature = "tracing")))]
pub(crate) use self::raw::{Cell, KeepSlot, NoKeep};
pub(crate) use self::raw::{Label, Named, Part, PartRef};
pub(crate) use self::run::{handle_of, spawn, spawn_cell, End, Group, Panic, Route};
