//! Misuse of `#[hatchery::test]` fails to compile with a clear message; correct use keeps
//! the body's paths and attributes meaning what they say.

#[test]
fn misuse() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

#[test]
fn bodies_keep_their_meaning() {
    let t = trybuild::TestCases::new();
    t.pass("tests/pass/*.rs");
}
