//! Reading a WAL back at open.

use std::path::Path;

use engine_api::{Error, IoClass, Result, Storage};

use super::format::{
    BadRecord, RecordKind, WalBatch, decode_at, decode_batch, decode_header, scan,
};
use crate::filename;

/// What a WAL holds.
pub(crate) struct WalContents {
    /// The header: the WAL before this one and its length, if the header survived.
    pub(crate) header: Option<(u64, u64)>,
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
/// [`WalContents::bad`] for the caller to judge (torn tail or damage).
pub(crate) fn read_wal(storage: &dyn Storage, dir: &Path, number: u64) -> Result<WalContents> {
    let path = filename::wal(dir, number);
    let bytes = storage.open(&path, IoClass::Recovery)?.read_all()?;
    let scanned = scan(&bytes, RecordKind::Batch, false);
    let mut batches = Vec::with_capacity(scanned.records.len());
    let mut header = None;
    for (i, record) in scanned.records.iter().enumerate() {
        if record.kind == RecordKind::WalHeader as u8 {
            header = decode_header(record.payload)
                .filter(|_| i == 0)
                .map(Some)
                .ok_or_else(|| Error::corruption(&path, record.offset, "one WAL header, first"))?;
            continue;
        }
        let batch = decode_batch(record.payload).map_err(|what| {
            Error::corruption(&path, record.offset, format!("a WAL batch with {what}"))
        })?;
        batches.push(batch);
    }
    let synced_after_bad = scanned.bad.is_some_and(|(at, _)| synced_later(&bytes, at));
    Ok(WalContents {
        header,
        batches,
        valid_len: scanned.valid_len,
        bad: scanned.bad,
        synced_after_bad,
    })
}

/// Whether a well-formed record after offset `at` was written when the file was durable past
/// `at`. Every offset is tried: the damaged record's own length cannot be trusted.
fn synced_later(bytes: &[u8], at: u64) -> bool {
    let Ok(start) = usize::try_from(at) else {
        return false;
    };
    (start + 1..bytes.len()).any(|q| {
        decode_at(bytes, q, RecordKind::Batch)
            .ok()
            .and_then(|(r, _)| decode_batch(r.payload).ok())
            .is_some_and(|b| b.synced > at)
    })
}
