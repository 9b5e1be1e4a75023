//! Error types between a nursery and its tasks: [`err_into`], which converts a task's
//! error into its nursery's, and [`BodyOutput`], the bound that explains a nursery whose
//! body and tasks disagree.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

/// Converts the error of `fut` into another type (`E2: Into<E>`), for spawning a task
/// whose error type is not its nursery's: `n.spawn(err_into(fut))`.
///
/// A nursery has one error type `E`, and [`Nursery::spawn`](crate::Nursery::spawn) takes
/// a future of `Result<T, E>` exactly: a spawn that also took any `E2: Into<E>` would
/// leave the error type of `n.spawn(async { Ok(x) })` (and of every `?` inside) with
/// nothing to infer it from. So the conversion is asked for where the types differ, and
/// `E` is still inferred from the nursery: a library's `Result<T, kv::Error>` spawned into
/// an `anyhow::Error` nursery is `n.spawn(err_into(client.heartbeat()))`. It works the
/// same in [`try_spawn`](crate::Nursery::try_spawn), in
/// [`start`](crate::Nursery::start) (`n.start(|status| err_into(serve(status)))`), in a
/// [`Subgroup`](crate::Subgroup) and in [`as_completed_in`](crate::as_completed_in).
/// (futures-util's `TryFutureExt::err_into` does the same, as a method.)
///
/// An error that does not convert is a compile error at this call, inside the spawn:
/// the trait `From<E2>` is not implemented for `E`. Implement it (or convert by hand:
/// `async move { fut.await.map_err(..) }`).
///
/// # Cancel safety
///
/// As `fut`: this only converts its output. In a cancelled scope, `fut` is dropped at
/// its suspension point as it would be without the conversion.
///
/// # Examples
///
/// ```
/// use hatchery::{err_into, nursery};
///
/// mod kv {
///     #[derive(Debug)]
///     pub struct Error;
///     impl std::fmt::Display for Error {
///         fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///             f.write_str("kv failed")
///         }
///     }
///     impl std::error::Error for Error {}
///     pub async fn get(key: &str) -> Result<u32, Error> {
///         if key == "a" { Ok(1) } else { Err(Error) }
///     }
/// }
///
/// # hatchery_smol::run(async {
/// let r = nursery(|n| async move {
///     let a = n.spawn(err_into(kv::get("a"))); // kv::Error into anyhow::Error
///     n.spawn(async { Ok(()) }); // the usual case needs nothing
///     Ok::<_, anyhow::Error>(a.join().await?)
/// })
/// .await;
/// assert_eq!(r.unwrap(), 1);
///
/// let r = nursery(|n| async move {
///     n.spawn(err_into(kv::get("b")));
///     Ok::<_, anyhow::Error>(())
/// })
/// .await;
/// assert_eq!(r.unwrap_err().to_string(), "kv failed");
/// # });
/// ```
///
/// An error that does not convert does not compile, and the message names the call:
///
/// ```compile_fail,E0277
/// # use hatchery::{err_into, nursery};
/// #[derive(Debug)]
/// struct Unrelated;
/// async fn job() -> Result<(), Unrelated> { Ok(()) }
/// # async fn f() {
/// let _ = nursery(|n| async move {
///     n.spawn(err_into(job())); // `From<Unrelated>` is not implemented for `std::io::Error`
///     Ok::<_, std::io::Error>(())
/// })
/// .await;
/// # }
/// ```
pub fn err_into<E, F, T, E2>(fut: F) -> ErrInto<F, E>
where
    F: Future<Output = Result<T, E2>>,
    E2: Into<E>,
{
    ErrInto {
        fut,
        _into: PhantomData,
    }
}

pin_project! {
    /// Future returned by [`err_into`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::err_into;
    /// use hatchery::futures::ErrInto;
    ///
    /// # futures_lite::future::block_on(async {
    /// let fut: ErrInto<_, Box<dyn std::error::Error + Send + Sync>> =
    ///     err_into(async { Err::<(), _>(std::fmt::Error) });
    /// assert_eq!(fut.await.unwrap_err().to_string(), "an error occurred when formatting an argument");
    /// # });
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct ErrInto<F, E> {
        #[pin]
        fut: F,
        // `fn() -> E`: the conversion's target takes no part in auto traits.
        _into: PhantomData<fn() -> E>,
    }
}

impl<F, T, E2, E> Future for ErrInto<F, E>
where
    F: Future<Output = Result<T, E2>>,
    E2: Into<E>,
{
    type Output = Result<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, E>> {
        self.project().fut.poll(cx).map(|r| r.map_err(Into::into))
    }
}

impl<F, E> fmt::Debug for ErrInto<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrInto").finish_non_exhaustive()
    }
}

/// What a nursery's body returns: `Result<T, E>`, for a nursery of error type `E`.
///
/// This is a bound of [`nursery`](crate::nursery()) on its body's output, besides
/// `Output = Result<T, E>`, which `Result<T, E>` meets and nothing else does. It exists
/// for its compile error: a
/// nursery has one error type, inferred from its body or from the first task spawned
/// into it, whichever the compiler reads first; when a task's differs from the body's,
/// the error says so and how to convert the task's ([`err_into`]), where a plain type
/// mismatch would only name the types. It cannot be implemented outside hatchery.
///
/// # Examples
///
/// ```
/// use hatchery::BodyOutput;
///
/// fn check<E, R: BodyOutput<E>>(_: &R) {}
/// check::<std::io::Error, _>(&Ok::<u32, std::io::Error>(7));
/// ```
///
/// A body and a task that disagree:
///
/// ```compile_fail,E0277
/// # use hatchery::nursery;
/// #[derive(Debug)]
/// struct KvError;
/// async fn get() -> Result<u32, KvError> { Ok(1) }
/// # async fn f() {
/// let _ = nursery(|n| async move {
///     n.spawn(get()); // makes the nursery's error type `KvError`: wrap it in `err_into`
///     Ok::<_, std::io::Error>(())
/// })
/// .await;
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "this nursery's error type is `{E}`, but its body returns `{Self}`",
    label = "the body returns `{Self}`",
    note = "a nursery has one error type, inferred from its body or from the first task \
            spawned into it (a task returning `Result<_, {E}>` makes it `{E}`)",
    note = "to spawn a task whose error converts into the body's, wrap the task: \
            `n.spawn(hatchery::err_into(task))`"
)]
pub trait BodyOutput<E>: sealed::Sealed {}

impl<T, E> BodyOutput<E> for Result<T, E> {}

mod sealed {
    /// Only `Result` is a [`BodyOutput`](super::BodyOutput).
    pub trait Sealed {}

    impl<T, E> Sealed for Result<T, E> {}
}
