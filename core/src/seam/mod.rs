//! The runtime seam: what hatchery needs from an executor (spawn, a clock, timers,
//! blocking work, and optionally a reactor, a network and a file system), as traits an
//! adapter implements. It imports nothing else of the crate; the rest of the core
//! imports it from here, and users reach its public items through `hatchery::rt`.

mod blocking;
mod files;
mod local;
mod network;
mod reactor;
mod runtime;

pub(crate) use self::blocking::{BlockingClock, Busy, OnBlockingThread};
pub use self::files::{FileSystem, FsDone, FsFile, FsKind, FsOpen, FsWork};
pub(crate) use self::local::{current_local, pop_local, push_local, try_local};
pub use self::local::{enter_local, LocalEntered, LocalRuntime, LocalTask};
pub use self::network::{NetDatagram, NetListener, NetStream, Network};
pub use self::reactor::{
    AsSocket, BorrowedSocket, Interest, OwnedSocket, Reactor, Readiness, Registration,
};
pub(crate) use self::runtime::{wake_at, Handoff, Keep, Lend, RawTask, Run};
pub use self::runtime::{Runtime, Sleep, Task};
