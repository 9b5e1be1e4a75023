//! `#[hatchery::test]` as a test file uses it: the return type and the attributes it
//! copies onto the generated tests name what the test's own module sees.

use anyhow::Result as AResult;

#[derive(Debug)]
struct MyError;

impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my error")
    }
}

impl std::error::Error for MyError {}

/// An imported alias in the return type.
#[hatchery::test]
async fn returns_an_imported_result() -> AResult<()> {
    hatchery::checkpoint().await;
    Ok(())
}

/// The test file's own error type in the return type.
#[hatchery::test]
async fn returns_a_local_error_type() -> Result<(), MyError> {
    hatchery::checkpoint().await;
    Ok(())
}

/// anyhow's one-parameter `Result`, imported: not std's prelude `Result`.
mod anyhow_alias {
    use anyhow::Result;

    #[hatchery::test]
    async fn returns_anyhow_result() -> Result<()> {
        hatchery::checkpoint().await;
        Ok(())
    }
}

/// A type alias of the test's module in the return type.
mod local_alias {
    type Out = Result<(), std::io::Error>;

    #[hatchery::test]
    async fn returns_a_local_alias() -> Out {
        hatchery::checkpoint().await;
        Ok(())
    }
}

/// Backends of the test crate's own (`name = path::to::run`), next to built-in ones: each
/// runs the test through its `run`, under the name given (`testing::backend()`), with
/// the paths written as in the test's module (plain, `self::`, `super::`, `crate::`).
mod custom_backends {
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static RUNS: AtomicUsize = AtomicUsize::new(0);

    /// A third party's `run`, here smol's on one thread, counting its runs.
    fn run<F: Future>(fut: F) -> F::Output {
        RUNS.fetch_add(1, Ordering::SeqCst);
        hatchery_smol::run_current_thread(fut)
    }

    /// Counts the runs of the custom backends: each test below adds one per custom
    /// backend it lists.
    pub(crate) fn runs() -> usize {
        RUNS.load(Ordering::SeqCst)
    }

    #[hatchery::test(backends(smol, mine = run))]
    async fn knows_its_backend() {
        let name = hatchery::testing::backend().unwrap();
        assert!(name == "smol" || name == "mine", "{name}");
        if name == "mine" {
            assert!(runs() >= 1);
            assert_eq!(hatchery::rt::current().unwrap().name(), "smol");
        }
    }

    #[hatchery::test(virtual_time, backends(relative = self::run, absolute = crate::testing_macro::custom_backends::run))]
    async fn paths_resolve_from_the_tests_module() {
        hatchery::sleep(std::time::Duration::from_secs(3600)).await;
        assert_eq!(
            hatchery::testing::elapsed(),
            std::time::Duration::from_secs(3600)
        );
    }

    mod nested {
        #[hatchery::test(backends(parent = super::run))]
        async fn super_paths_resolve() {
            assert_eq!(hatchery::testing::backend(), Some("parent"));
        }
    }
}
