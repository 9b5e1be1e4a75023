//! Finished children cost nothing: a nursery that lives long and spawns short children
//! keeps its memory flat. A child's allocation, its node and its handle's slot are freed
//! when the child has ended and its handle is dropped, not when the nursery ends; a kept
//! handle holds its child's allocation until it is joined or dropped, which is its value
//! and a few words, not a large future's room. Shown on every
//! backend for the spawning nursery (handles dropped, and handles kept then joined), the
//! polled nursery, `service` and `serve`; and what a kept handle and a spawn not yet
//! polled hold, per child.
//!
//! Each test runs `CHILDREN` children in sequence, at most `WINDOW` alive at a time, and
//! counts the heap with this binary's own global allocator: the peak over all the
//! children stays within `SLACK` of the peak over the first thousand. A leak of one byte
//! word per child would show as 8 × `CHILDREN` bytes. (The million-child version runs in release
//! in the benchmark's `--quick` run: `cargo run --release -p hatchery-benches --
//! --quick`, its "memory stays flat" check.)
//!
//! The count is of every thread, so each test takes a lock before it builds its runtimes
//! (one per backend, in turn), and no other test of this binary allocates meanwhile.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::{ALLOCATOR, TURN};
use hatchery::{checkpoint, nursery, service, Nursery, Polled};

/// Children per test (in a debug build; the benchmark runs a million in release).
const CHILDREN: usize = 20_000;
/// Children alive at once, at most.
const WINDOW: usize = 64;
/// How far the peak over all the children may be above the peak over the first
/// thousand: what the runtimes and the allocator's size classes may add (a leak of a
/// word per child would be 160 KB).
const SLACK: isize = 64 * 1024;

/// Runs `body` on every backend in turn (given the backend's name), with no other test
/// of this binary running.
fn on_every_backend<F: Future<Output = ()>>(body: fn(&'static str) -> F) {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    hatchery_tokio::run_current_thread(body("tokio_current"));
    hatchery_tokio::run(body("tokio_multi"));
    hatchery_smol::run(body("smol"));
}

/// Counts the heap's peaks over a run of children: the first thousand's, and all's.
struct Peaks {
    what: &'static str,
    backend: &'static str,
    first: Option<isize>,
}

impl Peaks {
    /// Lets the runtime's threads start up (and allocate what they keep), then counts.
    async fn start(what: &'static str, backend: &'static str) -> Peaks {
        hatchery::sleep(Duration::from_millis(50)).await;
        ALLOCATOR.start();
        Peaks {
            what,
            backend,
            first: None,
        }
    }

    /// Called before the `i`th child: notes the peak once a thousand have run.
    fn before(&mut self, i: usize) {
        if i == 1000 {
            self.first = Some(ALLOCATOR.peak());
        }
    }

    /// Stops counting, and asserts that the heap stayed flat.
    fn check(self) {
        ALLOCATOR.stop();
        let all = ALLOCATOR.peak();
        let first = self.first.expect("fewer than a thousand children");
        let (what, backend) = (self.what, self.backend);
        assert!(
            all <= first + SLACK,
            "{backend}, {what}: the heap's peak grew from {first} bytes over the first \
             thousand children to {all} over all"
        );
    }
}

/// Children alive, counted by the spawner (up) and by the children (down).
#[derive(Clone, Default)]
struct Live(Arc<AtomicUsize>);

impl Live {
    /// Waits (yielding) until fewer than `WINDOW` are alive, and counts one more.
    async fn enter(&self) {
        while self.0.load(Ordering::SeqCst) >= WINDOW {
            checkpoint().await;
        }
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A short child: one suspension, then it ends.
async fn short(live: Live) -> Result<(), Infallible> {
    checkpoint().await;
    live.leave();
    Ok(())
}

/// The spawning nursery, each child's handle dropped at once (the child runs on).
#[test]
fn a_nursery_spawning_short_children_stays_flat() {
    on_every_backend(|backend| async move {
        let mut peaks = Peaks::start("nursery, handles dropped", backend).await;
        nursery(|n: Nursery<Infallible>| async move {
            let live = Live::default();
            for i in 0..CHILDREN {
                peaks.before(i);
                live.enter().await;
                n.spawn(short(live.clone()));
            }
            Ok(peaks)
        })
        .await
        .unwrap()
        .check();
    });
}

/// The spawning nursery, each handle kept until its child is joined: a kept handle
/// holds its child's allocation (with its value, here a `u64`), and the join frees it.
#[test]
fn a_nursery_joining_its_children_stays_flat() {
    on_every_backend(|backend| async move {
        let mut peaks = Peaks::start("nursery, handles joined", backend).await;
        nursery(|n: Nursery<Infallible>| async move {
            let mut handles = std::collections::VecDeque::with_capacity(WINDOW);
            let mut sum = 0;
            for i in 0..CHILDREN {
                peaks.before(i);
                if handles.len() == WINDOW {
                    let h: hatchery::TaskHandle<u64> = handles.pop_front().unwrap();
                    sum += h.join().await.unwrap();
                }
                handles.push_back(n.spawn(async move {
                    checkpoint().await;
                    Ok(i as u64)
                }));
            }
            for h in handles {
                sum += h.join().await.unwrap();
            }
            assert_eq!(sum, (0..CHILDREN as u64).sum::<u64>());
            Ok(peaks)
        })
        .await
        .unwrap()
        .check();
    });
}

/// The polled nursery: its children are polled by the nursery's own task, and each
/// child's allocation (its future and its handle's output in one) is freed when it ends.
#[test]
fn a_polled_nursery_spawning_short_children_stays_flat() {
    on_every_backend(|backend| async move {
        let mut peaks = Peaks::start("polled nursery", backend).await;
        let live = Live::default();
        let live = &live;
        Polled::nursery(
            |n: hatchery::Nursery<Infallible, hatchery::Polled<'_>>| async move {
                for i in 0..CHILDREN {
                    peaks.before(i);
                    live.enter().await;
                    n.spawn(short(live.clone()));
                }
                Ok(peaks)
            },
        )
        .await
        .unwrap()
        .check();
    });
}

/// `service`: its background work, each piece a task, spawned from the body for as
/// long as the service runs.
#[test]
fn a_service_taking_short_work_stays_flat() {
    on_every_backend(|backend| async move {
        let mut peaks = Peaks::start("service", backend).await;
        let report = service(Duration::MAX, |svc| async move {
            let live = Live::default();
            for i in 0..CHILDREN {
                peaks.before(i);
                live.enter().await;
                svc.spawn(short(live.clone()));
            }
            Ok::<_, Infallible>(peaks)
        })
        .await;
        assert_eq!(report.completed, CHILDREN);
        report.value.unwrap().check();
    });
}

/// Connections `serve` takes in its test.
const CONNECTIONS: usize = 10_000;

/// `serve`: a handler task per connection, for as long as it runs. Over a Unix-domain
/// socket: closed connections leave nothing behind in the system (TCP over loopback
/// would leave each in TIME_WAIT, and run out of ephemeral ports in a long run).
#[test]
fn serve_taking_short_connections_stays_flat() {
    on_every_backend(|backend| async move {
        use hatchery::net::{serve, UnixListener, UnixStream};

        let path = std::env::temp_dir().join(format!(
            "hatchery-memory-{}-{backend}.sock",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let live = Live::default();
        let mut peaks = Peaks::start("serve", backend).await;
        let accepting = hatchery::CancelScope::new();
        let stop = accepting.handle();
        let path = &path;
        let peaks = nursery(|n: Nursery<std::io::Error>| async move {
            let l = live.clone();
            n.spawn(async move {
                let handler = move |mut conn: UnixStream| {
                    let l = l.clone();
                    async move {
                        let _ = conn.read(&mut [0; 1]).await; // the client's close
                        l.leave();
                        Ok::<_, std::io::Error>(())
                    }
                };
                if let Some(Err(e)) = accepting.run(serve(listener, handler)).await {
                    panic!("serve failed: {e}");
                }
                Ok(())
            });
            for i in 0..CONNECTIONS {
                peaks.before(i);
                live.enter().await;
                drop(UnixStream::connect(path).await?);
            }
            stop.cancel();
            Ok(peaks)
        })
        .await
        .unwrap();
        std::fs::remove_file(path).unwrap();
        peaks.check();
    });
}

/// What a kept handle of a finished child holds, and what a spawn costs before the
/// child's first poll, as the nurseries chapter gives them ("What a child costs, and for
/// how long"), for a `TaskHandle<u64>` of a future with nothing in it. A kept handle
/// holds its child's allocation (the node, the value and a future's room of at most 256
/// bytes), and on tokio's multi-thread runtime the executor's task too, until it is
/// joined or dropped; the join gives it all back. Each bound is the figure the chapter
/// gives with room for the allocator's rounding, so that a child that grows by a few
/// words, or a handle that keeps more than its child's allocation, fails here.
#[test]
fn a_kept_handle_holds_its_finished_childs_allocation_and_a_spawn_costs_before_its_poll() {
    const N: usize = 10_000;
    on_every_backend(|backend| async move {
        let multi = backend == "tokio_multi";
        let (kept, joined) = nursery(|n: Nursery<Infallible>| async move {
            let mut handles: Vec<hatchery::TaskHandle<u64>> = Vec::with_capacity(N);
            // The runtime's threads start up (and allocate what they keep) first.
            hatchery::sleep(Duration::from_millis(20)).await;
            ALLOCATOR.start();
            for i in 0..N {
                handles.push(n.spawn(short_value(i)));
            }
            // Bounded: 10,000 empty children end within the first few rounds.
            all_finished(&handles, backend).await;
            let kept = ALLOCATOR.stop();
            ALLOCATOR.start();
            let mut sum = 0;
            for h in handles {
                sum += h.join().await.unwrap();
            }
            assert_eq!(sum, (0..N as u64).sum::<u64>());
            Ok((kept, ALLOCATOR.stop()))
        })
        .await
        .unwrap();
        let per_handle = kept / N as isize;
        stat(
            backend,
            "a kept handle of a finished spawned child",
            per_handle,
        );
        let bound = if multi { 400 } else { 240 };
        assert!(
            (150..=bound).contains(&per_handle),
            "{backend}: a kept handle of a finished child holds {per_handle} bytes (the \
             chapter: about 145 to 175, about 290 to 320 on tokio's multi-thread runtime)"
        );
        assert!(
            joined <= -(kept * 9 / 10),
            "{backend}: joining the kept handles freed {} of the {kept} bytes they held",
            -joined
        );
        // Spawned and never polled yet: the whole child is allocated at the spawn. (The
        // polled nursery's children are polled by its own task, after the body's
        // suspension; spawned ones are counted on the one-thread runtime only, as other
        // threads run them meanwhile on tokio's multi-thread runtime and on smol's.)
        let polled_child = Polled::nursery(
            |n: hatchery::Nursery<Infallible, hatchery::Polled<'_>>| async move {
                Ok(bytes_per_spawn(N, |i| drop(n.spawn(short_value(i)))))
            },
        )
        .await
        .unwrap();
        stat(
            backend,
            "a polled child before its first poll",
            polled_child,
        );
        assert!(
            (150..=260).contains(&polled_child),
            "{backend}: a polled child before its first poll: {polled_child} bytes (the \
             chapter: about 195)"
        );
        if backend == "tokio_current" {
            let spawned_child = nursery(|n: Nursery<Infallible>| async move {
                Ok(bytes_per_spawn(N, |i| drop(n.spawn(short_value(i)))))
            })
            .await
            .unwrap();
            stat(
                backend,
                "a spawned child before its first poll",
                spawned_child,
            );
            assert!(
                (250..=360).contains(&spawned_child),
                "{backend}: a spawned child before its first poll: {spawned_child} bytes \
                 (the chapter: about 300)"
            );
        }
    });
}

/// A kept handle holds its child's value and a few words, whatever its child's future
/// held: a future larger than 256 bytes has an allocation of its own, freed when the
/// child ends (the nurseries chapter, "What a child costs, and for how long"). Children
/// whose futures hold 4 KiB across a suspension, their handles kept after they ended,
/// on every backend, spawned and polled: joining the kept handles frees what they held,
/// which is, a handle, what a handle of an empty future holds (the bounds of the test
/// above), not the 4 KiB; a child that kept its future in its own allocation would free
/// over 4,096 bytes a handle here.
#[test]
fn a_kept_handle_holds_its_value_not_its_childs_large_future() {
    const N: usize = 2_000;
    assert!(std::mem::size_of_val(&large_value(0)) > 4096);
    on_every_backend(|backend| async move {
        let bound = if backend == "tokio_multi" { 400 } else { 240 };
        let spawned = nursery(|n: Nursery<Infallible>| async move {
            let handles = (0..N).map(|i| n.spawn(large_value(i))).collect();
            Ok(freed_by_joining(handles, backend).await)
        })
        .await
        .unwrap();
        let polled = Polled::nursery(
            |n: hatchery::Nursery<Infallible, hatchery::Polled<'_>>| async move {
                let handles = (0..N).map(|i| n.spawn(large_value(i))).collect();
                Ok(freed_by_joining(handles, backend).await)
            },
        )
        .await
        .unwrap();
        for (what, freed) in [("spawned", spawned), ("polled", polled)] {
            let per_handle = freed / N as isize;
            stat(
                backend,
                &format!("a kept handle of a finished {what} child"),
                per_handle,
            );
            assert!(
                (100..=bound).contains(&per_handle),
                "{backend}: a kept handle of a finished {what} child whose future held 4 KiB \
                 held {per_handle} bytes (100 to {bound}: its value and a few words)"
            );
        }
    });
}

/// A child whose handle was dropped keeps a large future's box until its allocation goes
/// (on the nursery's thread, with the rest of it): the boxes of children spawned with
/// their handles dropped are all freed by the time the nursery returns. 2,000 children
/// whose futures hold 4 KiB would leave 8 MB behind if their boxes stayed.
#[test]
fn a_large_futures_box_goes_with_its_child_when_the_handle_was_dropped() {
    const N: usize = 2_000;
    on_every_backend(|backend| async move {
        hatchery::sleep(Duration::from_millis(20)).await;
        ALLOCATOR.start();
        nursery(|n: Nursery<Infallible>| async move {
            for i in 0..N {
                drop(n.spawn(large_value(i)));
            }
            Ok(())
        })
        .await
        .unwrap();
        let left = ALLOCATOR.stop();
        assert!(
            left <= SLACK,
            "{backend}: {left} bytes left after {N} children whose futures held 4 KiB"
        );
    });
}

/// Prints a figure the tests check, with `HATCHERY_TEST_STATS=1` (and `--nocapture`):
/// what the chapter's figures are taken from.
fn stat(backend: &str, what: &str, bytes: isize) {
    if hatchery_tests::seeded::stats() {
        eprintln!("{backend}: {what}: {bytes} bytes");
    }
}

/// Waits until every child of `handles` has ended (within 10 s, or fails).
async fn all_finished(handles: &[hatchery::TaskHandle<u64>], backend: &str) {
    for _ in 0..2_000 {
        if handles.iter().all(|h| h.is_finished()) {
            return;
        }
        hatchery::sleep(Duration::from_millis(5)).await;
    }
    panic!("{backend}: children did not end within 10 s");
}

/// Waits until every child of `handles` has ended, then joins them, checking each one's
/// value (`large_value`'s), and returns the bytes that freed: what the kept handles held.
async fn freed_by_joining(mut handles: Vec<hatchery::TaskHandle<u64>>, backend: &str) -> isize {
    all_finished(&handles, backend).await;
    ALLOCATOR.start();
    // (`drain` keeps the vector's own buffer out of the count.)
    for (i, h) in handles.drain(..).enumerate() {
        assert_eq!(h.join().await.unwrap(), 4096 * (i as u64 % 256));
    }
    -ALLOCATOR.stop()
}

/// A child whose future holds 4 KiB across a suspension, then returns their sum.
async fn large_value(i: usize) -> Result<u64, Infallible> {
    let room = [i as u8; 4096];
    checkpoint().await;
    Ok(std::hint::black_box(&room)
        .iter()
        .map(|&b| u64::from(b))
        .sum())
}

/// A child that ends at its first poll with its index.
async fn short_value(i: usize) -> Result<u64, Infallible> {
    Ok(i as u64)
}

/// The heap's growth per call of `spawn` over `n` calls, none of whose children is polled
/// meanwhile (the body does not suspend).
fn bytes_per_spawn(n: usize, mut spawn: impl FnMut(usize)) -> isize {
    ALLOCATOR.start();
    for i in 0..n {
        spawn(i);
    }
    ALLOCATOR.stop() / n as isize
}
