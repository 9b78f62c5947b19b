//! The flush thread: sealed memtables become L0 tables, oldest first, each committed through one
//! manifest edit. `docs/lsm.md` ("Flush") has the protocol:
//! 1. write the table and sync it;
//! 2. sync the directory;
//! 3. append the edit (table added to L0, `log_number` = the WAL after the memtable's) to the
//!    manifest and sync it;
//! 4. install the new version and drop the sealed memtable;
//! 5. remove the WALs below `log_number`, sync the directory.
//!
//! A crash before 3 leaves an orphan table (removed at open) and the WAL still replays; after 3
//! the table is live and the WALs are redundant.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use engine_api::{IoClass, Result};

use crate::db::{Inner, Sealed, SuperVersion};
use crate::filename::{self, FileKind};
use crate::iter::InternalIterator;
use crate::memtable::{Memtable, MemtableIter};
use crate::sstable::{BuildOptions, Table, TableBuilder};
use crate::version::{Version, VersionEdit, file_meta};

/// The flush thread's loop: flush the oldest sealed memtable while there is one, stop at
/// shutdown. A failed flush poisons the engine (a background error: writers would otherwise
/// wait forever for room).
pub(crate) fn run(inner: &Arc<Inner>) {
    while let Some(sealed) = next_job(inner) {
        if let Err(e) = flush_sealed(inner, &sealed) {
            inner.poison().set(&e);
        }
        drop(sealed);
        inner.obsolete.drain();
        inner.bg.lock().flushing = false;
        inner.notify_bg();
        inner.compactions.check_and_compact();
    }
}

fn next_job(inner: &Inner) -> Option<Sealed> {
    let mut bg = inner.bg.lock();
    loop {
        if bg.shutdown {
            return None;
        }
        if !inner.poison().is_set()
            && let Some(sealed) = inner.current().imms.first()
        {
            bg.flushing = true;
            return Some(sealed.clone());
        }
        inner.bg_cv.wait(&mut bg);
    }
}

/// Flushes one sealed memtable and commits it (steps 1 to 5 above).
pub(crate) fn flush_sealed(inner: &Inner, sealed: &Sealed) -> Result<()> {
    let started = Instant::now();
    let mut edit = VersionEdit {
        log_number: Some(sealed.next_wal),
        last_sequence: Some(inner.allocated_seq.load(Ordering::SeqCst)),
        ..VersionEdit::default()
    };
    let mut added = Vec::new();
    if !sealed.mem.is_empty() {
        let table = write_l0(inner, &sealed.mem)?;
        edit.added.push((0, file_meta(&table)));
        added.push(table);
    }
    inner
        .versions
        .log_and_apply(edit, &added, |v| install(inner, sealed, v))?;
    let bytes = added.iter().map(|t| t.size()).sum();
    inner.counters.record_flush(bytes, started.elapsed());
    remove_wals_below(inner, sealed.next_wal);
    Ok(())
}

/// Replaces the super-version: the sealed memtable leaves, the new version comes in, at once.
fn install(inner: &Inner, sealed: &Sealed, version: &Arc<Version>) {
    let mut sv = inner.sv.write();
    let imms = sv
        .imms
        .iter()
        .filter(|s| !Arc::ptr_eq(&s.mem, &sealed.mem))
        .cloned()
        .collect();
    *sv = Arc::new(SuperVersion {
        mem: Arc::clone(&sv.mem),
        imms,
        version: Arc::clone(version),
    });
}

/// Steps 1 and 2: the memtable as a synced L0 table with a durable name, opened for reads.
fn write_l0(inner: &Inner, mem: &Arc<Memtable>) -> Result<Arc<Table>> {
    let number = inner.versions.new_file_number();
    let path = filename::table(&inner.dir, number);
    let file = inner.storage.create(&path, IoClass::Flush)?;
    let written = build(inner, file, mem).and_then(|()| inner.storage.sync_dir(&inner.dir));
    if let Err(e) = written {
        // Best effort: a leftover is an orphan, removed at the next open.
        let _ = inner.storage.remove(&path);
        return Err(e);
    }
    // The table is kept for gets (user-read handle); loading its index here is the flush's read.
    let _cause = engine_api::io_cause(IoClass::Flush);
    let table = Table::open(
        &*inner.storage,
        &path,
        number,
        IoClass::UserRead,
        inner.cache.clone(),
    )?;
    Ok(Arc::new(table))
}

fn build(
    inner: &Inner,
    file: Box<dyn engine_api::WritableFile>,
    mem: &Arc<Memtable>,
) -> Result<()> {
    let opts = BuildOptions {
        block_bytes: inner.opts.block_bytes,
        restart_interval: inner.opts.block_restart_interval,
        bloom_bits_per_key: inner.opts.bloom_bits_per_key,
    };
    let mut builder = TableBuilder::new(file, opts);
    let mut it = MemtableIter::new(Arc::clone(mem));
    it.seek_to_first()?;
    while it.valid() {
        builder.add(it.key(), it.value_slice())?;
        it.next()?;
    }
    builder.finish().map(drop)
}

/// Step 5: queue the WALs below `log_number`; they go once a later manifest record is durable
/// (`crate::obsolete`). A WAL left behind is below the committed `log_number` and is removed at
/// the next open.
fn remove_wals_below(inner: &Inner, log_number: u64) {
    let epoch = inner.versions.epoch();
    let Ok(names) = inner.storage.list(&inner.dir) else {
        return;
    };
    for name in names {
        if let Some(FileKind::Wal(n)) = filename::parse(&name)
            && n < log_number
        {
            inner.obsolete.push(filename::wal(&inner.dir, n), epoch);
        }
    }
}
