//! [`Stats`]: what an engine reports about itself, in one shape for every engine.

use std::time::Duration;

use serde::ser::{SerializeMap, Serializer};

use crate::storage::IoClass;

/// I/O of one [`IoClass`], as counted by [`crate::CountingStorage`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClassIo {
    /// Bytes appended.
    pub bytes_written: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Append calls.
    pub writes: u64,
    /// Read calls.
    pub reads: u64,
    /// File syncs.
    pub syncs: u64,
}

impl ClassIo {
    fn add(&mut self, other: &ClassIo) {
        self.bytes_written += other.bytes_written;
        self.bytes_read += other.bytes_read;
        self.writes += other.writes;
        self.reads += other.reads;
        self.syncs += other.syncs;
    }
}

/// I/O counted at the storage seam, per class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    classes: [ClassIo; IoClass::ALL.len()],
    /// Directory syncs.
    pub dir_syncs: u64,
    /// Files created.
    pub files_created: u64,
    /// Files removed.
    pub files_removed: u64,
}

impl IoStats {
    /// The counters of one class.
    pub fn class(&self, class: IoClass) -> ClassIo {
        self.classes.get(class.index()).copied().unwrap_or_default()
    }

    /// Replaces the counters of one class.
    pub fn set(&mut self, class: IoClass, io: ClassIo) {
        if let Some(slot) = self.classes.get_mut(class.index()) {
            *slot = io;
        }
    }

    /// The sum over the given classes.
    pub fn sum(&self, classes: &[IoClass]) -> ClassIo {
        let mut total = ClassIo::default();
        for class in classes {
            total.add(&self.class(*class));
        }
        total
    }

    /// The sum over every class.
    pub fn total(&self) -> ClassIo {
        self.sum(&IoClass::ALL)
    }

    /// Counters accumulated since `earlier` (saturating, so a reset never underflows).
    pub fn since(&self, earlier: &IoStats) -> IoStats {
        let mut out = IoStats::default();
        for class in IoClass::ALL {
            let (a, b) = (self.class(class), earlier.class(class));
            out.set(
                class,
                ClassIo {
                    bytes_written: a.bytes_written.saturating_sub(b.bytes_written),
                    bytes_read: a.bytes_read.saturating_sub(b.bytes_read),
                    writes: a.writes.saturating_sub(b.writes),
                    reads: a.reads.saturating_sub(b.reads),
                    syncs: a.syncs.saturating_sub(b.syncs),
                },
            );
        }
        out.dir_syncs = self.dir_syncs.saturating_sub(earlier.dir_syncs);
        out.files_created = self.files_created.saturating_sub(earlier.files_created);
        out.files_removed = self.files_removed.saturating_sub(earlier.files_removed);
        out
    }
}

impl serde::Serialize for IoStats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(IoClass::ALL.len() + 3))?;
        for class in IoClass::ALL {
            map.serialize_entry(class.name(), &self.class(class))?;
        }
        map.serialize_entry("dir_syncs", &self.dir_syncs)?;
        map.serialize_entry("files_created", &self.files_created)?;
        map.serialize_entry("files_removed", &self.files_removed)?;
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for IoStats {
    /// Reads what [`IoStats`]'s `Serialize` writes (a harness reads a child process's report);
    /// a class missing from the map counts zero.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut map: std::collections::BTreeMap<String, io_stats_serde::Field> =
            serde::Deserialize::deserialize(deserializer)?;
        let mut io = IoStats::default();
        for class in IoClass::ALL {
            if let Some(io_stats_serde::Field::Class(c)) = map.remove(class.name()) {
                io.set(class, c);
            }
        }
        let count =
            |map: &mut std::collections::BTreeMap<String, io_stats_serde::Field>, k| match map
                .remove(k)
            {
                Some(io_stats_serde::Field::Count(n)) => n,
                _ => 0,
            };
        io.dir_syncs = count(&mut map, "dir_syncs");
        io.files_created = count(&mut map, "files_created");
        io.files_removed = count(&mut map, "files_removed");
        Ok(io)
    }
}

/// The two shapes of an [`IoStats`] map entry.
mod io_stats_serde {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    pub(super) enum Field {
        Class(super::ClassIo),
        Count(u64),
    }
}

/// Time writers spent slowed down or stopped, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StallStats {
    /// Number of writes that were delayed or stopped.
    pub count: u64,
    /// Total time writers waited.
    pub time: Duration,
    /// The same, per cause (such as `"l0-slowdown"`, `"l0-stop"`, `"memtable-stop"`).
    pub by_cause: Vec<StallCause>,
}

/// Stalls of one cause.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StallCause {
    /// The cause.
    pub cause: String,
    /// Writes delayed or stopped for it.
    pub count: u64,
    /// Time they waited.
    pub time: Duration,
}

/// One level of an LSM tree, with RocksDB-style compaction statistics.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct LevelStats {
    /// Level number (0 is the newest).
    pub level: u32,
    /// Tables in the level.
    pub files: u64,
    /// Bytes in the level.
    pub bytes: u64,
    /// The compaction picker's score (compaction is due at 1.0 and above).
    pub score: f64,
    /// The level's target size, if it has one.
    pub target_bytes: u64,
    /// Bytes read from this level by compactions into the next (RocksDB `Rn`).
    pub bytes_read_from_level: u64,
    /// Bytes read from the next level by those compactions (RocksDB `Rnp1`).
    pub bytes_read_from_next: u64,
    /// Bytes written into this level by flushes or compactions (RocksDB `Write`).
    pub bytes_written: u64,
    /// Bytes moved into this level without rewriting (trivial moves).
    pub bytes_moved: u64,
    /// Compactions that wrote into this level.
    pub compactions: u64,
    /// Wall time of those compactions.
    pub compaction_time: Duration,
    /// Entries those compactions read.
    pub keys_in: u64,
    /// Entries those compactions dropped (shadowed versions and collected tombstones).
    pub keys_dropped: u64,
}

impl LevelStats {
    /// RocksDB's per-level write amplification: bytes written into the level over the bytes
    /// read from the level above, or 0 if nothing was read.
    pub fn write_amplification(&self) -> f64 {
        if self.bytes_read_from_level == 0 {
            0.0
        } else {
            ratio(self.bytes_written, self.bytes_read_from_level)
        }
    }
}

/// One file: a Bitcask data file or an LSM table.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileStats {
    /// File name.
    pub name: String,
    /// LSM level, if the file is a table.
    pub level: Option<u32>,
    /// Size in bytes.
    pub bytes: u64,
    /// Bytes still referenced by the index (Bitcask), if known.
    pub live_bytes: Option<u64>,
    /// Records or entries in the file.
    pub entries: u64,
    /// Smallest key, if known.
    pub smallest_key: Option<Vec<u8>>,
    /// Largest key, if known.
    pub largest_key: Option<Vec<u8>>,
}

impl FileStats {
    /// Fraction of the file still live, if known.
    pub fn live_ratio(&self) -> Option<f64> {
        self.live_bytes.map(|live| ratio(live, self.bytes))
    }
}

/// A snapshot of an engine's counters and shape. Cheap enough to call once a second.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// The engine's name (`"bitcask"`, `"lsm"`, ...).
    pub engine: String,
    /// Bytes of keys and values the user asked to write (a delete counts its key), since open.
    pub user_bytes_written: u64,
    /// Writes acknowledged since open (a batch counts each of its operations).
    pub user_writes: u64,
    /// I/O counted at the storage seam since open.
    pub io: IoStats,
    /// Compactions or merges completed since open.
    pub compactions: u64,
    /// Their wall-clock time.
    pub compaction_wall: Duration,
    /// Their CPU time (thread CPU time of the threads that ran them).
    pub compaction_cpu: Duration,
    /// Writer stalls.
    pub stalls: StallStats,
    /// Live keys (an estimate for engines that cannot know exactly without a scan).
    pub live_keys: u64,
    /// Bytes of all the engine's files on disk.
    pub disk_bytes: u64,
    /// Number of the engine's files on disk.
    pub file_count: u64,
    /// Memory held by the index: the keydir, or bloom filters and index blocks plus memtables.
    pub index_memory_bytes: u64,
    /// LSM levels (empty for engines without levels).
    pub levels: Vec<LevelStats>,
    /// Per-file detail (Bitcask data files with live ratios, LSM tables).
    pub files: Vec<FileStats>,
    /// Why background work (compaction) stopped for good, if it did: the engine then refuses
    /// writes with [`crate::Error::Poisoned`] carrying the same cause.
    pub background_error: Option<String>,
}

/// `a / b` as a float, 0 when `b` is 0.
pub fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        #[expect(clippy::cast_precision_loss, reason = "ratios of byte counts")]
        let r = a as f64 / b as f64;
        r
    }
}
