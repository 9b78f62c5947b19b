//! Snapshots: read views pinned at a sequence number.
//!
//! The engine keeps a count per pinned sequence number so compaction can find the oldest one
//! (its `seq_cutoff`): versions a live snapshot can still read are never dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::key::SeqNo;

/// The live snapshots, counted per sequence number.
#[derive(Debug, Default)]
pub(crate) struct SnapshotList {
    pinned: Mutex<BTreeMap<SeqNo, usize>>,
}

impl SnapshotList {
    /// The oldest pinned sequence number, if any snapshot is live.
    pub(crate) fn oldest(&self) -> Option<SeqNo> {
        self.pinned.lock().keys().next().copied()
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
    pub(crate) fn new(list: &Arc<SnapshotList>, seq: SeqNo) -> Snapshot {
        *list.pinned.lock().entry(seq).or_default() += 1;
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
