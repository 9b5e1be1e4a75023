//! Races on a multi-thread runtime: each test repeats an interleaving-sensitive
//! operation many times on tokio with four workers (more threads than this machine's
//! cores, so the OS preempts them at arbitrary points) and checks its invariant every
//! round. They pass or fail by invariant, not by timing; a lost wake-up shows as the
//! generous real-time limit (`fail_after`) running out.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hatchery::sync::{Lock, Semaphore};
use hatchery::{fail_after, move_on_after, now, nursery, CancelHandle, CancelScope};
use hatchery_tests::seeded::{self, Rng};

/// Runs `f` on a tokio multi-thread runtime with four workers, failing the test if it
/// takes more than a minute (a lost wake-up).
fn on_four_workers<F: Future<Output = ()> + Send + 'static>(f: F) {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(4).enable_all();
    hatchery_tokio::run_with(builder, async move {
        fail_after(Duration::from_secs(60), f)
            .await
            .expect("a task waited for good: a lost wake-up");
    });
}

fn spin(n: usize) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

/// Permits taken and returned without the queue's lock (`try_acquire`, uncontended
/// `acquire`, a release nobody waits for) race tasks queueing and timing out: no permit is
/// lost or doubled, nobody waits for good, and every permit comes back.
#[test]
fn semaphore_fast_path_racing_waiters() {
    on_four_workers(seeded::check_async(100, |round| async move {
        let sem = Arc::new(Semaphore::new(2));
        let holders = Arc::new(AtomicUsize::new(0));
        nursery(|n| {
            let (sem, holders) = (sem.clone(), holders.clone());
            async move {
                for t in 0..6u64 {
                    let (sem, holders) = (sem.clone(), holders.clone());
                    n.spawn(async move {
                        let mut rng = Rng::seeded(round * 131 + t + 1);
                        for _ in 0..200 {
                            let permit = match rng.below(3) {
                                0 => sem.try_acquire(),
                                1 => Some(sem.acquire().await),
                                _ => move_on_after(Duration::from_micros(20), sem.acquire()).await,
                            };
                            if let Some(permit) = permit {
                                assert!(holders.fetch_add(1, Ordering::SeqCst) < 2);
                                spin(rng.below(100));
                                holders.fetch_sub(1, Ordering::SeqCst);
                                drop(permit);
                            }
                            if rng.below(4) == 0 {
                                tokio::task::yield_now().await;
                            }
                        }
                        Ok(())
                    });
                }
                Ok::<_, std::io::Error>(())
            }
        })
        .await
        .unwrap();
        assert_eq!(sem.available_permits(), 2, "round {round}");
        assert_eq!(sem.tasks_waiting(), 0, "round {round}");
    }));
}

/// The same for `Lock`: every increment made under the lock is kept, and the lock ends
/// free with nobody waiting.
#[test]
fn lock_fast_path_racing_waiters() {
    on_four_workers(seeded::check_async(100, |round| async move {
        let lock = Arc::new(Lock::new(0usize));
        let done = Arc::new(AtomicUsize::new(0));
        nursery(|n| {
            let (lock, done) = (lock.clone(), done.clone());
            async move {
                for t in 0..6u64 {
                    let (lock, done) = (lock.clone(), done.clone());
                    n.spawn(async move {
                        let mut rng = Rng::seeded(round * 71 + t + 1);
                        for _ in 0..200 {
                            let guard = match rng.below(2) {
                                0 => lock.try_lock(),
                                _ => Some(lock.lock().await),
                            };
                            if let Some(mut guard) = guard {
                                let seen = *guard;
                                spin(rng.below(50));
                                *guard = seen + 1;
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            if rng.below(4) == 0 {
                                tokio::task::yield_now().await;
                            }
                        }
                        Ok(())
                    });
                }
                Ok::<_, std::io::Error>(())
            }
        })
        .await
        .unwrap();
        assert_eq!(
            *lock.try_lock().expect("free"),
            done.load(Ordering::Relaxed)
        );
        assert!(!lock.is_locked());
        assert_eq!(lock.tasks_waiting(), 0, "round {round}");
    }));
}

/// `CancelHandle::set_deadline` from a plain thread, at a random moment around the
/// scope's entry (which computes its timeout's deadline): the deadline set always wins.
#[test]
fn set_deadline_racing_entry_is_never_lost() {
    const ROUNDS: u64 = 20_000;
    struct Ctl {
        round: AtomicU64,
        done: AtomicU64,
        target: Mutex<Option<(CancelHandle, Instant)>>,
        stop: AtomicBool,
    }
    let ctl = Arc::new(Ctl {
        round: AtomicU64::new(0),
        done: AtomicU64::new(0),
        target: Mutex::new(None),
        stop: AtomicBool::new(false),
    });
    let setter = {
        let ctl = ctl.clone();
        std::thread::spawn(move || {
            let mut rng = Rng::seeded(12345);
            let mut seen = 0;
            while !ctl.stop.load(Ordering::Relaxed) {
                let round = ctl.round.load(Ordering::Acquire);
                if round == seen {
                    std::hint::spin_loop();
                    continue;
                }
                seen = round;
                spin(rng.below(400));
                let (handle, at) = ctl.target.lock().unwrap().clone().unwrap();
                handle.set_deadline(at);
                ctl.done.store(round, Ordering::Release);
            }
        })
    };
    let lost = Arc::new(AtomicU64::new(0));
    on_four_workers({
        let (ctl, lost) = (ctl.clone(), lost.clone());
        async move {
            for round in 1..=ROUNDS {
                let scope = CancelScope::new().with_timeout(Duration::from_secs(3600));
                let handle = scope.handle();
                let target = now() + Duration::from_secs(7200);
                *ctl.target.lock().unwrap() = Some((handle.clone(), target));
                ctl.round.store(round, Ordering::Release);
                let ctl = ctl.clone();
                scope
                    .run(async move {
                        while ctl.done.load(Ordering::Acquire) != round {
                            std::hint::spin_loop();
                        }
                    })
                    .await;
                if handle.deadline() != Some(target) {
                    lost.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    ctl.stop.store(true, Ordering::Relaxed);
    setter.join().unwrap();
    assert_eq!(
        lost.load(Ordering::Relaxed),
        0,
        "deadlines lost in {ROUNDS} rounds"
    );
}
