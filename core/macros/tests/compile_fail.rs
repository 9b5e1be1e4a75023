//! Misuse of `#[hatchery::test]` fails to compile with a clear message.

#[test]
fn misuse() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
