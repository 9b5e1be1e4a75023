//! Cancel reasons: every cancellation says why (an explicit cancel with its message and
//! place, a deadline, a task's failure naming where that task was spawned, the nursery's
//! own cancel, an enclosing scope, a drop from outside hatchery), readable from the
//! handles after the work has ended, and shown by `Debug` and `Display`.

use std::pin::pin;

use futures_lite::future::poll_once;
use hatchery::{
    checkpoint, move_on_after, nursery, shield, sleep, CancelReason, CancelScope, Nursery,
};
use hatchery_tests::{catch_panic, secs, TestError, HOUR};

/// The line of the caller, for comparing with a reason's location.
#[track_caller]
fn here() -> u32 {
    std::panic::Location::caller().line()
}

/// An explicit cancel names the line that called it and keeps its message; the reason
/// outlives the scope, and `Debug` and `Display` show it.
#[hatchery::test(virtual_time)]
async fn explicit_cancel_names_its_place_and_message() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let mut line = 0;
    let out = scope
        .run(async {
            line = here() + 1;
            handle.cancel_with("shutting down");
            sleep(HOUR).await;
        })
        .await;
    assert_eq!(out, None);
    let reason = handle.cancel_reason().expect("cancelled");
    let CancelReason::Explicit { at, message, .. } = &reason else {
        panic!("{reason:?}")
    };
    assert_eq!((at.file(), at.line()), (file!(), line));
    assert_eq!(message.as_deref(), Some("shutting down"));
    assert_eq!(reason.message(), Some("shutting down"));
    assert_eq!(
        reason.to_string(),
        format!(
            "cancelled at {}:{}:{}: shutting down",
            file!(),
            line,
            at.column()
        )
    );
    let debug = format!("{handle:?}");
    assert!(debug.contains("cancel_reason: Some(Explicit"), "{debug}");
    assert!(debug.contains("shutting down"), "{debug}");

    // Without a message.
    let scope = CancelScope::new();
    let handle = scope.handle();
    let line = here() + 1;
    handle.cancel();
    scope.run(checkpoint()).await;
    let reason = handle.cancel_reason().unwrap();
    assert!(
        matches!(reason, CancelReason::Explicit { at, message: None, .. } if at.line() == line)
    );
    assert_eq!(reason.message(), None);
}

/// A scope that was not cancelled has no reason, before, during and after its run.
#[hatchery::test(virtual_time)]
async fn no_cancellation_no_reason() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    assert_eq!(handle.cancel_reason(), None);
    scope
        .run(async {
            sleep(secs(1)).await;
            assert_eq!(handle.cancel_reason(), None);
        })
        .await;
    assert_eq!(handle.cancel_reason(), None);
    assert!(format!("{handle:?}").contains("cancel_reason: None"));
}

/// A deadline says `Deadline`; the scopes inside say `Outer(Deadline)`; the first reason
/// sticks (a later explicit cancel does not replace it).
#[hatchery::test(virtual_time)]
async fn deadline_and_first_reason_sticks() {
    let outer = CancelScope::new().with_timeout(secs(5));
    let inner = CancelScope::new();
    let (outer_h, inner_h) = (outer.handle(), inner.handle());
    outer.run(inner.run(sleep(HOUR))).await;
    assert_eq!(outer_h.cancel_reason(), Some(CancelReason::Deadline));
    let inner_reason = inner_h.cancel_reason().unwrap();
    assert_eq!(
        inner_reason,
        CancelReason::Outer(Box::new(CancelReason::Deadline))
    );
    assert!(inner_reason.is_deadline());
    assert_eq!(
        inner_reason.to_string(),
        "an enclosing scope: deadline passed"
    );
    outer_h.cancel_with("too late");
    assert_eq!(outer_h.cancel_reason(), Some(CancelReason::Deadline));
}

/// A task's failure cancels the nursery: the nursery's reason names where the failed task
/// was spawned, and its siblings' reasons carry it as `Outer`. The task that failed was
/// not cancelled.
#[hatchery::test]
async fn sibling_failure_names_the_failed_task() {
    let mut kept = None;
    let mut spawned_at = 0;
    let (slot, line) = (&mut kept, &mut spawned_at);
    let r = nursery(|n| async move {
        let sibling = n.spawn(async {
            sleep(HOUR).await;
            Ok(())
        });
        *line = here() + 1;
        let failing = n.spawn(async {
            checkpoint().await; // in the nursery's list when it fails
            Err::<(), _>(TestError("boom"))
        });
        *slot = Some((n.clone(), sibling, failing));
        sleep(HOUR).await;
        Ok(())
    })
    .await;
    assert!(r.is_err());
    let (n, sibling, failing) = kept.unwrap();
    let reason = n.cancel_reason().unwrap();
    let CancelReason::Failure {
        task: Some(at),
        panicked: false,
        ..
    } = reason
    else {
        panic!("{reason:?}")
    };
    assert_eq!((at.file(), at.line()), (file!(), spawned_at));
    assert!(reason.to_string().starts_with("a task spawned at "));
    assert!(reason.to_string().ends_with(" failed"));
    assert_eq!(
        sibling.cancel_reason(),
        Some(CancelReason::Outer(Box::new(reason.clone())))
    );
    assert_eq!(failing.cancel_reason(), None);
    assert!(format!("{n:?}").contains("Failure"));
}

/// A panicking task is named too, with `panicked: true`; the body's own error names no
/// task.
#[hatchery::test]
async fn panics_and_the_body_failure() {
    let mut kept = None;
    let mut spawned_at = 0;
    let (slot, line) = (&mut kept, &mut spawned_at);
    let r = hatchery_tests::catch_panic(nursery(|n| async move {
        *slot = Some(n.clone());
        *line = here() + 1;
        n.spawn(async { panic!("child panicked") as Result<(), TestError> });
        sleep(HOUR).await;
        Ok::<_, TestError>(())
    }))
    .await;
    assert!(r.is_err());
    let reason = kept.take().unwrap().cancel_reason().unwrap();
    assert!(
        matches!(reason, CancelReason::Failure { task: Some(at), panicked: true, .. } if at.line() == spawned_at),
        "{reason:?}"
    );
    assert!(reason.to_string().ends_with(" panicked"));

    let mut child = None;
    let (slot, child_slot) = (&mut kept, &mut child);
    let r = nursery(|n| async move {
        *child_slot = Some(n.spawn(async {
            sleep(HOUR).await;
            Ok(())
        }));
        *slot = Some(n.clone());
        checkpoint().await;
        Err::<(), _>(TestError("body"))
    })
    .await;
    assert!(r.is_err());
    let reason = kept.unwrap().cancel_reason().unwrap();
    assert!(
        matches!(
            reason,
            CancelReason::Failure {
                task: None,
                panicked: false,
                ..
            }
        ),
        "{reason:?}"
    );
    assert_eq!(reason.to_string(), "the nursery's body failed");
    let child = child.unwrap();
    assert_eq!(child.cancel_reason().unwrap().origin(), &reason);
}

/// The nursery's own cancel is its own kind, with its place and message; its tasks carry
/// it as `Outer`.
#[hatchery::test(virtual_time)]
async fn the_nurserys_own_cancel() {
    let mut kept = None;
    let mut line = 0;
    let (slot, at) = (&mut kept, &mut line);
    let r = nursery(|n| async move {
        let child = n.spawn(async {
            sleep(HOUR).await;
            Ok::<_, TestError>(())
        });
        *at = here() + 1;
        n.cancel_with("drain");
        *slot = Some((n.clone(), child));
        sleep(HOUR).await;
        Ok(())
    })
    .await;
    assert!(r.unwrap_err().is_cancelled());
    let (n, child) = kept.unwrap();
    let reason = n.cancel_reason().unwrap();
    assert!(
        matches!(&reason, CancelReason::Nursery { at, message: Some(m), .. } if at.line() == line && m == "drain"),
        "{reason:?}"
    );
    assert!(reason.to_string().starts_with("nursery cancelled at "));
    let child_reason = child.cancel_reason().unwrap();
    assert_eq!(child_reason.origin(), &reason);
    assert_eq!(child_reason.message(), Some("drain"));
}

/// A task's own cancel (through its handle) is `Explicit`; tasks of a nursery inside a
/// cancelled scope carry the scope's reason as `Outer`, as does the nursery.
#[hatchery::test(virtual_time)]
async fn tasks_under_a_cancelled_scope() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let mut kept = None;
    let (slot, h) = (&mut kept, &handle);
    scope
        .run(nursery(|n: Nursery<TestError>| async move {
            let own = n.spawn(async {
                sleep(HOUR).await;
                Ok(())
            });
            let other = n.spawn(async {
                sleep(HOUR).await;
                Ok(())
            });
            own.cancel_with("mine");
            *slot = Some((n.clone(), own, other));
            sleep(secs(1)).await;
            h.cancel_with("all of it");
            sleep(HOUR).await;
            Ok(())
        }))
        .await;
    let (n, own, other) = kept.unwrap();
    assert_eq!(own.cancel_reason().unwrap().message(), Some("mine"));
    assert!(matches!(
        own.cancel_reason().unwrap(),
        CancelReason::Explicit { .. }
    ));
    let scope_reason = handle.cancel_reason().unwrap();
    let outer = CancelReason::Outer(Box::new(scope_reason));
    assert_eq!(other.cancel_reason().as_ref(), Some(&outer));
    assert_eq!(n.cancel_reason().as_ref(), Some(&outer));
    assert!(format!("{other:?}").contains("all of it"));
}

/// A shield keeps its ancestors' reasons out: a scope inside says nothing, unless
/// cancelled itself.
#[hatchery::test(virtual_time)]
async fn a_shield_has_only_its_own_reasons() {
    let inner = CancelScope::new();
    let inner_h = inner.handle();
    move_on_after(secs(1), async {
        shield(inner.run(sleep(secs(2)))).await;
        sleep(HOUR).await;
    })
    .await;
    assert_eq!(inner_h.cancel_reason(), None);
}

/// A nursery whose future is dropped from outside hatchery (C8) says `Dropped`, and its
/// children carry it as `Outer`.
#[hatchery::test]
async fn a_foreign_drop() {
    let mut kept = None;
    {
        let slot = &mut kept;
        let mut fut = pin!(nursery(|n| async move {
            let child = n.spawn(async {
                sleep(HOUR).await;
                Ok::<_, TestError>(())
            });
            *slot = Some((n.clone(), child));
            sleep(HOUR).await;
            Ok(())
        }));
        assert!(poll_once(fut.as_mut()).await.is_none());
    }
    let (n, child) = kept.unwrap();
    assert_eq!(n.cancel_reason(), Some(CancelReason::Dropped));
    assert_eq!(
        n.cancel_reason().unwrap().to_string(),
        "dropped from outside hatchery"
    );
    assert_eq!(
        child.cancel_reason(),
        Some(CancelReason::Outer(Box::new(CancelReason::Dropped)))
    );
    let _ = child.join().await;
}

/// The reason of a scope inside `work`'s cancelled part: `work` gets the scope to run
/// its sleep in; the reason is read after `work` has ended.
async fn reason_inside<F, Fut>(work: F) -> CancelReason
where
    F: FnOnce(CancelScope) -> Fut,
    Fut: std::future::Future,
{
    let scope = CancelScope::new();
    let handle = scope.handle();
    work(scope).await;
    handle.cancel_reason().expect("the scope was cancelled")
}

/// Every kind of cancel has its reason, the subgroups' and the polled nurseries' too
/// (their cancels once carried no detail, and reading their reason hit an internal
/// error): a subgroup's cancel, a polled child's error and panic (naming where it was
/// spawned), a polled nursery's own cancel, a polled child's handle's cancel, a
/// `try_join`'s failing future and a race won (spawning, and polled in the fast path and
/// in the engine: at the race's call).
#[hatchery::test(virtual_time)]
async fn subgroups_and_polled_nurseries_say_why() {
    use hatchery::Polled;

    let line = std::sync::atomic::AtomicU32::new(0);
    let set = |l: u32| line.store(l, std::sync::atomic::Ordering::Relaxed);
    let line = || line.load(std::sync::atomic::Ordering::Relaxed);
    let explicit_here = |reason: &CancelReason| match reason {
        CancelReason::Explicit { at, .. } | CancelReason::Nursery { at, .. } => {
            assert_eq!((at.file(), at.line()), (file!(), line()), "{reason:?}");
        }
        _ => panic!("{reason:?}"),
    };

    // A subgroup's cancel.
    let reason = reason_inside(|scope| {
        nursery(|n: Nursery<TestError>| async move {
            let group = n.subgroup();
            group.spawn(async move {
                scope.run(sleep(HOUR)).await;
                Ok(())
            });
            checkpoint().await;
            set(here() + 1);
            group.cancel();
            Ok(())
        })
    })
    .await;
    explicit_here(reason.origin());

    // A polled child's error and panic.
    for panics in [false, true] {
        let reason = reason_inside(|scope| async move {
            let out = catch_panic(Polled::nursery(|n| async move {
                n.spawn(async move {
                    scope.run(sleep(HOUR)).await;
                    Ok(())
                });
                set(here() + 1);
                n.spawn(async move {
                    sleep(secs(1)).await;
                    if panics {
                        panic!("out of cheese");
                    }
                    Err::<(), _>(TestError("boom"))
                });
                Ok(())
            }))
            .await;
            assert_eq!(out.is_err(), panics);
        })
        .await;
        let CancelReason::Failure {
            task: Some(at),
            panicked,
            ..
        } = reason.origin()
        else {
            panic!("{reason:?}")
        };
        assert_eq!((at.file(), at.line(), *panicked), (file!(), line(), panics));
    }

    // A polled nursery's own cancel.
    let reason = reason_inside(|scope| {
        Polled::nursery(|n| async move {
            n.spawn(async move {
                scope.run(sleep(HOUR)).await;
                Ok::<_, TestError>(())
            });
            checkpoint().await;
            set(here() + 1);
            n.cancel();
            Ok(())
        })
    })
    .await;
    assert!(matches!(reason.origin(), CancelReason::Nursery { .. }));
    explicit_here(reason.origin());

    // A polled child's handle's cancel.
    let reason = reason_inside(|scope| {
        Polled::nursery(|n| async move {
            let child = n.spawn(async move {
                scope.run(sleep(HOUR)).await;
                Ok::<_, TestError>(())
            });
            checkpoint().await;
            set(here() + 1);
            child.cancel();
            Ok(())
        })
    })
    .await;
    explicit_here(reason.origin());

    // A `try_join`'s failing future: two (the fast path) and forty (the engine).
    for n in [2, 40] {
        let reason = reason_inside(|scope| async move {
            let scope = std::cell::RefCell::new(Some(scope));
            let scope = &scope;
            set(here() + 1);
            let out = Polled::try_join((0..n).map(|i| async move {
                match i {
                    0 => {
                        let scope = scope.borrow_mut().take().unwrap();
                        scope.run(sleep(HOUR)).await;
                        Ok(())
                    }
                    1 => Err(TestError("boom")),
                    _ => Ok(()),
                }
            }))
            .await;
            assert!(out.is_err());
        })
        .await;
        let CancelReason::Failure { task: Some(at), .. } = reason.origin() else {
            panic!("{reason:?}")
        };
        assert_eq!((at.file(), at.line()), (file!(), line()), "{n} futures");
    }

    // A spawning race won.
    let reason = reason_inside(|scope| async move {
        let scope = std::sync::Arc::new(std::sync::Mutex::new(Some(scope)));
        let racers: Vec<_> = (0..2)
            .map(|i| {
                let scope = scope.clone();
                async move {
                    if i == 0 {
                        let scope = scope.lock().unwrap().take().unwrap();
                        scope.run(sleep(HOUR)).await;
                    } else {
                        sleep(secs(1)).await;
                    }
                    i
                }
            })
            .collect();
        set(here() + 1);
        assert_eq!(hatchery::race(racers).await, 1);
    })
    .await;
    let CancelReason::Nursery { at, message, .. } = reason.origin() else {
        panic!("{reason:?}")
    };
    assert_eq!((at.file(), at.line()), (file!(), line()));
    assert_eq!(message.as_deref(), Some("the race was won"));

    // A polled race won: two (the fast path) and forty (the engine).
    for n in [2, 40] {
        let reason = reason_inside(|scope| async move {
            let scope = std::cell::RefCell::new(Some(scope));
            let scope = &scope;
            set(here() + 1);
            let won = Polled::race((0..n).map(|i| async move {
                if i == 0 {
                    let scope = scope.borrow_mut().take().unwrap();
                    scope.run(sleep(HOUR)).await;
                } else {
                    sleep(secs(1)).await;
                }
                i
            }))
            .await;
            assert_eq!(won, 1);
        })
        .await;
        let CancelReason::Nursery { at, message, .. } = reason.origin() else {
            panic!("{reason:?}")
        };
        assert_eq!((at.file(), at.line()), (file!(), line()), "{n} futures");
        assert_eq!(message.as_deref(), Some("the race was won"));
    }
}
