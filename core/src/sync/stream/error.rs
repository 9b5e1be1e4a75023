//! The errors of the memory streams' sends and receives.

use std::error::Error;
use std::fmt;

// The doc links.
#[cfg(doc)]
use super::{ReceiveStream, SendStream};

/// Why [`SendStream::send`] failed; the item comes back.
///
/// # Examples
///
/// ```
/// use hatchery::sync::SendError;
///
/// # hatchery_smol::run(async {
/// let (tx, rx) = hatchery::memory_stream(1);
/// let tx2 = tx.clone();
/// tx2.close();
/// assert_eq!(tx2.send("a").await, Err(SendError::Closed("a"))); // this handle is closed
/// drop(rx);
/// let err = tx.send("b").await.unwrap_err();
/// assert_eq!(err, SendError::Broken("b")); // nobody will ever receive it
/// assert_eq!(err.into_inner(), "b");
/// # });
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendError<T> {
    /// This send handle is closed (by [`SendStream::close`]).
    Closed(T),
    /// Every receive handle is gone: nobody will ever receive the item (anyio's
    /// `BrokenResourceError`).
    Broken(T),
}

impl<T> SendError<T> {
    /// The item that was not sent.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(hatchery::sync::SendError::Broken(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            SendError::Closed(t) | SendError::Broken(t) => t,
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("Closed(..)"),
            SendError::Broken(_) => f.write_str("Broken(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("sending on a closed send handle"),
            SendError::Broken(_) => f.write_str("sending into a stream with no receivers"),
        }
    }
}

impl<T> Error for SendError<T> {}

/// Why [`SendStream::try_send`] failed; the item comes back.
///
/// # Examples
///
/// ```
/// use hatchery::sync::TrySendError;
///
/// let (tx, _rx) = hatchery::memory_stream(1);
/// tx.try_send("first").unwrap();
/// match tx.try_send("second") {
///     Err(TrySendError::Full(item)) => assert_eq!(item, "second"), // keep it for later
///     other => panic!("unexpected: {other:?}"),
/// }
/// tx.close();
/// assert_eq!(tx.try_send("third"), Err(TrySendError::Closed("third")));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrySendError<T> {
    /// The buffer is full (for a rendezvous stream: no receiver is waiting).
    Full(T),
    /// This send handle is closed.
    Closed(T),
    /// Every receive handle is gone.
    Broken(T),
}

impl<T> TrySendError<T> {
    /// The item that was not sent.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(hatchery::sync::TrySendError::Full(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(t) | TrySendError::Closed(t) | TrySendError::Broken(t) => t,
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
            TrySendError::Broken(_) => f.write_str("Broken(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("stream is full"),
            TrySendError::Closed(_) => f.write_str("sending on a closed send handle"),
            TrySendError::Broken(_) => f.write_str("sending into a stream with no receivers"),
        }
    }
}

impl<T> Error for TrySendError<T> {}

/// Why [`ReceiveStream::recv`] failed.
///
/// # Examples
///
/// ```
/// use hatchery::sync::RecvError;
///
/// # hatchery_smol::run(async {
/// let (tx, rx) = hatchery::memory_stream::<u32>(1);
/// let rx2 = rx.clone();
/// rx2.close();
/// assert_eq!(rx2.recv().await, Err(RecvError::Closed)); // this handle is closed
/// drop(tx);
/// assert_eq!(rx.recv().await, Err(RecvError::EndOfStream)); // no sender is left
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecvError {
    /// The buffer is drained and every send handle is gone: no item will ever come
    /// (anyio's `EndOfStream`).
    EndOfStream,
    /// This receive handle is closed (by [`ReceiveStream::close`]).
    Closed,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::EndOfStream => f.write_str("end of stream"),
            RecvError::Closed => f.write_str("receiving on a closed receive handle"),
        }
    }
}

impl Error for RecvError {}

/// Why [`ReceiveStream::try_recv`] failed.
///
/// # Examples
///
/// ```
/// use hatchery::sync::TryRecvError;
///
/// let (tx, rx) = hatchery::memory_stream(1);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// tx.try_send(1).unwrap();
/// drop(tx);
/// assert_eq!(rx.try_recv(), Ok(1));
/// assert_eq!(rx.try_recv(), Err(TryRecvError::EndOfStream));
/// rx.close();
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TryRecvError {
    /// No item is ready now.
    Empty,
    /// The buffer is drained and every send handle is gone.
    EndOfStream,
    /// This receive handle is closed.
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("stream is empty"),
            TryRecvError::EndOfStream => f.write_str("end of stream"),
            TryRecvError::Closed => f.write_str("receiving on a closed receive handle"),
        }
    }
}

impl Error for TryRecvError {}
