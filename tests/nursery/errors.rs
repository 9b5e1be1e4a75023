//! Failing nurseries (N2): the first error cancels the rest, every error is reported in
//! the order it happened, and `?` converts the result into the usual error types; on both
//! kinds of nursery. (The tests without a rule's name check `NurseryError` itself, one
//! type for both kinds, on the spawning nursery.)

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hatchery::testing::elapsed;
use hatchery::{checkpoint, move_on_after, nursery, shield, sleep, CancelScope, NurseryError};
use hatchery_tests::{each_kind, secs, until, Counter, Kind, Log, Spawning, TestError, HOUR};

/// A user's own error type, with a `From` impl for nursery errors.
#[derive(Debug, PartialEq)]
enum AppError {
    Test(TestError),
    Many(Vec<AppError>),
    Cancelled,
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl From<TestError> for AppError {
    fn from(e: TestError) -> Self {
        AppError::Test(e)
    }
}

impl From<NurseryError<AppError>> for AppError {
    fn from(e: NurseryError<AppError>) -> Self {
        match e {
            NurseryError::Cancelled => AppError::Cancelled,
            NurseryError::Failed(mut errors) if errors.len() == 1 => errors.pop().unwrap(),
            NurseryError::Failed(errors) => AppError::Many(errors),
        }
    }
}

async fn failing_nursery<K: Kind, E: From<TestError> + Send + 'static>(
) -> Result<u32, NurseryError<E>> {
    K::nursery(|n| async move {
        n.spawn(async { Err::<(), E>(TestError("child").into()) });
        sleep(HOUR).await;
        Ok(1)
    })
    .await
}

each_kind!(n2_single_error_cancels_the_rest, virtual_time);
/// N2: a failing child cancels its siblings and the body; the nursery returns
/// `Failed` with that one error, which is easy to get at.
async fn n2_single_error_cancels_the_rest<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let _guard = log.on_drop("body dropped");
            for _ in 0..3 {
                let log = log.clone();
                n.spawn(async move {
                    let _guard = log.on_drop("sibling dropped");
                    sleep(HOUR).await;
                    log.push("unreachable: sibling");
                    Ok(())
                });
            }
            n.spawn(async {
                sleep(secs(2)).await;
                Err::<(), _>(TestError("boom"))
            });
            sleep(HOUR).await;
            log.push("unreachable: body");
            Ok(())
        }
    })
    .await;
    let e = r.unwrap_err();
    assert!(!e.is_cancelled());
    assert_eq!(e.errors(), [TestError("boom")]);
    assert_eq!(e.first(), Some(&TestError("boom")));
    assert_eq!(e.to_string(), TestError("boom").to_string());
    assert_eq!(e.clone().into_errors(), vec![TestError("boom")]);
    assert_eq!(e.into_first(), Some(TestError("boom")));
    assert_eq!(log.count("sibling dropped"), 3);
    assert_eq!(log.count("body dropped"), 1);
    assert!(!log.events().iter().any(|e| e.starts_with("unreachable")));
    assert_eq!(elapsed(), secs(2));
}

each_kind!(n2_all_errors_in_order, virtual_time);
/// N2: several failures are all reported, in the order they happened (a child, a
/// sibling in shielded cleanup, then the body after its own shielded cleanup).
async fn n2_all_errors_in_order<K: Kind>() {
    let r = K::nursery(|n| async move {
        n.spawn(async { Err::<(), _>(TestError("first")) });
        let n2 = n.clone();
        let second = n.spawn(async move {
            shield(async { until(|| n2.is_cancelled()).await }).await;
            Err::<(), _>(TestError("second"))
        });
        shield(async { until(|| second.is_finished()).await }).await;
        Err::<(), _>(TestError("body"))
    })
    .await;
    let e = r.unwrap_err();
    assert_eq!(
        e.errors(),
        [TestError("first"), TestError("second"), TestError("body")]
    );
    let text = e.to_string();
    assert!(text.starts_with("3 tasks failed"), "{text}");
    for part in ["first", "second", "body"] {
        assert!(text.contains(part), "{text}");
    }
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n2_body_error_cancels_children, virtual_time);
/// N2: the body's own error cancels the children and is reported.
async fn n2_body_error_cancels_children<K: Kind>() {
    let dropped = Counter::new();
    let r = K::nursery(|n| {
        let dropped = dropped.clone();
        async move {
            for _ in 0..5 {
                let guard = dropped.guard();
                n.spawn(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                    Ok(())
                });
            }
            sleep(secs(1)).await;
            Err::<(), _>(TestError("body"))
        }
    })
    .await;
    assert_eq!(r, Err(NurseryError::Failed(vec![TestError("body")])));
    assert_eq!(dropped.get(), 5);
    assert_eq!(elapsed(), secs(1));
}

each_kind!(n2_error_waits_for_sibling_cleanup, virtual_time);
/// N1 with N2: the nursery returns the error only after a sibling's shielded cleanup
/// has finished.
async fn n2_error_waits_for_sibling_cleanup<K: Kind>() {
    let log = Log::new();
    let r = K::nursery(|n| {
        let log = log.clone();
        async move {
            let in_shield = Counter::new();
            let c = in_shield.clone();
            let log2 = log.clone();
            n.spawn(async move {
                shield(async {
                    c.incr();
                    sleep(secs(15)).await;
                    log2.push("cleanup done");
                })
                .await;
                Ok(())
            });
            until(|| in_shield.get() == 1).await;
            n.spawn(async { Err::<(), _>(TestError("fail")) });
            sleep(HOUR).await;
            Ok(())
        }
    })
    .await;
    log.push("nursery returned");
    assert_eq!(r.unwrap_err().errors(), [TestError("fail")]);
    assert_eq!(log.events(), ["cleanup done", "nursery returned"]);
    assert_eq!(elapsed(), secs(15));
}

each_kind!(n2_question_mark_into_anyhow, virtual_time);
/// N2: `?` converts a nursery error into `anyhow::Error`.
async fn n2_question_mark_into_anyhow<K: Kind>() {
    async fn app<K: Kind>() -> anyhow::Result<u32> {
        let v = failing_nursery::<K, TestError>().await?;
        Ok(v)
    }
    let e = app::<K>().await.unwrap_err();
    let ne = e
        .downcast_ref::<NurseryError<TestError>>()
        .expect("the nursery error");
    assert_eq!(ne.errors(), [TestError("child")]);
    assert_eq!(e.to_string(), "test error child");

    // With anyhow::Error as the nursery's own error type too.
    async fn app2<K: Kind>() -> anyhow::Result<u32> {
        let v = K::nursery(|n| async move {
            n.spawn(async { Err::<(), _>(anyhow::anyhow!("inner")) });
            checkpoint().await;
            Ok(1)
        })
        .await?;
        Ok(v)
    }
    assert_eq!(app2::<K>().await.unwrap_err().to_string(), "inner");
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n2_question_mark_into_boxed_error, virtual_time);
/// N2: `?` converts a nursery error into `Box<dyn Error + Send + Sync>`.
async fn n2_question_mark_into_boxed_error<K: Kind>() {
    async fn app<K: Kind>() -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
        let v = failing_nursery::<K, TestError>().await?;
        Ok(v)
    }
    let e = app::<K>().await.unwrap_err();
    let ne = e
        .downcast_ref::<NurseryError<TestError>>()
        .expect("the nursery error");
    assert_eq!(ne.first(), Some(&TestError("child")));
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n2_question_mark_into_own_error_type, virtual_time);
/// N2: `?` converts a nursery error into a user's own error type through its `From`
/// impl; a lone error comes out as itself, several as `Many`.
async fn n2_question_mark_into_own_error_type<K: Kind>() {
    async fn one<K: Kind>() -> Result<u32, AppError> {
        let v = failing_nursery::<K, AppError>().await?;
        Ok(v)
    }
    assert_eq!(one::<K>().await, Err(AppError::Test(TestError("child"))));

    async fn two<K: Kind>() -> Result<u32, AppError> {
        let v = K::nursery(|n| async move {
            n.spawn(async { Err::<(), _>(AppError::from(TestError("a"))) });
            shield(async { until(|| n.is_cancelled()).await }).await;
            Err(TestError("b"))?;
            Ok(0)
        })
        .await?;
        Ok(v)
    }
    assert_eq!(
        two::<K>().await,
        Err(AppError::Many(vec![
            AppError::Test(TestError("a")),
            AppError::Test(TestError("b"))
        ]))
    );
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n2_error_from_nested_nursery, virtual_time);
/// N2: an error in a nested nursery fails the child that opened it, and so the outer
/// nursery, with every error carried up.
async fn n2_error_from_nested_nursery<K: Kind>() {
    let r = K::nursery(|n| async move {
        n.spawn(async {
            K::nursery(|n2| async move {
                n2.spawn(async { Err::<(), _>(TestError("deep")) });
                sleep(HOUR).await;
                Ok(())
            })
            .await
            .map_err(|e| e.into_first().unwrap())
        });
        sleep(HOUR).await;
        Ok(())
    })
    .await;
    assert_eq!(r, Err(NurseryError::Failed(vec![TestError("deep")])));
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(
    n2_errors_during_outer_cancellation_are_reported,
    virtual_time
);
/// N2 with N4: errors that children return while an outer cancellation drains the
/// nursery are still reported (not silently dropped).
async fn n2_errors_during_outer_cancellation_are_reported<K: Kind>() {
    let outer = CancelScope::new();
    let handle = outer.handle();
    let out = outer
        .run(K::nursery(|n| async move {
            let h2 = handle.clone();
            n.spawn(async move {
                shield(async {
                    // Past the outer cancel at 1 s: the nursery is draining.
                    sleep(secs(2)).await;
                    assert!(h2.cancel_called());
                })
                .await;
                Err::<(), _>(TestError("during drain"))
            });
            sleep(secs(1)).await;
            handle.cancel();
            sleep(HOUR).await;
            Ok(())
        }))
        .await;
    assert_eq!(
        out,
        Some(Err(NurseryError::Failed(vec![TestError("during drain")])))
    );
    assert_eq!(elapsed(), secs(2));
}

each_kind!(n2_no_error_is_lost);
/// N2: errors from many children failing at once: none is lost.
async fn n2_no_error_is_lost<K: Kind>() {
    let r = K::nursery(|n| async move {
        for _ in 0..50 {
            n.spawn(async { Err::<(), _>(TestError("x")) });
        }
        Ok(())
    })
    .await;
    // Children spawned into a nursery that is being cancelled still run to their first
    // suspension point; these fail there, so every one of them reports.
    assert_eq!(r.unwrap_err().errors().len(), 50);
}

each_kind!(n2_failed_nursery_inside_timeout, virtual_time);
/// N2: a `move_on_after` around a failing nursery: the error is a value, not a timeout.
async fn n2_failed_nursery_inside_timeout<K: Kind>() {
    let out = move_on_after(HOUR, failing_nursery::<K, TestError>()).await;
    assert_eq!(
        out,
        Some(Err(NurseryError::Failed(vec![TestError("child")])))
    );
    assert_eq!(elapsed(), Duration::ZERO);
}

each_kind!(n2_sibling_nursery_unaffected, virtual_time);
/// N2: the record of errors is per nursery: a sibling nursery is unaffected.
async fn n2_sibling_nursery_unaffected<K: Kind>() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let r = K::nursery(|n| {
        let seen = seen.clone();
        async move {
            let seen2 = seen.clone();
            n.spawn(async move {
                let r = failing_nursery::<K, TestError>().await;
                seen2.lock().unwrap().push(r.is_err());
                Ok(())
            });
            n.spawn(async move {
                let r = K::nursery(|m| async move {
                    m.spawn(async {
                        sleep(secs(5)).await;
                        Ok::<_, TestError>(())
                    });
                    Ok(())
                })
                .await;
                seen.lock().unwrap().push(r.is_err());
                Ok(())
            });
            Ok::<_, TestError>(())
        }
    })
    .await;
    assert_eq!(r, Ok(()));
    let mut s = seen.lock().unwrap().clone();
    s.sort();
    assert_eq!(s, [false, true]);
    assert_eq!(elapsed(), secs(5));
}

/// A lone error is formatted with the caller's flags: `{:#}` shows an anyhow context
/// chain, as it would on the error itself.
#[hatchery::test]
async fn a_lone_error_keeps_its_alternate_format() {
    use anyhow::Context;
    let err = nursery(|n| async move {
        n.spawn(async { Err::<(), _>(anyhow::anyhow!("disk full")).context("writing cache") });
        Ok::<_, anyhow::Error>(())
    })
    .await
    .unwrap_err();
    assert_eq!(format!("{err}"), "writing cache");
    assert_eq!(format!("{err:#}"), "writing cache: disk full");
    let first = err.into_first().unwrap();
    assert_eq!(format!("{first:#}"), "writing cache: disk full");
}

/// `{:#}` on several errors shows every error's cause chain, as for a lone one; `{}`
/// shows their outer messages.
#[test]
fn several_errors_keep_their_alternate_format() {
    let several = NurseryError::Failed(vec![
        anyhow::anyhow!("root1").context("ctx1"),
        anyhow::anyhow!("root2").context("ctx2"),
    ]);
    assert_eq!(format!("{several}"), "2 tasks failed: ctx1; ctx2");
    assert_eq!(
        format!("{several:#}"),
        "2 tasks failed: ctx1: root1; ctx2: root2"
    );
}

/// `?` into `io::Error`: a lone error comes back as itself; several as one error of the
/// first one's kind carrying the whole `NurseryError`; `Cancelled` as `Other` (not
/// `Interrupted`, which `std::io` retries).
#[hatchery::test(virtual_time)]
async fn nursery_errors_convert_into_io_errors() {
    use std::io;
    async fn two_failures() -> io::Result<()> {
        nursery(|n| async move {
            n.spawn(async { Err::<(), _>(io::Error::new(io::ErrorKind::NotFound, "a.txt")) });
            n.spawn(async {
                // Fails second: in its cleanup, after the first failure cancelled it.
                shield(sleep(HOUR)).await;
                Err::<(), _>(io::Error::new(io::ErrorKind::PermissionDenied, "b.txt"))
            });
            Ok(())
        })
        .await?;
        Ok(())
    }
    let err = two_failures().await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    let inner = err
        .get_ref()
        .unwrap()
        .downcast_ref::<NurseryError<io::Error>>();
    let kinds: Vec<_> = inner
        .unwrap()
        .errors()
        .iter()
        .map(io::Error::kind)
        .collect();
    assert_eq!(
        kinds,
        [io::ErrorKind::NotFound, io::ErrorKind::PermissionDenied]
    );
    assert_eq!(err.to_string(), "2 tasks failed: a.txt; b.txt");

    let cancelled: io::Result<()> = async {
        nursery(|n: hatchery::Nursery<io::Error>| async move {
            n.cancel();
            checkpoint().await;
            Ok(())
        })
        .await?;
        Ok(())
    }
    .await;
    let cancelled = cancelled.unwrap_err();
    assert_eq!(cancelled.kind(), io::ErrorKind::Other);
    let inner = cancelled.get_ref().unwrap();
    assert!(inner
        .downcast_ref::<NurseryError<io::Error>>()
        .unwrap()
        .is_cancelled());
}

/// N2 with `err_into`: a task whose error converts into the nursery's is spawned (and
/// started, and spawned into a subgroup) through `err_into`, its error reported as the
/// nursery's type, and the nursery's error type is still inferred from the body.
#[hatchery::test(virtual_time)]
async fn n2_err_into_converts_a_task_error() {
    async fn lib_call(fail: bool) -> Result<u32, TestError> {
        sleep(secs(1)).await;
        if fail {
            Err(TestError("lib"))
        } else {
            Ok(5)
        }
    }
    let r = nursery(|n| async move {
        let ok = n.spawn(hatchery::err_into(lib_call(false)));
        let started = n
            .start(|status| {
                status.started(1u8);
                hatchery::err_into(lib_call(false))
            })
            .await?;
        let group = n.subgroup();
        let in_group = group.spawn(hatchery::err_into(lib_call(false)));
        let tried = n.try_spawn(hatchery::err_into(lib_call(false)))?;
        n.spawn(async { Ok(()) }); // the usual case: inferred from the nursery
        Ok::<_, AppError>(
            ok.join().await.unwrap()
                + u32::from(started)
                + in_group.join().await.unwrap()
                + tried.join().await.unwrap(),
        )
    })
    .await;
    assert_eq!(r.unwrap(), 16);

    let r: Result<(), AppError> = nursery(|n| async move {
        n.spawn(hatchery::err_into(lib_call(true)));
        sleep(HOUR).await;
        Ok::<_, AppError>(())
    })
    .await
    .map_err(AppError::from);
    assert_eq!(r, Err(AppError::Test(TestError("lib"))));
    assert_eq!(elapsed(), secs(2));
}

impl From<hatchery::StartError<AppError>> for AppError {
    fn from(e: hatchery::StartError<AppError>) -> Self {
        e.into_inner().unwrap_or(AppError::Cancelled)
    }
}

impl From<hatchery::SpawnError> for AppError {
    fn from(_: hatchery::SpawnError) -> Self {
        AppError::Cancelled
    }
}

/// N2: a nursery error converted by `?` wraps its errors and names no `source()` (its
/// `E` need not be an `Error`): anyhow's chain stops at it, and the lone error is reached
/// by downcasting the aggregate.
#[hatchery::test]
async fn a_wrapped_error_names_no_source() {
    let err: anyhow::Error = failing_nursery::<Spawning, anyhow::Error>()
        .await
        .unwrap_err()
        .into();
    assert_eq!(err.chain().count(), 1);
    assert!(err.downcast_ref::<TestError>().is_none());
    let inner = err.downcast_ref::<NurseryError<anyhow::Error>>().unwrap();
    assert_eq!(
        inner.first().unwrap().downcast_ref(),
        Some(&TestError("child"))
    );
}

/// N2: `flatten` before `?` keeps a lone child error as itself: anyhow's `downcast_ref`
/// and `chain()` reach it and the context it carries.
#[hatchery::test]
async fn a_flattened_lone_error_is_reachable_through_anyhow() {
    use anyhow::Context;

    async fn app() -> anyhow::Result<u32> {
        let v = nursery(|n| async move {
            n.spawn(async {
                Err::<(), _>(anyhow::Error::new(TestError("disk full"))).context("writing cache")
            });
            sleep(HOUR).await;
            Ok::<_, anyhow::Error>(1)
        })
        .await
        .map_err(NurseryError::flatten)?;
        Ok(v)
    }
    let err = app().await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<TestError>(),
        Some(&TestError("disk full"))
    );
    let chain: Vec<String> = err.chain().map(ToString::to_string).collect();
    assert_eq!(chain, ["writing cache", "test error disk full"]);
    assert!(err.chain().any(|e| e.downcast_ref::<TestError>().is_some()));
    assert_eq!(
        err.root_cause().downcast_ref(),
        Some(&TestError("disk full"))
    );

    // An `io::Error` child: its kind is kept for a downcast after `?`.
    let r = nursery(|n| async move {
        n.spawn(async { Err::<(), _>(std::io::Error::new(std::io::ErrorKind::NotFound, "a.txt")) });
        Ok::<_, std::io::Error>(())
    })
    .await;
    let err = anyhow::Error::from(r.unwrap_err().flatten());
    let io = err.downcast_ref::<std::io::Error>().unwrap();
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
}

/// `flatten` keeps several errors together (and `Cancelled` as it is), reachable by
/// downcasting the aggregate.
#[hatchery::test]
async fn flatten_keeps_several_errors_together() {
    let r = nursery(|n| async move {
        n.spawn(async { Err::<(), _>(anyhow::anyhow!("first")) });
        Err::<(), _>(anyhow::anyhow!("body"))
    })
    .await;
    let err = r.unwrap_err().flatten();
    let all = err.downcast_ref::<NurseryError<anyhow::Error>>().unwrap();
    assert_eq!(all.errors().len(), 2);

    let r = nursery(|n| async move {
        n.cancel();
        checkpoint().await;
        Ok::<(), anyhow::Error>(())
    })
    .await;
    let err = r.unwrap_err().flatten();
    assert!(err
        .downcast_ref::<NurseryError<anyhow::Error>>()
        .unwrap()
        .is_cancelled());
}

/// `StartError::flatten`: the task's own error as itself.
#[hatchery::test]
async fn start_error_flattens_to_the_tasks_error() {
    let err = nursery(|n| async move {
        let r: Result<(), anyhow::Error> = n
            .start(|_status| async { Err::<(), _>(anyhow::Error::new(TestError("bind"))) })
            .await
            .map_err(hatchery::StartError::flatten);
        Ok::<_, anyhow::Error>(r.unwrap_err())
    })
    .await
    .unwrap();
    assert_eq!(err.downcast_ref(), Some(&TestError("bind")));
}
