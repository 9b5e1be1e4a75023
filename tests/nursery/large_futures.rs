//! Children whose futures are larger than 256 bytes, which hatchery keeps in a box of
//! their own (the nurseries chapter, "What a child costs, and for how long"): the rules
//! of handles (N7, H5), panics (N3) and `start` (N6) hold for them as for small ones. On
//! both kinds of nursery; `start_with_handle` on the spawning one, which alone has it.

use std::hint::black_box;

use hatchery::testing::elapsed;
use hatchery::{nursery, shield, sleep, Nursery};
use hatchery_tests::{
    catch_panic, each_kind, kinds, secs, Kind, Log, PanicOnDrop, TestError, HOUR,
};

/// Bytes a child below holds across its suspensions: far above the 256 that stay in place.
const ROOM: usize = 4096;

/// `value` after a sleep of `after`, with `ROOM` bytes held across it.
async fn large(after: std::time::Duration, value: u64) -> Result<u64, TestError> {
    let room = [value as u8; ROOM];
    sleep(after).await;
    Ok(black_box(&room).iter().map(|&b| u64::from(b)).sum::<u64>() / ROOM as u64)
}

each_kind!(n7_a_large_childs_handle_joins_and_cancels, virtual_time);
/// N7: a large child's handle gives its value, and cancels it alone; H5: the handle of
/// the cancelled one says so.
async fn n7_a_large_childs_handle_joins_and_cancels<K: Kind>() {
    assert!(std::mem::size_of_val(&large(secs(1), 0)) > ROOM);
    let r = K::nursery(|n: kinds::Nursery<K, TestError>| async move {
        let done = n.spawn(large(secs(1), 7));
        let parked = n.spawn(large(HOUR, 9));
        assert_eq!(done.join().await, Ok(7));
        parked.cancel();
        let e = parked.join().await.unwrap_err();
        assert!(e.is_cancelled() && !e.is_panicked(), "{e:?}");
        Ok(elapsed())
    })
    .await;
    assert_eq!(r, Ok(secs(1)));
}

each_kind!(n3_a_large_future_whose_drop_panics_when_cancelled);
/// N3: the drop of a large child's future, cancelled at a suspension point, panics: the
/// panic is the child's, resumed by the nursery once its siblings have finished, and its
/// handle says it panicked (H5), on both kinds.
async fn n3_a_large_future_whose_drop_panics_when_cancelled<K: Kind>() {
    let log = Log::new();
    let handle = std::sync::Arc::new(std::sync::Mutex::new(None));
    let r = catch_panic(K::nursery(|n: kinds::Nursery<K, TestError>| {
        let (log, handle) = (log.clone(), handle.clone());
        async move {
            let h = n.spawn(async {
                let room = [1u8; ROOM];
                let bomb = PanicOnDrop("large drop boom");
                sleep(HOUR).await;
                black_box((&room, &bomb));
                Ok::<_, TestError>(())
            });
            n.spawn(async move {
                shield(hatchery::checkpoint()).await;
                log.push("sibling finished");
                Ok(())
            });
            h.cancel();
            *handle.lock().unwrap() = Some(h);
            Ok(())
        }
    }))
    .await;
    assert_eq!(r.unwrap_err(), "large drop boom");
    assert_eq!(log.events(), ["sibling finished"]);
    let h: hatchery::TaskHandle<()> = handle.lock().unwrap().take().unwrap();
    let e = h.join().await.unwrap_err();
    assert!(e.is_panicked() && !e.is_cancelled(), "{e:?}");
}

each_kind!(n3_a_large_child_that_panics);
/// N3: a large child that panics in its poll: the nursery resumes the panic, and the
/// child's handle says it panicked.
async fn n3_a_large_child_that_panics<K: Kind>() {
    let handle = std::sync::Arc::new(std::sync::Mutex::new(None));
    let r = catch_panic(K::nursery(|n: kinds::Nursery<K, TestError>| {
        let handle = handle.clone();
        async move {
            *handle.lock().unwrap() = Some(n.spawn(async {
                let room = [2u8; ROOM];
                hatchery::checkpoint().await;
                if black_box(&room)[0] == 2 {
                    panic!("large boom");
                }
                Ok::<_, TestError>(())
            }));
            Ok(())
        }
    }))
    .await;
    assert_eq!(r.unwrap_err(), "large boom");
    let h: hatchery::TaskHandle<()> = handle.lock().unwrap().take().unwrap();
    assert!(h.join().await.unwrap_err().is_panicked());
}

/// N6: a large task started with a handle: the value passed to `started` comes out of
/// `start_with_handle`, its final value out of its handle, and a second one, cancelled
/// through its handle after `started`, ends cancelled.
#[hatchery::test(virtual_time)]
async fn n6_a_large_task_started_with_a_handle() {
    let r = nursery(|n: Nursery<TestError>| async move {
        let (port, server) = n
            .start_with_handle(|status| async move {
                let room = [3u8; ROOM];
                sleep(secs(1)).await;
                status.started(8080u16);
                sleep(secs(2)).await;
                Ok::<_, TestError>(black_box(&room).len())
            })
            .await
            .unwrap();
        assert_eq!((port, elapsed()), (8080, secs(1)));
        assert_eq!(server.join().await, Ok(ROOM));
        let ((), parked) = n
            .start_with_handle(|status| async move {
                let room = [4u8; ROOM];
                status.started(());
                sleep(HOUR).await;
                Ok::<_, TestError>(black_box(&room).len())
            })
            .await
            .unwrap();
        parked.cancel();
        assert!(parked.join().await.unwrap_err().is_cancelled());
        Ok(elapsed())
    })
    .await;
    assert_eq!(r, Ok(secs(3)));
}
