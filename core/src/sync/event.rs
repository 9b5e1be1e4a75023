//! `Event`: a one-shot flag that tasks can wait for.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use event_listener::EventListener;

use crate::context as rt;

/// A flag that starts unset, can be set once, and that tasks can wait for (anyio's and
/// trio's `Event`).
///
/// There is no `clear`: an event that was set stays set. For something to wait on
/// repeatedly, make a new `Event` each time or use a [`Condition`](super::Condition).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use hatchery::{nursery, sync::Event};
///
/// # hatchery_smol::run(async {
/// let ready = Arc::new(Event::new());
/// nursery(|n| {
///     let ready = ready.clone();
///     async move {
///         let r = ready.clone();
///         n.spawn(async move {
///             r.set();
///             Ok::<_, std::io::Error>(())
///         });
///         ready.wait().await;
///         Ok(())
///     }
/// })
/// .await
/// .unwrap();
/// assert!(ready.is_set());
/// # });
/// ```
pub struct Event {
    set: AtomicBool,
    event: event_listener::Event,
}

impl Event {
    /// A new, unset event.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!hatchery::sync::Event::new().is_set());
    /// ```
    pub fn new() -> Event {
        Event {
            set: AtomicBool::new(false),
            event: event_listener::Event::new(),
        }
    }

    /// Sets the event and wakes every task waiting for it. Idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = hatchery::sync::Event::new();
    /// e.set();
    /// e.set();
    /// assert!(e.is_set());
    /// ```
    pub fn set(&self) {
        if !self.set.swap(true, Ordering::AcqRel) {
            super::notify_listeners(&self.event);
        }
    }

    /// Whether the event is set.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = hatchery::sync::Event::new();
    /// assert!(!e.is_set());
    /// e.set();
    /// assert!(e.is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Waits until the event is set; completes at once if it already is.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future just stops waiting. If the enclosing scope is
    /// cancelled while it waits, it never completes (even if the event gets set) and the
    /// scope drops it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use hatchery::{nursery, sync::Event};
    ///
    /// # hatchery_smol::run(async {
    /// let ready = Arc::new(Event::new());
    /// let r = ready.clone();
    /// nursery(|n| async move {
    ///     let waiter = n.spawn(async move {
    ///         r.wait().await; // until the body sets it
    ///         Ok::<_, std::io::Error>(r.is_set())
    ///     });
    ///     ready.set();
    ///     assert!(waiter.join().await?);
    ///     ready.wait().await; // already set: completes at once
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn wait(&self) -> EventWait<'_> {
        EventWait {
            event: self,
            listener: None,
            done: false,
        }
    }

    /// Blocks this thread until the event is set; returns at once if it already is. For
    /// threads outside the executor (a plain thread, or
    /// [`run_blocking`](crate::run_blocking)); never call it from async code, where it
    /// would block an executor thread.
    ///
    /// # Panics
    ///
    /// When called from async code inside hatchery (a task or scope being polled on this
    /// thread), with a message that says to use the async method instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let ready = Arc::new(hatchery::sync::Event::new());
    /// let worker = std::thread::spawn({
    ///     let ready = ready.clone();
    ///     move || {
    ///         ready.wait_blocking();
    ///         "started"
    ///     }
    /// });
    /// ready.set();
    /// assert_eq!(worker.join().unwrap(), "started");
    /// ```
    pub fn wait_blocking(&self) {
        super::block_on(self.wait())
    }
}

impl Default for Event {
    fn default() -> Self {
        Event::new()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("is_set", &self.is_set())
            .finish()
    }
}

/// Future returned by [`Event::wait`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::futures::EventWait;
/// use hatchery::move_on_after;
/// use hatchery::sync::Event;
///
/// # hatchery_smol::run(async {
/// let event = Event::new();
/// let wait: EventWait<'_> = event.wait();
/// assert_eq!(move_on_after(Duration::from_millis(5), wait).await, None); // never set
/// event.set();
/// assert_eq!(move_on_after(Duration::from_secs(5), event.wait()).await, Some(()));
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct EventWait<'a> {
    event: &'a Event,
    listener: Option<EventListener>,
    /// It has returned (for [`FusedFuture`](futures_core::future::FusedFuture)).
    done: bool,
}

impl Future for EventWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if rt::current_cancelled() {
            return Poll::Pending;
        }
        let this = &mut *self;
        let event = this.event;
        let listener = std::array::from_mut(&mut this.listener);
        let out = super::poll_until([&event.event], listener, cx, || event.is_set());
        this.done = out.is_ready();
        out
    }
}

/// Terminated once it has returned. (Polled again, it returns at once: an event stays
/// set.)
impl futures_core::future::FusedFuture for EventWait<'_> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl fmt::Debug for EventWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWait")
            .field("event", self.event)
            .finish()
    }
}
