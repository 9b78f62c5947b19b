//! Appending batches to a WAL file.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use engine_api::{IoClass, Poison, Result, Storage, WritableFile};
use parking_lot::Mutex;

use super::format::{
    RecordKind, encode_batch_record_into, encode_file_header, encode_header, new_nonce,
};
use crate::filename;
use crate::key::SeqNo;
use crate::op::AsOp;

/// The record buffer kept between appends is shrunk back to this after a larger batch.
const KEEP_BUFFER: usize = 64 << 10;

/// The least a WAL is preallocated ahead of its end (`docs/formats/wal.md`, "Preallocation"):
/// an append inside the preallocated size leaves the file's size alone, so its `fdatasync`
/// has no inode size to journal. The step then grows with the file, up to `PREALLOCATE_MAX`.
const PREALLOCATE_MIN: u64 = 64 << 10;

/// The most a WAL is preallocated ahead of its end: one size-changing sync per MiB of log.
const PREALLOCATE_MAX: u64 = 1 << 20;

/// An open WAL. Shared (`Arc`) so a group-commit leader can sync it while the writer appends
/// the next records.
///
/// Every sync of the file goes through [`WalWriter::sync`], one at a time, and the first
/// failure is sticky: two syncs racing on one descriptor could see one failed writeback
/// reported to only one of them (Linux), and a sync retried after a failure may succeed
/// because the failed pages were marked clean; either would let a rotation vouch for bytes
/// the disk does not hold.
pub(crate) struct WalWriter {
    number: u64,
    file: Box<dyn WritableFile>,
    /// The file's nonce (in its header): seeds every record's checksum.
    nonce: u32,
    /// How much of the file a completed sync covers; every record carries it, so recovery can
    /// tell damage to bytes once durable (corruption) from a torn unsynced tail.
    synced: AtomicU64,
    /// Held for the length of a sync.
    sync_lock: Mutex<()>,
    /// Set by the first failed sync of this file; every later sync returns it unsynced.
    sync_failed: Poison,
    /// The record being appended, kept between appends (appends are serialised by the writer
    /// lock, so this lock is never contended): one allocation per WAL, not one per write.
    record: Mutex<Vec<u8>>,
    /// The file's size as preallocated (0: not preallocated, or the tail was cut). Changed only
    /// by appends and [`WalWriter::seal`], which the writer lock serialises.
    allocated: AtomicU64,
}

impl WalWriter {
    /// Creates WAL `number` headed by a fresh nonce and `prev` (the WAL before it and its final
    /// length, which recovery checks: a cut older WAL is corruption, not a torn tail), and makes
    /// its name durable.
    pub(crate) fn create(
        storage: &dyn Storage,
        dir: &Path,
        number: u64,
        prev: (u64, u64),
    ) -> Result<Self> {
        let file = storage.create(&filename::wal(dir, number), IoClass::Log)?;
        let nonce = new_nonce();
        file.append(&header(nonce, prev))?;
        storage.sync_dir(dir)?;
        Ok(WalWriter::new(number, file, nonce, 0))
    }

    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// Bytes appended so far.
    pub(crate) fn len(&self) -> u64 {
        self.file.len()
    }

    /// Reopens WAL `number` for appending with only its good prefix (the first `valid_len`
    /// bytes), whose header holds `nonce`; a WAL whose header was torn (`nonce` is `None`: it
    /// holds nothing) is emptied and given a header with a fresh nonce and `prev`.
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
        nonce: Option<u32>,
        prev: (u64, u64),
    ) -> Result<Self> {
        let path = filename::wal(dir, number);
        let (nonce, prefix) = match nonce {
            Some(nonce) => (nonce, good_prefix(storage, &path, valid_len)?),
            None => {
                let nonce = new_nonce();
                (nonce, header(nonce, prev))
            }
        };
        let tmp = dir.join(format!("{number:06}.log.tmp"));
        let rewrite = storage.create(&tmp, IoClass::Recovery)?;
        rewrite.append(&prefix)?;
        rewrite.sync()?;
        drop(rewrite);
        storage.rename(&tmp, &path)?;
        storage.sync_dir(dir)?;
        let file = storage.open_append(&path, IoClass::Log)?;
        let synced = file.len();
        Ok(WalWriter::new(number, file, nonce, synced))
    }

    fn new(number: u64, file: Box<dyn WritableFile>, nonce: u32, synced: u64) -> Self {
        WalWriter {
            number,
            file,
            nonce,
            synced: AtomicU64::new(synced),
            sync_lock: Mutex::new(()),
            sync_failed: Poison::new(),
            record: Mutex::new(Vec::new()),
            allocated: AtomicU64::new(0),
        }
    }

    /// Appends one batch as one record; returns the bytes appended.
    pub(crate) fn append<T: AsOp>(&self, first_seq: SeqNo, ops: &[T]) -> Result<u64> {
        let synced = self.synced.load(Ordering::SeqCst);
        let mut record = self.record.lock();
        encode_batch_record_into(&mut record, self.nonce, first_seq, synced, ops);
        let appended = self
            .preallocate_for(record.len() as u64)
            .and_then(|()| self.file.append(&record))
            .map(|()| record.len() as u64);
        record.shrink_to(KEEP_BUFFER);
        appended
    }

    /// Syncs the file, then records how much of it the sync covered. Waits for any other sync
    /// of this file to finish; once one has failed, returns [`engine_api::Error::Poisoned`]
    /// without syncing again (a failed fsync is never retried).
    pub(crate) fn sync(&self) -> Result<()> {
        let _one_at_a_time = self.sync_lock.lock();
        self.sync_failed.check()?;
        let len = self.file.len();
        self.sync_failed.guard(|| self.file.sync())?;
        self.synced.fetch_max(len, Ordering::SeqCst);
        Ok(())
    }

    /// Makes room for `more` bytes inside the preallocated size: if they would pass it, the
    /// file is extended (with zeros, writing nothing) to their end plus a step as long as the
    /// file, between [`PREALLOCATE_MIN`] and [`PREALLOCATE_MAX`]. The next sync makes the new
    /// size durable; a crash before it may keep it or not, and recovery takes the zeros after
    /// the last record as the end.
    fn preallocate_for(&self, more: u64) -> Result<()> {
        let end = self.file.len() + more;
        if end <= self.allocated.load(Ordering::Acquire) {
            return Ok(());
        }
        let upto = end + end.clamp(PREALLOCATE_MIN, PREALLOCATE_MAX);
        self.file.preallocate(upto)?;
        self.allocated.store(upto, Ordering::Release);
        Ok(())
    }

    /// Cuts the preallocated tail, then syncs: afterwards the file ends at its last record,
    /// durably (so a sealed WAL, or one whose length a clean close records, holds no zeros).
    /// Called under the writer lock (no append runs); a failed cut fails every later sync.
    /// Cut whatever `allocated` says: a preallocation that failed may still have changed the
    /// size (an extending `ftruncate` can fail halfway).
    pub(crate) fn seal(&self) -> Result<()> {
        {
            let _one_at_a_time = self.sync_lock.lock();
            self.sync_failed.check()?;
            let len = self.file.len();
            self.sync_failed.guard(|| self.file.truncate(len))?;
            self.allocated.store(0, Ordering::Release);
        }
        self.sync()
    }
}

/// The header record of a WAL with `nonce` following WAL `prev.0` of length `prev.1`.
fn header(nonce: u32, prev: (u64, u64)) -> Vec<u8> {
    encode_file_header(RecordKind::WalHeader, nonce, &encode_header(prev.0, prev.1))
}

/// The first `valid_len` bytes of the WAL at `path` (what recovery found good).
fn good_prefix(storage: &dyn Storage, path: &Path, valid_len: u64) -> Result<Vec<u8>> {
    let len = usize::try_from(valid_len)
        .map_err(|_| engine_api::Error::corruption(path, valid_len, "a WAL that fits in memory"))?;
    storage.open(path, IoClass::Recovery)?.read_vec(0, len)
}
