//! One worker thread: issues its stream's operations against the engine, times each, checks
//! each answer as far as the harness can know it, and records into its [`Slot`].
//!
//! Only the engine's own calls are timed: key building, answer checks and bookkeeping stay
//! outside. Each worker records into a buffer of its own and hands it to its slot every
//! [`HANDOFF`], so no lock is taken per operation. In the open loop (`--rate`) each operation
//! has an intended start on a fixed schedule and its latency runs from that instant, so a
//! stall counts against every request that would have queued behind it (no coordinated
//! omission).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

/// How often a worker hands what it recorded to its slot: often enough for one-second
/// intervals, rarely enough to cost nothing per operation.
pub(crate) const HANDOFF: Duration = Duration::from_millis(10);

/// When a worker's operations are due.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pace {
    /// Each as soon as the previous one is answered (closed loop).
    Closed,
    /// One every `every`, counted from `start` (open loop).
    Open { start: Instant, every: Duration },
}

impl Pace {
    /// The open loop for `rate` operations per second shared by `workers` threads.
    pub(crate) fn for_rate(rate: Option<f64>, workers: usize, start: Instant) -> Pace {
        match rate.filter(|r| *r > 0.0) {
            Some(rate) => Pace::Open {
                start,
                every: Duration::from_secs_f64(workers.max(1) as f64 / rate),
            },
            None => Pace::Closed,
        }
    }

    /// When operation `i` is due, if it is scheduled.
    fn due(&self, i: u64) -> Option<Instant> {
        match *self {
            Pace::Closed => None,
            Pace::Open { start, every } => {
                Some(start + every.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX)))
            }
        }
    }
}

/// The reader/writer split of `readwhilewriting`: the writer runs until the last reader ends.
#[derive(Debug, Default)]
pub(crate) struct Readers {
    /// Readers still running.
    pub left: AtomicUsize,
    /// Raised by the last reader to finish.
    pub done: AtomicBool,
}

/// A worker's part in its phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Runs its stream to the end.
    Plain,
    /// A reader of `readwhilewriting`.
    Reader,
    /// The writer of `readwhilewriting`: stops when the readers are done.
    Writer,
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
    /// The open or closed loop.
    pub pace: Pace,
    /// The readers of `readwhilewriting` (unused otherwise).
    pub readers: &'a Readers,
    /// When a time-limited phase stops issuing operations (see `Phase::time_limit_s`).
    pub deadline: Option<Instant>,
    /// When an extended stream stops (see [`Until`]).
    pub until: Until,
}

/// When a worker whose stream was extended ([`crate::workload::OpStream::extended`]) stops.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Until {
    /// Whether the stream's own count must be reached first (a measured phase) or not (a
    /// warm-up, which only lasts its time).
    pub count: bool,
    /// Not before this instant; `None` for a stream that was not extended.
    pub at: Option<Instant>,
}

impl Until {
    /// A stream run to its count and no further.
    pub(crate) const COUNT: Until = Until {
        count: true,
        at: None,
    };

    /// Whether a worker that has issued `issued` of a stream of `total` operations is done.
    fn reached(&self, issued: u64, total: u64) -> bool {
        let Some(at) = self.at else {
            return false;
        };
        (!self.count || issued >= total) && Instant::now() >= at
    }
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

/// The effect of one operation on the counts, and the time the engine took for it.
struct Outcome {
    class: OpClass,
    counts: OpCounts,
    engine_nanos: u64,
}

/// Runs `f`, adding the time it took to `nanos`.
fn timed<T>(nanos: &mut u64, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    *nanos += u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    out
}

/// Runs `stream` to its end (or until another worker fails), recording into `slot`. On an error
/// it raises `stop` so the other workers end early.
pub(crate) fn run_stream(
    shared: &Shared<'_>,
    stream: OpStream,
    slot: &Slot,
    role: Role,
) -> Result<()> {
    let result = issue_all(shared, stream, slot, role);
    if result.is_err() {
        shared.stop.store(true, Ordering::Relaxed);
    }
    if role == Role::Reader && shared.readers.left.fetch_sub(1, Ordering::AcqRel) == 1 {
        shared.readers.done.store(true, Ordering::Release);
    }
    result
}

/// A worker's own record, handed to its slot every [`HANDOFF`].
struct Buffer {
    recorded: Recorded,
    ops: u64,
    handed: Instant,
}

impl Buffer {
    fn hand_to(&mut self, slot: &Slot) {
        let mut rec = lock(&slot.recorded);
        rec.latencies.add(&self.recorded.latencies);
        rec.counts.add(&self.recorded.counts);
        drop(rec);
        self.recorded.latencies.reset();
        self.recorded.counts = OpCounts::default();
        slot.done
            .fetch_add(std::mem::take(&mut self.ops), Ordering::Relaxed);
    }
}

fn should_stop(shared: &Shared<'_>, role: Role) -> bool {
    shared.stop.load(Ordering::Relaxed)
        || (role == Role::Writer && shared.readers.done.load(Ordering::Acquire))
        || shared.deadline.is_some_and(|d| Instant::now() >= d)
}

fn issue_all(shared: &Shared<'_>, stream: OpStream, slot: &Slot, role: Role) -> Result<()> {
    let mut key = Vec::with_capacity(shared.codec.size());
    let mut buffer = Buffer {
        recorded: Recorded::default(),
        ops: 0,
        handed: Instant::now(),
    };
    let pace = if role == Role::Writer {
        Pace::Closed
    } else {
        shared.pace
    };
    let total = stream.total();
    for (i, op) in (0u64..).zip(stream) {
        if should_stop(shared, role) || shared.until.reached(i, total) {
            break;
        }
        let due = pace.due(i);
        if let Some(wait) = due.and_then(|d| d.checked_duration_since(Instant::now())) {
            std::thread::sleep(wait);
        }
        let outcome = execute(shared, op, &mut key)?;
        let end = Instant::now();
        let nanos = due.map_or(outcome.engine_nanos, |d| {
            u64::try_from(end.saturating_duration_since(d).as_nanos()).unwrap_or(u64::MAX)
        });
        buffer.recorded.latencies.record(outcome.class, nanos);
        buffer.recorded.counts.add(&outcome.counts);
        buffer.ops += 1;
        if end.saturating_duration_since(buffer.handed) >= HANDOFF {
            buffer.hand_to(slot);
            buffer.handed = end;
        }
    }
    buffer.hand_to(slot);
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

/// The counts of one operation, and the engine's time for it.
struct Tally {
    counts: OpCounts,
    nanos: u64,
}

fn execute(shared: &Shared<'_>, op: Op, key: &mut Vec<u8>) -> Result<Outcome> {
    let mut t = Tally {
        counts: OpCounts {
            ops: 1,
            ..OpCounts::default()
        },
        nanos: 0,
    };
    let class = match op {
        Op::Put { key: id, value } => {
            put(shared, id, value, key, &mut t)?;
            OpClass::Write
        }
        Op::Get { key: id } => {
            get(shared, id, key, &mut t)?;
            OpClass::Read
        }
        Op::GetMissing { key: id } => {
            get_missing(shared, id, key, &mut t)?;
            OpClass::Read
        }
        Op::Delete { key: id } => {
            delete(shared, id, key, &mut t)?;
            OpClass::Delete
        }
        Op::Scan { start, len } => {
            scan(shared, start, len, key, &mut t)?;
            OpClass::Scan
        }
        Op::ReadModifyWrite { key: id, value } => {
            get(shared, id, key, &mut t)?;
            put(shared, id, value, key, &mut t)?;
            OpClass::ReadModifyWrite
        }
    };
    Ok(Outcome {
        class,
        counts: t.counts,
        engine_nanos: t.nanos,
    })
}

fn delete(shared: &Shared<'_>, id: u64, key: &mut Vec<u8>, t: &mut Tally) -> Result<()> {
    shared.codec.encode(id, key);
    timed(&mut t.nanos, || shared.engine.delete(key)).map_err(|e| shared.engine_error(e))?;
    shared.live.remove(id);
    t.counts.deletes = 1;
    t.counts.user_bytes_written = key.len() as u64;
    Ok(())
}

fn put(shared: &Shared<'_>, id: u64, value: u32, key: &mut Vec<u8>, t: &mut Tally) -> Result<()> {
    shared.codec.encode(id, key);
    let value = shared.pool.value(value);
    timed(&mut t.nanos, || shared.engine.put(key, value)).map_err(|e| shared.engine_error(e))?;
    let c = &mut t.counts;
    shared.live.insert(id);
    c.puts += 1;
    c.user_bytes_written += (key.len() + value.len()) as u64;
    Ok(())
}

fn get(shared: &Shared<'_>, id: u64, key: &mut Vec<u8>, t: &mut Tally) -> Result<()> {
    shared.codec.encode(id, key);
    // Read before the engine answers: a key live now was acknowledged before this get began.
    let was_live = shared.live.contains(id);
    let found =
        timed(&mut t.nanos, || shared.engine.get(key)).map_err(|e| shared.engine_error(e))?;
    let c = &mut t.counts;
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

fn get_missing(shared: &Shared<'_>, id: u64, key: &mut Vec<u8>, t: &mut Tally) -> Result<()> {
    shared.codec.encode_missing(id, key);
    let found =
        timed(&mut t.nanos, || shared.engine.get(key)).map_err(|e| shared.engine_error(e))?;
    t.counts.gets += 1;
    if found.is_some() {
        return Err(shared.wrong(format!(
            "get of never-written key {} returned a value",
            String::from_utf8_lossy(key)
        )));
    }
    Ok(())
}

fn scan(shared: &Shared<'_>, start: u64, len: u32, key: &mut Vec<u8>, t: &mut Tally) -> Result<()> {
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
    let c = &mut t.counts;
    let started = Instant::now();
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
    // A scan is timed to its last entry: walking it is the engine's work.
    t.nanos += u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    Ok(())
}
