//! How a combinator runs its futures, written once for every kind of children: in a
//! nursery of the kind that it opens (rule G1), whose body admits them ([`feed`]), each
//! a child that hands its output to the combinator through a shared [`Sink`] (its value
//! cannot come back through the group, which keeps none), the first stopping one (a
//! race's winner) cancelling the group. A few futures known at once and polled in the
//! caller's task are kept in place instead (`kind::fixed`: [`all_polled`]).

use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;

use super::feed::{feed, Admit, Permit};
use super::ops::{Ended, Work};
use crate::group::race_won_by;
use crate::kind::fixed::{Fixed, VecSlots};
use crate::kind::mode::{self, Outputs, Takes};
use crate::node::Node;
use crate::nursery::{sealed::Describe, Accepts, Children, Nursery, NurseryFuture};
use crate::trace;

/// Where the children put their outputs, with their input's index, in the order they
/// completed; and the group's node, which the first stopping output cancels.
pub(crate) struct Sink<V> {
    outputs: Mutex<(Vec<(usize, V)>, bool)>,
    group: Arc<Node>,
    site: &'static Location<'static>,
}

impl<V> Sink<V> {
    /// Puts the output of the input at `index`; the first that stops the group
    /// (`stops`) wins, and cancels the rest.
    fn put(&self, index: usize, value: V, stops: bool) {
        let mut outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        outputs.0.push((index, value));
        let first = stops && !outputs.1;
        outputs.1 |= stops;
        drop(outputs);
        if first {
            race_won_by(&self.group, self.site);
        }
    }

    fn take(&self) -> Vec<(usize, V)> {
        std::mem::take(&mut self.outputs.lock().unwrap_or_else(|e| e.into_inner()).0)
    }
}

pin_project! {
    /// A combinator's future as a child of its group: its output goes to the sink, its
    /// error to the group (through the mode), and its place among those in flight is
    /// freed when it ends.
    pub(crate) struct Child<F, M: Takes<F::Output>> where F: Future {
        #[pin]
        fut: F,
        index: usize,
        sink: Arc<Sink<M::Value>>,
        permit: Option<Permit>,
        _mode: PhantomData<fn() -> M>,
    }
}

impl<F: Future, M: Takes<F::Output>> Future for Child<F, M> {
    type Output = Result<(), M::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // A panic stops the input as an error does: before the permit comes free.
        let stop = StopOnUnwind(this.permit.as_ref());
        let poll = this.fut.poll(cx);
        std::mem::forget(stop);
        let out = M::split(ready!(poll));
        if let (Err(_), Some(permit)) = (&out, &*this.permit) {
            permit.stop();
        }
        let value = out?;
        let stops = M::stops(&value);
        this.sink.put(*this.index, value, stops);
        this.permit.take();
        Poll::Ready(Ok(()))
    }
}

/// Stops a combinator's input if the poll it guards unwinds.
struct StopOnUnwind<'a>(Option<&'a Permit>);

impl Drop for StopOnUnwind<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.0 {
            permit.stop();
        }
    }
}

/// A combinator's nursery, as its body admits children into it: futures whose output is
/// a `T`, which the mode `M` takes.
pub(crate) struct Admitting<C: Children, M: Takes<T>, T> {
    n: Nursery<M::Error, C>,
    sink: Arc<Sink<M::Value>>,
    site: &'static Location<'static>,
}

impl<C, M, Fut> Admit<Fut> for Admitting<C, M, Fut::Output>
where
    Fut: Future,
    M: Takes<Fut::Output>,
    C: Accepts<Child<Fut, M>, (), M::Error>,
{
    fn is_cancelled(&self) -> bool {
        self.n.is_cancelled()
    }

    fn admit(&mut self, index: usize, fut: Fut, permit: Option<Permit>) {
        let child = Child {
            fut,
            index,
            sink: self.sink.clone(),
            permit,
            _mode: PhantomData,
        };
        self.n.spawn_at(self.site, child);
    }
}

/// Runs `work` in a nursery of kind `C` whose body admits the futures ([`feed`]); the
/// mode `M` takes their outputs.
pub(crate) fn run<C, M, S, F, Fut>(
    work: Work<S, F>,
) -> impl Future<Output = Ended<M::Value, M::Error>>
where
    C: Children + Accepts<Child<Fut, M>, (), M::Error> + Describe<M::Error>,
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
    M: Takes<Fut::Output>,
{
    group::<C, M, Fut::Output, _, _>(work.site, move |admitting| feed(work, admitting))
}

/// Runs a combinator's group: a nursery of kind `C`, opened at `site`, whose body `fill`
/// admits the futures and returns how many; the mode `M` takes their outputs, in the
/// order they completed (a mode that stops ends the group at the first: then not every
/// admitted future has one).
pub(crate) fn group<C, M, T, B, Body>(
    site: &'static Location<'static>,
    fill: B,
) -> impl Future<Output = Ended<M::Value, M::Error>>
where
    C: Children + Describe<M::Error>,
    M: Takes<T>,
    B: FnOnce(Admitting<C, M, T>) -> Body,
    Body: Future<Output = usize>,
{
    let group = NurseryFuture::<_, _, _, _, C>::new(
        trace::Sited::nursery(site),
        move |n: Nursery<M::Error, C>| {
            let sink = Arc::new(Sink {
                outputs: Mutex::new((Vec::new(), false)),
                group: n.group.node.clone(),
                site,
            });
            let body = fill(Admitting {
                n,
                sink: sink.clone(),
                site,
            });
            async move { Ok((body.await, sink)) }
        },
    );
    async move {
        let (admitted, sink) = group.await?;
        let outputs = sink.take();
        let all = match M::STOPS {
            true => !outputs.is_empty(),
            false => outputs.len() == admitted,
        };
        assert!(
            all,
            "hatchery: a child was dropped by the executor before it finished (is the \
             runtime shutting down?)"
        );
        Ok(Outputs::Completed(outputs))
    }
}

/// Runs every future of `futs` at once in the caller's task, read now: at most
/// [`mode::MAX`] in slots in place (no allocation for two or fewer), more in a polled
/// nursery (`run`, of kind `C`).
#[inline]
#[allow(clippy::type_complexity)] // `impl Future` cannot be named in a type alias
pub(crate) fn all_polled<C, M, I>(
    mut futs: I,
    site: &'static Location<'static>,
) -> Either<Fixed<VecSlots<I::Item, M>>, impl Future<Output = Ended<M::Value, M::Error>>>
where
    I: Iterator,
    I::Item: Future,
    M: Takes<<I::Item as Future>::Output>,
    C: Children + Accepts<Child<I::Item, M>, (), M::Error> + Describe<M::Error>,
{
    let (first, second) = (futs.next(), futs.next());
    // No call to collect nothing, for two futures or fewer.
    let rest: Vec<I::Item> = match futs.next() {
        None => Vec::new(),
        Some(third) => std::iter::once(third).chain(futs).collect(),
    };
    if rest.len() + 2 <= mode::MAX {
        return Either::Fixed {
            fixed: Fixed::new(VecSlots::new(first, second, rest), site),
        };
    }
    let futs = first.into_iter().chain(second).chain(rest);
    Either::Group {
        run: Box::pin(run::<C, M, _, _, _>(Work::every(futs, site))),
    }
}

pin_project! {
    /// A combinator's group: the fast path for a few futures, a nursery for many (boxed:
    /// the group is moved into the caller's future, and a join of two should not move a
    /// nursery's state around with it).
    #[project = EitherProj]
    pub(crate) enum Either<A, B> {
        Fixed { #[pin] fixed: A },
        Group { run: Pin<Box<B>> },
    }
}

impl<A: Future, B: Future<Output = A::Output>> Future for Either<A, B> {
    type Output = A::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<A::Output> {
        match self.project() {
            EitherProj::Fixed { fixed } => fixed.poll(cx),
            EitherProj::Group { run } => run.as_mut().poll(cx),
        }
    }
}
