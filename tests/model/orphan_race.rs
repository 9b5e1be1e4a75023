//! A nursery that finishes while an enclosing scope is cancelled from another thread is
//! not taken for one kept past a finished scope (which returns `Cancelled`): it returns
//! its value, or the enclosing scope catches the cancellation. The window is the walk up
//! its ancestors, so the scenario runs thousands of levels deep. A race: each test loops,
//! and fails if any round misbehaves (before the fix, most rounds did).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hatchery::{join, nursery, CancelScope, Nursery};
use hatchery_tests::{catch_panic, Backend, TestError};

const DEPTH: u32 = 4_000;
const ROUNDS: u32 = 300;

type BoxFut = Pin<Box<dyn Future<Output = Result<(), ()>> + Send>>;
type Scenario = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// `depth` nested tasks, each in a nursery of the level above; the innermost runs `f`.
fn nest(depth: u32, f: Scenario) -> BoxFut {
    Box::pin(async move {
        if depth == 0 {
            f().await;
            return Ok(());
        }
        nursery(|n| async move {
            n.spawn(nest(depth - 1, f));
            Ok::<_, ()>(())
        })
        .await
        .map_err(|_| ())
    })
}

/// A thread that cancels `handle` `delay` after `gate` opens.
fn canceller(
    gate: Arc<AtomicBool>,
    handle: hatchery::CancelHandle,
    delay: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !gate.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        let t = Instant::now();
        while t.elapsed() < delay {
            std::hint::spin_loop();
        }
        handle.cancel();
    })
}

#[derive(Default, Debug)]
struct Counts {
    ok: u32,
    caught: u32,
    bad: Vec<String>,
}

async fn rounds_nursery() -> Counts {
    let mut c = Counts::default();
    for round in 0..ROUNDS {
        let scope = CancelScope::new();
        let gate = Arc::new(AtomicBool::new(false));
        let t = canceller(
            gate.clone(),
            scope.handle(),
            Duration::from_micros(u64::from(round % 60)),
        );
        let out = scope
            .run(nursery(|n: Nursery<TestError>| async move {
                n.spawn(async move {
                    hatchery::checkpoint().await;
                    gate.store(true, Ordering::Release);
                    Ok(())
                });
                Ok(7)
            }))
            .await;
        t.join().unwrap();
        match out {
            Some(Ok(7)) => c.ok += 1,
            None => c.caught += 1,
            other => c.bad.push(format!("round {round}: {other:?}")),
        }
    }
    c
}

async fn rounds_join() -> Counts {
    let mut c = Counts::default();
    for round in 0..ROUNDS {
        let scope = CancelScope::new();
        let gate = Arc::new(AtomicBool::new(false));
        let t = canceller(
            gate.clone(),
            scope.handle(),
            Duration::from_micros(u64::from(round % 60)),
        );
        let g = gate.clone();
        let out = catch_panic(scope.run(join(vec![Box::pin(async move {
            hatchery::checkpoint().await;
            g.store(true, Ordering::Release);
            1
        })
            as Pin<Box<dyn Future<Output = i32> + Send>>])))
        .await;
        gate.store(true, Ordering::Release);
        t.join().unwrap();
        match out {
            Ok(Some(v)) if v == [1] => c.ok += 1,
            Ok(None) => c.caught += 1,
            Ok(other) => c.bad.push(format!("round {round}: {other:?}")),
            Err(panic) => c.bad.push(format!("round {round}: panic: {panic}")),
        }
    }
    c
}

fn check(backend: Backend, join_variant: bool) {
    let counts = Arc::new(std::sync::Mutex::new(None));
    let out = counts.clone();
    let f: Scenario = Arc::new(move || {
        let out = out.clone();
        Box::pin(async move {
            let c = if join_variant {
                rounds_join().await
            } else {
                rounds_nursery().await
            };
            *out.lock().unwrap() = Some(c);
        })
    });
    backend.run(nest(DEPTH, f)).unwrap();
    let c = counts.lock().unwrap().take().unwrap();
    eprintln!(
        "{backend:?} join={join_variant}: ok {} caught {} bad {}",
        c.ok,
        c.caught,
        c.bad.len()
    );
    assert!(
        c.bad.is_empty(),
        "{backend:?}: {:#?}",
        &c.bad[..c.bad.len().min(5)]
    );
}

#[test]
fn orphan_race_nursery_tokio_current() {
    check(Backend::TokioCurrent, false);
}
#[test]
fn orphan_race_nursery_tokio_multi() {
    check(Backend::TokioMulti, false);
}
#[test]
fn orphan_race_nursery_smol() {
    check(Backend::Smol, false);
}
#[test]
fn orphan_race_join_tokio_current() {
    check(Backend::TokioCurrent, true);
}
#[test]
fn orphan_race_join_smol() {
    check(Backend::Smol, true);
}
