#[hatchery::test(virtual_time, virtual_time)]
async fn twice() {}

fn main() {}
