//! The tuple forms of the borrowing combinators, [`join!`](crate::join!) and
//! [`try_join!`](crate::try_join!): futures of different types, each kept in place in
//! the combinator's future (no allocation), their outputs returned as a tuple.
//!
//! The macros hand their futures, as a tuple, to [`join`] or [`try_join`], which make a
//! [`Fixed`] group of them: the combinators' fast path (see `fixed.rs`), with a slot per
//! future ([`Slots`], implemented here for tuples of 1 to 12 futures).
//!
//! Everything here is public only so that the macros can reach it, and hidden from the
//! docs (`hatchery::__private`).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;

use pin_project_lite::pin_project;

pub use super::fixed::{Fixed, Pass, Slot, Slots};
pub use super::mode::{JoinMode, Mode, Order, Takes, TryJoinMode};
use crate::group::Panic;

/// A tuple of futures that [`join!`](crate::join!) can run.
#[diagnostic::on_unimplemented(
    message = "`join!(Polled: ..)` takes 1 to 12 futures",
    label = "not 1 to 12 futures"
)]
pub trait JoinSlots {
    /// The futures' slots.
    type Slots: Slots<Error = Infallible>;

    /// The futures, each in a slot.
    fn slots(self) -> Self::Slots;
}

/// A tuple of fallible futures with one error type that [`try_join!`](crate::try_join!)
/// can run.
#[diagnostic::on_unimplemented(
    message = "`try_join!(Polled: ..)` takes 1 to 12 futures of `Result`s with one error type",
    label = "not 1 to 12 futures of `Result<_, E>` with one `E`"
)]
pub trait TryJoinSlots<E> {
    /// The futures' slots.
    type Slots: Slots<Error = E>;

    /// The futures, each in a slot.
    fn slots(self) -> Self::Slots;
}

/// The group of [`join!`](crate::join!)'s futures.
#[track_caller]
pub fn join_slots<T: JoinSlots>(futs: T) -> Fixed<T::Slots> {
    Fixed::new(futs.slots(), Location::caller())
}

/// The group of [`try_join!`](crate::try_join!)'s futures.
#[track_caller]
pub fn try_join_slots<E, T: TryJoinSlots<E>>(futs: T) -> Fixed<T::Slots> {
    Fixed::new(futs.slots(), Location::caller())
}

/// Implements the slots `$name` and the traits for the tuple of the `$F`s, then for each
/// longer one up to the last named.
macro_rules! tuples {
    (@longer $($F:ident $T:ident $f:ident),+;) => {};
    (@longer $($F:ident $T:ident $f:ident),+; $next:ident $Fn:ident $Tn:ident $fnext:ident
        $(, $rest:ident $Fr:ident $Tr:ident $fr:ident)*) => {
        tuples!($next: $($F $T $f),+, $Fn $Tn $fnext; $($rest $Fr $Tr $fr),*);
    };
    ($name:ident: $($F:ident $T:ident $f:ident),+; $($longer:tt)*) => {
        tuples!(@longer $($F $T $f),+; $($longer)*);

        pin_project! {
            /// The slots of a tuple of futures.
            pub struct $name<M, $($F),+>
            where
                $($F: Future, M: Takes<$F::Output>,)+
            {
                $(#[pin] $f: Slot<$F, <M as Takes<$F::Output>>::Value>,)+
                _mode: PhantomData<fn() -> M>,
            }
        }

        impl<M, $($F),+> fmt::Debug for $name<M, $($F),+>
        where
            $($F: Future, M: Takes<$F::Output>,)+
        {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }

        impl<M: Mode, $($F),+> Slots for $name<M, $($F),+>
        where
            $($F: Future, M: Takes<$F::Output>,)+
        {
            type Error = M::Error;
            type Outputs = ($(<M as Takes<$F::Output>>::Value,)+);

            #[inline(always)]
            fn poll_each<P: Pass<M::Error>>(self: Pin<&mut Self>, p: &mut P) {
                let this = self.project();
                $(p.poll::<$F, M>(this.$f);)+
            }

            fn drop_all(self: Pin<&mut Self>) -> Option<Panic> {
                let this = self.project();
                let mut first = None;
                $(first = first.or(this.$f.drop_future());)+
                first
            }

            fn outputs(self: Pin<&mut Self>) -> Self::Outputs {
                let this = self.project();
                ($(this.$f.value(),)+)
            }
        }

        impl<$($F: Future),+> JoinSlots for ($($F,)+) {
            type Slots = $name<JoinMode, $($F),+>;

            #[allow(non_snake_case)]
            fn slots(self) -> Self::Slots {
                let ($($F,)+) = self;
                $name {
                    $($f: Slot::new($F),)+
                    _mode: PhantomData,
                }
            }
        }

        impl<E, $($F, $T),+> TryJoinSlots<E> for ($($F,)+)
        where
            $($F: Future<Output = Result<$T, E>>,)+
        {
            type Slots = $name<TryJoinMode<E>, $($F),+>;

            #[allow(non_snake_case)]
            fn slots(self) -> Self::Slots {
                let ($($F,)+) = self;
                $name {
                    $($f: Slot::new($F),)+
                    _mode: PhantomData,
                }
            }
        }
    };
}

tuples!(Tuple1: A1 T1 a1; Tuple2 A2 T2 a2, Tuple3 A3 T3 a3, Tuple4 A4 T4 a4, Tuple5 A5 T5 a5,
    Tuple6 A6 T6 a6, Tuple7 A7 T7 a7, Tuple8 A8 T8 a8, Tuple9 A9 T9 a9, Tuple10 A10 T10 a10,
    Tuple11 A11 T11 a11, Tuple12 A12 T12 a12);
