//! The body of a `#[hatchery::test]` keeps its meaning: `super::` paths, a helper that
//! happens to be named like a generated item, and inner attributes.

fn body() -> &'static str {
    "the helper"
}

mod tests {
    fn root_helper() -> u32 {
        1
    }

    pub(crate) mod inner {
        #[hatchery::test]
        async fn uses_super_paths() {
            #![allow(clippy::eq_op)]
            assert_eq!(super::root_helper(), 1);
            assert_eq!(crate::body(), "the helper");
        }

        pub(crate) fn run() {
            hatchery_smol::run(uses_super_paths::body());
            hatchery_smol::run(uses_super_paths());
        }
    }
}

#[hatchery::test]
async fn calls_a_helper_named_body() {
    #![allow(unused_variables)]
    let unused_without_the_allow = 1;
    assert_eq!(body(), "the helper");
}

fn main() {
    tests::inner::run();
    hatchery_smol::run(calls_a_helper_named_body());
}
