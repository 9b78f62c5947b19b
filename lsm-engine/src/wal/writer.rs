//! Appending batches to a WAL file.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use engine_api::{BatchOp, IoClass, Result, Storage, WritableFile};

use super::format::{RecordKind, encode_batch, encode_header, encode_record};
use crate::filename;
use crate::key::SeqNo;

/// An open WAL. Shared (`Arc`) so a group-commit leader can sync it while the writer appends
/// the next records.
pub(crate) struct WalWriter {
    number: u64,
    file: Box<dyn WritableFile>,
    /// How much of the file a completed sync covers; every record carries it, so recovery can
    /// tell damage to bytes once durable (corruption) from a torn unsynced tail.
    synced: AtomicU64,
}

impl WalWriter {
    /// Creates WAL `number` headed by `prev` (the WAL before it and its final length, which
    /// recovery checks: a cut older WAL is corruption, not a torn tail), and makes its name
    /// durable.
    pub(crate) fn create(
        storage: &dyn Storage,
        dir: &Path,
        number: u64,
        prev: (u64, u64),
    ) -> Result<Self> {
        let file = storage.create(&filename::wal(dir, number), IoClass::Log)?;
        file.append(&encode_record(
            RecordKind::WalHeader,
            &encode_header(prev.0, prev.1),
        ))?;
        storage.sync_dir(dir)?;
        Ok(WalWriter {
            number,
            file,
            synced: AtomicU64::new(0),
        })
    }

    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// Bytes appended so far.
    pub(crate) fn len(&self) -> u64 {
        self.file.len()
    }

    /// Reopens WAL `number` for appending, first cutting a torn tail beyond `valid_len`; a WAL
    /// whose header was torn (so it holds nothing) is emptied and given `header`.
    pub(crate) fn reopen(
        storage: &dyn Storage,
        dir: &Path,
        number: u64,
        valid_len: u64,
        header: Option<(u64, u64)>,
    ) -> Result<Self> {
        let file = storage.open_append(&filename::wal(dir, number), IoClass::Log)?;
        let valid_len = if header.is_some() { 0 } else { valid_len };
        if file.len() > valid_len {
            file.truncate(valid_len)?;
        }
        if let Some((prev, len)) = header {
            file.append(&encode_record(
                RecordKind::WalHeader,
                &encode_header(prev, len),
            ))?;
        }
        let valid_len = file.len();
        // The good prefix was read back at open; syncing makes it (and the cut) durable.
        file.sync()?;
        Ok(WalWriter {
            number,
            file,
            synced: AtomicU64::new(valid_len),
        })
    }

    /// Appends one batch as one record; returns the bytes appended.
    pub(crate) fn append(&self, first_seq: SeqNo, ops: &[BatchOp]) -> Result<u64> {
        let synced = self.synced.load(Ordering::SeqCst);
        let record = encode_record(RecordKind::Batch, &encode_batch(first_seq, synced, ops));
        self.file.append(&record)?;
        Ok(record.len() as u64)
    }

    /// Syncs the file, then records how much of it the sync covered.
    pub(crate) fn sync(&self) -> Result<()> {
        let len = self.file.len();
        self.file.sync()?;
        self.synced.fetch_max(len, Ordering::SeqCst);
        Ok(())
    }
}
