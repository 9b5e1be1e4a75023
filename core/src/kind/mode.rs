//! What each combinator makes of an output, written once for every kind of children: a
//! value to keep (`join`, `race`), a `Result` whose error fails the group (`try_join`),
//! an output that ends the group (`race`: any, `race_ok`: an `Ok`).
//!
//! Modes are types, not values, so that the polls of a tuple's futures (each of its own
//! type, in the inline kind's fixed slots) are inlined with no call through a pointer,
//! and a spawned child's wrapper is one generic function.

use std::convert::Infallible;
use std::marker::PhantomData;

/// What a combinator makes of its futures' outputs: the error type that fails its group.
pub trait Mode {
    /// The error that fails a group of this mode.
    type Error;
}

/// What a combinator of mode `Self` makes of an output `T`: a value to keep, or an error
/// that fails the group; and whether a value ends the group (its first one cancels the
/// rest).
pub trait Takes<T>: Mode {
    /// What the group keeps of an output.
    type Value;

    /// What a collection's slots in place record of the order their futures finish in
    /// (see [`Order`]).
    type Order: Order;

    /// Whether some value ends the group ([`stops`](Takes::stops) may say yes).
    const STOPS: bool = false;

    /// The output as a value to keep, or an error that fails the group.
    fn split(out: T) -> Result<Self::Value, Self::Error>;

    /// Whether this value ends the group.
    #[inline(always)]
    fn stops(_value: &Self::Value) -> bool {
        false
    }
}

/// `join`: every output is a value.
#[derive(Debug)]
pub struct JoinMode;

/// `try_join`: an `Err` fails the group.
#[derive(Debug)]
pub struct TryJoinMode<E>(PhantomData<fn() -> E>);

/// `race`: the first output ends the group.
#[derive(Debug)]
pub(crate) struct RaceMode;

/// `race_ok`: the first `Ok` ends the group; errors are values (all of them are the
/// answer if every future fails).
#[derive(Debug)]
pub(crate) struct RaceOkMode;

impl Mode for JoinMode {
    type Error = Infallible;
}

impl<T> Takes<T> for JoinMode {
    type Value = T;
    type Order = ();

    #[inline(always)]
    fn split(out: T) -> Result<T, Infallible> {
        Ok(out)
    }
}

impl<E> Mode for TryJoinMode<E> {
    type Error = E;
}

impl<T, E> Takes<Result<T, E>> for TryJoinMode<E> {
    type Value = T;
    type Order = ();

    #[inline(always)]
    fn split(out: Result<T, E>) -> Result<T, E> {
        out
    }
}

impl Mode for RaceMode {
    type Error = Infallible;
}

impl<T> Takes<T> for RaceMode {
    type Value = T;
    type Order = Finished;

    const STOPS: bool = true;

    #[inline(always)]
    fn split(out: T) -> Result<T, Infallible> {
        Ok(out)
    }

    #[inline(always)]
    fn stops(_value: &T) -> bool {
        true
    }
}

impl Mode for RaceOkMode {
    type Error = Infallible;
}

impl<T, E> Takes<Result<T, E>> for RaceOkMode {
    type Value = Result<T, E>;
    type Order = Finished;

    const STOPS: bool = true;

    #[inline(always)]
    fn split(out: Result<T, E>) -> Result<Result<T, E>, Infallible> {
        Ok(out)
    }

    #[inline(always)]
    fn stops(value: &Result<T, E>) -> bool {
        value.is_ok()
    }
}

/// A group's outputs, as a kind of children hands them back.
pub(crate) enum Outputs<V> {
    /// In input order already: a fixed group's slots are its inputs, and a mode that
    /// does not stop lets every future finish (the polled kind's fast path: no index, no
    /// sort, no second vector; handing its outputs over as `Completed` costs an
    /// `Polled::join` of two futures 336 more instructions, 1357 against 1693 per join on
    /// tokio-ct by callgrind, the `polled_join2_vec` cell).
    InOrder(Vec<V>),
    /// Each with its input's index, in the order they completed.
    Completed(Vec<(usize, V)>),
}

impl<V> Outputs<V> {
    /// The outputs in input order, or, not `ordered` (`unordered`), in the order they
    /// completed.
    pub(crate) fn arrange(self, ordered: bool) -> Vec<V> {
        match self {
            Outputs::InOrder(outputs) => outputs,
            Outputs::Completed(mut outputs) => {
                if ordered {
                    outputs.sort_unstable_by_key(|(i, _)| *i);
                }
                outputs.into_iter().map(|(_, o)| o).collect()
            }
        }
    }

    /// The first output to complete (a race's winner). `InOrder` only comes from a mode
    /// that does not stop, for which any order is input order.
    pub(crate) fn completed(self) -> impl Iterator<Item = V> {
        let outputs = match self {
            Outputs::InOrder(outputs) => outputs.into_iter().enumerate().collect(),
            Outputs::Completed(outputs) => outputs,
        };
        outputs.into_iter().map(|(_, o)| o)
    }
}

/// How many futures a collection's [`Fixed`](super::fixed::Fixed) takes: more are run
/// by a polled nursery's engine, whose per-future wakers poll only the futures that were
/// woken.
pub(crate) const MAX: usize = 32;

/// A record of the order a collection's slots finish in, by mode ([`Takes::Order`]):
/// nothing for a mode that does not stop (its outputs are taken in input order), the
/// slots in order for one that stops (a race: the first is its winner), in place.
pub trait Order: Default {
    /// The slot at `index` finished with a value.
    fn push(&mut self, index: u8);

    /// The slots, in the order they finished.
    fn slots(&self) -> &[u8];
}

impl Order for () {
    #[inline(always)]
    fn push(&mut self, _: u8) {}

    fn slots(&self) -> &[u8] {
        &[]
    }
}

/// The slots of a race, in the order they finished.
#[derive(Default)]
pub(crate) struct Finished {
    slots: [u8; MAX],
    len: u8,
}

impl Order for Finished {
    fn push(&mut self, index: u8) {
        self.slots[usize::from(self.len)] = index;
        self.len += 1;
    }

    fn slots(&self) -> &[u8] {
        &self.slots[..usize::from(self.len)]
    }
}
