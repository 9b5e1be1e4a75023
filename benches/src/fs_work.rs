//! The file workloads: a sequential read and a sequential write of a big file in 64 KiB
//! pieces, and metadata calls one after the other, each with hatchery (`hatchery::fs`),
//! with raw tokio (`tokio::fs`) and with raw smol (`async-fs`).
//!
//! Each runs inside the task that the harness spawns on the executor. The read reads a
//! file written before the timing starts (from the page cache, so that what is timed is
//! the hand-offs and copies, not the disk); the write creates its file, writes it and
//! flushes it (no `fsync`: the disk would be timed); the metadata calls ask for one
//! file's, one after the other (latency).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The size of each read and write.
pub(crate) const PIECE: usize = 64 * 1024;

/// A directory of this process's, under the system's temporary directory.
fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hatchery-bench-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cannot make the benchmark's directory");
        dir
    })
}

/// Removes this process's files.
pub(crate) fn clean_up() {
    let _ = std::fs::remove_dir_all(dir());
}

/// A file of `bytes` bytes to read, written once per process.
fn source(bytes: usize) -> PathBuf {
    let path = dir().join(format!("source-{bytes}"));
    if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(bytes as u64) {
        let data: Vec<u8> = (0..bytes).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&path, data).expect("cannot write the source file");
    }
    path
}

fn target() -> PathBuf {
    dir().join("target")
}

// ----- sequential read -----

pub(crate) async fn hatchery_read(bytes: usize) -> Duration {
    let path = source(bytes);
    let start = Instant::now();
    let mut file = hatchery::fs::File::open(&path).await.unwrap();
    let mut buf = vec![0; PIECE];
    let mut total = 0;
    loop {
        match file.read(&mut buf).await.unwrap() {
            0 => break,
            n => total += black_box(n),
        }
    }
    assert_eq!(total, bytes);
    start.elapsed()
}

pub(crate) async fn tokio_read(bytes: usize) -> Duration {
    use tokio::io::AsyncReadExt;
    let path = source(bytes);
    let start = Instant::now();
    let mut file = tokio::fs::File::open(&path).await.unwrap();
    let mut buf = vec![0; PIECE];
    let mut total = 0;
    loop {
        match file.read(&mut buf).await.unwrap() {
            0 => break,
            n => total += black_box(n),
        }
    }
    assert_eq!(total, bytes);
    start.elapsed()
}

pub(crate) async fn smol_read(bytes: usize) -> Duration {
    use futures_lite::AsyncReadExt;
    let path = source(bytes);
    let start = Instant::now();
    let mut file = async_fs::File::open(&path).await.unwrap();
    let mut buf = vec![0; PIECE];
    let mut total = 0;
    loop {
        match file.read(&mut buf).await.unwrap() {
            0 => break,
            n => total += black_box(n),
        }
    }
    assert_eq!(total, bytes);
    start.elapsed()
}

// ----- sequential write -----

fn piece() -> Vec<u8> {
    (0..PIECE).map(|i| (i * 7 % 253) as u8).collect()
}

pub(crate) async fn hatchery_write(bytes: usize) -> Duration {
    let data = piece();
    let start = Instant::now();
    let mut file = hatchery::fs::File::create(target()).await.unwrap();
    for _ in 0..bytes / PIECE {
        file.write_all(&data).await.unwrap();
    }
    file.flush().await.unwrap();
    start.elapsed()
}

pub(crate) async fn tokio_write(bytes: usize) -> Duration {
    use tokio::io::AsyncWriteExt;
    let data = piece();
    let start = Instant::now();
    let mut file = tokio::fs::File::create(target()).await.unwrap();
    for _ in 0..bytes / PIECE {
        file.write_all(&data).await.unwrap();
    }
    file.flush().await.unwrap();
    start.elapsed()
}

pub(crate) async fn smol_write(bytes: usize) -> Duration {
    use futures_lite::AsyncWriteExt;
    let data = piece();
    let start = Instant::now();
    let mut file = async_fs::File::create(target()).await.unwrap();
    for _ in 0..bytes / PIECE {
        file.write_all(&data).await.unwrap();
    }
    file.flush().await.unwrap();
    start.elapsed()
}

// ----- metadata calls -----

pub(crate) async fn hatchery_metadata(n: usize) -> Duration {
    let path = source(PIECE);
    let start = Instant::now();
    for _ in 0..n {
        black_box(hatchery::fs::metadata(&path).await.unwrap());
    }
    start.elapsed()
}

pub(crate) async fn tokio_metadata(n: usize) -> Duration {
    let path = source(PIECE);
    let start = Instant::now();
    for _ in 0..n {
        black_box(tokio::fs::metadata(&path).await.unwrap());
    }
    start.elapsed()
}

pub(crate) async fn smol_metadata(n: usize) -> Duration {
    let path = source(PIECE);
    let start = Instant::now();
    for _ in 0..n {
        black_box(async_fs::metadata(&path).await.unwrap());
    }
    start.elapsed()
}
