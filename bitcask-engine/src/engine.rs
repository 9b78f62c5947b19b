//! [`BitcaskEngine`]: open, the shared state ([`Inner`]) and the [`Engine`] implementation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use engine_api::{
    CompactionSummary, CountingStorage, Engine, Error, FileLock, GroupCommit, KeyRange, LockMode,
    PeriodicTask, ReadTrace, Result, Scan, Stats, Storage, SyncPolicy, TraceStep, Value,
    WriteBatch, check_key, check_value,
};
use parking_lot::{Mutex, RwLock};

use crate::datafile::{DataFile, FileName};
use crate::group::WriteQueue;
use crate::keydir::{KeyDir, Loc};
use crate::options::BitcaskOptions;
use crate::recovery::{self, RecoveryReport};
use crate::worker::{Job, Worker};
use crate::writer::{Op, Publish, Writer};

const LOCK: &str = "LOCK";

/// A get retries its keydir lookup this often when a merge retired the file it found.
const GET_RETRIES: usize = 16;

/// A Bitcask: append-only data files, an in-memory hash keydir, hint files, and merges on a
/// background thread. See the crate documentation and `docs/bitcask.md`.
pub struct BitcaskEngine {
    inner: Arc<Inner>,
    worker: Option<Worker>,
    periodic: Option<PeriodicTask>,
}

/// State shared by the engine handle, its background worker and its periodic sync.
pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) storage: CountingStorage,
    pub(crate) opts: BitcaskOptions,
    pub(crate) sync_policy: SyncPolicy,
    pub(crate) max_file_size: u64,
    pub(crate) read_only: bool,
    pub(crate) keydir: KeyDir,
    /// Every live data file by id, the active one included. Readers clone the `Arc` they need
    /// and read without any lock.
    pub(crate) files: RwLock<BTreeMap<u32, Arc<DataFile>>>,
    /// Taken for reading by a scan while it walks the keydir, for writing by a merge to remove
    /// its inputs from `files`: a scan's copied locations always name files it can find.
    pub(crate) retire: RwLock<()>,
    pub(crate) writer: Mutex<Option<Writer>>,
    /// Writers waiting for a group leader to append for them ([`crate::group`]).
    pub(crate) queue: WriteQueue,
    /// Serialises every sync of a file the writer appends to ([`Inner::sync_file`]).
    pub(crate) sync_lock: Mutex<()>,
    pub(crate) commit: GroupCommit,
    /// Under `SyncPolicy::Always`: writes become visible once durable, in sequence order.
    pub(crate) publish: Publish,
    next_file_id: AtomicU32,
    /// One merge (or hint write) at a time.
    pub(crate) merge_lock: Mutex<()>,
    pub(crate) counters: Counters,
    pub(crate) stop: AtomicBool,
    jobs: Mutex<Option<Sender<Job>>>,
    pub(crate) report: RecoveryReport,
    _lock: Box<dyn FileLock>,
}

/// Counters behind [`Stats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) user_bytes: AtomicU64,
    pub(crate) user_writes: AtomicU64,
    pub(crate) merges: Mutex<MergeTotals>,
}

/// What merges did since open.
#[derive(Default)]
pub(crate) struct MergeTotals {
    pub(crate) summary: CompactionSummary,
    pub(crate) cpu: Duration,
    pub(crate) last_error: Option<String>,
}

impl Counters {
    pub(crate) fn wrote(&self, ops: &[Op<'_>]) {
        let bytes: usize = ops
            .iter()
            .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len))
            .sum();
        self.user_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.user_writes
            .fetch_add(ops.len() as u64, Ordering::Relaxed);
    }
}

impl BitcaskEngine {
    /// Writers in the write queue, its leader counted: lets a test force a group (hold a
    /// writer's append in the storage seam, wait for the queue, release). Not a stable API.
    #[doc(hidden)]
    pub fn queued_writers(&self) -> usize {
        self.inner.queue.len()
    }

    /// Opens (creating it if allowed) the Bitcask in `dir`: takes the directory lock, rolls
    /// committed merges forward and removes uncommitted merge output, loads every data file
    /// from its hint or by a scan, truncates a torn tail, and starts a fresh active file.
    ///
    /// # Errors
    /// [`Error::Locked`] if another engine holds the directory; [`Error::Corruption`] for
    /// damage inside a sealed file (unless [`BitcaskOptions::salvage`]); invalid options; I/O.
    pub fn open(dir: impl AsRef<Path>, options: BitcaskOptions) -> Result<BitcaskEngine> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let common = &options.common;
        let storage = CountingStorage::new(Arc::clone(&common.storage));
        if !storage.exists(&dir)? && (!common.create_if_missing || common.read_only) {
            return Err(Error::invalid(format!("{} does not exist", dir.display())));
        }
        if !common.read_only {
            // Even if it exists: an open cut off before syncing the new directory's parent leaves
            // a name that is not durable yet.
            storage.create_dir_all(&dir)?;
        }
        let mode = if common.read_only {
            LockMode::Shared
        } else {
            LockMode::Exclusive
        };
        let lock = storage.lock(&dir.join(LOCK), mode)?;
        // Files opened for gets (user-read handles) read while opening count as recovery.
        let cause = engine_api::io_cause(engine_api::IoClass::Recovery);
        let recovered = recovery::recover(&storage, &dir, &options)?;
        drop(cause);
        let inner = Arc::new(Inner {
            sync_policy: common.sync,
            max_file_size: options.max_file_size,
            read_only: common.read_only,
            keydir: recovered.keydir,
            files: RwLock::new(recovered.files),
            retire: RwLock::new(()),
            writer: Mutex::new(None),
            queue: WriteQueue::default(),
            sync_lock: Mutex::new(()),
            commit: GroupCommit::new(0),
            publish: Publish::new(recovered.next_seq),
            next_file_id: AtomicU32::new(recovered.next_file_id),
            merge_lock: Mutex::new(()),
            counters: Counters::default(),
            stop: AtomicBool::new(false),
            jobs: Mutex::new(None),
            report: recovered.report,
            _lock: lock,
            dir,
            storage,
            opts: options,
        });
        if inner.read_only {
            return Ok(BitcaskEngine {
                inner,
                worker: None,
                periodic: None,
            });
        }
        *inner.writer.lock() = Some(inner.new_writer(recovered.next_seq)?);
        let worker = Worker::start(&inner)?;
        for id in recovered.need_hints {
            inner.send(Job::Sealed(id));
        }
        let periodic = periodic_sync(&inner)?;
        Ok(BitcaskEngine {
            inner,
            worker: Some(worker),
            periodic,
        })
    }

    /// What the open found and repaired: files loaded from hints or scans, torn tails cut,
    /// damaged ranges skipped (salvage), hints ignored, merges rolled forward, leftovers removed.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// Runs the merge policy now, in the calling thread (whatever [`crate::MergeOptions::auto`]
    /// says), and the merge it picks: `None` if no trigger fires.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] on a read-only engine; I/O or corruption errors met while merging.
    pub fn merge_if_needed(&self) -> Result<Option<CompactionSummary>> {
        if self.inner.read_only {
            return Err(Error::ReadOnly);
        }
        self.inner.merge_if_needed()
    }

    /// The error of the last background merge that failed, if any.
    pub fn last_merge_error(&self) -> Option<String> {
        self.inner.counters.merges.lock().last_error.clone()
    }
}

impl Inner {
    /// The next file id. Ids are never reused, so they never wrap: past `u32::MAX` there is
    /// none left, and creating a file fails with a typed error instead.
    ///
    /// # Errors
    /// An I/O error of kind `StorageFull` once every id was used.
    pub(crate) fn allocate_file_id(&self) -> Result<u32> {
        let next = self
            .next_file_id
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |id| id.checked_add(1));
        next.map_err(|_| {
            Error::io(
                "allocate a file id",
                &self.dir,
                std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "every file id (u32) was used; ids are never reused",
                ),
            )
        })
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Hands a job to the background worker (dropped if there is none).
    pub(crate) fn send(&self, job: Job) {
        if let Some(tx) = self.jobs.lock().as_ref() {
            let _ = tx.send(job);
        }
    }

    pub(crate) fn set_jobs(&self, tx: Option<Sender<Job>>) {
        *self.jobs.lock() = tx;
    }

    fn get(&self, key: &[u8]) -> Result<Option<(Loc, Arc<DataFile>, Value)>> {
        for _ in 0..GET_RETRIES {
            let Some(loc) = self.keydir.get(key) else {
                return Ok(None);
            };
            let file = self.files.read().get(&loc.file).cloned();
            // A missing file was retired by a merge after the lookup; the keydir already
            // points at the merged copy, so look again.
            if let Some(file) = file {
                let value = file.read_value(&loc, key)?;
                return Ok(Some((loc, file, value)));
            }
        }
        Err(Error::corruption(
            self.dir.clone(),
            0,
            "the keydir to point at a live data file",
        ))
    }
}

impl Engine for BitcaskEngine {
    fn name(&self) -> &'static str {
        "bitcask"
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        check_value(value)?;
        self.inner.write_ops(&[(key, Some(value))], false)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        check_key(key)?;
        Ok(self.inner.get(key)?.map(|(_, _, v)| v))
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        check_key(key)?;
        self.inner.write_ops(&[(key, None)], false)
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(());
        }
        let ops: Vec<Op<'_>> = batch
            .ops()
            .iter()
            .map(|op| (op.key(), op.value()))
            .collect();
        self.inner.write_ops(&ops, true)
    }

    fn scan(&self, range: KeyRange) -> Result<Scan<'_>> {
        range.validate()?;
        Ok(Box::new(crate::scan::Snapshot::take(&self.inner, &range)))
    }

    fn sync(&self) -> Result<()> {
        self.inner.sync_log()
    }

    fn compact(&self) -> Result<CompactionSummary> {
        if self.inner.read_only {
            return Err(Error::ReadOnly);
        }
        crate::merge::compact(&self.inner)
    }

    fn stats(&self) -> Stats {
        crate::stats::stats(&self.inner)
    }

    fn explain_get(&self, key: &[u8]) -> Result<ReadTrace> {
        check_key(key)?;
        let Some((loc, file, value)) = self.inner.get(key)? else {
            return Ok(ReadTrace {
                steps: vec![step("keydir: miss (key absent or deleted)", 0, 0)],
                value: None,
            });
        };
        let hit = format!(
            "keydir: hit, file {} offset {} length {} seq {}",
            loc.file, loc.offset, loc.len, loc.seq
        );
        let read = format!(
            "data file {}: one positional read of {} bytes at offset {}, crc ok",
            FileName::Data(file.id()).name(),
            loc.len,
            loc.offset
        );
        Ok(ReadTrace {
            steps: vec![step(&hit, 0, 0), step(&read, 1, u64::from(loc.len))],
            value: Some(value.to_vec()),
        })
    }
}

fn step(what: &str, reads: u64, bytes: u64) -> TraceStep {
    TraceStep {
        what: what.to_string(),
        reads,
        bytes,
        cached: false,
    }
}

impl Drop for BitcaskEngine {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        self.inner.set_jobs(None);
        drop(self.worker.take());
        drop(self.periodic.take());
        // A clean shutdown makes everything acknowledged durable. On a poisoned engine or a
        // frozen (crashed) storage there is nothing more to save: the error is the answer.
        let _ = self.inner.close_writer();
    }
}

/// The background sync of [`SyncPolicy::Periodic`]; it holds the engine weakly.
fn periodic_sync(inner: &Arc<Inner>) -> Result<Option<PeriodicTask>> {
    let SyncPolicy::Periodic(every) = inner.sync_policy else {
        return Ok(None);
    };
    let weak = Arc::downgrade(inner);
    let task = PeriodicTask::start("bitcask-sync", every, move || {
        weak.upgrade().is_some_and(|i| i.sync_log().is_ok())
    })?;
    Ok(Some(task))
}

/// Lists the directory for [`Stats::disk_bytes`] and [`Stats::file_count`]. An unsealed data
/// file counts at its logical end (the active file's preallocated zeros are no data; the
/// previous run's active file, in a read-only open, ends at its last verified record); every
/// other file at its size.
pub(crate) fn disk_usage(inner: &Inner) -> (u64, u64) {
    let names = inner.storage.list(&inner.dir).unwrap_or_default();
    let files = inner.files.read();
    let unsealed = |name: &str| match FileName::parse(name) {
        Some(FileName::Data(id)) => files.get(&id).filter(|f| !f.is_sealed()).map(|f| f.len()),
        _ => None,
    };
    let bytes = names
        .iter()
        .filter_map(|n| unsealed(n).or_else(|| inner.storage.file_len(&inner.dir.join(n)).ok()))
        .sum();
    (bytes, names.len() as u64)
}
