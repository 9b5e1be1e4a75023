//! The spawning kind of the combinators (`Spawned`): each future is a task of a nursery
//! the combinator opens (rule G1), so it is `Send + 'static` and runs in parallel on a
//! multi-threaded runtime. A task hands its output to the combinator through a shared
//! [`Sink`] (its value cannot come back through the nursery, which keeps none), and the
//! first stopping one (a race's winner) cancels the nursery.

use std::future::Future;
use std::panic::Location;
use std::sync::{Arc, Mutex};

use futures_core::Stream;

use super::feed::{feed, Admit, Permit};
use super::mode::{Mode, Takes};
use super::ops::{Ended, Outputs, Work};
use crate::nursery::{nursery_at, Nursery};

/// Where the tasks put their outputs, with their input's index, in the order they
/// completed.
pub(crate) struct Sink<V> {
    outputs: Mutex<(Vec<(usize, V)>, bool)>,
}

impl<V> Sink<V> {
    /// Puts the output of the input at `index`; whether it is the first that stops the
    /// group (`stops`), which wins.
    fn put(&self, index: usize, value: V, stops: bool) -> bool {
        let mut outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        outputs.0.push((index, value));
        let first = stops && !outputs.1;
        outputs.1 |= stops;
        first
    }

    fn take(&self) -> Vec<(usize, V)> {
        std::mem::take(&mut self.outputs.lock().unwrap_or_else(|e| e.into_inner()).0)
    }
}

/// A combinator's nursery, as its body admits tasks into it: tasks whose outputs the
/// mode `M` takes as values `V`.
pub(crate) struct Tasks<M: Mode, V> {
    n: Nursery<M::Error>,
    sink: Arc<Sink<V>>,
    site: &'static Location<'static>,
}

/// Opens a combinator's nursery at `site`, whose body `fill` admits its tasks and says
/// how many; its outputs once every task has finished. `stops`: the mode stops the group
/// (a race), whose cancelled losers have no output.
pub(crate) async fn tasks<M, V, B, Body>(
    site: &'static Location<'static>,
    stops: bool,
    fill: B,
) -> Ended<V, M::Error>
where
    M: Mode,
    M::Error: Send + 'static,
    V: Send + 'static,
    B: FnOnce(Tasks<M, V>) -> Body,
    Body: Future<Output = usize>,
{
    let sink = Arc::new(Sink {
        outputs: Mutex::new((Vec::new(), false)),
    });
    let out = sink.clone();
    let admitted = nursery_at(site, move |n| {
        let body = fill(Tasks { n, sink, site });
        async move { Ok(body.await) }
    })
    .await?;
    let outputs = out.take();
    // Every task put its output (a failure fails the nursery), but a race's cancelled
    // losers; the winner did.
    let all = match stops {
        true => !outputs.is_empty(),
        false => outputs.len() == admitted,
    };
    assert!(
        all,
        "hatchery: a child task was dropped by the executor before it finished (is the \
         runtime shutting down?)"
    );
    Ok(Outputs::Completed(outputs))
}

impl<Fut, M> Admit<Fut> for Tasks<M, M::Value>
where
    Fut: Future + Send + 'static,
    M: Takes<Fut::Output>,
    M::Value: Send + 'static,
    M::Error: Send + 'static,
{
    fn is_cancelled(&self) -> bool {
        self.n.is_cancelled()
    }

    /// Spawns `fut` as a task.
    fn admit(&mut self, index: usize, fut: Fut, permit: Option<Permit>) {
        let sink = self.sink.clone();
        // Only a winner needs the nursery, to cancel it.
        let won = M::STOPS.then(|| (self.n.clone(), self.site));
        self.n.spawn_at(self.site, async move {
            let out = M::split(fut.await);
            if let (Err(_), Some(permit)) = (&out, &permit) {
                permit.stop();
            }
            let value = out?;
            let stops = M::stops(&value);
            if sink.put(index, value, stops) {
                if let Some((n, site)) = won {
                    n.race_won(site);
                }
            }
            drop(permit);
            Ok(())
        });
    }
}

/// Runs `work` as tasks of a nursery, whose body admits them ([`feed`]); the mode `M`
/// takes their outputs.
pub(crate) fn run<M, S, F, Fut>(work: Work<S, F>) -> impl Future<Output = Ended<M::Value, M::Error>>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future + Send + 'static,
    M: Takes<Fut::Output>,
    M::Value: Send + 'static,
    M::Error: Send + 'static,
{
    tasks::<M, _, _, _>(work.site, M::STOPS, move |t| feed(work, t))
}

/// Runs every future of `futs` at once, as tasks: read one at a time as they are
/// spawned, from the first poll.
pub(crate) fn all<M, I>(
    futs: I,
    site: &'static Location<'static>,
) -> impl Future<Output = Ended<M::Value, M::Error>>
where
    I: Iterator,
    I::Item: Future + Send + 'static,
    M: Takes<<I::Item as Future>::Output>,
    M::Value: Send + 'static,
    M::Error: Send + 'static,
{
    run::<M, _, _, _>(Work::every(futs, site))
}
