// A backend of one's own names a `run` function by its path.
#[hatchery::test(backends(mine = "my_runtime::run"))]
async fn custom_backend_not_a_path() {}

fn main() {}
