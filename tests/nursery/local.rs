//! Local children (`Local::nursery`): tasks of the thread's local executor that need not
//! be `Send`, under the rules of every nursery, on tokio's `LocalSet`, smol's
//! `LocalExecutor`, and the simulator (its own tasks, under 100 seeds).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use hatchery::diagnostics::tree;
use hatchery::{
    finally, move_on_after, sleep, CancelReason, ContextKey, Local, Nursery, NurseryError,
};
use hatchery_tests::{ms, TestError, HOUR};

/// A local nursery's handle.
type N = Nursery<TestError, Local>;

#[hatchery::test(virtual_time, backends(tokio_local, smol_local, sim))]
/// N1, N8: children are tasks of the local executor, run concurrently with the body on
/// its thread; the nursery returns once every one, grandchildren included, is done.
async fn n1_n8_local_children_are_tasks_and_are_waited_for() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let here = std::thread::current().id();
    let out = Local::nursery(|n: N| async move {
        for i in 1..=3u64 {
            let (l, n2) = (l.clone(), n.clone());
            n.spawn(async move {
                assert_eq!(std::thread::current().id(), here);
                sleep(ms(i)).await;
                l.borrow_mut().push(i);
                n2.spawn(async move {
                    sleep(ms(10)).await;
                    l.borrow_mut().push(10 * i);
                    Ok(())
                });
                Ok(())
            });
        }
        // The children run while the body waits (N8: never inline in `spawn`).
        assert!(l.borrow().is_empty());
        Ok("body")
    })
    .await;
    assert_eq!(out, Ok("body"));
    assert_eq!(*log.borrow(), [1, 2, 3, 10, 20, 30]);
}

#[hatchery::test(virtual_time, backends(tokio_local, smol_local, sim))]
/// N2: the first failure cancels the rest (their shielded cleanup finishes); every
/// error comes out, in order.
async fn n2_a_local_failure_cancels_the_rest() {
    let cleaned = Rc::new(Cell::new(false));
    let c = cleaned.clone();
    let out = Local::nursery(|n: N| async move {
        n.spawn(finally(sleep(HOUR), async move { c.set(true) }).then_ok());
        n.spawn(async {
            sleep(ms(5)).await;
            Err::<(), _>(TestError("first"))
        });
        sleep(HOUR).await;
        Ok(())
    })
    .await;
    assert_eq!(out, Err(NurseryError::Failed(vec![TestError("first")])));
    assert!(cleaned.get());
    assert_eq!(hatchery::testing::elapsed(), ms(5));
}

/// `Ok(())` of a future's `()`.
trait ThenOk: std::future::Future<Output = ()> + Sized {
    async fn then_ok(self) -> Result<(), TestError> {
        self.await;
        Ok(())
    }
}
impl<F: std::future::Future<Output = ()>> ThenOk for F {}

#[hatchery::test(virtual_time, backends(tokio_local, smol_local, sim))]
/// N3: a local child's panic is resumed once every child has finished.
async fn n3_a_local_panic_is_resumed_after_all() {
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    let fut = Local::nursery(|n: N| async move {
        n.spawn(async move {
            sleep(ms(1)).await;
            panic!("local boom");
            #[allow(unreachable_code)]
            Ok(())
        });
        n.spawn(shield_then(d));
        Ok(())
    });
    let caught = futures_lite::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(fut)).await;
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"local boom"));
    assert!(
        done.get(),
        "the panic was resumed before a shielded sibling finished"
    );
}

async fn shield_then(done: Rc<Cell<bool>>) -> Result<(), TestError> {
    hatchery::shield(sleep(ms(5))).await;
    done.set(true);
    Ok(())
}

#[hatchery::test(virtual_time, backends(tokio_local, smol_local, sim))]
/// C2, N6, H5, H6: an enclosing deadline cancels local children; `start` hands a value
/// back; a handle joins and cancels one child.
async fn c2_n6_local_start_handles_and_an_enclosing_deadline() {
    let out = move_on_after(
        ms(50),
        Local::nursery(|n: N| async move {
            let port = n
                .start(|ready| async move {
                    let state = Rc::new(8080u16); // not `Send`
                    ready.started(*state);
                    sleep(HOUR).await;
                    Ok(())
                })
                .await
                .unwrap();
            let one = n.spawn(async { Ok(Rc::new(1)) });
            let stuck = n.spawn(async {
                sleep(HOUR).await;
                Ok(Rc::new(0))
            });
            assert_eq!(*one.join().await.unwrap(), 1);
            stuck.cancel();
            assert!(stuck.join().await.unwrap_err().is_cancelled());
            assert_eq!(port, 8080);
            sleep(HOUR).await;
            Ok(())
        }),
    )
    .await;
    assert_eq!(out, None);
    assert_eq!(hatchery::testing::elapsed(), ms(50));
}

#[hatchery::test(virtual_time, backends(tokio_local, smol_local, sim))]
/// C8, O2, V1: dropped from outside, a local nursery cancels its children (a kept handle
/// says why); an open one and its waiting children are in the task tree; children
/// inherit the context values of their spawn.
async fn c8_o2_v1_local_drop_tree_and_values() {
    static ID: ContextKey<u32> = ContextKey::new("id");
    let kept = Rc::new(RefCell::new(None));
    let k = kept.clone();
    let mut fut = Box::pin(Local::nursery(|n: N| async move {
        let h = ID.scope(3, async {
            n.spawn_named("waiter", async {
                assert_eq!(ID.get(), Some(3));
                sleep(HOUR).await;
                Ok(())
            })
        });
        *k.borrow_mut() = Some(h.await);
        sleep(HOUR).await;
        Ok(())
    }));
    assert!(futures_lite::future::poll_once(fut.as_mut())
        .await
        .is_none());
    sleep(ms(1)).await;
    let shown = tree().to_string();
    assert!(shown.contains("waiter"), "{shown}");
    drop(fut);
    let handle = kept.borrow_mut().take().unwrap();
    assert!(
        matches!(handle.cancel_reason(), Some(CancelReason::Outer(o)) if *o == CancelReason::Dropped)
    );
    assert!(handle.join().await.unwrap_err().is_cancelled());
}

#[test]
/// A local nursery opened where no local runtime is installed is a clear panic, before
/// any child is spawned.
fn a_local_child_without_a_local_runtime_says_what_to_do() {
    let caught = std::panic::catch_unwind(|| {
        hatchery_smol::run(Local::nursery(|n: N| async move {
            n.spawn(async { Ok(()) });
            Ok(())
        }))
    });
    let payload = caught.unwrap_err();
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(
        message.contains("no local runtime on this thread"),
        "{message}"
    );
    assert!(message.contains("run_local"), "{message}");
}
