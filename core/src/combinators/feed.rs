//! Bounded concurrency, written once for every kind of children: the body of a
//! combinator's group ([`feed`]) takes an input, makes its future and admits it as a
//! child only while fewer than `limit` run, and, for `map`, takes no more input once the
//! group is cancelled (a failure, or an enclosing scope: rule G3).

use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use futures_core::Stream;

use super::ops::Work;

/// Counts the children in flight and wakes the body when one finishes. Atomic: a spawned
/// child ends on any thread.
#[derive(Default)]
struct Gate {
    in_flight: AtomicUsize,
    /// A child failed or panicked. Set before its permit comes free: a spawning group
    /// hears of the failure only after the child's future is gone, and a freed permit
    /// must not take more input meanwhile.
    stopped: AtomicBool,
    waker: AtomicWaker,
}

impl Gate {
    fn poll_free(&self, limit: usize, cx: &mut Context<'_>) -> Poll<()> {
        if self.in_flight.load(Ordering::Acquire) < limit {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.in_flight.load(Ordering::Acquire) < limit {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// A child's place among the `limit` in flight: freed when dropped (the child finished
/// or was cancelled).
pub(crate) struct Permit(Arc<Gate>);

impl Permit {
    /// The child failed: no more input is taken.
    pub(crate) fn stop(&self) {
        self.0.stopped.store(true, Ordering::Release);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.stop();
        }
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.waker.wake();
    }
}

/// Where [`feed`] admits its children: a kind's group.
pub(crate) trait Admit<Fut> {
    /// Whether the group is cancelled.
    fn is_cancelled(&self) -> bool;

    /// Admits `fut`, the future of the input at `index`, which holds `permit` (if the
    /// work has a limit) until it ends, and [`stop`](Permit::stop)s it first if it fails.
    fn admit(&mut self, index: usize, fut: Fut, permit: Option<Permit>);
}

/// The body of a combinator's group: admits a child for every input of `work`, and
/// returns how many it admitted. With a limit (`map`), at most that many are in flight,
/// and once the group is cancelled no more input is taken: the body then produces no
/// value either (which would claim that every input was admitted), and waits to be
/// dropped. Without (`join`, `race` and the rest), every input is admitted at once, as
/// into any nursery, cancelled or not (N5): no gate, no permit.
pub(crate) async fn feed<S, F, Fut, A>(work: Work<S, F>, mut admit: A) -> usize
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    A: Admit<Fut>,
{
    let Work {
        limit,
        inputs,
        mut f,
        ..
    } = work;
    let gate = limit.map(|limit| (Arc::<Gate>::default(), limit));
    let mut inputs = pin!(inputs);
    let mut index = 0;
    loop {
        if let Some((gate, limit)) = &gate {
            poll_fn(|cx| gate.poll_free(*limit, cx)).await;
            if gate.stopped.load(Ordering::Acquire) || admit.is_cancelled() {
                // Permits came free because the work is cancelled (a child failed, or an
                // enclosing scope was cancelled, perhaps before we started): take no
                // more input, even if the group has not heard of it yet.
                return std::future::pending().await;
            }
        }
        let Some(item) = poll_fn(|cx| inputs.as_mut().poll_next(cx)).await else {
            return index;
        };
        let permit = gate.as_ref().map(|(gate, _)| {
            gate.in_flight.fetch_add(1, Ordering::AcqRel);
            Permit(gate.clone())
        });
        admit.admit(index, f(item), permit);
        index += 1;
    }
}
