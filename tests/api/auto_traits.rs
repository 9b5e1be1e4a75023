//! Compile-time checks of the auto traits (`Send`, `Sync`, `Unpin`) of hatchery's public
//! types, and of `Debug` on every public type (the lint-level promise of the style guide).
//!
//! These assertions are checked by the compiler; the `#[test]`s only make them show up
//! in the test list.

use std::fmt::Debug;
use std::future::Future;

use hatchery::futures::{Checkpoint, Join, Sleep};
use hatchery::{
    CancelHandle, CancelScope, Deadline, Elapsed, JoinError, Nursery, NurseryError, SpawnError,
    StartError, TaskHandle, TaskStatus,
};

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn unpin<T: Unpin>() {}
fn send_sync_static<T: Send + Sync + 'static>() {}
fn error<T: std::error::Error + Send + Sync + 'static>() {}
fn debug<T: Debug>() {}
fn send_val<T: Send>(_: &T) {}

/// `Nursery<E>` is `Send + Sync` for every `E: Send`, with no other bound on `E`.
fn nursery_is_send_sync<E: Send + 'static>() {
    send::<Nursery<E>>();
    sync::<Nursery<E>>();
    unpin::<Nursery<E>>();
    send::<StartError<E>>();
    debug::<Nursery<E>>();
}

/// `TaskHandle<T>` is `Send + Sync` for every `T: Send`.
fn task_handle_is_send_sync<T: Send + 'static>() {
    send::<TaskHandle<T>>();
    sync::<TaskHandle<T>>();
    unpin::<TaskHandle<T>>();
    send::<Join<T>>();
    debug::<TaskHandle<T>>();
    debug::<Join<T>>();
}

/// `TaskStatus<V>` moves into a spawned task, so it must be `Send`.
fn task_status_is_send<V: Send + 'static>() {
    send::<TaskStatus<V>>();
    debug::<TaskStatus<V>>();
}

/// Error types work with `?` into boxed errors and `anyhow` (`Error + Send + Sync +
/// 'static`) whenever the user's error type does.
fn errors_are_send_sync<E: std::error::Error + Send + Sync + 'static>() {
    error::<NurseryError<E>>();
    error::<StartError<E>>();
}

#[test]
fn cancel_handle_and_scope() {
    send_sync_static::<CancelHandle>();
    unpin::<CancelHandle>();
    send_sync_static::<CancelScope>();
    unpin::<CancelScope>();
    debug::<CancelHandle>();
    debug::<CancelScope>();
    fn clone<T: Clone>() {}
    clone::<CancelHandle>();
}

#[test]
fn nursery_and_task_handle() {
    nursery_is_send_sync::<std::sync::mpsc::Sender<()>>(); // Send, not Sync
    nursery_is_send_sync::<std::io::Error>();
    task_handle_is_send_sync::<std::cell::Cell<u8>>(); // Send, not Sync
    task_handle_is_send_sync::<String>();
    task_status_is_send::<std::cell::Cell<u8>>();
}

#[test]
fn error_types() {
    error::<JoinError>();
    error::<SpawnError>();
    error::<Elapsed>();
    errors_are_send_sync::<std::io::Error>();
    send_sync_static::<Deadline>();
    fn copy<T: Copy>() {}
    copy::<Deadline>();
    copy::<Elapsed>();
    copy::<JoinError>();
    debug::<NurseryError<std::io::Error>>();
}

#[test]
fn futures_are_send_when_their_contents_are() {
    send::<Sleep>();
    sync::<Sleep>();
    unpin::<Sleep>();
    send::<Checkpoint>();
    unpin::<Checkpoint>();
    debug::<Sleep>();
    debug::<Checkpoint>();
    send::<hatchery::futures::RunBlocking<u8>>();
    sync::<hatchery::futures::RunBlocking<u8>>();

    // Built, never polled: no runtime is needed to check the types.
    let scope = hatchery::move_on_after(
        std::time::Duration::from_secs(1),
        hatchery::sleep(std::time::Duration::from_secs(1)),
    );
    send_val(&scope);
    let fail = hatchery::fail_after(std::time::Duration::from_secs(1), async { 1 });
    send_val(&fail);
    let shielded = hatchery::shield(async { 1 });
    send_val(&shielded);
    let run = CancelScope::new().run(hatchery::checkpoint());
    send_val(&run);
    // A nursery future is `Send` when its body is: nurseries can be opened in children.
    let n = hatchery::nursery(|n: Nursery<std::io::Error>| async move {
        let h = n.spawn(async { Ok(1) });
        let v = h.join().await.map_err(std::io::Error::from)?;
        let started = n
            .start(|status| async move {
                status.started(2);
                Ok(())
            })
            .await
            .map_err(|_| std::io::Error::other("start"))?;
        Ok(v + started)
    });
    send_val(&n);
    assert_send_future(n);
}

fn assert_send_future<F: Future + Send + 'static>(_: F) {}

/// A `Task` lives inside every executor task, so its size is part of the memory per
/// child (rule E2): two words, whatever the task (hatchery's own, a boxed future,
/// one wrapped by a test run).
#[test]
fn e2_a_task_is_two_words() {
    assert_eq!(
        std::mem::size_of::<hatchery::rt::Task>(),
        2 * std::mem::size_of::<usize>()
    );
}

/// The thread types: the portal's handles go to any thread (`Send + Sync`), and the
/// futures are `Send`, so that a task can await them.
#[test]
fn thread_types() {
    use hatchery::from_thread::{
        BlockingPortal, FromThreadError, PortalError, PortalRuntime, PortalTask, ServePortal,
    };
    use hatchery::futures::RunSync;
    send_sync_static::<BlockingPortal>();
    send_sync_static::<PortalTask<u8>>();
    send_sync_static::<PortalRuntime>();
    send::<ServePortal>();
    send::<RunSync<u8>>();
    sync::<RunSync<u8>>();
    unpin::<RunSync<u8>>();
    error::<FromThreadError>();
    error::<PortalError>();
    debug::<BlockingPortal>();
    debug::<PortalTask<u8>>();
    debug::<PortalRuntime>();
    debug::<ServePortal>();
    debug::<RunSync<u8>>();
    // Built, never polled.
    assert_send_future(hatchery::to_thread::run_sync(|| 1));
    assert_send_future(hatchery::from_thread::blocking_portal(
        |portal| async move { portal.is_stopped() },
    ));
}

/// A signal stream moves into a watcher task; its `recv` future is `Send`.
#[test]
fn signal_types() {
    use hatchery::signal::{Signal, Signals};
    send_sync_static::<Signals>();
    send_sync_static::<Signal>();
    unpin::<Signals>();
    debug::<Signals>();
    debug::<Signal>();
    // Built, never polled (`ctrl_c` handles nothing before its first poll).
    assert_send_future(hatchery::signal::ctrl_c());
    fn is_send<F: Future + Send>(_: &F) {}
    let _ = |signals: &'static mut Signals| is_send(&signals.recv());
}

/// The memory streams and their futures are `Send + Sync` for every `T: Send` (a stream
/// moves items between tasks; its handles are shared by reference), and `Unpin`; the
/// handle used as a `Sink` keeps all three.
fn streams_are_send_sync<T: Send + 'static>() {
    use hatchery::futures::{Recv, Send as SendFut, SendClosed};
    use hatchery::{ReceiveStream, SendStream};
    send::<SendStream<T>>();
    sync::<SendStream<T>>();
    unpin::<SendStream<T>>();
    send::<ReceiveStream<T>>();
    sync::<ReceiveStream<T>>();
    unpin::<ReceiveStream<T>>();
    send::<SendFut<'static, T>>();
    send::<Recv<'static, T>>();
    sync::<Recv<'static, T>>();
    send::<SendClosed<'static, T>>();
    sync::<SendClosed<'static, T>>();
    debug::<SendStream<T>>();
    debug::<ReceiveStream<T>>();
    debug::<hatchery::sync::SendError<T>>();
    debug::<hatchery::sync::TrySendError<T>>();
    fn sink<S: futures_util::Sink<T>, T>() {}
    sink::<SendStream<T>, T>();
}

#[test]
fn streams() {
    streams_are_send_sync::<std::cell::Cell<u8>>(); // Send, not Sync
    streams_are_send_sync::<String>();
    use hatchery::sync::{RecvError, SendError, StreamStatistics, TryRecvError, TrySendError};
    error::<SendError<u8>>();
    error::<TrySendError<u8>>();
    error::<RecvError>();
    error::<TryRecvError>();
    send_sync_static::<StreamStatistics>();
}

/// The sync primitives are shared between tasks: `Send + Sync`; their guards and
/// permits move between tasks: `Send`.
#[test]
fn sync_primitives() {
    use hatchery::futures::{
        ConditionWait, EventWait, LimiterAcquire, LimiterAcquireFor, LockAcquire, LockAcquireOwned,
        SemaphoreAcquire, SemaphoreAcquireOwned,
    };
    use hatchery::sync::{
        CapacityLimiter, CapacityToken, Condition, Event, LimiterError, LimiterStatistics, Lock,
        LockGuard, OwnedLockGuard, OwnedSemaphorePermit, Semaphore, SemaphorePermit,
    };
    send_sync_static::<Lock<std::cell::Cell<u8>>>(); // the data needs `Send` only
    send_sync_static::<Semaphore>();
    send_sync_static::<CapacityLimiter>();
    send_sync_static::<Event>();
    send_sync_static::<Condition>();
    send::<LockGuard<'static, u8>>();
    sync::<LockGuard<'static, u8>>();
    send::<OwnedLockGuard<u8>>();
    send::<SemaphorePermit<'static>>();
    send::<OwnedSemaphorePermit>();
    send::<CapacityToken>();
    send::<LockAcquire<'static, u8>>();
    send::<LockAcquireOwned<u8>>();
    send::<SemaphoreAcquire<'static>>();
    send::<SemaphoreAcquireOwned>();
    send::<LimiterAcquire<'static>>();
    send::<LimiterAcquireFor<'static>>();
    send::<EventWait<'static>>();
    send::<ConditionWait<'static, 'static, u8>>();
    error::<LimiterError>();
    send_sync_static::<LimiterStatistics>();
    debug::<Lock<u8>>();
    debug::<Semaphore>();
    debug::<CapacityLimiter>();
    debug::<Event>();
    debug::<Condition>();
}

/// The combinators' named types; `produce`'s future is `Send` when its parts are, so a
/// task can await it.
#[test]
fn combinators() {
    use hatchery::futures::{AsCompleted, Items};
    use hatchery::{Service, ServiceClosed};
    send::<AsCompleted<u8>>();
    sync::<AsCompleted<u8>>();
    send::<Items<u8, std::io::Error>>();
    sync::<Items<u8, std::io::Error>>();
    unpin::<Items<u8, std::io::Error>>();
    debug::<Items<u8, std::io::Error>>();
    // Built, never polled.
    assert_send_future(hatchery::produce(
        0,
        |tx| async move { tx.send(1u8).await.map_err(std::io::Error::other) },
        |items| async move { Ok::<_, std::io::Error>(items) },
    ));
    send_sync_static::<Service<std::io::Error>>();
    error::<ServiceClosed>();
    debug::<AsCompleted<u8>>();
    debug::<Service<std::io::Error>>();
}

/// The adapters' runtimes are shared by every task: `Send + Sync + Clone + Debug`.
#[test]
fn runtimes() {
    fn clone<T: Clone>() {}
    send_sync_static::<hatchery_tokio::TokioRuntime>();
    send_sync_static::<hatchery_smol::SmolRuntime>();
    clone::<hatchery_tokio::TokioRuntime>();
    clone::<hatchery_smol::SmolRuntime>();
    debug::<hatchery_tokio::TokioRuntime>();
    debug::<hatchery_smol::SmolRuntime>();
}

/// Small value types can be keys: `Hash` where they are `Eq` (the errors, `Deadline`,
/// the statistics), and `Deadline` is ordered (the earlier of two is their `min`).
#[test]
fn value_types_are_hash() {
    use std::collections::HashSet;
    fn hash<T: std::hash::Hash + Eq>() {}
    fn ord<T: Ord>() {}
    hash::<JoinError>();
    hash::<hatchery::CancelReason>();
    send_sync_static::<hatchery::CancelReason>();
    debug::<hatchery::CancelReason>();
    hash::<SpawnError>();
    hash::<Elapsed>();
    hash::<Deadline>();
    hash::<NurseryError<std::io::ErrorKind>>();
    hash::<StartError<&str>>();
    hash::<hatchery::ServiceClosed>();
    hash::<hatchery::ServiceReport<u8, &str>>();
    hash::<hatchery::sync::SendError<u8>>();
    hash::<hatchery::sync::TrySendError<u8>>();
    hash::<hatchery::sync::RecvError>();
    hash::<hatchery::sync::TryRecvError>();
    hash::<hatchery::sync::LimiterError>();
    hash::<hatchery::sync::StreamStatistics>();
    hash::<hatchery::sync::LimiterStatistics>();
    ord::<Deadline>();
    let kinds: HashSet<_> = [
        NurseryError::Failed(vec!["a"]),
        NurseryError::Failed(vec!["a"]),
        NurseryError::Cancelled,
    ]
    .into_iter()
    .collect();
    assert_eq!(kinds.len(), 2);
}

/// The networking types can move into tasks and be shared (`Arc<TcpListener>`,
/// `Arc<UdpSocket>`); their futures are `Send`, so a task can await them.
#[test]
fn net_types() {
    use hatchery::net::{
        ConnectError, ReadHalf, ReuniteError, SystemResolver, TcpConnector, TcpListener, TcpStream,
        UdpSocket, WriteHalf,
    };
    send_sync_static::<TcpStream>();
    send_sync_static::<TcpListener>();
    send_sync_static::<UdpSocket>();
    send_sync_static::<TcpConnector>();
    send_sync_static::<SystemResolver>();
    send_sync_static::<ReadHalf<TcpStream>>();
    send_sync_static::<WriteHalf<TcpStream>>();
    unpin::<TcpStream>();
    unpin::<ReadHalf<TcpStream>>();
    unpin::<WriteHalf<TcpStream>>();
    error::<ConnectError>();
    error::<ReuniteError<TcpStream>>();
    debug::<TcpStream>();
    debug::<TcpListener>();
    debug::<UdpSocket>();
    debug::<TcpConnector>();
    debug::<ReadHalf<TcpStream>>();
    debug::<WriteHalf<TcpStream>>();
    debug::<hatchery::rt::Interest>();
    debug::<hatchery_smol::AsyncIoReactor>();
    #[cfg(unix)]
    {
        use hatchery::net::{UnixListener, UnixSocketAddr, UnixStream};
        send_sync_static::<UnixStream>();
        send_sync_static::<UnixListener>();
        debug::<UnixStream>();
        debug::<UnixListener>();
        debug::<UnixSocketAddr>();
        debug::<ReadHalf<UnixStream>>();
    }
    // The futures of every operation are `Send`: tasks await them.
    async fn uses(
        stream: &mut TcpStream,
        listener: &TcpListener,
        udp: &UdpSocket,
        connector: &TcpConnector,
    ) -> std::io::Result<()> {
        let mut buf = [0; 4];
        stream.read(&mut buf).await?;
        stream.write_all(&buf).await?;
        stream.shutdown().await?;
        listener.accept().await?;
        udp.send_to(&buf, "127.0.0.1:1".parse().unwrap()).await?;
        udp.recv_from(&mut buf).await?;
        connector.connect(("localhost", 1)).await?;
        TcpStream::connect("127.0.0.1:1").await?;
        TcpListener::bind("127.0.0.1:0").await?;
        let (r, w) = TcpStream::connect("127.0.0.1:1").await?.into_split();
        drop((r, w));
        Ok(())
    }
    fn is_send<F: Future + Send>(_: &F) {}
    let _ = |stream: &'static mut TcpStream,
             listener: &'static TcpListener,
             udp: &'static UdpSocket,
             connector: &'static TcpConnector| {
        let fut = uses(stream, listener, udp, connector);
        is_send(&fut);
    };
    let _ = |listener: TcpListener| {
        let serve = hatchery::net::serve(listener, |_s: TcpStream| async {
            Ok::<_, std::io::Error>(())
        });
        is_send(&serve);
    };
}

/// `io::Async` moves into tasks and is shared (`Arc<Async<File>>`); its futures are
/// `Send`.
#[cfg(unix)]
#[test]
fn io_types() {
    use hatchery::io::Async;
    use std::fs::File;
    send_sync_static::<Async<File>>();
    send_sync_static::<Async<std::os::fd::OwnedFd>>();
    unpin::<Async<File>>();
    debug::<Async<File>>();
    fn is_send<F: Future + Send>(_: &F) {}
    let _ = |a: &'static mut Async<File>| {
        is_send(&a.readable());
        is_send(&a.writable());
        is_send(&a.read_with(|_| Ok(())));
        is_send(&a.write_with(|_| Ok(())));
    };
    let _ = |a: &'static mut Async<File>| is_send(&a.read_with_mut(|_| Ok(())));
}

/// The process types move into tasks; their futures are `Send`.
#[cfg(unix)]
#[test]
fn process_types() {
    use hatchery::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitError};
    send_sync_static::<Command>();
    send_sync_static::<Child>();
    send_sync_static::<ChildStdin>();
    send_sync_static::<ChildStdout>();
    send_sync_static::<ChildStderr>();
    error::<ExitError>();
    debug::<Command>();
    debug::<Child>();
    fn is_send<F: Future + Send>(_: &F) {}
    let _ = |c: &'static mut Command, child: &'static mut Child| {
        is_send(&c.run());
        is_send(&c.status());
        is_send(&c.output());
        is_send(&c.run_with_input(b""));
        is_send(&child.wait());
    };
}

/// The file types can move into tasks and be shared; their futures are `Send`, so a
/// task can await them.
#[test]
fn fs_types() {
    use hatchery::fs::{DirEntry, File, OpenOptions, ReadDir};
    send_sync_static::<File>();
    send_sync_static::<OpenOptions>();
    send_sync_static::<ReadDir>();
    send_sync_static::<DirEntry>();
    unpin::<File>();
    unpin::<ReadDir>();
    debug::<File>();
    debug::<OpenOptions>();
    debug::<ReadDir>();
    debug::<DirEntry>();
    async fn uses(file: &mut File, dir: &mut ReadDir) -> std::io::Result<()> {
        let mut buf = [0; 4];
        file.read(&mut buf).await?;
        file.write_all(&buf).await?;
        file.seek(std::io::SeekFrom::Start(0)).await?;
        file.sync_all().await?;
        if let Some(entry) = dir.next_entry().await? {
            entry.metadata().await?;
        }
        File::open("x").await?;
        hatchery::fs::write("x", "y").await?;
        hatchery::fs::read_dir(".").await?;
        Ok(())
    }
    fn is_send<F: Future + Send>(_: &F) {}
    let _ = |file: &'static mut File, dir: &'static mut ReadDir| {
        let fut = uses(file, dir);
        is_send(&fut);
    };
}
