//! A thread that exits while its thread-locals hold an executor with a hatchery task
//! left in it: the executor drops the task while hatchery's own thread-local context is
//! already gone, and that must not abort the process.
//!
//! Plain `#[test]`s that re-run themselves in a child process, as an abort would end the
//! whole test binary.

mod tls_abort {
    use std::cell::RefCell;
    use std::sync::Arc;

    use async_executor::Executor;
    use futures_lite::future;
    use hatchery::{nursery, shield, Nursery};
    use hatchery_tests::TestError;

    thread_local! {
        static EX: RefCell<Option<Arc<Executor<'static>>>> = const { RefCell::new(None) };
    }

    const CHILD_ENV: &str = "HATCHERY_TLS_ABORT_CHILD";

    fn child() {
        std::thread::spawn(|| {
            let ex = Arc::new(Executor::new());
            // Registered first: destroyed after hatchery's own thread-local.
            EX.with(|e| *e.borrow_mut() = Some(ex.clone()));
            future::block_on(ex.run(hatchery_smol::enter(&ex, async {
                let fut = nursery(|n: Nursery<TestError>| async move {
                    n.spawn(async {
                        shield(std::future::pending::<()>()).await;
                        Ok(())
                    });
                    std::future::pending::<()>().await;
                    Ok(())
                });
                // One poll, then dropped from outside (C8): the child stays parked in
                // its shield, in the executor.
                assert!(future::poll_once(fut).await.is_none());
            })));
            drop(ex); // the thread-local keeps the executor and the child task
        })
        .join()
        .unwrap();
    }

    #[test]
    fn executor_in_a_thread_local_drops_a_task_at_thread_exit() {
        hatchery_tests::in_child_process(
            "exit::tls_abort::executor_in_a_thread_local_drops_a_task_at_thread_exit",
            CHILD_ENV,
            child,
        );
    }
}
