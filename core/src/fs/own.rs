//! The path operations that a runtime's own file system (`rt::FileSystem`) has no call
//! for, made of the calls it has, in one piece of work (`blocking` invariant 5).

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::seam::{FileSystem, FsFile, FsKind, FsOpen};

/// The least a `File`'s read asks the system for, and how much its write gathers before
/// it hands the bytes to a thread, at first: small reads and writes are served by the
/// buffer, one thread hand-off per this many bytes. Also the buffer of a copy here.
pub(super) const CHUNK: usize = 64 * 1024;

/// `fs::read`: the whole file.
pub(super) fn read(fs: &dyn FileSystem, path: &Path) -> io::Result<Vec<u8>> {
    let file = fs.open(
        path,
        &FsOpen {
            read: true,
            ..FsOpen::default()
        },
    )?;
    let mut bytes = Vec::new();
    read_to_end(&*file, &mut bytes)?;
    Ok(bytes)
}

/// `fs::read_to_string`: the whole file, as UTF-8.
pub(super) fn read_to_string(fs: &dyn FileSystem, path: &Path) -> io::Result<String> {
    String::from_utf8(read(fs, path)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()))
}

/// Reads `file` to its end into `bytes`.
pub(super) fn read_to_end(file: &dyn FsFile, bytes: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = vec![0; CHUNK];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes all of `bytes` to `file`.
pub(super) fn write_all(file: &dyn FsFile, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match file.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `fs::write`: the whole file, created or truncated.
pub(super) fn write(fs: &dyn FileSystem, path: &Path, contents: &[u8]) -> io::Result<()> {
    let file = fs.open(
        path,
        &FsOpen {
            write: true,
            create: true,
            truncate: true,
            ..FsOpen::default()
        },
    )?;
    write_all(&*file, contents)
}

/// `fs::try_exists`.
pub(super) fn exists(fs: &dyn FileSystem, path: &Path) -> io::Result<bool> {
    match fs.kind(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// `fs::canonicalize`: absolute (from the root), without `.` and `..` (a runtime's own
/// file system has no symlinks), of something that exists.
pub(super) fn canonicalize(fs: &dyn FileSystem, path: &Path) -> io::Result<PathBuf> {
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
    fs.kind(&out)?;
    Ok(out)
}

/// `fs::create_dir_all`: each missing directory on the way, from the top.
pub(super) fn create_dir_all(fs: &dyn FileSystem, path: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    for dir in path.ancestors().filter(|d| !d.as_os_str().is_empty()) {
        match fs.kind(dir) {
            Ok(FsKind::Dir) => break,
            Ok(FsKind::File { .. }) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("`{}` is a file", dir.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(dir),
            Err(e) => return Err(e),
        }
    }
    for dir in missing.into_iter().rev() {
        match fs.create_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// `fs::remove_dir_all`: what the directory holds, then the directory.
pub(super) fn remove_dir_all(fs: &dyn FileSystem, path: &Path) -> io::Result<()> {
    let entries: Vec<(OsString, FsKind)> = fs.read_dir(path)?;
    for (name, kind) in entries {
        let child = path.join(name);
        match kind {
            FsKind::Dir => remove_dir_all(fs, &child)?,
            FsKind::File { .. } => fs.remove_file(&child)?,
        }
    }
    fs.remove_dir(path)
}

/// `fs::copy`: the file's bytes into `to`, created or truncated; how many.
pub(super) fn copy(fs: &dyn FileSystem, from: &Path, to: &Path) -> io::Result<u64> {
    let bytes = read(fs, from)?;
    write(fs, to, &bytes)?;
    Ok(bytes.len() as u64)
}
