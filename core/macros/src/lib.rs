//! The `#[hatchery::test]` attribute. Use it through `hatchery`; see [`macro@test`].

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Error, ItemFn, Meta, Token};

/// Turns one `async fn` test into one `#[test]` per backend.
///
/// ```
/// use std::time::Duration;
///
/// #[hatchery::test]
/// async fn sums_in_parallel() {
///     let out = hatchery::nursery(|n| async move {
///         let a = n.spawn(async { Ok::<_, std::io::Error>(1) });
///         Ok(a.join().await? + 1)
///     })
///     .await
///     .unwrap();
///     assert_eq!(out, 2);
/// }
///
/// // Virtual time: this takes no real time, and exactly one virtual hour.
/// #[hatchery::test(virtual_time)]
/// async fn gives_up_after_an_hour() {
///     let out = hatchery::move_on_after(Duration::from_secs(3600), std::future::pending::<()>()).await;
///     assert_eq!(out, None);
///     assert_eq!(hatchery::testing::elapsed(), Duration::from_secs(3600));
/// }
///
/// // Only some backends; a test may return a `Result`.
/// #[hatchery::test(backends(tokio_current, smol))]
/// async fn returns_result() -> Result<(), std::io::Error> {
///     hatchery::checkpoint().await;
///     Ok(())
/// }
///
/// // A backend of your own, next to a built-in one: `run` is your runtime's entry point.
/// fn run<F: std::future::Future>(fut: F) -> F::Output {
///     hatchery_smol::run_current_thread(fut) // a third-party runtime's `run` here
/// }
///
/// #[hatchery::test(backends(smol, mine = run))]
/// async fn on_my_runtime() {
///     assert!(matches!(hatchery::testing::backend(), Some("smol" | "mine")));
/// }
///
/// // On tokio and smol, and on the deterministic simulator under 500 seeds (500
/// // interleavings); a failing seed is printed with the line that replays it.
/// #[hatchery::test(sim(seeds = 500))]
/// async fn under_many_schedules() {
///     let (a, b) = hatchery::join!(async { 1 }, async { 2 });
///     assert_eq!(a + b, 3);
/// }
/// # fn main() {
/// #     hatchery_smol::run(hatchery::testing::tracked(sums_in_parallel::body()));
/// #     hatchery_smol::run(hatchery::testing::virtual_time(gives_up_after_an_hour::body()));
/// #     hatchery_smol::run(returns_result::body()).unwrap();
/// #     run(hatchery::testing::tracked(on_my_runtime::body()).with_backend_name("mine"));
/// #     hatchery_sim::check_seeds(5, || hatchery::testing::tracked(under_many_schedules::body()));
/// # }
/// ```
///
/// `async fn name()` becomes a module `name` with one test per backend:
///
/// | test | backend |
/// |---|---|
/// | `name::tokio_current` | `hatchery_tokio::run_current_thread` |
/// | `name::tokio_multi` | `hatchery_tokio::run` (multi-thread) |
/// | `name::smol` | `hatchery_smol::run` (one thread per core) |
/// | `name::tokio_local` | `hatchery_tokio::run_local` (a `LocalSet`: for `Local` children; with `backends(..)` only) |
/// | `name::smol_local` | `hatchery_smol::run_local` (a `LocalExecutor`: for `Local` children; with `backends(..)` only) |
/// | `name::compio` | `hatchery_compio::run_local` (compio's thread-per-core runtime: for `Local` children; with `backends(..)` only) |
/// | `name::mine` | `path::to::run`, given as `backends(mine = path::to::run)` |
/// | `name::sim` | `hatchery_sim::check_seeds`: the simulator, once per seed (with `sim` or `backends(.., sim)`; it runs `Local` children too) |
///
/// The function itself stays where it was declared, with its docs and lint levels (the
/// module shares its name, in the other namespace, and its docs), and the module also
/// names it `name::body()`. Being a module, the name hides a crate or module of the same
/// name in the function's own module: a test named `tokio` or `config` cannot use
/// `tokio::..` or `config::..` in its body; name it otherwise. The tests exist only when compiling tests (`cfg(test)`), so a doc
/// example, which is not compiled that way, runs the body itself, as the example above
/// does in lines hidden from the rendered docs:
/// `hatchery_smol::run(hatchery::testing::virtual_time(gives_up_after_an_hour::body()))`.
/// The function is compiled outside tests too: in a library, keep such tests in a
/// `#[cfg(test)]` module, as usual, if they use dev-dependencies.
///
/// It needs hatchery's `macros` feature (`hatchery = { version = "0.1", features =
/// ["macros"] }` under `[dev-dependencies]`). The test crate needs `hatchery-tokio` and
/// `hatchery-smol` as (dev-)dependencies, or
/// only the adapters of the backends it selects, under those names, and `hatchery-sim`
/// for the simulator, `hatchery-compio` for `compio` (the expansion names `::hatchery`,
/// `::hatchery_tokio`, `::hatchery_smol`, `::hatchery_sim` and `::hatchery_compio`; a
/// renamed dependency is not found; a test
/// crate whose tests list only backends of its own needs no adapter). Write it `#[hatchery::test]`: after `use hatchery::*`, a plain `#[test]`
/// is ambiguous (rustc's error E0659) because the glob brings this `test` in.
///
/// # Options
///
/// * `virtual_time`: run on virtual time (see the module `hatchery::testing`) that jumps
///   to the next deadline whenever every task is blocked;
/// * `manual_time`: virtual time that moves only with `hatchery::testing::advance`;
/// * `sim(seeds = N)`, or `sim` for 100 seeds: run on the deterministic simulator too
///   (`hatchery-sim`: one thread, virtual time, the order of ready tasks drawn from a
///   seed), once for each seed from 0 to N - 1, in a test `name::sim`. The first seed
///   that fails stops it: it prints the seed and the command that replays it, whole
///   (`HATCHERY_SIM_SEED=<seed> cargo test -p <package> --features <the build's>
///   --test <target> -- <test> --exact`), then fails as that run did.
///   `HATCHERY_SIM_SEEDS=<count>` tries another number of seeds, `HATCHERY_SIM_CHECK=1`
///   checks that seeds replay. `sim(seeds = N, time_limit = "60s")` fails a run whose
///   simulated clock would pass 60 s (`ms`, `s`, `m`, `h`; a bare number is seconds). The
///   same body still runs on the other backends; without a time option, it runs on the
///   simulator's own clock, which is always virtual;
/// * `backends(..)`: a subset of `tokio_current`, `tokio_multi`, `smol`, `tokio_local`,
///   `smol_local`, `compio` (the local runtimes, for `Local` children), `sim` (with 100
///   seeds, or those of `sim(seeds = N)`; `Local` children too: `backends(tokio_local,
///   smol_local, compio, sim)`), and backends of your own, written
///   `name = path::to::run`: a test `name::<name>` that calls your `run` (any
///   `fn run<F: Future>(fut: F) -> F::Output`, a third-party runtime's, say), as the
///   adapters' `run` functions are called for the built-in ones. The path is written as
///   in the function's module. `hatchery::testing::backend()` returns the
///   name.
///
/// Without a time option the test runs on real time (the simulator's clock, on `sim`),
/// with task tracking so that
/// `hatchery::testing::wait_all_tasks_blocked` works. With a virtual clock, a test whose
/// tasks are all blocked with nothing that could wake them (a deadlock) panics after 10
/// seconds of real time instead of hanging (for a longer limit, write the run by hand:
/// `hatchery::testing::TestRun::with_deadlock_timeout`); so give `#[should_panic]` an
/// `expected = ".."`, or a deadlock passes it. Lint levels on the function
/// (`#[allow(..)]`, `#[expect(..)]`, ..) apply to its body; its other attributes
/// (`#[ignore]`, `#[should_panic]`, doc comments) are copied onto every generated test.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Time {
    Real,
    Virtual,
    Manual,
}

/// The backends a test runs on unless `backends(..)` says otherwise.
const BACKENDS: [&str; 3] = ["tokio_current", "tokio_multi", "smol"];

/// The built-in backends that `backends(..)` may list.
const BUILT_IN: [&str; 7] = [
    "tokio_current",
    "tokio_multi",
    "smol",
    "sim",
    "tokio_local",
    "smol_local",
    "compio",
];

/// How many seeds the simulator runs a test under, unless `sim(seeds = N)` says.
const DEFAULT_SEEDS: u64 = 100;

fn expand(args: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let options = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let mut time: Option<(Time, Span)> = None;
    let mut backends: Option<Vec<Backend>> = None;
    let mut sim: Option<(SimOptions, Span)> = None;
    for option in options {
        let name = option
            .path()
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        match (name.as_str(), &option) {
            ("virtual_time" | "manual_time", Meta::Path(path)) => {
                let t = if name == "virtual_time" {
                    Time::Virtual
                } else {
                    Time::Manual
                };
                if let Some((seen, _)) = time {
                    let message = if seen == t {
                        format!("`{name}` given twice")
                    } else {
                        "choose one of `virtual_time` and `manual_time`".to_string()
                    };
                    return Err(Error::new(path.span(), message));
                }
                time = Some((t, path.span()));
            }
            ("sim", Meta::Path(_) | Meta::List(_)) => {
                if sim.is_some() {
                    return Err(Error::new(option.span(), "`sim` given twice"));
                }
                sim = Some((sim_options(&option)?, option.span()));
            }
            ("backends", Meta::List(list)) => {
                if backends.is_some() {
                    return Err(Error::new(list.span(), "`backends` given twice"));
                }
                if list.tokens.to_string().contains('-') {
                    return Err(Error::new(
                        list.tokens.span(),
                        "backend names are written with underscores: `tokio_current`, `tokio_multi`, `smol`, `sim`",
                    ));
                }
                let entries = list.parse_args_with(
                    Punctuated::<Meta, Token![,]>::parse_terminated,
                )?;
                let mut chosen: Vec<Backend> = Vec::new();
                for entry in entries {
                    let backend = match &entry {
                        // A built-in backend, by name.
                        Meta::Path(path) => {
                            let Some(b) = path
                                .get_ident()
                                .and_then(|ident| BUILT_IN.iter().find(|b| ident == **b))
                            else {
                                return Err(Error::new(
                                    path.span(),
                                    format!(
                                        "unknown backend `{}`; expected `tokio_current`, `tokio_multi`, `smol`, `sim`, `tokio_local`, `smol_local` or `compio`, or a backend of your own: `name = path::to::run`",
                                        quote!(#path).to_string().replace(' ', "")
                                    ),
                                ));
                            };
                            Backend::BuiltIn(b)
                        }
                        // A backend of the test crate's: `name = path::to::run`.
                        Meta::NameValue(nv) => {
                            let Some(name) = nv.path.get_ident().cloned() else {
                                return Err(Error::new(
                                    nv.path.span(),
                                    "a backend's name is one identifier: `name = path::to::run`",
                                ));
                            };
                            if BUILT_IN.iter().any(|b| name == *b) {
                                return Err(Error::new(
                                    name.span(),
                                    format!("`{name}` is a built-in backend: list it alone, or give yours another name"),
                                ));
                            }
                            let syn::Expr::Path(run) = &nv.value else {
                                return Err(Error::new(
                                    nv.value.span(),
                                    "expected the path of a `run` function (`fn run<F: Future>(fut: F) -> F::Output`)",
                                ));
                            };
                            Backend::Custom(name, run.path.clone())
                        }
                        Meta::List(list) => {
                            return Err(Error::new(
                                list.span(),
                                "a backend is `tokio_current`, `tokio_multi`, `smol`, `sim`, or `name = path::to::run` (the simulator's seeds are an option of their own: `sim(seeds = 1000)`)",
                            ))
                        }
                    };
                    if chosen.iter().any(|c| c.name() == backend.name()) {
                        return Err(Error::new(
                            entry.span(),
                            format!("backend `{}` listed twice", backend.name()),
                        ));
                    }
                    chosen.push(backend);
                }
                if chosen.is_empty() {
                    return Err(Error::new(list.span(), "`backends(..)` needs at least one backend"));
                }
                backends = Some(chosen);
            }
            _ => {
                return Err(Error::new(
                    option.span(),
                    "unknown option; expected `virtual_time`, `manual_time`, `sim(seeds = N)` or `backends(tokio_current, tokio_multi, smol, sim)`",
                ))
            }
        }
    }
    let time = time.map_or(Time::Real, |(t, _)| t);
    let mut backends =
        backends.unwrap_or_else(|| BACKENDS.iter().copied().map(Backend::BuiltIn).collect());
    // `sim(seeds = N)` adds the simulator to the backends, if they do not list it.
    if sim.is_some() && !backends.iter().any(|b| b.name() == "sim") {
        backends.push(Backend::BuiltIn("sim"));
    }
    let sim = sim.map_or(
        SimOptions {
            seeds: DEFAULT_SEEDS,
            time_limit: None,
        },
        |(options, _)| options,
    );
    let seeds = sim.seeds;

    let func: ItemFn = syn::parse2(item)?;
    let sig = &func.sig;
    // Another test attribute (`#[test]`, `#[tokio::test]`, `#[test_log::test]`..), before
    // the `async` check: one above this one has already turned the function into a plain
    // `fn` with a `#[::core::prelude::v1::test]`.
    if let Some(attr) = func.attrs.iter().find(|a| {
        let path = a.path();
        let last = path.segments.last().map(|s| s.ident.to_string());
        last.as_deref() == Some("test") && !is_hatchery_test(path)
    }) {
        let path = attr.path();
        let what = if path.segments.len() == 1 {
            "`#[test]`".to_string()
        } else if is_std_test(path) {
            // Left by another test attribute above this one.
            "the other test attribute (`#[tokio::test]`, say)".to_string()
        } else {
            let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
            format!("`#[{}]`", segments.join("::"))
        };
        return Err(Error::new(
            attr.span(),
            format!(
                "remove {what}: #[hatchery::test] generates the tests, one per backend (tokio and smol)"
            ),
        ));
    }
    if sig.asyncness.is_none() {
        return Err(Error::new(
            sig.fn_token.span(),
            "#[hatchery::test] needs an `async fn`",
        ));
    }
    if !sig.inputs.is_empty() {
        return Err(Error::new(
            sig.inputs.span(),
            "#[hatchery::test] functions take no arguments",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(Error::new(
            sig.generics.span(),
            "#[hatchery::test] functions cannot be generic",
        ));
    }
    if let Some(attr) = func.attrs.iter().find(|a| is_hatchery_test(a.path())) {
        return Err(Error::new(
            attr.meta.span(),
            "#[hatchery::test] is applied twice: keep one (with all its options)",
        ));
    }
    if let Some(span) = sig
        .constness
        .map(|t| t.span())
        .or(sig.unsafety.map(|t| t.span()))
        .or(sig.abi.as_ref().map(|a| a.span()))
    {
        return Err(Error::new(
            span,
            "#[hatchery::test] functions are plain `async fn`s: no `const`, `unsafe` or `extern`",
        ));
    }

    let name = &sig.ident;
    let vis = &func.vis;
    let output = &sig.output;
    let stmts = &func.block.stmts;
    // Inner attributes (`#![allow(..)]` at the top of the body) stay in the body. Lint
    // levels (`#[allow(..)]`, `#[expect(..)]`, ..) are about the body's code: they go on
    // the function. Docs go on both; the others (`#[ignore]`, `#[should_panic]`, another
    // crate's test attributes) go on each test.
    let (inner, outer): (Vec<_>, Vec<_>) = func
        .attrs
        .iter()
        .partition(|a| matches!(a.style, syn::AttrStyle::Inner(_)));
    let is_lint = |a: &&syn::Attribute| {
        ["allow", "warn", "deny", "forbid", "expect"]
            .iter()
            .any(|lint| a.path().is_ident(lint))
    };
    let (lints, attrs): (Vec<_>, Vec<_>) = outer.into_iter().partition(is_lint);
    let docs: Vec<_> = attrs.iter().filter(|a| a.path().is_ident("doc")).collect();
    let wrap = match time {
        Time::Real => quote!(::hatchery::testing::tracked),
        Time::Virtual => quote!(::hatchery::testing::virtual_time),
        Time::Manual => quote!(::hatchery::testing::manual_time),
    };
    let tests = backends.iter().map(|b| {
        let label = b.name();
        let (ident, run) = match b {
            Backend::BuiltIn(b) => {
                let run = match *b {
                    "tokio_current" => quote!(::hatchery_tokio::run_current_thread),
                    "tokio_multi" => quote!(::hatchery_tokio::run),
                    "tokio_local" => quote!(::hatchery_tokio::run_local),
                    "smol_local" => quote!(::hatchery_smol::run_local),
                    "compio" => quote!(::hatchery_compio::run_local),
                    "sim" => quote!(::hatchery_sim::run),
                    _ => quote!(::hatchery_smol::run),
                };
                (syn::Ident::new(b, Span::call_site()), run)
            }
            Backend::Custom(name, path) => (name.clone(), from_test_module(path)),
        };
        // The simulator runs the body once per seed, and names the seed that fails with
        // the command that replays it.
        let call = match b.name() == "sim" {
            true => {
                let time_limit = sim
                    .time_limit
                    .map(|nanos| quote!(.time_limit(::core::time::Duration::from_nanos(#nanos))));
                let replay = replay(&ident, &attrs);
                quote! {
                    ::hatchery_sim::Seeds::new(#seeds)
                        #time_limit
                        .replay(#replay)
                        .run(|| #wrap(body()).with_backend_name(#label))
                }
            }
            false => quote!(#run(#wrap(body()).with_backend_name(#label))),
        };
        quote_spanned! {name.span()=>
            #(#attrs)*
            #[::core::prelude::v1::test]
            fn #ident() #output {
                #call
            }
        }
    });
    // The function stays where it was declared, so that its paths (`super::`, helpers
    // with any name) mean what they say; the module, in the other namespace, shares its
    // name and holds the tests.
    Ok(quote! {
        #(#docs)*
        #(#lints)*
        #[allow(dead_code)]
        #vis async fn #name() #output {
            #(#inner)*
            #(#stmts)*
        }

        #(#docs)*
        #[allow(non_snake_case)]
        #vis mod #name {
            #[allow(unused_imports)]
            pub(super) use super::#name as body;
            // The copied return type and attributes name what the test's own module
            // sees (`use anyhow::Result;`, a local error type, an imported attribute).
            #[allow(unused_imports)]
            use super::*;

            #(#tests)*
        }
    })
}

/// The options of `sim`: its seeds, and the time limit of each run in nanoseconds.
struct SimOptions {
    seeds: u64,
    time_limit: Option<u64>,
}

/// The options of `sim` (100 seeds), `sim(seeds = N)` (`N`, at least 1) and
/// `sim(.., time_limit = "60s")`.
fn sim_options(option: &Meta) -> syn::Result<SimOptions> {
    let mut options = SimOptions {
        seeds: DEFAULT_SEEDS,
        time_limit: None,
    };
    let Meta::List(list) = option else {
        return Ok(options);
    };
    let usage = "expected `sim` or `sim(seeds = N)`, N a number of seeds (at least 1), or `sim(seeds = N, time_limit = \"60s\")`";
    let pairs = list
        .parse_args_with(Punctuated::<syn::MetaNameValue, Token![,]>::parse_terminated)
        .map_err(|e| Error::new(e.span(), usage))?;
    for nv in pairs {
        if nv.path.is_ident("seeds") {
            let seeds = match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(n),
                    ..
                }) => n.base10_parse::<u64>()?,
                other => return Err(Error::new(other.span(), usage)),
            };
            if seeds == 0 {
                return Err(Error::new(nv.value.span(), usage));
            }
            options.seeds = seeds;
        } else if nv.path.is_ident("time_limit") {
            let limit_usage = "expected a time limit: `time_limit = \"60s\"` (`ms`, `s`, `m`, `h`) or a number of seconds";
            let nanos = match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(n),
                    ..
                }) => n.base10_parse::<u64>()?.checked_mul(1_000_000_000),
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => parse_duration(&s.value()),
                _ => None,
            };
            let Some(nanos) = nanos else {
                return Err(Error::new(nv.value.span(), limit_usage));
            };
            options.time_limit = Some(nanos);
        } else {
            return Err(Error::new(nv.path.span(), usage));
        }
    }
    Ok(options)
}

/// `"500ms"`, `"60s"`, `"10m"`, `"1h"` (or a bare number of seconds) in nanoseconds.
fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "ms" => 1_000_000,
        "" | "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// What the command that replays a seed of the test `name` needs, as a
/// `hatchery_sim::__private::Replay`: the package, the test target (from what cargo tells
/// the compiler of the test's crate), the manifest's features with whether this build
/// has them (a `cfg!` each, in the test's crate), the profile, and the test's path.
fn replay(name: &syn::Ident, attrs: &[&syn::Attribute]) -> TokenStream2 {
    let env = |var: &str| std::env::var(var).ok();
    let target = match (
        env("CARGO_TARGET_TMPDIR"),
        env("CARGO_BIN_NAME"),
        env("CARGO_CRATE_NAME"),
    ) {
        (Some(_), _, Some(krate)) => {
            let name = test_target_name(&krate);
            quote!(::hatchery_sim::__private::Target::Test(#name))
        }
        (None, Some(bin), _) => quote!(::hatchery_sim::__private::Target::Bin(#bin)),
        _ => quote!(::hatchery_sim::__private::Target::Lib),
    };
    let features = env("CARGO_MANIFEST_DIR")
        .and_then(|dir| std::fs::read_to_string(std::path::Path::new(&dir).join("Cargo.toml")).ok())
        .map(|manifest| manifest_features(&manifest))
        .unwrap_or_default();
    let features = features
        .iter()
        .map(|f| quote!((#f, ::core::cfg!(feature = #f))));
    // `#[ignore]`, or a `cfg_attr` that may add one: `--include-ignored` is harmless.
    let ignored = attrs.iter().any(|a| {
        a.path().is_ident("ignore")
            || (a.path().is_ident("cfg_attr")
                && a.meta.to_token_stream().to_string().contains("ignore"))
    });
    let label = name.to_string();
    quote! {
        ::hatchery_sim::__private::Replay {
            package: ::core::env!("CARGO_PKG_NAME"),
            target: #target,
            features: &[#(#features),*],
            release: !::core::cfg!(debug_assertions),
            module: ::core::module_path!(),
            name: #label,
            ignored: #ignored,
        }
    }
}

/// The name of the integration test whose crate is `krate`: its crate name, with dashes
/// where its file has them (`tests/my-test.rs` is the crate `my_test`, the target
/// `my-test`).
fn test_target_name(krate: &str) -> String {
    let dashed = krate.replace('_', "-");
    if dashed == krate {
        return dashed;
    }
    let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") else {
        return krate.to_owned();
    };
    let tests = std::path::Path::new(&dir).join("tests");
    let exists = |name: &str| {
        tests.join(format!("{name}.rs")).exists() || tests.join(name).join("main.rs").exists()
    };
    match exists(&dashed) && !exists(krate) {
        true => dashed,
        false => krate.to_owned(),
    }
}

/// The features a package's manifest declares: the keys of its `[features]` table, and
/// its optional dependencies (each a feature, unless named `dep:<name>` somewhere).
fn manifest_features(manifest: &str) -> Vec<String> {
    let mut features = Vec::new();
    let mut optional = Vec::new();
    let mut section = String::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned();
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().trim_matches('"');
        let is_name = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'));
        if !is_name {
            continue;
        }
        if section == "features" {
            features.push(key.to_owned());
        } else if section.ends_with("dependencies") && value.contains("optional") {
            let flag = value.split("optional").nth(1).unwrap_or("");
            if flag
                .trim_start()
                .trim_start_matches('=')
                .trim_start()
                .starts_with("true")
            {
                optional.push(key.to_owned());
            }
        }
    }
    for dep in optional {
        let explicit = manifest.contains(&format!("\"dep:{dep}\""));
        if !explicit && !features.contains(&dep) {
            features.push(dep);
        }
    }
    features
}

/// A backend a test runs on.
enum Backend {
    /// `tokio_current`, `tokio_multi`, `smol`, `sim`, `tokio_local`, `smol_local` or
    /// `compio`.
    BuiltIn(&'static str),
    /// `name = path::to::run`: a `run` function of the test crate's own.
    Custom(syn::Ident, syn::Path),
}

impl Backend {
    fn name(&self) -> String {
        match self {
            Backend::BuiltIn(b) => b.to_string(),
            Backend::Custom(name, _) => name.to_string(),
        }
    }
}

/// `path`, written in the test function's module, as seen from the module of the
/// generated tests inside it: a path that starts with `self` or `super` gets one more
/// `super` (the others resolve the same, through the module's `use super::*`).
fn from_test_module(path: &syn::Path) -> TokenStream2 {
    let relative = path.leading_colon.is_none()
        && path
            .segments
            .first()
            .is_some_and(|s| s.ident == "self" || s.ident == "super");
    match relative {
        true => {
            let rest = path.segments.iter().skip(usize::from(
                path.segments.first().is_some_and(|s| s.ident == "self"),
            ));
            quote!(super #(::#rest)*)
        }
        false => quote!(#path),
    }
}

/// `hatchery::test` (this attribute, applied again).
fn is_hatchery_test(path: &syn::Path) -> bool {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    segments == ["hatchery", "test"]
}

/// The standard library's `#[test]` by its full path (`::core::prelude::v1::test`), as
/// `#[tokio::test]` leaves it.
fn is_std_test(path: &syn::Path) -> bool {
    matches!(
        path.segments
            .first()
            .map(|s| s.ident.to_string())
            .as_deref(),
        Some("core" | "std")
    )
}

#[cfg(test)]
mod tests {
    use super::{manifest_features, parse_duration};

    #[::core::prelude::v1::test]
    fn features_of_a_manifest() {
        let manifest = r#"
[package]
name = "x"

[features]
default = ["fast"]
fast = []
"with-dash" = [
    "dep:quiet",
    "loud/x",
]

[dependencies]
loud = { version = "1", optional = true }
quiet = { version = "1", optional = true }
plain = "1"
"#;
        assert_eq!(
            manifest_features(manifest),
            ["default", "fast", "with-dash", "loud"]
        );
    }

    #[::core::prelude::v1::test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("60s"), Some(60_000_000_000));
        assert_eq!(parse_duration("2m"), Some(120_000_000_000));
        assert_eq!(parse_duration("1h"), Some(3_600_000_000_000));
        assert_eq!(parse_duration("7"), Some(7_000_000_000));
        assert_eq!(parse_duration("1d"), None);
        assert_eq!(parse_duration("s"), None);
    }
}
