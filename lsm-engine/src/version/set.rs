//! [`VersionSet`]: the current version, the file-number counter and the live manifest; every
//! change to the set of tables goes through [`VersionSet::log_and_apply`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use engine_api::{Error, Result, Storage};
use parking_lot::Mutex;

use super::manifest::ManifestWriter;
use super::{Version, VersionEdit};
use crate::filename;
use crate::obsolete::ObsoleteFiles;
use crate::sstable::Table;

/// The state recovered from a manifest, or kept while running.
#[derive(Clone, Debug)]
pub(crate) struct ManifestState {
    pub(crate) current: Arc<Version>,
    pub(crate) log_number: u64,
    pub(crate) last_sequence: u64,
    /// The last recorded synced length of a WAL (see [`VersionEdit::wal_synced`]).
    pub(crate) wal_synced: Option<(u64, u64)>,
}

struct Inner {
    state: ManifestState,
    /// Manifest records made durable by this process: the epoch of `ObsoleteFiles`.
    epoch: u64,
    /// `None` for a read-only engine, or after a failed manifest write (nothing more may be
    /// committed: whether that write reached the disk is unknown).
    writer: Option<ManifestWriter>,
    /// Why `writer` was dropped, if a write failed: a later commit is refused with it, so the
    /// job that meets the dropped writer reports the I/O failure, not a bad argument.
    failed: Option<String>,
}

/// See the module documentation.
pub(crate) struct VersionSet {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    next_file: AtomicU64,
    rollover_bytes: u64,
    obsolete: Arc<ObsoleteFiles>,
    inner: Mutex<Inner>,
}

impl VersionSet {
    pub(crate) fn new(
        dir: &Path,
        storage: Arc<dyn Storage>,
        state: ManifestState,
        next_file: u64,
        rollover_bytes: u64,
        obsolete: Arc<ObsoleteFiles>,
    ) -> Self {
        VersionSet {
            dir: dir.to_path_buf(),
            storage,
            next_file: AtomicU64::new(next_file),
            rollover_bytes,
            obsolete,
            inner: Mutex::new(Inner {
                state,
                epoch: 0,
                writer: None,
                failed: None,
            }),
        }
    }

    /// A fresh file number, never used before.
    pub(crate) fn new_file_number(&self) -> u64 {
        self.next_file.fetch_add(1, Ordering::SeqCst)
    }

    /// The next number [`VersionSet::new_file_number`] would return.
    pub(crate) fn next_file_number(&self) -> u64 {
        self.next_file.load(Ordering::SeqCst)
    }

    pub(crate) fn current(&self) -> Arc<Version> {
        Arc::clone(&self.inner.lock().state.current)
    }

    pub(crate) fn state(&self) -> ManifestState {
        self.inner.lock().state.clone()
    }

    /// The live manifest's number.
    pub(crate) fn manifest_number(&self) -> Option<u64> {
        self.inner
            .lock()
            .writer
            .as_ref()
            .map(ManifestWriter::number)
    }

    fn snapshot(&self, state: &ManifestState) -> VersionEdit {
        VersionEdit {
            log_number: Some(state.log_number),
            next_file_number: Some(self.next_file_number()),
            last_sequence: Some(state.last_sequence),
            added: state.current.snapshot_files(),
            // Still true while its WAL is live; moot once a flush made the WAL obsolete.
            wal_synced: state.wal_synced.filter(|&(n, _)| n >= state.log_number),
            ..VersionEdit::default()
        }
    }

    /// Starts a new manifest holding a snapshot of the current state, makes it live through
    /// `CURRENT`, then removes the previous one. Used at open and when the manifest grows past
    /// its limit.
    pub(crate) fn roll_manifest(&self) -> Result<()> {
        let mut inner = self.inner.lock();
        let state = inner.state.clone();
        self.roll_locked(&mut inner, &state)
    }

    fn roll_locked(&self, inner: &mut Inner, state: &ManifestState) -> Result<()> {
        let number = self.new_file_number();
        let old = inner.writer.take().map(|w| w.number());
        let writer =
            ManifestWriter::create(&*self.storage, &self.dir, number, &self.snapshot(state))?;
        inner.writer = Some(writer);
        self.advance_epoch(inner);
        if let Some(old) = old {
            // Nothing reads the previous manifest once CURRENT names the new one.
            self.obsolete.push(filename::manifest(&self.dir, old), 0);
        }
        Ok(())
    }

    fn advance_epoch(&self, inner: &mut Inner) {
        inner.epoch += 1;
        self.obsolete.set_durable_epoch(inner.epoch);
    }

    /// The epoch of the last durable manifest record.
    pub(crate) fn epoch(&self) -> u64 {
        self.inner.lock().epoch
    }

    /// Commits `edit` and installs the version it makes. `added` holds the opened tables of
    /// `edit.added`, in order. Steps:
    /// 1. build the new version in memory (checking the edit against the current one);
    /// 2. append the edit to the manifest and sync it, or roll over to a new manifest holding a
    ///    snapshot that includes the edit: the edit is committed once this returns;
    /// 3. mark the removed tables obsolete (their files go when their last reader does, and
    ///    not before a later manifest record is durable: see `crate::obsolete`);
    /// 4. install the new version, and call `install` with it while still holding the manifest
    ///    lock, so versions are installed in commit order.
    ///
    /// On a failed write nothing more is committed (the write may or may not be on disk).
    pub(crate) fn log_and_apply(
        &self,
        mut edit: VersionEdit,
        added: &[Arc<Table>],
        install: impl FnOnce(&Arc<Version>),
    ) -> Result<Arc<Version>> {
        let mut inner = self.inner.lock();
        let version = inner
            .state
            .current
            .apply(&edit, added)
            .map_err(|e| Error::invalid(format!("version edit rejected: {e}")))?;
        let mut state = inner.state.clone();
        state.current = Arc::new(version);
        state.log_number = edit
            .log_number
            .unwrap_or(state.log_number)
            .max(state.log_number);
        state.last_sequence = edit.last_sequence.unwrap_or(0).max(state.last_sequence);
        state.wal_synced = edit.wal_synced.or(state.wal_synced);
        edit.log_number = Some(state.log_number);
        edit.last_sequence = Some(state.last_sequence);
        edit.next_file_number = Some(self.next_file_number());
        let Some(writer) = inner.writer.as_ref() else {
            return Err(refusal(inner.failed.as_deref()));
        };
        let written = if writer.size() >= self.rollover_bytes {
            self.roll_locked(&mut inner, &state)
        } else {
            writer
                .append(&edit)
                .map(|()| self.advance_epoch(&mut inner))
        };
        if let Err(e) = written {
            inner.writer = None;
            inner.failed.get_or_insert_with(|| e.to_string());
            return Err(e);
        }
        let moved: Vec<u64> = edit.added.iter().map(|(_, m)| m.number).collect();
        for &(_, number) in &edit.deleted {
            if moved.contains(&number) {
                continue;
            }
            if let Some((_, t)) = inner.state.current.find(number) {
                t.mark_obsolete(&self.obsolete, inner.epoch);
            }
        }
        inner.state = state;
        install(&inner.state.current);
        Ok(Arc::clone(&inner.state.current))
    }
}

/// The error for a commit with no manifest writer: after a failed write, `Poisoned` with its
/// cause (whether that write reached the disk is unknown, so nothing may follow it).
fn refusal(failed: Option<&str>) -> Error {
    match failed {
        Some(cause) => Error::Poisoned {
            cause: cause.to_string(),
        },
        None => Error::invalid("the manifest cannot take edits (read-only)"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use engine_api::{Error, FaultOp, SimStorage, Storage};

    use super::{ManifestState, VersionSet};
    use crate::obsolete::ObsoleteFiles;
    use crate::version::{Version, VersionEdit};

    fn live_set(sim: &SimStorage) -> VersionSet {
        let storage: Arc<dyn Storage> = Arc::new(sim.clone());
        let dir = Path::new("/db");
        storage.create_dir_all(dir).unwrap();
        let state = ManifestState {
            current: Arc::new(Version::from_levels(vec![Vec::new(); 7]).unwrap()),
            log_number: 0,
            last_sequence: 0,
            wal_synced: None,
        };
        let obsolete = Arc::new(ObsoleteFiles::new(Arc::clone(&storage), dir.into()));
        let set = VersionSet::new(dir, storage, state, 2, u64::MAX, obsolete);
        set.roll_manifest().unwrap();
        set
    }

    /// A commit after a failed manifest sync (a flush's, seen by a compaction that finishes
    /// later) is refused with the failure's cause: it is an I/O failure, not a bad argument.
    #[test]
    fn an_edit_after_a_failed_manifest_sync_names_the_failure() {
        let sim = SimStorage::new();
        let set = live_set(&sim);
        sim.inject_fault(FaultOp::Sync, 0, false);
        let first = set.log_and_apply(VersionEdit::default(), &[], |_| {});
        assert!(matches!(first, Err(Error::Io { .. })), "{first:?}");
        match set.log_and_apply(VersionEdit::default(), &[], |_| {}) {
            Err(Error::Poisoned { cause }) if cause.contains("injected fault") => {}
            other => panic!("a later edit returned {other:?}, expected Poisoned naming the fault"),
        }
    }
}
