//! The workspace's book, compiled: each chapter under `docs/` is included here as the
//! documentation of an empty module, so that `cargo test` checks any Rust snippet in it and
//! `cargo doc` renders it. Read the book as Markdown, starting at `docs/README.md`.
//!
//! The workspace's examples (`examples/` at the root) are this crate's examples; its tests run
//! each of them.

/// Chapter 1.
#[doc = include_str!("../intro.md")]
pub mod intro {}

/// Chapter 2.
#[doc = include_str!("../architecture.md")]
pub mod architecture {}

/// Chapter 3.
#[doc = include_str!("../durability.md")]
pub mod durability {}

/// Chapter 4.
#[doc = include_str!("../bitcask.md")]
pub mod bitcask {}

/// Chapter 5.
#[doc = include_str!("../lsm.md")]
pub mod lsm {}

/// Chapter 6.
#[doc = include_str!("../measuring.md")]
pub mod measuring {}

/// Chapter 7 (generated from `tradeoffs.template.md` by the `guide` binary).
#[doc = include_str!("../tradeoffs.md")]
pub mod tradeoffs {}

/// Chapter 8.
#[doc = include_str!("../testing.md")]
pub mod testing {}

/// Chapter 9.
#[doc = include_str!("../kv.md")]
pub mod kv {}

/// Chapter 10.
#[doc = include_str!("../replication.md")]
pub mod replication {}

/// The on-disk formats, one specification each.
pub mod formats {
    /// Bitcask data file records.
    #[doc = include_str!("../formats/bitcask-record.md")]
    pub mod bitcask_record {}

    /// Bitcask hint files.
    #[doc = include_str!("../formats/bitcask-hint.md")]
    pub mod bitcask_hint {}

    /// The LSM write-ahead log.
    #[doc = include_str!("../formats/wal.md")]
    pub mod wal {}

    /// LSM tables.
    #[doc = include_str!("../formats/sstable.md")]
    pub mod sstable {}

    /// The LSM manifest.
    #[doc = include_str!("../formats/manifest.md")]
    pub mod manifest {}

    /// The LSM compaction log.
    #[doc = include_str!("../formats/compaction-log.md")]
    pub mod compaction_log {}
}
