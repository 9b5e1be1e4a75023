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

/// The largest future, in bytes, that a child keeps in its own allocation (beside its
/// node and its result); a larger one gets an allocation of its own, whose future is
/// dropped when the child ends, and whose memory goes then too (an inline child's, or a
/// spawned child's whose handle is kept), or with the child's allocation, on the
/// nursery's thread (`run::Apart`). A handle kept after its child has ended then holds the
/// child's value and a few words, never more than this much of the future's room: the
/// nurseries chapter, "What a child costs, and for how long". The price is the second
/// allocation, for such a child only: a spawn and join of a child whose future holds
/// 1 KiB counted 7 % more instructions on tokio's current-thread runtime (the benchmark's
/// `spawn_join_1k`, callgrind). (tokio boxes a future above 16 KiB, for the stack's
/// sake; this bound is for the heap's.)
pub(crate) const IN_PLACE_MAX: usize = 256;

/// Whether a child's future of type `F` gets an allocation of its own (larger than
/// [`IN_PLACE_MAX`]). Its callers ask in a `const` block, so that only the branch taken
/// is compiled for `F`.
pub(crate) const fn apart<F>() -> bool {
    std::mem::size_of::<F>() > IN_PLACE_MAX
}
