//! A randomized model test of memory streams: seeded random mixes of sends and receives
//! (plain or in a cancel scope), polls (also unprompted ones), cancellations, drops,
//! sends and receives kept without being polled for a while (paused, as a `select!`
//! loser kept with `&mut`), `try_send`/`try_recv`, `Stream` handles left idle, clones and
//! closes, on capacities 0, 1 and 2, all polled by hand with wakers that record whether
//! they were woken.
//!
//! After every step it checks the open counts, that the buffer stays within capacity and
//! that no item sent is dropped while a receiver is open. At each "settle" it polls what
//! was woken (and is not paused) until nothing is, then polls every waiter that is not
//! paused once more: one that completes was ready but never woken (a lost wake-up). The
//! one exception: a paused wait that was woken keeps that wake-up, so a send (receive)
//! that completes there is not counted lost if there was room (were items) for no more
//! than the paused sends (receives) that were woken. `EndOfStream` must be final: no item
//! may come after it. At the end every item sent must have been received.
//!
//! Seeded by the harness of the seeded tests (`hatchery_tests::seeded`): 600 seeds of
//! [`STEPS`] steps per backend; `HATCHERY_TEST_CASES` runs more for a longer hunt, and a
//! failure prints the line that replays its seed.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures_lite::future;
use futures_lite::Stream;
use hatchery::sync::{RecvError, SendError, TryRecvError, TrySendError};
use hatchery::{memory_stream, CancelHandle, CancelScope};
use hatchery::{ReceiveStream, SendStream};
use hatchery_tests::seeded::{self, Rng};
use hatchery_tests::Flag;

#[derive(Default)]
struct Track {
    sent: Mutex<HashSet<u32>>,
    received: Mutex<HashSet<u32>>,
    broken: AtomicBool,
    lost: Mutex<Vec<u32>>,
}

struct It(u32, Arc<Track>);
impl Drop for It {
    fn drop(&mut self) {
        let t = &self.1;
        if t.sent.lock().unwrap().contains(&self.0)
            && !t.received.lock().unwrap().contains(&self.0)
            && !t.broken.load(Ordering::SeqCst)
        {
            t.lost.lock().unwrap().push(self.0);
        }
    }
}

enum Out {
    Send(u32, Option<Result<(), SendError<It>>>),
    Recv(Option<Result<It, RecvError>>),
}

/// How a polled future completed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Done {
    /// A send that sent its item.
    Sent,
    /// A receive that got an item.
    Received,
    /// Anything else (an error, a cancellation).
    Other,
}

struct F {
    fut: Pin<Box<dyn Future<Output = Out>>>,
    handle: Option<CancelHandle>,
    flag: Arc<Flag>,
    waker: Waker,
    desc: String,
    sender: Option<usize>,
    receiver: Option<usize>,
    /// Kept without being polled: a settle does not poll it, even if it is woken.
    paused: bool,
    /// Whether it had been woken (and not polled since) when its scope was cancelled:
    /// a wake-up it holds then may be one for an item (see `check_wake_ups`).
    woken_at_cancel: bool,
}

/// A future of the model, run in a cancel scope of its own if `scoped`: then a
/// cancelled scope yields `cancelled`.
fn mk(
    fut: impl Future<Output = Out> + 'static,
    scoped: bool,
    cancelled: Out,
    desc: String,
) -> (
    Pin<Box<dyn Future<Output = Out>>>,
    Option<CancelHandle>,
    String,
) {
    if !scoped {
        return (Box::pin(fut), None, desc);
    }
    let s = CancelScope::new();
    let h = s.handle();
    (
        Box::pin(async move { s.run(fut).await.unwrap_or(cancelled) }),
        Some(h),
        desc + " scoped",
    )
}

struct St {
    cap: usize,
    track: Arc<Track>,
    senders: Vec<Arc<SendStream<It>>>,
    receivers: Vec<Arc<ReceiveStream<It>>>,
    streams: Vec<(ReceiveStream<It>, Arc<Flag>, bool)>,
    futs: Vec<F>,
    next_item: u32,
    eos_seen: bool,
    trace: Vec<String>,
}

impl St {
    /// Adds a new future, marked woken so that the next settle polls it.
    fn push_fut(
        &mut self,
        fut: Pin<Box<dyn Future<Output = Out>>>,
        handle: Option<CancelHandle>,
        desc: String,
        sender: Option<usize>,
        receiver: Option<usize>,
    ) {
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        self.trace.push(format!("new {desc}"));
        self.futs.push(F {
            fut,
            handle,
            waker: Waker::from(flag.clone()),
            flag,
            desc,
            sender,
            receiver,
            paused: false,
            woken_at_cancel: false,
        });
    }

    fn open_senders(&self) -> usize {
        self.senders.iter().filter(|s| !s.is_closed()).count()
    }
    fn open_receivers(&self) -> usize {
        self.receivers.iter().filter(|s| !s.is_closed()).count()
            + self.streams.iter().filter(|s| !s.0.is_closed()).count()
    }
    fn got(&mut self, it: It) {
        assert!(
            !self.eos_seen,
            "item {} received after EndOfStream: {:?}",
            it.0, self.trace
        );
        self.track.received.lock().unwrap().insert(it.0);
        drop(it);
    }
    fn eos(&mut self) {
        assert_eq!(
            self.open_senders(),
            0,
            "EOS with open senders {:?}",
            self.trace
        );
        self.eos_seen = true;
    }
    /// Polls future i (which is no longer paused); returns how it completed, if it did
    /// (and then removes it).
    fn poll_fut(&mut self, i: usize) -> Option<Done> {
        let f = &mut self.futs[i];
        f.paused = false;
        f.flag.0.store(false, Ordering::SeqCst);
        let mut cx = Context::from_waker(&f.waker);
        let r = f.fut.as_mut().poll(&mut cx);
        let Poll::Ready(out) = r else { return None };
        let f = self.futs.remove(i);
        self.trace.push(format!("  done {}", f.desc));
        let cancelled = f.handle.as_ref().is_some_and(|h| h.cancel_called());
        let done = match &out {
            Out::Send(_, Some(Ok(()))) => Done::Sent,
            Out::Recv(Some(Ok(_))) => Done::Received,
            _ => Done::Other,
        };
        match out {
            Out::Send(id, Some(Ok(()))) => {
                self.track.sent.lock().unwrap().insert(id);
            }
            Out::Send(_, Some(Err(SendError::Closed(_)))) => {
                assert!(
                    self.senders[f.sender.unwrap()].is_closed(),
                    "{:?}",
                    self.trace
                )
            }
            Out::Send(_, Some(Err(SendError::Broken(_)))) => {
                assert_eq!(self.open_receivers(), 0, "{:?}", self.trace)
            }
            Out::Send(_, None) => {}
            Out::Recv(Some(Ok(it))) => self.got(it),
            Out::Recv(Some(Err(RecvError::Closed))) => {
                assert!(
                    self.receivers[f.receiver.unwrap()].is_closed(),
                    "{:?}",
                    self.trace
                )
            }
            Out::Recv(Some(Err(RecvError::EndOfStream))) => self.eos(),
            Out::Recv(None) => {
                assert!(cancelled, "None without cancel {:?}", self.trace);
            }
        }
        Some(done)
    }
    fn poll_stream(&mut self, j: usize) -> bool {
        let (s, flag, _) = &mut self.streams[j];
        flag.0.store(false, Ordering::SeqCst);
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        match Pin::new(s).poll_next(&mut cx) {
            Poll::Pending => false,
            Poll::Ready(Some(it)) => {
                self.trace.push(format!("  stream {j} got {}", it.0));
                self.streams[j].2 = false;
                self.got(it);
                true
            }
            Poll::Ready(None) => {
                self.trace.push(format!("  stream {j} ended"));
                self.streams[j].2 = false;
                if !self.streams[j].0.is_closed() {
                    self.eos();
                }
                true
            }
        }
    }
    /// Polls woken futures (not paused ones) until none is woken; then checks that no
    /// pending future could complete (a lost wake-up).
    fn settle(&mut self) {
        for round in 0.. {
            assert!(round < 10_000, "livelock {:?}", self.trace);
            self.poll_woken();
            if !self.check_wake_ups() {
                break;
            }
        }
    }

    fn poll_woken(&mut self) {
        for round in 0.. {
            assert!(round < 10_000, "livelock {:?}", self.trace);
            let mut any = false;
            let mut i = 0;
            while i < self.futs.len() {
                if !self.futs[i].paused && self.futs[i].flag.0.load(Ordering::SeqCst) {
                    any = true;
                    if self.poll_fut(i).is_some() {
                        continue;
                    }
                }
                i += 1;
            }
            for j in 0..self.streams.len() {
                if self.streams[j].2 && self.streams[j].1 .0.load(Ordering::SeqCst) {
                    any = true;
                    self.poll_stream(j);
                }
            }
            if !any {
                break;
            }
        }
    }

    /// Polls every pending future that is not paused once more (a spurious poll). One
    /// that completes was ready but never woken: a lost wake-up, unless it sent (received)
    /// an item while paused sends (receives) held the wake-ups for all the room (items)
    /// there was. A paused wait woken and not polled since keeps one wake-up, and each
    /// place (item) wakes one more waiter, so the room must not exceed the paused sends
    /// that were woken. (Counted leniently: a flag may have been set for other reasons. A
    /// receive whose scope is cancelled takes nothing, so it holds a wake-up only if it
    /// had one before the cancellation.) Returns whether the check changed the state (a
    /// future completed), which calls for another round.
    fn check_wake_ups(&mut self) -> bool {
        let woken = |f: &F| f.paused && f.flag.0.load(Ordering::SeqCst);
        let held_sends = self
            .futs
            .iter()
            .filter(|f| f.sender.is_some() && woken(f))
            .count();
        let held_recvs = self
            .futs
            .iter()
            .filter(|f| {
                f.receiver.is_some()
                    && woken(f)
                    && (f.woken_at_cancel || !f.handle.as_ref().is_some_and(|h| h.cancel_called()))
            })
            .count();
        // Sends first (a receive that completes makes room for one).
        let sent = self.spurious_polls(true);
        if let Some((sent, k)) = sent {
            // The room there was: the sends that completed, and what is left.
            let mut room = sent;
            loop {
                let id = self.next_item;
                self.next_item += 1;
                if self.senders[k]
                    .try_send(It(id, self.track.clone()))
                    .is_err()
                {
                    break;
                }
                self.track.sent.lock().unwrap().insert(id);
                self.trace.push(format!("  probe try_send#{id} s{k}"));
                room += 1;
            }
            assert!(
                room <= held_sends,
                "lost wake-up: {sent} send(s) ready but not woken, room for {room}, \
                 {held_sends} paused send(s) woken: {:?}",
                self.trace
            );
            return true;
        }
        let got = self.spurious_polls(false);
        for j in 0..self.streams.len() {
            let woken = self.streams[j].1 .0.load(Ordering::SeqCst);
            if self.streams[j].2 && !woken && self.poll_stream(j) {
                panic!(
                    "lost wake-up: stream {j} was ready but not woken: {:?}",
                    self.trace
                );
            }
        }
        if let Some((got, k)) = got {
            // The items there were: those taken, and what is left.
            let mut items = got;
            while let Ok(it) = self.receivers[k].try_recv() {
                self.trace
                    .push(format!("  probe try_recv r{k} -> {}", it.0));
                self.got(it);
                items += 1;
            }
            assert!(
                items <= held_recvs,
                "lost wake-up: {got} receive(s) ready but not woken, {items} item(s), \
                 {held_recvs} paused receive(s) woken: {:?}",
                self.trace
            );
            return true;
        }
        false
    }

    /// Polls each pending send (or receive) that is not paused or woken once; any completion
    /// other than an item sent (received) is a lost wake-up. Returns how many sent
    /// (received) and the handle of one of them.
    fn spurious_polls(&mut self, sends: bool) -> Option<(usize, usize)> {
        let mut done = None;
        let mut i = 0;
        while i < self.futs.len() {
            let f = &self.futs[i];
            let k = if sends { f.sender } else { f.receiver };
            // (One woken by what completed before it in this loop is not checked: the
            // next round polls it.)
            let (Some(k), false, false) = (k, f.paused, f.flag.0.load(Ordering::SeqCst)) else {
                i += 1;
                continue;
            };
            let desc = f.desc.clone();
            match self.poll_fut(i) {
                None => i += 1,
                Some(Done::Sent | Done::Received) => {
                    self.trace.push(format!("  (not woken: {desc})"));
                    let n = done.map_or(0, |(n, _)| n);
                    done = Some((n + 1, k));
                }
                Some(Done::Other) => {
                    panic!(
                        "lost wake-up: {desc} was ready but not woken: {:?}",
                        self.trace
                    )
                }
            }
        }
        done
    }
}

/// Steps per seed.
const STEPS: usize = 150;

async fn run(seed: u64) {
    let mut rng = Rng::seeded(seed);
    let cap = [0, 0, 1, 2][rng.below(4)];
    let track = Arc::new(Track::default());
    let (tx, rx) = memory_stream::<It>(cap);
    let mut st = St {
        cap,
        track: track.clone(),
        senders: vec![Arc::new(tx)],
        receivers: vec![Arc::new(rx)],
        streams: Vec::new(),
        futs: Vec::new(),
        next_item: 0,
        eos_seen: false,
        trace: vec![format!("cap {cap}")],
    };
    future::poll_fn(|_cx| {
        for _step in 0..STEPS {
            let op = rng.below(15);
            match op {
                0 | 1 => {
                    let k = rng.below(st.senders.len());
                    let s = st.senders[k].clone();
                    let id = st.next_item;
                    st.next_item += 1;
                    let it = It(id, track.clone());
                    let scoped = rng.below(2) == 0;
                    let (fut, handle, desc) = mk(
                        async move { Out::Send(id, Some(s.send(it).await)) },
                        scoped,
                        Out::Send(id, None),
                        format!("send#{id} on s{k}"),
                    );
                    st.push_fut(fut, handle, desc, Some(k), None);
                }
                2 | 3 => {
                    let k = rng.below(st.receivers.len());
                    let r = st.receivers[k].clone();
                    let scoped = rng.below(2) == 0;
                    let n = st.futs.len();
                    let (fut, handle, desc) = mk(
                        async move { Out::Recv(Some(r.recv().await)) },
                        scoped,
                        Out::Recv(None),
                        format!("recv@{} on r{k}", st.trace.len() + n),
                    );
                    st.push_fut(fut, handle, desc, None, Some(k));
                }
                4 if !st.futs.is_empty() => {
                    let i = rng.below(st.futs.len());
                    // (A paused future is awaited again.)
                    st.trace.push(format!("poll {}", st.futs[i].desc));
                    st.poll_fut(i);
                }
                5 if !st.futs.is_empty() => {
                    let i = rng.below(st.futs.len());
                    let f = &mut st.futs[i];
                    if let Some(h) = &f.handle {
                        st.trace.push(format!("cancel {}", f.desc));
                        if !h.cancel_called() {
                            f.woken_at_cancel = f.flag.0.load(Ordering::SeqCst);
                        }
                        h.cancel();
                    }
                }
                6 if !st.futs.is_empty() => {
                    let i = rng.below(st.futs.len());
                    st.trace.push(format!("drop {}", st.futs[i].desc));
                    st.futs.remove(i);
                }
                7 => {
                    let k = rng.below(st.senders.len());
                    let id = st.next_item;
                    st.next_item += 1;
                    let r = st.senders[k].try_send(It(id, track.clone()));
                    st.trace.push(format!(
                        "try_send#{id} s{k} -> {:?}",
                        r.as_ref().map_err(|e| format!("{e}"))
                    ));
                    match r {
                        Ok(()) => {
                            track.sent.lock().unwrap().insert(id);
                        }
                        Err(TrySendError::Closed(_)) => assert!(st.senders[k].is_closed()),
                        Err(TrySendError::Broken(_)) => assert_eq!(st.open_receivers(), 0),
                        Err(TrySendError::Full(_)) => {}
                    }
                }
                8 => {
                    let k = rng.below(st.receivers.len());
                    let r = st.receivers[k].try_recv();
                    st.trace
                        .push(format!("try_recv r{k} -> {:?}", r.as_ref().map(|i| i.0)));
                    match r {
                        Ok(it) => st.got(it),
                        Err(TryRecvError::Closed) => assert!(st.receivers[k].is_closed()),
                        Err(TryRecvError::EndOfStream) => st.eos(),
                        Err(TryRecvError::Empty) => {}
                    }
                }
                9 => {
                    if st.streams.len() < 2 && rng.below(3) == 0 {
                        let k = rng.below(st.receivers.len());
                        let s = (*st.receivers[k]).clone();
                        st.trace
                            .push(format!("stream {} from r{k}", st.streams.len()));
                        st.streams
                            .push((s, Arc::new(Flag(AtomicBool::new(false))), false));
                    } else if !st.streams.is_empty() {
                        let j = rng.below(st.streams.len());
                        if rng.below(3) == 0 {
                            st.trace.push(format!("stream {j} idle"));
                            st.streams[j].2 = false;
                        } else {
                            st.trace.push(format!("stream {j} next"));
                            st.streams[j].2 = true;
                            st.poll_stream(j);
                        }
                    }
                }
                10 => {
                    if rng.below(2) == 0 {
                        let k = rng.below(st.senders.len());
                        let c = Arc::new((*st.senders[k]).clone());
                        st.trace
                            .push(format!("clone s{k} -> s{}", st.senders.len()));
                        st.senders.push(c);
                    } else {
                        let k = rng.below(st.receivers.len());
                        let c = Arc::new((*st.receivers[k]).clone());
                        st.trace
                            .push(format!("clone r{k} -> r{}", st.receivers.len()));
                        st.receivers.push(c);
                    }
                }
                11 if rng.below(3) == 0 => {
                    if rng.below(2) == 0 {
                        let k = rng.below(st.senders.len());
                        st.trace.push(format!("close s{k}"));
                        st.senders[k].close();
                    } else {
                        let k = rng.below(st.receivers.len());
                        if !st.receivers[k].is_closed() && st.open_receivers() == 1 {
                            track.broken.store(true, Ordering::SeqCst);
                        }
                        st.trace.push(format!("close r{k}"));
                        st.receivers[k].close();
                    }
                }
                12 | 13 => {
                    st.trace.push("settle".into());
                    st.settle();
                }
                14 if !st.futs.is_empty() => {
                    // Kept without being polled until an unprompted poll (op 4) or a drop.
                    let i = rng.below(st.futs.len());
                    st.trace.push(format!("pause {}", st.futs[i].desc));
                    st.futs[i].paused = true;
                }
                _ => {}
            }
            // invariants
            let s = st.senders[0].statistics();
            assert_eq!(s.open_send_streams, st.open_senders(), "{:?}", st.trace);
            assert_eq!(
                s.open_receive_streams,
                st.open_receivers(),
                "{:?}",
                st.trace
            );
            assert!(s.current_buffer_used <= st.cap, "{:?}", st.trace);
            assert!(
                track.lost.lock().unwrap().is_empty(),
                "lost {:?} {:?}",
                track.lost,
                st.trace
            );
        }
        // Drain: drop all futures, close senders, drain.
        st.settle();
        st.futs.clear();
        for s in &st.senders {
            s.close();
        }
        if let Some(r) = st.receivers.iter().find(|r| !r.is_closed()).cloned() {
            loop {
                match r.try_recv() {
                    Ok(it) => st.got(it),
                    Err(TryRecvError::EndOfStream) => break,
                    Err(e) => panic!("drain: {e:?} {:?}", st.trace),
                }
            }
        } else if let Some(j) = st.streams.iter().position(|s| !s.0.is_closed()) {
            while let Ok(it) = st.streams[j].0.try_recv() {
                st.got(it);
            }
        }
        let lost: Vec<u32> = {
            let sent = track.sent.lock().unwrap();
            let rec = track.received.lock().unwrap();
            if track.broken.load(Ordering::SeqCst) {
                Vec::new()
            } else {
                sent.difference(&rec).copied().collect()
            }
        };
        assert!(lost.is_empty(), "never received {lost:?}: {:?}", st.trace);
        Poll::Ready(())
    })
    .await;
}

#[hatchery::test]
async fn stream_model() {
    seeded::check_async(600, run).await;
}
