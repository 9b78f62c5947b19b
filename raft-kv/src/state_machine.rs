//! [`StateMachine`]: openraft's state machine and snapshots on an engine.

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use engine_api::{Engine, WriteBatch};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, EntryPayload, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode, engine_err};
use crate::log_store::Durable;
use crate::{Durability, Entry, LogId, Request, Response, StorageError, TypeConfig, keys};

/// What the state machine has applied: kept under `02 00`, beside the pairs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct AppliedState {
    last_applied: Option<LogId>,
    membership: StoredMembership<u64, BasicNode>,
}

/// The current snapshot as stored under `03`.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

/// The bytes of a snapshot: every pair of the state machine, in key order.
type SnapshotPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// openraft's state machine on an engine: the pairs under prefix `02 01`, the applied state
/// under `02 00`, the current snapshot under `03`.
pub struct StateMachine {
    store: Arc<Durable>,
    builds: Arc<AtomicU64>,
}

impl StateMachine {
    /// A state machine on `engine` (the same engine as the [`crate::LogStore`]'s, or another).
    pub fn new(engine: Arc<dyn Engine>, durability: Durability) -> StateMachine {
        StateMachine {
            store: Arc::new(Durable::new(engine, durability)),
            builds: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The value this state machine holds for `key` (what it has applied, not necessarily
    /// everything committed).
    ///
    /// # Errors
    /// The engine's read error.
    pub fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let value = self.store.engine.get(&keys::data_key(key));
        let value = value.map_err(engine_err(StorageIOError::read_state_machine))?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn applied(&self) -> Result<AppliedState, StorageError> {
        let state = self
            .store
            .get_decoded(keys::APPLIED, StorageIOError::read_state_machine)?;
        Ok(state.unwrap_or_default())
    }
}

/// Adds the effect of `entry` to `batch` and `state`.
fn apply_one(entry: Entry, batch: &mut WriteBatch, state: &mut AppliedState) {
    state.last_applied = Some(entry.log_id);
    match entry.payload {
        EntryPayload::Blank => {}
        EntryPayload::Normal(Request::Put { key, value }) => {
            batch.put(&keys::data_key(&key), &value);
        }
        EntryPayload::Normal(Request::Delete { key }) => {
            batch.delete(&keys::data_key(&key));
        }
        EntryPayload::Membership(m) => {
            state.membership = StoredMembership::new(Some(entry.log_id), m);
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<u64, BasicNode>), StorageError> {
        let state = self.applied()?;
        Ok((state.last_applied, state.membership))
    }

    /// Step 5: the entries' writes and the new applied state, one atomic batch.
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.applied()?;
        let mut batch = WriteBatch::new();
        let mut responses = Vec::new();
        for entry in entries {
            apply_one(entry, &mut batch, &mut state);
            responses.push(Response {});
        }
        let encoded = encode(&state, StorageIOError::write_state_machine)?;
        batch.put(keys::APPLIED, &encoded);
        // Not synced on its own under `SyncEachStep`: every entry applied here is already
        // durable in the log, and the one engine keeps write order, so a purge (synced) makes
        // this batch durable before the entries it covers go.
        self.store
            .engine
            .write(&batch)
            .map_err(engine_err(StorageIOError::write_state_machine))?;
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            store: Arc::clone(&self.store),
            builds: Arc::clone(&self.builds),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// Step 6: the state machine replaced by the snapshot's pairs, its applied state and the
    /// snapshot itself, one atomic batch, durable before return.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let pairs: SnapshotPairs = decode(&data, StorageIOError::write_state_machine)?;
        let old = self.store.keys_in(
            keys::state_machine_range(),
            StorageIOError::write_state_machine,
        )?;
        let mut batch = WriteBatch::new();
        for key in &old {
            batch.delete(key);
        }
        for (key, value) in &pairs {
            batch.put(&keys::data_key(key), value);
        }
        let state = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        batch.put(
            keys::APPLIED,
            &encode(&state, StorageIOError::write_state_machine)?,
        );
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        batch.put(
            keys::SNAPSHOT,
            &encode(&stored, StorageIOError::write_state_machine)?,
        );
        self.store
            .write_durable(&batch)
            .map_err(engine_err(StorageIOError::write_state_machine))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let stored: Option<StoredSnapshot> = self
            .store
            .get_decoded(keys::SNAPSHOT, StorageIOError::read_state_machine)?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

/// Builds a snapshot from one consistent scan of the state machine's keys.
pub struct SnapshotBuilder {
    store: Arc<Durable>,
    builds: Arc<AtomicU64>,
}

impl SnapshotBuilder {
    /// The applied state and every pair, from one consistent view of the engine.
    fn read_state(&self) -> Result<(AppliedState, SnapshotPairs), StorageError> {
        let read = engine_err(StorageIOError::read_state_machine);
        let scan = self
            .store
            .engine
            .scan(keys::state_machine_range())
            .map_err(&read)?;
        let mut state = AppliedState::default();
        let mut pairs = Vec::new();
        for item in scan {
            let (key, value) = item.map_err(&read)?;
            match keys::user_key(&key) {
                Some(user) => pairs.push((user.to_vec(), value.to_vec())),
                None => state = decode(&value, StorageIOError::read_state_machine)?,
            }
        }
        Ok((state, pairs))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (state, pairs) = self.read_state()?;
        let data = encode(&pairs, StorageIOError::write_state_machine)?;
        let build = self.builds.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match state.last_applied {
            Some(id) => format!("{}-{}-{build}", id.leader_id.term, id.index),
            None => format!("none-{build}"),
        };
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.membership,
            snapshot_id,
        };
        let stored = StoredSnapshot { meta, data };
        // Not synced: the state machine it copies is in the same engine, and the log is purged
        // only by a later, synced step.
        let encoded = encode(&stored, StorageIOError::write_state_machine)?;
        self.store
            .engine
            .put(keys::SNAPSHOT, &encoded)
            .map_err(engine_err(StorageIOError::write_state_machine))?;
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}
