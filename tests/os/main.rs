//! Files and child processes on every backend (rules X).
//!
//! One test binary per family of rules (a binary links once; each file is a module).

mod fs;
mod process;
