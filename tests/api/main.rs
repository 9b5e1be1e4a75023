//! The runtime seam and the test kit: `Runtime` and its adapters, `#[hatchery::test]`, virtual time, the simulator, bad input, the claims the docs make and auto traits.
//!
//! One test binary per family of rules (a binary links once; each file is a module).

mod auto_traits;
mod bad_input;
mod doc_claims;
mod runtime;
mod sim;
mod testing_macro;
mod testing_virtual_time;
