//! The two signal system calls of [hatchery]'s signal streams that safe Rust cannot make,
//! each behind a safe function, so that `hatchery` itself has no `unsafe` for signals.
//!
//! * [`register_write`] registers, with [signal-hook]'s registry, an action that writes
//!   the signal's number into a socket or pipe each time the process receives the signal.
//!   A signal handler must be async-signal-safe, which the compiler cannot check, so every
//!   way to register one is `unsafe`; signal-hook's safe actions set a flag or write a
//!   fixed byte, which cannot say *which* signal came, so a stream of several signals in
//!   the order received needs an action of its own. This one is one `write(2)` of one
//!   byte on a non-blocking descriptor it owns.
//! * [`disposition`] reads what a signal does now (its default action, ignored, or a
//!   handler) with `sigaction(2)` and a null new action. Neither the standard library,
//!   rustix, nix nor signal-hook reads it without `unsafe`; hatchery reads it before it
//!   first handles a signal, so that dropping its last stream gives the signal back as it
//!   was (ignored, as Rust programs ignore SIGPIPE, or its default action).
//!
//! Unix only: on other platforms the crate is empty. Do not depend on it directly: use
//! `hatchery::signal`, which builds a stream of signals on these two.
//!
//! ```
//! use std::io::Read;
//! use std::os::unix::net::UnixStream;
//! use hatchery_sigaction::{register_write, disposition, Disposition};
//! use signal_hook::consts::SIGUSR1;
//!
//! assert_eq!(disposition(SIGUSR1)?, Disposition::Default); // SIGUSR1 would end the process
//! let (mut read, write) = UnixStream::pair()?;
//! let id = register_write(SIGUSR1, write.into())?;
//! assert_eq!(disposition(SIGUSR1)?, Disposition::Handler); // signal-hook's
//!
//! signal_hook::low_level::raise(SIGUSR1)?;
//! let mut byte = [0u8];
//! read.read_exact(&mut byte)?;
//! assert_eq!(i32::from(byte[0]), SIGUSR1);
//!
//! // Unregistering drops the action, which closes its end of the socket.
//! signal_hook::low_level::unregister(id);
//! assert_eq!(read.read(&mut byte)?, 0);
//! # Ok::<_, std::io::Error>(())
//! ```
//!
//! [hatchery]: https://docs.rs/hatchery
//! [signal-hook]: https://docs.rs/signal-hook
#![cfg(unix)]

use std::io;
use std::os::fd::OwnedFd;
use std::os::raw::c_int;

use signal_hook::SigId;

/// Registers an action that writes `signal`'s number, as one byte, into `write` each time
/// the process receives `signal`.
///
/// The action runs in signal-hook's handler (the one registry that tokio's and
/// async-signal's signals share, so they coexist), after the handler that was there
/// before, if any, and the actions registered before it; the signal no longer does what it
/// did (SIGINT no longer ends the process) while any action is registered for it. The
/// action owns `write`: [`signal_hook::low_level::unregister`] with the returned id waits
/// for a handler running the action to finish, then drops it, which closes the
/// descriptor.
///
/// `write` is set non-blocking (which its duplicates share), so that the handler never
/// waits: a socket or pipe full of unread bytes drops the byte (its reader is woken
/// anyway). Every Unix signal number fits in a byte.
///
/// # Errors
///
/// * [`InvalidInput`](io::ErrorKind::InvalidInput): `signal` is not in `1..=255`, or is
///   one that cannot be handled ([`signal_hook::consts::FORBIDDEN`]: SIGKILL, SIGSTOP,
///   SIGILL, SIGFPE, SIGSEGV).
/// * The system's: `write` cannot be set non-blocking, or `signal` is one the system
///   does not know.
///
/// # Examples
///
/// Two signals into one socket, read in the order received:
///
/// ```
/// use std::io::Read;
/// use std::os::unix::net::UnixStream;
/// use signal_hook::consts::{SIGUSR1, SIGUSR2};
/// use signal_hook::low_level::{raise, unregister};
///
/// let (mut read, write) = UnixStream::pair()?;
/// let usr1 = hatchery_sigaction::register_write(SIGUSR1, write.try_clone()?.into())?;
/// let usr2 = hatchery_sigaction::register_write(SIGUSR2, write.into())?;
/// raise(SIGUSR2)?;
/// raise(SIGUSR1)?;
/// let mut got = [0u8; 2];
/// read.read_exact(&mut got)?;
/// assert_eq!(got.map(i32::from), [SIGUSR2, SIGUSR1]);
/// unregister(usr1);
/// unregister(usr2);
///
/// let kill = signal_hook::consts::SIGKILL;
/// let (_, write) = UnixStream::pair()?;
/// let err = hatchery_sigaction::register_write(kill, write.into()).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// # Ok::<_, std::io::Error>(())
/// ```
#[allow(unsafe_code)]
pub fn register_write(signal: c_int, write: OwnedFd) -> io::Result<SigId> {
    let byte = match u8::try_from(signal) {
        Ok(byte) if byte != 0 => [byte],
        _ => return Err(invalid(signal, "is not a signal number (1 to 255)")),
    };
    if signal_hook::consts::FORBIDDEN.contains(&signal) {
        return Err(invalid(signal, "cannot be handled"));
    }
    rustix::io::ioctl_fionbio(&write, true)?;
    let action = move || {
        // A full socket or pipe drops the byte: the reader wakes anyway.
        let _ = rustix::io::write(&write, &byte);
    };
    // SAFETY: `register` requires the action to be async-signal-safe. It is one `write(2)`
    // system call (rustix makes it directly, or through libc's `write`, which POSIX lists
    // as async-signal-safe; neither allocates nor locks) of a byte it owns, on a
    // descriptor it owns and has made non-blocking, so it never waits; it touches no
    // other state. signal-hook's handler keeps `errno` as it found it. `signal` is not
    // one of the forbidden signals, on which `register` panics (checked above).
    unsafe { signal_hook::low_level::register(signal, action) }
}

/// What a signal does now, as [`disposition`] reads it.
///
/// # Examples
///
/// ```
/// use hatchery_sigaction::{disposition, Disposition};
///
/// // Rust programs ignore SIGPIPE: a write to a closed pipe fails with `BrokenPipe`.
/// assert_eq!(disposition(signal_hook::consts::SIGPIPE)?, Disposition::Ignore);
/// # Ok::<_, std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Disposition {
    /// The signal's default action (`SIG_DFL`): for most signals, ending the process.
    Default,
    /// Ignored (`SIG_IGN`), as Rust programs ignore SIGPIPE, or as a process started by
    /// `nohup` ignores SIGHUP.
    Ignore,
    /// A handler of the process, such as signal-hook's once an action is registered.
    Handler,
}

/// Reads what `signal` does now, without changing it (`sigaction(2)` with a null new
/// action).
///
/// # Errors
///
/// The system's: `signal` is not a signal it knows (`EINVAL`).
///
/// # Examples
///
/// ```
/// use hatchery_sigaction::{disposition, Disposition};
/// use signal_hook::consts::SIGWINCH;
///
/// // SIGWINCH's default action is to do nothing, but it is the default one.
/// assert_eq!(disposition(SIGWINCH)?, Disposition::Default);
/// assert_eq!(disposition(1000).unwrap_err().raw_os_error(), Some(libc::EINVAL));
/// # Ok::<_, std::io::Error>(())
/// ```
#[allow(unsafe_code)]
pub fn disposition(signal: c_int) -> io::Result<Disposition> {
    // SAFETY: `libc::sigaction` is plain data, for which all zeroes is a valid value. A
    // null new action only reads the current one into `old`, a valid, exclusive place for
    // it; the call writes nothing else, and `old` is read only if it succeeded.
    let (ok, old) = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        let ok = libc::sigaction(signal, std::ptr::null(), &mut old);
        (ok, old)
    };
    if ok != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(match old.sa_sigaction {
        libc::SIG_DFL => Disposition::Default,
        libc::SIG_IGN => Disposition::Ignore,
        _ => Disposition::Handler,
    })
}

/// An `InvalidInput` error that says why `signal` was refused.
fn invalid(signal: c_int, why: &str) -> io::Error {
    let name = signal_hook::low_level::signal_name(signal);
    let signal = name.map_or_else(|| format!("signal {signal}"), str::to_owned);
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("hatchery-sigaction: {signal} {why}"),
    )
}
