//! Timeouts, four ways: a fallback value (`move_on_after`), an error (`fail_after`), a
//! deadline that moves while the work runs (`CancelScope` + `CancelHandle`), and a
//! library that honours its caller's deadline (`current_effective_deadline`).
//!
//! ```text
//! cargo run --example timeouts -- --backend tokio   # or tokio-current, smol
//! ```

use std::time::Duration;

use hatchery::{
    current_effective_deadline, fail_after, move_on_after, now, nursery, shield, sleep,
    CancelScope, Elapsed,
};

const MS: Duration = Duration::from_millis(1);

/// A pretend remote call that takes `ms` milliseconds.
async fn lookup(key: &str, ms: u32) -> String {
    sleep(MS * ms).await;
    format!("value of {key}")
}

/// A "library" function with no timeout parameter: it asks hatchery how much time its
/// caller left it, and would hand that to its I/O (a socket timeout, a gRPC deadline).
/// Returns that budget, for the test.
async fn query(name: &str) -> anyhow::Result<Option<Duration>> {
    let budget = current_effective_deadline().remaining(now());
    match budget {
        Some(left) => println!("  query({name}): {} ms left for my I/O", left.as_millis()),
        None => println!("  query({name}): no deadline"),
    }
    sleep(MS * 5).await;
    Ok(budget)
}

/// What each section ended with (printed as it happens; returned for the test).
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
struct Outcomes {
    fast: Option<String>,
    slow: String,
    fail_after: Result<String, Elapsed>,
    outer: Option<()>,
    /// The idle timeout: chunks received, when it ended (since the first wait), and the
    /// scope's `cancel_called` and `cancelled_caught`.
    chunks: u32,
    idle_ended: Duration,
    idle_flags: (bool, bool),
    explicit_cancel: Result<Option<String>, Elapsed>,
    /// What `query` saw at top level, in a 100 ms scope, in a 5 s scope inside it, in a
    /// nursery child, and in a shield.
    budgets: Vec<Option<Duration>>,
}

async fn app() -> anyhow::Result<Outcomes> {
    // 1. A fallback value. `move_on_after` returns `None` if the work is not done in time;
    //    the work is dropped at the point where it was waiting.
    println!("1. move_on_after with a fallback");
    let fast = move_on_after(MS * 50, lookup("fast", 5)).await;
    println!("  fast lookup:  {fast:?}");
    let slow = move_on_after(MS * 20, lookup("slow", 1000))
        .await
        .unwrap_or_else(|| "cached value".to_string());
    println!("  slow lookup:  {slow:?} (the fallback, after 20 ms)");

    // 2. A timeout as an error. `Elapsed` is a std::error::Error, so `?` works into anyhow.
    println!("2. fail_after as an error");
    let failed = fail_after(MS * 20, lookup("slow", 1000)).await;
    match &failed {
        Ok(v) => println!("  got {v}"),
        Err(Elapsed { .. }) => println!("  fail_after: error \"deadline elapsed\" after 20 ms"),
    }
    // `fail_after` only reports its *own* deadline. Here the outer, shorter timeout is the
    // one that fires: it catches the cancellation, and the inner `fail_after` never returns.
    let outer = move_on_after(MS * 10, async {
        let r = fail_after(MS * 1000, lookup("slow", 1000)).await;
        unreachable!("an inner scope never returns under an outer cancellation: {r:?}")
    })
    .await;
    println!("  outer 10 ms move_on_after around an inner 1 s fail_after: {outer:?}");

    // 3. A deadline that moves: an idle timeout. Every chunk that arrives pushes the
    //    deadline 30 ms further out; chunks arrive slower and slower until one is too late.
    println!("3. CancelScope with a moving deadline (30 ms idle timeout)");
    let scope = CancelScope::new().with_timeout(MS * 30);
    let idle = scope.handle();
    let t0 = now();
    let mut chunks = 0;
    let done = scope
        .run(async {
            for gap in [10, 20, 40, 80] {
                sleep(MS * gap).await; // wait for the next chunk
                chunks += 1;
                println!(
                    "  chunk {chunks} at {:>3} ms (gap {gap} ms): deadline pushed to +30 ms",
                    (now() - t0).as_millis()
                );
                idle.set_deadline(now() + MS * 30);
            }
        })
        .await;
    println!(
        "  stream ended: {} after {chunks} chunks at {} ms; cancel_called={} cancelled_caught={}",
        if done.is_some() {
            "complete"
        } else {
            "idle timeout"
        },
        (now() - t0).as_millis(),
        idle.cancel_called(),
        idle.cancelled_caught(),
    );
    let (idle_ended, idle_flags) = (now() - t0, (idle.cancel_called(), idle.cancelled_caught()));
    // An explicit cancel is not a timeout: `CancelScope::fail` gives `Ok(None)` for it.
    let scope = CancelScope::new().with_timeout(MS * 1000);
    scope.handle().cancel();
    let explicit_cancel = scope.fail(lookup("cancelled", 1000)).await;
    println!("  explicit cancel under CancelScope::fail: {explicit_cancel:?} (not Err(Elapsed))");

    // 4. The effective deadline reaches everything inside the scope: nested scopes with
    //    longer timeouts, children in nurseries, but not code inside a shield.
    println!("4. current_effective_deadline passed down");
    let mut budgets = vec![query("top level").await?];
    let inside = move_on_after(MS * 100, async {
        let mut budgets = vec![query("inside a 100 ms scope").await?];
        let nested = move_on_after(MS * 5000, query("inside a nested 5 s scope")).await;
        budgets.push(nested.transpose()?.flatten());
        budgets.push(
            nursery(|n| async move {
                let child = n.spawn(query("in a nursery child"));
                Ok::<_, anyhow::Error>(child.join().await?)
            })
            .await?,
        );
        budgets.push(shield(query("inside a shield")).await?);
        anyhow::Ok(budgets)
    })
    .await;
    budgets.extend(inside.transpose()?.unwrap_or_default());
    Ok(Outcomes {
        fast,
        slow,
        fail_after: failed,
        outer,
        chunks,
        idle_ended,
        idle_flags,
        explicit_cancel,
        budgets,
    })
}

fn main() -> anyhow::Result<()> {
    examples::run(app()).map(drop)
}

#[cfg(test)]
mod tests {
    use super::MS;
    use hatchery::{testing::elapsed, Elapsed};

    /// Every section's outcome, on virtual time: the budgets are exact there.
    #[hatchery::test(virtual_time)]
    async fn runs() {
        let o = super::app().await.unwrap();
        assert_eq!(o.fast.as_deref(), Some("value of fast"));
        assert_eq!(o.slow, "cached value");
        assert!(matches!(o.fail_after, Err(Elapsed { .. })));
        assert_eq!(o.outer, None);
        // Chunks after 10 and 20 ms; the 40 ms gap is 10 ms too long.
        assert_eq!(o.chunks, 2);
        assert_eq!(o.idle_ended, MS * 60);
        assert_eq!(o.idle_flags, (true, true));
        assert!(matches!(o.explicit_cancel, Ok(None)));
        // Each query takes 5 ms of the 100 ms scope; the shield sees no deadline.
        let budgets = [None, Some(100), Some(95), Some(90), None].map(|ms| ms.map(|ms| MS * ms));
        assert_eq!(o.budgets, budgets);
        // 5 + 20 + 20 + 10 + 60 (+ 0: the cancelled scope) + 5 + 20 ms of queries.
        assert_eq!(elapsed(), MS * 140);
    }
}
