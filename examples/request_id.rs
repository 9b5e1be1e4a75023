//! A request id, set once at the top, seen by every piece of work done for the request:
//! the children of its nursery and theirs, work sent to a thread and its calls back, and
//! the tasks a blocking portal runs for a plain thread. The same code runs on tokio, smol,
//! compio and the deterministic simulator (which runs no threads: there the thread's part is
//! left out, as the simulator refuses blocking work).
//!
//! ```text
//! cargo run --example request_id
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hatchery::from_thread::{self, blocking_portal};
use hatchery::{nursery, sleep, to_thread, ContextKey, Nursery};

/// The id of the request being served, wherever its work runs.
static REQUEST_ID: ContextKey<u32> = ContextKey::new("request_id");

/// Where the work of every request logs: `(the id the line was logged under, what)`.
type Log = Arc<Mutex<Vec<(Option<u32>, String)>>>;

/// Logs `what` with the request id of the code that calls it: no parameter for the id.
fn log(lines: &Log, what: impl Into<String>) {
    lines.lock().unwrap().push((REQUEST_ID.get(), what.into()));
}

/// Serves one request: two lookups in parallel, one of which fans out again, and, with
/// threads, a hash on a thread that calls back into the runtime, and a plain thread that
/// asks a portal for work.
async fn handle(lines: Log, threads: bool) -> anyhow::Result<()> {
    log(&lines, "handle: start");
    nursery(|n: Nursery<anyhow::Error>| async move {
        for name in ["users", "orders"] {
            let (lines, n2) = (lines.clone(), n.clone());
            n.spawn(async move {
                sleep(Duration::from_millis(5)).await;
                log(&lines, format!("lookup {name}"));
                if name == "orders" {
                    n2.spawn(async move {
                        sleep(Duration::from_millis(5)).await;
                        log(&lines, "lookup order lines");
                        Ok(())
                    });
                }
                Ok(())
            });
        }
        if threads {
            let l = lines.clone();
            to_thread::run_sync(move || {
                log(&l, "hash on a thread");
                let back = l.clone();
                from_thread::run(async move { log(&back, "called back from the thread") })
            })
            .await?;
            let l = lines.clone();
            blocking_portal(|portal| async move {
                let plain = std::thread::spawn(move || {
                    // A thread hatchery did not start: the portal's task gets the id
                    // of the code the portal serves in.
                    portal.call(async move { log(&l, "portal task for a plain thread") })
                });
                hatchery::run_blocking(move || plain.join().expect("the thread")).await
            })
            .await?;
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// Serves three requests at once, each under its own id, and returns the log by id.
async fn serve(threads: bool) -> BTreeMap<Option<u32>, Vec<String>> {
    let lines: Log = Arc::default();
    let l = lines.clone();
    nursery(|n: Nursery<anyhow::Error>| async move {
        for id in [101, 102, 103] {
            n.spawn(REQUEST_ID.scope(id, handle(l.clone(), threads)));
        }
        Ok(())
    })
    .await
    .expect("a request failed");
    log(&lines, "served");
    let mut by_id = BTreeMap::<_, Vec<_>>::new();
    for (id, what) in lines.lock().unwrap().drain(..) {
        by_id.entry(id).or_default().push(what);
    }
    for lines in by_id.values_mut() {
        lines.sort();
    }
    by_id
}

/// What `serve` must log for each request (sorted), with threads or without.
fn expected(threads: bool) -> Vec<&'static str> {
    let mut lines = vec![
        "handle: start",
        "lookup order lines",
        "lookup orders",
        "lookup users",
    ];
    if threads {
        lines.extend([
            "called back from the thread",
            "hash on a thread",
            "portal task for a plain thread",
        ]);
    }
    lines.sort();
    lines
}

fn check(backend: &str, by_id: &BTreeMap<Option<u32>, Vec<String>>, threads: bool) {
    println!("{backend}:");
    for (id, lines) in by_id {
        let id = id.map_or("-".to_string(), |id| id.to_string());
        println!("  [{id:>3}] {}", lines.join(", "));
    }
    for id in [101, 102, 103] {
        assert_eq!(
            by_id[&Some(id)],
            expected(threads),
            "request {id} on {backend}"
        );
    }
    assert_eq!(
        by_id[&None],
        ["served"],
        "on {backend}: a line without its id"
    );
}

fn main() {
    check("tokio", &hatchery_tokio::run(serve(true)), true);
    check("smol", &hatchery_smol::run(serve(true)), true);
    check("compio", &hatchery_compio::run(serve(true)), true);
    check("the simulator", &hatchery_sim::run(serve(false)), false);
}

#[test]
fn every_line_carries_its_request_id() {
    main();
}
