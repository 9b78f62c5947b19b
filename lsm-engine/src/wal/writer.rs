//! Appending batches to a WAL file.

use std::path::Path;
use std::sync::Arc;

use engine_api::{BatchOp, IoClass, Result, Storage, WritableFile};

use super::format::{RecordKind, encode_batch, encode_record};
use crate::filename;
use crate::key::SeqNo;

/// An open WAL. The file handle is shared so a group-commit leader can sync it while the writer
/// appends the next records.
pub(crate) struct WalWriter {
    file: Arc<dyn WritableFile>,
}

impl WalWriter {
    /// Creates WAL `number` and makes its name durable.
    pub(crate) fn create(storage: &dyn Storage, dir: &Path, number: u64) -> Result<Self> {
        let file = storage.create(&filename::wal(dir, number), IoClass::Log)?;
        storage.sync_dir(dir)?;
        Ok(WalWriter {
            file: Arc::from(file),
        })
    }

    /// Reopens WAL `number` for appending, first cutting a torn tail beyond `valid_len`.
    pub(crate) fn reopen(
        storage: &dyn Storage,
        dir: &Path,
        number: u64,
        valid_len: u64,
    ) -> Result<Self> {
        let file = storage.open_append(&filename::wal(dir, number), IoClass::Log)?;
        if file.len() > valid_len {
            file.truncate(valid_len)?;
            file.sync()?;
        }
        Ok(WalWriter {
            file: Arc::from(file),
        })
    }

    pub(crate) fn file(&self) -> &Arc<dyn WritableFile> {
        &self.file
    }

    /// Appends one batch as one record; returns the bytes appended.
    pub(crate) fn append(&self, first_seq: SeqNo, ops: &[BatchOp]) -> Result<u64> {
        let record = encode_record(RecordKind::Batch, &encode_batch(first_seq, ops));
        self.file.append(&record)?;
        Ok(record.len() as u64)
    }
}
