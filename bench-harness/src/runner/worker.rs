//! One worker thread: issues its stream's operations against the engine, times each, checks
//! each answer as far as the harness can know it, and records into its [`Slot`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use engine_api::{CompactionSummary, Engine, KeyRange};

use super::live::LiveSet;
use crate::error::{HarnessError, Result};
use crate::metrics::OpCounts;
use crate::metrics::latency::{Latencies, OpClass};
use crate::workload::{KeyCodec, Op, OpStream, ValuePool};

/// What a worker has recorded since the sampler last drained it.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    pub latencies: Latencies,
    pub counts: OpCounts,
}

/// A worker's mailbox: the sampler drains `recorded` once a second, and reads `done` ten times a
/// second for the progress bar, without taking the lock.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub recorded: Mutex<Recorded>,
    pub done: AtomicU64,
    pub compact_summary: Mutex<Option<CompactionSummary>>,
}

impl Slot {
    /// Moves everything recorded into `latencies` and `counts`.
    pub fn drain_into(&self, latencies: &mut Latencies, counts: &mut OpCounts) {
        let mut rec = lock(&self.recorded);
        latencies.add(&rec.latencies);
        counts.add(&rec.counts);
        rec.latencies.reset();
        rec.counts = OpCounts::default();
    }
}

/// Locks a mutex, recovering the data if a worker panicked while holding it (the counts it
/// holds stay meaningful).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What every worker of a phase shares.
pub(crate) struct Shared<'a> {
    pub engine: &'a dyn Engine,
    pub phase: &'a str,
    pub codec: KeyCodec,
    pub pool: &'a ValuePool,
    pub live: &'a LiveSet,
    pub stop: &'a AtomicBool,
    /// Whether a get of a live key must find it: true unless deletes run concurrently.
    pub check_hits: bool,
}

impl Shared<'_> {
    fn engine_error(&self, source: engine_api::Error) -> HarnessError {
        HarnessError::Engine {
            engine: self.engine.name().to_string(),
            phase: self.phase.to_string(),
            source,
        }
    }

    fn wrong(&self, detail: String) -> HarnessError {
        HarnessError::WrongAnswer {
            engine: self.engine.name().to_string(),
            phase: self.phase.to_string(),
            detail,
        }
    }
}

/// The effect of one operation on the counts.
struct Outcome {
    class: OpClass,
    counts: OpCounts,
}

/// Runs `stream` to its end (or until another worker fails), recording into `slot`. On an error
/// it raises `stop` so the other workers end early.
pub(crate) fn run_stream(shared: &Shared<'_>, stream: OpStream, slot: &Slot) -> Result<()> {
    let result = issue_all(shared, stream, slot);
    if result.is_err() {
        shared.stop.store(true, Ordering::Relaxed);
    }
    result
}

fn issue_all(shared: &Shared<'_>, stream: OpStream, slot: &Slot) -> Result<()> {
    let mut key = Vec::with_capacity(shared.codec.size());
    for op in stream {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let started = Instant::now();
        let outcome = execute(shared, op, &mut key)?;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut rec = lock(&slot.recorded);
        rec.latencies.record(outcome.class, nanos);
        rec.counts.add(&outcome.counts);
        drop(rec);
        slot.done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Runs a full compaction as the phase's only job.
pub(crate) fn run_compact(shared: &Shared<'_>, slot: &Slot) -> Result<()> {
    let summary = shared
        .engine
        .compact()
        .map_err(|e| shared.engine_error(e))?;
    *lock(&slot.compact_summary) = Some(summary);
    slot.done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn execute(shared: &Shared<'_>, op: Op, key: &mut Vec<u8>) -> Result<Outcome> {
    let mut counts = OpCounts {
        ops: 1,
        ..OpCounts::default()
    };
    let class = match op {
        Op::Put { key: id, value } => {
            put(shared, id, value, key, &mut counts)?;
            OpClass::Write
        }
        Op::Get { key: id } => {
            get(shared, id, key, &mut counts)?;
            OpClass::Read
        }
        Op::GetMissing { key: id } => {
            get_missing(shared, id, key, &mut counts)?;
            OpClass::Read
        }
        Op::Delete { key: id } => {
            shared.codec.encode(id, key);
            shared
                .engine
                .delete(key)
                .map_err(|e| shared.engine_error(e))?;
            shared.live.remove(id);
            counts.deletes = 1;
            counts.user_bytes_written = key.len() as u64;
            OpClass::Delete
        }
        Op::Scan { start, len } => {
            scan(shared, start, len, key, &mut counts)?;
            OpClass::Scan
        }
        Op::ReadModifyWrite { key: id, value } => {
            get(shared, id, key, &mut counts)?;
            put(shared, id, value, key, &mut counts)?;
            OpClass::ReadModifyWrite
        }
    };
    Ok(Outcome { class, counts })
}

fn put(
    shared: &Shared<'_>,
    id: u64,
    value: u32,
    key: &mut Vec<u8>,
    c: &mut OpCounts,
) -> Result<()> {
    shared.codec.encode(id, key);
    let value = shared.pool.value(value);
    shared
        .engine
        .put(key, value)
        .map_err(|e| shared.engine_error(e))?;
    shared.live.insert(id);
    c.puts += 1;
    c.user_bytes_written += (key.len() + value.len()) as u64;
    Ok(())
}

fn get(shared: &Shared<'_>, id: u64, key: &mut Vec<u8>, c: &mut OpCounts) -> Result<()> {
    shared.codec.encode(id, key);
    // Read before the engine answers: a key live now was acknowledged before this get began.
    let was_live = shared.live.contains(id);
    let found = shared.engine.get(key).map_err(|e| shared.engine_error(e))?;
    c.gets += 1;
    match found {
        Some(value) => {
            if value.len() != shared.pool.value_size() {
                return Err(shared.wrong(format!(
                    "get of key {id} returned {} bytes; every value written is {} bytes",
                    value.len(),
                    shared.pool.value_size()
                )));
            }
            c.found += 1;
            c.user_bytes_read += (key.len() + value.len()) as u64;
        }
        None if was_live && shared.check_hits => {
            return Err(shared.wrong(format!(
                "get of key {id} found nothing, but a put of it was acknowledged and never deleted"
            )));
        }
        None => {}
    }
    Ok(())
}

fn get_missing(shared: &Shared<'_>, id: u64, key: &mut Vec<u8>, c: &mut OpCounts) -> Result<()> {
    shared.codec.encode_missing(id, key);
    let found = shared.engine.get(key).map_err(|e| shared.engine_error(e))?;
    c.gets += 1;
    if found.is_some() {
        return Err(shared.wrong(format!(
            "get of never-written key {} returned a value",
            String::from_utf8_lossy(key)
        )));
    }
    Ok(())
}

fn scan(
    shared: &Shared<'_>,
    start: u64,
    len: u32,
    key: &mut Vec<u8>,
    c: &mut OpCounts,
) -> Result<()> {
    // Ids are dense, so `len` entries from `start` lie below the key of `start + len`. Bounding
    // the range says so to the engine: a hash-indexed engine must otherwise collect and sort
    // every key after `start` before it can return the first.
    let end_id = start.saturating_add(u64::from(len));
    let mut end = Vec::with_capacity(key.len());
    shared.codec.encode(end_id, &mut end);
    shared.codec.encode(start, key);
    let range = if shared.codec.fits(end_id) {
        KeyRange::new(key.as_slice()..end.as_slice())
    } else {
        KeyRange::new(key.as_slice()..)
    };
    let iter = shared
        .engine
        .scan(range)
        .map_err(|e| shared.engine_error(e))?;
    c.scans += 1;
    for item in iter.take(len as usize) {
        let (k, v) = item.map_err(|e| shared.engine_error(e))?;
        c.scan_entries += 1;
        c.user_bytes_read += (k.len() + v.len()) as u64;
    }
    Ok(())
}
