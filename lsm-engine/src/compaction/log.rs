//! The compaction log (`NNNNNN.clog`, one per job): the job's intent before any work starts,
//! then one record per finished output. Spec: `docs/formats/compaction-log.md`.
//!
//! The commit itself is the manifest edit (inputs out, outputs in); the log exists so that a
//! job cut short by a crash can be resumed from its last finished output instead of starting
//! over, and so that open knows which outputs on disk belong to an unfinished job (kept) and
//! which are debris (removed).

use std::ops::Bound;
use std::path::{Path, PathBuf};

use engine_api::{Error, IoClass, Result, Storage, WritableFile};
use parking_lot::Mutex;

use super::task::{CompactionTask, KeySpan, OutputTable, TaskInput};
use crate::coding::{Reader, put_bytes, put_varint};
use crate::filename;
use crate::wal::format::{
    HEADER_LEN, Head, RecordKind, encode_file_header, encode_record, new_nonce, other_version,
    read_file_header, scan,
};

const TAG_INTENT: u8 = 1;
const TAG_OUTPUT: u8 = 2;

/// A job as its intent record describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JobPlan {
    pub(crate) job_id: u64,
    pub(crate) level: u32,
    pub(crate) output_level: u32,
    /// Every input of the job (the subtasks read these, each within its key range).
    pub(crate) inputs: Vec<TaskInput>,
    pub(crate) subtasks: Vec<CompactionTask>,
}

/// An output a subtask finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DoneOutput {
    pub(crate) subtask: usize,
    pub(crate) number: u64,
    pub(crate) size: u64,
    /// Its largest user key: the subtask resumes after it.
    pub(crate) largest: Vec<u8>,
}

/// What a log on disk says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LoggedJob {
    pub(crate) plan: JobPlan,
    pub(crate) done: Vec<DoneOutput>,
}

/// An open compaction log. Records are appended and synced one at a time (subtasks share it),
/// so only the last record can be torn.
pub(crate) struct CompactionLog {
    path: PathBuf,
    /// The seed of every record's CRC after the header (`docs/formats/compaction-log.md`).
    nonce: u32,
    /// The file, or `None` once an append or sync failed: a failed sync is never retried (nor
    /// followed by more records another sync might make durable after lost ones).
    file: Mutex<std::result::Result<Box<dyn WritableFile>, String>>,
}

impl CompactionLog {
    /// Creates the log of `plan` with its intent record (and, for a resumed job, the outputs
    /// already finished), syncs it and makes its name durable. Work may start once this returns.
    pub(crate) fn create(
        storage: &dyn Storage,
        dir: &Path,
        number: u64,
        plan: &JobPlan,
        done: &[DoneOutput],
    ) -> Result<CompactionLog> {
        let path = filename::compaction_log(dir, number);
        let file = storage.create(&path, IoClass::Compaction)?;
        let nonce = new_nonce();
        let bytes = first_append(nonce, plan, done);
        file.append(&bytes)?;
        file.sync()?;
        storage.sync_dir(dir)?;
        Ok(CompactionLog {
            path,
            nonce,
            file: Mutex::new(Ok(file)),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Records that `subtask` finished `out` (already synced, its name durable).
    pub(crate) fn record(&self, subtask: usize, out: &OutputTable) -> Result<()> {
        let done = DoneOutput {
            subtask,
            number: out.number,
            size: out.size,
            largest: out.largest_key().to_vec(),
        };
        let mut slot = self.file.lock();
        let file = match slot.as_ref() {
            Ok(file) => file,
            Err(cause) => {
                return Err(Error::Poisoned {
                    cause: cause.clone(),
                });
            }
        };
        let record = encode_record(self.nonce, RecordKind::CompactionLog, &encode_done(&done));
        let written = file.append(&record).and_then(|()| file.sync());
        if let Err(e) = &written {
            *slot = Err(e.to_string());
        }
        written
    }
}

/// Bytes of a log's header record: framing, version, nonce and the first append's length.
const LOG_HEADER_LEN: usize = HEADER_LEN + 16;

/// A log's first append: the header (which records how long this append is), the intent, and
/// the outputs a resumed job keeps.
fn first_append(nonce: u32, plan: &JobPlan, done: &[DoneOutput]) -> Vec<u8> {
    let mut records = encode_record(nonce, RecordKind::CompactionLog, &encode_plan(plan));
    for d in done {
        records.extend(encode_record(
            nonce,
            RecordKind::CompactionLog,
            &encode_done(d),
        ));
    }
    let len = (LOG_HEADER_LEN + records.len()) as u64;
    let mut bytes = encode_file_header(RecordKind::CompactionLogHeader, nonce, &len.to_le_bytes());
    bytes.extend(records);
    bytes
}

/// Reads log `number`: `None` if its first append (header, intent, and a resumed job's kept
/// outputs, one append and one sync) never became durable whole: the job never started under
/// this log. Damage after the first append followed by a good record, or a record that does not
/// decode, is corruption; a bad last record is a torn write and ignored. A header that does not
/// verify is taken for a torn first write, as nothing after it can vouch for it (damage confined
/// to a synced log's header costs the job's progress, never data: its inputs are live). A log
/// of another format version is `InvalidArgument` naming it.
pub(crate) fn read_log(
    storage: &dyn Storage,
    dir: &Path,
    number: u64,
) -> Result<Option<LoggedJob>> {
    let path = filename::compaction_log(dir, number);
    let bytes = storage.open(&path, IoClass::Recovery)?.read_all()?;
    let header = match read_file_header(
        &bytes,
        RecordKind::CompactionLogHeader,
        RecordKind::CompactionLog,
    ) {
        Head::Good(h) if h.body.len() == 8 => h,
        Head::Version(v) => return Err(other_version(&path, "compaction log", v)),
        Head::Bad(_) => return Ok(None),
        Head::Good(_) | Head::Malformed => {
            return Err(Error::corruption(
                &path,
                0,
                "a well-formed compaction-log header",
            ));
        }
    };
    let scanned = scan(
        &bytes,
        header.end,
        header.nonce,
        RecordKind::CompactionLog,
        true,
    );
    let first_len = Reader::new(header.body).u64().unwrap_or(u64::MAX);
    let first_torn = scanned.bad.is_some_and(|(offset, _)| offset < first_len);
    if first_torn || (bytes.len() as u64) < first_len {
        return Ok(None);
    }
    if let Some((offset, bad)) = scanned.bad
        && scanned.good_after_bad
    {
        return Err(Error::corruption(&path, offset, bad.describe()));
    }
    let mut records = scanned.records.iter();
    let Some(first) = records.next() else {
        return Ok(None);
    };
    let corrupt =
        |offset: u64| Error::corruption(&path, offset, "a well-formed compaction-log record");
    let mut plan = decode_plan(first.payload).ok_or_else(|| corrupt(first.offset))?;
    for task in &mut plan.subtasks {
        task.dir = dir.to_path_buf();
    }
    let mut done = Vec::new();
    for r in records {
        let d = decode_done(r.payload)
            .filter(|d| d.subtask < plan.subtasks.len())
            .ok_or_else(|| corrupt(r.offset))?;
        done.push(d);
    }
    Ok(Some(LoggedJob { plan, done }))
}

fn put_inputs(out: &mut Vec<u8>, inputs: &[TaskInput]) {
    put_varint(out, inputs.len() as u64);
    for i in inputs {
        put_varint(out, i.number);
        put_varint(out, u64::from(i.level));
    }
}

fn get_inputs(r: &mut Reader<'_>) -> Option<Vec<TaskInput>> {
    let n = r.varint_usize()?;
    let mut inputs = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        inputs.push(TaskInput {
            number: r.varint()?,
            level: u32::try_from(r.varint()?).ok()?,
        });
    }
    Some(inputs)
}

fn encode_plan(plan: &JobPlan) -> Vec<u8> {
    let mut out = vec![TAG_INTENT];
    put_varint(&mut out, plan.job_id);
    put_varint(&mut out, u64::from(plan.level));
    put_varint(&mut out, u64::from(plan.output_level));
    put_inputs(&mut out, &plan.inputs);
    put_varint(&mut out, plan.subtasks.len() as u64);
    for t in &plan.subtasks {
        encode_task(&mut out, t);
    }
    out
}

fn decode_plan(payload: &[u8]) -> Option<JobPlan> {
    let mut r = Reader::new(payload);
    (r.u8()? == TAG_INTENT).then_some(())?;
    let job_id = r.varint()?;
    let level = u32::try_from(r.varint()?).ok()?;
    let output_level = u32::try_from(r.varint()?).ok()?;
    let inputs = get_inputs(&mut r)?;
    let n = r.varint_usize()?;
    let mut subtasks = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        subtasks.push(decode_task(&mut r)?);
    }
    r.is_empty().then_some(JobPlan {
        job_id,
        level,
        output_level,
        inputs,
        subtasks,
    })
}

fn encode_task(out: &mut Vec<u8>, t: &CompactionTask) {
    put_varint(out, t.task_id);
    put_inputs(out, &t.inputs);
    put_varint(out, t.output_numbers.len() as u64);
    for n in &t.output_numbers {
        put_varint(out, *n);
    }
    put_varint(out, u64::from(t.output_level));
    put_varint(out, t.seq_cutoff);
    put_varint(out, t.deeper_spans.len() as u64);
    for s in &t.deeper_spans {
        put_bytes(out, &s.smallest);
        put_bytes(out, &s.largest);
    }
    put_varint(out, t.target_file_bytes);
    put_varint(out, t.block_bytes as u64);
    put_varint(out, t.restart_interval as u64);
    put_varint(out, u64::from(t.bloom_bits_per_key));
    match &t.start {
        Bound::Unbounded => out.push(0),
        Bound::Included(k) => {
            out.push(1);
            put_bytes(out, k);
        }
        Bound::Excluded(k) => {
            out.push(2);
            put_bytes(out, k);
        }
    }
    match &t.end {
        None => out.push(0),
        Some(k) => {
            out.push(1);
            put_bytes(out, k);
        }
    }
}

fn decode_task(r: &mut Reader<'_>) -> Option<CompactionTask> {
    let task_id = r.varint()?;
    let inputs = get_inputs(r)?;
    let n = r.varint_usize()?;
    let mut output_numbers = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        output_numbers.push(r.varint()?);
    }
    let output_level = u32::try_from(r.varint()?).ok()?;
    let seq_cutoff = r.varint()?;
    let n = r.varint_usize()?;
    let mut deeper_spans = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        deeper_spans.push(KeySpan {
            smallest: r.bytes()?.to_vec(),
            largest: r.bytes()?.to_vec(),
        });
    }
    let target_file_bytes = r.varint()?;
    let block_bytes = r.varint_usize()?;
    let restart_interval = r.varint_usize()?;
    let bloom_bits_per_key = u32::try_from(r.varint()?).ok()?;
    let start = match r.u8()? {
        0 => Bound::Unbounded,
        1 => Bound::Included(r.bytes()?.to_vec()),
        2 => Bound::Excluded(r.bytes()?.to_vec()),
        _ => return None,
    };
    let end = match r.u8()? {
        0 => None,
        1 => Some(r.bytes()?.to_vec()),
        _ => return None,
    };
    Some(CompactionTask {
        task_id,
        inputs,
        dir: PathBuf::new(),
        output_numbers,
        output_level,
        seq_cutoff,
        deeper_spans,
        target_file_bytes,
        grandparents: Vec::new(),
        block_bytes,
        restart_interval,
        bloom_bits_per_key,
        start,
        end,
    })
}

fn encode_done(d: &DoneOutput) -> Vec<u8> {
    let mut out = vec![TAG_OUTPUT];
    put_varint(&mut out, d.subtask as u64);
    put_varint(&mut out, d.number);
    put_varint(&mut out, d.size);
    put_bytes(&mut out, &d.largest);
    out
}

fn decode_done(payload: &[u8]) -> Option<DoneOutput> {
    let mut r = Reader::new(payload);
    (r.u8()? == TAG_OUTPUT).then_some(())?;
    let d = DoneOutput {
        subtask: r.varint_usize()?,
        number: r.varint()?,
        size: r.varint()?,
        largest: r.bytes()?.to_vec(),
    };
    r.is_empty().then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(i: u64) -> CompactionTask {
        CompactionTask {
            task_id: 7,
            inputs: vec![
                TaskInput {
                    number: 3,
                    level: 0,
                },
                TaskInput {
                    number: 4,
                    level: 6,
                },
            ],
            dir: PathBuf::new(),
            output_numbers: vec![10 + i, 11 + i],
            output_level: 6,
            seq_cutoff: 99,
            deeper_spans: vec![KeySpan {
                smallest: b"a".to_vec(),
                largest: b"b".to_vec(),
            }],
            target_file_bytes: 1024,
            grandparents: Vec::new(),
            block_bytes: 4096,
            restart_interval: 16,
            bloom_bits_per_key: 10,
            start: if i == 0 {
                Bound::Unbounded
            } else {
                Bound::Included(b"m".to_vec())
            },
            end: (i == 0).then(|| b"m".to_vec()),
        }
    }

    #[test]
    fn records_round_trip() {
        let plan = JobPlan {
            job_id: 7,
            level: 0,
            output_level: 6,
            inputs: task(0).inputs,
            subtasks: vec![task(0), task(5)],
        };
        assert_eq!(decode_plan(&encode_plan(&plan)), Some(plan));
        let d = DoneOutput {
            subtask: 1,
            number: 15,
            size: 999,
            largest: b"q".to_vec(),
        };
        assert_eq!(decode_done(&encode_done(&d)), Some(d));
        assert_eq!(decode_done(&[TAG_INTENT]), None);
    }
}
