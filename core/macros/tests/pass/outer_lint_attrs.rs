//! Lint levels written on a `#[hatchery::test]` function reach its body: here the
//! `allow` keeps `deny(warnings)` from failing the build, and `expect` is fulfilled
//! (not reported as unfulfilled by each generated test).
#![deny(warnings)]

/// A test with documentation and lint levels.
#[allow(unused_variables)]
#[hatchery::test(backends(smol))]
async fn outer_allow_reaches_the_body() {
    let unused = 1;
}

#[hatchery::test(backends(smol, tokio_current))]
#[expect(unused_variables)]
async fn expect_is_fulfilled_once() {
    let unused = 1;
}

fn main() {
    hatchery_smol::run(outer_allow_reaches_the_body());
    hatchery_smol::run(expect_is_fulfilled_once());
}
