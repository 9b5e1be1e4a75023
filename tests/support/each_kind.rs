//! One test body, both kinds of nursery: [`each_kind!`](crate::each_kind).

/// Runs a scenario generic over the kind of nursery it opens ([`Kind`](crate::Kind)) on
/// each kind, on every backend: a module named after the scenario, holding a
/// `#[hatchery::test]` per kind, `spawning` ([`Spawning`](crate::Spawning): children are
/// tasks of the executor) and `polling` ([`Polling`](crate::Polling): children polled by
/// the nursery's own task). What follows the name goes to `#[hatchery::test(..)]`; then
/// `; polling: #[ignore = ".."]` (or `; spawning: ..`) puts an attribute on one kind's
/// test alone: a known bug of one kind, named in the reason.
///
/// The scenario is an `async fn name<K: Kind>()` of the same module, written as for one
/// kind: `K::nursery(|n| ..)` opens the nursery, whose handle spawns and starts
/// `Send + 'static` children (the bounds both kinds take) and has every nursery's
/// methods. The scenario is one function, type-checked once, and compiled for each kind.
///
/// ```
/// use hatchery_tests::{each_kind, Kind};
///
/// each_kind!(n1_returns_the_value, virtual_time);
/// /// N1: the body's value, once every child has finished.
/// async fn n1_returns_the_value<K: Kind>() {
///     let out = K::nursery(|n| async move {
///         n.spawn(async { hatchery::sleep(hatchery_tests::secs(1)).await; Ok(()) });
///         Ok::<_, hatchery_tests::TestError>(5)
///     })
///     .await;
///     assert_eq!(out, Ok(5));
///     assert_eq!(hatchery::testing::elapsed(), hatchery_tests::secs(1));
/// }
/// # fn main() {
/// #     hatchery_smol::run(hatchery::testing::virtual_time(n1_returns_the_value::polling()));
/// # }
/// ```
#[macro_export]
macro_rules! each_kind {
    ($name:ident $(, $option:meta)* $(; spawning: #[$spawning:meta])? $(; polling: #[$polling:meta])?) => {
        #[allow(non_snake_case)]
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $crate::__kind_test!(spawning, $crate::Spawning, $name, [$($option),*] $(#[$spawning])?);
            $crate::__kind_test!(polling, $crate::Polling, $name, [$($option),*] $(#[$polling])?);
        }
    };
}

/// Not for use: one test of [`each_kind!`], with the attribute given for its kind.
#[doc(hidden)]
#[macro_export]
macro_rules! __kind_test {
    ($test:ident, $kind:path, $name:ident, [$($option:meta),*] $(#[$attr:meta])?) => {
        $(#[$attr])?
        #[::hatchery::test($($option),*)]
        pub(super) async fn $test() {
            super::$name::<$kind>().await
        }
    };
}
