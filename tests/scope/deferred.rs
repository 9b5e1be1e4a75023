//! Scopes whose node is deferred: a `move_on_after` or `fail_after` (no handle, no
//! shield) polled by its task's runner runs its body in its parent's scope until the
//! body asks for its context, and its node is made then, with its deadline (the
//! performance chapter, "a scope's node deferred"). These are the paths off the deferred
//! one, with bodies that never ask (foreign futures) and bodies that ask later; the
//! rest of the scope tests run through deferred scopes too.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::future;
use hatchery::testing::elapsed;
use hatchery::{
    current_effective_deadline, fail_after, move_on_after, now, nursery, sleep, CancelHandle,
    CancelScope, Deadline,
};
use hatchery_tests::{secs, TestError, HOUR};

/// A foreign future that never asks for its hatchery context: pending `pends` times (it
/// wakes itself each time), then ready, or pending for good with `None`. On its first
/// poll it cancels `cancel`, if given. Records its drop.
struct Foreign {
    pends: Option<usize>,
    cancel: Option<CancelHandle>,
    dropped: Arc<AtomicBool>,
}

impl Foreign {
    fn new(pends: Option<usize>) -> (Foreign, Arc<AtomicBool>) {
        let dropped = Arc::new(AtomicBool::new(false));
        let foreign = Foreign {
            pends,
            cancel: None,
            dropped: dropped.clone(),
        };
        (foreign, dropped)
    }
}

impl Future for Foreign {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(handle) = self.cancel.take() {
            handle.cancel();
        }
        match &mut self.pends {
            Some(0) => Poll::Ready(()),
            Some(n) => {
                *n -= 1;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// C4: a deferred scope whose body never asks for its context is woken at its deadline,
/// drops the body there and catches (`move_on_after`), or fails (`fail_after`); one whose
/// body finishes first returns its value.
#[hatchery::test(virtual_time)]
async fn c4_a_deferred_scope_drops_a_foreign_body_at_its_deadline() {
    let (body, dropped) = Foreign::new(None);
    assert_eq!(move_on_after(secs(5), body).await, None);
    assert_eq!(elapsed(), secs(5));
    assert!(dropped.load(Ordering::SeqCst));
    let (body, _) = Foreign::new(None);
    assert!(fail_after(secs(1), body).await.is_err());
    assert_eq!(elapsed(), secs(6));
    let (body, dropped) = Foreign::new(Some(3));
    assert_eq!(move_on_after(secs(1), body).await, Some(()));
    assert_eq!(elapsed(), secs(6));
    assert!(dropped.load(Ordering::SeqCst));
}

/// C7, D2: a body that asks for its context only after polls that did not gets the
/// scope's node then, with the deadline counted from the entry: the effective deadline,
/// a nested scope's, and the cancellation at that deadline are what they would be had
/// the node been made at the entry.
#[hatchery::test(virtual_time)]
async fn c7_d2_a_deferred_scopes_node_is_made_with_its_deadline() {
    let entered = now();
    let out = move_on_after(secs(10), async {
        Foreign::new(Some(2)).0.await; // two polls that ask for nothing
        assert_eq!(
            current_effective_deadline(),
            Deadline::At(entered + secs(10))
        );
        let nested = move_on_after(HOUR, async { current_effective_deadline() }).await;
        assert_eq!(nested, Some(Deadline::At(entered + secs(10))));
        sleep(secs(4)).await;
        sleep(HOUR).await;
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(elapsed(), secs(10));
}

/// C3: a deferred scope whose parent is cancelled during its body's poll (by the body
/// itself) drops the body, and the parent, the outermost cancelled scope, catches.
#[hatchery::test(virtual_time)]
async fn c3_a_deferred_scope_whose_parent_is_cancelled_in_its_body_leaves_it_to_the_parent() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let (mut body, dropped) = Foreign::new(None);
    body.cancel = Some(handle.clone());
    let out = scope
        .run(async {
            move_on_after(HOUR, body).await;
            unreachable!("the parent catches");
        })
        .await;
    assert_eq!(out, None);
    assert!(handle.cancelled_caught());
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(elapsed(), secs(0));
}

/// C2, C3: the same when the parent is cancelled from another task while the body is
/// suspended: the deferred scope sees it at its next poll, before its body's.
#[hatchery::test(virtual_time)]
async fn c2_c3_a_deferred_scope_whose_parent_is_cancelled_from_elsewhere_leaves_it_to_the_parent() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let (body, dropped) = Foreign::new(None);
    let out = nursery(|n| async move {
        n.spawn(async move {
            sleep(secs(1)).await;
            handle.cancel();
            Ok::<_, TestError>(())
        });
        Ok::<_, TestError>(scope.run(move_on_after(HOUR, body)).await)
    })
    .await
    .unwrap();
    assert_eq!(out, None);
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(elapsed(), secs(1));
}

/// K2: a deferred scope future reached by its first scope's cancellation while that
/// scope ran (polled after it, in it) and kept past it returns as cancelled, as one
/// entered with its node does.
#[hatchery::test(virtual_time)]
async fn k2_a_kept_deferred_scope_reached_by_the_cancellation_returns_cancelled() {
    let mut op = pin!(move_on_after(HOUR, std::future::pending::<()>()));
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run(async {
            assert_eq!(future::poll_once(&mut op).await, None); // deferred, pending
            handle.cancel();
            assert_eq!(future::poll_once(&mut op).await, None); // reached
            sleep(HOUR).await;
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(op.await, None);
    assert_eq!(elapsed(), secs(0));
}

/// K: a deferred scope future polled once in a scope that then finishes, not cancelled,
/// goes on under its own deadline wherever it is awaited.
#[hatchery::test(virtual_time)]
async fn k_a_kept_deferred_scope_goes_on_under_its_own_deadline() {
    let mut op = pin!(move_on_after(secs(5), std::future::pending::<()>()));
    let first = move_on_after(secs(1), future::poll_once(&mut op)).await;
    assert_eq!(first, Some(None));
    assert_eq!(op.await, None);
    assert_eq!(elapsed(), secs(5));
}

/// A body that never asks for its context: pending once (it wakes itself), so that its
/// deferred scope has registered its deadline, then panics.
#[derive(Default)]
struct Panics {
    pended: bool,
}

impl Future for Panics {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.pended {
            self.pended = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        panic!("the body panics");
    }
}

/// C7, D11: a deferred scope whose body panics lets the panic through and leaves nothing
/// of its deferral behind: after the panic is caught in the same task, the effective
/// deadline around the code is what it was, the next deferred node (a fixed group's,
/// which takes no deadline, or a scope's, which takes its own) is made with what it
/// should be, and the panicked scope's deadline, dead, cancels nothing.
#[hatchery::test(virtual_time)]
async fn c7_d11_a_deferred_scope_whose_body_panics_leaves_no_deadline_behind() {
    let caught = future::FutureExt::catch_unwind(AssertUnwindSafe(move_on_after(
        secs(5),
        Panics::default(),
    )))
    .await;
    assert!(caught.is_err());
    assert_eq!(current_effective_deadline(), Deadline::Never);
    // A fixed group's node, made when its futures ask for their context: no deadline.
    let ((), deadline) =
        hatchery::join!(Polled: sleep(secs(10)), async { current_effective_deadline() });
    assert_eq!(deadline, Deadline::Never);
    assert_eq!(elapsed(), secs(10));
    // A scope's node, made after a panic in a nested deferral: its own deadline.
    let entered = now();
    let out = move_on_after(secs(3), async {
        let caught = future::FutureExt::catch_unwind(AssertUnwindSafe(move_on_after(
            secs(1),
            Panics::default(),
        )))
        .await;
        assert!(caught.is_err());
        current_effective_deadline()
    })
    .await;
    assert_eq!(out, Some(Deadline::At(entered + secs(3))));
    sleep(secs(20)).await;
    assert_eq!(elapsed(), secs(30));
}

/// C7, C4: deferrals nested both ways: a fixed group (`join!(Polled: ..)`) inside a
/// deferred scope, whose futures ask for their context, gets its node under the scope's,
/// which is made first with the scope's deadline; a deferred scope inside a fixed group
/// takes its own deadline, and the group's other futures see none.
#[hatchery::test(virtual_time)]
async fn c7_c4_deferrals_nested_both_ways_keep_each_deadline_with_its_scope() {
    // A group inside a scope: the scope's deadline reaches into the group.
    let entered = now();
    let out = move_on_after(secs(5), async {
        let ((), deadline) =
            hatchery::join!(Polled: async {}, async { current_effective_deadline() });
        assert_eq!(deadline, Deadline::At(entered + secs(5)));
        hatchery::join!(Polled: sleep(secs(10)), sleep(secs(20)));
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(elapsed(), secs(5));
    // A scope inside a group: its deadline is its own, and not its siblings'.
    let entered = now();
    let (inner, sibling) = hatchery::join!(Polled:
        move_on_after(secs(2), async {
            let deadline = current_effective_deadline();
            assert_eq!(deadline, Deadline::At(entered + secs(2)));
            sleep(secs(10)).await;
        }),
        async {
            sleep(secs(1)).await;
            current_effective_deadline()
        },
    );
    assert_eq!(inner, None);
    assert_eq!(sibling, Deadline::Never);
    assert_eq!(elapsed(), secs(7));
}

/// C5, D8: deferred `fail_after`s around bodies that never ask for their context, nested in
/// deferred scopes: the one whose own deadline passes fails; one inside a scope whose
/// deadline passes first does not, and that scope catches; of two whose deadlines pass
/// at the same instant, the outer one fails.
#[hatchery::test(virtual_time)]
async fn c5_d8_a_deferred_fail_after_reports_only_its_own_deadline() {
    let (body, dropped) = Foreign::new(None);
    let out = move_on_after(secs(5), fail_after(secs(1), body)).await;
    assert!(matches!(out, Some(Err(_))), "its own deadline: it fails");
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(elapsed(), secs(1));
    let (body, dropped) = Foreign::new(None);
    let out = move_on_after(secs(1), fail_after(secs(5), body)).await;
    assert!(
        out.is_none(),
        "the enclosing deadline: the enclosing scope catches"
    );
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(elapsed(), secs(2));
    let (body, _) = Foreign::new(None);
    let out = fail_after(secs(1), fail_after(secs(1), body)).await;
    assert!(out.is_err(), "the same instant: the outermost's (D8)");
    assert_eq!(elapsed(), secs(3));
}
