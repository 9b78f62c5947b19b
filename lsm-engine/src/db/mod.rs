//! [`LsmEngine`]: the engine's shared state and its public face. The write path is in
//! `write.rs`, the read path in `read.rs`, opening in `crate::recovery`, flushing in
//! `crate::flush`, compaction in `crate::compaction`. `docs/lsm.md` describes the protocols.

mod read;
#[cfg(test)]
mod tests;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::thread::JoinHandle;

use engine_api::{
    CompactionSummary, CountingStorage, Engine, Error, FileLock, GroupCommit, IoCounters, KeyRange,
    PeriodicTask, Poison, ReadTrace, Result, Scan, Stats, SyncPolicy, Value, WriteBatch, check_key,
};
use parking_lot::{Condvar, Mutex, RwLock};

use crate::compaction::{CompactionManager, JobInfo};
use crate::memtable::Memtable;
use crate::obsolete::ObsoleteFiles;
use crate::op::Op;
use crate::options::LsmOptions;
use crate::repair::RecoveryReport;
use crate::snapshot::{Snapshot, SnapshotList};
use crate::sstable::BlockCache;
use crate::stats::Counters;
use crate::version::{Version, VersionEdit, VersionSet};
use crate::wal::WalWriter;
use crate::{compaction, flush, recovery, stats};

/// A sealed memtable waiting to be flushed.
#[derive(Clone, Debug)]
pub(crate) struct Sealed {
    pub(crate) mem: Arc<Memtable>,
    /// The WAL that took writes after this memtable was sealed: once the flush commits, every
    /// WAL numbered below it is obsolete.
    pub(crate) next_wal: u64,
}

/// Everything a read needs, swapped atomically: the active memtable, the sealed ones (oldest
/// first) and the current version. A read takes one `Arc` of it and sees one consistent state.
#[derive(Debug)]
pub(crate) struct SuperVersion {
    pub(crate) mem: Arc<Memtable>,
    pub(crate) imms: Vec<Sealed>,
    pub(crate) version: Arc<Version>,
}

/// The writer's state, behind the writer mutex.
pub(crate) struct Writer {
    pub(crate) wal: Option<Arc<WalWriter>>,
    /// Bytes appended to WALs since open, across files: the group-commit position.
    pub(crate) appended: u64,
    pub(crate) last_seq: u64,
}

/// The WAL a group-commit leader syncs and the position that sync covers.
pub(crate) struct WalTail {
    pub(crate) wal: Option<Arc<WalWriter>>,
    pub(crate) appended: u64,
}

/// Background-thread signalling.
#[derive(Default)]
pub(crate) struct Background {
    pub(crate) shutdown: bool,
    /// The flush thread holds a sealed memtable (from taking a job until it has let go of it).
    pub(crate) flushing: bool,
}

/// State shared by the engine handle, the flush thread and the periodic sync.
pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) storage: Arc<dyn engine_api::Storage>,
    pub(crate) io: Arc<IoCounters>,
    pub(crate) opts: LsmOptions,
    pub(crate) versions: VersionSet,
    pub(crate) sv: RwLock<Arc<SuperVersion>>,
    pub(crate) writer: Mutex<Writer>,
    pub(crate) wal_tail: Mutex<WalTail>,
    pub(crate) commit: GroupCommit,
    pub(crate) poison: Poison,
    /// Reads see sequence numbers up to this.
    pub(crate) visible_seq: AtomicU64,
    /// The last sequence number handed out (read by the flush thread, which must not take the
    /// writer lock: a stalled writer holds it while waiting for the flush).
    pub(crate) allocated_seq: AtomicU64,
    pub(crate) snapshots: Arc<SnapshotList>,
    pub(crate) cache: Option<Arc<BlockCache>>,
    pub(crate) obsolete: Arc<ObsoleteFiles>,
    pub(crate) bg: Mutex<Background>,
    pub(crate) bg_cv: Condvar,
    pub(crate) compaction_lock: Mutex<()>,
    pub(crate) counters: Counters,
    pub(crate) compactions: CompactionManager,
    /// What the open found and repaired.
    pub(crate) report: RecoveryReport,
    pub(crate) _lock: Box<dyn FileLock>,
}

impl Inner {
    /// The engine's poison: set by any failed sync or background failure; writes check it
    /// before appending, so a refused write never reaches the WAL.
    pub(crate) fn poison(&self) -> &Poison {
        &self.poison
    }

    /// A WAL sync failed: poison the engine and the group commit (so no waiter ever syncs the
    /// WAL again: a failed fsync is never retried).
    pub(crate) fn wal_sync_failed(&self, e: &Error) {
        self.poison.set(e);
        self.commit.poison().set(e);
    }

    pub(crate) fn read_only(&self) -> bool {
        self.opts.common.read_only
    }

    pub(crate) fn current(&self) -> Arc<SuperVersion> {
        Arc::clone(&self.sv.read())
    }

    /// Wakes every thread waiting on background progress.
    pub(crate) fn notify_bg(&self) {
        let _guard = self.bg.lock();
        self.bg_cv.notify_all();
    }

    /// Installs a new version, keeping the memtables.
    pub(crate) fn install_version(&self, version: &Arc<Version>) {
        let mut sv = self.sv.write();
        *sv = Arc::new(SuperVersion {
            mem: Arc::clone(&sv.mem),
            imms: sv.imms.clone(),
            version: Arc::clone(version),
        });
    }

    /// Syncs the active WAL and marks what it covers durable.
    pub(crate) fn sync_wal(&self) -> Result<()> {
        if self.read_only() {
            return Ok(());
        }
        self.poison().check()?;
        let covered = self.sync_tail().inspect_err(|e| self.wal_sync_failed(e))?;
        self.commit.mark_durable(covered);
        Ok(())
    }

    /// The clean-close protocol (`docs/lsm.md`, "Close"), with background work stopped:
    /// 1. cut the active WAL's preallocated tail and sync it (it is then durable through its
    ///    length `L`, and ends there);
    /// 2. commit a manifest edit recording `(WAL number, L)` (append + sync).
    ///
    /// At the next open that WAL must hold `L` bytes of good records: a cut or damaged end is
    /// corruption instead of a torn tail. Skipped when read-only or poisoned (nothing can be
    /// proven then).
    pub(crate) fn close_wal(&self) -> Result<()> {
        let writer = self.writer.lock();
        let Some(wal) = writer.wal.clone() else {
            return Ok(());
        };
        if !self.read_only() {
            self.poison().check()?;
            wal.seal().inspect_err(|e| self.wal_sync_failed(e))?;
        }
        self.sync_wal()?;
        let edit = VersionEdit {
            wal_synced: Some((wal.number(), wal.len())),
            ..VersionEdit::default()
        };
        self.versions
            .log_and_apply(edit, &[], |v| self.install_version(v))?;
        drop(writer);
        Ok(())
    }

    /// Syncs the WAL writes currently go to; returns the position that covers.
    pub(crate) fn sync_tail(&self) -> Result<u64> {
        let (wal, appended) = {
            let tail = self.wal_tail.lock();
            (tail.wal.clone(), tail.appended)
        };
        if let Some(wal) = wal {
            wal.sync()?;
        }
        Ok(appended)
    }

    /// Runs the test hook between a read's two steps.
    pub(crate) fn between_read_steps(&self) {
        #[cfg(feature = "testing")]
        self.compactions.hooks().fire_between_read_steps();
    }

    /// Runs the test hook between a write's poison check and its taking the writer lock.
    pub(crate) fn before_writer_lock(&self) {
        #[cfg(feature = "testing")]
        self.compactions.hooks().fire_before_writer_lock();
    }

    /// Poisons the engine if `e` is an I/O error: after one, what reached the disk is unknown.
    pub(crate) fn poison_on_io(&self, e: &Error) {
        if matches!(e, Error::Io { .. } | Error::Poisoned { .. }) {
            self.poison().set(e);
        }
    }
}

/// A leveled LSM-tree engine. See the crate documentation.
pub struct LsmEngine {
    inner: Arc<Inner>,
    flusher: Option<JoinHandle<()>>,
    periodic: Option<PeriodicTask>,
}

impl LsmEngine {
    /// Opens (creating if allowed) the engine in `dir`: replays the manifest and the WALs,
    /// removes files no committed edit names, and starts the flush thread.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for bad options or a missing directory that may not be
    /// created, [`Error::Locked`] if another engine holds the directory, [`Error::Corruption`]
    /// for damaged files (unless [`LsmOptions::salvage`] rebuilt the table set around them),
    /// I/O errors.
    pub fn open(dir: impl AsRef<Path>, options: LsmOptions) -> Result<LsmEngine> {
        Self::open_prepared(dir.as_ref(), options, |_| {})
    }

    /// As [`LsmEngine::open`], with `hooks` armed before any engine thread starts (so that, for
    /// example, the spawn of a job resumed at open can be refused).
    ///
    /// # Errors
    /// As [`LsmEngine::open`].
    #[cfg(feature = "testing")]
    pub fn open_with_hooks(
        dir: impl AsRef<Path>,
        options: LsmOptions,
        hooks: Arc<crate::testing::TestHooks>,
    ) -> Result<LsmEngine> {
        Self::open_prepared(dir.as_ref(), options, |inner| {
            inner.compactions.use_hooks(hooks);
        })
    }

    /// Recovery, then `prepare` on the engine before anything runs in the background.
    fn open_prepared(
        dir: &Path,
        options: LsmOptions,
        prepare: impl FnOnce(&mut Inner),
    ) -> Result<LsmEngine> {
        options.validate()?;
        let counting = CountingStorage::new(Arc::clone(&options.common.storage));
        let io = Arc::clone(counting.counters());
        let storage: Arc<dyn engine_api::Storage> = Arc::new(counting);
        // Tables opened for gets (user-read handles) load their indexes here: recovery's reads.
        let cause = engine_api::io_cause(engine_api::IoClass::Recovery);
        let (mut inner, resumes) = recovery::open(dir, storage, io, options)?;
        drop(cause);
        prepare(&mut inner);
        let inner = Arc::new(inner);
        inner.compactions.attach(&inner, resumes);
        inner.compactions.check_and_compact();
        let flusher = if inner.read_only() {
            None
        } else {
            let bg = Arc::clone(&inner);
            Some(
                std::thread::Builder::new()
                    .name("lsm-flush".into())
                    .spawn(move || flush::run(&bg))
                    .map_err(|e| Error::io("spawn", "lsm-flush", e))?,
            )
        };
        let periodic = match inner.opts.common.sync {
            SyncPolicy::Periodic(every) if !inner.read_only() => {
                let weak = Arc::downgrade(&inner);
                Some(PeriodicTask::start("lsm-sync", every, move || {
                    weak.upgrade().is_some_and(|i| i.sync_wal().is_ok())
                })?)
            }
            _ => None,
        };
        Ok(LsmEngine {
            inner,
            flusher,
            periodic,
        })
    }

    /// A read view of everything acknowledged so far, unaffected by later writes.
    pub fn snapshot(&self) -> Snapshot {
        #[cfg(feature = "testing")]
        self.inner.compactions.hooks().fire_before_snapshot();
        Snapshot::new(&self.inner.snapshots, &self.inner.visible_seq)
    }

    /// The engine's test hooks.
    #[cfg(feature = "testing")]
    pub fn test_hooks(&self) -> Arc<crate::testing::TestHooks> {
        Arc::clone(self.inner.compactions.hooks())
    }

    /// The value of `key` as of `snapshot`.
    ///
    /// # Errors
    /// As [`Engine::get`]; [`Error::InvalidArgument`] for a snapshot of another engine.
    pub fn get_at(&self, snapshot: &Snapshot, key: &[u8]) -> Result<Option<Value>> {
        check_key(key)?;
        self.check_snapshot(snapshot)?;
        self.inner.get_at(key, Some(snapshot.sequence()), None)
    }

    /// The pairs in `range` as of `snapshot`, in ascending key order.
    ///
    /// # Errors
    /// As [`Engine::scan`]; [`Error::InvalidArgument`] for a snapshot of another engine.
    pub fn scan_at(&self, snapshot: &Snapshot, range: KeyRange) -> Result<Scan<'_>> {
        range.validate()?;
        self.check_snapshot(snapshot)?;
        Ok(self.inner.scan_at(Some(snapshot.sequence()), range))
    }

    fn check_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        if snapshot.belongs_to(&self.inner.snapshots) {
            Ok(())
        } else {
            Err(Error::invalid("snapshot taken from another engine"))
        }
    }

    /// What the open found and repaired: with [`LsmOptions::salvage`], whether the table set
    /// was rebuilt from the files on disk, what was kept and what was skipped as damaged.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// The compaction manager (see [`CompactionManager`]).
    pub fn compaction_manager(&self) -> &CompactionManager {
        &self.inner.compactions
    }

    /// The compaction jobs running now.
    pub fn active_compactions(&self) -> Vec<JobInfo> {
        self.inner.compactions.active_jobs()
    }

    /// Seals the active memtable (if it holds anything) and waits until every sealed memtable
    /// is flushed to L0 and committed.
    ///
    /// # Errors
    /// [`Error::ReadOnly`], [`Error::Poisoned`], or the flush's error.
    pub fn flush(&self) -> Result<()> {
        self.inner.flush_all()
    }
}

impl Engine for LsmEngine {
    fn name(&self) -> &'static str {
        "lsm"
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let op = Op::put(key, value);
        write::validate_one(op)?;
        self.inner.write_one(op)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        check_key(key)?;
        self.inner.get_at(key, None, None)
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        let op = Op::delete(key);
        write::validate_one(op)?;
        self.inner.write_one(op)
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(());
        }
        self.inner.write(batch)
    }

    fn scan(&self, range: KeyRange) -> Result<Scan<'_>> {
        range.validate()?;
        Ok(self.inner.scan_at(None, range))
    }

    fn sync(&self) -> Result<()> {
        self.inner.sync_wal()
    }

    fn compact(&self) -> Result<CompactionSummary> {
        compaction::compact_all(&self.inner)
    }

    fn stats(&self) -> Stats {
        stats::collect(&self.inner)
    }

    fn explain_get(&self, key: &[u8]) -> Result<ReadTrace> {
        check_key(key)?;
        let mut steps = Vec::new();
        let value = self.inner.get_at(key, None, Some(&mut steps))?;
        Ok(ReadTrace {
            steps,
            value: value.map(|v| v.to_vec()),
        })
    }
}

impl Drop for LsmEngine {
    fn drop(&mut self) {
        self.periodic = None;
        // Running jobs stop at their next checkpoint; their logs resume them at the next open.
        self.inner.compactions.shutdown();
        self.inner.bg.lock().shutdown = true;
        self.inner.bg_cv.notify_all();
        if let Some(flusher) = self.flusher.take() {
            // A panicked flush thread has nothing left to clean up.
            let _ = flusher.join();
        }
        // Jobs the flush thread started after the first shutdown call.
        self.inner.compactions.shutdown();
        // A clean shutdown makes everything acknowledged durable and its end provable. After a
        // failed sync or a simulated power loss there is nothing more to save.
        let _ = self.inner.close_wal();
        if !self.inner.read_only() {
            self.inner.obsolete.drain();
        }
    }
}
