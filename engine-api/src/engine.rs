//! The [`Engine`] trait and the types it speaks: [`WriteBatch`], [`KeyRange`], [`Scan`],
//! [`CompactionSummary`].

use std::ops::{Bound, RangeBounds};
use std::time::Duration;

use bytes::Bytes;

use crate::{Error, Result, Stats};

/// A value (or key) returned by an engine.
///
/// [`Bytes`] rather than `Vec<u8>`: an engine can hand out a slice of the buffer it read
/// (Bitcask reads key and value in one positional read; the LSM returns slices of cached
/// blocks) without copying, and cloning it is a reference-count increment.
pub type Value = Bytes;

/// Largest key accepted, in bytes. Keys must also be non-empty.
pub const MAX_KEY_LEN: usize = 64 * 1024 - 1;
/// Largest value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 16 * 1024 * 1024;
/// Largest batch accepted, as the sum of its keys and values.
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// Checks a key against the documented limits.
///
/// # Errors
/// [`Error::InvalidArgument`] for an empty key or one longer than [`MAX_KEY_LEN`].
pub fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("empty key"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::invalid(format!(
            "key of {} bytes exceeds the limit of {MAX_KEY_LEN}",
            key.len()
        )));
    }
    Ok(())
}

/// Checks a value against the documented limits.
///
/// # Errors
/// [`Error::InvalidArgument`] for a value longer than [`MAX_VALUE_LEN`].
pub fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::invalid(format!(
            "value of {} bytes exceeds the limit of {MAX_VALUE_LEN}",
            value.len()
        )));
    }
    Ok(())
}

/// One operation of a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
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

impl BatchOp {
    /// The key the operation touches.
    pub fn key(&self) -> &[u8] {
        match self {
            BatchOp::Put { key, .. } | BatchOp::Delete { key } => key,
        }
    }

    /// The value, for a put.
    pub fn value(&self) -> Option<&[u8]> {
        match self {
            BatchOp::Put { value, .. } => Some(value),
            BatchOp::Delete { .. } => None,
        }
    }
}

/// Writes applied atomically by [`Engine::write`]: after any crash, all of them are visible or
/// none is. Within a batch, a later operation on a key wins over an earlier one.
///
/// ```
/// use engine_api::WriteBatch;
/// let mut batch = WriteBatch::new();
/// batch.put(b"apple", b"red").delete(b"pear");
/// assert_eq!(batch.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
    bytes: usize,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch::default()
    }

    /// Adds a put.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> &mut Self {
        self.bytes += key.len() + value.len();
        self.ops.push(BatchOp::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        });
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: &[u8]) -> &mut Self {
        self.bytes += key.len();
        self.ops.push(BatchOp::Delete { key: key.to_vec() });
        self
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Sum of the lengths of every key and value: the user bytes the batch writes.
    pub fn user_bytes(&self) -> usize {
        self.bytes
    }

    /// Removes every operation.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.bytes = 0;
    }

    /// Checks every key and value and the batch's total size.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the first operation that breaks a limit.
    pub fn validate(&self) -> Result<()> {
        if self.bytes > MAX_BATCH_BYTES {
            return Err(Error::invalid(format!(
                "batch of {} bytes exceeds the limit of {MAX_BATCH_BYTES}",
                self.bytes
            )));
        }
        for (i, op) in self.ops.iter().enumerate() {
            let checked = check_key(op.key()).and_then(|()| check_value(op.value().unwrap_or(&[])));
            checked.map_err(|e| Error::invalid(format!("batch operation {i}: {e}")))?;
        }
        Ok(())
    }
}

/// A range of keys for [`Engine::scan`]: any combination of unbounded, inclusive and exclusive
/// ends.
///
/// ```
/// use engine_api::KeyRange;
/// let all = KeyRange::all();
/// let ab = KeyRange::new(&b"a"[..]..&b"b"[..]);
/// let from_m = KeyRange::new(&b"m"[..]..);
/// assert!(ab.contains(b"a") && !ab.contains(b"b"));
/// assert!(all.contains(b"zzz") && from_m.contains(b"n"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    /// The lower end.
    pub start: Bound<Vec<u8>>,
    /// The upper end.
    pub end: Bound<Vec<u8>>,
}

impl KeyRange {
    /// Builds a range from any standard range of byte strings (`a..b`, `a..=b`, `a..`, `..b`).
    pub fn new<K: AsRef<[u8]> + ?Sized, R: RangeBounds<K>>(range: R) -> Self {
        KeyRange {
            start: owned(range.start_bound()),
            end: owned(range.end_bound()),
        }
    }

    /// Every key.
    pub fn all() -> Self {
        KeyRange {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
        }
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.after_start(key) && self.before_end(key)
    }

    /// Whether `key` is at or past the lower end.
    pub fn after_start(&self, key: &[u8]) -> bool {
        match &self.start {
            Bound::Unbounded => true,
            Bound::Included(s) => key >= s.as_slice(),
            Bound::Excluded(s) => key > s.as_slice(),
        }
    }

    /// Whether `key` is at or before the upper end.
    pub fn before_end(&self, key: &[u8]) -> bool {
        match &self.end {
            Bound::Unbounded => true,
            Bound::Included(e) => key <= e.as_slice(),
            Bound::Excluded(e) => key < e.as_slice(),
        }
    }

    /// Rejects a reversed range (start after end). An empty range such as `a..a` is fine.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the start lies after the end.
    pub fn validate(&self) -> Result<()> {
        let reversed = match (&self.start, &self.end) {
            (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => {
                s > e
            }
            _ => false,
        };
        if reversed {
            return Err(Error::invalid("reversed range: start is after end"));
        }
        Ok(())
    }
}

fn owned<K: AsRef<[u8]> + ?Sized>(bound: Bound<&K>) -> Bound<Vec<u8>> {
    match bound {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
    }
}

/// The iterator [`Engine::scan`] returns: key-value pairs in ascending key order.
pub type Scan<'a> = Box<dyn Iterator<Item = Result<(Value, Value)>> + Send + 'a>;

/// What one [`Engine::compact`] call (or one background compaction or merge) did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct CompactionSummary {
    /// Compaction jobs or merges run.
    pub jobs: u64,
    /// Files read.
    pub files_in: u64,
    /// Files written.
    pub files_out: u64,
    /// Files removed afterwards.
    pub files_removed: u64,
    /// Records or entries read.
    pub records_in: u64,
    /// Records or entries written.
    pub records_out: u64,
    /// Stale records dropped (overwritten values).
    pub stale_dropped: u64,
    /// Tombstones dropped.
    pub tombstones_dropped: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Wall-clock time.
    pub duration: Duration,
}

impl CompactionSummary {
    /// Adds another summary's counts into this one.
    pub fn absorb(&mut self, other: &CompactionSummary) {
        self.jobs += other.jobs;
        self.files_in += other.files_in;
        self.files_out += other.files_out;
        self.files_removed += other.files_removed;
        self.records_in += other.records_in;
        self.records_out += other.records_out;
        self.stale_dropped += other.stale_dropped;
        self.tombstones_dropped += other.tombstones_dropped;
        self.bytes_read += other.bytes_read;
        self.bytes_written += other.bytes_written;
        self.duration += other.duration;
    }
}

/// One step of a read path, as [`Engine::explain_get`] reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TraceStep {
    /// Where the engine looked and what it found, such as `"keydir: hit, file 3 offset 4096"`,
    /// `"table 12 (L1): bloom filter says absent"` or `"table 9 (L2): read block 4 (4071 bytes)"`.
    pub what: String,
    /// Storage reads this step issued.
    pub reads: u64,
    /// Bytes those reads returned.
    pub bytes: u64,
    /// Whether the bytes came from a cache rather than storage.
    pub cached: bool,
}

/// The read path of one `get`, step by step, with the I/O each step cost.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReadTrace {
    /// The steps, in the order the engine took them.
    pub steps: Vec<TraceStep>,
    /// The value found, if any.
    pub value: Option<Vec<u8>>,
}

impl ReadTrace {
    /// Storage reads over all steps.
    pub fn reads(&self) -> u64 {
        self.steps.iter().map(|s| s.reads).sum()
    }

    /// Bytes read over all steps.
    pub fn bytes(&self) -> u64 {
        self.steps.iter().map(|s| s.bytes).sum()
    }
}

/// A key-value storage engine.
///
/// Every engine in the workspace implements this trait, and host code holds engines as
/// `Arc<dyn Engine>`. All methods take `&self` and are safe to call from many threads at once.
///
/// **Keys** are non-empty byte strings of at most [`MAX_KEY_LEN`] bytes; **values** are byte
/// strings (possibly empty) of at most [`MAX_VALUE_LEN`] bytes. Anything else is refused with
/// [`Error::InvalidArgument`] before anything is written.
///
/// **Acknowledgement and durability.** A write is *acknowledged* when its call returns `Ok`.
/// An acknowledged write is visible to every later read on any thread, survives a crash of the
/// process under every [`crate::SyncPolicy`], and survives a power loss as the policy says. A
/// write that returned `Err` may or may not have taken effect.
///
/// **Poisoning.** If a sync fails, the engine refuses every later write with
/// [`Error::Poisoned`] and never retries the sync; reads go on. Reopen to recover.
///
/// **Shutdown.** Dropping the engine stops its background work and makes everything
/// acknowledged durable, whatever the policy.
pub trait Engine: Send + Sync {
    /// A short name for reports, such as `"bitcask"` or `"lsm"`.
    fn name(&self) -> &'static str;

    /// Sets `key` to `value`, replacing any earlier value.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad key or value, [`Error::Poisoned`] after a failed
    /// sync, [`Error::ReadOnly`] on a read-only engine, I/O errors.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()>;

    /// The value of `key`, or `None` if it has none. Sees every acknowledged write.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad key; [`Error::Corruption`] if the record that holds
    /// the value is damaged (never a wrong value); I/O errors.
    fn get(&self, key: &[u8]) -> Result<Option<Value>>;

    /// Removes `key`. Removing a missing key is not an error.
    ///
    /// # Errors
    /// As [`Engine::put`].
    fn delete(&self, key: &[u8]) -> Result<()>;

    /// Applies every operation of `batch` atomically: readers see all of it or none of it, and
    /// after any crash all of it or none of it is there. An empty batch does nothing.
    ///
    /// # Errors
    /// As [`Engine::put`]; a batch over [`MAX_BATCH_BYTES`] is an invalid argument.
    fn write(&self, batch: &WriteBatch) -> Result<()>;

    /// The pairs whose keys lie in `range`, in ascending key order, read from one consistent
    /// view: writes acknowledged after the call returns are not seen, writes acknowledged before
    /// it are. The iterator yields an error (and then ends) if it meets damaged data.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a reversed range; I/O or corruption errors.
    fn scan(&self, range: KeyRange) -> Result<Scan<'_>>;

    /// Makes every write acknowledged before the call durable, whatever the sync policy.
    ///
    /// # Errors
    /// I/O errors; a failure poisons the engine.
    fn sync(&self) -> Result<()>;

    /// Runs the engine's compaction (LSM) or merge (Bitcask) to completion now, and says what it
    /// did. Reads and writes may go on meanwhile.
    ///
    /// # Errors
    /// I/O or corruption errors met while compacting; the data stays as it was.
    fn compact(&self) -> Result<CompactionSummary>;

    /// Counters and shape of the engine.
    fn stats(&self) -> Stats;

    /// Does what [`Engine::get`] does and reports the read path it took, step by step, with the
    /// I/O of each step. Engines that are not instrumented report a single step.
    ///
    /// # Errors
    /// As [`Engine::get`].
    fn explain_get(&self, key: &[u8]) -> Result<ReadTrace> {
        let value = self.get(key)?;
        Ok(ReadTrace {
            steps: vec![TraceStep {
                what: format!("{}: get (read path not instrumented)", self.name()),
                ..TraceStep::default()
            }],
            value: value.map(|v| v.to_vec()),
        })
    }
}
