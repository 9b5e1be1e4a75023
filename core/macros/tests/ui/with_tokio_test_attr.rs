#[hatchery::test]
#[tokio::test]
async fn doubled() {}

fn main() {}
