//! Randomized panics in every combinator's futures, and in futures that hold the
//! synchronization primitives, on every backend.
//!
//! Each round builds a plan from its seed ([`Rng`]): a combinator (`join`, `try_join`,
//! `settle`, `race`, `race_ok` of either kind, spawned or polled, `as_completed` read plainly, shielded or in part,
//! `as_completed_in` read in the body, in a `finally` or dropped, `map` and `map_stream`
//! with `join`, `try_join` or `settle`, ordered or not (`map` of an iterator of either
//! kind), `retry`, `service`, `batches`, `join!`, `try_join!` (of either kind),
//! `race!`) over a few futures. Each future runs a few steps:
//! sleeps, checkpoints, a `Lock` guard, a `Semaphore` permit or a `CapacityLimiter`
//! token held across sleeps, a wait on an `Event` or a `Condition` (bounded by a timeout,
//! with steps elsewhere that set and notify), a send or a receive on a memory stream. At
//! most one panic is injected per round, at a seeded point: in one future before its
//! first suspension, after some steps (perhaps while it holds a guard, a permit or a
//! token), in a task of a nursery the future opens there, or in the `Drop` of a value it
//! holds (so when it returns, or when it is cancelled); or in the combinator's body
//! instead (the reader of `as_completed`, the closure of `map` or `retry`, the body of
//! `service`, the source of `batches`).
//!
//! Checked in every round:
//!
//! * **The panic is resumed in the caller, with its payload**, if and only if it
//!   happened (a future cancelled before its panic point does not panic).
//! * **No hang**: every wait in a plan is bounded, so a round ends within a virtual
//!   minute; a round that has not ended after a virtual day fails (the clock jumps there
//!   at once when every task is blocked), and [`Backend::run`]'s watchdog fails a round
//!   that spins.
//! * **Structure**: every future is dropped before the combinator returns or resumes the
//!   panic.
//! * **The primitives are usable afterwards**: every permit and token came back, the lock
//!   can be taken, nobody is left queued, the stream sends and receives.
//! * Without a panic, the combinator's output is the futures' own.
//!
//! The rounds are seeded by the harness of the seeded tests (`hatchery_tests::seeded`):
//! [`ROUNDS`] per backend unless `HATCHERY_TEST_CASES` says otherwise; a failure prints
//! the seeds that failed, the first one's violations and plan, and the line that replays
//! it (`HATCHERY_TEST_SEED`). `HATCHERY_TEST_STATS=1` prints how many rounds panicked.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::{stream, StreamExt};
use hatchery::backon::ConstantBuilder;
use hatchery::sync::{CapacityLimiter, Condition, Event, Lock, Semaphore};
use hatchery::{
    as_completed, as_completed_in, batches, checkpoint, finally, join, map, map_stream,
    memory_stream, move_on_after, nursery, race, race_ok, retry, service, settle, shield, sleep,
    try_join, NurseryError, Polled, ReceiveStream, SendStream,
};
use hatchery_tests::seeded::{self, planted_panic, Rng};
use hatchery_tests::{catch_panic, Backend};

/// Rounds per backend unless `HATCHERY_TEST_CASES` says otherwise: one to two seconds per
/// backend in a debug build on two cores (every round runs on virtual time).
const ROUNDS: u64 = 2000;

/// Permits of the semaphore and tokens of the limiter.
const SHARED: usize = 2;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------- plans

/// What a future holds across a few steps.
#[derive(Debug, Clone, Copy)]
enum Holds {
    Lock,
    Permit,
    Token,
}

/// A step inside a hold (never another hold: two futures taking two in opposite orders
/// would deadlock for real).
#[derive(Debug, Clone, Copy)]
enum Inner {
    Sleep(u64),
    Checkpoint,
}

#[derive(Debug, Clone)]
enum Step {
    Sleep(u64),
    Checkpoint,
    Hold(Holds, Vec<Inner>),
    /// Waits for the event, at most this many milliseconds.
    WaitEvent(u64),
    SetEvent,
    /// Takes the lock and waits on the condition, at most this many milliseconds.
    WaitCondition(u64),
    Notify,
    /// Sends on the stream (of capacity one), at most this many milliseconds.
    Send(u64),
    /// Receives from the stream, at most this many milliseconds.
    Recv(u64),
}

/// Where a future panics.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Boom {
    /// Before its `n`th step (counting the steps inside holds), or at its end.
    At(usize),
    /// In the `Drop` of a value it holds: when it returns, or when it is dropped early.
    InDrop,
    /// Before its `n`th step, in a task of a nursery it opens there (the nursery resumes
    /// the panic in the future).
    InChild(usize),
}

#[derive(Debug, Clone)]
struct Fut {
    steps: Vec<Step>,
    boom: Option<Boom>,
    /// Returns `Err(index)` instead of `Ok(index)`.
    err: bool,
}

#[derive(Debug, Clone, Copy)]
enum Read {
    /// Every item.
    All,
    /// Every item, shielded: out of the reach of a panic's cancellation.
    Shielded,
    /// This many items, then returns (cancelling the rest).
    Some(usize),
}

#[derive(Debug, Clone, Copy)]
enum ReadIn {
    /// Every item, in the nursery's body.
    All,
    /// Every item, in a `finally` after a second of work.
    InFinally,
    /// Drops the stream after this many items.
    Drop(usize),
}

#[derive(Debug, Clone, Copy)]
enum Collect {
    Join,
    TryJoin,
    Settle,
}

#[derive(Debug, Clone, Copy)]
enum Comb {
    Join,
    TryJoin,
    Settle,
    Race,
    RaceOk,
    AsCompleted(Read),
    AsCompletedIn(ReadIn),
    Map {
        limit: usize,
        collect: Collect,
        unordered: bool,
        stream: bool,
    },
    Retry,
    Service {
        grace: u64,
        shutdown: bool,
    },
    Batches {
        size: usize,
    },
    JoinMacro,
    TryJoinMacro,
    RaceMacro,
}

#[derive(Debug, Clone)]
struct Plan {
    comb: Comb,
    futs: Vec<Fut>,
    /// The combinator's body panics instead: after this many items (`as_completed`,
    /// `as_completed_in`, `batches`), at this input (`map`'s closure), at this attempt
    /// (`retry`'s closure), after spawning (`service`).
    body_boom: Option<usize>,
    /// The combinator of `hatchery::Polled` instead (`join`, `try_join`, `settle`,
    /// `race`, `race_ok`, `map` of an iterator, `join!`, `try_join!`): the same
    /// operation, over polled children. Drawn from the seed's bits, not
    /// from its generator, so that a seed's plan is otherwise what it always was.
    polled: bool,
}

fn gen_inner(rng: &mut Rng) -> Inner {
    if rng.chance(60) {
        Inner::Sleep(1 + rng.below_u64(5))
    } else {
        Inner::Checkpoint
    }
}

fn gen_step(rng: &mut Rng) -> Step {
    match rng.below(10) {
        0 => Step::Sleep(1 + rng.below_u64(10)),
        1 => Step::Checkpoint,
        2 | 3 => {
            let holds = [Holds::Lock, Holds::Permit, Holds::Token][rng.below(3)];
            let inner = (0..rng.below(3)).map(|_| gen_inner(rng)).collect();
            Step::Hold(holds, inner)
        }
        4 => Step::WaitEvent(1 + rng.below_u64(10)),
        5 => Step::SetEvent,
        6 => Step::WaitCondition(1 + rng.below_u64(10)),
        7 => Step::Notify,
        8 => Step::Send(1 + rng.below_u64(10)),
        _ => Step::Recv(1 + rng.below_u64(10)),
    }
}

/// The number of panic points in `steps`: one before each step, inner ones included.
fn points(steps: &[Step]) -> usize {
    steps
        .iter()
        .map(|s| match s {
            Step::Hold(_, inner) => 1 + inner.len(),
            _ => 1,
        })
        .sum()
}

fn gen_plan(seed: u64) -> Plan {
    let mut rng = Rng::seeded(seed);
    let comb = match rng.below(16) {
        0 => Comb::Join,
        1 => Comb::TryJoin,
        2 => Comb::Settle,
        3 => Comb::Race,
        4 => Comb::RaceOk,
        5 | 6 => Comb::AsCompleted(match rng.below(3) {
            0 => Read::All,
            1 => Read::Shielded,
            _ => Read::Some(rng.below(3)),
        }),
        7 => Comb::AsCompletedIn(match rng.below(3) {
            0 => ReadIn::All,
            1 => ReadIn::InFinally,
            _ => ReadIn::Drop(rng.below(3)),
        }),
        8 | 9 => Comb::Map {
            limit: 1 + rng.below(3),
            collect: [Collect::Join, Collect::TryJoin, Collect::Settle][rng.below(3)],
            unordered: rng.chance(50),
            stream: rng.chance(30),
        },
        10 => Comb::Retry,
        11 => Comb::Service {
            grace: [0, 3, 1000][rng.below(3)],
            shutdown: rng.chance(50),
        },
        12 => Comb::Batches {
            size: 1 + rng.below(3),
        },
        13 => Comb::JoinMacro,
        14 => Comb::TryJoinMacro,
        _ => Comb::RaceMacro,
    };
    let n = match comb {
        Comb::JoinMacro | Comb::TryJoinMacro | Comb::RaceMacro => 3,
        _ => 1 + rng.below(4),
    };
    let mut futs: Vec<Fut> = (0..n)
        .map(|_| Fut {
            steps: (0..rng.below(5)).map(|_| gen_step(&mut rng)).collect(),
            boom: None,
            err: rng.chance(20),
        })
        .collect();
    let has_body = matches!(
        comb,
        Comb::AsCompleted(_)
            | Comb::AsCompletedIn(_)
            | Comb::Map { .. }
            | Comb::Retry
            | Comb::Service { .. }
            | Comb::Batches { .. }
    );
    let mut body_boom = None;
    match rng.below(10) {
        // No panic: the outputs are checked.
        0 => {}
        1 | 2 if has_body => body_boom = Some(rng.below(n + 1)),
        _ => {
            let f = &mut futs[rng.below(n)];
            let at = rng.below(points(&f.steps) + 1);
            f.boom = Some(match rng.below(5) {
                0 => Boom::At(0),
                1 => Boom::InDrop,
                2 => Boom::InChild(at),
                _ => Boom::At(at),
            });
        }
    }
    let polled = (seed >> 5) & 1 == 1
        && matches!(
            comb,
            Comb::Join
                | Comb::TryJoin
                | Comb::Settle
                | Comb::Race
                | Comb::RaceOk
                | Comb::Map { stream: false, .. }
                | Comb::JoinMacro
                | Comb::TryJoinMacro
        );
    Plan {
        comb,
        futs,
        body_boom,
        polled,
    }
}

// ---------------------------------------------------------------- running

/// What the futures share, and what they tell the checks.
struct Ctx {
    lock: Lock<u32>,
    sem: Semaphore,
    limiter: CapacityLimiter,
    event: Event,
    cond: Condition,
    tx: SendStream<u32>,
    rx: ReceiveStream<u32>,
    payload: String,
    /// The injected panic has begun (set just before it).
    panicked: AtomicBool,
    /// Futures made and not dropped yet.
    alive: AtomicUsize,
    violations: Mutex<Vec<String>>,
}

impl Ctx {
    fn new(seed: u64) -> Ctx {
        let (tx, rx) = memory_stream(1);
        Ctx {
            lock: Lock::new(0),
            sem: Semaphore::new(SHARED),
            limiter: CapacityLimiter::new(SHARED),
            event: Event::new(),
            cond: Condition::new(),
            tx,
            rx,
            payload: format!("injected panic {seed}"),
            panicked: AtomicBool::new(false),
            alive: AtomicUsize::new(0),
            violations: Mutex::new(Vec::new()),
        }
    }

    fn boom(&self) -> ! {
        assert!(
            !self.panicked.swap(true, SeqCst),
            "two injected panics in one round"
        );
        planted_panic(self.payload.clone())
    }

    fn violation(&self, v: String) {
        self.violations.lock().unwrap().push(v);
    }
}

/// Counts a future alive from when it is made to when it is dropped.
struct Alive(Arc<Ctx>);

impl Alive {
    fn new(ctx: &Arc<Ctx>) -> Alive {
        ctx.alive.fetch_add(1, SeqCst);
        Alive(ctx.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, SeqCst);
    }
}

/// Panics when dropped.
struct Bomb(Arc<Ctx>);

impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.boom();
    }
}

type Out = Result<u32, u32>;
type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A task that panics at its first checkpoint.
async fn boom_after_a_checkpoint(ctx: Arc<Ctx>) -> Result<(), Infallible> {
    checkpoint().await;
    ctx.boom()
}

/// Panics if the future's panic point is `*at` (itself, or in a child of a nursery it
/// opens); counts the point.
async fn point(ctx: &Arc<Ctx>, boom: Option<Boom>, at: &mut usize) {
    let here = *at;
    *at += 1;
    match boom {
        Some(Boom::At(k)) if k == here => ctx.boom(),
        Some(Boom::InChild(k)) if k == here => {
            let c = ctx.clone();
            let _ = nursery(|n| async move {
                n.spawn(boom_after_a_checkpoint(c));
                sleep(DAY).await;
                Ok::<(), Infallible>(())
            })
            .await;
            unreachable!("the nursery resumes its child's panic");
        }
        _ => {}
    }
}

async fn run_inner(inner: Inner) {
    match inner {
        Inner::Sleep(n) => sleep(ms(n)).await,
        Inner::Checkpoint => checkpoint().await,
    }
}

/// The future of plan `f`, the `i`th: made now (it counts as alive, and holds its
/// bomb), run when polled.
fn make(ctx: &Arc<Ctx>, i: usize, f: &Fut) -> BoxFut<Out> {
    let alive = Alive::new(ctx);
    let bomb = (f.boom == Some(Boom::InDrop)).then(|| Bomb(ctx.clone()));
    let (ctx, f) = (ctx.clone(), f.clone());
    Box::pin(async move {
        let _alive = alive;
        let _bomb = bomb;
        let mut at = 0;
        for step in &f.steps {
            point(&ctx, f.boom, &mut at).await;
            match step {
                Step::Sleep(n) => sleep(ms(*n)).await,
                Step::Checkpoint => checkpoint().await,
                Step::Hold(holds, inner) => {
                    let held: Box<dyn Send + '_> = match holds {
                        Holds::Lock => Box::new(ctx.lock.lock().await),
                        Holds::Permit => Box::new(ctx.sem.acquire().await),
                        Holds::Token => Box::new(ctx.limiter.acquire().await),
                    };
                    for s in inner {
                        point(&ctx, f.boom, &mut at).await;
                        run_inner(*s).await;
                    }
                    drop(held);
                }
                Step::WaitEvent(n) => {
                    move_on_after(ms(*n), ctx.event.wait()).await;
                }
                Step::SetEvent => ctx.event.set(),
                Step::WaitCondition(n) => {
                    move_on_after(ms(*n), async {
                        let guard = ctx.lock.lock().await;
                        drop(ctx.cond.wait(guard).await);
                    })
                    .await;
                }
                Step::Notify => ctx.cond.notify_all(),
                Step::Send(n) => {
                    let _ = move_on_after(ms(*n), ctx.tx.send(i as u32)).await;
                }
                Step::Recv(n) => {
                    let _ = move_on_after(ms(*n), ctx.rx.recv()).await;
                }
            }
        }
        point(&ctx, f.boom, &mut at).await;
        let i = i as u32;
        if f.err {
            Err(i)
        } else {
            Ok(i)
        }
    })
}

/// What the future of plan `f` returns if it returns.
fn expected(i: usize, f: &Fut) -> Out {
    if f.err {
        Err(i as u32)
    } else {
        Ok(i as u32)
    }
}

fn all_expected(plan: &Plan) -> Vec<Out> {
    plan.futs
        .iter()
        .enumerate()
        .map(|(i, f)| expected(i, f))
        .collect()
}

fn errors(plan: &Plan) -> BTreeSet<u32> {
    plan.futs
        .iter()
        .enumerate()
        .filter(|(_, f)| f.err)
        .map(|(i, _)| i as u32)
        .collect()
}

/// The body's own injected panic, if due at `at`.
fn body_point(ctx: &Ctx, plan: &Plan, at: usize) {
    if plan.body_boom == Some(at) {
        ctx.boom();
    }
}

/// Reads up to `limit` items of `s`, with the body's panic point before each.
async fn read<S: futures_core::Stream<Item = Out> + Unpin>(
    ctx: &Ctx,
    plan: &Plan,
    s: &mut S,
    limit: usize,
) -> Vec<Out> {
    let mut got = Vec::new();
    while got.len() < limit {
        body_point(ctx, plan, got.len());
        match s.next().await {
            Some(v) => got.push(v),
            None => break,
        }
    }
    got
}

/// Each output comes from the future of its index, at most once.
fn check_items(ctx: &Ctx, plan: &Plan, what: &str, got: &[Out]) {
    let want = all_expected(plan);
    let mut seen = BTreeSet::new();
    for v in got {
        let (Ok(i) | Err(i)) = *v;
        if want.get(i as usize) != Some(v) || !seen.insert(i) {
            ctx.violation(format!("{what}: unexpected output {v:?} (all: {got:?})"));
        }
    }
}

fn check_eq<T: PartialEq + std::fmt::Debug>(ctx: &Ctx, what: &str, got: &T, want: &T) {
    if got != want {
        ctx.violation(format!("{what}: got {got:?}, want {want:?}"));
    }
}

/// `try_join`'s result: every value, or the errors (each of a future that fails).
fn check_try(ctx: &Ctx, plan: &Plan, what: &str, r: &Result<Vec<u32>, NurseryError<u32>>) {
    let errs = errors(plan);
    match r {
        Ok(v) if errs.is_empty() => {
            let want: Vec<u32> = (0..plan.futs.len() as u32).collect();
            let mut v = v.clone();
            v.sort_unstable();
            check_eq(ctx, what, &v, &want);
        }
        Err(NurseryError::Failed(e))
            if !e.is_empty()
                && e.iter().all(|i| errs.contains(i))
                && e.iter().collect::<BTreeSet<_>>().len() == e.len() => {}
        _ => ctx.violation(format!("{what}: got {r:?}, failing futures {errs:?}")),
    }
}

/// Runs the plan's combinator and checks its output (it returns only without a panic).
async fn run_comb(ctx: Arc<Ctx>, plan: Plan) {
    let futs = || -> Vec<BoxFut<Out>> {
        plan.futs
            .iter()
            .enumerate()
            .map(|(i, f)| make(&ctx, i, f))
            .collect()
    };
    let n = plan.futs.len();
    let ordered = |mut v: Vec<Out>, unordered: bool| {
        if unordered {
            v.sort_by_key(|(Ok(i) | Err(i))| *i);
        }
        v
    };
    match plan.comb {
        Comb::Join => {
            let got = match plan.polled {
                true => Polled::join(futs()).await,
                false => join(futs()).await,
            };
            check_eq(&ctx, "join", &got, &all_expected(&plan));
        }
        Comb::TryJoin => {
            let got = match plan.polled {
                true => Polled::try_join(futs()).await,
                false => try_join(futs()).await,
            };
            check_try(&ctx, &plan, "try_join", &got);
        }
        Comb::Settle => {
            let got = match plan.polled {
                true => Polled::settle(futs()).await,
                false => settle(futs()).await,
            };
            check_eq(&ctx, "settle", &got, &all_expected(&plan));
        }
        Comb::Race => {
            let got = match plan.polled {
                true => Polled::race(futs()).await,
                false => race(futs()).await,
            };
            check_items(&ctx, &plan, "race", &[got]);
        }
        Comb::RaceOk => match match plan.polled {
            true => Polled::race_ok(futs()).await,
            false => race_ok(futs()).await,
        } {
            Ok(v) => check_items(&ctx, &plan, "race_ok", &[Ok(v)]),
            Err(NurseryError::Failed(e)) => {
                let e: BTreeSet<u32> = e.into_iter().collect();
                check_eq(&ctx, "race_ok errors", &e, &errors(&plan));
            }
            Err(e) => ctx.violation(format!("race_ok: {e:?}")),
        },
        Comb::AsCompleted(how) => {
            let c = ctx.clone();
            let p = plan.clone();
            let got = as_completed(futs(), move |mut s| async move {
                match how {
                    Read::All => read(&c, &p, &mut s, usize::MAX).await,
                    Read::Shielded => shield(read(&c, &p, &mut s, usize::MAX)).await,
                    Read::Some(k) => read(&c, &p, &mut s, k).await,
                }
            })
            .await;
            check_items(&ctx, &plan, "as_completed", &got);
            if let Read::All | Read::Shielded = how {
                check_eq(&ctx, "as_completed count", &got.len(), &n);
            }
        }
        Comb::AsCompletedIn(how) => {
            let c = ctx.clone();
            let p = plan.clone();
            let made = futs();
            let got = nursery(|nur| async move {
                let mut s = as_completed_in(&nur, made);
                let got = match how {
                    ReadIn::All => read(&c, &p, &mut s, usize::MAX).await,
                    ReadIn::InFinally => {
                        finally(sleep(Duration::from_secs(1)), async {
                            read(&c, &p, &mut s, usize::MAX).await;
                        })
                        .await;
                        Vec::new()
                    }
                    ReadIn::Drop(k) => read(&c, &p, &mut s, k).await,
                };
                Ok::<_, std::convert::Infallible>(got)
            })
            .await;
            match got {
                Ok(got) => check_items(&ctx, &plan, "as_completed_in", &got),
                Err(e) => ctx.violation(format!("as_completed_in: {e:?}")),
            }
        }
        Comb::Map {
            limit,
            collect,
            unordered,
            stream: from_stream,
        } => {
            let c = ctx.clone();
            let p = plan.clone();
            let specs = plan.futs.clone();
            let f = move |i: usize| {
                body_point(&c, &p, i);
                make(&c, i, &specs[i])
            };
            macro_rules! collect {
                ($work:expr) => {{
                    let work = if unordered { $work.unordered() } else { $work };
                    match collect {
                        Collect::Join => {
                            let got = ordered(work.join().await, unordered);
                            check_eq(&ctx, "map join", &got, &all_expected(&plan));
                        }
                        Collect::TryJoin => {
                            let got = work.try_join().await;
                            check_try(&ctx, &plan, "map try_join", &got);
                        }
                        Collect::Settle => {
                            let got = ordered(work.settle().await, unordered);
                            check_eq(&ctx, "map settle", &got, &all_expected(&plan));
                        }
                    }
                }};
            }
            if from_stream {
                collect!(map_stream(limit, stream::iter(0..n), f))
            } else if plan.polled {
                collect!(Polled::map(limit, 0..n, f))
            } else {
                collect!(map(limit, 0..n, f))
            }
        }
        Comb::Retry => {
            let attempt = AtomicUsize::new(0);
            let got = retry(|| {
                let k = attempt.fetch_add(1, SeqCst);
                body_point(&ctx, &plan, k);
                make(&ctx, k, &plan.futs[k])
            })
            .max_attempts(n)
            .backoff(ConstantBuilder::default().with_delay(ms(1)))
            .await;
            let want = plan
                .futs
                .iter()
                .enumerate()
                .map(|(i, f)| expected(i, f))
                .find(Result::is_ok)
                .unwrap_or(Err(n as u32 - 1));
            check_eq(&ctx, "retry", &got, &want);
        }
        Comb::Service { grace, shutdown } => {
            let c = ctx.clone();
            let p = plan.clone();
            let made = futs();
            let report = service(ms(grace), |svc| async move {
                for fut in made {
                    svc.spawn(async move { fut.await.map(drop) });
                }
                body_point(&c, &p, 0);
                sleep(ms(2)).await;
                if shutdown {
                    svc.shutdown();
                }
                Ok::<_, u32>(7)
            })
            .await;
            check_eq(&ctx, "service value", &report.value, &Some(7));
            check_eq(
                &ctx,
                "service tasks",
                &(report.completed + report.cancelled),
                &n,
            );
            let errs = errors(&plan);
            if report.errors.iter().any(|e| !errs.contains(e)) {
                ctx.violation(format!("service errors {:?}", report.errors));
            }
        }
        Comb::Batches { size } => {
            let c = ctx.clone();
            let p = plan.clone();
            let source = stream::unfold(0, move |i| {
                let c = c.clone();
                let p = p.clone();
                async move {
                    body_point(&c, &p, i);
                    match p.futs.get(i) {
                        Some(f) => Some((make(&c, i, f).await, i + 1)),
                        None => None,
                    }
                }
            });
            let got: Vec<Vec<Out>> = batches(Box::pin(source), size, ms(3)).collect().await;
            let flat: Vec<Out> = got.into_iter().flatten().collect();
            check_eq(&ctx, "batches", &flat, &all_expected(&plan));
        }
        Comb::JoinMacro => {
            let mut f = futs().into_iter();
            let (a, b, c) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            let got = match plan.polled {
                true => hatchery::join!(Polled: a, b, c),
                false => hatchery::join!(a, b, c),
            };
            check_eq(
                &ctx,
                "join!",
                &vec![got.0, got.1, got.2],
                &all_expected(&plan),
            );
        }
        Comb::TryJoinMacro => {
            let mut f = futs().into_iter();
            let (a, b, c) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            let got = match plan.polled {
                true => hatchery::try_join!(Polled: a, b, c),
                false => hatchery::try_join!(a, b, c),
            };
            let got = got.map(|(a, b, c)| vec![a, b, c]);
            check_try(&ctx, &plan, "try_join!", &got);
        }
        Comb::RaceMacro => {
            let mut f = futs().into_iter();
            let (a, b, c) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            let got = hatchery::race!(a, b, c);
            check_items(&ctx, &plan, "race!", &[got]);
        }
    }
}

/// One round: the plan of `seed` under virtual time; its violations, and whether its
/// injected panic happened.
async fn round(seed: u64) -> (Vec<String>, bool) {
    let plan = gen_plan(seed);
    let ctx = Arc::new(Ctx::new(seed));
    let run = catch_panic(run_comb(ctx.clone(), plan));
    let hang = async {
        sleep(DAY).await;
        Err("hang".to_string())
    };
    let r = futures_lite::future::or(run, hang).await;
    let mut v = std::mem::take(&mut *ctx.violations.lock().unwrap());
    if matches!(&r, Err(e) if e == "hang") {
        v.push("the combinator did not end within a virtual day".into());
        return (v, ctx.panicked.load(SeqCst));
    }
    let panicked = ctx.panicked.load(SeqCst);
    match &r {
        Ok(()) if panicked => v.push("the panic was lost: the combinator returned".into()),
        Err(p) if !panicked => v.push(format!("a panic that was not injected: {p}")),
        Err(p) if *p != ctx.payload => v.push(format!("the panic's payload is {p:?}")),
        _ => {}
    }
    let alive = ctx.alive.load(SeqCst);
    if alive != 0 {
        v.push(format!("{alive} futures still alive after the combinator"));
    }
    check_primitives(&ctx, &mut v).await;
    (v, panicked)
}

/// Every permit and token came back, nobody is queued, the lock and the stream work.
async fn check_primitives(ctx: &Ctx, v: &mut Vec<String>) {
    let mut check = |ok: bool, what: &str| {
        if !ok {
            v.push(format!("afterwards: {what}"));
        }
    };
    check(ctx.lock.try_lock().is_some(), "the lock is held");
    check(ctx.lock.tasks_waiting() == 0, "tasks wait for the lock");
    check(
        ctx.sem.available_permits() == SHARED,
        "a semaphore permit is gone",
    );
    check(ctx.sem.tasks_waiting() == 0, "tasks wait for a permit");
    check(
        ctx.limiter.available_tokens() == SHARED,
        "a limiter token is gone",
    );
    let stats = ctx.limiter.statistics();
    check(stats.tasks_waiting == 0, "tasks wait for a token");
    let stats = ctx.tx.statistics();
    check(
        stats.tasks_waiting_send == 0 && stats.tasks_waiting_receive == 0,
        "tasks wait on the stream",
    );
    while ctx.rx.try_recv().is_ok() {}
    check(ctx.tx.try_send(5).is_ok(), "the stream does not send");
    check(ctx.rx.try_recv() == Ok(5), "the stream does not receive");
    // A condition wait and a notification still meet: the wait lets the lock go as it
    // begins, and the notification comes once the lock is free.
    let met = move_on_after(ms(100), async {
        let guard = ctx.lock.lock().await;
        let notify = async {
            while ctx.lock.try_lock().is_none() {
                checkpoint().await;
            }
            ctx.cond.notify_all();
        };
        let (_guard, ()) = futures_lite::future::zip(ctx.cond.wait(guard), notify).await;
    })
    .await;
    check(met.is_some(), "a condition wait is never woken");
}

// ---------------------------------------------------------------- driver

fn check_backend(backend: Backend) {
    let mut panicked = 0;
    seeded::check(ROUNDS, |seed| {
        // A panic of the round itself is the watchdog's (a spin) or the harness's own.
        let (v, boom) = backend.run(hatchery::testing::virtual_time(round(seed)));
        panicked += u64::from(boom);
        assert!(
            v.is_empty(),
            "{backend:?}: {v:#?}\nplan: {:#?}",
            gen_plan(seed)
        );
    });
    if seeded::stats() {
        eprintln!("combinators_panic {backend:?}: {panicked} rounds with a panic");
    }
}

#[test]
fn combinators_panic_tokio_current() {
    check_backend(Backend::TokioCurrent);
}

#[test]
fn combinators_panic_tokio_multi() {
    check_backend(Backend::TokioMulti);
}

#[test]
fn combinators_panic_smol() {
    check_backend(Backend::Smol);
}
