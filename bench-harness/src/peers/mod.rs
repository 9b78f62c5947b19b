//! Adapters that put other embedded stores behind [`engine_api::Engine`], so the same workloads
//! compare our engines with what users would otherwise pick. Each sits behind a cargo feature of
//! the same name, off by default.
//!
//! Peers do not write through our storage seam, so their write amplification comes from
//! `/proc/self/io` (`wchar`); their `Stats::io` is empty.

#[cfg(any(feature = "fjall", feature = "rocksdb"))]
mod common;
#[cfg(feature = "fjall")]
pub mod fjall;
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
    ];
    peers.iter().map(|entry| entry()).collect()
}
