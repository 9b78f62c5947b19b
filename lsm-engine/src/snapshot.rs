//! Snapshots: read views pinned at a sequence number.
//!
//! The engine keeps a count per pinned sequence number so compaction can find the oldest one
//! (its `seq_cutoff`): versions a live snapshot can still read are never dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::key::SeqNo;

/// The live snapshots, counted per sequence number.
#[derive(Debug, Default)]
pub(crate) struct SnapshotList {
    pinned: Mutex<BTreeMap<SeqNo, usize>>,
}

impl SnapshotList {
    /// The compaction cutoff: the oldest sequence number a live snapshot or a read now can see.
    /// Read under the same lock a new snapshot pins under, so the two are ordered: either the
    /// snapshot is pinned first and the cutoff is at or below it, or the cutoff is computed
    /// first and the snapshot, reading `visible` later, is at or above it. (Read separately, a
    /// plan made between a snapshot's read of `visible` and its pin could drop a version the
    /// snapshot needs.)
    pub(crate) fn cutoff(&self, visible: &AtomicU64) -> SeqNo {
        let pinned = self.pinned.lock();
        let now = visible.load(Ordering::SeqCst);
        pinned.keys().next().map_or(now, |&oldest| oldest.min(now))
    }
}

/// A consistent read view: reads and scans through it see exactly the writes acknowledged
/// before it was taken, whatever is written, flushed or compacted afterwards. Dropping it lets
/// compaction reclaim the versions it kept alive.
///
/// Taken with [`crate::LsmEngine::snapshot`]; read with [`crate::LsmEngine::get_at`] and
/// [`crate::LsmEngine::scan_at`].
#[derive(Debug)]
pub struct Snapshot {
    seq: SeqNo,
    list: Arc<SnapshotList>,
}

impl Snapshot {
    /// Pins the sequence number `visible` holds now, reading it under the list's lock (see
    /// [`SnapshotList::cutoff`]).
    pub(crate) fn new(list: &Arc<SnapshotList>, visible: &AtomicU64) -> Snapshot {
        let mut pinned = list.pinned.lock();
        let seq = visible.load(Ordering::SeqCst);
        *pinned.entry(seq).or_default() += 1;
        drop(pinned);
        Snapshot {
            seq,
            list: Arc::clone(list),
        }
    }

    pub(crate) fn belongs_to(&self, list: &Arc<SnapshotList>) -> bool {
        Arc::ptr_eq(&self.list, list)
    }

    /// The sequence number the snapshot reads at.
    pub fn sequence(&self) -> u64 {
        self.seq
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let mut pinned = self.list.pinned.lock();
        if let Some(n) = pinned.get_mut(&self.seq) {
            *n -= 1;
            if *n == 0 {
                pinned.remove(&self.seq);
            }
        }
    }
}
