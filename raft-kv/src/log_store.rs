//! [`LogStore`]: openraft's log storage on an engine.

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, PoisonError};

use engine_api::{Engine, WriteBatch};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError, Vote};

use crate::codec::{decode, encode, engine_err};
use crate::{Durability, Entry, LogId, StorageError, TypeConfig, keys};

/// The engine and how to make a step durable on it; shared by the log and the state machine.
pub(crate) struct Durable {
    pub(crate) engine: Arc<dyn Engine>,
    durability: Durability,
}

impl Durable {
    pub(crate) fn new(engine: Arc<dyn Engine>, durability: Durability) -> Self {
        Durable { engine, durability }
    }

    /// Writes `batch` atomically and returns once it is durable.
    pub(crate) fn write_durable(&self, batch: &WriteBatch) -> engine_api::Result<()> {
        self.engine.write(batch)?;
        match self.durability {
            Durability::EngineSyncsEveryWrite => Ok(()),
            Durability::SyncEachStep => self.engine.sync(),
        }
    }

    /// The value of `key`, decoded.
    pub(crate) fn get_decoded<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        what: fn(openraft::AnyError) -> StorageIOError<u64>,
    ) -> Result<Option<T>, StorageError> {
        let value = self.engine.get(key).map_err(engine_err(what))?;
        value.map(|v| decode(&v, what)).transpose()
    }

    /// Every key in `range`.
    pub(crate) fn keys_in(
        &self,
        range: engine_api::KeyRange,
        what: fn(openraft::AnyError) -> StorageIOError<u64>,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let scan = self.engine.scan(range).map_err(engine_err(what))?;
        scan.map(|item| item.map(|(k, _)| k.to_vec()).map_err(engine_err(what)))
            .collect()
    }
}

/// openraft's log storage on an engine: entries under prefix `01`, the vote and the purge point
/// under prefix `00`. Cloning gives another handle (the log reader openraft's replication tasks
/// use).
#[derive(Clone)]
pub struct LogStore {
    store: Arc<Durable>,
    /// The id of the last entry present, known since open (openraft asks for it often and the
    /// engines scan only forwards).
    last: Arc<Mutex<Option<LogId>>>,
}

impl LogStore {
    /// A log store on `engine`, reading the id of its last entry.
    ///
    /// # Errors
    /// An engine error, or an entry that does not decode.
    pub fn open(engine: Arc<dyn Engine>, durability: Durability) -> Result<LogStore, StorageError> {
        let store = Arc::new(Durable::new(engine, durability));
        let last = last_entry_id(&store)?;
        Ok(LogStore {
            store,
            last: Arc::new(Mutex::new(last)),
        })
    }

    fn last(&self) -> Option<LogId> {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_last(&self, id: Option<LogId>) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = id;
    }

    fn purged(&self) -> Result<Option<LogId>, StorageError> {
        self.store
            .get_decoded(keys::PURGED, StorageIOError::read_logs)
    }

    fn entry(&self, index: u64) -> Result<Option<Entry>, StorageError> {
        self.store
            .get_decoded(&keys::log_key(index), StorageIOError::read_logs)
    }

    fn entries(&self, range: &impl RangeBounds<u64>) -> Result<Vec<Entry>, StorageError> {
        let Some(keys) = keys::log_range(range) else {
            return Ok(Vec::new());
        };
        let read = engine_err(StorageIOError::read_logs);
        let scan = self.store.engine.scan(keys).map_err(&read)?;
        scan.map(|item| decode(&item.map_err(&read)?.1, StorageIOError::read_logs))
            .collect()
    }
}

/// The id of the last entry in the engine, by one forward scan of the log prefix.
fn last_entry_id(store: &Durable) -> Result<Option<LogId>, StorageError> {
    let read = engine_err(StorageIOError::read_logs);
    let scan = store
        .engine
        .scan(keys::log_range(&(0..)).expect("non-empty"))
        .map_err(&read)?;
    let mut last = None;
    for item in scan {
        last = Some(item.map_err(&read)?.1);
    }
    let entry: Option<Entry> = last
        .map(|v| decode(&v, StorageIOError::read_logs))
        .transpose()?;
    Ok(entry.map(|e| e.log_id))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.entries(&range)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let purged = self.purged()?;
        let last = self.last().max(purged);
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    /// Step 1 of `docs/replication.md`: the vote is durable before this returns.
    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        let mut batch = WriteBatch::new();
        batch.put(keys::VOTE, &encode(vote, StorageIOError::write_vote)?);
        self.store
            .write_durable(&batch)
            .map_err(engine_err(StorageIOError::write_vote))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.store
            .get_decoded(keys::VOTE, StorageIOError::read_vote)
    }

    /// Step 2: the entries are written in one batch, durable before the callback is called.
    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::new();
        let mut last = None;
        for entry in entries {
            let bytes = encode(&entry, StorageIOError::write_logs)?;
            batch.put(&keys::log_key(entry.log_id.index), &bytes);
            last = Some(entry.log_id);
        }
        match self.store.write_durable(&batch) {
            Ok(()) => {
                if last.is_some() {
                    self.set_last(last);
                }
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(engine_err(StorageIOError::write_logs)(e))
            }
        }
    }

    /// Step 3: the entries from `log_id` on are removed in one batch, durable before return.
    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let keys = self.store.keys_in(
            keys::log_range(&(log_id.index..)).expect("non-empty"),
            StorageIOError::write_logs,
        )?;
        let mut batch = WriteBatch::new();
        for key in &keys {
            batch.delete(key);
        }
        self.store
            .write_durable(&batch)
            .map_err(engine_err(StorageIOError::write_logs))?;
        let before = match log_id.index.checked_sub(1) {
            Some(i) => self.entry(i)?.map(|e| e.log_id),
            None => None,
        };
        self.set_last(before);
        Ok(())
    }

    /// Step 4: the purge point and the removal of the entries up to it, one batch, durable
    /// before return.
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let keys = self.store.keys_in(
            keys::log_range(&(..=log_id.index)).expect("non-empty"),
            StorageIOError::write_logs,
        )?;
        let mut batch = WriteBatch::new();
        batch.put(keys::PURGED, &encode(&log_id, StorageIOError::write_logs)?);
        for key in &keys {
            batch.delete(key);
        }
        self.store
            .write_durable(&batch)
            .map_err(engine_err(StorageIOError::write_logs))?;
        if self.last() < Some(log_id) {
            self.set_last(Some(log_id));
        }
        Ok(())
    }
}
