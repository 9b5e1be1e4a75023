#[hatchery::test(backends(tokio-current))]
async fn dashed() {}

fn main() {}
