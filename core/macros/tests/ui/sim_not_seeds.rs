#[hatchery::test(sim(runs = 10))]
async fn not_seeds() {}

fn main() {}
