//! [`RefEngine`]: the smallest engine that keeps the whole [`Engine`] contract.
//!
//! It exists to prove the conformance kit before the real engines do, and to be a test double
//! for host code. All data lives in a `BTreeMap`; every write is appended to one log file
//! (`ref.log`) through the storage seam, and open replays it. `compact` rewrites the log with
//! only live pairs, through a temporary file, a sync, a rename and a directory sync.
//!
//! Log record: `crc32 (u32 LE) | len (u32 LE) | payload`, the CRC covering `len` and `payload`.
//! Payload: `synced (u64 LE) | count (u32 LE)` then per operation `tag (u8: 1 put, 2 delete) |
//! key_len (u32 LE) | key | [value_len (u32 LE) | value]`. One record per write or batch, so a
//! batch is atomic. `synced` is the length of the log file known durable (a sync of it had
//! returned) when the record was written.
//!
//! At open, a record that fails its checks is either a torn tail or corruption. If a later
//! intact record says the damaged bytes had been synced before it was written, they were on
//! disk once and are now wrong: open fails with [`Error::Corruption`] naming the offset.
//! Otherwise the damaged bytes were never known durable (a crash can leave any garbage there,
//! even followed by intact records written after them but also not synced), so the record and
//! everything after it are a torn tail and are cut off (this engine has one log, always the
//! active one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::{
    BatchOp, CommonOptions, CompactionSummary, CountingStorage, Engine, Error, GroupCommit,
    IoClass, KeyRange, LockMode, PeriodicTask, Result, Scan, Stats, Storage, SyncPolicy, Value,
    WritableFile, WriteBatch, check_key, check_value,
};

const LOG: &str = "ref.log";
const LOCK: &str = "LOCK";
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;

/// The reference engine. See the module documentation.
pub struct RefEngine {
    inner: Arc<Inner>,
    _periodic: Option<PeriodicTask>,
}

struct Inner {
    dir: PathBuf,
    storage: CountingStorage,
    sync: SyncPolicy,
    read_only: bool,
    map: RwLock<BTreeMap<Vec<u8>, Value>>,
    writer: Mutex<Option<LogWriter>>,
    commit: GroupCommit,
    counters: Mutex<Counters>,
    _lock: Box<dyn crate::FileLock>,
}

/// The log file and the bytes appended through this engine across every log file it has had:
/// group commit needs a position that never goes backwards, and `compact` replaces the log with
/// a shorter file.
struct LogWriter {
    file: Box<dyn WritableFile>,
    appended: u64,
    /// Bytes of this file known durable: what each new record carries as `synced`.
    synced: u64,
}

#[derive(Default)]
struct Counters {
    user_bytes: u64,
    user_writes: u64,
    compactions: u64,
    compaction_wall: std::time::Duration,
}

impl RefEngine {
    /// Opens (creating if allowed) a reference engine in `dir`.
    ///
    /// # Errors
    /// [`Error::Locked`] if another engine holds the directory; I/O errors.
    pub fn open(dir: impl AsRef<Path>, options: CommonOptions) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let storage = CountingStorage::new(options.storage.clone());
        if !storage.exists(&dir)? && (!options.create_if_missing || options.read_only) {
            return Err(Error::invalid(format!("{} does not exist", dir.display())));
        }
        if !options.read_only {
            // Even if it exists: an open cut off before syncing the new directory's parent leaves
            // a name that is not durable yet.
            storage.create_dir_all(&dir)?;
        }
        let mode = if options.read_only {
            LockMode::Shared
        } else {
            LockMode::Exclusive
        };
        let lock = storage.lock(&dir.join(LOCK), mode)?;
        let (map, valid) = replay(&storage, &dir)?;
        let writer = if options.read_only {
            None
        } else {
            Some(LogWriter {
                file: open_log(&storage, &dir, &valid)?,
                appended: 0,
                synced: valid.len() as u64,
            })
        };
        let inner = Arc::new(Inner {
            dir,
            storage,
            sync: options.sync,
            read_only: options.read_only,
            map: RwLock::new(map),
            writer: Mutex::new(writer),
            commit: GroupCommit::new(0),
            counters: Mutex::default(),
            _lock: lock,
        });
        let periodic = match options.sync {
            SyncPolicy::Periodic(every) if !options.read_only => {
                let weak = Arc::downgrade(&inner);
                Some(PeriodicTask::start("ref-sync", every, move || {
                    weak.upgrade().is_some_and(|inner| inner.sync_log().is_ok())
                })?)
            }
            _ => None,
        };
        Ok(RefEngine {
            inner,
            _periodic: periodic,
        })
    }
}

/// The replayed contents and the log's valid prefix.
type Replayed = (BTreeMap<Vec<u8>, Value>, Vec<u8>);

/// Reads the log into a map; returns the map and the log's valid prefix.
fn replay(storage: &dyn Storage, dir: &Path) -> Result<Replayed> {
    let mut map = BTreeMap::new();
    let path = dir.join(LOG);
    if !storage.exists(&path)? {
        return Ok((map, Vec::new()));
    }
    let mut bytes = storage.open(&path, IoClass::Recovery)?.read_all()?;
    let mut at = 0usize;
    while let Some(record) = decode_record(&bytes, at) {
        for op in record.ops {
            apply(&mut map, op);
        }
        at = record.end;
    }
    if synced_later(&bytes, at) {
        return Err(Error::corruption(
            path,
            at as u64,
            "a valid record (a later record says these bytes had been synced)",
        ));
    }
    bytes.truncate(at);
    Ok((map, bytes))
}

/// Whether an intact record after the damaged one at `at` was written after a sync covering
/// `at`. Every offset is tried, since the damaged record's length cannot be trusted.
fn synced_later(bytes: &[u8], at: usize) -> bool {
    (at + 1..bytes.len()).any(|q| decode_record(bytes, q).is_some_and(|r| r.synced > at as u64))
}

fn open_log(storage: &dyn Storage, dir: &Path, valid: &[u8]) -> Result<Box<dyn WritableFile>> {
    let path = dir.join(LOG);
    if !storage.exists(&path)? {
        let file = storage.create(&path, IoClass::Log)?;
        file.sync()?;
        storage.sync_dir(dir)?;
        return Ok(file);
    }
    // The replayed bytes may exist only in the page cache: after a process crash, or after a
    // failed sync whose pages Linux then marked clean (a sync of the same file now would
    // succeed and prove nothing). New records will claim them durable, so write them into a
    // fresh file and make that durable before appending: temp, sync, rename, directory sync.
    let tmp = dir.join(format!("{LOG}.tmp"));
    if storage.exists(&tmp)? {
        storage.remove(&tmp)?;
    }
    let file = storage.create(&tmp, IoClass::Recovery)?;
    file.append(valid)?;
    file.sync()?;
    drop(file);
    storage.rename(&tmp, &path)?;
    storage.sync_dir(dir)?;
    storage.open_append(&path, IoClass::Log)
}

fn apply(map: &mut BTreeMap<Vec<u8>, Value>, op: BatchOp) {
    match op {
        BatchOp::Put { key, value } => {
            map.insert(key, Value::from(value));
        }
        BatchOp::Delete { key } => {
            map.remove(&key);
        }
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn encode_record(ops: &[BatchOp], synced: u64) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&synced.to_le_bytes());
    payload.extend_from_slice(&len32(ops.len()).to_le_bytes());
    for op in ops {
        let (tag, value) = match op {
            BatchOp::Put { value, .. } => (TAG_PUT, Some(value)),
            BatchOp::Delete { .. } => (TAG_DELETE, None),
        };
        payload.push(tag);
        payload.extend_from_slice(&len32(op.key().len()).to_le_bytes());
        payload.extend_from_slice(op.key());
        if let Some(value) = value {
            payload.extend_from_slice(&len32(value.len()).to_le_bytes());
            payload.extend_from_slice(value);
        }
    }
    let len = len32(payload.len()).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(&payload);
    let mut record = Vec::with_capacity(8 + payload.len());
    record.extend_from_slice(&crc.finalize().to_le_bytes());
    record.extend_from_slice(&len);
    record.extend_from_slice(&payload);
    record
}

/// Lengths are bounded by `MAX_BATCH_BYTES`, far below `u32::MAX`.
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A decoded log record.
struct Record {
    ops: Vec<BatchOp>,
    synced: u64,
    end: usize,
}

/// Decodes the record at `at`; `None` if it is missing, short or damaged.
fn decode_record(bytes: &[u8], at: usize) -> Option<Record> {
    let crc = u32_at(bytes, at)?;
    let len = usize::try_from(u32_at(bytes, at + 4)?).ok()?;
    let end = at.checked_add(8)?.checked_add(len)?;
    let covered = bytes.get(at + 4..end)?;
    if crc32fast::hash(covered) != crc {
        return None;
    }
    let payload = covered.get(4..)?;
    let synced = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let payload = payload.get(8..)?;
    let count = u32_at(payload, 0)?;
    let mut pos = 4;
    let mut ops = Vec::new();
    for _ in 0..count {
        let tag = *payload.get(pos)?;
        let klen = usize::try_from(u32_at(payload, pos + 1)?).ok()?;
        let key = payload.get(pos + 5..pos + 5 + klen)?.to_vec();
        pos += 5 + klen;
        match tag {
            TAG_PUT => {
                let vlen = usize::try_from(u32_at(payload, pos)?).ok()?;
                let value = payload.get(pos + 4..pos + 4 + vlen)?.to_vec();
                pos += 4 + vlen;
                ops.push(BatchOp::Put { key, value });
            }
            TAG_DELETE => ops.push(BatchOp::Delete { key }),
            _ => return None,
        }
    }
    Some(Record { ops, synced, end })
}

impl Inner {
    fn sync_log(&self) -> Result<()> {
        let mut writer = self.writer.lock();
        let Some(log) = writer.as_mut() else {
            return Ok(());
        };
        self.commit.poison().check()?;
        self.commit.poison().guard(|| log.file.sync())?;
        self.commit.mark_durable(log.appended);
        log.synced = log.file.len();
        Ok(())
    }

    fn write_ops(&self, ops: &[BatchOp]) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        self.commit.poison().check()?;
        let mut writer = self.writer.lock();
        let log = writer.as_mut().ok_or(Error::ReadOnly)?;
        let record = encode_record(ops, log.synced);
        if let Err(e) = log.file.append(&record) {
            // A failed append may leave part of the record on disk; refuse further writes.
            self.commit.poison().set(&e);
            return Err(e);
        }
        log.appended += record.len() as u64;
        if self.sync == SyncPolicy::Always {
            let end = log.appended;
            self.commit
                .wait_durable(end, || log.file.sync().map(|()| end))?;
            // Every append happens under the writer lock, so the whole file is durable now.
            log.synced = log.file.len();
        }
        let mut map = self.map.write();
        let mut counters = self.counters.lock();
        for op in ops {
            counters.user_bytes += (op.key().len() + op.value().map_or(0, <[u8]>::len)) as u64;
            counters.user_writes += 1;
            apply(&mut map, op.clone());
        }
        Ok(())
    }

    fn compact(&self) -> Result<CompactionSummary> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        self.commit.poison().check()?;
        let started = Instant::now();
        let mut writer = self.writer.lock();
        let snapshot: Vec<BatchOp> = self
            .map
            .read()
            .iter()
            .map(|(k, v)| BatchOp::Put {
                key: k.clone(),
                value: v.to_vec(),
            })
            .collect();
        let record = encode_record(&snapshot, 0);
        let tmp = self.dir.join(format!("{LOG}.tmp"));
        if self.storage.exists(&tmp)? {
            self.storage.remove(&tmp)?;
        }
        let file = self.storage.create(&tmp, IoClass::Compaction)?;
        file.append(&record)?;
        self.commit.poison().guard(|| file.sync())?;
        drop(file);
        self.storage.rename(&tmp, &self.dir.join(LOG))?;
        // From here the log's name is the new file while the writer still holds the old one: a
        // failure must stop every later write, or it would go to a file nobody will replay.
        let new_log = self.commit.poison().guard(|| {
            self.storage.sync_dir(&self.dir)?;
            self.storage.open_append(&self.dir.join(LOG), IoClass::Log)
        })?;
        let appended = writer.as_ref().map_or(0, |log| log.appended);
        *writer = Some(LogWriter {
            file: new_log,
            appended,
            synced: record.len() as u64,
        });
        let mut summary = CompactionSummary {
            jobs: 1,
            files_in: 1,
            files_out: 1,
            records_out: snapshot.len() as u64,
            bytes_written: record.len() as u64,
            duration: started.elapsed(),
            ..CompactionSummary::default()
        };
        summary.files_removed = 1;
        let mut counters = self.counters.lock();
        counters.compactions += 1;
        counters.compaction_wall += summary.duration;
        Ok(summary)
    }
}

impl Engine for RefEngine {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        check_value(value)?;
        self.inner.write_ops(&[BatchOp::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        }])
    }

    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        check_key(key)?;
        Ok(self.inner.map.read().get(key).cloned())
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        check_key(key)?;
        self.inner
            .write_ops(&[BatchOp::Delete { key: key.to_vec() }])
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(());
        }
        self.inner.write_ops(batch.ops())
    }

    fn scan(&self, range: KeyRange) -> Result<Scan<'_>> {
        range.validate()?;
        let map = self.inner.map.read();
        let bounds = (range.start.clone(), range.end.clone());
        let pairs: Vec<_> = map
            .range::<Vec<u8>, _>(bounds)
            .map(|(k, v)| Ok((Value::from(k.clone()), v.clone())))
            .collect();
        Ok(Box::new(pairs.into_iter()))
    }

    fn sync(&self) -> Result<()> {
        if self.inner.read_only {
            return Ok(());
        }
        self.inner.sync_log()
    }

    fn compact(&self) -> Result<CompactionSummary> {
        self.inner.compact()
    }

    fn stats(&self) -> Stats {
        let counters = self.inner.counters.lock();
        let map = self.inner.map.read();
        let disk_bytes = self
            .inner
            .storage
            .file_len(&self.inner.dir.join(LOG))
            .unwrap_or(0);
        Stats {
            engine: "reference".to_string(),
            user_bytes_written: counters.user_bytes,
            user_writes: counters.user_writes,
            io: self.inner.storage.counters().snapshot(),
            compactions: counters.compactions,
            compaction_wall: counters.compaction_wall,
            live_keys: map.len() as u64,
            disk_bytes,
            file_count: 1,
            index_memory_bytes: map
                .iter()
                .map(|(k, v)| (k.len() + v.len() + 48) as u64)
                .sum(),
            ..Stats::default()
        }
    }
}

impl Drop for RefEngine {
    fn drop(&mut self) {
        // A clean shutdown makes everything acknowledged durable. If the storage is gone (a
        // simulated crash) or the engine is poisoned there is nothing more to save.
        let _ = self.inner.sync_log();
    }
}
