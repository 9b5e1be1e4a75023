//! Randomized trees of polled and spawning nurseries, checked against the rules (E3 for
//! polled children: I1-I2, with N1-N5 and G2-G4 as they apply to them).
//!
//! Each case builds a random tree of spawning nurseries, polled nurseries
//! (`Polled::nursery`), polled combinators (`Polled::join`, `try_join`, `race`, a few
//! futures or more than fit their fast path; two as `join!`, `try_join!`), cancel scopes (timeouts, shields, explicit
//! cancels), `finally` cleanups and leaves that yield, sleep, fail or panic. Seeded
//! cancellations come at random points: a scope cancels itself, a polled nursery's
//! child cancels the nursery or a sibling through its handle, after a random number of
//! checkpoints. The polled nurseries and combinators keep their bookkeeping on their own
//! stack (counters their children borrow, not `Arc`s). The run checks, whatever the
//! timing:
//!
//! 1. **Structure (N1, I2).** No nursery or combinator is exited, by returning or by
//!    being dropped by a cancelled scope, while one of its children is alive: every
//!    child, and every borrow it held, is gone first.
//! 2. **Never a silent drop (N5, I2).** Every child spawned into a nursery, and every
//!    future given to a combinator, got its first poll before the nursery or the
//!    combinator was exited, even when it was cancelled before that poll.
//! 3. **No lost or duplicated error (N2, N4, G3, G4).** The errors that come out at the
//!    top are exactly the errors that leaves returned, each once, except those a rule
//!    lets go: the outputs of a race other than the winner's, and the outputs of a `join`
//!    or a `race` (where an error is an output) that an enclosing cancellation ended
//!    (G3). A `try_join` never reports `Cancelled` (G4), and is never ended by an
//!    enclosing cancellation after a future failed (G3).
//! 4. **In order (N2).** A polled nursery and a polled `try_join` report the errors of
//!    their children (and the body) in the order the children returned them: one task
//!    polls them all, so that order is well defined.
//! 5. **No lost panic (N3).** The run panics if and only if some leaf panicked.
//! 6. **The winner (G2).** A race returns the output of a future that finished.

use std::collections::BTreeSet;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hatchery::{checkpoint, finally, nursery, sleep, CancelScope, NurseryError, Polled};
use hatchery_tests::seeded::{self, planted_panic, Rng};
use hatchery_tests::trees::{generate, Cancel, End, Kind, Mix, Node, Tree};
use hatchery_tests::Backend;

/// The kinds of node these trees have, and how often each is drawn.
const MIX: &Mix = &[
    (Node::Nursery, 2),
    (Node::Polled, 3),
    (Node::Group, 3),
    (Node::Scope, 3),
    (Node::Finally, 1),
];

/// What the run observed.
#[derive(Default)]
struct Seen {
    /// Ids of leaves that returned an error.
    failed: Mutex<BTreeSet<u32>>,
    /// Ids of errors a rule lets go (a race's other outputs, G3).
    let_go: Mutex<BTreeSet<u32>>,
    /// Ids of leaves that panicked.
    panicked: Mutex<BTreeSet<u32>>,
    /// Rule violations.
    violations: Mutex<Vec<String>>,
}

impl Seen {
    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }
}

type Errs = Vec<u32>;
type BoxFut = Pin<Box<dyn Future<Output = Result<(), Errs>> + Send>>;

/// A nursery's or a combinator's children, counted on its own stack: checked when it is
/// exited (returned from, or dropped) that every child got its first poll and is gone.
#[derive(Default)]
struct Children {
    spawned: AtomicUsize,
    polled: AtomicUsize,
    live: AtomicUsize,
}

impl Children {
    /// A child is made: it counts as live until its guard is dropped.
    fn spawn(&self) -> Alive<'_> {
        self.spawned.fetch_add(1, Ordering::SeqCst);
        self.live.fetch_add(1, Ordering::SeqCst);
        Alive(&self.live)
    }

    fn polled(&self) {
        self.polled.fetch_add(1, Ordering::SeqCst);
    }
}

/// Checks a [`Children`] when dropped, at the exit of what owns it.
struct ExitCheck<'a> {
    what: &'static str,
    children: &'a Children,
    seen: &'a Seen,
}

impl Drop for ExitCheck<'_> {
    fn drop(&mut self) {
        let c = self.children;
        let live = c.live.load(Ordering::SeqCst);
        if live != 0 {
            self.seen
                .violation(format!("{} exited with {live} live children", self.what));
        }
        let (spawned, polled) = (
            c.spawned.load(Ordering::SeqCst),
            c.polled.load(Ordering::SeqCst),
        );
        if spawned != polled {
            self.seen.violation(format!(
                "{}: {spawned} children, {polled} polled before its exit",
                self.what
            ));
        }
    }
}

/// Alive while the child that holds it is: counts down when dropped.
struct Alive<'a>(&'a AtomicUsize);

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A child of a nursery or a `try_join`: counted, and its error recorded in the order
/// the children returned them.
async fn counted(
    fut: BoxFut,
    alive: Alive<'_>,
    kids: &Children,
    returned: &Mutex<Vec<Errs>>,
) -> Result<(), Errs> {
    let _alive = alive;
    kids.polled();
    record(returned, fut.await)
}

/// A child's (or a body's) result, its error recorded.
fn record(returned: &Mutex<Vec<Errs>>, r: Result<(), Errs>) -> Result<(), Errs> {
    if let Err(e) = &r {
        returned.lock().unwrap().push(e.clone());
    }
    r
}

/// A future of a `join` or a `race`: counted, and its output recorded with its index.
async fn indexed(
    i: usize,
    fut: BoxFut,
    alive: Alive<'_>,
    kids: &Children,
    outputs: &Mutex<Vec<(usize, Result<(), Errs>)>>,
) -> (usize, Result<(), Errs>) {
    let _alive = alive;
    kids.polled();
    let r = fut.await;
    outputs.lock().unwrap().push((i, r.clone()));
    (i, r)
}

/// [`Alive`] for a spawned task, which must be `'static`.
struct LiveTask(Arc<Children>);

impl Drop for LiveTask {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Polls `k` checkpoints.
async fn checkpoints(k: u32) {
    for _ in 0..k {
        checkpoint().await;
    }
}

/// The errors of a nursery's result (a cancelled one reports none).
fn nursery_errors(r: Result<(), NurseryError<Errs>>) -> Result<(), Vec<Errs>> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.is_cancelled() => Ok(()),
        Err(e) => Err(e.into_errors()),
    }
}

fn flat(errs: Vec<Errs>) -> Result<(), Errs> {
    let all: Errs = errs.into_iter().flatten().collect();
    if all.is_empty() {
        Ok(())
    } else {
        Err(all)
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
                                checkpoints(k).await;
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
                let kids = Arc::new(Children::default());
                let _check = ExitCheck {
                    what: "nursery",
                    children: &kids,
                    seen: &seen,
                };
                let r = nursery(|n| {
                    let seen = seen.clone();
                    let kids = kids.clone();
                    async move {
                        for child in children {
                            let fut = run_tree(child, seen.clone());
                            // Counted by the `Arc`: a spawned task is `'static`.
                            kids.spawned.fetch_add(1, Ordering::SeqCst);
                            kids.live.fetch_add(1, Ordering::SeqCst);
                            let alive = LiveTask(kids.clone());
                            n.spawn(async move {
                                alive.0.polled();
                                fut.await
                            });
                        }
                        run_tree(*body, seen).await
                    }
                })
                .await;
                // Spawned tasks run in parallel: their errors are compared as a set.
                nursery_errors(r).or_else(flat)
            }
            Tree::Polled {
                body,
                children,
                cancel,
            } => {
                // On this stack, borrowed by the children (rule I1).
                let kids = Children::default();
                let returned: Mutex<Vec<Errs>> = Mutex::new(Vec::new());
                let _check = ExitCheck {
                    what: "polled nursery",
                    children: &kids,
                    seen: &seen,
                };
                let (kids, returned, seen) = (&kids, &returned, &seen);
                let r = Polled::nursery(|n| async move {
                    let mut handles = Vec::new();
                    for child in children {
                        let fut = run_tree(child, seen.clone());
                        handles.push(n.spawn(counted(fut, kids.spawn(), kids, returned)));
                    }
                    match cancel {
                        Some(Cancel::Child { index, after }) => {
                            let handle = handles.swap_remove(index);
                            let alive = kids.spawn();
                            n.spawn(async move {
                                let _alive = alive;
                                kids.polled();
                                checkpoints(after).await;
                                handle.cancel();
                                Ok(())
                            });
                        }
                        Some(Cancel::Nursery { after }) => {
                            let nursery = n.clone();
                            let alive = kids.spawn();
                            n.spawn(async move {
                                let _alive = alive;
                                kids.polled();
                                checkpoints(after).await;
                                nursery.cancel();
                                Ok(())
                            });
                        }
                        None => {}
                    }
                    record(returned, run_tree(*body, seen.clone()).await)
                })
                .await;
                let r = nursery_errors(r);
                if let Err(reported) = &r {
                    let returned = returned.lock().unwrap();
                    if *reported != *returned {
                        seen.violation(format!(
                            "polled nursery reported {reported:?}, its children returned \
                             {returned:?} in that order (N2)"
                        ));
                    }
                }
                r.or_else(flat)
            }
            Tree::Group { kind, children } => {
                let kids = Children::default();
                // Errors in the order the futures returned them; every output.
                let returned: Mutex<Vec<Errs>> = Mutex::new(Vec::new());
                let outputs: Mutex<Vec<(usize, Result<(), Errs>)>> = Mutex::new(Vec::new());
                let done = AtomicBool::new(false);
                let _let_go = LetGo {
                    kind,
                    done: &done,
                    returned: &returned,
                    outputs: &outputs,
                    seen: &seen,
                };
                let _check = ExitCheck {
                    what: "polled combinator",
                    children: &kids,
                    seen: &seen,
                };
                let (kids, returned, outputs) = (&kids, &returned, &outputs);
                // Built in a loop, not with `Iterator::map`: a closure's borrows held across
                // an `.await` make rustc doubt that the future is `Send`.
                let mut futs = Vec::new();
                let mut results = Vec::new();
                for (i, child) in children.into_iter().enumerate() {
                    let fut = run_tree(child, seen.clone());
                    let alive = kids.spawn();
                    match kind {
                        Kind::TryJoin => {
                            results.push(counted(fut, alive, kids, returned));
                        }
                        _ => futs.push(indexed(i, fut, alive, kids, outputs)),
                    }
                }
                match kind {
                    Kind::Join => {
                        // Two futures: the tuple form (its slots in place), as often.
                        let outs = if futs.len() == 2 {
                            let (b, a) = (futs.pop(), futs.pop());
                            let (a, b) = hatchery::join!(Polled: a.unwrap(), b.unwrap());
                            vec![a, b]
                        } else {
                            Polled::join(futs).await
                        };
                        done.store(true, Ordering::SeqCst);
                        flat(outs.into_iter().filter_map(|(_, r)| r.err()).collect())
                    }
                    Kind::TryJoin => {
                        let r = if results.len() == 2 {
                            let (b, a) = (results.pop(), results.pop());
                            hatchery::try_join!(Polled: a.unwrap(), b.unwrap())
                                .map(|(a, b)| vec![a, b])
                        } else {
                            Polled::try_join(results).await
                        };
                        done.store(true, Ordering::SeqCst);
                        match r {
                            Ok(_) => Ok(()),
                            Err(NurseryError::Failed(reported)) => {
                                let returned = returned.lock().unwrap();
                                if reported != *returned {
                                    seen.violation(format!(
                                        "try_join reported {reported:?}, its futures returned \
                                         {returned:?} in that order (N2, G4)"
                                    ));
                                }
                                flat(reported)
                            }
                            Err(e) => {
                                seen.violation(format!("try_join returned {e:?} (G4)"));
                                Ok(())
                            }
                        }
                    }
                    Kind::Race => {
                        let (winner, r) = Polled::race(futs).await;
                        done.store(true, Ordering::SeqCst);
                        let outputs = outputs.lock().unwrap();
                        if !outputs.iter().any(|(i, o)| *i == winner && *o == r) {
                            seen.violation(format!(
                                "race returned {:?} of future {winner}, which did not \
                                 finish with it (G2)",
                                r
                            ));
                        }
                        // The other outputs are let go by design: a race returns one.
                        for (_, o) in outputs.iter().filter(|(i, _)| *i != winner) {
                            if let Err(e) = o {
                                seen.let_go.lock().unwrap().extend(e);
                            }
                        }
                        r
                    }
                }
            }
        }
    })
}

/// At the exit of a combinator that did not return (an enclosing cancellation ended it):
/// where errors are outputs (`join`, `race`), those of the futures that finished are let
/// go (G3); a `try_join` with a failed future would have returned (G3).
struct LetGo<'a> {
    kind: Kind,
    done: &'a AtomicBool,
    returned: &'a Mutex<Vec<Errs>>,
    outputs: &'a Mutex<Vec<(usize, Result<(), Errs>)>>,
    seen: &'a Seen,
}

impl Drop for LetGo<'_> {
    fn drop(&mut self) {
        if self.done.load(Ordering::SeqCst) || std::thread::panicking() {
            return;
        }
        match self.kind {
            Kind::TryJoin => {
                let returned = self.returned.lock().unwrap();
                if !returned.is_empty() {
                    self.seen.violation(format!(
                        "try_join ended by a cancellation after its futures returned \
                         {returned:?} (G3)"
                    ));
                }
            }
            Kind::Join | Kind::Race => {
                let outputs = self.outputs.lock().unwrap();
                let mut let_go = self.seen.let_go.lock().unwrap();
                for (_, o) in outputs.iter() {
                    if let Err(e) = o {
                        let_go.extend(e);
                    }
                }
            }
        }
    }
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
        let got = r.err().unwrap_or_default();
        let unique: BTreeSet<u32> = got.iter().copied().collect();
        assert_eq!(
            unique.len(),
            got.len(),
            "{backend:?} seed {seed}: an error reported twice: {got:?}\n{tree:#?}"
        );
        let let_go = seen.let_go.lock().unwrap().clone();
        let expected: BTreeSet<u32> = seen
            .failed
            .lock()
            .unwrap()
            .difference(&let_go)
            .copied()
            .collect();
        let got: BTreeSet<u32> = unique.difference(&let_go).copied().collect();
        assert_eq!(
            got, expected,
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
fn polled_random_trees_tokio_current() {
    check_backend(Backend::TokioCurrent);
}

#[test]
fn polled_random_trees_tokio_multi() {
    check_backend(Backend::TokioMulti);
}

#[test]
fn polled_random_trees_smol() {
    check_backend(Backend::Smol);
}
