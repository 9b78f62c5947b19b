//! Integration tests of the bench harness: one test binary (see `Cargo.toml`).

mod cli;
mod diff;
mod engines;
mod formulas;
mod kv;
mod practical;
mod report;
mod runner;
mod simulate;
mod synced;
mod workload;
