//! The key-value library on tokio: the application (`kv_app.rs`) is `kv_smol`'s, line for
//! line; only the executor differs, and the output does not.
//!
//! ```sh
//! cargo run --example kv_tokio                            # multi-threaded tokio
//! cargo run --example kv_tokio -- --backend tokio-current # current-thread tokio
//! ```

mod kv_app;

// ANCHOR: main
fn main() -> anyhow::Result<()> {
    match kv_app::backend(&["tokio", "tokio-current"]) {
        "tokio" => hatchery_tokio::run(kv_app::main()),
        _ => hatchery_tokio::run_current_thread(kv_app::main()),
    }
}
// ANCHOR_END: main
