//! Shared support for the conformance tests.
