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

    /// Reopens WAL `number` for appending with only its good prefix (the first `valid_len`
    /// bytes); a WAL whose header was torn (so it holds nothing) is emptied and given `header`.
    ///
    /// The prefix was read back at open, but it may exist only in the page cache: after a
    /// process crash, or after a failed sync whose pages Linux then marked clean, so that a
    /// sync of this file now would succeed and prove nothing. Later records (and the close
    /// claim) will vouch for it, so it is first written into a fresh file and made durable:
    /// temp, sync, rename over the WAL, directory sync. The WAL keeps its number and bytes.
    pub(crate) fn reopen(
        storage: &dyn Storage,
        dir: &Path,
        number: u64,
        valid_len: u64,
        header: Option<(u64, u64)>,
    ) -> Result<Self> {
        let path = filename::wal(dir, number);
        let prefix = match header {
            Some((prev, len)) => encode_record(RecordKind::WalHeader, &encode_header(prev, len)),
            None => good_prefix(storage, &path, valid_len)?,
        };
        let tmp = dir.join(format!("{number:06}.log.tmp"));
        let rewrite = storage.create(&tmp, IoClass::Recovery)?;
        rewrite.append(&prefix)?;
        rewrite.sync()?;
        drop(rewrite);
        storage.rename(&tmp, &path)?;
        storage.sync_dir(dir)?;
        let file = storage.open_append(&path, IoClass::Log)?;
        Ok(WalWriter {
            number,
            synced: AtomicU64::new(file.len()),
            file,
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

/// The first `valid_len` bytes of the WAL at `path` (what recovery found good).
fn good_prefix(storage: &dyn Storage, path: &Path, valid_len: u64) -> Result<Vec<u8>> {
    let len = usize::try_from(valid_len)
        .map_err(|_| engine_api::Error::corruption(path, valid_len, "a WAL that fits in memory"))?;
    storage.open(path, IoClass::Recovery)?.read_vec(0, len)
}
