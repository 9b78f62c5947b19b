//! One compaction job from plan to commit: build the plain-data plan of a pick (subtasks split
//! the key range across workers), write the compaction log, run the subtasks in parallel, commit
//! the outputs with one manifest edit. Protocol: `docs/lsm.md` ("Compaction").

use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine_api::{CompactionSummary, Error, IoClass, Result, thread_cpu_time};

use super::log::{CompactionLog, DoneOutput, JobPlan};
use super::picker::{FileSummary, Pick, Range, deeper_spans, grandparents};
use super::task::{
    Cancel, CompactionOutput, CompactionTask, KeySpan, OutputTable, TaskInput, run_task,
};
use crate::db::Inner;
use crate::filename;
use crate::sstable::Table;
use crate::version::{VersionEdit, file_meta};

/// What kind of job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobKind {
    /// A file moved down a level by a manifest edit alone.
    Move,
    /// A merge of a level's files into the next level.
    Merge,
    /// `compact()`: every table merged into the last level.
    Full,
    /// A merge interrupted by a crash, resumed after its last finished output.
    Resumed,
}

/// A job ready to run.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) kind: JobKind,
    pub(crate) plan: JobPlan,
    /// Outputs already finished (a resumed job).
    pub(crate) done: Vec<DoneOutput>,
    /// The (level, range) pairs the job reserves.
    pub(crate) reserve: Vec<(usize, Range)>,
    /// The log of the interrupted run this job resumes, removed once the new log is durable.
    pub(crate) replaces: Option<PathBuf>,
}

impl Job {
    pub(crate) fn id(&self) -> u64 {
        self.plan.job_id
    }
}

fn level_u32(l: usize) -> u32 {
    u32::try_from(l).unwrap_or(u32::MAX)
}

/// The oldest sequence number a live snapshot (or a read now) can see.
pub(crate) fn seq_cutoff(inner: &Inner) -> u64 {
    inner.snapshots.cutoff(&inner.visible_seq)
}

/// Splits `files` (the job's inputs) into at most `max` key ranges of similar input bytes, at
/// input files' smallest keys: each range becomes a subtask.
fn split_points(files: &[&FileSummary], max: usize, target: u64) -> Vec<Vec<u8>> {
    let total: u64 = files.iter().map(|f| f.size).sum();
    let parts = max
        .min(usize::try_from(total / target.max(1)).unwrap_or(usize::MAX))
        .max(1);
    if parts < 2 {
        return Vec::new();
    }
    let mut starts: Vec<(&[u8], u64)> = files
        .iter()
        .map(|f| (f.smallest.as_slice(), f.size))
        .collect();
    starts.sort();
    let share = total / parts as u64;
    let (mut acc, mut points) = (0u64, Vec::new());
    let first = starts.first().map(|(k, _)| k.to_vec());
    for (k, size) in starts {
        if acc >= share * (points.len() as u64 + 1)
            && Some(k.to_vec()) != first
            && points.last().map(Vec::as_slice) != Some(k)
        {
            points.push(k.to_vec());
        }
        acc += size;
    }
    points.truncate(parts - 1);
    points
}

/// A subtask's key range: start, and exclusive end (`None`: to the end).
type SubRange = (Bound<Vec<u8>>, Option<Vec<u8>>);

/// The plan of a merge of `inputs` into `output_level`, split into subtasks.
fn plan(
    inner: &Inner,
    level: usize,
    output_level: usize,
    inputs: Vec<TaskInput>,
    files: &[&FileSummary],
    levels: &[Vec<FileSummary>],
    subtasks: usize,
) -> JobPlan {
    let o = &inner.opts;
    let job_id = inner.versions.new_file_number();
    let range = Range::of(files);
    let spans: Vec<KeySpan> = deeper_spans(levels, output_level, &range)
        .into_iter()
        .map(|(smallest, largest)| KeySpan { smallest, largest })
        .collect();
    let points = split_points(files, subtasks, o.target_file_bytes);
    let mut bounds: Vec<SubRange> = Vec::new();
    let mut start = Bound::Unbounded;
    for p in points {
        bounds.push((start, Some(p.clone())));
        start = Bound::Included(p);
    }
    bounds.push((start, None));
    let grandparents = grandparents(levels, output_level, &range);
    let total: u64 = files.iter().map(|f| f.size).sum();
    // Cut at grandparent boundaries, an output may hold as little as half the target.
    let per_task = total / bounds.len() as u64 / (o.target_file_bytes / 2).max(1) + 2;
    let cutoff = seq_cutoff(inner);
    let subtasks = bounds
        .into_iter()
        .map(|(start, end)| CompactionTask {
            task_id: job_id,
            inputs: inputs.clone(),
            dir: inner.dir.clone(),
            output_numbers: (0..per_task)
                .map(|_| inner.versions.new_file_number())
                .collect(),
            output_level: level_u32(output_level),
            seq_cutoff: cutoff,
            deeper_spans: spans.clone(),
            target_file_bytes: o.target_file_bytes,
            grandparents: grandparents.clone(),
            block_bytes: o.block_bytes,
            restart_interval: o.block_restart_interval,
            bloom_bits_per_key: o.bloom_bits_per_key,
            start,
            end,
        })
        .collect();
    JobPlan {
        job_id,
        level: level_u32(level),
        output_level: level_u32(output_level),
        inputs,
        subtasks,
    }
}

/// The job of a pick. L0 jobs are split into subcompactions (the L0-to-base bottleneck).
pub(crate) fn from_pick(inner: &Inner, pick: &Pick, levels: &[Vec<FileSummary>]) -> Job {
    let files: Vec<&FileSummary> = pick.inputs.iter().chain(&pick.next_inputs).collect();
    let subtasks = if pick.level == 0 {
        inner.opts.max_subcompactions
    } else {
        1
    };
    let mut plan = plan(
        inner,
        pick.level,
        pick.output_level,
        pick.task_inputs(),
        &files,
        levels,
        subtasks,
    );
    if pick.trivial_move {
        plan.subtasks.clear();
    }
    Job {
        kind: if pick.trivial_move {
            JobKind::Move
        } else {
            JobKind::Merge
        },
        plan,
        done: Vec::new(),
        reserve: pick.reserve.clone(),
        replaces: None,
    }
}

/// The job of a full compaction: every table into the last level.
pub(crate) fn full(inner: &Inner, levels: &[Vec<FileSummary>], inputs: Vec<TaskInput>) -> Job {
    let files: Vec<&FileSummary> = levels.iter().flatten().collect();
    let last = levels.len().saturating_sub(1);
    let plan = plan(
        inner,
        0,
        last,
        inputs,
        &files,
        levels,
        inner.opts.max_subcompactions,
    );
    Job {
        kind: JobKind::Full,
        plan,
        done: Vec::new(),
        reserve: (0..levels.len()).map(|l| (l, Range::all())).collect(),
        replaces: None,
    }
}

/// The job that finishes an interrupted one (read from its log at open): the same plan under a
/// new id, fresh output numbers for what is left, the finished outputs kept. Its new log
/// replaces the old one once durable.
pub(crate) fn resumed(
    logged: super::LoggedJob,
    new_id: u64,
    fresh: &mut dyn FnMut() -> u64,
    old_log: PathBuf,
) -> Job {
    let mut plan = logged.plan;
    plan.job_id = new_id;
    for t in &mut plan.subtasks {
        t.task_id = new_id;
        let n = t.output_numbers.len().max(2);
        t.output_numbers = (0..n).map(|_| fresh()).collect();
    }
    let mut levels: Vec<usize> = plan.inputs.iter().map(|i| i.level as usize).collect();
    levels.push(plan.output_level as usize);
    levels.sort_unstable();
    levels.dedup();
    Job {
        kind: JobKind::Resumed,
        plan,
        done: logged.done,
        reserve: super::whole_levels(&levels),
        replaces: Some(old_log),
    }
}

/// Runs `job` to its commit. `Ok(None)` if it was cancelled (its log stays, to resume).
pub(crate) fn run(inner: &Inner, job: &Job, cancel: &Cancel) -> Result<Option<CompactionSummary>> {
    let started = Instant::now();
    let cpu_before = thread_cpu_time();
    // Opening the outputs for gets (user-read handles) reads their indexes: the job's reads.
    let _cause = engine_api::io_cause(IoClass::Compaction);
    if job.kind == JobKind::Move {
        return commit_move(inner, job).map(Some);
    }
    let log = CompactionLog::create(&*inner.storage, &inner.dir, job.id(), &job.plan, &job.done)?;
    if let Some(old) = &job.replaces {
        // The new log holds everything the old one did; the removal is made durable before
        // any work, so a crash leaves one log of this job. (A crash between the two steps
        // still can leave both: open keeps the newest, `crate::recovery`.)
        inner.storage.remove(old)?;
        inner.storage.sync_dir(&inner.dir)?;
    }
    let outputs =
        run_subtasks(inner, job, &log, cancel).inspect_err(|e| abandon(inner, &log, e))?;
    let Some(outputs) = outputs else {
        return Ok(None);
    };
    let mut summary = CompactionSummary::default();
    let subtask_cpu: Duration = outputs.iter().map(|o| o.cpu).sum();
    for o in &outputs {
        summary.records_in += o.entries_in;
        summary.records_out += o.entries_out;
        summary.stale_dropped += o.shadowed_dropped;
        summary.tombstones_dropped += o.tombstones_dropped;
    }
    let mut numbers: Vec<(u64, u64)> = job.done.iter().map(|d| (d.number, d.size)).collect();
    numbers.extend(
        outputs
            .iter()
            .flat_map(|o| o.tables.iter().map(|t| (t.number, t.size))),
    );
    commit(inner, job, &numbers).inspect_err(|e| abandon(inner, &log, e))?;
    inner.obsolete.push(log.path().to_path_buf(), 0);
    let inputs = input_bytes(inner, job);
    summary.jobs = 1;
    summary.files_in = job.plan.inputs.len() as u64;
    summary.files_out = numbers.len() as u64;
    summary.files_removed = summary.files_in;
    summary.bytes_read = inputs.iter().map(|(_, b)| b).sum();
    summary.bytes_written = numbers.iter().map(|(_, s)| s).sum();
    summary.duration = started.elapsed();
    let cpu = subtask_cpu
        + match (cpu_before, thread_cpu_time()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => Duration::ZERO,
        };
    inner
        .counters
        .record_compaction(&summary, &inputs, job.plan.output_level as usize, cpu);
    Ok(Some(summary))
}

/// After a failure: an I/O failure leaves the log for the next open to resume the job; any
/// other (a damaged input, say) abandons it: the log goes and its outputs become orphans.
fn abandon(inner: &Inner, log: &CompactionLog, e: &Error) {
    if !matches!(e, Error::Io { .. } | Error::Poisoned { .. }) {
        let _ = inner.storage.remove(log.path());
    }
}

/// (level, bytes) of each input, for the per-level statistics.
fn input_bytes(inner: &Inner, job: &Job) -> Vec<(usize, u64)> {
    job.plan
        .inputs
        .iter()
        .map(|i| {
            let size = inner
                .storage
                .file_len(&filename::table(&inner.dir, i.number))
                .unwrap_or(0);
            (i.level as usize, size)
        })
        .collect()
}

/// Runs every subtask on its own thread; `None` if any was cancelled.
fn run_subtasks(
    inner: &Inner,
    job: &Job,
    log: &CompactionLog,
    cancel: &Cancel,
) -> Result<Option<Vec<CompactionOutput>>> {
    let tasks: Vec<CompactionTask> = job
        .plan
        .subtasks
        .iter()
        .enumerate()
        .map(|(i, t)| resume_point(t, i, &job.done))
        .collect();
    let results: Vec<Result<CompactionOutput>> = std::thread::scope(|s| {
        let handles: Vec<_> = tasks
            .iter()
            .enumerate()
            .map(|(i, task)| {
                s.spawn(move || {
                    let mut record = |o: &OutputTable| log.record(i, o);
                    run_task(task, &*inner.storage, &mut record, Some(cancel))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::invalid("a subcompaction panicked")))
            })
            .collect()
    });
    let outputs: Vec<CompactionOutput> = results.into_iter().collect::<Result<_>>()?;
    Ok(outputs.iter().all(|o| o.complete).then_some(outputs))
}

/// A subtask of a resumed job starts after its last finished output.
fn resume_point(task: &CompactionTask, i: usize, done: &[DoneOutput]) -> CompactionTask {
    let mut task = task.clone();
    if let Some(last) = done.iter().rev().find(|d| d.subtask == i) {
        task.start = Bound::Excluded(last.largest.clone());
    }
    task
}

/// Opens the outputs and commits them in one edit: inputs out, outputs in.
fn commit(inner: &Inner, job: &Job, outputs: &[(u64, u64)]) -> Result<()> {
    let mut tables = Vec::with_capacity(outputs.len());
    for &(number, size) in outputs {
        let path = filename::table(&inner.dir, number);
        let table = Table::open(
            &*inner.storage,
            &path,
            number,
            IoClass::UserRead,
            inner.cache.clone(),
        )?;
        if table.size() != size {
            return Err(Error::corruption(
                path,
                0,
                "an output of the size its log records",
            ));
        }
        if table.props().entries > 0 {
            tables.push(Arc::new(table));
        }
    }
    let edit = VersionEdit {
        deleted: job
            .plan
            .inputs
            .iter()
            .map(|i| (i.level, i.number))
            .collect(),
        added: tables
            .iter()
            .map(|t| (job.plan.output_level, file_meta(t)))
            .collect(),
        committed_task: Some(job.id()),
        ..VersionEdit::default()
    };
    inner
        .versions
        .log_and_apply(edit, &tables, |v| inner.install_version(v))?;
    Ok(())
}

/// A trivial move: the file changes level in the manifest, nothing is rewritten.
fn commit_move(inner: &Inner, job: &Job) -> Result<CompactionSummary> {
    let started = Instant::now();
    let version = inner.versions.current();
    let mut deleted = Vec::new();
    let mut added = Vec::new();
    let mut tables = Vec::new();
    for i in &job.plan.inputs {
        let Some((level, t)) = version.find(i.number) else {
            return Err(Error::invalid("a moved table is not live"));
        };
        deleted.push((level_u32(level), i.number));
        added.push((job.plan.output_level, file_meta(t)));
        tables.push(Arc::clone(t));
    }
    drop(version);
    let bytes = tables.iter().map(|t| t.size()).sum();
    let edit = VersionEdit {
        deleted,
        added,
        ..VersionEdit::default()
    };
    inner
        .versions
        .log_and_apply(edit, &tables, |v| inner.install_version(v))?;
    inner
        .counters
        .record_move(job.plan.output_level as usize, bytes);
    let mut s = CompactionSummary::default();
    s.jobs = 1;
    s.files_in = tables.len() as u64;
    s.files_out = tables.len() as u64;
    s.duration = started.elapsed();
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(lo: &str, size: u64) -> FileSummary {
        FileSummary {
            number: 1,
            size,
            entries: 1,
            tombstones: 0,
            max_seq: 0,
            smallest: lo.as_bytes().to_vec(),
            largest: lo.as_bytes().to_vec(),
        }
    }

    #[test]
    fn splits_follow_input_bytes() {
        let files = [f("a", 100), f("c", 100), f("e", 100), f("g", 100)];
        let refs: Vec<&FileSummary> = files.iter().collect();
        assert_eq!(split_points(&refs, 2, 10), vec![b"e".to_vec()]);
        assert_eq!(split_points(&refs, 4, 10).len(), 3);
        assert!(split_points(&refs, 1, 10).is_empty());
        assert!(
            split_points(&refs, 4, 1000).is_empty(),
            "too little to split"
        );
    }
}
