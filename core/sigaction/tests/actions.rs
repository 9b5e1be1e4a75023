//! `register_write` and `disposition`, natively (Miri cannot run a signal handler).
//!
//! Signals belong to the process and the tests of this binary run at once, so each test
//! handles signals of its own. `raise` runs the handler on the calling thread before it
//! returns, so the order of the raises is the order received.
#![cfg(unix)]

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use hatchery_sigaction::{disposition, register_write, Disposition};
use signal_hook::consts::{
    SIGALRM, SIGKILL, SIGPIPE, SIGSEGV, SIGSTOP, SIGUSR1, SIGUSR2, SIGWINCH,
};
use signal_hook::low_level::{raise, unregister};

/// Two signals' actions write their numbers into one socket in the order received; the
/// signals are handled from registration on; unregistering drops each action, closing
/// its descriptor, so the reader sees the end once both are gone.
#[test]
fn numbers_in_order_and_unregister_closes() {
    let (mut read, write) = UnixStream::pair().unwrap();
    let usr1 = register_write(SIGUSR1, write.try_clone().unwrap().into()).unwrap();
    let usr2 = register_write(SIGUSR2, write.into()).unwrap();
    assert_eq!(disposition(SIGUSR1).unwrap(), Disposition::Handler);
    let sent = [SIGUSR1, SIGUSR2, SIGUSR2, SIGUSR1, SIGUSR2];
    for signal in sent {
        raise(signal).unwrap();
    }
    let mut got = [0u8; 5];
    read.read_exact(&mut got).unwrap();
    assert_eq!(got.map(i32::from), sent);

    assert!(unregister(usr1));
    raise(SIGUSR2).unwrap();
    // SIGUSR1 still runs signal-hook's handler (its previous action, the default one, is
    // not run by it): no byte, and the process lives on.
    raise(SIGUSR1).unwrap();
    let mut byte = [0u8];
    read.read_exact(&mut byte).unwrap();
    assert_eq!(i32::from(byte[0]), SIGUSR2);
    assert!(unregister(usr2));
    assert_eq!(read.read(&mut byte).unwrap(), 0, "both write ends closed");
}

/// The descriptor is made non-blocking (its duplicate shares that): a socket full of
/// unread bytes drops the signal's byte instead of blocking the handler, and takes the
/// next one once read.
#[test]
fn a_full_socket_drops_the_byte() {
    let (mut read, write) = UnixStream::pair().unwrap();
    let mut filler = write.try_clone().unwrap();
    // Were the socket left blocking, the filling below would wait this long at its end.
    filler
        .set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let id = register_write(SIGALRM, write.into()).unwrap();
    let start = Instant::now();
    let mut filled = 0;
    loop {
        match filler.write(&[0u8; 4096]) {
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "the write end is non-blocking ({:?} to fill it)",
        start.elapsed()
    );
    raise(SIGALRM).unwrap(); // returns: the handler did not wait
    read.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; filled + 1];
    let mut drained = 0;
    loop {
        match read.read(&mut buf[drained..]) {
            Ok(n) => drained += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(drained, filled, "the signal's byte was dropped");
    assert!(buf[..drained].iter().all(|&b| b == 0));
    raise(SIGALRM).unwrap();
    let mut byte = [0u8];
    read.read_exact(&mut byte).unwrap();
    assert_eq!(i32::from(byte[0]), SIGALRM);
    unregister(id);
}

/// Signals that cannot be handled, and numbers that are no signal, are refused with
/// `InvalidInput` (signal-hook would panic on the first), and nothing is registered.
#[test]
fn bad_signals_are_refused() {
    for (signal, why) in [
        (SIGKILL, "SIGKILL cannot be handled"),
        (SIGSTOP, "SIGSTOP cannot be handled"),
        (SIGSEGV, "SIGSEGV cannot be handled"),
        (0, "signal 0 is not a signal number"),
        (-1, "signal -1 is not a signal number"),
        (256, "signal 256 is not a signal number"),
    ] {
        let before = disposition(signal).ok();
        let (_, write) = UnixStream::pair().unwrap();
        let err = register_write(signal, write.into()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{signal}");
        assert!(err.to_string().contains(why), "{err}");
        assert_eq!(disposition(signal).ok(), before, "{signal}");
    }
}

/// `disposition` reads without changing: SIGPIPE is ignored (as std leaves it in every
/// Rust program), SIGWINCH has its default action until an action is registered, then
/// signal-hook's handler; a number that is no signal is the system's `EINVAL`.
#[test]
fn disposition_reads_what_a_signal_does() {
    assert_eq!(disposition(SIGPIPE).unwrap(), Disposition::Ignore);
    assert_eq!(disposition(SIGPIPE).unwrap(), Disposition::Ignore);
    assert_eq!(disposition(SIGWINCH).unwrap(), Disposition::Default);
    let (_read, write) = UnixStream::pair().unwrap();
    let id = register_write(SIGWINCH, write.into()).unwrap();
    assert_eq!(disposition(SIGWINCH).unwrap(), Disposition::Handler);
    unregister(id);
    for bad in [0, 1000, -3] {
        let err = disposition(bad).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{bad}: {err}");
    }
}
