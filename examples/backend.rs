//! Picks the backend for the examples: `--backend tokio|tokio-current|smol` on the command
//! line, or the `HATCHERY_BACKEND` environment variable; smol by default.

use std::future::Future;

/// Runs `fut` on the backend chosen by `--backend NAME` or `HATCHERY_BACKEND`.
pub fn run<F: Future>(fut: F) -> F::Output {
    let name = backend();
    eprintln!("[backend: {name}]");
    match name.as_str() {
        "tokio" => hatchery_tokio::run(fut),
        "tokio-current" => hatchery_tokio::run_current_thread(fut),
        "smol" => hatchery_smol::run(fut),
        other => {
            eprintln!("unknown backend {other:?}: use tokio, tokio-current or smol");
            std::process::exit(2)
        }
    }
}

/// The chosen backend's name.
pub fn backend() -> String {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--backend" {
            if let Some(v) = args.next() {
                return v;
            }
        } else if let Some(v) = a.strip_prefix("--backend=") {
            return v.to_string();
        }
    }
    std::env::var("HATCHERY_BACKEND").unwrap_or_else(|_| "smol".to_string())
}
