//! Misuse of `#[hatchery::test]` fails to compile with a clear message; correct use keeps
//! the body's paths and attributes meaning what they say.
//!
//! Both tests are ignored by a plain `cargo test`: trybuild builds hatchery, its adapters
//! and their dependencies again in a target directory of its own (`target/tests/trybuild`),
//! about a minute and a half on a 2-core machine, which would be a fifth of the README's
//! test command. CI's `ui` step runs them (`bash .ci/run ui`, or
//! `cargo test -p hatchery-macros --test compile_fail -- --ignored`).

#[test]
#[ignore = "trybuild rebuilds the workspace in its own target: CI's `ui` step runs it"]
fn misuse() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

#[test]
#[ignore = "trybuild rebuilds the workspace in its own target: CI's `ui` step runs it"]
fn bodies_keep_their_meaning() {
    let t = trybuild::TestCases::new();
    t.pass("tests/pass/*.rs");
}
