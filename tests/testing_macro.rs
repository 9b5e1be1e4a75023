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
