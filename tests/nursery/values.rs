//! Context values (rules V1-V3): a value set once is seen by every child of every kind,
//! by the futures of every combinator, by `start`ed tasks, threads, calls back and
//! portals; a value set below never reaches above. The kit's scenarios
//! (`hatchery_conformance`, `v1_..`, `v3_..`) check the same on every binding; these go
//! through each operation.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::StreamExt;
use hatchery::from_thread::{self, blocking_portal, start_blocking_portal};
use hatchery::{
    as_completed, join, nursery, race, sleep, to_thread, ContextKey, Nursery, Polled, PolledLocal,
};
use hatchery_tests::{each_kind, ms, Kind, TestError};

static ID: ContextKey<u32> = ContextKey::new("id");
static NAME: ContextKey<String> = ContextKey::new("name");

each_kind!(v1_a_child_keeps_the_values_of_its_spawn, virtual_time);
/// V1: a child sees the values in effect where it was spawned, for its whole life; a
/// value set around its spawner afterwards (here around the body's wait, while the
/// child reads) does not reach it, on a polled child whose group polls it in the body's
/// task too.
async fn v1_a_child_keeps_the_values_of_its_spawn<K: Kind>() {
    let (unset, set) = K::nursery(|n| async move {
        let unset = n.spawn(async {
            sleep(ms(2)).await;
            Ok::<_, TestError>(ID.get())
        });
        let set = ID
            .scope(5, async {
                let set = n.spawn(async {
                    sleep(ms(2)).await;
                    Ok::<_, TestError>((ID.get(), NAME.get()))
                });
                sleep(ms(5)).await;
                set
            })
            .await;
        Ok((unset.join().await.unwrap(), set.join().await.unwrap()))
    })
    .await
    .unwrap();
    assert_eq!(unset, None, "a child saw a value set after its spawn");
    assert_eq!(set, (Some(5), None));
}

each_kind!(v1_a_large_child_keeps_the_values_of_its_spawn, virtual_time);
/// V1 for a child whose future is large enough to be kept in a box of its own: it sees
/// the values of its spawn as a small one does.
async fn v1_a_large_child_keeps_the_values_of_its_spawn<K: Kind>() {
    const ROOM: usize = 4096;
    let seen = K::nursery(|n| async move {
        let h = ID
            .scope(7, async {
                n.spawn(async {
                    let room = [3u8; ROOM];
                    sleep(ms(2)).await;
                    let sum: u32 = std::hint::black_box(&room)
                        .iter()
                        .map(|&b| u32::from(b))
                        .sum();
                    Ok::<_, TestError>((ID.get(), sum))
                })
            })
            .await;
        Ok(h.join().await.unwrap())
    })
    .await
    .unwrap();
    assert_eq!(seen, (Some(7), 3 * ROOM as u32));
}

each_kind!(v1_grandchildren_and_started_tasks_inherit, virtual_time);
/// V1: the values pass down any depth, and through `start`.
async fn v1_grandchildren_and_started_tasks_inherit<K: Kind>() {
    let seen = NAME
        .scope("outer".to_string(), async {
            K::nursery(|n| async move {
                let started = n
                    .start(|ready| async move {
                        ready.started(NAME.get());
                        Ok::<_, TestError>(())
                    })
                    .await
                    .unwrap();
                let deep = n.spawn(async move {
                    let inner = ID.scope(1, async {
                        nursery(|m: Nursery<TestError>| async move {
                            Ok(m.spawn(async { Ok((ID.get(), NAME.get())) })
                                .join()
                                .await
                                .unwrap())
                        })
                        .await
                    });
                    Ok::<_, TestError>(inner.await.unwrap())
                });
                Ok((started, deep.join().await.unwrap()))
            })
            .await
            .unwrap()
        })
        .await;
    assert_eq!(
        seen,
        (
            Some("outer".to_string()),
            (Some(1), Some("outer".to_string()))
        )
    );
}

each_kind!(v2_a_childs_value_stays_in_the_child, virtual_time);
/// V2: a value a child sets is its own and its children's: the body and a sibling
/// polled in the same task keep theirs, also after the child panicked inside its scope.
async fn v2_a_childs_value_stays_in_the_child<K: Kind>() {
    let out = ID
        .scope(1, async {
            K::nursery(|n| async move {
                n.spawn(ID.scope(2, async {
                    sleep(ms(1)).await;
                    assert_eq!(ID.get(), Some(2));
                    Ok::<_, TestError>(())
                }));
                let sibling = n.spawn(async {
                    let mut seen = Vec::new();
                    for _ in 0..3 {
                        seen.push(ID.get());
                        sleep(ms(1)).await;
                    }
                    Ok::<_, TestError>(seen)
                });
                sleep(ms(1)).await;
                let body = ID.get();
                Ok((body, sibling.join().await.unwrap()))
            })
            .await
        })
        .await
        .unwrap();
    assert_eq!(out, (Some(1), vec![Some(1); 3]));
    let panicked = K::nursery(|n| async move {
        n.spawn(ID.scope(3, async {
            sleep(ms(1)).await;
            panic!("boom");
            #[allow(unreachable_code)]
            Ok::<_, TestError>(())
        }));
        Ok::<_, TestError>(())
    });
    let caught =
        futures_lite::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(panicked)).await;
    assert!(caught.is_err());
    assert_eq!(ID.get(), None, "a panicking child left its value behind");
}

#[hatchery::test(virtual_time)]
/// V1: the futures of every combinator, polled in place or spawned, see the values of
/// the code that made them.
async fn v1_every_combinator_s_futures_inherit() {
    ID.scope(7, async {
        let get = || async { ID.get() };
        assert_eq!(join!(get(), get()), (Some(7), Some(7)));
        assert_eq!(join!(Polled: get(), get()), (Some(7), Some(7)));
        assert_eq!(hatchery::join(vec![get(), get()]).await, [Some(7); 2]);
        assert_eq!(Polled::join(vec![get(), get()]).await, [Some(7); 2]);
        assert_eq!(race(vec![get(), get()]).await, Some(7));
        let mapped = hatchery::map(2, 0..3u32, |i| async move { ID.get().map(|v| v + i) });
        assert_eq!(mapped.join().await, [Some(7), Some(8), Some(9)]);
        let firsts = as_completed(vec![get(), get()], |s| async move {
            s.collect::<Vec<_>>().await
        })
        .await;
        assert_eq!(firsts, [Some(7); 2]);
    })
    .await;
}

#[hatchery::test(virtual_time)]
/// V1: a local polled child (which need not be `Send`) inherits like any other.
async fn v1_a_local_child_inherits() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    ID.scope(4, async move {
        PolledLocal::nursery(|n| async move {
            n.spawn(async move {
                sleep(ms(1)).await;
                l.borrow_mut().push(ID.get());
                Ok::<_, TestError>(())
            });
            Ok(())
        })
        .await
        .unwrap();
    })
    .await;
    assert_eq!(*log.borrow(), [Some(4)]);
}

#[hatchery::test(backends(tokio_current, tokio_multi, smol))]
/// V3: work on a thread sees the sender's values, its calls back too; a thread's own
/// value reaches its calls back and the portal tasks it asks for.
async fn v3_threads_calls_back_and_portals() {
    ID.scope(3, async {
        let (here, back, own) = to_thread::run_sync(|| {
            let back = from_thread::run(async { ID.get() }).unwrap();
            let own = ID.sync_scope(30, || from_thread::run_sync(|| ID.get()).unwrap());
            (ID.get(), back, own)
        })
        .await;
        assert_eq!((here, back, own), (Some(3), Some(3), Some(30)));
        assert_eq!(hatchery::run_blocking(|| ID.get()).await, Some(3));
    })
    .await;
    // A portal opened under a value serves threads without one with it, and a thread
    // with its own with that one.
    ID.scope(
        6,
        blocking_portal(|portal| async move {
            let p = portal.clone();
            let plain = std::thread::spawn(move || p.call(async { ID.get() }).unwrap());
            let p = portal.clone();
            let own = std::thread::spawn(move || ID.sync_scope(60, || p.call(async { ID.get() })));
            let worker = ID.scope(
                61,
                to_thread::run_sync(move || portal.call(async { ID.get() })),
            );
            let worker = worker.await.unwrap();
            let (plain, own) = hatchery::run_blocking(move || {
                (plain.join().unwrap(), own.join().unwrap().unwrap())
            })
            .await;
            assert_eq!((plain, own, worker), (Some(6), Some(60), Some(61)));
        }),
    )
    .await;
}

#[test]
/// V3: a background portal started on a thread with a value serves with it.
fn v3_a_background_portal_serves_with_its_starters_values() {
    let rt = ID.sync_scope(9, || start_blocking_portal(hatchery_smol::run));
    let seen = rt.portal().call(async {
        sleep(Duration::from_millis(1)).await;
        ID.get()
    });
    rt.stop();
    assert_eq!(seen, Ok(Some(9)));
}
