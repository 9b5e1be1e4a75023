//! The task tree: a snapshot of a run's nurseries, tasks and scopes, read from the cancel
//! tree on demand ([`tree`]), and printed as an indented tree. Re-exported by
//! [`diagnostics`](crate::diagnostics).
//!
//! Nothing here runs unless someone asks: the snapshot reads what the cancel tree keeps
//! anyway (its child lists, flags, deadlines) and what each node carries (the label of a
//! task, a nursery or a named scope). Rule O2 of the book says which nodes it shows.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::context;
use crate::node::{Kind, Node};
use crate::reason::CancelReason;

/// A snapshot of the tree of nurseries, tasks and scopes of the current run, from its
/// root: what [`tree`] returns. Its `Display` is the tree, indented, one line per node;
/// [`root`](TaskTree::root) walks it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::diagnostics::{tree, NodeKind};
/// use hatchery::{nursery, sleep};
///
/// # hatchery_smol::run(async {
/// nursery(|n| async move {
///     n.spawn_named("sleeper", async { sleep(Duration::from_secs(3600)).await; Ok(()) });
///     sleep(Duration::from_millis(10)).await; // the sleeper suspends meanwhile
///     let t = tree();
///     let workers = t.find("workers").unwrap();
///     assert_eq!(workers.kind(), NodeKind::Nursery);
///     assert_eq!(workers.children()[0].name(), Some("sleeper"));
///     println!("{t}");
///     n.cancel();
///     Ok::<_, std::io::Error>(())
/// }).named("workers")
/// .await
/// .unwrap();
/// # });
/// ```
#[derive(Clone)]
pub struct TaskTree {
    root: TreeNode,
    taken_at: Instant,
}

/// One node of a [`TaskTree`]: a task, a nursery or a scope, as it was when the
/// snapshot was taken. Its `Display` is its own line of the tree (without the children).
///
/// # Examples
///
/// ```
/// use hatchery::diagnostics::{tree, NodeKind};
/// use hatchery::CancelScope;
///
/// # hatchery_smol::run(async {
/// CancelScope::new()
///     .with_name("outer")
///     .run(async {
///         let t = tree();
///         let outer = t.find("outer").unwrap();
///         assert_eq!(outer.kind(), NodeKind::Scope);
///         assert!(!outer.is_cancelled() && !outer.is_shielded());
///         assert_eq!(outer.location().unwrap().file(), file!());
///     })
///     .await;
/// # });
/// ```
#[derive(Clone)]
pub struct TreeNode {
    kind: NodeKind,
    name: Option<String>,
    location: Option<&'static Location<'static>>,
    since: Option<Instant>,
    deadline: Option<Instant>,
    cancelled: bool,
    reason: Option<CancelReason>,
    shielded: bool,
    holders: u32,
    children: Vec<TreeNode>,
    taken_at: Instant,
}

/// What a [`TreeNode`] is.
///
/// # Examples
///
/// ```
/// use hatchery::diagnostics::{tree, NodeKind};
///
/// # hatchery_smol::run(async {
/// assert_eq!(tree().root().kind(), NodeKind::Run);
/// assert_eq!(NodeKind::Nursery.to_string(), "nursery");
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NodeKind {
    /// The root of the run: the future given to the runtime's `run` or `block_on`.
    Run,
    /// A task spawned into a nursery (or started with `start`).
    Task,
    /// A nursery.
    Nursery,
    /// A cancel scope (a named one, or one with a handle, knows where it was made), or a
    /// nursery's subgroup.
    Scope,
    /// A polled child: a child of a polled nursery or combinator
    /// ([`Polled`](crate::Polled)), polled by its parent's task.
    Polled,
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeKind::Run => "run",
            NodeKind::Task => "task",
            NodeKind::Nursery => "nursery",
            NodeKind::Scope => "scope",
            NodeKind::Polled => "polled",
        })
    }
}

/// Takes a snapshot of the tree of nurseries, tasks and scopes of the current run: from
/// the root of the run the calling task belongs to (its `run` or `block_on`), whichever
/// task calls it. Call it from a task that waits for a signal or a key press to see where
/// a service hangs; print it with `{}`.
///
/// The tree holds every nursery, every task that has suspended at least once (a task in
/// its first poll shows once it suspends or opens a nursery), every named scope
/// ([`CancelScope::with_name`](crate::CancelScope::with_name)) and every other scope
/// that a cancellation must find from above (one holding a nursery, or polled from
/// elsewhere than its parent's task): rule O2. For each: its kind, name, where it was
/// made (`#[track_caller]`: the user's call, also through the combinators), its age
/// (named nodes only: only they read the clock when they begin), its deadline, whether
/// it is cancelled and why, whether it is shielded, and, when cancelled, how many
/// holders (nurseries, shields, `finally` cleanups, pending `start`s) it still waits for.
///
/// The snapshot is not atomic: each node is read on its own, while the tree runs on, so
/// a task that ends meanwhile may be missing, and one started meanwhile present. It
/// takes one node's lock at a time, briefly, and allocates for what it returns; tasks
/// and scopes pay nothing for it until it is called.
///
/// # Panics
///
/// When called outside a hatchery runtime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::diagnostics::tree;
/// use hatchery::{move_on_after, nursery, sleep, CancelScope};
///
/// # hatchery_smol::run(async {
/// nursery(|n| async move {
///     n.spawn_named("ticker", async {
///         move_on_after(Duration::from_millis(50), async {
///             CancelScope::new()
///                 .with_name("tick")
///                 .run(sleep(Duration::from_secs(3600)))
///                 .await
///         })
///         .await;
///         Ok(())
///     });
///     sleep(Duration::from_millis(5)).await;
///     let dump = tree().to_string();
///     assert!(dump.contains("task \"ticker\""));
///     assert!(dump.contains("scope \"tick\""));
///     Ok::<_, std::io::Error>(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
pub fn tree() -> TaskTree {
    let ctx = context::current();
    let taken_at = ctx.rt.now();
    let mut top = ctx.node;
    while let Some(parent) = top.parent() {
        top = parent;
    }
    TaskTree {
        root: snapshot(top, taken_at),
        taken_at,
    }
}

/// The subtree of `top`, walked without recursion (a tree thousands of nurseries deep
/// needs no stack in proportion). A finished node still listed (a scope whose future was
/// kept past it) is left out, its children shown in its place.
fn snapshot(top: Arc<Node>, taken_at: Instant) -> TreeNode {
    struct Frame {
        node: TreeNode,
        pending: std::vec::IntoIter<Arc<Node>>,
    }
    let mut stack = vec![Frame {
        node: read(&top, taken_at),
        pending: top.children().into_iter(),
    }];
    loop {
        let frame = stack.last_mut().expect("the root's frame");
        match frame.pending.next() {
            Some(child) if child.is_finished() => {
                // Its children take its place.
                let mut rest: Vec<Arc<Node>> = child.children();
                rest.extend(frame.pending.by_ref());
                frame.pending = rest.into_iter();
            }
            Some(child) => {
                let node = read(&child, taken_at);
                let pending = child.children().into_iter();
                stack.push(Frame { node, pending });
            }
            None => {
                let done = stack.pop().expect("a frame").node;
                match stack.last_mut() {
                    Some(parent) => parent.node.children.push(done),
                    None => return done,
                }
            }
        }
    }
}

/// One node's own line.
fn read(node: &Node, taken_at: Instant) -> TreeNode {
    let label = node.ext.label();
    let kind = match label.map(|l| l.kind) {
        Some(Kind::Task) => NodeKind::Task,
        Some(Kind::Nursery) => NodeKind::Nursery,
        Some(Kind::Scope) => NodeKind::Scope,
        Some(Kind::Polled) => NodeKind::Polled,
        None if node.is_task_root() && node.parent().is_none() => NodeKind::Run,
        None if node.is_task_root() => NodeKind::Task,
        None => NodeKind::Scope,
    };
    let cancelled = node.is_cancelled();
    TreeNode {
        kind,
        name: label.and_then(|l| l.name).map(str::to_owned),
        location: label.and_then(|l| l.site),
        since: label.and_then(|l| l.since),
        deadline: node.deadline(),
        cancelled,
        reason: cancelled.then(|| CancelReason::of(node)).flatten(),
        shielded: node.is_shield(),
        holders: node.hold_count(),
        children: Vec::new(),
        taken_at,
    }
}

impl TaskTree {
    /// The root of the run.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::diagnostics::{tree, NodeKind};
    ///
    /// # hatchery_smol::run(async {
    /// let t = tree();
    /// assert_eq!(t.root().kind(), NodeKind::Run);
    /// assert!(t.root().children().is_empty()); // nothing runs beside this future
    /// # });
    /// ```
    pub fn root(&self) -> &TreeNode {
        &self.root
    }

    /// When the snapshot was taken, on the runtime's clock ([`now`](crate::now)).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::diagnostics::tree;
    ///
    /// # hatchery_smol::run(async {
    /// let before = hatchery::now();
    /// assert!(tree().taken_at() >= before);
    /// # });
    /// ```
    pub fn taken_at(&self) -> Instant {
        self.taken_at
    }

    /// Every node, depth first, parents before their children (the order of the lines
    /// of the `Display`).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::diagnostics::{tree, NodeKind};
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|_| async {
    ///     let kinds: Vec<NodeKind> = tree().nodes().map(|n| n.kind()).collect();
    ///     assert_eq!(kinds, [NodeKind::Run, NodeKind::Nursery]);
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn nodes(&self) -> impl Iterator<Item = &TreeNode> + '_ {
        let mut stack = vec![&self.root];
        std::iter::from_fn(move || {
            let node = stack.pop()?;
            stack.extend(node.children.iter().rev());
            Some(node)
        })
    }

    /// The first node (in the order of [`nodes`](TaskTree::nodes)) called `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::diagnostics::tree;
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|_| async {
    ///     assert!(tree().find("io").is_some());
    ///     assert!(tree().find("elsewhere").is_none());
    ///     Ok::<_, std::io::Error>(())
    /// }).named("io")
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn find(&self, name: &str) -> Option<&TreeNode> {
        self.nodes().find(|n| n.name() == Some(name))
    }
}

impl TreeNode {
    /// What the node is.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::diagnostics::{tree, NodeKind};
    ///
    /// # hatchery_smol::run(async {
    /// assert_eq!(tree().root().kind(), NodeKind::Run);
    /// # });
    /// ```
    pub fn kind(&self) -> NodeKind {
        self.kind
    }

    /// Its name: given by [`spawn_named`](crate::Nursery::spawn_named),
    /// [`NurseryFuture::named`](crate::futures::NurseryFuture::named) or
    /// [`CancelScope::with_name`](crate::CancelScope::with_name).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::diagnostics::tree;
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|_| async {
    ///     assert_eq!(tree().root().children()[0].name(), Some("db"));
    ///     Ok::<_, std::io::Error>(())
    /// }).named("db")
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Where it was made: the call that spawned the task, opened the nursery or made the
    /// scope (`None` for the run, a polled child, a subgroup, and a scope with neither a
    /// name nor a handle).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::diagnostics::tree;
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// let line = line!() + 1;
    /// nursery(|_| async move {
    ///     let at = tree().root().children()[0].location().unwrap();
    ///     assert_eq!((at.file(), at.line()), (file!(), line));
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn location(&self) -> Option<&'static Location<'static>> {
        self.location
    }

    /// How long it had run when the snapshot was taken, on the runtime's clock: named
    /// nodes only (a task, nursery or scope without a name never reads the clock for it).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::diagnostics::tree;
    /// use hatchery::testing::virtual_time;
    /// use hatchery::{nursery, sleep};
    ///
    /// hatchery_smol::run(virtual_time(async {
    ///     nursery(|_| async {
    ///         sleep(Duration::from_secs(5)).await;
    ///         assert_eq!(tree().find("pool").unwrap().age(), Some(Duration::from_secs(5)));
    ///         Ok::<_, std::io::Error>(())
    ///     }).named("pool")
    ///     .await
    ///     .unwrap();
    /// }));
    /// ```
    pub fn age(&self) -> Option<Duration> {
        self.since
            .map(|since| self.taken_at.saturating_duration_since(since))
    }

    /// Its own deadline, if it has one (see
    /// [`current_effective_deadline`](crate::current_effective_deadline) for the one
    /// that counts from inside).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::diagnostics::tree;
    /// use hatchery::{now, CancelScope};
    ///
    /// # hatchery_smol::run(async {
    /// let at = now() + Duration::from_secs(60);
    /// CancelScope::new()
    ///     .with_name("bounded")
    ///     .with_deadline(at)
    ///     .run(async { assert_eq!(tree().find("bounded").unwrap().deadline(), Some(at)) })
    ///     .await;
    /// # });
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether it was cancelled: by itself, or by an enclosing scope whose cancellation
    /// reaches it.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::diagnostics::tree;
    /// use hatchery::{shield, CancelScope};
    ///
    /// # hatchery_smol::run(async {
    /// let scope = CancelScope::new().with_name("stopping");
    /// let handle = scope.handle();
    /// scope
    ///     .run(async {
    ///         handle.cancel();
    ///         // A shield still runs, and the snapshot sees its scope cancelled.
    ///         shield(async { assert!(tree().find("stopping").unwrap().is_cancelled()) }).await;
    ///     })
    ///     .await;
    /// # });
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }

    /// Why it was cancelled, as [`CancelHandle::cancel_reason`](crate::CancelHandle::cancel_reason)
    /// says it (`None` if it is not cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::diagnostics::tree;
    /// use hatchery::{shield, CancelScope};
    ///
    /// # hatchery_smol::run(async {
    /// let scope = CancelScope::new().with_name("stopping");
    /// let handle = scope.handle();
    /// scope
    ///     .run(async {
    ///         handle.cancel_with("shutdown");
    ///         shield(async {
    ///             let t = tree();
    ///             assert_eq!(t.find("stopping").unwrap().cancel_reason().unwrap().message(), Some("shutdown"));
    ///         })
    ///         .await;
    ///     })
    ///     .await;
    /// # });
    /// ```
    pub fn cancel_reason(&self) -> Option<&CancelReason> {
        self.reason.as_ref()
    }

    /// Whether it is a shield.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::diagnostics::tree;
    /// use hatchery::CancelScope;
    ///
    /// # hatchery_smol::run(async {
    /// CancelScope::new()
    ///     .with_name("cleanup")
    ///     .with_shield(true)
    ///     .run(async { assert!(tree().find("cleanup").unwrap().is_shielded()) })
    ///     .await;
    /// # });
    /// ```
    pub fn is_shielded(&self) -> bool {
        self.shielded
    }

    /// What it waits for, where that is known: how many holders inside it, in its own
    /// task, must finish before it can end (open nurseries draining their tasks, active
    /// shields, `finally` cleanups, pending `start`s). A cancelled node drops its body
    /// only once this is zero (rule K4); the `Display` shows it for cancelled nodes.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::diagnostics::tree;
    /// use hatchery::{shield, CancelScope};
    ///
    /// # hatchery_smol::run(async {
    /// let scope = CancelScope::new().with_name("stopping");
    /// let handle = scope.handle();
    /// scope
    ///     .run(async {
    ///         handle.cancel();
    ///         // Cancelled, and waiting for this shield.
    ///         shield(async { assert_eq!(tree().find("stopping").unwrap().holders(), 1) }).await;
    ///     })
    ///     .await;
    /// # });
    /// ```
    pub fn holders(&self) -> u32 {
        self.holders
    }

    /// Its children, in the order they joined the tree (roughly: the order they began).
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::diagnostics::tree;
    /// use hatchery::nursery;
    ///
    /// # hatchery_smol::run(async {
    /// nursery(|_| async {
    ///     nursery(|_| async {
    ///         let t = tree();
    ///         assert_eq!(t.find("a").unwrap().children()[0].name(), Some("b"));
    ///         Ok::<_, std::io::Error>(())
    ///     }).named("b")
    ///     .await
    ///     .map_err(std::io::Error::other)
    /// }).named("a")
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn children(&self) -> &[TreeNode] {
        &self.children
    }
}

/// A duration, short: whole units, or one decimal below ten of them.
struct Short(Duration);

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let (value, unit) = if d >= Duration::from_secs(1) {
            (d.as_secs_f64(), "s")
        } else if d >= Duration::from_millis(1) {
            (d.as_secs_f64() * 1e3, "ms")
        } else if d >= Duration::from_micros(1) {
            (d.as_secs_f64() * 1e6, "µs")
        } else {
            (d.as_secs_f64() * 1e9, "ns")
        };
        if value < 10.0 && value.fract() != 0.0 {
            write!(f, "{value:.1}{unit}")
        } else {
            write!(f, "{value:.0}{unit}")
        }
    }
}

impl fmt::Display for TreeNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        if let Some(at) = self.location {
            write!(f, " at {at}")?;
        }
        if let Some(age) = self.age() {
            write!(f, ", age {}", Short(age))?;
        }
        if let Some(deadline) = self.deadline {
            match deadline.checked_duration_since(self.taken_at) {
                Some(left) if !left.is_zero() => write!(f, ", deadline in {}", Short(left))?,
                _ => write!(
                    f,
                    ", deadline passed {} ago",
                    Short(self.taken_at.saturating_duration_since(deadline))
                )?,
            }
        }
        if self.shielded {
            f.write_str(", shielded")?;
        }
        if self.cancelled {
            match &self.reason {
                // The scope that was cancelled itself shows why.
                Some(CancelReason::Outer(_)) => f.write_str(", cancelled from above")?,
                // "cancelled at <place>: <message>" says it already.
                Some(reason @ CancelReason::Explicit { .. }) => write!(f, ", {reason}")?,
                Some(reason) => write!(f, ", cancelled: {reason}")?,
                None => f.write_str(", cancelled")?,
            }
            if self.holders > 0 {
                let s = if self.holders == 1 { "" } else { "s" };
                write!(f, ", waiting for {} holder{s}", self.holders)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for TaskTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.root)?;
        // Depth first, without recursion: each frame is a node's children left to
        // print, and the prefix of their lines.
        let mut stack: Vec<(std::slice::Iter<'_, TreeNode>, String)> =
            vec![(self.root.children.iter(), String::new())];
        while let Some((iter, prefix)) = stack.last_mut() {
            let Some(node) = iter.next() else {
                stack.pop();
                continue;
            };
            let last = iter.len() == 0;
            let (branch, more) = if last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            writeln!(f, "{prefix}{branch}{node}")?;
            let inner = format!("{prefix}{more}");
            stack.push((node.children.iter(), inner));
        }
        Ok(())
    }
}

impl fmt::Debug for TaskTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskTree")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for TreeNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreeNode")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("location", &self.location.map(|l| l.to_string()))
            .field("age", &self.age())
            .field("deadline", &self.deadline)
            .field("cancelled", &self.cancelled)
            .field("cancel_reason", &self.reason)
            .field("shielded", &self.shielded)
            .field("holders", &self.holders)
            .field("children", &self.children)
            .finish()
    }
}
