//! The Rust examples of the book (`docs/src`), run as doc tests.
//!
//! Each chapter is included below as the documentation of an item, so `cargo test
//! --workspace` compiles and runs every Rust code block in it, like a rustdoc example.
//! Lines that start with `# ` set an example up and check what it did; mdBook hides
//! them, as rustdoc does. A `#[hatchery::test]` in a chapter runs through its
//! `name::body()` in such lines, since doc tests are not compiled with `cfg(test)`.
//!
//! The workspace README is not included: GitHub would show those set-up lines. Its
//! snippets are shortened forms of the book's. The crates' own READMEs (what crates.io
//! shows) are, since their examples are whole programs, but for hatchery-macros': its
//! test would need a hidden `fn main` (a test module cannot be declared in the `main`
//! that rustdoc wraps around a snippet), and it is the attribute's own doc example.

macro_rules! chapters {
    ($($name:ident = $path:literal,)*) => {
        $(
            #[cfg(doctest)]
            #[doc = include_str!($path)]
            pub struct $name;
        )*
    };
}

chapters! {
    Introduction = "src/introduction.md",
    GettingStarted = "src/getting-started.md",
    Python = "src/python.md",
    Tokio = "src/tokio.md",
    Nurseries = "src/nurseries.md",
    Cancellation = "src/cancellation.md",
    Combinators = "src/combinators.md",
    Sync = "src/sync.md",
    Net = "src/net.md",
    FilesAndProcesses = "src/files-and-processes.md",
    Threads = "src/threads.md",
    Testing = "src/testing.md",
    Simulation = "src/simulation.md",
    Library = "src/library.md",
    Recipes = "src/recipes.md",
    Semantics = "src/semantics.md",
    Runtimes = "src/runtimes.md",
    Performance = "src/performance.md",
    Decisions = "src/decisions.md",
    ReadmeHatchery = "../core/README.md",
    ReadmeTokio = "../adapters/tokio/README.md",
    ReadmeSmol = "../adapters/smol/README.md",
    ReadmeConformance = "../core/conformance/README.md",
}
