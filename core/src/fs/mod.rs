//! Files on any executor: open, read, write and seek a [`File`], and work with paths
//! and directories, on hatchery's worker threads, with cancellation rules written down.
//!
//! A library that reads and writes files through `hatchery::fs` depends on `hatchery`
//! alone and runs unchanged on every runtime hatchery is bound to. No operating system
//! offers readiness for regular files, so every executor's file API (`tokio::fs`,
//! `async-fs`, anyio's `Path`, trio's) runs the blocking system calls on threads; so
//! does this one, on the runtime's blocking pool
//! ([`Runtime::spawn_blocking`](crate::rt::Runtime::spawn_blocking)), under a
//! [`limiter`] of the file system's own.
//!
//! # What is here
//!
//! | | |
//! |---|---|
//! | [`File`], [`OpenOptions`] | an open file: read, write, seek, flush, `sync_all`, `set_len`, metadata; `futures_io` and (feature `tokio-io`) tokio's I/O traits |
//! | [`read`], [`read_to_string`], [`write()`] | a whole file at once |
//! | [`metadata`], [`symlink_metadata`], [`try_exists`], [`canonicalize`] | what a path is |
//! | [`read_dir`] → [`ReadDir`] | a directory's entries as a `Stream` of [`DirEntry`] |
//! | [`create_dir`], [`create_dir_all`], [`remove_file`], [`remove_dir`], [`remove_dir_all`] | make and remove |
//! | [`rename`], [`copy`], [`hard_link`], [`symlink`], [`read_link`] | move, copy, link |
//! | [`set_permissions`] | permissions ([`Permissions`]) |
//! | [`limiter`] | the run's file limiter: how many file operations run at once |
//!
//! ```
//! use futures_lite::StreamExt;
//!
//! # hatchery_smol::run(async {
//! let dir = std::env::temp_dir().join(format!("hatchery-doc-fs-{}", std::process::id()));
//! hatchery::fs::create_dir_all(dir.join("logs")).await?;
//! hatchery::fs::write(dir.join("logs/today.txt"), "started\n").await?;
//! let text = hatchery::fs::read_to_string(dir.join("logs/today.txt")).await?;
//! assert_eq!(text, "started\n");
//!
//! let mut entries = hatchery::fs::read_dir(dir.join("logs")).await?;
//! while let Some(entry) = entries.next().await {
//!     assert_eq!(entry?.file_name(), "today.txt");
//! }
//! hatchery::fs::remove_dir_all(&dir).await?;
//! # Ok::<_, std::io::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Threads and buffering
//!
//! Each operation hands its system call to a worker thread, with a token of the
//! run's file [`limiter`] (40 by default, as anyio's thread limiter; settable). The
//! worker threads number at most the limiter's tokens: a thread that finishes one
//! operation takes the next, on every runtime (a thread per operation would let the
//! runtime's pool grow past the limiter, as each token goes back a moment before its
//! thread is free for the next). A
//! [`File`] keeps one buffer so that a sequential read or write does not pay a thread
//! hand-off per call: a read asks the system for at least 64 KiB and serves the next
//! reads from what it got; writes are gathered up to 64 KiB; both amounts double at
//! each hand-off, up to 1 MiB, while the access goes on without a seek (a seek sets
//! them back to 64 KiB, so random access does not read far ahead); one hand-off moves
//! at most 2 MiB (a large read asks for what it wants up to that); a `write` returns as
//! soon as its bytes are taken (tokio's `File` hands each write to a thread; async-fs's
//! `Unblock` pipes them to one through a buffer). The position the caller sees is the
//! one the bytes it read or wrote leave behind, whatever the buffer holds.
//!
//! # Cancellation
//!
//! The rules (the book's chapter *Semantics: the rules*,
//! family X) in short:
//!
//! | rule | operation | dropped or cancelled before it returned |
//! |---|---|---|
//! | X1 | every operation | a checkpoint: in a cancelled scope nothing starts; it then waits for a token of the file [`limiter`] (a hatchery wait), then runs its system call on a worker thread |
//! | X2 | every operation | a system call that started runs to its end: a cancelled scope waits for it (as for `to_thread::run_sync`, rule T2), then ends without its value. Dropped from outside (a `select!`), it runs on in the background |
//! | X3 | [`File::open`], [`OpenOptions::open`] | the file it opened is closed; `create`/`truncate` may have happened |
//! | X4 | [`File::read`], [`ReadDir`]'s `next` | nothing read: the position is where it was; bytes (entries) its system call got stay buffered for the next read |
//! | X5 | [`File::write`] | took none of its bytes; a `write` that returned `n` took `n` into the buffer; `write_all` may have taken a prefix |
//! | X6 | [`File::flush`], `close`, `sync_all` | the bytes not yet written stay in the `File` for the next flush; none is lost or written twice. An error of a write done in the background comes out of the next operation |
//! | X7 | dropping a [`File`] | what it buffered to write is written in the background, then the file closed; an error there is lost (flush first to see it) |
//! | X8 | [`File::seek`] | the position is the new one if the seek had started, the old one if not |
//! | X2 | [`write()`], [`remove_dir_all`], [`copy`], ... | done entirely, or (not started) not at all, when the cancelled scope returns |
//!
//! What the scope waiting means: when `move_on_after(d, fs::write(path, data))`
//! returns `None`, the write either never started or is complete; nothing the scope
//! started goes on after it (trio's and anyio's file operations, which wait for their
//! thread, do the same).
//!
//! # Errors
//!
//! Errors are `std::io::Error`s of the system's kinds, and those of path operations
//! name the path and what was done (rule X9): `open `/tmp/x`: No such file or directory
//! (os error 2)`; the system's error is their `source()`. A directory opened as a file
//! is `IsADirectory` at once (some systems open one, and fail only at the first
//! read); a path with a NUL byte is `InvalidInput` before any system call; too many
//! open files is the system's error (`EMFILE`), naming the path. Nothing hangs.
//!
//! # Runtimes
//!
//! Operations run on the blocking pool of the runtime of the code that polls them
//! (tokio's `spawn_blocking`, smol's `blocking` pool), on every runtime alike: a [`File`]
//! opened in one run and used in another runs its system calls on the second one's
//! threads, and used outside any hatchery runtime, an operation that must start a system
//! call panics with a message that says what to do (what the file's buffer serves needs
//! none; a dropped file's last write runs on the dropping thread then).
//! Under [virtual time](crate::testing), a thread counts as busy while it runs, so the
//! clock stands still meanwhile (rule T6). Everything works on Windows too, where
//! [`symlink`] picks a file or directory link by what the target is.
//!
//! # Coming from anyio, tokio and async-fs
//!
//! | anyio, tokio, async-fs | hatchery |
//! |---|---|
//! | `await anyio.open_file(p, "rb")`, `tokio::fs::File::open(p)` | [`File::open(p)`](File::open) |
//! | `await anyio.Path(p).read_bytes()`, `tokio::fs::read(p)` | [`fs::read(p)`](read) |
//! | `await anyio.Path(p).write_text(s)`, `tokio::fs::write(p, s)` | [`fs::write(p, s)`](write()) |
//! | `async for e in anyio.Path(p).iterdir()`, `tokio::fs::read_dir(p)` | [`fs::read_dir(p)`](read_dir), a `Stream` |
//! | anyio's default thread limiter for files | [`fs::limiter()`](limiter), the file system's own |
//!
//! [`Permissions`]: std::fs::Permissions

mod blocking;
mod dir;
mod file;
mod own;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use dir::{DirEntry, ReadDir};
pub use file::{File, OpenOptions};
pub use std::fs::{FileType, Metadata, Permissions};

use blocking::{run, unsupported, with_path, Sys};

use crate::seam::FileSystem;
use crate::sync::CapacityLimiter;

/// What a runtime's own file system cannot give (see [`unsupported`]).
const NO_METADATA: &str = "std `Metadata` (only the system makes one; \
`File::seek(SeekFrom::End(0))` gives a file's length)";

/// The run's file limiter: every operation of `hatchery::fs` takes one of its tokens
/// while its system call runs on a worker thread (rule X1).
///
/// Made on first use with 40 tokens (anyio's thread limiter, which its file operations
/// use); its own, apart from [`to_thread::default_limiter`](crate::to_thread::default_limiter),
/// so that file work and other threads do not starve each other. Change its total with
/// [`CapacityLimiter::set_total_tokens`]; the change holds for the whole run. Each
/// runtime binding has its own (a `run`, an adapter's `enter`, a test run). A dropped
/// [`File`]'s last write takes no token.
///
/// # Panics
///
/// Outside a hatchery runtime.
///
/// # Examples
///
/// ```
/// # hatchery_smol::run(async {
/// let limiter = hatchery::fs::limiter();
/// assert_eq!(limiter.total_tokens(), 40);
/// limiter.set_total_tokens(8); // at most 8 file operations of this run at once
/// assert_eq!(hatchery::fs::limiter().total_tokens(), 8);
/// # });
/// ```
pub fn limiter() -> Arc<CapacityLimiter> {
    blocking::current_ctx()
        .expect(crate::context::NO_RUNTIME)
        .1
        .limiter
        .clone()
}

/// A path operation: std's `$std` on a worker thread (rules X1, X2), its error naming
/// the path (rule X9); a second argument is made owned by `$own`.
macro_rules! path_op {
    (
        $(#[$doc:meta])*
        fn $name:ident($path:ident: impl AsRef<Path> $(, $arg:ident: $ty:ty => $owned:expr)?)
            -> $out:ty = $std:expr, $what:literal;
        own: $own:expr;
        cancel: $cancel:literal;
        errors: $errors:literal;
        $(#[$examples:meta])*
    ) => {
        $(#[$doc])*
        ///
        /// # Cancel safety
        ///
        #[doc = $cancel]
        /// If the enclosing scope is cancelled while the system call runs, the scope waits
        /// for it to return, then ends (rule X2).
        ///
        /// # Panics
        ///
        /// When polled outside a hatchery runtime.
        ///
        /// # Errors
        ///
        #[doc = $errors]
        /// The message names the path (rule X9).
        ///
        $(#[$examples])*
        pub async fn $name($path: impl AsRef<Path> $(, $arg: $ty)?) -> io::Result<$out> {
            let $path = $path.as_ref().to_owned();
            $(#[allow(clippy::redundant_locals)] let $arg = $owned;)?
            run(move |sys| {
                match sys {
                    Sys::System => ($std)(&$path $(, $arg)?),
                    Sys::Runtime(fs, runtime) => ($own)(fs, runtime, &$path $(, $arg)?),
                }
                .map_err(|e| with_path(e, $what, &$path))
            })
            .await
        }
    };
}

path_op! {
    /// Reads the whole file at `path` (std's `fs::read`).
    fn read(path: impl AsRef<Path>) -> Vec<u8> = |p: &Path| std::fs::read(p), "read";
    own: |fs: &dyn FileSystem, _: &str, p: &Path| own::read(fs, p);
    cancel: "Cancel safe: it changes nothing; dropped, its thread runs on and its bytes are dropped.";
    errors: "The system's error: `NotFound`, `PermissionDenied`, `IsADirectory`, ...";
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-read-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// hatchery::fs::write(dir.join("a"), [1, 2, 3]).await?;
    /// assert_eq!(hatchery::fs::read(dir.join("a")).await?, [1, 2, 3]);
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
}

path_op! {
    /// Reads the whole file at `path` as UTF-8 (std's `fs::read_to_string`).
    fn read_to_string(path: impl AsRef<Path>) -> String = |p: &Path| std::fs::read_to_string(p), "read";
    own: |fs: &dyn FileSystem, _: &str, p: &Path| own::read_to_string(fs, p);
    cancel: "Cancel safe: it changes nothing.";
    errors: "As [`read`], and `InvalidData` if the file is not UTF-8.";
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-read-string-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// hatchery::fs::write(dir.join("a"), "text").await?;
    /// assert_eq!(hatchery::fs::read_to_string(dir.join("a")).await?, "text");
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
}

/// Writes `contents` as the whole file at `path`, creating it if need be and
/// truncating it if it exists (std's `fs::write`).
///
/// `contents` is copied once, to be handed to the worker thread.
///
/// # Cancel safety
///
/// Dropped or cancelled before it started, nothing is written; once it started, it
/// writes everything (or fails): if the enclosing scope is cancelled meanwhile, the
/// scope waits for it, so that when the scope returns the file is written entirely or
/// was not touched (rule X2). Dropped from outside, it runs on in the background.
///
/// # Panics
///
/// When polled outside a hatchery runtime.
///
/// # Errors
///
/// The system's error (`NotFound` for a missing directory, `PermissionDenied`,
/// `IsADirectory`, ...), naming the path (rule X9).
///
/// # Examples
///
/// ```
/// # hatchery_smol::run(async {
/// # let dir = std::env::temp_dir().join(format!("hatchery-doc-write-{}", std::process::id()));
/// # hatchery::fs::create_dir_all(&dir).await?;
/// hatchery::fs::write(dir.join("a"), "one").await?;
/// hatchery::fs::write(dir.join("a"), b"two").await?; // replaced
/// assert_eq!(hatchery::fs::read_to_string(dir.join("a")).await?, "two");
/// # hatchery::fs::remove_dir_all(&dir).await?;
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    let contents = contents.as_ref().to_owned();
    run(move |sys| {
        match sys {
            Sys::System => std::fs::write(&path, contents),
            Sys::Runtime(fs, _) => own::write(fs, &path, &contents),
        }
        .map_err(|e| with_path(e, "write", &path))
    })
    .await
}

path_op! {
    /// The metadata of what `path` names, following symlinks (std's `fs::metadata`).
    fn metadata(path: impl AsRef<Path>) -> Metadata = |p: &Path| std::fs::metadata(p), "metadata of";
    own: |_: &dyn FileSystem, rt: &str, _: &Path| Err(unsupported(NO_METADATA, rt));
    cancel: "Cancel safe: it changes nothing.";
    errors: "The system's error: `NotFound`, `PermissionDenied` (a directory on the way not searchable), ...";
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let meta = hatchery::fs::metadata(std::env::temp_dir()).await?;
    /// assert!(meta.is_dir());
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
}

path_op! {
    /// The metadata of what `path` names, not following a symlink at the end (std's
    /// `fs::symlink_metadata`).
    fn symlink_metadata(path: impl AsRef<Path>) -> Metadata = |p: &Path| std::fs::symlink_metadata(p), "metadata of";
    own: |_: &dyn FileSystem, rt: &str, _: &Path| Err(unsupported(NO_METADATA, rt));
    cancel: "Cancel safe: it changes nothing.";
    errors: "As [`metadata`].";
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let meta = hatchery::fs::symlink_metadata(std::env::temp_dir()).await?;
    /// assert!(!meta.file_type().is_symlink() || meta.is_symlink());
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
}

path_op! {
    /// Whether `path` names something, following symlinks: `Ok(false)` if it does not,
    /// an error if that cannot be told (std's `fs::exists`, `Path::try_exists`).
    fn try_exists(path: impl AsRef<Path>) -> bool = |p: &Path| p.try_exists(), "look for";
    own: |fs: &dyn FileSystem, _: &str, p: &Path| own::exists(fs, p);
    cancel: "Cancel safe: it changes nothing.";
    errors: "The system's error other than `NotFound` (`PermissionDenied`, ...).";
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// assert!(hatchery::fs::try_exists(std::env::temp_dir()).await?);
    /// assert!(!hatchery::fs::try_exists("/no/such/thing").await?);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
}

path_op! {
    /// The absolute path of `path` with every symlink, `.` and `..` resolved (std's
    /// `fs::canonicalize`).
    fn canonicalize(path: impl AsRef<Path>) -> PathBuf = |p: &Path| std::fs::canonicalize(p), "canonicalize";
    own: |fs: &dyn FileSystem, _: &str, p: &Path| own::canonicalize(fs, p);
    cancel: "Cancel safe: it changes nothing.";
    errors: "The system's error: `NotFound` if `path`, or a part of it, does not exist.";
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// let here = hatchery::fs::canonicalize(".").await?;
    /// assert!(here.is_absolute());
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
}

/// Opens the directory at `path` to read its entries, as a [`ReadDir`] stream (std's
/// `fs::read_dir`).
///
/// # Cancel safety
///
/// Dropped or cancelled, the directory it opened is closed. If the enclosing scope is
/// cancelled while the system call runs, the scope waits for it (rule X2).
///
/// # Panics
///
/// When polled outside a hatchery runtime.
///
/// # Errors
///
/// The system's error (`NotFound`, `NotADirectory`, `PermissionDenied`), naming the
/// path (rule X9).
///
/// # Examples
///
/// ```
/// # hatchery_smol::run(async {
/// # let dir = std::env::temp_dir().join(format!("hatchery-doc-read-dir-{}", std::process::id()));
/// hatchery::fs::create_dir_all(dir.join("sub")).await?;
/// let mut entries = hatchery::fs::read_dir(&dir).await?;
/// let sub = entries.next_entry().await?.unwrap();
/// assert!(sub.file_type().await?.is_dir());
/// # hatchery::fs::remove_dir_all(&dir).await?;
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    dir::open(path.as_ref()).await
}

path_op! {
    /// Creates the directory `path`, whose parent must exist (std's `fs::create_dir`).
    fn create_dir(path: impl AsRef<Path>) -> () = |p: &Path| std::fs::create_dir(p), "create directory";
    own: |fs: &dyn FileSystem, _: &str, p: &Path| fs.create_dir(p);
    cancel: "Not cancel safe: the directory is made if the system call had started.";
    errors: "The system's error: `AlreadyExists`, `NotFound` (no parent), `PermissionDenied`, ...";
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-create-dir-{}", std::process::id()));
    /// hatchery::fs::create_dir(&dir).await?;
    /// let again = hatchery::fs::create_dir(&dir).await.unwrap_err();
    /// assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
    /// # hatchery::fs::remove_dir(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
}

path_op! {
    /// Creates the directory `path` and every missing parent; nothing if it exists
    /// (std's `fs::create_dir_all`).
    fn create_dir_all(path: impl AsRef<Path>) -> () = |p: &Path| std::fs::create_dir_all(p), "create directory";
    own: |fs: &dyn FileSystem, _: &str, p: &Path| own::create_dir_all(fs, p);
    cancel: "Not cancel safe: some of the directories may have been made, if its thread had started.";
    errors: "The system's error (`NotADirectory` where a part is a file, `PermissionDenied`, ...).";
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-create-dir-all-{}", std::process::id()));
    /// hatchery::fs::create_dir_all(dir.join("a/b/c")).await?;
    /// hatchery::fs::create_dir_all(dir.join("a/b/c")).await?; // already there: fine
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
}

path_op! {
    /// Removes the file (or symlink) `path` (std's `fs::remove_file`).
    fn remove_file(path: impl AsRef<Path>) -> () = |p: &Path| std::fs::remove_file(p), "remove file";
    own: |fs: &dyn FileSystem, _: &str, p: &Path| fs.remove_file(p);
    cancel: "Not cancel safe: the file is removed if the system call had started.";
    errors: "The system's error: `NotFound`, `PermissionDenied`, `IsADirectory` (or `PermissionDenied`, as the system says) for a directory.";
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-remove-file-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// hatchery::fs::write(dir.join("a"), "").await?;
    /// hatchery::fs::remove_file(dir.join("a")).await?;
    /// assert!(!hatchery::fs::try_exists(dir.join("a")).await?);
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
}

path_op! {
    /// Removes the empty directory `path` (std's `fs::remove_dir`).
    fn remove_dir(path: impl AsRef<Path>) -> () = |p: &Path| std::fs::remove_dir(p), "remove directory";
    own: |fs: &dyn FileSystem, _: &str, p: &Path| fs.remove_dir(p);
    cancel: "Not cancel safe: the directory is removed if the system call had started.";
    errors: "The system's error: `NotFound`, `DirectoryNotEmpty`, `NotADirectory`, `PermissionDenied`.";
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-remove-dir-{}", std::process::id()));
    /// hatchery::fs::create_dir_all(&dir).await?;
    /// hatchery::fs::remove_dir(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
}

path_op! {
    /// Removes the directory `path` with everything in it (std's `fs::remove_dir_all`).
    fn remove_dir_all(path: impl AsRef<Path>) -> () = |p: &Path| std::fs::remove_dir_all(p), "remove directory";
    own: |fs: &dyn FileSystem, _: &str, p: &Path| own::remove_dir_all(fs, p);
    cancel: "Not cancel safe: once its thread started, it runs to its end (the scope waits for it): the directory is gone, or an error said what was left.";
    errors: "The system's error for the first thing it could not remove.";
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-remove-dir-all-{}", std::process::id()));
    /// hatchery::fs::create_dir_all(dir.join("a/b")).await?;
    /// hatchery::fs::write(dir.join("a/b/f"), "").await?;
    /// hatchery::fs::remove_dir_all(&dir).await?;
    /// assert!(!hatchery::fs::try_exists(&dir).await?);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
}

path_op! {
    /// Renames `from` to `to`, replacing `to` if it is a file (std's `fs::rename`).
    fn rename(from: impl AsRef<Path>, to: impl AsRef<Path> => to.as_ref().to_owned()) -> ()
        = |p: &Path, to: PathBuf| std::fs::rename(p, to), "rename";
    own: |fs: &dyn FileSystem, _: &str, p: &Path, to: PathBuf| fs.rename(p, &to);
    cancel: "Not cancel safe: the rename is done if the system call had started.";
    errors: "The system's error (`NotFound`, `CrossesDevices`, `PermissionDenied`, ...), naming `from`.";
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-rename-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// hatchery::fs::write(dir.join("old"), "x").await?;
    /// hatchery::fs::rename(dir.join("old"), dir.join("new")).await?;
    /// assert_eq!(hatchery::fs::read_to_string(dir.join("new")).await?, "x");
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
}

path_op! {
    /// Copies the file `from` to `to`, with its permissions; how many bytes (std's
    /// `fs::copy`, which uses the system's copy where there is one).
    fn copy(from: impl AsRef<Path>, to: impl AsRef<Path> => to.as_ref().to_owned()) -> u64
        = |p: &Path, to: PathBuf| std::fs::copy(p, to), "copy";
    own: |fs: &dyn FileSystem, _: &str, p: &Path, to: PathBuf| own::copy(fs, p, &to);
    cancel: "Not cancel safe: once its thread started, the copy runs to its end (the scope waits for it).";
    errors: "The system's error (`from` missing or a directory, `to` in a missing directory, ...), naming `from`.";
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-copy-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// hatchery::fs::write(dir.join("a"), "copied").await?;
    /// assert_eq!(hatchery::fs::copy(dir.join("a"), dir.join("b")).await?, 6);
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
}

path_op! {
    /// Makes `link` a new name (a hard link) for the file `original` (std's
    /// `fs::hard_link`).
    fn hard_link(original: impl AsRef<Path>, link: impl AsRef<Path> => link.as_ref().to_owned()) -> ()
        = |p: &Path, link: PathBuf| std::fs::hard_link(p, link), "link to";
    own: |_: &dyn FileSystem, rt: &str, _: &Path, _: PathBuf| Err(unsupported("links", rt));
    cancel: "Not cancel safe: the link is made if the system call had started.";
    errors: "The system's error (`AlreadyExists`, `NotFound`, ...), naming `original`.";
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-hard-link-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// hatchery::fs::write(dir.join("a"), "same").await?;
    /// hatchery::fs::hard_link(dir.join("a"), dir.join("b")).await?;
    /// assert_eq!(hatchery::fs::read_to_string(dir.join("b")).await?, "same");
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
}

path_op! {
    /// What the symlink `path` points to (std's `fs::read_link`).
    fn read_link(path: impl AsRef<Path>) -> PathBuf = |p: &Path| std::fs::read_link(p), "read link";
    own: |_: &dyn FileSystem, rt: &str, _: &Path| Err(unsupported("symlinks", rt));
    cancel: "Cancel safe: it changes nothing.";
    errors: "The system's error (`InvalidInput` if `path` is not a symlink, `NotFound`).";
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-read-link-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// # hatchery::fs::write(dir.join("target"), "").await?;
    /// # if hatchery::fs::symlink("target", dir.join("link")).await.is_ok() {
    /// assert_eq!(hatchery::fs::read_link(dir.join("link")).await?, std::path::Path::new("target"));
    /// # }
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
}

path_op! {
    /// Sets the permissions of what `path` names, following symlinks (std's
    /// `fs::set_permissions`).
    fn set_permissions(path: impl AsRef<Path>, perm: Permissions => perm) -> ()
        = |p: &Path, perm: Permissions| std::fs::set_permissions(p, perm), "set permissions of";
    own: |_: &dyn FileSystem, rt: &str, _: &Path, _: Permissions| Err(unsupported("permissions", rt));
    cancel: "Not cancel safe: the change is made if the system call had started.";
    errors: "The system's error (`NotFound`, `PermissionDenied` for another user's file).";
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-set-perm-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// hatchery::fs::write(dir.join("a"), "").await?;
    /// let mut perm = hatchery::fs::metadata(dir.join("a")).await?.permissions();
    /// perm.set_readonly(true);
    /// hatchery::fs::set_permissions(dir.join("a"), perm).await?;
    /// assert!(hatchery::fs::metadata(dir.join("a")).await?.permissions().readonly());
    /// # let mut perm = hatchery::fs::metadata(dir.join("a")).await?.permissions();
    /// # #[allow(clippy::permissions_set_readonly_false)]
    /// # perm.set_readonly(false);
    /// # hatchery::fs::set_permissions(dir.join("a"), perm).await?;
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
}

/// Makes `link` a symlink to `original` (a path that is not resolved now: relative to
/// `link`'s directory when it is relative).
///
/// On Unix, std's `os::unix::fs::symlink`. On Windows, a directory symlink if
/// `original` is a directory (as seen from `link`'s directory), else a file symlink;
/// making one needs the privilege or developer mode, else the error is
/// `PermissionDenied`.
///
/// # Cancel safety
///
/// Not cancel safe: the link is made if the system call had started. If the enclosing
/// scope is cancelled while it runs, the scope waits for it (rule X2).
///
/// # Panics
///
/// When polled outside a hatchery runtime.
///
/// # Errors
///
/// The system's error (`AlreadyExists`, `NotFound` for a missing directory of `link`,
/// `PermissionDenied`), naming `link` (rule X9).
///
/// # Examples
///
/// ```
/// # hatchery_smol::run(async {
/// # let dir = std::env::temp_dir().join(format!("hatchery-doc-symlink-{}", std::process::id()));
/// # hatchery::fs::create_dir_all(&dir).await?;
/// hatchery::fs::write(dir.join("target"), "through the link").await?;
/// # if cfg!(unix) {
/// hatchery::fs::symlink("target", dir.join("link")).await?;
/// let text = hatchery::fs::read_to_string(dir.join("link")).await?;
/// assert_eq!(text, "through the link");
/// assert!(hatchery::fs::symlink_metadata(dir.join("link")).await?.is_symlink());
/// # }
/// # hatchery::fs::remove_dir_all(&dir).await?;
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn symlink(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let original = original.as_ref().to_owned();
    let link = link.as_ref().to_owned();
    run(move |sys| {
        match sys {
            Sys::System => sys_symlink(&original, &link),
            Sys::Runtime(_, runtime) => Err(unsupported("symlinks", runtime)),
        }
        .map_err(|e| with_path(e, "make symlink", &link))
    })
    .await
}

#[cfg(unix)]
fn sys_symlink(original: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(original, link)
}

#[cfg(windows)]
fn sys_symlink(original: &Path, link: &Path) -> io::Result<()> {
    let seen = match link.parent() {
        Some(dir) if original.is_relative() => dir.join(original),
        _ => original.to_owned(),
    };
    if seen.is_dir() {
        std::os::windows::fs::symlink_dir(original, link)
    } else {
        std::os::windows::fs::symlink_file(original, link)
    }
}

#[cfg(not(any(unix, windows)))]
fn sys_symlink(_original: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symlinks are not supported on this platform",
    ))
}
