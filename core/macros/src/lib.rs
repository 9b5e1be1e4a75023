//! The `#[hatchery::test]` attribute. Use it through `hatchery`; see [`macro@test`].

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
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
/// # fn main() {
/// #     hatchery_smol::run(hatchery::testing::tracked(sums_in_parallel::body()));
/// #     hatchery_smol::run(hatchery::testing::virtual_time(gives_up_after_an_hour::body()));
/// #     hatchery_smol::run(returns_result::body()).unwrap();
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
/// The test crate needs `hatchery-tokio` and `hatchery-smol` as (dev-)dependencies, or
/// only the adapters of the backends it selects, under those names (the expansion
/// names `::hatchery`, `::hatchery_tokio` and `::hatchery_smol`; a renamed dependency is
/// not found). Write it `#[hatchery::test]`: after `use hatchery::*`, a plain `#[test]`
/// is ambiguous (rustc's error E0659) because the glob brings this `test` in.
///
/// # Options
///
/// * `virtual_time`: run on virtual time (see the module `hatchery::testing`) that jumps
///   to the next deadline whenever every task is blocked;
/// * `manual_time`: virtual time that moves only with `hatchery::testing::advance`;
/// * `backends(..)`: a subset of `tokio_current`, `tokio_multi`, `smol`.
///
/// Without a time option the test runs on real time, with task tracking so that
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

const BACKENDS: [&str; 3] = ["tokio_current", "tokio_multi", "smol"];

fn expand(args: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let options = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let mut time: Option<(Time, Span)> = None;
    let mut backends: Option<Vec<&'static str>> = None;
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
            ("backends", Meta::List(list)) => {
                if backends.is_some() {
                    return Err(Error::new(list.span(), "`backends` given twice"));
                }
                if list.tokens.to_string().contains('-') {
                    return Err(Error::new(
                        list.tokens.span(),
                        "backend names are written with underscores: `tokio_current`, `tokio_multi`, `smol`",
                    ));
                }
                let names = list.parse_args_with(
                    Punctuated::<syn::Ident, Token![,]>::parse_terminated,
                )?;
                let mut chosen = Vec::new();
                for ident in names {
                    let Some(b) = BACKENDS.iter().find(|b| ident == **b) else {
                        return Err(Error::new(
                            ident.span(),
                            format!(
                                "unknown backend `{ident}`; expected `tokio_current`, `tokio_multi` or `smol`"
                            ),
                        ));
                    };
                    if chosen.contains(b) {
                        return Err(Error::new(ident.span(), format!("backend `{ident}` listed twice")));
                    }
                    chosen.push(*b);
                }
                if chosen.is_empty() {
                    return Err(Error::new(list.span(), "`backends(..)` needs at least one backend"));
                }
                backends = Some(chosen);
            }
            _ => {
                return Err(Error::new(
                    option.span(),
                    "unknown option; expected `virtual_time`, `manual_time` or `backends(tokio_current, tokio_multi, smol)`",
                ))
            }
        }
    }
    let time = time.map_or(Time::Real, |(t, _)| t);
    let backends = backends.unwrap_or_else(|| BACKENDS.to_vec());

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
        let ident = syn::Ident::new(b, Span::call_site());
        let run = match *b {
            "tokio_current" => quote!(::hatchery_tokio::run_current_thread),
            "tokio_multi" => quote!(::hatchery_tokio::run),
            _ => quote!(::hatchery_smol::run),
        };
        quote_spanned! {name.span()=>
            #(#attrs)*
            #[::core::prelude::v1::test]
            fn #ident() #output {
                #run(#wrap(body()).with_backend_name(#b))
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
