//! Adapters that put other embedded stores behind [`engine_api::Engine`], so the same workloads
//! compare our engines with what users would otherwise pick. Each sits behind a cargo feature of
//! the same name, off by default.
//!
//! Peers do not write through our storage seam, so their write amplification comes from
//! `/proc/self/io` (`wchar`); their `Stats::io` is empty.

#[cfg(any(feature = "fjall", feature = "rocksdb", feature = "redb"))]
mod common;
#[cfg(feature = "fjall")]
pub mod fjall;
#[cfg(feature = "redb")]
pub mod redb;
#[cfg(feature = "rocksdb")]
pub mod rocksdb;

use crate::engines::EngineEntry;

/// The peer engines compiled into this build.
pub fn entries() -> Vec<EngineEntry> {
    let peers: &[fn() -> EngineEntry] = &[
        #[cfg(feature = "fjall")]
        fjall::entry,
        #[cfg(feature = "rocksdb")]
        rocksdb::entry,
        #[cfg(feature = "redb")]
        redb::entry,
    ];
    peers.iter().map(|entry| entry()).collect()
}
