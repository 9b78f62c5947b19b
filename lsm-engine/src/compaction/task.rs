//! [`CompactionTask`], a plain-data description of one compaction job (or of one key range of
//! it: a subcompaction, or the rest of an interrupted job), and [`run_compaction`], which carries
//! it out: merge the inputs, drop what no snapshot can see, write synced output tables with
//! durable names. It opens its own readers and touches no engine state, so a task could be
//! shipped to another thread, process or machine; committing the outputs is the caller's job.

use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use engine_api::{IoClass, Result, Storage};

use super::cutter::{Grandparent, OutputCutter};
use crate::filename;
use crate::iter::{InternalIterator, MergingIter};
use crate::key::{self, Kind, SeqNo};
use crate::sstable::{BuildOptions, Props, Table, TableBuilder};

/// One input table of a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInput {
    /// The table's file number.
    pub number: u64,
    /// The level it lives in.
    pub level: u32,
}

/// An inclusive user-key range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpan {
    /// Smallest user key.
    pub smallest: Vec<u8>,
    /// Largest user key.
    pub largest: Vec<u8>,
}

impl KeySpan {
    fn contains(&self, user: &[u8]) -> bool {
        self.smallest.as_slice() <= user && user <= self.largest.as_slice()
    }
}

/// An immutable description of one compaction job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionTask {
    /// Unique id of this job.
    pub task_id: u64,
    /// Tables to merge, newest sources first (L0 newest first, then by level).
    pub inputs: Vec<TaskInput>,
    /// The engine directory, where inputs live and outputs go.
    pub dir: PathBuf,
    /// File numbers reserved for the outputs, used in order. The last output grows past the
    /// target size rather than run out of numbers.
    pub output_numbers: Vec<u64>,
    /// The level the outputs go to.
    pub output_level: u32,
    /// The oldest sequence number a live snapshot can read at: versions shadowed by a newer
    /// version at or below it are dropped, and so are tombstones at or below it that no deeper
    /// level can hold the key of.
    pub seq_cutoff: SeqNo,
    /// User-key ranges of the tables below the output level that overlap the inputs; a tombstone
    /// whose key falls in one must be kept.
    pub deeper_spans: Vec<KeySpan>,
    /// Outputs are cut at about this many bytes (never between two versions of one key).
    pub target_file_bytes: u64,
    /// The files of the level below the output level that the task's inputs overlap, in key
    /// order: outputs are cut at their boundaries (`compaction_policy::OutputCutter`). Not
    /// logged: a resumed task has none and cuts at the target size.
    pub grandparents: Vec<Grandparent<Vec<u8>>>,
    /// Data block size of the outputs.
    pub block_bytes: usize,
    /// Restart interval of the outputs' data blocks.
    pub restart_interval: usize,
    /// Bloom filter bits per key of the outputs (10 gives about a 1 % false-positive rate).
    pub bloom_bits_per_key: u32,
    /// Where in the user-key space the task starts: a subcompaction starts at its range's lower
    /// end (included), the rest of an interrupted task just after the last key it finished
    /// (excluded).
    pub start: Bound<Vec<u8>>,
    /// Where it stops (excluded); `None` runs to the end of the inputs.
    pub end: Option<Vec<u8>>,
}

/// One table written by a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputTable {
    /// Its file number.
    pub number: u64,
    /// Its size in bytes.
    pub size: u64,
    pub(crate) props: Props,
}

impl OutputTable {
    /// The largest user key in the table: where a resumed task starts after it.
    pub fn largest_key(&self) -> &[u8] {
        key::user_key(&self.props.largest)
    }
}

/// What a task produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionOutput {
    /// The output tables, in key order, synced and with their names durable.
    pub tables: Vec<OutputTable>,
    /// Entries read.
    pub entries_in: u64,
    /// Entries written.
    pub entries_out: u64,
    /// Versions dropped because a newer one shadows them for every snapshot.
    pub shadowed_dropped: u64,
    /// Tombstones dropped.
    pub tombstones_dropped: u64,
    /// Bytes of the inputs.
    pub bytes_read: u64,
    /// Bytes of the outputs.
    pub bytes_written: u64,
    /// Wall time.
    pub duration: Duration,
    /// CPU time of the thread that ran it (zero where the platform does not tell).
    pub cpu: Duration,
    /// False if the task was cancelled before the end of its range: `tables` then holds the
    /// outputs finished so far, each complete, and the task can be resumed after the last.
    pub complete: bool,
}

/// A job's stop flag, which its tasks check as they merge.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    flag: AtomicBool,
    #[cfg(feature = "testing")]
    pub(crate) hooks: Arc<crate::testing::TestHooks>,
}

impl Cancel {
    pub(crate) fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Test hooks: counts entries merged once the flag is set, and stops after the first.
    #[cfg(feature = "testing")]
    fn observe(&self, entries_in: u64) {
        if self.is_set() {
            self.hooks.note_entry_after_cancel();
        }
        if entries_in == 1 {
            self.hooks.fire_after_first_merge_entry(&|| self.is_set());
        }
    }
}

/// The garbage-collection rule, applied entry by entry in internal-key order.
struct Gc<'a> {
    cutoff: SeqNo,
    deeper: &'a [KeySpan],
    user: Option<Vec<u8>>,
    /// Sequence number of the previous (newer) version of the current user key.
    newer_seq: SeqNo,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Keep,
    Shadowed,
    Tombstone,
}

impl Gc<'_> {
    fn judge(&mut self, user: &[u8], seq: SeqNo, kind: Kind) -> Verdict {
        if self.user.as_deref() != Some(user) {
            // Reused, not reallocated: this runs once per merged entry.
            let current = self.user.get_or_insert_with(Vec::new);
            current.clear();
            current.extend_from_slice(user);
            self.newer_seq = SeqNo::MAX;
        }
        let verdict = if self.newer_seq <= self.cutoff {
            Verdict::Shadowed
        } else if kind == Kind::Delete
            && seq <= self.cutoff
            && !self.deeper.iter().any(|s| s.contains(user))
        {
            Verdict::Tombstone
        } else {
            Verdict::Keep
        };
        self.newer_seq = seq;
        verdict
    }
}

/// Runs `task`: see the module documentation. On error, outputs written so far are removed
/// (best effort; leftovers are orphans that the next open removes).
///
/// # Errors
/// I/O errors, or corruption met in an input.
pub fn run_compaction(task: &CompactionTask, storage: &dyn Storage) -> Result<CompactionOutput> {
    let mut finished = Vec::new();
    let result = run_task(
        task,
        storage,
        &mut |o| {
            finished.push(o.number);
            Ok(())
        },
        None,
    );
    if result.is_err() {
        for number in finished {
            let _ = storage.remove(&filename::table(&task.dir, number));
        }
    }
    result
}

/// Runs `task`, calling `on_output` with each output once it is synced and its name durable
/// (the compaction log records it there), and stopping early when `cancel` is set. On error or
/// cancellation only the unfinished output is removed: finished ones are the caller's.
pub(crate) fn run_task(
    task: &CompactionTask,
    storage: &dyn Storage,
    on_output: &mut dyn FnMut(&OutputTable) -> Result<()>,
    cancel: Option<&Cancel>,
) -> Result<CompactionOutput> {
    let mut sink = OutputSink::new(task, storage, on_output);
    let result = merge(task, storage, &mut sink, cancel);
    if result.is_err() {
        sink.abandon();
    }
    result
}

fn open_inputs(
    task: &CompactionTask,
    storage: &dyn Storage,
    out: &mut CompactionOutput,
) -> Result<MergingIter> {
    let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
    for input in &task.inputs {
        let path = filename::table(&task.dir, input.number);
        let table = Table::open(storage, &path, input.number, IoClass::Compaction, None)?;
        out.bytes_read += table.size();
        children.push(Box::new(Arc::new(table).iter()));
    }
    Ok(MergingIter::new(children))
}

/// Positions `merged` at the first entry of the task's range.
fn seek_start(merged: &mut MergingIter, start: &Bound<Vec<u8>>) -> Result<()> {
    match start {
        Bound::Unbounded => merged.seek_to_first(),
        Bound::Included(k) => merged.seek(&key::seek_key(k, key::MAX_SEQ)),
        Bound::Excluded(k) => {
            // The smallest internal key of `k` is its oldest version; skip every version.
            merged.seek(&key::encode(k, 0, Kind::Delete))?;
            while merged.valid() && key::user_key(merged.key()) == k.as_slice() {
                merged.next()?;
            }
            Ok(())
        }
    }
}

fn merge(
    task: &CompactionTask,
    storage: &dyn Storage,
    sink: &mut OutputSink<'_>,
    cancel: Option<&Cancel>,
) -> Result<CompactionOutput> {
    let started = Instant::now();
    let cpu_before = engine_api::thread_cpu_time();
    let mut out = CompactionOutput::default();
    let mut merged = open_inputs(task, storage, &mut out)?;
    seek_start(&mut merged, &task.start)?;
    let mut gc = Gc {
        cutoff: task.seq_cutoff,
        deeper: &task.deeper_spans,
        user: None,
        newer_seq: SeqNo::MAX,
    };
    let cancelled = || cancel.is_some_and(Cancel::is_set);
    out.complete = true;
    while merged.valid() {
        let ikey = merged.key();
        let parsed = key::parse(ikey)
            .ok_or_else(|| engine_api::Error::invalid("compaction met a key without a trailer"))?;
        if task.end.as_deref().is_some_and(|end| parsed.user >= end) {
            break;
        }
        // Checked before every entry (one relaxed load): a check tied to key boundaries and an
        // entry count can be skipped for good by multi-version keys. Stopping mid-key is safe:
        // the unfinished output is dropped, and finished ones end on a key boundary.
        if cancelled() {
            out.complete = false;
            break;
        }
        let new_user = sink.last_user.as_deref() != Some(parsed.user);
        out.entries_in += 1;
        #[cfg(feature = "testing")]
        if let Some(c) = cancel {
            c.observe(out.entries_in);
        }
        match gc.judge(parsed.user, parsed.seq, parsed.kind) {
            Verdict::Shadowed => out.shadowed_dropped += 1,
            Verdict::Tombstone => out.tombstones_dropped += 1,
            Verdict::Keep => {
                sink.add(ikey, &merged.value(), new_user)?;
                out.entries_out += 1;
            }
        }
        merged.next()?;
    }
    if out.complete {
        sink.close()?;
    } else {
        sink.abandon();
    }
    out.tables = std::mem::take(&mut sink.done);
    out.bytes_written = out.tables.iter().map(|t| t.size).sum();
    out.duration = started.elapsed();
    if let (Some(a), Some(b)) = (cpu_before, engine_api::thread_cpu_time()) {
        out.cpu = b.saturating_sub(a);
    }
    Ok(out)
}

/// Writes outputs one after another, cut on a user-key boundary where the cutter says.
struct OutputSink<'a> {
    task: &'a CompactionTask,
    cutter: OutputCutter<Vec<u8>>,
    storage: &'a dyn Storage,
    on_output: &'a mut dyn FnMut(&OutputTable) -> Result<()>,
    builder: Option<(u64, TableBuilder)>,
    next_number: usize,
    done: Vec<OutputTable>,
    last_user: Option<Vec<u8>>,
}

impl<'a> OutputSink<'a> {
    fn new(
        task: &'a CompactionTask,
        storage: &'a dyn Storage,
        on_output: &'a mut dyn FnMut(&OutputTable) -> Result<()>,
    ) -> Self {
        OutputSink {
            task,
            cutter: OutputCutter::new(task.target_file_bytes, task.grandparents.clone()),
            storage,
            on_output,
            builder: None,
            next_number: 0,
            done: Vec::new(),
            last_user: None,
        }
    }

    fn add(&mut self, ikey: &[u8], value: &[u8], new_user: bool) -> Result<()> {
        if new_user {
            let size = self.builder.as_ref().map(|(_, b)| b.estimated_size());
            let cut = self.cutter.cut_before(key::user_key(ikey), size);
            let spare = self.next_number < self.task.output_numbers.len();
            if cut && spare {
                self.close()?;
            }
        }
        if self.builder.is_none() {
            self.open()?;
        }
        if let Some((_, b)) = &mut self.builder {
            b.add(ikey, value)?;
        }
        let last = self.last_user.get_or_insert_with(Vec::new);
        last.clear();
        last.extend_from_slice(key::user_key(ikey));
        Ok(())
    }

    fn open(&mut self) -> Result<()> {
        let number = *self
            .task
            .output_numbers
            .get(self.next_number)
            .ok_or_else(|| engine_api::Error::invalid("compaction task has no output numbers"))?;
        self.next_number += 1;
        let path = filename::table(&self.task.dir, number);
        let file = self.storage.create(&path, IoClass::Compaction)?;
        let opts = BuildOptions {
            block_bytes: self.task.block_bytes,
            restart_interval: self.task.restart_interval,
            bloom_bits_per_key: self.task.bloom_bits_per_key,
        };
        self.builder = Some((number, TableBuilder::new(file, opts)));
        Ok(())
    }

    /// Finishes the current output: sync it, make its name durable, report it.
    fn close(&mut self) -> Result<()> {
        let Some((number, b)) = self.builder.take() else {
            return Ok(());
        };
        let built = b.finish()?;
        self.storage.sync_dir(&self.task.dir)?;
        let table = OutputTable {
            number,
            size: built.size,
            props: built.props,
        };
        (self.on_output)(&table)?;
        self.done.push(table);
        Ok(())
    }

    /// Drops the unfinished output, if any (best effort: a leftover is an orphan).
    fn abandon(&mut self) {
        if let Some((number, b)) = self.builder.take() {
            drop(b);
            let _ = self
                .storage
                .remove(&filename::table(&self.task.dir, number));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_keeps_what_snapshots_need_and_drops_safe_tombstones() {
        let deeper = [KeySpan {
            smallest: b"m".to_vec(),
            largest: b"p".to_vec(),
        }];
        let mut gc = Gc {
            cutoff: 10,
            deeper: &deeper,
            user: None,
            newer_seq: SeqNo::MAX,
        };
        // Newest first, as the merge yields them.
        assert_eq!(gc.judge(b"a", 12, Kind::Put), Verdict::Keep);
        assert_eq!(
            gc.judge(b"a", 9, Kind::Put),
            Verdict::Keep,
            "a snapshot at 10 reads it"
        );
        assert_eq!(gc.judge(b"a", 5, Kind::Put), Verdict::Shadowed);
        assert_eq!(gc.judge(b"b", 8, Kind::Delete), Verdict::Tombstone);
        assert_eq!(gc.judge(b"b", 3, Kind::Put), Verdict::Shadowed);
        assert_eq!(
            gc.judge(b"c", 11, Kind::Delete),
            Verdict::Keep,
            "above the cutoff"
        );
        assert_eq!(
            gc.judge(b"n", 4, Kind::Delete),
            Verdict::Keep,
            "a deeper level may hold n"
        );
    }
}
