//! The key-value library on smol: the application (`kv_app.rs`) is `kv_tokio`'s, line for
//! line; only the executor differs, and the output does not.
//!
//! ```sh
//! cargo run --example kv_smol
//! ```

mod kv_app;

// ANCHOR: main
fn main() -> anyhow::Result<()> {
    kv_app::backend(&["smol"]);
    hatchery_smol::run(kv_app::main())
}
// ANCHOR_END: main
