//! [`KvNode`]: one replica and the client API.

use std::fmt;
use std::sync::Arc;

use engine_api::{Engine, MAX_KEY_LEN};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{Config, RaftNetworkFactory, SnapshotPolicy};
use serde::{Deserialize, Serialize};

use crate::{Durability, LogStore, Raft, Request, StateMachine, TypeConfig, keys};

/// A Raft configuration for one machine or one process: 50 ms heartbeats, elections after
/// 150 to 300 ms of silence, a snapshot every `snapshot_every` entries.
pub fn default_config(snapshot_every: u64) -> Arc<Config> {
    let config = Config {
        cluster_name: "raft-kv".to_string(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_every),
        max_in_snapshot_log_to_keep: 0,
        ..Config::default()
    };
    Arc::new(
        config
            .validate()
            .expect("the constants above are a valid configuration"),
    )
}

/// Why a client call failed. Strings, so the TCP server can send it to a client as is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientError {
    /// This replica is not the leader; try `leader` (if one is known).
    ForwardToLeader {
        /// The leader this replica knows of.
        leader: Option<u64>,
    },
    /// A key or value the engines refuse (empty key, too long).
    InvalidArgument(String),
    /// The Raft group could not serve the call (shut down, storage failed, no quorum).
    Raft(String),
    /// The engine failed a read.
    Engine(String),
    /// The network failed (TCP client only).
    Network(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::ForwardToLeader { leader } => {
                write!(f, "not the leader; the leader is {leader:?}")
            }
            ClientError::InvalidArgument(e) => write!(f, "invalid argument: {e}"),
            ClientError::Raft(e) => write!(f, "raft: {e}"),
            ClientError::Engine(e) => write!(f, "engine: {e}"),
            ClientError::Network(e) => write!(f, "network: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// One replica: the Raft handle and the engine its state machine lives in.
pub struct KvNode {
    id: u64,
    raft: Raft,
    engine: Arc<dyn Engine>,
}

impl KvNode {
    /// Starts replica `id` on `engine` (log, vote and state machine all in it, see
    /// `docs/replication.md`), talking to its peers through `network`. A new group still has
    /// to be initialized once, on one replica ([`openraft::Raft::initialize`]).
    ///
    /// # Errors
    /// The engine's log does not read back, or openraft refuses to start.
    pub async fn start<N: RaftNetworkFactory<TypeConfig>>(
        id: u64,
        engine: Arc<dyn Engine>,
        durability: Durability,
        config: Arc<Config>,
        network: N,
    ) -> Result<KvNode, ClientError> {
        let log = LogStore::open(Arc::clone(&engine), durability).map_err(raft_err)?;
        let sm = StateMachine::new(Arc::clone(&engine), durability);
        let raft = Raft::new(id, config, network, log, sm)
            .await
            .map_err(raft_err)?;
        Ok(KvNode { id, raft, engine })
    }

    /// This replica's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The Raft handle (metrics, membership, shutdown).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The engine under this replica.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// Sets `key` to `value` through the log; returns once the write is committed (durable on
    /// a majority) and applied here. Only the leader accepts it.
    ///
    /// # Errors
    /// [`ClientError::ForwardToLeader`] on a follower; [`ClientError::InvalidArgument`] for a
    /// key or value an engine would refuse; [`ClientError::Raft`] otherwise.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        check_key(key)?;
        engine_api::check_value(value).map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        self.propose(Request::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        })
        .await
    }

    /// Removes `key` through the log. As [`KvNode::put`].
    ///
    /// # Errors
    /// As [`KvNode::put`].
    pub async fn delete(&self, key: &[u8]) -> Result<(), ClientError> {
        check_key(key)?;
        self.propose(Request::Delete { key: key.to_vec() }).await
    }

    /// A linearizable read: the leader confirms with a quorum that it still leads and waits
    /// until it has applied everything committed before the read began.
    ///
    /// # Errors
    /// [`ClientError::ForwardToLeader`] on a follower (or a deposed leader).
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        check_key(key)?;
        self.raft.ensure_linearizable().await.map_err(|e| match e {
            RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => {
                ClientError::ForwardToLeader {
                    leader: f.leader_id,
                }
            }
            other => raft_err(other),
        })?;
        self.get_local(key)
    }

    /// What this replica has applied for `key`: possibly stale, never a value that was not
    /// committed.
    ///
    /// # Errors
    /// [`ClientError::Engine`] if the engine fails the read.
    pub fn get_local(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        let value = self.engine.get(&keys::data_key(key));
        value
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| ClientError::Engine(e.to_string()))
    }

    async fn propose(&self, request: Request) -> Result<(), ClientError> {
        match self.raft.client_write(request).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ClientError::ForwardToLeader {
                    leader: f.leader_id,
                })
            }
            Err(e) => Err(raft_err(e)),
        }
    }
}

fn check_key(key: &[u8]) -> Result<(), ClientError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN - keys::DATA_OVERHEAD {
        return Err(ClientError::InvalidArgument(format!(
            "keys must have 1 to {} bytes, not {}",
            MAX_KEY_LEN - keys::DATA_OVERHEAD,
            key.len()
        )));
    }
    Ok(())
}

fn raft_err(e: impl fmt::Display) -> ClientError {
    ClientError::Raft(e.to_string())
}
