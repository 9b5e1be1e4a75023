//! `Event`: set wakes every waiter; waits in cancelled scopes never complete.

use std::sync::Arc;
use std::time::Duration;

use hatchery::sync::Event;
use hatchery::testing::wait_all_tasks_blocked;
use hatchery::{move_on_after, nursery};
use hatchery_tests::Counter;

/// `set` wakes every waiting task; a wait after `set` completes at once.
#[hatchery::test(virtual_time)]
async fn set_wakes_all_waiters() {
    let event = Arc::new(Event::new());
    let woke = Counter::new();
    let (e, w) = (event.clone(), woke.clone());
    nursery(|n| async move {
        for _ in 0..5 {
            let (e, w) = (e.clone(), w.clone());
            n.spawn(async move {
                e.wait().await;
                w.incr();
                Ok::<_, anyhow::Error>(())
            });
        }
        wait_all_tasks_blocked().await;
        assert_eq!(w.get(), 0);
        assert!(!e.is_set());
        e.set();
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(woke.get(), 5);
    event.wait().await;
}

/// A wait in a cancelled scope never completes, even on a set event.
#[hatchery::test(virtual_time)]
async fn cancelled_wait_does_not_complete() {
    let event = Event::new();
    assert_eq!(
        move_on_after(Duration::from_secs(1), event.wait()).await,
        None
    );
    event.set();
    let scope = hatchery::CancelScope::new();
    scope.handle().cancel();
    assert_eq!(scope.run(event.wait()).await, None);
    assert_eq!(
        move_on_after(Duration::from_secs(1), event.wait()).await,
        Some(())
    );
}

/// A fresh event set by one thread while another begins to wait on it: the waiter is
/// woken. The waiter makes its listener (the first makes the event's listener list),
/// then looks at the flag; the setter sets the flag, then looks for listeners: one must
/// see the other's write. Without a fence after the listener was made, both could read
/// the other's old value and the waiter slept for ever: Miri found it under some seeds
/// of its scheduler and weak memory (3 and 61 of 0..64), and .ci/run's miri step runs
/// this test under 32 seeds. (No x86 machine shows it, its compare-exchange being a full
/// fence: natively, a few hundred rounds, for what they are worth.)
#[test]
fn an_event_set_as_a_thread_begins_to_wait_wakes_it() {
    let rounds = if cfg!(miri) { 1 } else { 300 };
    for _ in 0..rounds {
        let event = Arc::new(Event::new());
        let waiter = {
            let event = event.clone();
            std::thread::spawn(move || futures_lite::future::block_on(event.wait()))
        };
        event.set();
        waiter.join().unwrap();
    }
}
