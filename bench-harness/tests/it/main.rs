//! Integration tests of the bench harness: one test binary (see `Cargo.toml`).

mod cli;
mod engines;
mod formulas;
mod kv;
mod runner;
mod simulate;
mod workload;
