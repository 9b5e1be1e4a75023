//! A producer/consumer pipeline on bounded memory streams, as anyio's
//! `create_memory_object_stream` pattern writes it: a producer, a pool of workers, and a
//! collector, connected by two bounded streams. Each stage closes its end by dropping it
//! (anyio's `async with send_stream:`), so the next stage sees end-of-stream once the
//! buffer has drained. A deadline around the whole pipeline cancels every stage cleanly.
//!
//! ```text
//! cargo run --example pipeline -- --backend tokio   # or tokio-current, smol
//! ```

use std::time::Duration;

use anyhow::Context;
use hatchery::{memory_stream, move_on_after, now, nursery, sleep};
use hatchery::{ReceiveStream, SendStream};

/// Stage 1: produce items (anyio: `async with send_stream: for i in range(..): send`).
async fn producer(tx: SendStream<String>, count: usize) -> anyhow::Result<()> {
    for i in 0..count {
        tx.send(format!("item-{i}")).await?;
    }
    Ok(()) // `tx` dropped here: this producer is done
}

/// Stage 2: process items; several workers share the receive end (clones).
async fn worker(
    id: usize,
    rx: ReceiveStream<String>,
    tx: SendStream<(usize, String)>,
) -> anyhow::Result<()> {
    // Until end-of-stream. (`ReceiveStream` is also a `futures::Stream`.)
    while let Ok(item) = rx.recv().await {
        sleep(Duration::from_millis(1)).await; // pretend work
        tx.send((id, item.to_uppercase())).await?;
    }
    Ok(())
}

async fn run_pipeline(count: usize) -> anyhow::Result<Vec<(usize, String)>> {
    let (items_tx, items_rx) = memory_stream::<String>(10);
    let (done_tx, done_rx) = memory_stream::<(usize, String)>(10);
    nursery(|n| async move {
        n.spawn(producer(items_tx, count));
        for id in 0..4 {
            n.spawn(worker(id, items_rx.clone(), done_tx.clone()));
        }
        // Our own handles must go too, or the streams never end.
        drop(items_rx);
        drop(done_tx);
        // Stage 3, in the body: collect until every worker is done.
        let mut results = Vec::new();
        while let Ok(r) = done_rx.recv().await {
            results.push(r);
        }
        Ok(results)
    })
    .await
    .context("pipeline failed")
}

/// What the two runs did.
struct Summary {
    /// (worker, item) in the order the collector received them.
    results: Vec<(usize, String)>,
    per_worker: [usize; 4],
    /// How long the 100 items took.
    took: Duration,
    /// Whether the deadline cut the million-item run.
    cut_by_deadline: bool,
}

async fn app() -> anyhow::Result<Summary> {
    let start = now();
    let results = run_pipeline(100).await?;
    let took = now() - start;
    let mut per_worker = [0usize; 4];
    for (id, _) in &results {
        per_worker[*id] += 1;
    }

    // The same pipeline under a deadline: every stage is cancelled where it waits, and
    // nothing is left running.
    let out = move_on_after(Duration::from_millis(20), run_pipeline(1_000_000)).await;
    Ok(Summary {
        results,
        per_worker,
        took,
        cut_by_deadline: out.is_none(),
    })
}

fn main() -> anyhow::Result<()> {
    let s = examples::run(app())?;
    println!(
        "processed {} items in {:?}; per worker: {:?}; first: {:?}",
        s.results.len(),
        s.took,
        s.per_worker,
        s.results.first().map(|r| &r.1)
    );
    println!(
        "a million items in 20 ms: {}",
        if s.cut_by_deadline {
            "cancelled, as expected"
        } else {
            "done?!"
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    /// Every item once, the work shared evenly (on virtual time the four workers take an
    /// item each per millisecond), and the deadline cuts the second run at 20 ms.
    #[hatchery::test(virtual_time)]
    async fn runs() {
        let s = super::app().await.unwrap();
        let mut items: Vec<&str> = s.results.iter().map(|r| r.1.as_str()).collect();
        items.sort();
        let mut expected: Vec<String> = (0..100).map(|i| format!("ITEM-{i}")).collect();
        expected.sort();
        assert_eq!(items, expected);
        assert_eq!(s.per_worker, [25; 4]);
        assert_eq!(s.took, MS * 25);
        assert!(s.cut_by_deadline);
        assert_eq!(hatchery::testing::elapsed(), MS * 45);
    }
}
