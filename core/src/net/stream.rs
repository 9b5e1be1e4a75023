//! What the stream types share: the read and write methods (written once, here, as
//! macros that each type expands with its own doc examples), and the owned halves.

use std::fmt;
use std::io;
use std::sync::Arc;

use super::io::{impl_async_io, Io};

/// A stream that splits into owned halves: [`TcpStream`](super::TcpStream) and, on Unix,
/// [`UnixStream`](super::UnixStream). Sealed: the halves are the stream's own business.
///
/// # Examples
///
/// ```
/// use hatchery::net::{ReadHalf, SplitStream, WriteHalf};
///
/// fn halves<S: SplitStream>(stream: S) -> (ReadHalf<S>, WriteHalf<S>) {
///     stream.into_halves()
/// }
/// # hatchery_smol::run(async {
/// # let listener = hatchery::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let stream = hatchery::net::TcpStream::connect(listener.local_addr()?).await?;
/// let (reader, writer) = halves(stream);
/// # drop((reader, writer));
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub trait SplitStream: sealed::Sealed + Send + Sync + Sized + 'static {
    /// Splits the stream into a read half and a write half, owned, for two tasks (the
    /// same as the stream's `into_split`).
    ///
    /// # Examples
    ///
    /// See [`SplitStream`].
    fn into_halves(self) -> (ReadHalf<Self>, WriteHalf<Self>) {
        let stream = Arc::new(self);
        (
            ReadHalf {
                stream: stream.clone(),
            },
            WriteHalf {
                stream,
                shutdown_on_drop: true,
            },
        )
    }
}

#[allow(unreachable_pub)]
mod sealed {
    pub trait Sealed {
        fn io(&self) -> &super::Io;
    }
}

pub(crate) use sealed::Sealed;

/// The read methods of a stream type, for `impl` blocks whose type has `fn io(&self)
/// -> &Io`. `$setup` makes `a` (of the type) and `b` (its peer, a whole stream) in
/// hidden doc lines, inside `hatchery_smol::run(async {`; `$finish` closes it.
macro_rules! read_methods {
    ($setup:literal) => {
        /// Reads some bytes into `buf`, waiting until at least one is there, and returns
        /// how many it read: `0` at the end of the stream (the peer has shut down its
        /// writing side, or closed the connection) or if `buf` is empty.
        ///
        /// Data is read as soon as some is there; `n < buf.len()` is no sign of the end.
        /// An empty `buf` returns `0` at once, whether or not data is there, and takes
        /// nothing (as `poll_read` of the I/O traits does).
        ///
        /// # Cancel safety
        ///
        /// Cancel safe: the bytes are read inside the one poll that returns them, so a
        /// read that did not complete has read nothing, and dropping it loses no data.
        /// If the enclosing scope is cancelled, the read does not start, or stops
        /// waiting: it never completes, the scope drops it, and nothing was read.
        ///
        /// # Errors
        ///
        /// The system's: `ConnectionReset` when the peer reset the connection, and the
        /// reactor's if it has shut down.
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $setup, "b.write_all(b\"hello\").await?;\n\
            let mut buf = [0; 16];\n\
            let n = a.read(&mut buf).await?;\n\
            assert!(n > 0 && b\"hello\".starts_with(&buf[..n]));\n\
            # Ok::<_, std::io::Error>(())\n# }).unwrap();\n```")]
        pub async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.io().read(buf).await
        }

        /// Reads exactly `buf.len()` bytes, waiting for them.
        ///
        /// # Cancel safety
        ///
        /// Not cancel safe: the bytes that arrived before it was dropped (or before the
        /// enclosing scope was cancelled, which stops it at its next wait) are read
        /// into `buf` and lost, and how many is not reported. Treat the stream as broken
        /// then (drop it), or use [`read`](Self::read) in a loop of your own, which
        /// reports each part.
        ///
        /// # Errors
        ///
        /// `UnexpectedEof` if the stream ends first (`buf` then holds what came), and
        /// those of [`read`](Self::read).
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $setup, "b.write_all(b\"hello\").await?;\n\
            let mut buf = [0; 5];\n\
            a.read_exact(&mut buf).await?;\n\
            assert_eq!(&buf, b\"hello\");\n\
            # Ok::<_, std::io::Error>(())\n# }).unwrap();\n```")]
        pub async fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
            self.io().read_exact(buf).await
        }
    };
}

/// The write methods of a stream type: see [`read_methods`].
macro_rules! write_methods {
    ($setup:literal) => {
        /// Writes some of `buf`, waiting until the system takes at least one byte, and
        /// returns how many it took (`0` only if `buf` is empty).
        ///
        /// The system has taken the bytes when this returns; the peer may not have them
        /// yet. Nothing is buffered by hatchery, so there is nothing to flush.
        ///
        /// # Cancel safety
        ///
        /// Cancel safe: the bytes are written inside the one poll that returns their
        /// count, so a write that did not complete has written nothing. If the
        /// enclosing scope is cancelled, the write does not start, or stops waiting: it
        /// never completes, the scope drops it, and nothing was written.
        ///
        /// # Errors
        ///
        /// The system's: `BrokenPipe` (never a `SIGPIPE` signal) or `ConnectionReset`
        /// when the peer has closed the connection, and the reactor's if it has shut
        /// down.
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $setup, "let n = a.write(b\"hello\").await?;\n\
            let mut buf = vec![0; n];\n\
            b.read_exact(&mut buf).await?;\n\
            assert!(b\"hello\".starts_with(&buf));\n\
            # Ok::<_, std::io::Error>(())\n# }).unwrap();\n```")]
        pub async fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.io().write(buf).await
        }

        /// Writes all of `buf`, waiting for the system to take it, part by part.
        ///
        /// # Cancel safety
        ///
        /// Not cancel safe: dropped before it completed (or stopped at its next wait by
        /// the enclosing scope's cancellation), it may have written a prefix of `buf`,
        /// and how long a prefix is not reported (every part before its last wait, up
        /// to all of `buf` but the last part). The peer then gets a message cut short:
        /// treat the stream as broken (drop it, or [`shutdown`](Self::shutdown) it), or
        /// use [`write`](Self::write) in a loop of your own, which reports each part, to
        /// know exactly what was written.
        ///
        /// # Errors
        ///
        /// Those of [`write`](Self::write); then a prefix of `buf` may have been written.
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $setup, "a.write_all(b\"hello\").await?;\n\
            let mut buf = [0; 5];\n\
            b.read_exact(&mut buf).await?;\n\
            assert_eq!(&buf, b\"hello\");\n\
            # Ok::<_, std::io::Error>(())\n# }).unwrap();\n```")]
        pub async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
            self.io().write_all(buf).await
        }

        /// Shuts down the writing side (a half-close): the peer reads the end of the
        /// stream once it has read what was written before, and can still write back.
        ///
        /// Writing afterwards fails with `BrokenPipe`. Reading is not affected.
        ///
        /// # Cancel safety
        ///
        /// Cancel safe: it completes in its first poll. If the enclosing scope is
        /// cancelled, it does not start (a checkpoint): it never completes, and the
        /// scope drops it.
        ///
        /// # Errors
        ///
        /// The system's: `NotConnected` if the connection is gone.
        ///
        /// # Examples
        ///
        #[doc = concat!("```\n", $setup, "a.write_all(b\"bye\").await?;\n\
            a.shutdown().await?;\n\
            let mut got = Vec::new();\n\
            let mut buf = [0; 16];\n\
            loop {\n    \
                match b.read(&mut buf).await? {\n        \
                    0 => break, // the end of the stream\n        \
                    n => got.extend_from_slice(&buf[..n]),\n    \
                }\n\
            }\n\
            assert_eq!(got, b\"bye\");\n\
            # Ok::<_, std::io::Error>(())\n# }).unwrap();\n```")]
        pub async fn shutdown(&mut self) -> std::io::Result<()> {
            self.io().shutdown().await
        }
    };
}

/// What a stream type (a struct with an `io: Io` field) implements besides its own
/// methods: [`SplitStream`] (whose sealed part is the `io()` the methods use),
/// `AsyncRead` and `AsyncWrite`, `AsFd`, and `Debug` (its addresses and its socket).
macro_rules! impl_stream {
    ($ty:ident) => {
        impl super::stream::Sealed for $ty {
            fn io(&self) -> &super::io::Io {
                &self.io
            }
        }

        impl super::stream::SplitStream for $ty {}

        super::io::impl_async_io!(read [] $ty, |this, cx, buf| this.io().poll_read(cx, buf));
        super::io::impl_async_io!(write [] $ty,
            |this, cx, buf| this.io().poll_write(cx, buf),
            // Nothing is buffered.
            flush |_this, _cx| std::task::Poll::Ready(Ok(())),
            shutdown |this, _cx| this.io().poll_shutdown(),
        );
        super::impl_as_socket!($ty);

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let addrs = [("local", self.local_addr()), ("peer", self.peer_addr())];
                super::io::fmt_socket(f, stringify!($ty), addrs, &self.io)
            }
        }
    };
}

pub(crate) use {impl_stream, read_methods, write_methods};

/// The read half of a stream, owned: see `into_split` of
/// [`TcpStream`](super::TcpStream::into_split) and [`UnixStream`](super::UnixStream).
///
/// It reads while the [`WriteHalf`] writes, from another task. The stream is closed
/// when both halves are gone. Reach the stream's other methods (addresses, options)
/// through [`AsRef`].
///
/// # Examples
///
/// ```
/// use hatchery::net::{TcpListener, TcpStream};
///
/// # hatchery_smol::run(async {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let client = TcpStream::connect(listener.local_addr()?).await?;
/// let (mut server, _) = listener.accept().await?;
/// let (mut reader, mut writer) = client.into_split();
/// hatchery::nursery(|n| async move {
///     n.spawn(async move { writer.write_all(b"ping").await }); // writes in one task...
///     let mut buf = [0; 4];
///     server.read_exact(&mut buf).await?;
///     server.write_all(b"pong").await?;
///     reader.read_exact(&mut buf).await?; // ...while this one reads
///     assert_eq!(&buf, b"pong");
///     Ok::<_, std::io::Error>(())
/// })
/// .await?;
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct ReadHalf<S> {
    stream: Arc<S>,
}

/// The write half of a stream, owned: see [`ReadHalf`].
///
/// Dropping it shuts down the writing side (the peer reads the end of the stream), as
/// tokio's owned write halves do, unless it is given back with
/// [`ReadHalf::reunite`]. The stream is closed when both halves are gone.
///
/// # Examples
///
/// ```
/// use hatchery::net::{TcpListener, TcpStream};
///
/// # hatchery_smol::run(async {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let client = TcpStream::connect(listener.local_addr()?).await?;
/// let (mut server, _) = listener.accept().await?;
/// let (reader, writer) = client.into_split();
/// drop(writer); // the server reads the end of the stream
/// let mut buf = [0; 1];
/// assert_eq!(server.read(&mut buf).await?, 0);
/// server.write_all(b"!").await?; // the other way still works
/// # drop(reader);
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct WriteHalf<S: SplitStream> {
    stream: Arc<S>,
    shutdown_on_drop: bool,
}

impl<S: SplitStream> ReadHalf<S> {
    fn io(&self) -> &Io {
        self.stream.io()
    }

    read_methods!(
        "# hatchery_smol::run(async {\n\
         # use hatchery::net::{TcpListener, TcpStream};\n\
         # let listener = TcpListener::bind(\"127.0.0.1:0\").await?;\n\
         # let stream = TcpStream::connect(listener.local_addr()?).await?;\n\
         # let (mut b, _) = listener.accept().await?;\n\
         let (mut a, _writer) = stream.into_split();\n"
    );

    /// Puts the stream back together from its two halves.
    ///
    /// # Errors
    ///
    /// If the halves are not of the same stream; the error gives them back.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::net::{TcpListener, TcpStream};
    ///
    /// # hatchery_smol::run(async {
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let (reader, writer) = stream.into_split();
    /// let mut stream = reader.reunite(writer).expect("halves of one stream");
    /// stream.write_all(b"still open").await?; // no half-close happened
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn reunite(self, mut other: WriteHalf<S>) -> Result<S, ReuniteError<S>> {
        if !Arc::ptr_eq(&self.stream, &other.stream) {
            return Err(ReuniteError(self, other));
        }
        other.shutdown_on_drop = false;
        drop(other);
        Ok(Arc::into_inner(self.stream).expect("the two halves held the only references"))
    }
}

impl<S: SplitStream> WriteHalf<S> {
    fn io(&self) -> &Io {
        self.stream.io()
    }

    write_methods!(
        "# hatchery_smol::run(async {\n\
         # use hatchery::net::{TcpListener, TcpStream};\n\
         # let listener = TcpListener::bind(\"127.0.0.1:0\").await?;\n\
         # let stream = TcpStream::connect(listener.local_addr()?).await?;\n\
         # let (mut b, _) = listener.accept().await?;\n\
         let (_reader, mut a) = stream.into_split();\n"
    );
}

impl<S> AsRef<S> for ReadHalf<S> {
    fn as_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: SplitStream> AsRef<S> for WriteHalf<S> {
    fn as_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: SplitStream> Drop for WriteHalf<S> {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            // Fails only if the connection is gone already, when there is nothing to do.
            let _ = self.stream.io().shutdown_now();
        }
    }
}

impl<S: SplitStream> fmt::Debug for ReadHalf<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReadHalf").field(self.stream.io()).finish()
    }
}

impl<S: SplitStream> fmt::Debug for WriteHalf<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WriteHalf").field(self.stream.io()).finish()
    }
}

impl_async_io!(read [S: SplitStream] ReadHalf<S>, |this, cx, buf| this.io().poll_read(cx, buf));
impl_async_io!(write [S: SplitStream] WriteHalf<S>,
    |this, cx, buf| this.io().poll_write(cx, buf),
    // Nothing is buffered.
    flush |_this, _cx| std::task::Poll::Ready(Ok(())),
    shutdown |this, _cx| this.io().poll_shutdown(),
);

/// The error of [`ReadHalf::reunite`]: the halves are of two different streams. It
/// gives them back.
///
/// # Examples
///
/// ```
/// use hatchery::net::{TcpListener, TcpStream};
///
/// # hatchery_smol::run(async {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let (r1, _w1) = TcpStream::connect(addr).await?.into_split();
/// let (_r2, w2) = TcpStream::connect(addr).await?.into_split();
/// let err = r1.reunite(w2).unwrap_err();
/// assert_eq!(err.to_string(), "the halves are of two different streams");
/// let (_r1, _w2) = (err.0, err.1); // given back
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct ReuniteError<S: SplitStream>(pub ReadHalf<S>, pub WriteHalf<S>);

impl<S: SplitStream> fmt::Debug for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReuniteError").finish_non_exhaustive()
    }
}

impl<S: SplitStream> fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the halves are of two different streams")
    }
}

impl<S: SplitStream> std::error::Error for ReuniteError<S> {}

impl<S: SplitStream> From<ReuniteError<S>> for io::Error {
    /// An error of kind `InvalidInput` (the halves are dropped).
    fn from(e: ReuniteError<S>) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
    }
}
