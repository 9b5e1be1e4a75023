//! Task names: a task is known by where it was spawned, and by the name it was given
//! with `spawn_named`; both show in its handle's `Debug`, and a failure's cancel reason
//! names the task that failed.

use hatchery::{nursery, sleep, CancelReason, Nursery};
use hatchery_tests::{TestError, HOUR};

/// `spawned_at` is the line of the `spawn` call (also through `try_spawn` and
/// `spawn_named`); `name` is what `spawn_named` was given.
#[hatchery::test]
async fn names_and_places() {
    let r = nursery(|n: Nursery<TestError>| async move {
        let (a, la) = (n.spawn(async { Ok(1) }), line!());
        let (b, lb) = (n.try_spawn(async { Ok(2) }).unwrap(), line!());
        let (c, lc) = (n.spawn_named("c", async { Ok(3) }), line!());
        let (d, ld) = (n.spawn_named(format!("d{}", 4), async { Ok(4) }), line!());
        for (h, line) in [(&a, la), (&b, lb), (&c, lc), (&d, ld)] {
            assert_eq!(
                (h.spawned_at().file(), h.spawned_at().line()),
                (file!(), line)
            );
        }
        assert_eq!((a.name(), b.name()), (None, None));
        assert_eq!((c.name(), d.name()), (Some("c"), Some("d4")));
        let debug = format!("{d:?}");
        assert!(debug.contains("name: Some(\"d4\")"), "{debug}");
        assert!(
            debug.contains(&format!("spawned_at: {}:{ld}:", file!())),
            "{debug}"
        );
        Ok(a.join().await.unwrap() + b.join().await.unwrap() + c.join().await.unwrap())
    })
    .await;
    assert_eq!(r, Ok(6));
}

/// A subgroup's tasks too: `spawned_at` is the line of its `spawn` or `try_spawn`
/// call, not a place inside hatchery.
#[hatchery::test]
async fn subgroup_places() {
    let r = nursery(|n: Nursery<TestError>| async move {
        let group = n.subgroup();
        let (a, la) = (group.spawn(async { Ok(1) }), line!());
        let (b, lb) = (group.try_spawn(async { Ok(2) }).unwrap(), line!());
        for (h, line) in [(&a, la), (&b, lb)] {
            assert_eq!(
                (h.spawned_at().file(), h.spawned_at().line()),
                (file!(), line)
            );
        }
        Ok(a.join().await.unwrap() + b.join().await.unwrap())
    })
    .await;
    assert_eq!(r, Ok(3));
}

/// A named task that fails is named by the nursery's cancel reason, and by its
/// siblings' (as `Outer`); so is one that panics.
#[hatchery::test]
async fn a_failure_names_the_task() {
    for panics in [false, true] {
        let mut kept = None;
        let slot = &mut kept;
        let r = hatchery_tests::catch_panic(nursery(|n| async move {
            let sibling = n.spawn(async {
                sleep(HOUR).await;
                Ok(())
            });
            let line = line!() + 1;
            n.spawn_named("loader", async move {
                hatchery::checkpoint().await;
                if panics {
                    panic!("loader panicked");
                }
                Err::<(), _>(TestError("no such file"))
            });
            *slot = Some((n.clone(), sibling, line));
            sleep(HOUR).await;
            Ok(())
        }))
        .await;
        assert_eq!(r.is_err(), panics, "a panic is resumed, an error returned");
        let (n, sibling, line) = kept.unwrap();
        let reason = n.cancel_reason().unwrap();
        let CancelReason::Failure {
            task: Some(at),
            name: Some(name),
            panicked,
            ..
        } = &reason
        else {
            panic!("{reason:?}")
        };
        assert_eq!((at.line(), &**name, *panicked), (line, "loader", panics));
        let how = if panics { "panicked" } else { "failed" };
        assert_eq!(
            reason.to_string(),
            format!("task \"loader\" (spawned at {at}) {how}")
        );
        assert_eq!(sibling.cancel_reason().unwrap().origin(), &reason);
    }
}
