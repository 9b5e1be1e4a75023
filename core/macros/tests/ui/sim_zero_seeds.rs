#[hatchery::test(sim(seeds = 0))]
async fn no_seeds() {}

fn main() {}
