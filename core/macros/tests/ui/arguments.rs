#[hatchery::test]
async fn takes_arguments(x: u32) {
    let _ = x;
}

fn main() {}
