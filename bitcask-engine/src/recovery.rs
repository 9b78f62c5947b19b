//! Open: merge leftovers, then every data file from its hint or a scan, then torn tails.
//!
//! 1. Read every merge commit record `MERGE-<id>` (a damaged one is a corruption error: it
//!    exists under its name only once written whole).
//! 2. Read-write: roll each committed merge forward (rename its outputs to `.data`, remove its
//!    inputs, remove the record, with directory fsyncs), then remove what no commit names:
//!    `.merging` files, `*.tmp` files, hints without a data file. Read-only: compute the same
//!    file set without touching anything.
//! 3. Load each data file in any order: the keydir keeps, per key, the record with the highest
//!    sequence number (tombstones included until the end), so no file order is relied upon.
//!    A sealed file is read from its hint if the hint passes every check, else scanned, and
//!    damage in it is a corruption error (or skipped and reported, in salvage mode). An
//!    unsealed file (the active file of the previous run) is scanned up to its first damaged
//!    record or incomplete batch: that is its torn tail, cut off before the file is sealed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine_api::{Error, IoClass, ReadableFile, Result, Storage};

use crate::datafile::{DATA_START, DataFile, FileName, FileShape, read_header, read_seal};
use crate::hint::Hint;
use crate::keydir::{Bulk, KeyDir, Loc, TOMBSTONE_FLAG};
use crate::manifest::Manifest;
use crate::options::BitcaskOptions;
use crate::reader::{Damage, Op, Outcome, Policy, scan_ops};
use crate::record::{self, Seal};

/// What an open found and repaired.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Data files whose keys came from a valid hint file.
    pub files_from_hints: u64,
    /// Data files scanned record by record.
    pub files_scanned: u64,
    /// Live keys after the open.
    pub keys: u64,
    /// Torn tails of unsealed files: cut off (read-write) or ignored (read-only).
    pub torn_tails: Vec<Damage>,
    /// Damaged ranges of sealed files skipped by a salvage open (empty otherwise).
    pub skipped: Vec<Damage>,
    /// Hint files ignored, and why (their data files were scanned instead).
    pub hints_ignored: Vec<(PathBuf, String)>,
    /// Committed merges found unfinished and rolled forward.
    pub merges_rolled_forward: u64,
    /// Files removed as leftovers: uncommitted merge output, temporary files, orphan hints,
    /// unsealed files holding no record.
    pub leftovers_removed: Vec<PathBuf>,
    /// Time the open spent recovering.
    pub duration: Duration,
}

/// The recovered state an engine starts from.
pub(crate) struct Recovered {
    pub(crate) files: BTreeMap<u32, Arc<DataFile>>,
    pub(crate) keydir: KeyDir,
    pub(crate) next_file_id: u32,
    pub(crate) next_seq: u64,
    pub(crate) report: RecoveryReport,
    /// Sealed files without a valid hint: the worker writes theirs.
    pub(crate) need_hints: Vec<u32>,
}

struct Ctx<'a> {
    storage: &'a dyn Storage,
    dir: &'a Path,
    opts: &'a BitcaskOptions,
    read_only: bool,
    keydir: KeyDir,
    report: RecoveryReport,
    need_hints: Vec<u32>,
    hints: BTreeSet<u32>,
}

/// Recovers the directory (see the module documentation).
pub(crate) fn recover(
    storage: &dyn Storage,
    dir: &Path,
    opts: &BitcaskOptions,
) -> Result<Recovered> {
    let started = Instant::now();
    let names: Vec<FileName> = storage
        .list(dir)?
        .iter()
        .filter_map(|n| FileName::parse(n))
        .collect();
    let manifests = names
        .iter()
        .filter_map(|n| match n {
            FileName::Manifest(id) => Some(Manifest::read(storage, dir, *id)),
            _ => None,
        })
        .collect::<Result<Vec<_>>>()?;
    let next_file_id = next_id(&names, &manifests);
    let mut ctx = Ctx {
        storage,
        dir,
        opts,
        read_only: opts.common.read_only,
        keydir: KeyDir::new(),
        report: RecoveryReport::default(),
        need_hints: Vec::new(),
        hints: BTreeSet::new(),
    };
    let live = if ctx.read_only {
        logical_live_set(&names, &manifests)
    } else {
        ctx.roll_forward(&manifests)?;
        ctx.remove_leftovers()?
    };
    ctx.hints = list_names(storage, dir)?
        .into_iter()
        .filter_map(|n| match n {
            FileName::Hint(id) => Some(id),
            _ => None,
        })
        .collect();
    ctx.reserve_keydir(&live)?;
    let files = ctx.load_all(live)?;
    ctx.keydir.purge_tombstones();
    count_live(&ctx.keydir, &files);
    // Past every record, and past every file's base (a file may be newer than its records).
    let next_seq = files
        .values()
        .map(|f| (f.max_seq() + 1).max(f.base_seq()))
        .max()
        .unwrap_or(1);
    ctx.report.keys = ctx.keydir.len() as u64;
    ctx.report.duration = started.elapsed();
    Ok(Recovered {
        files,
        keydir: ctx.keydir,
        next_file_id,
        next_seq,
        report: ctx.report,
        need_hints: ctx.need_hints,
    })
}

/// Live bytes and keys per file, from the keydir. Keys of one file sit together in each
/// shard, so runs are summed before the per-file map is touched.
fn count_live(keydir: &KeyDir, files: &BTreeMap<u32, Arc<DataFile>>) {
    let mut live: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    let mut run = (u32::MAX, 0u64, 0u64);
    let mut flush = |run: &(u32, u64, u64)| {
        let e = live.entry(run.0).or_default();
        (e.0, e.1) = (e.0 + run.1, e.1 + run.2);
    };
    keydir.for_each(|_, loc| {
        if loc.file != run.0 {
            flush(&run);
            run = (loc.file, 0, 0);
        }
        run.1 += u64::from(loc.len);
        run.2 += 1;
    });
    flush(&run);
    for (id, (bytes, keys)) in live {
        if let Some(f) = files.get(&id) {
            f.add_live_many(bytes, keys);
        }
    }
}

fn list_names(storage: &dyn Storage, dir: &Path) -> Result<Vec<FileName>> {
    Ok(storage
        .list(dir)?
        .iter()
        .filter_map(|n| FileName::parse(n))
        .collect())
}

/// One past every id the directory or a commit record mentions: ids are never reused.
fn next_id(names: &[FileName], manifests: &[Manifest]) -> u32 {
    let listed = names.iter().filter_map(|n| n.id());
    let named = manifests
        .iter()
        .flat_map(|m| m.inputs.iter().chain(&m.outputs).copied());
    listed.chain(named).max().map_or(1, |m| m.saturating_add(1))
}

/// The data files a read-only open serves: what a roll-forward would leave.
fn logical_live_set(names: &[FileName], manifests: &[Manifest]) -> Vec<FileName> {
    let retired: BTreeSet<u32> = manifests.iter().flat_map(|m| m.inputs.clone()).collect();
    let committed: BTreeSet<u32> = manifests.iter().flat_map(|m| m.outputs.clone()).collect();
    names
        .iter()
        .copied()
        .filter(|n| match n {
            FileName::Data(id) => !retired.contains(id),
            FileName::Merging(id) => committed.contains(id) && !retired.contains(id),
            _ => false,
        })
        .collect()
}

impl Ctx<'_> {
    fn path(&self, name: FileName) -> PathBuf {
        name.path(self.dir)
    }

    fn remove_if_exists(&mut self, name: FileName) -> Result<bool> {
        let path = self.path(name);
        if !self.storage.exists(&path)? {
            return Ok(false);
        }
        self.storage.remove(&path)?;
        self.report.leftovers_removed.push(path);
        Ok(true)
    }

    /// Loads every live data file: sealed ones first, then the unsealed ones, which are judged
    /// against all the others.
    fn load_all(&mut self, live: Vec<FileName>) -> Result<BTreeMap<u32, Arc<DataFile>>> {
        let mut files = BTreeMap::new();
        let mut unsealed = Vec::new();
        for name in live {
            match self.load(name)? {
                Loaded::Sealed(file) => {
                    files.insert(file.id(), file);
                }
                Loaded::Unsealed(u) => unsealed.push(u),
                Loaded::Nothing => {}
            }
        }
        // The newest sequence number each file holds or was created for.
        let newest = |max_seq: u64, base_seq: u64| max_seq.max(base_seq);
        let newest_sealed = files
            .values()
            .map(|f| newest(f.max_seq(), f.base_seq()))
            .max()
            .unwrap_or(0);
        for (i, u) in unsealed.iter().enumerate() {
            let newest_other = unsealed
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, o)| newest(o.outcome.max_seq, o.base_seq))
                .fold(newest_sealed, u64::max);
            if let Some(file) = self.finish_unsealed(u, newest_other)? {
                files.insert(file.id(), file);
            }
        }
        Ok(files)
    }

    /// Sizes the keydir for the records the seals announce (key bytes from the hint sizes),
    /// so loading does not regrow tables step by step; the excess is given back afterwards.
    fn reserve_keydir(&self, live: &[FileName]) -> Result<()> {
        let (mut records, mut key_bytes) = (0u64, 0u64);
        for &name in live {
            let Some(id) = name.id() else { continue };
            let reader = self.storage.open(&self.path(name), IoClass::Recovery)?;
            let Some(seal) = read_seal(&*reader, reader.len()?)? else {
                continue;
            };
            records += seal.records;
            if self.hints.contains(&id) {
                let hint_len = self.storage.file_len(&self.path(FileName::Hint(id)))?;
                key_bytes += hint_len.saturating_sub(60 + 19 * seal.records);
            }
        }
        self.keydir.reserve(records, key_bytes);
        Ok(())
    }

    /// Finishes every committed merge, oldest first (each step is idempotent).
    fn roll_forward(&mut self, manifests: &[Manifest]) -> Result<()> {
        let mut sorted: Vec<&Manifest> = manifests.iter().collect();
        sorted.sort_by_key(|m| m.id);
        for m in sorted {
            for &out in &m.outputs {
                let from = self.path(FileName::Merging(out));
                if self.storage.exists(&from)? {
                    self.storage
                        .rename(&from, &self.path(FileName::Data(out)))?;
                }
            }
            self.storage.sync_dir(self.dir)?;
            for &input in &m.inputs {
                for name in [
                    FileName::Data(input),
                    FileName::Merging(input),
                    FileName::Hint(input),
                ] {
                    self.remove_if_exists(name)?;
                }
            }
            self.storage.sync_dir(self.dir)?;
            self.storage.remove(&self.path(FileName::Manifest(m.id)))?;
            self.storage.sync_dir(self.dir)?;
            self.report.merges_rolled_forward += 1;
        }
        Ok(())
    }

    /// Removes uncommitted merge output, temporary files and orphan hints; returns the data
    /// files that remain.
    fn remove_leftovers(&mut self) -> Result<Vec<FileName>> {
        let names = list_names(self.storage, self.dir)?;
        let data: BTreeSet<u32> = names
            .iter()
            .filter_map(|n| match n {
                FileName::Data(id) => Some(*id),
                _ => None,
            })
            .collect();
        let mut removed = false;
        for name in self.storage.list(self.dir)? {
            let doomed = match FileName::parse(&name) {
                Some(FileName::Merging(_) | FileName::Temp) => true,
                Some(FileName::Hint(id)) => !data.contains(&id),
                _ => false,
            };
            if doomed {
                let path = self.dir.join(&name);
                self.storage.remove(&path)?;
                self.report.leftovers_removed.push(path);
                removed = true;
            }
        }
        if removed {
            self.storage.sync_dir(self.dir)?;
        }
        Ok(data.into_iter().map(FileName::Data).collect())
    }

    /// Loads one data file. Unsealed files are only scanned here: whether their damage is a
    /// torn tail depends on the other files (see [`Ctx::finish_unsealed`]).
    fn load(&mut self, name: FileName) -> Result<Loaded> {
        let Some(id) = name.id() else {
            return Ok(Loaded::Nothing);
        };
        let path = self.path(name);
        let reader = self.storage.open(&path, IoClass::Recovery)?;
        let len = reader.len()?;
        // A `.data` file is created whole-headed (temporary name, sync, rename): a bad header
        // is damage, never a torn creation.
        let base_seq = match read_header(&*reader, len)? {
            Some(base) => base,
            None => {
                self.damaged(&path, 0, len.min(DATA_START), "a valid data file header")?;
                0
            }
        };
        if let Some(seal) = read_seal(&*reader, len)? {
            let shape = self.load_sealed(id, &path, &*reader, base_seq, &seal)?;
            let reader = self.storage.open(&path, IoClass::UserRead)?;
            return Ok(Loaded::Sealed(DataFile::new(id, reader, shape)));
        }
        let mut bulk = self.keydir.bulk();
        let outcome = scan_ops(
            &*reader,
            &path,
            (DATA_START, len.max(DATA_START)),
            Policy::TornTail,
            &mut |op| offer(&mut bulk, id, &op),
        )?;
        bulk.finish()?;
        Ok(Loaded::Unsealed(Unsealed {
            id,
            path,
            len,
            base_seq,
            outcome,
        }))
    }

    /// Damage in a file that must be whole: a corruption error, or in salvage mode a skipped
    /// and reported range.
    fn damaged(&mut self, path: &Path, offset: u64, len: u64, expected: &str) -> Result<()> {
        if !self.opts.salvage {
            return Err(Error::corruption(path, offset, expected));
        }
        self.report.skipped.push(Damage {
            path: path.to_path_buf(),
            offset,
            len,
            reason: expected.to_string(),
        });
        Ok(())
    }

    fn load_sealed(
        &mut self,
        id: u32,
        path: &Path,
        reader: &dyn ReadableFile,
        base_seq: u64,
        seal: &Seal,
    ) -> Result<FileShape> {
        let shape = FileShape::sealed(base_seq, seal);
        if self.hints.contains(&id) && self.load_hint(id, shape.len)? {
            self.report.files_from_hints += 1;
            return Ok(shape);
        }
        let policy = if self.opts.salvage {
            Policy::Salvage
        } else {
            Policy::Strict
        };
        let mut bulk = self.keydir.bulk();
        let outcome = scan_ops(reader, path, (DATA_START, seal.offset), policy, &mut |op| {
            offer(&mut bulk, id, &op)
        })?;
        bulk.finish()?;
        if policy == Policy::Strict && outcome.records != seal.records {
            return Err(Error::corruption(
                path,
                seal.offset,
                format!(
                    "{} records as the seal says, found {}",
                    seal.records, outcome.records
                ),
            ));
        }
        self.report.skipped.extend(outcome.damage);
        self.report.files_scanned += 1;
        if !self.read_only {
            self.need_hints.push(id);
        }
        Ok(shape)
    }

    /// Offers the keys of data file `id` from its hint; false if the hint must be ignored.
    fn load_hint(&mut self, id: u32, data_len: u64) -> Result<bool> {
        let path = self.path(FileName::Hint(id));
        let file = self.storage.open(&path, IoClass::Recovery)?;
        let hint = match Hint::load(&*file, id, data_len)? {
            Ok(hint) => hint,
            Err(why) => {
                self.report.hints_ignored.push((path, why));
                return Ok(false);
            }
        };
        let mut bulk = self.keydir.bulk();
        let parsed = hint.for_each(&mut |e| {
            let flag = if e.tombstone { TOMBSTONE_FLAG } else { 0 };
            let loc = Loc {
                file: id,
                offset: e.offset,
                len: e.len | flag,
                seq: e.seq,
            };
            bulk.add(e.key, loc);
            Ok(())
        });
        if let Err(why) = parsed {
            // Unreachable after `Hint::load` checked every entry; ignore the hint if it happens.
            self.report.hints_ignored.push((path, why));
            return Ok(false);
        }
        bulk.finish()?;
        Ok(true)
    }

    /// Accepts an unsealed file as the previous run's active file, whose damaged end is a
    /// torn tail: cut it (read-write) and seal the file, or remove it if it holds no record.
    /// Only the active file may be unsealed: it has no hint (hints are written for sealed files
    /// only) and it was created after every record of every other file (its header's base
    /// sequence number is above all of theirs). An unsealed file that fails either test is a
    /// sealed file that lost its end: corruption (unless salvaging).
    fn finish_unsealed(
        &mut self,
        u: &Unsealed,
        newest_other: u64,
    ) -> Result<Option<Arc<DataFile>>> {
        let valid_end = u.outcome.valid_end.max(DATA_START).min(u.len);
        let active = !self.hints.contains(&u.id) && u.base_seq > newest_other;
        if !active {
            let expected = "a seal record: a file that is not the newest lost its end";
            self.damaged(&u.path, valid_end, u.len - valid_end, expected)?;
        } else if valid_end < u.len {
            self.report.torn_tails.push(Damage {
                path: u.path.clone(),
                offset: valid_end,
                len: u.len - valid_end,
                reason: "the torn tail of the previously active file".to_string(),
            });
        }
        if u.outcome.records == 0 && active {
            if !self.read_only {
                self.storage.remove(&u.path)?;
                self.storage.sync_dir(self.dir)?;
                self.report.leftovers_removed.push(u.path.clone());
            }
            return Ok(None);
        }
        let seal = Seal {
            records: u.outcome.records,
            min_seq: u.outcome.min_seq,
            max_seq: u.outcome.max_seq,
            offset: valid_end,
        };
        let shape = if self.read_only {
            FileShape {
                len: valid_end,
                sealed: false,
                ..FileShape::sealed(u.base_seq, &seal)
            }
        } else {
            // Cut the torn tail and seal: from now on the file is immutable like any other.
            let out = self.storage.open_append(&u.path, IoClass::Recovery)?;
            if valid_end < u.len {
                out.truncate(valid_end)?;
            }
            let mut buf = Vec::new();
            record::encode_seal(&mut buf, &seal);
            out.append(&buf)?;
            out.sync()?;
            self.need_hints.push(u.id);
            FileShape::sealed(u.base_seq, &seal)
        };
        let reader = self.storage.open(&u.path, IoClass::UserRead)?;
        Ok(Some(DataFile::new(u.id, reader, shape)))
    }
}

/// What loading one file gave.
enum Loaded {
    Sealed(Arc<DataFile>),
    Unsealed(Unsealed),
    Nothing,
}

/// An unsealed file, scanned, waiting for [`Ctx::finish_unsealed`].
struct Unsealed {
    id: u32,
    path: PathBuf,
    len: u64,
    base_seq: u64,
    outcome: Outcome,
}

fn offer(bulk: &mut Bulk<'_>, file: u32, op: &Op<'_>) -> Result<()> {
    let flag = if op.tombstone { TOMBSTONE_FLAG } else { 0 };
    let bad = || Error::invalid("record offset or length beyond 32 bits");
    let loc = Loc {
        file,
        offset: u32::try_from(op.offset).map_err(|_| bad())?,
        len: u32::try_from(op.len).map_err(|_| bad())? | flag,
        seq: op.seq,
    };
    bulk.add(op.key, loc);
    Ok(())
}
