// A backend of one's own cannot take a built-in backend's name.
fn run<F: std::future::Future>(fut: F) -> F::Output {
    hatchery_smol::run(fut)
}

#[hatchery::test(backends(smol = run))]
async fn custom_backend_builtin_name() {}

fn main() {}
