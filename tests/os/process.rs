//! `hatchery::process` on every backend: pipes without deadlock, many children at once,
//! exit codes and signals, clear errors, and the termination rules: a cancelled `run` is
//! terminated and reaped (X12), a dropped running `Child` is killed and reaped (X13).
#![cfg(unix)]

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hatchery::process::{Command, ExitError, Stdio};
use hatchery::{move_on_after, CancelScope};
use hatchery_tests::{ms, secs};

/// A file name of its own for a test on this backend.
fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "hatchery-process-{}-{}-{name}",
        std::process::id(),
        hatchery_tests::backend()
    ))
}

/// The state of process `pid` (`'R'`, `'S'`, `'Z'` for a zombie...), `None` once it is
/// gone (reaped). Linux's `/proc`.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// How many zombie children this process has among `pids`.
fn zombies(pids: &[u32]) -> usize {
    pids.iter().filter(|&&p| state(p) == Some('Z')).count()
}

/// Waits (up to 10 s) until process `pid` is gone: killed and reaped.
async fn until_gone(pid: u32) {
    let start = Instant::now();
    while state(pid).is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "process {pid} is still there, state {:?}",
            state(pid)
        );
        hatchery::sleep(ms(5)).await;
    }
}

/// Runs `sh -c script` after it wrote its pid to a file, which it returns when it
/// appears.
async fn pid_from(path: &PathBuf) -> u32 {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if let Ok(pid) = s.trim().parse() {
                return pid;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no pid written");
        hatchery::sleep(ms(5)).await;
    }
}

fn enough_descriptors(needed: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current.unwrap_or(u64::MAX) >= needed {
        return;
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= needed,
        "this test needs {needed} file descriptors; the hard limit is {hard}"
    );
    limit.current = Some(needed);
    setrlimit(Resource::Nofile, limit).expect("raise the soft limit on file descriptors");
}

#[hatchery::test]
async fn x12_a_cancelled_run_of_sleep_60_is_terminated_and_reaped() {
    let file = temp("x12-run");
    let _ = std::fs::remove_file(&file);
    let script = format!("echo $$ > {}; exec sleep 60", file.display());
    let started = Instant::now();
    let (out, pid) = hatchery::nursery(|n| {
        let file = file.clone();
        async move {
            let scope = CancelScope::new();
            let cancel = scope.handle();
            let pid = n.spawn(async move {
                let pid = pid_from(&file).await;
                cancel.cancel();
                Ok::<_, anyhow::Error>(pid)
            });
            // A grace period far longer than the test: only SIGTERM ends it in time.
            let mut command = Command::new("sh");
            command.args(["-c", &script]).terminate_grace(secs(60));
            let out = scope.run(command.run()).await;
            Ok::<_, anyhow::Error>((out.map(|r| r.is_ok()), pid.join().await?))
        }
    })
    .await
    .unwrap();
    assert!(out.is_none(), "the run was not cancelled");
    // Reaped before `run` returned: gone, not a zombie.
    assert_eq!(state(pid), None, "the child is left behind");
    assert_eq!(zombies(&[pid]), 0);
    // SIGTERM, not the grace period and SIGKILL: `sleep` exits at SIGTERM.
    assert!(started.elapsed() < secs(30), "{:?}", started.elapsed());
    std::fs::remove_file(&file).unwrap();
}

#[hatchery::test]
async fn x12_a_child_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let file = temp("x12-grace");
    let _ = std::fs::remove_file(&file);
    let script = format!(
        "trap '' TERM; echo $$ > {}; while :; do sleep 0.05; done",
        file.display()
    );
    let mut command = Command::new("sh");
    command.args(["-c", &script]).terminate_grace(ms(300));
    let scope = CancelScope::new();
    let cancel = scope.handle();
    let (out, pid, cancelled_at) = hatchery::nursery(|n| {
        let file = file.clone();
        async move {
            let pid = n.spawn(async move {
                let pid = pid_from(&file).await;
                cancel.cancel();
                Ok::<_, anyhow::Error>((pid, Instant::now()))
            });
            let out = scope.run(command.status()).await;
            let (pid, at) = pid.join().await?;
            Ok::<_, anyhow::Error>((out.is_some(), pid, at))
        }
    })
    .await
    .unwrap();
    assert!(!out);
    // It waited out the grace period, then killed.
    assert!(
        cancelled_at.elapsed() >= ms(300),
        "{:?}",
        cancelled_at.elapsed()
    );
    assert_eq!(state(pid), None);
    std::fs::remove_file(&file).unwrap();
}

#[hatchery::test]
async fn x12_output_cancelled_with_a_grace_of_zero_kills_at_once() {
    let mut command = Command::new("sleep");
    command.arg("60").terminate_grace(Duration::ZERO);
    assert!(move_on_after(ms(50), command.output()).await.is_none());
}

#[hatchery::test]
async fn x12_wait_is_a_checkpoint_and_a_cancelled_wait_leaves_the_child_running() {
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    assert!(move_on_after(ms(30), child.wait()).await.is_none());
    assert!(child.try_wait().unwrap().is_none(), "the child was stopped");
    child.kill().unwrap();
    // Exited, but a wait in a cancelled scope does not complete.
    hatchery::sleep(ms(50)).await;
    let scope = CancelScope::new();
    scope.handle().cancel();
    assert!(scope.run(child.wait()).await.is_none());
    assert_eq!(child.wait().await.unwrap().signal(), Some(9));
}

#[hatchery::test]
async fn x13_a_dropped_running_child_is_killed_and_reaped() {
    let child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id();
    assert!(state(pid).is_some());
    drop(child);
    until_gone(pid).await;
}

#[hatchery::test]
async fn x13_a_detached_child_runs_on_and_is_reaped_when_it_exits() {
    let child = Command::new("sleep").arg("1").spawn().unwrap();
    let pid = child.id();
    child.detach();
    hatchery::sleep(ms(100)).await;
    assert!(matches!(state(pid), Some('S' | 'R')), "{:?}", state(pid));
    until_gone(pid).await; // reaped, not a zombie
}

#[hatchery::test]
async fn x13_a_child_dropped_in_a_cancelled_task_is_killed_and_reaped() {
    let pid = hatchery::nursery(|n| async move {
        let (tx, rx) = hatchery::memory_stream(1);
        let task = n.spawn(async move {
            let mut child = Command::new("sleep").arg("60").spawn()?;
            tx.send(child.id()).await.ok();
            child.wait().await?;
            Ok::<_, io::Error>(())
        });
        let pid = rx.recv().await.unwrap();
        task.cancel();
        Ok::<_, io::Error>(pid)
    })
    .await
    .unwrap();
    until_gone(pid).await;
}

#[hatchery::test]
async fn cat_fed_16_mib_while_its_stdout_is_read_does_not_deadlock() {
    const LEN: usize = 16 << 20;
    let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    // By hand: a task writes stdin, the body reads stdout.
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let input = data.clone();
    let got = hatchery::nursery(|n| async move {
        n.spawn(async move {
            stdin.write_all(&input).await?;
            Ok(()) // dropped: closed
        });
        let mut got = Vec::with_capacity(LEN);
        stdout.read_to_end(&mut got).await?;
        Ok::<_, io::Error>(got)
    })
    .await
    .unwrap();
    assert!(child.wait().await.unwrap().success());
    assert!(got == data, "cat's output differs");
    // And with `run_with_input`, in one task.
    let out = Command::new("cat").run_with_input(&data).await.unwrap();
    assert!(out.stdout == data, "cat's output differs");
}

#[hatchery::test]
async fn two_hundred_concurrent_children() {
    // pidfd and two pipes each, the three backends at once.
    enough_descriptors(3 * 200 * 4 + 256);
    let codes = hatchery::map(200, 0..200u32, |i| async move {
        let out = Command::new("sh")
            .args(["-c", "echo $1; exit $(($1 % 7))", "sh", &i.to_string()])
            .output()
            .await?;
        assert_eq!(out.stdout, format!("{i}\n").into_bytes());
        Ok::<_, io::Error>(out.status.code())
    })
    .try_join()
    .await
    .unwrap();
    for (i, code) in codes.into_iter().enumerate() {
        assert_eq!(code, Some(i as i32 % 7));
    }
}

#[hatchery::test]
async fn exit_codes_and_signals() {
    let status = Command::new("sh")
        .args(["-c", "exit 42"])
        .status()
        .await
        .unwrap();
    assert_eq!(status.code(), Some(42));
    assert!(!status.success());
    let status = Command::new("sh")
        .args(["-c", "kill -TERM $$"])
        .status()
        .await
        .unwrap();
    assert_eq!((status.code(), status.signal()), (None, Some(15)));
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    child.terminate().unwrap();
    assert_eq!(child.wait().await.unwrap().signal(), Some(15));
    // Reaped: kill and terminate do nothing now.
    child.kill().unwrap();
    child.terminate().unwrap();
    assert!(Command::new("true").status().await.unwrap().success());
}

#[hatchery::test]
async fn run_checks_the_exit_status_and_keeps_stderr() {
    let e = Command::new("sh")
        .args(["-c", "echo partial; echo 'it broke' >&2; exit 3"])
        .run()
        .await
        .unwrap_err();
    let failed = ExitError::of(&e).expect("an ExitError");
    assert_eq!(failed.status().code(), Some(3));
    assert_eq!(failed.stderr(), b"it broke\n");
    assert_eq!(failed.stdout(), b"partial\n");
    let msg = e.to_string();
    assert!(
        msg.contains("sh failed") && msg.contains("it broke"),
        "{msg}"
    );
    // Success: the output.
    let out = Command::new("echo").arg("fine").run().await.unwrap();
    assert_eq!(out.stdout, b"fine\n");
}

#[hatchery::test]
async fn a_missing_executable_is_not_found_with_its_name() {
    let e = Command::new("hatchery-no-such-program")
        .spawn()
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    assert!(e.to_string().contains("hatchery-no-such-program"), "{e}");
    let e = Command::new("hatchery-no-such-program")
        .run()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
}

#[hatchery::test]
async fn a_file_that_is_not_executable_is_permission_denied() {
    let file = temp("not-executable");
    std::fs::write(&file, "#!/bin/sh\necho hi\n").unwrap();
    let e = Command::new(&file).status().await.unwrap_err();
    std::fs::remove_file(&file).unwrap();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    assert!(e.to_string().contains("not-executable"), "{e}");
}

#[hatchery::test]
async fn writing_to_a_child_that_closed_its_stdin_is_a_broken_pipe() {
    let mut child = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    assert!(child.wait().await.unwrap().success());
    // More than a pipe holds: a process that another test forks at this moment holds
    // a copy of the read end until its exec closes it, and the write fails only then.
    let e = hatchery::fail_after(secs(10), stdin.write_all(&vec![0; 1 << 20]))
        .await
        .expect("the write neither failed nor finished")
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    assert!(e.to_string().contains("stdin"), "{e}");
}

#[hatchery::test]
async fn a_child_closing_stdout_early_ends_the_stream_and_run_with_input_stops_feeding() {
    let input = vec![b'x'; 1 << 20];
    let out = Command::new("head")
        .args(["-c", "10"])
        .run_with_input(&input)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"xxxxxxxxxx");
    // Reading: the end of the stream, then the exit.
    let mut child = Command::new("sh")
        .args(["-c", "exec 1>&-; sleep 0.1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0; 8];
    assert_eq!(
        child.stdout.as_mut().unwrap().read(&mut buf).await.unwrap(),
        0
    );
    assert!(child.wait().await.unwrap().success());
}

#[hatchery::test]
async fn x9_a_directory_as_the_program_is_permission_denied_with_its_name() {
    let dir = temp("a-directory");
    std::fs::create_dir_all(&dir).unwrap();
    let e = Command::new(&dir).status().await.unwrap_err();
    std::fs::remove_dir(&dir).unwrap();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    assert!(e.to_string().contains("a-directory"), "{e}");
    // The system's error, with its code, is the source.
    let source = std::error::Error::source(e.get_ref().unwrap()).unwrap();
    let os = source.downcast_ref::<io::Error>().unwrap();
    assert_eq!(
        os.raw_os_error(),
        Some(rustix::io::Errno::ACCESS.raw_os_error())
    );
}

#[hatchery::test]
async fn x9_a_nul_byte_in_the_program_or_an_argument_is_invalid_input() {
    for mut command in [Command::new("ca\0t"), {
        let mut c = Command::new("echo");
        c.arg("a\0b");
        c
    }] {
        let e = command.run().await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("cannot run"), "{e}");
    }
}

/// The environment variable that makes [`x9_too_many_open_files_at_spawn_child`] run.
const EMFILE_CHILD: &str = "HATCHERY_PROCESS_EMFILE_CHILD";

/// Runs [`x9_too_many_open_files_at_spawn_child`] in a process of its own, whose limit of
/// open files it lowers (a limit of this process would fail the tests beside it).
#[test]
fn x9_too_many_open_files_at_spawn() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "process::x9_too_many_open_files_at_spawn_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(EMFILE_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[test]
fn x9_too_many_open_files_at_spawn_child() {
    use hatchery_tests::Backend;
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    if std::env::var_os(EMFILE_CHILD).is_none() {
        return; // only in the process `x9_too_many_open_files_at_spawn` starts
    }
    let old = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(128),
            maximum: old.maximum,
        },
    )
    .unwrap();
    for backend in [Backend::TokioCurrent, Backend::TokioMulti, Backend::Smol] {
        backend.run(async move {
            // Children with three pipes each, until the descriptors run out.
            let mut running = Vec::new();
            let err = loop {
                let spawned = Command::new("cat")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn();
                match spawned {
                    Ok(child) => running.push(child),
                    Err(e) => break e,
                }
                assert!(running.len() < 128, "the limit of 128 did not hold");
            };
            assert!(err.to_string().contains("cat"), "{err}");
            let source = std::error::Error::source(err.get_ref().unwrap()).unwrap();
            let os = source.downcast_ref::<io::Error>().unwrap();
            assert_eq!(
                os.raw_os_error(),
                Some(rustix::io::Errno::MFILE.raw_os_error())
            );
            // Dropped (killed and reaped), they free their descriptors: the next works.
            let pids: Vec<u32> = running.iter().map(|c| c.id()).collect();
            drop(running);
            for pid in pids {
                until_gone(pid).await;
            }
            let out = Command::new("echo").arg("again").run().await.unwrap();
            assert_eq!(out.stdout, b"again\n");
        });
    }
}

#[hatchery::test]
async fn x14_closing_stdin_ends_the_childs_input_while_it_is_still_held() {
    use futures_lite::AsyncWriteExt;
    // Through the inherent `close`, futures' `close`, and tokio's `shutdown`.
    for how in ["close", "futures", "tokio"] {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(how.as_bytes()).await.unwrap();
        match how {
            "close" => stdin.close().await.unwrap(),
            "futures" => AsyncWriteExt::close(stdin).await.unwrap(),
            _ => tokio::io::AsyncWriteExt::shutdown(stdin).await.unwrap(),
        }
        // `child.stdin` is still there: only the close can have ended cat's input.
        let mut out = Vec::new();
        let read = child.stdout.as_mut().unwrap().read_to_end(&mut out);
        hatchery::fail_after(secs(10), read)
            .await
            .unwrap_or_else(|_| panic!("{how}: cat saw no end of its input"))
            .unwrap();
        assert_eq!(out, how.as_bytes());
        assert!(child.stdin.is_some());
        // A write after the close: BrokenPipe, at once.
        let stdin = child.stdin.as_mut().unwrap();
        let e = stdin.write_all(b"more").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{how}: {e}");
        assert!(e.to_string().contains("closed"), "{e}");
        stdin.close().await.unwrap(); // again: nothing to do
        assert!(child.wait().await.unwrap().success());
    }
}

#[hatchery::test]
async fn x14_close_in_a_cancelled_scope_is_a_checkpoint_and_closes_nothing() {
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.as_mut().unwrap();
    let scope = CancelScope::new();
    scope.handle().cancel();
    assert!(scope.run(stdin.close()).await.is_none());
    // Still open: a write goes through, and cat echoes it.
    stdin.write_all(b"open").await.unwrap();
    let mut buf = [0; 4];
    let stdout = child.stdout.as_mut().unwrap();
    let mut got = 0;
    while got < 4 {
        got += stdout.read(&mut buf[got..]).await.unwrap();
    }
    assert_eq!(&buf, b"open");
    child.stdin.as_mut().unwrap().close().await.unwrap();
    assert!(child.wait().await.unwrap().success());
}

#[hatchery::test]
async fn x12_ten_cancelled_runs_leave_no_zombie() {
    const RUNS: usize = 10;
    let files: Vec<PathBuf> = (0..RUNS).map(|i| temp(&format!("x12-ten-{i}"))).collect();
    for f in &files {
        let _ = std::fs::remove_file(f);
    }
    let scope = CancelScope::new();
    let cancel = scope.handle();
    let pids = hatchery::nursery(|n| {
        let files = files.clone();
        async move {
            let pid_files = files.clone();
            let pids = n.spawn(async move {
                let mut pids = Vec::new();
                for f in &pid_files {
                    pids.push(pid_from(f).await);
                }
                cancel.cancel();
                Ok::<_, anyhow::Error>(pids)
            });
            let runs = hatchery::map(RUNS, files, |f| async move {
                let script = format!("echo $$ > {}; exec sleep 60", f.display());
                let mut command = Command::new("sh");
                command.args(["-c", &script]).terminate_grace(secs(60));
                command.run().await
            });
            assert!(scope.run(runs.try_join()).await.is_none());
            Ok::<_, anyhow::Error>(pids.join().await?)
        }
    })
    .await
    .unwrap();
    // Counted right after the scope returned: every child reaped, none a zombie.
    assert_eq!(pids.len(), RUNS);
    assert_eq!(zombies(&pids), 0);
    let left: Vec<_> = pids.iter().filter(|&&p| state(p).is_some()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    for f in &files {
        std::fs::remove_file(f).unwrap();
    }
}

#[hatchery::test]
async fn env_cwd_and_stdio_are_as_set() {
    let out = Command::new("sh")
        .args(["-c", "printf '%s %s' \"$A\" \"$(pwd)\"; cat"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("A", "b")
        .current_dir("/")
        .run_with_input(b"!")
        .await
        .unwrap();
    assert_eq!(out.stdout, b"b /!");
    // stderr not captured when set to null.
    let out = Command::new("sh")
        .args(["-c", "echo e >&2"])
        .stderr(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(out.stderr.is_empty());
}

#[hatchery::test]
async fn the_async_read_and_write_traits_work_on_the_pipes() {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    AsyncWriteExt::write_all(&mut stdin, b"trait")
        .await
        .unwrap();
    drop(stdin);
    let mut s = String::new();
    AsyncReadExt::read_to_string(child.stdout.as_mut().unwrap(), &mut s)
        .await
        .unwrap();
    assert_eq!(s, "trait");
    child.wait().await.unwrap();
}

/// Tokio's traits on the pipes (the `tokio-io` feature): a write, flush and shutdown
/// (which closes the pipe, so `cat` ends), then stdout and stderr read to their ends.
#[hatchery::test]
async fn tokio_s_async_read_and_write_traits_work_on_the_pipes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut child = Command::new("sh")
        .args(["-c", "cat; echo err >&2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    AsyncWriteExt::write_all(&mut stdin, b"tokio")
        .await
        .unwrap();
    AsyncWriteExt::flush(&mut stdin).await.unwrap();
    AsyncWriteExt::shutdown(&mut stdin).await.unwrap();
    let mut out = Vec::new();
    // Bounded: a `shutdown` that left stdin open would leave `cat` running for good.
    let read = AsyncReadExt::read_to_end(child.stdout.as_mut().unwrap(), &mut out);
    hatchery::fail_after(secs(10), read)
        .await
        .expect("shutdown closes the child's stdin")
        .unwrap();
    assert_eq!(out, b"tokio");
    let mut err = String::new();
    AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut err)
        .await
        .unwrap();
    assert_eq!(err, "err\n");
    assert!(child.wait().await.unwrap().success());
}

/// A child spawned outside any runtime (plain code): no pipes, nothing registered; it
/// is killed and reaped when dropped.
#[test]
fn a_child_spawned_outside_a_runtime_is_killed_and_reaped_when_dropped() {
    let child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id();
    drop(child);
    let start = Instant::now();
    while state(pid).is_some() {
        assert!(start.elapsed() < secs(10), "process {pid} is still there");
        std::thread::sleep(ms(5));
    }
}
