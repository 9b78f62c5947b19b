//! Compaction: what to merge (the picker, pure policy), how (the task and [`run_compaction`],
//! self-contained mechanism), and the commit (one manifest edit: inputs out, outputs in).
//!
//! Until the leveled compaction manager lands, [`compact_all`] runs one full compaction: every
//! table merged into one sorted run on the last level. Protocol (`docs/lsm.md`,
//! "Compaction commit"):
//! 1. flush every memtable (each flush is its own commit);
//! 2. write the outputs, sync each, sync the directory;
//! 3. append one edit (inputs deleted, outputs added) to the manifest and sync it;
//! 4. install the new version;
//! 5. append an empty edit and sync it, so the commit is not the manifest's last record;
//! 6. delete the inputs once no reader holds them.
//!
//! A crash before 3 leaves orphan outputs (removed at open) and the inputs live; after 3 the
//! outputs are live and the inputs are orphans. Step 5 is there because damage to the last
//! record of a manifest is indistinguishable from a torn write: until another record follows,
//! the inputs are kept so that undoing the commit would lose nothing.

pub(crate) mod picker;
mod task;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use engine_api::{CompactionSummary, Error, IoClass, Result, thread_cpu_time};

pub use task::{CompactionOutput, CompactionTask, KeySpan, OutputTable, TaskInput, run_compaction};

use crate::db::Inner;
use crate::filename;
use crate::sstable::Table;
use crate::version::{VersionEdit, file_meta};

/// Runs a full compaction to completion: see the module documentation.
pub(crate) fn compact_all(inner: &Inner) -> Result<CompactionSummary> {
    if inner.read_only() {
        return Err(Error::ReadOnly);
    }
    let _one_at_a_time = inner.compaction_lock.lock();
    inner.flush_all()?;
    let cpu_before = thread_cpu_time();
    let version = inner.versions.current();
    let levels = picker::summarize(&version);
    let Some(inputs) = picker::full_compaction(&levels) else {
        return Ok(CompactionSummary::default());
    };
    let task = full_task(inner, &levels, inputs);
    let from: Vec<(usize, u64)> = task
        .inputs
        .iter()
        .filter_map(|i| version.find(i.number).map(|(l, t)| (l, t.size())))
        .collect();
    drop(version);
    let out = run_compaction(&task, &*inner.storage).inspect_err(|e| inner.poison_on_io(e))?;
    commit(inner, &task, &out).inspect_err(|e| inner.poison_on_io(e))?;
    // One more (empty) record, so the commit is not the manifest's last record and its inputs
    // may go now rather than at the next flush (`crate::obsolete`).
    inner
        .versions
        .log_and_apply(VersionEdit::default(), &[], |_| {})
        .inspect_err(|e| inner.poison_on_io(e))?;
    inner.obsolete.drain();
    let summary = summarize(&task, &out);
    let cpu = match (cpu_before, thread_cpu_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => std::time::Duration::ZERO,
    };
    inner
        .counters
        .record_compaction(&summary, &from, task.output_level as usize, cpu);
    Ok(summary)
}

/// The task of a full compaction into the last level.
fn full_task(
    inner: &Inner,
    levels: &[Vec<picker::FileSummary>],
    inputs: Vec<TaskInput>,
) -> CompactionTask {
    let input_bytes: u64 = levels.iter().flatten().map(|f| f.size).sum();
    let outputs = input_bytes / inner.opts.target_file_bytes + 2;
    let visible = inner.visible_seq.load(Ordering::SeqCst);
    let seq_cutoff = inner.snapshots.oldest().map_or(visible, |s| s.min(visible));
    let last = inner.opts.num_levels - 1;
    CompactionTask {
        task_id: inner.versions.new_file_number(),
        inputs,
        dir: inner.dir.clone(),
        output_numbers: (0..outputs)
            .map(|_| inner.versions.new_file_number())
            .collect(),
        output_level: u32::try_from(last).unwrap_or(u32::MAX),
        seq_cutoff,
        deeper_spans: Vec::new(),
        target_file_bytes: inner.opts.target_file_bytes,
        block_bytes: inner.opts.block_bytes,
        restart_interval: inner.opts.block_restart_interval,
        bloom_bits_per_key: inner.opts.bloom_bits_per_key,
    }
}

/// Steps 3 and 4: open the outputs for reads and commit them with one edit.
pub(crate) fn commit(inner: &Inner, task: &CompactionTask, out: &CompactionOutput) -> Result<()> {
    let mut tables = Vec::with_capacity(out.tables.len());
    for o in &out.tables {
        let path = filename::table(&inner.dir, o.number);
        let table = Table::open(
            &*inner.storage,
            &path,
            o.number,
            IoClass::UserRead,
            inner.cache.clone(),
        )?;
        tables.push(Arc::new(table));
    }
    let edit = VersionEdit {
        deleted: task.inputs.iter().map(|i| (i.level, i.number)).collect(),
        added: tables
            .iter()
            .map(|t| (task.output_level, file_meta(t)))
            .collect(),
        committed_task: Some(task.task_id),
        ..VersionEdit::default()
    };
    inner
        .versions
        .log_and_apply(edit, &tables, |v| inner.install_version(v))?;
    Ok(())
}

fn summarize(task: &CompactionTask, out: &CompactionOutput) -> CompactionSummary {
    let mut s = CompactionSummary::default();
    s.jobs = 1;
    s.files_in = task.inputs.len() as u64;
    s.files_out = out.tables.len() as u64;
    s.files_removed = task.inputs.len() as u64;
    s.records_in = out.entries_in;
    s.records_out = out.entries_out;
    s.stale_dropped = out.shadowed_dropped;
    s.tombstones_dropped = out.tombstones_dropped;
    s.bytes_read = out.bytes_read;
    s.bytes_written = out.bytes_written;
    s.duration = out.duration;
    s
}
