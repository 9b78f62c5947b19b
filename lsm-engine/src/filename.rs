//! The names of the files in an engine directory.
//!
//! Every WAL, table and manifest takes its number from one counter (the manifest's
//! `next_file_number`), so numbers never repeat and a number names exactly one file.
//!
//! | name | what |
//! |---|---|
//! | `LOCK` | the directory lock |
//! | `CURRENT` | the name of the live manifest, replaced atomically |
//! | `MANIFEST-NNNNNN` | a log of version edits |
//! | `NNNNNN.log` | a write-ahead log |
//! | `NNNNNN.sst` | a sorted table |
//! | `NNNNNN.clog` | a compaction log: a job's intent and finished outputs |
//! | `*.tmp` | a temporary file, never live; removed at open |

use std::path::{Path, PathBuf};

pub(crate) const LOCK: &str = "LOCK";
/// The largest file number accepted from disk: far beyond any real use, and far enough below
/// `u64::MAX` that the counter never wraps.
pub(crate) const MAX_FILE_NUMBER: u64 = (1 << 56) - 1;
pub(crate) const CURRENT: &str = "CURRENT";
const MANIFEST_PREFIX: &str = "MANIFEST-";

/// What a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Wal(u64),
    Table(u64),
    Manifest(u64),
    CompactionLog(u64),
    Current,
    Lock,
    Temp,
}

pub(crate) fn wal(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:06}.log"))
}

pub(crate) fn table(dir: &Path, number: u64) -> PathBuf {
    dir.join(table_name(number))
}

pub(crate) fn table_name(number: u64) -> String {
    format!("{number:06}.sst")
}

pub(crate) fn manifest_name(number: u64) -> String {
    format!("{MANIFEST_PREFIX}{number:06}")
}

pub(crate) fn compaction_log(dir: &Path, number: u64) -> PathBuf {
    dir.join(compaction_log_name(number))
}

pub(crate) fn compaction_log_name(number: u64) -> String {
    format!("{number:06}.clog")
}

pub(crate) fn manifest(dir: &Path, number: u64) -> PathBuf {
    dir.join(manifest_name(number))
}

/// Classifies a directory entry; `None` for names this engine never writes.
pub(crate) fn parse(name: &str) -> Option<FileKind> {
    if name == CURRENT {
        return Some(FileKind::Current);
    }
    if name == LOCK {
        return Some(FileKind::Lock);
    }
    if name.ends_with(".tmp") {
        return Some(FileKind::Temp);
    }
    if let Some(n) = name.strip_prefix(MANIFEST_PREFIX) {
        return number(n).map(FileKind::Manifest);
    }
    let (stem, ext) = name.rsplit_once('.')?;
    let n = number(stem)?;
    match ext {
        "log" => Some(FileKind::Wal(n)),
        "sst" => Some(FileKind::Table(n)),
        "clog" => Some(FileKind::CompactionLog(n)),
        _ => None,
    }
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let dir = Path::new("/d");
        assert_eq!(
            parse(wal(dir, 7).file_name().unwrap().to_str().unwrap()),
            Some(FileKind::Wal(7))
        );
        assert_eq!(
            parse(&table_name(123_456_789)),
            Some(FileKind::Table(123_456_789))
        );
        assert_eq!(parse(&manifest_name(3)), Some(FileKind::Manifest(3)));
        assert_eq!(parse("CURRENT.tmp"), Some(FileKind::Temp));
        assert_eq!(parse("x.sst"), None);
        assert_eq!(parse("12.txt"), None);
    }
}
