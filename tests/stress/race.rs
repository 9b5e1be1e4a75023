//! Randomized races on the multi-thread backends (tokio's multi-thread runtime and smol,
//! each on two threads), against what the rustdoc of `CancelHandle`, `Nursery`, `start`,
//! `TaskStatus::started`, `TaskHandle` and the combinators promises.
//!
//! Each round builds a random plan from its seed ([`Rng`]): an outer `CancelScope` around
//! a nursery `N` whose body spawns children (checkpoints, short sleeps, spins, shielded
//! steps, cancel scopes of their own, `finally` cleanups, nested nurseries whose
//! grandchildren run on other threads, spawns of siblings, combinators, errors, panics),
//! `start`s a child (maybe inside a caller scope `cs` of its own) that calls `started` at
//! a random step (maybe shielded), and joins, cancels, keeps or drops the children's
//! handles. Plain OS threads race the round: they cancel the outer scope (or move its
//! deadline to now), `N`, `cs`, inner scopes and tasks, join handles with `block_on`, and
//! `try_spawn` into `N` while it finishes. The plan replays exactly; the interleaving is
//! up to the OS, so a failing seed fails often, not always.
//!
//! A combinator step ([`Comb`], in a child's, the start leaf's or the body's steps) runs
//! a few branches (steps, then `Ok`, `Err` or a panic) as the futures of `join`,
//! `try_join`, `race`, `race_ok`, `map(limit, ..)` (`join` or `try_join`, maybe
//! `unordered`), `as_completed` (whose body reads some outputs and returns), `join!`,
//! `try_join!`, `race!`, or `service` (whose body `try_spawn`s them, runs a few steps and
//! returns; grace zero, short or unbounded). The branches' steps are checked against the
//! cancellations that reach the step, as the leaf's own are.
//!
//! Checked in every round:
//!
//! * **Cancellation is seen at once**: once a `cancel()` (of the outer scope, `N`, `cs`,
//!   an inner scope, a nested nursery, a task) has returned, no checkpoint or sleep that
//!   begins afterwards inside it, outside a shield, completes.
//! * **Structure**: every child future is dropped before its nursery returns, and none is
//!   polled after.
//! * **No lost or duplicated error, no lost panic**: every error a leaf returned comes out
//!   exactly once, from `N` or from `start`; a panic comes out if and only if a leaf
//!   panicked.
//! * **`start`**: `Ok` only with the value given to `started`, and not if the caller's
//!   scope was cancelled before `started` was called (the call is then ignored); `Ok` if
//!   `started` returned before any cancellation began; `Failed` only if the task failed,
//!   `NotStarted` only if it returned without calling `started`.
//! * **Joins**: a value if and only if the task returned it; otherwise an error that says
//!   how it ended (cancelled, failed, panicked). A handle kept past the nursery is
//!   finished and its join is ready at once.
//! * **Scopes**: one returns `None` only after its own `cancel()` or deadline, and then
//!   with `cancelled_caught()` and `cancel_called()`; `N` returns `Cancelled` only after
//!   `N.cancel()`.
//! * **`try_spawn`** from another thread fails only once the nursery is closed.
//! * **Combinators**: outputs are the branches' own (`join`, `join!`, `map(..).join()`:
//!   every one, in input order, or in any order after `unordered`; `race`, `race!`: one
//!   of a branch that returned; `race_ok`: an `Ok`, or `Failed` with every branch's
//!   error; `as_completed`: distinct outputs, the stream not ended early); `try_join`,
//!   `try_join!`, `map(..).try_join()` give every value in order, or `Failed` with the
//!   error of every branch that failed, each once, never `Cancelled`; `map` never has
//!   more than `limit` futures alive; `service`'s report has the body's value, each task
//!   error once, and `completed`/`cancelled` counts that match the tasks that returned
//!   (none cancelled with an unbounded grace), and `try_spawn` is refused only once a
//!   cancellation reached the service. Every branch future is dropped before the
//!   combinator returns (or resumes a branch's panic). Once a cancellation that reaches
//!   the step has returned, a combinator begun afterwards does not return, unless it
//!   finished in its first poll (code that never suspends is not interrupted) or, for
//!   the `try_` ones, with errors; nor does a wait for an `as_completed` output. The
//!   errors a combinator reports fail its leaf and must come out of `N` (or `start`)
//!   exactly once; a branch's panic must come out.
//! * **No hang**: each round runs in its own [`Backend::run`], whose watchdog fails it.
//!
//! The rounds are seeded by the harness of the seeded tests (`hatchery_tests::seeded`):
//! [`ROUNDS`] per backend unless `HATCHERY_TEST_CASES` says otherwise; a failure prints
//! the seeds that failed, the first one's violations and plan, and the line that replays
//! it (`HATCHERY_TEST_SEED`).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::panic::resume_unwind;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hatchery::{
    checkpoint, finally, nursery, run_blocking, shield, sleep, CancelHandle, CancelScope,
    JoinError, Nursery, NurseryError, StartError, TaskHandle, TaskStatus,
};
use hatchery_tests::seeded::{self, planted_panic, Rng};
use hatchery_tests::{catch_panic, Backend};

/// Rounds per backend unless `HATCHERY_TEST_CASES` says otherwise: 3 to 5 s per backend in a
/// debug build on two cores.
const ROUNDS: u64 = 1200;

/// How often (in percent) a leaf's or the body's steps include a combinator.
const COMB_PERCENT: u64 = 20;

type E = Vec<u32>;
type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

// ---------------------------------------------------------------- plans

#[derive(Debug, Clone)]
enum Step {
    Checkpoint,
    Sleep(u64),
    Spin(usize),
    /// Checkpoints and sleeps in a shield.
    Shielded(Vec<Step>),
    /// Spawns a sibling leaf into `N`, racing `N`'s cancellation and end.
    SpawnSibling(Box<Leaf>),
    /// A cancel scope (maybe with a timeout) around `body`. A plain thread, after a spin,
    /// cancels it (`true`) or moves its deadline to now (`false`), racing the scope's
    /// entry, polls and end.
    Scope {
        timeout_us: Option<u64>,
        foreign: Option<(usize, bool)>,
        body: Vec<Step>,
    },
    /// Calls `started` (in a start leaf), maybe in a shield.
    Started {
        shielded: bool,
    },
    /// Cancels `N` (in the nursery's body).
    CancelNursery,
    /// A combinator whose futures are branches (run as the combinator's tasks).
    Comb(Comb),
}

/// A future run by a combinator: its steps, then its end (`Ok(id)`, `Err(vec![id])` or a
/// panic).
#[derive(Debug, Clone)]
struct Branch {
    id: u32,
    steps: Vec<Step>,
    end: End,
}

/// Which combinator a [`Comb`] runs its branches in.
#[derive(Debug, Clone)]
enum CombKind {
    Join,
    TryJoin,
    Race,
    RaceOk,
    /// `map(limit, branches, f)`, then `join` or `try_join`, maybe `unordered`.
    Map {
        limit: usize,
        try_join: bool,
        unordered: bool,
    },
    /// `as_completed`, whose body reads `take` outputs and returns.
    AsCompleted {
        take: usize,
    },
    /// `join!`, `try_join!` and `race!` of two branches.
    JoinMacro,
    TryJoinMacro,
    RaceMacro,
    /// `service` with this grace period (`None`: `Duration::MAX`): the body spawns the
    /// branches with `try_spawn`, runs `body`, and returns.
    Service {
        grace_us: Option<u64>,
        body: Vec<Step>,
    },
}

impl CombKind {
    fn name(&self) -> &'static str {
        match self {
            CombKind::Join => "join",
            CombKind::TryJoin => "try_join",
            CombKind::Race => "race",
            CombKind::RaceOk => "race_ok",
            CombKind::Map {
                try_join: false, ..
            } => "map(..).join()",
            CombKind::Map { try_join: true, .. } => "map(..).try_join()",
            CombKind::AsCompleted { .. } => "as_completed",
            CombKind::JoinMacro => "join!",
            CombKind::TryJoinMacro => "try_join!",
            CombKind::RaceMacro => "race!",
            CombKind::Service { .. } => "service",
        }
    }

    /// Whether it returns the errors of futures that failed before or while an
    /// enclosing scope's cancellation reached them (it never returns otherwise, once
    /// cancelled).
    fn fails_on_error(&self) -> bool {
        matches!(
            self,
            CombKind::TryJoin | CombKind::TryJoinMacro | CombKind::Map { try_join: true, .. }
        )
    }
}

/// A combinator step.
#[derive(Debug, Clone)]
struct Comb {
    kind: CombKind,
    branches: Vec<Branch>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Ok,
    Fail,
    Panic,
}

/// A task: its steps, then maybe a nested nursery, then its end.
#[derive(Debug, Clone)]
struct Leaf {
    id: u32,
    steps: Vec<Step>,
    /// A nested nursery with these grandchildren, run after the steps.
    nested: Option<Vec<Leaf>>,
    /// The grandchild (an index into `nested`) that cancels the nested nursery when it
    /// ends.
    nested_cancel: Option<usize>,
    /// A `finally` cleanup around the steps and the nested nursery.
    cleanup: Option<Vec<Step>>,
    end: End,
}

/// What happens to a child's handle.
#[derive(Debug, Clone, Copy)]
enum HandleUse {
    Drop,
    Join,
    CancelThenJoin,
    /// Kept, to be checked after the nursery returned.
    Keep,
    /// Given to a plain thread.
    Thread(ThreadAct),
}

/// What a plain thread does to a task handle.
#[derive(Debug, Clone, Copy)]
enum ThreadAct {
    Cancel,
    Drop,
    CancelThenDrop,
    /// Cancels, then gives the handle back to be checked after the nursery returned.
    CancelKeep,
    /// `block_on(handle.join())`, racing the task's end.
    JoinBlocking,
}

/// One round. The `usize`s are how long a plain thread spins before it acts.
#[derive(Debug)]
struct Plan {
    children: Vec<(Leaf, HandleUse)>,
    handle_thread_spin: usize,
    /// A leaf `start`ed by the body, maybe inside a caller scope `cs` (`true`).
    start: Option<(Leaf, bool)>,
    body_steps: Vec<Step>,
    body_end: End,
    cancel_outer: Option<usize>,
    outer_deadline_now: Option<usize>,
    cancel_n: Option<usize>,
    cancel_cs: Option<usize>,
    foreign_spawn: Option<(usize, Leaf)>,
}

fn gen_short(rng: &mut Rng, max_us: u64) -> Step {
    if rng.chance(50) {
        Step::Checkpoint
    } else {
        Step::Sleep(rng.below_u64(max_us))
    }
}

/// The steps of a branch: what a leaf does, without spawns or combinators.
fn gen_branch(rng: &mut Rng, ids: &mut u32) -> Branch {
    *ids += 1;
    let id = *ids;
    let steps = (0..rng.below(4))
        .map(|_| match rng.below(10) {
            0..=2 => Step::Sleep(rng.below_u64(200)),
            3 => Step::Spin(rng.below(3000)),
            4 => Step::Shielded(vec![gen_short(rng, 100)]),
            5 => Step::Scope {
                timeout_us: rng.chance(40).then(|| rng.below_u64(300)),
                foreign: rng.chance(60).then(|| (rng.below(20_000), rng.chance(70))),
                body: (0..1 + rng.below(2)).map(|_| gen_short(rng, 150)).collect(),
            },
            _ => Step::Checkpoint,
        })
        .collect();
    Branch {
        id,
        steps,
        end: gen_end(rng),
    }
}

fn gen_comb(rng: &mut Rng, ids: &mut u32) -> Comb {
    let kind = match rng.below(11) {
        0 => CombKind::Join,
        1 => CombKind::TryJoin,
        2 => CombKind::Race,
        3 => CombKind::RaceOk,
        4 | 5 => CombKind::Map {
            limit: 1 + rng.below(3),
            try_join: rng.chance(50),
            unordered: rng.chance(30),
        },
        6 => CombKind::AsCompleted { take: 0 },
        7 => CombKind::JoinMacro,
        8 => CombKind::TryJoinMacro,
        9 => CombKind::RaceMacro,
        _ => CombKind::Service {
            grace_us: match rng.below(3) {
                0 => Some(0),
                1 => Some(rng.below_u64(300)),
                _ => None,
            },
            body: (0..rng.below(3)).map(|_| gen_short(rng, 150)).collect(),
        },
    };
    let n = match kind {
        CombKind::JoinMacro | CombKind::TryJoinMacro | CombKind::RaceMacro => 2,
        CombKind::Map { .. } => 1 + rng.below(5),
        CombKind::Service { .. } => rng.below(4),
        _ => 1 + rng.below(3),
    };
    let branches: Vec<Branch> = (0..n).map(|_| gen_branch(rng, ids)).collect();
    let kind = match kind {
        CombKind::AsCompleted { .. } => CombKind::AsCompleted {
            take: rng.below(n + 1),
        },
        kind => kind,
    };
    Comb { kind, branches }
}

fn gen_steps(rng: &mut Rng, ids: &mut u32, depth: u32, start_leaf: bool) -> Vec<Step> {
    let n = rng.below(5);
    let mut steps: Vec<Step> = (0..n)
        .map(|_| match rng.below(10) {
            4..=5 => Step::Sleep(rng.below_u64(200)),
            6 => Step::Spin(rng.below(3000)),
            7 => Step::Shielded(vec![gen_short(rng, 100)]),
            8 if depth > 0 => Step::SpawnSibling(Box::new(gen_leaf(rng, ids, depth - 1, false))),
            9 => Step::Scope {
                timeout_us: rng.chance(40).then(|| rng.below_u64(300)),
                foreign: rng.chance(80).then(|| (rng.below(20_000), rng.chance(70))),
                body: (0..1 + rng.below(3)).map(|_| gen_short(rng, 150)).collect(),
            },
            _ => Step::Checkpoint,
        })
        .collect();
    if rng.chance(COMB_PERCENT) {
        let at = rng.below(steps.len() + 1);
        steps.insert(at, Step::Comb(gen_comb(rng, ids)));
    }
    if start_leaf && rng.chance(85) {
        let at = rng.below(steps.len() + 1);
        let shielded = rng.chance(25);
        steps.insert(at, Step::Started { shielded });
    }
    steps
}

fn gen_end(rng: &mut Rng) -> End {
    match rng.below(100) {
        0..=74 => End::Ok,
        75..=94 => End::Fail,
        _ => End::Panic,
    }
}

fn gen_leaf(rng: &mut Rng, ids: &mut u32, depth: u32, start_leaf: bool) -> Leaf {
    *ids += 1;
    let id = *ids;
    let steps = gen_steps(rng, ids, depth, start_leaf);
    let nested = (depth > 0 && rng.chance(20)).then(|| {
        (0..1 + rng.below(3))
            .map(|_| gen_leaf(rng, ids, depth - 1, false))
            .collect::<Vec<_>>()
    });
    let nested_cancel = nested
        .as_ref()
        .and_then(|g| rng.chance(20).then(|| rng.below(g.len())));
    let cleanup = rng
        .chance(15)
        .then(|| (0..1 + rng.below(2)).map(|_| gen_short(rng, 100)).collect());
    Leaf {
        id,
        steps,
        nested,
        nested_cancel,
        cleanup,
        end: gen_end(rng),
    }
}

fn gen_plan(seed: u64) -> Plan {
    let mut rng = Rng::seeded(seed);
    let mut ids = 0;
    let children = (0..rng.below(5))
        .map(|_| {
            let leaf = gen_leaf(&mut rng, &mut ids, 2, false);
            let handle = match rng.below(9) {
                0 => HandleUse::Drop,
                1 => HandleUse::Join,
                2 => HandleUse::CancelThenJoin,
                3 => HandleUse::Keep,
                4 => HandleUse::Thread(ThreadAct::Cancel),
                5 => HandleUse::Thread(ThreadAct::Drop),
                6 => HandleUse::Thread(ThreadAct::CancelThenDrop),
                7 => HandleUse::Thread(ThreadAct::CancelKeep),
                _ => HandleUse::Thread(ThreadAct::JoinBlocking),
            };
            (leaf, handle)
        })
        .collect();
    let spin = |rng: &mut Rng| rng.below(40_000);
    let handle_thread_spin = spin(&mut rng);
    let start = rng
        .chance(60)
        .then(|| (gen_leaf(&mut rng, &mut ids, 1, true), rng.chance(50)));
    let mut body_steps = gen_steps(&mut rng, &mut ids, 1, false);
    if rng.chance(10) {
        let at = rng.below(body_steps.len() + 1);
        body_steps.insert(at, Step::CancelNursery);
    }
    let body_end = if rng.chance(10) { End::Fail } else { End::Ok };
    Plan {
        children,
        handle_thread_spin,
        start,
        body_steps,
        body_end,
        cancel_outer: rng.chance(30).then(|| spin(&mut rng)),
        outer_deadline_now: rng.chance(10).then(|| spin(&mut rng)),
        cancel_n: rng.chance(30).then(|| spin(&mut rng)),
        cancel_cs: rng.chance(40).then(|| spin(&mut rng)),
        foreign_spawn: rng
            .chance(30)
            .then(|| (spin(&mut rng), gen_leaf(&mut rng, &mut ids, 1, false))),
    }
}

// ---------------------------------------------------------------- tracking

/// A canceller's progress: `begun` is set just before it cancels (or moves a deadline),
/// `done` once `cancel()` has returned.
#[derive(Default, Debug)]
struct Flags {
    begun: AtomicBool,
    done: AtomicBool,
}

impl Flags {
    fn cancel(&self, cancel: impl FnOnce()) {
        self.begun.store(true, SeqCst);
        cancel();
        self.done.store(true, SeqCst);
    }
}

/// How a leaf ended (a leaf cancelled at a suspension point has none).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Returned(u32),
    Failed,
    Panicked,
}

/// The `started` call of the start leaf.
#[derive(Debug, Clone, Copy)]
struct StartedCall {
    /// A cancellation of the caller's scope had returned before the call.
    cancelled_before: bool,
    /// No cancellation of the caller's scope had begun when the call returned.
    clean: bool,
}

/// What a round saw.
#[derive(Default)]
struct Track {
    outer: Arc<Flags>,
    n: Arc<Flags>,
    cs: Arc<Flags>,
    /// A leaf or the body is about to fail or panic (which cancels `N`).
    failure_begun: AtomicBool,
    /// Leaves (and the body, 0) that returned their own error, and that panicked.
    errors: Mutex<BTreeSet<u32>>,
    panics: Mutex<BTreeSet<u32>>,
    outcomes: Mutex<BTreeMap<u32, Outcome>>,
    /// Leaf futures polled at least once and not dropped yet.
    live: AtomicUsize,
    /// `N` has returned, or the outer scope ended it.
    n_over: AtomicBool,
    started_call: Mutex<Option<StartedCall>>,
    start_returned: AtomicBool,
    /// Errors that came out of `start`.
    start_errors: Mutex<BTreeSet<u32>>,
    /// The plain threads racing the round, joined at its end.
    threads: Mutex<Vec<JoinHandle<()>>>,
    violations: Mutex<Vec<String>>,
}

impl Track {
    fn violation(&self, s: String) {
        self.violations.lock().unwrap().push(s);
    }

    /// Starts a plain thread that spins, then runs `f`.
    fn thread(&self, spin_for: usize, f: impl FnOnce() + Send + 'static) {
        let t = std::thread::spawn(move || {
            spin(spin_for);
            f();
        });
        self.threads.lock().unwrap().push(t);
    }

    fn outcome(&self, id: u32) -> Option<Outcome> {
        self.outcomes.lock().unwrap().get(&id).copied()
    }

    fn ended(&self, id: u32, outcome: Outcome) {
        if outcome != Outcome::Returned(id) {
            self.failure_begun.store(true, SeqCst);
        }
        self.outcomes.lock().unwrap().insert(id, outcome);
    }

    /// Whether a cancellation that reaches the start leaf's caller has begun.
    fn caller_cancel_begun(&self) -> bool {
        [&self.outer, &self.n, &self.cs]
            .iter()
            .any(|f| f.begun.load(SeqCst))
            || self.failure_begun.load(SeqCst)
    }
}

/// A leaf's future: counted in [`Track::live`] from its first poll until it is dropped,
/// and checked not to be polled after its nursery returned.
struct Watched {
    track: Arc<Track>,
    id: u32,
    polled: bool,
    fut: BoxFut<Result<u32, E>>,
}

impl Future for Watched {
    type Output = Result<u32, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.track.n_over.load(SeqCst) {
            let id = self.id;
            self.track
                .violation(format!("leaf {id} polled after its nursery returned"));
        }
        if !self.polled {
            self.polled = true;
            self.track.live.fetch_add(1, SeqCst);
        }
        self.fut.as_mut().poll(cx)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if self.polled {
            self.track.live.fetch_sub(1, SeqCst);
        }
    }
}

/// The cancellations that reach a piece of code: once one of them has returned, no
/// suspension point that begins there completes.
#[derive(Clone, Default)]
struct Covers(Vec<(&'static str, Arc<Flags>)>);

impl Covers {
    fn with(&self, name: &'static str, flags: Arc<Flags>) -> Covers {
        let mut c = self.clone();
        c.0.push((name, flags));
        c
    }

    /// The name of a cancellation that has returned, if any.
    fn done(&self) -> Option<&'static str> {
        let done = self.0.iter().find(|(_, f)| f.done.load(SeqCst));
        done.map(|(name, _)| *name)
    }

    /// Whether one of them has begun.
    fn begun(&self) -> bool {
        self.0.iter().any(|(_, f)| f.begun.load(SeqCst))
    }
}

/// What reaches a child of `N`: the outer scope's and `N`'s cancellations.
fn base_covers(track: &Track) -> Covers {
    Covers::default()
        .with("outer", track.outer.clone())
        .with("N", track.n.clone())
}

fn spin(n: usize) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

// ---------------------------------------------------------------- running a plan

/// What every leaf of a round shares.
struct Ctx {
    track: Arc<Track>,
    /// The round's nursery `N`.
    n: Nursery<E>,
}

/// Awaits one suspension point of leaf `id`, checked against `covers`.
async fn suspend(ctx: &Ctx, id: u32, covers: &Covers, what: &str, wait: impl Future<Output = ()>) {
    let cancelled = covers.done();
    wait.await;
    if let Some(name) = cancelled {
        ctx.track.violation(format!(
            "leaf {id}: a {what} begun after `{name}.cancel()` returned completed"
        ));
    }
}

/// Runs `steps` of leaf `id` (0: the nursery's body). A start leaf passes its `status`;
/// its `covers` lose `cs` once `started` moved it into `N`. Fails with the errors a
/// combinator reported.
fn run_steps<'a>(
    ctx: &'a Arc<Ctx>,
    id: u32,
    steps: &'a [Step],
    covers: &'a mut Covers,
    status: &'a mut Option<TaskStatus<u32>>,
) -> BoxFutRef<'a> {
    Box::pin(async move {
        for step in steps {
            match step {
                Step::Checkpoint => suspend(ctx, id, covers, "checkpoint", checkpoint()).await,
                Step::Sleep(us) => {
                    let s = sleep(Duration::from_micros(*us));
                    suspend(ctx, id, covers, "sleep", s).await;
                }
                Step::Spin(n) => spin(*n),
                Step::Shielded(inner) => {
                    // Nothing outside reaches a shield.
                    shield(run_steps(ctx, id, inner, &mut Covers::default(), &mut None)).await?;
                }
                Step::Scope {
                    timeout_us,
                    foreign,
                    body,
                } => run_scope(ctx, id, *timeout_us, *foreign, body, covers).await?,
                Step::SpawnSibling(leaf) => {
                    // `N` is open while one of its children (or its body) runs.
                    let fut =
                        run_leaf(ctx.clone(), (**leaf).clone(), base_covers(&ctx.track), None);
                    drop(ctx.n.spawn(fut));
                }
                Step::CancelNursery => ctx.track.n.cancel(|| ctx.n.cancel()),
                Step::Started { shielded } => {
                    let Some(status) = status.take() else {
                        continue;
                    };
                    let track = &ctx.track;
                    let cancelled_before = covers.done().is_some();
                    let call = || {
                        // Recorded before the call: `start` may return before it does.
                        let mut record = StartedCall {
                            cancelled_before,
                            clean: false,
                        };
                        *track.started_call.lock().unwrap() = Some(record);
                        status.started(1000 + id);
                        record.clean = !track.caller_cancel_begun();
                        *track.started_call.lock().unwrap() = Some(record);
                    };
                    if *shielded {
                        shield(async { call() }).await;
                    } else {
                        call();
                    }
                    if !cancelled_before {
                        // Moved into `N`, unless a cancel raced the call: only the outer
                        // scope's and `N`'s cancellations surely reach it now.
                        *covers = base_covers(track);
                    }
                }
                Step::Comb(comb) => run_comb(ctx, id, comb, covers).await?,
            }
        }
        Ok(())
    })
}

type BoxFutRef<'a> = Pin<Box<dyn Future<Output = Result<(), E>> + Send + 'a>>;

/// A [`Step::Scope`]: checks what the scope returned against who cancelled it.
async fn run_scope(
    ctx: &Arc<Ctx>,
    id: u32,
    timeout_us: Option<u64>,
    foreign: Option<(usize, bool)>,
    body: &[Step],
    covers: &Covers,
) -> Result<(), E> {
    let mut scope = CancelScope::new();
    if let Some(us) = timeout_us {
        scope = scope.with_timeout(Duration::from_micros(us));
    }
    let h = scope.handle();
    let flags = Arc::new(Flags::default());
    if let Some((spin_for, cancel)) = foreign {
        let (h, flags) = (h.clone(), flags.clone());
        ctx.track.thread(spin_for, move || {
            if cancel {
                flags.cancel(|| h.cancel());
            } else {
                // Not `done`: a passed deadline cancels when the scope next reads the
                // clock (the runtime's clock is `Instant`'s on real time).
                flags.begun.store(true, SeqCst);
                h.set_deadline(Instant::now());
            }
        });
    }
    let mut inner = covers.with("scope", flags.clone());
    let r = scope
        .run(run_steps(ctx, id, body, &mut inner, &mut None))
        .await
        .transpose()?;
    let track = &ctx.track;
    match r {
        None if !flags.begun.load(SeqCst) && timeout_us.is_none() => {
            track.violation(format!("leaf {id}: scope caught, nobody cancelled it"));
        }
        None if !h.cancelled_caught() || !h.cancel_called() => {
            track.violation(format!("leaf {id}: scope returned None, {h:?}"))
        }
        Some(()) if h.cancelled_caught() => {
            track.violation(format!("leaf {id}: scope returned Some, {h:?}"));
        }
        _ => {}
    }
    Ok(())
}

/// A nested nursery in leaf `id`, whose grandchildren are leaves too; one of them may
/// cancel it when it ends. A grandchild's panic comes out here: it is this leaf's panic.
async fn run_nested(
    ctx: &Arc<Ctx>,
    id: u32,
    grandchildren: Vec<Leaf>,
    cancel_by: Option<usize>,
    covers: &Covers,
) -> Result<(), E> {
    let flags = Arc::new(Flags::default());
    let covers = covers.with("nested nursery", flags.clone());
    let nested = nursery(|n2: Nursery<E>| {
        let (ctx, flags) = (ctx.clone(), flags.clone());
        async move {
            for (i, g) in grandchildren.into_iter().enumerate() {
                let fut = run_leaf(ctx.clone(), g, covers.clone(), None);
                if cancel_by == Some(i) {
                    let (n2c, flags) = (n2.clone(), flags.clone());
                    n2.spawn(async move {
                        let r = fut.await;
                        flags.cancel(|| n2c.cancel());
                        r
                    });
                } else {
                    n2.spawn(fut);
                }
            }
            Ok(())
        }
    });
    match catch_panic(nested).await {
        Err(msg) => {
            ctx.track.ended(id, Outcome::Panicked);
            resume_unwind(Box::new(msg));
        }
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.is_cancelled() => {
            if !flags.begun.load(SeqCst) {
                ctx.track.violation(format!(
                    "leaf {id}: nested nursery Cancelled without its cancel()"
                ));
            }
            Ok(())
        }
        Ok(Err(e)) => Err(e.into_errors().into_iter().flatten().collect()),
    }
}

/// The future of a leaf: its steps, nested nursery and cleanup, then its end.
fn run_leaf(
    ctx: Arc<Ctx>,
    leaf: Leaf,
    mut covers: Covers,
    mut status: Option<TaskStatus<u32>>,
) -> Watched {
    let track = ctx.track.clone();
    let id = leaf.id;
    let fut = Box::pin(async move {
        let work = async {
            run_steps(&ctx, id, &leaf.steps, &mut covers, &mut status).await?;
            match leaf.nested.clone() {
                Some(g) => run_nested(&ctx, id, g, leaf.nested_cancel, &covers).await,
                None => Ok(()),
            }
        };
        let r = match &leaf.cleanup {
            None => work.await,
            // `finally` runs its cleanup in a shield: nothing outside reaches it.
            Some(cleanup) => {
                let cleanup = async {
                    let (mut none, mut status) = (Covers::default(), None);
                    let r = run_steps(&ctx, id, cleanup, &mut none, &mut status).await;
                    r.expect("cleanups run no combinator");
                };
                finally(work, cleanup).await
            }
        };
        let track = &ctx.track;
        if let Err(e) = r {
            track.ended(id, Outcome::Failed);
            return Err(e);
        }
        match leaf.end {
            End::Ok => {
                track.ended(id, Outcome::Returned(id));
                Ok(id)
            }
            End::Fail => {
                track.errors.lock().unwrap().insert(id);
                track.ended(id, Outcome::Failed);
                Err(vec![id])
            }
            End::Panic => {
                track.panics.lock().unwrap().insert(id);
                track.ended(id, Outcome::Panicked);
                planted_panic(format!("leaf {id} panics"));
            }
        }
    });
    Watched {
        track,
        id,
        polled: false,
        fut,
    }
}

// ---------------------------------------------------------------- combinators

/// What the branches of one combinator step did.
#[derive(Default)]
struct Rec {
    /// How each branch ended (a branch cancelled at a suspension point has none).
    outcomes: Mutex<BTreeMap<u32, Outcome>>,
    /// Branch futures made and not dropped yet, and the most there were at once.
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl Rec {
    /// The output branch `bid` returned, if it returned.
    fn output(&self, bid: u32) -> Option<Result<u32, E>> {
        match self.outcomes.lock().unwrap().get(&bid)? {
            Outcome::Returned(v) => Some(Ok(*v)),
            Outcome::Failed => Some(Err(vec![bid])),
            Outcome::Panicked => None,
        }
    }

    /// Whether a branch panicked.
    fn panicked(&self) -> bool {
        let outcomes = self.outcomes.lock().unwrap();
        outcomes.values().any(|o| *o == Outcome::Panicked)
    }

    /// The branches among `bids` that returned `Err`.
    fn failed(&self, bids: &[u32]) -> BTreeSet<u32> {
        let outcomes = self.outcomes.lock().unwrap();
        let failed = bids
            .iter()
            .filter(|b| outcomes.get(b) == Some(&Outcome::Failed));
        failed.copied().collect()
    }
}

/// Counts a branch future in [`Rec::live`] from when it is made until it is dropped.
struct Alive(Arc<Rec>);

impl Alive {
    fn new(rec: &Arc<Rec>) -> Alive {
        let now = rec.live.fetch_add(1, SeqCst) + 1;
        rec.peak.fetch_max(now, SeqCst);
        Alive(rec.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, SeqCst);
    }
}

/// The future of a branch: its steps, checked against the `covers` of the leaf that runs
/// the combinator, then its end, recorded in `rec`.
fn run_branch(ctx: Arc<Ctx>, branch: Branch, covers: Covers, rec: Arc<Rec>) -> Watched {
    let track = ctx.track.clone();
    let id = branch.id;
    let alive = Alive::new(&rec);
    let fut = Box::pin(async move {
        let _alive = alive;
        let mut covers = covers;
        run_steps(&ctx, id, &branch.steps, &mut covers, &mut None).await?;
        let outcome = match branch.end {
            End::Ok => Outcome::Returned(id),
            End::Fail => Outcome::Failed,
            End::Panic => {
                ctx.track.panics.lock().unwrap().insert(id);
                Outcome::Panicked
            }
        };
        rec.outcomes.lock().unwrap().insert(id, outcome);
        match branch.end {
            End::Ok => Ok(id),
            End::Fail => Err(vec![id]),
            End::Panic => planted_panic(format!("leaf {id} panics")),
        }
    });
    Watched {
        track,
        id,
        polled: false,
        fut,
    }
}

/// The branch whose output `out` is.
fn branch_of(out: &Result<u32, E>) -> Option<u32> {
    match out {
        Ok(v) => Some(*v),
        Err(e) if e.len() == 1 => Some(e[0]),
        Err(_) => None,
    }
}

/// The errors among outputs.
fn errors_in<'a>(outs: impl IntoIterator<Item = &'a Result<u32, E>>) -> Vec<u32> {
    let errors = outs.into_iter().filter_map(|o| o.as_ref().err());
    errors.flatten().copied().collect()
}

/// A combinator step of leaf `id` (0: the body): runs it, checks what it returned against
/// its rustdoc, and fails with the errors it reported (counted in `track.errors` here, so
/// that `N` must report each exactly once). A panic it resumed is the leaf's.
async fn run_comb(ctx: &Arc<Ctx>, id: u32, comb: &Comb, covers: &Covers) -> Result<(), E> {
    let track = &ctx.track;
    let what = comb.kind.name();
    let rec = Arc::new(Rec::default());
    let cancelled = covers.done();
    let r = catch_panic(first_poll(comb_outputs(ctx, id, comb, covers, &rec))).await;
    let live = rec.live.load(SeqCst);
    if live != 0 {
        track.violation(format!(
            "leaf {id}: {live} futures of {what} alive after it returned"
        ));
    }
    let (errors, unsuspended) = match r {
        Err(msg) => {
            track.ended(id, Outcome::Panicked);
            resume_unwind(Box::new(msg));
        }
        Ok(r) => r,
    };
    // Code that never suspends is not interrupted (C1): a combinator that finished in its
    // first poll (a nursery with nothing to wait for) returns even in a cancelled scope.
    if let (Some(name), false) = (cancelled, unsuspended) {
        if errors.is_empty() || !comb.kind.fails_on_error() {
            track.violation(format!(
                "leaf {id}: a {what} begun after `{name}.cancel()` returned completed \
                 (errors {errors:?})"
            ));
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    track.errors.lock().unwrap().extend(errors.iter().copied());
    Err(errors)
}

/// Awaits `fut`; with its output, whether it finished in its first poll.
async fn first_poll<F: Future>(fut: F) -> (F::Output, bool) {
    let mut fut = std::pin::pin!(fut);
    let mut polls = 0u32;
    let out = std::future::poll_fn(|cx| {
        polls += 1;
        fut.as_mut().poll(cx)
    })
    .await;
    (out, polls == 1)
}

/// Runs the combinator of `comb`, checks its outputs, and returns the errors it reported.
async fn comb_outputs(
    ctx: &Arc<Ctx>,
    id: u32,
    comb: &Comb,
    covers: &Covers,
    rec: &Arc<Rec>,
) -> Vec<u32> {
    let track = &ctx.track;
    let what = comb.kind.name();
    let bad = |s: String| track.violation(format!("leaf {id}: {what}: {s}"));
    let bids: Vec<u32> = comb.branches.iter().map(|b| b.id).collect();
    let branch = |b: &Branch| run_branch(ctx.clone(), b.clone(), covers.clone(), rec.clone());
    let futs = || comb.branches.iter().map(branch).collect::<Vec<_>>();
    // Outputs in input order: each what its branch returned.
    let in_order = |outs: &[Result<u32, E>]| {
        let expected: Vec<_> = bids.iter().map(|b| rec.output(*b)).collect();
        if outs.len() != bids.len()
            || outs
                .iter()
                .zip(&expected)
                .any(|(o, e)| e.as_ref() != Some(o))
        {
            bad(format!(
                "gave {outs:?}, the branches {bids:?} returned {expected:?}"
            ));
        }
    };
    // Outputs in any order: each what its branch returned, each branch at most once, and
    // all of them if `all`.
    let any_order = |outs: &[Result<u32, E>], all: bool| {
        let mut seen = BTreeSet::new();
        for o in outs {
            let from = branch_of(o).filter(|b| bids.contains(b));
            match from {
                Some(b) if rec.output(b).as_ref() == Some(o) && seen.insert(b) => {}
                _ => bad(format!("gave {o:?} (of {outs:?}); branches {bids:?}")),
            }
        }
        if all && seen.len() != bids.len() {
            bad(format!(
                "gave {outs:?}, not one output per branch of {bids:?}"
            ));
        }
    };
    // The errors of a failure: each of a branch that failed, once, all of them.
    let failure = |e: NurseryError<E>, of: &[u32]| {
        if e.is_cancelled() {
            bad("returned Cancelled".into());
            return Vec::new();
        }
        let got: Vec<u32> = e.into_errors().into_iter().flatten().collect();
        let set: BTreeSet<u32> = got.iter().copied().collect();
        let failed = rec.failed(of);
        if got.is_empty() || set.len() != got.len() || set != failed {
            bad(format!(
                "failed with {got:?}, the branches that failed: {failed:?}"
            ));
        }
        got
    };
    // The values of a success: every branch returned.
    let values = |vals: &[u32], ordered: bool| {
        let mut sorted = vals.to_vec();
        if !ordered {
            sorted.sort_unstable();
        }
        let returned = bids.iter().all(|b| rec.output(*b) == Some(Ok(*b)));
        if sorted != bids || !returned {
            bad(format!("gave {vals:?}, branches {bids:?}"));
        }
    };
    match &comb.kind {
        CombKind::Join => {
            let outs = hatchery::join(futs()).await;
            in_order(&outs);
            errors_in(&outs)
        }
        CombKind::TryJoin => match hatchery::try_join(futs()).await {
            Ok(vals) => {
                values(&vals, true);
                Vec::new()
            }
            Err(e) => failure(e, &bids),
        },
        CombKind::Race => {
            let out = hatchery::race(futs()).await;
            any_order(std::slice::from_ref(&out), false);
            errors_in([&out])
        }
        CombKind::RaceOk => match hatchery::race_ok(futs()).await {
            Ok(v) => {
                any_order(&[Ok(v)], false);
                Vec::new()
            }
            Err(e) => {
                let got = failure(e, &bids);
                if got.len() != bids.len() {
                    bad(format!("failed with {got:?}, not every branch of {bids:?}"));
                }
                got
            }
        },
        CombKind::Map {
            limit,
            try_join,
            unordered,
        } => {
            let mut work = hatchery::map(*limit, &comb.branches, branch);
            if *unordered {
                work = work.unordered();
            }
            let errors = if *try_join {
                match work.try_join().await {
                    Ok(vals) => {
                        values(&vals, !unordered);
                        Vec::new()
                    }
                    Err(e) => failure(e, &bids),
                }
            } else {
                let outs = work.join().await;
                if *unordered {
                    any_order(&outs, true);
                } else {
                    in_order(&outs);
                }
                errors_in(&outs)
            };
            let peak = rec.peak.load(SeqCst);
            if peak > *limit {
                bad(format!("{peak} futures in flight, limit {limit}"));
            }
            errors
        }
        CombKind::AsCompleted { take } => {
            let n = bids.len();
            let outs = hatchery::as_completed(futs(), |mut done| async move {
                let mut outs = Vec::new();
                while outs.len() < *take {
                    let cancelled = covers.done();
                    let next = futures_lite::StreamExt::next(&mut done).await;
                    if let Some(name) = cancelled {
                        bad(format!(
                            "a wait for an output begun after `{name}.cancel()` returned completed"
                        ));
                    }
                    match next {
                        Some(out) => outs.push(out),
                        None => {
                            bad(format!(
                                "the stream ended after {} of {n} outputs",
                                outs.len()
                            ));
                            break;
                        }
                    }
                }
                outs
            })
            .await;
            any_order(&outs, false);
            errors_in(&outs)
        }
        CombKind::JoinMacro => {
            let [a, b]: [Watched; 2] = futs().try_into().ok().expect("two branches");
            let (a, b) = hatchery::join!(a, b);
            let outs = [a, b];
            in_order(&outs);
            errors_in(&outs)
        }
        CombKind::TryJoinMacro => {
            let [a, b]: [Watched; 2] = futs().try_into().ok().expect("two branches");
            match hatchery::try_join!(a, b) {
                Ok((a, b)) => {
                    values(&[a, b], true);
                    Vec::new()
                }
                Err(e) => failure(e, &bids),
            }
        }
        CombKind::RaceMacro => {
            let [a, b]: [Watched; 2] = futs().try_into().ok().expect("two branches");
            let out = hatchery::race!(a, b);
            any_order(std::slice::from_ref(&out), false);
            errors_in([&out])
        }
        CombKind::Service { grace_us, body } => {
            let grace = grace_us.map_or(Duration::MAX, Duration::from_micros);
            let report = hatchery::service(grace, |svc: hatchery::Service<E>| async move {
                let mut spawned = Vec::new();
                for b in &comb.branches {
                    let fut = branch(b);
                    match svc.try_spawn(async move { fut.await.map(drop) }) {
                        Ok(()) => spawned.push(b.id),
                        // `covers` lose `cs` once `started` returned, but a cancel of
                        // `cs` that raced the call may still reach the leaf; a task that
                        // panicked cancels the service.
                        Err(_)
                            if !covers.begun()
                                && !track.caller_cancel_begun()
                                && !rec.panicked() =>
                        {
                            bad("try_spawn refused, nothing cancelled the service".into());
                        }
                        Err(_) => {}
                    }
                }
                let mut covers = covers.clone();
                run_steps(ctx, id, body, &mut covers, &mut None).await?;
                Ok(spawned)
            })
            .await;
            let Some(spawned) = report.value.clone() else {
                bad(format!(
                    "the body returned, the report has no value: {report:?}"
                ));
                return report.errors.into_iter().flatten().collect();
            };
            let completed = spawned.iter().filter(|b| rec.output(**b).is_some()).count();
            let cancelled = spawned.len() - completed;
            if (report.completed, report.cancelled) != (completed, cancelled)
                || (grace_us.is_none() && cancelled != 0)
            {
                bad(format!(
                    "{report:?}: of the tasks {spawned:?}, {completed} returned, {cancelled} \
                     did not (grace {grace:?})"
                ));
            }
            let got: Vec<u32> = report.errors.iter().flatten().copied().collect();
            let set: BTreeSet<u32> = got.iter().copied().collect();
            let failed = rec.failed(&spawned);
            if set.len() != got.len() || set != failed {
                bad(format!(
                    "reported errors {got:?}, the tasks that failed: {failed:?}"
                ));
            }
            got
        }
    }
}

// ---------------------------------------------------------------- a round

/// Handles checked after the nursery returned.
type Kept = Arc<Mutex<Vec<(u32, TaskHandle<u32>)>>>;

/// A join's result against how leaf `id` ended.
fn check_join(track: &Track, id: u32, r: &Result<u32, JoinError>, what: &str) {
    let outcome = track.outcome(id);
    let ok = match r {
        Ok(v) => *v == id && outcome == Some(Outcome::Returned(id)),
        Err(e) if e.is_cancelled() => outcome.is_none(),
        Err(e) if e.is_failed() => outcome == Some(Outcome::Failed),
        Err(e) if e.is_panicked() => outcome == Some(Outcome::Panicked),
        Err(_) => false,
    };
    if !ok {
        track.violation(format!(
            "{what} of leaf {id}: {r:?}, but the leaf ended {outcome:?}"
        ));
    }
}

/// Spawns the children and hands their handles out as the plan says; returns those the
/// body joins.
fn spawn_children(ctx: &Arc<Ctx>, plan: &Plan, kept: &Kept) -> Vec<(u32, TaskHandle<u32>)> {
    let track = &ctx.track;
    let mut joins = Vec::new();
    let mut to_thread = Vec::new();
    for (leaf, handle_use) in &plan.children {
        let own = Arc::new(Flags::default());
        let covers = base_covers(track).with("task", own.clone());
        let id = leaf.id;
        let h = ctx
            .n
            .spawn(run_leaf(ctx.clone(), leaf.clone(), covers, None));
        match *handle_use {
            HandleUse::Drop => drop(h),
            HandleUse::Join => joins.push((id, h)),
            HandleUse::CancelThenJoin => {
                own.cancel(|| h.cancel());
                joins.push((id, h));
            }
            HandleUse::Keep => kept.lock().unwrap().push((id, h)),
            HandleUse::Thread(act) => to_thread.push((id, h, own, act)),
        }
    }
    if !to_thread.is_empty() {
        let (track, kept) = (track.clone(), kept.clone());
        ctx.track.thread(plan.handle_thread_spin, move || {
            for (id, h, own, act) in to_thread {
                match act {
                    ThreadAct::Cancel => own.cancel(|| h.cancel()),
                    ThreadAct::Drop => drop(h),
                    ThreadAct::CancelThenDrop => {
                        own.cancel(|| h.cancel());
                        drop(h);
                    }
                    ThreadAct::CancelKeep => {
                        own.cancel(|| h.cancel());
                        kept.lock().unwrap().push((id, h));
                    }
                    ThreadAct::JoinBlocking => {
                        let r = futures_lite::future::block_on(h.join());
                        check_join(&track, id, &r, "blocking join on a thread");
                    }
                }
            }
        });
    }
    joins
}

/// Starts the start leaf (in `cs` if `in_cs`) and checks what `start` returned.
async fn start_leaf(ctx: &Arc<Ctx>, leaf: Leaf, in_cs: bool, cs_spin: Option<usize>) {
    let track = &ctx.track;
    let id = leaf.id;
    let cs = CancelScope::new();
    let csh = cs.handle();
    let mut covers = base_covers(track);
    if in_cs {
        covers = covers.with("cs", track.cs.clone());
        if let Some(spin_for) = cs_spin {
            let (h, t) = (csh.clone(), track.clone());
            ctx.track
                .thread(spin_for, move || t.cs.cancel(|| h.cancel()));
        }
    }
    let c = ctx.clone();
    let start = ctx
        .n
        .start(move |status: TaskStatus<u32>| run_leaf(c, leaf, covers, Some(status)));
    let r = if in_cs {
        cs.run(start).await
    } else {
        Some(start.await)
    };
    track.start_returned.store(true, SeqCst);
    let call = *track.started_call.lock().unwrap();
    let outcome = track.outcome(id);
    let ok = match &r {
        Some(Ok(v)) => *v == 1000 + id && call.is_some_and(|c| !c.cancelled_before),
        Some(Err(StartError::Failed(e))) => {
            track.start_errors.lock().unwrap().extend(e);
            outcome == Some(Outcome::Failed)
        }
        Some(Err(StartError::NotStarted)) => {
            call.is_none() && outcome == Some(Outcome::Returned(id))
        }
        Some(Err(_)) => false,
        None => track.cs.begun.load(SeqCst) && csh.cancelled_caught() && csh.cancel_called(),
    };
    let clean = call.is_some_and(|c| c.clean);
    if !ok || (clean && !matches!(r, Some(Ok(_)))) || (r.is_some() && csh.cancelled_caught()) {
        track.violation(format!(
            "start of leaf {id} gave {r:?}: started call {call:?}, leaf ended {outcome:?}, \
             cs {csh:?}"
        ));
    }
}

/// Runs the round of `seed` and returns what it violated.
async fn round(seed: u64) -> Vec<String> {
    let plan = gen_plan(seed);
    let track = Arc::new(Track::default());
    let outer = CancelScope::new();
    let oh = outer.handle();
    let kept: Kept = Arc::default();
    if let Some(s) = plan.cancel_outer {
        let (oh, t) = (oh.clone(), track.clone());
        track.thread(s, move || t.outer.cancel(|| oh.cancel()));
    }
    if let Some(s) = plan.outer_deadline_now {
        let (oh, t) = (oh.clone(), track.clone());
        track.thread(s, move || {
            // Not `done`: a passed deadline cancels when the scope next reads the clock.
            t.outer.begun.store(true, SeqCst);
            oh.set_deadline(Instant::now());
        });
    }
    let body = nursery(|n: Nursery<E>| {
        let ctx = Arc::new(Ctx {
            track: track.clone(),
            n,
        });
        let (plan, kept) = (&plan, kept.clone());
        async move {
            let track = &ctx.track;
            if let Some(s) = plan.cancel_n {
                let (n, t) = (ctx.n.clone(), track.clone());
                track.thread(s, move || t.n.cancel(|| n.cancel()));
            }
            if let Some((s, leaf)) = plan.foreign_spawn.clone() {
                let (c, kept) = (ctx.clone(), kept.clone());
                track.thread(s, move || {
                    let id = leaf.id;
                    let fut = run_leaf(c.clone(), leaf, base_covers(&c.track), None);
                    match c.n.try_spawn(fut) {
                        Ok(h) => kept.lock().unwrap().push((id, h)),
                        Err(_) if !c.n.is_closed() => {
                            c.track
                                .violation("try_spawn failed on an open nursery".into());
                        }
                        Err(_) => {}
                    }
                });
            }
            let joins = spawn_children(&ctx, plan, &kept);
            if let Some((leaf, in_cs)) = plan.start.clone() {
                start_leaf(&ctx, leaf, in_cs, plan.cancel_cs).await;
            }
            let mut covers = base_covers(track);
            let r = run_steps(&ctx, 0, &plan.body_steps, &mut covers, &mut None).await;
            if let Err(e) = r {
                // A combinator's errors (already counted in `track.errors`).
                track.failure_begun.store(true, SeqCst);
                return Err(e);
            }
            for (id, h) in joins {
                let r = h.join().await;
                check_join(track, id, &r, "join in the body");
            }
            if plan.body_end == End::Fail {
                track.errors.lock().unwrap().insert(0);
                track.failure_begun.store(true, SeqCst);
                return Err(vec![0]);
            }
            Ok(())
        }
    });
    let res = catch_panic(outer.run(body)).await;
    track.n_over.store(true, SeqCst);
    // Every thread has been started (leaves start some): join them. One that never ends
    // (a blocking join of a task that never finishes) leaves this pending, for the
    // watchdog to report.
    let threads = std::mem::take(&mut *track.threads.lock().unwrap());
    run_blocking(move || {
        for t in threads {
            if let Err(panic) = t.join() {
                resume_unwind(panic);
            }
        }
    })
    .await;
    check_round(&track, &oh, &res, &kept).await;
    std::mem::take(&mut *track.violations.lock().unwrap())
}

/// Checks a round's end: the nursery's result and the handles kept past it.
async fn check_round(
    track: &Track,
    oh: &CancelHandle,
    res: &Result<Option<Result<(), NurseryError<E>>>, String>,
    kept: &Kept,
) {
    let live = track.live.load(SeqCst);
    if live != 0 {
        track.violation(format!(
            "{live} leaf futures alive after the nursery returned"
        ));
    }
    let panics = track.panics.lock().unwrap().clone();
    let errors = track.errors.lock().unwrap().clone();
    let from_start = track.start_errors.lock().unwrap().clone();
    if !from_start.is_subset(&errors) {
        track.violation(format!(
            "start gave errors {from_start:?}, leaves returned {errors:?}"
        ));
    }
    // What `N` must report.
    let expected: BTreeSet<u32> = errors.difference(&from_start).copied().collect();
    let no_error_expected = |what: &str| {
        if !expected.is_empty() {
            track.violation(format!("{what}, but leaves returned errors {expected:?}"));
        }
    };
    match res {
        Err(msg) => {
            if !panics.iter().any(|id| *msg == format!("leaf {id} panics")) {
                track.violation(format!(
                    "panic `{msg}` escaped; leaves panicked: {panics:?}"
                ));
            }
        }
        Ok(r) => {
            if !panics.is_empty() {
                track.violation(format!("leaves {panics:?} panicked, none came out: {r:?}"));
            }
            match r {
                Some(Ok(())) => no_error_expected("the nursery returned Ok"),
                Some(Err(e)) if e.is_cancelled() => {
                    no_error_expected("the nursery returned Cancelled");
                    if !track.n.begun.load(SeqCst) {
                        track.violation("the nursery returned Cancelled without N.cancel()".into());
                    }
                }
                Some(Err(e)) => {
                    let got: Vec<u32> = e.errors().iter().flatten().copied().collect();
                    let set: BTreeSet<u32> = got.iter().copied().collect();
                    if set.len() != got.len() || set != expected {
                        track.violation(format!(
                            "the nursery gave errors {got:?}, expected {expected:?}"
                        ));
                    }
                }
                None => {
                    no_error_expected("the outer scope caught");
                    if !track.outer.begun.load(SeqCst) {
                        track.violation("the outer scope caught, nobody cancelled it".into());
                    }
                    if !oh.cancelled_caught() || !oh.cancel_called() {
                        track.violation(format!("the outer scope returned None, {oh:?}"));
                    }
                }
            }
            if r.is_some() && oh.cancelled_caught() {
                track.violation(format!("the outer scope returned Some, {oh:?}"));
            }
            let call = *track.started_call.lock().unwrap();
            if call.is_some_and(|c| c.clean) && !track.start_returned.load(SeqCst) {
                track
                    .violation("started() returned before any cancel, start never returned".into());
            }
        }
    }
    let kept = std::mem::take(&mut *kept.lock().unwrap());
    for (id, h) in kept {
        if !h.is_finished() {
            track.violation(format!(
                "kept handle of leaf {id} not finished after the nursery"
            ));
        }
        match futures_lite::future::poll_once(h.join()).await {
            None => track.violation(format!("join of leaf {id} not ready after the nursery")),
            Some(r) => check_join(track, id, &r, "join after the nursery"),
        }
    }
}

// ---------------------------------------------------------------- driver

/// Runs every round, each on a fresh runtime of `backend`, and fails with the seeds of
/// the rounds that violated something.
fn check_backend(backend: Backend) {
    seeded::check(ROUNDS, |seed| {
        // A panic of the round itself is the watchdog's (a hang) or the harness's own.
        let v = backend.run(round(seed));
        assert!(
            v.is_empty(),
            "{backend:?}: {v:#?}\nplan: {:#?}",
            gen_plan(seed)
        );
    });
}

#[test]
fn race_stress_tokio_multi() {
    check_backend(Backend::TokioMulti);
}

#[test]
fn race_stress_smol() {
    check_backend(Backend::Smol);
}
