//! The simulated disks: one per host, behind `hatchery::fs` (the seam's `FileSystem`),
//! with latency, writes that a crash loses unless synced, writes torn at sector
//! boundaries, and read errors and full disks drawn from the seed.
//!
//! # Invariants
//!
//! 1. Everything here is in the executor's state, under its one lock, and every draw (a
//!    latency, a fault, which unsynced sectors a crash keeps) comes from the disks' own
//!    generator, seeded from the run's seed, in the order the operations run: the seed
//!    decides the disks too. Maps are `BTreeMap`s.
//! 2. A file is an inode: its bytes as the host sees them (`data`), its bytes as they
//!    are on the platter (`durable`), and the writes and truncations between the two
//!    (`pending`), in order, numbered. A sync makes `data` as it was when the sync was
//!    called durable, when the sync completes; a crash rebuilds `data` from `durable` and
//!    the pending operations, each sector of a write (and each truncation) kept or lost
//!    by a draw: a write may be torn at a sector boundary, a later one kept while an
//!    earlier one is lost, and nothing synced is ever lost. Directory entries (creating,
//!    renaming, removing) are durable at once.
//! 3. An operation's calls run at its start, in a task of the host, and its result
//!    reaches the waiting task after the operation's latency (the calls' costs, summed
//!    in `cost`), as an I/O that the host's kernel has done and whose completion comes
//!    later; a sync takes effect then, at its completion (`syncs`). A crash during that
//!    time drops the task: the sync never completes, and the crash's losses apply.
//! 4. An open file belongs to its run and its host's life: once the host has crashed, its
//!    calls fail (the host's tasks, which held it, are gone anyway); in another run (a
//!    `File` kept from one run to the next), they fail too, and the disk of its own run
//!    is left as it was.
//! 5. Every call is an event of the trace (`Event::Disk`, with the bytes it wrote or read,
//!    or the path it named), and so is every fault (`Event::DiskFault`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hatchery::rt::{FileSystem, FsFile, FsKind, FsOpen, FsWork, Task};

use crate::executor::{Shared, State};
use crate::trace::Event;

/// A simulated disk's properties: how long its operations take, how it fails, and
/// what a crash of its host keeps of what was not synced.
///
/// Latencies and faults are drawn from the run's seed, per operation. A crash of the
/// host keeps each sector not synced with the chance `crash_keeps`: a write cut at a
/// sector boundary (torn), a later write kept while an earlier one is lost. What was
/// synced (`File::sync_all`, `sync_data`) is never lost. Creating, renaming and
/// removing files and directories is durable at once.
///
/// # Examples
///
/// ```
/// use hatchery_sim::{Disk, Sim};
///
/// // One read in a thousand fails, one write in a thousand finds the disk full.
/// let flaky = Disk { read_error: 0.001, full: 0.001, ..Disk::default() };
/// let sim = Sim::new(0).disk(flaky);
/// # drop(sim);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Disk {
    /// What each call takes at least (an open, a read, a write...). 20 µs by default.
    pub latency: Duration,
    /// The most a call's latency adds to `latency`, drawn for each. 80 µs by default.
    pub jitter: Duration,
    /// What a sync (`sync_all`, `sync_data`) takes more. 1 ms by default.
    pub sync_latency: Duration,
    /// The chance that a read fails with an I/O error, from 0 to 1. None by default.
    pub read_error: f64,
    /// The chance that a write (or a truncation that grows a file) fails with
    /// `StorageFull`, from 0 to 1. None by default.
    pub full: f64,
    /// How many bytes the disk holds (its files' lengths); a write past it fails with
    /// `StorageFull`. No limit (`u64::MAX`) by default.
    pub capacity: u64,
    /// The chance that a sector written and not synced survives a crash of the host,
    /// from 0 (every write not synced is lost) to 1 (none is). 0.5 by default.
    pub crash_keeps: f64,
    /// The unit a crash keeps or loses, in bytes. 512 by default.
    pub sector: usize,
}

impl Default for Disk {
    fn default() -> Disk {
        Disk {
            latency: Duration::from_micros(20),
            jitter: Duration::from_micros(80),
            sync_latency: Duration::from_millis(1),
            read_error: 0.0,
            full: 0.0,
            capacity: u64::MAX,
            crash_keeps: 0.5,
            sector: 512,
        }
    }
}

/// A pending change of a file since its last sync (invariant 2).
enum Change {
    Write { at: u64, bytes: Vec<u8> },
    SetLen(u64),
}

/// A file (invariant 2).
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// The changes not durable yet, each with its number.
    pending: Vec<(u64, Change)>,
    /// The number of the next change.
    next_change: u64,
    /// Changes up to this number are durable.
    synced: u64,
    /// Names it has (0: removed, still open).
    links: usize,
}

impl Inode {
    fn new() -> Inode {
        Inode {
            data: Vec::new(),
            durable: Vec::new(),
            pending: Vec::new(),
            next_change: 1,
            synced: 0,
            links: 1,
        }
    }

    fn change(&mut self, change: Change) {
        self.pending.push((self.next_change, change));
        self.next_change += 1;
    }
}

/// A sync called and not completed yet: what it makes durable (invariant 3).
struct Sync {
    host: usize,
    life: u64,
    inode: u64,
    /// The changes it covers: up to this number.
    upto: u64,
}

impl Change {
    /// Applies the change to `bytes`.
    fn apply(&self, bytes: &mut Vec<u8>) {
        match self {
            Change::Write { at, bytes: new } => {
                let at = usize::try_from(*at).expect("a position in memory");
                if bytes.len() < at + new.len() {
                    bytes.resize(at + new.len(), 0);
                }
                bytes[at..at + new.len()].copy_from_slice(new);
            }
            Change::SetLen(len) => {
                bytes.resize(usize::try_from(*len).expect("a length in memory"), 0);
            }
        }
    }
}

enum Node {
    Dir,
    File(u64),
}

/// One host's disk.
struct DiskState {
    config: Disk,
    nodes: BTreeMap<PathBuf, Node>,
    inodes: BTreeMap<u64, Inode>,
}

impl DiskState {
    fn new(config: Disk) -> DiskState {
        let mut nodes = BTreeMap::new();
        nodes.insert(PathBuf::from("/"), Node::Dir);
        DiskState {
            config,
            nodes,
            inodes: BTreeMap::new(),
        }
    }

    fn used(&self) -> u64 {
        self.inodes.values().map(|i| i.data.len() as u64).sum()
    }

    /// The parent of `path` must be a directory.
    fn parent_is_dir(&self, path: &Path) -> io::Result<()> {
        let parent = path.parent().unwrap_or(Path::new("/"));
        match self.nodes.get(parent) {
            Some(Node::Dir) => Ok(()),
            Some(Node::File(_)) => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory (simulated)",
            )),
            None => Err(not_found()),
        }
    }
}

/// The disks of the run's hosts, in the executor's state (invariant 1).
pub(crate) struct Disks {
    rng: fastrand::Rng,
    default: Disk,
    hosts: BTreeMap<usize, DiskState>,
    next_inode: u64,
    next_op: u64,
    /// The cost of the calls of the operation being run (invariant 3).
    cost: Duration,
    /// The syncs of the operation being run, to take effect at its completion
    /// (invariant 3).
    syncs: Vec<Sync>,
}

impl Disks {
    pub(crate) fn new(seed: u64, default: Disk) -> Disks {
        Disks {
            // Another stream than the schedule's, the thread's and the network's.
            rng: fastrand::Rng::with_seed(seed ^ 0x3C6E_F372_FE94_F82B),
            default,
            hosts: BTreeMap::new(),
            next_inode: 0,
            next_op: 0,
            cost: Duration::ZERO,
            syncs: Vec::new(),
        }
    }

    pub(crate) fn set(&mut self, host: usize, config: Disk) {
        let default = self.default;
        self.hosts
            .entry(host)
            .or_insert_with(|| DiskState::new(default))
            .config = config;
    }

    fn disk(&mut self, host: usize) -> &mut DiskState {
        let default = self.default;
        self.hosts
            .entry(host)
            .or_insert_with(|| DiskState::new(default))
    }

    fn op(&mut self) -> u64 {
        self.next_op += 1;
        self.next_op
    }

    fn chance(&mut self, chance: f64) -> bool {
        chance > 0.0 && self.rng.f64() < chance
    }

    /// Charges a call of `host`'s disk: its latency, and a sync's if `sync`.
    fn charge(&mut self, host: usize, sync: bool) {
        let config = self.disk(host).config;
        let jitter = u64::try_from(config.jitter.as_nanos()).unwrap_or(u64::MAX);
        let mut cost = config.latency + Duration::from_nanos(self.rng.u64(0..=jitter));
        if sync {
            cost += config.sync_latency;
        }
        self.cost += cost;
    }
}

/// Applies a crash of `host` to its disk: every file rebuilt from what was durable and
/// the pending changes each sector of which a draw keeps (invariant 2). Files removed
/// and still open go.
pub(crate) fn crash(s: &mut State, host: usize) {
    let Some(disk) = s.disks.hosts.get_mut(&host) else {
        return;
    };
    let config = disk.config;
    let rng = &mut s.disks.rng;
    let mut lost = Vec::new();
    disk.inodes.retain(|_, inode| inode.links > 0);
    for (&ino, inode) in &mut disk.inodes {
        if inode.pending.is_empty() {
            continue;
        }
        let mut data = std::mem::take(&mut inode.durable);
        let (mut kept, mut dropped) = (0u64, 0u64);
        for (_, change) in inode.pending.drain(..) {
            match change {
                Change::SetLen(len) => {
                    if rng.f64() < config.crash_keeps {
                        data.resize(usize::try_from(len).unwrap_or(usize::MAX), 0);
                    }
                }
                Change::Write { at, bytes } => {
                    let sector = config.sector.max(1) as u64;
                    let mut offset = 0usize;
                    while offset < bytes.len() {
                        let pos = at + offset as u64;
                        let end = ((pos / sector + 1) * sector - at) as usize;
                        let end = end.min(bytes.len());
                        let piece = &bytes[offset..end];
                        if rng.f64() < config.crash_keeps {
                            let start = pos as usize;
                            if data.len() < start + piece.len() {
                                data.resize(start + piece.len(), 0);
                            }
                            data[start..start + piece.len()].copy_from_slice(piece);
                            kept += piece.len() as u64;
                        } else {
                            dropped += piece.len() as u64;
                        }
                        offset = end;
                    }
                }
            }
        }
        inode.durable.clone_from(&data);
        inode.data = data;
        inode.synced = inode.next_change - 1;
        if dropped > 0 {
            lost.push((ino, kept, dropped));
        }
    }
    for (ino, kept, dropped) in lost {
        let id = s.disks.op();
        let note = format!("inode {ino}: {dropped} bytes not synced lost, {kept} kept");
        s.recorder.push_with(Event::DiskFault(id), note.as_bytes());
    }
}

fn not_found() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        "no such file or directory (simulated)",
    )
}

/// `path`, absolute, without `.` and `..` (the simulated disk has no working directory
/// but the root, and no symlinks).
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
        }
    }
    out
}

/// The simulator's side of the seam: [`FileSystem`], on the disk of the host of the
/// code that runs the operation.
pub(crate) struct SimFileSystem {
    shared: Arc<Shared>,
}

impl SimFileSystem {
    pub(crate) fn new(shared: Arc<Shared>) -> SimFileSystem {
        SimFileSystem { shared }
    }

    /// Runs `f` on the disk of the current host, as call `what` on `path` (an event),
    /// charged its latency (invariant 3).
    fn call<T>(
        &self,
        path: &Path,
        f: impl FnOnce(&mut DiskState, &Path, &mut Disks) -> io::Result<T>,
    ) -> io::Result<T> {
        if !self
            .shared
            .on_thread("the simulated disk was used from another thread")
        {
            return Err(off_thread());
        }
        let mut s = self.shared.lock();
        let s = &mut *s;
        let host = s.current_host;
        s.disks.charge(host, false);
        let id = s.disks.op();
        let path = normal(path);
        s.recorder
            .push_with(Event::Disk(id), path.as_os_str().as_encoded_bytes());
        let mut disk = s
            .disks
            .hosts
            .remove(&host)
            .unwrap_or_else(|| DiskState::new(s.disks.default));
        let out = f(&mut disk, &path, &mut s.disks);
        s.disks.hosts.insert(host, disk);
        out
    }
}

fn off_thread() -> io::Error {
    io::Error::other("hatchery-sim: the simulated disk was used from another thread")
}

impl FileSystem for SimFileSystem {
    fn spawn(&self, work: FsWork) {
        let shared = self.shared.clone();
        crate::executor::spawn(
            &self.shared,
            Task::from_future(async move {
                let (done, cost, syncs) = {
                    shared.lock().disks.cost = Duration::ZERO;
                    let done = work.run();
                    let mut s = shared.lock();
                    let cost = std::mem::take(&mut s.disks.cost);
                    (done, cost, std::mem::take(&mut s.disks.syncs))
                };
                let due = shared.lock().now() + cost;
                crate::executor::sleep_until(&shared, due).await;
                complete(&mut shared.lock(), syncs);
                drop(done); // the result, to the waiting task (invariant 3)
            }),
        );
    }

    fn open(&self, path: &Path, options: &FsOpen) -> io::Result<Box<dyn FsFile>> {
        let writes = options.write || options.append;
        if !options.read && !writes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "open a file to read, write or append",
            ));
        }
        if (options.create || options.create_new) && !writes || options.truncate && !options.write {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "creating or truncating a file needs write access",
            ));
        }
        let (host, life) = {
            let s = self.shared.lock();
            (s.current_host, s.net.life(s.current_host))
        };
        let inode = self.call(path, |disk, path, disks| {
            let inode = match disk.nodes.get(path) {
                Some(Node::Dir) => {
                    return Err(io::Error::new(
                        io::ErrorKind::IsADirectory,
                        "is a directory (simulated)",
                    ))
                }
                Some(Node::File(_)) if options.create_new => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "file exists (simulated)",
                    ))
                }
                Some(&Node::File(inode)) => inode,
                None if options.create || options.create_new => {
                    disk.parent_is_dir(path)?;
                    disks.next_inode += 1;
                    let inode = disks.next_inode;
                    disk.inodes.insert(inode, Inode::new());
                    disk.nodes.insert(path.to_owned(), Node::File(inode));
                    inode
                }
                None => {
                    disk.parent_is_dir(path)?;
                    return Err(not_found());
                }
            };
            if options.truncate {
                let file = disk.inodes.get_mut(&inode).expect("an inode");
                if !file.data.is_empty() {
                    file.data.clear();
                    file.change(Change::SetLen(0));
                }
            }
            Ok(inode)
        })?;
        Ok(Box::new(SimFile {
            shared: self.shared.clone(),
            host,
            life,
            inode,
            pos: Mutex::new(0),
            read: options.read,
            write: options.write || options.append,
            append: options.append,
        }))
    }

    fn kind(&self, path: &Path) -> io::Result<FsKind> {
        self.call(path, |disk, path, _| match disk.nodes.get(path) {
            Some(Node::Dir) => Ok(FsKind::Dir),
            Some(Node::File(inode)) => Ok(FsKind::File {
                len: disk.inodes[inode].data.len() as u64,
            }),
            None => {
                disk.parent_is_dir(path)?;
                Err(not_found())
            }
        })
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<(OsString, FsKind)>> {
        self.call(path, |disk, path, _| {
            match disk.nodes.get(path) {
                Some(Node::Dir) => {}
                Some(Node::File(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        "not a directory (simulated)",
                    ))
                }
                None => return Err(not_found()),
            }
            Ok(disk
                .nodes
                .iter()
                .filter(|(p, _)| p.parent() == Some(path))
                .map(|(p, node)| {
                    let kind = match node {
                        Node::Dir => FsKind::Dir,
                        Node::File(inode) => FsKind::File {
                            len: disk.inodes[inode].data.len() as u64,
                        },
                    };
                    (p.file_name().expect("a name").to_owned(), kind)
                })
                .collect())
        })
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.call(path, |disk, path, _| {
            if disk.nodes.contains_key(path) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "file exists (simulated)",
                ));
            }
            disk.parent_is_dir(path)?;
            disk.nodes.insert(path.to_owned(), Node::Dir);
            Ok(())
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.call(path, |disk, path, _| match disk.nodes.get(path) {
            Some(&Node::File(inode)) => {
                disk.nodes.remove(path);
                unlink(disk, inode);
                Ok(())
            }
            Some(Node::Dir) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory (simulated)",
            )),
            None => Err(not_found()),
        })
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.call(path, |disk, path, _| match disk.nodes.get(path) {
            Some(Node::Dir) if path == Path::new("/") => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the root (simulated)",
            )),
            Some(Node::Dir) => {
                if disk.nodes.keys().any(|p| p.parent() == Some(path)) {
                    return Err(io::Error::new(
                        io::ErrorKind::DirectoryNotEmpty,
                        "directory not empty (simulated)",
                    ));
                }
                disk.nodes.remove(path);
                Ok(())
            }
            Some(Node::File(_)) => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory (simulated)",
            )),
            None => Err(not_found()),
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let to = normal(to);
        self.call(from, |disk, from, _| {
            if from == to {
                return match disk.nodes.contains_key(from) {
                    true => Ok(()),
                    false => Err(not_found()),
                };
            }
            let node = match disk.nodes.get(from) {
                Some(&Node::File(inode)) => Node::File(inode),
                Some(Node::Dir) => Node::Dir,
                None => return Err(not_found()),
            };
            disk.parent_is_dir(&to)?;
            match (&node, disk.nodes.get(&to)) {
                (Node::File(_), Some(Node::Dir)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::IsADirectory,
                        "is a directory (simulated)",
                    ))
                }
                (Node::Dir, Some(Node::File(_))) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        "not a directory (simulated)",
                    ))
                }
                (Node::Dir, Some(Node::Dir))
                    if disk.nodes.keys().any(|p| p.parent() == Some(&to)) =>
                {
                    return Err(io::Error::new(
                        io::ErrorKind::DirectoryNotEmpty,
                        "directory not empty (simulated)",
                    ))
                }
                (Node::Dir, _) if to.starts_with(from) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a directory into itself (simulated)",
                    ))
                }
                _ => {}
            }
            if let Some(Node::File(replaced)) = disk.nodes.remove(&to) {
                unlink(disk, replaced);
            }
            // The node and, for a directory, everything under it.
            let moved: Vec<PathBuf> = disk
                .nodes
                .keys()
                .filter(|p| p.starts_with(from))
                .cloned()
                .collect();
            for old in moved {
                let node = disk.nodes.remove(&old).expect("listed");
                let new = to.join(old.strip_prefix(from).expect("under it"));
                disk.nodes.insert(new, node);
            }
            Ok(())
        })
    }
}

/// Completed syncs take effect: what each covers is durable (invariants 2 and 3).
fn complete(s: &mut State, syncs: Vec<Sync>) {
    for sync in syncs {
        if !s.net.alive(sync.host, sync.life) {
            continue; // its host crashed: the sync never completed
        }
        let Some(inode) = s
            .disks
            .hosts
            .get_mut(&sync.host)
            .and_then(|d| d.inodes.get_mut(&sync.inode))
        else {
            continue;
        };
        if sync.upto <= inode.synced {
            continue; // a later sync made it durable already
        }
        // What was durable, and the changes the sync covers: the bytes when it was called.
        let covered = inode
            .pending
            .iter()
            .take_while(|(n, _)| *n <= sync.upto)
            .count();
        for (_, change) in inode.pending.drain(..covered) {
            change.apply(&mut inode.durable);
        }
        inode.synced = sync.upto;
    }
}

/// One name less for `inode`; a file with none and not open goes (an open one goes at
/// its host's crash, or stays until then).
fn unlink(disk: &mut DiskState, inode: u64) {
    if let Some(file) = disk.inodes.get_mut(&inode) {
        file.links = file.links.saturating_sub(1);
    }
}

impl fmt::Debug for SimFileSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFileSystem").finish_non_exhaustive()
    }
}

/// An open file of a simulated disk.
struct SimFile {
    shared: Arc<Shared>,
    host: usize,
    life: u64,
    inode: u64,
    pos: Mutex<u64>,
    read: bool,
    write: bool,
    append: bool,
}

impl SimFile {
    /// Runs `f` on the file's inode, as a call of its host's disk (an event with the
    /// bytes `f` reports), charged its latency (invariant 3).
    fn call<T>(
        &self,
        sync: bool,
        f: impl FnOnce(&mut Inode, &mut u64, &mut Disks, Disk, u64) -> (io::Result<T>, Vec<u8>),
    ) -> io::Result<T> {
        if !self
            .shared
            .on_thread("the simulated disk was used from another thread")
        {
            return Err(off_thread());
        }
        let ours = crate::executor::current().is_some_and(|run| Arc::ptr_eq(&run, &self.shared));
        if !ours {
            // Invariant 4: its disk went with its run.
            return Err(io::Error::other(
                "hatchery-sim: a file of another simulated run: its disk went with that run \
                 (each run has disks of its own)",
            ));
        }
        let mut s = self.shared.lock();
        let s = &mut *s;
        if !s.net.alive(self.host, self.life) {
            return Err(io::Error::other(
                "hatchery-sim: the simulated host of this file has crashed",
            ));
        }
        s.disks.charge(self.host, sync);
        let id = s.disks.op();
        let mut pos = self.pos.lock().unwrap_or_else(|e| e.into_inner());
        let mut disk = s
            .disks
            .hosts
            .remove(&self.host)
            .unwrap_or_else(|| DiskState::new(s.disks.default));
        let used = disk.used();
        let config = disk.config;
        let out = match disk.inodes.get_mut(&self.inode) {
            Some(inode) => f(inode, &mut pos, &mut s.disks, config, used),
            None => (Err(not_found()), Vec::new()),
        };
        s.disks.hosts.insert(self.host, disk);
        let (out, bytes) = out;
        match &out {
            Ok(_) => s.recorder.push_with(Event::Disk(id), &bytes),
            Err(e) => s
                .recorder
                .push_with(Event::DiskFault(id), e.to_string().as_bytes()),
        }
        out
    }
}

fn bad_descriptor(what: &str) -> io::Error {
    io::Error::other(format!(
        "bad file descriptor: not open for {what} (simulated)"
    ))
}

fn full() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        "no space left on device (simulated)",
    )
}

impl FsFile for SimFile {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let readable = self.read;
        self.call(false, |inode, pos, disks, config, _| {
            if !readable {
                return (Err(bad_descriptor("reading")), Vec::new());
            }
            if disks.chance(config.read_error) {
                return (
                    Err(io::Error::other("input/output error (simulated)")),
                    Vec::new(),
                );
            }
            let start = usize::try_from(*pos)
                .unwrap_or(usize::MAX)
                .min(inode.data.len());
            let n = buf.len().min(inode.data.len() - start);
            buf[..n].copy_from_slice(&inode.data[start..start + n]);
            *pos += n as u64;
            (Ok(n), buf[..n].to_vec())
        })
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let (writable, append) = (self.write, self.append);
        self.call(false, |inode, pos, disks, config, used| {
            if !writable {
                return (Err(bad_descriptor("writing")), Vec::new());
            }
            if append {
                *pos = inode.data.len() as u64;
            }
            let end = *pos + buf.len() as u64;
            let grows = end.saturating_sub(inode.data.len() as u64);
            if disks.chance(config.full) || used.saturating_add(grows) > config.capacity {
                return (Err(full()), Vec::new());
            }
            let at = usize::try_from(*pos).expect("a position in memory");
            if inode.data.len() < at + buf.len() {
                inode.data.resize(at + buf.len(), 0);
            }
            inode.data[at..at + buf.len()].copy_from_slice(buf);
            inode.change(Change::Write {
                at: *pos,
                bytes: buf.to_vec(),
            });
            *pos = end;
            (Ok(buf.len()), buf.to_vec())
        })
    }

    fn seek(&self, to: SeekFrom) -> io::Result<u64> {
        self.call(false, |inode, pos, _, _, _| {
            let base = match to {
                SeekFrom::Start(n) => Some(n),
                SeekFrom::End(d) => (inode.data.len() as u64).checked_add_signed(d),
                SeekFrom::Current(d) => pos.checked_add_signed(d),
            };
            match base {
                Some(n) => {
                    *pos = n;
                    (Ok(n), Vec::new())
                }
                None => (
                    Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "seek to a negative position",
                    )),
                    Vec::new(),
                ),
            }
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let writable = self.write;
        self.call(false, |inode, _, disks, config, used| {
            if !writable {
                return (Err(bad_descriptor("writing")), Vec::new());
            }
            let grows = len.saturating_sub(inode.data.len() as u64);
            if grows > 0
                && (disks.chance(config.full) || used.saturating_add(grows) > config.capacity)
            {
                return (Err(full()), Vec::new());
            }
            inode
                .data
                .resize(usize::try_from(len).expect("a length in memory"), 0);
            inode.change(Change::SetLen(len));
            (Ok(()), Vec::new())
        })
    }

    fn sync_all(&self) -> io::Result<()> {
        let (host, life, ino) = (self.host, self.life, self.inode);
        self.call(true, |inode, _, disks, _, _| {
            // Durable when the sync completes (invariant 3).
            disks.syncs.push(Sync {
                host,
                life,
                inode: ino,
                upto: inode.next_change - 1,
            });
            (Ok(()), Vec::new())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync_all()
    }
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("host", &self.host)
            .field("inode", &self.inode)
            .finish_non_exhaustive()
    }
}
