//! Files on every backend (`hatchery::fs`): big and many files, and the rules X1–X9 of
//! the semantics chapter, each cancellation case by what it leaves behind.

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_lite::{future, AsyncBufReadExt, AsyncReadExt, StreamExt};
use hatchery::fs::{self, File, OpenOptions};
use hatchery::{move_on_after, CancelScope};
use hatchery_tests::{eventually, ms};

/// A directory of the test's own under the system's temporary directory, removed when
/// dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hatchery-fs-{}-{name}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A scope cancelled before it runs `fut`.
async fn in_cancelled_scope<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let scope = CancelScope::new();
    scope.handle().cancel();
    scope.run(fut).await
}

/// The byte at `i` of the test pattern.
fn pattern_at(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// FNV-1a over 8-byte words (and the tail), fast enough in a debug build.
#[derive(Default)]
struct Checksum {
    hash: u64,
    len: u64,
    tail: Vec<u8>,
}

impl Checksum {
    fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if !self.tail.is_empty() {
            let take = (8 - self.tail.len()).min(bytes.len());
            self.tail.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.tail.len() == 8 {
                let word = u64::from_le_bytes(self.tail[..].try_into().unwrap());
                self.mix(word);
                self.tail.clear();
            }
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.mix(u64::from_le_bytes(w.try_into().unwrap()));
        }
        self.tail.extend_from_slice(words.remainder());
    }

    fn mix(&mut self, word: u64) {
        self.hash = (self.hash ^ word).wrapping_mul(0x100_0000_01b3);
    }

    fn finish(mut self) -> (u64, u64) {
        let tail = std::mem::take(&mut self.tail);
        for b in tail {
            self.mix(u64::from(b));
        }
        (self.hash, self.len)
    }
}

#[hatchery::test]
async fn sixty_four_mib_copied_with_a_checksum() {
    const TOTAL: u64 = 64 << 20;
    let dir = TempDir::new("big");
    let (src, dst) = (dir.join("src"), dir.join("dst"));

    // Written in uneven pieces, through `write_all`.
    let mut written = Checksum::default();
    let mut file = File::create(&src).await.unwrap();
    let piece: Vec<u8> = (0..100_003u64).map(pattern_at).collect();
    let mut at = 0u64;
    while at < TOTAL {
        let n = piece.len().min((TOTAL - at) as usize);
        file.write_all(&piece[..n]).await.unwrap();
        written.update(&piece[..n]);
        at += n as u64;
    }
    file.close().await.unwrap();

    // Copied through the futures-io traits (reads and writes of 8 KiB).
    let mut from = File::open(&src).await.unwrap();
    let mut to = File::create(&dst).await.unwrap();
    assert_eq!(
        futures_lite::io::copy(&mut from, &mut to).await.unwrap(),
        TOTAL
    );
    to.sync_all().await.unwrap();
    drop(to);

    // Read back in odd sizes.
    let mut read = Checksum::default();
    let mut file = File::open(&dst).await.unwrap();
    let mut buf = vec![0; 77_777];
    loop {
        match file.read(&mut buf).await.unwrap() {
            0 => break,
            n => read.update(&buf[..n]),
        }
    }
    assert_eq!(read.finish(), written.finish());
    assert_eq!(fs::metadata(&dst).await.unwrap().len(), TOTAL);
}

#[hatchery::test]
async fn ten_thousand_small_files_created_listed_and_removed() {
    const FILES: usize = 10_000;
    const TASKS: usize = 16;
    let dir = TempDir::new("many");
    let root = dir.0.clone();
    hatchery::nursery(|n| async move {
        for t in 0..TASKS {
            let root = root.clone();
            n.spawn(async move {
                for i in (t..FILES).step_by(TASKS) {
                    fs::write(root.join(format!("f{i:05}")), i.to_le_bytes()).await?;
                }
                Ok::<_, io::Error>(())
            });
        }
        Ok(())
    })
    .await
    .unwrap();

    let mut names: Vec<String> = fs::read_dir(&dir.0)
        .await
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
        .await;
    names.sort();
    assert_eq!(names.len(), FILES);
    assert!(names
        .iter()
        .enumerate()
        .all(|(i, n)| *n == format!("f{i:05}")));
    let sample = fs::read(dir.join("f04321")).await.unwrap();
    assert_eq!(sample, 4321usize.to_le_bytes());

    let root = dir.0.clone();
    hatchery::nursery(|n| async move {
        for t in 0..TASKS {
            let root = root.clone();
            n.spawn(async move {
                for i in (t..FILES).step_by(TASKS) {
                    fs::remove_file(root.join(format!("f{i:05}"))).await?;
                }
                Ok::<_, io::Error>(())
            });
        }
        Ok(())
    })
    .await
    .unwrap();
    let mut left = fs::read_dir(&dir.0).await.unwrap();
    assert!(left.next_entry().await.unwrap().is_none());
}

#[hatchery::test]
async fn paths_directories_links_and_permissions() {
    let dir = TempDir::new("paths");
    fs::create_dir_all(dir.join("a/b/c")).await.unwrap();
    assert!(fs::metadata(dir.join("a/b/c")).await.unwrap().is_dir());
    fs::write(dir.join("a/f"), "text").await.unwrap();
    assert_eq!(fs::read_to_string(dir.join("a/f")).await.unwrap(), "text");
    assert_eq!(fs::copy(dir.join("a/f"), dir.join("a/g")).await.unwrap(), 4);
    fs::rename(dir.join("a/g"), dir.join("a/b/h"))
        .await
        .unwrap();
    assert!(!fs::try_exists(dir.join("a/g")).await.unwrap());
    assert_eq!(fs::read(dir.join("a/b/h")).await.unwrap(), b"text");
    fs::hard_link(dir.join("a/f"), dir.join("a/hard"))
        .await
        .unwrap();
    assert_eq!(fs::read(dir.join("a/hard")).await.unwrap(), b"text");

    let canon = fs::canonicalize(dir.join("a/b/../f")).await.unwrap();
    assert_eq!(canon, std::fs::canonicalize(dir.join("a/f")).unwrap());

    #[cfg(unix)]
    {
        fs::symlink("f", dir.join("a/link")).await.unwrap();
        assert_eq!(
            fs::read_link(dir.join("a/link")).await.unwrap(),
            Path::new("f")
        );
        assert!(fs::symlink_metadata(dir.join("a/link"))
            .await
            .unwrap()
            .is_symlink());
        assert_eq!(
            fs::read_to_string(dir.join("a/link")).await.unwrap(),
            "text"
        );
    }

    let mut perm = fs::metadata(dir.join("a/f")).await.unwrap().permissions();
    perm.set_readonly(true);
    fs::set_permissions(dir.join("a/f"), perm).await.unwrap();
    assert!(fs::metadata(dir.join("a/f"))
        .await
        .unwrap()
        .permissions()
        .readonly());
    let mut perm = fs::metadata(dir.join("a/f")).await.unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    fs::set_permissions(dir.join("a/f"), perm).await.unwrap();

    let err = fs::remove_dir(dir.join("a")).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::DirectoryNotEmpty);
    fs::remove_dir_all(dir.join("a")).await.unwrap();
    fs::create_dir(dir.join("d")).await.unwrap();
    fs::remove_dir(dir.join("d")).await.unwrap();
    assert!(fs::read_dir(&dir.0)
        .await
        .unwrap()
        .next_entry()
        .await
        .unwrap()
        .is_none());
}

#[hatchery::test]
async fn files_read_write_seek_and_lines() {
    let dir = TempDir::new("rw");
    let path = dir.join("f");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .await
        .unwrap();
    file.write_all(b"0123456789").await.unwrap();
    assert_eq!(file.seek(SeekFrom::Start(0)).await.unwrap(), 0);
    let mut three = [0; 3];
    file.read_exact(&mut three).await.unwrap();
    assert_eq!(&three, b"012");
    // The file read ahead to its end; the position is what the caller read (invariant 2).
    assert_eq!(file.seek(SeekFrom::Current(0)).await.unwrap(), 3);
    file.read_exact(&mut three).await.unwrap();
    // A write after a read goes where the read left off.
    file.write_all(b"abc").await.unwrap();
    file.flush().await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"012345abc9");
    assert_eq!(file.metadata().await.unwrap().len(), 10);
    file.set_len(4).await.unwrap();
    file.seek(SeekFrom::Start(0)).await.unwrap();
    let mut all = Vec::new();
    file.read_to_end(&mut all).await.unwrap();
    assert_eq!(all, b"0123");
    file.close().await.unwrap();

    // Appending, and lines through `AsyncBufRead`.
    let mut log = File::options().append(true).open(&path).await.unwrap();
    log.write_all(b"\nsecond\nthird").await.unwrap();
    log.close().await.unwrap();
    let lines: Vec<String> = File::open(&path)
        .await
        .unwrap()
        .lines()
        .map(|l| l.unwrap())
        .collect()
        .await;
    assert_eq!(lines, ["0123", "second", "third"]);

    // std's file and back.
    let mut file = File::open(&path).await.unwrap();
    file.read_exact(&mut three).await.unwrap();
    let mut std_file = file.into_std().await.unwrap();
    let mut rest = String::new();
    io::Read::read_to_string(&mut std_file, &mut rest).unwrap();
    assert_eq!(rest, "3\nsecond\nthird");
    let mut file = File::from_std(std::fs::File::open(&path).unwrap());
    let mut text = String::new();
    file.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("0123\n"));
}

#[hatchery::test]
async fn tokio_io_traits() {
    use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};
    let dir = TempDir::new("tokio");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("f"))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut file, b"hello tokio")
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::flush(&mut file).await.unwrap();
    assert_eq!(
        tokio::io::AsyncSeekExt::seek(&mut file, SeekFrom::Start(6))
            .await
            .unwrap(),
        6
    );
    let mut s = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut file, &mut s)
        .await
        .unwrap();
    assert_eq!(s, "tokio");
    assert_eq!(file.stream_position().await.unwrap(), 11);
    file.shutdown().await.unwrap();
}

#[hatchery::test]
async fn x1_an_operation_in_a_cancelled_scope_starts_nothing() {
    let dir = TempDir::new("x1");
    assert!(in_cancelled_scope(fs::write(dir.join("a"), "x"))
        .await
        .is_none());
    assert!(in_cancelled_scope(File::create(dir.join("b")))
        .await
        .is_none());
    assert!(in_cancelled_scope(fs::create_dir(dir.join("c")))
        .await
        .is_none());
    assert!(!dir.join("a").exists() && !dir.join("b").exists() && !dir.join("c").exists());

    fs::write(dir.join("f"), "abc").await.unwrap();
    let mut file = File::open(dir.join("f")).await.unwrap();
    let mut buf = [0; 3];
    assert!(in_cancelled_scope(file.read(&mut buf)).await.is_none());
    assert_eq!(buf, [0; 3]);
    file.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"abc");
    // No token was taken by any of them.
    assert_eq!(fs::limiter().borrowed_tokens(), 0);
}

#[hatchery::test]
async fn x1_operations_take_tokens_of_the_file_limiter() {
    let dir = TempDir::new("x1-limiter");
    let limiter = fs::limiter();
    assert_eq!(limiter.total_tokens(), 40);
    limiter.set_total_tokens(1);
    let token = limiter.acquire().await;
    // The file limiter is full: operations wait for a token (and take none when their
    // scope ends meanwhile); the thread limiter is another one.
    assert!(move_on_after(ms(30), fs::metadata(&dir.0)).await.is_none());
    assert!(move_on_after(ms(30), File::create(dir.join("f")))
        .await
        .is_none());
    assert_eq!(hatchery::to_thread::default_limiter().borrowed_tokens(), 0);
    hatchery::to_thread::run_sync(|| ()).await;
    drop(token);
    assert!(fs::metadata(&dir.0).await.unwrap().is_dir());
    // A file's reads and writes take their tokens from it too, and give them back.
    let mut file = File::create(dir.join("f")).await.unwrap();
    file.write_all(&[1; 100_000]).await.unwrap();
    file.flush().await.unwrap();
    assert_eq!(limiter.borrowed_tokens(), 0);
    limiter.set_total_tokens(40);
}

/// A FIFO at `path`: opening one blocks until the other end is opened, and reading
/// one blocks until data comes, so a system call can be held mid-way.
#[cfg(unix)]
fn fifo(path: &Path) {
    rustix::fs::mkfifoat(rustix::fs::CWD, path, rustix::fs::Mode::from(0o600)).unwrap();
}

/// T6: a file operation runs on one of hatchery's threads, which counts as busy under
/// virtual time: the clock stands still while its system call blocks (the open of a FIFO,
/// until a plain thread opens the other end), so a timeout around it does not fire.
#[cfg(unix)]
#[hatchery::test(virtual_time)]
async fn t6_a_file_operation_counts_as_busy_under_virtual_time() {
    let dir = TempDir::new("t6");
    let path = dir.join("fifo");
    fifo(&path);
    let p = path.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        drop(std::fs::OpenOptions::new().write(true).open(&p).unwrap());
    });
    let out = move_on_after(Duration::from_secs(1), File::open(&path)).await;
    assert!(
        matches!(out, Some(Ok(_))),
        "the clock moved while the open blocked: {out:?}"
    );
    assert_eq!(hatchery::testing::elapsed(), Duration::ZERO);
    writer.join().unwrap();
}

#[cfg(unix)]
#[hatchery::test]
async fn x2_a_cancelled_scope_waits_for_the_system_call_in_flight() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let dir = TempDir::new("x2");
    let path = dir.join("fifo");
    fifo(&path);
    let opened = Arc::new(AtomicBool::new(false));
    let (p, o) = (path.clone(), opened.clone());
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        o.store(true, Ordering::SeqCst);
        // Unblocks the reader's open.
        let mut w = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        // The reader's file is closed by now (rule X3) or soon: a write then fails.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match io::Write::write(&mut w, b"x") {
                Err(e) => break e.kind(),
                Ok(_) if std::time::Instant::now() > deadline => panic!("the reader stayed open"),
                Ok(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    // Cancelled after 20 ms, while the open blocks: the scope waits for it.
    assert!(move_on_after(ms(20), File::open(&path)).await.is_none());
    assert!(
        opened.load(Ordering::SeqCst),
        "the scope ended before its open did"
    );
    // X3: the file it opened was closed: the writer sees no reader.
    assert_eq!(writer.join().unwrap(), io::ErrorKind::BrokenPipe);
    assert_eq!(fs::limiter().borrowed_tokens(), 0);
}

#[cfg(unix)]
#[hatchery::test]
async fn x2_a_cancelled_path_operation_did_all_or_nothing() {
    let dir = TempDir::new("x2-write");
    let data = vec![7u8; 8 << 20];
    // Cancelled at once, or while the write runs: when the scope returns, the file is
    // whole or absent, never partly written.
    for delay in [0, 1, 2, 5] {
        let path = dir.join(&format!("f{delay}"));
        let out = move_on_after(ms(delay), fs::write(&path, &data)).await;
        match std::fs::metadata(&path) {
            Ok(meta) => assert_eq!(meta.len(), data.len() as u64, "partly written ({out:?})"),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
        }
    }
}

#[cfg(unix)]
#[hatchery::test]
async fn x3_a_cancelled_open_closes_the_file_it_opened() {
    let dir = TempDir::new("x3");
    let path = dir.join("fifo");
    fifo(&path);
    let p = path.clone();
    let writer = std::thread::spawn(move || {
        // After the reader's open started to wait; then the reader goes away without
        // reading.
        std::thread::sleep(Duration::from_millis(100));
        let mut w = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match io::Write::write(&mut w, b"x") {
                Err(e) => break e.kind(),
                Ok(_) if std::time::Instant::now() > deadline => panic!("the reader stayed open"),
                Ok(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    // Dropped from outside after one poll: the open runs on in the background, and the
    // file it opens is closed when it returns.
    let mut open = Box::pin(File::open(&path));
    // Pending unless the machine stalled for the writer's 100 ms; then the file it
    // returned is dropped here, which must close it all the same.
    let _ = future::poll_once(open.as_mut()).await;
    drop(open);
    assert_eq!(writer.join().unwrap(), io::ErrorKind::BrokenPipe);
}

#[hatchery::test]
async fn x4_a_cancelled_read_leaves_the_position_where_it_was() {
    let dir = TempDir::new("x4");
    let data: Vec<u8> = (0..300_000u64).map(pattern_at).collect();
    fs::write(dir.join("f"), &data).await.unwrap();
    let mut file = File::open(dir.join("f")).await.unwrap();
    // In a cancelled scope: nothing read.
    let mut buf = vec![0; 1000];
    assert!(in_cancelled_scope(file.read(&mut buf)).await.is_none());
    assert_eq!(file.seek(SeekFrom::Current(0)).await.unwrap(), 0);
    // Dropped from outside after one poll, while its system call runs (or just done):
    // the position is after what it returned, nothing if it returned nothing.
    let mut read = Box::pin(file.read(&mut buf));
    let got = future::poll_once(read.as_mut()).await;
    drop(read);
    let n = got.map_or(0, |r| r.unwrap());
    assert_eq!(file.seek(SeekFrom::Current(0)).await.unwrap(), n as u64);
    let mut rest = Vec::new();
    file.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, data[n..]);
}

#[cfg(unix)]
#[hatchery::test]
async fn x4_bytes_of_a_cancelled_read_stay_for_the_next() {
    let dir = TempDir::new("x4-fifo");
    let path = dir.join("fifo");
    fifo(&path);
    let p = path.clone();
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        io::Write::write_all(&mut w, b"late bytes").unwrap();
        // Keep the pipe open until the reader is done.
        std::thread::sleep(Duration::from_millis(100));
    });
    let mut file = File::open(&path).await.unwrap();
    let mut buf = [0; 10];
    // The read blocks in the system call; the scope waits for it, then ends, and the
    // bytes it got are kept.
    assert!(move_on_after(ms(20), file.read(&mut buf)).await.is_none());
    assert_eq!(buf, [0; 10]);
    let mut got = [0; 10];
    file.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"late bytes");
    writer.join().unwrap();
}

#[hatchery::test]
async fn x4_a_cancelled_next_entry_takes_no_entry() {
    let dir = TempDir::new("x4-dir");
    for i in 0..150 {
        std::fs::write(dir.join(&format!("e{i}")), "").unwrap();
    }
    let mut entries = fs::read_dir(&dir.0).await.unwrap();
    assert!(in_cancelled_scope(entries.next_entry()).await.is_none());
    let mut seen = 0;
    for round in 0.. {
        // Every other `next` is dropped after one poll.
        if round % 2 == 0 {
            let mut next = Box::pin(entries.next_entry());
            if let Some(r) = future::poll_once(next.as_mut()).await {
                match r.unwrap() {
                    Some(_) => seen += 1,
                    None => break,
                }
            }
            continue;
        }
        match entries.next_entry().await.unwrap() {
            Some(_) => seen += 1,
            None => break,
        }
    }
    assert_eq!(seen, 150);
}

#[hatchery::test]
async fn x5_a_cancelled_write_took_none_of_its_bytes() {
    let dir = TempDir::new("x5");
    let path = dir.join("f");
    let mut file = File::create(&path).await.unwrap();
    assert!(in_cancelled_scope(file.write(b"never")).await.is_none());
    // A write returns once its bytes are taken: they reach the file at the flush.
    assert_eq!(file.write(b"kept").await.unwrap(), 4);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    file.flush().await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"kept");

    // A write waiting for the one in flight, dropped from outside, took nothing.
    file.write_all(&[1; 70_000]).await.unwrap(); // over 64 KiB: handed to a thread
    let mut write = Box::pin(file.write(b"maybe"));
    let taken = match future::poll_once(write.as_mut()).await {
        Some(n) => n.unwrap(),
        None => 0,
    };
    drop(write);
    file.close().await.unwrap();
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(on_disk.len(), 4 + 70_000 + taken);
    assert_eq!(&on_disk[4 + 70_000..], &b"maybe"[..taken]);
}

#[cfg(unix)]
#[hatchery::test]
async fn x6_a_cancelled_flush_keeps_the_bytes_for_the_next() {
    let dir = TempDir::new("x6");
    let path = dir.join("fifo");
    fifo(&path);
    let p = path.clone();
    let reader = std::thread::spawn(move || {
        let mut r = std::fs::File::open(&p).unwrap();
        // Let the writer fill the pipe and block.
        std::thread::sleep(Duration::from_millis(150));
        let mut all = Vec::new();
        io::Read::read_to_end(&mut r, &mut all).unwrap();
        all
    });
    let data: Vec<u8> = (0..300_000u64).map(pattern_at).collect();
    let mut file = OpenOptions::new().write(true).open(&path).await.unwrap();
    file.write_all(&data[..200_000]).await.unwrap();
    // The pipe holds 64 KiB: the write in flight blocks until the reader reads.
    assert!(move_on_after(ms(20), file.flush()).await.is_none());
    file.write_all(&data[200_000..]).await.unwrap();
    file.close().await.unwrap();
    // Nothing lost, nothing written twice.
    assert!(reader.join().unwrap() == data);
}

#[hatchery::test]
async fn x6_an_error_of_a_background_write_comes_out_of_the_next_operation() {
    let dir = TempDir::new("x6-error");
    fs::write(dir.join("f"), "").await.unwrap();
    // Open for reading only: writing fails, in the background.
    let mut file = File::open(dir.join("f")).await.unwrap();
    assert_eq!(file.write(&[0; 100_000]).await.unwrap(), 100_000);
    assert!(file.flush().await.is_err());
    // The failed bytes were dropped: the file goes on.
    file.flush().await.unwrap();
}

#[hatchery::test]
async fn x7_a_dropped_file_writes_what_it_buffered() {
    let dir = TempDir::new("x7");
    let path = dir.join("f");
    let mut file = File::create(&path).await.unwrap();
    file.write_all(b"written after the drop").await.unwrap();
    drop(file);
    let p = path.clone();
    assert!(
        eventually(Duration::from_secs(10), move || {
            std::fs::read(&p).is_ok_and(|b| b == b"written after the drop")
        })
        .await
    );
    // Dropped inside a cancelled scope, with a write in flight and bytes buffered.
    let path = dir.join("g");
    let data: Vec<u8> = (0..200_000u64).map(pattern_at).collect();
    let d = data.clone();
    let p = path.clone();
    move_on_after(ms(1), async move {
        let mut file = File::create(&p).await.unwrap();
        file.write_all(&d).await.unwrap();
        hatchery::sleep(Duration::from_secs(60)).await;
    })
    .await;
    let p = path.clone();
    assert!(
        eventually(Duration::from_secs(10), move || {
            std::fs::read(&p).is_ok_and(|b| b == data || b.is_empty())
        })
        .await
    );
}

#[hatchery::test]
async fn x8_after_a_cancelled_seek_the_position_is_the_old_or_the_new() {
    let dir = TempDir::new("x8");
    let data: Vec<u8> = (0..1000u64).map(pattern_at).collect();
    fs::write(dir.join("f"), &data).await.unwrap();
    let mut file = File::open(dir.join("f")).await.unwrap();
    let mut two = [0; 2];
    file.read_exact(&mut two).await.unwrap();
    assert!(in_cancelled_scope(file.seek(SeekFrom::Start(500)))
        .await
        .is_none());
    assert_eq!(file.seek(SeekFrom::Current(0)).await.unwrap(), 2); // not started
    let mut seek = Box::pin(file.seek(SeekFrom::Start(700)));
    let _ = future::poll_once(seek.as_mut()).await;
    drop(seek);
    let pos = file.seek(SeekFrom::Current(0)).await.unwrap();
    assert!(pos == 2 || pos == 700, "{pos}");
    file.seek(SeekFrom::Start(900)).await.unwrap();
    file.read_exact(&mut two).await.unwrap();
    assert_eq!(two, data[900..902]);
}

#[hatchery::test]
async fn x9_a_directory_where_a_file_is_expected() {
    let dir = TempDir::new("x9-dir");
    let err = File::open(&dir.0).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::IsADirectory);
    assert!(err.to_string().contains(&*dir.0.to_string_lossy()), "{err}");
    let err = File::create(&dir.0).await.unwrap_err();
    assert!(err.to_string().contains(&*dir.0.to_string_lossy()), "{err}");
    assert!(fs::read(&dir.0).await.is_err());
    assert!(fs::write(&dir.0, "x").await.is_err());
    assert!(fs::remove_file(&dir.0).await.is_err());
    fs::write(dir.join("f"), "").await.unwrap();
    let err = fs::read_dir(dir.join("f")).await.unwrap_err();
    assert!(err.to_string().contains("f"), "{err}");
}

#[hatchery::test]
async fn x9_a_missing_file_and_a_nul_byte() {
    let dir = TempDir::new("x9-missing");
    let missing = dir.join("missing");
    let err = File::open(&missing).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("missing"), "{err}");
    // The system's error is the source, with its code.
    let source = std::error::Error::source(err.get_ref().unwrap()).unwrap();
    let os = source.downcast_ref::<io::Error>().unwrap();
    assert_eq!(os.kind(), io::ErrorKind::NotFound);
    assert!(os.raw_os_error().is_some());

    let nul = dir.join("a\0b");
    assert_eq!(
        File::open(&nul).await.unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        fs::write(&nul, "x").await.unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        fs::metadata(&nul).await.unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
}

#[cfg(unix)]
#[hatchery::test]
async fn x9_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    if rustix::process::geteuid().is_root() {
        // Root may open any file, but not a read-only sysctl for writing (Linux).
        let sysctl = Path::new("/proc/sys/kernel/osrelease");
        if !sysctl.exists() {
            eprintln!("x9_permission_denied: skipped as root without /proc/sys");
            return;
        }
        let err = File::options().write(true).open(sysctl).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("osrelease"), "{err}");
        assert_eq!(
            fs::write(sysctl, "x").await.unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        return;
    }
    let dir = TempDir::new("x9-perm");
    let path = dir.join("locked");
    fs::write(&path, "secret").await.unwrap();
    fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000))
        .await
        .unwrap();
    let err = File::open(&path).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("locked"), "{err}");
    assert_eq!(
        fs::read(&path).await.unwrap_err().kind(),
        io::ErrorKind::PermissionDenied
    );
}

/// The environment variable that makes [`x9_too_many_open_files_child`] run.
#[cfg(unix)]
const EMFILE_CHILD: &str = "HATCHERY_FS_EMFILE_CHILD";

/// Runs [`x9_too_many_open_files_child`] in a process of its own, whose limit of open
/// files it lowers (a limit of this process would fail the tests that run beside it).
#[cfg(unix)]
#[test]
fn x9_too_many_open_files() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "fs::x9_too_many_open_files_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(EMFILE_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[cfg(unix)]
#[test]
fn x9_too_many_open_files_child() {
    use hatchery_tests::Backend;
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    if std::env::var_os(EMFILE_CHILD).is_none() {
        return; // only in the process `x9_too_many_open_files` starts
    }
    let dir = TempDir::new("x9-emfile");
    std::fs::write(dir.join("f"), "x").unwrap();
    let old = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(128),
            maximum: old.maximum,
        },
    )
    .unwrap();
    for backend in [Backend::TokioCurrent, Backend::TokioMulti, Backend::Smol] {
        let path = dir.join("f");
        backend.run(async move {
            let mut open = Vec::new();
            let err = loop {
                match File::open(&path).await {
                    Ok(f) => open.push(f),
                    Err(e) => break e,
                }
                assert!(open.len() < 200, "the limit of 128 did not hold");
            };
            assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
            let source = std::error::Error::source(err.get_ref().unwrap()).unwrap();
            let os = source.downcast_ref::<io::Error>().unwrap();
            assert_eq!(
                os.raw_os_error(),
                Some(rustix::io::Errno::MFILE.raw_os_error())
            );
            // Closing some lets the next open through: nothing is stuck.
            open.truncate(open.len() / 2);
            File::open(&path).await.unwrap();
        });
    }
}

/// A file outlives the run that opened it, on every backend alike: used in another run,
/// it runs its system calls on that run's threads; used outside any runtime, what its
/// buffer serves needs none, and an operation that must start a system call panics with
/// the message that says what to do (before, tokio failed it with an error about a
/// dropped operation and smol ran it on its global pool).
#[test]
fn x1_a_file_runs_on_the_runtime_of_the_code_that_uses_it() {
    use hatchery_tests::Backend;
    let dir = TempDir::new("x1-outlives");
    let backends = [Backend::TokioCurrent, Backend::TokioMulti, Backend::Smol];
    for (i, opener) in backends.into_iter().enumerate() {
        for user in backends {
            let path = dir.join(&format!("f{i}-{user:?}"));
            let p = path.clone();
            let mut file = opener.run(async move { File::create(&p).await.unwrap() });
            let mut file = user.run(async move {
                file.write_all(b"in another run").await.unwrap();
                file.flush().await.unwrap();
                file
            });
            assert_eq!(std::fs::read(&path).unwrap(), b"in another run");
            // Outside any runtime: taken into the buffer, no system call needed...
            future::block_on(file.write_all(b", and after")).unwrap();
            // ...but writing it out needs one.
            let flushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                future::block_on(file.flush())
            }));
            let panic = flushed.expect_err("a system call outside any runtime");
            let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(
                msg.starts_with("hatchery::fs: a file operation must start a system call"),
                "{opener:?} then {user:?}: {msg}"
            );
            assert!(msg.contains("hatchery_tokio::run"), "{msg}");
            // Back in a run, the bytes it took are written.
            user.run(async move { file.close().await.unwrap() });
            assert_eq!(std::fs::read(&path).unwrap(), b"in another run, and after");
        }
    }
}

/// The environment variable that tells [`x1_the_file_limiter_bounds_the_threads`] it runs
/// in the process it started.
#[cfg(target_os = "linux")]
const THREADS_CHILD: &str = "HATCHERY_FS_THREADS_CHILD";

/// The threads of this process, as the kernel counts them.
#[cfg(target_os = "linux")]
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line["Threads:".len()..].trim().parse().unwrap()
}

/// 1,000 tasks of 6 file operations each, on every backend: the threads the operations
/// run on number at most the file limiter's 40 (before, tokio's pool grew to 150–317
/// threads on the multi-thread runtime and 97–197 on the current-thread one, smol's
/// to 34–47).
///
/// It runs in a process of its own, whose threads it counts (other tests' threads would
/// count in this one).
#[cfg(target_os = "linux")]
#[test]
fn x1_the_file_limiter_bounds_the_threads() {
    hatchery_tests::in_child_process(
        "fs::x1_the_file_limiter_bounds_the_threads",
        THREADS_CHILD,
        limiter_bounds_the_threads,
    );
}

#[cfg(target_os = "linux")]
fn limiter_bounds_the_threads() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use hatchery_tests::Backend;
    for backend in [Backend::TokioCurrent, Backend::TokioMulti, Backend::Smol] {
        let dir = TempDir::new("x1-threads");
        let base = dir.0.clone();
        let (grown, tokens) = backend.run(async move {
            fs::write(base.join("warm"), "up").await.unwrap();
            let before = threads();
            let stop = Arc::new(AtomicBool::new(false));
            let sampler = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut most = 0;
                    while !stop.load(Ordering::Relaxed) {
                        most = most.max(threads());
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    most
                })
            };
            hatchery::nursery(|n| async move {
                for task in 0..1000 {
                    let base = base.clone();
                    n.spawn(async move {
                        let (a, b) = (base.join(format!("a{task}")), base.join(format!("b{task}")));
                        fs::write(&a, task.to_string()).await?;
                        assert_eq!(fs::read_to_string(&a).await?, task.to_string());
                        assert!(fs::metadata(&a).await?.is_file());
                        fs::copy(&a, &b).await?;
                        fs::rename(&b, base.join(format!("c{task}"))).await?;
                        fs::remove_file(&a).await
                    });
                }
                Ok::<_, io::Error>(())
            })
            .await
            .unwrap();
            stop.store(true, Ordering::Relaxed);
            // The sampler is one of the threads counted, not one of the pool's.
            let most = sampler.join().unwrap() - 1;
            (most.saturating_sub(before), fs::limiter().total_tokens())
        });
        println!("{backend:?}: {grown} more threads during the operations");
        assert!(
            grown <= tokens + 2,
            "{backend:?}: {grown} more threads for a limiter of {tokens}"
        );
    }
}

/// Under virtual time, the file pool's threads count as busy while they run an
/// operation and as idle while they wait for the next: the clock stands still during
/// the operations, and jumps at once afterwards, threads lingering or not (rule T6).
#[hatchery::test(virtual_time)]
async fn x1_file_threads_and_virtual_time() {
    let dir = TempDir::new("x1-virtual");
    for round in 0..3 {
        let start = hatchery::now();
        hatchery::nursery(|n| {
            let dir = dir.0.clone();
            async move {
                for i in 0..20 {
                    let path = dir.join(format!("{round}-{i}"));
                    n.spawn(async move {
                        fs::write(&path, "x").await?;
                        fs::read(&path).await.map(drop)
                    });
                }
                Ok::<_, io::Error>(())
            }
        })
        .await
        .unwrap();
        assert_eq!(hatchery::now(), start, "the clock stood still");
        let wall = std::time::Instant::now();
        hatchery::sleep(Duration::from_secs(3600)).await;
        assert_eq!(hatchery::now() - start, Duration::from_secs(3600));
        assert!(
            wall.elapsed() < Duration::from_secs(5),
            "{:?}",
            wall.elapsed()
        );
    }
}
