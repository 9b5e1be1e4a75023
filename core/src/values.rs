//! Context values: a value set for a future and everything it spawns ([`ContextKey`]),
//! Python's `contextvars` as trio and anyio use them (rules V1–V3 of the book's
//! semantics chapter).
//!
//! The values in effect where code runs are a persistent list, innermost first, in a
//! thread-local while that code is polled. A child takes the list in effect where it is
//! spawned (one reference count, and nothing at all when no value is set: the child is
//! then spawned as it would be without this module) and installs it around each of its
//! polls; [`ContextKey::scope`] pushes one entry in front for its future's polls. Setting
//! a value never writes to a list that another holds, so a child's values never reach
//! its parent.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

/// The values set where some code runs, innermost first: shared by everything spawned
/// there, never changed once shared.
#[derive(Clone)]
pub(crate) struct Values(Arc<Entry<dyn Any + Send + Sync>>);

/// One value of a list, with the list it was set in front of.
struct Entry<V: ?Sized> {
    /// The key's identity: its address.
    key: usize,
    next: Option<Values>,
    value: V,
}

impl Values {
    /// The innermost value set for the key whose identity is `key`.
    fn find<T: 'static>(&self, key: usize) -> Option<&T> {
        let mut entry = &self.0;
        loop {
            if entry.key == key {
                return entry.value.downcast_ref();
            }
            entry = &entry.next.as_ref()?.0;
        }
    }
}

thread_local! {
    /// The values of the code being polled (or run, on a thread of `to_thread`).
    static CURRENT: Cell<Option<Values>> = const { Cell::new(None) };

    /// Whether `CURRENT` holds values: a thread-local with no destructor, whose read is
    /// a plain load, for the spawns made where no value is set.
    static ANY: Cell<bool> = const { Cell::new(false) };
}

/// The values in effect here: `None`, with no reference count, when none is set.
#[inline]
pub(crate) fn current() -> Option<Values> {
    if !ANY.with(Cell::get) {
        return None;
    }
    CURRENT
        .try_with(|c| {
            let values = c.take();
            let copy = values.clone();
            c.set(values);
            copy
        })
        .ok()
        .flatten()
}

/// Makes `values` the ones in effect, returning those it replaces (`values` itself when
/// the thread's locals are gone).
fn swap(values: Option<Values>) -> Option<Values> {
    ANY.with(|any| any.set(values.is_some()));
    let mut values = Some(values);
    CURRENT
        .try_with(|c| c.replace(values.take().flatten()))
        .unwrap_or_else(|_| values.flatten())
}

/// The values in `slot` are in effect until this is dropped, which puts back those they
/// replaced (also on a panic). `slot` holds the replaced ones meanwhile.
pub(crate) struct Installed<'a>(&'a mut Option<Values>);

impl<'a> Installed<'a> {
    #[inline]
    pub(crate) fn new(slot: &'a mut Option<Values>) -> Installed<'a> {
        *slot = swap(slot.take());
        Installed(slot)
    }
}

impl Drop for Installed<'_> {
    #[inline]
    fn drop(&mut self) {
        *self.0 = swap(self.0.take());
    }
}

/// A key to a value set for a future and every task it spawns: hatchery's
/// `contextvars.ContextVar`, for a request id, a tenant, a tracing field.
///
/// Declare a key as a `static`; [`scope`](ContextKey::scope) sets its value for a future,
/// and [`get`](ContextKey::get) or [`with`](ContextKey::with) read it in that future and
/// in everything it runs:
///
/// * **children inherit** (rule V1): a child of any kind (a task of the executor, a child
///   its nursery polls, a future of `join`, `map`, `race`, a `start`ed task) sees the
///   values in effect where it was spawned, for its whole life. A value set later around
///   the spawner does not reach a child already spawned.
/// * **never back up** (rule V2): a value set in a child (or in any inner future) is seen
///   only there and below it; its parent and siblings keep theirs.
/// * **threads and portals** (rule V3): work sent to a thread with
///   [`to_thread::run_sync`](crate::to_thread::run_sync) or
///   [`run_blocking`](crate::run_blocking) sees the values of the task that sent it, and
///   so do its calls back ([`from_thread`](crate::from_thread)); a task a
///   [`BlockingPortal`](crate::from_thread::BlockingPortal) runs for a thread sees that
///   thread's values, or, on a thread without any, those in effect where the portal was
///   opened.
///
/// It is the same on every runtime and kind of children. Spawning costs nothing more
/// when no value is set; with values set, a child keeps one more reference to the list.
/// Reading walks the list set around the code, innermost first.
///
/// A key is identified by its address: it must be a `static` (a `const` key does not
/// compile, as every use of it would be a new key), or leaked.
///
/// # Examples
///
/// ```
/// use hatchery::{nursery, ContextKey};
///
/// static REQUEST_ID: ContextKey<u64> = ContextKey::new("request_id");
///
/// async fn log(what: &str) -> String {
///     format!("[{:?}] {what}", REQUEST_ID.get())
/// }
///
/// # hatchery_smol::run(async {
/// let lines = REQUEST_ID
///     .scope(7, async {
///         nursery(|n| async move {
///             let child = n.spawn(async { Ok(log("from a child").await) });
///             Ok::<_, std::io::Error>((log("from the body").await, child.join().await?))
///         })
///         .await
///     })
///     .await
///     .unwrap();
/// assert_eq!(lines, ("[Some(7)] from the body".into(), "[Some(7)] from a child".into()));
/// assert_eq!(REQUEST_ID.get(), None); // not set out here
/// # });
/// ```
///
/// A key must be a `static`:
///
/// ```compile_fail,E0716
/// use hatchery::ContextKey;
///
/// const REQUEST_ID: ContextKey<u64> = ContextKey::new("request_id");
/// let _ = REQUEST_ID.get(); // every use of a `const` would be a key of its own
/// ```
pub struct ContextKey<T: 'static> {
    name: &'static str,
    _value: PhantomData<fn() -> T>,
}

/// A `const` key cannot be borrowed for `'static` (a type with a destructor is not
/// promoted to a static): every use of one would be a new key, and `get` would never
/// find what `scope` set.
impl<T: 'static> Drop for ContextKey<T> {
    fn drop(&mut self) {}
}

impl<T: 'static> ContextKey<T> {
    /// A key called `name` (shown by its `Debug`), for a `static`.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::ContextKey;
    ///
    /// static TENANT: ContextKey<String> = ContextKey::new("tenant");
    /// assert_eq!(TENANT.name(), "tenant");
    /// ```
    pub const fn new(name: &'static str) -> ContextKey<T> {
        ContextKey {
            name,
            _value: PhantomData,
        }
    }

    /// The name given to [`new`](ContextKey::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::ContextKey;
    ///
    /// static DEPTH: ContextKey<u32> = ContextKey::new("depth");
    /// assert_eq!(format!("{DEPTH:?}"), "ContextKey(\"depth\")");
    /// assert_eq!(DEPTH.name(), "depth");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn id(&'static self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Calls `f` with the value set for this key where the caller runs, the innermost
    /// one, or `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::ContextKey;
    ///
    /// static TENANT: ContextKey<String> = ContextKey::new("tenant");
    ///
    /// # hatchery_smol::run(async {
    /// TENANT
    ///     .scope("acme".to_string(), async {
    ///         assert_eq!(TENANT.with(|t| t.map(String::len)), Some(4));
    ///     })
    ///     .await;
    /// # });
    /// ```
    pub fn with<R>(&'static self, f: impl FnOnce(Option<&T>) -> R) -> R {
        let values = current();
        f(values.as_ref().and_then(|v| v.find(self.id())))
    }

    /// A copy of the value set for this key where the caller runs, or `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::ContextKey;
    ///
    /// static ATTEMPT: ContextKey<u32> = ContextKey::new("attempt");
    ///
    /// # hatchery_smol::run(async {
    /// assert_eq!(ATTEMPT.get(), None);
    /// ATTEMPT.scope(1, async { assert_eq!(ATTEMPT.get(), Some(1)) }).await;
    /// # });
    /// ```
    pub fn get(&'static self) -> Option<T>
    where
        T: Clone,
    {
        self.with(|v| v.cloned())
    }
}

impl<T: Send + Sync + 'static> ContextKey<T> {
    /// Runs `fut` with this key set to `value`: in `fut`, in everything `fut` spawns, and
    /// in the work it sends to threads (rules V1–V3). Around the returned future the
    /// value is not set; an inner `scope` of the same key hides it for its own future.
    ///
    /// The other values seen in `fut` are those in effect where it is first polled.
    ///
    /// # Cancel safety
    ///
    /// The returned future is as cancel-safe as `fut`: it adds no suspension point, and
    /// dropping it drops `fut` (with the value set, so that `fut`'s cleanup sees it).
    /// When the enclosing scope is cancelled, `fut` is cancelled as it would be without
    /// the value.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::ContextKey;
    ///
    /// static DEPTH: ContextKey<u32> = ContextKey::new("depth");
    ///
    /// # hatchery_smol::run(async {
    /// DEPTH
    ///     .scope(1, async {
    ///         DEPTH.scope(2, async { assert_eq!(DEPTH.get(), Some(2)) }).await;
    ///         assert_eq!(DEPTH.get(), Some(1)); // the inner value was its future's alone
    ///     })
    ///     .await;
    /// # });
    /// ```
    pub fn scope<F: Future>(&'static self, value: T, fut: F) -> WithContext<F> {
        WithContext {
            values: Some(self.entry(value)),
            fresh: true,
            fut: Some(fut),
        }
    }

    /// Calls `f` with this key set to `value`: for code on a thread, where there is no
    /// future to give [`scope`](ContextKey::scope).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::ContextKey;
    ///
    /// static TENANT: ContextKey<&str> = ContextKey::new("tenant");
    ///
    /// let n = TENANT.sync_scope("acme", || TENANT.get().map(str::len));
    /// assert_eq!(n, Some(4));
    /// assert_eq!(TENANT.get(), None);
    /// ```
    pub fn sync_scope<R>(&'static self, value: T, f: impl FnOnce() -> R) -> R {
        let mut entry = self.entry(value);
        set_tail(&mut entry);
        let mut slot = Some(entry);
        let _installed = Installed::new(&mut slot);
        f()
    }

    /// One entry for `value`, not in front of any list yet.
    fn entry(&'static self, value: T) -> Values {
        Values(Arc::new(Entry {
            key: self.id(),
            next: None,
            value,
        }))
    }
}

/// Puts the values in effect here behind `entry`, which nothing else holds yet.
fn set_tail(entry: &mut Values) {
    if let Some(tail) = current() {
        Arc::get_mut(&mut entry.0)
            .expect("hatchery: internal error: a context entry shared before it was set")
            .next = Some(tail);
    }
}

impl<T> fmt::Debug for ContextKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ContextKey").field(&self.name).finish()
    }
}

pin_project! {
    /// The future of [`ContextKey::scope`]: `fut`, with a value set around each of its
    /// polls (and around its drop).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::{ContextKey, WithContext};
    ///
    /// static USER: ContextKey<u32> = ContextKey::new("user");
    ///
    /// # hatchery_smol::run(async {
    /// let fut: WithContext<_> = USER.scope(3, async { USER.get() });
    /// assert_eq!(fut.await, Some(3));
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct WithContext<F> {
        values: Option<Values>,
        // Whether `values` is one entry still to be put in front of the values in effect
        // where the future is first polled.
        fresh: bool,
        // `None` once dropped in place (see the drop).
        #[pin]
        fut: Option<F>,
    }

    impl<F> PinnedDrop for WithContext<F> {
        fn drop(this: Pin<&mut Self>) {
            // The future's cleanup runs with its values.
            let this = this.project();
            let _installed = Installed::new(this.values);
            let mut fut = this.fut;
            fut.set(None);
        }
    }
}

impl<F> WithContext<F> {
    /// `fut` run with `values`, the whole list it is to see (a child's, taken where it
    /// was spawned).
    #[inline]
    pub(crate) fn inherit(values: Values, fut: F) -> WithContext<F> {
        WithContext {
            values: Some(values),
            fresh: false,
            fut: Some(fut),
        }
    }

    /// `fut` run with the values in effect here, or with none: for code handed to
    /// another place to run (a call back from a thread).
    pub(crate) fn here(fut: F) -> WithContext<F> {
        WithContext {
            values: current(),
            fresh: false,
            fut: Some(fut),
        }
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if std::mem::take(this.fresh) {
            if let Some(entry) = this.values {
                set_tail(entry);
            }
        }
        let _installed = Installed::new(this.values);
        this.fut
            .as_pin_mut()
            .expect("hatchery: `WithContext` polled after it was dropped")
            .poll(cx)
    }
}

impl<F> fmt::Debug for WithContext<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithContext").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: ContextKey<u32> = ContextKey::new("a");
    static B: ContextKey<&str> = ContextKey::new("b");

    #[test]
    fn v2_a_value_is_set_for_its_future_alone() {
        futures_lite::future::block_on(A.scope(1, async {
            B.scope("x", async {
                assert_eq!((A.get(), B.get()), (Some(1), Some("x")));
                A.scope(2, async {
                    assert_eq!((A.get(), B.get()), (Some(2), Some("x")))
                })
                .await;
                assert_eq!(A.get(), Some(1));
            })
            .await;
            assert_eq!(B.get(), None);
        }));
        assert_eq!(A.get(), None);
    }

    #[test]
    fn v2_a_panic_puts_the_values_back() {
        let caught = std::panic::catch_unwind(|| {
            A.sync_scope(5, || panic!("boom"));
        });
        assert!(caught.is_err());
        assert_eq!(A.get(), None);
    }

    #[test]
    fn v2_a_dropped_scope_cleans_up_with_its_value() {
        struct Seen;
        impl Drop for Seen {
            fn drop(&mut self) {
                assert_eq!(A.get(), Some(9));
            }
        }
        let seen = Seen;
        let fut = A.scope(9, async move {
            let _seen = seen;
            std::future::pending::<()>().await;
        });
        let mut fut = Box::pin(fut);
        let waker = std::task::Waker::noop();
        assert!(fut
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_pending());
        drop(fut);
        assert_eq!(A.get(), None);
    }
}
