//! Nurseries of either kind, for scenarios written once: a [`Kind`] opens a spawning
//! nursery ([`Spawning`]) or a polled one ([`Polling`]), and hands its body a
//! [`Nursery`] to spawn and start `Send + 'static` children with, whichever it is.
//!
//! The rules of nurseries (N1-N7) and of `start` (S) are the same for both kinds (the
//! book's *Semantics* chapter, "Polled children"); a scenario generic over `K: Kind`
//! checks them on both. The kit runs its nursery scenarios so ([`tests!`](crate::tests)
//! makes one test per kind), and hatchery's own suite writes its N and S tests the same
//! way.
//!
//! Only the children's bounds differ between the kinds (a spawning nursery takes `Send +
//! 'static` futures, a polled one futures that may borrow); children that are `Send +
//! 'static` suit both, and those are what [`Nursery::spawn`] takes. What the kinds do
//! not share, a scenario of one kind writes with the kind's own API: a spawning nursery's
//! `spawn_named`, `subgroup` and `start_with_handle`, a polled child that borrows.
//!
//! # Examples
//!
//! ```
//! use hatchery_conformance::kinds::{Kind, Polling, Spawning};
//!
//! /// N1, on either kind: the nursery waits for its children.
//! async fn waits_for_children<K: Kind>() {
//!     let out = K::nursery(|n| async move {
//!         let h = n.spawn(async { Ok::<_, std::io::Error>(6 * 7) });
//!         n.spawn(async { hatchery::checkpoint().await; Ok(0) });
//!         Ok(h.join().await?)
//!     })
//!     .await;
//!     assert_eq!(out.unwrap(), 42, "on the {} kind", K::NAME);
//! }
//!
//! hatchery_smol::run(waits_for_children::<Spawning>());
//! hatchery_smol::run(waits_for_children::<Polling>());
//! ```

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use hatchery::{
    Children, NurseryError, Polled, SpawnError, Spawned, StartError, TaskHandle, TaskStatus,
};

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Spawning {}
    impl Sealed for super::Polling {}
}

/// A kind of nursery: [`Spawning`] or [`Polling`]. Sealed: those two are all there is.
///
/// # Examples
///
/// ```
/// use hatchery_conformance::kinds::{Kind, Polling, Spawning};
///
/// fn name<K: Kind>() -> &'static str {
///     K::NAME
/// }
///
/// assert_eq!((name::<Spawning>(), name::<Polling>()), ("spawning", "polling"));
/// ```
pub trait Kind: sealed::Sealed + Sized + Send + Sync + 'static {
    /// Its name: `"spawning"` or `"polling"` (what the generated tests are called).
    const NAME: &'static str;

    /// Whether children run in parallel with each other and with the body on a
    /// multi-threaded runtime: tasks of the executor do (N8); a polled nursery's
    /// children never do (I1).
    const PARALLEL: bool;

    /// The kind of children of the nursery it opens (`C` in
    /// [`hatchery::Nursery<E, C>`]).
    type Children<E: Send + 'static>: Children;

    /// The kind's nursery handle, [`hatchery::Nursery<E, Self::Children<E>>`]: named here
    /// with the auto traits that generic code cannot prove of it.
    type Handle<E: Send + 'static>: Borrow<hatchery::Nursery<E, Self::Children<E>>>
        + Clone
        + Send
        + Sync
        + 'static;

    /// The future of [`Nursery::start`]: [`hatchery::futures::Start`] over the kind's
    /// children (`Start<Fut, V, E, Self::Children<E>>`), named here with the auto traits
    /// that generic code cannot prove of it.
    type Start<E, V, T, Fut>: Future<Output = Result<V, StartError<E>>> + Send + Unpin + 'static
    where
        E: Send + 'static,
        V: Send + 'static,
        T: Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static;

    /// Opens a nursery of this kind and runs `body` in it: [`hatchery::nursery`] or
    /// [`hatchery::Polled::nursery`].
    ///
    /// # Errors
    ///
    /// As the kind's own function: every error of the body and the children, or
    /// [`NurseryError::Cancelled`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery_conformance::kinds::{Kind, Polling};
    ///
    /// let out = hatchery_smol::run(Polling::nursery(|n| async move {
    ///     Ok::<_, std::io::Error>(n.spawn(async { Ok(2) }).join().await? + 1)
    /// }));
    /// assert_eq!(out.unwrap(), 3);
    /// ```
    #[track_caller]
    fn nursery<'a, E, T, F, Fut>(body: F) -> NurseryFuture<'a, T, E>
    where
        E: Send + 'static,
        T: Send + 'a,
        F: FnOnce(Nursery<Self, E>) -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, E>> + Send + 'a;

    /// Not public API: [`Nursery::try_spawn`].
    #[doc(hidden)]
    #[track_caller]
    fn __try_spawn<E, T, F>(
        n: &hatchery::Nursery<E, Self::Children<E>>,
        fut: F,
    ) -> Result<TaskHandle<T>, SpawnError>
    where
        E: Send + 'static,
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static;

    /// Not public API: [`Nursery::spawn`].
    #[doc(hidden)]
    #[track_caller]
    fn __spawn<E, T, F>(n: &hatchery::Nursery<E, Self::Children<E>>, fut: F) -> TaskHandle<T>
    where
        E: Send + 'static,
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static;

    /// Not public API: [`Nursery::start`].
    #[doc(hidden)]
    #[track_caller]
    fn __start<E, V, T, F, Fut>(
        n: &hatchery::Nursery<E, Self::Children<E>>,
        f: F,
    ) -> Self::Start<E, V, T, Fut>
    where
        E: Send + 'static,
        V: Send + 'static,
        T: Send + 'static,
        F: FnOnce(TaskStatus<V>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static;
}

/// The future of [`Kind::nursery`]: the kind's own
/// [`NurseryFuture`](hatchery::futures::NurseryFuture), boxed. (Its type names the closure
/// that wraps the body, which has no name; and generic code could not tell that the
/// kind's future is `Send` when its output borrows, a limit of rustc's.)
pub type NurseryFuture<'a, T, E> =
    Pin<Box<dyn Future<Output = Result<T, NurseryError<E>>> + Send + 'a>>;

/// The spawning nursery, [`hatchery::nursery`]: children are tasks of the executor.
///
/// # Examples
///
/// ```
/// use hatchery_conformance::kinds::{Kind, Spawning};
///
/// let out = hatchery_smol::run(Spawning::nursery(|n| async move {
///     Ok::<_, std::io::Error>(n.spawn(async { Ok(std::thread::current().id()) }).join().await?)
/// }));
/// assert!(out.is_ok());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Spawning;

/// The polled nursery, [`hatchery::Polled::nursery`]: children are futures that the
/// nursery polls in the task that awaits it (their borrows are `'static` here).
///
/// # Examples
///
/// ```
/// use hatchery_conformance::kinds::{Kind, Polling};
///
/// let here = std::thread::current().id();
/// let out = hatchery_smol::run(Polling::nursery(|n| async move {
///     Ok::<_, std::io::Error>(n.spawn(async { Ok(std::thread::current().id()) }).join().await?)
/// }));
/// assert_eq!(out.unwrap(), here); // polled by the root, on this thread
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Polling;

impl Kind for Spawning {
    const NAME: &'static str = "spawning";
    const PARALLEL: bool = true;
    type Children<E: Send + 'static> = Spawned;
    type Handle<E: Send + 'static> = hatchery::Nursery<E>;
    type Start<E, V, T, Fut>
        = hatchery::futures::Start<Fut, V, E>
    where
        E: Send + 'static,
        V: Send + 'static,
        T: Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static;

    #[track_caller]
    fn nursery<'a, E, T, F, Fut>(body: F) -> NurseryFuture<'a, T, E>
    where
        E: Send + 'static,
        T: Send + 'a,
        F: FnOnce(Nursery<Self, E>) -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, E>> + Send + 'a,
    {
        Box::pin(hatchery::nursery(move |n| body(Nursery { inner: n })))
    }

    #[track_caller]
    fn __try_spawn<E, T, F>(
        n: &hatchery::Nursery<E, Spawned>,
        fut: F,
    ) -> Result<TaskHandle<T>, SpawnError>
    where
        E: Send + 'static,
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        n.try_spawn(fut)
    }

    #[track_caller]
    fn __spawn<E, T, F>(n: &hatchery::Nursery<E, Spawned>, fut: F) -> TaskHandle<T>
    where
        E: Send + 'static,
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        n.spawn(fut)
    }

    #[track_caller]
    fn __start<E, V, T, F, Fut>(
        n: &hatchery::Nursery<E, Spawned>,
        f: F,
    ) -> hatchery::futures::Start<Fut, V, E>
    where
        E: Send + 'static,
        V: Send + 'static,
        T: Send + 'static,
        F: FnOnce(TaskStatus<V>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        n.start(f)
    }
}

impl Kind for Polling {
    const NAME: &'static str = "polling";
    const PARALLEL: bool = false;
    type Children<E: Send + 'static> = Polled<'static>;
    type Handle<E: Send + 'static> = hatchery::Nursery<E, Polled<'static>>;
    type Start<E, V, T, Fut>
        = hatchery::futures::Start<Fut, V, E, Polled<'static>>
    where
        E: Send + 'static,
        V: Send + 'static,
        T: Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static;

    #[track_caller]
    fn nursery<'a, E, T, F, Fut>(body: F) -> NurseryFuture<'a, T, E>
    where
        E: Send + 'static,
        T: Send + 'a,
        F: FnOnce(Nursery<Self, E>) -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, E>> + Send + 'a,
    {
        Box::pin(hatchery::Polled::nursery(move |n| {
            body(Nursery { inner: n })
        }))
    }

    #[track_caller]
    fn __try_spawn<E, T, F>(
        n: &hatchery::Nursery<E, Polled<'static>>,
        fut: F,
    ) -> Result<TaskHandle<T>, SpawnError>
    where
        E: Send + 'static,
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        n.try_spawn(fut)
    }

    #[track_caller]
    fn __spawn<E, T, F>(n: &hatchery::Nursery<E, Polled<'static>>, fut: F) -> TaskHandle<T>
    where
        E: Send + 'static,
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        n.spawn(fut)
    }

    #[track_caller]
    fn __start<E, V, T, F, Fut>(
        n: &hatchery::Nursery<E, Polled<'static>>,
        f: F,
    ) -> hatchery::futures::Start<Fut, V, E, Polled<'static>>
    where
        E: Send + 'static,
        V: Send + 'static,
        T: Send + 'static,
        F: FnOnce(TaskStatus<V>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        n.start(f)
    }
}

/// The handle that [`Kind::nursery`] gives its body: the kind's
/// [`hatchery::Nursery`], which it derefs to (`cancel`, `is_closed`, `cancel_reason`,
/// ... are every nursery's), with `spawn`, `try_spawn` and `start` for children that
/// suit both kinds (`Send + 'static`).
///
/// Cheap to clone, as the nursery's handle is.
///
/// # Examples
///
/// ```
/// use hatchery_conformance::kinds::{Kind, Nursery, Polling};
///
/// fn spawn_two<K: Kind>(n: &Nursery<K, std::io::Error>) {
///     n.spawn(async { Ok(1) });
///     n.spawn(async { Ok(2) });
///     assert!(!n.is_closed()); // hatchery::Nursery's own method
/// }
///
/// hatchery_smol::run(Polling::nursery(|n| async move { spawn_two(&n); Ok(()) })).unwrap();
/// ```
pub struct Nursery<K: Kind, E: Send + 'static> {
    inner: K::Handle<E>,
}

impl<K: Kind, E: Send + 'static> Nursery<K, E> {
    /// [`hatchery::Nursery::spawn`], on either kind.
    ///
    /// # Panics
    ///
    /// As `spawn`: if the nursery has finished.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery_conformance::kinds::{Kind, Polling};
    ///
    /// let out = hatchery_smol::run(Polling::nursery(|n| async move {
    ///     Ok::<_, std::io::Error>(n.spawn(async { Ok(7) }).join().await?)
    /// }));
    /// assert_eq!(out.unwrap(), 7);
    /// ```
    #[track_caller]
    pub fn spawn<T, F>(&self, fut: F) -> TaskHandle<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        K::__spawn(self.inner.borrow(), fut)
    }

    /// [`hatchery::Nursery::try_spawn`], on either kind.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] if the nursery is closed; the future is dropped unpolled.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery_conformance::kinds::{Kind, Polling};
    ///
    /// let kept = hatchery_smol::run(Polling::nursery(|n| async move { Ok::<_, std::io::Error>(n) }));
    /// assert!(kept.unwrap().try_spawn(async { Ok(()) }).is_err()); // it has finished
    /// ```
    #[track_caller]
    pub fn try_spawn<T, F>(&self, fut: F) -> Result<TaskHandle<T>, SpawnError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        K::__try_spawn(self.inner.borrow(), fut)
    }

    /// The kind's `start` ([`hatchery::Nursery::start`]), on either kind.
    ///
    /// # Errors
    ///
    /// As `start`: [`StartError`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery_conformance::kinds::{Kind, Polling};
    ///
    /// let out = hatchery_smol::run(Polling::nursery(|n| async move {
    ///     let port = n.start(|status| async move { status.started(8080u16); Ok(()) }).await;
    ///     Ok::<_, std::io::Error>(port.unwrap())
    /// }));
    /// assert_eq!(out.unwrap(), 8080);
    /// ```
    #[track_caller]
    pub fn start<V, T, F, Fut>(&self, f: F) -> K::Start<E, V, T, Fut>
    where
        V: Send + 'static,
        T: Send + 'static,
        F: FnOnce(TaskStatus<V>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        K::__start(self.inner.borrow(), f)
    }

    /// The kind's own handle, for what only that kind has.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery_conformance::kinds::{Kind, Spawning};
    ///
    /// hatchery_smol::run(Spawning::nursery(|n| async move {
    ///     let n: &hatchery::Nursery<std::io::Error> = n.inner();
    ///     n.spawn_named("worker", async { Ok(()) });
    ///     Ok(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn inner(&self) -> &hatchery::Nursery<E, K::Children<E>> {
        self.inner.borrow()
    }
}

impl<K: Kind, E: Send + 'static> Deref for Nursery<K, E> {
    type Target = hatchery::Nursery<E, K::Children<E>>;

    fn deref(&self) -> &Self::Target {
        self.inner.borrow()
    }
}

impl<K: Kind, E: Send + 'static> Clone for Nursery<K, E> {
    fn clone(&self) -> Self {
        Nursery {
            inner: self.inner.clone(),
        }
    }
}

impl<K: Kind, E: Send + 'static> fmt::Debug for Nursery<K, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple(K::NAME).field(self.inner()).finish()
    }
}
