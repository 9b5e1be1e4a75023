//! The simulator's disks (`hatchery-sim`): `hatchery::fs` on a simulated disk per host,
//! with latency, writes lost in a crash unless synced, writes torn at sector
//! boundaries, read errors and full disks drawn from the seed (rule Z11).

use std::io::{self, SeekFrom};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hatchery::fs::{self, File, OpenOptions};
use hatchery_sim::{Disk, Event, Seeds, Sim};

/// Library code on files, the same on every backend: a directory, files written,
/// listed, read back, renamed, appended to, removed.
async fn files_round_trip(dir: &std::path::Path) -> io::Result<()> {
    fs::create_dir_all(dir.join("a/b")).await?;
    fs::write(dir.join("a/b/one"), "first").await?;
    fs::write(dir.join("a/two"), [2u8; 10_000]).await?;
    assert_eq!(fs::read_to_string(dir.join("a/b/one")).await?, "first");
    assert_eq!(fs::read(dir.join("a/two")).await?, [2u8; 10_000]);
    let mut names = Vec::new();
    let mut entries = fs::read_dir(dir.join("a")).await?;
    while let Some(entry) = entries.next_entry().await? {
        names.push(entry.file_name());
    }
    names.sort();
    assert_eq!(names, ["b", "two"]);
    fs::rename(dir.join("a/two"), dir.join("a/b/three")).await?;
    let mut log = OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join("a/b/log"))
        .await?;
    log.write_all(b"one\n").await?;
    log.write_all(b"two\n").await?;
    log.sync_data().await?;
    drop(log);
    let mut file = File::open(dir.join("a/b/log")).await?;
    assert_eq!(file.seek(SeekFrom::End(0)).await?, 8);
    file.seek(SeekFrom::Start(4)).await?;
    let mut rest = String::new();
    futures_lite::AsyncReadExt::read_to_string(&mut file, &mut rest).await?;
    assert_eq!(rest, "two\n");
    assert_eq!(fs::copy(dir.join("a/b/one"), dir.join("a/copy")).await?, 5);
    assert!(fs::try_exists(dir.join("a/copy")).await?);
    let err = fs::remove_dir(dir.join("a")).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::DirectoryNotEmpty);
    fs::remove_dir_all(dir.join("a")).await?;
    assert!(!fs::try_exists(dir.join("a")).await?);
    let err = File::open(dir.join("missing")).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("missing"), "{err}");
    Ok(())
}

/// Z11: library code on files runs unchanged on tokio and smol (the system's files) and
/// on the simulator (a disk of the host's own).
#[hatchery::test(sim(seeds = 20))]
async fn z11_library_code_on_files_runs_unchanged() {
    let dir = std::env::temp_dir().join(format!(
        "hatchery-z11-{}-{}",
        std::process::id(),
        hatchery::testing::backend().unwrap_or("none")
    ));
    files_round_trip(&dir).await.unwrap();
    fs::remove_dir_all(&dir).await.ok();
}

/// What a host's disk holds after a crash: the host writes `synced` and syncs it,
/// writes `unsynced` and does not; it crashes, restarts, and reads both back.
fn after_a_crash(seed: u64, disk: Disk) -> (Vec<u8>, Vec<u8>) {
    Sim::new(seed).disk(disk).run(async {
        let read = Arc::new(Mutex::new(None));
        let starts = Arc::new(AtomicU32::new(0));
        let (r, s) = (read.clone(), starts.clone());
        let host = hatchery_sim::net().host("db", move || {
            let (r, first) = (r.clone(), s.fetch_add(1, Ordering::SeqCst) == 0);
            async move {
                if first {
                    let mut synced = File::create("/synced").await?;
                    synced.write_all(&[1; 4096]).await?;
                    synced.sync_all().await?;
                    let mut unsynced = File::create("/unsynced").await?;
                    unsynced.write_all(&[2; 4096]).await?;
                    unsynced.flush().await?; // the host has it; the platter may not
                    std::future::pending::<()>().await;
                }
                let both = (fs::read("/synced").await?, fs::read("/unsynced").await?);
                *r.lock().unwrap() = Some(both);
                io::Result::Ok(())
            }
        });
        hatchery::sleep(Duration::from_secs(1)).await;
        host.crash();
        host.restart();
        hatchery::sleep(Duration::from_secs(1)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        read.lock().unwrap().take().expect("read after the restart")
    })
}

/// Z11: a crash keeps what was synced and loses what was not (with `crash_keeps: 0.0`,
/// all of it: the file, whose name is durable, is empty).
#[test]
fn z11_a_crash_loses_what_was_not_synced() {
    let strict = Disk {
        crash_keeps: 0.0,
        ..Disk::default()
    };
    for seed in 0..10 {
        let (synced, unsynced) = after_a_crash(seed, strict);
        assert_eq!(synced, [1; 4096], "seed {seed}: synced is kept");
        assert!(unsynced.is_empty(), "seed {seed}: {} bytes", unsynced.len());
    }
    let lenient = Disk {
        crash_keeps: 1.0,
        ..Disk::default()
    };
    assert_eq!(
        after_a_crash(0, lenient).1,
        [2; 4096],
        "kept when it survives"
    );
}

/// Z11: a write not synced may be torn at sector boundaries: each 512-byte sector of it
/// is there whole or not at all (zeros), never in part, and some crashes keep some
/// sectors and lose others.
#[test]
fn z11_a_crash_tears_writes_at_sector_boundaries() {
    let mut torn = 0;
    for seed in 0..20 {
        let (synced, unsynced) = after_a_crash(seed, Disk::default());
        assert_eq!(synced, [1; 4096]);
        assert!(
            unsynced.len() <= 4096 && unsynced.len() % 512 == 0,
            "{}",
            unsynced.len()
        );
        let sectors: Vec<bool> = unsynced
            .chunks(512)
            .map(|sector| {
                match (
                    sector.iter().all(|&b| b == 2),
                    sector.iter().all(|&b| b == 0),
                ) {
                    (true, _) => true,
                    (_, true) => false,
                    _ => panic!("seed {seed}: a sector written in part"),
                }
            })
            .collect();
        if sectors.contains(&true) && (sectors.contains(&false) || sectors.len() < 8) {
            torn += 1;
        }
    }
    assert!(torn > 0, "some crash tears the write");
}

/// Z11: read errors and a full disk are drawn from the seed, each an error of its kind
/// with the path, and a trace event; the same seed, the same faults.
#[test]
fn z11_read_errors_and_full_disks_are_drawn_from_the_seed() {
    let flaky = Disk {
        read_error: 0.2,
        full: 0.2,
        ..Disk::default()
    };
    let run = |seed| {
        Sim::new(seed)
            .disk(flaky)
            .record_events(true)
            .run_traced(async {
                let mut outcomes = Vec::new();
                for i in 0..20 {
                    let path = format!("/f{i}");
                    let wrote = fs::write(&path, [i as u8; 100]).await;
                    if let Err(e) = &wrote {
                        assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
                        assert!(e.to_string().contains(&path), "{e}");
                    }
                    let read = fs::read(&path).await;
                    if let (Ok(_), Err(e)) = (&wrote, &read) {
                        assert!(e.to_string().contains("input/output error"), "{e}");
                    }
                    outcomes.push((wrote.is_ok(), read.is_ok()));
                }
                outcomes
            })
    };
    let (first, trace) = run(3);
    let (again, trace_again) = run(3);
    assert_eq!(first, again, "the same faults");
    assert_eq!(trace.hash(), trace_again.hash());
    assert!(
        first.iter().any(|&(w, _)| !w),
        "some write finds the disk full"
    );
    assert!(first.iter().any(|&(w, r)| w && !r), "some read fails");
    assert!(first.iter().any(|&(w, r)| w && r), "most work");
    assert!(trace
        .events()
        .iter()
        .any(|e| matches!(e, Event::DiskFault(_))));
    // A disk of 1,000 bytes: the 11th write of 100 finds it full.
    let small = Disk {
        capacity: 1000,
        ..Disk::default()
    };
    let full = Sim::new(0).disk(small).run(async {
        for i in 0..11 {
            if let Err(e) = fs::write(format!("/f{i}"), [0; 100]).await {
                return Some((i, e.kind()));
            }
        }
        None
    });
    assert_eq!(full, Some((10, io::ErrorKind::StorageFull)));
}

/// Z11: a disk operation takes simulated time: a call its latency, a sync a millisecond
/// more; and each host has a disk of its own.
#[test]
fn z11_operations_take_their_latency_on_a_disk_per_host() {
    Sim::new(0)
        .run(async {
            let start = hatchery::now();
            let mut file = File::create("/f").await?;
            let opened = hatchery::now() - start;
            assert!(
                opened >= Duration::from_micros(20) && opened <= Duration::from_micros(200),
                "{opened:?}"
            );
            file.write_all(b"x").await?;
            let before = hatchery::now();
            file.sync_all().await?;
            assert!(hatchery::now() - before >= Duration::from_millis(1));
            let seen = Arc::new(Mutex::new(None));
            let s = seen.clone();
            hatchery_sim::net().host("other", move || {
                let s = s.clone();
                async move {
                    *s.lock().unwrap() = Some(fs::try_exists("/f").await);
                }
            });
            hatchery::sleep(Duration::from_millis(10)).await;
            assert!(!seen.lock().unwrap().take().unwrap()?, "its own disk");
            assert!(fs::try_exists("/f").await?);
            Ok::<_, io::Error>(())
        })
        .unwrap();
}

/// Z11: what the simulated disk cannot give is refused with `Unsupported`, naming the
/// runtime: std's `Metadata`, permissions, links, and a file of the system's.
#[test]
fn z11_what_a_simulated_disk_cannot_give_is_refused() {
    let std_file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
    let errors = Sim::new(0).run(async move {
        fs::write("/f", "x").await.unwrap();
        let mut file = File::from_std(std_file);
        vec![
            fs::metadata("/f").await.unwrap_err(),
            fs::symlink("/f", "/g").await.unwrap_err(),
            File::open("/f")
                .await
                .unwrap()
                .metadata()
                .await
                .unwrap_err(),
            file.read(&mut [0; 4]).await.unwrap_err(),
        ]
    });
    for err in errors {
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("`hatchery-sim`"), "{err}");
    }
}

/// Z11: the disks are in the trace, with their bytes: a run with files replays, and the
/// determinism check passes it.
#[test]
fn z11_disk_operations_are_traced_and_replay() {
    Seeds::new(10).check_determinism(10).run(|| async {
        files_round_trip(std::path::Path::new("/tmp/z11"))
            .await
            .unwrap();
    });
    let (_, trace) = Sim::new(0).record_events(true).run_traced(async {
        fs::write("/f", "payload").await.unwrap();
    });
    assert!(trace
        .steps()
        .iter()
        .any(|s| matches!(s.event, Event::Disk(_)) && s.payload == b"payload"));
}

/// A file of a simulated disk outlives its run as any `File` does, and is used the way
/// the fs rules say for every backend: outside any runtime, what its buffer serves needs
/// no system call and an operation that needs one panics, naming the cause; on a runtime
/// with the system's files (tokio here), it is refused with `Unsupported`; in another
/// simulated run, whose disks are others, it fails (before, it wrote to the disk of the
/// run that had ended), and that run's disk stays its own.
#[test]
fn z11_a_simulated_file_after_its_run() {
    let (mut file, disk_before) = Sim::new(0).run(async {
        let mut file = File::create("/f").await.unwrap();
        file.write_all(b"in the run").await.unwrap();
        file.flush().await.unwrap();
        (file, fs::read("/f").await.unwrap())
    });
    assert_eq!(disk_before, b"in the run");
    // Outside any runtime: into the buffer, then a flush that needs a system call.
    futures_lite::future::block_on(file.write_all(b", after")).unwrap();
    let flushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        futures_lite::future::block_on(file.flush())
    }));
    let panic = flushed.expect_err("a system call outside any runtime");
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.starts_with("hatchery::fs: a file operation must start a system call"),
        "{msg}"
    );
    // On tokio: the system's files, not this disk's.
    let (file, err) = hatchery_tokio::run(async move {
        let err = file.flush().await.unwrap_err();
        (file, err)
    });
    assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
    // In another simulated run: another disk.
    let mut file = Some(file);
    let (err, now) = Sim::new(0).run(async move {
        let mut file = file.take().unwrap();
        let err = file.flush().await.unwrap_err();
        let now = fs::read("/f").await.map_err(|e| e.kind());
        drop(file);
        (err, now)
    });
    assert!(err.to_string().contains("another simulated run"), "{err}");
    assert_eq!(
        now,
        Err(io::ErrorKind::NotFound),
        "this run's disk is its own"
    );
}
