#[hatchery::test]
async unsafe fn not_unsafe() {}

fn main() {}
