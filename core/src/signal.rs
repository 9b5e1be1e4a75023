//! Signals on every runtime: a stream of the signals the process receives, for a set of
//! signal numbers ([`Signals`]), and a one-line wait for Ctrl-C ([`ctrl_c`]).
//!
//! ```
//! # #[cfg(unix)] {
//! use hatchery::signal::{Signal, Signals};
//!
//! # hatchery_smol::run(async {
//! let mut signals = Signals::new([Signal::TERM, Signal::USR1])?;
//! # signal_hook::low_level::raise(Signal::USR1.as_raw())?;
//! // From here on SIGTERM and SIGUSR1 come to `signals` instead of ending the process.
//! let signal = signals.recv().await?;
//! assert_eq!(signal, Signal::USR1);
//! drop(signals); // SIGTERM and SIGUSR1 do what they did before
//! # Ok::<_, std::io::Error>(())
//! # }).unwrap();
//! # }
//! ```
//!
//! # How
//!
//! A signal is handled by a handler of [signal-hook]'s registry (the handler that tokio's
//! and async-signal's signals share, so they coexist), whose only work is to write the
//! signal's number into a socket pair that each [`Signals`] owns; [`Signals::recv`]
//! reads it through the runtime's I/O reactor (see [`rt::Reactor`](crate::rt::Reactor)),
//! as [`net`](crate::net) reads its sockets. Nothing here names an executor: the same
//! code runs on every adapter whose runtime has a reactor (`hatchery-tokio` on Unix,
//! `hatchery-smol`).
//!
//! What follows is rule T7 of the book's semantics chapter.
//!
//! * **In order.** Signals come out of a stream in the order the process received them,
//!   different signals included. Each stream gets every signal of its set, so two
//!   streams for SIGTERM both see it.
//! * **Coalesced when unread.** The system coalesces a signal that is raised again
//!   before its handler has run; and a stream whose reader falls far behind (a socket
//!   buffer full of unread signals, thousands of them) drops the newest. A signal is a
//!   notification, not a message.
//! * **Handled from creation, given back on drop.** A signal of the set no longer does
//!   what it did (SIGINT and SIGTERM no longer end the process) from the moment
//!   [`Signals::new`] returns, not from the first `recv`: create the stream before the
//!   work it guards. When the last stream for a signal is dropped, the signal does again
//!   what it did before hatchery handled it: its default action (SIGINT ends the
//!   process), or nothing if it was ignored (as Rust programs ignore SIGPIPE). Every
//!   signal of the set that arrives in between is the stream's.
//!
//! # Windows
//!
//! Windows has no signals but the C runtime's emulation of a few (SIGINT for Ctrl-C,
//! SIGBREAK, SIGTERM that no other process can send). hatchery does not handle them yet:
//! [`Signals::new`] and [`ctrl_c`] return an error of kind
//! [`Unsupported`](io::ErrorKind::Unsupported) that says so, and only [`Signal::INT`]
//! and [`Signal::TERM`] are defined. Code that must build on Windows compiles unchanged;
//! for Ctrl-C there today, use the executor's own (`tokio::signal::ctrl_c`).
//!
//! # Cancellation
//!
//! [`Signals::recv`] and [`ctrl_c`] are checkpoints: in a cancelled scope they return
//! `Pending` and the scope drops them. A dropped `recv` loses no signal: signals are
//! kept in the stream, not in the `recv` future, so one that arrived while a `recv` was
//! being cancelled is the next `recv`'s. Dropping [`ctrl_c`]'s future drops its stream:
//! SIGINT is given back at once.
//!
//! | anyio / asyncio | hatchery |
//! |---|---|
//! | `with anyio.open_signal_receiver(SIGINT, SIGTERM) as signals: async for s in signals` | `let mut signals = Signals::new([Signal::INT, Signal::TERM])?; while let Ok(s) = signals.recv().await` |
//! | `loop.add_signal_handler(SIGTERM, cb)` | a task that loops over `signals.recv()` |
//! | `loop.remove_signal_handler(SIGTERM)` | `drop(signals)` |
//! | `KeyboardInterrupt` (asyncio.run cancels the main task) | `ctrl_c().await` in a task that cancels a scope (`CancelHandle::cancel`) |
//!
//! [signal-hook]: https://docs.rs/signal-hook

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};

/// A signal number, such as [`Signal::INT`] (SIGINT) or [`Signal::TERM`] (SIGTERM).
///
/// The constants are the platform's numbers (SIGUSR1 is 10 on Linux, 30 on macOS);
/// [`Signal::from_raw`] takes any other. Its `Debug` and `Display` are the signal's name
/// where the platform has one (`SIGINT`), else its number (`signal 1000`).
///
/// # Examples
///
/// ```
/// use hatchery::signal::Signal;
///
/// assert_eq!(Signal::INT.to_string(), "SIGINT");
/// assert_eq!(Signal::from_raw(Signal::TERM.as_raw()), Signal::TERM);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(i32);

/// Declares the `Signal` constants, each from the platform's number.
macro_rules! signals {
    ($($(#[$cfg:meta])* $name:ident = $raw:expr, $doc:literal;)*) => {
        impl Signal {
            $(
                #[doc = $doc]
                $(#[$cfg])*
                pub const $name: Signal = Signal($raw);
            )*
        }

        /// The names of the signals with a constant.
        const NAMES: &[(Signal, &str)] = &[
            $($(#[$cfg])* (Signal::$name, concat!("SIG", stringify!($name))),)*
        ];
    };
}

#[cfg(unix)]
use signal_hook::consts::signal as sys;

/// The numbers Windows' C runtime gives its emulated signals.
#[cfg(windows)]
mod sys {
    pub(super) const SIGINT: i32 = 2;
    pub(super) const SIGTERM: i32 = 15;
}

signals! {
    INT = sys::SIGINT, "SIGINT: interrupt, sent by Ctrl-C in a terminal. By default it ends the process.";
    TERM = sys::SIGTERM, "SIGTERM: the polite request to end, sent by `kill`, service managers and container runtimes. By default it ends the process.";
    #[cfg(unix)] HUP = sys::SIGHUP, "SIGHUP: the terminal hung up; daemons take it as \"reload the configuration\". By default it ends the process.";
    #[cfg(unix)] QUIT = sys::SIGQUIT, "SIGQUIT: quit, sent by Ctrl-\\ in a terminal. By default it ends the process with a core dump.";
    #[cfg(unix)] USR1 = sys::SIGUSR1, "SIGUSR1: for the application to define. By default it ends the process.";
    #[cfg(unix)] USR2 = sys::SIGUSR2, "SIGUSR2: for the application to define. By default it ends the process.";
    #[cfg(unix)] ALRM = sys::SIGALRM, "SIGALRM: a timer set with `alarm` expired. By default it ends the process.";
    #[cfg(unix)] CHLD = sys::SIGCHLD, "SIGCHLD: a child process stopped or ended. Ignored by default.";
    #[cfg(unix)] WINCH = sys::SIGWINCH, "SIGWINCH: the terminal's window changed size. Ignored by default.";
    #[cfg(unix)] PIPE = sys::SIGPIPE, "SIGPIPE: a write to a pipe with no reader. Rust programs ignore it (writes fail with `BrokenPipe`; hatchery's sockets never raise it).";
    #[cfg(unix)] TSTP = sys::SIGTSTP, "SIGTSTP: stop, sent by Ctrl-Z in a terminal. By default it stops the process.";
    #[cfg(unix)] CONT = sys::SIGCONT, "SIGCONT: continue after a stop. By default it continues the process.";
}

impl Signal {
    /// The signal with the platform's number `raw`.
    ///
    /// Any number is accepted here; [`Signals::new`] says which it cannot handle.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::signal::Signal;
    ///
    /// let int = Signal::from_raw(2); // SIGINT on Linux, macOS and Windows
    /// assert_eq!(int, Signal::INT);
    /// ```
    pub const fn from_raw(raw: i32) -> Signal {
        Signal(raw)
    }

    /// The platform's number of the signal.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::signal::Signal;
    ///
    /// assert_eq!(Signal::INT.as_raw(), 2);
    /// ```
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// The signal's name (`"SIGINT"`), if the platform has one for it.
    fn name(self) -> Option<&'static str> {
        let named = NAMES.iter().find(|(s, _)| *s == self).map(|(_, n)| *n);
        #[cfg(unix)]
        let named = named.or_else(|| signal_hook::low_level::signal_name(self.0));
        named
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
}

/// A stream of the signals the process receives, for a set of signals.
///
/// From [`Signals::new`] until it is dropped, the signals of its set no longer do what
/// they did (end the process, mostly); they come out of [`recv`](Signals::recv), in the
/// order received. Dropping it gives them back (see [the module docs](self)). It is also
/// a [`Stream`](futures_core::Stream) of `io::Result<Signal>` that never ends.
///
/// # Examples
///
/// A service that reloads on SIGHUP and stops on SIGINT or SIGTERM:
///
/// ```
/// # #[cfg(unix)] {
/// use hatchery::signal::{Signal, Signals};
///
/// # hatchery_tokio::run(async {
/// let mut signals = Signals::new([Signal::HUP, Signal::INT, Signal::TERM])?;
/// # signal_hook::low_level::raise(Signal::HUP.as_raw())?;
/// # signal_hook::low_level::raise(Signal::TERM.as_raw())?;
/// let mut reloads = 0;
/// loop {
///     match signals.recv().await? {
///         Signal::HUP => reloads += 1, // reload the configuration
///         _ => break,                  // shut down
///     }
/// }
/// assert_eq!(reloads, 1);
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// # }
/// ```
pub struct Signals {
    #[cfg(unix)]
    inner: unix::Receiver,
}

impl Signals {
    /// Starts receiving the signals of `set` (duplicates count once).
    ///
    /// From its return the signals of `set` come to this stream instead of doing what
    /// they did; dropping the stream gives them back.
    ///
    /// # Panics
    ///
    /// Outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// * [`InvalidInput`](io::ErrorKind::InvalidInput): `set` is empty (the stream would
    ///   wait for good), or has a signal that cannot be handled (SIGKILL, SIGSTOP,
    ///   SIGSEGV, SIGILL, SIGFPE) or that this platform does not know.
    /// * [`Unsupported`](io::ErrorKind::Unsupported): on Windows (see [the module
    ///   docs](self)), or when the runtime has no I/O reactor.
    /// * The system's, when it has no socket to spare.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::io::ErrorKind;
    /// use hatchery::signal::{Signal, Signals};
    ///
    /// # hatchery_smol::run(async {
    /// let signals = Signals::new([Signal::INT, Signal::TERM, Signal::INT]).unwrap();
    /// assert_eq!(format!("{signals:?}"), "Signals { set: [SIGINT, SIGTERM] }");
    ///
    /// let kill = Signal::from_raw(9); // SIGKILL: nobody can handle it
    /// assert_eq!(Signals::new([kill]).unwrap_err().kind(), ErrorKind::InvalidInput);
    /// assert_eq!(Signals::new([]).unwrap_err().kind(), ErrorKind::InvalidInput);
    /// # });
    /// # }
    /// ```
    pub fn new(set: impl IntoIterator<Item = Signal>) -> io::Result<Signals> {
        let mut set: Vec<Signal> = set.into_iter().collect();
        set.sort_unstable();
        set.dedup();
        if set.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "hatchery: `Signals::new` was given no signals: the stream would wait for good",
            ));
        }
        #[cfg(unix)]
        {
            Ok(Signals {
                inner: unix::Receiver::new(set)?,
            })
        }
        #[cfg(not(unix))]
        {
            Err(unsupported())
        }
    }

    /// Waits for the next signal of the set.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped before it returns, it has received nothing, and a signal
    /// that arrived meanwhile is the next call's. In a cancelled scope it is a
    /// checkpoint: it returns `Pending` without receiving anything and the scope drops
    /// it (the signal stays for the next `recv`).
    ///
    /// # Errors
    ///
    /// The reactor's (the runtime has shut down).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use hatchery::signal::{Signal, Signals};
    ///
    /// # hatchery_smol::run(async {
    /// let mut signals = Signals::new([Signal::USR1, Signal::USR2])?;
    /// signal_hook::low_level::raise(Signal::USR2.as_raw())?;
    /// signal_hook::low_level::raise(Signal::USR1.as_raw())?;
    /// assert_eq!(signals.recv().await?, Signal::USR2);
    /// assert_eq!(signals.recv().await?, Signal::USR1);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub async fn recv(&mut self) -> io::Result<Signal> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next signal of the set: [`recv`](Signals::recv) as a poll function,
    /// for a hand-written future or stream.
    ///
    /// # Errors
    ///
    /// As [`recv`](Signals::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::future::poll_fn;
    /// use hatchery::signal::{Signal, Signals};
    ///
    /// # hatchery_smol::run(async {
    /// let mut signals = Signals::new([Signal::USR1])?;
    /// signal_hook::low_level::raise(Signal::USR1.as_raw())?;
    /// let signal = poll_fn(|cx| signals.poll_recv(cx)).await?;
    /// assert_eq!(signal, Signal::USR1);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Signal>> {
        #[cfg(unix)]
        {
            self.inner.poll_recv(cx)
        }
        #[cfg(not(unix))]
        {
            let _ = cx;
            Poll::Ready(Err(unsupported()))
        }
    }
}

impl futures_core::Stream for Signals {
    type Item = io::Result<Signal>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Signal>>> {
        self.get_mut().poll_recv(cx).map(Some)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Signals");
        #[cfg(unix)]
        d.field("set", &self.inner.set());
        d.finish()
    }
}

/// Waits for Ctrl-C (SIGINT).
///
/// SIGINT no longer ends the process from its first poll until it returns or is
/// dropped; then it ends the process again. A Ctrl-C before the first poll ends the
/// process as usual: to catch every one from the start of a program, create
/// [`Signals`] for [`Signal::INT`] first.
///
/// # Cancel safety
///
/// Dropped before it returns, it gives SIGINT back at once; a Ctrl-C that came in the
/// meantime is lost with it. In a cancelled scope it is a checkpoint: it returns
/// `Pending` and the scope drops it.
///
/// # Panics
///
/// Outside a hatchery runtime.
///
/// # Errors
///
/// As [`Signals::new`] (on Windows: [`Unsupported`](io::ErrorKind::Unsupported)).
///
/// # Examples
///
/// Shutting a service down on Ctrl-C, by cancelling the scope around it:
///
/// ```
/// # #[cfg(unix)] {
/// use hatchery::{nursery, CancelScope};
///
/// # /// The service; here it presses Ctrl-C itself, until `ctrl_c` has one.
/// # async fn serve() -> std::io::Result<()> {
/// #     loop {
/// #         signal_hook::low_level::raise(hatchery::signal::Signal::INT.as_raw())?;
/// #         hatchery::sleep(std::time::Duration::from_millis(10)).await;
/// #     }
/// # }
/// # hatchery_smol::run(async {
/// # // Keeps a Ctrl-C before `ctrl_c`'s first poll from ending the doctest.
/// # let _guard = hatchery::signal::Signals::new([hatchery::signal::Signal::INT])?;
/// let scope = CancelScope::new();
/// let shutdown = scope.handle();
/// let served = scope
///     .run(nursery(|n| async move {
///         n.spawn(async move {
///             hatchery::signal::ctrl_c().await?;
///             shutdown.cancel();
///             Ok::<_, std::io::Error>(())
///         });
///         n.spawn(serve()); // until cancelled
///         Ok(())
///     }))
///     .await;
/// assert!(served.is_none()); // the scope caught its cancellation
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// # }
/// ```
pub async fn ctrl_c() -> io::Result<()> {
    Signals::new([Signal::INT])?.recv().await.map(drop)
}

/// The error of [`Signals::new`] on a platform without signals.
#[cfg(not(unix))]
fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "hatchery: signals are not supported on this platform yet (on Windows, use the \
         executor's own Ctrl-C, such as `tokio::signal::ctrl_c`)",
    )
}

#[cfg(unix)]
mod unix {
    //! The Unix implementation: signal-hook's handler runs hatchery-sigaction's action,
    //! which writes each signal's number (one byte: every Unix signal number is below 256)
    //! into a socket pair; the stream reads the other end through the runtime's reactor.
    //!
    //! # Invariants
    //!
    //! 1. **One handler action per (stream, signal).** A [`Receiver`] registers one action
    //!    per signal of its set, each with a clone of its socket pair's write end; it
    //!    unregisters them when dropped (which closes the clones), so no action writes
    //!    to a socket after its stream is gone.
    //! 2. **Counted before handling.** [`SLOTS`] counts the live streams of each signal.
    //!    A stream is counted before its action is registered and uncounted after it is
    //!    unregistered, so while any action may run for a signal, its count is above
    //!    zero and the restoring action does nothing.
    //! 3. **Restored at zero.** A signal whose disposition was the default when hatchery
    //!    first handled it has a restoring action (signal-hook's conditional default)
    //!    whose flag is set exactly when its count is zero; one that was ignored or had a
    //!    handler of its own has none (the registry runs that handler itself).

    use std::collections::VecDeque;
    use std::io;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};
    use std::task::{ready, Context, Poll};

    use hatchery_sigaction::{disposition, Disposition};
    use signal_hook::low_level;
    use signal_hook::SigId;

    use super::Signal;
    use crate::net::Io;
    use crate::seam::Interest;

    /// A signal hatchery has handled in this process.
    struct Slot {
        signal: Signal,
        /// Live streams of the signal.
        streams: usize,
        /// The restoring action's flag: set while `streams` is zero. `None`: the signal
        /// was not at its default disposition when first handled; nothing to restore.
        restore: Option<Arc<AtomicBool>>,
    }

    /// Every signal hatchery has handled in this process (a few: a linear search).
    static SLOTS: Mutex<Vec<Slot>> = Mutex::new(Vec::new());

    /// The read end of a stream's socket pair, its buffered signals, and its actions.
    pub(super) struct Receiver {
        io: Io,
        /// Read, not yet returned.
        buffered: VecDeque<Signal>,
        /// The registered actions (invariant 1), with their signals.
        actions: Vec<(Signal, SigId)>,
    }

    impl Receiver {
        /// Starts handling `set` (sorted, no duplicates, not empty).
        pub(super) fn new(set: Vec<Signal>) -> io::Result<Receiver> {
            set.iter().try_for_each(|&signal| check(signal))?;
            let (read, write) = UnixStream::pair()?;
            read.set_nonblocking(true)?;
            let mut receiver = Receiver {
                io: Io::new(OwnedFd::from(read))?,
                buffered: VecDeque::new(),
                actions: Vec::with_capacity(set.len()),
            };
            for signal in set {
                let write = OwnedFd::from(write.try_clone()?);
                count(signal, 1)?;
                // The action owns its clone, made non-blocking (shared with the others):
                // a full socket drops a signal, never blocks the handler. On an error:
                // this signal uncounted, `receiver`'s drop undoes the others.
                let id = hatchery_sigaction::register_write(signal.as_raw(), write)
                    .inspect_err(|_| drop(count(signal, -1)))?;
                receiver.actions.push((signal, id));
            }
            Ok(receiver)
        }

        pub(super) fn set(&self) -> Vec<Signal> {
            self.actions.iter().map(|&(s, _)| s).collect()
        }

        pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Signal>> {
            let Receiver { io, buffered, .. } = self;
            let mut buf = [0u8; 64];
            if buffered.is_empty() {
                // A checkpoint first (a cancelled scope stops it), then one read.
                let fd = io.fd();
                let n = ready!(io.poll_op(cx, Interest::Read, &mut || {
                    Ok(rustix::io::read(fd, &mut buf)?)
                }))?;
                if n == 0 {
                    // Every write end is held by an action of this stream.
                    return Poll::Ready(Err(io::Error::other(
                        "hatchery: a signal stream's socket was closed",
                    )));
                }
                buffered.extend(buf[..n].iter().map(|&b| Signal::from_raw(i32::from(b))));
            } else if crate::context::current_cancelled() {
                return Poll::Pending; // a checkpoint, as the read above
            }
            Poll::Ready(Ok(buffered.pop_front().expect("read at least one signal")))
        }
    }

    impl Drop for Receiver {
        fn drop(&mut self) {
            for &(signal, id) in &self.actions {
                // Unregistering waits for a handler running the action to finish, then
                // drops it (closing its write end): invariant 1, then 2.
                low_level::unregister(id);
                let _ = count(signal, -1);
            }
        }
    }

    /// Fails for a signal that cannot be handled or that the platform does not know.
    fn check(signal: Signal) -> io::Result<()> {
        let raw = signal.as_raw();
        let why = if signal_hook::consts::FORBIDDEN.contains(&raw) {
            "cannot be handled"
        } else if low_level::signal_name(raw).is_none() || !(1..256).contains(&raw) {
            "is not a signal this platform knows"
        } else {
            return Ok(());
        };
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("hatchery: {signal} {why}"),
        ))
    }

    /// Adds `by` (1 or -1) to `signal`'s count of live streams; the first time a signal
    /// is counted, installs its restoring action (invariant 3).
    fn count(signal: Signal, by: isize) -> io::Result<()> {
        let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
        let i = match slots.iter().position(|s| s.signal == signal) {
            Some(i) => i,
            None => {
                let default = disposition(signal.as_raw()).ok() == Some(Disposition::Default);
                let restore = default.then(|| Arc::new(AtomicBool::new(false)));
                if let Some(flag) = &restore {
                    signal_hook::flag::register_conditional_default(signal.as_raw(), flag.clone())?;
                }
                slots.push(Slot {
                    signal,
                    streams: 0,
                    restore,
                });
                slots.len() - 1
            }
        };
        let slot = &mut slots[i];
        slot.streams = slot.streams.checked_add_signed(by).expect("signal count");
        if let Some(flag) = &slot.restore {
            flag.store(slot.streams == 0, Ordering::SeqCst);
        }
        Ok(())
    }
}
