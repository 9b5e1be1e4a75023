//! The tuple forms of the borrowing combinators, `join!(Polled: ..)` and
//! `try_join!(Polled: ..)`: futures of different types, polled in place in the caller's
//! task, under the rules of a polled group (I1-I4 with N2, N3, G3, G4, C1).

use std::cell::Cell;
use std::pin::pin;
use std::rc::Rc;

use futures_lite::FutureExt;
use hatchery::testing::elapsed;
use hatchery::{finally, move_on_after, nursery, shield, sleep, CancelScope, Polled};
use hatchery_tests::{catch_panic, ms, panic_message, secs, Log, TestError};

fn assert_send<T: Send>(_: &T) {}

struct Client {
    name: String,
}

async fn greet(client: &Client, delay: u64) -> String {
    sleep(ms(delay)).await;
    format!("hello from {}", client.name)
}

async fn count(items: &[u32], delay: u64) -> usize {
    sleep(ms(delay)).await;
    items.len()
}

/// I1: futures of different types, both borrowing from the caller's stack, run
/// concurrently (the join takes the longer of the two, not their sum), and their outputs
/// come back as a tuple in argument order; the borrowed data is used again after.
#[hatchery::test(virtual_time)]
async fn join_borrows_futures_of_different_types() {
    let client = Client {
        name: "ada".to_string(),
    };
    let mut items = vec![1, 2, 3];
    let (greeting, n) = hatchery::join!(Polled: greet(&client, 5), count(&items, 3));
    assert_eq!(greeting, "hello from ada");
    assert_eq!(n, 3);
    assert_eq!(elapsed(), ms(5));
    items.push(4); // the borrow ended with the join
    assert_eq!(items.len(), 4);

    let (one,) = hatchery::join!(Polled: count(&items, 1));
    assert_eq!(one, 4);
    let twelve = hatchery::join!(Polled:
        async { 1u8 },
        async { 2u16 },
        async { 3u32 },
        async { 4u64 },
        async { 5usize },
        async { 6i8 },
        async { 7i16 },
        async { 8i32 },
        async { 9i64 },
        async { "ten" },
        async { 11.0f64 },
        async { 'c' },
    );
    assert_eq!(twelve.9, "ten");
    assert_eq!(twelve.11, 'c');
}

/// I1: the macro's future is `Send` when its futures are, also when they borrow from the
/// awaiting task's stack; a spawned task can await it.
#[hatchery::test(virtual_time)]
async fn join_is_send_when_its_futures_are() {
    let r = nursery(|n| async move {
        let h = n.spawn(async {
            let data: Vec<u32> = (0..10).collect();
            let data = &data;
            let work = async move {
                let (a, b) = hatchery::join!(Polled: count(data, 2), async move { data[9] });
                let (c, d) =
                    hatchery::try_join!(Polled: async { Ok::<_, TestError>(a) }, async { Ok(b) })
                        .map_err(|_| TestError("try_join"))?;
                Ok::<_, TestError>(c + d as usize)
            };
            assert_send(&work);
            work.await
        });
        h.join().await.map_err(|_| TestError("join"))
    })
    .await
    .unwrap();
    assert_eq!(r, 19);
}

/// I1: futures that are not `Send` (an `Rc`), on each current-thread runtime.
#[test]
fn join_of_rc_futures_tokio_current_thread() {
    assert_eq!(
        hatchery_tokio::run_current_thread(async { rc_join_async().await }),
        (2, 12)
    );
}

#[test]
fn join_of_rc_futures_smol_current_thread() {
    assert_eq!(
        hatchery_smol::run_current_thread(async { rc_join_async().await }),
        (2, 12)
    );
}

async fn rc_join_async() -> (usize, u32) {
    let shared = Rc::new(Cell::new(1u32));
    let f = |by: u32| {
        let shared = shared.clone();
        async move {
            // Suspends once whatever the clock does (a `sleep` of a millisecond may be
            // over by its first poll on a slow machine, under valgrind say).
            hatchery::checkpoint().await;
            shared.set(shared.get() * by);
            shared.get()
        }
    };
    // Two owners while the join runs: this one, and the first future's clone.
    let (a, live) = hatchery::join!(Polled: f(2), async { Rc::strong_count(&shared) });
    let c = f(6).await;
    assert_eq!(a, 2);
    (live, c)
}

/// N2, G4: the first error cancels the others at their next suspension point (each is
/// dropped before the macro returns); every error is returned, in the order they
/// happened; values of futures that finished are dropped with the group.
#[hatchery::test(virtual_time)]
async fn try_join_first_error_cancels_the_rest() {
    let log = Log::new();
    let slow = async {
        let _g = log.on_drop("slow dropped");
        sleep(secs(3600)).await;
        Ok::<_, TestError>(1u8)
    };
    let failing = async {
        sleep(ms(2)).await;
        Err::<&str, _>(TestError("two"))
    };
    let done = async {
        let _g = log.on_drop("done dropped");
        Ok::<_, TestError>(String::from("value"))
    };
    let err = hatchery::try_join!(Polled: slow, failing, done).unwrap_err();
    assert_eq!(err.into_errors(), [TestError("two")]);
    assert_eq!(log.events(), ["done dropped", "slow dropped"]);
    assert_eq!(elapsed(), ms(2));

    // Two errors in the same pass, in the order they happened.
    let a = async { Err::<(), _>(TestError("a")) };
    let b = async { Err::<u8, _>(TestError("b")) };
    let err = hatchery::try_join!(Polled: b, a).unwrap_err();
    assert_eq!(err.into_errors(), [TestError("b"), TestError("a")]);

    let ok = hatchery::try_join!(Polled: async { Ok::<_, TestError>(1) }, async { Ok("x") });
    assert_eq!(ok.unwrap(), (1, "x"));
}

/// N3: a panic cancels the others, which finish first (a shielded part and a `finally`
/// cleanup run to their end), then the panic is resumed where the macro was awaited.
#[hatchery::test(virtual_time)]
async fn join_panic_resumed_after_the_others_finished() {
    let log = Log::new();
    let log_ref = &log;
    let r = std::panic::AssertUnwindSafe(async move {
        let log = log_ref;
        hatchery::join!(Polled:
            async {
                finally(sleep(secs(3600)), async {
                    sleep(ms(3)).await;
                    log.push("cleanup done");
                })
                .await;
            },
            async {
                shield(sleep(ms(5))).await;
                // Cancelled at the first suspension after the shield (C6).
                hatchery::checkpoint().await;
                log.push("after the shield"); // never
            },
            async {
                sleep(ms(1)).await;
                panic!("boom");
            },
        );
    })
    .catch_unwind()
    .await;
    assert_eq!(panic_message(&*r.unwrap_err()), "boom");
    assert_eq!(log.events(), ["cleanup done"]);
    assert_eq!(elapsed(), ms(5));
}

/// C1, I2: an enclosing timeout cancels every future at its next suspension point and
/// the scope returns `None` once a shielded future has finished; a future that never
/// suspends again is not interrupted.
#[hatchery::test(virtual_time)]
async fn join_under_an_enclosing_timeout() {
    let log = Log::new();
    let out = move_on_after(ms(10), async {
        hatchery::join!(Polled:
            async {
                let _g = log.on_drop("sleeper dropped");
                sleep(secs(3600)).await;
            },
            async {
                shield(sleep(ms(15))).await;
                log.push("shield done");
                hatchery::checkpoint().await;
                log.push("past the checkpoint"); // never
            },
        )
    })
    .await;
    assert!(out.is_none());
    assert_eq!(log.events(), ["sleeper dropped", "shield done"]);
    assert_eq!(elapsed(), ms(15));

    // A scope cancelled before it is entered: the futures run to their first suspension.
    let scope = CancelScope::new();
    scope.handle().cancel();
    let first = Cell::new(0);
    let out = scope
        .run(async {
            hatchery::join!(Polled:
                async {
                    first.set(first.get() + 1);
                    sleep(ms(1)).await;
                },
                async { first.set(first.get() + 1) },
            )
        })
        .await;
    assert!(out.is_none());
    assert_eq!(first.get(), 2);
    // Cancelled, but nothing suspends: it returns its value (C1, C3).
    let scope = CancelScope::new();
    scope.handle().cancel();
    let out = scope
        .run(async { hatchery::join!(Polled: async { 1 }, async { 2 }) })
        .await;
    assert_eq!(out, Some((1, 2)));
}

/// I2: the group's own cancellation (a failure) reaches the scopes and nurseries inside
/// its futures: a future inside a timeout and one with a spawning nursery are both
/// cancelled, the nursery's children with it.
#[hatchery::test(virtual_time)]
async fn try_join_cancels_what_its_futures_opened() {
    let log = Log::new();
    let err = hatchery::try_join!(Polled:
        async {
            let r = move_on_after(secs(3600), async {
                let _g = log.on_drop("scoped dropped");
                sleep(secs(7200)).await;
            })
            .await;
            log.push("past the scope"); // never: the group, not the scope, was cancelled
            Ok::<_, TestError>(r)
        },
        async {
            nursery(|n| async move {
                n.spawn(async {
                    sleep(secs(3600)).await;
                    Ok::<_, TestError>(())
                });
                Ok(())
            })
            .await
            .map_err(|_| TestError("nursery"))
        },
        async {
            sleep(ms(4)).await;
            Err::<(), _>(TestError("failed"))
        },
    )
    .unwrap_err();
    assert_eq!(err.into_errors(), [TestError("failed")]);
    assert_eq!(log.events(), ["scoped dropped"]);
    assert_eq!(elapsed(), ms(4));
}

/// I3: dropped from outside hatchery (the losing side of a race), the macro's futures
/// are dropped at once.
#[hatchery::test(virtual_time)]
async fn join_dropped_from_outside() {
    let log = Log::new();
    let joined = async {
        hatchery::join!(Polled:
            async {
                let _g = log.on_drop("a dropped");
                sleep(secs(3600)).await;
            },
            async {
                let _g = log.on_drop("b dropped");
                sleep(secs(3600)).await;
            },
        );
        "joined"
    };
    let other = async {
        sleep(ms(1)).await;
        "other"
    };
    assert_eq!(futures_lite::future::or(joined, other).await, "other");
    assert_eq!(log.count("a dropped") + log.count("b dropped"), 2);
}

/// I4: an async block awaiting the macro, kept past a timeout that cancelled it while a
/// shielded sibling held the timeout open, panics when awaited again (its outputs are
/// gone); one whose futures the timeout never reached is merely paused.
#[hatchery::test(virtual_time)]
async fn i4_join_kept_past_its_scope() {
    let mut paused = pin!(async { hatchery::join!(Polled: sleep(secs(2)), async { 7 }) });
    assert!(move_on_after(secs(1), &mut paused).await.is_none());
    assert_eq!(paused.await.1, 7);
    assert_eq!(elapsed(), secs(2));

    let mut reached = pin!(async { hatchery::join!(Polled: sleep(secs(100)), sleep(secs(200))) });
    let _ = move_on_after(secs(1), async {
        futures_lite::future::zip(&mut reached, shield(sleep(secs(2)))).await;
    })
    .await;
    let message = catch_panic(reached).await.unwrap_err();
    assert!(message.contains("its outputs are gone"), "{message}");
}

/// A future that hatchery's context never sees: pending for good, and logs its drop
/// (and whether a panic was unwinding through it then: a group drops its cancelled
/// futures before it resumes a panic, not while it unwinds).
async fn foreign_pending(log: &Log, name: &'static str) {
    struct Guard<'a>(&'a Log, &'static str);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            match std::thread::panicking() {
                false => self.0.push(self.1),
                true => self.0.push("dropped while unwinding"),
            }
        }
    }
    let _g = Guard(log, name);
    std::future::pending::<()>().await;
}

/// Logs that a value came out of a combinator (before its future is dropped: at the end
/// of the statement the macro is in).
fn returned<T>(log: &Log, value: T) -> T {
    log.push("returned");
    value
}

/// N3, I2: a panic after a sibling that is pending outside hatchery's view (the group
/// still has no node, and took its fast path): the sibling is dropped in the same poll,
/// then the panic is resumed. The same for an error of `try_join!`, and for a `race`
/// whose winner comes after such a sibling.
#[hatchery::test(virtual_time)]
async fn failure_after_a_plain_pending_sibling() {
    let log = Log::new();
    let r = std::panic::AssertUnwindSafe(async {
        hatchery::join!(Polled: foreign_pending(&log, "pending dropped"), async {
            panic!("second");
        })
    })
    .catch_unwind()
    .await;
    assert_eq!(panic_message(&*r.unwrap_err()), "second");
    assert_eq!(log.events(), ["pending dropped"]);

    let log = Log::new();
    let r = returned(
        &log,
        hatchery::try_join!(Polled:
            async {
                foreign_pending(&log, "pending dropped").await;
                Ok::<_, TestError>(())
            },
            async { Err::<(), _>(TestError("second")) },
        ),
    );
    assert_eq!(r.unwrap_err().into_errors(), [TestError("second")]);
    assert_eq!(log.events(), ["pending dropped", "returned"]);

    let log = Log::new();
    type Racer<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = u8> + Send + 'a>>;
    let racers: [Racer<'_>; 2] = [
        Box::pin(async {
            foreign_pending(&log, "loser dropped").await;
            1
        }),
        Box::pin(async { 2 }),
    ];
    assert_eq!(returned(&log, Polled::race(racers).await), 2);
    assert_eq!(log.events(), ["loser dropped", "returned"]);
    assert_eq!(elapsed(), ms(0));
}

/// Reads the clock when dropped: a context access from a future's destructor.
struct ReadsClockOnDrop;

impl Drop for ReadsClockOnDrop {
    fn drop(&mut self) {
        let _ = hatchery::now();
    }
}

/// I2: the group gets its node when a future asks for its context after others have
/// run without it, or when a finished future's destructor does; then an enclosing
/// timeout still cancels the rest, and values already in stay.
#[hatchery::test(virtual_time)]
async fn node_made_after_plain_polls() {
    let log = Log::new();
    let out = move_on_after(ms(5), async {
        hatchery::join!(Polled:
            async { 1 },
            foreign_pending(&log, "pending dropped"),
            async {
                let _g = log.on_drop("sleeper dropped");
                sleep(secs(3600)).await;
            },
        )
    })
    .await;
    assert!(out.is_none());
    assert_eq!(log.count("pending dropped"), 1);
    assert_eq!(log.count("sleeper dropped"), 1);
    assert_eq!(elapsed(), ms(5));

    let (a, b) = hatchery::join!(Polled:
        async {
            let _g = ReadsClockOnDrop;
            7
        },
        async {
            sleep(ms(2)).await;
            8
        },
    );
    assert_eq!((a, b), (7, 8));
    let (a, b) = hatchery::join!(Polled:
        async {
            let _g = ReadsClockOnDrop;
            7
        },
        async { 8 },
    );
    assert_eq!((a, b), (7, 8));
}
