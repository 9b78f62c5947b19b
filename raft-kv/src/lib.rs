//! Either engine of this workspace as the storage of a Raft group, with openraft 0.9.
//!
//! - [`LogStore`]: openraft's log storage (`RaftLogStorage` and `RaftLogReader`): the entries,
//!   the vote and the purge point, in one engine under their own key prefixes.
//! - [`StateMachine`]: openraft's state machine (`RaftStateMachine` and `RaftSnapshotBuilder`):
//!   the replicated key-value data, the last applied log id and membership, and the current
//!   snapshot, in the same engine.
//! - [`KvNode`]: one replica with the client API: [`KvNode::put`], [`KvNode::delete`],
//!   [`KvNode::get`] (a linearizable read through the leader) and [`KvNode::get_local`].
//! - [`network::mem`]: an in-memory network for tests; [`network::tcp`]: loopback TCP, with a
//!   server and a client that follows the leader.
//!
//! Everything lives behind `Arc<dyn Engine>`, so Bitcask, the LSM and the reference engine plug
//! in unchanged. Which steps are made durable, and how, is in `docs/replication.md`.
//!
//! The engines' calls block (a write under `SyncPolicy::Always` waits for its `fsync`); they are
//! made straight from openraft's tasks, which is what openraft's own RocksDB example does. Run
//! the replicas on a multi-threaded tokio runtime.

#![allow(
    clippy::result_large_err,
    reason = "openraft's traits return its StorageError and RPCError by value; the helpers here \
              return what those methods return"
)]

mod codec;
mod keys;
mod log_store;
pub mod network;
mod node;
mod state_machine;

use std::io::Cursor;

pub use log_store::LogStore;
pub use node::{ClientError, KvNode, default_config};
pub use state_machine::{SnapshotBuilder, StateMachine};

use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// The openraft type configuration of this crate: `u64` node ids, [`openraft::BasicNode`]
    /// (an address), [`Request`] in the log, snapshots as bytes in memory.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle of one replica.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id (term, leader, index).
pub type LogId = openraft::LogId<u64>;
/// openraft's storage error, as this crate's stores return it.
pub type StorageError = openraft::StorageError<u64>;

/// A client command, as it sits in the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

/// What applying a [`Request`] returns: nothing yet, the write is acknowledged by its commit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {}

/// How the stores make a step durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// The engine was opened with `SyncPolicy::Always`: every write is synced before it is
    /// acknowledged, so a step is durable once its write returns. No extra sync.
    #[default]
    EngineSyncsEveryWrite,
    /// The engine was opened with `Periodic` or `Never`: the stores call `Engine::sync` after
    /// every step openraft needs durable (vote, append, truncate, purge, snapshot install).
    SyncEachStep,
}
