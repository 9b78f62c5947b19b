//! Reading a WAL back at open.

use std::path::Path;

use engine_api::{Error, IoClass, Result, Storage};

use super::format::{BadRecord, RecordKind, WalBatch, decode_batch, scan};
use crate::filename;

/// What a WAL holds.
pub(crate) struct WalContents {
    pub(crate) batches: Vec<WalBatch>,
    /// Length of the prefix of good records.
    pub(crate) valid_len: u64,
    /// The first bad record, if the file does not end cleanly.
    pub(crate) bad: Option<(u64, BadRecord)>,
}

/// Reads every batch of WAL `number`. A record whose checksum holds but whose payload is
/// malformed is corruption whatever the file; a record that fails its checksum is reported in
/// [`WalContents::bad`] for the caller to judge (torn tail or damage).
pub(crate) fn read_wal(storage: &dyn Storage, dir: &Path, number: u64) -> Result<WalContents> {
    let path = filename::wal(dir, number);
    let bytes = storage.open(&path, IoClass::Recovery)?.read_all()?;
    let scanned = scan(&bytes, RecordKind::Batch, false);
    let mut batches = Vec::with_capacity(scanned.records.len());
    for record in &scanned.records {
        let batch = decode_batch(record.payload).ok_or_else(|| {
            Error::corruption(&path, record.offset, "a well-formed WAL batch payload")
        })?;
        batches.push(batch);
    }
    Ok(WalContents {
        batches,
        valid_len: scanned.valid_len,
        bad: scanned.bad,
    })
}
