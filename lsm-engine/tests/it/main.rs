//! The lsm-engine integration tests: one binary, one module per concern.

mod common;
mod conformance;
mod crash;
mod damage;
mod engine;
mod reliability;
mod sstable;
