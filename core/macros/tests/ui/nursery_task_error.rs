// A task whose error type is not the body's: the nursery's error type comes from the first
// task spawned, and the error says so and how to convert the task's.

#[derive(Debug)]
struct KvError;

async fn get() -> Result<u32, KvError> {
    Ok(1)
}

async fn app() -> Result<(), std::io::Error> {
    hatchery::nursery(|n| async move {
        n.spawn(get());
        Ok::<_, std::io::Error>(())
    })
    .await?;
    Ok(())
}

fn main() {
    let _ = app();
}
