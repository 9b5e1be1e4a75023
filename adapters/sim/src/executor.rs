//! The simulator's executor: one thread, a virtual clock, and a seeded choice of which
//! ready task runs next.
//!
//! # Invariants
//!
//! 1. Everything runs on the thread that called [`block_on`] (the simulator's thread):
//!    tasks are polled there, and wake-ups, spawns and timers come from code polled
//!    there. A wake-up or spawn from any other thread is recorded as a refusal, and the
//!    run panics at its next step (see [`Shared::refuse`]): its timing is not the seed's.
//! 2. A task is in the ready list at most once (its slot's `queued` flag; the root's
//!    `root_queued`), so that the list, and the draw from it, depend only on the order of
//!    wake-ups, which depends only on the seed.
//! 3. The clock moves only when the ready list is empty, and then straight to the
//!    earliest timer: time stands still while anything can run.
//! 4. The state's lock is never held while a task is polled or dropped, or a waker woken:
//!    all of those may call back into the runtime (spawn, wake, arm a timer).
//! 5. Every task belongs to a host of the simulated network (`crate::net`): the one of
//!    the task that spawned it (the root's is the first host, `main`), in that host's
//!    life (incarnation). A task of a host that has crashed never runs again: the crash
//!    takes its tasks out of the list at once, and the loop drops them before its next
//!    poll, outside any poll (a task spawned for a crashed host is dropped at once).
//! 6. A task of a paused host is never drawn: while its host is paused, its entry waits
//!    in `parked` (woken or spawned then, it goes there), in the order it became ready;
//!    a resume puts the host's entries back in the ready list, in that order.
//! 7. A task is a `Send` one ([`Task`], a spawning nursery's child, a host's root) or a
//!    local one ([`LocalTask`], a `Local` nursery's child): both have a slot, are in the
//!    ready list and are drawn, crashed, paused and dropped alike. A local task is not
//!    `Send`, so it cannot sit in the shared state: its slot holds a mark, and the task
//!    waits in the run's [`SimLocal`], on the simulator's thread, under its id.
//! 8. A panic of the run (a task's that reached the root, a refusal, a deadlock, the time
//!    limit) ends the loop with the trace kept so far: [`block_on`] returns it with the
//!    panic, for the caller to resume or to compare.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use hatchery::rt::{LocalRuntime, LocalTask, Runtime, Sleep, Task};
use slab::Slab;

use crate::net::NetState;
use crate::trace::{Event, Recorder, Trace};

/// The id of the root future in the trace; tasks are numbered from 1 in spawn order.
const ROOT: u64 = 0;

/// The host of the root future: the first host, `main`.
pub(crate) const ROOT_HOST: usize = 0;

/// `State::current_host` while tasks of a crashed host are dropped: a task they spawn is
/// dropped at once (invariant 5).
const DROPPING: usize = usize::MAX;

/// State shared by the run loop, the runtime, its timers and its wakers.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Notified when something is refused off the simulator's thread (invariant 1): what
    /// a run that looks deadlocked waits for a moment, to name the right cause.
    refusal: Condvar,
    /// The simulator's thread (invariant 1).
    thread: ThreadId,
    seed: u64,
}

pub(crate) struct State {
    /// The virtual clock: `start` plus the time simulated so far.
    start: Instant,
    elapsed: Duration,
    /// Spawned tasks that have not finished; a slot's task is out while it is polled.
    tasks: Slab<Slot>,
    /// Tasks ready to run, in the order they became ready (invariant 2).
    ready: Vec<Ready>,
    root_queued: bool,
    timers: BTreeMap<(Instant, u64), Waker>,
    next_timer: u64,
    /// The next task's id.
    next_id: u64,
    pub(crate) recorder: Recorder,
    /// The host of the task being polled (the root's when none is): whose tasks spawn,
    /// and whose sockets are opened (invariant 5).
    pub(crate) current_host: usize,
    /// Tasks of crashed hosts, to drop before the next poll (invariant 5).
    doomed: Vec<Slot>,
    /// The simulated network: its hosts, sockets and messages.
    pub(crate) net: NetState,
    /// What was refused off the simulator's thread, to panic with (invariant 1).
    refused: Option<&'static str>,
    /// The run has ended: a task spawned now is dropped at once.
    closed: bool,
    /// Hosts that are paused (invariant 6).
    paused: BTreeSet<usize>,
    /// The ready entries of paused hosts' tasks (invariant 6).
    parked: Vec<Ready>,
    /// The most simulated time the run may take.
    time_limit: Option<Duration>,
    /// The simulated disks of the hosts.
    pub(crate) disks: crate::disk::Disks,
}

struct Slot {
    id: u64,
    /// Out while the task is polled.
    job: Option<Job>,
    queued: bool,
    /// Its host, and the host's life it was spawned in (invariant 5).
    host: usize,
    /// The task's waker, made once (a poll clones it).
    waker: Waker,
}

/// What a slot holds (invariant 7).
enum Job {
    Task(Task),
    /// A local task, in the run's [`SimLocal`] under the slot's id.
    Local,
}

/// A task out of its slot, to be polled.
enum Running {
    Task(Task),
    Local(LocalTask),
}

impl Running {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            Running::Task(task) => Pin::new(task).poll(cx),
            Running::Local(task) => Pin::new(task).poll(cx),
        }
    }
}

#[derive(Clone, Copy)]
enum Ready {
    Root,
    Task { key: usize, id: u64 },
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the caller runs on the simulator's thread; if not, records `what` as
    /// refused (invariant 1).
    pub(crate) fn on_thread(&self, what: &'static str) -> bool {
        if std::thread::current().id() == self.thread {
            return true;
        }
        self.lock().refused.get_or_insert(what);
        self.refusal.notify_all();
        false
    }

    fn wake(&self, key: usize, id: u64) {
        if !self.on_thread("a task was woken from another thread") {
            return;
        }
        let mut s = self.lock();
        let s = &mut *s;
        if key == usize::MAX {
            if !s.root_queued && !s.closed {
                s.root_queued = true;
                s.ready.push(Ready::Root);
                s.recorder.push(Event::Wake(ROOT));
            }
            return;
        }
        let Some(slot) = s.tasks.get_mut(key) else {
            return;
        };
        // A finished task's waker, its slot taken by another since: nothing to wake.
        if slot.id != id || slot.queued {
            return;
        }
        slot.queued = true;
        let ready = Ready::Task { key, id };
        match s.paused.contains(&slot.host) {
            true => s.parked.push(ready), // invariant 6
            false => s.ready.push(ready),
        }
        s.recorder.push(Event::Wake(id));
    }

    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }
}

impl State {
    /// The virtual clock's reading.
    pub(crate) fn now(&self) -> Instant {
        self.start + self.elapsed
    }

    /// Arms a timer that wakes `waker` at `at` (now if that has passed): the clock jumps
    /// there when nothing can run, as to any timer (invariant 3).
    pub(crate) fn arm(&mut self, at: Instant, waker: Waker) {
        self.next_timer += 1;
        let at = at.max(self.now());
        self.timers.insert((at, self.next_timer), waker);
    }

    /// Takes every task of `host` out of the list, to be dropped before the next poll
    /// (invariant 5): the host has crashed.
    pub(crate) fn doom_host(&mut self, host: usize) {
        let keys: Vec<usize> = self
            .tasks
            .iter()
            .filter(|(_, slot)| slot.host == host)
            .map(|(key, _)| key)
            .collect();
        for key in keys {
            let slot = self.tasks.remove(key);
            self.doomed.push(slot);
        }
        // A crashed host is not paused any more; its parked entries name no task now.
        self.paused.remove(&host);
        let tasks = &self.tasks;
        self.parked.retain(|r| match *r {
            Ready::Task { key, id } => tasks.get(key).is_some_and(|s| s.id == id),
            Ready::Root => true,
        });
    }

    /// Pauses `host`: its tasks are not drawn until it is resumed (invariant 6).
    pub(crate) fn pause_host(&mut self, host: usize) {
        if !self.paused.insert(host) {
            return;
        }
        let tasks = &self.tasks;
        let of_host = |r: &Ready| match *r {
            Ready::Task { key, id } => tasks.get(key).is_some_and(|s| s.id == id && s.host == host),
            Ready::Root => false,
        };
        let (parked, ready): (Vec<Ready>, Vec<Ready>) = std::mem::take(&mut self.ready)
            .into_iter()
            .partition(of_host);
        self.ready = ready;
        self.parked.extend(parked);
    }

    /// Resumes `host`: its tasks that became ready meanwhile are ready again (invariant
    /// 6).
    pub(crate) fn resume_host(&mut self, host: usize) {
        if !self.paused.remove(&host) {
            return;
        }
        let tasks = &self.tasks;
        let of_host = |r: &Ready| match *r {
            Ready::Task { key, id } => tasks.get(key).is_some_and(|s| s.id == id && s.host == host),
            Ready::Root => false,
        };
        let (back, parked): (Vec<Ready>, Vec<Ready>) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(of_host);
        self.parked = parked;
        self.ready.extend(back);
    }

    /// Whether `host` is paused.
    pub(crate) fn is_paused(&self, host: usize) -> bool {
        self.paused.contains(&host)
    }
}

/// A task's waker: its slot and id (the slot may be reused once the task is gone).
struct TaskWaker {
    shared: Weak<Shared>,
    key: usize,
    id: u64,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.shared.upgrade() {
            shared.wake(self.key, self.id);
        }
    }
}

/// The simulator as hatchery's [`Runtime`].
pub(crate) struct SimRuntime {
    shared: Arc<Shared>,
    /// The network's side of the seam.
    network: crate::net::SimNetwork,
    /// The disks' side of the seam.
    disks: crate::disk::SimFileSystem,
}

impl SimRuntime {
    pub(crate) fn new(shared: Arc<Shared>) -> SimRuntime {
        SimRuntime {
            network: crate::net::SimNetwork::new(shared.clone()),
            disks: crate::disk::SimFileSystem::new(shared.clone()),
            shared,
        }
    }
}

impl fmt::Debug for SimRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimRuntime")
            .field("seed", &self.shared.seed)
            .finish_non_exhaustive()
    }
}

/// The message of a refused [`Runtime::spawn_blocking`].
pub(crate) const NO_THREADS: &str = "hatchery-sim: blocking work (`run_blocking`, \
`to_thread::run_sync`, a blocking portal) needs a real thread, which \
the simulator does not run: a thread's timing is outside the simulation and would make the \
run depend on more than its seed. Keep blocking work out of the code under simulation, or \
test it on tokio or smol";

/// Spawns `task` for the host of the code being run (invariant 5).
pub(crate) fn spawn(shared: &Arc<Shared>, task: Task) {
    let mut task = Some(task);
    admit(shared, "a task was spawned from another thread", || {
        Job::Task(task.take().expect("admitted once"))
    });
    drop(task); // not admitted: counts as cancelled (invariant 5)
}

/// Gives a task spawned now a slot, for the host of the code being run, and makes it
/// ready (invariant 5): its id, or `None` if the run has ended or the host is down (the
/// caller then drops the task at once: it counts as cancelled).
fn admit(shared: &Arc<Shared>, what: &'static str, job: impl FnOnce() -> Job) -> Option<u64> {
    shared.on_thread(what);
    let mut s = shared.lock();
    let host = s.current_host;
    if s.closed || host == DROPPING || !s.net.is_up(host) {
        return None;
    }
    let id = s.next_id;
    s.next_id += 1;
    let entry = s.tasks.vacant_entry();
    let key = entry.key();
    entry.insert(Slot {
        id,
        job: Some(job()),
        queued: true,
        host,
        waker: Waker::from(Arc::new(TaskWaker {
            shared: Arc::downgrade(shared),
            key,
            id,
        })),
    });
    let ready = Ready::Task { key, id };
    match s.paused.contains(&host) {
        true => s.parked.push(ready), // invariant 6
        false => s.ready.push(ready),
    }
    s.recorder.push(Event::Spawn(id));
    Some(id)
}

/// The simulator as hatchery's [`LocalRuntime`], installed on its thread for the whole
/// run: a `Local` nursery's children are tasks of the simulator like any other, drawn
/// from the same ready list by the same seed (invariant 7).
pub(crate) struct SimLocal {
    shared: Arc<Shared>,
    /// The local tasks not being polled, by id (invariant 7).
    tasks: RefCell<BTreeMap<u64, LocalTask>>,
}

impl SimLocal {
    /// Takes the local task `id` out of the store: to poll it, or to drop it (outside
    /// the borrow: its drop may spawn).
    fn take(&self, id: u64) -> Option<LocalTask> {
        self.tasks.borrow_mut().remove(&id)
    }

    /// Drops `slots`, in their order, each with its local task if it has one.
    fn drop_slots(&self, slots: Vec<Slot>) {
        for slot in slots {
            let local = match slot.job {
                Some(Job::Local) => self.take(slot.id),
                _ => None,
            };
            drop(slot);
            drop(local);
        }
    }
}

impl LocalRuntime for SimLocal {
    fn spawn_local(&self, task: LocalTask) {
        match admit(
            &self.shared,
            "a local task was spawned from another thread",
            || Job::Local,
        ) {
            Some(id) => {
                self.tasks.borrow_mut().insert(id, task);
            }
            None => drop(task), // counts as cancelled (invariant 5)
        }
    }
}

/// A timer on the virtual clock, due at `deadline`.
pub(crate) fn sleep_until(shared: &Arc<Shared>, deadline: Instant) -> impl Future<Output = ()> {
    SimSleep {
        shared: shared.clone(),
        deadline,
        key: None,
    }
}

impl Runtime for SimRuntime {
    fn spawn(&self, task: Task) {
        spawn(&self.shared, task);
    }

    fn now(&self) -> Instant {
        let s = self.shared.lock();
        s.start + s.elapsed
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(SimSleep {
            shared: self.shared.clone(),
            deadline,
            key: None,
        })
    }

    /// Refused: panics (in the task that asked) with a message that says why.
    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) {
        drop(work);
        panic!("{NO_THREADS}");
    }

    /// Any instant: the clock jumps to a far deadline at once.
    fn timer_horizon(&self) -> Duration {
        Duration::MAX
    }

    /// `"hatchery-sim"`.
    fn name(&self) -> &'static str {
        "hatchery-sim"
    }

    /// The simulated network of named hosts.
    fn network(&self) -> Option<&dyn hatchery::rt::Network> {
        Some(&self.network)
    }

    /// A simulated disk per host.
    fn file_system(&self) -> Option<&dyn hatchery::rt::FileSystem> {
        Some(&self.disks)
    }
}

/// A timer on the virtual clock.
struct SimSleep {
    shared: Arc<Shared>,
    deadline: Instant,
    key: Option<(Instant, u64)>,
}

impl Future for SimSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut s = this.shared.lock();
        if s.start + s.elapsed >= this.deadline {
            if let Some(key) = this.key.take() {
                s.timers.remove(&key);
            }
            return Poll::Ready(());
        }
        let key = *this.key.get_or_insert_with(|| {
            s.next_timer += 1;
            (this.deadline, s.next_timer)
        });
        s.timers.insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Sleep for SimSleep {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        let this = &mut *self;
        if let Some(key) = this.key.take() {
            this.shared.lock().timers.remove(&key);
        }
        this.deadline = deadline;
    }
}

impl Drop for SimSleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // Dropped with its waker outside the lock (invariant 4).
            let waker = self.shared.lock().timers.remove(&key);
            drop(waker);
        }
    }
}

/// Drops every task left when the run ends, however it ends, so that the tasks (which
/// hold the runtime) and the runtime (which holds them) do not keep each other.
struct Close(Arc<Shared>, Rc<SimLocal>);

impl Drop for Close {
    fn drop(&mut self) {
        loop {
            // Out of the lock first (invariant 4): a task's drop may wake or spawn.
            let (tasks, timers) = {
                let mut s = self.0.lock();
                s.closed = true;
                s.ready.clear();
                let mut tasks: Vec<Slot> = s.tasks.drain().collect();
                tasks.append(&mut s.doomed);
                (tasks, std::mem::take(&mut s.timers))
            };
            if tasks.is_empty() && timers.is_empty() && self.1.tasks.borrow().is_empty() {
                break;
            }
            self.1.drop_slots(tasks);
            // Every local task has a slot; one without would go all the same, so that
            // nothing of the run outlives it.
            let orphans = std::mem::take(&mut *self.1.tasks.borrow_mut());
            drop(orphans);
            drop(timers);
        }
    }
}

/// What a run is made of: its seed and settings.
pub(crate) struct Setup {
    pub(crate) seed: u64,
    pub(crate) record: bool,
    pub(crate) time_limit: Option<Duration>,
    pub(crate) link: crate::net::Link,
    pub(crate) disk: crate::disk::Disk,
}

/// A run's outcome: its output, or the panic that ended it (invariant 8).
pub(crate) type Outcome<T> = Result<T, Box<dyn Any + Send>>;

/// The message of a refusal (invariant 1).
fn refused(what: &str, seed: u64) -> String {
    format!(
        "hatchery-sim: {what} than the simulator's (seed {seed}): work on a real thread is \
         outside the simulation, and its timing would make the run depend on more than its \
         seed. Everything a simulated test does must run in its tasks, on the simulator's \
         thread"
    )
}

/// How long a run that looks deadlocked waits (in real time) for a refusal from another
/// thread, before it says deadlock: a thread outside the simulation that is about to
/// wake a task is the likelier cause then, and its refusal says so.
const FOREIGN_GRACE: Duration = Duration::from_millis(200);

/// A panic of tokio's, from code under the simulator that used tokio's own timers,
/// sockets or spawn: its message gets a line that says what it means here, and that line
/// goes to stderr too, beside the message the panic hook printed at the panic (a test's
/// output shows that one, not the payload the run ends with).
fn explain_tokio(payload: Box<dyn Any + Send>) -> Box<dyn Any + Send> {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied());
    match message {
        Some(m) if m.contains("Tokio 1.x runtime") || m.contains("no reactor running") => {
            eprintln!("{TOKIOS}");
            Box::new(format!("{m}\n{TOKIOS}"))
        }
        _ => payload,
    }
}

/// What a panic of tokio's means under the simulator ([`explain_tokio`]).
const TOKIOS: &str = "hatchery-sim: this panic is tokio's: code under the simulator used \
     tokio's own timers, sockets or spawn, which need a tokio runtime and are outside the \
     simulation. Use hatchery's (`hatchery::sleep`, `hatchery::net`, a nursery's `spawn`), \
     which the simulator runs, or test that code on hatchery-tokio";

/// Runs `root` to completion on the simulator, with the schedule drawn from the seed:
/// its output or its panic, and its trace (invariant 8).
///
/// The caller has made `root` a hatchery root on the runtime passed to it.
pub(crate) fn block_on<F: Future>(
    setup: Setup,
    root: impl FnOnce(Arc<dyn Runtime>) -> F,
) -> (Outcome<F::Output>, Trace) {
    let seed = setup.seed;
    let mut net = NetState::new(seed);
    net.set_default_link(setup.link);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            start: Instant::now(),
            elapsed: Duration::ZERO,
            tasks: Slab::new(),
            ready: vec![Ready::Root],
            root_queued: true,
            timers: BTreeMap::new(),
            next_timer: 0,
            next_id: ROOT + 1,
            recorder: Recorder::new(seed, setup.record),
            refused: None,
            closed: false,
            current_host: ROOT_HOST,
            doomed: Vec::new(),
            net,
            paused: BTreeSet::new(),
            parked: Vec::new(),
            time_limit: setup.time_limit,
            disks: crate::disk::Disks::new(seed, setup.disk),
        }),
        refusal: Condvar::new(),
        thread: std::thread::current().id(),
        seed,
    });
    let _seeded = Seeded::enter(&shared);
    let runtime: Arc<dyn Runtime> = Arc::new(SimRuntime::new(shared.clone()));
    // The local face, for every host, the whole run (invariant 7); let go of after the
    // tasks are dropped.
    let local = Rc::new(SimLocal {
        shared: shared.clone(),
        tasks: RefCell::new(BTreeMap::new()),
    });
    let _local = hatchery::rt::enter_local(local.clone());
    let mut root = std::pin::pin!(root(runtime));
    // Dropped before the root, however the run ends: the tasks' drops (in their
    // context) leave the runtime in the thread's context, which the root's `Enter`
    // clears as it goes.
    let _close = Close(shared.clone(), local.clone());
    let root_waker = Waker::from(Arc::new(TaskWaker {
        shared: Arc::downgrade(&shared),
        key: usize::MAX,
        id: ROOT,
    }));
    let mut rng = fastrand::Rng::with_seed(seed);
    let out = catch_unwind(AssertUnwindSafe(|| loop {
        let next = {
            let mut s = shared.lock();
            if let Some(what) = s.refused {
                drop(s);
                panic!("{}", refused(what, seed));
            }
            if !s.doomed.is_empty() {
                // Invariant 5: a crashed host's tasks go, outside any poll and the lock.
                let doomed = std::mem::take(&mut s.doomed);
                s.current_host = DROPPING;
                drop(s);
                local.drop_slots(doomed);
                shared.lock().current_host = ROOT_HOST;
                continue;
            }
            if s.ready.is_empty() {
                // Invariant 3: nothing can run; jump to the earliest timer.
                let Some(&(at, _)) = s.timers.keys().next() else {
                    // Nothing can wake a task, unless a thread outside the simulation is
                    // about to: give it a moment, so that its refusal names the cause.
                    let (s, _) = shared
                        .refusal
                        .wait_timeout_while(s, FOREIGN_GRACE, |s| s.refused.is_none())
                        .unwrap_or_else(|e| e.into_inner());
                    if let Some(what) = s.refused {
                        drop(s);
                        panic!("{}", refused(what, seed));
                    }
                    let elapsed = s.elapsed;
                    let paused: Vec<String> = s
                        .paused
                        .iter()
                        .filter_map(|&h| s.net.host_name(h))
                        .collect();
                    drop(s);
                    let paused = match paused.is_empty() {
                        true => String::new(),
                        false => format!(
                            " The paused hosts ({}) have tasks that would run once resumed, \
                             but no task is left to resume them.",
                            paused.join(", ")
                        ),
                    };
                    panic!(
                        "hatchery-sim: deadlock (seed {seed}, at {elapsed:?} of simulated \
                         time): every task is blocked and no timer is set, so nothing can ever \
                         wake one. Something waits for what never comes: a lock or permit never \
                         released, a channel nobody sends on, an event never set, a task \
                         joining itself; or a thread outside the simulation (a `std::thread`, \
                         blocking work elsewhere) that was to wake a task and did not within \
                         {FOREIGN_GRACE:?} of real time: the simulator cannot wait for one.{paused}"
                    );
                };
                let now = s.start + s.elapsed;
                if let Some(limit) = s.time_limit {
                    let due = at - s.start;
                    if due > limit {
                        let elapsed = s.elapsed;
                        drop(s);
                        panic!(
                            "hatchery-sim: the run passed its limit of simulated time, \
                             {limit:?} (seed {seed}, at {elapsed:?}; its next timer is due at \
                             {:?}): a task still waits for a timer there (a retry or a \
                             heartbeat that never stops, a livelock, a deadline too far). \
                             Raise the limit (`Sim::time_limit`, `Seeds::time_limit`, or \
                             {}=<seconds>) if the run needs that long",
                            due,
                            crate::TIME_LIMIT_VAR,
                        );
                    }
                }
                if at > now {
                    s.elapsed = at - s.start;
                }
                let elapsed = s.elapsed;
                s.recorder.push(Event::Jump(elapsed));
                let later = s.timers.split_off(&(at, u64::MAX));
                let due = std::mem::replace(&mut s.timers, later);
                drop(s);
                // In the order they were armed: deterministic (invariant 4: unlocked).
                due.into_values().for_each(Waker::wake);
                continue;
            }
            let i = rng.usize(..s.ready.len());
            let next = s.ready.swap_remove(i);
            match next {
                Ready::Root => {
                    s.root_queued = false;
                    s.current_host = ROOT_HOST;
                    s.recorder.push(Event::Poll(ROOT));
                    None
                }
                Ready::Task { key, id } => match s.tasks.get_mut(key) {
                    Some(slot) if slot.id == id => {
                        slot.queued = false;
                        let job = slot.job.take().expect("a ready task is in its slot");
                        let waker = slot.waker.clone();
                        let host = slot.host;
                        s.current_host = host;
                        s.recorder.push(Event::Poll(id));
                        Some((key, id, job, waker))
                    }
                    _ => continue,
                },
            }
        };
        match next {
            None => {
                if let Poll::Ready(out) = root.as_mut().poll(&mut Context::from_waker(&root_waker))
                {
                    shared.lock().recorder.push(Event::Done(ROOT));
                    break out;
                }
            }
            Some((key, id, job, waker)) => {
                let mut task = match job {
                    Job::Task(task) => Running::Task(task),
                    Job::Local => {
                        Running::Local(local.take(id).expect("a local task is in the run's store"))
                    }
                };
                let done = task.poll(&mut Context::from_waker(&waker)).is_ready();
                let mut s = shared.lock();
                s.current_host = ROOT_HOST;
                let mine = s.tasks.get(key).is_some_and(|slot| slot.id == id);
                if done {
                    let slot = mine.then(|| s.tasks.remove(key));
                    s.recorder.push(Event::Done(id));
                    drop(s);
                    drop((task, slot, waker)); // invariant 4
                } else if mine {
                    s.tasks[key].job = Some(match task {
                        Running::Task(task) => Job::Task(task),
                        Running::Local(task) => {
                            local.tasks.borrow_mut().insert(id, task);
                            Job::Local
                        }
                    });
                } else {
                    // Its host crashed while it ran (invariant 5): it goes now.
                    drop(s);
                    drop((task, waker));
                }
            }
        }
    }));
    let trace = {
        let mut s = shared.lock();
        let elapsed = s.elapsed;
        s.recorder.finish(elapsed)
    };
    (out.map_err(explain_tokio), trace)
}

thread_local! {
    /// The run on this thread, for [`current_seed`](crate::current_seed).
    static CURRENT: std::cell::RefCell<Option<Arc<Shared>>> = const { std::cell::RefCell::new(None) };
}

/// The seed of the run on this thread, if any.
pub(crate) fn current() -> Option<Arc<Shared>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Marks the run on this thread, and seeds the thread's own generator (fastrand's,
/// which `hatchery::Backoff`'s jitter draws from) from the run's seed; both are put
/// back when the run ends.
struct Seeded {
    previous: Option<Arc<Shared>>,
    thread_seed: u64,
}

impl Seeded {
    fn enter(shared: &Arc<Shared>) -> Seeded {
        let thread_seed = fastrand::get_seed();
        // Another stream than the schedule's, from the same seed.
        fastrand::seed(shared.seed ^ 0x9E37_79B9_7F4A_7C15);
        Seeded {
            previous: CURRENT.with(|c| c.borrow_mut().replace(shared.clone())),
            thread_seed,
        }
    }
}

impl Drop for Seeded {
    fn drop(&mut self) {
        fastrand::seed(self.thread_seed);
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = previous);
    }
}
