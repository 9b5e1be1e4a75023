//! Spawning into a nursery or a subgroup: the one body of their `spawn`, `try_spawn` and
//! `spawn_named`.
//!
//! Every function here is `#[track_caller]`, as are the public methods that call them:
//! the location a task is labelled with ([`TaskHandle::spawned_at`]) is the user's call
//! of the public method, however many of these it goes through.

use std::future::Future;
use std::panic::Location;
use std::sync::Arc;

use crate::error::SpawnError;
use crate::task::Named;
use crate::task::{self, Group, Label, TaskHandle};

/// A group a task can be spawned into: one that counts a child in first, or refuses it.
pub(super) trait Admit: Group {
    /// The public type whose `try_spawn` a refused `spawn`'s panic message points to.
    const TYPE: &'static str;

    /// Counts a new child in, or fails if the nursery has finished.
    fn admit(&self) -> Result<(), SpawnError>;
}

/// Spawns `fut` into `group`, called `name` if given and labelled with `site`, and returns
/// its handle; fails if the nursery has finished, dropping `fut` unpolled. `site` is the
/// caller's `Location::caller()`, or, for the combinators, which spawn on their caller's
/// behalf from inside the futures they return (where `#[track_caller]` does not reach),
/// the place they recorded.
#[inline]
pub(super) fn try_spawn_at<G, T, F>(
    group: &Arc<G>,
    fut: F,
    name: Option<Box<Named>>,
    site: &'static Location<'static>,
) -> Result<TaskHandle<T>, SpawnError>
where
    G: Admit,
    F: Future<Output = Result<T, G::Error>> + Send + 'static,
    T: Send + 'static,
{
    group.admit()?;
    Ok(task::spawn(group, fut, Label::new(site, name)))
}

/// [`try_spawn_at`] the caller's place, panicking if the nursery has finished.
#[track_caller]
#[inline]
pub(super) fn spawn<G, T, F>(group: &Arc<G>, fut: F, name: Option<Box<Named>>) -> TaskHandle<T>
where
    G: Admit,
    F: Future<Output = Result<T, G::Error>> + Send + 'static,
    T: Send + 'static,
{
    match try_spawn_at(group, fut, name, Location::caller()) {
        Ok(h) => h,
        Err(e) => refused(e, G::TYPE),
    }
}

/// The panic of a `spawn` into a nursery that has finished (a task is never silently
/// dropped).
#[cold]
#[track_caller]
pub(super) fn refused(e: SpawnError, kind: &str) -> ! {
    panic!("hatchery: {e}; use `{kind}::try_spawn` to handle this")
}
