//! Removal of files no live version needs.
//!
//! A table removed from the current version by a committed edit is marked obsolete; it is
//! deleted when the last `Arc` to it (held by older versions, scans, reads) is dropped. Drops
//! happen on any thread, so they only queue the path; the flush thread, compactions and shutdown
//! drain the queue, removing the files and then syncing the directory once. A removal lost to a
//! crash leaves an orphan that the next open removes, so nothing here is on a commit path.

use std::path::PathBuf;
use std::sync::Arc;

use engine_api::Storage;
use parking_lot::Mutex;

/// The queue of files waiting for removal.
#[derive(Debug)]
pub(crate) struct ObsoleteFiles {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    pending: Mutex<Vec<PathBuf>>,
}

impl ObsoleteFiles {
    pub(crate) fn new(storage: Arc<dyn Storage>, dir: PathBuf) -> Self {
        ObsoleteFiles {
            storage,
            dir,
            pending: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn push(&self, path: PathBuf) {
        self.pending.lock().push(path);
    }

    /// Removes every queued file and syncs the directory. Failures are left for the next open.
    pub(crate) fn drain(&self) -> usize {
        let paths = std::mem::take(&mut *self.pending.lock());
        if paths.is_empty() {
            return 0;
        }
        let removed = paths
            .iter()
            .filter(|p| self.storage.remove(p).is_ok())
            .count();
        // Best effort: an undone removal is an orphan, collected at open.
        let _ = self.storage.sync_dir(&self.dir);
        removed
    }
}
