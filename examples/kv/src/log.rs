//! The server's write-ahead log: every change, appended and synced before it is
//! acknowledged, and replayed when the server starts again.
//!
//! A record is a frame: its length (4 bytes, little-endian), a checksum of its payload
//! (FNV-1a, 4 bytes), then the payload (`S key\0value` or `D key`). A crash may leave the
//! last records not synced torn, or lost, or a later one kept after a lost one: reading
//! stops at the first frame that is incomplete or whose checksum fails, and the log is
//! cut back to the frames before it. Frames after a bad one were never synced (a sync
//! makes everything before it durable), so none of them was acknowledged.

use std::collections::BTreeMap;
use std::io::{self, SeekFrom};
use std::path::Path;
use std::time::Duration;

use hatchery::fs::{File, OpenOptions};

/// A change to the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    Set(String, String),
    Del(String),
}

impl Record {
    fn payload(&self) -> Vec<u8> {
        match self {
            Record::Set(key, value) => format!("S {key}\0{value}").into_bytes(),
            Record::Del(key) => format!("D {key}").into_bytes(),
        }
    }

    fn parse(payload: &[u8]) -> Option<Record> {
        let text = std::str::from_utf8(payload).ok()?;
        match text.split_at_checked(2)? {
            ("S ", rest) => {
                let (key, value) = rest.split_once('\0')?;
                Some(Record::Set(key.to_owned(), value.to_owned()))
            }
            ("D ", key) => Some(Record::Del(key.to_owned())),
            _ => None,
        }
    }

    /// Applies the change to `map`.
    pub(crate) fn apply(self, map: &mut BTreeMap<String, String>) {
        match self {
            Record::Set(key, value) => {
                map.insert(key, value);
            }
            Record::Del(key) => {
                map.remove(&key);
            }
        }
    }

    /// The record as a frame.
    fn frame(&self) -> Vec<u8> {
        let payload = self.payload();
        let mut frame = Vec::with_capacity(8 + payload.len());
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&checksum(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        frame
    }
}

/// FNV-1a, 32 bits.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The records of a log's bytes, up to the first bad frame; and how many bytes they
/// take.
fn records(bytes: &[u8]) -> (Vec<Record>, u64) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let sum = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
            break; // torn: the frame goes past the end
        };
        if len == 0 || checksum(payload) != sum {
            break; // torn, or lost and zeros in its place
        }
        let Some(record) = Record::parse(payload) else {
            break;
        };
        records.push(record);
        at += 8 + len;
    }
    (records, at as u64)
}

/// An open log: appends go at its end, after the last good frame.
pub(crate) struct Log {
    file: File,
    /// The bytes of the good frames: where the next one goes.
    len: u64,
    /// An append failed and the log could not be cut back: no more appends.
    broken: bool,
}

/// How many times reading the log is tried before the server gives up (a read error may
/// be a passing one).
const READ_ATTEMPTS: u32 = 5;

impl Log {
    /// Opens the log at `path` (made if missing), and the map its records make.
    pub(crate) async fn open(path: &Path) -> io::Result<(Log, BTreeMap<String, String>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .open(path)
            .await?;
        let mut bytes = Vec::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            bytes.clear();
            file.seek(SeekFrom::Start(0)).await?;
            match file.read_to_end(&mut bytes).await {
                Ok(_) => break,
                Err(e) if attempt < READ_ATTEMPTS => {
                    let _ = e;
                    hatchery::sleep(Duration::from_millis(10) * attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
        let (records, len) = records(&bytes);
        let mut map = BTreeMap::new();
        for record in records {
            record.apply(&mut map);
        }
        // Cut the torn tail, so that the next frame follows the last good one.
        if len < bytes.len() as u64 {
            file.set_len(len).await?;
        }
        file.seek(SeekFrom::Start(len)).await?;
        Ok((
            Log {
                file,
                len,
                broken: false,
            },
            map,
        ))
    }

    /// Appends `record`, synced if `sync` (then it survives a crash); on an error the log
    /// is cut back to where it was, or, failing that, takes no more appends.
    pub(crate) async fn append(&mut self, record: &Record, sync: bool) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(
                "the log is broken: a failed append could not be undone",
            ));
        }
        let frame = record.frame();
        let written = async {
            self.file.write_all(&frame).await?;
            match sync {
                true => self.file.sync_data().await,
                false => self.file.flush().await,
            }
        }
        .await;
        match written {
            Ok(()) => {
                self.len += frame.len() as u64;
                Ok(())
            }
            Err(e) => {
                let len = self.len;
                let undone = async {
                    self.file.set_len(len).await?;
                    self.file.seek(SeekFrom::Start(len)).await.map(drop)
                }
                .await;
                if undone.is_err() {
                    self.broken = true;
                }
                Err(e)
            }
        }
    }

    /// Syncs what was appended.
    pub(crate) async fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_up_to_the_first_bad_one() {
        let a = Record::Set("k".into(), "v w".into());
        let b = Record::Del("k".into());
        let mut bytes = [a.frame(), b.frame()].concat();
        assert_eq!(
            records(&bytes),
            (vec![a.clone(), b.clone()], bytes.len() as u64)
        );
        let good = a.frame().len() as u64;
        // Torn: the second frame cut short.
        let torn = &bytes[..bytes.len() - 1];
        assert_eq!(records(torn), (vec![a.clone()], good));
        // Lost and zeros in its place, a later frame kept after it: not read.
        let zeros = vec![0; b.frame().len()];
        bytes.truncate(good as usize);
        bytes.extend_from_slice(&zeros);
        bytes.extend_from_slice(&b.frame());
        assert_eq!(records(&bytes), (vec![a.clone()], good));
        // A checksum that fails.
        let mut bad = a.frame();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(records(&bad), (vec![], 0));
    }
}
