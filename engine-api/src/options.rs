//! The part of every engine's options that is shared: durability policy and storage.

use std::sync::Arc;
use std::time::Duration;

use crate::storage::{CountingStorage, IoCounters, OsStorage, Storage};

/// When an acknowledged write becomes durable (survives a power loss).
///
/// Whatever the policy, a write is handed to the operating system before the call that made it
/// returns `Ok`, so **a crash of the process alone (panic, SIGKILL, OOM kill) never loses an
/// acknowledged write**. The policies differ in what survives a crash of the machine.
/// `docs/durability.md` lists each promise with the test that checks it.
///
/// | policy | process crash | power loss / OS crash |
/// |---|---|---|
/// | `Always` | nothing lost | nothing acknowledged lost |
/// | `Periodic(d)` | nothing lost | writes of the last `d` (plus one sync's duration) may be lost; what survives is a prefix of the write order |
/// | `Never` | nothing lost | any suffix of unsynced writes may be lost; what survives is a prefix of the write order |
///
/// [`crate::Engine::sync`] makes everything acknowledged before it durable under every policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// Every write is synced (`fdatasync`) before it is acknowledged. Concurrent writers share
    /// one sync (group commit), so throughput grows with the number of writers.
    #[default]
    Always,
    /// A background thread syncs every so often; a write is durable at most this long after it
    /// is acknowledged.
    Periodic(Duration),
    /// The engine never syncs on its own (except at rotation, flush, merge and compaction
    /// commit points, which need it for their own correctness): the operating system decides.
    Never,
}

impl SyncPolicy {
    /// A short name for reports: `always`, `periodic-100ms`, `never`.
    pub fn label(&self) -> String {
        match self {
            SyncPolicy::Always => "always".to_string(),
            SyncPolicy::Periodic(d) => format!("periodic-{}ms", d.as_millis()),
            SyncPolicy::Never => "never".to_string(),
        }
    }
}

/// Options every engine takes.
#[derive(Clone, Debug)]
pub struct CommonOptions {
    /// Durability policy. Default: [`SyncPolicy::Always`].
    pub sync: SyncPolicy,
    /// Where the engine's files live. Default: the real file system ([`OsStorage`]). Tests pass
    /// a [`crate::SimStorage`] to simulate power loss and inject faults.
    pub storage: Arc<dyn Storage>,
    /// Create the directory if it does not exist. Default: true.
    pub create_if_missing: bool,
    /// Open without the ability to write: no lock is taken for writing, no file is created,
    /// repaired or removed, and every write returns [`crate::Error::ReadOnly`]. Default: false.
    pub read_only: bool,
}

impl CommonOptions {
    /// The same options with the storage wrapped in a fresh [`CountingStorage`], and its
    /// counters: a host that measures an engine (the bench harness) counts every byte and sync
    /// the engine makes itself, through the same classes the engine picks, instead of trusting
    /// the engine's [`crate::Stats::io`]. The engine still counts into its own counters too, so
    /// an engine opened without this reports the same figures.
    #[must_use]
    pub fn counted(mut self) -> (CommonOptions, std::sync::Arc<IoCounters>) {
        let counting = CountingStorage::new(Arc::clone(&self.storage));
        let counters = Arc::clone(counting.counters());
        self.storage = Arc::new(counting);
        (self, counters)
    }
}

impl Default for CommonOptions {
    fn default() -> Self {
        CommonOptions {
            sync: SyncPolicy::default(),
            storage: Arc::new(OsStorage::new()),
            create_if_missing: true,
            read_only: false,
        }
    }
}
