//! Files and child processes on every backend (rules X), and the simulator's disks
//! (rule Z11).
//!
//! One test binary per family of rules (a binary links once; each file is a module).

mod fs;
mod process;
mod sim_disk;
