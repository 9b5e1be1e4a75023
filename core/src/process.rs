//! Child processes on any executor: [`Command`] runs a program, [`Child`] is the running
//! process, with its stdin, stdout and stderr as pipes on the runtime's reactor.
//!
//! A library that shells out to `git` or runs a language server depends on `hatchery`
//! alone: on `hatchery-tokio` the pipes and the child's exit are registered with tokio's
//! reactor, on `hatchery-smol` with async-io's.
//!
//! | | |
//! |---|---|
//! | [`Command`] | std's `Command` (it wraps one): program, args, env, working directory, [`Stdio`] |
//! | [`Command::spawn`] → [`Child`] | the running process: [`wait`](Child::wait), [`kill`](Child::kill), [`terminate`](Child::terminate), [`id`](Child::id), its pipes |
//! | [`Command::status`], [`Command::output`] | run to the end: the exit status; the status and what it wrote |
//! | [`Command::run`], [`Command::run_with_input`] | anyio's `run_process`: the output, and an [`ExitError`] (status and stderr) if it failed |
//!
//! ```
//! # #[cfg(unix)] {
//! use hatchery::process::Command;
//!
//! # hatchery_smol::run(async {
//! let out = Command::new("echo").arg("hello").run().await?;
//! assert_eq!(out.stdout, b"hello\n");
//! # Ok::<_, std::io::Error>(())
//! # }).unwrap();
//! # }
//! ```
//!
//! # Cancellation and termination
//!
//! **Operations that run a child to its end ([`status`](Command::status),
//! [`output`](Command::output), [`run`](Command::run),
//! [`wait_with_output`](Child::wait_with_output)) terminate it when the scope that waits
//! is cancelled** (rule X12, trio's `run_process`): SIGTERM, then up to the grace period
//! ([`Command::terminate_grace`], 5 seconds unless set) for it to exit, then SIGKILL; the
//! child is reaped before the operation ends, shielded from the cancellation. So a
//! cancelled `run` leaves no process behind and no zombie.
//!
//! [`Child::wait`] only waits, as trio's `Process.wait`: cancelled, it stops waiting and
//! the child runs on; the `Child` is still yours. **A `Child` dropped while its process
//! runs kills it (SIGKILL) and reaps it** (rule X13), unless [`detach`](Child::detach)ed;
//! nothing is left a zombie. Every wait is a checkpoint.
//!
//! # Closing stdin
//!
//! [`ChildStdin::close`] (and `close` or `shutdown` through the `AsyncWrite` traits)
//! closes the pipe at once, though the [`Child`] still holds it: the child reads the end
//! of its input (rule X14). Dropping the `ChildStdin` closes it too.
//!
//! # Reaping
//!
//! A child's exit is awaited without a thread: on Linux (5.3 and later) through a pidfd
//! registered with the runtime's reactor; elsewhere (or where `pidfd_open` is refused) by
//! checking the child with `waitpid(WNOHANG)` on a timer, from every millisecond up to
//! every 50 ms. Only a `Child` dropped while running, or detached, costs a thread, which
//! waits for that process to exit and ends.
//!
//! # Errors
//!
//! A program that cannot be run fails [`spawn`](Command::spawn) with the system's error
//! and the program's name: `NotFound` (no such program), `PermissionDenied` (not
//! executable). Writing to a child that closed its stdin is `BrokenPipe`. A child that
//! closes its stdout early is an end of stream for the reader (`read` returns 0), and
//! [`run_with_input`](Command::run_with_input) stops feeding its stdin then, as Python's
//! `communicate` does.
//!
//! Like every Rust program, hatchery expects SIGPIPE to be ignored (Rust's `main` does
//! this before it starts); a program that sets it back to its default is killed by a
//! write to a closed pipe.
//!
//! # Windows
//!
//! Spawning, waiting (on a timer), [`kill`](Child::kill) and the termination policy work;
//! piped stdio does not yet: [`Stdio::piped`] fails `spawn` with an error of kind
//! [`Unsupported`](io::ErrorKind::Unsupported), and so do [`Command::output`] and
//! [`Command::run`], which pipe.

use std::ffi::OsStr;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::path::Path;
use std::process::ExitStatus;
use std::task::{Context, Poll};
use std::time::Duration;

pub use std::process::Output;

use crate::net::Io;
#[cfg(unix)]
use crate::seam::Interest;

/// The default of [`Command::terminate_grace`]: trio's.
const GRACE: Duration = Duration::from_secs(5);

/// How a child's stdin, stdout or stderr is set up: [`piped`](Stdio::piped) (a pipe on
/// the reactor, a field of the [`Child`]), [`null`](Stdio::null),
/// [`inherit`](Stdio::inherit), or any `std::process::Stdio` (a file, a descriptor).
///
/// # Examples
///
/// ```
/// # #[cfg(unix)] {
/// use hatchery::process::{Command, Stdio};
///
/// # hatchery_smol::run(async {
/// let status = Command::new("true").stdout(Stdio::null()).status().await?;
/// assert!(status.success());
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// # }
/// ```
pub struct Stdio(StdioKind);

enum StdioKind {
    Piped,
    Std(std::process::Stdio),
}

impl Stdio {
    /// A pipe to the parent: the [`Child`]'s `stdin`, `stdout` or `stderr` field.
    ///
    /// # Examples
    ///
    /// See [`Command::spawn`].
    pub fn piped() -> Stdio {
        Stdio(StdioKind::Piped)
    }

    /// Nothing: the child reads an end of file, its writes are discarded.
    ///
    /// # Examples
    ///
    /// See [`Stdio`].
    pub fn null() -> Stdio {
        Stdio(StdioKind::Std(std::process::Stdio::null()))
    }

    /// The parent's own.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::process::{Command, Stdio};
    ///
    /// let mut command = Command::new("ls");
    /// command.stderr(Stdio::inherit());
    /// ```
    pub fn inherit() -> Stdio {
        Stdio(StdioKind::Std(std::process::Stdio::inherit()))
    }

    fn is_piped(&self) -> bool {
        matches!(self.0, StdioKind::Piped)
    }

    fn into_std(self) -> std::process::Stdio {
        match self.0 {
            StdioKind::Piped => std::process::Stdio::piped(),
            StdioKind::Std(s) => s,
        }
    }
}

/// A file, a descriptor, or std's `Stdio::piped()` (which is taken as [`Stdio::piped`]
/// only when made by it: std's are opaque, so any other is passed on as it is).
impl From<std::process::Stdio> for Stdio {
    fn from(s: std::process::Stdio) -> Stdio {
        Stdio(StdioKind::Std(s))
    }
}

impl From<std::fs::File> for Stdio {
    fn from(f: std::fs::File) -> Stdio {
        Stdio(StdioKind::Std(f.into()))
    }
}

#[cfg(unix)]
impl From<std::os::fd::OwnedFd> for Stdio {
    fn from(fd: std::os::fd::OwnedFd) -> Stdio {
        Stdio(StdioKind::Std(fd.into()))
    }
}

impl fmt::Debug for Stdio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            StdioKind::Piped => f.write_str("Stdio::piped"),
            StdioKind::Std(s) => fmt::Debug::fmt(s, f),
        }
    }
}

/// A program to run, with its arguments, environment, working directory and stdio: std's
/// [`Command`](std::process::Command), whose builder it wraps, with async ways to run
/// it.
///
/// Defaults, as std's: [`spawn`](Command::spawn) and [`status`](Command::status) inherit
/// the parent's stdin, stdout and stderr; [`output`](Command::output) and
/// [`run`](Command::run) capture stdout and stderr and give the child no stdin (an end of
/// file), unless set.
///
/// # Examples
///
/// ```
/// # #[cfg(unix)] {
/// use hatchery::process::Command;
///
/// # hatchery_smol::run(async {
/// let out = Command::new("sh")
///     .args(["-c", "echo $GREETING from $(pwd)"])
///     .env("GREETING", "hello")
///     .current_dir("/")
///     .output()
///     .await?;
/// assert!(out.status.success());
/// assert_eq!(out.stdout, b"hello from /\n");
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// # }
/// ```
pub struct Command {
    std: std::process::Command,
    stdin: Option<bool>,
    stdout: Option<bool>,
    stderr: Option<bool>,
    grace: Duration,
}

/// Sets a stdio of both the std command and the record of whether it is piped.
macro_rules! stdio_setter {
    ($name:ident, $what:literal) => {
        #[doc = concat!("Sets up the child's ", $what, ": see [`Stdio`].")]
        ///
        /// # Examples
        ///
        /// See [`Command::spawn`].
        pub fn $name(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
            let cfg = cfg.into();
            self.$name = Some(cfg.is_piped());
            self.std.$name(cfg.into_std());
            self
        }
    };
}

impl Command {
    /// A command to run `program` (a path, or a name looked up in `PATH`), with no
    /// arguments, the parent's environment and working directory.
    ///
    /// # Examples
    ///
    /// See [`Command`].
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        std::process::Command::new(program).into()
    }

    /// Adds an argument.
    ///
    /// # Examples
    ///
    /// See [`Command::run`].
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    ///
    /// # Examples
    ///
    /// See [`Command`].
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable of the child.
    ///
    /// # Examples
    ///
    /// See [`Command`].
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.std.env(key, value);
        self
    }

    /// Sets environment variables of the child.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::process::Command;
    ///
    /// let mut command = Command::new("make");
    /// command.envs([("CC", "clang"), ("V", "1")]);
    /// ```
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::process::Command;
    ///
    /// let mut command = Command::new("cargo");
    /// command.env_remove("RUSTFLAGS");
    /// ```
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Gives the child an empty environment (then only what [`env`](Command::env) sets).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::process::Command;
    ///
    /// let mut command = Command::new("/usr/bin/env");
    /// command.env_clear().env("ONLY", "this");
    /// ```
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// Sets the child's working directory.
    ///
    /// # Examples
    ///
    /// See [`Command`].
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    stdio_setter!(stdin, "stdin");
    stdio_setter!(stdout, "stdout");
    stdio_setter!(stderr, "stderr");

    /// How long a child gets to exit after SIGTERM when the scope waiting for it is
    /// cancelled, before SIGKILL (rule X12); 5 seconds unless set, as trio's
    /// `run_process`. `Duration::ZERO`: SIGKILL at once. (On Windows the child is
    /// killed at once: there is no SIGTERM.)
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::time::Duration;
    /// use hatchery::process::Command;
    ///
    /// # hatchery_smol::run(async {
    /// let mut sleeper = Command::new("sleep");
    /// sleeper.arg("60").terminate_grace(Duration::from_millis(100));
    /// // Cancelled after 10 ms: SIGTERM ends `sleep` at once.
    /// let done = hatchery::move_on_after(Duration::from_millis(10), sleeper.status()).await;
    /// assert!(done.is_none());
    /// # });
    /// # }
    /// ```
    pub fn terminate_grace(&mut self, grace: Duration) -> &mut Command {
        self.grace = grace;
        self
    }

    /// std's command, to read what is set, or to set what this type does not (on Unix:
    /// `uid`, `process_group`, `pre_exec` through `std::os::unix::process::CommandExt`).
    /// Set stdio through [`Command::stdin`] and the others, which keep track of pipes.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::process::Command;
    ///
    /// let mut command = Command::new("ls");
    /// command.arg("-l");
    /// assert_eq!(command.as_std().get_program(), "ls");
    /// ```
    pub fn as_std(&self) -> &std::process::Command {
        &self.std
    }

    /// std's command, mutably: see [`as_std`](Command::as_std).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::os::unix::process::CommandExt;
    /// use hatchery::process::Command;
    ///
    /// let mut command = Command::new("sleep");
    /// command.as_std_mut().process_group(0); // its own process group
    /// # }
    /// ```
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// Starts the program, with stdio as set (inherited unless set), and returns the
    /// running [`Child`].
    ///
    /// Not async (as std's and tokio's): starting a process does not wait for it.
    ///
    /// # Panics
    ///
    /// With piped stdio, outside a hatchery runtime.
    ///
    /// # Errors
    ///
    /// The system's, with the program's name in the message: `NotFound` when there is no
    /// such program, `PermissionDenied` when it is not executable. Piped stdio on
    /// Windows, or on a runtime without an I/O reactor: `Unsupported`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use hatchery::process::{Command, Stdio};
    ///
    /// # hatchery_smol::run(async {
    /// let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    /// let mut stdin = child.stdin.take().unwrap();
    /// stdin.write_all(b"meow").await?;
    /// drop(stdin); // the end of cat's input
    /// let mut out = Vec::new();
    /// child.stdout.as_mut().unwrap().read_to_end(&mut out).await?;
    /// assert_eq!(out, b"meow");
    /// assert!(child.wait().await?.success());
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub fn spawn(&mut self) -> io::Result<Child> {
        self.spawn_with(false)
    }

    /// `spawn`, with stdout and stderr piped and stdin null unless set (for `output`).
    fn spawn_with(&mut self, capture: bool) -> io::Result<Child> {
        let any_piped = self.stdin.unwrap_or(false)
            || self.stdout.unwrap_or(capture)
            || self.stderr.unwrap_or(capture);
        if capture {
            self.set_unset(std::process::Stdio::null, std::process::Stdio::piped);
        }
        let result = self.spawn_std(any_piped);
        if capture {
            // Back to "not set", for the next `spawn`.
            self.set_unset(std::process::Stdio::inherit, std::process::Stdio::inherit);
        }
        result
    }

    /// Gives the std command `stdin()` for the child's stdin and `out()` for its stdout and
    /// stderr, each one the caller has not set.
    fn set_unset(&mut self, stdin: fn() -> std::process::Stdio, out: fn() -> std::process::Stdio) {
        if self.stdin.is_none() {
            self.std.stdin(stdin());
        }
        if self.stdout.is_none() {
            self.std.stdout(out());
        }
        if self.stderr.is_none() {
            self.std.stderr(out());
        }
    }

    fn spawn_std(&mut self, any_piped: bool) -> io::Result<Child> {
        #[cfg(windows)]
        if any_piped {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "hatchery::process: piped stdio is not supported on Windows yet",
            ));
        }
        if any_piped {
            // Before the process exists: nothing to clean up if there is no reactor.
            Io::check_reactor()?;
        }
        let mut std_child = self.std.spawn().map_err(|source| {
            io::Error::new(
                source.kind(),
                SpawnError {
                    program: self.std.get_program().into(),
                    source,
                },
            )
        })?;
        let stdin = std_child.stdin.take().map(Pipe::new);
        let stdout = std_child.stdout.take().map(Pipe::new);
        let stderr = std_child.stderr.take().map(Pipe::new);
        let exit = Exit::new(&std_child);
        let mut child = Child {
            std: Some(std_child),
            status: None,
            exit,
            grace: self.grace,
            stdin: None,
            stdout: None,
            stderr: None,
        };
        // A pipe that cannot be registered: the child is killed and reaped (its drop).
        child.stdin = stdin
            .transpose()?
            .map(|pipe| ChildStdin { pipe: Some(pipe) });
        child.stdout = stdout.transpose()?.map(|pipe| ChildStdout { pipe });
        child.stderr = stderr.transpose()?.map(|pipe| ChildStderr { pipe });
        Ok(child)
    }

    /// Runs the program to its end, with stdio inherited unless set, and returns its exit
    /// status.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe in the sense that the child is stopped: if the enclosing scope is
    /// cancelled while it waits, the child is terminated (SIGTERM, then SIGKILL after the
    /// [grace period](Command::terminate_grace)) and reaped, shielded, before the
    /// operation ends (rule X12). Dropped from outside hatchery, the child is killed and
    /// reaped on a thread.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn), and the system's while waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use hatchery::process::Command;
    ///
    /// # hatchery_smol::run(async {
    /// let status = Command::new("sh").args(["-c", "exit 3"]).status().await?;
    /// assert_eq!(status.code(), Some(3));
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub async fn status(&mut self) -> io::Result<ExitStatus> {
        let child = self.spawn()?;
        crate::finally_with(
            child,
            async |child: &mut Child| child.wait().await,
            async |child: Child| child.reap_or_terminate().await,
        )
        .await
    }

    /// Runs the program to its end and returns its exit status and what it wrote to
    /// stdout and stderr (captured unless set; stdin an end of file unless set).
    ///
    /// A failed exit is not an error here: see [`run`](Command::run) for that.
    ///
    /// # Cancel safety
    ///
    /// As [`status`](Command::status): the child is terminated and reaped if the
    /// enclosing scope is cancelled while it waits, and what it wrote is lost.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn), and the system's while reading or waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use hatchery::process::Command;
    ///
    /// # hatchery_smol::run(async {
    /// let out = Command::new("sh").args(["-c", "echo out; echo err >&2; exit 1"]).output().await?;
    /// assert_eq!(out.status.code(), Some(1));
    /// assert_eq!((&out.stdout[..], &out.stderr[..]), (&b"out\n"[..], &b"err\n"[..]));
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub async fn output(&mut self) -> io::Result<Output> {
        let child = self.spawn_with(true)?;
        child.wait_with_output().await
    }

    /// Runs the program to its end, capturing its stdout and stderr, and fails if it
    /// did not succeed: anyio's `run_process` (with `check=True`), trio's.
    ///
    /// stdin is an end of file unless set ([`run_with_input`](Command::run_with_input)
    /// feeds it bytes).
    ///
    /// # Cancel safety
    ///
    /// As [`status`](Command::status): the child is terminated and reaped if the
    /// enclosing scope is cancelled while it waits (rule X12).
    ///
    /// # Errors
    ///
    /// As [`output`](Command::output); a child that exits with a failure (a non-zero
    /// code, or a signal): an error of kind `Other` whose payload is an [`ExitError`]
    /// with the status and the captured output ([`ExitError::of`] finds it).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use hatchery::process::{Command, ExitError};
    ///
    /// # hatchery_smol::run(async {
    /// let e = Command::new("ls").arg("/no/such/dir").run().await.unwrap_err();
    /// let failed = ExitError::of(&e).expect("ls failed");
    /// assert!(!failed.status().success());
    /// assert!(!failed.stderr().is_empty()); // ls said why
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub async fn run(&mut self) -> io::Result<Output> {
        let out = self.output().await?;
        self.check(out)
    }

    /// [`run`](Command::run), with `input` written to the child's stdin (then closed),
    /// while its stdout and stderr are read: no deadlock, however much each side writes.
    /// A child that exits or closes its stdin before reading all of `input` is not an
    /// error (the rest is not written), as with Python's `communicate`. The child's
    /// stdin is this pipe, whatever [`Command::stdin`] set.
    ///
    /// # Cancel safety
    ///
    /// As [`run`](Command::run).
    ///
    /// # Errors
    ///
    /// As [`run`](Command::run).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use hatchery::process::Command;
    ///
    /// # hatchery_smol::run(async {
    /// let out = Command::new("tr").args(["a-z", "A-Z"]).run_with_input(b"shout").await?;
    /// assert_eq!(out.stdout, b"SHOUT");
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub async fn run_with_input(&mut self, input: &[u8]) -> io::Result<Output> {
        let stdin_set = self.stdin;
        self.stdin(Stdio::piped());
        let child = self.spawn_with(true);
        self.stdin = stdin_set;
        // Back to "not set" (stdout and stderr already are, by `spawn_with`).
        self.set_unset(std::process::Stdio::inherit, std::process::Stdio::inherit);
        let out = child?.communicate(input).await?;
        self.check(out)
    }

    fn check(&self, out: Output) -> io::Result<Output> {
        match out.status.success() {
            true => Ok(out),
            false => Err(io::Error::other(ExitError {
                program: self.std.get_program().to_string_lossy().into_owned(),
                output: out,
            })),
        }
    }
}

impl From<std::process::Command> for Command {
    fn from(std: std::process::Command) -> Command {
        Command {
            std,
            stdin: None,
            stdout: None,
            stderr: None,
            grace: GRACE,
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.std, f)
    }
}

/// A program that could not be started: its name, and the system's error as the source
/// (rule X9).
#[derive(Debug)]
struct SpawnError {
    program: Box<OsStr>,
    source: io::Error,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot run {:?}: {}", self.program, self.source)
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A child that exited with a failure, as [`Command::run`] reports it: its exit status
/// and what it wrote. The payload of the `io::Error` that `run` returns.
///
/// # Examples
///
/// See [`Command::run`].
pub struct ExitError {
    program: String,
    output: Output,
}

impl ExitError {
    /// The `ExitError` inside `e`, if `e` is one.
    ///
    /// # Examples
    ///
    /// See [`Command::run`].
    pub fn of(e: &io::Error) -> Option<&ExitError> {
        e.get_ref()?.downcast_ref()
    }

    /// The exit status: a non-zero code, or (on Unix) the signal that ended it.
    ///
    /// # Examples
    ///
    /// See [`Command::run`].
    pub fn status(&self) -> ExitStatus {
        self.output.status
    }

    /// What the child wrote to stderr (if captured).
    ///
    /// # Examples
    ///
    /// See [`Command::run`].
    pub fn stderr(&self) -> &[u8] {
        &self.output.stderr
    }

    /// What the child wrote to stdout (if captured).
    ///
    /// # Examples
    ///
    /// See [`Command::run`].
    pub fn stdout(&self) -> &[u8] {
        &self.output.stdout
    }

    /// The whole output.
    ///
    /// # Examples
    ///
    /// See [`Command::run`].
    pub fn into_output(self) -> Output {
        self.output
    }
}

/// `{program} failed ({status})`, and the start of its stderr.
impl fmt::Display for ExitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed ({})", self.program, self.output.status)?;
        let err = String::from_utf8_lossy(&self.output.stderr);
        let err = err.trim_end();
        if !err.is_empty() {
            const MAX: usize = 500;
            match err.char_indices().nth(MAX) {
                Some((cut, _)) => write!(f, ": {}...", &err[..cut])?,
                None => write!(f, ": {err}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ExitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExitError")
            .field("program", &self.program)
            .field("status", &self.output.status)
            .field("stderr", &String::from_utf8_lossy(&self.output.stderr))
            .finish_non_exhaustive()
    }
}

impl std::error::Error for ExitError {}

/// A running (or finished) child process: [`Command::spawn`]'s.
///
/// Its pipes are public fields, as std's and tokio's (`take()` one to own it).
/// [`wait`](Child::wait) for its exit status. **Dropped while the process runs, it kills
/// the process (SIGKILL) and reaps it** (rule X13); [`detach`](Child::detach) lets it run
/// on instead.
///
/// # Examples
///
/// See [`Command::spawn`].
pub struct Child {
    /// `None` once detached or handed to a reaper.
    std: Option<std::process::Child>,
    /// Its exit status, once reaped.
    status: Option<ExitStatus>,
    exit: Exit,
    grace: Duration,
    /// Its stdin, if piped.
    pub stdin: Option<ChildStdin>,
    /// Its stdout, if piped.
    pub stdout: Option<ChildStdout>,
    /// Its stderr, if piped.
    pub stderr: Option<ChildStderr>,
}

impl Child {
    /// The process id (which the system may give another process once this one is
    /// reaped).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use hatchery::process::Command;
    ///
    /// # hatchery_smol::run(async {
    /// let mut child = Command::new("true").spawn()?;
    /// assert!(child.id() > 0);
    /// child.wait().await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub fn id(&self) -> u32 {
        self.std.as_ref().map_or(0, std::process::Child::id)
    }

    fn std(&mut self) -> &mut std::process::Child {
        self.std.as_mut().expect("a child that is not detached")
    }

    /// The exit status if the process has exited (and reaps it then), `None` if it
    /// runs. Never waits.
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use hatchery::process::Command;
    ///
    /// # hatchery_smol::run(async {
    /// let mut child = Command::new("sleep").arg("60").spawn()?;
    /// assert!(child.try_wait()?.is_none());
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap(); // the child is killed and reaped as it is dropped
    /// # }
    /// ```
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.std().try_wait()?;
        }
        Ok(self.status)
    }

    /// Waits for the process to exit and returns its exit status (reaping it). Closes
    /// its stdin first, if piped, so that a child reading it sees the end (as std's).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped, it stops waiting, and the process runs on (the `Child` is
    /// still yours: wait again, kill it, or drop it, which kills it). The same if the
    /// enclosing scope is cancelled: a checkpoint, it never completes in a cancelled
    /// scope, as trio's `Process.wait`. To stop the child on cancellation, use
    /// [`Command::status`] or the others, which terminate it.
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Examples
    ///
    /// See [`Command::spawn`].
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        crate::net::enter().await;
        self.stdin = None;
        self.wait_exit().await
    }

    /// Waits for the exit (not a checkpoint of its own).
    async fn wait_exit(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        match &self.exit {
            // `waitpid(WNOHANG)` is the operation, run once the pidfd is readable (the
            // child has exited), or first on a reactor that tries first: one system
            // call per wake-up, as tokio's own wait.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Exit::Pidfd(io) => {
                let (std, status) = (&mut self.std, &mut self.status);
                let child = std.as_mut().expect("a child that is not detached");
                poll_fn(|cx| {
                    io.poll_op(cx, Interest::Read, &mut || match child.try_wait()? {
                        Some(exited) => {
                            *status = Some(exited);
                            Ok(0)
                        }
                        None => Err(io::ErrorKind::WouldBlock.into()),
                    })
                })
                .await?;
                Ok(status.expect("set by the wait"))
            }
            Exit::Timer => {
                let mut pause = Duration::from_millis(1);
                loop {
                    if let Some(status) = self.try_wait()? {
                        return Ok(status);
                    }
                    crate::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
            }
        }
    }

    /// Sends SIGKILL (on Windows, `TerminateProcess`): the process ends at once, without
    /// cleaning up. Does not wait: [`wait`](Child::wait) reaps it (or dropping the
    /// `Child` does). A process that has exited already: nothing is sent, `Ok`.
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::os::unix::process::ExitStatusExt;
    /// use hatchery::process::Command;
    ///
    /// # hatchery_smol::run(async {
    /// let mut child = Command::new("sleep").arg("60").spawn()?;
    /// child.kill()?;
    /// assert_eq!(child.wait().await?.signal(), Some(9));
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub fn kill(&mut self) -> io::Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        self.std().kill()
    }

    /// Asks the process to exit: SIGTERM on Unix (it may clean up, or ignore it); on
    /// Windows, as [`kill`](Child::kill). Does not wait. A process that has exited
    /// already: nothing is sent, `Ok`.
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::os::unix::process::ExitStatusExt;
    /// use hatchery::process::Command;
    ///
    /// # hatchery_smol::run(async {
    /// let mut child = Command::new("sleep").arg("60").spawn()?;
    /// child.terminate()?;
    /// assert_eq!(child.wait().await?.signal(), Some(15));
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub fn terminate(&mut self) -> io::Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        #[cfg(unix)]
        {
            let pid = rustix::process::Pid::from_child(self.std());
            Ok(rustix::process::kill_process(
                pid,
                rustix::process::Signal::TERM,
            )?)
        }
        #[cfg(not(unix))]
        self.std().kill()
    }

    /// Reads the child's stdout and stderr (those piped) to their ends while waiting for
    /// it to exit, and returns all three. Closes its stdin first, if piped.
    ///
    /// # Cancel safety
    ///
    /// As [`Command::status`]: if the enclosing scope is cancelled while it waits, the
    /// child is terminated and reaped before it ends (rule X12), and what it wrote is
    /// lost.
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use hatchery::process::{Command, Stdio};
    ///
    /// # hatchery_smol::run(async {
    /// let child = Command::new("echo").arg("hi").stdout(Stdio::piped()).spawn()?;
    /// let out = child.wait_with_output().await?;
    /// assert_eq!(out.stdout, b"hi\n");
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub async fn wait_with_output(self) -> io::Result<Output> {
        self.communicate(&[]).await
    }

    /// Writes `input` to stdin (if piped) and closes it, reads stdout and stderr to their
    /// ends, and waits; the child is terminated if cancelled.
    async fn communicate(self, input: &[u8]) -> io::Result<Output> {
        crate::finally_with(
            self,
            async |child: &mut Child| {
                crate::net::enter().await;
                let (stdout, stderr) = exchange(
                    child.stdin.take(),
                    input,
                    child.stdout.as_mut(),
                    child.stderr.as_mut(),
                )
                .await?;
                let status = child.wait_exit().await?;
                Ok(Output {
                    status,
                    stdout,
                    stderr,
                })
            },
            async |child: Child| child.reap_or_terminate().await,
        )
        .await
    }

    /// The termination policy (rule X12): nothing if reaped already; otherwise SIGTERM,
    /// up to the grace period for the exit, SIGKILL, and the reaping. Runs shielded
    /// (in `finally_with`'s cleanup).
    async fn reap_or_terminate(mut self) {
        if self.std.is_none() || matches!(self.try_wait(), Ok(Some(_)) | Err(_)) {
            return;
        }
        if !self.grace.is_zero() && self.terminate().is_ok() {
            let grace = self.grace;
            if crate::move_on_after(grace, self.wait_exit())
                .await
                .is_some()
            {
                return;
            }
        }
        if self.kill().is_ok() {
            let _ = self.wait_exit().await;
        }
        // Otherwise its drop kills and reaps it.
    }

    /// Lets the process run on after the `Child` is dropped (it is not killed). A thread
    /// waits for it to exit and reaps it, so that it is not left a zombie; the thread
    /// ends with it. Its pipes close now (take them first to keep them).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use hatchery::process::Command;
    ///
    /// # hatchery_smol::run(async {
    /// let daemon = Command::new("sleep").arg("1").spawn()?;
    /// daemon.detach(); // runs on; reaped when it exits
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub fn detach(mut self) {
        if let (Some(child), None) = (self.std.take(), self.status) {
            reap_on_a_thread(child);
        }
    }
}

/// A thread that waits for `child` to exit, and reaps it.
fn reap_on_a_thread(mut child: std::process::Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("hatchery-reaper".into())
        .spawn(move || {
            let _ = child.wait();
        });
    // No thread to be had: the zombie stays until this process exits (or reaps it).
    drop(spawned);
}

/// A running child is killed and reaped (rule X13).
impl Drop for Child {
    fn drop(&mut self) {
        let Some(mut child) = self.std.take() else {
            return;
        };
        if self.status.is_some() {
            return;
        }
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            reap_on_a_thread(child);
        }
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("id", &self.id())
            .field("status", &self.status)
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish()
    }
}

/// How a child's exit is awaited.
enum Exit {
    /// Its pidfd, readable once it has exited, on the reactor.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Pidfd(Io),
    /// `waitpid(WNOHANG)` on a timer.
    Timer,
}

impl Exit {
    fn new(child: &std::process::Child) -> Exit {
        // Outside a runtime (a `spawn` from plain code): nothing to register with.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if crate::context::is_entered() {
            use rustix::process::{pidfd_open, Pid, PidfdFlags};
            let pid = Pid::from_child(child);
            // Non-blocking from the start (Linux 5.10), or made so (5.3).
            let registered = match pidfd_open(pid, PidfdFlags::NONBLOCK) {
                Err(rustix::io::Errno::INVAL) => pidfd_open(pid, PidfdFlags::empty())
                    .and_then(|fd| rustix::io::ioctl_fionbio(&fd, true).map(|()| fd)),
                opened => opened,
            }
            .map_err(io::Error::from)
            .and_then(Io::new);
            // No pidfd (Linux before 5.3, a sandbox), or no reactor: the timer.
            if let Ok(io) = registered {
                return Exit::Pidfd(io);
            }
        }
        let _ = child;
        Exit::Timer
    }
}

/// Feeds `input` to `stdin` (then closes it) while reading `stdout` and `stderr` to their
/// ends, in one task: what each wrote.
async fn exchange(
    mut stdin: Option<ChildStdin>,
    mut input: &[u8],
    mut stdout: Option<&mut ChildStdout>,
    mut stderr: Option<&mut ChildStderr>,
) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    if input.is_empty() {
        stdin = None;
    }
    poll_fn(|cx| {
        if let Some(pipe) = &stdin {
            loop {
                match pipe.pipe()?.poll_write(cx, input) {
                    Poll::Ready(Ok(n)) => {
                        input = &input[n..];
                        if input.is_empty() {
                            stdin = None; // closed: the end of its input
                            break;
                        }
                    }
                    // It stopped reading: the rest is not for it.
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                        stdin = None;
                        break;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
        }
        for (pipe, buf) in [
            (stdout.as_mut().map(|p| &mut p.pipe), &mut out),
            (stderr.as_mut().map(|p| &mut p.pipe), &mut err),
        ] {
            let Some(pipe) = pipe else { continue };
            if let Poll::Ready(Err(e)) = pipe.poll_read_to_end(cx, buf) {
                return Poll::Ready(Err(e));
            }
        }
        let out_done = stdout.as_ref().is_none_or(|p| p.pipe.at_end);
        let err_done = stderr.as_ref().is_none_or(|p| p.pipe.at_end);
        match stdin.is_none() && out_done && err_done {
            true => Poll::Ready(Ok(())),
            false => Poll::Pending,
        }
    })
    .await?;
    Ok((out, err))
}

/// One end of a pipe to a child, registered with the reactor.
struct Pipe {
    #[cfg(unix)]
    io: Io,
    /// No pipes elsewhere yet: none is made.
    #[cfg(not(unix))]
    io: std::convert::Infallible,
    /// A read returned the end of the stream.
    at_end: bool,
}

#[cfg(unix)]
impl Pipe {
    /// The parent's end of a child's stdin, stdout or stderr.
    fn new(end: impl Into<std::os::fd::OwnedFd>) -> io::Result<Pipe> {
        let fd = end.into();
        rustix::io::ioctl_fionbio(&fd, true)?;
        Ok(Pipe {
            io: Io::new(fd)?,
            at_end: false,
        })
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let fd = self.io.fd();
        let n = std::task::ready!(self.io.poll_op(cx, Interest::Read, &mut || {
            Ok(rustix::io::read(fd, &mut *buf)?)
        }))?;
        if n == 0 && !buf.is_empty() {
            self.at_end = true;
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return match crate::context::current_cancelled() {
                true => Poll::Pending,
                false => Poll::Ready(Ok(0)),
            };
        }
        let fd = self.io.fd();
        self.io.poll_op(
            cx,
            Interest::Write,
            &mut || match rustix::io::write(fd, buf) {
                Err(rustix::io::Errno::PIPE) => Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "hatchery::process: the child closed its stdin (broken pipe)",
                )),
                r => Ok(r?),
            },
        )
    }
}

#[cfg(not(unix))]
impl Pipe {
    fn new<S>(_: S) -> io::Result<Pipe> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "hatchery::process: piped stdio is not supported on Windows yet",
        ))
    }

    fn poll_read(&mut self, _cx: &mut Context<'_>, _buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.io {}
    }

    fn poll_write(&self, _cx: &mut Context<'_>, _buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.io {}
    }
}

impl Pipe {
    /// Reads into `buf` until the end of the stream (`Ready(Ok)`), or until it would
    /// wait (`Pending`), keeping what it read.
    fn poll_read_to_end(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<u8>,
    ) -> Poll<io::Result<()>> {
        let mut chunk = [0; 16 * 1024];
        while !self.at_end {
            let n = std::task::ready!(self.poll_read(cx, &mut chunk))?;
            buf.extend_from_slice(&chunk[..n]);
        }
        Poll::Ready(Ok(()))
    }
}

impl fmt::Debug for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.io, f)
    }
}

/// The parent's end of a child's stdin: write to it; [`close`](ChildStdin::close) it,
/// or drop it, and the child reads the end of its input.
///
/// Implements futures-io's `AsyncWrite` (and tokio's, with the `tokio-io` feature), whose
/// `close` (tokio's `shutdown`) closes the pipe too (rule X14).
///
/// # Examples
///
/// See [`Command::spawn`].
#[derive(Debug)]
pub struct ChildStdin {
    /// `None` once closed.
    pipe: Option<Pipe>,
}

/// The parent's end of a child's stdout: read from it.
///
/// Implements futures-io's `AsyncRead` (and tokio's, with the `tokio-io` feature).
///
/// # Examples
///
/// See [`Command::spawn`].
#[derive(Debug)]
pub struct ChildStdout {
    pipe: Pipe,
}

/// The parent's end of a child's stderr: read from it.
///
/// Implements futures-io's `AsyncRead` (and tokio's, with the `tokio-io` feature).
///
/// # Examples
///
/// ```
/// # #[cfg(unix)] {
/// use hatchery::process::{Command, Stdio};
///
/// # hatchery_smol::run(async {
/// let mut child = Command::new("sh").args(["-c", "echo oops >&2"]).stderr(Stdio::piped()).spawn()?;
/// let mut err = Vec::new();
/// child.stderr.take().unwrap().read_to_end(&mut err).await?;
/// assert_eq!(err, b"oops\n");
/// child.wait().await?;
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// # }
/// ```
#[derive(Debug)]
pub struct ChildStderr {
    pipe: Pipe,
}

impl ChildStdin {
    /// Writes all of `buf`, waiting while the pipe is full (the child reads slowly).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the part written before it was dropped (or before the enclosing
    /// scope was cancelled, which stops it at its next wait) is not reported. Each
    /// single write is done inside the poll that returns it; in a cancelled scope
    /// nothing more is written.
    ///
    /// # Errors
    ///
    /// `BrokenPipe` when the child has closed its stdin (or exited).
    ///
    /// # Examples
    ///
    /// See [`Command::spawn`].
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let pipe = self.pipe()?;
        crate::net::write_all_with(buf, |cx, buf| pipe.poll_write(cx, buf)).await
    }

    /// Closes the pipe: the child reads the end of its input (once no other process
    /// holds the pipe's write end). A checkpoint, then at once; closing a closed
    /// `ChildStdin` does nothing. A write after it fails with `BrokenPipe` (rule X14).
    ///
    /// Dropping the `ChildStdin` closes it too; `close` is for code that holds it by
    /// reference, or through the `AsyncWrite` traits (futures' `close`, tokio's
    /// `shutdown`, which do the same).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it never waits. In a cancelled scope it does not close the pipe
    /// (a checkpoint); the pipe closes when the `ChildStdin` is dropped.
    ///
    /// # Errors
    ///
    /// None today (the `Result` is that of `AsyncWrite::poll_close`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use hatchery::process::{Command, Stdio};
    ///
    /// # hatchery_smol::run(async {
    /// let mut child = Command::new("wc")
    ///     .arg("-c")
    ///     .stdin(Stdio::piped())
    ///     .stdout(Stdio::piped())
    ///     .spawn()?;
    /// let stdin = child.stdin.as_mut().unwrap();
    /// stdin.write_all(b"12345").await?;
    /// stdin.close().await?; // wc sees the end of its input, though `child` still holds `stdin`
    /// let mut out = Vec::new();
    /// child.stdout.as_mut().unwrap().read_to_end(&mut out).await?;
    /// assert_eq!(String::from_utf8_lossy(&out).trim(), "5");
    /// child.wait().await?;
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub async fn close(&mut self) -> io::Result<()> {
        poll_fn(|_| self.poll_close_pipe()).await
    }

    /// The pipe, or `BrokenPipe` once closed.
    fn pipe(&self) -> io::Result<&Pipe> {
        self.pipe.as_ref().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "hatchery::process: the child's stdin was closed",
            )
        })
    }

    /// A checkpoint, then the pipe is closed (rule X14).
    fn poll_close_pipe(&mut self) -> Poll<io::Result<()>> {
        if crate::context::current_cancelled() {
            return Poll::Pending;
        }
        self.pipe = None;
        Poll::Ready(Ok(()))
    }
}

/// The read methods of the output pipes.
macro_rules! read_methods {
    ($ty:ident) => {
        impl $ty {
            /// Reads some bytes into `buf`, waiting until at least one is there; `0` at
            /// the end (the child closed it, or exited).
            ///
            /// # Cancel safety
            ///
            /// Cancel safe: the bytes are read inside the poll that returns them, so a
            /// read that did not complete read nothing. If the enclosing scope is
            /// cancelled, it does not start, or stops waiting, and nothing was read.
            ///
            /// # Errors
            ///
            /// The system's.
            ///
            /// # Examples
            ///
            /// See [`Command::spawn`].
            pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                poll_fn(|cx| self.pipe.poll_read(cx, buf)).await
            }

            /// Reads to the end (until the child closes it or exits), appending to `buf`;
            /// returns how many bytes it read.
            ///
            /// # Cancel safety
            ///
            /// Cancel safe as far as the bytes go: those read before it was dropped (or
            /// before the enclosing scope was cancelled) are in `buf`.
            ///
            /// # Errors
            ///
            /// The system's.
            ///
            /// # Examples
            ///
            /// See [`Command::spawn`].
            pub async fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
                let before = buf.len();
                poll_fn(|cx| self.pipe.poll_read_to_end(cx, buf)).await?;
                Ok(buf.len() - before)
            }
        }

        crate::net::impl_async_io!(read [] $ty, |this, cx, buf| this.pipe.poll_read(cx, buf));
    };
}

read_methods!(ChildStdout);
read_methods!(ChildStderr);

crate::net::impl_async_io!(
    write
    /// The shutdown (futures' `close`, tokio's `shutdown`) closes the pipe, as
    /// [`ChildStdin::close`]: the child reads the end of its input (unlike
    /// `tokio::process::ChildStdin`, whose `shutdown` leaves it open until the drop).
    [] ChildStdin,
    |this, cx, buf| this.pipe()?.poll_write(cx, buf),
    flush |_this, _cx| Poll::Ready(Ok(())),
    shutdown |this, _cx| this.poll_close_pipe(),
);
