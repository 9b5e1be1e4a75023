#[hatchery::test(virtual_time, manual_time)]
async fn two_clocks() {}

fn main() {}
