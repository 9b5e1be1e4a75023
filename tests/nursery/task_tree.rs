//! Observing a running program (rules O1 and O2): names and places of nurseries and
//! scopes, the places the combinators record (their caller's, not hatchery's), and the
//! task tree's snapshot of a known tree: names, places, ages, deadlines, cancelled and
//! shielded states, holders.

use std::time::Duration;

use hatchery::diagnostics::{tree, NodeKind, TaskTree, TreeNode};
use hatchery::{
    as_completed, join, map, move_on_after, nursery, race, service, sleep, try_join, CancelScope,
    Nursery,
};
use hatchery_tests::{secs, TestError, HOUR};

/// O1: `NurseryFuture::named` and `CancelScope::with_name` name their handles; unnamed ones are
/// known by where they were made (the caller's line, `#[track_caller]`).
#[hatchery::test]
async fn o1_names_and_places_of_nurseries_and_scopes() {
    let line = line!() + 1;
    let r = nursery(|n: Nursery<TestError>| async move {
        assert_eq!(n.name(), Some("outer"));
        assert_eq!(
            (n.opened_at().file(), n.opened_at().line()),
            (file!(), line)
        );
        let inner_line = line!() + 1;
        nursery(|m: Nursery<TestError>| async move {
            assert_eq!(m.name(), None);
            assert_eq!(m.opened_at().line(), inner_line);
            Ok(())
        })
        .await
        .map_err(|_| TestError("inner"))
    })
    .named("outer")
    .await;
    assert_eq!(r, Ok(()));

    let (scope, line) = (CancelScope::new(), line!());
    let handle = scope.handle();
    assert_eq!(handle.name(), None);
    assert_eq!(
        (handle.made_at().file(), handle.made_at().line()),
        (file!(), line)
    );
    let named = CancelScope::default().with_name(format!("scope {}", 7));
    let named_handle = named.handle();
    assert_eq!(named_handle.name(), Some("scope 7"));
    assert_eq!(named.run(async { 1 }).await, Some(1));
    assert_eq!(scope.run(async { 2 }).await, Some(2));
    // The name stays readable once the scope is done.
    assert_eq!(named_handle.name(), Some("scope 7"));
}

/// The nurseries and tasks of `t` other than the run's root.
fn work(t: &TaskTree) -> Vec<&TreeNode> {
    t.nodes()
        .filter(|n| matches!(n.kind(), NodeKind::Nursery | NodeKind::Task))
        .collect()
}

/// Asserts that every nursery and task of `t` was made at `line` of this file, and that
/// there are `count` of them.
#[track_caller]
fn all_at(t: &TaskTree, line: u32, count: usize) {
    let work = work(t);
    assert_eq!(work.len(), count, "{t}");
    for node in work {
        let at = node.location().unwrap();
        assert_eq!((at.file(), at.line()), (file!(), line), "{t}");
    }
}

/// O1: the combinators open their nursery and spawn their tasks at their caller's place,
/// which the task tree shows (not a line of hatchery's own sources).
#[hatchery::test(virtual_time)]
async fn o1_combinators_record_the_callers_place() {
    // Each snapshot is taken by a child once every child has suspended (the clock moves
    // only when every task is blocked).
    let snap = || async {
        sleep(secs(1)).await;
        tree()
    };
    let idle = || async {
        sleep(secs(2)).await;
        tree()
    };

    let line = line!() + 1;
    let t = race([snap().boxed(), idle().boxed()]).await;
    all_at(&t, line, 3);

    let line = line!() + 1;
    let mut ts = join([snap().boxed(), idle().boxed()]).await;
    all_at(&ts.remove(0), line, 3);

    let line = line!() + 1;
    let ts = try_join([ok(snap()).boxed(), ok(idle()).boxed()])
        .await
        .unwrap();
    all_at(&ts[0], line, 3);

    let line = line!() + 1;
    let ts = map(2, [1, 2], |i| async move {
        sleep(secs(i)).await;
        tree()
    })
    .join()
    .await;
    all_at(&ts[0], line, 3);

    let line = line!() + 1;
    let t = hatchery::join!(snap(), idle()).0;
    all_at(&t, line, 3);

    let line = line!() + 1;
    let t = hatchery::try_join!(ok(snap()), ok(idle())).unwrap().0;
    all_at(&t, line, 3);

    let line = line!() + 1;
    let t = hatchery::race!(snap(), idle());
    all_at(&t, line, 3);

    let line = line!() + 1;
    let t = as_completed([snap().boxed(), idle().boxed()], |mut done| async move {
        use futures_lite::StreamExt;
        done.next().await.unwrap()
    })
    .await;
    all_at(&t, line, 3);

    // A service's nursery is at the call of `service`, its work at the call of `spawn`.
    let (open, spawned) = (line!() + 1, line!() + 4);
    let report = service(Duration::from_secs(1), |svc| async move {
        let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
        let put = slot.clone();
        svc.spawn(async move {
            // A task shows in the tree once it has suspended.
            sleep(secs(1)).await;
            *put.lock().unwrap() = Some(tree());
            Ok::<_, TestError>(())
        });
        sleep(secs(2)).await;
        let t = slot.lock().unwrap().take();
        Ok(t.unwrap())
    })
    .await;
    let t = report.value.unwrap();
    let work = work(&t);
    assert_eq!(work.len(), 2, "{t}");
    assert_eq!(work[0].location().unwrap().line(), open, "{t}");
    assert_eq!(work[1].location().unwrap().line(), spawned, "{t}");
}

use futures_lite::FutureExt as _;

/// `Ok`, for the combinators that want results.
async fn ok<T>(fut: impl std::future::Future<Output = T>) -> Result<T, TestError> {
    Ok(fut.await)
}

/// The line of this file that holds `text` (once, besides this search's own calls).
fn line_of_text(text: &str) -> u32 {
    let lines: Vec<usize> = include_str!("task_tree.rs")
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(text) && !l.contains("line_of_text"))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines.len(), 1, "{text:?} is on lines {lines:?}");
    lines[0] as u32
}

/// A line of the tree, its place (`file:line:column`) written as `L<line>`.
fn line_of(node: &TreeNode) -> String {
    let line = node.to_string();
    match node.location() {
        Some(at) => line.replace(&at.to_string(), &format!("L{}", at.line())),
        None => line,
    }
}

/// O2: the snapshot of a known tree, taken from the nursery's body: names, places, ages
/// (named nodes), deadlines, a cancelled scope waiting for the shield inside it, the
/// shield itself, and the indented `Display`.
#[hatchery::test(virtual_time)]
async fn o2_snapshot_of_a_known_tree() {
    let lines = (
        line_of_text("let r = nursery(|n: Nursery<TestError>| async move { // the server"),
        line_of_text("n.spawn_named(\"sleeper\""),
        line_of_text("n.spawn_named(\"bounded\""),
        line_of_text("CancelScope::new() // deadline"),
        line_of_text("n.spawn_named(\"cleaner\""),
    );
    #[rustfmt::skip]
    let r = nursery(|n: Nursery<TestError>| async move { // the server
        sleep(secs(2)).await; // the server's age will be 12 s, its tasks' 10 s
        n.spawn_named("sleeper", async {
            sleep(HOUR).await;
            Ok(())
        });
        n.spawn_named("bounded", async {
            CancelScope::new() // deadline
                .with_name("deadline")
                .with_timeout(secs(30))
                .run(sleep(HOUR))
                .await;
            Ok(())
        });
        let stop = CancelScope::new().with_name("stopping");
        let stop_handle = stop.handle();
        n.spawn_named("cleaner", async move {
            stop.run(async {
                stop_handle.cancel_with("shutdown");
                CancelScope::new()
                    .with_name("cleanup")
                    .with_shield(true)
                    .run(sleep(secs(60)))
                    .await;
            })
            .await;
            Ok(())
        });
        sleep(secs(10)).await;
        let t = tree();
        n.cancel();
        Ok(t)
    })
    .named("server")
    .await;
    let t = r.unwrap();
    let (server_line, sleeper_line, bounded_line, deadline_line, cleaner_line) = lines;

    let root = t.root();
    assert_eq!(root.kind(), NodeKind::Run, "{t}");
    assert_eq!(root.children().len(), 1, "{t}");
    let server = &root.children()[0];
    assert_eq!(
        line_of(server),
        format!("nursery \"server\" at L{server_line}, age 12s")
    );
    let mut tasks: Vec<String> = server.children().iter().map(line_of).collect();
    tasks.sort();
    assert_eq!(
        tasks,
        [
            format!("task \"bounded\" at L{bounded_line}, age 10s"),
            format!("task \"cleaner\" at L{cleaner_line}, age 10s"),
            format!("task \"sleeper\" at L{sleeper_line}, age 10s"),
        ],
        "{t}"
    );
    for task in server.children() {
        assert_eq!(task.kind(), NodeKind::Task);
        assert!(!task.is_cancelled() && !task.is_shielded() && task.deadline().is_none());
    }

    let deadline = t.find("deadline").unwrap();
    assert_eq!(t.find("bounded").unwrap().children().len(), 1, "{t}");
    assert_eq!(deadline.kind(), NodeKind::Scope);
    assert_eq!(
        line_of(deadline),
        format!("scope \"deadline\" at L{deadline_line}, age 10s, deadline in 20s")
    );
    assert_eq!(deadline.deadline(), Some(t.taken_at() + secs(20)));

    let stopping = t.find("stopping").unwrap();
    assert!(stopping.is_cancelled(), "{t}");
    assert_eq!(
        stopping.cancel_reason().unwrap().message(),
        Some("shutdown")
    );
    assert_eq!(stopping.holders(), 1, "the shield inside: {t}");
    let reason = stopping.cancel_reason().unwrap().to_string();
    assert!(
        line_of(stopping).ends_with(&format!(", age 10s, {reason}, waiting for 1 holder")),
        "{t}"
    );
    let cleanup = t.find("cleanup").unwrap();
    assert_eq!(stopping.children().len(), 1, "{t}");
    assert!(cleanup.is_shielded() && !cleanup.is_cancelled(), "{t}");
    assert!(line_of(cleanup).ends_with(", age 10s, shielded"), "{t}");

    // The indented tree: one line per node, children under their parents.
    let dump = t.to_string();
    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(lines.len(), 8, "{dump}");
    assert_eq!(lines[0], "run");
    assert!(lines[1].starts_with("└── nursery \"server\" at "), "{dump}");
    let cleanup_line = lines
        .iter()
        .position(|l| l.contains("\"cleanup\""))
        .unwrap();
    assert!(
        lines[cleanup_line - 1].contains("scope \"stopping\""),
        "{dump}"
    );
    assert!(
        lines[cleanup_line].starts_with("    │       └── scope \"cleanup\"")
            || lines[cleanup_line].starts_with("            └── scope \"cleanup\""),
        "{dump}"
    );
}

/// O2: a snapshot taken in a task deep in the tree reaches the run's root, and sees the
/// other branches; an unnamed scope is in the tree when a nursery is open inside it (with
/// its deadline), and absent when nothing needs to find it from above.
#[hatchery::test(virtual_time)]
async fn o2_snapshot_from_anywhere_sees_the_whole_run() {
    let r = nursery(|n: Nursery<TestError>| async move {
        n.spawn_named("waiting", async {
            // Unnamed and holding nothing: not in the tree.
            move_on_after(secs(100), sleep(HOUR)).await;
            Ok(())
        });
        let t = move_on_after(secs(50), async {
            nursery(|m: Nursery<TestError>| async move {
                let deep = m.spawn_named("deep", async {
                    sleep(secs(5)).await;
                    Ok(tree())
                });
                Ok(deep.join().await.unwrap())
            })
            .named("right")
            .await
            .unwrap()
        })
        .await
        .unwrap();
        n.cancel();
        Ok(t)
    })
    .named("left")
    .await;
    let t = r.unwrap();
    let left = &t.root().children()[0];
    assert_eq!(left.name(), Some("left"), "{t}");
    let names: Vec<Option<&str>> = t.nodes().map(TreeNode::name).collect();
    assert!(names.contains(&Some("waiting")), "{t}");
    assert!(names.contains(&Some("deep")), "{t}");
    // The `move_on_after` around "right" holds a nursery: it is in the tree, unnamed,
    // with its deadline; the one inside "waiting" is not.
    let scopes: Vec<&TreeNode> = t.nodes().filter(|n| n.kind() == NodeKind::Scope).collect();
    assert_eq!(scopes.len(), 1, "{t}");
    assert_eq!(scopes[0].to_string(), "scope, deadline in 45s");
    assert_eq!(scopes[0].children()[0].name(), Some("right"), "{t}");
    assert!(t.find("waiting").unwrap().children().is_empty(), "{t}");
}

/// O2: a cancelled nursery's tasks stay in the tree until they have wound down (its
/// cancellation takes them out of its child list), each saying it was cancelled from
/// above and what it waits for; a task that has ended is gone.
#[hatchery::test(virtual_time)]
async fn o2_a_cancelled_subtree_shows_until_it_has_wound_down() {
    let r = nursery(|outer: Nursery<TestError>| async move {
        let watcher = outer.spawn(async {
            sleep(secs(2)).await; // the pool was cancelled at 1 s
            Ok(tree())
        });
        let r = nursery(|n: Nursery<TestError>| async move {
            n.spawn_named("quick", async {
                sleep(HOUR).await;
                Ok(())
            });
            n.spawn_named("slow", async {
                CancelScope::new()
                    .with_name("flush")
                    .with_shield(true)
                    .run(sleep(secs(5)))
                    .await;
                Ok(())
            });
            sleep(secs(1)).await;
            n.cancel_with("enough");
            Ok(())
        })
        .named("pool")
        .await;
        // The body did not suspend after its `cancel`: it returns its value (N4).
        assert_eq!(r, Ok(()));
        Ok(watcher.join().await.unwrap())
    })
    .await;
    let t = r.unwrap();
    let pool = t.find("pool").unwrap();
    assert!(pool.is_cancelled(), "{t}");
    assert!(
        pool.to_string().contains("cancelled: nursery cancelled at"),
        "{t}"
    );
    assert!(t.find("quick").is_none(), "ended at the cancellation: {t}");
    let slow = t.find("slow").unwrap();
    assert_eq!(pool.children().len(), 1, "{t}");
    assert!(slow.is_cancelled() && slow.holders() == 1, "{t}");
    assert!(
        slow.to_string()
            .ends_with(", cancelled from above, waiting for 1 holder"),
        "{t}"
    );
    let flush = &slow.children()[0];
    assert_eq!(flush.name(), Some("flush"), "{t}");
    assert!(flush.is_shielded() && !flush.is_cancelled(), "{t}");
    assert_eq!(flush.deadline(), None);
}
