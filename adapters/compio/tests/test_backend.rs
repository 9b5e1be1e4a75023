//! `#[hatchery::test]`'s `compio` backend: the test's body runs on compio's runtime
//! (`hatchery_compio::run_local`), where `Local` children, which need not be `Send`, are
//! compio tasks on the test's thread.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use hatchery::{sleep, Local, Nursery, NurseryError};

/// A local nursery's handle.
type N = Nursery<&'static str, Local>;

#[hatchery::test(virtual_time, backends(compio))]
/// The body runs on the backend named `compio`, on virtual time, and its local children
/// share an `Rc` and run on the test's thread while the body waits.
async fn local_children_run_on_the_compio_backend() {
    assert_eq!(hatchery::testing::backend(), Some("compio"));
    let log = Rc::new(RefCell::new(Vec::new()));
    let here = std::thread::current().id();
    let l = log.clone();
    let out = Local::nursery(|n: N| async move {
        for i in [3u64, 1, 2] {
            let l = l.clone();
            n.spawn(async move {
                assert_eq!(std::thread::current().id(), here);
                sleep(Duration::from_secs(i)).await;
                l.borrow_mut().push(i);
                Ok(())
            });
        }
        assert!(l.borrow().is_empty());
        Ok("body")
    })
    .await;
    assert_eq!(out, Ok("body"));
    assert_eq!(*log.borrow(), [1, 2, 3]);
    assert_eq!(hatchery::testing::elapsed(), Duration::from_secs(3));
}

#[hatchery::test(virtual_time, backends(compio))]
/// A local child's failure cancels its sibling, which an hour's sleep would otherwise
/// keep: the nursery ends at the failure's virtual time with its error.
async fn a_local_failure_cancels_the_rest_on_compio() {
    let out = Local::nursery(|n: N| async move {
        n.spawn(async {
            sleep(Duration::from_secs(3600)).await;
            Ok(())
        });
        n.spawn(async {
            sleep(Duration::from_millis(5)).await;
            Err::<(), _>("first")
        });
        Ok(())
    })
    .await;
    assert_eq!(out, Err(NurseryError::Failed(vec!["first"])));
    assert_eq!(hatchery::testing::elapsed(), Duration::from_millis(5));
}
