//! Randomized scope/nursery trees checked against a simple model (rule E3).
//!
//! Each case builds a random tree of nurseries, cancel scopes (timeouts, shields, explicit
//! cancels), `finally` cleanups and leaves that yield, sleep, fail or panic, runs it, and
//! checks three things that must hold whatever the timing:
//!
//! 1. **Structure (N1).** No nursery is exited, by returning or by being dropped by a
//!    cancelled scope, while one of its children is still alive.
//! 2. **No lost or duplicated error (N2).** The set of errors that come out at the top is
//!    exactly the set of errors that leaves returned.
//! 3. **No lost panic (N3).** The run panics if and only if some leaf panicked.

use std::collections::BTreeSet;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hatchery::{checkpoint, finally, nursery, sleep, CancelScope};
use hatchery_tests::seeded::{self, planted_panic, Rng};
use hatchery_tests::trees::{generate, End, Mix, Node, Tree};
use hatchery_tests::Backend;

/// The kinds of node these trees have (no polled ones), and how often each is drawn.
const MIX: &Mix = &[(Node::Nursery, 4), (Node::Scope, 4), (Node::Finally, 2)];

/// What the run observed.
#[derive(Default)]
struct Seen {
    /// Ids of leaves that returned an error.
    failed: Mutex<BTreeSet<u32>>,
    /// Ids of leaves that panicked.
    panicked: Mutex<BTreeSet<u32>>,
    /// Structure violations.
    violations: Mutex<Vec<String>>,
}

type Errs = Vec<u32>;
type BoxFut = Pin<Box<dyn Future<Output = Result<(), Errs>> + Send>>;

/// Counts a nursery's live children; checks on drop that none is left.
struct LiveCheck {
    live: Arc<AtomicUsize>,
    seen: Arc<Seen>,
}

impl Drop for LiveCheck {
    fn drop(&mut self) {
        let n = self.live.load(Ordering::SeqCst);
        if n != 0 {
            self.seen
                .violations
                .lock()
                .unwrap()
                .push(format!("nursery exited with {n} live children"));
        }
    }
}

struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn run_tree(tree: Tree, seen: Arc<Seen>) -> BoxFut {
    Box::pin(async move {
        match tree {
            Tree::Leaf {
                id,
                steps,
                sleep: use_sleep,
                end,
            } => {
                for _ in 0..steps {
                    if use_sleep {
                        sleep(Duration::from_micros(300)).await;
                    } else {
                        checkpoint().await;
                    }
                }
                match end {
                    End::Ok => Ok(()),
                    End::Fail => {
                        seen.failed.lock().unwrap().insert(id);
                        Err(vec![id])
                    }
                    End::Panic => {
                        seen.panicked.lock().unwrap().insert(id);
                        planted_panic(format!("leaf {id} panics"));
                    }
                }
            }
            Tree::Scope {
                timeout_us,
                shield: sh,
                cancel_after,
                body,
            } => {
                let mut scope = CancelScope::new().with_shield(sh);
                if let Some(us) = timeout_us {
                    scope = scope.with_timeout(Duration::from_micros(us));
                }
                let handle = scope.handle();
                let body = run_tree(*body, seen.clone());
                let work = async move {
                    match cancel_after {
                        None => body.await,
                        Some(k) => {
                            // Cancel our own scope after `k` checkpoints, concurrently.
                            let canceller = async move {
                                for _ in 0..k {
                                    checkpoint().await;
                                }
                                handle.cancel();
                                std::future::pending::<Result<(), Errs>>().await
                            };
                            futures_lite::future::or(body, canceller).await
                        }
                    }
                };
                scope.run(work).await.unwrap_or(Ok(()))
            }
            Tree::Finally { body, cleanup } => {
                let cleanup = run_tree(*cleanup, seen.clone());
                let errs = Arc::new(Mutex::new(Vec::new()));
                let errs2 = errs.clone();
                let r = finally(run_tree(*body, seen.clone()), async move {
                    if let Err(e) = cleanup.await {
                        errs2.lock().unwrap().extend(e);
                    }
                })
                .await;
                let mut all = r.err().unwrap_or_default();
                all.extend(errs.lock().unwrap().drain(..));
                if all.is_empty() {
                    Ok(())
                } else {
                    Err(all)
                }
            }
            Tree::Nursery { body, children } => {
                let live = Arc::new(AtomicUsize::new(0));
                let _check = LiveCheck {
                    live: live.clone(),
                    seen: seen.clone(),
                };
                let r = nursery(|n| {
                    let seen = seen.clone();
                    async move {
                        for child in children {
                            live.fetch_add(1, Ordering::SeqCst);
                            let alive = Alive(live.clone());
                            let fut = run_tree(child, seen.clone());
                            n.spawn(async move {
                                let _alive = alive;
                                fut.await
                            });
                        }
                        run_tree(*body, seen).await
                    }
                })
                .await;
                match r {
                    Ok(()) => Ok(()),
                    Err(e) if e.is_cancelled() => Ok(()),
                    Err(e) => Err(e.into_errors().into_iter().flatten().collect()),
                }
            }
            Tree::Polled { .. } | Tree::Group { .. } => unreachable!("not in this test's mix"),
        }
    })
}

fn check_case(seed: u64, backend: Backend) {
    let mut rng = Rng::seeded(seed);
    let mut ids = 0;
    let tree = generate(&mut rng, MIX, 4, &mut ids);
    let seen = Arc::new(Seen::default());
    let fut = run_tree(tree.clone(), seen.clone());
    let out = catch_unwind(AssertUnwindSafe(|| backend.run(fut)));
    let violations = seen.violations.lock().unwrap().clone();
    assert!(
        violations.is_empty(),
        "{backend:?} seed {seed}: {violations:?}\n{tree:#?}"
    );
    let panicked = !seen.panicked.lock().unwrap().is_empty();
    assert_eq!(
        out.is_err(),
        panicked,
        "{backend:?} seed {seed}: a panic surfaced: {}, a leaf panicked: {panicked}\n{tree:#?}",
        out.is_err()
    );
    if let Ok(r) = out {
        let got: BTreeSet<u32> = r.err().unwrap_or_default().into_iter().collect();
        let failed = seen.failed.lock().unwrap().clone();
        assert_eq!(
            got, failed,
            "{backend:?} seed {seed}: errors out vs. errors returned\n{tree:#?}"
        );
    }
}

/// Cases per backend (`HATCHERY_TEST_CASES` and `HATCHERY_TEST_SEED` choose others:
/// [`seeded`]).
const CASES: u64 = 1000;

fn check_backend(backend: Backend) {
    seeded::check(CASES, |seed| check_case(seed, backend));
}

#[test]
fn e3_random_trees_tokio_current() {
    check_backend(Backend::TokioCurrent);
}

#[test]
fn e3_random_trees_tokio_multi() {
    check_backend(Backend::TokioMulti);
}

#[test]
fn e3_random_trees_smol() {
    check_backend(Backend::Smol);
}
