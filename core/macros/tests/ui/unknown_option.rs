#[hatchery::test(fast)]
async fn unknown_option() {}

fn main() {}
