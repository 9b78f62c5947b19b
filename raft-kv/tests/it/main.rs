//! raft-kv's integration tests: the durable steps of the stores one by one (and openraft's own
//! storage suite), then three-replica groups on the in-memory network. Every test runs against
//! Bitcask, the LSM and the reference engine on `SimStorage`.

#![allow(
    clippy::result_large_err,
    reason = "openraft's StorageError, by value, as its traits return it"
)]

mod cluster;
mod engines;
mod replication;
mod steps;
mod tcp;
