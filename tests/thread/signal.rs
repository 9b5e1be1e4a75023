//! `hatchery::signal`: signals raised in this process come out of a stream in order,
//! to every stream of their set; `recv` is cancel safe and a checkpoint; `ctrl_c`;
//! dropping the last stream of a signal gives the signal back (its default action, or
//! nothing if it was ignored); bad sets fail clearly (rule T7).
//!
//! Signals belong to the process and the tests of this binary (each backend a test of
//! its own) run at once, so every test that handles a signal holds [`SIGNALS`] while it
//! does. `raise` delivers the signal to the calling thread before it returns, so the
//! order of the raises is the order received.
#![cfg(unix)]

use std::io::ErrorKind;
use std::sync::LazyLock;
use std::time::Duration;

use futures_lite::StreamExt as _;
use hatchery::signal::{ctrl_c, Signal, Signals};
use hatchery::sync::Lock;
use hatchery::{move_on_after, nursery, race, sleep, CancelScope};
use signal_hook::low_level::raise;

/// Held by every test while it handles signals.
static SIGNALS: LazyLock<Lock<()>> = LazyLock::new(|| Lock::new(()));

/// Different signals, raised in an order, come out of the stream in that order; the
/// stream, read as a `Stream`, gives the same.
#[hatchery::test]
async fn t7_received_in_order() {
    let _serial = SIGNALS.lock().await;
    let mut signals = Signals::new([Signal::USR1, Signal::USR2]).unwrap();
    let sent = [
        Signal::USR1,
        Signal::USR2,
        Signal::USR2,
        Signal::USR1,
        Signal::USR2,
    ];
    for s in sent {
        raise(s.as_raw()).unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(signals.recv().await.unwrap());
    }
    for _ in 0..2 {
        got.push(signals.next().await.unwrap().unwrap());
    }
    assert_eq!(got, sent);
}

/// A `recv` waiting for a signal wakes when one is raised later, from another thread.
#[hatchery::test]
async fn a_waiting_recv_wakes() {
    let _serial = SIGNALS.lock().await;
    let mut signals = Signals::new([Signal::USR1]).unwrap();
    let raiser = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(50));
        raise(Signal::USR1.as_raw()).unwrap();
    });
    assert_eq!(signals.recv().await.unwrap(), Signal::USR1);
    raiser.join().unwrap();
}

/// Every stream of a signal gets it; a stream gets only the signals of its set.
#[hatchery::test]
async fn every_stream_of_a_signal_gets_it() {
    let _serial = SIGNALS.lock().await;
    let mut a = Signals::new([Signal::USR1]).unwrap();
    let mut b = Signals::new([Signal::USR1, Signal::USR2]).unwrap();
    raise(Signal::USR2.as_raw()).unwrap();
    raise(Signal::USR1.as_raw()).unwrap();
    assert_eq!(a.recv().await.unwrap(), Signal::USR1);
    assert_eq!(b.recv().await.unwrap(), Signal::USR2);
    assert_eq!(b.recv().await.unwrap(), Signal::USR1);
    // `a` had nothing else.
    assert!(move_on_after(Duration::from_millis(20), a.recv())
        .await
        .is_none());
}

/// A `recv` cancelled while it waits, or polled in a cancelled scope with a signal
/// already read, loses nothing: the next `recv` gets the signal.
#[hatchery::test]
async fn recv_is_cancel_safe_and_a_checkpoint() {
    let _serial = SIGNALS.lock().await;
    let mut signals = Signals::new([Signal::USR1, Signal::USR2]).unwrap();
    // Cancelled while waiting.
    assert!(move_on_after(Duration::from_millis(10), signals.recv())
        .await
        .is_none());
    // Two signals: the first `recv` reads both from the socket and returns one.
    raise(Signal::USR1.as_raw()).unwrap();
    raise(Signal::USR2.as_raw()).unwrap();
    assert_eq!(signals.recv().await.unwrap(), Signal::USR1);
    // In a cancelled scope, the one already read is not returned...
    let scope = CancelScope::new();
    scope.handle().cancel();
    assert!(scope.run(signals.recv()).await.is_none());
    // ...but kept for the next `recv`.
    assert_eq!(signals.recv().await.unwrap(), Signal::USR2);
}

/// `ctrl_c` returns on SIGINT. A stream of SIGINT held around it keeps an early SIGINT
/// (raised before `ctrl_c` was first polled) from ending the test binary, and the raises
/// repeat until `ctrl_c` has one.
#[hatchery::test]
async fn ctrl_c_returns_on_sigint() {
    let _serial = SIGNALS.lock().await;
    let mut guard = Signals::new([Signal::INT]).unwrap();
    let got = race!(ctrl_c(), async {
        loop {
            raise(Signal::INT.as_raw()).unwrap();
            sleep(Duration::from_millis(10)).await;
        }
    });
    got.unwrap();
    assert_eq!(guard.recv().await.unwrap(), Signal::INT);
}

/// A watcher task shuts a nursery down on a signal, by cancelling its scope.
#[hatchery::test]
async fn a_signal_cancels_a_scope() {
    let _serial = SIGNALS.lock().await;
    let mut signals = Signals::new([Signal::USR2]).unwrap();
    let scope = CancelScope::new();
    let shutdown = scope.handle();
    let out = scope
        .run(nursery(|n| async move {
            n.spawn(async move {
                signals.recv().await?;
                shutdown.cancel();
                Ok::<_, std::io::Error>(())
            });
            n.spawn(async {
                sleep(Duration::from_millis(10)).await;
                raise(Signal::USR2.as_raw())?;
                std::future::pending::<std::io::Result<()>>().await
            });
            Ok(())
        }))
        .await;
    assert!(out.is_none(), "the scope caught its cancellation");
}

/// Rust programs ignore SIGPIPE; handling it and dropping the stream leaves it ignored
/// (a SIGPIPE afterwards would end the test binary if it were not).
#[hatchery::test]
async fn an_ignored_signal_stays_ignored() {
    let _serial = SIGNALS.lock().await;
    let mut signals = Signals::new([Signal::PIPE]).unwrap();
    raise(Signal::PIPE.as_raw()).unwrap();
    assert_eq!(signals.recv().await.unwrap(), Signal::PIPE);
    drop(signals);
    raise(Signal::PIPE.as_raw()).unwrap();
}

/// Bad sets fail with `InvalidInput`, saying why; `Debug` shows the set.
#[hatchery::test]
async fn bad_sets_fail_clearly() {
    let err = Signals::new([]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("no signals"), "{err}");
    for (raw, why) in [
        (signal_hook::consts::SIGKILL, "SIGKILL cannot be handled"),
        (signal_hook::consts::SIGSEGV, "SIGSEGV cannot be handled"),
        (1000, "signal 1000 is not a signal this platform knows"),
        (0, "signal 0 is not a signal this platform knows"),
    ] {
        let err = Signals::new([Signal::TERM, Signal::from_raw(raw)]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains(why), "{err}");
    }
    let _serial = SIGNALS.lock().await;
    let signals = Signals::new([Signal::USR2, Signal::USR1, Signal::USR2]).unwrap();
    let mut set = [Signal::USR1, Signal::USR2];
    set.sort();
    assert_eq!(
        format!("{signals:?}"),
        format!("Signals {{ set: [{}, {}] }}", set[0], set[1])
    );
}

/// Dropping the last stream of SIGUSR1 gives it its default action back: a SIGUSR1
/// raised after the drop ends the process. In a child process, one per backend.
#[test]
fn t7_dropping_restores_the_default_action() {
    use std::os::unix::process::ExitStatusExt as _;
    const CHILD: &str = "HATCHERY_TEST_SIGNAL_CHILD";
    if let Some(backend) = std::env::var_os(CHILD) {
        let scenario = async {
            let mut a = Signals::new([Signal::USR1]).unwrap();
            let mut b = Signals::new([Signal::USR1]).unwrap();
            raise(Signal::USR1.as_raw()).unwrap();
            assert_eq!(a.recv().await.unwrap(), Signal::USR1);
            drop(a);
            // `b` still handles it.
            raise(Signal::USR1.as_raw()).unwrap();
            assert_eq!(b.recv().await.unwrap(), Signal::USR1);
            assert_eq!(b.recv().await.unwrap(), Signal::USR1);
            drop(b);
            // And a new stream after the restore handles it again.
            let mut c = Signals::new([Signal::USR1]).unwrap();
            raise(Signal::USR1.as_raw()).unwrap();
            assert_eq!(c.recv().await.unwrap(), Signal::USR1);
        };
        match backend.to_str().unwrap() {
            "tokio_current" => hatchery_tokio::run_current_thread(scenario),
            "tokio_multi" => hatchery_tokio::run(scenario),
            _ => hatchery_smol::run(scenario),
        }
        println!("dropped every stream");
        raise(Signal::USR1.as_raw()).unwrap();
        println!("survived SIGUSR1");
        return;
    }
    for backend in ["tokio_current", "tokio_multi", "smol"] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "signal::t7_dropping_restores_the_default_action",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, backend)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("dropped every stream") && !stdout.contains("survived"),
            "{backend}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.signal(),
            Some(Signal::USR1.as_raw()),
            "{backend}: {:?}",
            out.status
        );
    }
}
