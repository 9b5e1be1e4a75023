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
