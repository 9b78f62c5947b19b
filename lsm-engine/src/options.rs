//! [`LsmOptions`]: everything the engine can be tuned by.

use engine_api::{CommonOptions, Error, Result};

/// Options of an [`crate::LsmEngine`]. Start from `LsmOptions::default()` and change fields.
///
/// ```
/// let options = lsm_engine::LsmOptions {
///     memtable_bytes: 1 << 20,
///     ..lsm_engine::LsmOptions::default()
/// };
/// assert_eq!(options.block_bytes, 4096);
/// ```
#[derive(Clone, Debug)]
pub struct LsmOptions {
    /// Durability policy, storage, create and read-only flags shared by every engine.
    pub common: CommonOptions,
    /// A memtable is rotated (sealed and queued for flushing) once it holds about this many
    /// bytes. Default: 8 MiB: large enough that a flush writes one table near
    /// `target_file_bytes` and L0 fills slowly, small enough that replaying the WAL at open
    /// stays well under a second (RocksDB's 64 MiB trades open time for fewer L0 files).
    ///
    /// Measured (harness, 1 M keys of 16 + 100 bytes, fillrandom then overwrite, one thread):
    /// 64 MiB cut flush plus compaction writes from 4.7x to 1.7x the user bytes and the
    /// process's CPU time by about a fifth, but there a memtable holds a third of the whole data
    /// set, which flatters it; the cost is paid by every user: up to three memtables
    /// (`max_immutable_memtables` + 1) of 64 MiB resident instead of 8, and up to that much WAL
    /// replayed at open. The default stays 8 MiB; a write-heavy store with memory to spare
    /// should raise it.
    pub memtable_bytes: usize,
    /// Sealed memtables waiting to be flushed before writers stop and wait for the flush thread.
    /// Default: 2.
    pub max_immutable_memtables: usize,
    /// Target size of an SSTable data block before it is cut. Default: 4 KiB: one page, so a
    /// cache miss reads one page and a point read decodes at most one block's restart run
    /// (RocksDB's and fjall's default too).
    pub block_bytes: usize,
    /// A full key is stored every this many entries of a data block (a restart point).
    /// Default: 16 (as RocksDB and LevelDB): a seek binary-searches the restarts in place, then
    /// decodes at most 16 entries; fewer would cost 4 bytes per restart and prefix compression.
    pub block_restart_interval: usize,
    /// Bloom filter bits per key; 0 builds no filter. Default: 10 (about 1 % false positives):
    /// a miss in a table then costs a filter probe, not a block read, for 1.25 bytes per key.
    pub bloom_bits_per_key: u32,
    /// Capacity of the cache of data blocks (CLOCK, `sstable/cache.rs`), in bytes; 0 disables
    /// it. Default: 32 MiB, as RocksDB and fjall: index and filter blocks are held apart (per
    /// table), so the cache holds only data blocks and the OS page cache backs it up.
    pub block_cache_bytes: usize,
    /// Compaction outputs are cut into tables of about this size. Default: 8 MiB: a
    /// compaction's unit of work and of space amplification stays small, while the per-table
    /// index and filter stay a small share of memory.
    pub target_file_bytes: u64,
    /// Number of levels (L0 to L`num_levels - 1`). Default: 7.
    pub num_levels: usize,
    /// The manifest is rolled over to a fresh snapshot once it grows past this. Default: 4 MiB.
    pub manifest_rollover_bytes: u64,
    /// Run compactions in the background as levels fill up. Default: true. With false, only
    /// `compact()` compacts (and writes never stall on L0 or debt).
    pub auto_compaction: bool,
    /// L0 is due for compaction at this many files. Default: 4.
    pub l0_compaction_trigger: usize,
    /// Writes are slowed down (a short sleep growing with the file count) from this many L0
    /// files. Default: 20.
    pub l0_slowdown_trigger: usize,
    /// Writes wait for compaction at this many L0 files. Default: 36.
    pub l0_stop_trigger: usize,
    /// Target size of the base level (the level L0 compacts into); deeper levels grow by
    /// `level_size_multiplier` each, sized from the last level (dynamic level bytes).
    /// Default: 64 MiB.
    pub max_bytes_for_level_base: u64,
    /// Size ratio between adjacent levels. Default: 10.
    pub level_size_multiplier: u64,
    /// Compaction jobs that may run at once (on disjoint reservations). Default: 2.
    pub max_background_compactions: usize,
    /// Threads one L0 (or full) compaction's key range is split across. Default: 2.
    pub max_subcompactions: usize,
    /// Writes are slowed down once compaction debt (bytes over level targets) passes this.
    /// Default: 64 GiB.
    pub soft_pending_compaction_bytes: u64,
    /// Writes wait for compaction once compaction debt passes this. Default: 256 GiB.
    pub hard_pending_compaction_bytes: u64,
    /// Opt-in salvage open (as the Bitcask's): if a writable open finds damage (an unusable
    /// `CURRENT` or manifest, a missing or damaged table, a damaged WAL), the table set is
    /// rebuilt from the tables and WALs on disk, keeping every intact record and skipping the
    /// damage; [`crate::LsmEngine::recovery_report`] says what was kept and skipped
    /// (`docs/lsm.md`, "Repair"). Default false: damage is [`engine_api::Error::Corruption`].
    pub salvage: bool,
}

impl Default for LsmOptions {
    fn default() -> Self {
        LsmOptions {
            common: CommonOptions::default(),
            memtable_bytes: 8 << 20,
            max_immutable_memtables: 2,
            block_bytes: 4096,
            block_restart_interval: 16,
            bloom_bits_per_key: 10,
            block_cache_bytes: 32 << 20,
            target_file_bytes: 8 << 20,
            num_levels: 7,
            manifest_rollover_bytes: 4 << 20,
            auto_compaction: true,
            l0_compaction_trigger: 4,
            l0_slowdown_trigger: 20,
            l0_stop_trigger: 36,
            max_bytes_for_level_base: 64 << 20,
            level_size_multiplier: 10,
            max_background_compactions: 2,
            max_subcompactions: 2,
            soft_pending_compaction_bytes: 64 << 30,
            hard_pending_compaction_bytes: 256 << 30,
            salvage: false,
        }
    }
}

impl LsmOptions {
    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::invalid(format!("LsmOptions: {what}")));
        if self.memtable_bytes == 0 {
            return bad("memtable_bytes must be positive");
        }
        if self.max_immutable_memtables == 0 {
            return bad("max_immutable_memtables must be at least 1");
        }
        if self.block_bytes == 0 || self.block_bytes > (64 << 20) {
            return bad("block_bytes must be between 1 and 64 MiB");
        }
        if self.block_restart_interval == 0 {
            return bad("block_restart_interval must be positive");
        }
        if self.bloom_bits_per_key > 64 {
            return bad("bloom_bits_per_key must be at most 64");
        }
        if self.target_file_bytes == 0 {
            return bad("target_file_bytes must be positive");
        }
        if !(2..=16).contains(&self.num_levels) {
            return bad("num_levels must be between 2 and 16");
        }
        if self.manifest_rollover_bytes == 0 {
            return bad("manifest_rollover_bytes must be positive");
        }
        if self.l0_compaction_trigger == 0
            || self.l0_slowdown_trigger < self.l0_compaction_trigger
            || self.l0_stop_trigger <= self.l0_slowdown_trigger
        {
            return bad("need 0 < l0_compaction_trigger <= l0_slowdown_trigger < l0_stop_trigger");
        }
        if self.max_bytes_for_level_base == 0 || self.level_size_multiplier < 2 {
            return bad("max_bytes_for_level_base must be positive and level_size_multiplier >= 2");
        }
        if self.max_background_compactions == 0 || self.max_subcompactions == 0 {
            return bad("max_background_compactions and max_subcompactions must be positive");
        }
        if self.hard_pending_compaction_bytes < self.soft_pending_compaction_bytes {
            return bad("hard_pending_compaction_bytes must be at least the soft limit");
        }
        Ok(())
    }
}
