//! The root future runs when woken, not at every turn of compio's loop.

use std::cell::Cell;
use std::future::poll_fn;
use std::pin::pin;

#[test]
fn the_root_is_polled_only_when_woken() {
    let polls = Cell::new(0u32);
    let mut root = pin!(hatchery::nursery(|n| async move {
        // A child that turns compio's loop a thousand times while the root waits.
        n.spawn(async {
            for _ in 0..1000 {
                futures_lite::future::yield_now().await;
            }
            Ok::<_, std::io::Error>(())
        });
        Ok(())
    }));
    hatchery_compio::run(poll_fn(|cx| {
        polls.set(polls.get() + 1);
        root.as_mut().poll(cx)
    }))
    .unwrap();
    // Once at first, then when its child has ended: compio's `block_on` alone would
    // have polled it at each of the child's turns.
    assert!(
        polls.get() <= 3,
        "the root was polled {} times",
        polls.get()
    );
}
