//! [`ReadDir`], a directory's entries as a stream, and [`DirEntry`].

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use super::blocking::{self, unsupported, with_path, Job, Sys, Worker};
use crate::context;

/// How many entries one thread hand-off reads.
const BATCH: usize = 64;

type Batch = (std::fs::ReadDir, VecDeque<io::Result<DirEntry>>);

enum State {
    /// The entries read and not yet returned; `None` once the directory is done.
    Idle(Option<std::fs::ReadDir>),
    Busy(Job<Batch>),
}

/// The entries of a directory, as a `Stream` of `io::Result<DirEntry>`: see
/// [`read_dir`](super::read_dir).
///
/// Entries are read in batches of 64 on a worker thread, and come out one at a time.
/// `.` and `..` are left out; the order is the system's.
///
/// # Cancellation
///
/// Polling it is a checkpoint. A `next` dropped or cancelled before it returned takes
/// no entry: entries read meanwhile stay in the stream for the next one (rule X4). If
/// the enclosing scope is cancelled while a batch is being read, the scope waits for
/// it (rule X2).
///
/// # Examples
///
/// ```
/// use futures_lite::StreamExt;
///
/// # hatchery_smol::run(async {
/// # let dir = std::env::temp_dir().join(format!("hatchery-doc-read-dir-stream-{}", std::process::id()));
/// # hatchery::fs::create_dir_all(&dir).await?;
/// hatchery::fs::write(dir.join("a"), "").await?;
/// hatchery::fs::write(dir.join("b"), "").await?;
/// let mut names: Vec<_> = hatchery::fs::read_dir(&dir)
///     .await?
///     .map(|entry| entry.map(|e| e.file_name()))
///     .try_collect::<_, _, Vec<_>>()
///     .await?;
/// names.sort();
/// assert_eq!(names, ["a", "b"]);
/// # hatchery::fs::remove_dir_all(&dir).await?;
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct ReadDir {
    ready: VecDeque<io::Result<DirEntry>>,
    state: State,
    worker: Worker,
}

impl ReadDir {
    /// The next entry, `None` at the end: the stream's `next`, without a `StreamExt`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped or cancelled before it returned, it took no entry (rule X4).
    /// If the enclosing scope is cancelled while a batch is being read, the scope waits
    /// for it (rule X2).
    ///
    /// # Panics
    ///
    /// When polled outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// The system's error reading the directory: the stream goes on after it, as std's
    /// iterator does.
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-next-entry-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// hatchery::fs::write(dir.join("only"), "").await?;
    /// let mut entries = hatchery::fs::read_dir(&dir).await?;
    /// let entry = entries.next_entry().await?.unwrap();
    /// assert_eq!(entry.file_name(), "only");
    /// assert!(entries.next_entry().await?.is_none());
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn next_entry(&mut self) -> io::Result<Option<DirEntry>> {
        poll_fn(|cx| self.poll_next_entry(cx)).await.transpose()
    }

    fn poll_next_entry(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<DirEntry>>> {
        if context::current_cancelled() {
            return Poll::Pending; // a checkpoint; a batch in flight holds the scope
        }
        loop {
            if let State::Busy(job) = &mut self.state {
                match ready!(job.poll(cx)) {
                    Ok((std, batch)) => {
                        let done = batch.len() < BATCH;
                        self.ready.extend(batch);
                        self.state = State::Idle((!done).then_some(std));
                    }
                    Err(e) => {
                        self.state = State::Idle(None);
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
            if let Some(entry) = self.ready.pop_front() {
                return Poll::Ready(Some(entry));
            }
            let State::Idle(std) = &mut self.state else {
                unreachable!("waited for the batch in flight")
            };
            if std.is_none() {
                return Poll::Ready(None);
            }
            let token = ready!(self.worker.poll_token(cx));
            let mut std = std.take().expect("checked above");
            let job = self.worker.start(token, move |sys| {
                if let Sys::Runtime(_, runtime) = sys {
                    // A directory of the system's, read under a runtime with a file system
                    // of its own: refused, and the stream ends.
                    let refused = io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!(
                            "hatchery::fs: a directory of the system's read under a runtime \
                             (`{runtime}`) with a file system of its own"
                        ),
                    );
                    return (std, VecDeque::from([Err(refused)]));
                }
                let batch = std
                    .by_ref()
                    .take(BATCH)
                    .map(|entry| {
                        entry.map(|std| DirEntry {
                            // Free on most systems (the entry says it); else a system
                            // call here, on the thread, rather than at `file_type`.
                            file_type: std.file_type().ok(),
                            entry: Entry::System(std),
                        })
                    })
                    .collect();
                (std, batch)
            });
            self.state = State::Busy(job);
        }
    }
}

impl futures_core::Stream for ReadDir {
    type Item = io::Result<DirEntry>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_entry(cx)
    }
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadDir")
            .field("ready", &self.ready.len())
            .field("busy", &matches!(self.state, State::Busy(_)))
            .finish_non_exhaustive()
    }
}

/// An entry of a directory, from [`ReadDir`].
///
/// # Examples
///
/// ```
/// # hatchery_smol::run(async {
/// # let dir = std::env::temp_dir().join(format!("hatchery-doc-dir-entry-{}", std::process::id()));
/// # hatchery::fs::create_dir_all(&dir).await?;
/// hatchery::fs::write(dir.join("f"), "12").await?;
/// let entry = hatchery::fs::read_dir(&dir).await?.next_entry().await?.unwrap();
/// assert_eq!(entry.path(), dir.join("f"));
/// assert!(entry.file_type().await?.is_file());
/// assert_eq!(entry.metadata().await?.len(), 2);
/// # hatchery::fs::remove_dir_all(&dir).await?;
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct DirEntry {
    entry: Entry,
    /// Read with the entry, on the thread that read the batch.
    file_type: Option<std::fs::FileType>,
}

/// An entry of a directory of the system's, or of a runtime's own file system.
enum Entry {
    System(std::fs::DirEntry),
    Own { path: PathBuf, name: OsString },
}

impl DirEntry {
    /// The entry's full path: the directory's path joined with its name.
    ///
    /// # Examples
    ///
    /// See [`DirEntry`].
    pub fn path(&self) -> PathBuf {
        match &self.entry {
            Entry::System(std) => std.path(),
            Entry::Own { path, .. } => path.clone(),
        }
    }

    /// The entry's name, without its directory.
    ///
    /// # Examples
    ///
    /// See [`ReadDir::next_entry`].
    pub fn file_name(&self) -> OsString {
        match &self.entry {
            Entry::System(std) => std.file_name(),
            Entry::Own { name, .. } => name.clone(),
        }
    }

    /// The entry's metadata, not following a symlink (std's `DirEntry::metadata`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (it changes nothing). If the enclosing scope is cancelled while the
    /// system call runs, the scope waits for it (rule X2).
    ///
    /// # Panics
    ///
    /// When polled outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// The system's error (`NotFound` if the entry was removed meanwhile), naming the
    /// path.
    ///
    /// # Examples
    ///
    /// See [`DirEntry`].
    pub async fn metadata(&self) -> io::Result<std::fs::Metadata> {
        super::symlink_metadata(self.path()).await
    }

    /// The entry's file type, not following a symlink (std's `DirEntry::file_type`).
    ///
    /// Read with the entry, on the thread that read it (most systems tell it with the
    /// entry, without another system call): no thread hand-off here, unless reading it
    /// failed then, when it is asked for again.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (it changes nothing). A checkpoint: in a cancelled scope it returns
    /// nothing; if the enclosing scope is cancelled while a system call runs, the scope
    /// waits for it (rule X2).
    ///
    /// # Panics
    ///
    /// When polled outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// As [`DirEntry::metadata`].
    ///
    /// # Examples
    ///
    /// See [`DirEntry`].
    pub async fn file_type(&self) -> io::Result<std::fs::FileType> {
        if let Some(file_type) = self.file_type {
            crate::net::enter().await; // a checkpoint (rule X1)
            return Ok(file_type);
        }
        let path = self.path();
        blocking::run(move |sys| {
            match sys {
                Sys::System => std::fs::symlink_metadata(&path).map(|m| m.file_type()),
                Sys::Runtime(_, runtime) => Err(unsupported(
                    "std `FileType` (only the system makes one; `fs::read_dir` of a directory \
                     fails with `NotADirectory`)",
                    runtime,
                )),
            }
            .map_err(|e| with_path(e, "file type of", &path))
        })
        .await
    }
}

impl fmt::Debug for DirEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entry {
            Entry::System(std) => fmt::Debug::fmt(std, f),
            Entry::Own { path, .. } => f.debug_tuple("DirEntry").field(path).finish(),
        }
    }
}

/// Opens the directory at `path` for [`ReadDir`].
pub(super) async fn open(path: &Path) -> io::Result<ReadDir> {
    let path = path.to_owned();
    let worker = Worker::current();
    let opened = blocking::run(move |sys| {
        match sys {
            Sys::System => std::fs::read_dir(&path).map(Ok),
            // All at once: a runtime's own file system lists a directory in one call.
            Sys::Runtime(fs, _) => fs.read_dir(&path).map(|entries| {
                Err(entries
                    .into_iter()
                    .map(|(name, _)| {
                        Ok(DirEntry {
                            entry: Entry::Own {
                                path: path.join(&name),
                                name,
                            },
                            file_type: None,
                        })
                    })
                    .collect())
            }),
        }
        .map_err(|e| with_path(e, "read directory", &path))
    })
    .await?;
    let (ready, std) = match opened {
        Ok(std) => (VecDeque::new(), Some(std)),
        Err(entries) => (entries, None),
    };
    Ok(ReadDir {
        ready,
        state: State::Idle(std),
        worker,
    })
}
