//! The merge: rewrites the live records of some sealed files into new files, then switches
//! over at one atomic, durable commit point. Protocol with numbered fsync steps and the crash
//! argument: `docs/bitcask.md`, "Merge protocol".
//!
//! 0. Wait until every record in the inputs is published (`Inner::wait_published`): under
//!    `SyncPolicy::Always` writers index their records only once durable, and a file can be
//!    sealed before they have, so the keydir would not yet point at them.
//! 1. Scan each input (CRC verified on every record). A put is copied only if the keydir
//!    still points at it; a tombstone is kept unless a newer put exists or no file outside the
//!    merge can hold an older record of any key (every such file's smallest sequence number
//!    is above the tombstone's) — the fix for basho's bug #82.
//! 2. Seal and fsync each output, write and fsync its hint.
//! 3. fsync the directory (the output names).
//! 4. Sync the active log: every write the keydir decisions relied on becomes durable.
//! 5. Write the commit record `MERGE-<id>` (temp, fsync, rename, directory fsync). Committed.
//! 6. In memory: outputs join the file table, the keydir moves each copied key by
//!    compare-and-set (a concurrent write or delete wins), inputs leave the table (readers
//!    holding them keep reading).
//! 7. Roll forward: rename outputs to `.data`, fsync the directory, remove inputs and their
//!    hints, fsync, remove the commit record, fsync. Open repeats this after a crash.

mod output;
pub(crate) mod policy;
mod rate;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use engine_api::{CompactionSummary, Error, IoClass, Result, Storage, thread_cpu_time};

use crate::datafile::{DATA_START, DataFile, FileName, read_seal};
use crate::engine::Inner;
use crate::keydir::{self, KeyMove, Loc, Place};
use crate::manifest::Manifest;
use crate::reader::{Op, Policy, Source, scan_ops};
use output::{Finished, Outputs};
use policy::{FileInfo, Plan};
use rate::RateLimiter;

/// `Engine::compact`: seal the active file, then merge every sealed file.
pub(crate) fn compact(inner: &Inner) -> Result<CompactionSummary> {
    inner.commit.poison().check()?;
    let _merging = inner.merge_lock.lock();
    inner.rotate_if_used()?;
    match policy::pick_all(&inner.opts.merge, &inner.sealed_infos()) {
        Some(plan) => inner.run_plan(&plan),
        None => Ok(CompactionSummary::default()),
    }
}

impl Inner {
    /// The policy's view of the sealed files.
    pub(crate) fn sealed_infos(&self) -> Vec<FileInfo> {
        self.files
            .read()
            .values()
            .filter(|f| f.is_sealed())
            .map(|f| FileInfo {
                id: f.id(),
                bytes: f.len(),
                live_bytes: f.live_bytes(),
            })
            .collect()
    }

    /// The background worker's check: merge if the triggers say so (skipped while another
    /// merge runs).
    pub(crate) fn maybe_merge(&self) {
        if !self.opts.merge.auto || self.commit.poison().is_set() || self.stopping() {
            return;
        }
        if let Some(_merging) = self.merge_lock.try_lock() {
            let _ = self.policy_merge();
        }
    }

    /// Runs the policy now and the merge it picks, if any.
    pub(crate) fn merge_if_needed(&self) -> Result<Option<CompactionSummary>> {
        self.commit.poison().check()?;
        let _merging = self.merge_lock.lock();
        self.policy_merge()
    }

    fn policy_merge(&self) -> Result<Option<CompactionSummary>> {
        let infos = self.sealed_infos();
        match policy::pick(&self.opts.merge, self.max_file_size, &infos) {
            Some(plan) => self.run_plan(&plan).map(Some),
            None => Ok(None),
        }
    }

    /// Runs one planned merge (the caller holds the merge lock) and records what it did.
    fn run_plan(&self, plan: &Plan) -> Result<CompactionSummary> {
        let inputs: Vec<Arc<DataFile>> = {
            let files = self.files.read();
            plan.inputs
                .iter()
                .filter_map(|id| files.get(id).cloned())
                .filter(|f| f.is_sealed())
                .collect()
        };
        if inputs.is_empty() {
            return Ok(CompactionSummary::default());
        }
        let cpu_before = thread_cpu_time();
        let result = merge(self, &inputs);
        let cpu = match (cpu_before, thread_cpu_time()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => std::time::Duration::ZERO,
        };
        let mut totals = self.counters.merges.lock();
        match &result {
            Ok(summary) => {
                totals.summary.absorb(summary);
                totals.cpu += cpu;
            }
            Err(e) => totals.last_error = Some(e.to_string()),
        }
        result
    }
}

/// Where copied keys move. One merge can move every key of the store, so this is kept small:
/// per keydir shard, keys back to back in one buffer (no offsets: they are walked in order),
/// and per key only what the move needs, 24 bytes. The record's sequence number is not kept: a
/// move only happens while the keydir still points at the copied record, which has it already.
/// Kept by shard so that the switch-over moves a shard's keys together
/// ([`crate::keydir::KeyDir::move_many`]) without a sorted copy of the whole list.
struct Moves {
    shards: Vec<Bucket>,
}

/// The moves of one keydir shard.
#[derive(Default)]
struct Bucket {
    keys: Vec<u8>,
    list: Vec<Move>,
}

/// One copied key: where its record was and where the copy is (same length, same sequence).
#[derive(Clone, Copy)]
struct Move {
    key_len: u16,
    len: u32,
    from: Place,
    to: Place,
}

impl Moves {
    /// Room for the keys live in `inputs` now (later writes only make fewer of them live),
    /// so that the lists do not grow by doubling to twice what they hold. The hash spreads
    /// keys evenly: an eighth more than the mean per shard covers the spread.
    fn for_inputs(inputs: &[Arc<DataFile>]) -> Self {
        let live: u64 = inputs.iter().map(|f| f.live_keys()).sum();
        let live = usize::try_from(live).unwrap_or(0);
        let per_shard = live / keydir::SHARDS + live / keydir::SHARDS / 8 + 4;
        let bucket = || Bucket {
            keys: Vec::with_capacity(per_shard.saturating_mul(TYPICAL_KEY_BYTES)),
            list: Vec::with_capacity(per_shard),
        };
        Moves {
            shards: (0..keydir::SHARDS).map(|_| bucket()).collect(),
        }
    }

    fn push(&mut self, key: &[u8], old: &Loc, new: &Loc) {
        let Some(bucket) = self.shards.get_mut(keydir::shard_of_key(key)) else {
            return;
        };
        // Keys are at most `u16::MAX` bytes (the record format's limit).
        let key_len = u16::try_from(key.len()).unwrap_or(u16::MAX);
        bucket.list.push(Move {
            key_len,
            len: new.len,
            from: (old.file, old.offset),
            to: (new.file, new.offset),
        });
        bucket.keys.extend_from_slice(key);
    }
}

impl Bucket {
    fn iter(&self) -> impl Iterator<Item = (&[u8], &Move)> {
        self.list.iter().scan(0usize, |at, m| {
            let start = *at;
            *at += usize::from(m.key_len);
            Some((self.keys.get(start..*at).unwrap_or_default(), m))
        })
    }
}

/// What [`Moves::for_inputs`] reserves per key for the key itself (beyond it, the buffer
/// grows as a `Vec` does).
const TYPICAL_KEY_BYTES: usize = 16;

/// Records read but not yet decided: their keys are looked up in the keydir a window at a
/// time ([`crate::keydir::KeyDir::get_many`]), since one look-up at a time waits for each of
/// its cache misses in turn, and look-ups were most of a merge's CPU time.
#[derive(Default)]
struct Window {
    /// Each record's key then value, back to back.
    bytes: Vec<u8>,
    records: Vec<Held>,
}

/// One record of a [`Window`]: an [`Op`] whose key and value are in the window's bytes.
struct Held {
    offset: u64,
    len: u64,
    seq: u64,
    tombstone: bool,
    key_len: usize,
    value_len: usize,
}

/// A window is decided once it holds this many records...
const WINDOW_RECORDS: usize = 8192;
/// ...or this many bytes of keys and values.
const WINDOW_BYTES: usize = 1 << 20;

impl Window {
    fn push(&mut self, op: &Op<'_>) {
        self.bytes.extend_from_slice(op.key);
        self.bytes.extend_from_slice(op.value);
        self.records.push(Held {
            offset: op.offset,
            len: op.len,
            seq: op.seq,
            tombstone: op.tombstone,
            key_len: op.key.len(),
            value_len: op.value.len(),
        });
    }

    fn is_full(&self) -> bool {
        self.records.len() >= WINDOW_RECORDS || self.bytes.len() >= WINDOW_BYTES
    }

    /// Every record as an [`Op`], in file order.
    fn ops(&self) -> impl Iterator<Item = Op<'_>> {
        self.records.iter().scan(0usize, |at, r| {
            let key_end = *at + r.key_len;
            let end = key_end + r.value_len;
            let op = Op {
                offset: r.offset,
                len: r.len,
                seq: r.seq,
                tombstone: r.tombstone,
                key: self.bytes.get(*at..key_end).unwrap_or_default(),
                value: self.bytes.get(key_end..end).unwrap_or_default(),
            };
            *at = end;
            Some(op)
        })
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
    }
}

/// The state of one merge while it copies.
struct Job<'a> {
    inner: &'a Inner,
    outputs: Outputs<'a>,
    moves: Moves,
    window: Window,
    summary: CompactionSummary,
    limiter: RateLimiter,
    /// Smallest sequence number in any live file outside the merge.
    outside_min_seq: u64,
}

fn merge(inner: &Inner, inputs: &[Arc<DataFile>]) -> Result<CompactionSummary> {
    let started = Instant::now();
    // Step 0, the barrier: liveness is read from the keydir, so every record in the inputs
    // must be published first (or dropped as stale, and deleted with its file: data loss).
    let newest = inputs
        .iter()
        .filter(|f| f.min_seq() != u64::MAX)
        .map(|f| f.max_seq())
        .max();
    if let Some(newest) = newest {
        inner.wait_published(newest)?;
    }
    let ids: Vec<u32> = inputs.iter().map(|f| f.id()).collect();
    let outside_min_seq = inner
        .files
        .read()
        .values()
        .filter(|f| !ids.contains(&f.id()))
        .map(|f| f.min_seq())
        .min()
        .unwrap_or(u64::MAX);
    let mut job = Job {
        inner,
        outputs: Outputs::new(inner),
        moves: Moves::for_inputs(inputs),
        window: Window::default(),
        summary: CompactionSummary::default(),
        limiter: RateLimiter::new(inner.opts.merge.rate_limit),
        outside_min_seq,
    };
    let prepared = job.copy_all(inputs).and_then(|()| job.prepare());
    let finished = match prepared {
        Ok(finished) => finished,
        Err(e) => {
            job.outputs.abort();
            return Err(e);
        }
    };
    let id = match inner.allocate_file_id() {
        Ok(id) => id,
        Err(e) => {
            job.outputs.abort();
            return Err(e);
        }
    };
    let manifest = Manifest {
        id,
        inputs: ids,
        outputs: finished.iter().map(|f| f.file.id()).collect(),
        output_lens: finished.iter().map(|f| f.file.len()).collect(),
    };
    let committed = || commit_and_switch(inner, &manifest, inputs, &finished, &job.moves);
    inner.poison_on_unwind(IN_COMMIT, committed)?;
    let mut summary = job.summary;
    summary.jobs = 1;
    summary.files_in = inputs.len() as u64;
    summary.files_out = finished.len() as u64;
    summary.files_removed = inputs.len() as u64;
    summary.bytes_written = job.outputs.bytes_written;
    summary.duration = started.elapsed();
    Ok(summary)
}

/// [`crate::writer::Torn`]'s cause for a merge that unwinds from its commit point on.
const IN_COMMIT: &str = "a merge unwound after its commit point began: its commit record is \
                         left for open to roll forward";

/// Steps 5 to 7. From the commit on, a failure, or a panic (the caller's guard), poisons:
/// the record may be durable and name outputs that the engine goes on without, and open
/// rolls it forward from what is on disk. A merge that went on would take a half-rolled
/// output as an input and remove it, and open would then refuse a record naming it.
fn commit_and_switch(
    inner: &Inner,
    manifest: &Manifest,
    inputs: &[Arc<DataFile>],
    finished: &[Finished],
    moves: &Moves,
) -> Result<()> {
    // Step 5, the commit point. If it fails the record may or may not be durable, so nothing
    // may be removed any more: poison, and let open decide from what is on disk.
    if let Err(e) = manifest.commit(&inner.storage, &inner.dir) {
        inner.commit.poison().set(&e);
        return Err(e);
    }
    switch_over(inner, inputs, finished, moves);
    roll_forward(inner, manifest, inputs, finished).inspect_err(|e| inner.commit.poison().set(e))
}

impl Job<'_> {
    /// Step 1 over every input.
    fn copy_all(&mut self, inputs: &[Arc<DataFile>]) -> Result<()> {
        for input in inputs {
            self.copy_file(input)?;
        }
        Ok(())
    }

    fn copy_file(&mut self, input: &DataFile) -> Result<()> {
        let path = input.path();
        let reader = self.inner.storage.open(&path, IoClass::Compaction)?;
        let salvage = self.inner.opts.salvage;
        // A salvage open keeps a file that lost its seal, immutable: its records are read up
        // to its end, and the damage skipped.
        let end = match read_seal(&*reader, input.nonce(), input.len())? {
            Some(seal) => seal.offset,
            None if salvage => input.len(),
            None => return Err(Error::corruption(&path, input.len(), "a sealed data file")),
        };
        let policy = if salvage {
            Policy::Salvage
        } else {
            Policy::Strict
        };
        let id = input.id();
        let src = Source {
            file: &*reader,
            path: &path,
            nonce: input.nonce(),
        };
        scan_ops(src, (DATA_START, end), policy, &mut |op| {
            self.visit(id, &op)
        })?;
        self.decide_window(id)?;
        self.summary.bytes_read += input.len();
        Ok(())
    }

    fn visit(&mut self, file: u32, op: &Op<'_>) -> Result<()> {
        if self.inner.stopping() {
            return Err(Error::io(
                "merge",
                &self.inner.dir,
                std::io::Error::new(std::io::ErrorKind::Interrupted, "engine shutting down"),
            ));
        }
        self.summary.records_in += 1;
        self.window.push(op);
        if self.window.is_full() {
            self.decide_window(file)?;
        }
        Ok(())
    }

    /// Looks up every key of the window at once, then copies what is live, in file order.
    fn decide_window(&mut self, file: u32) -> Result<()> {
        let window = std::mem::take(&mut self.window);
        let keys: Vec<&[u8]> = window.ops().map(|op| op.key).collect();
        let current = self.inner.keydir.get_many(&keys);
        let result = window
            .ops()
            .zip(current)
            .try_for_each(|(op, current)| self.decide(file, &op, current));
        self.window = window;
        self.window.clear();
        result
    }

    /// Copies `op` if it is live (`current` is what the keydir holds for its key).
    fn decide(&mut self, file: u32, op: &Op<'_>, current: Option<Loc>) -> Result<()> {
        let copy = if op.tombstone {
            let newer_put = current.is_some_and(|c| c.seq > op.seq);
            let droppable = newer_put || op.seq < self.outside_min_seq;
            if droppable {
                self.summary.tombstones_dropped += 1;
            }
            !droppable
        } else {
            let live = current.is_some_and(|c| c.file == file && u64::from(c.offset) == op.offset);
            if !live {
                self.summary.stale_dropped += 1;
            }
            live
        };
        self.limiter.consume(op.len, &self.inner.stop);
        if !copy {
            return Ok(());
        }
        let new = self.outputs.copy(op)?;
        self.summary.records_out += 1;
        self.limiter.consume(op.len, &self.inner.stop);
        if let (false, Some(old)) = (op.tombstone, current) {
            self.moves.push(op.key, &old, &new);
        }
        Ok(())
    }

    /// Steps 2 to 4: outputs sealed, synced and hinted; their names durable; the log durable.
    fn prepare(&mut self) -> Result<Vec<Finished>> {
        let finished = self.outputs.finish()?;
        let inner = self.inner;
        inner
            .commit
            .poison()
            .guard(|| inner.storage.sync_dir(&inner.dir))?;
        self.inner.sync_log()?;
        Ok(finished)
    }
}

/// Step 6: the in-memory switch-over.
fn switch_over(inner: &Inner, inputs: &[Arc<DataFile>], finished: &[Finished], moves: &Moves) {
    {
        let mut files = inner.files.write();
        for f in finished {
            f.file.add_pinned(f.kept_tombstone_bytes);
            files.insert(f.file.id(), Arc::clone(&f.file));
        }
    }
    let outputs: BTreeMap<u32, &DataFile> =
        finished.iter().map(|f| (f.file.id(), &*f.file)).collect();
    for bucket in &moves.shards {
        move_bucket(inner, &outputs, bucket);
    }
    // Scans walking the keydir may hold locations in the inputs: wait for their walks.
    let _retire = inner.retire.write();
    let mut files = inner.files.write();
    for input in inputs {
        files.remove(&input.id());
    }
}

/// Moves the keys of one shard's bucket whose copies landed in `outputs`.
fn move_bucket(inner: &Inner, outputs: &BTreeMap<u32, &DataFile>, bucket: &Bucket) {
    let list: Vec<(&[u8], &Move, &DataFile)> = bucket
        .iter()
        .filter_map(|(key, m)| outputs.get(&m.to.0).map(|out| (key, m, *out)))
        .collect();
    let places: Vec<KeyMove<'_>> = list
        .iter()
        .map(|(key, m, _)| (*key, m.from, m.to))
        .collect();
    // Counted before the move, so that a write replacing the key right after it finds the
    // bytes to take away.
    let live = |i: usize| list.get(i).map(|(_, m, out)| (*out, u64::from(m.len)));
    inner.keydir.move_many(
        &places,
        |i| {
            if let Some((out, len)) = live(i) {
                out.add_live(len);
            }
        },
        |i| {
            if let Some((out, len)) = live(i) {
                out.remove_live(len);
            }
        },
    );
}

/// Step 7: rename outputs, remove inputs, remove the commit record; each fsynced.
fn roll_forward(
    inner: &Inner,
    manifest: &Manifest,
    inputs: &[Arc<DataFile>],
    finished: &[Finished],
) -> Result<()> {
    let storage: &dyn Storage = &inner.storage;
    let dir = &inner.dir;
    for f in finished {
        let to = FileName::Data(f.file.id()).path(dir);
        storage.rename(&FileName::Merging(f.file.id()).path(dir), &to)?;
        f.file.set_path(to);
    }
    storage.sync_dir(dir)?;
    for input in inputs {
        storage.remove(&input.path())?;
        let hint = FileName::Hint(input.id()).path(dir);
        if storage.exists(&hint)? {
            storage.remove(&hint)?;
        }
    }
    storage.sync_dir(dir)?;
    storage.remove(&FileName::Manifest(manifest.id).path(dir))?;
    storage.sync_dir(dir)
}
