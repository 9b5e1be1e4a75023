//! How a task keeps its deadlines: the scopes and sleeps it polls share one timer of the
//! executor, armed for the earliest deadline; one polled with another waker (a combinator
//! that polls its futures with wakers of its own), moved to another task, or beyond what
//! the task keeps, still ends on time (rules D6, D11).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_lite::future;
use hatchery::testing::elapsed;
use hatchery::{checkpoint, move_on_after, nursery, sleep, sync::Event};
use hatchery_tests::{secs, TestError, HOUR};

/// Polls its future with a waker of its own, which wakes the task's: as
/// `FuturesUnordered` or `futures-concurrency` do. A scope inside is not polled with its
/// task's waker, so the task's timer may not be polled when it fires: the scope arms a
/// timer of its own.
struct OwnWaker<F> {
    fut: Pin<Box<F>>,
}

struct Forward(Mutex<Option<Waker>>);

impl Wake for Forward {
    fn wake(self: Arc<Self>) {
        if let Some(w) = self.0.lock().unwrap().take() {
            w.wake();
        }
    }
}

impl<F: Future> Future for OwnWaker<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let forward = Arc::new(Forward(Mutex::new(Some(cx.waker().clone()))));
        let waker = Waker::from(forward);
        self.fut.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

fn own_waker<F: Future>(fut: F) -> OwnWaker<F> {
    OwnWaker { fut: Box::pin(fut) }
}

/// A timeout and a sleep polled with another waker than the task's end on time, on the
/// virtual clock.
#[hatchery::test(virtual_time)]
async fn a_scope_polled_with_another_waker_times_out() {
    let out = own_waker(move_on_after(secs(5), std::future::pending::<()>())).await;
    assert_eq!(out, None);
    assert_eq!(elapsed(), secs(5));
    own_waker(sleep(secs(3))).await;
    assert_eq!(elapsed(), secs(8));
    // Around a sleep of the task's own: each ends at its own time.
    let out = own_waker(move_on_after(secs(2), sleep(secs(1)))).await;
    assert_eq!(out, Some(()));
    assert_eq!(elapsed(), secs(9));
}

/// The same on the executor's real timers.
#[hatchery::test]
async fn a_scope_polled_with_another_waker_times_out_on_real_time() {
    let start = hatchery::now();
    let out = own_waker(move_on_after(
        Duration::from_millis(20),
        std::future::pending::<()>(),
    ))
    .await;
    assert_eq!(out, None);
    assert!(hatchery::now() - start >= Duration::from_millis(20));
}

/// A scope first polled in one task, then moved to another and awaited there, ends at its
/// deadline: it arms it where it is polled now.
#[hatchery::test(virtual_time)]
async fn a_scope_moved_to_another_task_times_out_there() {
    let (tx, rx) = hatchery::memory_stream(1);
    let out = nursery(|n| async move {
        let waiter = n.spawn(async move {
            let op: Pin<Box<dyn Future<Output = Option<()>> + Send>> = rx.recv().await.unwrap();
            Ok::<_, TestError>((op.await, elapsed()))
        });
        let mut op: Pin<Box<dyn Future<Output = Option<()>> + Send>> =
            Box::pin(move_on_after(secs(10), std::future::pending::<()>()));
        // Entered here, its deadline registered in this task.
        assert_eq!(future::poll_once(&mut op).await, None);
        sleep(secs(4)).await;
        tx.send(op).await.unwrap();
        Ok::<_, TestError>(waiter.join().await.unwrap())
    })
    .await
    .unwrap();
    assert_eq!(out, (None, secs(10)));
}

/// The same for a sleep.
#[hatchery::test(virtual_time)]
async fn a_sleep_moved_to_another_task_ends_there() {
    let (tx, rx) = hatchery::memory_stream(1);
    let at = nursery(|n| async move {
        let waiter = n.spawn(async move {
            let nap: Pin<Box<hatchery::futures::Sleep>> = rx.recv().await.unwrap();
            nap.await;
            Ok::<_, TestError>(elapsed())
        });
        let mut nap = Box::pin(sleep(secs(10)));
        assert_eq!(future::poll_once(&mut nap).await, None);
        sleep(secs(4)).await;
        tx.send(nap).await.unwrap();
        Ok::<_, TestError>(waiter.join().await.unwrap())
    })
    .await
    .unwrap();
    assert_eq!(at, secs(10));
}

/// Records the virtual time of every poll of the wrapped future.
struct RecordPolls<F> {
    at: Arc<Mutex<Vec<Duration>>>,
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for RecordPolls<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.at.lock().unwrap().push(elapsed());
        self.fut.as_mut().poll(cx)
    }
}

/// D11: a finished scope's deadline wakes nothing, also while a later deadline of the
/// same task still waits (the task's timer, armed for the earlier one, is moved to the
/// later one): the virtual clock does not jump to it.
#[hatchery::test(virtual_time)]
async fn d11_a_finished_inner_deadline_wakes_nothing_while_an_outer_one_waits() {
    let event = Arc::new(Event::new());
    let polls = Arc::new(Mutex::new(Vec::new()));
    let (e, p) = (event.clone(), polls.clone());
    let r = nursery(|n| async move {
        n.spawn(async move {
            sleep(secs(10)).await;
            e.set();
            Ok::<_, TestError>(())
        });
        let out = move_on_after(HOUR, async {
            // The task's timer is armed for 1 s while this suspends.
            assert_eq!(move_on_after(secs(1), checkpoint()).await, Some(()));
            RecordPolls {
                at: p,
                fut: Box::pin(event.wait()),
            }
            .await;
        })
        .await;
        assert_eq!(out, Some(()));
        Ok(())
    })
    .await;
    assert_eq!(r, Ok(()));
    let at = polls.lock().unwrap().clone();
    assert!(
        at.iter().all(|t| *t == Duration::ZERO || *t == secs(10)),
        "polled only at 0 s and 10 s: {at:?}"
    );
    assert_eq!(elapsed(), secs(10));
}

/// More sleeps polled at once by one task, with its own waker, than it keeps deadlines
/// for: each ends at its own time.
#[hatchery::test(virtual_time)]
async fn hundreds_of_sleeps_in_one_task_each_end_on_time() {
    const N: u64 = 600;
    let mut naps: Vec<_> = (0..N).map(|i| Some(Box::pin(sleep(secs(N - i))))).collect();
    let mut ended = Vec::new();
    std::future::poll_fn(|cx| {
        for (i, nap) in naps.iter_mut().enumerate() {
            if let Some(n) = nap {
                if n.as_mut().poll(cx).is_ready() {
                    *nap = None;
                    ended.push((i as u64, elapsed()));
                }
            }
        }
        if naps.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    assert_eq!(ended.len() as u64, N);
    for (i, at) in ended {
        assert_eq!(at, secs(N - i), "sleep {i}");
    }
    assert_eq!(elapsed(), secs(N));
}

/// Timeouts in a loop, one after another in one task: each fires at its own deadline,
/// also when the previous one left the task's timer armed for a later instant.
#[hatchery::test(virtual_time)]
async fn timeouts_in_a_loop_each_fire_at_their_own_deadline() {
    for round in 1..=4u64 {
        assert_eq!(move_on_after(HOUR, checkpoint()).await, Some(()));
        let start = hatchery::now();
        assert_eq!(move_on_after(secs(round), sleep(HOUR)).await, None);
        assert_eq!(hatchery::now() - start, secs(round));
    }
    assert_eq!(elapsed(), secs(1 + 2 + 3 + 4));
}

/// The same on real time, where the task's timer is left armed for the first (passed
/// over) instant and fires early: the next timeout still ends at its own deadline, not
/// before.
#[hatchery::test]
async fn an_early_task_timer_does_not_end_a_later_timeout() {
    assert_eq!(
        move_on_after(Duration::from_millis(5), checkpoint()).await,
        Some(())
    );
    let start = hatchery::now();
    let out = move_on_after(Duration::from_millis(30), async {
        sleep(Duration::from_millis(60)).await;
    })
    .await;
    assert_eq!(out, None);
    let waited = hatchery::now() - start;
    assert!(waited >= Duration::from_millis(30), "{waited:?}");
}

/// Runs `body` in a child task, which keeps its deadlines apart from the caller's: the
/// caller's timeout around it is a guard that does not depend on the child's timer.
/// `None` if the guard fired.
async fn in_a_child<T, F>(body: F) -> Option<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    move_on_after(secs(20), async {
        nursery(|n| async move {
            let child = n.spawn(async move { Ok::<_, TestError>(body.await) });
            Ok::<_, TestError>(child.join().await.unwrap())
        })
        .await
        .unwrap()
    })
    .await
}

/// A deadline earlier than the one the task's timer is armed for moves the timer: the
/// outer timeout arms it for an hour at the first suspension, the inner one, entered at
/// the next poll, fires after 20 ms all the same (on the executor's real timers, where
/// the timer is otherwise moved lazily). The same for a sleep, and for a deadline moved
/// earlier through a handle. A lost re-arm fails here by the caller's guard, not by
/// hanging.
#[hatchery::test]
async fn an_earlier_deadline_moves_the_tasks_timer() {
    let start = hatchery::now();
    let out = in_a_child(move_on_after(HOUR, async {
        checkpoint().await;
        move_on_after(Duration::from_millis(20), std::future::pending::<()>()).await
    }))
    .await;
    assert_eq!(out, Some(Some(None)), "the inner timeout fired on time");
    let out = in_a_child(move_on_after(HOUR, async {
        checkpoint().await;
        sleep(Duration::from_millis(20)).await;
    }))
    .await;
    assert_eq!(out, Some(Some(())), "the sleep ended on time");
    let out = in_a_child(async {
        let scope = hatchery::CancelScope::new().with_deadline(hatchery::now() + HOUR);
        let handle = scope.handle();
        scope
            .run(async move {
                checkpoint().await;
                handle.set_deadline(hatchery::now() + Duration::from_millis(20));
                std::future::pending::<()>().await
            })
            .await
    })
    .await;
    assert_eq!(out, Some(None), "the scope's moved deadline fired on time");
    assert!(hatchery::now() - start < secs(10));
}

/// D11 on the executor's real timers: a task whose timeout finished, and that then waits
/// outside any deadline, is not woken when that timeout's instant comes (its timer, left
/// armed, wakes nobody).
#[hatchery::test]
async fn d11_a_finished_deadline_does_not_wake_its_task_on_real_time() {
    let event = Arc::new(Event::new());
    let polls = Arc::new(Mutex::new(Vec::new()));
    let (e, p) = (event.clone(), polls.clone());
    let r = nursery(|n| async move {
        n.spawn(async move {
            sleep(Duration::from_millis(200)).await;
            e.set();
            Ok::<_, TestError>(())
        });
        let out = in_a_child(async move {
            assert_eq!(
                move_on_after(Duration::from_millis(20), checkpoint()).await,
                Some(())
            );
            RecordPolls {
                at: p,
                fut: Box::pin(event.wait()),
            }
            .await;
        })
        .await;
        assert_eq!(out, Some(()));
        Ok(())
    })
    .await;
    assert_eq!(r, Ok(()));
    assert_eq!(
        polls.lock().unwrap().len(),
        2,
        "polled when it started waiting and when the event was set"
    );
}
