//! A documented public test in a crate that denies missing docs: the generated module
//! carries the function's docs.
#![deny(missing_docs)]

/// A documented public test.
#[hatchery::test(backends(smol))]
pub async fn documented_pub_test() {}

fn main() {}
