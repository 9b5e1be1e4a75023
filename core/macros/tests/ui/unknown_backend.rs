#[hatchery::test(backends(tokio_current, async_std))]
async fn unknown_backend() {}

fn main() {}
