//! The file system part of the runtime seam, re-exported from `hatchery::rt`: see
//! `FileSystem`.
//!
//! Part of the seam: it imports nothing else of the crate.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, SeekFrom};
use std::path::Path;

/// A file system of the runtime's own: what [`hatchery::fs`](crate::fs) works on instead
/// of the operating system's, when a runtime has one (the file system part of the
/// runtime seam).
///
/// On the system's file system, `hatchery::fs` runs std's blocking calls on worker
/// threads. A runtime whose files are not the system's (a simulator's disk per host)
/// provides the leaf operations instead, as blocking calls of its own with std's
/// meaning: open a file ([`FsFile`] then reads, writes, seeks, syncs), what a path is,
/// a directory's entries, make and remove directories, remove and rename files. And it
/// says where they run ([`spawn`](FileSystem::spawn)): the core hands it each
/// operation's work, and the work's result reaches the waiting task when the
/// [`FsDone`] it returns is dropped, so a provider can let simulated time pass between
/// the two. A runtime offers it through
/// [`Runtime::file_system`](crate::rt::Runtime::file_system); every operation of
/// `hatchery::fs` then goes there, and library code stays as it is.
///
/// The semantics stay in the core, the same for both: every operation is a checkpoint,
/// takes a token of the file limiter, holds its scope until its work is done (rules
/// X1–X9 of the book's semantics chapter), buffers as it does for the system's files;
/// compound operations (`fs::read`, `fs::write`, `copy`, `create_dir_all`,
/// `remove_dir_all`) are made of the leaf ones, in one piece of work. What a runtime's
/// own file system cannot give is refused with an error of kind
/// [`Unsupported`](io::ErrorKind::Unsupported) that says so: std's `Metadata` and
/// `FileType` (which only the system makes; [`FileSystem::kind`] tells a file from a
/// directory), permissions, links; and files of the system (`File::from_std`).
///
/// `hatchery-sim` is the one implementation in this workspace: a disk per simulated host,
/// with latency, writes lost in a crash unless synced, torn writes and injected errors
/// (the book's chapter *Simulation testing*).
///
/// # Examples
///
/// A file system with nothing in it, which refuses to make anything: a library's error
/// paths tested on any executor.
///
/// ```
/// use std::ffi::OsString;
/// use std::io;
/// use std::path::Path;
/// use std::pin::Pin;
/// use std::sync::Arc;
/// use std::time::Instant;
/// use hatchery::rt::{self, FileSystem, FsFile, FsKind, FsOpen, FsWork, Runtime, Sleep, Task};
/// use hatchery_tokio::TokioRuntime;
///
/// struct ReadOnlyEmpty(TokioRuntime);
///
/// fn full() -> io::Error {
///     io::Error::new(io::ErrorKind::StorageFull, "no room at all")
/// }
///
/// impl FileSystem for ReadOnlyEmpty {
///     fn spawn(&self, work: FsWork) {
///         // Nothing here blocks: run it on the spot, and hand the result over.
///         self.0.spawn(Task::from_future(async move { drop(work.run()) }));
///     }
///     fn open(&self, path: &Path, _: &FsOpen) -> io::Result<Box<dyn FsFile>> {
///         Err(io::Error::new(io::ErrorKind::NotFound, format!("{}", path.display())))
///     }
///     fn kind(&self, _: &Path) -> io::Result<FsKind> {
///         Err(io::ErrorKind::NotFound.into())
///     }
///     fn read_dir(&self, _: &Path) -> io::Result<Vec<(OsString, FsKind)>> {
///         Err(io::ErrorKind::NotFound.into())
///     }
///     fn create_dir(&self, _: &Path) -> io::Result<()> {
///         Err(full())
///     }
///     fn remove_file(&self, _: &Path) -> io::Result<()> {
///         Err(io::ErrorKind::NotFound.into())
///     }
///     fn remove_dir(&self, _: &Path) -> io::Result<()> {
///         Err(io::ErrorKind::NotFound.into())
///     }
///     fn rename(&self, _: &Path, _: &Path) -> io::Result<()> {
///         Err(io::ErrorKind::NotFound.into())
///     }
/// }
///
/// impl Runtime for ReadOnlyEmpty {
///     fn spawn(&self, task: Task) {
///         self.0.spawn(task)
///     }
///     fn now(&self) -> Instant {
///         self.0.now()
///     }
///     fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
///         self.0.sleep_until(deadline)
///     }
///     fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
///         self.0.spawn_blocking(work)
///     }
///     fn file_system(&self) -> Option<&dyn FileSystem> {
///         Some(self)
///     }
/// }
///
/// # hatchery_tokio::run(async {
/// let empty = Arc::new(ReadOnlyEmpty(TokioRuntime::current()));
/// let (read, made) = rt::enter(empty, async {
///     (hatchery::fs::read("/etc/hosts").await, hatchery::fs::create_dir_all("/a/b").await)
/// })
/// .await;
/// assert_eq!(read.unwrap_err().kind(), io::ErrorKind::NotFound); // not the system's
/// assert_eq!(made.unwrap_err().kind(), io::ErrorKind::StorageFull);
/// # });
/// ```
pub trait FileSystem: Send + Sync {
    /// Runs `work` (which calls this file system's methods) soon, never inline: on a
    /// task or a thread of the runtime's. The result reaches the task that waits for it
    /// when the [`FsDone`] that [`FsWork::run`] returns is dropped, so a simulator runs
    /// the work, lets the operation's latency pass, then drops it. Dropping `work`
    /// unrun fails the operation with an error that says it was dropped.
    fn spawn(&self, work: FsWork);

    /// Opens the file at `path` with `options` (std's `OpenOptions::open`).
    ///
    /// # Errors
    ///
    /// std's, of their kinds: `NotFound`, `AlreadyExists` (`create_new`),
    /// `IsADirectory`, `InvalidInput` (no access mode), ...
    fn open(&self, path: &Path, options: &FsOpen) -> io::Result<Box<dyn FsFile>>;

    /// What `path` names.
    ///
    /// # Errors
    ///
    /// `NotFound` if nothing; `NotADirectory` if a part of it is a file.
    fn kind(&self, path: &Path) -> io::Result<FsKind>;

    /// The entries of the directory `path`, names and kinds, in the order to list them.
    ///
    /// # Errors
    ///
    /// `NotFound`, `NotADirectory`.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<(OsString, FsKind)>>;

    /// Creates the directory `path`, whose parent exists (std's `create_dir`).
    ///
    /// # Errors
    ///
    /// `AlreadyExists`, `NotFound` (no parent), `StorageFull`, ...
    fn create_dir(&self, path: &Path) -> io::Result<()>;

    /// Removes the file `path` (std's `remove_file`).
    ///
    /// # Errors
    ///
    /// `NotFound`, `IsADirectory`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Removes the empty directory `path` (std's `remove_dir`).
    ///
    /// # Errors
    ///
    /// `NotFound`, `DirectoryNotEmpty`, `NotADirectory`.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;

    /// Renames `from` to `to`, replacing a file at `to` (std's `rename`).
    ///
    /// # Errors
    ///
    /// `NotFound`, `IsADirectory`, `DirectoryNotEmpty`, ...
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
}

/// An open file of a runtime's [`FileSystem`]: std's `&File` calls, each one blocking
/// call that the core makes in a piece of work ([`FsWork`]), one at a time for a file.
///
/// # Examples
///
/// See [`FileSystem`], whose `open` returns one; the simulator's disk implements it.
pub trait FsFile: Send + Sync + fmt::Debug {
    /// Reads into `buf` at the file's position, and moves it; how many bytes (0 at the
    /// end).
    ///
    /// # Errors
    ///
    /// The file system's (an I/O error), or an error if the file is not open for
    /// reading.
    fn read(&self, buf: &mut [u8]) -> io::Result<usize>;

    /// Writes `buf` at the file's position (at its end if opened to append), and moves
    /// it; how many bytes.
    ///
    /// # Errors
    ///
    /// `StorageFull`, or an error if the file is not open for writing.
    fn write(&self, buf: &[u8]) -> io::Result<usize>;

    /// Moves the file's position; the new one.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a position before the start.
    fn seek(&self, pos: SeekFrom) -> io::Result<u64>;

    /// Truncates or extends the file to `len` bytes.
    ///
    /// # Errors
    ///
    /// As [`write`](FsFile::write).
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Waits until the file's data and metadata are durable (`fsync`).
    ///
    /// # Errors
    ///
    /// The file system's.
    fn sync_all(&self) -> io::Result<()>;

    /// Waits until the file's data is durable (`fdatasync`).
    ///
    /// # Errors
    ///
    /// The file system's.
    fn sync_data(&self) -> io::Result<()>;
}

/// How to open a file of a runtime's [`FileSystem`]: std's `OpenOptions`, which std does
/// not let one read back.
///
/// # Examples
///
/// ```
/// let options = hatchery::rt::FsOpen { read: true, ..Default::default() };
/// assert!(!options.write);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct FsOpen {
    /// Open for reading.
    pub read: bool,
    /// Open for writing.
    pub write: bool,
    /// Every write goes to the end (implies writing).
    pub append: bool,
    /// Truncate to 0 bytes.
    pub truncate: bool,
    /// Create if missing.
    pub create: bool,
    /// Create, failing with `AlreadyExists` if it exists.
    pub create_new: bool,
}

/// What a path of a runtime's [`FileSystem`] names.
///
/// # Examples
///
/// ```
/// use hatchery::rt::FsKind;
///
/// assert_ne!(FsKind::File { len: 0 }, FsKind::Dir);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    /// A file of `len` bytes.
    File {
        /// Its length.
        len: u64,
    },
    /// A directory.
    Dir,
}

/// The work of one file operation, handed to [`FileSystem::spawn`]: [`run`](FsWork::run)
/// makes its calls, and the [`FsDone`] it returns hands the result over when dropped.
///
/// # Examples
///
/// See [`FileSystem`], whose `spawn` runs it.
pub struct FsWork(Box<dyn FnOnce() -> FsDone + Send>);

impl FsWork {
    /// Work that `run` does.
    pub(crate) fn new(run: impl FnOnce() -> FsDone + Send + 'static) -> FsWork {
        FsWork(Box::new(run))
    }

    /// Makes the operation's calls of the file system (a panic in them is kept for the
    /// waiting task, not resumed here); the result goes to the waiting task when the
    /// returned [`FsDone`] is dropped.
    ///
    /// # Examples
    ///
    /// See [`FileSystem`].
    pub fn run(self) -> FsDone {
        (self.0)()
    }
}

impl fmt::Debug for FsWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsWork").finish_non_exhaustive()
    }
}

/// A file operation whose calls are made ([`FsWork::run`]): dropping it hands the result
/// to the waiting task.
///
/// # Examples
///
/// See [`FileSystem`], whose `spawn` drops it when the work is done.
pub struct FsDone(Option<Box<dyn FnOnce() + Send>>);

impl FsDone {
    /// What hands the result over.
    pub(crate) fn new(done: impl FnOnce() + Send + 'static) -> FsDone {
        FsDone(Some(Box::new(done)))
    }
}

impl Drop for FsDone {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            done();
        }
    }
}

impl fmt::Debug for FsDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsDone").finish_non_exhaustive()
    }
}
