#[hatchery::test]
#[hatchery::test(virtual_time)]
async fn twice() {}

fn main() {}
