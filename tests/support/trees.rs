//! The plans of the randomized tree tests (`model/random_trees.rs`, `model/polled_random_trees.rs`):
//! one generator, each test choosing which kinds of node it draws and how often.
//!
//! A seed gives the same tree for as long as a test's [`Mix`] stays the same: the
//! generator draws from the [`Rng`] in a fixed order (leaf or not, then the kind, then
//! the node's own choices, its body before its children).

use crate::seeded::Rng;

/// A node of a randomized tree: what a test builds and runs.
#[derive(Debug, Clone)]
pub enum Tree {
    /// Suspends `steps` times (checkpoints or short sleeps), then ends as `end` says.
    Leaf {
        /// Names the leaf in errors and panics.
        id: u32,
        /// How many times it suspends.
        steps: u32,
        /// Whether it suspends by sleeping (else by `checkpoint`).
        sleep: bool,
        /// How it ends.
        end: End,
    },
    /// A cancel scope around `body`.
    Scope {
        /// The scope's timeout, in microseconds.
        timeout_us: Option<u64>,
        /// Whether the scope is shielded.
        shield: bool,
        /// The scope cancels itself after this many checkpoints.
        cancel_after: Option<u32>,
        /// What runs in the scope.
        body: Box<Tree>,
    },
    /// `body`, then (or when cancelled) the shielded `cleanup`.
    Finally {
        /// What runs first.
        body: Box<Tree>,
        /// The cleanup: a leaf that succeeds or panics, never fails (its errors would
        /// have nowhere to go when its work was cancelled: the `finally` never returns).
        cleanup: Box<Tree>,
    },
    /// A spawning nursery whose body runs `body` and whose children are `children`.
    Nursery {
        /// The nursery's body.
        body: Box<Tree>,
        /// Its spawned children.
        children: Vec<Tree>,
    },
    /// A polled nursery whose body runs `body` and whose children are `children`, with
    /// a seeded cancellation from inside.
    Polled {
        /// The nursery's body.
        body: Box<Tree>,
        /// Its children.
        children: Vec<Tree>,
        /// Who cancels what, if anyone.
        cancel: Option<Cancel>,
    },
    /// A polled combinator of `children` (never empty).
    Group {
        /// Which combinator.
        kind: Kind,
        /// The futures it runs.
        children: Vec<Tree>,
    },
}

/// How a [`Tree::Leaf`] ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum End {
    /// It returns `Ok`.
    Ok,
    /// It returns an error: its id.
    Fail,
    /// It panics.
    Panic,
}

/// A cancellation from a child of a polled nursery, after `after` checkpoints.
#[derive(Debug, Clone, Copy)]
pub enum Cancel {
    /// Of the child at `index`, through its handle.
    Child {
        /// The child cancelled.
        index: usize,
        /// Checkpoints before the cancellation.
        after: u32,
    },
    /// Of the nursery.
    Nursery {
        /// Checkpoints before the cancellation.
        after: u32,
    },
}

/// The combinator of a [`Tree::Group`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// `Polled::join`.
    Join,
    /// `Polled::try_join`.
    TryJoin,
    /// `Polled::race`.
    Race,
}

/// The kinds of inner node a [`Mix`] weighs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Node {
    /// [`Tree::Nursery`].
    Nursery,
    /// [`Tree::Polled`].
    Polled,
    /// [`Tree::Group`].
    Group,
    /// [`Tree::Scope`].
    Scope,
    /// [`Tree::Finally`].
    Finally,
}

/// Which inner nodes a tree has, each with its weight: a node is drawn with one number
/// below the sum of the weights, the kinds taking consecutive ranges in this order.
pub type Mix = [(Node, u64)];

/// A random tree at most `depth` inner nodes deep, its leaves numbered from
/// `*next_id + 1` on. Below any inner node a leaf comes 35 times in a hundred (at depth
/// zero always); an inner node is drawn from `mix`.
pub fn generate(rng: &mut Rng, mix: &Mix, depth: u32, next_id: &mut u32) -> Tree {
    if depth == 0 || rng.chance(35) {
        return leaf(rng, next_id);
    }
    let mut draw = rng.below_u64(mix.iter().map(|&(_, w)| w).sum());
    let node = mix
        .iter()
        .find(|&&(_, w)| {
            let hit = draw < w;
            draw = draw.saturating_sub(w);
            hit
        })
        .map(|&(node, _)| node)
        .expect("the draw is below the weights' sum");
    match node {
        Node::Nursery => Tree::Nursery {
            body: Box::new(generate(rng, mix, depth - 1, next_id)),
            children: children(rng, mix, depth, next_id),
        },
        Node::Polled => {
            let children = children(rng, mix, depth, next_id);
            let cancel = match rng.below_u64(10) {
                0..=3 => None,
                4..=6 if !children.is_empty() => Some(Cancel::Child {
                    index: rng.below(children.len()),
                    after: rng.below_u64(4) as u32,
                }),
                _ => Some(Cancel::Nursery {
                    after: rng.below_u64(4) as u32,
                }),
            };
            Tree::Polled {
                body: Box::new(generate(rng, mix, depth - 1, next_id)),
                children,
                cancel,
            }
        }
        Node::Group => {
            let kind = match rng.below_u64(3) {
                0 => Kind::Join,
                1 => Kind::TryJoin,
                _ => Kind::Race,
            };
            let mut children = children(rng, mix, depth, next_id);
            if children.is_empty() {
                children.push(leaf(rng, next_id));
            }
            if rng.chance(15) {
                // More futures than the combinators' fast path takes: the engine's path.
                children.extend((0..34).map(|_| leaf(rng, next_id)));
            }
            Tree::Group { kind, children }
        }
        Node::Scope => Tree::Scope {
            timeout_us: rng.chance(60).then(|| rng.below_u64(1500)),
            shield: rng.chance(20),
            cancel_after: rng.chance(20).then(|| rng.below_u64(3) as u32),
            body: Box::new(generate(rng, mix, depth - 1, next_id)),
        },
        Node::Finally => Tree::Finally {
            body: Box::new(generate(rng, mix, depth - 1, next_id)),
            cleanup: Box::new(match leaf(rng, next_id) {
                Tree::Leaf {
                    id,
                    steps,
                    sleep,
                    end: End::Fail,
                } => Tree::Leaf {
                    id,
                    steps,
                    sleep,
                    end: End::Ok,
                },
                t => t,
            }),
        },
    }
}

/// A leaf: ends well 80 times in a hundred, fails 17, panics 3.
fn leaf(rng: &mut Rng, next_id: &mut u32) -> Tree {
    *next_id += 1;
    let end = match rng.below_u64(100) {
        0..=79 => End::Ok,
        80..=96 => End::Fail,
        _ => End::Panic,
    };
    Tree::Leaf {
        id: *next_id,
        steps: rng.below_u64(4) as u32,
        sleep: rng.chance(30),
        end,
    }
}

/// Up to three children of an inner node at `depth`.
fn children(rng: &mut Rng, mix: &Mix, depth: u32, next_id: &mut u32) -> Vec<Tree> {
    (0..rng.below_u64(4))
        .map(|_| generate(rng, mix, depth - 1, next_id))
        .collect()
}
