//! Context values (V): set once, seen by every child, thread and call back, never
//! passed up.

use hatchery::from_thread;
use hatchery::testing::elapsed;
use hatchery::{join, map, run_blocking, sleep, to_thread, ContextKey};

use crate::kinds::{Kind, Nursery};
use crate::support::{secs, Oops};

static REQUEST: ContextKey<u64> = ContextKey::new("request");

/// V1, V2: a child sees the values in effect where it was spawned, for its whole life,
/// whoever polls it; a value its parent sets later, or that it sets itself, stays where
/// it was set. The futures of `join!` and `map` inherit too.
pub async fn v1_v2_children_inherit_and_never_pass_up<K: Kind>() {
    let out = REQUEST
        .scope(1, async {
            K::nursery(|n: Nursery<K, Oops>| async move {
                // Spawned under 1, read after the body has set 3 around its own wait.
                let first = n.spawn(async {
                    sleep(secs(2)).await;
                    Ok(REQUEST.get())
                });
                // Spawned under 2; it sets 9 for itself and its own child.
                let inner = n.clone();
                let second = REQUEST
                    .scope(2, async move {
                        inner.spawn(async move {
                            let before = REQUEST.get();
                            let mine = REQUEST
                                .scope(9, async {
                                    sleep(secs(1)).await;
                                    REQUEST.get()
                                })
                                .await;
                            sleep(secs(1)).await;
                            Ok((before, mine, REQUEST.get()))
                        })
                    })
                    .await;
                let during = REQUEST
                    .scope(3, async {
                        sleep(secs(1)).await;
                        REQUEST.get()
                    })
                    .await;
                let after = REQUEST.get();
                let (first, second) = (first.join().await, second.join().await);
                Ok((
                    first.expect("the first child"),
                    second.expect("the second child"),
                    during,
                    after,
                ))
            })
            .await
        })
        .await;
    let (first, second, during, after) = out.expect("the nursery failed");
    assert_eq!(
        first,
        Some(1),
        "a child saw a value set after it was spawned"
    );
    assert_eq!(second, (Some(2), Some(9), Some(2)), "a child's values");
    assert_eq!((during, after), (Some(3), Some(1)), "the body's values");
    assert_eq!(REQUEST.get(), None, "a value outlived its scope");
    assert_eq!(elapsed(), secs(2));
    REQUEST
        .scope(4, async {
            let (a, b) = join!(async { REQUEST.get() }, async { REQUEST.get() });
            assert_eq!((a, b), (Some(4), Some(4)), "join!'s futures");
            let all = map(2, 0..3u64, |i| async move { REQUEST.get().map(|r| r + i) })
                .join()
                .await;
            assert_eq!(all, [Some(4), Some(5), Some(6)], "map's futures");
        })
        .await;
}

/// V3: work sent to a thread sees the values of the task that sent it, and so do its
/// calls back, while a value the thread sets itself reaches its own calls back.
pub async fn v3_values_reach_threads_and_calls_back() {
    REQUEST
        .scope(4, async {
            let on_thread = to_thread::run_sync(|| {
                let here = REQUEST.get();
                let back = from_thread::run(async { REQUEST.get() }).expect("the call back");
                let set = REQUEST.sync_scope(8, || {
                    from_thread::run(async { REQUEST.get() }).expect("the call back")
                });
                (here, back, set, REQUEST.get())
            })
            .await;
            assert_eq!(
                on_thread,
                (Some(4), Some(4), Some(8), Some(4)),
                "on a thread"
            );
            assert_eq!(
                run_blocking(|| REQUEST.get()).await,
                Some(4),
                "run_blocking"
            );
        })
        .await;
    assert_eq!(run_blocking(|| REQUEST.get()).await, None);
}
