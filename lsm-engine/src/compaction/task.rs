//! [`CompactionTask`], a plain-data description of one compaction job, and [`run_compaction`],
//! which carries it out: merge the inputs, drop what no snapshot can see, write synced output
//! tables. It opens its own readers and touches no engine state, so a task could be shipped to
//! another thread, process or machine; committing the outputs is the caller's job.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine_api::{IoClass, Result, Storage};

use crate::filename;
use crate::iter::{InternalIterator, MergingIter};
use crate::key::{self, Kind, SeqNo};
use crate::sstable::{BuildOptions, BuiltTable, Props, Table, TableBuilder};

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
    /// Data block size of the outputs.
    pub block_bytes: usize,
    /// Restart interval of the outputs' data blocks.
    pub restart_interval: usize,
    /// Bloom filter bits per key of the outputs (10 gives about a 1 % false-positive rate).
    pub bloom_bits_per_key: u32,
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
            self.user = Some(user.to_vec());
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
    let mut written = Vec::new();
    let result = run(task, storage, &mut written);
    if result.is_err() {
        for path in written {
            let _ = storage.remove(&path);
        }
    }
    result
}

fn run(
    task: &CompactionTask,
    storage: &dyn Storage,
    written: &mut Vec<PathBuf>,
) -> Result<CompactionOutput> {
    let started = Instant::now();
    let mut out = CompactionOutput::default();
    let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
    for input in &task.inputs {
        let path = filename::table(&task.dir, input.number);
        let table = Arc::new(Table::open(
            storage,
            &path,
            input.number,
            IoClass::Compaction,
            None,
        )?);
        out.bytes_read += table.size();
        children.push(Box::new(table.iter()));
    }
    let mut merged = MergingIter::new(children);
    merged.seek_to_first()?;
    let mut sink = OutputSink::new(task, storage);
    let mut gc = Gc {
        cutoff: task.seq_cutoff,
        deeper: &task.deeper_spans,
        user: None,
        newer_seq: SeqNo::MAX,
    };
    while merged.valid() {
        let ikey = merged.key();
        let parsed = key::parse(ikey)
            .ok_or_else(|| engine_api::Error::invalid("compaction met a key without a trailer"))?;
        out.entries_in += 1;
        match gc.judge(parsed.user, parsed.seq, parsed.kind) {
            Verdict::Shadowed => out.shadowed_dropped += 1,
            Verdict::Tombstone => out.tombstones_dropped += 1,
            Verdict::Keep => {
                let new_user = sink.last_user.as_deref() != Some(parsed.user);
                sink.add(ikey, &merged.value(), new_user, written)?;
                out.entries_out += 1;
            }
        }
        merged.next()?;
    }
    for built in sink.finish()? {
        out.bytes_written += built.size;
        out.tables.push(built);
    }
    if !out.tables.is_empty() {
        storage.sync_dir(&task.dir)?;
    }
    out.duration = started.elapsed();
    Ok(out)
}

/// Writes outputs one after another, cutting at the target size on a user-key boundary.
struct OutputSink<'a> {
    task: &'a CompactionTask,
    storage: &'a dyn Storage,
    builder: Option<(u64, TableBuilder)>,
    next_number: usize,
    done: Vec<OutputTable>,
    last_user: Option<Vec<u8>>,
}

impl<'a> OutputSink<'a> {
    fn new(task: &'a CompactionTask, storage: &'a dyn Storage) -> Self {
        OutputSink {
            task,
            storage,
            builder: None,
            next_number: 0,
            done: Vec::new(),
            last_user: None,
        }
    }

    fn add(
        &mut self,
        ikey: &[u8],
        value: &[u8],
        new_user: bool,
        written: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let full = self
            .builder
            .as_ref()
            .is_some_and(|(_, b)| b.estimated_size() >= self.task.target_file_bytes);
        let spare = self.next_number < self.task.output_numbers.len();
        if full && new_user && spare {
            self.close()?;
        }
        if self.builder.is_none() {
            self.open(written)?;
        }
        if let Some((_, b)) = &mut self.builder {
            b.add(ikey, value)?;
        }
        self.last_user = Some(key::user_key(ikey).to_vec());
        Ok(())
    }

    fn open(&mut self, written: &mut Vec<PathBuf>) -> Result<()> {
        let number = *self
            .task
            .output_numbers
            .get(self.next_number)
            .ok_or_else(|| engine_api::Error::invalid("compaction task has no output numbers"))?;
        self.next_number += 1;
        let path = filename::table(&self.task.dir, number);
        let file = self.storage.create(&path, IoClass::Compaction)?;
        written.push(path);
        let opts = BuildOptions {
            block_bytes: self.task.block_bytes,
            restart_interval: self.task.restart_interval,
            bloom_bits_per_key: self.task.bloom_bits_per_key,
        };
        self.builder = Some((number, TableBuilder::new(file, opts)));
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if let Some((number, b)) = self.builder.take() {
            let built: BuiltTable = b.finish()?;
            self.done.push(OutputTable {
                number,
                size: built.size,
                props: built.props,
            });
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<OutputTable>> {
        self.close()?;
        Ok(self.done)
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
