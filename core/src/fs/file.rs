//! [`File`] and [`OpenOptions`].
//!
//! # Invariants
//!
//! 1. **One job at a time.** A file is `Idle`, with its buffer, or `Busy` with one job
//!    that owns the buffer and returns it; every operation first waits for the job in
//!    flight and takes its outcome (a read's bytes go into the buffer, an error is
//!    returned by the operation that takes it).
//! 2. **The buffer holds one direction.** Bytes read ahead but not yet returned
//!    (`reading`), or bytes taken by `write` but not yet written: never both. Before a
//!    write, a seek or a flush that would move past read-ahead bytes, the system's
//!    position is moved back by their count, so the position the caller sees is the
//!    one the bytes it got (or gave) leave behind.
//! 3. **Checked on entry.** Every `poll_*` checks for cancellation before anything
//!    else, and returns `Pending` in a cancelled scope without touching the state: a
//!    job in flight holds the scope ([`blocking`](super::blocking) invariant 1), which
//!    waits for it and then drops the operation; the outcome stays in the job for the
//!    next operation.
//! 4. **Sequential access grows the chunk.** Each read the buffer starts, and each
//!    write it hands over, doubles the chunk (from [`CHUNK`] up to [`MAX_CHUNK`]); a
//!    seek sets it back, so random access reads no more than 64 KiB ahead.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use super::blocking::{self, unsupported, with_path, Job, Place, Sys, Worker};
use super::own::{self, CHUNK};
use crate::context;
use crate::seam::{FsFile, FsOpen};

/// What [`CHUNK`] grows to, doubling at each hand-off, while the reads or writes go on
/// without a seek: fewer hand-offs for a long sequential read or write (invariant 4).
const MAX_CHUNK: usize = 1024 * 1024;
/// The most a read asks for, and a write hands over, at once (tokio's).
const MAX_BUF: usize = 2 * 1024 * 1024;

/// The bytes a file holds between the caller and the system (invariant 2).
#[derive(Default)]
struct Buf {
    data: Vec<u8>,
    /// Read ahead: `data[pos..end]` not yet returned. Else: `data[..end]` to write.
    pos: usize,
    end: usize,
    reading: bool,
}

impl Buf {
    fn unread(&self) -> usize {
        if self.reading {
            self.end - self.pos
        } else {
            0
        }
    }

    fn unwritten(&self) -> usize {
        if self.reading {
            0
        } else {
            self.end
        }
    }

    /// Drops the read-ahead bytes; how far the system's position is ahead of the
    /// caller's, negated, to seek back by.
    fn discard_read(&mut self) -> i64 {
        if !self.reading {
            return 0;
        }
        let back = -(self.unread() as i64);
        self.clear();
        back
    }

    fn clear(&mut self) {
        self.pos = 0;
        self.end = 0;
        self.reading = false;
    }

    fn copy_to(&mut self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.unread());
        dst[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        n
    }

    fn append(&mut self, src: &[u8]) {
        debug_assert!(!self.reading);
        self.data.truncate(self.end);
        self.data.extend_from_slice(src);
        self.end = self.data.len();
    }

    /// Writes out the bytes to write (on a worker thread).
    fn write_out(&mut self, f: &Handle) -> io::Result<()> {
        let r = f.write_all(&self.data[..self.unwritten()]);
        self.clear();
        r
    }

    /// Reads up to `n` bytes into the buffer (on a worker thread).
    fn read_in(&mut self, f: &Handle, n: usize) -> io::Result<usize> {
        debug_assert_eq!(self.unread() + self.unwritten(), 0);
        if self.data.len() < n {
            self.data.resize(n, 0);
        }
        let r = loop {
            match f.read(&mut self.data[..n]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        self.pos = 0;
        self.end = *r.as_ref().unwrap_or(&0);
        self.reading = true;
        r
    }
}

/// The file a [`File`] works on: the system's, or one of the runtime's own file system
/// (`blocking` invariant 5).
#[derive(Clone)]
enum Handle {
    System(Arc<std::fs::File>),
    Own(Arc<dyn FsFile>),
}

impl Handle {
    /// Whether this file may be worked on where `sys` says: a file of the system's on a
    /// worker thread, a file of a runtime's own file system there.
    fn fits(&self, sys: Sys<'_>) -> io::Result<()> {
        match (self, sys) {
            (Handle::System(_), Sys::System) | (Handle::Own(_), Sys::Runtime(..)) => Ok(()),
            (Handle::System(_), Sys::Runtime(_, runtime)) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "hatchery::fs: a file of the system's (`File::from_std`) used under a \
                     runtime (`{runtime}`) with a file system of its own"
                ),
            )),
            (Handle::Own(_), Sys::System) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "hatchery::fs: a file of a runtime's own file system (a simulated disk's) \
                 used on a runtime that has the system's files",
            )),
        }
    }

    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Handle::System(f) => (&**f).read(buf),
            Handle::Own(f) => f.read(buf),
        }
    }

    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        match self {
            Handle::System(f) => (&**f).write_all(buf),
            Handle::Own(f) => own::write_all(&**f, buf),
        }
    }

    fn seek(&self, pos: SeekFrom) -> io::Result<u64> {
        match self {
            Handle::System(f) => (&**f).seek(pos),
            Handle::Own(f) => f.seek(pos),
        }
    }

    fn sync_all(&self) -> io::Result<()> {
        match self {
            Handle::System(f) => f.sync_all(),
            Handle::Own(f) => f.sync_all(),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        match self {
            Handle::System(f) => f.sync_data(),
            Handle::Own(f) => f.sync_data(),
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        match self {
            Handle::System(f) => f.set_len(len),
            Handle::Own(f) => f.set_len(len),
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Handle::System(file) => fmt::Debug::fmt(file, f),
            Handle::Own(file) => fmt::Debug::fmt(file, f),
        }
    }
}

/// What a job did, if it did not fail.
enum Op {
    Read(usize),
    Write,
    /// The new position, and the seek asked for if `poll_seek` started it (for it to
    /// know its own).
    Seek(u64, Option<SeekFrom>),
}

enum State {
    Idle(Buf),
    Busy(Job<(io::Result<Op>, Buf)>),
}

/// An open file: read, write and seek on hatchery's worker threads, buffered so that a
/// sequential read or write does not pay a thread hand-off per call.
///
/// Open one with [`File::open`], [`File::create`] or [`OpenOptions`]. Each operation
/// runs the system call on a worker thread under the [file limiter](super::limiter)
/// (rule X1), with the file's buffer: a read asks for what the caller asks, at least
/// 64 KiB and at most 2 MiB, and keeps what the caller did not take for the next reads;
/// writes are gathered up to 64 KiB before they are handed to a thread (a `write` takes
/// up to 2 MiB at once). The 64 KiB grow, doubling at each hand-off, up to 1 MiB while the
/// access goes on without a seek; `write` returns as soon as its bytes are taken (rule X5). [`flush`](File::flush) (or `close`, `sync_all`) hands the rest over and
/// waits for it; a dropped `File` writes what it holds in the background (rule X7).
///
/// It implements `futures_io`'s `AsyncRead`, `AsyncBufRead`, `AsyncWrite` and
/// `AsyncSeek`, and with the `tokio-io` feature, tokio's `AsyncRead`, `AsyncWrite` and
/// `AsyncSeek`.
///
/// # Cancellation
///
/// The rules X1–X8 of the [module docs](super#cancellation): a cancelled read reads
/// nothing and leaves the position where it was; a cancelled `write` took none of its
/// bytes; a cancelled scope waits for the one system call in flight, then ends.
///
/// # Examples
///
/// ```
/// use hatchery::fs::File;
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
///
/// # hatchery_smol::run(async {
/// # let dir = std::env::temp_dir().join(format!("hatchery-doc-file-{}", std::process::id()));
/// # hatchery::fs::create_dir_all(&dir).await?;
/// let path = dir.join("greeting.txt");
/// let mut file = File::create(&path).await?;
/// file.write_all(b"hello, files").await?;
/// file.flush().await?; // the bytes are in the file now, or an error says why not
///
/// let mut file = File::open(&path).await?;
/// let mut text = String::new();
/// file.read_to_string(&mut text).await?;
/// assert_eq!(text, "hello, files");
/// # hatchery::fs::remove_dir_all(&dir).await?;
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct File {
    handle: Handle,
    worker: Worker,
    state: State,
    /// How much the next read asks for at least, and a write gathers (invariant 4).
    chunk: usize,
    /// A seek started by tokio's `start_seek`, for `poll_complete`.
    #[cfg(feature = "tokio-io")]
    tokio_seek: Option<SeekFrom>,
}

impl File {
    /// Opens the file at `path` for reading.
    ///
    /// It is `OpenOptions::new().read(true).open(path)`: a directory is refused
    /// (rule X9).
    ///
    /// # Cancel safety
    ///
    /// Dropped or cancelled before the open started, nothing is opened; after that, the
    /// file it opened is closed (rule X3). If the enclosing scope is cancelled while the
    /// open runs on its thread, the scope waits for it to return (rule X2).
    ///
    /// # Panics
    ///
    /// When polled outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// The system's error, of its kind, with a message that names the path (rule X9):
    /// `NotFound`, `PermissionDenied`, `IsADirectory`, `InvalidInput` for a path with a
    /// NUL byte, and the system's error for too many open files.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::fs::File;
    ///
    /// # hatchery_smol::run(async {
    /// let err = File::open("/no/such/file").await.unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// assert!(err.to_string().contains("/no/such/file"));
    /// # });
    /// ```
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens the file at `path` for writing, creating it if need be and truncating it
    /// if it exists.
    ///
    /// It is `OpenOptions::new().write(true).create(true).truncate(true).open(path)`.
    ///
    /// # Cancel safety
    ///
    /// As [`File::open`]: a cancelled `create` closes the file it opened (rule X3), which
    /// may have been created or truncated, as the system call did.
    ///
    /// # Panics
    ///
    /// When polled outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// As [`File::open`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::fs::File;
    ///
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-create-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// let mut file = File::create(dir.join("new.txt")).await?;
    /// file.write_all(b"fresh").await?;
    /// file.close().await?;
    /// assert_eq!(hatchery::fs::read(dir.join("new.txt")).await?, b"fresh");
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Options to open a file with: [`OpenOptions::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::fs::File;
    ///
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-options-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// let mut log = File::options().append(true).create(true).open(dir.join("log")).await?;
    /// log.write_all(b"one line\n").await?;
    /// log.close().await?;
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// A `File` for a file std opened.
    ///
    /// Its operations run on the worker threads of the runtime of the code that polls
    /// them (this function needs none).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::fs::File;
    /// use futures_lite::AsyncReadExt;
    ///
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-from-std-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// # hatchery::fs::write(dir.join("a"), "std").await?;
    /// let std_file = std::fs::File::open(dir.join("a"))?;
    /// let mut file = File::from_std(std_file);
    /// let mut text = String::new();
    /// file.read_to_string(&mut text).await?;
    /// assert_eq!(text, "std");
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn from_std(file: std::fs::File) -> File {
        File::with_worker(Handle::System(Arc::new(file)), Worker::default())
    }

    fn with_worker(handle: Handle, worker: Worker) -> File {
        File {
            handle,
            worker,
            state: State::Idle(Buf::default()),
            chunk: CHUNK,
            #[cfg(feature = "tokio-io")]
            tokio_seek: None,
        }
    }

    /// Waits for the job in flight, if any, and takes its buffer back (invariant 1):
    /// `None` if there was none, else what it did, or its error.
    fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Op>>> {
        let State::Busy(job) = &mut self.state else {
            return Poll::Ready(Ok(None));
        };
        let done = ready!(job.poll(cx));
        let (op, buf) = match done {
            Ok(done) => done,
            // The runtime dropped the job, and the bytes in it.
            Err(e) => (Err(e), Buf::default()),
        };
        self.state = State::Idle(buf);
        Poll::Ready(op.map(Some))
    }

    /// The idle buffer (after [`File::poll_done`]).
    fn buf(&mut self) -> &mut Buf {
        match &mut self.state {
            State::Idle(buf) => buf,
            State::Busy(..) => unreachable!("waited for the job in flight"),
        }
    }

    /// Starts `f` with the buffer once a token is free.
    fn poll_start(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&Handle, &mut Buf) -> io::Result<Op> + Send + 'static,
    ) -> Poll<()> {
        let token = ready!(self.worker.poll_token(cx));
        let mut buf = std::mem::take(self.buf());
        let file = self.handle.clone();
        let job = self.worker.start(token, move |sys| {
            let op = file.fits(sys).and_then(|()| f(&file, &mut buf));
            (op, buf)
        });
        self.state = State::Busy(job);
        Poll::Ready(())
    }

    /// Starts writing out the buffer.
    fn poll_start_write(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        ready!(self.poll_start(cx, |file, buf| buf.write_out(file).map(|()| Op::Write)));
        self.grow();
        Poll::Ready(())
    }

    /// Doubles the chunk, up to [`MAX_CHUNK`] (invariant 4).
    fn grow(&mut self) {
        self.chunk = (self.chunk * 2).min(MAX_CHUNK);
    }

    /// Moves the system's position back over the read-ahead bytes, if any (invariant 2).
    fn poll_start_unread(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.buf().unread() == 0 {
            return Poll::Ready(false);
        }
        ready!(self.poll_start(cx, |file, buf| {
            let back = buf.discard_read();
            file.seek(SeekFrom::Current(back))
                .map(|n| Op::Seek(n, None))
        }));
        Poll::Ready(true)
    }

    /// Makes sure the buffer holds bytes read ahead, with one read of at least
    /// the chunk (and `want`) if it holds none; none after it means the end of the file.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<()>> {
        if context::current_cancelled() {
            return Poll::Pending; // invariant 3
        }
        loop {
            // The end of the file (this read's, or that of one dropped before).
            if let Some(Op::Read(0)) = ready!(self.poll_done(cx))? {
                return Poll::Ready(Ok(()));
            }
            let buf = self.buf();
            if buf.unread() > 0 {
                return Poll::Ready(Ok(()));
            }
            if buf.unwritten() > 0 {
                ready!(self.poll_start_write(cx));
                continue;
            }
            let n = want.clamp(self.chunk, MAX_BUF);
            ready!(self.poll_start(cx, move |file, buf| buf.read_in(file, n).map(Op::Read)));
            self.grow();
        }
    }

    /// Reads into `dst`: from the buffer, filled first if it is empty.
    fn poll_read_inner(&mut self, cx: &mut Context<'_>, dst: &mut [u8]) -> Poll<io::Result<usize>> {
        if dst.is_empty() {
            return match context::current_cancelled() {
                true => Poll::Pending,
                false => Poll::Ready(Ok(0)),
            };
        }
        ready!(self.poll_fill(cx, dst.len()))?;
        Poll::Ready(Ok(self.buf().copy_to(dst)))
    }

    /// The bytes read ahead, reading more if there are none (futures' `AsyncBufRead`).
    fn poll_fill_buf_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        ready!(self.poll_fill(cx, CHUNK))?;
        let buf = self.buf();
        Poll::Ready(Ok(&buf.data[buf.pos..buf.pos + buf.unread()]))
    }

    /// Takes `src` into the buffer, handing the buffer to a thread once it holds the
    /// chunk.
    fn poll_write_inner(&mut self, cx: &mut Context<'_>, src: &[u8]) -> Poll<io::Result<usize>> {
        if context::current_cancelled() {
            return Poll::Pending; // invariant 3
        }
        loop {
            ready!(self.poll_done(cx))?;
            if ready!(self.poll_start_unread(cx)) {
                continue;
            }
            if self.buf().unwritten() >= self.chunk {
                ready!(self.poll_start_write(cx));
                continue;
            }
            let chunk = self.chunk;
            let buf = self.buf();
            let n = src.len().min(MAX_BUF - buf.unwritten());
            buf.append(&src[..n]);
            if buf.unwritten() >= chunk {
                // Handed over now if a token is free, else by the next operation: the
                // bytes are taken either way (rule X5).
                let _ = self.poll_start_write(cx);
            }
            return Poll::Ready(Ok(n));
        }
    }

    /// Writes out the buffer and waits for it.
    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if context::current_cancelled() {
            return Poll::Pending; // invariant 3
        }
        loop {
            ready!(self.poll_done(cx))?;
            if self.buf().unwritten() == 0 {
                return Poll::Ready(Ok(()));
            }
            ready!(self.poll_start_write(cx));
        }
    }

    /// Seeks to `pos`, after writing out the buffer (or dropping what was read ahead).
    fn poll_seek_inner(&mut self, cx: &mut Context<'_>, pos: SeekFrom) -> Poll<io::Result<u64>> {
        if context::current_cancelled() {
            return Poll::Pending; // invariant 3
        }
        loop {
            match ready!(self.poll_done(cx))? {
                // This seek's own job (rule X8).
                Some(Op::Seek(n, Some(seek))) if seek == pos => return Poll::Ready(Ok(n)),
                _ => {}
            }
            let token = ready!(self.worker.poll_token(cx));
            self.chunk = CHUNK; // invariant 4
            let back = self.buf().discard_read();
            let target = match pos {
                SeekFrom::Current(n) => match n.checked_add(back) {
                    Some(n) => SeekFrom::Current(n),
                    None => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "seek to a position that overflows",
                        )))
                    }
                },
                p => p,
            };
            let mut buf = std::mem::take(self.buf());
            let file = self.handle.clone();
            let job = self.worker.start(token, move |sys| {
                let r = file
                    .fits(sys)
                    .and_then(|()| buf.write_out(&file))
                    .and_then(|()| file.seek(target));
                (r.map(|n| Op::Seek(n, Some(pos))), buf)
            });
            self.state = State::Busy(job);
        }
    }

    /// Reads some bytes into `buf`; how many (0 at the end of the file).
    ///
    /// Served from the file's buffer when it holds any; else one read on a worker thread
    /// fills it: of `buf.len()` bytes, at least 64 KiB (1 MiB for a long sequential read)
    /// and at most 2 MiB.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a read dropped or cancelled before it returned read nothing, and the
    /// file's position is where it was; bytes its system call got stay in the buffer for
    /// the next read (rule X4). If the enclosing scope is cancelled while the system call
    /// runs, the scope waits for it (rule X2).
    ///
    /// # Panics
    ///
    /// When it must start a system call outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// The system's error, or that of an earlier write done in the background
    /// (rule X6).
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-read-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// # hatchery::fs::write(dir.join("a"), "abc").await?;
    /// let mut file = hatchery::fs::File::open(dir.join("a")).await?;
    /// let mut buf = [0; 2];
    /// assert_eq!(file.read(&mut buf).await?, 2);
    /// assert_eq!(file.read(&mut buf).await?, 1);
    /// assert_eq!(file.read(&mut buf).await?, 0); // the end
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read_inner(cx, buf)).await
    }

    /// Reads exactly `buf.len()` bytes.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a prefix of `buf` may have been read, and how long one is not
    /// reported; the file's position is after it (rule X4). If the enclosing scope is
    /// cancelled while a system call runs, the scope waits for it (rule X2).
    ///
    /// # Panics
    ///
    /// When it must start a system call outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` if the file ends first; else as [`File::read`].
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-read-exact-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// # hatchery::fs::write(dir.join("a"), "abcd").await?;
    /// let mut file = hatchery::fs::File::open(dir.join("a")).await?;
    /// let mut head = [0; 3];
    /// file.read_exact(&mut head).await?;
    /// assert_eq!(&head, b"abc");
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        crate::net::read_exact_with(buf, |cx, buf| self.poll_read_inner(cx, buf)).await
    }

    /// Reads to the end of the file, appending to `buf`; how many bytes it read.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: what it read before it was cancelled is in `buf` (appended to it
    /// as it goes), and the file's position is after it. If the enclosing scope is
    /// cancelled while a system call runs, the scope waits for it (rule X2).
    ///
    /// # Panics
    ///
    /// When it must start a system call outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// As [`File::read`].
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-read-to-end-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// # hatchery::fs::write(dir.join("a"), "all of it").await?;
    /// let mut file = hatchery::fs::File::open(dir.join("a")).await?;
    /// let mut all = Vec::new();
    /// assert_eq!(file.read_to_end(&mut all).await?, 9);
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let start = buf.len();
        let mut chunk = vec![0u8; CHUNK];
        loop {
            match self.read(&mut chunk).await? {
                0 => return Ok(buf.len() - start),
                n => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Takes some bytes of `buf` to write; how many.
    ///
    /// The bytes go into the file's buffer, up to 2 MiB at a time; a buffer of 64 KiB or
    /// more (1 MiB for a long sequential write) is handed to a worker thread. [`flush`](File::flush) writes them out and says whether it worked
    /// (rule X5).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a write dropped or cancelled before it returned took none of its
    /// bytes (rule X5). It waits only for a write in flight, which runs on: if the
    /// enclosing scope is cancelled meanwhile, the scope waits for that (rule X2).
    ///
    /// # Panics
    ///
    /// When it must start a system call outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// An error of an earlier write done in the background (rule X6), or of a system
    /// call it waited for.
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-write-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// let mut file = hatchery::fs::File::create(dir.join("a")).await?;
    /// assert_eq!(file.write(b"abc").await?, 3); // taken into the buffer
    /// file.flush().await?; // written
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_write_inner(cx, buf)).await
    }

    /// Takes all of `buf` to write.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a prefix of `buf` may have been taken, and how long one is not
    /// reported (rule X5). If the enclosing scope is cancelled while a write it waits for
    /// runs, the scope waits for that (rule X2).
    ///
    /// # Panics
    ///
    /// When it must start a system call outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// As [`File::write`].
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-write-all-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// let mut file = hatchery::fs::File::create(dir.join("a")).await?;
    /// file.write_all(&[7; 100_000]).await?;
    /// file.flush().await?;
    /// assert_eq!(file.metadata().await?.len(), 100_000);
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        crate::net::write_all_with(buf, |cx, buf| self.poll_write_inner(cx, buf)).await
    }

    /// Writes out the bytes `write` took, and waits until the system has them (not the
    /// disk: [`sync_all`](File::sync_all) waits for that).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes not yet written stay in the file, for the next `flush` (or the
    /// drop, rule X7); none is lost or written twice (rule X6). If the enclosing scope is
    /// cancelled while the write runs, the scope waits for it (rule X2).
    ///
    /// # Panics
    ///
    /// When it must start a system call outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// The write's error, or that of an earlier one done in the background (rule X6):
    /// the bytes of a failed write are dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-flush-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// let mut file = hatchery::fs::File::create(dir.join("a")).await?;
    /// file.write_all(b"abc").await?;
    /// file.flush().await?;
    /// assert_eq!(hatchery::fs::read(dir.join("a")).await?, b"abc");
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_flush_inner(cx)).await
    }

    /// Flushes, then closes the file.
    ///
    /// The descriptor is closed when the `File` is dropped (here, at the end); an error
    /// of the close itself is not reported, as with std's `File`.
    ///
    /// # Cancel safety
    ///
    /// As [`File::flush`]; cancelled, the `File` is dropped with what it had not
    /// written, which is written in the background (rule X7).
    ///
    /// # Panics
    ///
    /// When it must start a system call outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// As [`File::flush`].
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-close-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// let mut file = hatchery::fs::File::create(dir.join("a")).await?;
    /// file.write_all(b"abc").await?;
    /// file.close().await?; // written, or an error says why not
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn close(mut self) -> io::Result<()> {
        self.flush().await
    }

    /// Moves the position to `pos`; the new position from the start.
    ///
    /// Bytes taken to write are written first; bytes read ahead are dropped, and the
    /// position is counted from what the caller has read.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a seek that had started runs to its end, so after a cancelled
    /// seek the position is the new one if it had started, the old one if not; seek to
    /// an absolute position to know (rule X8). If the enclosing scope is cancelled while
    /// it runs, the scope waits for it (rule X2).
    ///
    /// # Panics
    ///
    /// When polled outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// The system's error (a negative position is `InvalidInput`), or that of a write.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::SeekFrom;
    ///
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-seek-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// # hatchery::fs::write(dir.join("a"), "0123456789").await?;
    /// let mut file = hatchery::fs::File::open(dir.join("a")).await?;
    /// let mut two = [0; 2];
    /// file.read_exact(&mut two).await?;
    /// assert_eq!(file.seek(SeekFrom::Current(0)).await?, 2); // what was read, not read ahead
    /// file.seek(SeekFrom::End(-3)).await?;
    /// file.read_exact(&mut two).await?;
    /// assert_eq!(&two, b"78");
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        poll_fn(|cx| self.poll_seek_inner(cx, pos)).await
    }

    /// Flushes, then waits until the file's data and metadata are on the disk
    /// (`fsync`).
    ///
    /// # Cancel safety
    ///
    /// As [`File::flush`] while flushing; then, the sync runs to its end on its thread:
    /// if the enclosing scope is cancelled meanwhile, the scope waits for it (rule X2).
    ///
    /// # Panics
    ///
    /// When polled outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// As [`File::flush`], and the system's error of the sync.
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-sync-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// let mut file = hatchery::fs::File::create(dir.join("a")).await?;
    /// file.write_all(b"durable").await?;
    /// file.sync_all().await?;
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn sync_all(&mut self) -> io::Result<()> {
        self.flush().await?;
        let file = self.handle.clone();
        blocking::run(move |sys| file.fits(sys).and_then(|()| file.sync_all())).await
    }

    /// Flushes, then waits until the file's data is on the disk (`fdatasync`): as
    /// [`sync_all`](File::sync_all), without the metadata that reading does not need.
    ///
    /// # Cancel safety
    ///
    /// As [`File::sync_all`].
    ///
    /// # Panics
    ///
    /// When polled outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// As [`File::sync_all`].
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-sync-data-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// let mut file = hatchery::fs::File::create(dir.join("a")).await?;
    /// file.write_all(b"durable").await?;
    /// file.sync_data().await?;
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn sync_data(&mut self) -> io::Result<()> {
        self.flush().await?;
        let file = self.handle.clone();
        blocking::run(move |sys| file.fits(sys).and_then(|()| file.sync_data())).await
    }

    /// Truncates or extends the file to `size` bytes; the position does not move.
    ///
    /// Bytes taken to write are written first, and bytes read ahead dropped.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the buffered bytes may have been written, and the length set, if
    /// the system calls had started; if the enclosing scope is cancelled while one runs,
    /// the scope waits for it (rule X2).
    ///
    /// # Panics
    ///
    /// When polled outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// The system's error (the file not open for writing: `InvalidInput` or
    /// `PermissionDenied`, as the system says).
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-set-len-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// let mut file = hatchery::fs::File::create(dir.join("a")).await?;
    /// file.set_len(4096).await?;
    /// assert_eq!(file.metadata().await?.len(), 4096);
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn set_len(&mut self, size: u64) -> io::Result<()> {
        self.seek(SeekFrom::Current(0)).await?;
        let file = self.handle.clone();
        blocking::run(move |sys| file.fits(sys).and_then(|()| file.set_len(size))).await
    }

    /// The file's metadata, after writing out what is buffered (so that its length
    /// counts it).
    ///
    /// # Cancel safety
    ///
    /// As [`File::flush`] while flushing; the rest changes nothing. If the enclosing
    /// scope is cancelled while a system call runs, the scope waits for it (rule X2).
    ///
    /// # Panics
    ///
    /// When polled outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// As [`File::flush`], and the system's error.
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-file-metadata-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// let mut file = hatchery::fs::File::create(dir.join("a")).await?;
    /// file.write_all(b"12345").await?;
    /// let meta = file.metadata().await?;
    /// assert!(meta.is_file());
    /// assert_eq!(meta.len(), 5);
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn metadata(&mut self) -> io::Result<std::fs::Metadata> {
        self.flush().await?;
        let file = self.handle.clone();
        blocking::run(move |sys| match (&file, sys) {
            (Handle::System(file), Sys::System) => file.metadata(),
            (Handle::Own(_), Sys::Runtime(_, runtime)) => {
                Err(unsupported(super::NO_METADATA, runtime))
            }
            (file, sys) => file.fits(sys).map(|()| unreachable!("a mismatch")),
        })
        .await
    }

    /// Changes the file's permissions.
    ///
    /// # Cancel safety
    ///
    /// The change is made if the system call had started; if the enclosing scope is
    /// cancelled while it runs, the scope waits for it (rule X2).
    ///
    /// # Panics
    ///
    /// When polled outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// The system's error (`PermissionDenied` for a file of another user).
    ///
    /// # Examples
    ///
    /// ```
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-file-perm-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// let mut file = hatchery::fs::File::create(dir.join("a")).await?;
    /// let mut perm = file.metadata().await?.permissions();
    /// perm.set_readonly(true);
    /// file.set_permissions(perm).await?;
    /// assert!(file.metadata().await?.permissions().readonly());
    /// # let mut perm = file.metadata().await?.permissions();
    /// # #[allow(clippy::permissions_set_readonly_false)]
    /// # perm.set_readonly(false);
    /// # file.set_permissions(perm).await?;
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn set_permissions(&self, perm: std::fs::Permissions) -> io::Result<()> {
        let file = self.handle.clone();
        blocking::run(move |sys| match (&file, sys) {
            (Handle::System(file), Sys::System) => file.set_permissions(perm),
            (Handle::Own(_), Sys::Runtime(_, runtime)) => Err(unsupported("permissions", runtime)),
            (file, sys) => file.fits(sys),
        })
        .await
    }

    /// Writes out what is buffered, moves the system's position back over bytes read
    /// ahead, and returns std's `File`.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: cancelled, the `File` is dropped (rule X7). If the enclosing
    /// scope is cancelled while a system call runs, the scope waits for it (rule X2).
    ///
    /// # Panics
    ///
    /// When polled outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// As [`File::seek`]; and the system's error if the descriptor must be duplicated
    /// (a system call of a dropped operation still holds it).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// # hatchery_smol::run(async {
    /// # let dir = std::env::temp_dir().join(format!("hatchery-doc-into-std-{}", std::process::id()));
    /// # hatchery::fs::create_dir_all(&dir).await?;
    /// # hatchery::fs::write(dir.join("a"), "abcdef").await?;
    /// let mut file = hatchery::fs::File::open(dir.join("a")).await?;
    /// let mut three = [0; 3];
    /// file.read_exact(&mut three).await?; // the file read ahead: all six bytes
    /// let mut std_file = file.into_std().await?;
    /// let mut rest = String::new();
    /// std_file.read_to_string(&mut rest)?;
    /// assert_eq!(rest, "def"); // from where the caller was
    /// # hatchery::fs::remove_dir_all(&dir).await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn into_std(mut self) -> io::Result<std::fs::File> {
        self.seek(SeekFrom::Current(0)).await?;
        let Handle::System(file) = self.handle.clone() else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "hatchery::fs: a file of a runtime's own file system (a simulated disk's) has \
                 no std `File`",
            ));
        };
        drop(self);
        Arc::try_unwrap(file).or_else(|file| file.try_clone())
    }
}

impl Drop for File {
    fn drop(&mut self) {
        // Rule X7: what was taken to write is written in the background.
        let State::Idle(buf) = &mut self.state else {
            return; // the job in flight runs on, and owns what it writes
        };
        if buf.unwritten() == 0 {
            return;
        }
        let mut buf = std::mem::take(buf);
        let file = self.handle.clone();
        // On the runtime of the code that drops it (blocking invariants 4 and 5), where
        // its file is; else on this thread, which is no executor's of ours.
        let rt = context::with_current(|c| c.map(|c| c.rt.clone()));
        let own = rt.as_ref().and_then(|rt| rt.file_system());
        let place = match (&file, own) {
            (Handle::System(_), None) => Some(Place::Thread),
            (Handle::Own(_), Some(fs)) => Some(Place::Own(fs)),
            _ => None,
        };
        let mut write_out = move || drop(buf.write_out(&file));
        match (&rt, place) {
            (Some(rt), Some(place)) => {
                drop(Job::<()>::spawn_with(&**rt, place, None, None, write_out));
            }
            _ => write_out(),
        }
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("File");
        d.field("file", &self.handle);
        match &self.state {
            State::Idle(buf) => d
                .field("read_ahead", &buf.unread())
                .field("unwritten", &buf.unwritten()),
            State::Busy(..) => d.field("busy", &true),
        };
        d.finish_non_exhaustive()
    }
}

crate::net::impl_async_io!(read [] File, |this, cx, buf| this.poll_read_inner(cx, buf));

crate::net::impl_async_io!(write [] File,
    |this, cx, buf| this.poll_write_inner(cx, buf),
    flush |this, cx| this.poll_flush_inner(cx),
    shutdown |this, cx| this.poll_flush_inner(cx),
);

impl futures_io::AsyncBufRead for File {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        self.get_mut().poll_fill_buf_inner(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        if let State::Idle(buf) = &mut self.get_mut().state {
            buf.pos += amt.min(buf.unread());
        }
    }
}

impl futures_io::AsyncSeek for File {
    fn poll_seek(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        self.get_mut().poll_seek_inner(cx, pos)
    }
}

#[cfg(feature = "tokio-io")]
impl tokio::io::AsyncSeek for File {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        self.get_mut().tokio_seek = Some(position);
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        let pos = this.tokio_seek.unwrap_or(SeekFrom::Current(0));
        let r = ready!(this.poll_seek_inner(cx, pos));
        this.tokio_seek = None;
        Poll::Ready(r)
    }
}

/// Options to open a file with: std's `OpenOptions`, whose `open` runs on a worker
/// thread and returns a hatchery [`File`].
///
/// Platform options (`mode` and `custom_flags` on Unix, `share_mode` on Windows) are
/// set on a std `OpenOptions`, which converts with `From`.
///
/// # Examples
///
/// ```
/// use hatchery::fs::OpenOptions;
///
/// # hatchery_smol::run(async {
/// # let dir = std::env::temp_dir().join(format!("hatchery-doc-open-options-{}", std::process::id()));
/// # hatchery::fs::create_dir_all(&dir).await?;
/// let path = dir.join("once");
/// OpenOptions::new().write(true).create_new(true).open(&path).await?;
/// let again = OpenOptions::new().write(true).create_new(true).open(&path).await;
/// assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
/// # hatchery::fs::remove_dir_all(&dir).await?;
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    std: std::fs::OpenOptions,
    /// The same, for a runtime's own file system; `None` when made from std's options,
    /// which cannot be read back.
    own: Option<FsOpen>,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

impl From<std::fs::OpenOptions> for OpenOptions {
    /// std's options, with those of its platform.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::fs::OpenOptions;
    ///
    /// let mut std_options = std::fs::OpenOptions::new();
    /// std_options.read(true);
    /// #[cfg(unix)]
    /// std::os::unix::fs::OpenOptionsExt::mode(&mut std_options, 0o600);
    /// let options = OpenOptions::from(std_options);
    /// # let _ = options;
    /// ```
    fn from(options: std::fs::OpenOptions) -> OpenOptions {
        OpenOptions {
            std: options,
            own: None,
        }
    }
}

macro_rules! option {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub fn $name(&mut self, $name: bool) -> &mut OpenOptions {
            self.std.$name($name);
            if let Some(own) = &mut self.own {
                own.$name = $name;
            }
            self
        }
    };
}

impl OpenOptions {
    /// Options with everything off (std's `OpenOptions::new`): set `read`, `write` or
    /// `append` before opening.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::fs::OpenOptions;
    ///
    /// let mut options = OpenOptions::new();
    /// options.read(true);
    /// ```
    pub fn new() -> OpenOptions {
        OpenOptions {
            std: std::fs::OpenOptions::new(),
            own: Some(FsOpen::default()),
        }
    }

    option! {
        /// Opens for reading.
        ///
        /// # Examples
        ///
        /// ```
        /// hatchery::fs::OpenOptions::new().read(true);
        /// ```
        read
    }
    option! {
        /// Opens for writing.
        ///
        /// # Examples
        ///
        /// ```
        /// hatchery::fs::OpenOptions::new().write(true);
        /// ```
        write
    }
    option! {
        /// Opens for appending: every write goes to the end of the file.
        ///
        /// # Examples
        ///
        /// ```
        /// hatchery::fs::OpenOptions::new().append(true);
        /// ```
        append
    }
    option! {
        /// Truncates the file to length 0 when it is opened (with `write`).
        ///
        /// # Examples
        ///
        /// ```
        /// hatchery::fs::OpenOptions::new().write(true).truncate(true);
        /// ```
        truncate
    }
    option! {
        /// Creates the file if it does not exist (with `write` or `append`).
        ///
        /// # Examples
        ///
        /// ```
        /// hatchery::fs::OpenOptions::new().write(true).create(true);
        /// ```
        create
    }
    option! {
        /// Creates the file, failing with `AlreadyExists` if it exists (atomically).
        ///
        /// # Examples
        ///
        /// ```
        /// hatchery::fs::OpenOptions::new().write(true).create_new(true);
        /// ```
        create_new
    }

    /// Opens the file at `path` with these options, on a worker thread.
    ///
    /// A directory is refused with `IsADirectory` (rule X9), on every platform: some
    /// systems open one for reading, and fail only at the first read.
    ///
    /// # Cancel safety
    ///
    /// Dropped or cancelled before the open started, nothing is opened; after that, the
    /// file it opened is closed (rule X3), which `create` or `truncate` may have created
    /// or truncated. If the enclosing scope is cancelled while the open runs, the scope
    /// waits for it (rule X2).
    ///
    /// # Panics
    ///
    /// When polled outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// The system's error, of its kind, with a message that names the path (rule X9).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::fs::OpenOptions;
    ///
    /// # hatchery_smol::run(async {
    /// let err = OpenOptions::new().read(true).open(std::env::temp_dir()).await.unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::IsADirectory);
    /// # });
    /// ```
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let options = self.clone();
        let path = path.as_ref().to_owned();
        let worker = Worker::current();
        let is_dir = |path: &Path| {
            with_path(
                io::Error::new(io::ErrorKind::IsADirectory, "a directory, not a file"),
                "open",
                path,
            )
        };
        let handle = blocking::run(move |sys| match sys {
            Sys::System => {
                let file = options
                    .std
                    .open(&path)
                    .map_err(|e| with_path(e, "open", &path))?;
                match file.metadata() {
                    Ok(meta) if meta.is_dir() => Err(is_dir(&path)),
                    _ => Ok(Handle::System(Arc::new(file))),
                }
            }
            Sys::Runtime(fs, runtime) => {
                let Some(own) = options.own else {
                    return Err(with_path(
                        unsupported(
                            "way to read options made from std's `OpenOptions` (set them on \
                             hatchery's)",
                            runtime,
                        ),
                        "open",
                        &path,
                    ));
                };
                if let Ok(crate::seam::FsKind::Dir) = fs.kind(&path) {
                    return Err(is_dir(&path));
                }
                let file = fs
                    .open(&path, &own)
                    .map_err(|e| with_path(e, "open", &path))?;
                Ok(Handle::Own(Arc::from(file)))
            }
        })
        .await?;
        Ok(File::with_worker(handle, worker))
    }
}
