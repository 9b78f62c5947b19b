//! The lsm-engine integration tests: one binary, one module per concern.

mod clean_close;
mod common;
mod compaction;
mod compaction_faults;
mod conformance;
mod crash;
mod damage;
mod engine;
mod framing;
mod fuzz_corpus;
mod harness;
mod panic_paths;
mod prealloc_review;
mod races;
mod reliability;
mod repair;
mod sstable;
mod untrusted;
mod wal_sync;
