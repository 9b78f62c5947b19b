//! Integration tests of the Bitcask engine: the engine-api conformance kit under default and
//! tiny options, crashes at every durability point of merge-heavy workloads, readers and
//! writers through repeated merges, damaged files, engine-specific behaviour, and the
//! engine-api reliability harnesses (SIGKILLs, fault sweeps, damage sweeps, linearizability), and
//! writes made visible only once durable under `SyncPolicy::Always`.

mod common;
mod concurrency;
mod conformance;
mod crash;
mod damage;
mod engine;
mod fuzz_corpus;
mod keydir_memory;
mod open_rules;
mod panic_paths;
mod prealloc;
mod reliability;
mod review_findings;
mod sync_path;
mod torn_tail;
mod visibility;
mod write_groups;
