//! Error types.

use std::fmt;

/// Why a [`nursery`](crate::nursery) did not return its body's value.
///
/// * `Failed`: one or more tasks (or the body) returned `Err`. Every error is kept, in the
///   order they happened. A lone error is easy to get at with
///   [`into_first`](NurseryError::into_first).
/// * `Cancelled`: the nursery's own [`cancel`](crate::Nursery::cancel) ended the body
///   before it produced its value. Not a failure: tell it apart with
///   [`is_cancelled`](NurseryError::is_cancelled). (Also the end of a nursery future
///   kept past the scope it was first polled in, once that scope, cancelled while the
///   nursery ran in it, has finished: see [`CancelScope::run`](crate::CancelScope::run).)
///
/// # Converting with `?`
///
/// `NurseryError<E>` implements [`std::error::Error`] whenever `E` is `Debug + Display`,
/// so `?` converts it into `anyhow::Error` and `Box<dyn Error + Send + Sync>`. It names no
/// [`source`](std::error::Error::source): `E` need not be an `Error` itself
/// (`anyhow::Error`, `Box<dyn Error>` and `String` are not), and Rust has no way for one
/// generic impl to return `E` only when it is one. A cause chain inside a child's error
/// is shown by `{:#}` on the `NurseryError` (a lone error is formatted with the same
/// flags), but not followed by error reporters, anyhow's
/// [`chain`](https://docs.rs/anyhow/1/anyhow/struct.Error.html#method.chain) or
/// `downcast_ref`. To keep it, [`flatten`](NurseryError::flatten) before `?`: a lone
/// error comes out as itself, so everything it carries stays reachable.
///
/// ```
/// use hatchery::{nursery, NurseryError};
///
/// #[derive(Debug)]
/// struct DiskFull;
/// # impl std::fmt::Display for DiskFull {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
/// #         f.write_str("disk full")
/// #     }
/// # }
/// # impl std::error::Error for DiskFull {}
///
/// async fn app() -> anyhow::Result<()> {
///     nursery(|n| async move {
///         n.spawn(async { Err::<(), _>(anyhow::Error::new(DiskFull).context("writing cache")) });
///         Ok::<_, anyhow::Error>(())
///     })
///     .await
///     .map_err(NurseryError::flatten)?; // the lone error itself
///     Ok(())
/// }
///
/// let err = hatchery_smol::run(app()).unwrap_err();
/// assert!(err.downcast_ref::<DiskFull>().is_some());
/// assert_eq!(format!("{err:#}"), "writing cache: disk full");
/// ```
///
/// For your own error type, add one `From` impl:
///
/// ```
/// use hatchery::NurseryError;
///
/// #[derive(Debug)]
/// enum AppError {
///     Io(std::io::Error),
///     Many(Vec<AppError>),
///     Cancelled,
/// }
///
/// impl From<NurseryError<AppError>> for AppError {
///     fn from(e: NurseryError<AppError>) -> Self {
///         match e {
///             NurseryError::Cancelled => AppError::Cancelled,
///             NurseryError::Failed(mut errors) if errors.len() == 1 => errors.pop().unwrap(),
///             NurseryError::Failed(errors) => AppError::Many(errors),
///         }
///     }
/// }
///
/// async fn app() -> Result<(), AppError> {
///     hatchery::nursery(|n| async move {
///         n.spawn(async { Err::<(), _>(AppError::Io(std::io::ErrorKind::Other.into())) });
///         Ok::<(), AppError>(())
///     })
///     .await?;
///     Ok(())
/// }
///
/// let r = hatchery_smol::run(app());
/// assert!(matches!(r, Err(AppError::Io(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NurseryError<E> {
    /// Tasks failed; their errors in the order they happened (never empty).
    Failed(Vec<E>),
    /// The nursery's own `cancel()` ended the body before it produced a value (or a
    /// finished scope's cancellation, for a nursery future kept past it).
    Cancelled,
}

impl<E> NurseryError<E> {
    /// Whether this is the `Cancelled` outcome (not a failure).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::{checkpoint, nursery};
    ///
    /// # hatchery_smol::run(async {
    /// let r = nursery(|n| async move {
    ///     n.cancel();
    ///     checkpoint().await; // the body ends here
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await;
    /// assert!(r.unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, NurseryError::Cancelled)
    }

    /// The errors, in the order they happened (empty for `Cancelled`).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::{nursery, NurseryError};
    /// # hatchery_smol::run(async {
    /// let r: Result<(), NurseryError<&str>> = nursery(|n| async move {
    ///     n.spawn(async { Err::<(), _>("first") });
    ///     Ok(())
    /// }).await;
    /// let e = r.unwrap_err();
    /// assert!(!e.is_cancelled());
    /// assert_eq!(e.errors(), ["first"]);
    /// assert_eq!(e.into_first(), Some("first"));
    /// # });
    /// ```
    pub fn errors(&self) -> &[E] {
        match self {
            NurseryError::Failed(errors) => errors,
            NurseryError::Cancelled => &[],
        }
    }

    /// The errors, in the order they happened (empty for `Cancelled`).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::NurseryError;
    ///
    /// let e = NurseryError::Failed(vec!["disk full", "timeout"]);
    /// assert_eq!(e.into_errors(), ["disk full", "timeout"]);
    /// assert!(NurseryError::<&str>::Cancelled.into_errors().is_empty());
    /// ```
    pub fn into_errors(self) -> Vec<E> {
        match self {
            NurseryError::Failed(errors) => errors,
            NurseryError::Cancelled => Vec::new(),
        }
    }

    /// The first error, the one that cancelled the nursery.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::NurseryError;
    ///
    /// let e = NurseryError::Failed(vec!["disk full", "timeout"]);
    /// assert_eq!(e.first(), Some(&"disk full"));
    /// assert_eq!(NurseryError::<&str>::Cancelled.first(), None);
    /// ```
    pub fn first(&self) -> Option<&E> {
        self.errors().first()
    }

    /// The first error, the one that cancelled the nursery; the others are dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// let r = nursery(|n| async move {
    ///     n.spawn(async { Err::<(), _>(std::io::Error::other("disk full")) });
    ///     Ok(())
    /// })
    /// .await;
    /// let e: std::io::Error = r.unwrap_err().into_first().unwrap();
    /// assert_eq!(e.to_string(), "disk full");
    /// # });
    /// ```
    pub fn into_first(self) -> Option<E> {
        self.into_errors().into_iter().next()
    }

    /// Collapses the nursery's error into one `E`: a lone error as itself, several errors
    /// (or `Cancelled`) through `E`'s `From<NurseryError<E>>`.
    ///
    /// Use it before `?` where the lone error should stay what it is rather than be
    /// wrapped: `nursery(..).await.map_err(NurseryError::flatten)?`. With `anyhow`, the
    /// child's error is then the `anyhow::Error` itself, so `downcast_ref`, `chain()` and
    /// the context lines of its report reach what it carries (a wrapped one stops at the
    /// `NurseryError`, which names no [`source`](std::error::Error::source)). For
    /// `io::Error`, and for your own error type with a `From` impl like the one in the
    /// type's docs, `?` already does this.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::{nursery, NurseryError};
    ///
    /// # hatchery_smol::run(async {
    /// let r = nursery(|n| async move {
    ///     n.spawn(async { Err::<(), _>(anyhow::Error::new(std::fmt::Error).context("rendering")) });
    ///     Ok::<_, anyhow::Error>(())
    /// })
    /// .await;
    /// let err: anyhow::Error = r.unwrap_err().flatten();
    /// assert!(err.downcast_ref::<std::fmt::Error>().is_some()); // the child's own error
    ///
    /// // Several errors stay together, in a `NurseryError`.
    /// let several = NurseryError::Failed(vec![anyhow::anyhow!("a"), anyhow::anyhow!("b")]);
    /// let err = several.flatten();
    /// assert_eq!(err.downcast_ref::<NurseryError<anyhow::Error>>().unwrap().errors().len(), 2);
    /// # });
    /// ```
    pub fn flatten(self) -> E
    where
        E: From<NurseryError<E>>,
    {
        match self {
            NurseryError::Failed(mut errors) if errors.len() == 1 => {
                errors.pop().expect("one error")
            }
            other => E::from(other),
        }
    }
}

impl<E: fmt::Display> fmt::Display for NurseryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NurseryError::Cancelled => f.write_str("nursery cancelled"),
            NurseryError::Failed(errors) => match errors.as_slice() {
                [] => f.write_str("nursery failed"),
                [e] => fmt::Display::fmt(e, f),
                _ => {
                    // `{:#}` reaches every error (anyhow's cause chains), as for a lone one.
                    let alternate = f.alternate();
                    write!(f, "{} tasks failed: ", errors.len())?;
                    for (i, e) in errors.iter().enumerate() {
                        let sep = if i == 0 { "" } else { "; " };
                        if alternate {
                            write!(f, "{sep}{e:#}")?;
                        } else {
                            write!(f, "{sep}{e}")?;
                        }
                    }
                    Ok(())
                }
            },
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for NurseryError<E> {}

/// For code that returns `io::Result`: `nursery(..).await?` with `io::Error` children.
///
/// A lone error comes back as itself (its kind and payload kept). Several come back as
/// one `io::Error` of the first one's kind whose payload is the whole `NurseryError`
/// (reach it with [`get_ref`](std::io::Error::get_ref) and `downcast_ref`). `Cancelled`
/// is of kind [`Other`](std::io::ErrorKind::Other), carrying the `NurseryError` (not
/// `Interrupted`, which `std::io`'s `read_exact`, `write_all` and `copy` take as "try
/// again": code that reads through a nursery would loop).
///
/// # Examples
///
/// ```
/// use std::io;
///
/// async fn copy_both() -> io::Result<()> {
///     hatchery::nursery(|n| async move {
///         n.spawn(async { Err::<(), _>(io::Error::new(io::ErrorKind::NotFound, "a.txt")) });
///         Ok(())
///     })
///     .await?;
///     Ok(())
/// }
///
/// # hatchery_smol::run(async {
/// let err = copy_both().await.unwrap_err();
/// assert_eq!(err.kind(), io::ErrorKind::NotFound);
/// assert_eq!(err.to_string(), "a.txt");
///
/// let cancelled = io::Error::from(hatchery::NurseryError::<io::Error>::Cancelled);
/// assert_eq!(cancelled.kind(), io::ErrorKind::Other);
/// # });
/// ```
impl From<NurseryError<std::io::Error>> for std::io::Error {
    fn from(e: NurseryError<std::io::Error>) -> Self {
        match e {
            NurseryError::Cancelled => std::io::Error::other(e),
            NurseryError::Failed(mut errors) if errors.len() == 1 => {
                errors.pop().expect("one error")
            }
            NurseryError::Failed(errors) => {
                let kind = errors
                    .first()
                    .map_or(std::io::ErrorKind::Other, std::io::Error::kind);
                std::io::Error::new(kind, NurseryError::Failed(errors))
            }
        }
    }
}

/// The error of [`TaskHandle::join`](crate::TaskHandle::join): the task produced no value.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::{nursery, sleep, JoinError};
///
/// # hatchery_smol::run(async {
/// nursery(|n| async move {
///     let h = n.spawn(async { sleep(Duration::from_secs(3600)).await; Ok(()) });
///     h.cancel();
///     let err: JoinError = h.join().await.unwrap_err();
///     assert!(err.is_cancelled() && !err.is_failed() && !err.is_panicked());
///     // It converts into an `io::Error`, so `?` works in `io::Result` code.
///     let io: std::io::Error = err.into();
///     assert_eq!(io.to_string(), "task was cancelled");
///     Ok::<_, std::io::Error>(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JoinError {
    kind: JoinKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum JoinKind {
    Cancelled,
    Failed,
    Panicked,
}

impl JoinError {
    pub(crate) fn cancelled() -> Self {
        JoinError {
            kind: JoinKind::Cancelled,
        }
    }
    pub(crate) fn failed() -> Self {
        JoinError {
            kind: JoinKind::Failed,
        }
    }
    pub(crate) fn panicked() -> Self {
        JoinError {
            kind: JoinKind::Panicked,
        }
    }

    /// The task was cancelled (by its handle, its nursery or an enclosing scope).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::{move_on_after, nursery, sleep};
    ///
    /// # hatchery_smol::run(async {
    /// let mut handle = None;
    /// let out = move_on_after(Duration::from_millis(5), nursery(|n| {
    ///     handle = Some(n.spawn(async { sleep(Duration::from_secs(3600)).await; Ok::<_, std::io::Error>(()) }));
    ///     async { sleep(Duration::from_secs(3600)).await; Ok(()) }
    /// }))
    /// .await;
    /// assert!(out.is_none());
    /// // The enclosing scope's deadline cancelled the nursery, and the task with it.
    /// assert!(handle.unwrap().join().await.unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.kind == JoinKind::Cancelled
    }

    /// The task returned an error; the nursery reports it.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::nursery;
    /// # hatchery_smol::run(async {
    /// let mut handle = None;
    /// let _ = nursery(|n| {
    ///     handle = Some(n.spawn(async { Err::<(), _>("boom") }));
    ///     async { Ok(()) }
    /// }).await;
    /// // The nursery reported "boom"; the handle only says what happened.
    /// assert!(handle.unwrap().join().await.unwrap_err().is_failed());
    /// # });
    /// ```
    pub fn is_failed(&self) -> bool {
        self.kind == JoinKind::Failed
    }

    /// The task panicked; the nursery resumes the panic.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::panic::AssertUnwindSafe;
    /// use futures_lite::FutureExt;
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// let mut handle = None;
    /// let r = AssertUnwindSafe(nursery(|n| {
    ///     handle = Some(n.spawn(async {
    ///         if true {
    ///             panic!("boom");
    ///         }
    ///         Ok::<_, std::io::Error>(())
    ///     }));
    ///     async { Ok(()) }
    /// }))
    /// .catch_unwind()
    /// .await;
    /// assert!(r.is_err()); // the nursery resumed the panic
    /// assert!(handle.unwrap().join().await.unwrap_err().is_panicked());
    /// # });
    /// ```
    pub fn is_panicked(&self) -> bool {
        self.kind == JoinKind::Panicked
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            JoinKind::Cancelled => "task was cancelled",
            JoinKind::Failed => "task failed (its nursery reports the error)",
            JoinKind::Panicked => "task panicked (its nursery resumes the panic)",
        })
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> Self {
        std::io::Error::other(e)
    }
}

/// The error of [`Nursery::try_spawn`](crate::Nursery::try_spawn): the nursery is
/// closed (it has finished, or its future was dropped from outside), so nothing can be
/// spawned into it.
///
/// # Examples
///
/// ```
/// use hatchery::{nursery, SpawnError};
///
/// # hatchery_smol::run(async {
/// let mut saved = None;
/// nursery(|n| async {
///     saved = Some(n);
///     Ok::<_, std::io::Error>(())
/// })
/// .await
/// .unwrap();
/// let err: SpawnError = saved.unwrap().try_spawn(async { Ok(()) }).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "cannot spawn into a closed nursery (it has finished, or its future was dropped)"
/// );
/// # });
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpawnError(pub(crate) ());

impl fmt::Debug for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpawnError")
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "cannot spawn into a closed nursery (it has finished, or its future was dropped)",
        )
    }
}

impl std::error::Error for SpawnError {}

/// For code that returns `io::Result`: `n.try_spawn(..)?`. The error is of kind
/// [`Other`](std::io::ErrorKind::Other), carrying the `SpawnError`.
///
/// # Examples
///
/// ```
/// use std::io;
/// use hatchery::{nursery, Nursery, SpawnError};
///
/// fn spawn_logger(n: &Nursery<io::Error>) -> io::Result<()> {
///     n.try_spawn(async { Ok(()) })?;
///     Ok(())
/// }
///
/// # hatchery_smol::run(async {
/// let mut saved = None;
/// nursery(|n| async {
///     saved = Some(n);
///     Ok(())
/// })
/// .await
/// .unwrap();
/// let err = spawn_logger(&saved.unwrap()).unwrap_err(); // the nursery had finished
/// assert_eq!(err.kind(), io::ErrorKind::Other);
/// assert!(err.get_ref().unwrap().is::<SpawnError>());
/// # });
/// ```
impl From<SpawnError> for std::io::Error {
    fn from(e: SpawnError) -> Self {
        std::io::Error::other(e)
    }
}

/// The error of [`Nursery::start`](crate::Nursery::start).
///
/// Its `Display` with `{:#}` shows a `Failed` task's error with `{:#}` too (anyhow's
/// cause chain), as [`NurseryError`]'s does. Like it, it names no `source()` (`E` need not
/// be an `Error`): [`flatten`](StartError::flatten) it before `?` to keep the task's own
/// error as it is.
///
/// # Examples
///
/// ```
/// use hatchery::{nursery, StartError};
///
/// # hatchery_smol::run(async {
/// let mut saved = None;
/// nursery(|n| async {
///     saved = Some(n);
///     Ok::<_, std::io::Error>(())
/// })
/// .await
/// .unwrap();
/// let r = saved.unwrap().start(|status| async move {
///     status.started(());
///     Ok(())
/// })
/// .await;
/// assert!(matches!(r, Err(StartError::Closed))); // the nursery had finished
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StartError<E> {
    /// The task returned this error before calling `started`.
    Failed(E),
    /// The task ended without calling `started`: it returned, or was cancelled (by the
    /// executor, or by the earlier scope of a kept `start`).
    NotStarted,
    /// The nursery had already finished.
    Closed,
}

impl<E> StartError<E> {
    /// The task's own error, if it failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::StartError;
    ///
    /// assert_eq!(StartError::Failed("cannot bind").into_inner(), Some("cannot bind"));
    /// assert_eq!(StartError::<&str>::NotStarted.into_inner(), None);
    /// ```
    pub fn into_inner(self) -> Option<E> {
        match self {
            StartError::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Collapses the error into one `E`: the task's own error as itself, `NotStarted` and
    /// `Closed` through `E`'s `From<StartError<E>>` (as
    /// [`NurseryError::flatten`]). With `anyhow`, `.await.map_err(StartError::flatten)?`
    /// keeps the task's error reachable by `downcast_ref` and `chain()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::StartError;
    ///
    /// let err = StartError::Failed(anyhow::Error::new(std::fmt::Error)).flatten();
    /// assert!(err.downcast_ref::<std::fmt::Error>().is_some());
    /// let err = StartError::<anyhow::Error>::NotStarted.flatten();
    /// assert!(matches!(err.downcast_ref(), Some(StartError::<anyhow::Error>::NotStarted)));
    /// ```
    pub fn flatten(self) -> E
    where
        E: From<StartError<E>>,
    {
        match self {
            StartError::Failed(e) => e,
            other => E::from(other),
        }
    }
}

impl<E: fmt::Display> fmt::Display for StartError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // `{:#}` reaches the task's error (anyhow's cause chain), as `NurseryError`'s.
            StartError::Failed(e) if f.alternate() => {
                write!(f, "task failed before it started: {e:#}")
            }
            StartError::Failed(e) => write!(f, "task failed before it started: {e}"),
            StartError::NotStarted => {
                f.write_str("task ended (returned or was cancelled) without calling `started`")
            }
            StartError::Closed => SpawnError(()).fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for StartError<E> {}

/// For code that returns `io::Result`: `n.start(..).await?` with a task whose error is an
/// `io::Error`.
///
/// A `Failed` task's error comes back as itself (its kind and payload kept); `NotStarted`
/// and `Closed` as errors of kind [`Other`](std::io::ErrorKind::Other) carrying the
/// `StartError`.
///
/// # Examples
///
/// ```
/// use std::io;
/// use hatchery::{nursery, Nursery};
///
/// async fn serve(n: &Nursery<io::Error>) -> io::Result<u16> {
///     let port = n
///         .start(|_ready| async { Err::<(), _>(io::Error::from(io::ErrorKind::AddrInUse)) })
///         .await?;
///     Ok(port)
/// }
///
/// # hatchery_smol::run(async {
/// nursery(|n| async move {
///     assert_eq!(serve(&n).await.unwrap_err().kind(), io::ErrorKind::AddrInUse);
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
impl From<StartError<std::io::Error>> for std::io::Error {
    fn from(e: StartError<std::io::Error>) -> Self {
        match e {
            StartError::Failed(e) => e,
            other => std::io::Error::other(other),
        }
    }
}
