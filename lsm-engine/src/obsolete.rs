//! Removal of files no live version needs.
//!
//! A file made obsolete by a committed edit (a table a compaction replaced, a WAL a flush made
//! redundant) is removed only once a *later* manifest record is durable too. Damage confined to
//! the last record of a manifest looks like a torn write and undoes that record at the next open
//! (`docs/formats/manifest.md`); holding back its deletions means undoing it loses nothing: the
//! WALs and input tables it made obsolete are still there. Each queued file carries the epoch
//! (count of durable manifest records) of the edit that obsoleted it, and is removable once the
//! durable epoch has moved past it.
//!
//! A table is queued when the last `Arc` to it (held by older versions, scans, reads) is
//! dropped, on whatever thread that happens; the flush thread, compactions and shutdown drain
//! the queue, removing the files and then syncing the directory once. A removal lost to a crash
//! leaves an orphan that the next open removes, so nothing here is on a commit path.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use engine_api::Storage;
use parking_lot::Mutex;

/// The queue of files waiting for removal.
#[derive(Debug)]
pub(crate) struct ObsoleteFiles {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    pending: Mutex<Vec<(PathBuf, u64)>>,
    durable_epoch: AtomicU64,
}

impl ObsoleteFiles {
    pub(crate) fn new(storage: Arc<dyn Storage>, dir: PathBuf) -> Self {
        ObsoleteFiles {
            storage,
            dir,
            pending: Mutex::new(Vec::new()),
            durable_epoch: AtomicU64::new(0),
        }
    }

    /// Queues `path`, made obsolete by the manifest record of `epoch` (0: removable at once).
    pub(crate) fn push(&self, path: PathBuf, epoch: u64) {
        let mut pending = self.pending.lock();
        if !pending.iter().any(|(p, _)| *p == path) {
            pending.push((path, epoch));
        }
    }

    /// Records that manifest records up to `epoch` are durable.
    pub(crate) fn set_durable_epoch(&self, epoch: u64) {
        self.durable_epoch.fetch_max(epoch, Ordering::SeqCst);
    }

    /// Removes every queued file whose edit is followed by a durable record, then syncs the
    /// directory. Failures are left for the next open.
    pub(crate) fn drain(&self) -> usize {
        let durable = self.durable_epoch.load(Ordering::SeqCst);
        let ready: Vec<PathBuf> = {
            let mut pending = self.pending.lock();
            let (ready, kept) = pending.drain(..).partition(|(_, e)| *e < durable);
            *pending = kept;
            ready.into_iter().map(|(p, _)| p).collect()
        };
        if ready.is_empty() {
            return 0;
        }
        let removed = ready
            .iter()
            .filter(|p| self.storage.remove(p).is_ok())
            .count();
        // Best effort: an undone removal is an orphan, collected at open.
        let _ = self.storage.sync_dir(&self.dir);
        removed
    }
}
