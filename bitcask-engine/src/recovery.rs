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
//!    A file is read from its hint if the hint passes every check, else scanned. Only a file
//!    that may be the previous run's active file (no hint, the highest header base sequence
//!    number: [`Ctx::candidates`]) is scanned up to its first damaged record or incomplete
//!    batch, which may be its torn tail, cut off when it is rewritten and sealed. Every other
//!    file was sealed once: damage in it is a corruption error (or skipped and reported, in
//!    salvage mode, the rest of the file still read), and it is never rewritten.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine_api::{Error, IoClass, ReadableFile, Result, Storage};

use crate::datafile::{
    DATA_START, DataFile, FileName, FileShape, HeaderInfo, read_header, read_seal,
};
use crate::hint::Hint;
use crate::keydir::{Bulk, KeyDir, Loc, TOMBSTONE_FLAG};
use crate::manifest::Manifest;
use crate::options::BitcaskOptions;
use crate::reader::{Damage, Op, Outcome, Policy, Source, scan_ops, synced_after, zero_tail};
use crate::record::{self, Seal};
use crate::rewrite::{Copy, Tee};

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
    /// The files that may be the previous run's active file ([`Ctx::candidates`]).
    candidates: BTreeSet<u32>,
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
        candidates: BTreeSet::new(),
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
    ctx.candidates = ctx.candidates(&live)?;
    let files = ctx.load_all(live)?;
    ctx.keydir.purge_tombstones();
    count_live(&ctx.keydir, &files);
    let next_seq = next_seq(&files)?;
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

/// Past every record, and past every file's base (a file may be newer than its records).
/// Sequence numbers come from disk (records, seals, hints, headers): one above
/// [`record::MAX_SEQ`] is corruption, so that nothing computed from them can wrap.
fn next_seq(files: &BTreeMap<u32, Arc<DataFile>>) -> Result<u64> {
    let mut next = 1;
    for f in files.values() {
        if f.max_seq() > record::MAX_SEQ || f.base_seq() > record::MAX_SEQ {
            let expected = format!("sequence numbers at most {}", record::MAX_SEQ);
            return Err(Error::corruption(f.path(), 0, expected));
        }
        next = next.max(f.max_seq() + 1).max(f.base_seq());
    }
    Ok(next)
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

    /// Loads every live data file: from hints first, then the scanned ones, which are judged
    /// against all the others (only the newest may be the previous run's active file).
    fn load_all(&mut self, live: Vec<FileName>) -> Result<BTreeMap<u32, Arc<DataFile>>> {
        let mut files = BTreeMap::new();
        let mut scanned = Vec::new();
        for name in live {
            match self.load(name)? {
                Loaded::Hinted(file) => {
                    files.insert(file.id(), file);
                }
                Loaded::Scanned(s) => scanned.push(s),
                Loaded::Nothing => {}
            }
        }
        // The newest sequence number each file holds or was created for.
        let newest_hinted = files
            .values()
            .map(|f| f.max_seq().max(f.base_seq()))
            .max()
            .unwrap_or(0);
        let newest: Vec<u64> = scanned.iter().map(|s| s.newest()).collect();
        for (i, s) in scanned.into_iter().enumerate() {
            let newest_other = newest
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, n)| *n)
                .fold(newest_hinted, u64::max);
            if let Some(file) = self.finish_scanned(*s, newest_other)? {
                files.insert(file.id(), file);
            }
        }
        Ok(files)
    }

    /// Sizes the keydir for the records the seals announce (key bytes from the hint sizes),
    /// so loading does not regrow tables step by step; the excess is given back afterwards.
    /// Only an estimate: the last bytes of a file are not proof of a seal (they may be a
    /// value's), so each count is capped by what the file's size can hold.
    fn reserve_keydir(&self, live: &[FileName]) -> Result<()> {
        let (mut records, mut key_bytes) = (0u64, 0u64);
        for &name in live {
            let Some(id) = name.id() else { continue };
            let reader = self.storage.open(&self.path(name), IoClass::Recovery)?;
            let len = reader.len()?;
            let Some(header) = read_header(&*reader, len)? else {
                continue;
            };
            let Some(seal) = read_seal(&*reader, header.nonce, len)? else {
                continue;
            };
            let announced = seal.records.min(len / (record::HEADER_LEN as u64 + 1));
            records += announced;
            if self.hints.contains(&id) {
                let hint_len = self.storage.file_len(&self.path(FileName::Hint(id)))?;
                key_bytes += hint_len.saturating_sub(60 + 19 * announced);
            }
        }
        self.keydir.reserve(records, key_bytes);
        Ok(())
    }

    /// The files that may be the previous run's active file: no hint, and the highest header
    /// base sequence number of all (it was created after every other file was sealed). Every
    /// other file was sealed once, whatever its end looks like now.
    fn candidates(&self, live: &[FileName]) -> Result<BTreeSet<u32>> {
        let mut bases = Vec::new();
        for &name in live {
            let Some(id) = name.id() else { continue };
            let reader = self.storage.open(&self.path(name), IoClass::Recovery)?;
            if let Some(header) = read_header(&*reader, reader.len()?)? {
                bases.push((id, header.base_seq));
            }
        }
        let top = bases.iter().map(|&(_, base)| base).max();
        Ok(bases
            .into_iter()
            .filter(|&(id, base)| Some(base) == top && !self.hints.contains(&id))
            .map(|(id, _)| id)
            .collect())
    }

    /// Finishes every committed merge, oldest first (each step is idempotent). Every output
    /// of every commit record is checked first (present under either name, with the length
    /// the record gives): if one is not, nothing is renamed or removed and the open fails.
    fn roll_forward(&mut self, manifests: &[Manifest]) -> Result<()> {
        let mut sorted: Vec<&Manifest> = manifests.iter().collect();
        sorted.sort_by_key(|m| m.id);
        for m in &sorted {
            self.check_outputs(m)?;
        }
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

    /// Each output `m` names exists (as `.merging`, or as `.data` if a roll-forward renamed it
    /// already) with the length `m` recorded.
    fn check_outputs(&self, m: &Manifest) -> Result<()> {
        let record = FileName::Manifest(m.id).name();
        if m.output_lens.len() != m.outputs.len() {
            let path = self.path(FileName::Manifest(m.id));
            return Err(Error::corruption(path, 0, "a length for every output"));
        }
        for (&out, &want) in m.outputs.iter().zip(&m.output_lens) {
            let merging = self.path(FileName::Merging(out));
            let data = self.path(FileName::Data(out));
            let path = if self.storage.exists(&merging)? {
                merging
            } else if self.storage.exists(&data)? {
                data
            } else {
                let expected = format!("the merge output {record} names ({want} bytes)");
                return Err(Error::corruption(merging, 0, expected));
            };
            let len = self.storage.file_len(&path)?;
            if len != want {
                let expected = format!("{want} bytes, as {record} records (found {len})");
                return Err(Error::corruption(path, len.min(want), expected));
            }
        }
        Ok(())
    }

    /// Removes uncommitted merge output, the temporary files this engine writes and orphan
    /// hints; returns the data files that remain. Files it did not write are left alone.
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
        for name in names {
            let doomed = match name {
                FileName::Merging(_) => true,
                FileName::Hint(id) => !data.contains(&id),
                other => other.is_temp(),
            };
            if doomed {
                let path = self.path(name);
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

    /// Loads one data file: from its hint if the hint passes every check (a hint is written
    /// only for a sealed file, after its seal was synced), else by a forward scan: a scan of a
    /// file once sealed ([`Ctx::scan_sealed`]) or of a candidate for the previous run's active
    /// file ([`Ctx::scan_unsealed`]), which [`Ctx::finish_scanned`] judges.
    fn load(&mut self, name: FileName) -> Result<Loaded> {
        let Some(id) = name.id() else {
            return Ok(Loaded::Nothing);
        };
        let path = self.path(name);
        let reader = self.storage.open(&path, IoClass::Recovery)?;
        let len = reader.len()?;
        // A `.data` file is created whole-headed (temporary name, sync, rename): a bad header
        // is damage, never a torn creation. Without it no record can be verified (the nonce
        // seeds their CRCs), so a salvage open skips the whole file.
        let Some(header) = read_header(&*reader, len)? else {
            self.damaged(&path, 0, len, "a valid data file header")?;
            return Ok(Loaded::Nothing);
        };
        if self.hints.contains(&id)
            && let Some(shape) = self.load_hint(id, len)?
        {
            self.report.files_from_hints += 1;
            let shape = FileShape {
                base_seq: header.base_seq,
                nonce: header.nonce,
                ..shape
            };
            let reader = self.storage.open(&path, IoClass::UserRead)?;
            return Ok(Loaded::Hinted(DataFile::new(id, reader, shape)));
        }
        self.report.files_scanned += 1;
        let src = Source {
            file: &*reader,
            path: &path,
            nonce: header.nonce,
        };
        let candidate = self.candidates.contains(&id);
        let (outcome, torn, copy) = if candidate {
            self.scan_unsealed(id, src, len, header)?
        } else {
            (self.scan_sealed(id, src, len)?, None, None)
        };
        Ok(Loaded::Scanned(Box::new(Scanned {
            id,
            path: path.clone(),
            len,
            header,
            outcome,
            torn,
            candidate,
            copy,
        })))
    }

    /// Scans a file that was sealed once: damage anywhere is a corruption error, or in salvage
    /// mode skipped and reported while the scan goes on to the end (no record vouching for
    /// the damaged bytes is needed: a sealed file has no torn tail).
    fn scan_sealed(&mut self, id: u32, src: Source<'_>, len: u64) -> Result<Outcome> {
        let policy = if self.opts.salvage {
            Policy::Salvage
        } else {
            Policy::Strict
        };
        let mut bulk = self.keydir.bulk();
        let mut sink = |op: Op<'_>| offer(&mut bulk, id, &op);
        let range = (DATA_START, len.max(DATA_START));
        let outcome = scan_ops(src, range, policy, &mut sink)?;
        bulk.finish()?;
        self.report.skipped.extend(outcome.damage.iter().cloned());
        self.check_seal_count(src.path, &outcome)?;
        Ok(outcome)
    }

    /// Scans a candidate for the previous run's active file; returns what it found, where a
    /// possible torn tail starts and (read-write) the copy of the bytes it read, from which
    /// [`Ctx::finish_scanned`] rewrites the file.
    fn scan_unsealed(
        &mut self,
        id: u32,
        src: Source<'_>,
        len: u64,
        header: HeaderInfo,
    ) -> Result<(Outcome, Option<u64>, Option<Copy>)> {
        let copy = if self.read_only {
            None
        } else {
            Some(Copy::start(self.storage, self.dir, id, header)?)
        };
        let tee = copy.as_ref().map(|copy| Tee {
            file: src.file,
            copy,
        });
        let copied = match &tee {
            Some(tee) => Source { file: tee, ..src },
            None => src,
        };
        let (outcome, torn) = self.scan_to_damage(id, copied, src.file, len)?;
        Ok((outcome, torn, copy))
    }

    /// Scans a whole file (through `src`, which may copy what it reads; `plain` is the file
    /// itself) into the keydir up to its first damage; past it only if a later record says
    /// the damaged bytes had been synced (corruption, or skipped in salvage mode). Returns
    /// what it found and where a possible torn tail starts. Zeros from the first damage to the
    /// end are no torn tail but the file's end: the preallocated tail of the previous run's
    /// active file, if this is it ([`Ctx::finish_scanned`] judges a file that is not).
    fn scan_to_damage(
        &mut self,
        id: u32,
        src: Source<'_>,
        plain: &dyn ReadableFile,
        len: u64,
    ) -> Result<(Outcome, Option<u64>)> {
        let mut bulk = self.keydir.bulk();
        let range = (DATA_START, len.max(DATA_START));
        let mut sink = |op: Op<'_>| offer(&mut bulk, id, &op);
        let mut outcome = scan_ops(src, range, Policy::TornTail, &mut sink)?;
        let mut torn = None;
        if let Some((at, bad)) = outcome.stopped {
            // Read from the file itself: the zeros are not part of the copy.
            if zero_tail(plain, at, len)? {
                outcome.stopped = None;
            } else if !synced_after(src, at, len)? {
                torn = Some(at);
            } else if !self.opts.salvage {
                return Err(Error::corruption(src.path, at, bad.expected()));
            } else {
                let rest = scan_ops(src, (at, len), Policy::Salvage, &mut sink)?;
                outcome.records += rest.records;
                outcome.min_seq = outcome.min_seq.min(rest.min_seq);
                outcome.max_seq = outcome.max_seq.max(rest.max_seq);
                outcome.valid_end = rest.valid_end;
                outcome.seal = rest.seal;
                let mut damage = rest.damage;
                if let Some(last) = damage.last()
                    && last.offset + last.len >= len
                    && zero_tail(plain, last.offset, len)?
                {
                    // The preallocated zeros after the last record: the end, not damage.
                    damage.pop();
                }
                self.report.skipped.extend(damage);
            }
        }
        bulk.finish()?;
        self.check_seal_count(src.path, &outcome)?;
        Ok((outcome, torn))
    }

    /// A seal must count the records a strict scan found before it.
    fn check_seal_count(&self, path: &Path, outcome: &Outcome) -> Result<()> {
        match outcome.seal {
            Some(seal) if !self.opts.salvage && seal.records != outcome.records => {
                let expected = format!(
                    "{} records as the seal says, found {}",
                    seal.records, outcome.records
                );
                Err(Error::corruption(path, seal.offset, expected))
            }
            _ => Ok(()),
        }
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

    /// Offers the keys of data file `id` from its hint; the file's shape, or `None` if the
    /// hint must be ignored.
    fn load_hint(&mut self, id: u32, data_len: u64) -> Result<Option<FileShape>> {
        let path = self.path(FileName::Hint(id));
        let file = self.storage.open(&path, IoClass::Recovery)?;
        let hint = match Hint::load(&*file, id, data_len)? {
            Ok(hint) => hint,
            Err(why) => {
                self.report.hints_ignored.push((path, why));
                return Ok(None);
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
            return Ok(None);
        }
        bulk.finish()?;
        Ok(Some(hint.shape))
    }

    /// Decides what a scanned file is. The previous run's active file is the candidate (no
    /// hint, highest header base sequence number) whose base sequence number is above
    /// everything every other file holds (it was created after all of them were sealed). Only
    /// it may end in a torn tail, and it is never trusted in place ([`Ctx::finish_active`]).
    /// Any other file was sealed once ([`Ctx::finish_sealed`]).
    fn finish_scanned(
        &mut self,
        mut s: Scanned,
        newest_other: u64,
    ) -> Result<Option<Arc<DataFile>>> {
        let copy = s.copy.take();
        if s.candidate && s.header.base_seq > newest_other {
            return self.finish_active(&s, copy);
        }
        if let Some(copy) = copy {
            copy.discard(self.storage)?;
        }
        if let Some(at) = s.torn {
            // A candidate that is not the active file after all: it was sealed, so what its
            // scan stopped at is damage, not a torn tail.
            self.damaged(&s.path, at, s.len - at, LOST_END)?;
        }
        self.finish_sealed(&s).map(Some)
    }

    /// A file sealed once. If its scan did not reach its seal, it lost its end: corruption, or
    /// (salvaging) reported, and the file is served as found, without a hint (which would let
    /// a later open trust it unscanned), but immutable, so that a salvage merge can copy its
    /// records away. It is never rewritten here: the rewrite would keep only what this scan
    /// could read and destroy the rest, which a repair might still recover.
    fn finish_sealed(&mut self, s: &Scanned) -> Result<Arc<DataFile>> {
        let data_end = s.data_end();
        let sealed = s.outcome.seal.is_some();
        if sealed && !self.read_only {
            self.need_hints.push(s.id);
        }
        // A salvage scan that skipped damage up to the end reported the lost end already.
        let reported = (s.outcome.damage.last()).is_some_and(|d| d.offset + d.len >= s.len);
        if !sealed && s.torn.is_none() && !reported {
            self.damaged(&s.path, data_end, s.len - data_end, LOST_END)?;
        }
        let shape = if sealed {
            self.shape(s, data_end, true)
        } else {
            FileShape {
                len: s.len,
                ..self.shape(s, data_end, true)
            }
        };
        self.open_file(s, shape)
    }

    /// The previous run's active file. Its torn tail is reported; read-write, it is removed if
    /// it holds no record, else never trusted in place, sealed or not: its bytes may come from
    /// the page cache after a failed sync, so it is replaced by the copy of what its scan
    /// verified, synced and sealed ([`Copy::seal`]).
    fn finish_active(&mut self, s: &Scanned, copy: Option<Copy>) -> Result<Option<Arc<DataFile>>> {
        let data_end = s.data_end();
        if let Some(at) = s.torn {
            self.report.torn_tails.push(Damage {
                path: s.path.clone(),
                offset: at,
                len: s.len - at,
                reason: "the torn tail of the previously active file".to_string(),
            });
        }
        if s.outcome.records == 0 {
            if let Some(copy) = copy {
                copy.discard(self.storage)?;
                self.storage.remove(&s.path)?;
                self.storage.sync_dir(self.dir)?;
                self.report.leftovers_removed.push(s.path.clone());
            }
            return Ok(None);
        }
        let Some(copy) = copy else {
            // Read-only: served as found, nothing touched.
            let sealed = s.outcome.seal.is_some();
            return self.open_file(s, self.shape(s, data_end, sealed)).map(Some);
        };
        let seal = seal_of(&s.outcome, data_end);
        copy.seal(self.storage, &s.path, s.header.nonce, &seal)?;
        self.need_hints.push(s.id);
        self.open_file(s, self.shape(s, data_end, true)).map(Some)
    }

    /// The shape of scanned file `s` whose records end at `data_end`, sealed there or not.
    fn shape(&self, s: &Scanned, data_end: u64, sealed: bool) -> FileShape {
        let seal = seal_of(&s.outcome, data_end);
        let shape = FileShape::sealed(s.header.base_seq, s.header.nonce, &seal);
        if sealed {
            shape
        } else {
            FileShape {
                len: data_end,
                sealed: false,
                ..shape
            }
        }
    }

    fn open_file(&self, s: &Scanned, shape: FileShape) -> Result<Arc<DataFile>> {
        let reader = self.storage.open(&s.path, IoClass::UserRead)?;
        Ok(DataFile::new(s.id, reader, shape))
    }
}

/// What a file that is not the newest lacks when its scan does not reach a seal.
const LOST_END: &str = "a seal record: a file that is not the newest lost its end";

/// The seal a file whose scan gave `outcome` gets at `offset`.
fn seal_of(outcome: &Outcome, offset: u64) -> Seal {
    Seal {
        records: outcome.records,
        min_seq: outcome.min_seq,
        max_seq: outcome.max_seq,
        offset,
    }
}

/// What loading one file gave.
enum Loaded {
    /// Sealed, loaded from its hint.
    Hinted(Arc<DataFile>),
    /// Scanned, waiting for [`Ctx::finish_scanned`].
    Scanned(Box<Scanned>),
    Nothing,
}

/// A scanned file.
struct Scanned {
    id: u32,
    path: PathBuf,
    len: u64,
    header: HeaderInfo,
    outcome: Outcome,
    /// Where a possible torn tail starts: damage that no later record says was synced.
    torn: Option<u64>,
    /// Whether it may be the previous run's active file ([`Ctx::candidates`]).
    candidate: bool,
    /// Read-write, for a candidate: the copy of the bytes its scan verified.
    copy: Option<Copy>,
}

impl Scanned {
    /// The newest sequence number the file holds or was created for.
    fn newest(&self) -> u64 {
        self.outcome.max_seq.max(self.header.base_seq)
    }

    /// Where its records end: at its seal, or past its last complete record (or batch).
    fn data_end(&self) -> u64 {
        let end = self
            .outcome
            .seal
            .map_or(self.outcome.valid_end, |seal| seal.offset);
        end.clamp(DATA_START, self.len)
    }
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
