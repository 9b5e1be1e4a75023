//! Every kind of children answers alike where the rules say the same: after a foreign
//! drop (C8) a kept handle says why its child ended; the task tree shows an open nursery
//! and its waiting children; every kind names its children and nurseries, starts with a
//! handle and has subgroups. One test body, each kind (`each_kind!`, or the two kinds'
//! own API where a test needs what only a concrete kind names).

use std::sync::{Arc, Mutex};

use futures_lite::future::poll_once;
use hatchery::diagnostics::{tree, NodeKind};
use hatchery::{nursery, sleep, CancelReason, Nursery, Polled, TaskHandle};
use hatchery_tests::{each_kind, ms, Kind, TestError, HOUR};

each_kind!(
    c8_a_kept_handle_says_a_foreign_drop_ended_its_child,
    virtual_time
);
/// C8: dropped from outside once its child waits, a nursery cancels the child without
/// waiting for it; the child's kept handle then says why it ended, on every kind.
async fn c8_a_kept_handle_says_a_foreign_drop_ended_its_child<K: Kind>() {
    let kept: Arc<Mutex<Option<TaskHandle<()>>>> = Arc::default();
    let slot = kept.clone();
    let mut fut = K::nursery(move |n| async move {
        *slot.lock().unwrap() = Some(n.spawn(async {
            sleep(HOUR).await;
            Ok::<_, TestError>(())
        }));
        sleep(HOUR).await;
        Ok(())
    });
    // The body waits; a polled child has been polled to its sleep by now, a task of the
    // executor soon will be (its first poll sees the cancellation, rule N5).
    assert!(poll_once(fut.as_mut()).await.is_none());
    sleep(ms(1)).await;
    drop(fut);
    let handle = kept.lock().unwrap().take().unwrap();
    let reason = handle.cancel_reason();
    assert!(
        matches!(&reason, Some(CancelReason::Outer(origin)) if **origin == CancelReason::Dropped),
        "on the {} kind: {reason:?}",
        K::NAME
    );
    let joined = handle.join().await;
    assert!(
        joined.unwrap_err().is_cancelled(),
        "on the {} kind",
        K::NAME
    );
}

each_kind!(
    o2_an_open_nursery_and_its_waiting_children_are_in_the_tree,
    virtual_time
);
/// O2: the task tree shows an open nursery of every kind, and its children once they
/// wait.
async fn o2_an_open_nursery_and_its_waiting_children_are_in_the_tree<K: Kind>() {
    let r = K::nursery(|n| async move {
        for _ in 0..2 {
            n.spawn(async {
                sleep(HOUR).await;
                Ok::<_, TestError>(())
            });
        }
        sleep(ms(1)).await;
        let t = tree();
        let nurseries: Vec<_> = t
            .nodes()
            .filter(|x| x.kind() == NodeKind::Nursery)
            .collect();
        assert_eq!(nurseries.len(), 1, "on the {} kind: {t}", K::NAME);
        let children = nurseries[0].children();
        let child = if K::PARALLEL {
            NodeKind::Task
        } else {
            NodeKind::Polled
        };
        assert_eq!(
            children.iter().filter(|c| c.kind() == child).count(),
            2,
            "on the {} kind: {t}",
            K::NAME
        );
        n.cancel();
        Ok(())
    })
    .await;
    assert_eq!(r, Ok(()));
}

/// The API every kind has, run on one (`$open`: how the kind opens a nursery).
macro_rules! names_on {
    ($name:ident, $open:path) => {
        /// O1, S, N7: every kind names its children and nurseries, starts with a handle
        /// and has subgroups, with the same meaning.
        #[hatchery::test(virtual_time)]
        async fn $name() {
            let r = $open(|n| async move {
                assert_eq!(n.name(), Some("outer"));
                let h = n.spawn_named("worker", async { Ok::<_, TestError>(7) });
                assert_eq!(h.name(), Some("worker"));
                let (port, server) = n
                    .start_with_handle(|ready| async move {
                        ready.started(8080u16);
                        sleep(ms(1)).await;
                        Ok(3u32)
                    })
                    .await
                    .unwrap();
                assert_eq!((port, server.join().await.unwrap()), (8080, 3));
                let group = n.subgroup();
                group.spawn(async {
                    sleep(HOUR).await;
                    Ok(0)
                });
                assert_eq!(group.len(), 1);
                group.cancel();
                group.wait().await;
                assert!(group.is_empty());
                Ok::<_, TestError>(h.join().await.unwrap())
            })
            .named("outer")
            .await;
            assert_eq!(r, Ok(7));
        }
    };
}

names_on!(o1_names_starts_and_subgroups_spawned, nursery);
names_on!(o1_names_starts_and_subgroups_polled, Polled::nursery);

/// Names the handle types used above, so that the two kinds' are visibly the same.
#[allow(dead_code)]
fn one_handle_type(a: &Nursery<TestError>, b: &Nursery<TestError, Polled<'_>>) {
    let _: TaskHandle<()> = a.spawn(async { Ok(()) });
    let _: TaskHandle<()> = b.spawn(async { Ok(()) });
}
