//! The runtime seam: the few things hatchery needs from an executor ([`Runtime`]: spawn,
//! a clock, timers and blocking work), the [`Task`] it spawns, and the entry points that
//! bind a runtime to a future ([`enter`], [`enter_root`]).
//!
//! hatchery itself never names an executor. An adapter crate implements [`Runtime`] for
//! one (`hatchery-tokio`, `hatchery-smol`) and hands it to [`enter`], which installs it for
//! everything the wrapped future does. To bind another executor, see [`Runtime`]: its
//! first example is a complete adapter.

// This module is the seam's face and re-exports only: the seam itself is `crate::seam`
// (which imports nothing else of the crate), the entry points belong to the ambient
// context, and the core imports each from where it is defined.
pub use crate::context::{current_runtime as current, enter, enter_root, is_entered, Enter};
pub use crate::seam::{
    enter_local, AsSocket, BorrowedSocket, FileSystem, FsDone, FsFile, FsKind, FsOpen, FsWork,
    Interest, LocalEntered, LocalRuntime, LocalTask, NetDatagram, NetListener, NetStream, Network,
    OwnedSocket, Reactor, Readiness, Registration, Runtime, Sleep, Task,
};
