//! Blocking work on compio: more jobs at once than compio's pool has threads, each
//! calling back into the runtime's thread, which must keep running meanwhile.

use std::time::Duration;

#[test]
fn more_blocking_jobs_than_pool_threads_call_back() {
    let sum = hatchery_compio::run(hatchery::nursery(|n| async move {
        let handles: Vec<_> = (0..300u64)
            .map(|i| {
                n.spawn(async move {
                    let back = hatchery::run_blocking(move || {
                        hatchery::from_thread::run(async move {
                            hatchery::sleep(Duration::from_millis(20)).await;
                            i
                        })
                    });
                    Ok::<_, std::io::Error>(back.await.unwrap())
                })
            })
            .collect();
        let mut sum = 0;
        for h in handles {
            sum += h.join().await?;
        }
        Ok(sum)
    }));
    assert_eq!(sum.unwrap(), (0..300).sum());
}
