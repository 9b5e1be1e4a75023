//! Randomized deadline and time trees on the virtual clock, checked against a model.
//!
//! [`random_trees`](../random_trees.rs) checks what must hold whatever the timing. Here
//! the timing is the point: each case builds a random tree of cancel scopes with deadlines
//! and timeouts (`move_on_after`, `move_on_at`, `fail_after`, `fail_at`, `CancelScope`
//! with `with_timeout` / `with_deadline`, run or `fail`, some shielded, and `shield`;
//! now and then `Duration::MAX` or an instant a century ahead, C4), nurseries with
//! children and `start`ed tasks, `finally` with shielded cleanups that sleep, and leaves
//! that `sleep`, `sleep_until` and `checkpoint`. A controller task cancels scopes through
//! their handles and moves their deadlines (earlier, later, away), cancels nurseries
//! (N4) and single tasks (N7), at chosen instants. Under virtual time the outcome is
//! exactly predictable, so a small interpreter of trio's rules (the [`Model`] below)
//! computes it, and the run must match it exactly on every backend:
//!
//! * every leaf: the instant it finished, or the operation it was cancelled in and the
//!   instant it was dropped; `current_effective_deadline()` at its start and end (C7);
//! * every scope, nursery, `finally` and `start` that returns: the instant and the value
//!   (`Some`/`None`, `Ok`/`Err(Elapsed)`, `Ok(None)` for a `fail` cancelled by hand,
//!   `Err(NurseryError::Cancelled)`); a cancelled task's `join`;
//! * every handle: `cancel_called()`, `cancelled_caught()` and `deadline()` at the end;
//! * the total `elapsed()`.
//!
//! Times are whole seconds, so ties are frequent: a deadline and a sleep due at the same
//! instant (the deadline wins, as in trio), two deadlines at once (the outermost scope
//! catches), a deadline that has passed on entry (the body runs to its first suspension
//! point). The controller acts at instants with a fractional part of its own (action `i`
//! at `k + f/16` s, no two actions with the same `f`), so that nothing else is ever due
//! at the same instant: which of two tasks woken at one instant runs first is up to the
//! executor.
//!
//! Where the model follows hatchery rather than trio (both documented): a nursery under
//! a cancelled scope never returns once it has suspended, but one that finishes in its
//! first poll (its body never returned `Pending`, no children) returns its value (C1,
//! N4); `current_effective_deadline()` may still be `At(now)` for a deadline due at this
//! very instant that its scope has not noticed yet (D6, D10).
//!
//! # What the model leaves out
//!
//! Some ties between *tasks* are genuinely racy on a multi-threaded executor; the model
//! recognizes these cases and the test skips them (it counts them, and checks that they
//! stay rare; `HATCHERY_TEST_STATS=1` runs them anyway and prints how they differ):
//!
//! * code that runs in one task at the very instant a scope in *another* task reaches its
//!   deadline (through its timer), and that could tell whether that scope has noticed it
//!   yet: a `checkpoint` (or a sleep already due) there, or a `started()` call. (A sleep
//!   that ends at that instant is not racy: the deadline wins, whoever notices first.)
//! * a nursery whose body finished without suspending and whose children all finished at
//!   that same instant: whether the nursery sees them finished in its first poll (and so
//!   "never suspended", C1) depends on the threads.
//!
//! And `cancel_called()` follows hatchery's documented rule (H2, D6: it does not read
//! the clock; a deadline counts once the scope has seen it pass): the model checks it
//! where that is decided: not when the deadline passes at the very instant the scope
//! ends, nor when an enclosing scope is cancelled at that same instant (which is noticed
//! first depends on the tasks). An enclosing cancellation that came before makes it
//! `false` (the scope no longer looks at its deadline; trio would say `true`). A
//! `set_deadline` to an instant that has passed is seen when it is called (D5): `true` if
//! the scope still runs then, an enclosing cancellation or not, as in trio.
//!
//! The seeds come from the harness of the seeded tests ([`seeded`]): 3000 cases per
//! backend unless `HATCHERY_TEST_CASES` says otherwise, `HATCHERY_TEST_SEED` replays one;
//! a failure prints the seed, the tree, the differences and the line that replays it.
//! `HATCHERY_TEST_STATS=1` also prints how often each path of the model ran, and each
//! outcome.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hatchery::testing::{elapsed, virtual_time};
use hatchery::{
    checkpoint, current_effective_deadline, fail_after, fail_at, finally, move_on_after,
    move_on_at, now, nursery, shield, sleep, sleep_until, CancelHandle, CancelScope, Deadline,
    Nursery, TaskHandle,
};
use hatchery_tests::seeded::{self, Rng};
use hatchery_tests::Backend;

// ----- time -----

/// Ticks per second: the model counts time in sixteenths of a second.
const TICKS: u64 = 16;
const TICK_NANOS: u64 = 1_000_000_000 / TICKS;

fn dur(ticks: u64) -> Duration {
    Duration::from_nanos(ticks * TICK_NANOS)
}

/// A timeout of `Duration::MAX`: no deadline (C4).
const FOREVER: u64 = u64::MAX;
/// An instant a century after the start, in seconds: a deadline that never comes (C4).
const FAR: u64 = 100 * 365 * 24 * 3600;

/// A timeout of `secs` seconds, or `Duration::MAX` for [`FOREVER`].
fn timeout(secs: u64) -> Duration {
    if secs == FOREVER {
        Duration::MAX
    } else {
        dur(secs * TICKS)
    }
}

/// The deadline (in ticks) of a timeout of `secs` entered at `t_in`.
fn after(t_in: u64, secs: u64) -> Option<u64> {
    (secs != FOREVER).then(|| t_in + secs * TICKS)
}

/// The run's virtual time, in ticks (`u64::MAX` if it is not a whole number of ticks).
fn now_ticks() -> u64 {
    let nanos = elapsed().as_nanos();
    let tick = u128::from(TICK_NANOS);
    if nanos % tick == 0 {
        u64::try_from(nanos / tick).unwrap_or(u64::MAX)
    } else {
        u64::MAX
    }
}

// ----- random trees -----

/// One suspension of a leaf. Durations and instants are whole seconds.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// `sleep(secs)`.
    Sleep(u64),
    /// `sleep_until(start + secs)`, `start` being the instant the run began.
    Until(u64),
    /// `checkpoint()`.
    Checkpoint,
}

/// The deadline a `CancelScope` is built with.
#[derive(Debug, Clone, Copy)]
enum Limit {
    None,
    /// `with_timeout(secs)`: from entry.
    Timeout(u64),
    /// `with_deadline(start + secs)`.
    At(u64),
}

#[derive(Debug, Clone, Copy)]
enum ScopeKind {
    MoveOnAfter(u64),
    MoveOnAt(u64),
    FailAfter(u64),
    FailAt(u64),
    /// `shield(body)`.
    Shield,
    /// `CancelScope::new()` with a handle (that the controller may use), run with `run`
    /// or (`fail`) with `fail`.
    Custom {
        limit: Limit,
        shield: bool,
        fail: bool,
    },
}

#[derive(Debug, Clone)]
enum Tree {
    /// Suspends as `ops` say, then finishes.
    Leaf { id: u32, ops: Vec<Op> },
    /// Runs each in turn.
    Seq(Vec<Tree>),
    Scope {
        id: u32,
        kind: ScopeKind,
        body: Box<Tree>,
    },
    /// Spawns `children` (each with the id of its task), then runs `body` (where
    /// `Start`s go into this nursery).
    Nursery {
        id: u32,
        children: Vec<(u32, Tree)>,
        body: Box<Tree>,
    },
    /// `n.start(..)` into the innermost nursery whose body this is: the task runs `pre`
    /// (under the caller's cancellation), calls `started`, then runs `post` (in the
    /// nursery).
    Start {
        id: u32,
        pre: Box<Tree>,
        post: Box<Tree>,
    },
    /// `finally(work, cleanup)`.
    Finally {
        id: u32,
        work: Box<Tree>,
        cleanup: Box<Tree>,
    },
}

/// What the controller acts on: a `CancelScope`'s handle, a `Nursery` (only `cancel`),
/// a spawned task's `TaskHandle` (only `cancel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Scope,
    Nursery,
    Task,
}

/// What the controller does to a scope through its handle.
#[derive(Debug, Clone, Copy)]
enum Act {
    Cancel,
    /// `set_deadline(start + secs)`.
    SetAt(u64),
    /// `set_deadline(now() + secs)`.
    SetIn(u64),
    /// `set_deadline(None)`.
    Remove,
}

#[derive(Debug, Clone, Copy)]
struct Action {
    /// In ticks; never a whole second, and no two actions share their fraction.
    at: u64,
    target: u32,
    kind: Target,
    act: Act,
}

#[derive(Debug, Clone)]
struct Case {
    tree: Tree,
    actions: Vec<Action>,
}

/// The shape of the trees of a case, drawn per seed.
struct Profile {
    depth: u32,
    /// Percent of nodes above the leaves that are leaves anyway.
    leaf: u64,
    /// Percent of scopes that are `CancelScope`s with a handle.
    custom: u64,
    /// Percent of leaf operations that are checkpoints (the rest: sleeps).
    checkpoints: u64,
    /// Percent of nursery-body nodes that are `start`s.
    starts: u64,
    /// Up to this many controller actions.
    actions: u64,
}

struct Gen<'a> {
    rng: &'a mut Rng,
    p: Profile,
    next_id: u32,
    /// What the controller may act on: `Custom` scopes (they have handles), nurseries,
    /// spawned tasks.
    handles: Vec<(u32, Target)>,
}

impl Gen<'_> {
    fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    fn leaf(&mut self, max_ops: u64) -> Tree {
        let n = if self.rng.chance(12) {
            0
        } else {
            1 + self.rng.below_u64(max_ops)
        };
        let ops = (0..n)
            .map(|_| {
                if self.rng.chance(self.p.checkpoints) {
                    Op::Checkpoint
                } else if self.rng.chance(70) {
                    Op::Sleep(self.rng.below_u64(4))
                } else {
                    Op::Until(self.rng.below_u64(10))
                }
            })
            .collect();
        Tree::Leaf { id: self.id(), ops }
    }

    /// A tree; `body_of` says whether this code runs in a nursery's body (in its task),
    /// where `Start`s may go.
    fn tree(&mut self, depth: u32, body_of: bool) -> Tree {
        if depth == 0 || self.rng.chance(self.p.leaf) {
            return self.leaf(3);
        }
        if body_of && self.rng.chance(self.p.starts) {
            return Tree::Start {
                id: self.id(),
                pre: Box::new(if self.rng.chance(70) {
                    self.leaf(2)
                } else {
                    self.tree(depth.min(3) - 1, false)
                }),
                post: Box::new(self.tree(depth - 1, false)),
            };
        }
        match self.rng.below_u64(100) {
            0..=39 => self.scope(depth, body_of),
            40..=56 => {
                let id = self.id();
                if self.rng.chance(30) {
                    self.handles.push((id, Target::Nursery));
                }
                let children = (0..self.rng.below_u64(3))
                    .map(|_| {
                        let task = self.id();
                        if self.rng.chance(20) {
                            self.handles.push((task, Target::Task));
                        }
                        (task, self.tree(depth - 1, false))
                    })
                    .collect();
                Tree::Nursery {
                    id,
                    children,
                    body: Box::new(self.tree(depth - 1, true)),
                }
            }
            57..=79 => Tree::Finally {
                id: self.id(),
                work: Box::new(self.tree(depth - 1, body_of)),
                cleanup: Box::new(self.tree(depth.min(2) - 1, body_of)),
            },
            _ => Tree::Seq(
                (0..2 + self.rng.below_u64(2))
                    .map(|_| self.tree(depth - 1, body_of))
                    .collect(),
            ),
        }
    }

    fn scope(&mut self, depth: u32, body_of: bool) -> Tree {
        let id = self.id();
        let secs = if self.rng.chance(4) {
            FOREVER
        } else {
            self.rng.below_u64(5)
        };
        let at = if self.rng.chance(4) {
            FAR
        } else {
            self.rng.below_u64(10)
        };
        let kind = if self.rng.chance(100 - self.p.custom) {
            match self.rng.below_u64(100) {
                0..=29 => ScopeKind::MoveOnAfter(secs),
                30..=49 => ScopeKind::MoveOnAt(at),
                50..=69 => ScopeKind::FailAfter(secs),
                70..=84 => ScopeKind::FailAt(at),
                _ => ScopeKind::Shield,
            }
        } else {
            {
                self.handles.push((id, Target::Scope));
                let limit = match self.rng.below_u64(3) {
                    0 => Limit::None,
                    1 => Limit::Timeout(secs),
                    _ => Limit::At(at),
                };
                ScopeKind::Custom {
                    limit,
                    shield: self.rng.chance(25),
                    fail: self.rng.chance(50),
                }
            }
        };
        Tree::Scope {
            id,
            kind,
            body: Box::new(self.tree(depth - 1, body_of)),
        }
    }
}

fn gen_case(seed: u64) -> Case {
    let mut rng = Rng::seeded(seed);
    let p = Profile {
        depth: 3 + rng.below_u64(4) as u32,
        leaf: 10 + rng.below_u64(20),
        custom: 30 + rng.below_u64(50),
        checkpoints: 10 + rng.below_u64(30),
        starts: rng.below_u64(30),
        actions: 2 + rng.below_u64(7),
    };
    let (depth, max_actions) = (p.depth, p.actions);
    let mut g = Gen {
        rng: &mut rng,
        p,
        next_id: 0,
        handles: Vec::new(),
    };
    let tree = g.tree(depth, false);
    let handles = std::mem::take(&mut g.handles);
    let mut actions = Vec::new();
    if !handles.is_empty() {
        let count = rng.below_u64(max_actions + 1);
        // Distinct fractions (1..=15 sixteenths), so that no two actions, and nothing
        // else, ever fall on the same instant.
        let mut fractions: Vec<u64> = (1..TICKS).collect();
        for _ in 0..count {
            let f = fractions.remove(rng.below_u64(fractions.len() as u64) as usize);
            let (target, kind) = handles[rng.below_u64(handles.len() as u64) as usize];
            let act = match rng.below_u64(100) {
                _ if kind != Target::Scope => Act::Cancel,
                0..=39 => Act::Cancel,
                40..=44 => Act::SetAt(FAR),
                45..=74 => Act::SetAt(rng.below_u64(11)),
                75..=89 => Act::SetIn(1 + rng.below_u64(3)),
                _ => Act::Remove,
            };
            actions.push(Action {
                at: rng.below_u64(10) * TICKS + f,
                target,
                kind,
                act,
            });
        }
        actions.sort_by_key(|a| a.at);
    }
    Case { tree, actions }
}

// ----- what a run shows -----

/// A scope's (or nursery's, `finally`'s, `start`'s) return value, as far as the test
/// tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    /// A nursery, `finally`, `start` or `shield` that returned (`Ok(())` / `()`).
    Unit,
    /// `run` / `move_on_*`.
    Some,
    None,
    /// `fail_after` / `fail_at`.
    Ok,
    Elapsed,
    /// `CancelScope::fail`: `Ok(Some(()))` and `Ok(None)` (`Err` is `Elapsed`).
    OkSome,
    OkNone,
    /// A nursery's `Err(NurseryError::Cancelled)`.
    Cancelled,
    /// Anything else (an error from a nursery or `start`): never expected.
    Other,
}

/// `current_effective_deadline()`, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ced {
    Cancelled,
    At(u64),
    Never,
    /// Only in the model: a deadline due at this very tick that its scope may not have
    /// noticed yet (`cancel_called` does not read the clock either, H2): `Cancelled` or
    /// `At(this tick)`, both allowed by D10.
    Due(u64),
}

impl Ced {
    fn matches(self, run: Ced) -> bool {
        match self {
            Ced::Due(t) => run == Ced::Cancelled || run == Ced::At(t),
            model => model == run,
        }
    }
}

fn ced(start: Instant) -> Ced {
    match current_effective_deadline() {
        Deadline::Cancelled => Ced::Cancelled,
        Deadline::Never => Ced::Never,
        Deadline::At(at) => {
            let nanos = at.saturating_duration_since(start).as_nanos();
            let tick = u128::from(TICK_NANOS);
            if at >= start && nanos % tick == 0 {
                Ced::At(u64::try_from(nanos / tick).unwrap_or(u64::MAX))
            } else {
                Ced::At(u64::MAX)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Obs {
    /// A leaf finished at this tick; `current_effective_deadline()` at its start and at
    /// its end.
    Done { at: u64, first: Ced, last: Ced },
    /// A leaf was dropped in its operation `op` (0-based), at this tick.
    Cancelled { op: usize, at: u64, first: Ced },
    /// A scope, nursery, `finally` or `start` returned this value at this tick.
    Returned { at: u64, val: Val },
    /// A spawned task that the controller may cancel: whether `join` gave its value
    /// (else it was cancelled).
    Joined(bool),
}

/// A handle's `cancel_called()` (`None` in the model: not checked),
/// `cancelled_caught()` and `deadline()` (in ticks) at the end of the run.
type Flags = (Option<bool>, bool, Option<u64>);

#[derive(Debug, PartialEq)]
struct Outcome {
    obs: BTreeMap<u32, Obs>,
    flags: BTreeMap<u32, Flags>,
    total: u64,
}

// ----- the run -----

struct Shared {
    start: Instant,
    log: Mutex<Vec<(u32, Obs)>>,
    scopes: Mutex<HashMap<u32, CancelScope>>,
    /// Open (and finished) nurseries and spawned tasks, for the controller.
    nurseries: Mutex<HashMap<u32, N>>,
    tasks: Mutex<HashMap<u32, TaskHandle<()>>>,
}

impl Shared {
    fn record(&self, id: u32, obs: Obs) {
        self.log.lock().unwrap().push((id, obs));
    }
    fn at(&self, secs: u64) -> Instant {
        self.start + dur(secs * TICKS)
    }
}

type BoxFut = Pin<Box<dyn Future<Output = ()> + Send>>;
type N = Nursery<Infallible>;

/// Records a leaf's drop before it finished.
struct LeafGuard {
    id: u32,
    op: usize,
    first: Ced,
    done: bool,
    shared: Arc<Shared>,
}

impl Drop for LeafGuard {
    fn drop(&mut self) {
        // Not when the run unwinds (a deadlock it reported, say): its tasks are dropped
        // outside it then, where there is no clock to read, and a second panic would
        // abort the whole test binary.
        if !self.done && !std::thread::panicking() {
            let at = now_ticks();
            self.shared.record(
                self.id,
                Obs::Cancelled {
                    op: self.op,
                    at,
                    first: self.first,
                },
            );
        }
    }
}

/// Builds the `Custom` scopes (with their handles) before the run.
fn build_scopes(
    tree: &Tree,
    shared: &Shared,
    scopes: &mut HashMap<u32, CancelScope>,
    handles: &mut BTreeMap<u32, CancelHandle>,
) {
    match tree {
        Tree::Leaf { .. } => {}
        Tree::Seq(items) => {
            for t in items {
                build_scopes(t, shared, scopes, handles);
            }
        }
        Tree::Scope { id, kind, body } => {
            if let ScopeKind::Custom { limit, shield, .. } = *kind {
                let mut scope = CancelScope::new().with_shield(shield);
                match limit {
                    Limit::None => {}
                    Limit::Timeout(s) => scope = scope.with_timeout(timeout(s)),
                    Limit::At(s) => scope = scope.with_deadline(shared.at(s)),
                }
                handles.insert(*id, scope.handle());
                scopes.insert(*id, scope);
            }
            build_scopes(body, shared, scopes, handles);
        }
        Tree::Nursery { children, body, .. } => {
            for (_, t) in children {
                build_scopes(t, shared, scopes, handles);
            }
            build_scopes(body, shared, scopes, handles);
        }
        Tree::Start { pre, post, .. } => {
            build_scopes(pre, shared, scopes, handles);
            build_scopes(post, shared, scopes, handles);
        }
        Tree::Finally { work, cleanup, .. } => {
            build_scopes(work, shared, scopes, handles);
            build_scopes(cleanup, shared, scopes, handles);
        }
    }
}

fn run_tree(tree: Tree, shared: Arc<Shared>, n: Option<N>) -> BoxFut {
    Box::pin(async move {
        match tree {
            Tree::Leaf { id, ops } => {
                let mut guard = LeafGuard {
                    id,
                    op: 0,
                    first: ced(shared.start),
                    done: false,
                    shared: shared.clone(),
                };
                for op in ops {
                    match op {
                        Op::Sleep(s) => sleep(dur(s * TICKS)).await,
                        Op::Until(s) => sleep_until(shared.at(s)).await,
                        Op::Checkpoint => checkpoint().await,
                    }
                    guard.op += 1;
                }
                guard.done = true;
                shared.record(
                    id,
                    Obs::Done {
                        at: now_ticks(),
                        first: guard.first,
                        last: ced(shared.start),
                    },
                );
            }
            Tree::Seq(items) => {
                for t in items {
                    run_tree(t, shared.clone(), n.clone()).await;
                }
            }
            Tree::Scope { id, kind, body } => {
                let body = run_tree(*body, shared.clone(), n);
                let val = match kind {
                    ScopeKind::MoveOnAfter(s) => match move_on_after(timeout(s), body).await {
                        Some(()) => Val::Some,
                        None => Val::None,
                    },
                    ScopeKind::MoveOnAt(s) => match move_on_at(shared.at(s), body).await {
                        Some(()) => Val::Some,
                        None => Val::None,
                    },
                    ScopeKind::FailAfter(s) => match fail_after(timeout(s), body).await {
                        Ok(()) => Val::Ok,
                        Err(_) => Val::Elapsed,
                    },
                    ScopeKind::FailAt(s) => match fail_at(shared.at(s), body).await {
                        Ok(()) => Val::Ok,
                        Err(_) => Val::Elapsed,
                    },
                    ScopeKind::Shield => {
                        shield(body).await;
                        Val::Unit
                    }
                    ScopeKind::Custom { fail, .. } => {
                        let scope = shared.scopes.lock().unwrap().remove(&id).unwrap();
                        if fail {
                            match scope.fail(body).await {
                                Ok(Some(())) => Val::OkSome,
                                Ok(None) => Val::OkNone,
                                Err(_) => Val::Elapsed,
                            }
                        } else {
                            match scope.run(body).await {
                                Some(()) => Val::Some,
                                None => Val::None,
                            }
                        }
                    }
                };
                shared.record(
                    id,
                    Obs::Returned {
                        at: now_ticks(),
                        val,
                    },
                );
            }
            Tree::Nursery { id, children, body } => {
                let s = shared.clone();
                let r = nursery(move |n: N| async move {
                    s.nurseries.lock().unwrap().insert(id, n.clone());
                    for (task, child) in children {
                        let fut = run_tree(child, s.clone(), None);
                        let h = n.spawn(async move {
                            fut.await;
                            Ok::<(), Infallible>(())
                        });
                        s.tasks.lock().unwrap().insert(task, h);
                    }
                    run_tree(*body, s, Some(n)).await;
                    Ok(())
                })
                .await;
                let val = match r {
                    Ok(()) => Val::Unit,
                    Err(e) if e.is_cancelled() => Val::Cancelled,
                    Err(_) => Val::Other,
                };
                shared.record(
                    id,
                    Obs::Returned {
                        at: now_ticks(),
                        val,
                    },
                );
            }
            Tree::Start { id, pre, post } => {
                let n = n.expect("a start is generated only in a nursery's body");
                let pre = run_tree(*pre, shared.clone(), None);
                let post = run_tree(*post, shared.clone(), None);
                let r = n
                    .start(move |status| async move {
                        pre.await;
                        status.started(());
                        post.await;
                        Ok::<(), Infallible>(())
                    })
                    .await;
                let val = if r.is_ok() { Val::Unit } else { Val::Other };
                shared.record(
                    id,
                    Obs::Returned {
                        at: now_ticks(),
                        val,
                    },
                );
            }
            Tree::Finally { id, work, cleanup } => {
                let work = run_tree(*work, shared.clone(), n.clone());
                let cleanup = run_tree(*cleanup, shared.clone(), n);
                finally(work, cleanup).await;
                shared.record(
                    id,
                    Obs::Returned {
                        at: now_ticks(),
                        val: Val::Unit,
                    },
                );
            }
        }
    })
}

/// Runs `case` on `backend` under virtual time.
fn run_case(case: &Case, backend: Backend) -> Outcome {
    let case = case.clone();
    backend.run(virtual_time(async move {
        let shared = Arc::new(Shared {
            start: now(),
            log: Mutex::new(Vec::new()),
            scopes: Mutex::new(HashMap::new()),
            nurseries: Mutex::new(HashMap::new()),
            tasks: Mutex::new(HashMap::new()),
        });
        let mut scopes = HashMap::new();
        let mut handles = BTreeMap::new();
        build_scopes(&case.tree, &shared, &mut scopes, &mut handles);
        *shared.scopes.lock().unwrap() = scopes;
        let controller = {
            let (shared, handles, actions) =
                (shared.clone(), handles.clone(), case.actions.clone());
            async move {
                for a in actions {
                    sleep_until(shared.start + dur(a.at)).await;
                    match a.kind {
                        // Not open yet: nothing to cancel.
                        Target::Nursery => {
                            if let Some(n) = shared.nurseries.lock().unwrap().get(&a.target) {
                                n.cancel();
                            }
                            continue;
                        }
                        Target::Task => {
                            if let Some(h) = shared.tasks.lock().unwrap().get(&a.target) {
                                h.cancel();
                            }
                            continue;
                        }
                        Target::Scope => {}
                    }
                    let h = &handles[&a.target];
                    match a.act {
                        Act::Cancel => h.cancel(),
                        Act::SetAt(s) => h.set_deadline(shared.at(s)),
                        Act::SetIn(s) => h.set_deadline(now() + dur(s * TICKS)),
                        Act::Remove => h.set_deadline(None),
                    }
                }
                Ok::<(), Infallible>(())
            }
        };
        let tree = run_tree(case.tree, shared.clone(), None);
        nursery(|n: N| async move {
            n.spawn(controller);
            tree.await;
            Ok(())
        })
        .await
        .unwrap();
        let total = now_ticks();
        // The tasks the controller may cancel (all finished by now).
        let targets: Vec<u32> = case
            .actions
            .iter()
            .filter(|a| a.kind == Target::Task)
            .map(|a| a.target)
            .collect();
        for id in targets {
            let h = shared.tasks.lock().unwrap().remove(&id);
            if let Some(h) = h {
                assert!(h.is_finished());
                let joined = h.join().await.is_ok();
                shared.record(id, Obs::Joined(joined));
            }
        }
        let mut obs = BTreeMap::new();
        for (id, o) in shared.log.lock().unwrap().drain(..) {
            if let Some(prev) = obs.insert(id, o) {
                panic!("node {id} recorded twice: {prev:?} and {o:?}");
            }
        }
        let flags = handles
            .iter()
            .map(|(id, h)| {
                let deadline = h.deadline().map(|d| {
                    let nanos = d.saturating_duration_since(shared.start).as_nanos();
                    let tick = u128::from(TICK_NANOS);
                    if d >= shared.start && nanos % tick == 0 {
                        u64::try_from(nanos / tick).unwrap_or(u64::MAX)
                    } else {
                        u64::MAX
                    }
                });
                (
                    *id,
                    (Some(h.cancel_called()), h.cancelled_caught(), deadline),
                )
            })
            .collect();
        Outcome { obs, flags, total }
    }))
}

// ----- the model -----

/// The deadline of scope `id` (built with `limit`, entered at `t_in`) at `t`, as the
/// controller has moved it by then.
fn m_deadline(actions: &[Action], id: u32, limit: Limit, t_in: u64, t: u64) -> Option<u64> {
    let mut deadline = match limit {
        Limit::None => None,
        Limit::Timeout(s) => after(t_in, s),
        Limit::At(s) => Some(s * TICKS),
    };
    for a in actions.iter().filter(|a| a.target == id && a.at <= t) {
        match a.act {
            Act::Cancel => {}
            Act::SetAt(s) => deadline = Some(s * TICKS),
            Act::SetIn(s) => deadline = Some(a.at + s * TICKS),
            Act::Remove => deadline = None,
        }
    }
    deadline
}

/// The `Custom` scopes of a tree, with the deadline they are built with.
fn custom_scopes(tree: &Tree, out: &mut Vec<(u32, Limit)>) {
    match tree {
        Tree::Leaf { .. } => {}
        Tree::Seq(items) => items.iter().for_each(|t| custom_scopes(t, out)),
        Tree::Scope { id, kind, body } => {
            if let ScopeKind::Custom { limit, .. } = kind {
                out.push((*id, *limit));
            }
            custom_scopes(body, out);
        }
        Tree::Nursery { children, body, .. } => {
            children.iter().for_each(|(_, t)| custom_scopes(t, out));
            custom_scopes(body, out);
        }
        Tree::Start { pre, post, .. } => {
            custom_scopes(pre, out);
            custom_scopes(post, out);
        }
        Tree::Finally { work, cleanup, .. } => {
            custom_scopes(work, out);
            custom_scopes(cleanup, out);
        }
    }
}

thread_local! {
    static PATHS: std::cell::RefCell<BTreeMap<&'static str, usize>> =
        const { std::cell::RefCell::new(BTreeMap::new()) };
}

/// How a scope came to be cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// `cancel()` through its handle (before entry: at entry).
    Explicit,
    /// Its deadline had passed when it was entered.
    Entry,
    /// Its deadline passed while it ran (its timer).
    Timer,
    /// `set_deadline` moved its deadline to an instant that had passed.
    Moved,
}

/// A scope around the code being evaluated.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// The scope, its deadline as built and when it was entered (for its deadline as
    /// the controller moves it).
    id: u32,
    limit: Limit,
    t_in: u64,
    /// The task that polls the scope.
    task: u32,
    /// When and why the scope is cancelled itself (if it still runs then).
    cancel: Option<(u64, Why)>,
    shield: bool,
}

/// The scopes whose cancellation reaches code with these frames: up to the nearest
/// shield, innermost first.
fn reach(env: &[Frame]) -> impl Iterator<Item = &Frame> {
    let cut = env.iter().rposition(|f| f.shield).unwrap_or(0);
    env[cut..].iter().rev()
}

/// The earliest cancellation that reaches code with these frames.
fn min_cancel(env: &[Frame]) -> Option<u64> {
    reach(env).filter_map(|f| f.cancel.map(|c| c.0)).min()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tri {
    Yes,
    No,
    Maybe,
}

/// Whether code of `task` running at `t` finds its scopes cancelled. `Maybe`: only a
/// scope of another task whose deadline passes at `t` cancels it, and which of the two
/// tasks goes first decides.
fn cancelled_at(env: &[Frame], t: u64, task: u32) -> Tri {
    let mut maybe = false;
    for f in reach(env) {
        match f.cancel {
            Some((c, _)) if c < t => return Tri::Yes,
            Some((c, why)) if c == t => {
                if why == Why::Timer && f.task != task {
                    maybe = true;
                } else {
                    return Tri::Yes;
                }
            }
            _ => {}
        }
    }
    if maybe {
        Tri::Maybe
    } else {
        Tri::No
    }
}

/// Whether code returned `Pending` to its executor on the way (its task suspended),
/// rather than only reaching suspension points where a cancellation was caught in the
/// same poll: a nursery that finishes in its first poll is not interrupted (C1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Susp {
    No,
    /// Up to which task goes first.
    Maybe,
    Yes,
}

#[derive(Debug, Clone, Copy)]
enum Out {
    /// Finished at `at`.
    Done { at: u64, susp: Susp },
    /// A cancellation landed in it and is on its way out, at `at`.
    Unwind { at: u64, susp: Susp },
}

impl Out {
    fn at(self) -> u64 {
        match self {
            Out::Done { at, .. } | Out::Unwind { at, .. } => at,
        }
    }
    fn susp(self) -> Susp {
        match self {
            Out::Done { susp, .. } | Out::Unwind { susp, .. } => susp,
        }
    }
}

/// A nursery whose body is being evaluated, for the `Start`s in it.
struct NurseryCtx {
    env: Vec<Frame>,
    /// The tasks started into it: when each ended, and whether it finished
    /// (`Done`) or was cancelled.
    started: Vec<Out>,
}

struct Model<'a> {
    actions: &'a [Action],
    obs: BTreeMap<u32, Obs>,
    flags: BTreeMap<u32, Flags>,
    tasks: u32,
    nurseries: Vec<NurseryCtx>,
    /// Why the case is racy (and skipped), if it is.
    racy: Option<String>,
    /// How often some paths of the model were taken (for `HATCHERY_TEST_STATS`).
    paths: BTreeMap<&'static str, usize>,
}

impl Model<'_> {
    fn record(&mut self, id: u32, obs: Obs) {
        let prev = self.obs.insert(id, obs);
        assert!(prev.is_none(), "model: node {id} recorded twice");
    }

    fn path(&mut self, name: &'static str) {
        *self.paths.entry(name).or_default() += 1;
    }

    fn racy(&mut self, why: String) {
        self.racy.get_or_insert(why);
    }

    fn new_task(&mut self) -> u32 {
        self.tasks += 1;
        self.tasks
    }

    /// When and why the scope `id`, entered at `t_in` with deadline `limit`, is cancelled
    /// itself, as far as time and the controller go (it may have finished by then).
    fn scope_cancel(&self, id: u32, limit: Limit, t_in: u64) -> Option<(u64, Why)> {
        let mut acts = self.actions.iter().filter(|a| a.target == id).peekable();
        let mut deadline = match limit {
            Limit::None => None,
            Limit::Timeout(s) => after(t_in, s),
            Limit::At(s) => Some(s * TICKS),
        };
        let mut explicit = false;
        // Before entry: a `set_deadline` replaces the deadline (a timeout included).
        while let Some(a) = acts.next_if(|a| a.at < t_in) {
            match a.act {
                Act::Cancel => explicit = true,
                Act::SetAt(s) => deadline = Some(s * TICKS),
                Act::SetIn(s) => deadline = Some(a.at + s * TICKS),
                Act::Remove => deadline = None,
            }
        }
        if explicit {
            return Some((t_in, Why::Explicit));
        }
        if deadline.is_some_and(|d| d <= t_in) {
            return Some((t_in, Why::Entry));
        }
        for a in acts {
            if let Some(d) = deadline.filter(|d| *d <= a.at) {
                return Some((d, Why::Timer));
            }
            match a.act {
                Act::Cancel => return Some((a.at, Why::Explicit)),
                Act::SetAt(s) if s * TICKS <= a.at => return Some((a.at, Why::Moved)),
                Act::SetAt(s) => deadline = Some(s * TICKS),
                Act::SetIn(s) => deadline = Some(a.at + s * TICKS),
                Act::Remove => deadline = None,
            }
        }
        deadline.map(|d| (d, Why::Timer))
    }

    /// The deadline of scope `id` (built with `limit`, entered at `t_in`) at `t`, as
    /// the controller has moved it by then.
    fn deadline_at(&self, id: u32, limit: Limit, t_in: u64, t: u64) -> Option<u64> {
        m_deadline(self.actions, id, limit, t_in, t)
    }

    /// `current_effective_deadline()` for code with these frames at `t`.
    fn ced(&self, env: &[Frame], t: u64) -> Ced {
        let mut due = false;
        for f in reach(env) {
            match f.cancel {
                Some((c, _)) if c < t => return Ced::Cancelled,
                Some((c, Why::Timer)) if c == t => due = true,
                Some((c, _)) if c == t => return Ced::Cancelled,
                _ => {}
            }
        }
        if due {
            return Ced::Due(t);
        }
        reach(env)
            .filter_map(|f| self.deadline_at(f.id, f.limit, f.t_in, t))
            .min()
            .map_or(Ced::Never, Ced::At)
    }

    fn eval(
        &mut self,
        tree: &Tree,
        t: u64,
        task: u32,
        env: &mut Vec<Frame>,
        nctx: Option<usize>,
    ) -> Out {
        match tree {
            Tree::Leaf { id, ops } => self.leaf(*id, ops, t, task, env),
            Tree::Seq(items) => {
                let mut t = t;
                let mut susp = Susp::No;
                for item in items {
                    match self.eval(item, t, task, env, nctx) {
                        Out::Done { at, susp: s } => {
                            t = at;
                            susp = susp.max(s);
                        }
                        Out::Unwind { at, susp: s } => {
                            return Out::Unwind {
                                at,
                                susp: susp.max(s),
                            }
                        }
                    }
                }
                Out::Done { at: t, susp }
            }
            Tree::Scope { id, kind, body } => self.scope(*id, *kind, body, t, task, env, nctx),
            Tree::Nursery { id, children, body } => self.nursery(*id, children, body, t, task, env),
            Tree::Start { id, pre, post } => {
                let nctx = nctx.expect("model: a start outside a nursery's body");
                let child = self.new_task();
                // `start` suspends its caller: the task runs elsewhere.
                let t_started = match self.eval(pre, t, child, env, None) {
                    Out::Done { at, .. } => at,
                    end @ Out::Unwind { at, .. } => {
                        // The caller's cancellation: `start` waits for the task, then the
                        // cancellation goes on from the caller.
                        self.nurseries[nctx].started.push(end);
                        return Out::Unwind {
                            at,
                            susp: Susp::Yes,
                        };
                    }
                };
                match cancelled_at(env, t_started, child) {
                    Tri::Maybe => {
                        self.racy(format!(
                            "start {id}: started() at {t_started} as a deadline passes"
                        ));
                    }
                    Tri::Yes => {
                        self.path("start: started() ignored");
                        // `started` in a cancelled scope is ignored (as trio's): the task
                        // stays under the caller's cancellation, `start` waits for it and
                        // never returns.
                        let end = self.eval(post, t_started, child, env, None);
                        self.nurseries[nctx].started.push(end);
                        return Out::Unwind {
                            at: end.at(),
                            susp: Susp::Yes,
                        };
                    }
                    Tri::No => {}
                }
                self.record(
                    *id,
                    Obs::Returned {
                        at: t_started,
                        val: Val::Unit,
                    },
                );
                let mut nenv = self.nurseries[nctx].env.clone();
                let end = self.eval(post, t_started, child, &mut nenv, None);
                self.nurseries[nctx].started.push(end);
                Out::Done {
                    at: t_started,
                    susp: Susp::Yes,
                }
            }
            Tree::Finally { id, work, cleanup } => {
                let work = self.eval(work, t, task, env, nctx);
                env.push(Frame {
                    id: 0,
                    limit: Limit::None,
                    t_in: t,
                    task,
                    cancel: None,
                    shield: true,
                });
                let clean = self.eval(cleanup, work.at(), task, env, nctx);
                env.pop();
                let Out::Done { at, susp } = clean else {
                    panic!("model: a shielded cleanup unwinds");
                };
                let susp = susp.max(work.susp());
                match work {
                    Out::Done { .. } => {
                        self.record(*id, Obs::Returned { at, val: Val::Unit });
                        Out::Done { at, susp }
                    }
                    Out::Unwind { .. } => {
                        self.path("finally: cleanup after cancel");
                        Out::Unwind { at, susp }
                    }
                }
            }
        }
    }

    fn leaf(&mut self, id: u32, ops: &[Op], t0: u64, task: u32, env: &[Frame]) -> Out {
        let mut t = t0;
        let mut susp = Susp::No;
        let first = self.ced(env, t0);
        for (k, op) in ops.iter().enumerate() {
            let end = match *op {
                Op::Sleep(s) => t + s * TICKS,
                Op::Until(s) => (s * TICKS).max(t),
                Op::Checkpoint => t,
            };
            if end == t {
                // A checkpoint (or a sleep already due) suspends once: cancelled if a
                // scope around is by now.
                match cancelled_at(env, t, task) {
                    Tri::Yes => {
                        self.path("zero-length op cancelled");
                        self.record(
                            id,
                            Obs::Cancelled {
                                op: k,
                                at: t,
                                first,
                            },
                        );
                        // Cancelled in the poll that reached it: not a suspension of
                        // the task.
                        return Out::Unwind { at: t, susp };
                    }
                    Tri::Maybe => {
                        self.racy(format!("leaf {id}: op {k} due at {t} with a deadline"))
                    }
                    Tri::No => {}
                }
                susp = Susp::Yes;
            } else if let Some(c) = min_cancel(env).filter(|c| *c <= end) {
                // A deadline due with the end of the sleep wins (as in trio).
                if c == end {
                    self.path("tie: deadline = sleep end");
                }
                let at = c.max(t);
                self.record(id, Obs::Cancelled { op: k, at, first });
                // Cancelled already when it started (the poll that reached it ends the
                // work), or later (the task suspended meanwhile).
                let s = match cancelled_at(env, t, task) {
                    Tri::Yes => Susp::No,
                    Tri::Maybe => Susp::Maybe,
                    Tri::No => Susp::Yes,
                };
                return Out::Unwind {
                    at,
                    susp: susp.max(s),
                };
            } else {
                t = end;
                susp = Susp::Yes;
            }
        }
        let last = self.ced(env, t);
        self.record(id, Obs::Done { at: t, first, last });
        Out::Done { at: t, susp }
    }

    #[allow(clippy::too_many_arguments)]
    fn scope(
        &mut self,
        id: u32,
        kind: ScopeKind,
        body: &Tree,
        t: u64,
        task: u32,
        env: &mut Vec<Frame>,
        nctx: Option<usize>,
    ) -> Out {
        let (limit, shield) = match kind {
            ScopeKind::MoveOnAfter(s) | ScopeKind::FailAfter(s) => (Limit::Timeout(s), false),
            ScopeKind::MoveOnAt(s) | ScopeKind::FailAt(s) => (Limit::At(s), false),
            ScopeKind::Shield => (Limit::None, true),
            ScopeKind::Custom { limit, shield, .. } => (limit, shield),
        };
        let cancel = self.scope_cancel(id, limit, t);
        match cancel {
            Some((c, Why::Entry)) if c == t => self.path("scope: deadline passed on entry"),
            Some((c, Why::Explicit)) if c == t => self.path("scope: cancelled before entry"),
            Some((_, Why::Moved)) => self.path("scope: moved to the past"),
            _ => {}
        }
        env.push(Frame {
            id,
            limit,
            t_in: t,
            task,
            cancel,
            shield,
        });
        let out = self.eval(body, t, task, env, nctx);
        env.pop();
        // The enclosing scopes that this one's cancellation is shadowed by (C3).
        let outer: Vec<Frame> = if shield {
            Vec::new()
        } else {
            reach(env).copied().collect()
        };
        let (result, caught) = match out {
            Out::Done { at, susp } => {
                let val = match kind {
                    ScopeKind::MoveOnAfter(_) | ScopeKind::MoveOnAt(_) => Val::Some,
                    ScopeKind::FailAfter(_) | ScopeKind::FailAt(_) => Val::Ok,
                    ScopeKind::Shield => Val::Unit,
                    ScopeKind::Custom { fail: false, .. } => Val::Some,
                    ScopeKind::Custom { fail: true, .. } => Val::OkSome,
                };
                self.record(id, Obs::Returned { at, val });
                (Out::Done { at, susp }, false)
            }
            Out::Unwind { at, susp } => {
                let outer_cancelled = outer.iter().any(|f| f.cancel.is_some_and(|(c, _)| c <= at));
                match cancel.filter(|(c, _)| *c <= at) {
                    _ if outer_cancelled => {
                        if cancel.is_some_and(|(c, _)| c <= at) {
                            self.path("scope: cancelled, outer catches");
                        }
                        (Out::Unwind { at, susp }, false)
                    }
                    Some((_, why)) => {
                        let deadline = why != Why::Explicit;
                        let val = match kind {
                            ScopeKind::MoveOnAfter(_) | ScopeKind::MoveOnAt(_) => Val::None,
                            ScopeKind::FailAfter(_) | ScopeKind::FailAt(_) => Val::Elapsed,
                            ScopeKind::Shield => panic!("model: shield() catches"),
                            ScopeKind::Custom { fail: false, .. } => Val::None,
                            ScopeKind::Custom { fail: true, .. } if deadline => Val::Elapsed,
                            ScopeKind::Custom { fail: true, .. } => Val::OkNone,
                        };
                        self.record(id, Obs::Returned { at, val });
                        (Out::Done { at, susp }, true)
                    }
                    None => panic!("model: scope {id} unwinds with nothing cancelled"),
                }
            }
        };
        if let ScopeKind::Custom { .. } = kind {
            let called = self.cancel_called(id, cancel, caught, result.at(), &outer);
            // Every move counts, also after it finished (only `deadline()` shows it).
            let deadline = self.deadline_at(id, limit, t, u64::MAX);
            self.flags.insert(id, (called, caught, deadline));
        }
        result
    }

    /// `cancel_called()` of a scope that ran until `end`: see the module docs (`None`:
    /// not decided without a race).
    fn cancel_called(
        &self,
        id: u32,
        cancel: Option<(u64, Why)>,
        caught: bool,
        end: u64,
        outer: &[Frame],
    ) -> Option<bool> {
        let by_hand = self
            .actions
            .iter()
            .any(|a| a.target == id && matches!(a.act, Act::Cancel));
        if by_hand || caught {
            return Some(true);
        }
        match cancel {
            None => Some(false),
            Some((_, Why::Explicit | Why::Entry)) => Some(true),
            // `set_deadline` to an instant that has passed cancels the scope itself when it
            // is called, as `cancel` does, also under an enclosing cancellation (as in
            // trio); at the instant the scope ends, which comes first depends on the tasks.
            Some((d, Why::Moved)) => match d.cmp(&end) {
                std::cmp::Ordering::Less => Some(true),
                std::cmp::Ordering::Equal => None,
                std::cmp::Ordering::Greater => Some(false),
            },
            Some((d, Why::Timer)) => {
                if d > end {
                    return Some(false);
                }
                if d == end {
                    return None;
                }
                // It waited at `d`: its timer fired, and it saw its deadline. Unless an
                // enclosing cancellation reached it before: then its own poll does not
                // look. One at that very instant (another deadline) may come first or
                // not: a task elsewhere may notice it first, or a scope inside that
                // catches nothing may mark either on its way up (`outer_cancelled`).
                let shadowed = if outer.iter().any(|f| f.cancel.is_some_and(|(c, _)| c < d)) {
                    Some(false)
                } else if outer.iter().any(|f| f.cancel.is_some_and(|(c, _)| c == d)) {
                    None
                } else {
                    return Some(true);
                };
                // Not looked at: a `set_deadline` to a passed instant while the scope still
                // runs cancels it all the same (see `Why::Moved`).
                let moved = self.actions.iter().find(|a| {
                    a.target == id
                        && (d..=end).contains(&a.at)
                        && matches!(a.act, Act::SetAt(s) if s * TICKS <= a.at)
                });
                match moved {
                    Some(a) if a.at < end => Some(true),
                    Some(_) => None,
                    None => shadowed,
                }
            }
        }
    }

    /// The first `cancel` of the nursery or task `id` after `t0` (when it opened or was
    /// spawned: the controller finds nothing to cancel before), as a frame's
    /// cancellation. (One after it finished changes nothing: the evaluation shows it.)
    fn handle_cancel(&self, id: u32, t0: u64) -> Option<(u64, Why)> {
        self.actions
            .iter()
            .find(|a| a.target == id && a.at > t0)
            .map(|a| (a.at, Why::Explicit))
    }

    fn nursery(
        &mut self,
        id: u32,
        children: &[(u32, Tree)],
        body: &Tree,
        t0: u64,
        task: u32,
        env: &[Frame],
    ) -> Out {
        // The nursery's own cancellation (N4) reaches its body and every child.
        let own = self.handle_cancel(id, t0);
        let nframe = Frame {
            id,
            limit: Limit::None,
            t_in: t0,
            task,
            cancel: own,
            shield: false,
        };
        let mut ends = Vec::new();
        for (child_id, child) in children {
            let child_task = self.new_task();
            let mut cenv = env.to_vec();
            cenv.push(nframe);
            // `TaskHandle::cancel` (N7) cancels just that task.
            cenv.push(Frame {
                id: *child_id,
                limit: Limit::None,
                t_in: t0,
                task: child_task,
                cancel: self.handle_cancel(*child_id, t0),
                shield: false,
            });
            let end = self.eval(child, t0, child_task, &mut cenv, None);
            if self.actions.iter().any(|a| a.target == *child_id) {
                self.record(*child_id, Obs::Joined(matches!(end, Out::Done { .. })));
            }
            ends.push(end);
        }
        let mut nenv = env.to_vec();
        nenv.push(nframe);
        self.nurseries.push(NurseryCtx {
            env: nenv.clone(),
            started: Vec::new(),
        });
        let idx = self.nurseries.len() - 1;
        let body = self.eval(body, t0, task, &mut nenv, Some(idx));
        let ctx = self.nurseries.pop().expect("nursery context");
        assert_eq!(self.nurseries.len(), idx);
        ends.extend(ctx.started);
        let last = ends.iter().map(|o| o.at()).max();
        // Children run elsewhere: waiting for them suspends (unless they all finish
        // during the first poll, on other threads: see below).
        let susp = if ends.is_empty() {
            body.susp()
        } else {
            Susp::Yes
        };
        let close = body.at().max(last.unwrap_or(0));
        // Only the scopes around count (`outer_cancelled`), not the nursery's own cancel.
        let outer = min_cancel(env).is_some_and(|c| c <= close);
        match body {
            Out::Unwind { .. } if outer => Out::Unwind { at: close, susp },
            Out::Unwind { .. } => {
                // Its own `cancel` ended the body before its value: `Cancelled` (N4).
                assert!(
                    own.is_some_and(|(c, _)| c <= close),
                    "model: nursery {id} unwinds with nothing cancelled"
                );
                self.path("nursery: cancelled itself");
                self.record(
                    id,
                    Obs::Returned {
                        at: close,
                        val: Val::Cancelled,
                    },
                );
                Out::Done { at: close, susp }
            }
            Out::Done {
                at,
                susp: body_susp,
            } => {
                if outer {
                    self.path("nursery: body done under a cancelled scope");
                }
                if body_susp != Susp::Yes
                    && !ends.is_empty()
                    && ends
                        .iter()
                        .all(|o| matches!(o, Out::Done { at, .. } if *at == t0))
                {
                    self.racy(format!(
                        "nursery {id}: its children may all finish in its first poll"
                    ));
                }
                if ends.is_empty() && body_susp == Susp::Maybe && outer {
                    self.racy(format!("nursery {id}: done in its first poll or not"));
                }
                if ends.is_empty() && body_susp == Susp::No {
                    // Done in its first poll, without suspending: not interrupted (C1),
                    // even under a cancelled scope.
                    if outer {
                        self.path("nursery: done in its first poll under a cancelled scope");
                    }
                    self.record(id, Obs::Returned { at, val: Val::Unit });
                    return Out::Done { at, susp };
                }
                // Waiting for the children is a suspension point; and a nursery under a
                // cancelled scope never returns once it has suspended (documented), even
                // if its body did. Its own `cancel` after the body's value leaves it.
                if outer {
                    Out::Unwind { at: close, susp }
                } else {
                    if own.is_some_and(|(c, _)| c <= close) {
                        self.path("nursery: cancelled itself after its body's value");
                    }
                    self.record(
                        id,
                        Obs::Returned {
                            at: close,
                            val: Val::Unit,
                        },
                    );
                    Out::Done { at: close, susp }
                }
            }
        }
    }
}

/// The model's outcome of `case`, or why it is racy.
fn model(case: &Case) -> (Outcome, Option<String>) {
    let mut m = Model {
        actions: &case.actions,
        obs: BTreeMap::new(),
        flags: BTreeMap::new(),
        tasks: 0,
        nurseries: Vec::new(),
        racy: None,
        paths: BTreeMap::new(),
    };
    let out = m.eval(&case.tree, 0, 0, &mut Vec::new(), None);
    let Out::Done { at, .. } = out else {
        panic!("model: the tree unwinds at the top");
    };
    PATHS.with(|p| {
        let mut p = p.borrow_mut();
        for (k, v) in &m.paths {
            *p.entry(k).or_default() += v;
        }
    });
    let racy = m.racy;
    // Handles of scopes never entered: cancelled if `cancel` was called; a timeout is
    // no deadline yet, and every move counts.
    let mut flags = m.flags;
    let mut customs = Vec::new();
    custom_scopes(&case.tree, &mut customs);
    for (id, limit) in customs {
        flags.entry(id).or_insert_with(|| {
            let called = case
                .actions
                .iter()
                .any(|a| a.target == id && matches!(a.act, Act::Cancel));
            let limit = match limit {
                Limit::Timeout(_) => Limit::None,
                limit => limit,
            };
            let deadline = m_deadline(&case.actions, id, limit, 0, u64::MAX);
            (Some(called), false, deadline)
        });
    }
    let total = case.actions.iter().map(|a| a.at).fold(at, u64::max);
    let outcome = Outcome {
        obs: m.obs,
        flags,
        total,
    };
    (outcome, racy)
}

// ----- checking -----

fn obs_match(m: Obs, r: Obs) -> bool {
    match (m, r) {
        (
            Obs::Done { at, first, last },
            Obs::Done {
                at: r_at,
                first: r_first,
                last: r_last,
            },
        ) => at == r_at && first.matches(r_first) && last.matches(r_last),
        (
            Obs::Cancelled { op, at, first },
            Obs::Cancelled {
                op: r_op,
                at: r_at,
                first: r_first,
            },
        ) => op == r_op && at == r_at && first.matches(r_first),
        (m, r) => m == r,
    }
}

/// The differences between the model's outcome and the run's (empty if they agree);
/// `None` in the model's `cancel_called` matches anything.
fn differences(model: &Outcome, run: &Outcome) -> Vec<String> {
    let mut out = Vec::new();
    let ids: std::collections::BTreeSet<u32> =
        model.obs.keys().chain(run.obs.keys()).copied().collect();
    for id in ids {
        let (m, r) = (model.obs.get(&id).copied(), run.obs.get(&id).copied());
        let same = match (m, r) {
            (Some(m), Some(r)) => obs_match(m, r),
            (None, None) => true,
            _ => false,
        };
        if !same {
            out.push(format!("node {id}: model {m:?}, run {r:?}"));
        }
    }
    if model.flags.len() != run.flags.len() {
        out.push(format!(
            "handles: model {:?}, run {:?}",
            model.flags.keys(),
            run.flags.keys()
        ));
    }
    for (id, (called, caught, deadline)) in &run.flags {
        let Some(&(m_called, m_caught, m_deadline)) = model.flags.get(id) else {
            continue;
        };
        if m_caught != *caught
            || m_deadline != *deadline
            || m_called.is_some_and(|c| Some(c) != *called)
        {
            out.push(format!(
                "handle {id}: model (cancel_called {m_called:?}, cancelled_caught {m_caught}, \
                 deadline {m_deadline:?}), run ({called:?}, {caught}, {deadline:?})"
            ));
        }
    }
    if model.total != run.total {
        out.push(format!("elapsed: model {}, run {}", model.total, run.total));
    }
    out
}

struct Show<'a>(&'a Tree, usize);

impl fmt::Display for Show<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pad = "  ".repeat(self.1);
        let depth = self.1 + 1;
        let sub = |t| Show(t, depth);
        match self.0 {
            Tree::Leaf { id, ops } => writeln!(f, "{pad}leaf {id} {ops:?}"),
            Tree::Seq(items) => {
                writeln!(f, "{pad}seq")?;
                items.iter().try_for_each(|t| write!(f, "{}", sub(t)))
            }
            Tree::Scope { id, kind, body } => {
                writeln!(f, "{pad}scope {id} {kind:?}")?;
                write!(f, "{}", sub(body))
            }
            Tree::Nursery { id, children, body } => {
                writeln!(f, "{pad}nursery {id}")?;
                for (task, c) in children {
                    writeln!(f, "{pad} child {task}:")?;
                    write!(f, "{}", sub(c))?;
                }
                writeln!(f, "{pad} body:")?;
                write!(f, "{}", sub(body))
            }
            Tree::Start { id, pre, post } => {
                writeln!(f, "{pad}start {id}")?;
                write!(f, "{}", sub(pre))?;
                writeln!(f, "{pad} started:")?;
                write!(f, "{}", sub(post))
            }
            Tree::Finally { id, work, cleanup } => {
                writeln!(f, "{pad}finally {id}")?;
                write!(f, "{}", sub(work))?;
                writeln!(f, "{pad} cleanup:")?;
                write!(f, "{}", sub(cleanup))
            }
        }
    }
}

fn describe(case: &Case) -> String {
    let mut s = format!("{}", Show(&case.tree, 1));
    for a in &case.actions {
        s += &format!(
            "  at {}+{}/16 s: {:?} {} {:?}\n",
            a.at / TICKS,
            a.at % TICKS,
            a.kind,
            a.target,
            a.act
        );
    }
    s
}

/// Cases per backend (`HATCHERY_TEST_CASES` and `HATCHERY_TEST_SEED` choose others:
/// [`seeded`]).
const CASES: u64 = 3000;

fn check_backend(backend: Backend) {
    let show = seeded::stats();
    let mut total = 0u64;
    let mut racy = 0u64;
    let mut racy_differ = 0;
    let mut stats = BTreeMap::<String, usize>::new();
    seeded::check(CASES, |seed| {
        total += 1;
        let case = gen_case(seed);
        let (expected, skip) = model(&case);
        if let Some(why) = skip {
            racy += 1;
            if show {
                // Run it anyway, to see how often the race goes either way.
                let got = run_case(&case, backend);
                let diff = differences(&expected, &got);
                if !diff.is_empty() {
                    racy_differ += 1;
                    eprintln!("{backend:?} seed {seed} ({why}): {}", diff.join("; "));
                }
            }
            return;
        }
        let got = catch_unwind(AssertUnwindSafe(|| run_case(&case, backend)));
        let got = match got {
            Ok(o) => o,
            Err(p) => panic!(
                "{backend:?} seed {seed}: the run panicked: {}\n{}",
                hatchery_tests::panic_message(&*p),
                describe(&case)
            ),
        };
        for o in expected.obs.values() {
            let k = match o {
                Obs::Done { .. } => "done".to_string(),
                Obs::Joined(j) => format!("joined={j}"),
                Obs::Cancelled { .. } => "cancelled".to_string(),
                Obs::Returned { val, .. } => format!("{val:?}"),
            };
            *stats.entry(k).or_default() += 1;
        }
        for (c, caught, _) in expected.flags.values() {
            *stats
                .entry(format!("called={c:?},caught={caught}"))
                .or_default() += 1;
        }
        let diff = differences(&expected, &got);
        assert!(
            diff.is_empty(),
            "{backend:?} seed {seed}: the run differs from the model (times in 1/16 s)\n\
             tree:\n{}\n{}",
            describe(&case),
            diff.join("\n")
        );
    });
    if show {
        eprintln!(
            "{backend:?}: {total} cases, {racy} racy ({racy_differ} run and differ); {stats:?}"
        );
        PATHS.with(|p| eprintln!("model paths: {:#?}", p.borrow()));
    }
    // The racy shapes are skipped: they must stay the exception.
    assert!(
        racy * 5 <= total,
        "{racy} of {total} cases were skipped as racy"
    );
}

#[test]
fn deadline_model_tokio_current() {
    check_backend(Backend::TokioCurrent);
}

#[test]
fn deadline_model_tokio_multi() {
    check_backend(Backend::TokioMulti);
}

#[test]
fn deadline_model_smol() {
    check_backend(Backend::Smol);
}
