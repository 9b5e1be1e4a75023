//! The `tracing` feature: a known tree of nurseries, tasks and scopes, captured by a
//! test subscriber, is a tree of spans parented as the work is, on every backend (tasks
//! on tokio's worker threads included), with events for cancellations and their reasons,
//! a deadline's expiry, a task's error and a task's panic, each in the span it belongs to.
//!
//! Built only with the feature: `cargo test -p hatchery-tests --features tracing --test
//! tracing`.
//!
//! The subscriber is the process's global one (a thread's default would not follow tasks
//! onto the runtime's worker threads), set once by whichever test comes first. Tests run
//! in parallel, so each one reads only its own part of what was captured: the spans under
//! a root span of its own, and the events in them.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hatchery::{move_on_after, nursery, sleep, CancelScope, Nursery, NurseryError, TaskStatus};
use hatchery_tests::{catch_panic, TestError, HOUR};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Instrument, Metadata, Subscriber};

/// A span as the subscriber saw it made.
#[derive(Debug, Clone)]
struct SpanRec {
    name: &'static str,
    target: String,
    parent: Option<u64>,
    fields: Vec<(String, String)>,
}

/// An event, with the span it happened in.
#[derive(Debug, Clone)]
struct EventRec {
    level: tracing::Level,
    target: String,
    parent: Option<u64>,
    fields: Vec<(String, String)>,
}

#[derive(Default)]
struct Captured {
    spans: HashMap<u64, SpanRec>,
    events: Vec<EventRec>,
}

/// Records every span and event, with its parent: the explicit one, or the span the
/// thread is in (a stack per thread, as entered and exited).
struct Collector {
    next: AtomicU64,
    captured: Arc<Mutex<Captured>>,
}

thread_local! {
    static ENTERED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn current() -> Option<u64> {
    ENTERED.with(|s| s.borrow().last().copied())
}

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .push((field.name().to_string(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_string(), value.to_string()));
    }
}

impl Subscriber for Collector {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let parent = if span.is_root() {
            None
        } else if let Some(p) = span.parent() {
            Some(p.into_u64())
        } else {
            current()
        };
        let mut fields = Vec::new();
        span.record(&mut Fields(&mut fields));
        let rec = SpanRec {
            name: span.metadata().name(),
            target: span.metadata().target().to_string(),
            parent,
            fields,
        };
        self.captured.lock().unwrap().spans.insert(id, rec);
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut captured = self.captured.lock().unwrap();
        if let Some(rec) = captured.spans.get_mut(&span.into_u64()) {
            values.record(&mut Fields(&mut rec.fields));
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let parent = if event.is_root() {
            None
        } else if let Some(p) = event.parent() {
            Some(p.into_u64())
        } else {
            current()
        };
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        let rec = EventRec {
            level: *event.metadata().level(),
            target: event.metadata().target().to_string(),
            parent,
            fields,
        };
        self.captured.lock().unwrap().events.push(rec);
    }

    fn enter(&self, span: &Id) {
        ENTERED.with(|s| s.borrow_mut().push(span.into_u64()));
    }

    fn exit(&self, span: &Id) {
        ENTERED.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(at) = s.iter().rposition(|&id| id == span.into_u64()) {
                s.remove(at);
            }
        });
    }
}

/// What was captured, with the global subscriber set on first use.
fn captured() -> Arc<Mutex<Captured>> {
    static CAPTURED: OnceLock<Arc<Mutex<Captured>>> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Arc::new(Mutex::new(Captured::default()));
            let collector = Collector {
                next: AtomicU64::new(1),
                captured: captured.clone(),
            };
            tracing::subscriber::set_global_default(collector).expect("the only subscriber");
            captured
        })
        .clone()
}

/// Runs `work` in a root span of its own, and renders the tree of spans and events under
/// that root: one line per span (its name and fields) or event (`* `, its level and
/// fields), children indented under their parent, in the order they were made. The
/// places (`file:line:column`) of this file are shown as `L<line>`.
async fn traced<F: std::future::Future>(work: F) -> (F::Output, String) {
    let captured = captured();
    let root = tracing::info_span!(target: "test", "root");
    let root_id = root.id().expect("the collector is set").into_u64();
    let out = work.instrument(root).await;
    let captured = captured.lock().unwrap();
    let mut lines = Vec::new();
    render(&captured, root_id, 0, &mut lines);
    (out, lines.join("\n"))
}

fn render(c: &Captured, span: u64, depth: usize, out: &mut Vec<String>) {
    let pad = "  ".repeat(depth);
    for e in c.events.iter().filter(|e| e.parent == Some(span)) {
        assert_eq!(e.target, "hatchery");
        out.push(format!("{pad}* {} {}", e.level, fields(&e.fields)));
    }
    let mut children: Vec<_> = c
        .spans
        .iter()
        .filter(|(_, s)| s.parent == Some(span))
        .collect();
    children.sort_by_key(|(id, _)| **id);
    for (id, s) in children {
        assert_eq!(s.target, "hatchery");
        out.push(
            format!("{pad}{} {}", s.name, fields(&s.fields))
                .trim_end()
                .to_string(),
        );
        render(c, *id, depth + 1, out);
    }
}

fn fields(fields: &[(String, String)]) -> String {
    let here = format!("{}:", file!());
    fields
        .iter()
        .map(|(k, v)| {
            // `tests/tracing.rs:12:34` → `L12`.
            let mut v = v.clone();
            while let Some(at) = v.find(&here) {
                let rest = &v[at + here.len()..];
                let line: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let after = &rest[line.len()..];
                let col = after.strip_prefix(':').map_or(0, |c| {
                    1 + c.chars().take_while(char::is_ascii_digit).count()
                });
                let end = at + here.len() + line.len() + col;
                v.replace_range(at..end, &format!("L{line}"));
            }
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The known tree: a nursery with named tasks, one whose timeout expires (virtual time),
/// one whose scope is cancelled by hand with a message, one that fails, cancelling a
/// fourth, which was asleep; then a second nursery, whose task panics.
#[hatchery::test(virtual_time)]
async fn spans_follow_the_tree_and_events_say_why() {
    // The lines of the calls that made the spans, and of the `cancel_with`.
    let lines = Mutex::new(HashMap::new());
    let at = |what: &'static str, line: u32| lines.lock().unwrap().insert(what, line);
    at("nursery", line!() + 1);
    let work = nursery(|n: Nursery<io::Error>| async move {
        at("timeout", line!() + 1);
        n.spawn_named("timeout", async {
            let out = move_on_after(Duration::from_millis(10), sleep(HOUR)).await;
            assert_eq!(out, None);
            Ok(())
        });
        let scope = CancelScope::new();
        let handle = scope.handle();
        at("cancelled", line!() + 1);
        n.spawn_named("cancelled", async move {
            assert_eq!(scope.run(sleep(HOUR)).await, None);
            Ok(())
        });
        at("fails", line!() + 1);
        n.spawn_named("fails", async {
            sleep(Duration::from_millis(20)).await;
            Err::<(), _>(io::Error::other("disk on fire"))
        });
        at("sleeps", line!() + 1);
        let sleeper = n.spawn(async {
            sleep(HOUR).await;
            Ok(())
        });
        sleep(Duration::from_millis(5)).await;
        at("cancel_with", line!() + 1);
        handle.cancel_with("enough waiting");
        let _ = sleeper.join().await;
        Ok(())
    });
    let (out, tree) = traced(work).await;
    let Err(NurseryError::Failed(errors)) = out else {
        panic!("{out:?}")
    };
    assert_eq!(errors[0].to_string(), "disk on fire");
    let lines = lines.into_inner().unwrap();
    let [l_nursery, l_timeout, l_cancel, l_fails, l_sleeps, l_cancel_call] = [
        "nursery",
        "timeout",
        "cancelled",
        "fails",
        "sleeps",
        "cancel_with",
    ]
    .map(|k| lines[k]);
    let expected = [
        format!("nursery site=L{l_nursery}"),
        // The body, asleep in `sleeper.join()`, is cancelled by the failure.
        format!("  * DEBUG message=cancelled reason=task \"fails\" (spawned at L{l_fails}) failed"),
        format!("  task name=timeout site=L{l_timeout}"),
        format!(
            "    scope site=L{} shield=false timeout=10ms",
            l_timeout + 1
        ),
        "      * DEBUG message=deadline expired".to_string(),
        "      * DEBUG message=cancelled reason=deadline passed caught=true".to_string(),
        format!("  task name=cancelled site=L{l_cancel}"),
        format!("    scope site=L{} shield=false", l_cancel + 1),
        format!(
            "      * DEBUG message=cancelled reason=cancelled at L{l_cancel_call}: enough waiting \
             cancel_message=enough waiting caught=true"
        ),
        format!("  task name=fails site=L{l_fails}"),
        "    * DEBUG message=task failed error=disk on fire error_type=std::io::error::Error"
            .to_string(),
        format!("  task site=L{l_sleeps}"),
        format!(
            "    * DEBUG message=cancelled reason=an enclosing scope: task \"fails\" (spawned at \
             L{l_fails}) failed"
        ),
    ];
    assert_eq!(tree, expected.join("\n"), "\n{tree}");

    // A panic, in its task's span; a body's error, in its nursery's, whose `Display`
    // cannot be read (a nursery's error type has no bound): its type only.
    let lines = Mutex::new(HashMap::new());
    let at = |what: &'static str, line: u32| lines.lock().unwrap().insert(what, line);
    let work = async {
        at("first", line!() + 1);
        let panicked = catch_panic(nursery(|n: Nursery<TestError>| async move {
            at("panics", line!() + 1);
            n.spawn_named("panics", async {
                sleep(Duration::from_millis(1)).await;
                if true {
                    panic!("out of cheese");
                }
                Ok(())
            });
            sleep(HOUR).await;
            Ok(())
        }))
        .await;
        at("second", line!() + 1);
        let failed = nursery(|_| async { Err::<(), _>(TestError("opaque")) }).await;
        (panicked, failed)
    };
    let ((panicked, failed), tree) = traced(work).await;
    assert!(panicked.is_err(), "the panic is resumed");
    assert!(failed.is_err());
    let lines = lines.into_inner().unwrap();
    let [l_first, l_panics, l_second] = ["first", "panics", "second"].map(|k| lines[k]);
    let expected = [
        format!("nursery site=L{l_first}"),
        "  * DEBUG message=cancelled".to_string()
            + &format!(" reason=task \"panics\" (spawned at L{l_panics}) panicked"),
        format!("  task name=panics site=L{l_panics}"),
        "    * WARN message=task panicked panic=out of cheese".to_string(),
        format!("nursery site=L{l_second}"),
        "  * DEBUG message=body failed error_type=hatchery_tests::TestError".to_string(),
    ];
    assert_eq!(tree, expected.join("\n"), "\n{tree}");
}

/// A nursery in a scope in a task: each span is its parent's child; a task spawned by a
/// sibling (through a `Nursery` clone) is still its nursery's child, and so is a task
/// that `start` runs under its caller until it has started.
#[hatchery::test]
async fn nesting_and_siblings() {
    let (out, tree) = traced(nursery(|n: Nursery<io::Error>| async move {
        let port = n
            .start(|status: TaskStatus<u16>| async move {
                status.started(8080);
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(port, 8080);
        let n2 = n.clone();
        n.spawn_named("outer", async move {
            CancelScope::new()
                .run(nursery(|inner: Nursery<io::Error>| async move {
                    inner.spawn_named("inner", async { Ok(()) });
                    Ok(())
                }))
                .await;
            n2.spawn_named("nephew", async { Ok(()) });
            Ok(())
        });
        Ok(())
    }))
    .await;
    out.unwrap();
    let names: Vec<String> = tree
        .lines()
        .map(|l| {
            let depth = l.len() - l.trim_start().len();
            let mut words = l.split_whitespace();
            let kind = words.next().unwrap();
            let name = words.find_map(|w| w.strip_prefix("name=")).unwrap_or("");
            format!("{}{kind} {name}", " ".repeat(depth))
                .trim_end()
                .to_string()
        })
        .collect();
    assert_eq!(
        names,
        [
            "nursery",
            "  task",
            "  task outer",
            "    scope",
            "      nursery",
            "        task inner",
            "  task nephew",
        ],
        "\n{tree}"
    );
}

/// A polled nursery is a span, each of its children a span under it (made where it was
/// spawned, entered around its polls and its drop), with the events of their ends in
/// them; a scope named with `CancelScope::with_name` carries its name.
#[hatchery::test(virtual_time)]
async fn polled_nurseries_and_named_scopes() {
    let lines = Mutex::new(HashMap::new());
    let at = |what: &'static str, line: u32| lines.lock().unwrap().insert(what, line);
    let data = vec![1, 2, 3];
    let data = &data;
    at("polled", line!() + 1);
    let work = hatchery::Polled::nursery(|n| async move {
        at("sums", line!() + 1);
        let sum = n.spawn(async move {
            at("scope", line!() + 1);
            let scope = CancelScope::new().with_name("summing");
            scope.run(sleep(Duration::from_millis(1))).await;
            Ok(data.iter().sum::<i32>())
        });
        at("fails", line!() + 1);
        n.spawn(async {
            sleep(Duration::from_millis(5)).await;
            Err::<(), _>(io::Error::other("no more"))
        });
        at("sleeps", line!() + 1);
        n.spawn(async {
            sleep(HOUR).await;
            Ok(())
        });
        assert_eq!(sum.join().await.unwrap(), 6);
        sleep(HOUR).await;
        Ok(())
    });
    let (out, tree) = traced(work).await;
    let Err(NurseryError::Failed(errors)) = out else {
        panic!("{out:?}")
    };
    assert_eq!(errors[0].to_string(), "no more");
    let lines = lines.into_inner().unwrap();
    let [l_polled, l_sums, l_scope, l_fails, l_sleeps] =
        ["polled", "sums", "scope", "fails", "sleeps"].map(|k| lines[k]);
    let expected = [
        format!("polled_nursery site=L{l_polled}"),
        // The body, asleep, is cancelled by the failure.
        format!("  * DEBUG message=cancelled reason=a task spawned at L{l_fails} failed"),
        format!("  child site=L{l_sums}"),
        format!("    scope name=summing site=L{} shield=false", l_scope + 1),
        format!("  child site=L{l_fails}"),
        "    * DEBUG message=child failed error_type=std::io::error::Error".to_string(),
        format!("  child site=L{l_sleeps}"),
        format!(
            "    * DEBUG message=cancelled reason=an enclosing scope: a task spawned at \
             L{l_fails} failed"
        ),
    ];
    assert_eq!(tree, expected.join("\n"), "\n{tree}");
}
