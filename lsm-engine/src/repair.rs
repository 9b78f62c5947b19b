//! The salvage open ([`crate::LsmOptions::salvage`]): when the normal open finds damage (an
//! unusable `CURRENT` or manifest, a missing or damaged table, a damaged WAL), the table set is
//! rebuilt from the files on disk. `docs/lsm.md` ("Repair") has the protocol:
//! 1. read every table block by block (each block's checksum checked; a damaged block, or a
//!    table whose footer or index is unreadable, is skipped and reported) and every WAL record
//!    by record (a damaged record is skipped, reading resumes at the next intact one);
//! 2. merge all of it by internal key; keep the newest version of each user key (tombstones
//!    dropped: the output is the last level and no snapshot exists yet); write the result as
//!    new tables of the last level, each synced; sync the directory;
//! 3. create an empty WAL numbered above every file, sync the directory;
//! 4. write a new manifest holding the new tables with that WAL as its log number, sync it,
//!    sync the directory, and point `CURRENT` at it (temporary file, sync, rename, directory
//!    sync): the commit point;
//! 5. rename the old manifests and every file with skipped damage aside (`<name>.salvaged`),
//!    remove the compaction logs (they describe jobs on the old table set), sync the directory.
//!
//! The normal open then runs on the rebuilt directory and removes the old tables and WALs as
//! orphans, once its own manifest is durable. A crash before step 4 leaves the directory as it
//! was plus orphans (a second salvage open reads them too: their entries are duplicates);
//! after it, the rebuilt state.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use engine_api::{Error, IoClass, Result, Storage};
use parking_lot::Mutex;

use crate::filename::{self, FileKind};
use crate::iter::{InternalIterator, MergingIter};
use crate::key::{self, Kind};
use crate::memtable::{Memtable, MemtableIter};
use crate::options::LsmOptions;
use crate::recovery;
use crate::sstable::block::BlockIter;
use crate::sstable::footer::BlockHandle;
use crate::sstable::{BuildOptions, Table, TableBuilder};
use crate::version::manifest::ManifestWriter;
use crate::version::{FileMeta, VersionEdit, file_meta};
use crate::wal::format::{
    HEADER_LEN, Head, RecordKind, decode_at, decode_batch, other_version, read_file_header,
    unverified_nonce,
};
use crate::wal::{WalWriter, zero_tail};

/// What an open found and repaired ([`crate::LsmEngine::recovery_report`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The error that made a salvage open rebuild the table set; `None` if the open needed no
    /// repair.
    pub rebuilt_after: Option<String>,
    /// Tables whose entries were read, in whole or in part.
    pub tables_read: u64,
    /// WALs whose records were read, in whole or in part.
    pub wals_read: u64,
    /// WAL batches replayed into the rebuild.
    pub wal_batches: u64,
    /// Entries written to the rebuilt tables: the newest version of each live key.
    pub entries_kept: u64,
    /// Tables the rebuild wrote (all in the last level).
    pub tables_written: u64,
    /// Everything skipped as damaged: whole tables, table blocks, WAL records.
    pub skipped: Vec<Damage>,
    /// Files renamed to `<name>.salvaged` instead of removed: the old manifests and every file
    /// with skipped damage.
    pub moved_aside: Vec<PathBuf>,
}

/// A damaged range skipped by a salvage open.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Damage {
    /// The damaged file.
    pub path: PathBuf,
    /// First byte skipped.
    pub offset: u64,
    /// Bytes skipped.
    pub len: u64,
    /// Why.
    pub reason: String,
}

/// The suffix of files moved aside by a salvage.
pub(crate) const SALVAGED_SUFFIX: &str = ".salvaged";

type Skipped = Arc<Mutex<Vec<Damage>>>;

/// Rebuilds the directory's table set after `cause` (steps 1 to 5 of the module docs).
pub(crate) fn rebuild(
    storage: &dyn Storage,
    dir: &Path,
    opts: &LsmOptions,
    cause: &Error,
) -> Result<RecoveryReport> {
    let names = storage.list(dir)?;
    // Numbered above every file, so the rebuild's files collide with none.
    let mut next = recovery::max_number(dir, &names)? + 1;
    let skipped: Skipped = Arc::default();
    let mut report = RecoveryReport {
        rebuilt_after: Some(cause.to_string()),
        ..RecoveryReport::default()
    };
    let sources = read_sources(storage, dir, &names, &skipped, &mut report)?;
    let written = write_merged(storage, dir, opts, sources, &mut next)?;
    storage.sync_dir(dir)?;
    report.entries_kept = written.entries;
    report.tables_written = written.tables.len() as u64;
    commit(storage, dir, next, written)?;
    report.skipped = std::mem::take(&mut *skipped.lock());
    report.moved_aside = set_aside(storage, dir, &names, &report.skipped)?;
    Ok(report)
}

/// Step 1: every table (block by block) and every WAL (record by record), as sorted sources.
fn read_sources(
    storage: &dyn Storage,
    dir: &Path,
    names: &[String],
    skipped: &Skipped,
    report: &mut RecoveryReport,
) -> Result<Vec<Box<dyn InternalIterator>>> {
    let mut sources: Vec<Box<dyn InternalIterator>> = Vec::new();
    for n in numbers(names, |k| matches!(k, FileKind::Table(_))) {
        if let Some(t) = salvage_table(storage, dir, n, skipped)? {
            sources.push(Box::new(t));
            report.tables_read += 1;
        }
    }
    let mem = Arc::new(Memtable::new());
    let wals = numbers(names, |k| matches!(k, FileKind::Wal(_)));
    let newest = wals.last().copied();
    for n in wals {
        let newest = Some(n) == newest;
        report.wal_batches += salvage_wal(storage, dir, n, newest, &mem, skipped)?;
        report.wals_read += 1;
    }
    sources.push(Box::new(MemtableIter::new(mem)));
    Ok(sources)
}

/// Steps 3 and 4: an empty WAL numbered `wal`, then a manifest naming the rebuilt tables made
/// live through `CURRENT` (the commit point).
fn commit(storage: &dyn Storage, dir: &Path, wal: u64, written: Written) -> Result<()> {
    drop(WalWriter::create(storage, dir, wal, (0, 0))?);
    let snapshot = VersionEdit {
        log_number: Some(wal),
        next_file_number: Some(wal + 2),
        last_sequence: Some(written.last_seq),
        added: written.tables,
        ..VersionEdit::default()
    };
    drop(ManifestWriter::create(storage, dir, wal + 1, &snapshot)?);
    Ok(())
}

fn numbers(names: &[String], want: impl Fn(FileKind) -> bool) -> Vec<u64> {
    let mut out: Vec<u64> = names
        .iter()
        .filter_map(|n| filename::parse(n).filter(|k| want(*k)))
        .filter_map(|k| match k {
            FileKind::Wal(n) | FileKind::Table(n) => Some(n),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out
}

fn damage(path: &Path, offset: u64, len: u64, reason: impl Into<String>) -> Damage {
    Damage {
        path: path.to_path_buf(),
        offset,
        len,
        reason: reason.into(),
    }
}

/// Opens table `n` for salvage; a table whose footer, index, filter or properties are
/// damaged is skipped whole (an I/O error fails the salvage).
fn salvage_table(
    storage: &dyn Storage,
    dir: &Path,
    n: u64,
    skipped: &Skipped,
) -> Result<Option<SalvagedTable>> {
    let path = filename::table(dir, n);
    let opened = Table::open(storage, &path, n, IoClass::Recovery, None)
        .and_then(|t| Ok((t.data_handles()?, t)));
    match opened {
        Ok((handles, table)) => Ok(Some(SalvagedTable {
            table,
            handles,
            next_block: 0,
            data: None,
            skipped: Arc::clone(skipped),
        })),
        Err(e) if e.is_corruption() => {
            let len = storage.file_len(&path)?;
            skipped
                .lock()
                .push(damage(&path, 0, len, format!("the whole table: {e}")));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Reads every intact batch of WAL `n` into `mem`, skipping damaged records (reading resumes
/// at the next offset where an intact record starts: intact under the file's nonce, so never
/// one framed inside a user's value). A damaged header leaves only the nonce its bytes still
/// hold to try. Only the `newest` WAL may end in a zero tail (invariant 3 of
/// `docs/formats/wal.md`): in an older one the zeros are skipped damage. Returns the batches
/// read.
fn salvage_wal(
    storage: &dyn Storage,
    dir: &Path,
    n: u64,
    newest: bool,
    mem: &Memtable,
    skipped: &Skipped,
) -> Result<u64> {
    let path = filename::wal(dir, n);
    let bytes = storage.open(&path, IoClass::Recovery)?.read_all()?;
    let (nonce, mut at) = wal_nonce(&path, &bytes)?;
    let mut batches = 0;
    while at < bytes.len() {
        let Ok((record, end)) = decode_at(&bytes, at, nonce, RecordKind::Batch) else {
            if newest && zero_tail(&bytes, at as u64) {
                break; // preallocated, never written: the end, not damage
            }
            let resume = (at + 1..bytes.len())
                .find(|&q| decode_at(&bytes, q, nonce, RecordKind::Batch).is_ok())
                .unwrap_or(bytes.len());
            let reason = "an intact WAL record (damaged or torn)";
            skipped
                .lock()
                .push(damage(&path, at as u64, (resume - at) as u64, reason));
            at = resume;
            continue;
        };
        match decode_batch(record.payload) {
            Ok(b) => {
                mem.insert_batch(b.first_seq, &b.ops);
                batches += 1;
            }
            Err(what) => skipped.lock().push(damage(
                &path,
                at as u64,
                (end - at) as u64,
                format!("a WAL batch with {what}"),
            )),
        }
        at = end.max(at + HEADER_LEN);
    }
    Ok(batches)
}

/// The nonce of the WAL at `path` and where its records start; for a header that does not
/// verify, the nonce its bytes still hold and offset 0 (the header is reported as skipped).
fn wal_nonce(path: &Path, bytes: &[u8]) -> Result<(u32, usize)> {
    match read_file_header(bytes, RecordKind::WalHeader, RecordKind::WalHeader) {
        Head::Good(head) => Ok((head.nonce, head.end)),
        Head::Version(v) => Err(other_version(path, "WAL", v)),
        Head::Malformed | Head::Bad(_) => Ok((unverified_nonce(bytes).unwrap_or_default(), 0)),
    }
}

/// A table read block by block: a block that fails its checks is reported and skipped.
struct SalvagedTable {
    table: Table,
    handles: Vec<BlockHandle>,
    next_block: usize,
    data: Option<BlockIter>,
    skipped: Skipped,
}

impl SalvagedTable {
    fn skip(&self, h: BlockHandle, e: &Error) {
        let path = self.table.path();
        self.skipped
            .lock()
            .push(damage(path, h.offset, h.size, format!("a data block: {e}")));
    }

    /// Moves to the first entry of the next readable, non-empty block.
    fn load_next(&mut self) {
        self.data = None;
        while let Some(&h) = self.handles.get(self.next_block) {
            self.next_block += 1;
            let first = self.table.read_data_block(h).and_then(|b| {
                let mut it = b.iter();
                it.seek_to_first()?;
                Ok(it)
            });
            match first {
                Ok(it) if it.valid() => {
                    self.data = Some(it);
                    return;
                }
                Ok(_) => {}
                Err(e) => self.skip(h, &e),
            }
        }
    }
}

impl InternalIterator for SalvagedTable {
    fn valid(&self) -> bool {
        self.data.as_ref().is_some_and(BlockIter::valid)
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.next_block = 0;
        self.load_next();
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.seek_to_first()?;
        while self.valid() && key::compare(self.key(), target) == Ordering::Less {
            self.next()?;
        }
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        let Some(d) = &mut self.data else {
            return Ok(());
        };
        match d.next() {
            Ok(()) if d.valid() => {}
            Ok(()) => self.load_next(),
            Err(e) => {
                // The rest of this block is unreadable; what came before it was kept.
                let h = self.handles.get(self.next_block - 1).copied();
                self.skip(h.unwrap_or_default(), &e);
                self.load_next();
            }
        }
        Ok(())
    }

    fn key(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], BlockIter::key)
    }

    fn value(&self) -> Bytes {
        self.data.as_ref().map_or_else(Bytes::new, BlockIter::value)
    }
}

/// The rebuilt tables.
struct Written {
    tables: Vec<(u32, FileMeta)>,
    entries: u64,
    last_seq: u64,
}

/// Step 2: the newest version of each user key, tombstones dropped, cut into tables of about
/// `target_file_bytes` (at user-key boundaries, so the last level's ranges stay disjoint).
fn write_merged(
    storage: &dyn Storage,
    dir: &Path,
    opts: &LsmOptions,
    sources: Vec<Box<dyn InternalIterator>>,
    next: &mut u64,
) -> Result<Written> {
    let level = u32::try_from(opts.num_levels - 1).unwrap_or(0);
    let mut out = Output {
        storage,
        dir,
        opts,
        builder: None,
        written: Written {
            tables: Vec::new(),
            entries: 0,
            last_seq: 0,
        },
        level,
    };
    let mut merged = MergingIter::new(sources);
    merged.seek_to_first()?;
    let mut last_user: Option<Vec<u8>> = None;
    while merged.valid() {
        if let Some(p) = key::parse(merged.key()) {
            out.written.last_seq = out.written.last_seq.max(p.seq);
            // Versions arrive newest first; only the first of each user key counts. A key at
            // or before the last one (a misordered salvaged block) is dropped.
            let newer = last_user.as_deref().is_none_or(|u| p.user > u);
            if newer {
                last_user = Some(p.user.to_vec());
                if p.kind == Kind::Put {
                    out.add(merged.key(), &merged.value(), next)?;
                }
            }
        }
        merged.next()?;
    }
    out.finish()?;
    Ok(out.written)
}

struct Output<'a> {
    storage: &'a dyn Storage,
    dir: &'a Path,
    opts: &'a LsmOptions,
    builder: Option<(u64, TableBuilder)>,
    written: Written,
    level: u32,
}

impl Output<'_> {
    fn add(&mut self, ikey: &[u8], value: &[u8], next: &mut u64) -> Result<()> {
        let full = self
            .builder
            .as_ref()
            .is_some_and(|(_, b)| b.estimated_size() >= self.opts.target_file_bytes);
        if full {
            self.finish()?;
        }
        if self.builder.is_none() {
            let number = *next;
            *next += 1;
            let file = self
                .storage
                .create(&filename::table(self.dir, number), IoClass::Compaction)?;
            let opts = BuildOptions {
                block_bytes: self.opts.block_bytes,
                restart_interval: self.opts.block_restart_interval,
                bloom_bits_per_key: self.opts.bloom_bits_per_key,
            };
            self.builder = Some((number, TableBuilder::new(file, opts)));
        }
        if let Some((_, b)) = &mut self.builder {
            b.add(ikey, value)?;
            self.written.entries += 1;
        }
        Ok(())
    }

    /// Finishes (and syncs) the table being built, and reads it back as the manifest will.
    fn finish(&mut self) -> Result<()> {
        let Some((number, builder)) = self.builder.take() else {
            return Ok(());
        };
        let built = builder.finish()?;
        let table = Table::open(self.storage, &built.path, number, IoClass::Recovery, None)?;
        self.written.tables.push((self.level, file_meta(&table)));
        Ok(())
    }
}

/// Step 5: the old manifests and every file with skipped damage are renamed aside (kept, not
/// removed); compaction logs are removed.
fn set_aside(
    storage: &dyn Storage,
    dir: &Path,
    names: &[String],
    skipped: &[Damage],
) -> Result<Vec<PathBuf>> {
    let mut moved = Vec::new();
    for name in names {
        let path = dir.join(name);
        match filename::parse(name) {
            Some(FileKind::Manifest(_)) => {}
            Some(FileKind::CompactionLog(_)) => {
                storage.remove(&path)?;
                continue;
            }
            Some(FileKind::Table(_) | FileKind::Wal(_))
                if skipped.iter().any(|d| d.path == path) => {}
            _ => continue,
        }
        let aside = dir.join(format!("{name}{SALVAGED_SUFFIX}"));
        storage.rename(&path, &aside)?;
        moved.push(aside);
    }
    storage.sync_dir(dir)?;
    Ok(moved)
}
