//! Randomized model tests of `Semaphore`, `CapacityLimiter` and `Lock`: random
//! interleavings of acquires (plain, in a scope, in a scope next to a shield that keeps
//! the cancelled body alive), polls, cancellations, drops, releases and capacity
//! changes, every waiter polled by hand inside a hatchery task (so each seed is
//! deterministic on every backend). After every step the primitive's counts and
//! statistics are compared with a simple FIFO model (a lock is a queue of one permit); a
//! granted waiter must have been woken, and nothing may leak.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures_lite::future;
use hatchery::sync::{
    CapacityLimiter, CapacityToken, LimiterError, Lock, OwnedLockGuard, OwnedSemaphorePermit,
    Semaphore,
};
use hatchery::{shield, CancelHandle, CancelScope};
use hatchery_tests::seeded::{self, Rng};
use hatchery_tests::Flag;

type BoxFut<T> = Pin<Box<dyn Future<Output = Option<T>>>>;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Plain,
    Scoped,
    Shielded,
}

impl Mode {
    fn random(rng: &mut Rng) -> Mode {
        [Mode::Plain, Mode::Scoped, Mode::Shielded][rng.below(3)]
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum MState {
    New,
    Queued { granted: bool },
    Gone,
}

struct W<T> {
    fut: BoxFut<T>,
    mode: Mode,
    handle: Option<CancelHandle>,
    cancelled: bool,
    slot: Arc<Mutex<Option<T>>>,
    flag: Arc<Flag>,
    waker: Waker,
    st: MState,
    id: u64,
    polled: bool,
}

fn make<T: 'static, F: Future<Output = T> + 'static>(mode: Mode, acq: F, id: u64) -> W<T> {
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let slot = Arc::new(Mutex::new(None));
    let (fut, handle): (BoxFut<T>, _) = match mode {
        Mode::Plain => (Box::pin(async move { Some(acq.await) }), None),
        Mode::Scoped => {
            let s = CancelScope::new();
            let h = s.handle();
            (Box::pin(s.run(acq)), Some(h))
        }
        Mode::Shielded => {
            let s = CancelScope::new();
            let h = s.handle();
            let sl = slot.clone();
            let body = future::zip(
                async move {
                    let v = acq.await;
                    *sl.lock().unwrap() = Some(v);
                },
                shield(future::pending::<()>()),
            );
            (
                Box::pin(async move {
                    s.run(body).await;
                    None
                }),
                Some(h),
            )
        }
    };
    W {
        fut,
        mode,
        handle,
        cancelled: false,
        slot,
        flag,
        waker,
        st: MState::New,
        id,
        polled: false,
    }
}

impl<T> W<T> {
    fn poll(&mut self, cx_outer: &mut Context<'_>) -> Poll<Option<T>> {
        let _ = cx_outer;
        self.flag.0.store(false, Ordering::SeqCst);
        self.polled = true;
        let mut cx = Context::from_waker(&self.waker);
        self.fut.as_mut().poll(&mut cx)
    }
}

// ---------------------------------------------------------------- semaphore

/// What the FIFO queue model drives: a `Semaphore`, or a `Lock` (one permit, no adding).
trait Queue: 'static {
    type Guard: 'static;
    fn acquire(&self) -> impl Future<Output = Self::Guard> + 'static;
    fn try_acquire(&self) -> Option<Self::Guard>;
    /// Adds `n` permits; `false` if the primitive has no such operation.
    fn add(&self, n: usize) -> bool;
    fn available(&self) -> usize;
    fn waiting(&self) -> usize;
}

impl Queue for Arc<Semaphore> {
    type Guard = OwnedSemaphorePermit;
    fn acquire(&self) -> impl Future<Output = Self::Guard> + 'static {
        self.acquire_owned()
    }
    fn try_acquire(&self) -> Option<Self::Guard> {
        self.try_acquire_owned()
    }
    fn add(&self, n: usize) -> bool {
        self.add_permits(n);
        true
    }
    fn available(&self) -> usize {
        self.available_permits()
    }
    fn waiting(&self) -> usize {
        self.tasks_waiting()
    }
}

impl Queue for Arc<Lock<()>> {
    type Guard = OwnedLockGuard<()>;
    fn acquire(&self) -> impl Future<Output = Self::Guard> + 'static {
        self.lock_owned()
    }
    fn try_acquire(&self) -> Option<Self::Guard> {
        self.try_lock_owned()
    }
    fn add(&self, _: usize) -> bool {
        false
    }
    fn available(&self) -> usize {
        usize::from(!self.is_locked())
    }
    fn waiting(&self) -> usize {
        self.tasks_waiting()
    }
}

struct SemModel {
    permits: usize,
    queue: VecDeque<(u64, bool)>,
}
impl SemModel {
    fn release<T>(&mut self, mut n: usize, ws: &mut [W<T>]) {
        for q in self.queue.iter_mut().filter(|q| !q.1) {
            if n == 0 {
                return;
            }
            q.1 = true;
            for w in ws.iter_mut() {
                if w.id == q.0 {
                    w.st = MState::Queued { granted: true };
                }
            }
            n -= 1;
        }
        self.permits += n;
    }
    fn withdraw<T>(&mut self, id: u64, ws: &mut [W<T>]) {
        let i = self.queue.iter().position(|q| q.0 == id).unwrap();
        let (_, g) = self.queue.remove(i).unwrap();
        if g {
            self.release(1, ws);
        }
    }
}

/// One seed of the FIFO model. `new` makes the primitive from a random count of 0 to 2
/// permits, and says how many it has (a lock: always 1).
async fn run_queue<Q: Queue>(seed: u64, new: impl FnOnce(usize) -> (Q, usize)) {
    let mut rng = Rng::seeded(seed);
    let (sem, init) = new(rng.below(3));
    let mut m = SemModel {
        permits: init,
        queue: VecDeque::new(),
    };
    let mut ws: Vec<W<Q::Guard>> = Vec::new();
    let mut held: Vec<Q::Guard> = Vec::new();
    let mut next_id = 0;
    let mut added = 0;
    let mut trace = Vec::new();
    for step in 0..200 {
        let op = rng.below(10);
        future::poll_fn(|cx| {
            match op {
                0 | 1 => {
                    let mode = Mode::random(&mut rng);
                    ws.push(make(mode, sem.acquire(), next_id));
                    trace.push(format!("new {next_id} {mode:?}"));
                    next_id += 1;
                }
                2..=4 if !ws.is_empty() => {
                    let i = rng.below(ws.len());
                    let id = ws[i].id;
                    trace.push(format!("poll {id}"));
                    let cancelled = ws[i].cancelled;
                    let mode = ws[i].mode;
                    let r = ws[i].poll(cx);
                    // model
                    let mut took = false;
                    if cancelled {
                        if let MState::Queued { .. } = ws[i].st {
                            m.withdraw(id, &mut ws);
                        }
                        ws[i].st = MState::Gone;
                    } else {
                        match ws[i].st {
                            MState::New => {
                                if m.permits > 0 {
                                    m.permits -= 1;
                                    took = true;
                                } else {
                                    m.queue.push_back((id, false));
                                    ws[i].st = MState::Queued { granted: false };
                                }
                            }
                            MState::Queued { granted: true } => {
                                let p = m.queue.iter().position(|q| q.0 == id).unwrap();
                                m.queue.remove(p);
                                took = true;
                            }
                            _ => {}
                        }
                        if took {
                            ws[i].st = MState::Gone;
                        }
                    }
                    match (mode, cancelled) {
                        (Mode::Shielded, _) => {
                            assert!(r.is_pending(), "{trace:?}");
                            if let Some(p) = ws[i].slot.lock().unwrap().take() {
                                assert!(took, "shielded took unexpectedly {trace:?}");
                                held.push(p);
                            } else {
                                assert!(!took, "shielded did not take {trace:?}");
                            }
                        }
                        (_, true) => {
                            assert!(matches!(r, Poll::Ready(None)), "{trace:?}");
                            ws.remove(i);
                        }
                        (_, false) => {
                            if took {
                                match r {
                                    Poll::Ready(Some(p)) => held.push(p),
                                    _ => panic!("expected permit at step {step}: {trace:?}"),
                                }
                                ws.remove(i);
                            } else {
                                assert!(r.is_pending(), "unexpected ready {trace:?}");
                            }
                        }
                    }
                }
                5 if !ws.is_empty() => {
                    let i = rng.below(ws.len());
                    if let Some(h) = &ws[i].handle {
                        trace.push(format!("cancel {}", ws[i].id));
                        h.cancel();
                        ws[i].cancelled = true;
                        if matches!(ws[i].st, MState::Queued { .. }) {
                            assert!(
                                ws[i].flag.0.load(Ordering::SeqCst),
                                "cancel did not wake the waiter {trace:?}"
                            );
                        }
                    }
                }
                6 if !ws.is_empty() => {
                    let i = rng.below(ws.len());
                    let id = ws[i].id;
                    trace.push(format!("drop {id}"));
                    let w = ws.remove(i);
                    if let Some(p) = w.slot.lock().unwrap().take() {
                        held.push(p);
                    }
                    if let MState::Queued { .. } = w.st {
                        m.withdraw(id, &mut ws);
                    }
                    drop(w);
                }
                7 | 8 if !held.is_empty() => {
                    let i = rng.below(held.len());
                    trace.push("release".into());
                    drop(held.remove(i));
                    m.release(1, &mut ws);
                }
                9 => {
                    let k = rng.below(3);
                    if rng.below(2) == 0 && sem.add(k) {
                        trace.push(format!("add {k}"));
                        added += k;
                        m.release(k, &mut ws);
                    } else {
                        trace.push("try".into());
                        let p = sem.try_acquire();
                        assert_eq!(p.is_some(), m.permits > 0, "{trace:?}");
                        if let Some(p) = p {
                            m.permits -= 1;
                            held.push(p);
                        }
                    }
                }
                _ => {}
            }
            // invariants
            assert_eq!(
                sem.available(),
                m.permits,
                "permits at step {step}: {trace:?}"
            );
            assert_eq!(
                sem.waiting(),
                m.queue.iter().filter(|q| !q.1).count(),
                "waiting at step {step}: {trace:?}"
            );
            for w in &ws {
                if w.st == (MState::Queued { granted: true }) {
                    assert!(
                        w.flag.0.load(Ordering::SeqCst),
                        "granted waiter {} not woken: {trace:?}",
                        w.id
                    );
                }
            }
            Poll::Ready(())
        })
        .await;
    }
    drop(ws);
    drop(held);
    assert_eq!(sem.available(), init + added, "end: {trace:?}");
    assert_eq!(sem.waiting(), 0);
}

/// Seeds per backend of each model (`HATCHERY_TEST_CASES` and `HATCHERY_TEST_SEED`
/// choose others: `hatchery_tests::seeded`).
const CASES: u64 = 400;

#[hatchery::test]
async fn semaphore_model() {
    seeded::check_async(CASES, |seed| {
        run_queue(seed, |init| (Arc::new(Semaphore::new(init)), init))
    })
    .await;
}

/// The lock is a FIFO queue of one permit: the semaphore's model, with `try_lock`, and
/// no adding.
#[hatchery::test]
async fn lock_model() {
    seeded::check_async(CASES, |seed| {
        run_queue(seed, |_| (Arc::new(Lock::new(())), 1))
    })
    .await;
}

// ---------------------------------------------------------------- limiter

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Key {
    User(u64),
    Anon(u64),
}

enum Got {
    Tok(CapacityToken),
    Named(u64),
}

async fn run_lim(seed: u64) {
    let mut rng = Rng::seeded(seed);
    let init = 1 + rng.below(3);
    let lim = Arc::new(CapacityLimiter::new(init));
    let mut total = init;
    let mut borrowers: HashSet<Key> = HashSet::new();
    let mut queue: VecDeque<(u64, Key, bool)> = VecDeque::new();
    let mut ws: Vec<(W<Result<Got, LimiterError>>, Key)> = Vec::new();
    let mut held: Vec<(Got, Key)> = Vec::new();
    let mut next_id = 0u64;
    let mut trace: Vec<String> = Vec::new();

    fn grant(total: usize, borrowers: &mut HashSet<Key>, queue: &mut VecDeque<(u64, Key, bool)>) {
        for q in queue.iter_mut().filter(|q| !q.2) {
            if borrowers.len() >= total {
                break;
            }
            q.2 = true;
            assert!(borrowers.insert(q.1));
        }
    }
    fn release(
        k: Key,
        total: usize,
        borrowers: &mut HashSet<Key>,
        queue: &mut VecDeque<(u64, Key, bool)>,
    ) -> bool {
        if queue.iter().any(|q| q.1 == k) {
            return false;
        }
        let h = borrowers.remove(&k);
        if h {
            grant(total, borrowers, queue);
        }
        h
    }

    for step in 0..200 {
        let op = rng.below(12);
        future::poll_fn(|cx| {
            match op {
                0 | 1 => {
                    let mode = Mode::random(&mut rng);
                    let (w, key) = if rng.below(2) == 0 {
                        let a = lim.clone();
                        let fut = async move { Ok(Got::Tok(a.acquire().await)) };
                        (make(mode, fut, next_id), Key::Anon(next_id))
                    } else {
                        let b = rng.below(4) as u64;
                        let a = lim.clone();
                        let fut =
                            async move { a.acquire_on_behalf_of(b).await.map(|()| Got::Named(b)) };
                        (make(mode, fut, next_id), Key::User(b))
                    };
                    trace.push(format!("new {next_id} {mode:?} {key:?}"));
                    ws.push((w, key));
                    next_id += 1;
                }
                2..=4 if !ws.is_empty() => {
                    let i = rng.below(ws.len());
                    let key = ws[i].1;
                    let w = &mut ws[i].0;
                    let id = w.id;
                    trace.push(format!("poll {id}"));
                    let cancelled = w.cancelled;
                    let mode = w.mode;
                    let r = w.poll(cx);
                    let mut took: Option<Result<(), LimiterError>> = None;
                    if cancelled {
                        if let MState::Queued { .. } = w.st {
                            let p = queue.iter().position(|q| q.0 == id).unwrap();
                            let (_, k, g) = queue.remove(p).unwrap();
                            if g {
                                release(k, total, &mut borrowers, &mut queue);
                            }
                        }
                        ws[i].0.st = MState::Gone;
                    } else {
                        match w.st {
                            MState::New => {
                                if borrowers.contains(&key) || queue.iter().any(|q| q.1 == key) {
                                    took = Some(Err(LimiterError::AlreadyBorrowing));
                                } else if borrowers.len() < total {
                                    borrowers.insert(key);
                                    took = Some(Ok(()));
                                } else {
                                    queue.push_back((id, key, false));
                                    w.st = MState::Queued { granted: false };
                                }
                            }
                            MState::Queued { .. } => {
                                let p = queue.iter().position(|q| q.0 == id).unwrap();
                                if queue[p].2 {
                                    queue.remove(p);
                                    took = Some(Ok(()));
                                }
                            }
                            MState::Gone => {}
                        }
                        if took.is_some() {
                            w.st = MState::Gone;
                        }
                    }
                    let w = &mut ws[i].0;
                    match (mode, cancelled) {
                        (Mode::Shielded, _) => {
                            assert!(r.is_pending(), "{trace:?}");
                            match (w.slot.lock().unwrap().take(), took) {
                                (Some(Ok(g)), Some(Ok(()))) => held.push((g, key)),
                                (Some(Err(e)), Some(Err(e2))) => assert_eq!(e, e2),
                                (None, None) => {}
                                (a, b) => panic!(
                                    "shielded mismatch {:?} vs {b:?}: {trace:?}",
                                    a.map(|r| r.map(|_| ()))
                                ),
                            }
                        }
                        (_, true) => {
                            assert!(matches!(r, Poll::Ready(None)), "{trace:?}");
                            ws.remove(i);
                        }
                        (_, false) => match (r, took) {
                            (Poll::Ready(Some(Ok(g))), Some(Ok(()))) => {
                                held.push((g, key));
                                ws.remove(i);
                            }
                            (Poll::Ready(Some(Err(e))), Some(Err(e2))) => {
                                assert_eq!(e, e2);
                                ws.remove(i);
                            }
                            (Poll::Pending, None) => {}
                            (r, t) => panic!(
                                "mismatch {:?} vs {t:?} at step {step}: {trace:?}",
                                r.map(|o| o.map(|r| r.map(|_| ())))
                            ),
                        },
                    }
                }
                5 if !ws.is_empty() => {
                    let i = rng.below(ws.len());
                    if let Some(h) = &ws[i].0.handle {
                        trace.push(format!("cancel {}", ws[i].0.id));
                        h.cancel();
                        ws[i].0.cancelled = true;
                    }
                }
                6 if !ws.is_empty() => {
                    let i = rng.below(ws.len());
                    let (w, key) = ws.remove(i);
                    trace.push(format!("drop {}", w.id));
                    if let Some(Ok(g)) = w.slot.lock().unwrap().take() {
                        held.push((g, key));
                    }
                    if let MState::Queued { .. } = w.st {
                        let p = queue.iter().position(|q| q.0 == w.id).unwrap();
                        let (_, k, g) = queue.remove(p).unwrap();
                        if g {
                            release(k, total, &mut borrowers, &mut queue);
                        }
                    }
                    drop(w);
                }
                7 | 8 if !held.is_empty() => {
                    let i = rng.below(held.len());
                    match held.remove(i) {
                        (Got::Tok(t), k) => {
                            trace.push("drop token".into());
                            drop(t);
                            assert!(release(k, total, &mut borrowers, &mut queue), "{trace:?}");
                        }
                        (Got::Named(b), _) => {
                            trace.push(format!("release {b}"));
                            let ok = release(Key::User(b), total, &mut borrowers, &mut queue);
                            assert_eq!(lim.release_on_behalf_of(b).is_ok(), ok, "{trace:?}");
                            assert!(ok, "{trace:?}");
                        }
                    }
                }
                9 => {
                    // release by a random (maybe non-owner) name
                    let b = rng.below(4) as u64;
                    if !held.iter().any(|g| matches!(g.0, Got::Named(x) if x == b)) {
                        trace.push(format!("stray release {b}"));
                        let ok = release(Key::User(b), total, &mut borrowers, &mut queue);
                        let got = lim.release_on_behalf_of(b);
                        assert_eq!(got.is_ok(), ok, "stray release {b}: {trace:?}");
                    }
                }
                10 => {
                    let t = 1 + rng.below(4);
                    trace.push(format!("total {t}"));
                    lim.set_total_tokens(t);
                    total = t;
                    grant(total, &mut borrowers, &mut queue);
                }
                11 => {
                    let b = rng.below(4) as u64;
                    trace.push(format!("try {b}"));
                    let key = Key::User(b);
                    let exp = if borrowers.contains(&key) || queue.iter().any(|q| q.1 == key) {
                        Err(LimiterError::AlreadyBorrowing)
                    } else if borrowers.len() < total {
                        borrowers.insert(key);
                        Ok(())
                    } else {
                        Err(LimiterError::WouldBlock)
                    };
                    let got = lim.try_acquire_on_behalf_of(b);
                    assert_eq!(got, exp, "{trace:?}");
                    if got.is_ok() {
                        held.push((Got::Named(b), key));
                    }
                }
                _ => {}
            }
            let s = lim.statistics();
            assert_eq!(
                s.borrowed_tokens,
                borrowers.len(),
                "borrowed at {step}: {trace:?}"
            );
            assert_eq!(s.total_tokens, total);
            assert_eq!(
                s.tasks_waiting,
                queue.iter().filter(|q| !q.2).count(),
                "waiting at {step}: {trace:?}"
            );
            for (w, _) in &ws {
                if let Some(q) = queue.iter().find(|q| q.0 == w.id) {
                    if q.2 {
                        assert!(
                            w.flag.0.load(Ordering::SeqCst),
                            "granted not woken {trace:?}"
                        );
                    }
                }
            }
            Poll::Ready(())
        })
        .await;
    }
    drop(ws);
    for (g, _) in held {
        if let Got::Named(b) = g {
            lim.release_on_behalf_of(b).unwrap();
        }
    }
    let s = lim.statistics();
    assert_eq!(
        (s.borrowed_tokens, s.tasks_waiting),
        (0, 0),
        "end: {trace:?}"
    );
}

#[hatchery::test]
async fn limiter_model() {
    seeded::check_async(CASES, run_lim).await;
}
