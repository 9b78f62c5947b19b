//! Reading a WAL back at open.

use std::path::Path;

use engine_api::{Error, IoClass, Result, Storage};

use super::format::{
    BadRecord, Head, RecordKind, WalBatch, decode_at, decode_batch, decode_header, other_version,
    read_file_header, scan, unverified_nonce,
};
use crate::filename;

/// What a WAL holds.
pub(crate) struct WalContents {
    /// The header: the WAL before this one and its length, if the header survived.
    pub(crate) header: Option<(u64, u64)>,
    /// The file's nonce, if the header survived: every record is seeded with it.
    pub(crate) nonce: Option<u32>,
    pub(crate) batches: Vec<WalBatch>,
    /// Length of the prefix of good records.
    pub(crate) valid_len: u64,
    /// The first bad record, if the file does not end cleanly.
    pub(crate) bad: Option<(u64, BadRecord)>,
    /// Whether an intact record after the bad one says the bad bytes had been synced before it
    /// was written: they were durable once, so this is damage, not a torn tail.
    pub(crate) synced_after_bad: bool,
}

/// Reads every batch of WAL `number`. A record whose checksum holds but whose payload is
/// malformed is corruption whatever the file; a record that fails its checksum is reported in
/// [`WalContents::bad`] for the caller to judge (torn tail or damage). A WAL of another format
/// version is [`Error::InvalidArgument`] naming it.
///
/// Only the `newest` WAL may end in zeros (a preallocated tail): every older one was cut to
/// its last record and synced before its successor was created (invariant 3), so zeros there
/// are a bad record like any other.
pub(crate) fn read_wal(
    storage: &dyn Storage,
    dir: &Path,
    number: u64,
    newest: bool,
) -> Result<WalContents> {
    let path = filename::wal(dir, number);
    let bytes = storage.open(&path, IoClass::Recovery)?.read_all()?;
    let head = match read_file_header(&bytes, RecordKind::WalHeader, RecordKind::WalHeader) {
        Head::Good(head) => head,
        Head::Version(v) => return Err(other_version(&path, "WAL", v)),
        Head::Malformed => return Err(Error::corruption(&path, 0, "a well-formed WAL header")),
        Head::Bad(bad) => return Ok(headless(&bytes, bad)),
    };
    let header = decode_header(head.body)
        .ok_or_else(|| Error::corruption(&path, 0, "a well-formed WAL header"))?;
    let mut scanned = scan(&bytes, head.end, head.nonce, RecordKind::Batch, false);
    if newest && scanned.bad.is_some_and(|(at, _)| zero_tail(&bytes, at)) {
        // Preallocated and never written (`docs/formats/wal.md`, "Preallocation").
        scanned.bad = None;
    }
    let mut batches = Vec::with_capacity(scanned.records.len());
    for record in &scanned.records {
        let batch = decode_batch(record.payload).map_err(|what| {
            Error::corruption(&path, record.offset, format!("a WAL batch with {what}"))
        })?;
        batches.push(batch);
    }
    let synced_after_bad = scanned
        .bad
        .is_some_and(|(at, _)| synced_later(&bytes, head.nonce, at));
    Ok(WalContents {
        header: Some(header),
        nonce: Some(head.nonce),
        batches,
        valid_len: scanned.valid_len,
        bad: scanned.bad,
        synced_after_bad,
    })
}

/// Whether every byte from `at` to the end is zero: the unwritten part of a preallocated WAL.
/// Zeros never verify as a record (the checksum is seeded with the nonce, and kind 0 is no
/// kind). A record lost to zeros is told from this end as a torn tail is: by the length a
/// clean close or the next WAL's header records.
pub(crate) fn zero_tail(bytes: &[u8], at: u64) -> bool {
    usize::try_from(at)
        .ok()
        .and_then(|at| bytes.get(at..))
        .is_some_and(|tail| tail.iter().all(|&b| b == 0))
}

/// A WAL whose header does not verify: it holds nothing readable. The header was torn (then
/// nothing after it was ever synced) unless a record verifying under the nonce its bytes still
/// hold says the file was synced past it.
fn headless(bytes: &[u8], bad: BadRecord) -> WalContents {
    WalContents {
        header: None,
        nonce: None,
        batches: Vec::new(),
        valid_len: 0,
        bad: (!bytes.is_empty()).then_some((0, bad)),
        synced_after_bad: unverified_nonce(bytes).is_some_and(|n| synced_later(bytes, n, 0)),
    }
}

/// Whether a well-formed record after offset `at` was written when the file was durable past
/// `at`. Every offset is tried: the damaged record's own length cannot be trusted. Records are
/// checked under the file's `nonce`, so one framed inside a user's value does not count.
fn synced_later(bytes: &[u8], nonce: u32, at: u64) -> bool {
    let Ok(start) = usize::try_from(at) else {
        return false;
    };
    (start + 1..bytes.len()).any(|q| {
        decode_at(bytes, q, nonce, RecordKind::Batch)
            .ok()
            .and_then(|(r, _)| decode_batch(r.payload).ok())
            .is_some_and(|b| b.synced > at)
    })
}
