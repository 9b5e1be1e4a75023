// `err_into` with an error that does not convert: the error points at the spawned task.

#[derive(Debug)]
struct Unrelated;

async fn job() -> Result<(), Unrelated> {
    Ok(())
}

async fn app() -> Result<(), std::io::Error> {
    hatchery::nursery(|n| async move {
        n.spawn(hatchery::err_into(job()));
        Ok::<_, std::io::Error>(())
    })
    .await?;
    Ok(())
}

fn main() {
    let _ = app();
}
