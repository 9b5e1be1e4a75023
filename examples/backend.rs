//! Picks the backend for the examples: `--backend tokio|tokio-current|smol|compio` on the
//! command line, or the `HATCHERY_BACKEND` environment variable; smol by default.
//!
//! Anything else on the command line is an error (a mistyped `--backnd tokio` must not
//! quietly run on smol), except the options an example declares for itself.

use std::future::Future;

/// The backends an example can run on.
const BACKENDS: &str = "tokio, tokio-current, smol or compio";

/// Runs `fut` on the backend chosen by `--backend NAME` or `HATCHERY_BACKEND`, for an
/// example that takes no options of its own.
pub fn run<F: Future>(fut: F) -> F::Output {
    Args::parse(&[]).run(fut)
}

/// An example's command line: the backend and the values of its own options.
#[derive(Debug)]
pub struct Args {
    backend: String,
    options: Vec<(&'static str, String)>,
}

impl Args {
    /// Reads the command line. `options` names the example's own options, each of which
    /// takes a value (`--jobs 10` or `--jobs=10`). Exits with a usage message on anything
    /// unknown or incomplete, and on `--help`.
    pub fn parse(options: &[&'static str]) -> Args {
        match Args::from(std::env::args().skip(1), options) {
            Ok(Some(args)) => args,
            Ok(None) => {
                println!("{}", usage(options));
                std::process::exit(0)
            }
            Err(e) => {
                eprintln!("{e}\n{}", usage(options));
                std::process::exit(2)
            }
        }
    }

    /// Parses `args`; `None` for `--help`.
    fn from(
        args: impl IntoIterator<Item = String>,
        options: &[&'static str],
    ) -> Result<Option<Args>, String> {
        let mut backend = None;
        let mut values = Vec::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Ok(None);
            }
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (arg.clone(), None),
            };
            let option = match name.as_str() {
                "--backend" => "--backend",
                _ => *options
                    .iter()
                    .find(|o| **o == name)
                    .ok_or_else(|| format!("unknown argument {arg:?}"))?,
            };
            let value = match inline.or_else(|| args.next()) {
                Some(v) if !v.is_empty() => v,
                _ => return Err(format!("{option} needs a value")),
            };
            if option == "--backend" {
                backend = Some(value);
            } else {
                values.push((option, value));
            }
        }
        let backend = match backend {
            Some(b) => b,
            None => match std::env::var("HATCHERY_BACKEND") {
                Ok(b) => b,
                Err(std::env::VarError::NotPresent) => "smol".to_string(),
                Err(e) => return Err(format!("HATCHERY_BACKEND: {e}")),
            },
        };
        if !matches!(
            backend.as_str(),
            "tokio" | "tokio-current" | "smol" | "compio"
        ) {
            return Err(format!("unknown backend {backend:?}: use {BACKENDS}"));
        }
        Ok(Some(Args {
            backend,
            options: values,
        }))
    }

    /// The value given for the example's option `name` (the last one, if given twice).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(o, _)| *o == name)
            .map(|(_, v)| v.as_str())
    }

    /// The chosen backend's name.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// Runs `fut` on the chosen backend.
    pub fn run<F: Future>(&self, fut: F) -> F::Output {
        eprintln!("[backend: {}]", self.backend);
        match self.backend.as_str() {
            "tokio" => hatchery_tokio::run(fut),
            "tokio-current" => hatchery_tokio::run_current_thread(fut),
            // compio is thread-per-core: one runtime, on this thread.
            "compio" => hatchery_compio::run(fut),
            _ => hatchery_smol::run(fut),
        }
    }
}

/// Runs `fut` on the local runtime of `backend` (`tokio` or `tokio-current`: a tokio
/// `LocalSet`; `compio`: a compio runtime; else a smol `LocalExecutor`), on the calling
/// thread: for `Local` children.
pub fn run_local<F: Future>(backend: &str, fut: F) -> F::Output {
    match backend {
        "tokio" | "tokio-current" => hatchery_tokio::run_local(fut),
        "compio" => hatchery_compio::run_local(fut),
        _ => hatchery_smol::run_local(fut),
    }
}

/// What the command line may hold.
fn usage(options: &[&'static str]) -> String {
    let own: String = options.iter().map(|o| format!(" [{o} VALUE]")).collect();
    format!(
        "usage: cargo run --example NAME -- [--backend NAME]{own}\n\
         backends: {BACKENDS} (default: $HATCHERY_BACKEND, else smol)"
    )
}

#[cfg(test)]
mod tests {
    use super::Args;

    fn parse(args: &[&str], options: &[&'static str]) -> Result<Option<Args>, String> {
        Args::from(args.iter().map(|a| a.to_string()), options)
    }

    #[test]
    fn backend_and_options() {
        let args = parse(&["--backend", "tokio", "--jobs=7"], &["--jobs"])
            .unwrap()
            .unwrap();
        assert_eq!(args.backend(), "tokio");
        assert_eq!(args.get("--jobs"), Some("7"));
        assert_eq!(args.get("--other"), None);
        let args = parse(&["--backend=tokio-current"], &[]).unwrap().unwrap();
        assert_eq!(args.backend(), "tokio-current");
    }

    #[test]
    fn mistakes_are_errors() {
        for bad in [
            &["--backnd", "tokio"][..],
            &["--backend"],
            &["--backend="],
            &["--backend", "async-std"],
            &["--jobs", "3"],
            &["tokio"],
        ] {
            let err = parse(bad, &[]).err();
            assert!(err.is_some(), "{bad:?} was accepted");
        }
        assert!(parse(&["--jobs"], &["--jobs"]).is_err());
        assert!(parse(&["--help"], &[]).unwrap().is_none());
    }
}
